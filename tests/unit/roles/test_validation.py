"""playbooks/validate.yml (role validation) in export mode, check mode and without a cluster.

One ansible-playbook run exports every lab shape: each host of the group ``labs`` stands for one lab
and the playbook runs on that group (``-e ailab_platform_hosts=labs``). The run exports each good lab
twice into the same directory, with a snapshot in between: the second export must be byte-identical
(the MySQL password is read back from the first). Every lab host is an SSH host on a closed loopback
port (127.0.0.1:9): export mode must never connect; a canary play proves that connecting fails. A
second run uses check mode (nothing written, nothing created). A third run takes the apply path
against a stand-in cluster (fake kubernetes.core modules answering from a JSON state, loopback HTTP
services for WordPress, JupyterHub and Prometheus). The checks' pass/fail logic is unit-tested on
recorded outputs in tests/unit/plugins/filter/test_validation_filters.py; a real cluster is not reachable here.
"""

import http.server
import json
import threading

import pytest
import yaml

from export_check import check_export
from unit.roles.playbook_runner import (PYTHON, ROOT, UNREACHABLE, assert_check_mode_writes_nothing, assert_export_touches_no_node,
                                        assert_refused, assert_same_files, export_objects, local_inventory, platform_plays,
                                        reference, run_playbook, shared_run)

FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "validation"
EXAMPLE = ROOT / "inventories" / "example-lab" / "group_vars" / "all"
# The example lab's model, storage and JupyterHub settings, as the lab inventory has them.
EXAMPLE_VARS = {}
for _name in ("lab.yml", "storage.yml", "jupyterhub.yml"):
    EXAMPLE_VARS.update(yaml.safe_load((EXAMPLE / _name).read_text()))
GPU_GROUPS = {"gpu_h200": ["k8s-gpu-h200"], "gpu_rtx": ["k8s-gpu-rtx"]}
NODE_VARS = {"k8s-gpu-rtx": {"kubeadm_worker_node_name": "rtx-node"}}
TOKEN = "hub-admin-token-0123456789"
PASSWORD = "mysql-s3cret-from-vault"

GOOD = {
    # The example lab with a JupyterHub admin token: every check is planned.
    "example": dict(EXAMPLE_VARS, validation_jupyterhub_api_token=TOKEN),
    # Air gap: mirrored images, an explicit class and password, two checks selected.
    "airgap": {"ailab_gpu_node_groups": EXAMPLE_VARS["ailab_gpu_node_groups"], "ailab_storage_backends": [],
               "validation_image_registry": "harbor.lab.example/proxy/", "validation_storage_class": "fast",
               "validation_mysql_password": PASSWORD, "validation_checks": ["wordpress", "cuda"],
               "validation_namespace": "smoke"},
    # No GPUs, no tenants, no monitoring, no storage backend: the cluster's default class.
    "bare": {"validation_prometheus": False, "validation_jupyterhub": False},
}

BAD = {
    "bad_check": ({"validation_checks": ["wordpress", "gpu"]}, ["validation_checks must be one or more of", "no match for: gpu"]),
    "bad_timeout": ({"validation_timeout": 5}, ["validation_timeout at least 30 seconds (is 5)"]),
    "bad_model": ({"ailab_gpu_node_groups": [dict(EXAMPLE_VARS["ailab_gpu_node_groups"][0], sharing={
        "mode": "mig", "mig_strategy": "mixed", "mig_layout": [{"profile": "2g.20gb", "count": 3}]})]}, ["2g.20gb"]),
    "bad_tenant": ({"ailab_tenants": [{"name": "cs101", "kind": "course", "quota": {"cpu": 4, "memory": "8Gi",
                                                                                    "gpu": {"mig-9g.99gb": 1}}}]},
                   ["ailab_tenants[0] (tenant cs101)", "mig-9g.99gb"]),
    "bad_storage": ({"ailab_storage_backends": ["nfs_provisioner", "local_path"], "nfs_provisioner_default_class": True,
                     "local_path_default_class": True}, ["Two or more default StorageClasses"]),
}

