"""ailab.cluster.proxmox_ha_group against the PVE API simulator: HA groups on PVE 8, the ha-group-<name>
node-affinity rule on PVE 9."""

import pytest
from ansible.module_utils import basic

from ansible_collections.ailab.cluster.plugins.modules import proxmox_ha_group, proxmox_ha_resource

GPU = dict(name="gpu", nodes=["pve-1:2", "pve-2:1"], restricted=True, nofailback=False, comment="RTX 3090 guests")


@pytest.fixture
def warnings(monkeypatch):
    """The module's warnings (module.warn), per test."""
    seen = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: seen.append(msg))
    return seen


def make_vm(sim, vmid, node="pve-1"):
    sim.api().nodes(node).qemu.post(vmid=vmid, name="vm%d" % vmid, memory=1024)
    assert sim.wait_tasks()


def make_resource(sim, sid, **options):
    sim.api().cluster.ha.resources.post(sid=sid, **options)


def run(sim, run_module, check_mode=False, diff=False, **args):
    return run_module(proxmox_ha_group, dict(sim.module_params(), **args), check_mode=check_mode, diff=diff)


def paths(entries):
    return sorted(e["path"] for e in entries)


# ---------------------------------------------------------------- PVE 8
def test_creates_a_group(pve8_sim, run_module):
    result = run(pve8_sim, run_module, **GPU)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["action"] == "created"
    assert result["group"] == {"name": "gpu", "nodes": ["pve-1:2", "pve-2:1"], "restricted": True,
                               "nofailback": False, "comment": "RTX 3090 guests"}
    group = pve8_sim.api().cluster.ha.groups("gpu").get()
    assert (group["nodes"], int(group["restricted"]), group["comment"]) == ("pve-1:2,pve-2:1", 1, "RTX 3090 guests")


def test_rerun_makes_no_write_and_two_reads(pve8_sim, run_module):
    run(pve8_sim, run_module, **GPU)
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, **GPU)
    assert result["changed"] is False and result["action"] == "unchanged"
    assert pve8_sim.writes() == []
    assert paths(pve8_sim.reads()) == ["/cluster/ha/groups", "/version"]


def test_node_order_and_priority_zero_are_not_changes(pve8_sim, run_module):
    run(pve8_sim, run_module, name="any", nodes=["pve-1", "pve-2"])
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, name="any", nodes=["pve-2:0", "pve-1"])
    assert result["changed"] is False
    assert pve8_sim.writes() == []


def test_check_mode_predicts_and_writes_nothing(pve8_sim, run_module):
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, check_mode=True, **GPU)
    assert result["changed"] is True and result["action"] == "created"
    assert pve8_sim.writes() == []
    assert pve8_sim.state()["ha"]["groups"] == {}


def test_update_in_place_with_diff(pve8_sim, run_module):
    run(pve8_sim, run_module, **GPU)
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, diff=True, name="gpu", nodes=["pve-2:2", "pve-1:1"], comment="")
    assert result["changed"] is True and result["action"] == "updated"
    assert result["diff"]["before"]["nodes"] == ["pve-1:2", "pve-2:1"]
    assert result["diff"]["after"]["nodes"] == ["pve-2:2", "pve-1:1"]
    assert (result["diff"]["before"]["comment"], result["diff"]["after"]["comment"]) == ("RTX 3090 guests", "")
    writes = pve8_sim.writes()
    assert [(w["method"], w["path"]) for w in writes] == [("PUT", "/cluster/ha/groups/gpu")]
    assert writes[0]["params"]["delete"] == "comment" and writes[0]["params"]["nodes"] == "pve-2:2,pve-1:1"
    assert "comment" not in pve8_sim.state()["ha"]["groups"]["gpu"]


def test_absent_deletes_and_then_is_a_no_op(pve8_sim, run_module):
    run(pve8_sim, run_module, **GPU)
    result = run(pve8_sim, run_module, name="gpu", state="absent", diff=True)
    assert result["changed"] is True and result["action"] == "deleted" and result["group"] is None
    assert result["diff"]["before"]["name"] == "gpu" and result["diff"]["after"] == {}
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, name="gpu", state="absent")
    assert result["changed"] is False and result["action"] == "absent"
    assert pve8_sim.writes() == []


def test_deleting_a_used_group_fails_before_any_write(pve8_sim, run_module):
    run(pve8_sim, run_module, **GPU)
    make_vm(pve8_sim, 100)
    make_resource(pve8_sim, "vm:100", group="gpu")
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, groups=[dict(name="other", nodes=["pve-1"]), dict(name="gpu", state="absent")])
    assert result["failed"]
    assert "HA group gpu is still used by vm:100" in result["msg"] and "group: ''" in result["msg"]
    assert pve8_sim.writes() == []


def test_unknown_node_fails_before_any_write(pve_sim, run_module):
    """On PVE 9 too, where a group without resources has no rule yet (deferred): the nodes are still checked."""
    pve_sim.clear_log()
    result = run(pve_sim, run_module, groups=[dict(name="ga", nodes=["pve-1"]), dict(name="gb", nodes=["pve-7:1"])])
    assert result["failed"]
    assert "HA group gb names pve-7, which is not a node of this cluster (nodes: pve-1, pve-2)" in result["msg"]
    assert pve_sim.writes() == []


