{{/*
The name of every object: "vault-csi", the plain manifests' name, unless
fullnameOverride is set.
*/}}
{{- define "vault-csi.fullname" -}}
{{- default "vault-csi" .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Helm's bookkeeping labels, added next to the labels the plain manifests
carry (app.kubernetes.io/name and component, written out in each template).
*/}}
{{- define "vault-csi.helmLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
