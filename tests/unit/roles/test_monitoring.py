"""playbooks/monitoring.yml (role monitoring) in export mode.

One ansible-playbook run exports every lab shape: each host of the group ``labs`` stands for one lab
(its own GPU node groups, settings and export directory) and the playbook runs on that group
(``-e ailab_platform_hosts=labs``). The same run imports the playbook a second time with another
export directory per lab (the two exports must be byte-identical). Every host is an SSH host on a
closed loopback port (127.0.0.1:9): export mode must never connect to it; a canary play proves that
connecting fails. A second run exports the good labs in check mode (nothing may be written).
The exported PrometheusRule is checked with the real promtool; the alerts' firing logic is
unit-tested in tests/unit/plugins/filter/test_monitoring_filters.py.
"""

import json
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.ailab.cluster.plugins.filter.lab_gpu import lab_gpu_resources
from ansible_collections.ailab.cluster.plugins.filter.monitoring import (
    monitoring_gpu_nodes,
    monitoring_grafana_dashboards,
    monitoring_prometheus_rules,
)
from export_check import check_chart_values, check_export
from unit.roles.playbook_runner import (UNREACHABLE, assert_apply_check_changes_nothing, assert_check_mode_writes_nothing,
                                        assert_export_touches_no_node, assert_refused, assert_same_files, export_objects,
                                        local_inventory, of_kind, platform_plays, reference, run_playbook, shared_run)


H200_MIXED = {"group": "gpu_h200", "gpu_model": "NVIDIA H200", "gpus_per_node": 1,
              "sharing": {"mode": "mig", "mig_strategy": "mixed",
                          "mig_layout": [{"profile": "2g.35gb", "count": 3}, {"profile": "1g.18gb", "count": 1}]}}
RTX = {"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "gpus_per_node": 2,
       "sharing": {"mode": "time-slicing", "replicas": 4}}
H200_SINGLE = {"group": "gpu_h200b", "gpu_model": "NVIDIA H200", "gpus_per_node": 2,
               "sharing": {"mode": "mig", "mig_strategy": "single", "mig_config": "all-1g.18gb"}}
GPU_GROUPS = {"gpu_h200": ["h200-1"], "gpu_rtx": ["rtx-1", "rtx-2"], "gpu_h200b": ["h200-2"]}
NODE_VARS = {"rtx-1": {"kubeadm_worker_node_name": "rtx-node-1"}}

GOOD = {
    # MIG (mixed) and time-sliced GPU groups, Ceph storage (Rook), every default.
    "gpu": {"ailab_gpu_node_groups": [H200_MIXED, RTX], "ailab_storage_backends": ["rook_ceph", "local_path"]},
    # MIG under the single strategy, stricter idle alert, no Ceph, Prometheus on a volume.
    "single": {"ailab_gpu_node_groups": [H200_SINGLE], "monitoring_alert_idle_for": "4h",
               "monitoring_alert_idle_memory_ratio": 0.95,
               "monitoring_prometheus_storage_size": "50Gi", "monitoring_prometheus_storage_class": "ceph-block"},
    # Air gap, no GPUs: mirrors for the chart and images, Grafana behind MetalLB with its own admin
    # password, control-plane scraping on, Alertmanager off through the chart values.
    "airgap": {"monitoring_image_registry": "harbor.lab.example/proxy/",
               "monitoring_chart_repo_url": "https://harbor.lab.example/chartrepo/prometheus-community",
               "monitoring_grafana_admin_password": "grafana-s3cret-pw", "monitoring_grafana_service_type": "LoadBalancer",
               "monitoring_grafana_load_balancer_ip": "192.168.10.242", "monitoring_scrape_control_plane": True,
               "monitoring_chart_values": {"alertmanager": {"enabled": False}},
               "monitoring_ceph": True, "rook_ceph_namespace": "ceph"},
}

BAD = {
    "bad_twice": ({"ailab_gpu_node_groups": [RTX], "gpu_operator_dcgm_exporter_service_monitor": True},
                  ["gpu_operator_dcgm_exporter_service_monitor are true", "scrape every GPU twice"]),
    "bad_ratio": ({"ailab_gpu_node_groups": [RTX], "monitoring_alert_idle_memory_ratio": 1.5},
                  ["monitoring_alert_idle_memory_ratio: must be a number above 0 and at most 1"]),
    "bad_gpu": ({"ailab_gpu_node_groups": [dict(H200_MIXED, sharing={"mode": "mig", "mig_strategy": "mixed",
                                                                     "mig_layout": [{"profile": "2g.20gb", "count": 3}]})]},
                ["2g.20gb"]),
    "bad_service": ({"monitoring_grafana_service_type": "NodePort"}, ["monitoring_grafana_service_type", "ClusterIP, LoadBalancer"]),
    "bad_password": ({"monitoring_grafana_admin_password": "short"}, ["at least 8 characters"]),
    "bad_retention": ({"monitoring_prometheus_retention": "two weeks"}, ["monitoring_prometheus_retention a", "15d"]),
}

