{{/*
Names and labels of every object in the chart (Helm's conventional helpers). Names are cut to 63
characters: label values and most object names must fit.
*/}}

{{/* The chart name: app.kubernetes.io/name. */}}
{{- define "get-distill.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: prefix of every object; the release name alone when it already contains the chart name. */}}
{{- define "get-distill.fullname" -}}
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

{{/* helm.sh/chart: name-version. */}}
{{- define "get-distill.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods (immutable once installed). component=operator keeps the
operator's selector off the stage and inference pods the operator itself labels. */}}
{{- define "get-distill.selectorLabels" -}}
app.kubernetes.io/name: {{ include "get-distill.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object the chart renders. */}}
{{- define "get-distill.labels" -}}
helm.sh/chart: {{ include "get-distill.chart" . }}
{{ include "get-distill.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: get-distill
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "get-distill.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "get-distill.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease name of the leader election. */}}
{{- define "get-distill.leaseName" -}}
{{- default (include "get-distill.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
An image reference from .Values.image.<key>: (own registry | shared registry)/repository, then
@digest when given, else :(own tag | shared tag | appVersion). Call with (list $ "datagen").
*/}}
{{- define "get-distill.image" -}}
{{- $root := index . 0 }}
{{- $img := index $root.Values.image (index . 1) }}
{{- $registry := default $root.Values.image.registry $img.registry | trimSuffix "/" }}
{{- $repo := ternary $img.repository (printf "%s/%s" $registry $img.repository) (empty $registry) }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default $root.Values.image.tag $img.tag | default $root.Chart.AppVersion) }}
{{- end }}
{{- end }}
