#!/usr/bin/env bash
# Provides the control plane for the end-to-end admission tests (tests/e2e/kube.py):
#   - kube-apiserver v1.20.2, built once from source into a cache outside the checkout;
#   - kubectl v1.20.2 beside it, from Debian's kubernetes-client package (extracted, not
#     installed: /usr/bin/kubectl may belong to another package, e.g. gcloud's dispatcher,
#     whose built-in client is far outside the apiserver's supported version skew);
#   - etcd, from Debian's etcd-server.
# Reruns are cheap: what is already in place and reports the right version is reused.
#
# Why from source: no kube-apiserver ships prebuilt for this machine, but Debian bookworm's
# `kubernetes` source package vendors every dependency, so it builds offline with Debian's Go.
#
#   PROVENANT_KUBE_CACHE   cache root (default /var/cache/provenant-e2e); binaries land in
#                          $PROVENANT_KUBE_CACHE/kube-apiserver-1.20.2/{kube-apiserver,kubectl}
#   PROVENANT_KUBE_JOBS    parallel Go build jobs (default: number of CPUs)
#   PROVENANT_KUBE_KEEP_BUILD=1  keep the source tree and Go build cache (about 1.6 GB) after a
#                          successful build, for quick rebuilds; by default they are removed
#
# stdout: the kube-apiserver path, nothing else. Progress and tool output go to stderr.
# tests/e2e/kube.py looks in the same place; keep the two in step.
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE_ROOT="${PROVENANT_KUBE_CACHE:-/var/cache/provenant-e2e}"
DEST_DIR="$CACHE_ROOT/kube-apiserver-$KUBE_VERSION"
BINARY="$DEST_DIR/kube-apiserver"
KUBECTL="$DEST_DIR/kubectl"
WORK="$CACHE_ROOT/build-$KUBE_VERSION"
JOBS="${PROVENANT_KUBE_JOBS:-$(nproc)}"
START=$SECONDS

log() { printf '[build-kube-apiserver %4ss] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf '[build-kube-apiserver] ERROR: %s\n' "$*" >&2; exit 1; }
on_error() {
    printf '[build-kube-apiserver] ERROR: exit %s at line %s: %s\n' "$1" "$2" "$3" >&2
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot apt-get install"
    SUDO="sudo"
fi

mkdir -p "$CACHE_ROOT" || die "cannot create $CACHE_ROOT (set PROVENANT_KUBE_CACHE?)"
# Two CI jobs or a developer rerun must not build into the same tree at once.
exec 9>"$CACHE_ROOT/.build.lock"
flock 9 || die "cannot lock $CACHE_ROOT/.build.lock"

# Installs only what is missing, so a rerun on a provisioned machine never touches apt; the
# system's package lists are refreshed only if an install fails on stale lists.
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

apiserver_ok() {
    [ -x "$BINARY" ] && [ "$("$BINARY" --version 2>&1)" = "Kubernetes v$KUBE_VERSION" ]
}
kubectl_ok() {
    [ -x "$KUBECTL" ] && "$KUBECTL" version --client 2>&1 | grep -q "GitVersion:\"v$KUBE_VERSION\""
}

# etcd is needed at test time whether or not the binaries are cached.
apt_install etcd-server
command -v etcd >/dev/null || die "etcd-server is installed but there is no etcd on PATH"

if apiserver_ok && kubectl_ok; then
    log "reusing $BINARY and $KUBECTL (v$KUBE_VERSION)"
    echo "$BINARY"
    exit 0
fi

apt_install dpkg-dev ca-certificates
mkdir -p "$WORK" "$DEST_DIR"

# Private apt lists: the system's apt configuration and state stay exactly as they were. The
# deb and deb-src lines mirror the system's own Debian lines (same mirror or snapshot, same
# signing key), so sources and packages match what the machine is pinned to.
# shellcheck source=/dev/null
CODENAME="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
CODENAME="${CODENAME:-bookworm}"
APT_DIR="$WORK/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial"
SRC_LIST="$APT_DIR/sources.list"
{
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # deb822 stanzas with Types: deb become one-line deb and deb-src entries.
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && uris != "" && suites != "") {
                    n = split(uris, u, " "); m = split(suites, s, " ")
                    opt = (signed != "") ? " [signed-by=" signed "]" : ""
                    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
                        print "deb" opt " " u[i] " " s[j] " " comps
                        print "deb-src" opt " " u[i] " " s[j] " " comps
                    }
                }
                types = uris = suites = comps = signed = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^Types:/      { sub(/^Types:[ \t]*/, "");      types = $0 }
            /^URIs:/       { sub(/^URIs:[ \t]*/, "");       uris = $0 }
            /^Suites:/     { sub(/^Suites:[ \t]*/, "");     suites = $0 }
            /^Components:/ { sub(/^Components:[ \t]*/, ""); comps = $0 }
            /^Signed-By:/  { sub(/^Signed-By:[ \t]*/, "");  signed = $0 }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n -e 's/^[ \t]*deb[ \t]/deb /p' -e 's/^[ \t]*deb[ \t]/deb-src /p' "$f"
    done
    # Only the distribution's own suites: third-party repositories (cloud SDKs, node) carry
    # neither package and would only slow `apt-get update` down or break it.
} | grep -E " $CODENAME(-updates|-security)? " | sort -u >"$SRC_LIST" || true
[ -s "$SRC_LIST" ] || die "no Debian $CODENAME deb lines in /etc/apt to derive sources from"
log "private apt list:"; sed 's/^/    /' "$SRC_LIST" >&2

