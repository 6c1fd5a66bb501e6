#!/usr/bin/env bash
# Installs a PostgreSQL server (Debian's `postgresql` package) for the tests
# and the benchmark of OpenBao's database secrets engine.  Idempotent and
# quick: when the server binaries are already there, apt is not touched.  The
# tests and the benchmark start their own throwaway servers on loopback
# (src/demo/postgres.rs); nothing is started here.
set -euo pipefail

# The server binaries the tests look for: Debian's versioned dir, or PATH.
have_server() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || command -v postgres >/dev/null
}

if ! have_server; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-postgres.sh: no PostgreSQL server found; run as root to install Debian's postgresql package" >&2
        exit 1
    fi
    # No default cluster: the package would otherwise initdb one (seconds) and
    # may start it on port 5432, which the tests neither need nor want.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/vault-csi-tests.conf
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Use-Pty=0 postgresql >/dev/null
fi

# PostgreSQL refuses to run as root, so the tests drop to this user when they
# run as root.  Debian's package creates it; make sure of it anyway.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres
fi

if ! have_server; then
    echo "install-postgres.sh: still no PostgreSQL server after installing" >&2
    exit 1
fi
