# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The version decisions of the node and Kubernetes layers: no minor change outside playbooks/upgrade.yml,
what an upgrade still needs per node from what kubeadm applied, and which control plane deletes the Node
objects of reset nodes."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.kubernetes_version import (
    FilterModule,
    kubeadm_reset_api_host,
    kubeadm_upgrade_steps,
    kubernetes_dpkg_versions,
    kubernetes_version_change,
)

# dpkg-query --show --showformat='${Package}\t${db:Status-Abbrev}\t${Version}\n' kubelet kubeadm kubectl,
# on a node with kubelet held, kubeadm installed and kubectl removed (config files left).
DPKG = "kubelet\thi \t1.33.5-1.1\nkubeadm\tii \t1:1.33.5-1.1\nkubectl\trc \t1.33.5-1.1\n"


def images(*tags):
    names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    return [f"registry.k8s.io/{name}:{tag}" for name, tag in zip(names, tags)]


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "kubernetes_dpkg_versions", "kubernetes_version_change", "kubeadm_upgrade_steps", "kubeadm_reset_api_host"}


# ------------------------------------------------------------------------------------ dpkg versions
def test_dpkg_versions_of_installed_packages_only():
    assert kubernetes_dpkg_versions(DPKG) == {"kubelet": "1.33.5", "kubeadm": "1.33.5"}


def test_dpkg_versions_of_a_fresh_node_are_empty():
    assert kubernetes_dpkg_versions("") == {}
    assert kubernetes_dpkg_versions(None) == {}


def test_dpkg_version_without_a_kubernetes_version_is_refused():
    with pytest.raises(AnsibleFilterError, match="kubelet version 'latest'"):
        kubernetes_dpkg_versions("kubelet\tii \tlatest\n")


# ------------------------------------------------------------------------------------ version change
def test_fresh_node_and_patch_changes_are_fine():
    assert kubernetes_version_change({}, "1.34.2") == []
    assert kubernetes_version_change({"kubelet": "1.34.1", "kubeadm": "1.34.3"}, "1.34.2") == []


def test_minor_upgrade_outside_upgrade_yml_is_refused():
    problems = kubernetes_version_change({"kubelet": "1.33.5", "kubeadm": "1.33.5"}, "1.34.2")
    assert len(problems) == 2
    assert problems[1].startswith("kubelet 1.33.5 is installed and kubernetes_packages_version is 1.34.2")
    assert "playbooks/upgrade.yml" in problems[1] and "playbooks/nodes.yml" in problems[1]


def test_minor_upgrade_by_the_upgrade_procedure_is_fine():
    assert kubernetes_version_change({"kubelet": "1.33.5"}, "1.34.2", True) == []


def test_two_minors_at_once_are_refused_even_in_the_upgrade():
    (problem,) = kubernetes_version_change({"kubelet": "1.32.9"}, "1.34.2", True)
    assert "one minor at a time" in problem and "1.33.x first" in problem


@pytest.mark.parametrize("allow", [False, True])
def test_minor_downgrade_and_major_change_are_refused(allow):
    (down,) = kubernetes_version_change({"kubeadm": "1.34.2"}, "1.33.5", allow)
    assert "downgrade" in down and "back to 1.34.x" in down
    (major,) = kubernetes_version_change({"kubeadm": "1.34.2"}, "2.0.0", allow)
    assert "major change" in major


def test_malformed_wanted_version_names_the_variable():
    with pytest.raises(AnsibleFilterError, match="kubernetes_packages_version is '1.34'"):
        kubernetes_version_change({"kubelet": "1.34.2"}, "1.34")


# ------------------------------------------------------------------------------------ upgrade steps
def test_first_control_plane_applies_while_the_cluster_is_behind():
    # The defect: nodes.yml had already put kubelet 1.35.0 there; the cluster still runs 1.34.2.
    steps = kubeadm_upgrade_steps("v1.35.0", "v1.35.0", control_plane=images("v1.34.2", "v1.34.2", "v1.34.2"),
                                  cluster="v1.34.2", first=True)
    assert steps["kubeadm"] == "apply" and steps["kubelet"] is True
    assert "cluster is at 1.34.2" in steps["reason"]


