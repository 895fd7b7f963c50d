# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role ailab.cluster.monitoring: the lab's GPU alerts and Grafana dashboards, derived
from the lab model so that they name the same nodes, resources and tenants as everything else.

* ``monitoring_gpu_nodes``: every GPU node of the inventory with the number of GPUs DCGM should report
  and the GPU resources (kube-state-metrics names) the node should advertise;
* ``monitoring_prometheus_rules``: the ``spec.groups`` of the lab's PrometheusRule (a GPU node losing
  GPUs, a GPU held with full memory and no activity, a tenant at its quota, Ceph health);
* ``monitoring_grafana_dashboards``: the lab's Grafana dashboards (GPU nodes and slices; GPU use per
  tenant, user, pod and queue), as ``{file name: JSON text}`` for the Grafana sidecar's ConfigMaps.

Metric names come from two sources only: DCGM exporter fields of its default counter list
(``etc/default-counters.csv`` of NVIDIA/dcgm-exporter 4.5.3-4.8.2) and kube-state-metrics series
(``docs/metrics`` of kubernetes/kube-state-metrics), plus ``ceph_health_status`` of Ceph's mgr
prometheus module (which Rook scrapes when its monitoring is on). kube-state-metrics writes Kubernetes
labels as ``label_<name>`` with every character outside ``[a-zA-Z0-9_]`` replaced by ``_``, and extended
resource names (``nvidia.com/mig-1g.18gb``) the same way (``nvidia_com_mig_1g_18gb``); the role's
``metricLabelsAllowlist`` exposes the labels these queries join on.

Their documentation is in the ``<filter name>.yml`` files next to this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Kubernetes labels the queries join on, and the names kube-state-metrics gives them.
TENANT_LABEL = "ailab.cluster/tenant"
GPU_GROUP_LABEL = "ailab.cluster/gpu-group"
USER_LABEL = "hub.jupyter.org/username"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}

SETTINGS = {
    # name: (type, check, what it must be)
    "idle_memory_ratio": (float, lambda v: 0 < v <= 1, "a number above 0 and at most 1"),
    "idle_activity_ratio": (float, lambda v: 0 <= v < 1, "a number from 0 to below 1"),
    "idle_for": (str, DURATION.match, "a Prometheus duration such as 2h"),
    "gpu_lost_for": (str, DURATION.match, "a Prometheus duration such as 10m"),
    "quota_warning_ratio": (float, lambda v: 0 < v < 1, "a number above 0 and below 1"),
    "quota_for": (str, DURATION.match, "a Prometheus duration such as 15m"),
    "ceph": (bool, lambda v: True, "true or false"),
}


def ksm_label(name):
    """The label kube-state-metrics gives a Kubernetes label: ailab.cluster/tenant -> label_ailab_cluster_tenant."""
    return "label_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)