def test_list_mode_reads_once_and_writes_only_differences(pve8_sim, run_module):
    groups = [dict(name="g%d" % i, nodes=["pve-1:%d" % i, "pve-2"]) for i in range(1, 6)]
    result = run(pve8_sim, run_module, groups=groups)
    assert result["changed"] is True and [g["action"] for g in result["groups"]] == ["created"] * 5
    groups[2] = dict(groups[2], restricted=True)
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, groups=groups, diff=True)
    assert [g["action"] for g in result["groups"]] == ["unchanged", "unchanged", "updated", "unchanged", "unchanged"]
    assert paths(pve8_sim.reads()) == ["/cluster/ha/groups", "/version"]
    assert [(w["method"], w["path"]) for w in pve8_sim.writes()] == [("PUT", "/cluster/ha/groups/g3")]
    assert result["diff"]["before"]["g3"]["restricted"] is False and result["diff"]["after"]["g3"]["restricted"]
    assert set(result["diff"]["after"]) == {"g3"}


def test_purge_removes_unlisted_groups(pve8_sim, run_module):
    run(pve8_sim, run_module, groups=[dict(name="keep", nodes=["pve-1"]), dict(name="old", nodes=["pve-2"])])
    result = run(pve8_sim, run_module, groups=[dict(name="keep", nodes=["pve-1"])], purge=True)
    assert result["changed"] is True
    assert [(g["name"], g["action"]) for g in result["groups"]] == [("keep", "unchanged"), ("old", "deleted")]
    assert sorted(pve8_sim.state()["ha"]["groups"]) == ["keep"]
    result = run(pve8_sim, run_module, groups=[dict(name="keep", nodes=["pve-1"])])
    assert result["changed"] is False  # purge is off by default: nothing else is touched


def test_write_errors_name_the_group_and_what_was_done(pve8_sim, run_module):
    pve8_sim.fault("http_error", path="^/cluster/ha/groups$", method="POST", status=500, message="cfs lock", count=2)
    result = run(pve8_sim, run_module, **GPU)
    assert result["failed"]
    assert "HA group gpu" in result["msg"] and "HTTP 500" in result["msg"]
    assert result["completed"] == []


@pytest.mark.parametrize("args, message", [
    (dict(name="gpu"), "state is present but all of the following are missing: nodes"),
    (dict(name="gpu", nodes=["pve 1"]), "nodes must be node names with an optional priority"),
    (dict(name="gpu", nodes=["pve-1:1", "pve-1:2"]), "nodes names a node twice: pve-1"),
    (dict(name="1gpu", nodes=["pve-1"]), "name must start with a letter"),
    (dict(name="gpu", nodes=["pve-1"], purge=True), "purge needs list mode"),
    (dict(groups=[dict(name="ga", nodes=["pve-1"])], nodes=["pve-2"]), "set nodes inside each item of groups"),
    (dict(groups=[dict(name="ga", nodes=["pve-1"]), dict(name="ga", nodes=["pve-2"])]), "group ga is listed twice"),
    (dict(groups=[dict(name="ga", nodes=["pve-1"]), dict(name="gb")]), "groups[1] (gb): state is present but"),
    (dict(restricted=True), "one of the following is required: name, groups"),
])
def test_bad_input_is_rejected_before_any_request(pve_sim, run_module, args, message):
    pve_sim.clear_log()
    result = run(pve_sim, run_module, **args)
    assert result["failed"]
    assert message in result["msg"]
    assert pve_sim.requests_log() == []


# ---------------------------------------------------------------- PVE 9
def test_pve9_group_without_resources_is_deferred_with_a_warning(pve9_sim, run_module, warnings):
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, **GPU)
    assert not result.get("failed"), result
    assert result["changed"] is False and result["action"] == "deferred"
    assert result["rule"] == "ha-group-gpu" and result["group"] is None
    assert pve9_sim.writes() == []
    assert any("HA group gpu is managed as the node-affinity rule ha-group-gpu" in w for w in warnings)
    assert any("needs at least one HA resource" in w for w in warnings)


