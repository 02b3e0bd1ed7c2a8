{{/* The release's full name: the release name if it already says siskin. */}}
{{- define "siskin.fullname" -}}
{{- if contains "siskin" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-siskin" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "siskin.selectorLabels" -}}
app.kubernetes.io/name: siskin
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "siskin.labels" -}}
{{ include "siskin.selectorLabels" . }}
app.kubernetes.io/part-of: siskin
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "siskin.serviceAccountName" -}}
{{- default (include "siskin.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The image by digest when one is given, else by tag. */}}
{{- define "siskin.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Lease the replicas elect a leader with (controller/leader.rs). */}}
{{- define "siskin.leaseName" -}}
{{- if .Values.controller.instanceId -}}
siskin-controller-{{ .Values.controller.instanceId }}
{{- else -}}
siskin-controller
{{- end -}}
{{- end -}}

{{- define "siskin.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{- define "siskin.namespaced" -}}
{{- if eq .Values.rbac.scope "namespaced" }}true{{ else if eq .Values.rbac.scope "cluster" }}{{ else }}{{ fail "rbac.scope is cluster or namespaced" }}{{ end -}}
{{- end -}}

{{/*
What the controller calls, as RBAC rules (manifests/rbac.yaml says where in
the code each one is). clusterScoped adds the cluster-scoped
ClusterAnalysisTemplates, which no Role can grant.
*/}}
{{- define "siskin.rules" -}}
- apiGroups: [siskin.io]
  resources: [rollouts]
  verbs: [list, watch, patch]
- apiGroups: [siskin.io]
  resources: [rollouts/status]
  verbs: [patch]
- apiGroups: [siskin.io]
  resources: [rollouts/finalizers]
  verbs: [update]
- apiGroups: [siskin.io]
  resources: [analysistemplates{{ if .clusterScoped }}, clusteranalysistemplates{{ end }}]
  verbs: [get]
# Templates' credentials, read by name only; a Secret without the label
# siskin.io/analysis-credentials=true is refused after the read.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, patch]
- apiGroups: [networking.istio.io]
  resources: [virtualservices]
  verbs: [get, list, watch, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
