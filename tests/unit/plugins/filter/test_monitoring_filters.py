# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring filters (plugins/filter/monitoring.py): GPU nodes, alert rules and Grafana dashboards.

The alert rules are checked and unit-tested with the real ``promtool`` (Debian's ``prometheus``
package): ``promtool check rules`` on the generated groups, and ``promtool test rules`` with input
series shaped like the DCGM exporter's (labels gpu, UUID, modelName, Hostname, GPU_I_PROFILE,
GPU_I_ID, pod, namespace, container, plus the node the ServiceMonitor adds) and kube-state-metrics'
(label_<k8s label> names, sanitised extended resource names): each alert fires when it should and
stays silent when it should not. Every dashboard query parses (promtool, as a recording rule), the
dashboards' joins (tenant, JupyterHub user, Kueue queue through the Job, capacity per resource key)
give the right numbers on such series (promtool's promql_expr_test), and
every metric name in a rule or query is a DCGM field of the reference ``default-counters.csv`` or a
kube-state-metrics / Ceph metric listed below with its source.
"""

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.lab_gpu import lab_gpu_resources
from ansible_collections.ailab.cluster.plugins.filter.monitoring import (
    FilterModule,
    monitoring_gpu_nodes,
    monitoring_grafana_dashboards,
    monitoring_prometheus_rules,
)

ROOT = Path(__file__).resolve().parents[4]
REFERENCE = Path(os.environ.get("AILAB_REFERENCE", ROOT.parent / "shared" / "reference"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus; only promtool is used)")

# Metrics other than DCGM fields, with where they are defined.
KNOWN_METRICS = {
    # kubernetes/kube-state-metrics docs/metrics/cluster/node-metrics.md
    "kube_node_status_allocatable": "kube-state-metrics node-metrics.md",
    "kube_node_labels": "kube-state-metrics node-metrics.md",
    # docs/metrics/workload/pod-metrics.md
    "kube_pod_container_resource_requests": "kube-state-metrics pod-metrics.md",
    "kube_pod_status_phase": "kube-state-metrics pod-metrics.md",
    "kube_pod_labels": "kube-state-metrics pod-metrics.md",
    "kube_pod_owner": "kube-state-metrics pod-metrics.md",
    # docs/metrics/workload/job-metrics.md
    "kube_job_labels": "kube-state-metrics job-metrics.md",
    # docs/metrics/cluster/namespace-metrics.md and docs/metrics/policy/resourcequota-metrics.md
    "kube_namespace_labels": "kube-state-metrics namespace-metrics.md",
    "kube_resourcequota": "kube-state-metrics resourcequota-metrics.md",
    # Ceph mgr prometheus module (src/pybind/mgr/prometheus/module.py, health_status), scraped by
    # Rook's ServiceMonitor rook-ceph-mgr when the CephCluster has monitoring.enabled.
    "ceph_health_status": "Ceph mgr prometheus module",
}

H200_MIXED = {"group": "gpu_h200", "gpu_model": "NVIDIA H200", "gpus_per_node": 1,
              "sharing": {"mode": "mig", "mig_strategy": "mixed",
                          "mig_layout": [{"profile": "2g.35gb", "count": 3}, {"profile": "1g.18gb", "count": 1}]}}
RTX = {"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "gpus_per_node": 2,
       "sharing": {"mode": "time-slicing", "replicas": 4}}
GROUPS = {"gpu_h200": ["h200-1"], "gpu_rtx": ["rtx-1", "rtx-2"]}
NODE_NAMES = {"rtx-1": "rtx-node-1"}
SETTINGS = {"idle_memory_ratio": 0.9, "idle_activity_ratio": 0.02, "idle_for": "2h", "gpu_lost_for": "10m",
            "quota_warning_ratio": 0.9, "quota_for": "15m", "ceph": True}


def resources():
    return lab_gpu_resources([H200_MIXED, RTX], GROUPS)


def nodes():
    return monitoring_gpu_nodes(resources(), [H200_MIXED, RTX], NODE_NAMES)


def rules(settings=None):
    return monitoring_prometheus_rules(nodes(), settings or SETTINGS)


def reference(relpath):
    """Path of an upstream reference file; skips the test when the reference data is not there."""
    path = REFERENCE / relpath
    if not path.exists():
        pytest.skip(f"upstream reference data {path} is not available (set AILAB_REFERENCE)")
    return path


def dcgm_counters():
    """Enabled fields of the reference default-counters.csv (format: field, type, help; # comments)."""
    fields = set()
    for raw in reference("dcgm-exporter/default-counters.csv").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            fields.add(line.split(",")[0].strip())
    return fields


# ----------------------------------------------------------------------------- PromQL reading
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
            "inf", "nan", "Inf", "NaN"}


def metric_names(expr):
    """The metric names a PromQL expression reads: identifiers that are not functions, aggregations,
    keywords, label names (in matchers or by/on/... lists) or numbers."""
    text = re.sub(r'"(\\.|[^"\\])*"', '""', expr)                      # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)                              # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                             # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w.])\d+(\.\d+)?([eE][+-]?\d+)?", " ", text)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if word in KEYWORDS or text[match.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def test_metric_names_reader():
    expr = ('sum by (node) (increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{node=~"a|b"}[5m])) / 3.6e9\n'
            '* on (namespace) group_left (label_x) group by (namespace, label_x) (kube_namespace_labels{label_x!=""})'
            ' or vector(3) and absent(foo_bar{a="sum(x)"}) > bool 1')
    assert metric_names(expr) == {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "kube_namespace_labels", "foo_bar"}


def grafana_promql(query):
    """A dashboard query as plain PromQL: Grafana's variables replaced by what they expand to."""
    return (query.replace("$__range", "1h").replace("$__rate_interval", "5m")
            .replace('"$node"', '".*"').replace('"$tenant"', '".*"'))


def dashboard_queries(board):
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    for var in board["templating"]["list"]:
        match = re.match(r"^label_values\((.*),\s*[A-Za-z_]\w*\)$", var["query"]["query"], re.S)
        assert match, var["query"]
        queries.append(match.group(1))
    return queries


def promtool(*args, cwd=None):
    proc = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


# -------------------------------------------------------------------------------------- nodes
def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "monitoring_gpu_nodes", "monitoring_prometheus_rules", "monitoring_grafana_dashboards"}


