# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubernetes_apply in apply mode against the kubesim API server, one ansible-playbook run:

- no_log hides exactly the objects that carry secrets: a non-secret object's result (name, data) shows in the
  output, a Secret's data never does, even when the Secret sits between other objects (a per-item no_log on one
  loop hid the whole loop result, every object of the role, as soon as one item was a Secret);
- the Kubernetes client's tasks run with the interpreter of the host that runs them: a task of a worker delegated
  to the control plane uses the control plane's ailab_kubernetes_python_interpreter, not the worker's (here a path
  that does not exist, so the old behaviour fails the run).
"""

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("cryptography", reason="kubesim needs python3-cryptography, as on the molecule nodes")

from kubesim import apiserver, kubeadm, state  # noqa: E402
from unit.roles.playbook_runner import local_inventory, run_playbook  # noqa: E402

SECRET_VALUE = "never-shown-n0-l0g"
NS = "interp"
APPLY_TASK = "Apply the objects of this run"
SECRET_TASK = "Apply the Secrets of this run"
MISSING_PYTHON = "/nonexistent/ailab-python/bin/python3"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manifests():
    """A Secret between two ConfigMaps."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "before", "namespace": NS},
         "data": {"shown": "visible-before"}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "db", "namespace": NS},
         "stringData": {"password": SECRET_VALUE}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after", "namespace": NS},
         "data": {"shown": "visible-after"}},
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """kubeadm init (the double) in a temp root and its API server on a free loopback port."""
    base = tmp_path_factory.mktemp("kubesim-interp")
    saved = dict(os.environ)
    os.environ.update(KUBESIM_STATE_DIR=str(base / "state"), KUBESIM_ETC=str(base / "etc"), KUBESIM_NO_WAIT="1",
                      KUBESIM_ROOT=str(base / "cp1"))
    (base / "etc").mkdir()
    port = free_port()
    config = base / "init.yaml"
    config.write_text(yaml.safe_dump_all([
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "localAPIEndpoint": {"advertiseAddress": "127.0.0.1", "bindPort": port},
         "nodeRegistration": {"name": "cp1", "kubeletExtraArgs": [{"name": "node-ip", "value": "127.0.0.1"}]}},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion": "v1.34.2",
         "controlPlaneEndpoint": f"127.0.0.1:{port}", "clusterName": "ailab"},
    ]))
    try:
        assert kubeadm.main(["init", "--config", str(config)]) == 0
        server = apiserver.Server("127.0.0.1", port, "v1.34.2", str(base / "cp1/etc/kubernetes/pki")).start()
        try:
            yield {"base": base, "kubeconfig": base / "cp1/etc/kubernetes/admin.conf"}
        finally:
            server.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def applied(tmp_path_factory, cluster):
    tmp = tmp_path_factory.mktemp("client-interp")
    # The control plane's interpreter: this virtual environment under a path of its own (its pyvenv.cfg and lib,
    # a link to its Python), so the module's sys.executable says which setting ran it.
    venv = tmp / "cp-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text((Path(sys.prefix) / "pyvenv.cfg").read_text())
    (venv / "lib").symlink_to(Path(sys.prefix) / "lib")
    control_plane_python = venv / "bin" / "python3"
    control_plane_python.symlink_to(sys.executable)
    kubeconfig = str(cluster["kubeconfig"])
    probe = {"name": "Report the interpreter of a delegated Kubernetes client task",
             "ansible.builtin.setup": {"gather_subset": ["min"], "filter": ["ansible_python"]},
             "delegate_to": "cp1", "register": "__probe",
             "vars": {"ansible_python_interpreter": "{{ kubernetes_apply_python_interpreter }}"}}
    plays = [
        {"name": "Apply on the control plane", "hosts": "cp1", "gather_facts": False,
         "vars": {"kubernetes_apply_kubeconfig": kubeconfig},
         "tasks": [{"name": "Apply", "ansible.builtin.import_role": {"name": "ailab.cluster.kubernetes_apply"},
                    "vars": {"kubernetes_apply_manifests": manifests()}}]},
        {"name": "Apply from a worker through the control plane", "hosts": "w1", "gather_facts": False,
         "vars": {"kubernetes_apply_kubeconfig": kubeconfig, "kubernetes_apply_delegate_to": "cp1"},
         "tasks": [
             {"name": "Apply delegated", "ansible.builtin.import_role": {"name": "ailab.cluster.kubernetes_apply"},
              "vars": {"kubernetes_apply_manifests": [
                  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-worker", "namespace": NS},
                   "data": {"by": "w1"}}]}},
             probe]},
    ]
    inventory = local_inventory({"kube_control_plane": ["cp1"], "kube_node": ["w1"]}, host_vars={
        "cp1": {"ailab_kubernetes_python_interpreter": str(control_plane_python)},
        "w1": {"ailab_kubernetes_python_interpreter": MISSING_PYTHON}})
    run = run_playbook(tmp, plays, inventory, "-v")
    return {"run": run, "python": str(control_plane_python)}


def apply_results(run, host):
    """The results of the two apply tasks on ``host`` in run order, without the skipped one of each run."""
    found = []
    for play in run.data["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get(host)
            if task["task"]["name"].endswith((APPLY_TASK, SECRET_TASK)) and result and not result.get("skipped"):
                found.append(result)
    return found


def test_run_succeeds(applied):
    run = applied["run"]
    assert run.rc == 0, run.failure("cp1") or run.failure("w1") or run.stdout[-3000:]
    with state.locked(write=False) as data:
        assert data.get("configmaps", "after", NS)["data"] == {"shown": "visible-after"}
        assert data.get("configmaps", "from-worker", NS)["data"] == {"by": "w1"}
        assert data.get("secrets", "db", NS) is not None


def test_secret_data_never_shows(applied):
    run = applied["run"]
    assert SECRET_VALUE not in run.stdout + run.stderr


def test_non_secret_objects_show(applied):
    """Each object that is not a Secret has its own, uncensored result (name and data), in the task result that
    the JSON callback, AWX's job summary and a failure report show; the Secrets' runs are censored."""
    results = apply_results(applied["run"], "cp1")
    shown = {}
    censored_runs = 0
    for result in results:
        if result.get("censored"):
            censored_runs += 1
            continue
        for item in result["results"]:
            assert "censored" not in item, item
            shown[item["item"]["metadata"]["name"]] = item["result"]
    assert sorted(shown) == ["after", "before", "interp"]
    assert shown["before"]["data"] == {"shown": "visible-before"}
    assert shown["after"]["data"] == {"shown": "visible-after"}
    assert censored_runs == 1  # the Secret db


def test_objects_are_applied_in_the_given_order(applied):
    """Runs keep the manifests' order: the ConfigMap after the Secret is applied after it."""
    results = apply_results(applied["run"], "cp1")
    kinds = []
    for result in results:
        kinds.extend(["Secret"] if result.get("censored") else
                     [i["item"]["kind"] + "/" + i["item"]["metadata"]["name"] for i in result["results"]])
    assert kinds == ["Namespace/interp", "ConfigMap/before", "Secret", "ConfigMap/after"]


def test_delegated_tasks_use_the_control_planes_interpreter(applied):
    run = applied["run"]
    stats = run.stats["w1"]
    assert stats["failures"] == 0, run.failure("w1")
    [probe] = run.results("Report the interpreter of a delegated Kubernetes client task", "w1")
    assert probe["ansible_facts"]["ansible_python"]["executable"] == applied["python"]
    assert json.dumps(run.results(APPLY_TASK, "w1")).count('"from-worker"') >= 1
    assert MISSING_PYTHON not in json.dumps(run.data)
