{{/* Chart name, overridable. */}}
{{- define "kwex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release already holds it. */}}
{{- define "kwex.fullname" -}}
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

{{- define "kwex.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kwex.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kwex.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kwex.labels" -}}
helm.sh/chart: {{ include "kwex.chart" . }}
{{ include "kwex.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kwex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kwex.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kwex.filtersConfigMap" -}}
{{- default (printf "%s-filters" (include "kwex.fullname" .)) .Values.filters.existingConfigMap }}
{{- end }}

{{/* Where the chart mounts the filters, the spool and the compiled-filter cache. */}}
{{- define "kwex.filtersDir" -}}/etc/kwex/filters{{- end }}
{{- define "kwex.spoolDir" -}}/var/lib/kwex/spool{{- end }}
{{- define "kwex.filterCacheDir" -}}/var/lib/kwex/filter-cache{{- end }}

{{/*
The chart's pipeline file, as text: filters.pipeline (a map, or YAML text), else
the chart's filters/pipeline.yaml, else nothing.
*/}}
{{- define "kwex.pipelineFile" -}}
{{- $fromValues := .Values.filters.pipeline }}
{{- $fromFile := .Files.Get "filters/pipeline.yaml" }}
{{- if and $fromValues $fromFile }}
{{- fail "filters.pipeline and the chart's filters/pipeline.yaml are both set: keep one" }}
{{- end }}
{{- if kindIs "string" $fromValues }}
{{- $fromValues }}
{{- else if $fromValues }}
{{- toYaml $fromValues }}
{{- else }}
{{- $fromFile }}
{{- end }}
{{- end }}

{{/* --spool-max-bytes: the value, else a bound below the default volume's size. */}}
{{- define "kwex.spoolMaxBytes" -}}
{{- if not (kindIs "invalid" .Values.spool.maxBytes) }}
{{- .Values.spool.maxBytes | int64 }}
{{- else if .Values.spool.persistence.enabled }}
{{- 4294967296 }}
{{- else }}
{{- 805306368 }}
{{- end }}
{{- end }}

{{- define "kwex.spoolClaim" -}}
{{- default (printf "%s-spool" (include "kwex.fullname" .)) .Values.spool.persistence.existingClaim }}
{{- end }}

{{/*
The container's args: `run`, then one --flag=value for each value that is set
(null and "" pass nothing: kwex's default applies), then the boolean flags that
are true, then extraArgs. Numbers arrive from YAML as floats: print them as integers.
*/}}
{{- define "kwex.args" -}}
{{- $v := .Values }}
{{- $args := list "run" }}
{{- $flags := list
  (list "url" $v.search.url)
  (list "username" $v.search.username)
  (list "aws-region" $v.search.aws.region)
  (list "aws-service" $v.search.aws.service)
  (list "request-timeout" $v.search.requestTimeout)
  (list "template-name" $v.search.templateName)
  (list "retention-days" $v.search.retentionDays)
  (list "data-stream" $v.search.dataStream)
  (list "dead-letter-index" $v.search.deadLetterIndex)
  (list "max-item-retries" $v.search.maxItemRetries)
  (list "max-backoff" $v.search.maxBackoff)
  (list "cluster-name" $v.documents.clusterName)
  (list "index" $v.documents.index)
  (list "id-mode" $v.documents.idMode)
  (list "max-message-bytes" $v.documents.maxMessageBytes)
  (list "events-api" $v.source.eventsApi)
  (list "namespace" (join "," $v.source.namespaces))
  (list "label-selector" $v.source.labelSelector)
  (list "field-selector" $v.source.fieldSelector)
  (list "list-page-size" $v.source.listPageSize)
  (list "kube-api-qps" $v.source.kubeApiQps)
  (list "kube-api-burst" $v.source.kubeApiBurst)
  (list "resync-period" $v.source.resyncPeriod)
  (list "flush-delay" $v.batching.flushDelay)
  (list "max-buffer-size" $v.batching.maxBufferSize)
  (list "max-batch-bytes" $v.batching.maxBatchBytes)
  (list "max-concurrency" $v.batching.maxConcurrency)
  (list "shutdown-timeout" $v.shutdownTimeout)
  (list "channel-capacity" $v.channelCapacity)
  (list "log-level" $v.logLevel)
  (list "log-format" $v.logFormat)
  (list "spool" $v.spool.kind)
  (list "spool-dir" (include "kwex.spoolDir" .))
  (list "spool-max-bytes" (include "kwex.spoolMaxBytes" .))
  (list "spool-full" $v.spool.full)
}}
{{- if $v.filters.enabled }}
{{- $flags = concat $flags (list
  (list "filters" (include "kwex.filtersDir" .))
  (list "filter-cache-dir" (ternary (include "kwex.filterCacheDir" .) "none" (not (not $v.filters.cache.enabled))))
  (list "filter-reload-interval" $v.filters.reloadInterval)
  (list "filter-workers" $v.filters.workers)
  (list "filter-deadline" $v.filters.deadline)
  (list "filter-memory" $v.filters.memory)
  (list "filter-fuel" $v.filters.fuel)
  (list "filter-failure-policy" $v.filters.failurePolicy)
  (list "filter-dead-letter-index" $v.filters.deadLetterIndex)) }}
{{- end }}
{{- if $v.leaderElection.enabled }}
{{- $flags = concat $flags (list
  (list "leader-elect-lease-name" (default (include "kwex.fullname" .) $v.leaderElection.leaseName))
  (list "leader-elect-lease-duration" $v.leaderElection.leaseDuration)
  (list "leader-elect-renew-deadline" $v.leaderElection.renewDeadline)
  (list "leader-elect-retry-period" $v.leaderElection.retryPeriod)) }}
{{- end }}
{{- if $v.search.tls.existingSecret }}
{{- $flags = concat $flags (list
  (list "ca-file" (ternary (printf "/etc/kwex/tls/%s" $v.search.tls.caKey) "" (not (empty $v.search.tls.caKey))))
  (list "client-cert-file" (ternary (printf "/etc/kwex/tls/%s" $v.search.tls.clientCertKey) "" (not (empty $v.search.tls.clientCertKey))))
  (list "client-key-file" (ternary (printf "/etc/kwex/tls/%s" $v.search.tls.clientKeyKey) "" (not (empty $v.search.tls.clientKeyKey))))) }}
{{- end }}
{{- range $flags }}
{{- $value := index . 1 }}
{{- if kindIs "float64" $value }}
{{- $value = int64 $value }}
{{- end }}
{{- if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
{{- $args = append $args (printf "--%s=%v" (index . 0) $value) }}
{{- end }}
{{- end }}
{{- $switches := list
  (list "install-template" $v.search.installTemplate)
  (list "gzip" $v.search.gzip)
  (list "aws-sigv4" $v.search.aws.sigv4)
  (list "insecure-skip-verify" $v.search.tls.insecureSkipVerify)
  (list "dedot" $v.documents.dedot)
  (list "leader-elect" $v.leaderElection.enabled)
}}
{{- range $switches }}
{{- if index . 1 }}
{{- $args = append $args (printf "--%s" (index . 0)) }}
{{- end }}
{{- end }}
{{- toYaml (concat $args $v.extraArgs) }}
{{- end }}
