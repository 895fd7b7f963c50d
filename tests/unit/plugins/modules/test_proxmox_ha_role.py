"""The proxmox_ha role (and the HA part of proxmox_guests) run by ansible-playbook against the simulator.

What only a whole run shows: the role's PVE 9 preflight refuses a set of groups, rules and
resources that Proxmox VE would refuse half-way (the sandbox inventory's commented example: group
``lab`` with two node priorities and the rule ``k8s-control-plane-apart`` over two of its VMs)
before any write; a cluster upgraded from 8 whose groups are not migrated gets the instruction, not
a 500; and on a fresh PVE 8 cluster the guests that name a group get it first, in the plan (check
mode) and in the real run.
"""

import pytest

from unit.roles.playbook_runner import PYTHON, run_playbook

INVENTORY = {"all": {"children": {"proxmox_api": {"hosts": {"localhost": {
    "ansible_connection": "local", "ansible_python_interpreter": PYTHON}}}}}}

LAB = {"name": "lab", "nodes": ["pve-1:2", "pve-2:1"], "restricted": False, "nofailback": False}
CP_APART = {"name": "k8s-control-plane-apart", "type": "resource-affinity", "affinity": "negative",
            "resources": ["vm:201", "vm:202"]}
MEMBERS = [{"sid": "vm:201", "group": "lab"}, {"sid": "vm:202", "group": "lab"}]


def connection(sim):
    return dict(api_host=sim.host, api_port=sim.port, api_user="root@pam", api_token_id=sim.token_id,
                api_token_secret=sim.token_secret, ca_path=sim.ca_file)


def plays(sim, roles=("ailab.cluster.proxmox_ha",), **role_vars):
    return [{
        "name": "HA",
        "hosts": "proxmox_api",
        "gather_facts": False,
        "vars": dict({"proxmox_api_connection": connection(sim)}, **role_vars),
        "module_defaults": {"group/ailab.cluster.proxmox": "{{ proxmox_api_connection }}"},
        "roles": [{"role": role} for role in roles],
    }]


def make_vms(sim, *vmids):
    for vmid in vmids:
        sim.api().nodes("pve-1").qemu.post(vmid=vmid, name="vm%d" % vmid, memory=1024)
    assert sim.wait_tasks()


def test_pve9_sandbox_example_is_refused_before_any_write(pve9_sim, tmp_path):
    make_vms(pve9_sim, 201, 202)
    pve9_sim.clear_log()
    run = run_playbook(tmp_path, plays(pve9_sim, proxmox_ha_groups=[LAB], proxmox_ha_rules=[CP_APART],
                                       proxmox_ha_resources=MEMBERS), INVENTORY)
    assert run.rc != 0
    failure = run.failure("localhost")
    assert "HA rules ha-group-lab, k8s-control-plane-apart cannot hold together" in failure
    assert "several priorities (pve-1:2,pve-2:1)" in failure
    assert pve9_sim.writes() == []


def test_pve9_feasible_groups_rules_and_resources_converge_in_one_run(pve9_sim, tmp_path):
    make_vms(pve9_sim, 201, 202)
    role_vars = dict(proxmox_ha_groups=[dict(LAB, nodes=["pve-1", "pve-2"])], proxmox_ha_rules=[CP_APART],
                     proxmox_ha_resources=MEMBERS)
    run = run_playbook(tmp_path, plays(pve9_sim, **role_vars), INVENTORY)
    assert run.rc == 0, run.stdout[-3000:]
    rules = pve9_sim.state()["ha"]["rules"]
    assert sorted(rules) == ["ha-group-lab", "k8s-control-plane-apart"]
    assert "disable" not in rules["ha-group-lab"] and rules["ha-group-lab"]["nodes"] == "pve-1,pve-2"
    services = {e["sid"]: e["state"] for e in pve9_sim.api().cluster.ha.status.current.get() if e["type"] == "service"}
    assert services == {"vm:201": "started", "vm:202": "started"}  # the role waited for the HA manager
    pve9_sim.clear_log()
    again = run_playbook(tmp_path, plays(pve9_sim, **role_vars), INVENTORY)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0
    assert pve9_sim.writes() == []


@pytest.fixture
def upgraded(pve9_sim):
    pve9_sim.control("POST", "personality", {"name": "9-upgraded"})
    yield pve9_sim
    pve9_sim.control("POST", "personality", {"name": "9"})


def test_pve9_before_the_group_migration_says_what_to_do(upgraded, tmp_path):
    make_vms(upgraded, 201)
    upgraded.api().cluster.ha.groups.post(group="lab", nodes="pve-1:2,pve-2:1")
    upgraded.api().cluster.ha.resources.post(sid="vm:201", group="lab")
    upgraded.clear_log()
    run = run_playbook(tmp_path, plays(upgraded, proxmox_ha_groups=[LAB], proxmox_ha_resources=MEMBERS[:1]),
                       INVENTORY)
    assert run.rc != 0
    failure = run.failure("localhost")
    assert "has not migrated the HA groups (lab) to HA rules yet" in failure
    assert "finish the upgrade of all nodes" in failure and "HTTP 500" not in failure
    assert upgraded.writes() == []


def test_pve8_guests_naming_a_group_get_it_first_in_plan_and_run(pve8_sim, tmp_path):
    guests = [{"name": "k8s-cp-1", "vmid": 201, "node": "pve-1", "memory": 1024,
               "ha": {"state": "started", "group": "lab"}}]
    role_vars = dict(proxmox_guests_list=guests, proxmox_ha_groups=[LAB], proxmox_ha_resources=[],
                     proxmox_guests_add_hosts=False, proxmox_guests_wait_for_ip=0)
    roles = ("ailab.cluster.proxmox_guests", "ailab.cluster.proxmox_ha")
    plan = run_playbook(tmp_path, plays(pve8_sim, roles, **role_vars), INVENTORY, check=True)
    assert plan.rc == 0, plan.stdout[-3000:]
    assert pve8_sim.writes() == []
    run = run_playbook(tmp_path, plays(pve8_sim, roles, **role_vars), INVENTORY)
    assert run.rc == 0, run.stdout[-3000:]
    ha = pve8_sim.state()["ha"]
    assert ha["groups"]["lab"]["nodes"] == "pve-1:2,pve-2:1" and ha["resources"]["vm:201"]["group"] == "lab"
