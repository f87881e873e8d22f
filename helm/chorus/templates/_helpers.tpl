{{/* Chart name. */}}
{{- define "chorus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: <release> when it already contains the chart name, else <release>-<chart>. */}}
{{- define "chorus.fullname" -}}
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

{{- define "chorus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one component: (dict "root" $ "component" "publishing-api"). */}}
{{- define "chorus.componentName" -}}
{{- printf "%s-%s" (include "chorus.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of the release: (dict "root" $). */}}
{{- define "chorus.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "chorus.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "publishing-api"). */}}
{{- define "chorus.selectorLabels" -}}
{{ include "chorus.releaseSelectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of one component: (dict "root" $ "component" "publishing-api" "service" "publishing"
"role" "api"); service and role are optional.
*/}}
{{- define "chorus.labels" -}}
{{ include "chorus.selectorLabels" . }}
app.kubernetes.io/part-of: chorus
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "chorus.chart" .root }}
{{- with .service }}
chorus/service: {{ . }}
{{- end }}
{{- with .role }}
chorus/role: {{ . }}
{{- end }}
{{- end }}

{{/* Labels of release-wide objects (ConfigMap, ServiceAccount, NetworkPolicy). */}}
{{- define "chorus.commonLabels" -}}
{{ include "chorus.releaseSelectorLabels" . }}
app.kubernetes.io/part-of: chorus
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "chorus.chart" .root }}
{{- end }}

{{/* Image of a service: (dict "root" $ "name" "publishing" "service" $svc). */}}
{{- define "chorus.image" -}}
{{- $img := .root.Values.image }}
{{- $own := .service.image | default dict }}
{{- $repo := $own.repository | default (printf "%s%s" $img.repositoryPrefix .name) }}
{{- $registry := $own.registry | default $img.registry }}
{{- $tag := $own.tag | default $img.tag | default .root.Chart.AppVersion }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry $repo $tag }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{/* A role's values merged over roleDefaults, as YAML: (dict "root" $ "role" $roleValues). */}}
{{- define "chorus.role" -}}
{{- $merged := mergeOverwrite (deepCopy .root.Values.roleDefaults) (deepCopy (.role | default dict)) }}
{{- toYaml $merged }}
{{- end }}

