{{/*
Named templates of the nhi-exporter chart.

This chart is rendered in CI by tests/deploy/render_chart.py, which implements
only a subset of Helm's template language (listed in that file's header).
Keep every template within that subset.
*/}}

{{/* Chart name, or nameOverride. */}}
{{- define "nhi-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: fullnameOverride, or RELEASE-NAME (RELEASE alone when it already contains NAME). */}}
{{- define "nhi-exporter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* helm.sh/chart label value. */}}
{{- define "nhi-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the exporter pod. */}}
{{- define "nhi-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nhi-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "nhi-exporter.labels" -}}
helm.sh/chart: {{ include "nhi-exporter.chart" . }}
{{ include "nhi-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nhi-exporter
{{- end -}}

{{/* Name of the ServiceAccount the pod runs as. */}}
{{- define "nhi-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nhi-exporter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret with the credential files ("" when there is none). */}}
{{- define "nhi-exporter.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else if .Values.secrets.create -}}
{{- include "nhi-exporter.fullname" . -}}
{{- end -}}
{{- end -}}

{{/*
The exporter configuration file (also hashed into checksum/config):
.Values.config verbatim with store.backend sqlite; with postgres, `state`
points at the files of the "store" volume (deployment.yaml) and
.Values.config.state is not used.
*/}}
{{- define "nhi-exporter.config" -}}
{{- if eq .Values.store.backend "postgres" -}}
state:
  backend: postgres
  url_file: /etc/nhi-exporter/store/url
  hash_key_file: /etc/nhi-exporter/store/hmac.key
{{- with omit .Values.config "state" }}
{{ toYaml . }}
{{- end }}
{{- else -}}
{{- toYaml .Values.config -}}
{{- end -}}
{{- end -}}
