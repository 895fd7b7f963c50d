"""playbooks/report.yml (role lab_report) on inventories/example-lab.

One ansible-playbook run (the example lab plus a few local variant hosts): the report in export mode
with the in-cluster page (lab_report_serve) twice to the same directories (the second run must change
no file: byte-identical), then the variants - measured layers, apply mode without status reads, and
bad settings (non-zero rc, the clear message, nothing written). The lab's nodes are SSH hosts on a
closed loopback port (127.0.0.1:9): the report never contacts a node in export mode. A second run does
the same in check mode: nothing may be written.
"""

import json
from pathlib import Path

import pytest
import yaml

from export_check import check_export
from unit.roles.playbook_runner import ROOT, load_all, run_playbook, shared_run

INVENTORY = ROOT / "inventories" / "example-lab"
SERVICES = ["proxmox", "jupyterhub", "dashboard", "grafana", "ceph"]
MEASURED = [{"layer": "Proxmox VE", "target": "simulator", "result": "ok", "seconds": 12},
            {"layer": "Nodes", "target": "containers", "result": "ok", "detail": "debian:13"}]

# Apply mode without the Service reads (no cluster here), with the layers table a sandbox run measured.
GOOD = {"apply_measured": {"ailab_kubernetes_export_dir": "", "lab_report_check_status": False,
                           "lab_report_layers": MEASURED}}
# (host vars, parts of the one failure message)
BAD = {
    "bad_layers": ({"lab_report_layers": [{"layer": "Nodes", "target": "vm", "result": "ok"}]},
                   ["lab_report_layers[0]: target must be one of simulator, containers, test double, export, cluster"]),
    "bad_dir": ({"lab_report_dir": "build/report-relative"}, ["lab_report_dir must be an absolute directory"]),
    "bad_service_type": ({"lab_report_serve": True, "lab_report_service_type": "Ingress"},
                         ["lab_report_service_type LoadBalancer, NodePort or ClusterIP (is 'Ingress')"]),
}


def _variants(tmp):
    hosts = {}
    for name, settings in list(GOOD.items()) + [(n, s) for n, (s, _m) in BAD.items()]:
        hosts[name] = dict({"ansible_connection": "local", "lab_report_dir": str(tmp / name / "report"),
                            "ailab_kubernetes_export_dir": str(tmp / name / "export")}, **settings)
    return {"all": {"children": {"report_variants": {"hosts": hosts}}}}