AGAIN = "again"

# Apply mode on this machine (local connection, no become), where no cluster exists
# (/etc/kubernetes/admin.conf is absent): check mode passes and changes nothing, a real run stops
# with the message that says what to do.
NO_CLUSTER = {"ansible_connection": "local", "ansible_become": False, "monitoring_kubeconfig": "/nonexistent/admin.conf"}
APPLY = {"apply_check": NO_CLUSTER, "bad_no_cluster": NO_CLUSTER}


def inventory(root, labs):
    host_vars = {name: dict(UNREACHABLE, ailab_kubernetes_export_dir=str(root / "export" / name),
                            **(GOOD[name] if name in GOOD else BAD[name][0])) for name in labs if name not in APPLY}
    for name in labs:
        if name in APPLY:
            host_vars[name] = dict(APPLY[name])
    host_vars["canary"] = dict(UNREACHABLE)
    for hosts in GPU_GROUPS.values():
        for host in hosts:
            host_vars[host] = dict(UNREACHABLE, **NODE_VARS.get(host, {}))
    groups = {"labs": list(labs), "canary_hosts": ["canary"], **GPU_GROUPS}
    return local_inventory(groups, host_vars=host_vars)


def build(tmp, labs, check=False):
    plays = platform_plays("Monitoring", "monitoring.yml", again=not check, again_root=tmp / AGAIN)
    return run_playbook(tmp, plays, inventory(tmp, labs), "-e", "ailab_platform_hosts=labs", check=check)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_run(tmp_path_factory, "monitoring-export", lambda tmp: build(tmp, list(GOOD) + list(BAD) + ["bad_no_cluster"]))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return shared_run(tmp_path_factory, "monitoring-check", lambda tmp: build(tmp, list(GOOD) + ["apply_check"], check=True))


def release(directory):
    [rel] = yaml.safe_load((directory / "releases.yml").read_text())["releases"]
    return rel, yaml.safe_load((directory / rel["values_file"]).read_text())


def settings(lab):
    given = GOOD[lab]
    return {"idle_memory_ratio": given.get("monitoring_alert_idle_memory_ratio", 0.9), "idle_activity_ratio": 0.02,
            "idle_for": given.get("monitoring_alert_idle_for", "2h"), "gpu_lost_for": "10m",
            "quota_warning_ratio": 0.9, "quota_for": "15m",
            "ceph": given.get("monitoring_ceph", "rook_ceph" in given.get("ailab_storage_backends", []))}


def lab_resources(lab):
    node_groups = GOOD[lab].get("ailab_gpu_node_groups", [])
    return node_groups, lab_gpu_resources(node_groups, GPU_GROUPS)


# ------------------------------------------------------------------------------------ good labs
@pytest.mark.parametrize("lab", list(GOOD))
def test_export_is_valid(exported, lab):
    tmp, run = exported
    assert run.stats[lab]["failures"] == 0, run.failure(lab)
    problems = check_export(tmp / "export" / lab)
    assert problems == []


def test_the_subchart_key_is_the_only_free_form_value():
    """kube-prometheus-stack's kube-state-metrics subchart values are not in the reference data:
    export_check takes the one key the role sets there as free-form, and still refuses others."""
    values = {"kube-state-metrics": {"metricLabelsAllowlist": ["namespaces=[ailab.cluster/tenant]"]},
              "prometheus": {"prometheusSpec": {"serviceMonitorSelectorNilUsesHelmValues": False}}}
    assert check_chart_values("kube-prometheus-stack", values) == []
    assert check_chart_values("kube-prometheus-stack", {"kube-state-metrics": {"metricLabelsAlowlist": []}}) == [
        "kube-prometheus-stack: kube-state-metrics.metricLabelsAlowlist: not a value of the chart (not in its values.yaml)"]


