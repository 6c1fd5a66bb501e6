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

# The snapshot: $ADVISORY_DB, else beside the checkout (../shared), else the
# workplace's shared folder.  Without one, licences, bans and sources are
# still checked, advisories are not, and that is said loudly (set
# REQUIRE_ADVISORY_DB=1 to fail instead).
snapshot=""
for candidate in "${ADVISORY_DB:-}" ../shared/data/advisory-db /work/shared/data/advisory-db; do
    if [ -n "$candidate" ] && [ -d "$candidate" ]; then
        snapshot="$candidate"
        break
    fi
done
checks="advisories bans licenses sources"
selftest_checks="advisories bans"
selftest_expected=("RUSTSEC-2024-0320" "crate 'serde_yaml = 0.8.26' is explicitly banned")
if [ -z "$snapshot" ]; then
    echo "WARNING: advisory database not found (ADVISORY_DB, ../shared/data/advisory-db); RustSec advisories are NOT checked" >&2
    if [ "${REQUIRE_ADVISORY_DB:-0}" = 1 ]; then
        exit 1
    fi
    checks="bans licenses sources"
    selftest_checks="bans"
    selftest_expected=("crate 'serde_yaml = 0.8.26' is explicitly banned")
else
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
fi

# Self-test: a crate depending on serde_yaml 0.8 (see deny-selftest/README.md)
# must fail with the bans and the advisory, or this check proves nothing.
selftest=target/deny-selftest
rm -rf "$selftest"
mkdir -p "$selftest"
cp -R scripts/deny-selftest/. "$selftest/"
sed "s#^db-path = .*#db-path = \"$PWD/target/advisory-dbs\"#" deny.toml >"$selftest/deny.toml"
# shellcheck disable=SC2086 # the list of checks is split on purpose
if output=$(cd "$selftest/app" && cargo deny --offline --config ../deny.toml check $selftest_checks 2>&1); then
    echo "$output" >&2
    echo "cargo-deny self-test: a graph with serde_yaml 0.8 passed; deny.toml or the advisory database is broken" >&2
    exit 1
fi
for expected in "${selftest_expected[@]}"; do
    if ! grep -qF "$expected" <<<"$output"; then
        echo "$output" >&2
        echo "cargo-deny self-test: expected \"$expected\" in the output above" >&2
        exit 1
    fi
done
echo "cargo-deny self-test: serde_yaml 0.8 rejected (${selftest_expected[*]})" >&2

# --offline also keeps `cargo metadata` off the network: dependencies must
# already be in the cargo cache (CI builds before this runs).
cargo fetch --locked
# shellcheck disable=SC2086
cargo deny --offline check $checks