def _plays(tmp, name, check):
    settings = {"ailab_kubernetes_export_dir": str(tmp / name / "export"), "lab_report_dir": str(tmp / name / "report"),
                "lab_report_serve": True}
    report = {"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "report.yml"), "vars": settings}
    variants = {"name": "Variants", "hosts": "report_variants", "gather_facts": False,
                "roles": [{"role": "ailab.cluster.lab_report"}]}
    if check:
        return [dict(report, name="Report")]
    return [dict(report, name="Report"), dict(report, name="Report again"), variants]


def _run(tmp, check):
    variants = tmp / "variants.yml"
    variants.write_text(yaml.safe_dump(_variants(tmp)))
    return run_playbook(tmp, _plays(tmp, "lab", check), {"all": {}}, "-i", str(INVENTORY), "-i", str(variants),
                        "-e", "ansible_host=127.0.0.1", "-e", "ansible_port=9", check=check)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return shared_run(tmp_path_factory, "lab-report", lambda tmp: _run(tmp, check=False))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return shared_run(tmp_path_factory, "lab-report-check", lambda tmp: _run(tmp, check=True))


def _files(directory):
    return sorted(p.relative_to(directory).as_posix() for p in Path(directory).rglob("*") if p.is_file())


def test_no_node_is_contacted(report):
    _tmp, run = report
    assert all(stats["unreachable"] == 0 for stats in run.stats.values()), run.stats
    assert run.stats["localhost"]["failures"] == 0, run.failure("localhost")
    for name in GOOD:
        assert run.stats[name]["failures"] == 0, run.failure(name)


def test_the_page_and_the_model_are_written(report):
    tmp, _run = report
    model = json.loads((tmp / "lab" / "report" / "lab.json").read_text())
    assert [card["key"] for card in model["services"]] == SERVICES
    assert model["mode"] == "export" and model["title"] == "example-lab"
    assert {t["name"] for t in model["tenants"]} == {"cs101", "vision", "nlp"}
    assert model["layers"]["derived"] is True
    page = (tmp / "lab" / "report" / "index.html").read_text()
    assert "<title>example-lab \u2014 lab report</title>" in page
    for card in model["services"]:
        assert f'data-service="{card["key"]}"' in page
    # Self-contained: no external stylesheet, script, font or image.
    assert "<script" not in page and "<link" not in page and "http://fonts" not in page


def test_the_second_run_changes_nothing(report):
    _tmp, run = report
    for task in ("Write the landing page (index.html)", "Write the model (lab.json)"):
        first, second = run.results(task, "localhost")
        assert (first["changed"], second["changed"]) == (True, False), task
    first, second = run.results("Write each object to <namespace or _cluster>/<kind>-<name><suffix>.yaml", "localhost")
    assert first["changed"] and not second["changed"]


def test_the_served_page_validates_and_is_the_same_page(report):
    tmp, _run = report
    export = tmp / "lab" / "export"
    assert _files(export) == ["_cluster/namespace-lab-report.yaml", "lab-report/configmap-lab-report.yaml",
                              "lab-report/deployment-lab-report.yaml", "lab-report/service-lab-report.yaml"]
    assert check_export(export) == []
    (configmap,) = load_all(export / "lab-report" / "configmap-lab-report.yaml")
    assert configmap["data"]["index.html"] == (tmp / "lab" / "report" / "index.html").read_text()
    (deployment,) = load_all(export / "lab-report" / "deployment-lab-report.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/nginxinc/nginx-unprivileged:1.29.3-alpine"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (service,) = load_all(export / "lab-report" / "service-lab-report.yaml")
    assert service["spec"]["type"] == "LoadBalancer"


def test_the_summary_is_printed_without_secrets(report):
    _tmp, run = report
    (summary, _again) = run.results("Summary of the lab", "localhost")
    lines = summary["msg"]
    assert lines[0] == "example-lab (export mode)"
    assert any(line.startswith("  JupyterHub: LoadBalancer IP assigned at install") for line in lines)
    assert "  gpu_rtx: 1 \u00d7 NVIDIA GeForce RTX 3090 on k8s-gpu-rtx; time-slicing, 4 replicas per GPU" in lines
    assert lines[-2].startswith("Landing page: ")
    text = json.dumps(run.data)
    for secret in ("api_token_secret", "secretToken", "cookie_secret", "password"):
        assert secret not in text


def test_measured_layers_and_apply_mode(report):
    tmp, _run = report
    applied = json.loads((tmp / "apply_measured" / "report" / "lab.json").read_text())
    assert applied["layers"] == {"derived": False, "rows": [
        {"layer": "Proxmox VE", "target": "simulator", "result": "ok", "seconds": 12, "detail": ""},
        {"layer": "Nodes", "target": "containers", "result": "ok", "seconds": None, "detail": "debian:13"}]}
    assert applied["mode"] == "apply"
    statuses = dict((card["key"], card["status"]) for card in applied["services"])
    assert statuses["jupyterhub"] == "not checked" and statuses["ceph"] == "not configured"
    page = (tmp / "apply_measured" / "report" / "index.html").read_text()
    assert "Applied to the cluster" in page and 'id="layers-derived"' not in page


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_settings_stop_before_anything_is_written(report, name):
    tmp, run = report
    assert run.rc != 0
    message = run.failure(name)
    assert message, f"{name} did not fail"
    for part in BAD[name][1]:
        assert part in message
    assert not (tmp / name).exists() or _files(tmp / name) == []
    assert not (ROOT / "build" / "report-relative").exists()


def test_check_mode_writes_nothing(checked):
    tmp, run = checked
    assert run.stats["localhost"]["failures"] == 0, run.failure("localhost")
    assert not (tmp / "lab").exists() or _files(tmp / "lab") == []
    summary = run.results("Summary of the lab", "localhost")[0]["msg"]
    assert summary[0] == "example-lab (check mode)"
    assert any(line.startswith("  Grafana: ") and line.endswith("[not checked (check mode)]") for line in summary)
    assert summary[-2] == f"Check mode: nothing was written; the page would be {tmp / 'lab' / 'report'}/index.html"
