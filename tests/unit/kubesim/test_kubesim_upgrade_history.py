# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubesim's history of an upgrade: what the kubernetes_cluster scenario reads to check the order of
playbooks/upgrade.yml (kubeadm upgrade apply, then upgrade node per worker; each kubelet at its new version
only while its node is cordoned).

One cluster in a temp root (kubeadm init, no API server: KUBESIM_NO_WAIT), one joined worker.
"""

import os

import pytest

pytest.importorskip("cryptography", reason="kubesim needs python3-cryptography, as on the molecule nodes")

from kubesim import kubeadm, kubelet, state  # noqa: E402
from kubesim.testing import running_cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("kubesim-upgrade")) as cluster:
        os.environ["KUBESIM_ROOT"] = str(cluster.base / "w1")
        assert kubeadm.main(["join", "--config", cluster.join_config(cluster.base, "w1")]) == 0
        kubelet._load_modules()
        yield cluster.base


def history():
    return [{k: v for k, v in event.items() if k != "time"} for event in state.read().get("history", [])]


def test_upgrade_apply_and_node_are_recorded_in_order(cluster):
    (cluster / "etc" / "kubeadm-version").write_text("v1.35.0\n")
    os.environ["KUBESIM_ROOT"] = str(cluster / "cp1")
    assert kubeadm.main(["upgrade", "apply", "v1.35.0", "--yes"]) == 0
    os.environ["KUBESIM_ROOT"] = str(cluster / "w1")
    assert kubeadm.main(["upgrade", "node"]) == 0
    assert history()[-2:] == [
        {"event": "kubeadm upgrade apply", "node": "cp1", "version": "v1.35.0", "previous": "v1.34.2"},
        {"event": "kubeadm upgrade node", "node": "w1", "version": "v1.35.0"},
    ]


def test_a_refused_upgrade_is_not_recorded(cluster):
    before = history()
    (cluster / "etc" / "kubeadm-version").write_text("v1.37.0\n")
    os.environ["KUBESIM_ROOT"] = str(cluster / "cp1")
    try:
        assert kubeadm.main(["upgrade", "apply", "v1.37.0", "--yes"]) == 1
    finally:
        (cluster / "etc" / "kubeadm-version").unlink()
    assert history() == before


def test_the_kubelet_reports_the_version_it_started_with(cluster):
    """A package upgrade changes the version file; the running kubelet keeps its version until it restarts."""
    kubelet.heartbeat("w1", 0.0, "v1.34.2")
    (cluster / "etc" / "kubelet-version").write_text("v1.35.0\n")
    try:
        kubelet.heartbeat("w1", 0.0, "v1.34.2")
        assert state.read()["objects"]["nodes"]["/w1"]["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.2"
    finally:
        (cluster / "etc" / "kubelet-version").unlink()


def test_a_kubelet_version_change_is_recorded_with_the_cordon(cluster):
    kubelet.heartbeat("w1", 0.0, "v1.34.2")
    with state.locked() as data:
        node = data.get("nodes", "w1")
        node["spec"]["unschedulable"] = True
        data.put("nodes", node)
    before = len(history())
    kubelet.heartbeat("w1", 0.0, "v1.35.0")
    kubelet.heartbeat("w1", 0.0, "v1.35.0")
    assert history()[before:] == [
        {"event": "kubelet version", "node": "w1", "version": "v1.35.0", "previous": "v1.34.2", "unschedulable": True}]
    with state.locked() as data:
        node = data.get("nodes", "w1")
        node["spec"].pop("unschedulable")
        data.put("nodes", node)
    kubelet.heartbeat("w1", 0.0, "v1.34.2")
    assert history()[-1]["unschedulable"] is False