APT_OPTS=(
    -o "Dir::Etc::sourcelist=$SRC_LIST"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache::archives=$APT_DIR/archives"
    -o "APT::Get::List-Cleanup=0"
    # Root-owned private dirs are unreadable to apt's _apt sandbox user; downloading as root
    # is what apt falls back to anyway, minus the warning.
    -o "APT::Sandbox::User=root"
)
APT_UPDATED=0
private_apt_update() {
    [ "$APT_UPDATED" = 1 ] && return 0
    log "apt-get update (private lists only)"
    apt-get "${APT_OPTS[@]}" update -q >&2 || die "apt-get update with the private list failed"
    APT_UPDATED=1
}

if ! kubectl_ok; then
    private_apt_update
    rm -rf "$WORK/kubectl"; mkdir -p "$WORK/kubectl"
    log "apt-get download kubernetes-client (kubectl v$KUBE_VERSION)"
    (cd "$WORK/kubectl" && apt-get "${APT_OPTS[@]}" download kubernetes-client >&2) \
        || die "apt-get download kubernetes-client failed"
    dpkg-deb -x "$WORK"/kubectl/kubernetes-client_*.deb "$WORK/kubectl/root" \
        || die "cannot unpack kubernetes-client"
    install -m 0755 "$WORK/kubectl/root/usr/bin/kubectl" "$KUBECTL.tmp"
    mv -f "$KUBECTL.tmp" "$KUBECTL"
    kubectl_ok || die "$KUBECTL does not report v$KUBE_VERSION"
    log "kubectl: $KUBECTL"
fi

if apiserver_ok; then
    log "reusing $BINARY"