def test_other_control_plane_with_a_new_kubelet_still_gets_kubeadm_upgrade_node():
    """What the kubelet-version decision got wrong: the kubelet is at the target, the manifests are not."""
    steps = kubeadm_upgrade_steps("v1.35.0", "v1.35.0", control_plane=images("v1.34.2", "v1.34.2", "v1.34.2"),
                                  cluster="v1.35.0")
    assert steps == {"kubeadm": "node", "kubelet": True, "reason": "the static pod manifests are at 1.34.2"}


def test_the_lowest_manifest_counts():
    steps = kubeadm_upgrade_steps("1.35.0", "v1.35.0", control_plane=images("v1.35.0", "v1.34.2", "v1.35.0"),
                                  cluster="v1.35.0")
    assert steps["kubeadm"] == "node"


def test_missing_manifests_need_kubeadm_upgrade_node():
    steps = kubeadm_upgrade_steps("v1.35.0", "v1.35.0", control_plane=[], cluster="v1.35.0")
    assert steps["kubeadm"] == "node" and "no version" in steps["reason"]


def test_control_plane_at_the_target_is_left_alone():
    steps = kubeadm_upgrade_steps("v1.35.0", "v1.35.0", control_plane=images("v1.35.0", "v1.35.0", "v1.35.0"),
                                  cluster="v1.35.0", first=True)
    assert steps == {"kubeadm": "none", "kubelet": False, "reason": "kubeadm and the kubelet are at 1.35.0"}


def test_control_plane_with_an_old_kubelet_only_needs_the_kubelet_step():
    steps = kubeadm_upgrade_steps("v1.35.0", "v1.34.2", control_plane=images("v1.35.0", "v1.35.0", "v1.35.0"),
                                  cluster="v1.35.0")
    assert steps["kubeadm"] == "none" and steps["kubelet"] is True


def test_image_digest_and_registry_port_are_read_right():
    steps = kubeadm_upgrade_steps("v1.35.0", "v1.35.0", control_plane=[
        "harbor.lab.example:5000/k8s/kube-apiserver:v1.35.0@sha256:" + "a" * 64], cluster="v1.35.0")
    assert steps["kubeadm"] == "none"
    with pytest.raises(AnsibleFilterError, match="tag of the static pod image harbor.lab.example:5000/k8s/kube-apiserver"):
        kubeadm_upgrade_steps("v1.35.0", "v1.35.0", control_plane=["harbor.lab.example:5000/k8s/kube-apiserver"],
                              cluster="v1.35.0")


@pytest.mark.parametrize("kubelet", ["v1.35.0", "v1.34.2"])
def test_a_worker_always_gets_kubeadm_upgrade_node(kubelet):
    steps = kubeadm_upgrade_steps("v1.35.0", kubelet)
    assert steps["kubeadm"] == "node"
    # Drained only for an old kubelet; the role adds a kubelet configuration that kubeadm rewrote.
    assert steps["kubelet"] is (kubelet != "v1.35.0")


def test_unknown_kubelet_version_means_the_kubelet_step():
    assert kubeadm_upgrade_steps("v1.35.0", "")["kubelet"] is True


@pytest.mark.parametrize("cluster, message", [
    ("v1.36.1", "cannot go down to 1.35.0 across minors"),
    ("v1.33.4", "one minor at a time: upgrade to 1.34.x first"),
])
def test_first_control_plane_refuses_impossible_upgrades(cluster, message):
    with pytest.raises(AnsibleFilterError, match=message):
        kubeadm_upgrade_steps("v1.35.0", "v1.33.4", control_plane=images("v1.33.4"), cluster=cluster, first=True)


# ------------------------------------------------------------------------------------ reset API host
def test_reset_of_one_worker_goes_through_the_first_control_plane():
    assert kubeadm_reset_api_host(["cp1", "cp2", "cp3"], ["w1"]) == "cp1"


def test_reset_of_the_first_control_plane_goes_through_the_next():
    assert kubeadm_reset_api_host(["cp1", "cp2", "cp3"], ["cp1", "w1"]) == "cp2"


def test_reset_of_the_whole_control_plane_deletes_nothing():
    assert kubeadm_reset_api_host(["cp1", "cp2"], ["cp1", "cp2", "w1"]) == ""
    assert kubeadm_reset_api_host([], ["w1"]) == ""
