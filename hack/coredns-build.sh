#!/usr/bin/env bash
# Build the rig's cluster DNS: a minimal CoreDNS at COREDNS_VERSION with nothing but the Go module
# proxy (see internal/world/rig/dns.go). A throwaway module in a temporary directory has a tiny
# main.go that imports coremain, core/dnsserver and only the plugins the rig's Corefile uses, sets
# dnsserver.Directives to them and calls coremain.Run() (CoreDNS's documented way of building with
# a custom plugin set). No forward, cache or other resolver-reaching plugin is compiled in: the
# binary can answer only from the Kubernetes API.
#   kubernetes   the cluster.local zone from Services and EndpointSlices
#   bind         listen on a loopback address only
#   errors, log  query and error lines on stdout (the test's failure messages)
# The binary lands in a cache outside the work tree (survives a fresh checkout) and is linked into
# BIN_DIR (default bin/rig). A second run is instant. Called by hack/rig-assets.sh.
#
# Usage: hack/coredns-build.sh [BIN_DIR]   prints BIN_DIR on stdout; what it built and how long it
#                                          took on stderr.
set -euo pipefail

COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"    # the single pin: go 1.26, k8s.io/client-go v0.37.1
COREDNS_PLUGINS=(bind errors log kubernetes)     # in dnsserver.Directives' (execution) order
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/kube-build.sh
. "$ROOT/hack/lib/kube-build.sh"                 # RCONN_CACHE_ROOT
BIN_DIR="${1:-$ROOT/bin/rig}"
COREDNS_CACHE="$RCONN_CACHE_ROOT/rig/coredns-$COREDNS_VERSION"

log() { echo "coredns-build: $*" >&2; }

# coredns_write_module WORK: the throwaway module (go.mod + main.go) in WORK.
coredns_write_module() {
  local work="$1" p
  {
    echo "module rconn.dev/coredns-build"
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo "require github.com/coredns/coredns $COREDNS_VERSION"
  } > "$work/go.mod"
  {
    echo "// Command coredns is CoreDNS $COREDNS_VERSION with only: ${COREDNS_PLUGINS[*]}."
    echo "package main"
    echo
    echo "import ("
    echo '	"github.com/coredns/coredns/core/dnsserver"'
    echo '	"github.com/coredns/coredns/coremain"'
    echo
    for p in "${COREDNS_PLUGINS[@]}"; do echo "	_ \"github.com/coredns/coredns/plugin/$p\""; done
    echo ")"
    echo
    echo "func init() {"
    echo "	dnsserver.Directives = []string{"
    for p in "${COREDNS_PLUGINS[@]}"; do echo "		\"$p\","; done
    echo "	}"
    echo "}"
    echo
    echo "func main() { coremain.Run() }"
  } > "$work/main.go"
}

coredns_build() {
  local work; work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'; trap - RETURN" RETURN
  coredns_write_module "$work"
  # Outside any workspace; -mod=mod so tidy and build may update the throwaway go.mod/go.sum.
  (cd "$work" && GOWORK=off GOFLAGS=-mod=mod go mod tidy) >&2
  (cd "$work" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w" -o "$work/coredns" .) >&2
  # Registered = the listed ones plus packages they import (metadata, transfer); a Corefile can
  # use only dnsserver.Directives. Never a resolver of its own.
  local plugins; plugins="$("$work/coredns" -plugins | grep -v '^$' | tr '\n' ' ')"
  log "plugins registered: $plugins(Corefile directives: ${COREDNS_PLUGINS[*]})"
  if grep -qwE 'forward|grpc|etcd|hosts|file|auto|secondary' <<<"$plugins"; then
    log "a plugin that answers from outside the Kubernetes API is compiled in: $plugins"; exit 1
  fi
  mkdir -p "$COREDNS_CACHE"
  mv "$work/coredns" "$COREDNS_CACHE/coredns"
}

start=$SECONDS
mkdir -p "$BIN_DIR"
# cached: the binary is there and has every plugin of COREDNS_PLUGINS (a changed list rebuilds).
cached() {
  [ -x "$COREDNS_CACHE/coredns" ] || return 1
  local have p; have="$("$COREDNS_CACHE/coredns" -plugins)" || return 1
  for p in "${COREDNS_PLUGINS[@]}"; do grep -qx "$p" <<<"$have" || return 1; done
}

if cached; then
  log "cached: coredns $COREDNS_VERSION in $COREDNS_CACHE"
else
  log "building coredns $COREDNS_VERSION (${COREDNS_PLUGINS[*]}) from the module proxy (a CPU-minute or two, once)"
  coredns_build
  log "built coredns $COREDNS_VERSION in $((SECONDS - start)) s"
fi
ln -sf "$COREDNS_CACHE/coredns" "$BIN_DIR/coredns"
log "ready in $BIN_DIR ($((SECONDS - start)) s)"
echo "$BIN_DIR"
