{{/* Name of the chart, overridable. */}}
{{- define "kubatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name when it already contains the chart name. */}}
{{- define "kubatch.fullname" -}}
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

{{- define "kubatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubatch.labels" -}}
helm.sh/chart: {{ include "kubatch.chart" . }}
{{ include "kubatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubatch
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kubatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubatch.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "kubatch.webhookServiceName" -}}
{{- printf "%s-webhook" (include "kubatch.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubatch.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "kubatch.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubatch.webhookCertName" -}}
{{- printf "%s-webhook" (include "kubatch.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Mount path of the webhook's serving certificate (tls.crt, tls.key) in the container. */}}
{{- define "kubatch.webhookCertDir" -}}
/etc/kubatch/webhook-tls
{{- end }}
