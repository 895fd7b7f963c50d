"""planned_nodes of proxmox_guest and the HA modules: the plan (check mode) of a fresh cluster.

On a fresh multi-node lab, playbooks/proxmox.yml plans every role in check mode before
proxmox_cluster has joined the other nodes: those nodes are only in the inventory
(proxmox_cluster_nodes). The modules count them as members in check mode (as proxmox_storage and
proxmox_pci_mapping do), refuse a node that is neither a member nor planned, and ignore the option
outside check mode, where the join has happened.
"""

import pytest
from ansible.module_utils import basic

from ansible_collections.ailab.cluster.plugins.modules import (
    proxmox_guest,
    proxmox_ha_group,
    proxmox_ha_resource,
    proxmox_ha_rule,
)
from pvesim.seed import empty_seed

# pve-1 is the cluster (ailab); pve-2 is a host that proxmox_cluster joins earlier in the same run.
ONE_MEMBER = {"cluster": {"name": "ailab"}, "nodes": [{"name": "pve-1"}, {"name": "pve-2", "member": False}],
              "storages": [{"storage": "nas", "type": "nfs", "server": "192.168.10.50", "export": "/x",
                            "path": "/mnt/pve/nas", "content": "images"}]}
NEW_VM = dict(name="k8s-gpu-1", vmid=212, node="pve-2", cores=2, memory=2048,
              disks={"scsi0": {"storage": "nas", "size": "8G"}}, state="started")


@pytest.fixture
def warnings(monkeypatch):
    seen = []

    def warn(_module, msg):
        seen.append(msg)

    monkeypatch.setattr(basic.AnsibleModule, "warn", warn)
    return seen


def one_member(sim, *vmids):
    """``sim`` reseeded as a one-node cluster with pve-2 outside it, and HA-managed VMs ``vmids`` on pve-1."""
    sim.reseed(ONE_MEMBER)
    api = sim.api()
    for vmid in vmids:
        api.nodes("pve-1").qemu.post(vmid=vmid, name="vm%d" % vmid, memory=1024)
    assert sim.wait_tasks()
    for vmid in vmids:
        api.cluster.ha.resources.post(sid="vm:%d" % vmid)
    sim.clear_log()
    return sim


@pytest.fixture
def fresh9(pve9_sim):
    yield pve9_sim
    pve9_sim.reseed(empty_seed())


@pytest.fixture
def fresh8(pve8_sim):
    yield pve8_sim
    pve8_sim.reseed(empty_seed())


def run(module, sim, run_module, check_mode=True, **args):
    return run_module(module, dict(sim.module_params(), **args), check_mode=check_mode)


def test_guest_plan_accepts_a_planned_node_and_refuses_an_unknown_one(fresh9, run_module, warnings):
    sim = one_member(fresh9)
    planned = run(proxmox_guest, sim, run_module, planned_nodes=["pve-1", "pve-2"], **NEW_VM)
    assert not planned.get("failed"), planned
    assert planned["changed"] and planned["created"] and planned["node"] == "pve-2"
    assert any("node pve-2 joins the cluster in this run" in w for w in warnings), warnings
    assert sim.writes() == []
    # without planned_nodes (the previous behaviour) the plan refuses pve-2
    refused = run(proxmox_guest, sim, run_module, **NEW_VM)
    assert refused["failed"] and refused["msg"] == ("cannot create VM 212 (k8s-gpu-1): node pve-2 is not in the "
                                                    "cluster (nodes: pve-1)")
    unknown = run(proxmox_guest, sim, run_module, planned_nodes=["pve-1", "pve-2"], **{**NEW_VM, "node": "pve-3"})
    assert unknown["failed"] and unknown["msg"] == (
        "cannot create VM 212 (k8s-gpu-1): node pve-3 is not in the cluster (nodes: pve-1) and does not join it "
        "in this run (planned: pve-2)")
    # outside check mode the join has happened (or the run stopped): planned_nodes is ignored
    real = run(proxmox_guest, sim, run_module, check_mode=False, planned_nodes=["pve-2"], **NEW_VM)
    assert real["failed"] and "node pve-2 is not in the cluster (nodes: pve-1)" in real["msg"]
    assert sim.writes() == []