def ksm_resource(name):
    """The resource label value kube-state-metrics gives an extended resource: nvidia.com/gpu -> nvidia_com_gpu."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


TENANT = ksm_label(TENANT_LABEL)
GPU_GROUP = ksm_label(GPU_GROUP_LABEL)
USER = ksm_label(USER_LABEL)
QUEUE = ksm_label(QUEUE_LABEL)


def _fail(where, message):
    raise AnsibleFilterError("%s: %s" % (where, message))


def _settings(settings):
    if not isinstance(settings, Mapping):
        _fail("monitoring", "the alert settings must be a mapping")
    out = {}
    for name, (kind, check, what) in SETTINGS.items():
        variable = "monitoring_alert_" + name if name != "ceph" else "monitoring_ceph"
        if name not in settings:
            _fail(variable, "missing")
        value = settings[name]
        try:
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(value)
            elif kind is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                value = float(value)
            else:
                value = str(value)
            if not check(value):
                raise ValueError(value)
        except (TypeError, ValueError):
            _fail(variable, "must be %s, got %r" % (what, settings[name]))
        out[name] = value
    return out


# ----------------------------------------------------------------------------------------- nodes
def monitoring_gpu_nodes(gpu_resources, node_groups, node_names=None):
    """The GPU nodes Prometheus should see, sorted by node name (see monitoring_gpu_nodes.yml)."""
    if not isinstance(gpu_resources, list) or not isinstance(node_groups, list):
        _fail("monitoring_gpu_nodes", "expects the lab_gpu_resources list and ailab_gpu_node_groups")
    node_names = node_names or {}
    gpus = {}
    for entry in node_groups:
        if isinstance(entry, Mapping) and "group" in entry:
            gpus[str(entry["group"])] = int(entry.get("gpus_per_node", 1))
    nodes, hosts_of_node = {}, {}
    for resource in gpu_resources:
        group = str(resource["group"])
        for member in resource["nodes"]:
            host = str(member)
            node = str(node_names.get(host) or host)
            if not NODE_NAME.match(node) or len(node) > 253:
                _fail("monitoring_gpu_nodes", "the Kubernetes node name %r of host %s is not a DNS name; set "
                      "kubeadm_worker_node_name of %s to the name the node is registered under" % (node, host, host))
            if hosts_of_node.setdefault(node, host) != host:
                _fail("monitoring_gpu_nodes", "hosts %s and %s both register as node %s; give each GPU host its own "
                      "kubeadm_worker_node_name" % (hosts_of_node[node], host, node))
            entry = nodes.setdefault(node, {"node": node, "host": host, "group": group,
                                            "gpu_model": str(resource["gpu_model"]),
                                            "gpus": gpus.get(group, 1), "allocatable": {}})
            name = ksm_resource(str(resource["resource"]))
            entry["allocatable"][name] = entry["allocatable"].get(name, 0) + int(resource["per_node"])
    return [nodes[n] for n in sorted(nodes)]


# ----------------------------------------------------------------------------------------- rules
def _selector(**labels):
    return "{" + ", ".join('%s="%s"' % (k, v) for k, v in sorted(labels.items())) + "}"


def _tenant_namespaces(tenant_regex=None):
    matchers = '%s!=""' % TENANT if tenant_regex is None else '%s=~"%s", %s!=""' % (TENANT, tenant_regex, TENANT)
    return "group by (namespace, %s) (kube_namespace_labels{%s})" % (TENANT, matchers)


def _activity(selector):
    """GPU activity as a ratio 0-1: the graphics engine's activity where DCGM profiles the GPU (datacenter
    GPUs and MIG slices), else the utilisation of the whole GPU (GeForce and workstation cards)."""
    return "(DCGM_FI_PROF_GR_ENGINE_ACTIVE%s or (DCGM_FI_DEV_GPU_UTIL%s / 100))" % (selector, selector)


def _memory_ratio(selector):
    return "(DCGM_FI_DEV_FB_USED%s / (DCGM_FI_DEV_FB_USED%s + DCGM_FI_DEV_FB_FREE%s))" % (selector, selector, selector)


def idle_gpu_expr(memory_ratio, activity_ratio):
    """Pods' GPUs (or MIG slices) with at least memory_ratio of their memory in use and at most
    activity_ratio activity; the value is the memory ratio."""
    pods = '{pod!=""}'
    return "%s >= %s\nand\n%s <= %s" % (_memory_ratio(pods), _number(memory_ratio), _activity(pods), _number(activity_ratio))


def _number(value):
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _lost_gpus_expr(nodes):
    parts = []
    for node in nodes:
        for resource, count in sorted(node["allocatable"].items()):
            series = "kube_node_status_allocatable" + _selector(node=node["node"], resource=resource)
            parts.append("(%s < %d)\nor (absent(%s) - 1)" % (series, count, series))
    return "\nor ".join(parts)


def _missing_gpus_expr(nodes):
    parts = []
    for node in nodes:
        series = "DCGM_FI_DEV_GPU_TEMP" + _selector(node=node["node"])
        parts.append("(count by (node) (group by (node, gpu) (%s)) < %d)\nor (absent(%s) - 1)"
                     % (series, node["gpus"], series))
    return "\nor ".join(parts)


def _quota_ratio_expr():
    return ("(\n  kube_resourcequota{type=\"used\"}\n  / on (namespace, resourcequota, resource) (kube_resourcequota{type=\"hard\"} > 0)\n)\n"
            "* on (namespace) group_left (%s) %s" % (TENANT, _tenant_namespaces()))


def monitoring_prometheus_rules(gpu_nodes, settings):
    """spec.groups of the lab's PrometheusRule (see monitoring_prometheus_rules.yml)."""
    if not isinstance(gpu_nodes, list):
        _fail("monitoring_prometheus_rules", "expects the output of monitoring_gpu_nodes")
    s = _settings(settings)
    groups = []
    if gpu_nodes:
        expected = "; ".join("%s: %s" % (n["node"], ", ".join("%d %s" % (c, r) for r, c in sorted(n["allocatable"].items())))
                             for n in gpu_nodes)
        groups.append({"name": "ailab.gpu-nodes", "rules": [
            {"alert": "AilabGPUNodeLostGPUs",
             "expr": _lost_gpus_expr(gpu_nodes),
             "for": s["gpu_lost_for"],
             "labels": {"severity": "warning"},
             "annotations": {
                 "summary": "GPU node {{ $labels.node }} advertises {{ $value }} {{ $labels.resource }}, fewer than the inventory gives it.",
                 "description": ("The lab model (ailab_gpu_node_groups) expects %s. A node that advertises fewer GPU "
                                 "resources lost a GPU (fallen off the bus, Xid 79, driver or device plugin down) or "
                                 "was not given its MIG layout." % expected),
                 "runbook": "docs/monitoring.md#ailabgpunodelostgpus"}},
            {"alert": "AilabGPUMetricsMissing",
             "expr": _missing_gpus_expr(gpu_nodes),
             "for": s["gpu_lost_for"],
             "labels": {"severity": "warning"},
             "annotations": {
                 "summary": "DCGM reports {{ $value }} GPUs on node {{ $labels.node }}, fewer than the inventory gives it.",
                 "description": ("The DCGM exporter of the GPU Operator reports fewer GPUs than ailab_gpu_node_groups "
                                 "gives the node (%s), or none: the exporter pod is not running there or the "
                                 "GPU is gone." % ", ".join("%s %d" % (n["node"], n["gpus"]) for n in gpu_nodes)),
                 "runbook": "docs/monitoring.md#ailabgpumetricsmissing"}},
        ]})
        groups.append({"name": "ailab.gpu-usage", "rules": [
            {"alert": "AilabGPUIdleMemoryHeld",
             "expr": idle_gpu_expr(s["idle_memory_ratio"], s["idle_activity_ratio"]),
             "for": s["idle_for"],
             "labels": {"severity": "info"},
             "annotations": {
                 "summary": ("Pod {{ $labels.namespace }}/{{ $labels.pod }} holds {{ $value | humanizePercentage }} of "
                             "the memory of GPU {{ $labels.gpu }} {{ $labels.GPU_I_PROFILE }} on {{ $labels.node }} "
                             "and has not used it for %s." % s["idle_for"]),
                 "description": ("Memory of the GPU (or MIG slice) at least %s used, activity at most %s, for %s: "
                                 "most likely a forgotten notebook that keeps the GPU from others. JupyterHub's "
                                 "culler stops idle servers only when the browser is closed."
                                 % (_number(s["idle_memory_ratio"]), _number(s["idle_activity_ratio"]), s["idle_for"])),
                 "runbook": "docs/monitoring.md#ailabgpuidlememoryheld"}},
        ]})
    groups.append({"name": "ailab.tenants", "rules": [
        {"alert": "AilabTenantQuotaNearlyFull",
         "expr": "%s\n>= %s < 1" % (_quota_ratio_expr(), _number(s["quota_warning_ratio"])),
         "for": s["quota_for"],
         "labels": {"severity": "info"},
         "annotations": {
             "summary": ("Tenant {{ $labels.%s }} uses {{ $value | humanizePercentage }} of its %s quota "
                         "({{ $labels.namespace }}/{{ $labels.resourcequota }})." % (TENANT, "{{ $labels.resource }}")),
             "runbook": "docs/monitoring.md#ailabtenantquotanearlyfull"}},
        {"alert": "AilabTenantQuotaReached",
         "expr": "%s\n>= 1" % _quota_ratio_expr(),
         "for": s["quota_for"],
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": ("Tenant {{ $labels.%s }} has used all of its {{ $labels.resource }} quota "
                         "({{ $labels.namespace }}/{{ $labels.resourcequota }}): new pods asking for it are refused." % TENANT),
             "runbook": "docs/monitoring.md#ailabtenantquotareached"}},
    ]})
    if s["ceph"]:
        groups.append({"name": "ailab.ceph", "rules": [
            {"alert": "AilabCephHealthWarning",
             "expr": "ceph_health_status == 1",
             "for": "15m",
             "labels": {"severity": "warning"},
             "annotations": {
                 "summary": "Ceph cluster {{ $labels.namespace }} is in HEALTH_WARN.",
                 "runbook": "docs/monitoring.md#ailabcephhealthwarning"}},
            {"alert": "AilabCephHealthError",
             "expr": "ceph_health_status == 2",
             "for": "5m",
             "labels": {"severity": "critical"},
             "annotations": {
                 "summary": "Ceph cluster {{ $labels.namespace }} is in HEALTH_ERR: volumes may stop accepting writes.",
                 "runbook": "docs/monitoring.md#ailabcephhealtherror"}},
        ]})
    return groups