# Apply mode on this machine (local connection, no become, no cluster: the kubeconfig is absent).
NO_CLUSTER = {"ansible_connection": "local", "ansible_become": False, "validation_kubeconfig": "/nonexistent/admin.conf"}
APPLY = {"apply_check": NO_CLUSTER, "bad_no_cluster": NO_CLUSTER}
SNAPSHOT = "first"


def export_dir(root, lab):
    return root / "export" / lab


def inventory(root, labs):
    host_vars = {}
    for name in labs:
        if name in APPLY:
            host_vars[name] = dict(APPLY[name], **EXAMPLE_VARS)
        else:
            host_vars[name] = dict(UNREACHABLE, ailab_kubernetes_export_dir=str(export_dir(root, name)),
                                   **(GOOD[name] if name in GOOD else BAD[name][0]))
    host_vars["canary"] = dict(UNREACHABLE)
    for hosts in GPU_GROUPS.values():
        for host in hosts:
            host_vars[host] = dict(UNREACHABLE, **NODE_VARS.get(host, {}))
    return local_inventory({"labs": list(labs), "canary_hosts": ["canary"], **GPU_GROUPS}, host_vars=host_vars)


def build(tmp, labs, check=False):
    # Between the two runs, each first export is copied aside (the second run writes over it).
    snapshot = {"name": "Snapshot the first exports", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Copy each export", "ansible.builtin.command": {"argv": ["cp", "-a", "{{ item }}", "{{ item }}." + SNAPSHOT]},
         "loop": [str(export_dir(tmp, lab)) for lab in GOOD], "changed_when": True}]}
    plays = platform_plays("Smoke tests", "validate.yml", again=not check, between=[snapshot])
    return run_playbook(tmp, plays, inventory(tmp, labs), "-e", "ailab_platform_hosts=labs", check=check)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_run(tmp_path_factory, "validation-export", lambda tmp: build(tmp, list(GOOD) + list(BAD) + ["bad_no_cluster"]))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return shared_run(tmp_path_factory, "validation-check", lambda tmp: build(tmp, list(GOOD) + ["apply_check"], check=True))


def report_lines(run, host):
    results = run.results("Print one line per check", host)
    assert results, f"no report for {host}"
    return results[-1]["msg"]


# ------------------------------------------------------------------------------------ good labs
@pytest.mark.parametrize("lab", list(GOOD))
def test_export_is_valid(exported, lab):
    tmp, run = exported
    assert run.stats[lab]["failures"] == 0, run.failure(lab)
    assert check_export(export_dir(tmp, lab)) == []


@pytest.mark.parametrize("lab", list(GOOD))
def test_second_export_is_byte_identical(exported, lab):
    tmp, _run = exported
    first = export_dir(tmp, lab).parent / f"{lab}.{SNAPSHOT}"
    assert_same_files(first, export_dir(tmp, lab))


