{{- define "webhooks.name" -}}{{ .Release.Name }}-webhooks{{- end -}}