# ------------------------------------------------------------------------------------ dashboards
class _Board(object):
    """A Grafana dashboard (schema 39) laid out on a 24-column grid, panels two per row."""

    def __init__(self, uid, title, description):
        self.uid, self.title, self.description = uid, title, description
        self.panels, self.variables, self._x, self._y = [], [], 0, 0

    def variable(self, name, label, query, regex_all=".*"):
        self.variables.append({
            "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "definition": query, "query": {"query": query, "refId": name},
            "includeAll": True, "multi": True, "allValue": regex_all, "current": {}, "refresh": 2, "sort": 1,
            "hide": 0, "options": [],
        })

    def panel(self, title, description, targets, unit="short", width=12, kind="timeseries"):
        if self._x + width > 24:
            self._x, self._y = 0, self._y + 8
        self.panels.append({
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": width, "x": self._x, "y": self._y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "right", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}} if kind == "timeseries" else {},
            "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                        for i, (expr, legend) in enumerate(targets)],
        })
        self._x += width

    def render(self):
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["ailab", "gpu"], "editable": False, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
            "time": {"from": "now-6h", "to": "now"}, "refresh": "1m", "timezone": "browser",
            "annotations": {"list": []}, "links": [],
            "templating": {"list": self.variables}, "panels": self.panels,
        }


