#!/usr/bin/env bash
# Provision the envtest control plane with nothing but the Go module proxy and Debian's packages:
#   kube-apiserver  built from the k8s.io/kubernetes module (KUBE_VERSION, pinned here only)
#   etcd            Debian's etcd-server
#   kubectl         the one on PATH, else Debian's kubernetes-client
# The binaries land in a cache outside the work tree (survives a fresh checkout) and are linked
# into $BIN_DIR (default bin/k8s) where KUBEBUILDER_ASSETS points. A second run is instant.
#
# Usage: hack/envtest-assets.sh [BIN_DIR]      prints the assets directory on stdout.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"           # the single pin (v1.37.2's source zip is refused by the proxy); staging modules follow as v0.<minor>.<patch>
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="${1:-$ROOT/bin/k8s}"
CACHE="${RCONN_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/rconn}/envtest/kube-$KUBE_VERSION"

log() { echo "envtest-assets: $*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then log "need root to apt-get install $*"; exit 1; fi
  if [ ! -f /tmp/.rconn-apt-updated ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && touch /tmp/.rconn-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

build_apiserver() {
  local out="$CACHE/kube-apiserver"
  [ -x "$out" ] && return 0
  local staging_version="v0.${KUBE_VERSION#v1.}"
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building kube-apiserver $KUBE_VERSION from the k8s.io/kubernetes module (a few CPU-minutes, once)"
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
  cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  local major="${KUBE_VERSION#v}"; major="${major%%.*}"
  local minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >&2 2>/dev/null || true)
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver) >&2
  mkdir -p "$CACHE"
  mv "$work/kube-apiserver" "$out"
}

ensure_etcd() {
  if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then
    log "installing Debian's etcd-server"
    apt_install etcd-server
  fi
  command -v etcd || echo /usr/bin/etcd
}

ensure_kubectl() {
  if ! command -v kubectl >/dev/null 2>&1; then
    log "installing Debian's kubernetes-client"
    apt_install kubernetes-client
  fi
  command -v kubectl
}

mkdir -p "$CACHE" "$BIN_DIR"
build_apiserver
etcd_path="$(ensure_etcd)"
kubectl_path="$(ensure_kubectl)"
# Debian's etcd service would hold 2379 and be of no use to tests: envtest runs its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then systemctl stop etcd || true; fi
ln -sf "$CACHE/kube-apiserver" "$BIN_DIR/kube-apiserver"
ln -sf "$etcd_path" "$BIN_DIR/etcd"
ln -sf "$kubectl_path" "$BIN_DIR/kubectl"
echo "$BIN_DIR"