def test_gpu_nodes_expect_the_resources_of_their_group():
    assert nodes() == [
        {"node": "h200-1", "host": "h200-1", "group": "gpu_h200", "gpu_model": "NVIDIA H200", "gpus": 1,
         "allocatable": {"nvidia_com_mig_1g_18gb": 1, "nvidia_com_mig_2g_35gb": 3}},
        {"node": "rtx-2", "host": "rtx-2", "group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "gpus": 2,
         "allocatable": {"nvidia_com_gpu": 8}},
        {"node": "rtx-node-1", "host": "rtx-1", "group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "gpus": 2,
         "allocatable": {"nvidia_com_gpu": 8}},
    ]


def test_single_strategy_adds_up_on_nvidia_com_gpu():
    single = {"group": "gpu_h200", "gpu_model": "NVIDIA H200", "gpus_per_node": 2,
              "sharing": {"mode": "mig", "mig_strategy": "single", "mig_config": "all-1g.18gb"}}
    [node] = monitoring_gpu_nodes(lab_gpu_resources([single], {"gpu_h200": ["h1"]}), [single])
    assert node["allocatable"] == {"nvidia_com_gpu": 14} and node["gpus"] == 2


@pytest.mark.parametrize("names, message", [
    ({"rtx-1": "RTX_1"}, "the Kubernetes node name 'RTX_1' of host rtx-1 is not a DNS name; set kubeadm_worker_node_name"),
    ({"rtx-1": "rtx-2"}, "hosts rtx-1 and rtx-2 both register as node rtx-2"),
])
def test_bad_node_names_are_refused(names, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        monitoring_gpu_nodes(resources(), [H200_MIXED, RTX], names)


def test_a_lab_without_gpus_has_no_gpu_alerts_and_a_capacity_panel_of_nothing():
    assert monitoring_gpu_nodes([], []) == []
    names = [g["name"] for g in monitoring_prometheus_rules([], SETTINGS)]
    assert names == ["ailab.tenants", "ailab.ceph"]
    board = json.loads(monitoring_grafana_dashboards([], SETTINGS)["ailab-gpu-nodes.json"])
    assert "GPU resources of the lab" not in [p["title"] for p in board["panels"]]


@pytest.mark.parametrize("change, message", [
    ({"idle_memory_ratio": 1.5}, "monitoring_alert_idle_memory_ratio: must be a number above 0 and at most 1, got 1.5"),
    ({"idle_activity_ratio": "low"}, "monitoring_alert_idle_activity_ratio: must be a number from 0 to below 1"),
    ({"idle_for": "2 hours"}, "monitoring_alert_idle_for: must be a Prometheus duration such as 2h, got '2 hours'"),
    ({"quota_warning_ratio": 1}, "monitoring_alert_quota_warning_ratio: must be a number above 0 and below 1"),
    ({"ceph": "yes"}, "monitoring_ceph: must be true or false"),
    ({"gpu_lost_for": None}, "monitoring_alert_gpu_lost_for: must be a Prometheus duration"),
])
def test_bad_alert_settings_name_the_variable(change, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        monitoring_prometheus_rules(nodes(), dict(SETTINGS, **change))
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        monitoring_grafana_dashboards(resources(), dict(SETTINGS, **change))


def test_wrong_inputs_are_refused():
    with pytest.raises(AnsibleFilterError, match="expects the output of monitoring_gpu_nodes"):
        monitoring_prometheus_rules({"h": 1}, SETTINGS)
    with pytest.raises(AnsibleFilterError, match="expects the output of lab_gpu_resources"):
        monitoring_grafana_dashboards("gpu", SETTINGS)
    with pytest.raises(AnsibleFilterError, match="monitoring_alert_idle_for: missing"):
        monitoring_prometheus_rules(nodes(), {k: v for k, v in SETTINGS.items() if k != "idle_for"})


def test_ceph_alerts_can_be_left_out():
    assert "ailab.ceph" not in [g["name"] for g in rules(dict(SETTINGS, ceph=False))]


# ------------------------------------------------------------------------------ metric names
def test_every_metric_used_is_a_dcgm_counter_or_a_cited_metric():
    counters = dcgm_counters()
    assert {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE"} <= counters
    used = set()
    for group in rules():
        for rule in group["rules"]:
            used |= metric_names(rule["expr"])
    for text in monitoring_grafana_dashboards(resources(), SETTINGS).values():
        for query in dashboard_queries(json.loads(text)):
            used |= metric_names(grafana_promql(query))
    unknown = sorted(m for m in used if m not in counters and m not in KNOWN_METRICS)
    assert unknown == []
    # The DCGM fields the dashboards and alerts rely on are all enabled by default.
    assert {m for m in used if m.startswith("DCGM_")} == {
        "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_XID_ERRORS"}


def test_the_metric_check_bites():
    """A field that default-counters.csv lists only as a comment is not accepted."""
    assert "DCGM_FI_DEV_POWER_VIOLATION" not in dcgm_counters()
    assert "DCGM_FI_DEV_FB_TOTAL" not in dcgm_counters()


# ----------------------------------------------------------------------------------- dashboards
def test_dashboards_are_grafana_json_for_the_stacks_datasource():
    upstream = yaml.safe_load(reference("kube-prometheus-stack/values.yaml").read_text())
    uid = upstream["grafana"]["sidecar"]["datasources"]["uid"]
    boards = monitoring_grafana_dashboards(resources(), SETTINGS)
    assert sorted(boards) == ["ailab-gpu-nodes.json", "ailab-gpu-tenants.json"]
    for name, text in boards.items():
        board = json.loads(text)
        assert board["uid"] == name[:-5] and board["schemaVersion"] == 39
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}
            assert panel["targets"] and panel["title"] and panel["description"]
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
        # Panels do not overlap.
        cells = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            here = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
            assert not cells & here, panel["title"]
            cells |= here


def test_dashboards_show_each_resource_key_and_join_pods_with_tenant_user_and_queue():
    boards = monitoring_grafana_dashboards(resources(), SETTINGS)
    nodes_board = json.loads(boards["ailab-gpu-nodes.json"])
    capacity = next(p for p in nodes_board["panels"] if p["title"] == "GPU resources of the lab")
    legends = [t["legendFormat"] for t in capacity["targets"]]
    for key, capacity_value in (("mig-1g.18gb", 1), ("mig-2g.35gb", 3), ("rtx-3090-shared", 16)):
        assert f"{key} capacity (inventory)" in legends
        assert {"expr": f"vector({capacity_value})", "legendFormat": f"{key} capacity (inventory)"}.items() <= next(
            t for t in capacity["targets"] if t["legendFormat"] == f"{key} capacity (inventory)").items()
    assert any('label_ailab_cluster_gpu_group="gpu_h200"' in t["expr"] and "nvidia_com_mig_2g_35gb" in t["expr"]
               for t in capacity["targets"])
    tenants_board = json.loads(boards["ailab-gpu-tenants.json"])
    queries = "\n".join(dashboard_queries(tenants_board))
    for label in ("label_ailab_cluster_tenant", "label_hub_jupyter_org_username", "label_kueue_x_k8s_io_queue_name"):
        assert label in queries
    titles = [p["title"] for p in tenants_board["panels"]]
    assert "GPU activity per JupyterHub user" in titles and "GPU activity per Kueue queue" in titles
    queue = next(p for p in tenants_board["panels"] if p["title"] == "GPU activity per Kueue queue")
    assert 'kube_pod_owner{owner_kind="Job"}' in queue["targets"][1]["expr"] and "kube_job_labels" in queue["targets"][1]["expr"]


@needs_promtool
def test_every_dashboard_query_parses(tmp_path):
    queries = []
    for text in monitoring_grafana_dashboards(resources(), SETTINGS).values():
        queries += [grafana_promql(q) for q in dashboard_queries(json.loads(text))]
    assert len(queries) > 20
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": [
        {"record": "ailab:dashboard_query:%d" % i, "expr": q} for i, q in enumerate(queries)]}]}))
    rc, out = promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert rc == 0, out
    assert "SUCCESS: %d rules found" % len(queries) in out