{{- define "chorus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chorus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Non-secret settings shared by every service, as a YAML map of strings. */}}
{{- define "chorus.commonEnvData" -}}
CHORUS_MODE: {{ .Values.mode | quote }}
CHORUS_KAFKA_BOOTSTRAP_SERVERS: {{ required "kafka.bootstrapServers is required" .Values.kafka.bootstrapServers | quote }}
CHORUS_TOPIC_PREFIX: {{ .Values.topicPrefix | quote }}
{{- with .Values.redis.url }}
CHORUS_REDIS_URL: {{ . | quote }}
{{- end }}
{{- with .Values.clickhouse.url }}
CHORUS_CLICKHOUSE_URL: {{ . | quote }}
{{- end }}
{{- with .Values.otel.endpoint }}
CHORUS_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
CHORUS_JWKS_URL: {{ include "chorus.jwksUrl" . | quote }}
{{- range $key, $value := .Values.extraEnv }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
envFrom of a service container: the shared Secret, then the service's own Secret (later
sources win on duplicate keys). (dict "root" $ "service" $svc "name" "publishing").
*/}}
{{- define "chorus.secretEnvFrom" -}}
{{- with .root.Values.secrets.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
- secretRef:
    name: {{ required (printf "services.%s.existingSecret is required" .name) .service.existingSecret }}
{{- end }}

{{/* Extra env of a service as an env list: (dict "service" $svc). */}}
{{- define "chorus.serviceEnv" -}}
{{- range $key, $value := .service.env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The common settings as an env list (hook Jobs run before the ConfigMap exists). */}}
{{- define "chorus.commonEnvList" -}}
{{- range $key, $value := (include "chorus.commonEnvData" . | fromYaml) }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Base URL of a service's api Service, or "" when the service is disabled or has no api Service:
(dict "root" $ "name" "publishing").
*/}}
{{- define "chorus.apiServiceUrl" -}}
{{- $svc := get .root.Values.services .name }}
{{- if and $svc $svc.enabled (hasKey ($svc.roles | default dict) "api") }}
{{- $role := include "chorus.role" (dict "root" .root "role" $svc.roles.api) | fromYaml }}
{{- if $role.service.enabled }}
{{- $host := include "chorus.componentName" (dict "root" .root "component" (printf "%s-api" .name)) }}
{{- printf "http://%s:%d" $host ($role.service.port | int) }}
{{- end }}
{{- end }}
{{- end }}

{{/* CHORUS_JWKS_URL: values.jwksUrl, else the gateway api Service of this release. */}}
{{- define "chorus.jwksUrl" -}}
{{- if .Values.jwksUrl }}
{{- .Values.jwksUrl }}
{{- else }}
{{- $gateway := include "chorus.apiServiceUrl" (dict "root" . "name" "gateway") }}
{{- if not $gateway }}
{{- fail "services.gateway (api role with a Service) is disabled: set jwksUrl to the gateway's JWKS" }}
{{- end }}
{{- printf "%s/.well-known/jwks.json" $gateway }}
{{- end }}
{{- end }}

{{/*
Gateway-only env entries: (dict "root" $ "name" "gateway" "service" $svc "upstreams" true).
The key-encryption key always (the migrate job needs it too); with upstreams, also the
trusted proxies and one CHORUS_GATEWAY_<SERVICE>_URL per upstream: every other enabled
service's api Service, overridden by services.gateway.upstreams.
*/}}
{{- define "chorus.gatewayEnv" -}}
{{- if eq .name "gateway" }}
{{- $kek := .service.keyEncryptionKey | default dict }}
- name: CHORUS_GATEWAY_KEY_ENCRYPTION_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $kek.secretName | default .service.existingSecret | required "services.gateway.keyEncryptionKey.secretName or existingSecret is required" }}
      key: {{ $kek.secretKey | default "CHORUS_GATEWAY_KEY_ENCRYPTION_KEY" }}
{{- if .upstreams }}
- name: CHORUS_GATEWAY_TRUSTED_PROXIES
  value: {{ .service.trustedProxies | default list | toJson | quote }}
{{- $urls := dict }}
{{- range $other, $_ := .root.Values.services }}
{{- if ne $other "gateway" }}
{{- with (include "chorus.apiServiceUrl" (dict "root" $.root "name" $other)) }}
{{- $_ := set $urls $other . }}
{{- end }}
{{- end }}
{{- end }}
{{- range $other, $url := mergeOverwrite $urls (.service.upstreams | default dict) }}
- name: {{ printf "CHORUS_GATEWAY_%s_URL" ($other | upper) }}
  value: {{ $url | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Analytics-only env entries: (dict "name" "analytics" "service" $svc). The ClickHouse URL (with
its password) by secretKeyRef: a missing key stops the pod from starting, where envFrom would
let the service fall back to the shared, credential-less CHORUS_CLICKHOUSE_URL.
*/}}
{{- define "chorus.analyticsEnv" -}}
{{- if eq .name "analytics" }}
{{- $url := .service.clickhouseUrl | default dict }}
- name: CHORUS_ANALYTICS_CLICKHOUSE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $url.secretName | default .service.existingSecret | required "services.analytics.clickhouseUrl.secretName or existingSecret is required" }}
      key: {{ $url.secretKey | default "CHORUS_ANALYTICS_CLICKHOUSE_URL" }}
{{- end }}
{{- end }}

{{/* Subcommand of a service's migrations hook Job: (dict "root" $ "service" $svc). */}}
{{- define "chorus.migrationsArgs" -}}
{{- $own := (.service.migrations | default dict).args }}
{{- toYaml ($own | default .root.Values.migrations.args | default (list "migrate")) }}
{{- end }}
