"""node_prep's kubelet resource management (exclusive CPUs, NUMA alignment) on local hosts.

One ansible-playbook run: the role's own preflight check and kubelet tasks (tasks_from) on one host
per case, twice (the second pass must change nothing), with the files redirected under the test's
directory. No kubelet runs here, so the hosts are "not joined" and the handlers that stop the kubelet
and clear its state files are notified but skip; molecule/node_layer runs them on a node with a
kubelet configuration.
"""

import pytest
import yaml

from unit.roles.playbook_runner import load_all, local_inventory, run_playbook, shared_run

ROLE = "ailab.cluster.node_prep"
GPU_NODE = {
    "cpuManagerPolicy": "static",
    "reservedSystemCPUs": "0",
    "topologyManagerPolicy": "single-numa-node",
    "topologyManagerScope": "pod",
}
GOOD = {
    "gpu": {"node_prep_kubelet_config": GPU_NODE},
    "plain": {},
    # Memory manager with the cluster-wide reservations from kubeadm_control_plane_kubelet_config.
    "mem": {"kubeadm_control_plane_kubelet_config": {"kubeReserved": {"memory": "1Gi"}, "maxPods": 150},
            "node_prep_kubelet_config": dict(GPU_NODE, memoryManagerPolicy="Static",
                                             reservedMemory=[{"numaNode": 0, "limits": {"memory": "1124Mi"}}])},
}
BAD = {
    "b_static": ({"cpuManagerPolicy": "static"}, "cpuManagerPolicy static needs CPUs kept for the system"),
    "b_field": ({"authentication": {"anonymous": {"enabled": True}}}, "authentication cannot be set per node"),
    "b_memory": (dict(GPU_NODE, memoryManagerPolicy="Static"), "memoryManagerPolicy Static needs reservedMemory"),
    "b_topology": ({"topologyManagerPolicy": "single-numa"}, "topologyManagerPolicy must be one of"),
}


def build(tmp):
    host_vars = {}
    for host, extra in list(GOOD.items()) + [(h, {"node_prep_kubelet_config": c}) for h, (c, _m) in BAD.items()]:
        host_vars[host] = dict(extra, node_prep_kubelet_config_dir=str(tmp / host / "kubelet.conf.d"))
    redirect = {"_node_prep_kubelet_env_file": "{{ node_prep_kubelet_config_dir | dirname }}/default-kubelet",
                "_node_prep_kubelet_config_file": "{{ node_prep_kubelet_config_dir | dirname }}/config.yaml"}
    tasks = [
        {"name": "Preflight", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "kubelet_preflight.yml"}},
        {"name": "Kubelet", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "kubelet.yml"}, "vars": redirect},
    ]
    plays = [{"name": f"Pass {n}", "hosts": "nodes", "gather_facts": False, "tasks": tasks} for n in (1, 2)]
    inventory = local_inventory({"nodes": list(host_vars)}, host_vars=host_vars)
    return run_playbook(tmp, plays, inventory)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    return shared_run(tmp_path_factory, "node-prep-kubelet", build)


def play_results(run, play_index, host):
    return [t["hosts"][host] for t in run.data["plays"][play_index]["tasks"] if host in t["hosts"]]


@pytest.mark.parametrize("host", list(GOOD))
def test_valid_settings_pass_and_a_second_pass_changes_nothing(ran, host):
    _tmp, run = ran
    assert run.stats[host]["failures"] == 0, run.failure(host)
    assert any(r.get("changed") for r in play_results(run, 0, host))
    assert [r for r in play_results(run, 1, host) if r.get("changed")] == []


def test_gpu_node_drop_in(ran):
    tmp, _run = ran
    dropin = tmp / "gpu" / "kubelet.conf.d" / "50-ailab-resources.conf"
    docs = load_all(dropin)
    assert docs == [dict(GPU_NODE, apiVersion="kubelet.config.k8s.io/v1beta1", kind="KubeletConfiguration")]
    assert oct(dropin.stat().st_mode & 0o777) == "0o644"
    # kubeadm's 10-kubeadm.conf appends $KUBELET_EXTRA_ARGS from /etc/default/kubelet.
    env = (tmp / "gpu" / "default-kubelet").read_text()
    assert f'KUBELET_EXTRA_ARGS="--config-dir={tmp / "gpu" / "kubelet.conf.d"}"' in env.splitlines()


def test_a_change_notifies_the_state_reset_only_when_the_drop_in_changes(ran):
    _tmp, run = ran
    first = [t["task"]["name"] for t in run.data["plays"][0]["tasks"] if "gpu" in t["hosts"]]
    second = [t["task"]["name"] for t in run.data["plays"][1]["tasks"] if "gpu" in t["hosts"]]
    handler = "node_prep : Remove the CPU and memory manager state files"
    assert any(name.endswith(handler) for name in first), first
    assert not any(name.endswith(handler) for name in second), second
    # Not joined here (no kubelet configuration): the handlers skip.
    assert run.skipped("Remove the CPU and memory manager state files", "gpu")


def test_no_settings_no_drop_in(ran):
    tmp, _run = ran
    assert (tmp / "plain" / "kubelet.conf.d").is_dir()
    assert not (tmp / "plain" / "kubelet.conf.d" / "50-ailab-resources.conf").exists()


def test_memory_manager_drop_in_keeps_cluster_fields_out(ran):
    tmp, _run = ran
    doc = yaml.safe_load((tmp / "mem" / "kubelet.conf.d" / "50-ailab-resources.conf").read_text())
    assert doc["memoryManagerPolicy"] == "Static"
    assert "kubeReserved" not in doc and "maxPods" not in doc  # those stay in the cluster-wide configuration


@pytest.mark.parametrize("host", list(BAD))
def test_bad_settings_stop_in_preflight_and_write_nothing(ran, host):
    tmp, run = ran
    message = run.failure(host) or ""
    assert BAD[host][1] in message and message.startswith(f"{host}: "), message
    assert not (tmp / host).exists()
