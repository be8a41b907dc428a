{{/*
Names and labels shared by every template (the PrometheusRule and Grafana templates use them too).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "repairbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource name: fullnameOverride, else the release name, with the chart name
appended unless the release name already holds it ("repairbot", "repairbot-prod" stay as they are).
Truncated so that "-operator"/"-webhook" suffixes still fit in 63 characters.
*/}}
{{- define "repairbot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "repairbot.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "repairbot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "repairbot.labels" -}}
helm.sh/chart: {{ include "repairbot.chart" . }}
app.kubernetes.io/name: {{ include "repairbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: repairbot
{{- end -}}

{{/* Selector labels of one component: include "repairbot.selectorLabels" (dict "ctx" $ "component" "operator") */}}
{{- define "repairbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "repairbot.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of one component's objects: the common labels plus its selector labels. */}}
{{- define "repairbot.componentLabels" -}}
{{ include "repairbot.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Resource name of one component: include "repairbot.componentName" (dict "ctx" $ "component" "agent") */}}
{{- define "repairbot.componentName" -}}
{{- printf "%s-%s" (include "repairbot.fullname" .ctx) .component -}}
{{- end -}}

{{/* The ServiceAccount of one component (the same name whether or not the chart creates it). */}}
{{- define "repairbot.serviceAccountName" -}}
{{- include "repairbot.componentName" . -}}
{{- end -}}

{{/*
The image every component runs: global.imageRegistry (a mirror) prefixed to image.repository, then
@image.digest when set (it wins over the tag: a digest cannot be moved), else :image.tag or appVersion.
*/}}
{{- define "repairbot.image" -}}
{{- $repository := .Values.image.repository -}}
{{- with (.Values.global | default (dict)).imageRegistry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The labels on one component's pods: the chart's own, then the component's podLabels. A podLabel can
never replace a chart label (the selectors match on those):
include "repairbot.podLabels" (dict "ctx" $ "component" "agent" "podLabels" .Values.agent.podLabels)
*/}}
{{- define "repairbot.podLabels" -}}
{{- $own := include "repairbot.componentLabels" (dict "ctx" .ctx "component" .component) | fromYaml -}}
{{- toYaml (merge $own (.podLabels | default (dict))) -}}
{{- end -}}

{{/*
The operator's leader-election Lease and its storm-breaker ConfigMap, named after the release so that two
releases in one namespace never share them. The Lease keeps the name of the operator's Deployment, which is
the name every earlier chart used for the release "repairbot": an upgrade hands it over, never two leaders.
*/}}
{{- define "repairbot.leaseName" -}}
{{- .Values.operator.leaseName | default (include "repairbot.componentName" (dict "ctx" . "component" "operator")) -}}
{{- end -}}

{{- define "repairbot.breakerConfigMap" -}}
{{- .Values.operator.breakerConfigMap | default (include "repairbot.componentName" (dict "ctx" . "component" "breaker")) -}}
{{- end -}}

{{/*
Spread a component's replicas over nodes unless the user gave an affinity:
include "repairbot.affinity" (dict "ctx" $ "component" "operator" "affinity" .Values.operator.affinity)
*/}}
{{- define "repairbot.affinity" -}}
{{- if .affinity -}}
{{- toYaml .affinity -}}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "repairbot.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end -}}

{{/* The container security context of the operator and the webhook: non-root, read-only, no capabilities. */}}
{{- define "repairbot.restrictedContainer" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The operator's policy: .Values.policy with the chart's Slack, Jira, runbook and retention settings merged in
(a value set here wins over the same field in .Values.policy). Rendered as a YAML document.
*/}}
{{- define "repairbot.policy" -}}
{{- $policy := deepCopy (.Values.policy | default (dict)) -}}
{{- $notifications := deepCopy (get $policy "notifications" | default (dict)) -}}
{{- if .Values.slack.enabled -}}
{{- $slack := get $notifications "slack" | default (dict) -}}
{{- $_ := set $slack "channel" .Values.slack.channel -}}
{{- if .Values.slack.oncall -}}
{{- $_ := set $slack "onCall" .Values.slack.oncall -}}
{{- end -}}
{{- $_ := set $notifications "slack" $slack -}}
{{- end -}}
{{- if or .Values.slack.allowedUsers .Values.slack.allowedGroups -}}
{{- $slack := get $notifications "slack" | default (dict) -}}
{{- $actions := deepCopy (get $slack "actions" | default (dict)) -}}
{{- with .Values.slack.allowedUsers -}}{{- $_ := set $actions "allowedUsers" . -}}{{- end -}}
{{- with .Values.slack.allowedGroups -}}{{- $_ := set $actions "allowedGroups" . -}}{{- end -}}
{{- $_ := set $slack "actions" $actions -}}
{{- $_ := set $notifications "slack" $slack -}}
{{- end -}}
{{- if .Values.jira.enabled -}}
{{- $jira := get $notifications "jira" | default (dict) -}}
{{- $_ := set $jira "project" .Values.jira.project -}}
{{- $_ := set $notifications "jira" $jira -}}
{{- end -}}
{{- if $notifications -}}
{{- $_ := set $policy "notifications" $notifications -}}
{{- end -}}
{{- if .Values.runbookBaseUrl -}}
{{- $_ := set $policy "runbookBaseUrl" .Values.runbookBaseUrl -}}
{{- end -}}
{{- $retention := deepCopy (get $policy "retention" | default (dict)) -}}
{{- with .Values.retention -}}
{{- if .keepPerNode -}}{{- $_ := set $retention "keepPerNode" .keepPerNode -}}{{- end -}}
{{- if .ttl -}}{{- $_ := set $retention "ttl" .ttl -}}{{- end -}}
{{- end -}}
{{- if $retention -}}
{{- $_ := set $policy "retention" $retention -}}
{{- end -}}
{{- with .Values.alertmanager -}}
{{- if .url -}}
{{- $alertmanager := deepCopy (get $policy "alertmanager" | default (dict)) -}}
{{- $_ := set $alertmanager "url" .url -}}
{{- if .matchers -}}{{- $_ := set $alertmanager "matchers" .matchers -}}{{- end -}}
{{- if .alertnames -}}{{- $_ := set $alertmanager "alertnames" .alertnames -}}{{- end -}}
{{- if .duration -}}{{- $_ := set $alertmanager "duration" .duration -}}{{- end -}}
{{- $_ := set $policy "alertmanager" $alertmanager -}}
{{- end -}}
{{- end -}}
{{- with .Values.grafana.annotations -}}
{{- if .enabled -}}
{{- $grafana := deepCopy (get $policy "grafana" | default (dict)) -}}
{{- $_ := set $grafana "url" .url -}}
{{- if .dashboardUid -}}{{- $_ := set $grafana "dashboardUid" .dashboardUid -}}{{- end -}}
{{- $_ := set $policy "grafana" $grafana -}}
{{- end -}}
{{- end -}}
{{- if .Values.slurm.enabled -}}
{{- $slurm := deepCopy (get $policy "slurm" | default (dict)) -}}
{{- $_ := set $slurm "enabled" true -}}
{{- if .Values.slurm.configMap -}}{{- $_ := set $slurm "slurmConf" "/etc/slurm/slurm.conf" -}}{{- end -}}
{{- with .Values.slurm.jobTimeout -}}{{- $_ := set $slurm "jobTimeout" . -}}{{- end -}}
{{- with .Values.slurm.onJobTimeout -}}{{- $_ := set $slurm "onJobTimeout" . -}}{{- end -}}
{{- $_ := set $policy "slurm" $slurm -}}
{{- end -}}
{{- toYaml $policy -}}
{{- end -}}

{{/*
The webhook's alert mapping: files/alert-mapping.yaml (when the chart ships it) with
.Values.webhook.alertMapping laid over it, one alertname at a time. Rendered as a YAML document.
*/}}
{{- define "repairbot.alertMapping" -}}
{{- $shipped := .Files.Get "files/alert-mapping.yaml" | fromYaml | default (dict) -}}
{{- if hasKey $shipped "Error" -}}
{{- fail (printf "files/alert-mapping.yaml is not valid YAML: %s" (get $shipped "Error")) -}}
{{- end -}}
{{- $rules := deepCopy (get $shipped "rules" | default (dict)) -}}
{{- range $alertname, $rule := .Values.webhook.alertMapping -}}
{{- $_ := set $rules $alertname $rule -}}
{{- end -}}
{{- toYaml (dict "rules" $rules) -}}
{{- end -}}

{{/* The Secret the webhook reads its senders' credentials from. */}}
{{- define "repairbot.webhookAuthSecret" -}}
{{- .Values.webhook.auth.existingSecret | default (printf "%s-auth" (include "repairbot.componentName" (dict "ctx" . "component" "webhook"))) -}}
{{- end -}}

{{/* The webhook URL senders post to, without the /webhook/<sender> path. */}}
{{- define "repairbot.webhookBaseUrl" -}}
{{- if .Values.webhook.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.webhook.ingress.tls.enabled) .Values.webhook.ingress.host -}}
{{- else -}}
{{- $service := include "repairbot.componentName" (dict "ctx" . "component" "webhook") -}}
{{- printf "http://%s.%s.svc:%d" $service .Release.Namespace (int .Values.webhook.service.port) -}}
{{- end -}}
{{- end -}}
