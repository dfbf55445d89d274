#!/usr/bin/env bash
# Provision the envtest control plane with nothing but the Go module proxy and Debian's packages:
#   kube-apiserver  built from the k8s.io/kubernetes module (KUBE_VERSION, pinned in hack/lib/kube-build.sh only)
#   etcd            Debian's etcd-server
#   kubectl         the one on PATH, else Debian's kubernetes-client
# The binaries land in a cache outside the work tree (survives a fresh checkout) and are linked
# into $BIN_DIR (default bin/k8s) where KUBEBUILDER_ASSETS points. A second run is instant.
#
# Usage: hack/envtest-assets.sh [BIN_DIR]      prints the assets directory on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/kube-build.sh
. "$ROOT/hack/lib/kube-build.sh"                 # KUBE_VERSION (the single pin), KUBE_CACHE, kube_build
BIN_DIR="${1:-$ROOT/bin/k8s}"
CACHE="$KUBE_CACHE"

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
  # The rig (make test, make demo) needs kube-controller-manager and kube-scheduler from the same
  # module: one go build of all three costs little more than kube-apiserver alone, while three
  # separate builds would link the shared packages three times.
  log "building kube-apiserver, kube-controller-manager and kube-scheduler $KUBE_VERSION from the k8s.io/kubernetes module (a few CPU-minutes, once)"
  kube_build "$CACHE" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
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
