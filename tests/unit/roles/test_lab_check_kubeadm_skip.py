"""ailab_kubeadm_skip, the lab-level variable for hosts that cannot run kubeadm (the sandbox's containers):
playbooks/kubernetes.yml says "skipped: <reason>" for each such host and runs no kubeadm role there, neither
failing nor staying silent; in export mode the pod network is still written (it contacts no host).

One run of the real playbook on local hosts. No kubeadm is installed on this machine: a kubeadm role that
ran would fail the run, so a green run shows the skip at work.
"""

import pytest

from export_check import check_export
from unit.roles.playbook_runner import ROOT, local_inventory, run_playbook, shared_run

REASON = "sandbox container: kubeadm cannot run in it"
KUBERNETES = [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "kubernetes.yml")}]


def build(tmp):
    inventory = local_inventory({"kube_control_plane": ["cp1"], "kube_node": ["w1", "w2"]},
                                host_vars={"cp1": {"ailab_kubernetes_export_dir": str(tmp / "export")}},
                                group_vars={"kube_control_plane": {"ailab_kubeadm_skip": REASON},
                                            "kube_node": {"ailab_kubeadm_skip": REASON}})
    return run_playbook(tmp, KUBERNETES, inventory)


@pytest.fixture(scope="module")
def skipped(tmp_path_factory):
    return shared_run(tmp_path_factory, "kubeadm-skip", build)


def test_every_host_says_why_it_is_skipped(skipped):
    _tmp, run = skipped
    assert run.rc == 0, run.stdout[-3000:]
    for host in ("cp1", "w1", "w2"):
        (said,) = run.results("Say which hosts the Kubernetes layer skips", host)
        assert said["msg"] == f"skipped: {REASON} (ailab_kubeadm_skip) - no kubeadm init or join on this host"
        assert run.stats[host]["failures"] == 0
    assert run.stats["w1"]["changed"] == run.stats["w2"]["changed"] == 0


def test_no_kubeadm_role_runs_on_a_skipped_host(skipped):
    _tmp, run = skipped
    ran = {task["task"]["name"] for play in run.data["plays"] for task in play["tasks"]
           if any(not result.get("skipped") for result in task["hosts"].values())}
    roles = {name.split(" : ")[0] for name in ran if " : " in name}
    assert not roles & {"ailab.cluster.kubeadm_control_plane", "kubeadm_control_plane", "ailab.cluster.kubeadm_worker",
                        "kubeadm_worker", "ailab.cluster.kubeconfig", "kubeconfig"}, sorted(ran)
    plays = [play["play"]["name"] for play in run.data["plays"]]
    assert plays[0] == "Hosts that cannot run kubeadm"


def test_the_pod_network_is_still_exported(skipped):
    tmp, _run = skipped
    assert list((tmp / "export").rglob("*.yaml")), "the CNI objects were not exported"
    assert check_export(tmp / "export") == []