@pytest.mark.parametrize("lab", list(GOOD))
def test_export_mode_prints_not_run_and_never_pass(exported, lab):
    _tmp, run = exported
    lines = report_lines(run, lab)
    checks, summary = lines[:-1], lines[-1]
    assert checks and all(line.startswith("NOT RUN ") for line in checks), lines
    assert not [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert summary == f"0 passed, 0 failed, {len(checks)} not run"
    assert "PASS " not in run.stdout


def test_example_lab_plans_every_check(exported):
    _tmp, run = exported
    lines = report_lines(run, "example")[:-1]
    names = [line.split(":", 1)[0][len("NOT RUN "):].strip() for line in lines]
    assert names == ["wordpress",
                     "cuda gpu_h200 mig-1g.18gb on k8s-gpu-h200", "cuda gpu_h200 mig-2g.35gb on k8s-gpu-h200",
                     "cuda gpu_rtx rtx-3090-shared on rtx-node",
                     "queue cs101", "queue nlp", "queue vision",
                     "jupyterhub api", "jupyterhub user server", "prometheus dcgm"]
    assert all(line.endswith("export mode, no cluster: the workloads were written to "
                             f"{export_dir(_tmp, 'example')} and nothing ran") for line in lines)


def test_example_lab_workloads(exported):
    tmp, run = exported
    found = export_objects(export_dir(tmp, "example"))
    ns = found[("Namespace", "_cluster", "ailab-validation")]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert "ailab.cluster/tenant" not in ns["metadata"]["labels"]
    # MySQL on the lab's default class (the NFS provisioner's), behind WordPress' LoadBalancer.
    claim = found[("PersistentVolumeClaim", "ailab-validation", "mysql-data")]
    assert claim["spec"]["storageClassName"] == "nfs-client"
    assert found[("Service", "ailab-validation", "wordpress")]["spec"]["type"] == "LoadBalancer"
    mysql = found[("Deployment", "ailab-validation", "mysql")]["spec"]["template"]["spec"]
    assert mysql["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "mysql-data"}}]
    secret_path = export_dir(tmp, "example") / "ailab-validation" / "secret-mysql-pass.yaml"
    password = found[("Secret", "ailab-validation", "mysql-pass")]["stringData"]["password"]
    assert len(password) == 24 and oct(secret_path.stat().st_mode & 0o777) == "0o600"
    assert password not in run.stdout and TOKEN not in run.stdout
    # One CUDA Job per GPU resource and node, pinned to the node with the resource's limit.
    jobs = {name: obj for (kind, nsp, name), obj in found.items() if kind == "Job" and nsp == "ailab-validation"}
    assert sorted(jobs) == ["cuda-mig-1g-18gb-k8s-gpu-h200", "cuda-mig-2g-35gb-k8s-gpu-h200", "cuda-rtx-3090-shared-rtx-node"]
    pod = jobs["cuda-mig-1g-18gb-k8s-gpu-h200"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"ailab.cluster/gpu-group": "gpu_h200", "kubernetes.io/hostname": "k8s-gpu-h200"}
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/mig-1g.18gb": "1"}}
    assert pod["containers"][0]["image"] == "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0"
    assert pod["containers"][0]["command"][-1] == "nvidia-smi -L && nvidia-smi && /cuda-samples/vectorAdd"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}]
    rtx = jobs["cuda-rtx-3090-shared-rtx-node"]["spec"]["template"]["spec"]
    assert rtx["nodeSelector"]["kubernetes.io/hostname"] == "rtx-node"
    assert rtx["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    # One suspended Kueue Job per tenant, in the tenant's namespace and LocalQueue.
    for tenant in ("cs101", "nlp", "vision"):
        job = found[("Job", tenant, "ailab-validation-queue")]
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "default"
        assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_airgap_lab(exported):
    tmp, run = exported
    found = export_objects(export_dir(tmp, "airgap"))
    images = sorted({c["image"] for obj in found.values() if obj["kind"] in ("Job", "Deployment")
                     for c in obj["spec"]["template"]["spec"]["containers"]})
    assert images == ["harbor.lab.example/proxy/library/mysql:8.4.6", "harbor.lab.example/proxy/library/wordpress:6.8.2-apache",
                      "harbor.lab.example/proxy/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0"]
    assert found[("PersistentVolumeClaim", "smoke", "mysql-data")]["spec"]["storageClassName"] == "fast"
    assert found[("Secret", "smoke", "mysql-pass")]["stringData"]["password"] == PASSWORD
    assert PASSWORD not in run.stdout
    assert not [k for k in found if k[0] == "Job" and k[1] != "smoke"]
    lines = report_lines(run, "airgap")
    assert "NOT RUN  queues: not selected (validation_checks: wordpress, cuda)" in lines


def test_bare_lab_says_why_checks_cannot_run(exported):
    tmp, run = exported
    lines = report_lines(run, "bare")
    assert "NOT RUN  cuda: the lab has no GPU node groups (ailab_gpu_node_groups is empty)" in lines
    assert "NOT RUN  queues: the lab has no tenants (ailab_tenants is empty)" in lines
    assert "NOT RUN  jupyterhub api: jupyterhub is not part of this lab (validation_jupyterhub: false)" in lines
    assert "NOT RUN  prometheus dcgm: monitoring is not part of this lab (validation_prometheus: false)" in lines
    claim = export_objects(export_dir(tmp, "bare"))[("PersistentVolumeClaim", "ailab-validation", "mysql-data")]
    # No storage backend in the inventory: no storageClassName, the cluster's default class.
    assert "storageClassName" not in claim["spec"]


def test_export_touches_no_node(exported):
    _tmp, run = exported
    assert_export_touches_no_node(run, GOOD, nodes={"k8s-gpu-h200", "k8s-gpu-rtx"})


def test_check_mode_writes_nothing(checked):
    tmp, run = checked
    assert_check_mode_writes_nothing(run, GOOD, tmp / "export")
    for lab in GOOD:
        assert all(line.startswith("NOT RUN ") for line in report_lines(run, lab)[:-1])


def test_apply_mode_check_without_a_cluster_creates_nothing(checked):
    _tmp, run = checked
    stats = run.stats["apply_check"]
    assert stats["failures"] == 0 and stats["changed"] == 0, run.failure("apply_check")
    lines = report_lines(run, "apply_check")[:-1]
    # Without an admin token the user-server check cannot run in any mode, and says so.
    token = [line for line in lines if line.startswith("NOT RUN  jupyterhub user server: no JupyterHub API token")]
    assert len(token) == 1
    others = [line for line in lines if line not in token]
    assert len(others) == 9 and all(line.endswith(": check mode, nothing was created") for line in others), lines
    results = run.results("Apply each object with server-side apply", "apply_check")
    assert results and all(r.get("skipped") for r in results)


# ------------------------------------------------------------------------------------- bad labs
@pytest.mark.parametrize("lab", list(BAD))
def test_bad_inventory_is_refused_before_anything_is_exported(exported, lab):
    tmp, run = exported
    assert_refused(run, lab, BAD[lab][1], export_dir(tmp, lab))
    assert not run.results("Print one line per check", lab)


def test_apply_mode_without_a_cluster_stops_with_what_to_do(exported):
    _tmp, run = exported
    message = run.failure("bad_no_cluster")
    assert "/nonexistent/admin.conf" in message and "build the lab first" in message, message


# ------------------------------------------------------------------------ live run, fake cluster
# The apply path (waits, reads, HTTP checks, verdicts, clean-up) against a stand-in for the cluster:
# kubernetes.core's k8s_info, k8s and k8s_log replaced by small modules that answer from a JSON state
# (objects as the API server would show them after the smoke workloads ran) and log every write; the
# Services' addresses point at an HTTP server on 127.0.0.1 in this process that answers as WordPress,
# JupyterHub's REST API and Prometheus' query API. It proves the role's wiring, not the cluster.
FAKE_MODULE = '''#!/usr/bin/python
import json, os
from ansible.module_utils.basic import AnsibleModule
MODE = "%s"
OPTIONS = ("kind", "api_version", "namespace", "name", "label_selectors", "field_selectors", "kubeconfig", "state",
           "definition", "delete_options", "wait", "wait_timeout", "apply", "server_side_apply", "context")

def selected(obj, kind, namespace, name, selectors):
    meta = obj.get("metadata", {})
    if kind and obj.get("kind") != kind or namespace and meta.get("namespace") != namespace:
        return False
    if name and meta.get("name") != name:
        return False
    labels = meta.get("labels", {})
    for selector in selectors or []:
        key, _sep, value = selector.partition("=")
        if key not in labels or (_sep and labels[key] != value):
            return False
    return True

module = AnsibleModule(argument_spec=dict((o, {"type": "raw"}) for o in OPTIONS), supports_check_mode=True)
p = module.params
folder = os.path.dirname(p["kubeconfig"])
state = json.load(open(os.path.join(folder, "fake-cluster.json")))
with open(os.path.join(folder, "fake-cluster.log"), "a") as log:
    log.write(json.dumps({"module": MODE, "state": p["state"], "kind": p["kind"] or (p["definition"] or {}).get("kind"),
                          "namespace": p["namespace"] or ((p["definition"] or {}).get("metadata") or {}).get("namespace"),
                          "name": p["name"] or ((p["definition"] or {}).get("metadata") or {}).get("name")}) + "\\n")
if MODE == "k8s_info":
    found = [o for o in state["objects"] if selected(o, p["kind"], p["namespace"], p["name"], p["label_selectors"])]
    module.exit_json(changed=False, api_found=True, resources=found)
if MODE == "k8s_log":
    job = [s.split("=", 1)[1] for s in p["label_selectors"] or [] if s.startswith("job-name=")][0]
    key = "%%s/%%s" %% (p["namespace"], job)
    if key not in state["logs"]:
        module.fail_json(msg="no pod for job-name=%%s" %% job)
    module.exit_json(changed=False, log=state["logs"][key], log_lines=state["logs"][key].splitlines())
module.exit_json(changed=True, result={})
'''
WORDPRESS_PAGE = '<html><link rel="stylesheet" href="/wp-admin/css/install.min.css">WordPress &rsaquo; Installation</html>'


class FakeServices(http.server.BaseHTTPRequestHandler):
    """WordPress, JupyterHub's REST API and Prometheus' query API, as the checks ask them."""
    requests = []

    def log_message(self, *args):
        pass

    def answer(self, status, body=None):
        data = (body if isinstance(body, str) else json.dumps(body)).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        FakeServices.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
        path = self.path
        if path.startswith("/hub/api/") and self.headers.get("Authorization") != "token " + TOKEN:
            return self.answer(403, {"status": 403, "message": "Missing or invalid credentials."})
        if self.command == "GET" and path == "/":
            return self.answer(200, WORDPRESS_PAGE)
        if self.command == "GET" and path == "/hub/api":
            return self.answer(200, {"version": "5.5.0"})
        if path == "/hub/api/users/ailab-validation":
            return self.answer({"POST": 201, "DELETE": 204}.get(self.command, 200),
                               CLUSTER_USER if self.command == "GET" else None)
        if path == "/hub/api/groups/cs101/users" and self.command == "POST":
            return self.answer(200, {"name": "cs101", "users": ["ailab-validation"]})
        if path == "/hub/api/users/ailab-validation/server":
            return self.answer(202 if self.command == "POST" else 204)
        if path.startswith("/api/v1/query?query="):
            return self.answer(200, {"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"node": "rtx-node"}, "value": [1796506812.1, "1"]}]}})
        return self.answer(404, {"message": "not found: " + path})

    do_GET = do_POST = do_DELETE = handle_any


CLUSTER_USER = {"kind": "user", "name": "ailab-validation", "groups": ["cs101"],
                "servers": {"": {"name": "", "ready": True, "pending": None, "url": "/user/ailab-validation/"}}}
LIVE_VARS = {"ailab_gpu_node_groups": EXAMPLE_VARS["ailab_gpu_node_groups"],
             "ailab_tenants": [EXAMPLE_VARS["ailab_tenants"][0]], "validation_jupyterhub_api_token": TOKEN,
             "validation_timeout": 30, "validation_poll_delay": 1}


def fake_state(port):
    def job(namespace, name, condition, reason, kind="cuda", owner=None):
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
            "name": name, "namespace": namespace, "labels": {"ailab.cluster/validation": kind}},
            "spec": {}, "status": {"conditions": [{"type": condition, "status": "True", "reason": reason,
                                                   "message": "Job was active longer than specified deadline"
                                                   if reason == "DeadlineExceeded" else ""}]}}

    ns = "ailab-validation"
    available = {"conditions": [{"type": "Available", "status": "True"}]}
    smi_l = reference("gpu/nvidia-h200/nvidia-smi-L.txt").read_text()
    smi = reference("gpu/nvidia-h200/nvidia-smi.txt").read_text()
    vectoradd = (FIXTURES / "vectoradd-passed.txt").read_text()
    mig = (FIXTURES / "mig-device-line.txt").read_text()
    cluster = yaml.safe_load((FIXTURES / "cluster.yml").read_text())

    def service(namespace, name, extra):
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, **extra}

    return {"objects": [
        job(ns, "cuda-mig-1g-18gb-k8s-gpu-h200", "Complete", "CompletionsReached"),
        job(ns, "cuda-mig-2g-35gb-k8s-gpu-h200", "Failed", "DeadlineExceeded"),
        job(ns, "cuda-rtx-3090-shared-rtx-node", "Complete", "CompletionsReached"),
        job("cs101", "ailab-validation-queue", "Complete", "CompletionsReached", kind="queue"),
        cluster["workload_finished"],
        dict(cluster["event_failed_scheduling"], involvedObject={
            "kind": "Pod", "name": "cuda-mig-2g-35gb-k8s-gpu-h200-q8x2z", "namespace": ns},
            message="0/5 nodes are available: 1 Insufficient nvidia.com/mig-2g.35gb, 4 node(s) didn't match Pod's "
                    "node affinity/selector."),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mysql", "namespace": ns,
                                                                     "labels": {"ailab.cluster/validation": "wordpress"}},
         "status": available},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wordpress", "namespace": ns,
                                                                     "labels": {"ailab.cluster/validation": "wordpress"}},
         "status": available},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "mysql-data", "namespace": ns},
         "status": {"phase": "Bound"}},
        service(ns, "wordpress", {"spec": {"type": "LoadBalancer", "clusterIP": "127.0.0.1", "ports": [{"name": "http", "port": port}]},
                                  "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}),
        service("jupyterhub", "proxy-public", {"spec": {"clusterIP": "127.0.0.1", "ports": [{"name": "http", "port": port}]}}),
        service("monitoring", "kube-prometheus-stack-prometheus",
                {"spec": {"clusterIP": "127.0.0.1", "ports": [{"name": "http-web", "port": port}]}}),
    ], "logs": {
        f"{ns}/cuda-mig-1g-18gb-k8s-gpu-h200": smi_l + mig + smi + vectoradd,
        f"{ns}/cuda-rtx-3090-shared-rtx-node": smi_l.replace("NVIDIA H200", "NVIDIA GeForce RTX 3090") + smi + vectoradd,
        "cs101/ailab-validation-queue": "ailab.cluster validation: admitted by Kueue in cs101\n",
    }}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    def build(tmp):
        fake = tmp / "fake" / "ansible_collections" / "kubernetes" / "core" / "plugins" / "modules"
        fake.mkdir(parents=True)
        for mode in ("k8s_info", "k8s", "k8s_log"):
            (fake / f"{mode}.py").write_text(FAKE_MODULE % mode)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeServices)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.server_address[1]
        (tmp / "fake-cluster.json").write_text(json.dumps(fake_state(port)))
        (tmp / "admin.conf").write_text("fake kubeconfig\n")
        # The fake kubernetes.core modules run with this test's Python, not the control plane's client venv.
        host_vars = {"live": dict(LIVE_VARS, ansible_connection="local", ansible_become=False,
                                  validation_kubeconfig=str(tmp / "admin.conf"), ailab_kubernetes_python_interpreter=PYTHON)}
        for hosts in GPU_GROUPS.values():
            for host in hosts:
                host_vars[host] = dict(UNREACHABLE, **NODE_VARS.get(host, {}))
        inv = local_inventory({"labs": ["live"], **GPU_GROUPS}, host_vars=host_vars)
        playbook = [{"name": "Smoke tests", "ansible.builtin.import_playbook": str(ROOT / "playbooks" / "validate.yml")}]
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ANSIBLE_COLLECTIONS_PATH", f"{tmp / 'fake'}:{ROOT / '.collections'}")
            run = run_playbook(tmp, playbook, inv, "-e", "ailab_platform_hosts=labs")
        server.shutdown()
        (tmp / "http-requests.json").write_text(json.dumps(FakeServices.requests))
        return run

    return shared_run(tmp_path_factory, "validation-live", build)


