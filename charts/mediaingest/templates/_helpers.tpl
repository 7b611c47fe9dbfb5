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
{{- .Values.jobs.apiUrl | default (printf "http://%s-api.%s.svc:%v" (include "mediaingest.fullname" .) .Release.Namespace .Values.api.service.port) -}}
{{- end }}
