{{/* Object name prefix: the release name when it contains "rconn", else "<release>-rconn". */}}
{{- define "rconn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "rconn" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-rconn" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rconn.labels" -}}
app.kubernetes.io/name: redis-connection-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pod labels the Deployment selects, the Service targets and the docs' NetworkPolicy matches. */}}
{{- define "rconn.selectorLabels" -}}
control-plane: controller-manager
app.kubernetes.io/name: redis-connection-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rconn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-controller-manager" (include "rconn.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rconn.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The rules of a role file under files/rbac/ (copies of config/rbac, hack/chart-sync.sh).
*/}}
{{- define "rconn.rules" -}}
{{- $obj := .ctx.Files.Get (printf "files/rbac/%s.yaml" .file) | fromYaml -}}
{{- if not $obj.rules -}}{{- fail (printf "files/rbac/%s.yaml has no rules: run make manifests" .file) -}}{{- end -}}
{{- toYaml $obj.rules -}}
{{- end -}}

{{/*
The generated manager role's rules split by scope: "namespaced", "nodes" (the cluster-scoped rule
on Nodes) or "admission" (the cluster-scoped rules of admissionregistration.k8s.io: reading the
secret-references policy and its binding). Those are the only cluster-scoped resources the
markers grant; test/helm checks this split against the API server's discovery, so a new
cluster-scoped rule fails a test instead of landing in a Role.
*/}}
{{- define "rconn.managerRules" -}}
{{- $clusterScoped := list "nodes" "validatingadmissionpolicies" "validatingadmissionpolicybindings" -}}
{{- $obj := .ctx.Files.Get "files/rbac/role.yaml" | fromYaml -}}
{{- $out := list -}}
{{- range $obj.rules -}}
{{- $cluster := 0 -}}
{{- range .resources -}}{{- if has . $clusterScoped -}}{{- $cluster = add1 $cluster -}}{{- end -}}{{- end -}}
{{- if and (gt $cluster 0) (ne $cluster (len .resources)) -}}
{{- fail "files/rbac/role.yaml has a rule mixing cluster-scoped and namespaced resources" -}}
{{- end -}}
{{- if eq $.scope "namespaced" -}}
{{- if eq $cluster 0 -}}{{- $out = append $out . -}}{{- end -}}
{{- else if eq $.scope "nodes" -}}
{{- if has "nodes" .resources -}}{{- $out = append $out . -}}{{- end -}}
{{- else if eq $.scope "admission" -}}
{{- if and (gt $cluster 0) (has "admissionregistration.k8s.io" .apiGroups) -}}{{- $out = append $out . -}}{{- end -}}
{{- else -}}
{{- fail (printf "rconn.managerRules: unknown scope %s" $.scope) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The aggregate-to-* labels of a role file under files/rbac/. */}}
{{- define "rconn.aggregateLabels" -}}
{{- $obj := .ctx.Files.Get (printf "files/rbac/%s.yaml" .file) | fromYaml -}}
{{- range $k, $v := $obj.metadata.labels }}
{{- if hasPrefix "rbac.authorization.k8s.io/aggregate-to-" $k }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}
{{- end -}}
