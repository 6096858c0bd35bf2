{{/* The release's object names: RELEASE-forge, or RELEASE if it says forge. */}}
{{- define "forge.fullname" -}}
{{- if contains "forge" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-forge" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "forge.labels" -}}
app.kubernetes.io/name: forge
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component (server or serve). */}}
{{- define "forge.selector" -}}
app.kubernetes.io/name: forge
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "forge.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The URL the replicas follow. The server's host is an env value of its
own (FORGE_SERVER_HOST) so that it is one whole name. */}}
{{- define "forge.serverURL" -}}
{{- if .Values.serve.serverURL -}}
{{ .Values.serve.serverURL }}
{{- else -}}
http://$(FORGE_SERVER_HOST):{{ .Values.server.port }}
{{- end -}}
{{- end -}}

{{/* Security settings of every pod and container: the image's user. */}}
{{- define "forge.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "forge.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The object store's settings (server.blob, server.s3), for the server
and for replicas that read model files from the bucket. */}}
{{- define "forge.blobEnv" -}}
- name: FORGE_BLOB
  value: {{ .Values.server.blob | quote }}
- name: FORGE_S3_ENDPOINT
  value: {{ .Values.server.s3.endpoint | quote }}
- name: FORGE_S3_REGION
  value: {{ .Values.server.s3.region | quote }}
- name: FORGE_S3_PATH_STYLE
  value: {{ .Values.server.s3.pathStyle | quote }}
{{- with .Values.server.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: AWS_ACCESS_KEY_ID}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: AWS_SECRET_ACCESS_KEY}
{{- end }}
{{- end -}}
