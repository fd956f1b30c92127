{{/*
Chart name, truncated to 63 characters (the limit of a DNS-1123 label).
*/}}
{{- define "podwatch-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name when it already contains the chart name, else
"<release>-<chart>". Truncated to 63 characters.
*/}}
{{- define "podwatch-relay.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "podwatch-relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "podwatch-relay.labels" -}}
helm.sh/chart: {{ include "podwatch-relay.chart" . }}
{{ include "podwatch-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: relay
app.kubernetes.io/part-of: podwatch
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: immutable in a Deployment, so only name and instance.
*/}}
{{- define "podwatch-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podwatch-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount to use.
*/}}
{{- define "podwatch-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podwatch-relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: registry/repository, then @digest or :tag (default: appVersion).
*/}}
{{- define "podwatch-relay.image" -}}
{{- $repository := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Name of the Lease the replicas elect their leader on.
*/}}
{{- define "podwatch-relay.leaseName" -}}
{{- default (include "podwatch-relay.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The queue URL, required: the relay cannot forward anything without it.
*/}}
{{- define "podwatch-relay.queueUrl" -}}
{{- required "sqs.queueUrl is required: the URL of the pod-events queue, i.e. the stack output PodEventsQueueUrl (--set sqs.queueUrl=https://sqs.<region>.amazonaws.com/<account>/<stack>-pod-events)" .Values.sqs.queueUrl }}
{{- end }}

{{/*
AWS region: sqs.region, else the region in an SQS queue URL (sqs.<region>.amazonaws.com[.cn]).
*/}}
{{- define "podwatch-relay.region" -}}
{{- $url := include "podwatch-relay.queueUrl" . }}
{{- if .Values.sqs.region }}
{{- .Values.sqs.region }}
{{- else }}
{{- $host := regexFind "^https://sqs\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/" $url }}
{{- if $host }}
{{- index (splitList "." $host) 1 }}
{{- else }}
{{- fail (printf "sqs.region is required: the queue URL %q does not name a region (expected https://sqs.<region>.amazonaws.com/...)" $url) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the spool PVC.
*/}}
{{- define "podwatch-relay.spoolClaimName" -}}
{{- default (printf "%s-spool" (include "podwatch-relay.fullname" .)) .Values.spool.persistence.existingClaim }}
{{- end }}

{{/*
Checks across values that a JSON schema cannot express.
*/}}
{{- define "podwatch-relay.validate" -}}
{{- $le := .Values.leaderElection }}
{{- if and (gt (int .Values.replicaCount) 1) (not $le.enabled) }}
{{- fail "replicaCount > 1 requires leaderElection.enabled=true: without a leader every replica forwards every event" }}
{{- end }}
{{- if $le.enabled }}
{{- if not (gt (float64 $le.leaseDurationSeconds) (float64 $le.renewDeadlineSeconds)) }}
{{- fail "leaderElection.leaseDurationSeconds must be greater than leaderElection.renewDeadlineSeconds" }}
{{- end }}
{{- if not (gt (float64 $le.renewDeadlineSeconds) (mulf 1.2 $le.retryPeriodSeconds)) }}
{{- fail "leaderElection.renewDeadlineSeconds must be greater than 1.2 × leaderElection.retryPeriodSeconds" }}
{{- end }}
{{- end }}
{{- if lt (float64 .Values.relay.reconnectBackoffMaxSeconds) (float64 .Values.relay.reconnectBackoffSeconds) }}
{{- fail "relay.reconnectBackoffMaxSeconds must be >= relay.reconnectBackoffSeconds" }}
{{- end }}
{{- if lt (float64 .Values.sqs.backoffMaxSeconds) (float64 .Values.sqs.backoffSeconds) }}
{{- fail "sqs.backoffMaxSeconds must be >= sqs.backoffSeconds" }}
{{- end }}
{{- $r := .Values.relay }}
{{- if and $r.namespaceSelector $r.namespaces }}
{{- fail "relay.namespaceSelector and relay.namespaces cannot be combined: the selector chooses the namespaces" }}
{{- end }}
{{- if not (gt (float64 .Values.terminationGracePeriodSeconds) (float64 $r.shutdownGraceSeconds)) }}
{{- fail "terminationGracePeriodSeconds must be greater than relay.shutdownGraceSeconds: the relay needs time after its drain to spool the rest and release the lease before SIGKILL" }}
{{- end }}
{{- if not (gt (float64 $r.healthStallSeconds) (float64 $r.inactivityTimeoutSeconds)) }}
{{- fail "relay.healthStallSeconds must be greater than relay.inactivityTimeoutSeconds: a silent watch is reconnected before it is called stalled" }}
{{- end }}
{{- if lt (int .Values.containerPorts.http) 1024 }}
{{- fail "containerPorts.http must be at least 1024: the relay runs as non-root with every capability dropped (0, any free port, is for tests only)" }}
{{- end }}
{{- $p := .Values.spool.persistence }}
{{- $volume := ternary $p.size .Values.spool.emptyDir.sizeLimit $p.enabled }}
{{- if or (not $p.enabled) (not $p.existingClaim) }}
{{- $volumeBytes := include "podwatch-relay.quantityBytes" $volume }}
{{- if and $volumeBytes (gt (float64 .Values.spool.maxBytes) (float64 $volumeBytes)) }}
{{- fail (printf "spool.maxBytes (%d) must fit in the spool volume (%v): the kubelet evicts a pod whose emptyDir outgrows its sizeLimit, and a full claim fails the writes" (int64 .Values.spool.maxBytes) $volume) }}
{{- end }}
{{- end }}
{{- if and $p.enabled (not $p.existingClaim) (gt (int .Values.replicaCount) 1) (not (has "ReadWriteMany" $p.accessModes)) }}
{{- fail "spool.persistence with replicaCount > 1 needs accessModes [ReadWriteMany]: every replica mounts the same claim" }}
{{- end }}
{{- end }}

{{/*
Bytes of a Kubernetes quantity with a binary or decimal suffix (`576Mi`, `1G`, `1048576`); empty
when it is not one of those simple forms (the caller then skips its check).
*/}}
{{- define "podwatch-relay.quantityBytes" -}}
{{- $q := toString . }}
{{- $m := regexFindAll "^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$" $q 1 }}
{{- if $m }}
{{- $number := regexFind "^[0-9]+" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $factors := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- mul (int64 $number) (index $factors $suffix) }}
{{- end }}
{{- end }}
