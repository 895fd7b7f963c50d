# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab report's model (plugins/filter/lab_report.py): services, nodes, GPUs, tenants, layers."""

import json
import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.lab_report import (
    FilterModule,
    lab_report_model,
    lab_report_summary,
)
from unit.report.report_inputs import (
    EXAMPLE_GROUPS,
    EXAMPLE_HOSTVARS,
    SANDBOX_GROUPS,
    example_settings,
    sandbox_settings,
)


def _cards(model):
    return dict((card["key"], card) for card in model["services"])


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"lab_report_model", "lab_report_summary"}


def test_example_lab_services_in_export_mode():
    model = lab_report_model(example_settings(), EXAMPLE_GROUPS, EXAMPLE_HOSTVARS)
    cards = _cards(model)
    assert [c["key"] for c in model["services"]] == ["proxmox", "jupyterhub", "dashboard", "grafana", "ceph"]
    assert cards["proxmox"]["url"] == "https://192.168.10.5:8006/"
    # No address is invented: no pinned LoadBalancer IP means the card says how to find it.
    assert cards["jupyterhub"]["url"] is None
    assert cards["jupyterhub"]["why"] == ("LoadBalancer IP assigned at install \u2014 `kubectl -n jupyterhub get svc "
                                          "proxy-public`")
    assert cards["dashboard"]["why"].startswith("ClusterIP only \u2014 `kubectl -n dashboard port-forward svc/headlamp 8080:80`")
    assert cards["ceph"]["url"] is None and cards["ceph"]["status"] == "not configured"
    assert "rook_ceph is not in ailab_storage_backends" in cards["ceph"]["why"]
    assert all(cards[k]["status"] == "exported, not deployed" for k in ("jupyterhub", "dashboard", "grafana"))
    json.dumps(model)  # plain data, as lab.json


def test_a_pinned_metallb_address_gives_the_link():
    model = lab_report_model(example_settings(grafana_ip="192.168.10.205"), EXAMPLE_GROUPS)
    assert _cards(model)["grafana"]["url"] == "http://192.168.10.205/"


def test_without_a_metallb_pool_the_card_says_the_address_stays_pending():
    settings = example_settings()
    settings["metallb_pools"] = []
    assert "stays <pending>" in _cards(lab_report_model(settings, EXAMPLE_GROUPS))["jupyterhub"]["why"]


def test_ceph_https_port_forward_when_enabled():
    card = _cards(lab_report_model(example_settings(ceph=True), EXAMPLE_GROUPS))["ceph"]
    assert card["why"] == ("ClusterIP only \u2014 `kubectl -n rook-ceph port-forward svc/rook-ceph-mgr-dashboard "
                           "8443:8443`, then https://localhost:8443/")
    # A flag rendered as a string by a template is read as Ansible reads it.
    card = _cards(lab_report_model(example_settings(ceph="False"), EXAMPLE_GROUPS))["ceph"]
    assert card["status"] == "not configured"


@pytest.mark.parametrize("observed, status, state, url", [
    ({"found": True, "addresses": ["192.168.10.201"]}, "running at 192.168.10.201", "ok", "http://192.168.10.201/"),
    ({"found": True, "addresses": []}, "LoadBalancer address pending", "pending", None),
    ({"found": False}, "Service jupyterhub/proxy-public not found", "off", None),
    ({"error": "Unauthorized"}, "not checked: Unauthorized", "pending", None),
    (None, "not checked", "info", None),
])
def test_apply_mode_status_from_the_cluster(observed, status, state, url):
    settings = example_settings()
    settings["mode"] = "apply"
    settings["statuses"] = {"jupyterhub": observed} if observed is not None else {}
    card = _cards(lab_report_model(settings, EXAMPLE_GROUPS))["jupyterhub"]
    assert (card["status"], card["state"], card["url"]) == (status, state, url)


def test_check_mode_checks_nothing():
    settings = example_settings()
    settings["mode"] = "check"
    cards = _cards(lab_report_model(settings, EXAMPLE_GROUPS))
    assert cards["grafana"]["status"] == "not checked (check mode)"


