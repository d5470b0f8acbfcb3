{{/*
Names and labels, as the Kubernetes recommended labels and Helm's chart conventions describe.
*/}}

{{/* The chart name, or nameOverride; at most 63 characters (a DNS label). */}}
{{- define "ollama-mcp-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object name prefix: fullnameOverride, else "<release>-<chart>" (just the release name when it
already contains the chart name). Truncated to 63 characters for DNS labels.
*/}}
{{- define "ollama-mcp-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label ("+" is not allowed in label values). */}}
{{- define "ollama-mcp-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels every object of the chart carries. */}}
{{- define "ollama-mcp-operator.labels" -}}
helm.sh/chart: {{ include "ollama-mcp-operator.chart" . }}
{{ include "ollama-mcp-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ollama-mcp
{{- end }}

{{/* The labels selectors use: only name and instance, which never change on upgrade. */}}
{{- define "ollama-mcp-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ollama-mcp-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "ollama-mcp-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ollama-mcp-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the tag defaults to appVersion. */}}
{{- define "ollama-mcp-operator.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* The name of the metrics Service. */}}
{{- define "ollama-mcp-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "ollama-mcp-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Leader election is on when asked for, and always with more than one replica. */}}
{{- define "ollama-mcp-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
The namespaced permissions of the operator: exactly the API calls it makes (operator/tests/rbac.rs
derives them and compares with manifests/install/rbac.yaml; tests/tests/chart.rs holds these rules
equal to that file). It reads Secrets only to see that they exist and to hash their
resourceVersion (metadata-only watches); RBAC cannot grant metadata alone, so get/list/watch are
needed, never create or update. Pods are only listed and watched: readiness and failures for the
status, and the Ready pod's IP for the bot's GET /status.
*/}}
{{- define "ollama-mcp-operator.namespacedRules" -}}
- apiGroups: ["ollama-mcp.io"]
  resources: ["botdeployments"]
  verbs: ["list", "watch"]
- apiGroups: ["ollama-mcp.io"]
  resources: ["botdeployments/status"]
  verbs: ["patch"]
# Always applied, never deleted by the operator (garbage collection removes them).
- apiGroups: [""]
  resources: ["configmaps", "serviceaccounts"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch"]
# Switched off by the spec: looked up (is it ours?) and deleted.
- apiGroups: [""]
  resources: ["services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "create", "patch", "delete"]
# Metadata only: the operator never reads a Secret's data.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