def test_live_run_prints_a_verdict_per_check_and_fails_on_the_failures(live):
    tmp, run = live
    lines = report_lines(run, "live")
    port = json.loads((tmp / "fake-cluster.json").read_text())["objects"][9]["spec"]["ports"][0]["port"]
    assert lines == [
        f"PASS     wordpress: http://127.0.0.1:{port}/ answered 200 (WordPress)",
        "PASS     cuda gpu_h200 mig-1g.18gb on k8s-gpu-h200: NVIDIA H200 (GPU-5b450c73), MIG 1g.18gb, driver 580.159.04, "
        "CUDA 13.0; vectorAdd Vector addition of 50000 elements: Test PASSED",
        "FAIL     cuda gpu_h200 mig-2g.35gb on k8s-gpu-h200: Job failed: DeadlineExceeded (Job was active longer than "
        "specified deadline); FailedScheduling: 0/5 nodes are available: 1 Insufficient nvidia.com/mig-2g.35gb, 4 "
        "node(s) didn't match Pod's node affinity/selector.",
        "PASS     cuda gpu_rtx rtx-3090-shared on rtx-node: NVIDIA GeForce RTX 3090 (GPU-5b450c73), driver 580.159.04, "
        "CUDA 13.0; vectorAdd Vector addition of 50000 elements: Test PASSED",
        "PASS     queue cs101: Workload job-ailab-validation-queue-3c1f2 admitted and finished; Job completed in "
        "LocalQueue default",
        f"PASS     jupyterhub api: http://127.0.0.1:{port}/hub/api answered: JupyterHub 5.5.0",
        "PASS     jupyterhub user server: user ailab-validation's server with profile cs101-mig-1g.18gb is ready",
        "FAIL     prometheus dcgm: no DCGM series from k8s-gpu-h200 (series from: rtx-node)",
        "6 passed, 2 failed, 0 not run"]
    assert run.rc != 0
    assert run.failure("live").startswith("Smoke tests: 6 passed, 2 failed, 0 not run. Failed: cuda gpu_h200 "
                                          "mig-2g.35gb on k8s-gpu-h200, prometheus dcgm.")
    assert TOKEN not in run.stdout


