# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubernetes_apply's apply path (kubernetes.core.k8s, server-side apply) and ailab.cluster.kubeadm_token with the
OLDEST Kubernetes client the collection supports and with the pinned one, against the kubesim API server.

Each client lives in its own virtual environment under .cache/ (the role's pins, that kubernetes version); the
play runs kubernetes_apply with kubernetes_apply_python_interpreter pointing at it, as the control planes run it
with /opt/ailab/python. The API server double records each request's User-Agent, so the test sees which client
made the calls. Kinds: those the roles apply that kubesim serves (core, apps, RBAC; no CRDs, docs/kubesim.md).
"""

import time

import pytest

pytest.importorskip("cryptography", reason="kubesim needs python3-cryptography, as on the molecule nodes")

from kubesim import apiserver, state  # noqa: E402
from kubesim.testing import running_cluster  # noqa: E402
from unit.kubernetes_python_client import client_venv, pins, role_minimum  # noqa: E402
from unit.roles.playbook_runner import local_inventory, run_playbook  # noqa: E402

LABELS = {"app.kubernetes.io/managed-by": "ailab.cluster"}
CLIENTS = ("oldest", "pinned")
SECRET_VALUE = "never-shown-pa55"


def manifests(ns):
    """The kinds the roles apply that kubesim serves, in namespace ``ns`` (cluster-scoped names end in it)."""
    reader = f"ailab:{ns}-reader"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": LABELS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "hub", "namespace": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
         "data": {"mode": "lab", "note": "Grüße"}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "hub-db", "namespace": ns},
         "stringData": {"password": SECRET_VALUE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": reader},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": reader},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader},
         "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": ns}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "editor", "namespace": ns},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "editor", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "editor"},
         "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hub", "namespace": ns},
         "spec": {"selector": {"app": "hub"}, "ports": [{"port": 8081, "targetPort": 8081}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hub", "namespace": ns, "labels": LABELS},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hub"}},
                  "template": {"metadata": {"labels": {"app": "hub"}},
                               "spec": {"containers": [{"name": "hub", "image": "quay.io/jupyterhub/k8s-hub:4.3.1"}]}}}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": ns},
         "spec": {"selector": {"matchLabels": {"app": "agent"}},
                  "template": {"metadata": {"labels": {"app": "agent"}},
                               "spec": {"containers": [{"name": "agent", "image": "registry.k8s.io/pause:3.10"}]}}}},
    ]


APPLY_TASK = "Apply each object with server-side apply"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """kubeadm init (the double) in a temp root and its API server on a free loopback port; every request's
    method, path, Content-Type and User-Agent is recorded."""
    requests = []
    original = apiserver._Handler._serve

    def recording(handler, method):
        requests.append((time.monotonic(), method, handler.path, handler.headers.get("Content-Type") or "",
                         handler.headers.get("User-Agent") or ""))
        return original(handler, method)

    apiserver._Handler._serve = recording
    try:
        with running_cluster(tmp_path_factory.mktemp("kubesim-client")) as cluster:
            yield {"base": cluster.base, "kubeconfig": cluster.kubeconfig, "requests": requests}
    finally:
        apiserver._Handler._serve = original


def warnings_in(data):
    """Every non-empty warnings/deprecations list anywhere in the JSON callback's output."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("warnings", "deprecations") and value:
                found.append(value)
            else:
                found.extend(warnings_in(value))
    elif isinstance(data, list):
        for value in data:
            found.extend(warnings_in(value))
    return found


@pytest.fixture(scope="module")
def applied(tmp_path_factory, cluster):
    """One ansible-playbook run, one local host per client (each in its own namespace): apply every manifest
    through kubernetes_apply, then make and delete a join token with ailab.cluster.kubeadm_token."""
    versions = {"oldest": role_minimum(), "pinned": pins()["kubernetes"]}
    pythons = {which: client_venv(version) for which, version in versions.items()}
    kubeconfig = str(cluster["kubeconfig"])
    token = {"kubeconfig": kubeconfig, "ttl": "10m", "description": "client test {{ inventory_hostname }}",
             "ca_cert_path": str(cluster["kubeconfig"].parent / "pki" / "ca.crt")}
    client = {"ansible_python_interpreter": "{{ ailab_kubernetes_python_interpreter }}"}
    plays = [{
        "name": "Apply with the client under test", "hosts": "kube_control_plane", "gather_facts": False,
        "vars": {"kubernetes_apply_kubeconfig": kubeconfig},
        "tasks": [
            {"name": "Apply", "ansible.builtin.import_role": {"name": "ailab.cluster.kubernetes_apply"}},
            {"name": "Create a join token", "ailab.cluster.kubeadm_token": token, "register": "__token",
             "no_log": True, "vars": client},
            {"name": "Delete the join token",
             "ailab.cluster.kubeadm_token": {"kubeconfig": kubeconfig, "state": "absent",
                                             "token_id": "{{ __token.token_id }}"}, "vars": client},
            {"name": "Keep the CA hash", "ansible.builtin.set_fact": {"ca_hash": "{{ __token.ca_cert_hash }}"}},
        ]}]
    host_vars = {which: {"ailab_kubernetes_python_interpreter": str(pythons[which]),
                         "kubernetes_apply_manifests": manifests(f"client-{which}")} for which in CLIENTS}
    first = len(cluster["requests"])
    run = run_playbook(tmp_path_factory.mktemp("client-apply"), plays,
                       local_inventory({"kube_control_plane": list(CLIENTS)}, host_vars=host_vars))
    return {"run": run, "versions": versions, "requests": cluster["requests"][first:]}


@pytest.mark.parametrize("which", CLIENTS)
def test_apply_path_with_client(applied, which):
    run, version = applied["run"], applied["versions"][which]
    ns = f"client-{which}"
    assert run.rc == 0 and run.stats[which]["failures"] == 0, run.failure(which) or run.stdout[-3000:]
    # The objects are in the cluster, as applied.
    with state.locked(write=False) as data:
        assert data.get("deployments", "hub", ns)["spec"]["template"]["spec"]["containers"][0]["image"] \
            == "quay.io/jupyterhub/k8s-hub:4.3.1"
        assert data.get("configmaps", "settings", ns)["data"] == {"mode": "lab", "note": "Grüße"}
        assert data.get("clusterrolebindings", f"ailab:{ns}-reader", "")["subjects"][0]["namespace"] == ns
        assert data.get("daemonsets", "agent", ns)["metadata"]["name"] == "agent"
        assert not [s for s in data.list("secrets", "kube-system") if s.get("type") == state.BOOTSTRAP_TOKEN_TYPE
                    and state.secret_value(s, "description") == f"client test {which}"], "the join token stayed"
    # Every object went by server-side apply with field manager ailab.cluster, made by the client under test.
    mine = [c for c in applied["requests"] if f"/{ns}" in c[2] or f"{ns}-reader" in c[2]]
    applies = [c for c in mine if c[1] == "PATCH" and "apply-patch" in c[3]]
    assert len(applies) == len(manifests(ns)), mine
    assert all("fieldManager=ailab.cluster" in c[2] and "force=true" in c[2].lower() for c in applies), applies
    assert {c[4] for c in mine} == {f"OpenAPI-Generator/{version}/python"}
    # kubeadm_token computed the CA hash with the venv's cryptography.
    hashes = [r["ansible_facts"]["ca_hash"] for r in run.results("Keep the CA hash", which)]
    assert hashes and hashes[0].startswith("sha256:")


def test_no_warning_and_no_secret(applied):
    """kubernetes.core warns on every task with a client below its minimum: a clean run has no warning."""
    run = applied["run"]
    assert warnings_in(run.data) == []
    assert "[WARNING]" not in run.stderr, run.stderr
    assert SECRET_VALUE not in run.stdout + run.stderr
