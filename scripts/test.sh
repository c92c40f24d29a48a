#!/usr/bin/env bash
# Run every test: UI lint/type-check/unit tests, Rust format and lint, the core's unit tests,
# integration tests against real PostgreSQL 15 and 18 servers and a real keyring, and the
# end-to-end test of the real app under a virtual display. Installs what it needs first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

"$ROOT/scripts/install-deps.sh"

echo "==> UI: lint, type-check, unit tests, build"
(cd ui && npm run --silent lint && npm run --silent check && npm test --silent && npm run --silent build)

echo "==> Rust: format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> the core has no Tauri dependency"
if cargo tree -p pgsteward -e normal --prefix none | grep -E '^tauri' >/dev/null; then
  echo "the pgsteward core depends on a tauri crate" >&2
  exit 1
fi

echo "==> building the app for end-to-end tests (own identifier and data folder)"
TAURI_CONFIG='{"identifier":"org.pgsteward.app.e2e","productName":"pgsteward-e2e"}' \
  cargo build --quiet -p pgsteward-app
mkdir -p target/e2e
cp target/debug/pgsteward-app target/e2e/pgsteward-app-e2e
export PGSTEWARD_E2E_APP="$ROOT/target/e2e/pgsteward-app-e2e"
export PGSTEWARD_ARTIFACTS="$ROOT/.test-artifacts"

echo "==> tests"
xvfb-run -a -s "-screen 0 1280x800x24" \
  "$ROOT/scripts/with-keyring.sh" cargo nextest run --workspace --no-fail-fast --status-level fail --final-status-level slow