def test_live_run_talks_to_the_hub_as_an_admin_and_removes_the_test_user(live):
    tmp, _run = live
    requests = [(method, path, auth) for method, path, auth, _body in json.loads((tmp / "http-requests.json").read_text())]
    hub = [r for r in requests if r[1].startswith("/hub/api/")]
    assert [(m, p) for m, p, _a in hub] == [
        ("POST", "/hub/api/users/ailab-validation"), ("POST", "/hub/api/groups/cs101/users"),
        ("POST", "/hub/api/users/ailab-validation/server"), ("GET", "/hub/api/users/ailab-validation"),
        ("DELETE", "/hub/api/users/ailab-validation/server"), ("DELETE", "/hub/api/users/ailab-validation")]
    assert all(auth == "token " + TOKEN for _m, _p, auth in hub)
    start = [body for method, path, _a, body in json.loads((tmp / "http-requests.json").read_text())
             if method == "POST" and path.endswith("/server")]
    assert json.loads(start[0]) == {"profile": "cs101-mig-1g.18gb"}
    query = [p for _m, p, _a in requests if p.startswith("/api/v1/query")]
    assert query == ["/api/v1/query?query=group%20by%20%28node%29%20%28DCGM_FI_DEV_GPU_TEMP%29"]


def test_live_run_applies_the_workloads_and_removes_them(live):
    tmp, _run = live
    calls = [json.loads(line) for line in (tmp / "fake-cluster.log").read_text().splitlines()]
    writes = [(c["state"], c["kind"], c["namespace"], c["name"]) for c in calls if c["module"] == "k8s"]
    applied = [w for w in writes if w[0] == "present"]
    assert ("present", "Namespace", None, "ailab-validation") == applied[0]
    assert ("present", "Job", "cs101", "ailab-validation-queue") in applied
    deleted = [w for w in writes if w[0] == "absent"]
    # Earlier runs' Jobs first (before the apply), then the clean-up: the queue Job and the namespace.
    assert deleted[-2:] == [("absent", "Job", "cs101", "ailab-validation-queue"),
                            ("absent", "Namespace", None, "ailab-validation")]
    assert writes.index(("absent", "Job", "cs101", "ailab-validation-queue")) < writes.index(applied[0])