def _running_requests(selector):
    return ("kube_pod_container_resource_requests%s\n* on (namespace, pod) group_left () "
            "(kube_pod_status_phase{phase=~\"Pending|Running\"} == 1)" % selector)


def _nodes_board(gpu_resources):
    board = _Board("ailab-gpu-nodes", "AI lab / GPU nodes and slices",
                   "GPU utilisation, memory and power per node, per GPU and per MIG slice (DCGM exporter), and the "
                   "lab's GPU resources against what the inventory gives them.")
    board.variable("node", "Node", "label_values(DCGM_FI_DEV_GPU_TEMP, node)")
    node = '{node=~"$node"}'
    targets = []
    for res in gpu_resources:
        name = ksm_resource(str(res["resource"]))
        group = "group by (node) (kube_node_labels{%s=\"%s\"})" % (GPU_GROUP, res["group"])
        targets.append(("vector(%d)" % int(res["capacity"]), "%s capacity (inventory)" % res["key"]))
        targets.append(("sum(\n  kube_node_status_allocatable{resource=\"%s\"}\n  * on (node) group_left () %s\n)" % (name, group),
                        "%s allocatable" % res["key"]))
        targets.append(("sum(\n  (%s)\n  * on (node) group_left () %s\n)" % (_running_requests('{resource="%s"}' % name), group),
                        "%s requested" % res["key"]))
    if targets:
        board.panel("GPU resources of the lab", "Per resource key of the lab model: the capacity the inventory gives "
                    "(ailab_gpu_node_groups), what the nodes of its group advertise, and what running or pending "
                    "pods request.", targets, width=24)
    board.panel("GPU utilisation per GPU", "DCGM_FI_DEV_GPU_UTIL: whole GPUs (not reported for MIG slices).",
                [("DCGM_FI_DEV_GPU_UTIL%s" % node, "{{node}} GPU {{gpu}}")], unit="percent")
    board.panel("Graphics engine activity per GPU and MIG slice",
                "DCGM_FI_PROF_GR_ENGINE_ACTIVE (datacenter GPUs): one series per GPU, or per MIG slice.",
                [("DCGM_FI_PROF_GR_ENGINE_ACTIVE%s" % node, "{{node}} GPU {{gpu}} {{GPU_I_PROFILE}} {{GPU_I_ID}}")],
                unit="percentunit")
    board.panel("GPU memory used per GPU and MIG slice", "DCGM_FI_DEV_FB_USED (MiB, shown in bytes).",
                [("DCGM_FI_DEV_FB_USED%s * 1048576" % node, "{{node}} GPU {{gpu}} {{GPU_I_PROFILE}} {{GPU_I_ID}}")],
                unit="bytes")
    board.panel("GPU memory in use (share)", "Used / (used + free) framebuffer memory.",
                [(_memory_ratio(node), "{{node}} GPU {{gpu}} {{GPU_I_PROFILE}} {{GPU_I_ID}}")], unit="percentunit")
    board.panel("Power per GPU", "DCGM_FI_DEV_POWER_USAGE (W); a MIG GPU's power is the whole GPU's.",
                [("max by (node, gpu, modelName) (DCGM_FI_DEV_POWER_USAGE%s)" % node, "{{node}} GPU {{gpu}} {{modelName}}")],
                unit="watt")
    board.panel("Power per node", "Sum of the GPUs' power draw on each node.",
                [("sum by (node) (max by (node, gpu) (DCGM_FI_DEV_POWER_USAGE%s))" % node, "{{node}}")], unit="watt")
    board.panel("GPU temperature", "DCGM_FI_DEV_GPU_TEMP.",
                [("max by (node, gpu) (DCGM_FI_DEV_GPU_TEMP%s)" % node, "{{node}} GPU {{gpu}}")], unit="celsius")
    board.panel("Energy used in the time range", "Increase of DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ), in kWh.",
                [("sum by (node) (max by (node, gpu) (increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION%s[$__range]))) / 3.6e9"
                  % node, "{{node}}")], unit="kwatth")
    board.panel("Last Xid error per GPU", "DCGM_FI_DEV_XID_ERRORS: the last Xid the driver reported (0: none).",
                [("max by (node, gpu) (DCGM_FI_DEV_XID_ERRORS%s)" % node, "{{node}} GPU {{gpu}}")])
    board.panel("GPU resources per node: allocatable and requested",
                "kube-state-metrics: what each node advertises and what running or pending pods request.",
                [('kube_node_status_allocatable{resource=~"nvidia_com_.+", node=~"$node"}', "{{node}} {{resource}} allocatable"),
                 ("sum by (node, resource) (\n  %s\n)" % _running_requests('{resource=~"nvidia_com_.+", node=~"$node"}'),
                  "{{node}} {{resource}} requested")], width=24)
    return board.render()


