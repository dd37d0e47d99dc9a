{{/* The full name of a release's object: <release>-<chart>, cut to 63 characters. */}}
{{- define "capstan-common.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The upgrade guard of Bitnami's common.errors.upgrade.passwords.empty: on upgrade, every listed
password value must be given again; otherwise fail with one line per missing value.
Usage: include "capstan-common.passwords.required" (dict "required" (list (dict "value" .Values.auth.password "path" "auth.password")) "context" $)
*/}}
{{- define "capstan-common.passwords.required" -}}
{{- if .context.Release.IsUpgrade -}}
{{- $missing := list -}}
{{- range .required -}}
{{- if empty .value -}}
{{- $missing = append $missing (printf "    '%s' must not be empty, please add '--set %s=$PASSWORD' to the command. To get the current value:\n\n        export PASSWORD=$(kubectl get secret --namespace %s %s -o jsonpath=\"{.data.password}\" | base64 -d)\n" .path .path $.context.Release.Namespace (include "capstan-common.fullname" $.context)) -}}
{{- end -}}
{{- end -}}
{{- if $missing -}}
{{- printf "\nPASSWORDS ERROR: You must provide your current passwords when upgrading the release.\n                 Note that even after reinstallation, old credentials may be needed as they may be kept in persistent volume claims.\n                 Further information can be obtained at https://docs.bitnami.com/general/how-to/troubleshoot-helm-chart-issues/#credential-errors-while-upgrading-chart-releases\n\n%s" (join "\n" $missing) | fail -}}
{{- end -}}
{{- end -}}
{{- end -}}
