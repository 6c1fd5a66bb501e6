#!/usr/bin/env bash
# Builds the release provider and the rotation benchmark once (`cargo bench`
# would build everything again under the bench profile) and prints the
# benchmark executable's path.  Used by bench.sh and soak.sh; cargo's own
# output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=$(cargo build --locked --release --bin vault-csi --bench rotation \
    --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "rotation" and m.get("executable"):
        print(m["executable"])
')
if [ -z "$bench" ]; then
    echo "build-rotation-bench.sh: cargo built no rotation benchmark executable" >&2
    exit 1
fi
echo "$bench"
