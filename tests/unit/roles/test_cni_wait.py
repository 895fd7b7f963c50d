"""The cni role's waits in apply mode, against loopback doubles of the Kubernetes API.

A Ready node does not prove a pod network: kubelet reports Ready once the runtime has loaded a CNI
configuration, even when the runtime cannot find the plugin binaries (Debian's containerd looking in
/usr/lib/cni while Flannel installed into /opt/cni/bin). Then every pod sandbox fails and CoreDNS stays
ContainerCreating. The role's verify concern must wait for pods on the pod network and, on a timeout,
say why. One ansible-playbook run covers four clusters (one double each): CoreDNS Ready after a while,
CoreDNS stuck without a network, no CoreDNS at all, a node NotReady.

The double serves what kubernetes.core.k8s_info needs (discovery, then lists of Nodes, Pods and Events,
with label and field selectors); like the real API server, a pod's readiness changes between polls, not
within one.
"""

import re

import pytest

from unit.plugins.modules.k8s_api_double import ApiError, KubernetesApiDouble
from unit.roles.playbook_runner import local_inventory, run_playbook

NODES = ["cp1", "w1"]
SANDBOX_ERROR = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox '
                 '"4f1c": plugin type="flannel" failed (add): failed to find plugin "flannel" in path [/usr/lib/cni]')


def node(name, ready=True, message="kubelet is posting ready status"):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False", "message": message}]}}


def coredns(name, ready):
    status = {"phase": "Running" if ready else "Pending",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
              "containerStatuses": [{"name": "coredns", "ready": ready,
                                     "state": {"running": {}} if ready else {"waiting": {"reason": "ContainerCreating"}}}]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "status": status}


def event(pod, message, kind="Warning"):
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{pod}.1", "namespace": "kube-system"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": "kube-system"},
            "type": kind, "reason": "FailedCreatePodSandBox", "message": message}


def resource(name, kind, namespaced):
    return {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind, "verbs": ["get", "list"]}


def selected(obj, query):
    """Whether ``obj`` matches the labelSelector and fieldSelector (equality terms) of a list request."""
    for term in ",".join(query.get("labelSelector", [])).split(","):
        if term:
            key, _sep, value = term.partition("=")
            if obj["metadata"].get("labels", {}).get(key) != value:
                return False
    for term in ",".join(query.get("fieldSelector", [])).split(","):
        if term:
            path, _sep, value = term.partition("=")
            current = obj
            for part in path.split("."):
                current = current.get(part, {}) if isinstance(current, dict) else {}
            if current != value:
                return False
    return True


class ClusterDouble(KubernetesApiDouble):
    """Nodes, Pods and Events, read-only. ``pods_ready_after``: the pod lists before that many polls show the
    pods not Ready (the network comes up later); None: never Ready."""

    def __init__(self, nodes, pods=(), events=(), pods_ready_after=0):
        super().__init__()
        self.nodes, self.pods, self.events = list(nodes), list(pods), list(events)
        self.pods_ready_after = pods_ready_after
        self.pod_polls = 0

    def handle(self, method, path, query, body):
        if method == "GET" and path == "/api/v1":
            return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                resource("nodes", "Node", False), resource("pods", "Pod", True), resource("events", "Event", True)]}
        lists = {"/api/v1/nodes": ("NodeList", lambda: self.nodes),
                 "/api/v1/namespaces/kube-system/pods": ("PodList", self._pods),
                 "/api/v1/namespaces/kube-system/events": ("EventList", lambda: self.events)}
        if method == "GET" and path in lists:
            kind, items = lists[path]
            return 200, {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                         "items": [i for i in items() if selected(i, query)]}
        if path.startswith("/api/v1/"):
            raise ApiError(404, "NotFound", f"the double does not serve {method} {path}")
        return super().handle(method, path, query, body)

    def _pods(self):
        self.pod_polls += 1
        ready = self.pods_ready_after is not None and self.pod_polls > self.pods_ready_after
        return [coredns(p["metadata"]["name"], ready) for p in self.pods]

    def list_requests(self, resource_path):
        return [r for r in self.requests if r["method"] == "GET" and r["path"] == resource_path]


