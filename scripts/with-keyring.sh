#!/usr/bin/env bash
# Run a command inside a private D-Bus session with an unlocked Secret Service keyring
# (GNOME Keyring) whose files live in a temporary folder. Used by tests and headless runs.
# Usage: scripts/with-keyring.sh COMMAND [ARGS...]
set -euo pipefail
if [ -z "${PGSTEWARD_IN_KEYRING_SESSION:-}" ]; then
  export PGSTEWARD_IN_KEYRING_SESSION=1
  exec dbus-run-session -- "$0" "$@"
fi
KEYRING_HOME="$(mktemp -d -t pgsteward-keyring.XXXXXX)"
trap 'rm -rf "$KEYRING_HOME"' EXIT
export XDG_DATA_HOME="$KEYRING_HOME/data"
mkdir -p "$XDG_DATA_HOME"
# The unlock password only guards this throwaway keyring.
eval "$(printf 'test-session' | gnome-keyring-daemon --unlock --components=secrets)" >/dev/null
export GNOME_KEYRING_CONTROL
"$@"
