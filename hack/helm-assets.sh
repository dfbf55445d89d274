#!/usr/bin/env bash
# Provision the chart tests' helm with nothing but the Go module proxy: helm.sh/helm/v3/cmd/helm at
# HELM_VERSION (the single pin), built once into a cache outside the work tree (survives a fresh
# checkout) and linked as $BIN_DIR/helm (default bin/helm). A second run is instant.
#
# Usage: hack/helm-assets.sh [BIN_DIR]      prints the helm path on stdout; what it built and how
#                                           long it took on stderr.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="${1:-$ROOT/bin}"
CACHE="${RCONN_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/rconn}/helm-$HELM_VERSION"

log() { echo "helm-assets: $*" >&2; }

if [ ! -x "$CACHE/helm" ]; then
  log "building helm $HELM_VERSION from the module proxy (a few CPU-minutes, once)"
  start=$SECONDS
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # Outside any module or workspace, so go install resolves helm's own go.mod.
  (cd "$work" && GOWORK=off GOFLAGS= GOBIN="$work" CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2
  mkdir -p "$CACHE"
  mv "$work/helm" "$CACHE/helm"
  log "built helm $HELM_VERSION in $((SECONDS - start)) s"
fi
mkdir -p "$BIN_DIR"
ln -sf "$CACHE/helm" "$BIN_DIR/helm"
echo "$BIN_DIR/helm"
