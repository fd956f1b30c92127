{{/*
The API group and resource of each kind `relay.kinds` may name: the relay's table
(relay/podwatch_relay/kinds.py, BUILTIN; tests/unit/test_chart.py compares the two). Pod and
Event are the pod path's, granted by the ClusterRole's first rule. No Secret, ever.
*/}}
{{- define "podwatch-relay.kindResources" -}}
Pod: {group: "", resource: pods}
Event: {group: "", resource: events}
Node: {group: "", resource: nodes}
Namespace: {group: "", resource: namespaces}
Service: {group: "", resource: services}
ConfigMap: {group: "", resource: configmaps}
PersistentVolumeClaim: {group: "", resource: persistentvolumeclaims}
PersistentVolume: {group: "", resource: persistentvolumes}
Deployment: {group: apps, resource: deployments}
ReplicaSet: {group: apps, resource: replicasets}
StatefulSet: {group: apps, resource: statefulsets}
DaemonSet: {group: apps, resource: daemonsets}
Job: {group: batch, resource: jobs}
CronJob: {group: batch, resource: cronjobs}
Ingress: {group: networking.k8s.io, resource: ingresses}
HorizontalPodAutoscaler: {group: autoscaling, resource: horizontalpodautoscalers}
PodDisruptionBudget: {group: policy, resource: poddisruptionbudgets}
{{- end }}

{{/*
The ClusterRole's rules for `relay.kinds` (besides Pod and Event), grouped by API group, and for
custom resources: CRDs, the groups of `relay.customResourceGroups` (exact ones as they are,
wildcard ones through `rbac.customResourceApiGroups`), hooks.kagent.dev with `hooks.watchCRD`.
Fails on a Secret, an unknown kind, or a wildcard group without the groups it stands for.
*/}}
{{- define "podwatch-relay.kindRules" -}}
{{- $known := include "podwatch-relay.kindResources" . | fromYaml }}
{{- $byGroup := dict }}
{{- range .Values.relay.kinds }}
{{- if eq (lower .) "secret" }}
{{- fail "relay.kinds: Secret is never watched: the relay does not read Secrets (remove it)" }}
{{- end }}
{{- $entry := get $known . }}
{{- if not $entry }}
{{- fail (printf "relay.kinds: unknown kind %q (known: %s; custom resources go by API group in relay.customResourceGroups)" . (keys $known | sortAlpha | join ", ")) }}
{{- end }}
{{- if not (has . (list "Pod" "Event")) }}
{{- $resources := get $byGroup $entry.group | default list }}
{{- $_ := set $byGroup $entry.group (append $resources $entry.resource) }}
{{- end }}
{{- end }}
{{- range $group := keys $byGroup | sortAlpha }}
- apiGroups: [{{ $group | quote }}]
  resources: {{ get $byGroup $group | toJson }}
  verbs: ["list", "watch"]
{{- end }}
{{- $groups := list }}
{{- $patterns := list }}
{{- range .Values.relay.customResourceGroups }}
{{- if regexMatch "[*?\\[]" . }}
{{- $patterns = append $patterns . }}
{{- else }}
{{- $groups = append $groups . }}
{{- end }}
{{- end }}
{{- if and $patterns (not .Values.rbac.customResourceApiGroups) }}
{{- fail (printf "relay.customResourceGroups %s: RBAC cannot grant a pattern; list the API groups it should match in rbac.customResourceApiGroups" (join ", " $patterns)) }}
{{- end }}
{{- $groups = concat $groups .Values.rbac.customResourceApiGroups | uniq | sortAlpha }}
{{- if or $groups .Values.hooks.watchCRD }}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}
{{- if $groups }}
- apiGroups: {{ $groups | toJson }}
  resources: ["*"]
  verbs: ["list", "watch"]
{{- end }}
{{- if .Values.hooks.watchCRD }}
- apiGroups: ["kagent.dev"]
  resources: ["hooks"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}