else
    apt_install golang-go rsync make gcc libc6-dev
    find_source() {
        find "$WORK/src" -maxdepth 1 -type d -name 'kubernetes-*' 2>/dev/null | head -n1
    }
    SRC_DIR="$(find_source || true)"
    if [ -z "$SRC_DIR" ] || [ ! -f "$SRC_DIR/Makefile" ]; then
        private_apt_update
        rm -rf "$WORK/src"; mkdir -p "$WORK/src"
        log "apt-get source kubernetes"
        (cd "$WORK/src" && apt-get "${APT_OPTS[@]}" source -q kubernetes >&2) \
            || die "apt-get source kubernetes failed"
        SRC_DIR="$(find_source)"
        { [ -n "$SRC_DIR" ] && [ -f "$SRC_DIR/Makefile" ]; } || die "unpacked source: no Makefile"
    else
        log "reusing unpacked source"
    fi
    log "source: $SRC_DIR"

    # GOPATH mode: vendor/ only resolves as k8s.io/kubernetes inside a GOPATH, which is how
    # Debian builds it too; module mode would try to reach the network.
    GOPATH_DIR="$WORK/gopath"
    mkdir -p "$GOPATH_DIR/src/k8s.io"
    ln -sfn "$SRC_DIR" "$GOPATH_DIR/src/k8s.io/kubernetes"
    export GOPATH="$GOPATH_DIR" GO111MODULE=off GOPROXY=off CGO_ENABLED=0
    export GOFLAGS=""  # a -mod=... from the environment is an error in GOPATH mode
    export GOCACHE="$WORK/gocache" GOMAXPROCS="$JOBS"
    # Read by the hack/ scripts behind `make gen_openapi`; spares them looking for .git.
    export KUBE_GIT_VERSION="v$KUBE_VERSION" KUBE_GIT_TREE_STATE=clean
    cd "$GOPATH_DIR/src/k8s.io/kubernetes"
    log "go: $(go version)"

    # The apiserver embeds generated OpenAPI definitions that the tarball does not include.
    if [ ! -s pkg/generated/openapi/zz_generated.openapi.go ]; then
        log "make gen_openapi"
        make gen_openapi >&2 || die "make gen_openapi failed"
    else
        log "generated OpenAPI present; skipping make gen_openapi"
    fi

    log "go build k8s.io/kubernetes/cmd/kube-apiserver ($JOBS jobs; minutes)"
    # Version stamps go into the vendored packages' paths (GOPATH mode), in both places that
    # report a version: component-base (--version, the core API) and client-go (the aggregator,
    # which serves /version). Unstamped, the server calls itself v0.0.0-master with an empty
    # minor version, which kubectl's version handling trips on.
    # -s -w: no symbol table or DWARF, as in upstream release builds (106 MB instead of 147).
    LDFLAGS="-s -w"
    for pkg in component-base/version client-go/pkg/version; do
        VERSION_PKG="k8s.io/kubernetes/vendor/k8s.io/$pkg"
        LDFLAGS+=" -X $VERSION_PKG.gitVersion=v$KUBE_VERSION"
        LDFLAGS+=" -X $VERSION_PKG.gitMajor=$(echo "$KUBE_VERSION" | cut -d. -f1)"
        LDFLAGS+=" -X $VERSION_PKG.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
        LDFLAGS+=" -X $VERSION_PKG.gitTreeState=clean"
        LDFLAGS+=" -X $VERSION_PKG.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    done
    go build -p "$JOBS" -o "$BINARY.tmp" -ldflags "$LDFLAGS" ./cmd/kube-apiserver \
        || die "go build of kube-apiserver failed"
    version="$("$BINARY.tmp" --version 2>&1 || true)"
    [ "$version" = "Kubernetes v$KUBE_VERSION" ] \
        || die "the built binary reports '$version', expected v$KUBE_VERSION"
    mv -f "$BINARY.tmp" "$BINARY"
    cd /
    log "built $BINARY ($(du -h "$BINARY" | cut -f1))"
fi

if [ "${PROVENANT_KUBE_KEEP_BUILD:-0}" != 1 ]; then
    log "removing the build tree $WORK (PROVENANT_KUBE_KEEP_BUILD=1 keeps it)"
    # Go leaves parts of its caches read-only; make them removable first.
    chmod -R u+w "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
fi

log "done in $((SECONDS - START))s: $BINARY ($("$BINARY" --version)), $KUBECTL, $(command -v etcd)"
echo "$BINARY"