@needs_promtool
def test_promtool_check_bites(tmp_path):
    (tmp_path / "bad.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "x:y", "expr": "sum by (node (DCGM_FI_DEV_GPU_UTIL)"}]}]}))
    rc, _out = promtool("check", "rules", "bad.yml", cwd=tmp_path)
    assert rc != 0


# ---------------------------------------------------------------------------------- alert rules
@needs_promtool
def test_promtool_checks_the_rules(tmp_path):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rules()}))
    rc, out = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert rc == 0, out
    assert "SUCCESS: 7 rules found" in out


def dcgm(metric, node, gpu, pod=None, namespace=None, profile=None, instance_id=None, model="NVIDIA H200"):
    labels = {"gpu": str(gpu), "UUID": "GPU-%s-%d" % (node, gpu), "device": "nvidia%d" % gpu, "modelName": model,
              "Hostname": "nvidia-dcgm-exporter-x", "DCGM_FI_DRIVER_VERSION": "580.159.04", "node": node,
              "job": "nvidia-dcgm-exporter", "instance": "10.244.1.7:9400"}
    if profile:
        labels.update(GPU_I_PROFILE=profile, GPU_I_ID=str(instance_id))
    if pod:
        labels.update(pod=pod, namespace=namespace, container="notebook")
    return metric, labels


