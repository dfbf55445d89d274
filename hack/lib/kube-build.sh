# shellcheck shell=bash
# Build commands of the k8s.io/kubernetes module at one pinned version, with nothing but the Go
# module proxy. Sourced by hack/envtest-assets.sh (kube-apiserver) and hack/rig-assets.sh
# (kube-controller-manager, kube-scheduler); the caller defines log().
#
#   KUBE_VERSION      the single pin (v1.37.2's source zip is refused by the proxy); the staging
#                     modules follow as v0.<minor>.<patch>
#   KUBE_CACHE        where the built binaries are cached, outside the work tree
#   kube_build DIR PKG...   builds every PKG (k8s.io/kubernetes/cmd/...) in ONE go build into
#                     the existing directory DIR, each binary named after its package

KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"
RCONN_CACHE_ROOT="${RCONN_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/rconn}"
KUBE_CACHE="$RCONN_CACHE_ROOT/envtest/kube-$KUBE_VERSION"

# kube_write_module WORK PKG...: a throwaway module in WORK that requires k8s.io/kubernetes and
# imports each PKG (so go mod tidy records what they need).
kube_write_module() {
  local work="$1"; shift
  local staging_version="v0.${KUBE_VERSION#v1.}"
  local info gomod
  info="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION")"
  if grep -q '"Error"' <<<"$info"; then log "could not download k8s.io/kubernetes@$KUBE_VERSION: $info"; exit 1; fi
  gomod="$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' <<<"$info")"
  {
    echo "module rconn.dev/envtest-build"
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    # k8s.io/kubernetes replaces its staging modules with ./staging/... paths, which a module
    # consumer cannot use: pin each one to its published version instead.
    grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } > "$work/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\n'
    local pkg
    for pkg in "$@"; do printf 'import _ "%s"\n' "$pkg"; done
  } > "$work/tools.go"
}

# kube_ldflags: strip, and stamp the version that --version and the API's /version report.
kube_ldflags() {
  local major="${KUBE_VERSION#v}"; major="${major%%.*}"
  local minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "$ldflags"
}

# kube_build DIR PKG...: the throwaway module and the build output live in a temporary directory
# removed on return; the binaries are moved into DIR only once all of them are built.
kube_build() {
  local dir="$1"; shift
  local work; work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'; trap - RETURN" RETURN
  kube_write_module "$work" "$@"
  local ldflags; ldflags="$(kube_ldflags)"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >&2 2>/dev/null || true)
  mkdir -p "$work/out"
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/out/" "$@") >&2
  mkdir -p "$dir"
  local pkg
  for pkg in "$@"; do mv "$work/out/${pkg##*/}" "$dir/${pkg##*/}"; done
}