@pytest.mark.parametrize("lab", list(GOOD))
def test_prometheus_selects_other_charts_monitors_and_rules(exported, lab):
    tmp, _run = exported
    rel, values = release(tmp / "export" / lab)
    assert (rel["name"], rel["namespace"], rel["chart"], rel["version"]) == (
        "kube-prometheus-stack", "monitoring", "kube-prometheus-stack", "88.5.3")
    assert yaml.safe_load(reference("kube-prometheus-stack/Chart.yaml").read_text())["version"] == "88.5.3"
    spec = values["prometheus"]["prometheusSpec"]
    # The chart's default (true) would select only ServiceMonitors labelled release=kube-prometheus-stack:
    # neither the lab's DCGM ServiceMonitor nor the GPU Operator's and Rook's carry that label.
    upstream = yaml.safe_load(reference("kube-prometheus-stack/values.yaml").read_text())["prometheus"]["prometheusSpec"]
    for key in ("serviceMonitorSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues",
                "ruleSelectorNilUsesHelmValues"):
        assert upstream[key] is True and spec[key] is False
    monitors = of_kind(export_objects(tmp / "export" / lab), "ServiceMonitor")
    assert all("release" not in m["metadata"].get("labels", {}) for m in monitors.values())
    # kube-state-metrics exports the labels the dashboards and alerts join on.
    assert values["kube-state-metrics"]["metricLabelsAllowlist"] == [
        "namespaces=[ailab.cluster/tenant]", "nodes=[ailab.cluster/gpu-group]",
        "pods=[hub.jupyter.org/username,kueue.x-k8s.io/queue-name]", "jobs=[kueue.x-k8s.io/queue-name]"]


@pytest.mark.parametrize("lab", ["gpu", "airgap"])
def test_ceph_mgr_service_monitor_follows_the_storage_backends(exported, lab):
    tmp, _run = exported
    namespace = GOOD[lab].get("rook_ceph_namespace", "rook-ceph")
    monitor = of_kind(export_objects(tmp / "export" / lab), "ServiceMonitor")["ailab-rook-ceph-mgr"]
    # Rook's Service: deploy/examples/monitoring/service-monitor.yaml of rook/rook selects it so.
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [namespace]}
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": "rook-ceph-mgr", "rook_cluster": namespace}}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http-metrics"]
    assert "ailab-rook-ceph-mgr" not in of_kind(export_objects(tmp / "export" / "single"), "ServiceMonitor")


