#!/usr/bin/env bash
# Build a release's artifacts (make release VERSION=vX.Y.Z runs this):
#   DIST/install.yaml          config/default rendered with the image pinned to IMAGE_REPO:VERSION
#                              (CRD, RBAC, admission policy, manager, metrics Service)
#   DIST/rconn-X.Y.Z.tgz       the Helm chart, version X.Y.Z, appVersion VERSION, same image
#   DIST/manager-linux-<arch>  static manager binaries with VERSION stamped in (manager --version)
#   DIST/SHA256SUMS
# The image itself is `make docker-build IMG=IMAGE_REPO:VERSION VERSION=VERSION` plus a push, on a
# machine with a container engine.
#
# Usage: hack/release.sh VERSION DIST IMAGE_REPO     (HELM, KUBECTL, RELEASE_ARCHES from the environment)
set -euo pipefail
version="${1:?usage: hack/release.sh VERSION DIST IMAGE_REPO}"
dist="${2:?usage: hack/release.sh VERSION DIST IMAGE_REPO}"
repo="${3:?usage: hack/release.sh VERSION DIST IMAGE_REPO}"
root="$(cd "$(dirname "$0")/.." && pwd)"
helm="${HELM:-$root/bin/helm}"
arches="${RELEASE_ARCHES:-amd64}"

log() { echo "release: $*" >&2; }

# vX.Y.Z with an optional pre-release (vX.Y.Z-rc.1): Helm needs SemVer 2 for the chart version.
if ! [[ $version =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?$ ]]; then
  log "VERSION $version is not vX.Y.Z (or vX.Y.Z-pre.N)"; exit 2
fi
chart_version="${version#v}"
if ! grep -q "^## \[$chart_version\]" "$root/CHANGELOG.md" && ! grep -q "^## \[Unreleased\]" "$root/CHANGELOG.md"; then
  log "CHANGELOG.md has neither a [$chart_version] nor an [Unreleased] section"; exit 1
fi
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"

log "rendering $dist/install.yaml (image $repo:$version)"
IMG="$repo:$version" KUBECTL="${KUBECTL:-kubectl}" "$root/hack/deploy.sh" render > "$dist/install.yaml"

log "packaging the chart $chart_version"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/charts/rconn" "$work/rconn"
# The chart's default image repository becomes IMAGE_REPO; its tag defaults to appVersion.
default_repo="$(sed -n 's/^  repository: //p' "$work/rconn/values.yaml" | head -1)"
if [ -z "$default_repo" ]; then log "no image.repository in charts/rconn/values.yaml"; exit 1; fi
sed -i "0,/^  repository: .*/s##  repository: $repo#" "$work/rconn/values.yaml"
"$helm" lint --strict "$work/rconn" >/dev/null
"$helm" package "$work/rconn" --version "$chart_version" --app-version "$version" -d "$dist" >&2

for arch in $arches; do
  log "building manager-linux-$arch"
  (cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath \
    -ldflags "-s -w -X main.version=$version" -o "$dist/manager-linux-$arch" .)
done

(cd "$dist" && sha256sum install.yaml "rconn-$chart_version.tgz" manager-linux-* > SHA256SUMS)
log "done: $(cd "$dist" && echo install.yaml "rconn-$chart_version.tgz" manager-linux-* SHA256SUMS)"
