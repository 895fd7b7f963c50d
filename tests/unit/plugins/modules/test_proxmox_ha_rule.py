"""ailab.cluster.proxmox_ha_rule against the PVE API simulator: PVE 9 HA rules, and the error on PVE 8."""

import pytest
from ansible.module_utils import basic

from ansible_collections.ailab.cluster.plugins.modules import proxmox_ha_rule

PIN = dict(name="pin", type="node-affinity", resources=["vm:100"], nodes=["pve-2:2", "pve-1:1"], strict=True)
APART = dict(name="apart", type="resource-affinity", affinity="negative", resources=["vm:100", "vm:101"])


@pytest.fixture
def warnings(monkeypatch):
    """The module's warnings (module.warn), per test."""
    seen = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: seen.append(msg))
    return seen


@pytest.fixture
def guests(pve9_sim):
    """PVE 9 simulator with HA-managed VMs 100-103 on pve-1."""
    api = pve9_sim.api()
    for vmid in (100, 101, 102, 103):
        api.nodes("pve-1").qemu.post(vmid=vmid, name="vm%d" % vmid, memory=1024)
    assert pve9_sim.wait_tasks()
    for vmid in (100, 101, 102, 103):
        api.cluster.ha.resources.post(sid="vm:%d" % vmid)
    return pve9_sim


def run(sim, run_module, check_mode=False, diff=False, **args):
    return run_module(proxmox_ha_rule, dict(sim.module_params(), **args), check_mode=check_mode, diff=diff)


def rules(sim):
    return sim.state()["ha"]["rules"]


def calls(sim):
    return [(w["method"], w["path"]) for w in sim.writes()]


def test_pve8_has_no_rules(pve8_sim, run_module):
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, **PIN)
    assert result["failed"]
    assert result["msg"].startswith("HA rules need Proxmox VE 9; use ailab.cluster.proxmox_ha_group on PVE 8")
    assert pve8_sim.writes() == []
    assert [r["path"] for r in pve8_sim.reads()] == ["/version"]


def test_creates_a_node_affinity_rule(guests, run_module):
    result = run(guests, run_module, **PIN)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["action"] == "created"
    assert result["rule"] == {"name": "pin", "type": "node-affinity", "resources": ["vm:100"],
                              "nodes": ["pve-2:2", "pve-1:1"], "strict": True, "disable": False, "comment": ""}
    rule = rules(guests)["pin"]
    assert (rule["nodes"], rule["resources"], int(rule["strict"])) == ("pve-2:2,pve-1:1", "vm:100", 1)
    assert guests.state()["guests"]["100"]["node"] == "pve-2"


def test_rerun_makes_no_write(guests, run_module):
    run(guests, run_module, **APART)
    guests.clear_log()
    result = run(guests, run_module, **dict(APART, resources=["vm:101", "vm:100"]))
    assert result["changed"] is False and result["action"] == "unchanged"
    assert guests.writes() == []
    assert sorted(r["path"] for r in guests.reads()) == ["/cluster/ha/rules", "/version"]


def test_check_mode_predicts_and_writes_nothing(guests, run_module):
    guests.clear_log()
    result = run(guests, run_module, check_mode=True, **APART)
    assert result["changed"] is True and result["rule"]["affinity"] == "negative"
    assert guests.writes() == []
    assert rules(guests) == {}


def test_update_in_place_with_diff(guests, run_module):
    run(guests, run_module, **dict(PIN, comment="pinned"))
    guests.clear_log()
    changed = dict(PIN, resources=["vm:100", "vm:102"], nodes=["pve-1"], disable=True, comment="")
    result = run(guests, run_module, diff=True, **changed)
    assert result["action"] == "updated"
    assert result["diff"]["before"]["nodes"] == ["pve-2:2", "pve-1:1"] and result["diff"]["after"]["nodes"] == ["pve-1"]
    assert result["diff"]["after"]["disable"] is True and result["diff"]["after"]["comment"] == ""
    assert calls(guests) == [("PUT", "/cluster/ha/rules/pin")]
    params = guests.writes()[0]["params"]
    assert params["type"] == "node-affinity" and params["delete"] == "comment"
    assert params["resources"] == "vm:100,vm:102" and params["disable"] == "1"
    rule = rules(guests)["pin"]
    assert (rule["nodes"], rule["resources"], "comment" in rule) == ("pve-1", "vm:100,vm:102", False)


def test_type_change_deletes_and_creates(guests, run_module):
    run(guests, run_module, **dict(PIN, name="r1"))
    guests.clear_log()
    result = run(guests, run_module, **dict(APART, name="r1"))
    assert result["action"] == "replaced"
    assert calls(guests) == [("DELETE", "/cluster/ha/rules/r1"), ("POST", "/cluster/ha/rules")]
    assert rules(guests)["r1"]["type"] == "resource-affinity"


def test_absent_deletes_and_then_is_a_no_op(guests, run_module):
    run(guests, run_module, **APART)
    result = run(guests, run_module, name="apart", state="absent", diff=True)
    assert result["action"] == "deleted" and result["rule"] is None and result["diff"]["after"] == {}
    guests.clear_log()
    assert run(guests, run_module, name="apart", state="absent")["action"] == "absent"
    assert guests.writes() == []


