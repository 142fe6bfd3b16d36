{{/* What `helm install` prints (NOTES.txt); a named template so that tests/test_chart.py can render it. */}}
{{- define "tideover.notes" -}}
{{- $name := include "tideover.fullname" . -}}
{{- $scheme := include "tideover.scheme" . | lower -}}
tideover {{ .Chart.AppVersion }} is installed as {{ .Release.Namespace }}/{{ $name }} ({{ .Values.replicas }} replica(s)).

Check it:
  kubectl -n {{ .Release.Namespace }} rollout status deployment/{{ $name }}
  kubectl -n {{ .Release.Namespace }} port-forward service/{{ $name }} {{ .Values.service.port }} &
  curl -k {{ $scheme }}://127.0.0.1:{{ .Values.service.port }}/readyz

kube-scheduler calls tideover only once its KubeSchedulerConfiguration names it as an extender. Add this to the
configuration of the kube-scheduler you run (field by field explanations: config/{{ if .Values.tls.enabled }}scheduler-config-https.yaml{{ else }}scheduler-config.yaml{{ end }}):

apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
extenders:
  - urlPrefix: {{ $scheme }}://{{ $name }}.{{ .Release.Namespace }}.svc:{{ .Values.service.port }}
    filterVerb: filter
    prioritizeVerb: prioritize
    weight: 5
    nodeCacheCapable: true
    ignorable: true
    httpTimeout: 2s
{{- if .Values.tls.enabled }}
    enableHTTPS: true
    tlsConfig:
      serverName: {{ $name }}.{{ .Release.Namespace }}.svc
      caFile: /etc/kubernetes/tideover/ca.crt   # the CA that signed secret {{ .Values.tls.secretName }}
      {{- if .Values.tls.clientAuth.enabled }}
      certFile: /etc/kubernetes/tideover/client.crt   # tls.crt of secret {{ .Values.tls.clientAuth.clientSecretName }}
      keyFile: /etc/kubernetes/tideover/client.key    # its tls.key
      {{- end }}
{{- end }}

A kube-scheduler on a control-plane node's host network may not resolve cluster DNS: use the Service's ClusterIP
(kubectl -n {{ .Release.Namespace }} get service {{ $name }}){{ if eq .Values.service.type "NodePort" }} or the NodePort {{ .Values.service.nodePort }}{{ end }} instead.
{{- end -}}