CLUSTERS = {
    # The network comes up while the role waits: the second poll shows CoreDNS Ready.
    "late": lambda: ClusterDouble([node(n) for n in NODES], pods=[coredns("coredns-a", False), coredns("coredns-b", False)],
                                  pods_ready_after=1),
    # The defect: nodes Ready, CoreDNS never gets a sandbox.
    "no_network": lambda: ClusterDouble(
        [node(n) for n in NODES], pods=[coredns("coredns-a", False), coredns("coredns-b", False)],
        events=[event("coredns-a", SANDBOX_ERROR), event("coredns-b", SANDBOX_ERROR),
                event("other-pod", "unrelated warning"), event("coredns-a", "Scheduled", kind="Normal")],
        pods_ready_after=None),
    "no_dns": lambda: ClusterDouble([node(n) for n in NODES]),
    "node_down": lambda: ClusterDouble(
        [node("cp1"), node("w1", False, "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady")],
        pods=[coredns("coredns-a", True)]),
}


def build(tmp, doubles):
    host_vars = {}
    for name, double in doubles.items():
        host_vars[name] = {
            "cni_kubeconfig": double.write_kubeconfig(tmp / f"{name}.kubeconfig"),
            "cni_nodes_group": "cluster_nodes",
            # Two polls (the first try and one retry), a second apart: each k8s_info call costs seconds here.
            "cni_wait_retries": 1,
            "cni_wait_delay": 1,
            # What the role's preflight registers in apply mode when the admin kubeconfig exists.
            "__cni_kubeconfig_stat": {"stat": {"exists": True}},
        }
    inventory = local_inventory({"cni_hosts": list(doubles), "cluster_nodes": NODES}, host_vars=host_vars)
    plays = [{"name": "CNI waits", "hosts": "cni_hosts", "gather_facts": False, "tasks": [
        {"name": "Run the verify concern", "ansible.builtin.include_role": {"name": "ailab.cluster.cni", "tasks_from": "verify.yml"}}]}]
    return run_playbook(tmp, plays, inventory)


@pytest.fixture(scope="module")
def waited(tmp_path_factory):
    doubles = {name: make().start() for name, make in CLUSTERS.items()}
    try:
        # Not shared between xdist workers (shared_run): the assertions read this process's doubles.
        yield build(tmp_path_factory.mktemp("cni-wait"), doubles), doubles
    finally:
        for double in doubles.values():
            double.stop()


def report(run, host):
    """The message of the task that explains a failed wait ('' when it did not run): the wait itself fails
    inside the block and the rescue reports."""
    results = run.results("Report why the pod network is not working", host)
    return results[0].get("msg", "") if results and results[0].get("failed") else ""


def test_waits_until_the_pods_on_the_pod_network_are_ready(waited):
    run, doubles = waited
    assert run.stats["late"]["failures"] == 0 and run.stats["late"]["rescued"] == 0, run.failure("late")
    assert len(doubles["late"].list_requests("/api/v1/namespaces/kube-system/pods")) == 2
    (pods,) = doubles["late"].list_requests("/api/v1/namespaces/kube-system/pods")[:1]
    assert pods["query"]["labelSelector"] == ["k8s-app=kube-dns"]


def test_ready_nodes_without_a_pod_network_fail_the_run(waited):
    run, doubles = waited
    message = report(run, "no_network")
    assert message, "nodes Ready while CoreDNS never got a network must not be a green run"
    assert "The pod network does not work" in message
    assert "coredns-a Pending ContainerCreating" in message and "coredns-b Pending ContainerCreating" in message
    # The warning that names the cause, once, and none of the unrelated events.
    assert message.count('failed to find plugin "flannel" in path [/usr/lib/cni]') == 1
    assert "unrelated warning" not in message and "Scheduled" not in message
    assert "containerd_cni_bin_dir" in message
    # It waited: one pod list per try (the first and one retry), then the events once.
    assert len(doubles["no_network"].list_requests("/api/v1/namespaces/kube-system/pods")) == 2
    assert len(doubles["no_network"].list_requests("/api/v1/namespaces/kube-system/events")) == 1
    assert doubles["no_network"].writes() == []


def test_no_cluster_dns_pods_is_reported(waited):
    run, _doubles = waited
    message = report(run, "no_dns")
    assert message and "no pod in kube-system matches k8s-app=kube-dns" in message
    assert "cni_wait_pod_network: false" in message


def test_a_node_not_ready_is_reported_with_its_reason(waited):
    run, doubles = waited
    message = report(run, "node_down")
    assert message and "Not every node of cluster_nodes (2) is registered and Ready" in message
    assert re.search(r"w1: container runtime network not ready: NetworkReady=false", message)
    assert doubles["node_down"].list_requests("/api/v1/namespaces/kube-system/pods") == []
