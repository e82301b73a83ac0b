{{/* Names, labels, images and the config files shared by every template. */}}

{{- define "slatefs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object name: the release name, with the chart name added unless present. */}}
{{- define "slatefs.fullname" -}}
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

{{- define "slatefs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "slatefs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include with (dict "root" $ "component" "node"). */}}
{{- define "slatefs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slatefs.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "slatefs.componentLabels" -}}
{{ include "slatefs.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "slatefs.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The kubelet's plugin directory of this driver and the CSI socket in it. */}}
{{- define "slatefs.pluginDir" -}}
{{- printf "%s/plugins/%s" (trimSuffix "/" .Values.kubeletDir) .Values.driverName -}}
{{- end -}}

{{- define "slatefs.registrationDir" -}}
{{- printf "%s/plugins_registry" (trimSuffix "/" .Values.kubeletDir) -}}
{{- end -}}

{{/* Local directory of a file:// store (empty for object storage). */}}
{{- define "slatefs.localStoreDir" -}}
{{- if hasPrefix "file://" .Values.storage.url -}}
{{- $dir := trimPrefix "file://" .Values.storage.url -}}
{{- if not (hasPrefix "/" $dir) -}}
{{- fail (printf "storage.url %q: a file:// store needs an absolute path (file:///dir)" .Values.storage.url) -}}
{{- end -}}
{{- trimSuffix "/" $dir -}}
{{- end -}}
{{- end -}}

{{/* A class secret carries S3 keys, which the driver checks against the store: a local
directory takes none, so naming one for a file:// store would fail every call at run time. */}}
{{- define "slatefs.checkClassSecret" -}}
{{- if and .secret.name (hasPrefix "file://" .root.Values.storage.url) -}}
{{- fail (printf "%s.secret.name %q: storage.url %q is a local directory, which takes no credentials; class secrets carry S3 keys (accessKeyId, secretAccessKey, sessionToken) for an s3:// store" .what .secret.name .root.Values.storage.url) -}}
{{- end -}}
{{- end -}}

{{/* The config file (TOML, unknown keys are errors in slatefs) for one catalog role. */}}
{{- define "slatefs.config" -}}
{{- $v := .root.Values -}}
[storage]
url = {{ $v.storage.url | quote }}
{{- with $v.storage.endpoint }}
endpoint = {{ . | quote }}
{{- end }}
{{- with $v.storage.region }}
region = {{ . | quote }}
{{- end }}
allow_http = {{ $v.storage.allowHttp }}
path_style = {{ $v.storage.pathStyle }}
memory_cache_size = {{ printf "%dMiB" (int $v.cache.memoryMiB) | quote }}
write_buffer_size = {{ printf "%dMiB" (int $v.cache.writeBufferMiB) | quote }}
{{- if and (eq .role "reader") $v.cache.hostPath }}
cache_dir = {{ $v.cache.hostPath | quote }}
cache_size = {{ printf "%dGiB" (int $v.cache.sizeGiB) | quote }}
{{- end }}
[nfs]
listen = {{ printf "127.0.0.1:%d" (int $v.nfs.port) | quote }}
hide_snapshot_dir = {{ $v.nfs.hideSnapshotDir }}
[admin]
listen = {{ printf "unix://%s/admin.sock" (trimSuffix "/" $v.runDir) | quote }}
[durability]
mode = {{ $v.durability.mode | quote }}
flush_interval_ms = {{ int $v.durability.flushIntervalMs }}
[catalog]
role = {{ .role | quote }}
[cluster]
secret_file = {{ printf "%s/secret" (include "slatefs.clusterSecretDir" .root) | quote }}
handoff_after_ms = {{ int $v.cluster.handoffAfterMs }}
{{- if and (eq .role "owner") $v.web.enabled }}
[web]
listen = {{ printf "127.0.0.1:%d" (int $v.web.port) | quote }}
token_file = {{ printf "%s/token" (include "slatefs.webTokenDir" "admin") | quote }}
{{- if $v.web.readonlyTokenSecret }}
readonly_token_file = {{ printf "%s/token" (include "slatefs.webTokenDir" "readonly") | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Where the catalog owner finds the console's token Secrets ("admin" or "readonly"), outside
/etc/slatefs (the ConfigMap's mount). */}}
{{- define "slatefs.webTokenDir" -}}
{{- if eq . "admin" }}/etc/slatefs-web{{ else }}/etc/slatefs-web-readonly{{ end -}}
{{- end -}}

{{/* The console's token Secrets as volumes. Mode 0400 (256): slatefs refuses a token file that
group or others may read, and the kubelet would otherwise make it 0644. */}}
{{- define "slatefs.webTokenVolumes" -}}
- name: web-token
  secret:
    secretName: {{ .Values.web.tokenSecret }}
    defaultMode: 256
    items:
      - key: token
        path: token
{{- with .Values.web.readonlyTokenSecret }}
- name: web-readonly-token
  secret:
    secretName: {{ . }}
    defaultMode: 256
    items:
      - key: token
        path: token
{{- end }}
{{- end -}}

{{- define "slatefs.webTokenMounts" -}}
- name: web-token
  mountPath: {{ include "slatefs.webTokenDir" "admin" }}
  readOnly: true
{{- if .Values.web.readonlyTokenSecret }}
- name: web-readonly-token
  mountPath: {{ include "slatefs.webTokenDir" "readonly" }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The console needs its token, and a port of its own on the controller pod (its loopback
shares the port space with the pod's other listeners): a clash would stop the catalog owner. */}}
{{- define "slatefs.checkWeb" -}}
{{- if .Values.web.enabled -}}
{{- if not .Values.web.tokenSecret -}}
{{- fail "web.enabled needs web.tokenSecret: the name of a Secret whose key `token` is the console's token" -}}
{{- end -}}
{{- if eq .Values.web.tokenSecret .Values.web.readonlyTokenSecret -}}
{{- fail "web.readonlyTokenSecret must name another Secret than web.tokenSecret (slatefs refuses the same token twice)" -}}
{{- end -}}
{{- $port := int .Values.web.port -}}
{{- $others := dict "cluster.port" .Values.cluster.port "controller.healthPort" .Values.controller.healthPort -}}
{{- if .Values.metrics.enabled -}}
{{- $_ := set $others "metrics.controllerPort" .Values.metrics.controllerPort -}}
{{- $_ := set $others "metrics.controllerCsiPort" .Values.metrics.controllerCsiPort -}}
{{- end -}}
{{- range $what, $other := $others -}}
{{- if eq $port (int $other) -}}
{{- fail (printf "web.port %d is also %s: the console needs a port of its own on the controller pod" $port $what) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the internal channel's shared secret (key `secret`). */}}
{{- define "slatefs.clusterSecretName" -}}
{{- default (printf "%s-cluster" (include "slatefs.fullname" .)) .Values.cluster.existingSecret -}}
{{- end -}}

{{/* Where the slatefs servers find that Secret (outside /etc/slatefs, the ConfigMap's mount). */}}
{{- define "slatefs.clusterSecretDir" -}}
/etc/slatefs-cluster
{{- end -}}

{{/* The Secret as a volume. Mode 0400 (256): slatefs refuses a secret file that anyone but its
owner can read, and the kubelet would otherwise make it 0644. */}}
{{- define "slatefs.clusterSecretVolume" -}}
- name: cluster-secret
  secret:
    secretName: {{ include "slatefs.clusterSecretName" . }}
    defaultMode: 256
    items:
      - key: secret
        path: secret
{{- end -}}

{{- define "slatefs.clusterSecretMount" -}}
- name: cluster-secret
  mountPath: {{ include "slatefs.clusterSecretDir" . }}
  readOnly: true
{{- end -}}

{{/* The channel's port shares an address with other listeners: the host's (dataset servers
and node plugin, host network) and the controller pod's. A clash would stop a server at start. */}}
{{- define "slatefs.checkClusterPort" -}}
{{- $port := int .Values.cluster.port -}}
{{- range $what, $other := dict "nfs.port" .Values.nfs.port "node.healthPort" .Values.node.healthPort "controller.healthPort" .Values.controller.healthPort -}}
{{- if eq $port (int $other) -}}
{{- fail (printf "cluster.port %d is also %s: the internal channel needs a port of its own" $port $what) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Object-store credentials from the Secret named in values, as environment variables. */}}
{{- define "slatefs.storageEnv" -}}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- with .Values.storage.credentials.secretName }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.storage.credentials.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.storage.credentials.secretAccessKeyKey }}
{{- end }}
{{- end -}}

{{/* Pod annotation that changes whenever the rendered config files change. */}}
{{- define "slatefs.configChecksum" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}

{{/*
Prometheus scrape annotations of a pod whose page listens on `port` (metrics.podAnnotations).
*/}}
{{- define "slatefs.scrapeAnnotations" -}}
{{- if and .root.Values.metrics.enabled .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}
