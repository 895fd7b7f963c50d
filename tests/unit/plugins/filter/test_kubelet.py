"""kubelet_resource_problems (plugins/filter/kubelet.py): the combinations the kubelet refuses at start, and the
GPU-node configuration of docs/kubernetes_layer.md accepted as written there."""

from fractions import Fraction

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.kubelet import (
    FilterModule,
    cpuset,
    kubelet_resource_problems,
    quantity,
)

# The GPU node group of docs/kubernetes_layer.md ("Exclusive CPUs and NUMA alignment").
GPU_NODE = {
    "cpuManagerPolicy": "static",
    "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
    "reservedSystemCPUs": "0-1",
    "kubeReserved": {"memory": "1Gi"},
    "systemReserved": {"memory": "1Gi"},
    "topologyManagerPolicy": "single-numa-node",
    "topologyManagerScope": "pod",
    "memoryManagerPolicy": "Static",
    "reservedMemory": [{"numaNode": 0, "limits": {"memory": "2148Mi"}}],
}


def problems(config, **kwargs):
    return kubelet_resource_problems(config, "node_prep_kubelet_config", **kwargs)


def test_registered():
    assert FilterModule().filters() == {"kubelet_resource_problems": kubelet_resource_problems}


def test_the_documented_gpu_node_is_accepted():
    assert problems(GPU_NODE, cpu_count=16, node_fields=list(GPU_NODE)) == []


def test_empty_and_default_policies_are_accepted():
    assert problems({}) == []
    assert problems(None) == []
    assert problems({"cpuManagerPolicy": "none", "topologyManagerPolicy": "best-effort", "memoryManagerPolicy": "None"}) == []


@pytest.mark.parametrize("value,expected", [
    ("2", 2), ("500m", Fraction(1, 2)), ("1Gi", 2 ** 30), ("1.5G", 1_500_000_000), ("100Mi", 100 * 2 ** 20), (3, 3),
])
def test_quantities(value, expected):
    assert quantity(value) == expected


@pytest.mark.parametrize("value", ["10%", "1 Gi", "1GB", "", True])
def test_bad_quantities(value):
    with pytest.raises(ValueError):
        quantity(value)


def test_cpusets():
    assert cpuset("0-1,6") == {0, 1, 6}
    assert cpuset("3") == {3}
    for bad in ("1-", "a", "3-1", "0;1"):
        with pytest.raises(ValueError):
            cpuset(bad)


def test_static_cpu_manager_needs_reserved_cpus():
    found = problems({"cpuManagerPolicy": "static"})
    assert len(found) == 1 and "cpuManagerPolicy static needs CPUs kept for the system" in found[0]
    # A reservation by quantity is enough (the kubelet rounds it up to whole CPUs).
    assert problems({"cpuManagerPolicy": "static", "kubeReserved": {"cpu": "500m"}}) == []
    assert problems({"cpuManagerPolicy": "static", "systemReserved": {"cpu": "1"}}) == []
    assert problems({"cpuManagerPolicy": "static", "kubeReserved": {"cpu": "0"}})


def test_reserved_cpus_within_the_node():
    found = problems({"cpuManagerPolicy": "static", "reservedSystemCPUs": "0,8"}, cpu_count=8)
    assert found == ["node_prep_kubelet_config: reservedSystemCPUs '0,8' names CPU 8 but the node has 8 CPUs (0-7)."]
    assert "reserves all 2 CPUs" in problems({"cpuManagerPolicy": "static", "reservedSystemCPUs": "0-1"}, cpu_count=2)[0]
    assert "take all 2 CPUs" in problems({"kubeReserved": {"cpu": "1"}, "systemReserved": {"cpu": "1"}}, cpu_count=2)[0]
    # Unknown CPU count (export, no facts): only the syntax is checked.
    assert problems({"cpuManagerPolicy": "static", "reservedSystemCPUs": "0,63"}) == []
    assert "is not a CPU list" in problems({"cpuManagerPolicy": "static", "reservedSystemCPUs": "0..1"})[0]


def test_reserved_cpus_not_with_reserved_cgroups():
    found = problems({"reservedSystemCPUs": "0", "systemReservedCgroup": "/system.slice"})
    assert len(found) == 1 and "cannot be combined with systemReservedCgroup" in found[0]


