"""inventories/example-lab exported whole (playbooks/export.yml, what `make export` runs): every
Kubernetes-facing layer writes its objects and releases, everything validates against the upstream
schemas, and no node is contacted. The nodes' addresses are replaced by a closed loopback port, so a
task that reached a node would fail as unreachable instead of sending anything to the lab network."""

import pytest
import yaml

from export_check import check_export
from unit.roles.playbook_runner import ROOT, run_playbook, shared_run

INVENTORY = ROOT / "inventories" / "example-lab"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    def build(tmp):
        plays = [{"name": "Export", "ansible.builtin.import_playbook": str(ROOT / "playbooks" / "export.yml")}]
        return run_playbook(tmp, plays, {"all": {}}, "-i", str(INVENTORY),
                            "-e", f"ailab_kubernetes_export_dir={tmp / 'export'}",
                            "-e", "ansible_host=127.0.0.1", "-e", "ansible_port=9")

    tmp, run = shared_run(tmp_path_factory, "example-lab-export", build)
    assert run.rc == 0, run.stdout[-4000:]
    return tmp / "export", run


def test_no_node_is_contacted(exported):
    _directory, run = exported
    assert set(run.stats) >= {"k8s-1", "k8s-gpu-h200", "k8s-gpu-rtx"}
    assert all(stats["unreachable"] == 0 for stats in run.stats.values()), run.stats


def test_the_whole_export_validates(exported):
    directory, _run = exported
    assert check_export(directory) == []


def test_every_layer_is_exported(exported):
    directory, _run = exported
    releases = {r["name"] for r in yaml.safe_load((directory / "releases.yml").read_text())["releases"]}
    assert {"nfs-subdir-external-provisioner", "metallb", "metrics-server", "gpu-operator", "kueue", "jupyterhub",
            "kube-prometheus-stack", "headlamp"} <= releases
    for path in ("kube-flannel/daemonset-kube-flannel-ds.yaml", "metallb-system/ipaddresspool-lab.yaml",
                 "gpu-operator/configmap-ailab-device-plugin-config.yaml", "gpu-operator/configmap-ailab-mig-parted-config.yaml",
                 "_cluster/node-k8s-gpu-h200.gpu-operator.yaml", "cs101/resourcequota-tenant-quota.yaml"):
        assert (directory / path).is_file(), path
    for tenant in ("cs101", "vision", "nlp"):
        assert (directory / "_cluster" / f"namespace-{tenant}.yaml").is_file()


def test_gpu_sharing_follows_the_lab_model(exported):
    directory, _run = exported
    labels = yaml.safe_load((directory / "_cluster" / "node-k8s-gpu-h200.gpu-operator.yaml").read_text())["metadata"]["labels"]
    assert labels["ailab.cluster/gpu-group"] == "gpu_h200"
    assert labels["nvidia.com/mig.config"].startswith("ailab-")
    quota = yaml.safe_load((directory / "cs101" / "resourcequota-tenant-quota.yaml").read_text())["spec"]["hard"]
    assert quota["requests.nvidia.com/mig-1g.18gb"] == "3"
    assert quota["requests.nvidia.com/mig-2g.35gb"] == "0"
    # The course has no time-slices of the RTX (nvidia.com/gpu): a hard zero keeps it off that GPU.
    assert quota["requests.nvidia.com/gpu"] == "0"
