#!/usr/bin/env bash
# Build pgsteward and start the desktop app. With no project configured, the app creates a
# local sandbox PostgreSQL, fills it with a sample shop database and opens its dashboard.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

"$ROOT/scripts/install-deps.sh"
echo "==> building the UI"
(cd ui && npm run --silent build)
echo "==> building the app (release)"
cargo build --release -p pgsteward-app -p pgsteward

APP="$ROOT/target/release/pgsteward-app"
export PGSTEWARD_SANDBOX="${PGSTEWARD_SANDBOX:-1}"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "No graphical display found; run this from a desktop session." >&2
  echo "On a server, use the CLI instead: $ROOT/target/release/pgsteward --help" >&2
  exit 1
fi
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  echo "No D-Bus session: using a temporary keyring for this run (passwords are forgotten at exit)." >&2
  exec "$ROOT/scripts/with-keyring.sh" "$APP"
fi
exec "$APP"
