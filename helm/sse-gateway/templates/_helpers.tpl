{{/* Names, truncated to the 63 characters Kubernetes allows. */}}
{{- define "sse-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sse-gateway.fullname" -}}
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

{{/* The metrics Service's name: the full name with room kept for the suffix. */}}
{{- define "sse-gateway.metricsServiceName" -}}
{{- printf "%s-metrics" (include "sse-gateway.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "sse-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "sse-gateway.labels" -}}
helm.sh/chart: {{ include "sse-gateway.chart" . }}
{{ include "sse-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ include "sse-gateway.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The pods' identity: the Deployment's selector (immutable), so never more than these two. */}}
{{- define "sse-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sse-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sse-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sse-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sse-gateway.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "sse-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "sse-gateway.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The Secret the chart creates for jwt.secret, jwt.publicKey and redis.url. */}}
{{- define "sse-gateway.secretName" -}}
{{- include "sse-gateway.fullname" . }}
{{- end }}

{{- define "sse-gateway.createSecret" -}}
{{- if or .Values.jwt.secret .Values.jwt.publicKey .Values.redis.url }}true{{ end }}
{{- end }}

{{/* Where a PEM public key is mounted; GATEWAY_JWT_PUBLIC_KEY names the file. */}}
{{- define "sse-gateway.jwtKeyDir" -}}/etc/sse-gateway/jwt{{- end }}

{{- define "sse-gateway.hasJwtKey" -}}
{{- if or .Values.jwt.secret .Values.jwt.publicKey .Values.jwt.existingSecret.name .Values.jwt.jwksUrls }}true{{ end }}
{{- end }}

{{- define "sse-gateway.hasRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret.name }}true{{ end }}
{{- end }}

{{- define "sse-gateway.hasPublicKey" -}}
{{- if or .Values.jwt.publicKey .Values.jwt.existingSecret.publicKeyKey }}true{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: it counts from the start of the preStop hook, so it must cover the
sleep, the gateway's own grace, and a margin for Redis QUIT and the telemetry flush.
*/}}
{{- define "sse-gateway.terminationGracePeriodSeconds" -}}
{{- $d := .Values.drain }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $d.preStopSleepSeconds $d.shutdownGraceSeconds $d.marginSeconds }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* The environment variables the chart sets itself; extraEnv may not repeat them. */}}
{{- define "sse-gateway.managedEnv" -}}
GATEWAY_LISTEN_ADDR GATEWAY_METRICS_ADDR GATEWAY_SHUTDOWN_GRACE GATEWAY_LOG_FORMAT RUST_LOG
GATEWAY_JWT_SECRET GATEWAY_JWT_PUBLIC_KEY GATEWAY_JWT_ALGORITHMS GATEWAY_JWT_ISSUER GATEWAY_JWT_AUDIENCE
GATEWAY_JWT_LEEWAY GATEWAY_AUTH_COOKIE GATEWAY_JWT_JWKS_URL GATEWAY_JWT_JWKS_MIN_REFRESH GATEWAY_JWT_JWKS_TIMEOUT
GATEWAY_TICKET_TTL
GATEWAY_REDIS_URL GATEWAY_REDIS_PREFIX GATEWAY_REDIS_RECONCILE
GATEWAY_HEARTBEAT GATEWAY_RETRY GATEWAY_RETRY_JITTER GATEWAY_WRITE_TIMEOUT GATEWAY_HEADER_TIMEOUT
GATEWAY_KEEPALIVE_TIMEOUT GATEWAY_CLIENT_QUEUE GATEWAY_REFRESH_WINDOW GATEWAY_REVOCATION_TTL
GATEWAY_MAX_TOPICS GATEWAY_MAX_BODY_BYTES GATEWAY_MAX_BATCH GATEWAY_MAX_CONNECTIONS
GATEWAY_MAX_CONNECTIONS_PER_SUBJECT GATEWAY_HISTORY_MAX_LEN GATEWAY_HISTORY_MAX_AGE
GATEWAY_CLOCK_INTERVAL GATEWAY_CLOCK_TOPIC GATEWAY_CORS_ORIGINS GATEWAY_PUBLIC_URL
GATEWAY_MERCURE GATEWAY_MERCURE_ANONYMOUS GATEWAY_MERCURE_RESOURCE GATEWAY_MERCURE_ISSUERS
GATEWAY_MERCURE_SUBSCRIPTIONS
OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SERVICE_NAME
{{- end }}

{{/*
Checks across values that the schema cannot express. Each failure names the values to change.
*/}}
{{- define "sse-gateway.validate" -}}
{{- $v := .Values }}
{{- $jwtSources := 0 }}
{{- range (list $v.jwt.secret $v.jwt.publicKey $v.jwt.existingSecret.name) }}{{ if . }}{{ $jwtSources = add1 $jwtSources }}{{ end }}{{ end }}
{{- if gt $jwtSources 1 }}
{{- fail "jwt: set only one of jwt.secret, jwt.publicKey and jwt.existingSecret.name" }}
{{- end }}
{{- if and $v.jwt.secret (lt (len $v.jwt.secret) 32) }}
{{- fail "jwt.secret: must be at least 32 bytes (the gateway refuses shorter HMAC secrets)" }}
{{- end }}
{{- if and $v.jwt.publicKey (not (hasPrefix "-----BEGIN" (trim $v.jwt.publicKey))) }}
{{- fail "jwt.publicKey: expected PEM text (-----BEGIN PUBLIC KEY----- …)" }}
{{- end }}
{{- with $v.jwt.existingSecret }}
{{- if and .name (eq (len (compact (list .secretKey .publicKeyKey))) 0) }}
{{- fail "jwt.existingSecret: set secretKey (an HMAC secret) or publicKeyKey (a PEM public key)" }}
{{- end }}
{{- if and .secretKey .publicKeyKey }}
{{- fail "jwt.existingSecret: set secretKey or publicKeyKey, not both" }}
{{- end }}
{{- if and (not .name) (or .secretKey .publicKeyKey) }}
{{- fail "jwt.existingSecret: secretKey/publicKeyKey given without name" }}
{{- end }}
{{- end }}
{{- if and $v.redis.url $v.redis.existingSecret.name }}
{{- fail "redis: set redis.url or redis.existingSecret.name, not both" }}
{{- end }}
{{- if or $v.autoscaling.enabled (gt (int $v.replicaCount) 1) }}
{{- if not (include "sse-gateway.hasRedis" .) }}
{{- fail "several replicas need a shared Redis: set redis.url or redis.existingSecret.name (the embedded bus is one node only)" }}
{{- end }}
{{- if not (include "sse-gateway.hasJwtKey" .) }}
{{- fail "several replicas need one token key: set jwt.secret, jwt.publicKey, jwt.existingSecret or jwt.jwksUrls (without one every pod makes its own demo key)" }}
{{- end }}
{{- end }}
{{- $d := $v.drain }}
{{- $needed := add $d.preStopSleepSeconds $d.shutdownGraceSeconds 1 }}
{{- if and (not (kindIs "invalid" $v.terminationGracePeriodSeconds)) (lt (int $v.terminationGracePeriodSeconds) (int $needed)) }}
{{- fail (printf "terminationGracePeriodSeconds: %v is too short; the preStop sleep (%v s) and the gateway's grace (%v s) need at least %v" $v.terminationGracePeriodSeconds $d.preStopSleepSeconds $d.shutdownGraceSeconds $needed) }}
{{- end }}
{{- with $v.mercure }}
{{- $on := and .protocol (ne .protocol "off") }}
{{- if and (not $on) (or .anonymous .subscriptions .resource .issuers) }}
{{- fail "mercure: anonymous, subscriptions, resource and issuers need mercure.protocol \"0.x\" or \"1.0\" (the gateway refuses them with the hub off)" }}
{{- end }}
{{- if and (eq .protocol "0.x") (or .subscriptions .resource .issuers) }}
{{- fail "mercure: subscriptions, resource and issuers are for mercure.protocol \"1.0\" only" }}
{{- end }}
{{- if eq .protocol "1.0" }}
{{- if not .issuers }}
{{- fail "mercure.issuers: required with mercure.protocol \"1.0\" (the issuers whose tokens the hub accepts)" }}
{{- end }}
{{- if and (not .resource) (not $v.config.publicUrl) }}
{{- fail "mercure.resource: required with mercure.protocol \"1.0\" when config.publicUrl is empty (the audience tokens must name, e.g. https://sse.example.com/.well-known/mercure)" }}
{{- end }}
{{- end }}
{{- end }}
{{- $managed := splitList " " (include "sse-gateway.managedEnv" . | replace "\n" " ") }}
{{- range $v.extraEnv }}
{{- if has .name $managed }}
{{- fail (printf "extraEnv: %s is set by the chart; use its value in values.yaml instead (see the chart README)" .name) }}
{{- end }}
{{- end }}
{{- with $v.autoscaling }}
{{- if .enabled }}
{{- if gt (int .minReplicas) (int .maxReplicas) }}
{{- fail "autoscaling: minReplicas is above maxReplicas" }}
{{- end }}
{{- $requests := default dict $v.resources.requests }}
{{- if and (not (kindIs "invalid" .targetCPUUtilizationPercentage)) (not $requests.cpu) }}
{{- fail "autoscaling.targetCPUUtilizationPercentage needs resources.requests.cpu (utilization is a share of the request)" }}
{{- end }}
{{- if and (not (kindIs "invalid" .targetMemoryUtilizationPercentage)) (not $requests.memory) }}
{{- fail "autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory (utilization is a share of the request)" }}
{{- end }}
{{- if and (kindIs "invalid" .targetCPUUtilizationPercentage) (kindIs "invalid" .targetMemoryUtilizationPercentage) (not .extraMetrics) }}
{{- fail "autoscaling: no metric; set targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or extraMetrics" }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.podDisruptionBudget }}
{{- if and .enabled (kindIs "invalid" .maxUnavailable) (kindIs "invalid" .minAvailable) }}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable" }}
{{- end }}
{{- end }}
{{- if and $v.metrics.separatePort (eq (int $v.metrics.port) (int $v.containerPort)) }}
{{- fail "metrics.port: must differ from containerPort" }}
{{- end }}
{{- end }}