def series(metric_labels, values):
    metric, labels = metric_labels
    return {"series": metric + "{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}", "values": values}


def alert(metric_labels, **extra):
    _metric, labels = metric_labels
    return {"exp_labels": dict(labels, **extra)}


def allocatable(node, resource, values):
    return series(("kube_node_status_allocatable", {"node": node, "resource": resource, "unit": "integer"}), values)


def healthy_nodes(skip=()):
    """kube-state-metrics and DCGM series of the lab's GPU nodes as the inventory expects them."""
    found = []
    for node, resource, count in (("h200-1", "nvidia_com_mig_1g_18gb", 1), ("h200-1", "nvidia_com_mig_2g_35gb", 3),
                                  ("rtx-2", "nvidia_com_gpu", 8), ("rtx-node-1", "nvidia_com_gpu", 8)):
        if (node, resource) not in skip:
            found.append(allocatable(node, resource, "%dx60" % count))
    for node, gpus in (("h200-1", 1), ("rtx-2", 2), ("rtx-node-1", 2)):
        for gpu in range(gpus):
            if (node, gpu) not in skip:
                found.append(series(dcgm("DCGM_FI_DEV_GPU_TEMP", node, gpu), "40x60"))
    return found


def without_annotations(groups):
    groups = copy.deepcopy(groups)
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return groups