def _tenants_board():
    board = _Board("ailab-gpu-tenants", "AI lab / GPU use by tenant, user and pod",
                   "DCGM metrics of the GPUs and MIG slices that pods hold, joined with the tenant label of their "
                   "namespace, the JupyterHub user and the Kueue queue of the pod (kube-state-metrics labels).")
    board.variable("tenant", "Tenant", "label_values(kube_namespace_labels{%s!=\"\"}, %s)" % (TENANT, TENANT))
    pods = '{pod!=""}'
    tenants = _tenant_namespaces("$tenant")
    users = "group by (namespace, pod, %s) (kube_pod_labels{%s!=\"\"})" % (USER, USER)
    queues = "group by (namespace, pod, %s) (kube_pod_labels{%s!=\"\"})" % (QUEUE, QUEUE)

    def by_tenant(expr):
        return "%s\n* on (namespace) group_left (%s) %s" % (expr, TENANT, tenants)

    def by_user(expr):
        return "(%s\n * on (namespace, pod) group_left (%s) %s)\n* on (namespace) group_left (%s) %s" % (
            expr, USER, users, TENANT, tenants)

    memory = "(DCGM_FI_DEV_FB_USED%s * 1048576)" % pods
    board.panel("GPU activity per tenant", "Sum of the activity (0-1) of the GPUs and slices the tenant's pods hold: "
                "2 means two fully busy GPUs or slices.",
                [("sum by (%s) (\n%s\n)" % (TENANT, by_tenant(_activity(pods))), "{{%s}}" % TENANT)])
    board.panel("GPU memory per tenant", "Framebuffer memory used by the tenant's pods.",
                [("sum by (%s) (\n%s\n)" % (TENANT, by_tenant(memory)), "{{%s}}" % TENANT)], unit="bytes")
    board.panel("GPU power per tenant", "Power of the whole GPUs the tenant's pods hold (the power of a shared "
                "or MIG-partitioned GPU belongs to no single pod).",
                [("sum by (%s) (\n%s\n)" % (TENANT, by_tenant("DCGM_FI_DEV_POWER_USAGE%s" % pods)), "{{%s}}" % TENANT)],
                unit="watt")
    board.panel("GPU quota per tenant: used and hard", "kube_resourcequota of the GPU resources in tenant namespaces.",
                [("sum by (namespace, resource) (\n%s\n)" % by_tenant('kube_resourcequota{resource=~"requests.nvidia.com/.+", type="used"}'),
                  "{{namespace}} {{resource}} used"),
                 ("sum by (namespace, resource) (\n%s\n)" % by_tenant('kube_resourcequota{resource=~"requests.nvidia.com/.+", type="hard"}'),
                  "{{namespace}} {{resource}} quota")])
    board.panel("GPU activity per JupyterHub user", "Pods with the label %s (notebook servers)." % USER_LABEL,
                [("sum by (%s, %s) (\n%s\n)" % (TENANT, USER, by_user(_activity(pods))), "{{%s}} {{%s}}" % (USER, TENANT))])
    board.panel("GPU memory per JupyterHub user", "Framebuffer memory of the user's notebook servers.",
                [("sum by (%s, %s) (\n%s\n)" % (TENANT, USER, by_user(memory)), "{{%s}} {{%s}}" % (USER, TENANT))],
                unit="bytes")
    board.panel("GPU activity per pod, GPU and MIG slice", "Each GPU or slice a pod holds.",
                [(by_tenant(_activity(pods)), "{{namespace}}/{{pod}} GPU {{gpu}} {{GPU_I_PROFILE}}")], unit="percentunit")
    board.panel("GPU memory per pod, GPU and MIG slice", "Each GPU or slice a pod holds.",
                [(by_tenant(memory), "{{namespace}}/{{pod}} GPU {{gpu}} {{GPU_I_PROFILE}}")], unit="bytes")
    # Kueue reads the queue label from the workload's top object: a Job carries it, its pods need not.
    jobs = ("group by (namespace, owner_name, %s) (\n  label_replace(kube_job_labels{%s!=\"\"}, \"owner_name\", \"$1\", "
            "\"job_name\", \"(.+)\")\n)" % (QUEUE, QUEUE))
    owners = 'group by (namespace, pod, owner_name) (kube_pod_owner{owner_kind="Job"})'
    board.panel("GPU activity per Kueue queue",
                "Pods labelled %s themselves, and pods of Jobs labelled with it (through kube_pod_owner)." % QUEUE_LABEL,
                [("sum by (namespace, %s) (\n(%s\n * on (namespace, pod) group_left (%s) %s)\n* on (namespace) group_left () %s\n)"
                  % (QUEUE, _activity(pods), QUEUE, queues, tenants), "{{namespace}}/{{%s}} (pods)" % QUEUE),
                 ("sum by (namespace, %s) (\n((%s\n  * on (namespace, pod) group_left (owner_name) %s)\n"
                  " * on (namespace, owner_name) group_left (%s) %s)\n* on (namespace) group_left () %s\n)"
                  % (QUEUE, _activity(pods), owners, QUEUE, jobs, tenants), "{{namespace}}/{{%s}} (jobs)" % QUEUE)])
    return board


