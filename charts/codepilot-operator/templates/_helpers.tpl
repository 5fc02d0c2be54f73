{{/* Names and labels shared by every template. */}}

{{- define "codepilot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name; truncated so that suffixed names stay DNS labels. */}}
{{- define "codepilot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "codepilot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "codepilot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "codepilot.labels" -}}
{{ include "codepilot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: codepilot
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The CRD is cluster-wide and shared by every release: no instance label, which would claim it for one. */}}
{{- define "codepilot.crdLabels" -}}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "codepilot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "codepilot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* [registry/]repository then @digest or :tag; a parent chart's global.imageRegistry points every
subchart at one mirror, the chart's own image.registry wins over it. */}}
{{- define "codepilot.image" -}}
{{- $registry := .Values.image.registry | default (dig "imageRegistry" "" (.Values.global | default dict)) -}}
{{- $repository := ternary (printf "%s/%s" $registry .Values.image.repository) .Values.image.repository (ne $registry "") -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The operator's platform settings (templates/platform.yaml); its checksum rolls the operator. */}}
{{- define "codepilot.platform" -}}
# The weight fetcher of every CodePilot runs the operator's own image.
fetcherImage: {{ include "codepilot.image" . | quote }}
allowedFetcherImages: {{ .Values.policy.fetcherImages | default list | toJson }}
allowedServiceAccounts: {{ .Values.policy.serviceAccounts | default list | toJson }}
allowedPriorityClasses: {{ .Values.policy.priorityClasses | default list | toJson }}
secretNames: {{ .Values.policy.secretNames | default list | toJson }}
# What every CodePilot gets unless it sets the field itself (empty values are left out: unset).
{{- $source := dict }}
{{- range $key, $value := (.Values.defaults.source | default dict) }}
{{- if $value }}{{- $_ := set $source $key $value }}{{- end }}
{{- end }}
{{- $defaults := dict "source" $source }}
{{- range $key, $value := (omit (.Values.defaults | default dict) "source") }}
{{- if $value }}{{- $_ := set $defaults $key $value }}{{- end }}
{{- end }}
defaults: {{ toJson $defaults }}
{{- end -}}

{{/*
The operator's permissions, split by scope. They must equal the table in
operator/codepilot_operator/clients/permissions.py (tests/integration/test_chart.py checks it), with one
kopf rule: peering uses ClusterKopfPeering when watching all namespaces and KopfPeering when watching a list.
*/}}
{{- define "codepilot.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- if and .Values.peering.enabled (not .Values.operator.watchNamespaces) }}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- if eq .Values.metrics.auth "kubernetes" }}
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}
{{- end -}}

{{- define "codepilot.namespacedRules" -}}
- apiGroups: ["serving.codepilot.dev"]
  resources: ["codepilots"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["serving.codepilot.dev"]
  resources: ["codepilots/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors", "prometheusrules"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
  {{- with .Values.policy.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if and .Values.peering.enabled .Values.operator.watchNamespaces }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}
