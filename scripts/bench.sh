#!/usr/bin/env bash
# Benchmarks: print figures and ratios (they are not tests and assert nothing).
#   scripts/bench.sh monitoring    # server time per sample, TPS with the sampler, activity/locks at scale
#   scripts/bench.sh maintenance   # plan, index report and status for 20,000 tables
#   scripts/bench.sh backup        # backup, restore, verify against pg_dump -Fc and pgBackRest
#                                  # (PGSTEWARD_BENCH_GB=0.1 for a quick run; default 1 GB per dataset)
# Needs what scripts/install-deps.sh installs (PostgreSQL 15 and 18, the keyring helper).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
case "${1:-}" in
  monitoring | maintenance | backup) ;;
  *)
    echo "usage: $0 monitoring|maintenance|backup" >&2
    exit 2
    ;;
esac
if [ "$1" = monitoring ] && ! command -v xdotool >/dev/null; then
  apt-get install -y -q xdotool >/dev/null || echo "xdotool unavailable: the app's hidden figures are skipped" >&2
fi
if [ "$1" = backup ] && ! command -v pgbackrest >/dev/null; then
  { apt-get install -y -q pgbackrest >/dev/null || { apt-get update -qq && apt-get install -y -q pgbackrest >/dev/null; }; } \
    || echo "pgbackrest unavailable: its figures are skipped" >&2
fi
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null; then
  exec xvfb-run -a -s "-screen 0 1280x800x24" "$ROOT/scripts/with-keyring.sh" cargo bench -p pgsteward --bench "$1"
fi
exec "$ROOT/scripts/with-keyring.sh" cargo bench -p pgsteward --bench "$1"
