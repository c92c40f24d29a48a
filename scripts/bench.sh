#!/usr/bin/env bash
# Benchmarks: print figures and ratios (they are not tests and assert nothing).
#   scripts/bench.sh monitoring    # server time per sample, TPS with the sampler, activity/locks at scale
#   scripts/bench.sh maintenance   # plan, index report and status for 20,000 tables
# Needs what scripts/install-deps.sh installs (PostgreSQL 15 and 18, the keyring helper).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
case "${1:-}" in
  monitoring | maintenance) ;;
  *)
    echo "usage: $0 monitoring|maintenance" >&2
    exit 2
    ;;
esac
exec "$ROOT/scripts/with-keyring.sh" cargo bench -p pgsteward --bench "$1"
