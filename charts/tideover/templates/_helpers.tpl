{{/*
Names and labels. Object names are fixed by default ("tideover": kube-scheduler's urlPrefix, the RBAC subjects and
the ConfigMap name the scripts use are written against it); fullnameOverride changes them all.
*/}}
{{- define "tideover.fullname" -}}
{{- default "tideover" .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tideover.configMapName" -}}
{{- printf "%s-config" (include "tideover.fullname" .) -}}
{{- end -}}

{{/* The label every object carries, and the Deployment's selector (stable across upgrades). */}}
{{- define "tideover.selectorLabels" -}}
app.kubernetes.io/name: tideover
{{- end -}}

{{- define "tideover.labels" -}}
{{ include "tideover.selectorLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tideover.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The port tideover listens on: server.port of its configuration. */}}
{{- define "tideover.port" -}}
{{- (.Values.config.server | default dict).port | default 8888 -}}
{{- end -}}

{{/* config.server.healthPort: plain HTTP for probes and metrics (empty when unset). */}}
{{- define "tideover.healthPort" -}}
{{- (.Values.config.server | default dict).healthPort | default "" -}}
{{- end -}}

{{- define "tideover.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/* Where the Lease and the autoscaler's status ConfigMap live (the Role's namespace and resourceNames). */}}
{{- define "tideover.leaseNamespace" -}}
{{- (.Values.config.controllers | default dict).leaseNamespace | default "kube-system" -}}
{{- end -}}
{{- define "tideover.leaseName" -}}
{{- (.Values.config.controllers | default dict).leaseName | default "tideover-controllers" -}}
{{- end -}}
{{- define "tideover.statusNamespace" -}}
{{- (.Values.config.autoscaler | default dict).statusNamespace | default "kube-system" -}}
{{- end -}}
{{- define "tideover.statusConfigMap" -}}
{{- (.Values.config.autoscaler | default dict).statusConfigMap | default "cluster-autoscaler-status" -}}
{{- end -}}
{{/* autoscaler.capacitySignal of the configuration: Karpenter's objects are read only when it is not cluster-autoscaler. */}}
{{- define "tideover.capacitySignal" -}}
{{- (.Values.config.autoscaler | default dict).capacitySignal | default "cluster-autoscaler" -}}
{{- end -}}