def test_guest_list_plan_on_a_planned_node(fresh9, run_module):
    sim = one_member(fresh9)
    result = run(proxmox_guest, sim, run_module, planned_nodes=["pve-2"],
                 guests=[dict(NEW_VM), dict(NEW_VM, name="k8s-w-1", vmid=211, node="pve-1")])
    assert not result.get("failed"), result
    assert [(g["name"], g["node"], g["created"]) for g in result["guests"]] == [
        ("k8s-gpu-1", "pve-2", True), ("k8s-w-1", "pve-1", True)]
    assert sim.writes() == []


APART = dict(name="k8s-workers-apart", type="resource-affinity", affinity="negative", resources=["vm:211", "vm:212"])
PIN = dict(name="gpu-on-pve-2", type="node-affinity", resources=["vm:212"], nodes=["pve-2"])


def test_rule_plan_counts_the_planned_nodes(fresh9, run_module):
    sim = one_member(fresh9, 211, 212)
    # a negative rule over two resources needs two nodes: pve-2 joins in this run
    planned = run(proxmox_ha_rule, sim, run_module, planned_nodes=["pve-1", "pve-2"], rules=[APART, PIN])
    assert not planned.get("failed"), planned
    assert planned["changed"] and sim.writes() == []
    # the previous behaviour: one node, so PVE 9 would refuse the negative rule and the node-affinity rule's pve-2
    alone = run(proxmox_ha_rule, sim, run_module, rules=[APART])
    assert alone["failed"] and "the cluster has 1 nodes" in alone["msg"], alone["msg"]
    pinned = run(proxmox_ha_rule, sim, run_module, rules=[PIN])
    assert pinned["failed"] and "HA rule gpu-on-pve-2 names pve-2, which is not a node of this cluster" in pinned["msg"]
    unknown = run(proxmox_ha_rule, sim, run_module, planned_nodes=["pve-2"], rules=[dict(PIN, nodes=["pve-3"])])
    assert unknown["failed"] and unknown["msg"] == (
        "HA rule gpu-on-pve-2 names pve-3, which is not a node of this cluster (nodes: pve-1) and does not join it "
        "in this run (planned: pve-2)")
    real = run(proxmox_ha_rule, sim, run_module, check_mode=False, planned_nodes=["pve-2"], rules=[PIN])
    assert real["failed"] and "names pve-2, which is not a node of this cluster (nodes: pve-1)" in real["msg"]
    assert sim.writes() == []


def test_rule_plan_counts_planned_nodes_in_planned_groups(fresh9, run_module):
    """The proxmox_ha preflight: group lab on PVE 9 (the rule ha-group-lab) names pve-2, which joins first."""
    sim = one_member(fresh9, 211)
    args = dict(rules=[], planned_groups=[dict(name="lab", nodes=["pve-1", "pve-2"])],
                planned_members=[dict(vmid=211, type="vm", group="lab")])
    assert run(proxmox_ha_rule, sim, run_module, planned_nodes=["pve-2"], **args).get("failed") is not True
    refused = run(proxmox_ha_rule, sim, run_module, **args)
    assert refused["failed"] and "HA rule ha-group-lab names pve-2" in refused["msg"]


def test_group_plan_accepts_a_planned_node_on_pve8(fresh8, run_module):
    sim = one_member(fresh8)
    group = dict(name="lab", nodes=["pve-1:2", "pve-2:1"])
    planned = run(proxmox_ha_group, sim, run_module, planned_nodes=["pve-2"], **group)
    assert not planned.get("failed"), planned
    assert planned["changed"] and sim.writes() == []
    refused = run(proxmox_ha_group, sim, run_module, **{**group, "nodes": ["pve-1", "pve-3"]}, planned_nodes=["pve-2"])
    assert refused["failed"] and refused["msg"] == (
        "HA group lab names pve-3, which is not a node of this cluster (nodes: pve-1) and does not join it in this "
        "run (planned: pve-2)")
    real = run(proxmox_ha_group, sim, run_module, check_mode=False, planned_nodes=["pve-2"], **group)
    assert real["failed"] and "names pve-2, which is not a node of this cluster" in real["msg"]
    assert sim.writes() == []


def test_resource_plan_migrates_to_a_planned_node(fresh9, run_module):
    sim = one_member(fresh9, 211)
    planned = run(proxmox_ha_resource, sim, run_module, planned_nodes=["pve-2"], sid="vm:211", migrate_to="pve-2")
    assert not planned.get("failed"), planned
    assert planned["changed"] and sim.writes() == []
    refused = run(proxmox_ha_resource, sim, run_module, sid="vm:211", migrate_to="pve-2")
    assert refused["failed"] and "cannot migrate to pve-2, which is not a node of this cluster" in refused["msg"]
