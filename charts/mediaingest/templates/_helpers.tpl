{{- define "mediaingest.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mediaingest.fullname" -}}
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

{{- define "mediaingest.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mediaingest.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels for one component: (dict "root" $ "component" "api") */}}
{{- define "mediaingest.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mediaingest.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference: repository@digest when a digest is given (every node runs the same bytes,
whatever the tag points at later), else repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "mediaingest.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The API's, the worker's, the operator's and the migrations' image (mediaingest). */}}
{{- define "mediaingest.image" -}}
{{- include "mediaingest.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* The stage Jobs' image (mediaingest-stage), which the operator puts in each Job. */}}
{{- define "mediaingest.stageImage" -}}
{{- include "mediaingest.imageRef" (dict "image" .Values.image.stage "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* The transcript Jobs' image (mediaingest-speech), with transcribe.enabled. */}}
{{- define "mediaingest.speechImage" -}}
{{- include "mediaingest.imageRef" (dict "image" .Values.image.speech "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* The operator's OPERATOR_STAGE_IMAGES: the stages whose Jobs run in an image other than the stage image. */}}
{{- define "mediaingest.stageImages" -}}
{{- $images := dict }}
{{- if .Values.transcribe.enabled }}
{{- $_ := set $images "transcript" (include "mediaingest.speechImage" .) }}
{{- end }}
{{- $images | toJson }}
{{- end }}

{{- define "mediaingest.configName" -}}
{{- include "mediaingest.fullname" . }}
{{- end }}

{{- define "mediaingest.secretName" -}}
{{- default (include "mediaingest.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{- define "mediaingest.apiServiceAccount" -}}
{{- printf "%s-api" (include "mediaingest.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mediaingest.operatorServiceAccount" -}}
{{- printf "%s-operator" (include "mediaingest.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mediaingest.migrateServiceAccount" -}}
{{- printf "%s-migrate" (include "mediaingest.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mediaingest.jobServiceAccount" -}}
{{- printf "%s-stage-job" (include "mediaingest.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Settings from the ConfigMap and the Secret, shared by every container. */}}
{{- define "mediaingest.envFrom" -}}
- configMapRef:
    name: {{ include "mediaingest.configName" . }}
- secretRef:
    name: {{ include "mediaingest.secretName" . }}
{{- end }}

{{- define "mediaingest.namespaceEnv" -}}
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* Where stage pods report: jobs.apiUrl, else this release's API Service. */}}
{{- define "mediaingest.stageApiUrl" -}}
{{- .Values.jobs.apiUrl | default (printf "http://%s-api-internal.%s.svc:%v" (include "mediaingest.fullname" .) .Release.Namespace .Values.api.internalPort) -}}
{{- end }}

{{/*
NetworkPolicy peers for "any address but the denied ones": one ipBlock per family, with the cloud
metadata endpoint (networkPolicy.deniedCIDRs) and, unless (dict … "apiServer" true), the Kubernetes API
server's addresses (networkPolicy.apiServer.cidrs) excepted. (dict "root" $ "apiServer" false)
*/}}
{{- define "mediaingest.anywhereBut" -}}
{{- $np := .root.Values.networkPolicy }}
{{- $except := concat $np.deniedCIDRs (ternary (list) $np.apiServer.cidrs .apiServer) }}
{{- $v4 := list }}
{{- $v6 := list }}
{{- range $except }}
{{- if contains ":" . }}{{ $v6 = append $v6 . }}{{ else }}{{ $v4 = append $v4 . }}{{ end }}
{{- end }}
- ipBlock:
    cidr: 0.0.0.0/0
    {{- with $v4 }}
    except: {{ toJson . }}
    {{- end }}
- ipBlock:
    cidr: ::/0
    {{- with $v6 }}
    except: {{ toJson . }}
    {{- end }}
{{- end }}

{{/* The stage pods' egress rule for name resolution (networkPolicy.dns); the other pods' general egress covers DNS. */}}
{{- define "mediaingest.dnsEgress" -}}
{{- $dns := .Values.networkPolicy.dns }}
- ports:
    {{- range $dns.ports }}
    - {protocol: UDP, port: {{ . }}}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  to:
    {{- if $dns.to }}
    {{- toYaml $dns.to | nindent 4 }}
    {{- else }}
    - namespaceSelector: {}
    {{- include "mediaingest.anywhereBut" (dict "root" . "apiServer" false) | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
Egress of a pod that talks to the database, object storage and the outside (webhooks): any pod in the
cluster and any address but the denied ones, on any port (DNS included); with "apiServer" true, the
Kubernetes API server too; with "cloudIdentity" true and networkPolicy.gkeMetadataServer, GKE's metadata
server (Workload Identity's tokens). (dict "root" $ "apiServer" bool "cloudIdentity" bool)
*/}}
{{- define "mediaingest.generalEgress" -}}
{{- $np := .root.Values.networkPolicy }}
- to:
    - namespaceSelector: {}
    {{- include "mediaingest.anywhereBut" . | nindent 4 }}
{{- if and .apiServer $np.apiServer.cidrs }}
# The Kubernetes API server, by address (Cilium and GKE Dataplane V2 match it by no other peer).
- to:
    {{- range $np.apiServer.cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    {{- range $np.apiServer.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end }}
{{- if and .cloudIdentity $np.gkeMetadataServer }}
# GKE's metadata server: with Workload Identity it hands out this pod's own Google identity only.
- to:
    - ipBlock: {cidr: 169.254.169.254/32}
  ports:
    - {protocol: TCP, port: 80}
- to:
    - ipBlock: {cidr: 169.254.169.252/32}
  ports:
    - {protocol: TCP, port: 988}
{{- end }}
{{- end }}

{{/* The API port stage pods report to (the one the stage-run endpoints listen on). */}}
{{- define "mediaingest.stageApiPort" -}}
{{- .Values.api.internalPort -}}
{{- end }}

{{/* "true" on OpenShift (the cluster serves security.openshift.io/v1, as `helm install` and Argo CD tell helm), else "". */}}
{{- define "mediaingest.openshift" -}}
{{- if .Capabilities.APIVersions.Has "security.openshift.io/v1" }}true{{ end }}
{{- end }}

{{/*
The pods' securityContext: podSecurityContext, without runAsUser, runAsGroup and fsGroup on OpenShift,
whose restricted-v2 SCC assigns them from the namespace's range (and refuses pods that name others).
*/}}
{{- define "mediaingest.podSecurityContext" -}}
{{- $context := deepCopy .Values.podSecurityContext }}
{{- if include "mediaingest.openshift" . }}
{{- $context = omit $context "runAsUser" "runAsGroup" "fsGroup" }}
{{- end }}
{{- toYaml $context }}
{{- end }}
