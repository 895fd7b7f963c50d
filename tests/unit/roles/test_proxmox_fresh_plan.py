"""The plan of playbooks/proxmox.yml (``--check``) on a fresh two-node lab, against the PVE API simulator.

The simulator is a single Proxmox VE host, pve-1, without a cluster; pve-2 is a host that the
proxmox_cluster role would join in the real run (seed ``standalone``). In check mode nothing is
created or joined, so every later role plans against a one-node "cluster": the storage, PCI mapping,
guest and HA roles count the nodes of proxmox_cluster_nodes as members there (planned_nodes), so a
guest on pve-2 and a negative resource-affinity rule over two VMs (which needs two nodes) plan
cleanly. A guest on a node that is neither a member nor in proxmox_cluster_nodes is refused with a
message that names both lists. Two ansible-playbook runs: the whole layer under --check, then the plan
play up to the guests (40 s together at a load average of 11 on the shared 2-vCPU machine; 53 s at a load
of 7 while the HA rule module's retried group reads slept 3.5 s on each of its 4 runs, see ``plan``).
"""

import copy

import pytest

from pvesim.testing import SimulatorProcess
from unit.roles.playbook_runner import PYTHON, ROOT, run_playbook

LAB = {
    "proxmox_cluster_name": "ailab",
    "proxmox_storage_list": [
        {"storage": "backups", "type": "dir", "path": "/srv/backups", "content": ["backup"],
         "nodes": ["pve-1", "pve-2"]},
    ],
    "proxmox_pci_mapping_list": [
        {"id": "rtx3090", "description": "GeForce RTX 3090",
         "map": [{"node": "pve-1", "path": "0000:01:00", "id": "10de:2204", "subsystem_id": "10de:1454", "iommugroup": 14},
                 {"node": "pve-2", "path": "0000:01:00", "id": "10de:2204", "subsystem_id": "10de:1454", "iommugroup": 14}]},
    ],
    "proxmox_guests_defaults": {"storage": "local-lvm", "memory": 4096, "agent": True,
                                "networks": {"net0": {"model": "virtio", "bridge": "vmbr0"}},
                                "disks": {"scsi0": {"size": "16G"}, "ide2": "local-lvm:cloudinit"}},
    "proxmox_guests_list": [
        {"name": "k8s-cp-1", "vmid": 201, "node": "pve-1", "cores": 2, "ha": {"state": "started"}},
        {"name": "k8s-w-1", "vmid": 211, "node": "pve-1", "cores": 2, "ha": {"state": "started"}},
        {"name": "k8s-gpu-1", "vmid": 212, "node": "pve-2", "cores": 2, "ha": {"state": "started"}},
    ],
    "proxmox_guests_state": "started",
    "proxmox_guests_add_hosts": False,
    "proxmox_ha_rules": [{"name": "k8s-workers-apart", "type": "resource-affinity", "affinity": "negative",
                          "resources": ["vm:211", "vm:212"]}],
    "proxmox_backup_jobs": [],
}


@pytest.fixture(scope="module")
def standalone():
    with SimulatorProcess(pve=9, seed="standalone") as sim:
        yield sim


def plan(tmp_path, sim, lab):
    """``ansible-playbook --check playbooks/proxmox.yml`` with root@pam (creating and joining a cluster need it)."""
    root = dict(api_host=sim.host, api_port=sim.port, api_user="root@pam", api_password=sim.password,
                ca_path=sim.ca_file)
    # PVE 9 answers every HA group read with HTTP 500 ("ha groups have been migrated to rules"): the HA rule
    # module's check for unmigrated groups would retry that read 3 times (0.5 + 1 + 2 s of backoff) on each of
    # its 4 runs here. The simulator injects no fault in this test, so one try is enough.
    lab = dict(lab, proxmox_api_connection=dict(root, api_retries=0), proxmox_cluster_join_password=sim.password,
               proxmox_cluster_nodes=[{"name": "pve-1", "link0": "192.168.10.11"},
                                      dict(name="pve-2", link0="192.168.10.12", **root)])
    inventory = {"all": {"children": {
        "proxmox_api": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": PYTHON}},
                        "vars": lab},
        "k8s_cluster": {"children": {"kube_control_plane": {"hosts": {}}, "kube_node": {"hosts": {}}}}}}}
    sim.clear_log()
    plays = [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "proxmox.yml")}]
    return run_playbook(tmp_path, plays, inventory, check=True)


def test_the_plan_of_a_fresh_two_node_lab_passes(tmp_path, standalone):
    run = plan(tmp_path, standalone, LAB)
    assert run.rc == 0, run.failure("localhost") or run.stdout[-3000:]
    assert standalone.writes() == []
    guests = run.results("Create, configure and start the guests", "localhost")
    planned = [r for r in guests if not r.get("skipped")]
    assert [(g["name"], g["node"], g["created"]) for g in planned[0]["guests"]] == [
        ("k8s-cp-1", "pve-1", True), ("k8s-w-1", "pve-1", True), ("k8s-gpu-1", "pve-2", True)]
    assert any("node pve-2 joins the cluster in this run" in w for w in planned[0].get("warnings", []))
    # the plan play, then the real plays under --check: the rule preflight and the rule module counted
    # pve-2 both times (two VMs kept apart need two nodes)
    preflights = run.results("Check that the HA groups, rules and resources can hold together (PVE 9)", "localhost")
    assert len(preflights) == 2 and not any(p.get("failed") or p.get("skipped") for p in preflights), preflights
    rules = run.results("HA rules (PVE 9)", "localhost")
    assert len(rules) == 2 and all(r["changed"] and r["rules"][0]["action"] == "created" for r in rules), rules


def test_a_node_neither_present_nor_planned_is_refused(tmp_path, standalone):
    lab = copy.deepcopy(LAB)
    lab["proxmox_guests_list"][2]["node"] = "pve-3"
    run = plan(tmp_path, standalone, lab)
    assert run.rc != 0
    assert run.failure("localhost") == ("VM 212 (k8s-gpu-1): cannot create VM 212 (k8s-gpu-1): node pve-3 is not in "
                                        "the cluster (nodes: pve-1) and does not join it in this run (planned: pve-2)")
    assert standalone.writes() == []
    # refused in the plan play: the real plays did not start
    assert len(run.results("Create the cluster and join the missing nodes", "localhost")) == 1