@pytest.mark.parametrize("lab", ["gpu", "single"])
def test_dcgm_service_monitor_keeps_the_pod_labels_and_adds_the_node(exported, lab):
    tmp, _run = exported
    monitor = of_kind(export_objects(tmp / "export" / lab), "ServiceMonitor")["ailab-dcgm-exporter"]
    spec = monitor["spec"]
    # The GPU Operator's Service: assets/state-dcgm-exporter/0600_service.yaml of NVIDIA/gpu-operator.
    assert spec["namespaceSelector"] == {"matchNames": ["gpu-operator"]}
    assert spec["selector"] == {"matchLabels": {"app": "nvidia-dcgm-exporter"}}
    [endpoint] = spec["endpoints"]
    assert endpoint["port"] == "gpu-metrics" and endpoint["honorLabels"] is True
    assert {"action": "labeldrop", "regex": "(pod|namespace|container)"} in endpoint["relabelings"]
    assert {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in endpoint["relabelings"]


@pytest.mark.parametrize("lab", list(GOOD))
def test_rules_and_dashboards_are_the_lab_models(exported, lab):
    tmp, _run = exported
    found = export_objects(tmp / "export" / lab)
    node_groups, resources = lab_resources(lab)
    nodes = monitoring_gpu_nodes(resources, node_groups, {"rtx-1": "rtx-node-1"})
    rule = of_kind(found, "PrometheusRule")["ailab-lab-alerts"]
    assert rule["spec"]["groups"] == monitoring_prometheus_rules(nodes, settings(lab))
    names = [g["name"] for g in rule["spec"]["groups"]]
    assert ("ailab.gpu-nodes" in names) == bool(node_groups)
    assert ("ailab.ceph" in names) == settings(lab)["ceph"]
    if lab == "gpu":
        expr = rule["spec"]["groups"][0]["rules"][0]["expr"]
        # The node name kubeadm registered, not the inventory host name.
        assert 'node="rtx-node-1"' in expr and 'node="rtx-1"' not in expr
    upstream = yaml.safe_load(reference("kube-prometheus-stack/values.yaml").read_text())["grafana"]["sidecar"]["dashboards"]
    maps = {n: cm for n, cm in of_kind(found, "ConfigMap").items() if n.endswith("-dashboard")}
    expected = monitoring_grafana_dashboards(resources, settings(lab))
    assert sorted(maps) == ["ailab-gpu-nodes-dashboard", "ailab-gpu-tenants-dashboard"]
    for name, cm in maps.items():
        assert cm["metadata"]["labels"][upstream["label"]] == upstream["labelValue"]
        [(key, text)] = cm["data"].items()
        assert key == name.replace("-dashboard", ".json") and text == expected[key]
        assert json.loads(text)["uid"] == key[:-5]


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian: apt-get install prometheus; only promtool is used)")
@pytest.mark.parametrize("lab", list(GOOD))
def test_promtool_checks_the_exported_rules(exported, lab, tmp_path):
    tmp, _run = exported
    rule = of_kind(export_objects(tmp / "export" / lab), "PrometheusRule")["ailab-lab-alerts"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    proc = subprocess.run(["promtool", "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_gpu_lab_defaults(exported):
    tmp, _run = exported
    _rel, values = release(tmp / "export" / "gpu")
    assert values == {
        "prometheus": {"prometheusSpec": {"serviceMonitorSelectorNilUsesHelmValues": False,
                                          "podMonitorSelectorNilUsesHelmValues": False,
                                          "ruleSelectorNilUsesHelmValues": False, "retention": "15d"}},
        "kube-state-metrics": values["kube-state-metrics"],
        # kubeadm binds these to 127.0.0.1: not scraped unless asked.
        "kubeControllerManager": {"enabled": False}, "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False}, "kubeProxy": {"enabled": False}}
    found = export_objects(tmp / "export" / "gpu")
    ns = found[("Namespace", "_cluster", "monitoring")]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert not of_kind(found, "Secret") and not of_kind(found, "Service")


def test_single_lab_prometheus_volume(exported):
    tmp, _run = exported
    _rel, values = release(tmp / "export" / "single")
    assert values["prometheus"]["prometheusSpec"]["storageSpec"] == {"volumeClaimTemplate": {"spec": {
        "storageClassName": "ceph-block", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}}}}


def test_airgap_lab(exported):
    tmp, run = exported
    directory = tmp / "export" / "airgap"
    rel, values = release(directory)
    assert rel["repo"] == "https://harbor.lab.example/chartrepo/prometheus-community"
    assert values["global"] == {"imageRegistry": "harbor.lab.example/proxy"}
    assert values["alertmanager"] == {"enabled": False}
    assert "kubeControllerManager" not in values and "kubeEtcd" not in values
    assert values["grafana"] == {"admin": {"existingSecret": "grafana-admin", "userKey": "admin-user",
                                           "passwordKey": "admin-password"}}
    found = export_objects(directory)
    secret = found[("Secret", "monitoring", "grafana-admin")]
    assert secret["stringData"] == {"admin-user": "admin", "admin-password": "grafana-s3cret-pw"}
    assert oct((directory / "monitoring" / "secret-grafana-admin.yaml").stat().st_mode & 0o777) == "0o600"
    assert "grafana-s3cret-pw" not in run.stdout
    service = found[("Service", "monitoring", "kube-prometheus-stack-grafana-lb")]
    assert service["metadata"]["annotations"] == {"metallb.io/loadBalancerIPs": "192.168.10.242"}
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": "kube-prometheus-stack"}
    # No GPUs: no DCGM ServiceMonitor, no GPU alerts; the tenant and Ceph alerts stay.
    assert set(of_kind(found, "ServiceMonitor")) == {"ailab-rook-ceph-mgr"}
    assert [g["name"] for g in found[("PrometheusRule", "monitoring", "ailab-lab-alerts")]["spec"]["groups"]] == [
        "ailab.tenants", "ailab.ceph"]


def test_export_touches_no_node(exported):
    _tmp, run = exported
    assert_export_touches_no_node(run, GOOD, nodes={"h200-1", "rtx-1", "rtx-2", "h200-2"})


@pytest.mark.parametrize("lab", list(GOOD))
def test_second_export_is_byte_identical(exported, lab):
    tmp, _run = exported
    first, second = tmp / "export" / lab, tmp / AGAIN / lab
    assert_same_files(first, second)


def test_check_mode_writes_nothing(checked):
    tmp, run = checked
    assert_check_mode_writes_nothing(run, GOOD, tmp / "export")


# ------------------------------------------------------------------------------------- bad labs
@pytest.mark.parametrize("lab", list(BAD))
def test_bad_inventory_is_refused_before_anything_is_exported(exported, lab):
    tmp, run = exported
    assert_refused(run, lab, BAD[lab][1], tmp / "export" / lab)
    assert run.results("Record the release in releases.yml", "gpu")
    assert not run.results("Record the release in releases.yml", lab)


def test_apply_mode_without_a_cluster_stops_with_what_to_do(exported):
    _tmp, run = exported
    message = run.failure("bad_no_cluster")
    assert "/nonexistent/admin.conf" in message and "run playbooks/kubernetes.yml first" in message, message


def test_apply_mode_check_without_a_cluster_changes_nothing(checked):
    _tmp, run = checked
    assert_apply_check_changes_nothing(run, "apply_check",
                                       ("Install or upgrade the release", "Apply each object with server-side apply"))
