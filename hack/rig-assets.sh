#!/usr/bin/env bash
# Provision the real control plane rig's extra binaries (see issue 12 and design.md, "The real
# control plane rig") with nothing but the Go module proxy. make test and make demo run it.
#   kube-controller-manager, kube-scheduler   built in ONE go build from the k8s.io/kubernetes
#                     module at the pin of hack/lib/kube-build.sh (the same throwaway go.mod as
#                     kube-apiserver), cached beside kube-apiserver
#   kwok              sigs.k8s.io/kwok/cmd/kwok at KWOK_VERSION, nodes and the pod lifecycle in
#                     place of kubelets
#   kwok-stages/      kwok's stage configs from its module: kustomize/stage/node/fast,
#                     node/heartbeat and pod/fast (kwok --config FILE for each)
#   coredns           the cluster DNS, a minimal CoreDNS without forward (hack/coredns-build.sh)
# The binaries land in a cache outside the work tree (survives a fresh checkout) and are linked
# into $BIN_DIR (default bin/rig). A second run is instant.
#
# Usage: hack/rig-assets.sh [BIN_DIR]      prints BIN_DIR on stdout; what it built and how long
#                                          it took on stderr.
set -euo pipefail

KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"           # the single kwok pin
KWOK_STAGES=(node/fast node/heartbeat pod/fast)  # under the module's kustomize/stage/
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib/kube-build.sh
. "$ROOT/hack/lib/kube-build.sh"                 # KUBE_VERSION (the single pin), KUBE_CACHE, kube_build
BIN_DIR="${1:-$ROOT/bin/rig}"
KWOK_CACHE="$RCONN_CACHE_ROOT/rig/kwok-$KWOK_VERSION"

log() { echo "rig-assets: $*" >&2; }

# timed WHAT CMD...: runs CMD and logs how long it took.
timed() {
  local what="$1"; shift
  local start=$SECONDS
  "$@"
  log "built $what in $((SECONDS - start)) s"
}

build_kube() {
  if [ -x "$KUBE_CACHE/kube-controller-manager" ] && [ -x "$KUBE_CACHE/kube-scheduler" ]; then
    log "cached: kube-controller-manager, kube-scheduler $KUBE_VERSION in $KUBE_CACHE"
    return 0
  fi
  log "building kube-controller-manager and kube-scheduler $KUBE_VERSION from the k8s.io/kubernetes module (a few CPU-minutes, once)"
  timed "kube-controller-manager + kube-scheduler $KUBE_VERSION" \
    kube_build "$KUBE_CACHE" k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
}

install_kwok() {
  local work; work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'; trap - RETURN" RETURN
  # Outside any module or workspace, so go install resolves kwok's own go.mod (it has no replace).
  (cd "$work" && GOWORK=off GOFLAGS= GOBIN="$work" CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION") >&2
  mkdir -p "$KWOK_CACHE"
  mv "$work/kwok" "$KWOK_CACHE/kwok"
}

build_kwok() {
  if [ -x "$KWOK_CACHE/kwok" ]; then
    log "cached: kwok $KWOK_VERSION in $KWOK_CACHE"
    return 0
  fi
  log "building kwok $KWOK_VERSION from the module proxy (a few CPU-minutes, once)"
  timed "kwok $KWOK_VERSION" install_kwok
}

extract_stages() {
  local dest="$KWOK_CACHE/stages"
  [ -d "$dest" ] && return 0
  local info dir
  info="$(cd "${TMPDIR:-/tmp}" && GOWORK=off GOFLAGS= go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION")"
  if grep -q '"Error"' <<<"$info"; then log "could not download sigs.k8s.io/kwok@$KWOK_VERSION: $info"; exit 1; fi
  dir="$(sed -n 's/.*"Dir": "\(.*\)",/\1/p' <<<"$info")"
  local tmp="$dest.tmp.$$" stage f n=0
  rm -rf "$tmp"; mkdir -p "$tmp"
  for stage in "${KWOK_STAGES[@]}"; do
    for f in "$dir/kustomize/stage/$stage"/*.yaml; do
      [ "$(basename "$f")" = kustomization.yaml ] && continue   # kustomize's, not a kwok config
      cp "$f" "$tmp/"; n=$((n + 1))
    done
  done
  if [ "$n" = 0 ]; then log "no stage configs under $dir/kustomize/stage"; exit 1; fi
  chmod -R u+w "$tmp"                            # the module cache is read-only
  mv "$tmp" "$dest"
  log "extracted $n kwok stage configs ($(cd "$dest" && echo *)) into $dest"
}

start=$SECONDS
mkdir -p "$BIN_DIR"
build_kube
build_kwok
extract_stages
"$ROOT/hack/coredns-build.sh" "$BIN_DIR" >/dev/null
ln -sf "$KUBE_CACHE/kube-controller-manager" "$BIN_DIR/kube-controller-manager"
ln -sf "$KUBE_CACHE/kube-scheduler" "$BIN_DIR/kube-scheduler"
ln -sf "$KWOK_CACHE/kwok" "$BIN_DIR/kwok"
if [ -d "$BIN_DIR/kwok-stages" ] && [ ! -L "$BIN_DIR/kwok-stages" ]; then
  log "$BIN_DIR/kwok-stages is a directory, not this script's link: move it away"; exit 1
fi
ln -sfn "$KWOK_CACHE/stages" "$BIN_DIR/kwok-stages"
log "ready in $BIN_DIR ($((SECONDS - start)) s)"
echo "$BIN_DIR"