def monitoring_grafana_dashboards(gpu_resources, settings):
    """{file name: dashboard JSON} of the lab's Grafana dashboards (see monitoring_grafana_dashboards.yml)."""
    if not isinstance(gpu_resources, list):
        _fail("monitoring_grafana_dashboards", "expects the output of lab_gpu_resources")
    s = _settings(settings)
    tenants = _tenants_board()
    tenants.panel("GPUs held with full memory and no activity",
                  "The condition of the alert AilabGPUIdleMemoryHeld, now: memory at least %s used, activity at most "
                  "%s (likely forgotten notebooks)." % (_number(s["idle_memory_ratio"]), _number(s["idle_activity_ratio"])),
                  [("(\n%s\n)\n* on (namespace) group_left (%s) %s" % (
                      idle_gpu_expr(s["idle_memory_ratio"], s["idle_activity_ratio"]), TENANT, _tenant_namespaces("$tenant")),
                    "{{namespace}}/{{pod}} GPU {{gpu}} {{GPU_I_PROFILE}}")], unit="percentunit", width=24)
    boards = {"ailab-gpu-nodes.json": _nodes_board(gpu_resources), "ailab-gpu-tenants.json": tenants.render()}
    return dict((name, json.dumps(board, indent=1, sort_keys=True, ensure_ascii=False)) for name, board in boards.items())


class FilterModule(object):
    def filters(self):
        return {
            "monitoring_gpu_nodes": monitoring_gpu_nodes,
            "monitoring_prometheus_rules": monitoring_prometheus_rules,
            "monitoring_grafana_dashboards": monitoring_grafana_dashboards,
        }