def test_nodes_have_roles_and_lab_addresses():
    nodes = dict((n["name"], n) for n in lab_report_model(example_settings(), EXAMPLE_GROUPS, EXAMPLE_HOSTVARS)["nodes"])
    assert sorted(nodes) == ["k8s-1", "k8s-2", "k8s-3", "k8s-gpu-h200", "k8s-gpu-rtx", "pve-1", "pve-2"]
    assert nodes["k8s-1"]["roles"] == ["control plane", "worker"]
    assert nodes["k8s-1"]["address"] == "192.168.10.21"
    assert nodes["k8s-gpu-h200"]["roles"] == ["worker", "GPU gpu_h200 (NVIDIA H200)"]
    assert nodes["pve-1"] == {"name": "pve-1", "address": "192.168.10.11", "roles": ["Proxmox VE host"],
                              "groups": ["proxmox_gpu_nodes", "proxmox_nodes"]}
    assert nodes["k8s-2"]["address"] == ""


def test_gpu_groups_say_how_they_are_shared():
    groups = dict((g["group"], g) for g in lab_report_model(example_settings(), EXAMPLE_GROUPS)["gpu_groups"])
    assert groups["gpu_h200"]["sharing"] == "MIG (mixed strategy): 2 \u00d7 2g.35gb + 3 \u00d7 1g.18gb"
    assert groups["gpu_h200"]["model"] == "NVIDIA H200" and groups["gpu_h200"]["gpus"] == 1
    assert [r["key"] for r in groups["gpu_h200"]["resources"]] == ["mig-1g.18gb", "mig-2g.35gb"]
    assert groups["gpu_rtx"]["sharing"] == "time-slicing, 4 replicas per GPU"
    settings = example_settings()
    settings["gpu_node_groups"] = [{"group": "gpu_h200", "gpu_model": "NVIDIA H200", "gpus_per_node": 2}]
    settings["tenants"] = []
    (group,) = lab_report_model(settings, EXAMPLE_GROUPS)["gpu_groups"]
    assert (group["sharing"], group["gpus"]) == ("exclusive (one pod per GPU)", 2)


def test_tenants_with_quotas_and_queues():
    tenants = dict((t["name"], t) for t in lab_report_model(example_settings(), EXAMPLE_GROUPS)["tenants"])
    assert sorted(tenants) == ["cs101", "nlp", "vision"]
    assert tenants["cs101"]["quota"] == {"cpu": "48", "memory": "192Gi", "storage": "500Gi", "pvcs": "100",
                                         "gpu": {"mig-1g.18gb": 3}}
    assert tenants["vision"]["queue"] == {"cluster_queue": "vision", "cohort": "lab", "local_queue": "vision/default"}


def test_sandbox_without_kubernetes_or_lab_model():
    model = lab_report_model(sandbox_settings(), SANDBOX_GROUPS)
    cards = _cards(model)
    assert cards["proxmox"]["url"] == "https://127.0.0.1:8006/"
    # Settings the sandbox does not have: cards rather than a crash.
    assert all(cards[k]["url"] is None and cards[k]["why"] for k in ("jupyterhub", "dashboard", "grafana"))
    assert (model["nodes"], model["gpu_groups"], model["tenants"]) == ([], [], [])
    rows = dict((r["layer"], r) for r in model["layers"]["rows"])
    assert model["layers"]["derived"] is True
    assert rows["Proxmox VE"]["target"] == "proxmox api 127.0.0.1:8006"
    assert rows["Nodes"]["target"] == "not run" and rows["JupyterHub"]["target"] == "not run"
    lines = lab_report_summary(model)
    assert "Nodes: none in the inventory" in lines and "Tenants: none (ailab_tenants is empty)" in lines


def test_no_proxmox_api_is_a_card_with_the_reason():
    card = _cards(lab_report_model({"services": {}}, {}))["proxmox"]
    assert card["url"] is None and "proxmox_api_connection.api_host" in card["why"]