def test_pve9_manages_the_rule_of_the_group(pve9_sim, run_module, warnings):
    make_vm(pve9_sim, 100, node="pve-1")
    make_resource(pve9_sim, "vm:100")
    pve9_sim.api().cluster.ha.rules.post(rule="ha-group-gpu", type="node-affinity", nodes="pve-1", resources="vm:100")
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, diff=True, name="gpu", nodes=["pve-2:2", "pve-1:1"], restricted=True,
                 nofailback=True, comment="GPU")
    assert not result.get("failed"), result
    assert result["changed"] is True and result["action"] == "updated"
    assert result["group"]["rule"] == "ha-group-gpu" and result["group"]["resources"] == ["vm:100"]
    assert result["diff"]["before"]["restricted"] is False and result["diff"]["after"]["restricted"] is True
    assert result["diff"]["before"]["nofailback"] is False and result["diff"]["after"]["nofailback"] is True
    assert any("ha-group-gpu" in w and "restricted -> strict" in w for w in warnings)
    assert not any("/cluster/ha/groups" in e["path"] for e in pve9_sim.requests_log())
    ha = pve9_sim.state()["ha"]
    rule = ha["rules"]["ha-group-gpu"]
    assert (rule["nodes"], int(rule["strict"]), rule["comment"]) == ("pve-2:2,pve-1:1", 1, "GPU")
    assert int(ha["resources"]["vm:100"]["failback"]) == 0
    assert pve9_sim.state()["guests"]["100"]["node"] == "pve-2"  # the HA manager follows the new priorities
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, name="gpu", nodes=["pve-2:2", "pve-1:1"], restricted=True, nofailback=True,
                 comment="GPU")
    assert result["changed"] is False
    assert pve9_sim.writes() == []
    # The cluster's node list is read too: the group's nodes are checked on every run.
    assert paths(pve9_sim.reads()) == ["/cluster/ha/resources", "/cluster/ha/rules", "/cluster/resources", "/version"]


def test_pve9_check_mode_predicts_the_rule_update(pve9_sim, run_module):
    make_vm(pve9_sim, 100)
    make_resource(pve9_sim, "vm:100")
    pve9_sim.api().cluster.ha.rules.post(rule="ha-group-gpu", type="node-affinity", nodes="pve-1", resources="vm:100")
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, check_mode=True, name="gpu", nodes=["pve-2"])
    assert result["changed"] is True and result["group"]["nodes"] == ["pve-2"]
    assert pve9_sim.writes() == []


def test_pve9_a_rule_of_another_type_with_the_group_name_fails(pve9_sim, run_module):
    for vmid in (100, 101):
        make_vm(pve9_sim, vmid)
        make_resource(pve9_sim, "vm:%d" % vmid)
    pve9_sim.api().cluster.ha.rules.post(rule="ha-group-gpu", type="resource-affinity", affinity="positive",
                                         resources="vm:100,vm:101")
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, **GPU)
    assert result["failed"]
    assert "HA group gpu maps to rule ha-group-gpu on Proxmox VE 9, but that is a resource-affinity rule" in result["msg"]
    assert pve9_sim.writes() == []


def test_pve9_absent_and_purge_touch_only_group_rules(pve9_sim, run_module):
    for vmid in (100, 101, 102):
        make_vm(pve9_sim, vmid)
        make_resource(pve9_sim, "vm:%d" % vmid)
    rules = pve9_sim.api().cluster.ha.rules
    rules.post(rule="ha-group-ga", type="node-affinity", nodes="pve-1", resources="vm:100")
    rules.post(rule="ha-group-gb", type="node-affinity", nodes="pve-1", resources="vm:101")
    rules.post(rule="pinned", type="node-affinity", nodes="pve-2", resources="vm:102")
    result = run(pve9_sim, run_module, groups=[dict(name="ga", nodes=["pve-1"])], purge=True)
    assert [(g["name"], g["action"]) for g in result["groups"]] == [("ga", "unchanged"), ("gb", "deleted")]
    assert sorted(pve9_sim.state()["ha"]["rules"]) == ["ha-group-ga", "pinned"]
    result = run(pve9_sim, run_module, name="ga", state="absent")
    assert result["action"] == "deleted"
    assert sorted(pve9_sim.state()["ha"]["rules"]) == ["pinned"]
    assert sorted(pve9_sim.state()["ha"]["resources"]) == ["vm:100", "vm:101", "vm:102"]


def test_pve8_inventory_keeps_working_on_pve9(pve9_sim, run_module, warnings):
    """Group first, then its resource (a PVE 8 playbook): the rule exists after the resource and is enabled
    with the group's nodes by the next group run; then everything is idempotent."""
    make_vm(pve9_sim, 100, node="pve-1")
    params = pve9_sim.module_params()
    assert run(pve9_sim, run_module, **GPU)["action"] == "deferred"
    result = run_module(proxmox_ha_resource, dict(params, sid="vm:100", group="gpu"))
    assert not result.get("failed"), result
    placeholder = pve9_sim.state()["ha"]["rules"]["ha-group-gpu"]
    assert int(placeholder["disable"]) == 1 and placeholder["resources"] == "vm:100"
    assert any("created it disabled" in w for w in warnings)
    result = run(pve9_sim, run_module, **dict(GPU, nodes=["pve-2:2", "pve-1:1"]))
    assert result["action"] == "updated" and result["group"]["enabled"] is True
    rule = pve9_sim.state()["ha"]["rules"]["ha-group-gpu"]
    assert "disable" not in rule and rule["nodes"] == "pve-2:2,pve-1:1" and int(rule["strict"]) == 1
    assert pve9_sim.state()["guests"]["100"]["node"] == "pve-2"
    pve9_sim.clear_log()
    assert run(pve9_sim, run_module, **dict(GPU, nodes=["pve-2:2", "pve-1:1"]))["changed"] is False
    assert run_module(proxmox_ha_resource, dict(params, sid="vm:100", group="gpu"))["changed"] is False
    assert pve9_sim.writes() == []
