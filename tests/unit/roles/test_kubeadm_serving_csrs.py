"""kubeadm_worker approves the kubelet serving certificates when serverTLSBootstrap is on (issue: without an
approver `kubectl logs`/`exec` fail), against a loopback double of the certificates.k8s.io API.

One ansible-playbook run of the role's serving_csrs entry point on three local hosts (one double each):
serverTLSBootstrap on with pending CSRs of inventory nodes and of a stranger, serverTLSBootstrap off, and
check mode is covered by the role's condition. kubectl is a recording script: the approval is a
subresource update the role leaves to `kubectl certificate approve`.
"""

import pytest

from unit.plugins.filter.test_network import make_csr
from unit.plugins.modules.k8s_api_double import ApiError, KubernetesApiDouble
from unit.roles.playbook_runner import local_inventory, run_playbook

NODES = {"cp1": "10.10.0.11", "w1": "10.10.0.21"}


class CsrDouble(KubernetesApiDouble):
    """CertificateSigningRequests, read-only (the approval goes through kubectl)."""

    def __init__(self, csrs):
        super().__init__()
        self.csrs = list(csrs)

    def handle(self, method, path, query, body):
        if method == "GET" and path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": "certificates.k8s.io", "versions": [{"groupVersion": "certificates.k8s.io/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "certificates.k8s.io/v1", "version": "v1"}}]}
        if method == "GET" and path == "/apis/certificates.k8s.io/v1":
            return 200, {"kind": "APIResourceList", "groupVersion": "certificates.k8s.io/v1", "resources": [{
                "name": "certificatesigningrequests", "singularName": "certificatesigningrequest", "namespaced": False,
                "kind": "CertificateSigningRequest", "verbs": ["get", "list"]}]}
        if method == "GET" and path == "/apis/certificates.k8s.io/v1/certificatesigningrequests":
            return 200, {"kind": "CertificateSigningRequestList", "apiVersion": "certificates.k8s.io/v1",
                         "metadata": {"resourceVersion": "1"}, "items": self.csrs}
        if path.startswith("/apis/"):
            raise ApiError(404, "NotFound", f"the double does not serve {method} {path}")
        return super().handle(method, path, query, body)


CASES = {
    "on": ({"kubeadm_control_plane_kubelet_config": {"serverTLSBootstrap": True}},
           [make_csr("csr-w1", "w1", ["10.10.0.21"]), make_csr("csr-cp1", "cp1", ["10.10.0.11"]),
            make_csr("csr-done", "w1", ["10.10.0.21"], approved=True),
            make_csr("csr-stranger", "w9", ["10.10.0.99"]), make_csr("csr-spoof", "w1", ["10.10.0.11"])]),
    "off": ({}, [make_csr("csr-w1", "w1", ["10.10.0.21"])]),
}


@pytest.fixture(scope="module")
def approved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving-csrs")
    doubles = {name: CsrDouble(csrs).start() for name, (_v, csrs) in CASES.items()}
    try:
        host_vars = {}
        for name, (extra, _csrs) in CASES.items():
            kubectl = tmp / f"kubectl-{name}"
            kubectl.write_text(f'#!/bin/sh\necho "$@" >> {tmp}/{name}.approved\n')
            kubectl.chmod(0o755)
            host_vars[name] = dict(extra, kubeadm_worker_kubeconfig=doubles[name].write_kubeconfig(tmp / f"{name}.kubeconfig"),
                                   kubeadm_worker_kubectl=str(kubectl), kubeadm_worker_csr_nodes_group="lab_nodes",
                                   kubeadm_worker_control_plane_group=f"cp_{name}")
        nodes = {h: {"node_prep_address": a} for h, a in NODES.items()}
        groups = {"lab_nodes": list(NODES)}
        groups.update({f"cp_{name}": [name] for name in CASES})
        inventory = local_inventory(groups, host_vars={**nodes, **host_vars})
        # One play per cluster: the approval block runs once per play (run_once), on the play's first host only.
        plays = [{"name": f"Serving CSRs ({name})", "hosts": name, "gather_facts": False, "tasks": [
            {"name": "Approve", "ansible.builtin.include_role": {"name": "ailab.cluster.kubeadm_worker",
                                                                 "tasks_from": "serving_csrs.yml"}}]} for name in CASES]
        yield tmp, run_playbook(tmp, plays, inventory)
    finally:
        for double in doubles.values():
            double.stop()


def test_pending_csrs_of_inventory_nodes_are_approved_once(approved):
    tmp, run = approved
    assert run.stats["on"]["failures"] == 0, run.failure("on")
    lines = (tmp / "on.approved").read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("certificate approve csr-cp1 csr-w1")
    assert lines[0].startswith("--kubeconfig ")


def test_strangers_and_spoofed_addresses_are_named_not_approved(approved):
    _tmp, run = approved
    message = run.results("Report kubelet-serving CSRs left pending", "on")[0]["msg"]
    assert "csr-stranger" in message and "csr-spoof" in message and "csr-w1" not in message
    assert "kubectl certificate approve" in message


def test_nothing_is_approved_without_server_tls_bootstrap(approved):
    tmp, run = approved
    assert run.stats["off"]["failures"] == 0, run.failure("off")
    assert not (tmp / "off.approved").exists()
    assert run.skipped("Read the certificate signing requests", "off")