NOTEBOOK = dict(pod="jupyter-alice", namespace="cs101")
SLICE = dict(profile="1g.18gb", instance_id=13)


def unit_tests():
    """(name, input series, [(eval time, alert name, expected alerts)])."""
    idle_used = dcgm("DCGM_FI_DEV_FB_USED", "h200-1", 0, **NOTEBOOK, **SLICE)
    idle_free = dcgm("DCGM_FI_DEV_FB_FREE", "h200-1", 0, **NOTEBOOK, **SLICE)
    idle_act = dcgm("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "h200-1", 0, **NOTEBOOK, **SLICE)
    busy = dict(pod="train-1", namespace="vision")
    busy_used = dcgm("DCGM_FI_DEV_FB_USED", "h200-1", 0, profile="2g.35gb", instance_id=5, **busy)
    busy_free = dcgm("DCGM_FI_DEV_FB_FREE", "h200-1", 0, profile="2g.35gb", instance_id=5, **busy)
    busy_act = dcgm("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "h200-1", 0, profile="2g.35gb", instance_id=5, **busy)
    rtx = dict(pod="jupyter-bob", namespace="cs101", model="NVIDIA GeForce RTX 3090")
    rtx_used = dcgm("DCGM_FI_DEV_FB_USED", "rtx-2", 1, **rtx)
    rtx_free = dcgm("DCGM_FI_DEV_FB_FREE", "rtx-2", 1, **rtx)
    rtx_util = dcgm("DCGM_FI_DEV_GPU_UTIL", "rtx-2", 1, **rtx)
    # A GPU nobody holds (no pod label): full memory and idle, but no notebook to blame.
    free_used = dcgm("DCGM_FI_DEV_FB_USED", "rtx-node-1", 0, model="NVIDIA GeForce RTX 3090")
    free_free = dcgm("DCGM_FI_DEV_FB_FREE", "rtx-node-1", 0, model="NVIDIA GeForce RTX 3090")
    free_util = dcgm("DCGM_FI_DEV_GPU_UTIL", "rtx-node-1", 0, model="NVIDIA GeForce RTX 3090")

    def quota(namespace, resource, kind, values):
        return series(("kube_resourcequota", {"namespace": namespace, "resourcequota": namespace, "resource": resource,
                                              "type": kind}), values)

    def tenant_ns(namespace):
        return series(("kube_namespace_labels", {"namespace": namespace, "label_ailab_cluster_tenant": namespace}), "1x60")

    full = {"namespace": "cs101", "resourcequota": "cs101", "resource": "requests.nvidia.com/mig-1g.18gb",
            # One-to-one matching on (namespace, resourcequota, resource) keeps only those labels.
            "label_ailab_cluster_tenant": "cs101"}
    near = dict(full, resource="requests.cpu")
    return [
        ("the inventory's GPUs are all there", healthy_nodes(),
         [("30m", "AilabGPUNodeLostGPUs", []), ("30m", "AilabGPUMetricsMissing", [])]),
        ("a MIG node advertises 2 of its 3 2g.35gb slices",
         healthy_nodes(skip={("h200-1", "nvidia_com_mig_2g_35gb")}) + [allocatable("h200-1", "nvidia_com_mig_2g_35gb", "3 2x60")],
         [("5m", "AilabGPUNodeLostGPUs", []),
          ("20m", "AilabGPUNodeLostGPUs", [{"exp_labels": {"node": "h200-1", "resource": "nvidia_com_mig_2g_35gb",
                                                           "unit": "integer", "severity": "warning"}}])]),
        ("a GPU node advertises no GPU resource at all",
         healthy_nodes(skip={("rtx-2", "nvidia_com_gpu")}),
         [("20m", "AilabGPUNodeLostGPUs", [{"exp_labels": {"node": "rtx-2", "resource": "nvidia_com_gpu",
                                                           "severity": "warning"}}])]),
        ("DCGM sees one of the two GPUs of a node, and none on another",
         healthy_nodes(skip={("rtx-node-1", 1), ("rtx-2", 0), ("rtx-2", 1)}),
         [("20m", "AilabGPUMetricsMissing", [{"exp_labels": {"node": "rtx-2", "severity": "warning"}},
                                             {"exp_labels": {"node": "rtx-node-1", "severity": "warning"}}]),
          ("20m", "AilabGPUNodeLostGPUs", [])]),
        ("a notebook holds a MIG slice's memory with no activity for 3h; a job uses its slice",
         [series(idle_used, "17000x180"), series(idle_free, "600x180"), series(idle_act, "0x180"),
          series(busy_used, "33000x180"), series(busy_free, "100x180"), series(busy_act, "0.85x180")],
         [("1h", "AilabGPUIdleMemoryHeld", []),
          ("2h30m", "AilabGPUIdleMemoryHeld", [alert(("", dict(idle_used[1])), severity="info")])]),
        ("a GeForce card without profiling metrics: idle by DCGM_FI_DEV_GPU_UTIL",
         [series(rtx_used, "23000x180"), series(rtx_free, "500x180"), series(rtx_util, "0x180"),
          series(free_used, "23000x180"), series(free_free, "500x180"), series(free_util, "0x180")],
         [("2h30m", "AilabGPUIdleMemoryHeld", [alert(("", dict(rtx_used[1])), severity="info")])]),
        ("the same card busy, or with little memory in use, or idle only for an hour",
         [series(rtx_used, "23000x180"), series(rtx_free, "500x180"), series(rtx_util, "0x60 40x120"),
          series(idle_used, "2000x180"), series(idle_free, "15600x180"), series(idle_act, "0x180")],
         [("2h30m", "AilabGPUIdleMemoryHeld", [])]),
        ("a tenant at its GPU quota, another near its CPU quota, a system namespace full",
         [quota("cs101", "requests.nvidia.com/mig-1g.18gb", "used", "8x60"),
          quota("cs101", "requests.nvidia.com/mig-1g.18gb", "hard", "8x60"),
          quota("cs101", "requests.cpu", "used", "58x60"), quota("cs101", "requests.cpu", "hard", "64x60"),
          quota("cs101", "requests.memory", "used", "0x60"), quota("cs101", "requests.memory", "hard", "0x60"),
          quota("kube-system", "pods", "used", "10x60"), quota("kube-system", "pods", "hard", "10x60"),
          tenant_ns("cs101"), series(("kube_namespace_labels", {"namespace": "kube-system"}), "1x60")],
         [("10m", "AilabTenantQuotaReached", []), ("10m", "AilabTenantQuotaNearlyFull", []),
          ("20m", "AilabTenantQuotaReached", [{"exp_labels": dict(full, severity="warning")}]),
          ("20m", "AilabTenantQuotaNearlyFull", [{"exp_labels": dict(near, severity="info")}])]),
        ("Ceph in HEALTH_WARN, then HEALTH_ERR, then HEALTH_OK",
         [series(("ceph_health_status", {"namespace": "rook-ceph", "job": "rook-ceph-mgr"}), "1x20 2x20 0x20")],
         [("18m", "AilabCephHealthWarning", [{"exp_labels": {"namespace": "rook-ceph", "job": "rook-ceph-mgr",
                                                             "severity": "warning"}}]),
          ("18m", "AilabCephHealthError", []),
          ("30m", "AilabCephHealthError", [{"exp_labels": {"namespace": "rook-ceph", "job": "rook-ceph-mgr",
                                                           "severity": "critical"}}]),
          ("30m", "AilabCephHealthWarning", []),
          ("55m", "AilabCephHealthError", [])]),
    ]


def promtool_test_file(cases):
    return {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [
        {"name": name, "interval": "1m", "input_series": inputs,
         "alert_rule_test": [{"eval_time": t, "alertname": a, "exp_alerts": e} for t, a, e in checks]}
        for name, inputs, checks in cases]}


def every_alert():
    return {r["alert"] for g in rules() for r in g["rules"]}


def test_every_alert_is_unit_tested_firing_and_silent():
    fired, silent = set(), set()
    for _name, _inputs, checks in unit_tests():
        for _time, name, expected in checks:
            (fired if expected else silent).add(name)
    assert fired == every_alert() and silent == every_alert()


@needs_promtool
def test_promtool_unit_tests_of_every_alert(tmp_path):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": without_annotations(rules())}))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(promtool_test_file(unit_tests()), sort_keys=False))
    rc, out = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert rc == 0, out


@needs_promtool
def test_promtool_unit_tests_bite(tmp_path):
    """The same test file fails when a rule is wrong: here the idle threshold is set above any usage."""
    broken = without_annotations(rules(dict(SETTINGS, idle_memory_ratio=1.0)))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": broken}))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(promtool_test_file(unit_tests()), sort_keys=False))
    rc, out = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert rc != 0 and "AilabGPUIdleMemoryHeld" in out


# ------------------------------------------------------------------------ dashboard joins on data
def panel_query(board, title, ref="A"):
    panel = next(p for p in board["panels"] if p["title"] == title)
    return grafana_promql(next(t["expr"] for t in panel["targets"] if t["refId"] == ref))


def join_inputs():
    """One H200 node: alice's notebook (cs101) on a 1g.18gb slice, a vision Job of queue vision-gpu on a
    2g.35gb slice, an idle slice; kube-state-metrics labels of namespaces, pods, Jobs and nodes."""
    alice = dict(pod="jupyter-alice", namespace="cs101", **SLICE)
    job = dict(pod="train-x7k2p", namespace="vision", profile="2g.35gb", instance_id=5)
    idle = dict(profile="2g.35gb", instance_id=6)
    ksm = {"job": "kube-state-metrics", "instance": "10.244.0.9:8080"}
    return [
        series(dcgm("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "h200-1", 0, **alice), "0.25x10"),
        series(dcgm("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "h200-1", 0, **job), "0.75x10"),
        series(dcgm("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "h200-1", 0, **idle), "0x10"),
        series(dcgm("DCGM_FI_DEV_FB_USED", "h200-1", 0, **alice), "1024x10"),
        series(dcgm("DCGM_FI_DEV_FB_USED", "h200-1", 0, **job), "2048x10"),
        series(("kube_namespace_labels", dict(ksm, namespace="cs101", label_ailab_cluster_tenant="cs101")), "1x10"),
        series(("kube_namespace_labels", dict(ksm, namespace="vision", label_ailab_cluster_tenant="vision")), "1x10"),
        series(("kube_pod_labels", dict(ksm, namespace="cs101", pod="jupyter-alice", label_hub_jupyter_org_username="alice")),
               "1x10"),
        series(("kube_pod_labels", dict(ksm, namespace="vision", pod="train-x7k2p")), "1x10"),
        series(("kube_pod_owner", dict(ksm, namespace="vision", pod="train-x7k2p", owner_kind="Job", owner_name="train",
                                       owner_is_controller="true")), "1x10"),
        series(("kube_job_labels", dict(ksm, namespace="vision", job_name="train",
                                        label_kueue_x_k8s_io_queue_name="vision-gpu")), "1x10"),
        series(("kube_node_labels", dict(ksm, node="h200-1", label_ailab_cluster_gpu_group="gpu_h200")), "1x10"),
        series(("kube_node_status_allocatable", dict(ksm, node="h200-1", resource="nvidia_com_mig_2g_35gb", unit="integer")),
               "3x10"),
        series(("kube_pod_container_resource_requests", dict(ksm, namespace="vision", pod="train-x7k2p", container="main",
                                                             node="h200-1", resource="nvidia_com_mig_2g_35gb",
                                                             unit="integer")), "1x10"),
        series(("kube_pod_container_resource_requests", dict(ksm, namespace="vision", pod="done-1", container="main",
                                                             node="h200-1", resource="nvidia_com_mig_2g_35gb",
                                                             unit="integer")), "1x10"),
        series(("kube_pod_status_phase", dict(ksm, namespace="vision", pod="train-x7k2p", phase="Running")), "1x10"),
        series(("kube_pod_status_phase", dict(ksm, namespace="vision", pod="done-1", phase="Running")), "0x10"),
        series(("kube_pod_status_phase", dict(ksm, namespace="vision", pod="done-1", phase="Succeeded")), "1x10"),
    ]


def join_expectations():
    boards = monitoring_grafana_dashboards(resources(), SETTINGS)
    nodes_board, tenants_board = json.loads(boards["ailab-gpu-nodes.json"]), json.loads(boards["ailab-gpu-tenants.json"])
    capacity = next(p for p in nodes_board["panels"] if p["title"] == "GPU resources of the lab")

    def key_target(legend):
        return grafana_promql(next(t["expr"] for t in capacity["targets"] if t["legendFormat"] == legend))

    return [
        (panel_query(tenants_board, "GPU activity per tenant"),
         [("{label_ailab_cluster_tenant=\"cs101\"}", 0.25), ("{label_ailab_cluster_tenant=\"vision\"}", 0.75)]),
        (panel_query(tenants_board, "GPU memory per tenant"),
         [("{label_ailab_cluster_tenant=\"cs101\"}", 1024 * 1048576), ("{label_ailab_cluster_tenant=\"vision\"}", 2048 * 1048576)]),
        (panel_query(tenants_board, "GPU activity per JupyterHub user"),
         [("{label_ailab_cluster_tenant=\"cs101\", label_hub_jupyter_org_username=\"alice\"}", 0.25)]),
        (panel_query(tenants_board, "GPU activity per Kueue queue", "B"),
         [("{namespace=\"vision\", label_kueue_x_k8s_io_queue_name=\"vision-gpu\"}", 0.75)]),
        (key_target("mig-2g.35gb allocatable"), [("{}", 3)]),
        # The finished pod's request does not count.
        (key_target("mig-2g.35gb requested"), [("{}", 1)]),
        (key_target("mig-2g.35gb capacity (inventory)"), [("{}", 3)]),
    ]


def promtool_expr_tests(tmp_path, expectations):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": []}))
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": join_inputs(),
        "promql_expr_test": [{"expr": expr, "eval_time": "5m",
                              "exp_samples": [{"labels": labels, "value": value} for labels, value in samples]}
                             for expr, samples in expectations]}]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    return promtool("test", "rules", "tests.yml", cwd=tmp_path)


@needs_promtool
def test_dashboard_joins_give_the_right_numbers(tmp_path):
    """The dashboards' joins evaluated by promtool on series shaped like DCGM's and kube-state-metrics'."""
    rc, out = promtool_expr_tests(tmp_path, join_expectations())
    assert rc == 0, out


@needs_promtool
def test_dashboard_join_tests_bite(tmp_path):
    expectations = join_expectations()
    query, _samples = expectations[2]
    expectations[2] = (query, [("{label_ailab_cluster_tenant=\"cs101\", label_hub_jupyter_org_username=\"bob\"}", 0.25)])
    rc, _out = promtool_expr_tests(tmp_path, expectations)
    assert rc != 0