def test_derived_layers_in_export_mode():
    model = lab_report_model(example_settings(), EXAMPLE_GROUPS)
    rows = dict((r["layer"], r) for r in model["layers"]["rows"])
    assert rows["JupyterHub"]["target"] == "export" and rows["Nodes"]["target"] == "not run"
    assert all(r["result"] == "derived from the inventory (not measured)" for r in rows.values())


def test_given_layers_are_kept_as_measured():
    settings = example_settings()
    settings["layers"] = [{"layer": "Proxmox VE", "target": "simulator", "result": "ok", "seconds": 12.5},
                          {"layer": "Nodes", "target": "containers", "result": "ok", "detail": "debian:13"},
                          {"layer": "GPU", "target": "not run", "result": "no GPU"}]
    layers = lab_report_model(settings, EXAMPLE_GROUPS)["layers"]
    assert layers["derived"] is False
    assert layers["rows"][0] == {"layer": "Proxmox VE", "target": "simulator", "result": "ok", "seconds": 12.5, "detail": ""}
    assert [r["target"] for r in layers["rows"]] == ["simulator", "containers", "not run"]


@pytest.mark.parametrize("layers, message", [
    ({"layer": "x"}, "lab_report_layers: must be a list"),
    (["x"], "lab_report_layers[0]: must be a dict"),
    ([{"layer": "Nodes", "target": "vm", "result": "ok"}], "lab_report_layers[0]: target must be one of simulator"),
    ([{"layer": "Nodes", "target": "cluster"}], "lab_report_layers[0]: result is required"),
    ([{"layer": "Nodes", "target": "cluster", "result": "ok", "secs": 3}], "unknown key secs in a layer row (did you mean seconds?)"),
    ([{"layer": "Nodes", "target": "cluster", "result": "ok", "seconds": -1}], "seconds must be a number of seconds"),
    ([{"layer": "Nodes", "target": "cluster", "result": "ok", "seconds": True}], "seconds must be a number of seconds"),
])
def test_bad_layers_table(layers, message):
    settings = example_settings()
    settings["layers"] = layers
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        lab_report_model(settings, EXAMPLE_GROUPS)


def test_bad_lab_model_is_reported_by_the_lab_model_filters():
    settings = example_settings()
    settings["tenants"][0]["quota"]["gpu"] = {"a100-80gb": 1}
    with pytest.raises(AnsibleFilterError, match=r"ailab_tenants\[0\] \(tenant cs101\)"):
        lab_report_model(settings, EXAMPLE_GROUPS)


@pytest.mark.parametrize("settings, groups, message", [
    ({"mode": "dry"}, {}, "mode must be one of apply, export, check"),
    ({}, None, "pass the inventory groups"),
    ({"services": []}, {}, "services must be a dict"),
    ("x", {}, "the settings must be a dict"),
])
def test_bad_arguments(settings, groups, message):
    with pytest.raises(AnsibleFilterError, match=message):
        lab_report_model(settings, groups)


def test_summary_lines_hold_no_secret():
    settings = example_settings()
    settings["services"]["proxmox"]["api_token_secret"] = "s3cr3t-token"  # ignored: never read
    lines = lab_report_summary(lab_report_model(settings, EXAMPLE_GROUPS, EXAMPLE_HOSTVARS))
    text = "\n".join(lines)
    assert "s3cr3t" not in text and "password" not in text.lower()
    assert "  Proxmox VE: https://192.168.10.5:8006/ [not checked]" in lines
    assert ("  gpu_h200: 1 \u00d7 NVIDIA H200 on k8s-gpu-h200; MIG (mixed strategy): 2 \u00d7 2g.35gb + 3 \u00d7 "
            "1g.18gb") in lines
    assert any(line.startswith("  cs101 (course, namespace cs101): cpu 48, memory 192Gi, storage 500Gi, 100 PVCs, "
                               "3 \u00d7 mig-1g.18gb; queue cs101 (cohort lab), LocalQueue cs101/default") for line in lines)
    assert "Layers (derived from the inventory, not measured):" in lines
