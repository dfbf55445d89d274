#!/usr/bin/env bash
# Copy the generated and shared manifests the Helm chart is built from into charts/rconn/files/,
# so that config/ stays their only source: the CRD (controller-gen), the manager's ClusterRole
# (controller-gen, from the +kubebuilder:rbac markers), the hand-written RBAC of config/rbac and
# the admission policy. The chart's templates read the rules and specs from these copies; `make
# manifests` runs this script and `make verify-generated` fails when a copy is stale, as does
# test/helm (TestChartRBACIsTheGeneratedRBAC). Never edit charts/rconn/files/{crd,rbac,admission}*.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
files="$ROOT/charts/rconn/files"
mkdir -p "$files/rbac"
cp "$ROOT/config/crd/bases/rconn.dev_redisconnections.yaml" "$files/crd.yaml"
cp "$ROOT/config/admission/policy.yaml" "$files/admission-policy.yaml"
for f in role leader_election_role metrics_auth_role metrics_reader_role redisconnection_editor_role redisconnection_viewer_role; do
  cp "$ROOT/config/rbac/$f.yaml" "$files/rbac/$f.yaml"
done
