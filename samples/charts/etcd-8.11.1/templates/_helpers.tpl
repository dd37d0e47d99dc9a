{{/* Chart name, truncated to the 63 characters Kubernetes allows in a label. */}}
{{- define "etcd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name. The release name is used as-is when it already contains the chart name.
*/}}
{{- define "etcd.fullname" -}}
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

{{/* Chart name and version, as used by the helm.sh/chart label. */}}
{{- define "etcd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the etcd pods. Must never change between chart versions. */}}
{{- define "etcd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "etcd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: etcd
{{- end -}}

{{/* Labels for every object. */}}
{{- define "etcd.labels" -}}
{{ include "etcd.selectorLabels" . }}
helm.sh/chart: {{ include "etcd.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* registry/repository:tag, or @digest when a digest is set. */}}
{{- define "etcd.image" -}}
{{- $img := .Values.image -}}
{{- $repo := ternary (printf "%s/%s" $img.registry $img.repository) $img.repository (ne (toString $img.registry) "") -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "etcd.headlessServiceName" -}}
{{- printf "%s-headless" (include "etcd.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "etcd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "etcd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secret with the root password, and the key inside it. */}}
{{- define "etcd.secretName" -}}
{{- default (include "etcd.fullname" .) .Values.auth.rbac.existingSecret -}}
{{- end -}}

{{- define "etcd.secretPasswordKey" -}}
{{- if and .Values.auth.rbac.existingSecret .Values.auth.rbac.existingSecretPasswordKey -}}
{{- .Values.auth.rbac.existingSecretPasswordKey -}}
{{- else -}}
etcd-root-password
{{- end -}}
{{- end -}}

{{- define "etcd.createSecret" -}}
{{- if and .Values.auth.rbac.create (not .Values.auth.rbac.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* Secret with the JWT signing key. */}}
{{- define "etcd.tokenSecretName" -}}
{{- default (printf "%s-jwt-token" (include "etcd.fullname" .)) .Values.auth.token.privateKey.existingSecret -}}
{{- end -}}

{{/* Private key algorithm for genPrivateKey that matches auth.token.signMethod. */}}
{{- define "etcd.tokenKeyType" -}}
{{- $m := .Values.auth.token.signMethod -}}
{{- if or (hasPrefix "RS" $m) (hasPrefix "PS" $m) -}}rsa
{{- else if eq $m "EdDSA" -}}ed25519
{{- else -}}ecdsa
{{- end -}}
{{- end -}}

{{- define "etcd.createTokenSecret" -}}
{{- if and .Values.auth.token.enabled (eq .Values.auth.token.type "jwt") (not .Values.auth.token.privateKey.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/*
Value of a key in an existing Secret of this release (base64 as stored), or "" if there is none.
Keeps generated passwords and keys stable across upgrades.
*/}}
{{- define "etcd.existingSecretValue" -}}
{{- $secret := lookup "v1" "Secret" .context.Release.Namespace .name -}}
{{- if and $secret $secret.data -}}
{{- index $secret.data .key | default "" -}}
{{- end -}}
{{- end -}}

{{/* Comma-separated peer URLs of all members, for ETCD_INITIAL_CLUSTER. */}}
{{- define "etcd.initialCluster" -}}
{{- $fullname := include "etcd.fullname" . -}}
{{- $headless := include "etcd.headlessServiceName" . -}}
{{- $members := list -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- $members = append $members (printf "%s-%d=http://%s-%d.%s.%s.svc.%s:%d" $fullname $i $fullname $i $headless $.Release.Namespace $.Values.clusterDomain (int $.Values.containerPorts.peer)) -}}
{{- end -}}
{{- join "," $members -}}
{{- end -}}