def test_unmanaged_resource_fails_before_any_write(guests, run_module):
    guests.clear_log()
    result = run(guests, run_module, rules=[APART, dict(PIN, resources=["vm:100", "vm:555"])])
    assert result["failed"]
    assert "HA rule pin names vm:555, which is not HA managed" in result["msg"]
    assert guests.writes() == []


def test_resource_in_two_enabled_node_affinity_rules_fails_before_any_write(guests, run_module):
    run(guests, run_module, **PIN)
    guests.clear_log()
    result = run(guests, run_module, name="pin2", type="node-affinity", resources=["vm:101", "vm:100"], nodes=["pve-1"])
    assert result["failed"]
    assert "HA resource vm:100 would be in two enabled node-affinity rules, pin and pin2" in result["msg"]
    assert guests.writes() == []


def test_moving_a_resource_between_rules_in_one_list_works(guests, run_module):
    run(guests, run_module, rules=[dict(PIN, name="ra", resources=["vm:100", "vm:101"]),
                                   dict(PIN, name="rb", resources=["vm:102"])])
    guests.clear_log()
    result = run(guests, run_module, rules=[dict(PIN, name="rb", resources=["vm:102", "vm:101"]),
                                            dict(PIN, name="ra", resources=["vm:100"])])
    assert not result.get("failed"), result
    assert calls(guests) == [("PUT", "/cluster/ha/rules/ra"), ("PUT", "/cluster/ha/rules/rb")]  # shrink first


def test_unknown_node_fails_before_any_write(guests, run_module):
    guests.clear_log()
    result = run(guests, run_module, **dict(PIN, nodes=["pve-3"]))
    assert result["failed"]
    assert "HA rule pin names pve-3, which is not a node of this cluster" in result["msg"]
    assert guests.writes() == []


def test_list_mode_reads_once_and_purge_keeps_group_rules(guests, run_module, warnings):
    api = guests.api()
    api.cluster.ha.rules.post(rule="ha-group-gpu", type="node-affinity", nodes="pve-1", resources="vm:103")
    api.cluster.ha.rules.post(rule="stale", type="resource-affinity", affinity="positive", resources="vm:102,vm:103")
    wanted = [PIN, APART]
    guests.clear_log()
    # PIN gives vm:100 two node priorities, and APART names vm:100: Proxmox VE 9 refuses that pair
    result = run(guests, run_module, rules=wanted, purge=True)
    assert result["failed"] and "HA rules apart, pin cannot hold together" in result["msg"]
    assert guests.writes() == []
    wanted = [dict(PIN, nodes=["pve-2"]), APART]
    result = run(guests, run_module, rules=wanted, purge=True)
    assert [(r["name"], r["action"]) for r in result["rules"]] == [
        ("pin", "created"), ("apart", "created"), ("stale", "deleted")]
    assert sorted(rules(guests)) == ["apart", "ha-group-gpu", "pin"]
    guests.clear_log()
    result = run(guests, run_module, rules=wanted, purge=True)
    assert result["changed"] is False
    assert sorted(r["path"] for r in guests.reads()) == ["/cluster/ha/rules", "/version"]
    assert guests.writes() == []
    run(guests, run_module, name="ha-group-gpu", type="node-affinity", resources=["vm:103"], nodes=["pve-1"])
    assert any("ha-group-" in w and "proxmox_ha_group" in w for w in warnings)


def test_pve9_migration_of_a_positive_affinity_pair_moves_both(guests, run_module):
    run(guests, run_module, name="together", type="resource-affinity", affinity="positive",
        resources=["vm:100", "vm:101"])
    guests.api().cluster.ha.resources("vm:100").migrate.post(node="pve-2")
    assert guests.wait_tasks()  # the HA stack migrates both in qmigrate tasks
    state = guests.state()["guests"]
    assert (state["100"]["node"], state["101"]["node"]) == ("pve-2", "pve-2")


@pytest.mark.parametrize("args, message", [
    (dict(name="r", resources=["vm:100"]), "state is present but all of the following are missing: type"),
    (dict(name="r", type="node-affinity", resources=["vm:100"]), "type is node-affinity but all of the following"),
    (dict(name="r", type="resource-affinity", resources=["vm:100", "vm:101"]),
     "type is resource-affinity but all of the following are missing: affinity"),
    (dict(APART, resources=["vm:100"]), "a resource-affinity rule needs at least two resources"),
    (dict(APART, nodes=["pve-1"]), "nodes and strict are for node-affinity rules"),
    (dict(PIN, affinity="positive"), "affinity is for resource-affinity rules"),
    (dict(PIN, resources=["100"]), "resources must be HA resource ids like vm:100"),
    (dict(PIN, resources=["vm:100", "vm:100"]), "resources lists a resource twice"),
    (dict(PIN, nodes=["pve-1:x"]), "nodes must be node names with an optional priority"),
    (dict(PIN, name="my rule"), "name must start with a letter"),
    (dict(PIN, name="r"), "name must start with a letter and hold at least two"),
    (dict(rules=[PIN], comment="x"), "set comment inside each item of rules"),
    (dict(rules=[PIN, PIN]), "rule pin is listed twice"),
])
def test_bad_input_is_rejected_before_any_request(pve_sim, run_module, args, message):
    pve_sim.clear_log()
    result = run(pve_sim, run_module, **args)
    assert result["failed"]
    assert message in result["msg"]
    assert pve_sim.requests_log() == []


