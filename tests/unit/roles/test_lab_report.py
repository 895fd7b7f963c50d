"""playbooks/report.yml (role lab_report) on inventories/example-lab.

One ansible-playbook run (the example lab plus a few local variant hosts): the report in export mode
with the in-cluster page (lab_report_serve) twice to the same directories (the second run must change
no file: byte-identical), then the variants - measured layers, apply mode without status reads, and
bad settings (non-zero rc, the clear message, nothing written). The lab's nodes are SSH hosts on a
closed loopback port (127.0.0.1:9): the report never contacts a node in export mode. A second run does
the same in check mode: nothing may be written.

Apply mode reads the web UIs' Services: two variant hosts send those reads (delegated to the local
controller host, no become) to loopback doubles of the Kubernetes API - one serving JupyterHub's
LoadBalancer with an address, Headlamp's ClusterIP Service and Grafana's LoadBalancer still pending,
one refusing every read.
"""

import json
from pathlib import Path

import pytest
import yaml

from export_check import check_export
from unit.plugins.modules.k8s_api_double import ApiError, KubernetesApiDouble
from unit.roles.playbook_runner import ROOT, load_all, run_playbook, shared_run

INVENTORY = ROOT / "inventories" / "example-lab"
SERVICES = ["proxmox", "jupyterhub", "dashboard", "grafana", "ceph"]
MEASURED = [{"layer": "Proxmox VE", "target": "simulator", "result": "ok", "seconds": 12},
            {"layer": "Nodes", "target": "containers", "result": "ok", "detail": "debian:13"}]

# Apply mode without the Service reads (no cluster here), with the layers table a sandbox run measured.
# A title with markup: the page must show it as text (the template's autoescape block, as Ansible renders it).
HOSTILE = "<script>alert('lab')</script> & Co"
GOOD = {"apply_measured": {"ailab_kubernetes_export_dir": "", "lab_report_check_status": False,
                           "lab_report_layers": MEASURED}}
# (host vars, parts of the one failure message)
BAD = {
    "bad_layers": ({"lab_report_layers": [{"layer": "Nodes", "target": "vm", "result": "ok"}]},
                   ["lab_report_layers[0]: target must be one of simulator, containers, test double, export, cluster"]),
    "bad_dir": ({"lab_report_dir": "build/report-relative"}, ["lab_report_dir must be an absolute directory"]),
    "bad_serve": ({"lab_report_serve": True, "ailab_kubernetes_export_dir": "", "lab_report_api_host": "",
                   "lab_report_namespace": "Lab_Report"},
                  ["lab_report_namespace a DNS label (is 'Lab_Report')",
                   "lab_report_serve needs lab_report_api_host (default: the first kube_control_plane host) or export mode"]),
}


def service(namespace, name, kind, ingress=None):
    status = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ingress]} if ingress else {}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": kind, "ports": [{"port": 80}]}, "status": status}


class ServicesDouble(KubernetesApiDouble):
    """Services, read-only, by namespace and name (what kubernetes.core.k8s_info asks for with a name)."""

    def __init__(self, services, refuse=False):
        super().__init__()
        self.services = dict(((s["metadata"]["namespace"], s["metadata"]["name"]), s) for s in services)
        self.refuse = refuse

    def handle(self, method, path, query, body):
        if method == "GET" and path == "/api/v1":
            return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
                 "verbs": ["get", "list"]}]}
        parts = path.split("/")
        if method == "GET" and len(parts) == 7 and parts[1:4] == ["api", "v1", "namespaces"] and parts[5] == "services":
            if self.refuse:
                raise ApiError(403, "Forbidden", f'services "{parts[6]}" is forbidden: User "nobody" cannot get '
                                                 f'resource "services" in namespace "{parts[4]}"')
            found = self.services.get((parts[4], parts[6]))
            if found is None:
                raise ApiError(404, "NotFound", f'services "{parts[6]}" not found')
            return 200, found
        if path.startswith("/api/v1/"):
            raise ApiError(404, "NotFound", f"the double does not serve {method} {path}")
        return super().handle(method, path, query, body)


DOUBLES = {
    "apply_status": lambda: ServicesDouble([
        service("jupyterhub", "proxy-public", "LoadBalancer", ["192.168.10.201"]),
        service("dashboard", "headlamp", "ClusterIP"),
        service("monitoring", "kube-prometheus-stack-grafana-lb", "LoadBalancer")]),
    "apply_refused": lambda: ServicesDouble([], refuse=True),
}


def _variants(tmp, doubles):
    hosts = {}
    for name, double in doubles.items():
        hosts[name] = {"ansible_connection": "local", "lab_report_dir": str(tmp / name / "report"),
                       "ailab_kubernetes_export_dir": "", "lab_report_api_host": "localhost",
                       "lab_report_api_become": False, "lab_report_title": HOSTILE,
                       "lab_report_kubeconfig": double.write_kubeconfig(tmp / f"{name}.kubeconfig")}
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
    doubles = {} if check else dict((name, make()) for name, make in DOUBLES.items())
    for double in doubles.values():
        double.start()
    try:
        variants = tmp / "variants.yml"
        variants.write_text(yaml.safe_dump(_variants(tmp, doubles)))
        run = run_playbook(tmp, _plays(tmp, "lab", check), {"all": {}}, "-i", str(INVENTORY), "-i", str(variants),
                           "-e", "ansible_host=127.0.0.1", "-e", "ansible_port=9", check=check)
    finally:
        for double in doubles.values():
            double.stop()
    for name, double in doubles.items():
        # The Service reads, and nothing else: the report never writes to a cluster unless it serves.
        run.data.setdefault("doubles", {})[name] = [(r["method"], r["path"]) for r in double.requests]
    return run


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
    for name in list(GOOD) + list(DOUBLES):
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


def _statuses(tmp, name):
    model = json.loads((tmp / name / "report" / "lab.json").read_text())
    return dict((card["key"], (card["status"], card["state"], card["url"])) for card in model["services"])


def test_apply_mode_reads_the_services(report):
    tmp, run = report
    statuses = _statuses(tmp, "apply_status")
    # The address MetalLB gave JupyterHub, read from the cluster, becomes the link.
    assert statuses["jupyterhub"] == ("running at 192.168.10.201", "ok", "http://192.168.10.201/")
    assert statuses["dashboard"] == ("running (ClusterIP)", "ok", None)
    assert statuses["grafana"] == ("LoadBalancer address pending", "pending", None)
    assert statuses["ceph"][0] == "not configured"
    reads = [tuple(read) for read in run.data["doubles"]["apply_status"]]  # lists once shared through JSON
    assert ("GET", "/api/v1/namespaces/jupyterhub/services/proxy-public") in reads
    assert all(method == "GET" for method, _path in reads)


def test_a_refusing_api_leaves_the_cards_not_checked(report):
    tmp, _run = report
    statuses = _statuses(tmp, "apply_refused")
    status, state, url = statuses["jupyterhub"]
    assert status.startswith("not checked: ") and "forbidden" in status.lower()
    assert (state, url) == ("pending", None)


def test_the_page_escapes_what_it_shows(report):
    tmp, _run = report
    page = (tmp / "apply_status" / "report" / "index.html").read_text()
    assert "<script" not in page
    assert "<h1>&lt;script&gt;alert(&#39;lab&#39;)&lt;/script&gt; &amp; Co</h1>" in page
