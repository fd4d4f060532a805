#!/usr/bin/env bash
# Provides the real registry parts for the registry tests (tests/registry/tools.py):
#   - docker-registry (CNCF distribution 2.8) and skopeo, from Debian (apt-get install);
#   - @sigstore/oci (the library behind GitHub's actions/attest that attaches bundles to
#     images) from the npm registry, into a cache outside the checkout, run with the
#     machine's node.
# Reruns are cheap: what is already in place is reused and apt/npm are not asked again.
#
#   PROVENANT_REGISTRY_TOOLS_CACHE  cache root (default /var/cache/provenant-e2e/registry-tools);
#                                   the npm package lands in $CACHE/node_modules/@sigstore/oci
#
# stdout: the cache directory, nothing else. Progress and tool output go to stderr.
set -euo pipefail

SIGSTORE_OCI_VERSION=0.7.2
CACHE="${PROVENANT_REGISTRY_TOOLS_CACHE:-/var/cache/provenant-e2e/registry-tools}"

log() { printf '[install-registry-tools] %s\n' "$*" >&2; }
die() { printf '[install-registry-tools] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot apt-get install"
    SUDO="sudo"
fi

mkdir -p "$CACHE" || die "cannot create $CACHE (set PROVENANT_REGISTRY_TOOLS_CACHE?)"
exec 9>"$CACHE/.install.lock"
flock 9 || die "cannot lock $CACHE/.install.lock"

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
        log "install failed; refreshing the system's package lists and retrying"
        $SUDO apt-get update -q >&2 || die "apt-get update failed"
        $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
            || die "apt-get install ${missing[*]} failed"
    fi
}

apt_install docker-registry skopeo
# The package enables a system service on :5000; the tests start their own registries on
# free ports and need none running in the background.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    $SUDO systemctl disable --now docker-registry >&2 || true
fi
command -v docker-registry >/dev/null || die "docker-registry installed but not on PATH"
command -v skopeo >/dev/null || die "skopeo installed but not on PATH"

if command -v node >/dev/null && command -v npm >/dev/null; then
    PKG_JSON="$CACHE/node_modules/@sigstore/oci/package.json"
    if [ -f "$PKG_JSON" ] && grep -q "\"version\": \"$SIGSTORE_OCI_VERSION\"" "$PKG_JSON"; then
        log "reusing @sigstore/oci $SIGSTORE_OCI_VERSION in $CACHE"
    else
        log "npm install @sigstore/oci@$SIGSTORE_OCI_VERSION into $CACHE"
        [ -f "$CACHE/package.json" ] || echo '{"private": true}' >"$CACHE/package.json"
        npm install --prefix "$CACHE" --no-audit --no-fund --silent \
            "@sigstore/oci@$SIGSTORE_OCI_VERSION" >&2 || die "npm install @sigstore/oci failed"
    fi
else
    log "no node/npm on this machine: the @sigstore/oci tests will be skipped"
fi

echo "$CACHE"