@pytest.mark.parametrize("config,words", [
    ({"cpuManagerPolicy": "Static"}, "cpuManagerPolicy must be one of none, static"),
    ({"topologyManagerPolicy": "single-numa"}, "topologyManagerPolicy must be one of"),
    ({"topologyManagerScope": "node"}, "topologyManagerScope must be container or pod"),
    ({"memoryManagerPolicy": "static"}, "memoryManagerPolicy must be None or Static (capitalised)"),
    ({"cpuManagerPolicyOptions": {"full-pcpus-only": "true"}}, "only apply to cpuManagerPolicy static"),
    ({"cpuManagerPolicy": "static", "reservedSystemCPUs": "0", "cpuManagerPolicyOptions": {"full-pcpus-only": True}},
     "quoted strings"),
    ({"topologyManagerPolicyOptions": {"prefer-closest-numa-nodes": True}}, "quoted strings"),
    ({"reservedMemory": [{"numaNode": 0, "limits": {"memory": "1Gi"}}]}, "only used by memoryManagerPolicy Static"),
    ({"kubeReserved": "500m"}, "kubeReserved must be a map"),
    ({"kubeReserved": {"cpu": "half"}}, "kubeReserved.cpu 'half' is not a quantity"),
    ({"kind": "KubeletConfiguration"}, "leave out kind"),
])
def test_bad_values_are_named(config, words):
    found = problems(config)
    assert any(words in p for p in found), found


def test_static_memory_manager_needs_reserved_memory_adding_up():
    config = dict(GPU_NODE, reservedMemory=[])
    found = problems(config)
    assert len(found) == 1
    # 1Gi + 1Gi + the default hard eviction threshold 100Mi.
    assert "= 2148Mi" in found[0] and "adds up to 0" in found[0]
    assert "{numaNode: 0, limits: {memory: 2148Mi}}" in found[0]
    # Split over two NUMA nodes is fine when the sum matches.
    split = dict(GPU_NODE, reservedMemory=[{"numaNode": 0, "limits": {"memory": "1074Mi"}},
                                           {"numaNode": 1, "limits": {"memory": "1074Mi"}}])
    assert problems(split) == []
    # A set evictionHard replaces the defaults: its memory.available counts, or nothing when absent.
    evict = dict(GPU_NODE, evictionHard={"memory.available": "500Mi"},
                 reservedMemory=[{"numaNode": 0, "limits": {"memory": "2548Mi"}}])
    assert problems(evict) == []
    no_memory_threshold = dict(GPU_NODE, evictionHard={"nodefs.available": "10%"},
                               reservedMemory=[{"numaNode": 0, "limits": {"memory": "2Gi"}}])
    assert problems(no_memory_threshold) == []
    percent = dict(GPU_NODE, evictionHard={"memory.available": "5%"})
    assert "must be an absolute quantity" in problems(percent)[0]


def test_reserved_memory_entries_are_checked():
    bad = dict(GPU_NODE, reservedMemory=[{"numaNode": "0", "limits": {"memory": "2148Mi"}}])
    assert "reservedMemory[0] must be {numaNode: 0" in problems(bad)[0]
    assert "reservedMemory is a list" in problems(dict(GPU_NODE, reservedMemory={"0": "1Gi"}))[0]


def test_node_drop_ins_only_carry_resource_fields():
    found = problems({"authentication": {"anonymous": {"enabled": True}}, "cgroupDriver": "systemd", "maxPods": 50},
                     node_fields=["authentication", "cgroupDriver", "maxPods"])
    assert len(found) == 1 and "authentication, cgroupDriver cannot be set per node" in found[0]
    # Cluster-wide fields merged in from kubeadm_control_plane_kubelet_config are fine.
    assert problems({"cgroupDriver": "systemd", "maxPods": 50}, node_fields=["maxPods"]) == []
    with pytest.raises(AnsibleFilterError, match="node_fields must be a list"):
        problems({}, node_fields="maxPods")


def test_not_a_mapping_is_an_error():
    with pytest.raises(AnsibleFilterError, match="must be a map of KubeletConfiguration fields"):
        kubelet_resource_problems(["cpuManagerPolicy"], "node_prep_kubelet_config")
    with pytest.raises(AnsibleFilterError, match="cpu_count must be a number"):
        kubelet_resource_problems({}, "x", "many")


@pytest.mark.parametrize("key, policy", [("cpuManagerPolicyOptions", {"cpuManagerPolicy": "static",
                                                                      "reservedSystemCPUs": "0-1"}),
                                         ("topologyManagerPolicyOptions", {})])
def test_policy_options_are_maps_of_quoted_strings(key, policy):
    assert problems(dict(policy, **{key: {"full-pcpus-only": "true"}})) == []
    found = problems(dict(policy, **{key: {"full-pcpus-only": True}}))
    assert len(found) == 1 and found[0].startswith("node_prep_kubelet_config: %s is a map of option names to "
                                                   "quoted strings" % key), found
    assert len(problems(dict(policy, **{key: ["full-pcpus-only"]}))) == 1
