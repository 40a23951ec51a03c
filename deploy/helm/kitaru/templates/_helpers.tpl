{{- define "kitaru.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kitaru.labels" -}}
app.kubernetes.io/name: kitaru
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kitaru.selector" -}}
app.kubernetes.io/name: kitaru
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "kitaru.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kitaru.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kitaru.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- /* The Secret and key holding the database URL. */ -}}
{{- define "kitaru.databaseSecret" -}}
{{- if and (not .Values.postgresql.enabled) .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- printf "%s-database" (include "kitaru.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "kitaru.databaseSecretKey" -}}
{{- if and (not .Values.postgresql.enabled) .Values.database.existingSecret -}}
{{- .Values.database.existingSecretKey -}}
{{- else -}}
url
{{- end -}}
{{- end -}}

{{- /* A value kept across upgrades: the existing Secret's, else the given one, else random. */ -}}
{{- define "kitaru.keep" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $existing (index $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else if .value -}}
{{- .value -}}
{{- else -}}
{{- .random -}}
{{- end -}}
{{- end -}}

{{- define "kitaru.serverEnv" -}}
- name: KITARU_SERVER_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "kitaru.databaseSecret" . }}
      key: {{ include "kitaru.databaseSecretKey" . }}
- name: KITARU_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (printf "%s-secret-key" (include "kitaru.fullname" .)) .Values.server.secretKeySecret }}
      key: secret-key
- name: KITARU_SERVER_AUTH
  value: {{ ternary "1" "0" .Values.server.auth | quote }}
- name: KITARU_HOME
  value: /tmp/kitaru
{{- end -}}
