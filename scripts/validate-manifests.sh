#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/ offline, in strict mode
# (unknown fields are errors), against the schemas of a pinned Kubernetes
# version.  kubernetes-validate (PyPI) bundles those schemas, so no cluster
# and no network beyond the one-time install are needed.
#
# Installs kubernetes-validate into .venv/ (created if missing).  Idempotent.
# kustomization.yaml (not a Kubernetes object) and csi-driver-values.yaml
# (Helm values) are skipped.
#
# Usage: scripts/validate-manifests.sh [FILE...]
#        Without files: every manifest in deploy/.  With files: those (the
#        tests pass rendered chart output and the examples' built-in kinds).
# Env:   KUBERNETES_VERSION (default 1.33.0), KUBERNETES_VALIDATE_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.33.0}"
KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
VALIDATE=.venv/bin/kubernetes-validate

if ! [ -x "$VALIDATE" ] \
    || [ "$("$VALIDATE" --version 2>/dev/null | awk '{print $NF}')" != "$KUBERNETES_VALIDATE_VERSION" ]; then
    [ -x .venv/bin/pip ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi

manifests=("$@")
[ "$#" -gt 0 ] || for file in deploy/*.yaml deploy/*.yml; do
    [ -e "$file" ] || continue
    case "$(basename "$file")" in
        kustomization.yaml | kustomization.yml | csi-driver-values.yaml) continue ;;
    esac
    manifests+=("$file")
done
if [ "${#manifests[@]}" -eq 0 ]; then
    echo "no manifests given or found in deploy/" >&2
    exit 1
fi

# kubernetes-validate exits non-zero on any invalid document, but only warns
# (exit 0) about a kind it has no schema for, such as a typo in apiVersion or
# kind; every file here is a built-in kind, so a warning is a failure too.
output="$("$VALIDATE" --strict --kubernetes-version "$KUBERNETES_VERSION" "${manifests[@]}" 2>&1)" || {
    echo "$output" >&2
    exit 1
}
echo "$output"
if grep -q "^WARN" <<<"$output"; then
    echo "kubernetes-validate printed warnings; treating them as failures" >&2
    exit 1
fi
echo "validated ${#manifests[@]} files against Kubernetes ${KUBERNETES_VERSION} (strict)"
