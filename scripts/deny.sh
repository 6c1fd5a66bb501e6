#!/usr/bin/env bash
# Supply-chain check: licences, banned crates, sources and RustSec advisories
# with cargo-deny (configured in deny.toml), offline.
#
# The advisory database is a snapshot at ${ADVISORY_DB:-../shared/data/advisory-db}
# (relative to the repository root).  cargo-deny needs a writable git
# repository, so the snapshot is copied under target/ and committed there;
# see ../shared/reference/supply-chain.md.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $version"; then
    echo "installing cargo-deny $version (about 2.5 minutes)" >&2
    cargo install cargo-deny --locked --version "$version"
fi

snapshot="${ADVISORY_DB:-../shared/data/advisory-db}"
if [ ! -d "$snapshot" ]; then
    echo "advisory database not found at $snapshot; set ADVISORY_DB to a copy of the RustSec advisory-db" >&2
    exit 1
fi
# The folder name cargo-deny derives from the default database URL.
db=target/advisory-dbs/advisory-db-3157b0e258782691
rm -rf "$db"
mkdir -p "$db"
cp -R "$snapshot/." "$db/"
git -C "$db" init -q
git -C "$db" add -A
git -C "$db" -c user.name=ci -c user.email=ci@localhost -c commit.gpgsign=false commit -qm snapshot
if [ -f "$snapshot/SNAPSHOT.txt" ]; then
    echo "advisory database snapshot: $(head -n 1 "$snapshot/SNAPSHOT.txt")" >&2
fi

# Self-test: a crate depending on serde_yaml 0.8 (see deny-selftest/README.md)
# must fail with the bans and the advisory, or this check proves nothing.
selftest=target/deny-selftest
rm -rf "$selftest"
mkdir -p "$selftest"
cp -R scripts/deny-selftest/. "$selftest/"
sed "s#^db-path = .*#db-path = \"$PWD/target/advisory-dbs\"#" deny.toml >"$selftest/deny.toml"
if output=$(cd "$selftest/app" && cargo deny --offline --config ../deny.toml check advisories bans 2>&1); then
    echo "$output" >&2
    echo "cargo-deny self-test: a graph with serde_yaml 0.8 passed; deny.toml or the advisory database is broken" >&2
    exit 1
fi
for expected in "RUSTSEC-2024-0320" "crate 'serde_yaml = 0.8.26' is explicitly banned"; do
    if ! grep -qF "$expected" <<<"$output"; then
        echo "$output" >&2
        echo "cargo-deny self-test: expected \"$expected\" in the output above" >&2
        exit 1
    fi
done
echo "cargo-deny self-test: serde_yaml 0.8 rejected (banned, RUSTSEC-2024-0320)" >&2

# --offline also keeps `cargo metadata` off the network: dependencies must
# already be in the cargo cache (CI builds before this runs).
cargo fetch --locked
cargo deny --offline check advisories bans licenses sources
