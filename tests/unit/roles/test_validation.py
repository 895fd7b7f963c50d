"""playbooks/validate.yml (role validation) in export mode, check mode and without a cluster.

One ansible-playbook run exports every lab shape: each host of the group ``labs`` stands for one lab
and the playbook runs on that group (``-e ailab_platform_hosts=labs``). The run exports each good lab
twice into the same directory, with a snapshot in between: the second export must be byte-identical
(the MySQL password is read back from the first). Every lab host is an SSH host on a closed loopback
port (127.0.0.1:9): export mode must never connect; a canary play proves that connecting fails. A
second run uses check mode (nothing written, nothing created). The checks' pass/fail logic is
unit-tested on recorded outputs in tests/unit/plugins/filter/test_validation.py; applying needs a
cluster and is not tested here.
"""

import pytest
import yaml

from export_check import check_export
from unit.roles.playbook_runner import ROOT, UNREACHABLE, assert_same_files, load_all, local_inventory, run_playbook, shared_run

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


def plays(root, twice):
    playbook = str(ROOT / "playbooks" / "validate.yml")
    found = [{"name": "Smoke tests", "ansible.builtin.import_playbook": playbook}]
    if twice:
        labs = [str(export_dir(root, lab)) for lab in GOOD]
        found.append({"name": "Snapshot the first exports", "hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "Copy each export", "ansible.builtin.command": {"argv": ["cp", "-a", "{{ item }}", "{{ item }}." + SNAPSHOT]},
             "loop": labs, "changed_when": True}]})
        found.append({"name": "Smoke tests again", "ansible.builtin.import_playbook": playbook})
    found.append({"name": "Canary", "hosts": "canary_hosts", "gather_facts": False,
                  "tasks": [{"name": "Connect to the canary", "ansible.builtin.ping": {}}]})
    return found


def build(tmp, labs, check=False):
    return run_playbook(tmp, plays(tmp, twice=not check), inventory(tmp, labs), "-e", "ailab_platform_hosts=labs",
                        check=check)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_run(tmp_path_factory, "validation-export", lambda tmp: build(tmp, list(GOOD) + list(BAD) + ["bad_no_cluster"]))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return shared_run(tmp_path_factory, "validation-check", lambda tmp: build(tmp, list(GOOD) + ["apply_check"], check=True))


def objects(directory):
    found = {}
    for path in sorted(directory.rglob("*.yaml")):
        [obj] = load_all(path)
        found[(obj["kind"], obj["metadata"].get("namespace", "_cluster"), obj["metadata"]["name"])] = obj
    return found


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
    found = objects(export_dir(tmp, "example"))
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
    found = objects(export_dir(tmp, "airgap"))
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
    claim = objects(export_dir(tmp, "bare"))[("PersistentVolumeClaim", "ailab-validation", "mysql-data")]
    # No storage backend in the inventory: no storageClassName, the cluster's default class.
    assert "storageClassName" not in claim["spec"]


def test_export_touches_no_node(exported):
    _tmp, run = exported
    for lab in GOOD:
        assert run.stats[lab]["unreachable"] == 0 and run.stats[lab]["failures"] == 0
        assert run.stats[lab]["ok"] > 0
    assert run.stats["canary"]["unreachable"] == 1
    assert not {"k8s-gpu-h200", "k8s-gpu-rtx"} & set(run.stats)


def test_check_mode_writes_nothing(checked):
    tmp, run = checked
    for lab in GOOD:
        assert run.stats[lab]["failures"] == 0 and run.stats[lab]["unreachable"] == 0, run.failure(lab)
        assert all(line.startswith("NOT RUN ") for line in report_lines(run, lab)[:-1])
    assert not (tmp / "export").exists()


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
    assert run.rc != 0
    message = run.failure(lab)
    assert message, f"{lab} did not fail"
    for part in BAD[lab][1]:
        assert part in message, message
    assert not export_dir(tmp, lab).exists()
    assert not run.results("Print one line per check", lab)


def test_apply_mode_without_a_cluster_stops_with_what_to_do(exported):
    _tmp, run = exported
    message = run.failure("bad_no_cluster")
    assert "/nonexistent/admin.conf" in message and "build the lab first" in message, message