# ------------------------------------------------------------------ feasibility (PVE 9 refuses these)
SANDBOX_GROUP = dict(name="lab", nodes=["pve-1:2", "pve-2:1"], restricted=False, nofailback=False)
CP_APART = dict(name="k8s-control-plane-apart", type="resource-affinity", affinity="negative",
                resources=["vm:100", "vm:101"])


@pytest.mark.parametrize("existing, wanted, message", [
    (dict(rule="ha-group-lab", type="node-affinity", nodes="pve-1:2,pve-2:1", resources="vm:100,vm:101"), CP_APART,
     "HA rules ha-group-lab, k8s-control-plane-apart cannot hold together: resource-affinity rule "
     "k8s-control-plane-apart names vm:100, vm:101, which node-affinity rule ha-group-lab gives nodes of several "
     "priorities (pve-1:2,pve-2:1)"),
    (None, dict(CP_APART, name="three", resources=["vm:100", "vm:101", "vm:102"]),
     "negative resource-affinity rule three keeps 3 resources apart (vm:100, vm:101, vm:102) but the cluster has 2 "
     "nodes"),
    (dict(rule="together", type="resource-affinity", affinity="positive", resources="vm:100,vm:101"), CP_APART,
     "resource-affinity rules together (positive) and k8s-control-plane-apart (negative) both name vm:100, vm:101"),
    (dict(rule="one", type="node-affinity", nodes="pve-1", resources="vm:100,vm:101", strict=1), CP_APART,
     "node-affinity rule one allows only 1 node (pve-1) for them"),
])
def test_an_infeasible_rule_is_refused_before_any_write(guests, run_module, existing, wanted, message):
    if existing:
        guests.api().cluster.ha.rules.post(**existing)
    guests.clear_log()
    result = run(guests, run_module, **wanted)
    assert result["failed"] and message in result["msg"], result["msg"]
    assert guests.writes() == []


def test_planned_groups_make_the_sandbox_example_fail_in_the_plan(guests, run_module):
    """The role's preflight: group lab (two priorities) with its members and the control-plane rule."""
    guests.clear_log()
    result = run(guests, run_module, check_mode=True, rules=[CP_APART], planned_groups=[SANDBOX_GROUP],
                 planned_members=[dict(sid="vm:100", group="lab"), dict(vmid=101, group="lab")])
    assert result["failed"]
    assert result["msg"].startswith("HA rules ha-group-lab, k8s-control-plane-apart cannot hold together")
    assert guests.writes() == []
    # one priority for the group's nodes makes the set feasible
    result = run(guests, run_module, check_mode=True, rules=[CP_APART], planned_members=[dict(sid="vm:100",
                 group="lab"), dict(vmid=101, group="lab")], planned_groups=[dict(SANDBOX_GROUP, nodes=["pve-1", "pve-2"])])
    assert not result.get("failed"), result
    assert "/cluster/ha/groups" in [r["path"] for r in guests.reads()]  # and it checked the group migration


def test_enables_a_rule_with_delete_disable(guests, run_module):
    guests.api().cluster.ha.rules.post(rule="pin", type="node-affinity", nodes="pve-2", resources="vm:100", disable=1)
    guests.clear_log()
    result = run(guests, run_module, **dict(PIN, nodes=["pve-2"], disable=False, strict=False))
    assert result["changed"] is True and result["rule"]["disable"] is False
    assert [w["params"] for w in guests.writes()] == [{"type": "node-affinity", "delete": "disable"}]
    assert "disable" not in rules(guests)["pin"]
    guests.clear_log()
    assert run(guests, run_module, **dict(PIN, nodes=["pve-2"], disable=False, strict=False))["changed"] is False


@pytest.fixture
def upgraded(guests):
    """PVE 9 upgraded from 8: the HA groups are not migrated to rules yet."""
    guests.control("POST", "personality", {"name": "9-upgraded"})
    guests.api().cluster.ha.groups.post(group="lab", nodes="pve-1:2,pve-2:1")
    yield guests
    guests.control("POST", "personality", {"name": "9"})


@pytest.mark.parametrize("check_mode", [True, False])
def test_unmigrated_groups_are_named_with_what_to_do(upgraded, run_module, check_mode):
    upgraded.clear_log()
    result = run(upgraded, run_module, check_mode=check_mode, **CP_APART)
    assert result["failed"]
    assert "upgraded from 8 and its HA manager has not migrated the HA groups (lab) to HA rules yet" in result["msg"]
    assert "finish the upgrade of all nodes" in result["msg"]
    assert [w["status"] for w in upgraded.writes()] == ([] if check_mode else [500])  # PVE refused the one try
