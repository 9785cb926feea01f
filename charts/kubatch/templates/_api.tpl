{{/* The AWS Batch API server (api.enabled): names, labels, and the identities it may impersonate. */}}

{{- define "kubatch.apiName" -}}
{{- printf "%s-api" (include "kubatch.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubatch.apiServiceAccountName" -}}
{{- default (include "kubatch.apiName" .) .Values.api.serviceAccount.name }}
{{- end }}

{{- define "kubatch.apiSecretName" -}}
{{- printf "%s-tls" (include "kubatch.apiName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where the access-key Secrets are: api.keysNamespace, else the release namespace. */}}
{{- define "kubatch.apiKeysNamespace" -}}
{{- default .Release.Namespace .Values.api.keysNamespace }}
{{- end }}

{{/* Mount path of the API server's certificate (tls.crt, tls.key) in its container. */}}
{{- define "kubatch.apiCertDir" -}}
/etc/kubatch/api-tls
{{- end }}

{{/*
Selector labels of the API pods. Their name differs from the operator's (<name>-api), so that the
operator's Services, PodDisruptionBudget and anti-affinity, which select on name and instance,
never take an API pod.
*/}}
{{- define "kubatch.apiSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-api" (include "kubatch.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubatch.apiLabels" -}}
helm.sh/chart: {{ include "kubatch.chart" . }}
{{ include "kubatch.apiSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubatch
app.kubernetes.io/component: api
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
api.impersonate.serviceAccounts ("namespace/name") as a JSON object: namespace -> sorted names.
*/}}
{{- define "kubatch.apiServiceAccountsByNamespace" -}}
{{- $byNs := dict }}
{{- range $entry := .Values.api.impersonate.serviceAccounts }}
{{- $parts := splitList "/" $entry }}
{{- if or (ne (len $parts) 2) (not (index $parts 0)) (not (index $parts 1)) }}
{{- fail (printf "api.impersonate.serviceAccounts: %q is not namespace/name" $entry) }}
{{- end }}
{{- $ns := index $parts 0 }}
{{- $_ := set $byNs $ns (append (get $byNs $ns | default list) (index $parts 1) | uniq | sortAlpha) }}
{{- end }}
{{- toJson $byNs }}
{{- end }}

{{/*
The groups impersonated: those of api.impersonate.groups (users' groups), and for ServiceAccounts
the groups the API server gives them (system:serviceaccounts, system:serviceaccounts:<namespace>),
which the API server sends with Impersonate-Group. JSON list, sorted.
*/}}
{{- define "kubatch.apiImpersonatedGroups" -}}
{{- $groups := list }}
{{- range .Values.api.impersonate.groups }}
{{- $groups = append $groups . }}
{{- end }}
{{- $byNs := include "kubatch.apiServiceAccountsByNamespace" . | fromJson }}
{{- if $byNs }}
{{- $groups = append $groups "system:serviceaccounts" }}
{{- range $ns, $_ := $byNs }}
{{- $groups = append $groups (printf "system:serviceaccounts:%s" $ns) }}
{{- end }}
{{- end }}
{{- toJson ($groups | uniq | sortAlpha) }}
{{- end }}
