#!/usr/bin/env bash
# Render, deploy or undeploy rconn with kustomize (kubectl's built-in one; no extra download).
#
#   IMG=registry.example.com/rconn:v0.1.0 hack/deploy.sh render     # print the manifests
#   IMG=registry.example.com/rconn:v0.1.0 hack/deploy.sh deploy     # kubectl apply them
#   hack/deploy.sh undeploy                                          # kubectl delete them
#
# config/default is the base: namespace rconn-system, CRD, RBAC, the manager Deployment (leader
# election on, non-root, read-only root filesystem, probes, requests/limits) and the metrics
# Service. IMG replaces the "controller" image; KUBECTL picks the kubectl binary; WAIT=false makes
# undeploy return without waiting for the deletions to finish. OVERLAY=config/namespaced renders
# that overlay instead (the manager watches only the namespaces it lists and holds Roles there).
set -euo pipefail
action=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
kubectl=${KUBECTL:-kubectl}

case "$action" in
  render|deploy) [ -n "${IMG:-}" ] || { echo "IMG is required, e.g. make $action IMG=registry.example.com/rconn:v0.1.0" >&2; exit 2; } ;;
  undeploy) IMG=${IMG:-controller:latest} ;;
  *) echo "usage: hack/deploy.sh render|deploy|undeploy" >&2; exit 2 ;;
esac

# IMG = name[:tag] or name@digest; a ':' after the last '/' starts the tag.
name=$IMG; tag=""; digest=""
if [[ $IMG == *@* ]]; then
  name=${IMG%@*}; digest=${IMG#*@}
elif [[ ${IMG##*/} == *:* ]]; then
  name=${IMG%:*}; tag=${IMG##*:}
fi

# kustomize accepts only relative bases: the overlay lives under bin/.
mkdir -p "$root/bin"
overlay=$(mktemp -d "$root/bin/deploy.XXXXXX")
trap 'rm -rf "$overlay"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "- ../../${OVERLAY:-config/default}"
  echo "images:"
  echo "- name: controller"
  echo "  newName: $name"
  if [ -n "$digest" ]; then echo "  digest: $digest"; else echo "  newTag: ${tag:-latest}"; fi
} > "$overlay/kustomization.yaml"

case "$action" in
  render) "$kubectl" kustomize "$overlay" ;;
  deploy) "$kubectl" kustomize "$overlay" | "$kubectl" apply --server-side --field-manager=rconn-deploy -f - ;;
  undeploy) "$kubectl" kustomize "$overlay" | "$kubectl" delete --ignore-not-found --wait="${WAIT:-true}" -f - ;;
esac
