#!/usr/bin/env bash
# Opt-in: build etcd v3.5 from the Go module proxy (go.etcd.io/etcd/server/v3) for envtest.
#
# Debian's etcd-server (3.4, what hack/envtest-assets.sh links by default) lacks
# RequestWatchProgress, so the API server refuses streaming lists (sendInitialEvents) and
# client-go's WatchListClient falls back to a full LIST. etcd >= 3.5 supports them. This script
# does not touch bin/k8s or the default etcd used by `make test`: it only builds and caches the
# binary and prints its path. To use it, make an assets directory of your own, e.g.
#
#   d=$(mktemp -d); for b in kube-apiserver kubectl; do ln -s "$PWD/bin/k8s/$b" "$d/$b"; done
#   ln -s "$(hack/etcd-from-source.sh)" "$d/etcd"; KUBEBUILDER_ASSETS=$d go test ./...
#
# Usage: hack/etcd-from-source.sh      prints the etcd binary's path on stdout (a second run is instant).
# ETCD_VERSION overrides the pin (any version of go.etcd.io/etcd/server/v3 the proxy serves).
set -euo pipefail

ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"   # the latest 3.5 the module proxy served when this was written
CACHE="${RCONN_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/rconn}/envtest/etcd-$ETCD_VERSION"
out="$CACHE/etcd"

log() { echo "etcd-from-source: $*" >&2; }

if [ ! -x "$out" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "building etcd $ETCD_VERSION from the go.etcd.io/etcd/server/v3 module (a CPU-minute or two, once)"
  cat > "$work/go.mod" <<EOF
module rconn.dev/etcd-build

go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat > "$work/main.go" <<'GO'
// The etcd command: what go.etcd.io/etcd/v3's main.go does, from the server module alone.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy >&2)
  # go mod tidy must not have moved the server module off the pin (a newer dependency could).
  got="$(cd "$work" && GOFLAGS=-mod=mod go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
  if [ "$got" != "$ETCD_VERSION" ]; then log "module graph resolved go.etcd.io/etcd/server/v3 to $got, not $ETCD_VERSION"; exit 1; fi
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/etcd" .) >&2
  mkdir -p "$CACHE"
  mv "$work/etcd" "$out"
fi
echo "$out"
