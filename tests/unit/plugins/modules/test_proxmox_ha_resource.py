"""ailab.cluster.proxmox_ha_resource against the PVE API simulator (PVE 8 and 9): state and limits, group on
PVE 8 vs group-rule membership and failback on PVE 9, HA migration/relocation, list mode and purge."""

import pytest
from ansible.module_utils import basic

from ansible_collections.ailab.cluster.plugins.modules import proxmox_ha_resource


@pytest.fixture
def warnings(monkeypatch):
    """The module's warnings (module.warn), per test."""
    seen = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: seen.append(msg))
    return seen


def make_vm(sim, vmid, node="pve-1"):
    sim.api().nodes(node).qemu.post(vmid=vmid, name="vm%d" % vmid, memory=1024)
    assert sim.wait_tasks()


def make_ct(sim, vmid, node="pve-1"):
    sim.api().nodes(node).lxc.post(vmid=vmid, hostname="ct%d" % vmid, rootfs="local-lvm:4",
                                   ostemplate="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
    assert sim.wait_tasks()


def run(sim, run_module, check_mode=False, diff=False, **args):
    return run_module(proxmox_ha_resource, dict(sim.module_params(), **args), check_mode=check_mode, diff=diff)


def ha(sim):
    return sim.state()["ha"]


def node_of(sim, vmid):
    return sim.state()["guests"][str(vmid)]["node"]


def paths(entries):
    return sorted(e["path"] for e in entries)


def test_creates_a_resource_and_starts_the_guest(pve_sim, run_module):
    make_vm(pve_sim, 100)
    result = run(pve_sim, run_module, sid="vm:100", max_restart=2)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["action"] == "created"
    assert result["resource"]["state"] == "started" and result["resource"]["max_restart"] == 2
    assert ha(pve_sim)["resources"]["vm:100"]["max_restart"] == 2
    assert pve_sim.state()["guests"]["100"]["status"] == "running"


@pytest.mark.parametrize("args", [dict(vmid=101, type="ct"), dict(sid="101", type="ct"), dict(sid="ct:101")])
def test_vmid_with_type_and_bare_sid_are_accepted(pve_sim, run_module, args):
    make_ct(pve_sim, 101)
    result = run(pve_sim, run_module, state="stopped", **args)
    assert not result.get("failed"), result
    assert result["resource"]["sid"] == "ct:101"
    assert ha(pve_sim)["resources"]["ct:101"]["state"] == "stopped"


def test_rerun_makes_no_write(pve_sim, run_module):
    make_vm(pve_sim, 100)
    args = dict(sid="vm:100", state="started", max_restart=1, max_relocate=1, comment="")
    run(pve_sim, run_module, **args)
    pve_sim.clear_log()
    result = run(pve_sim, run_module, **args)
    assert result["changed"] is False and result["action"] == "unchanged"
    assert pve_sim.writes() == []
    assert paths(pve_sim.reads()) == ["/cluster/ha/resources", "/version"]


def test_check_mode_predicts_and_writes_nothing(pve_sim, run_module):
    make_vm(pve_sim, 100)
    pve_sim.clear_log()
    result = run(pve_sim, run_module, check_mode=True, sid="vm:100", state="stopped")
    assert result["changed"] is True and result["resource"]["state"] == "stopped"
    assert pve_sim.writes() == []
    assert ha(pve_sim)["resources"] == {}


def test_update_with_diff(pve_sim, run_module):
    make_vm(pve_sim, 100)
    run(pve_sim, run_module, sid="vm:100", comment="jupyter")
    pve_sim.clear_log()
    result = run(pve_sim, run_module, diff=True, sid="vm:100", state="stopped", max_relocate=3, comment="")
    assert result["action"] == "updated"
    assert result["diff"]["before"]["state"] == "started" and result["diff"]["after"]["state"] == "stopped"
    assert (result["diff"]["before"]["comment"], result["diff"]["after"]["comment"]) == ("jupyter", "")
    writes = pve_sim.writes()
    assert [(w["method"], w["path"]) for w in writes] == [("PUT", "/cluster/ha/resources/vm:100")]
    assert writes[0]["params"] == {"state": "stopped", "max_relocate": "3", "delete": "comment"}
    assert pve_sim.state()["guests"]["100"]["status"] == "stopped"


def test_absent_removes_from_ha_and_then_is_a_no_op(pve_sim, run_module):
    make_vm(pve_sim, 100)
    run(pve_sim, run_module, sid="vm:100")
    result = run(pve_sim, run_module, sid="vm:100", state="absent")
    assert result["changed"] is True and result["action"] == "deleted" and result["resource"] is None
    assert ha(pve_sim)["resources"] == {} and "100" in pve_sim.state()["guests"]
    pve_sim.clear_log()
    assert run(pve_sim, run_module, sid="vm:100", state="absent")["action"] == "absent"
    assert pve_sim.writes() == []


def test_missing_or_mistyped_guest_fails_before_any_write(pve_sim, run_module):
    make_vm(pve_sim, 100)
    pve_sim.clear_log()
    result = run(pve_sim, run_module, resources=[dict(sid="vm:100"), dict(sid="vm:999")])
    assert result["failed"] and "HA resource vm:999: there is no VM or container 999" in result["msg"]
    result = run(pve_sim, run_module, sid="ct:100")
    assert result["failed"] and "guest 100 is a VM, so its HA id is vm:100" in result["msg"]
    assert pve_sim.writes() == []


# ------------------------------------------------------ group vs failback
def test_pve8_group_is_set_on_the_resource(pve8_sim, run_module):
    make_vm(pve8_sim, 100, node="pve-1")
    pve8_sim.api().cluster.ha.groups.post(group="gpu", nodes="pve-2:2,pve-1:1")
    result = run(pve8_sim, run_module, sid="vm:100", group="gpu")
    assert result["resource"]["group"] == "gpu"
    assert ha(pve8_sim)["resources"]["vm:100"]["group"] == "gpu"
    assert node_of(pve8_sim, 100) == "pve-2"
    result = run(pve8_sim, run_module, sid="vm:100", group="")
    assert result["action"] == "updated" and "group" not in ha(pve8_sim)["resources"]["vm:100"]


def test_pve8_unknown_group_fails_before_any_write(pve8_sim, run_module):
    make_vm(pve8_sim, 100)
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, sid="vm:100", group="nope")
    assert result["failed"]
    assert "HA group nope does not exist; create it with ailab.cluster.proxmox_ha_group first" in result["msg"]
    assert pve8_sim.writes() == []


def test_pve8_failback_fails_before_any_write(pve8_sim, run_module):
    make_vm(pve8_sim, 100)
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, sid="vm:100", failback=False)
    assert result["failed"]
    assert "failback of HA resource vm:100 needs Proxmox VE 9" in result["msg"] and "nofailback" in result["msg"]
    assert pve8_sim.writes() == []


def test_pve9_failback_is_set(pve9_sim, run_module):
    make_vm(pve9_sim, 100)
    result = run(pve9_sim, run_module, sid="vm:100", failback=False)
    assert result["resource"]["failback"] is False
    assert int(ha(pve9_sim)["resources"]["vm:100"]["failback"]) == 0
    pve9_sim.clear_log()
    assert run(pve9_sim, run_module, sid="vm:100", failback=False)["changed"] is False
    assert pve9_sim.writes() == []


def test_pve9_group_becomes_membership_in_the_group_rule(pve9_sim, run_module, warnings):
    for vmid in (100, 101):
        make_vm(pve9_sim, vmid)
        pve9_sim.api().cluster.ha.resources.post(sid="vm:%d" % vmid)
    pve9_sim.api().cluster.ha.rules.post(rule="ha-group-gpu", type="node-affinity", nodes="pve-2", resources="vm:100")
    result = run(pve9_sim, run_module, diff=True, sid="vm:101", group="gpu")
    assert not result.get("failed"), result
    assert result["action"] == "updated" and result["resource"]["group"] == "gpu"
    assert (result["diff"]["before"]["group"], result["diff"]["after"]["group"]) == ("", "gpu")
    assert ha(pve9_sim)["rules"]["ha-group-gpu"]["resources"] == "vm:100,vm:101"
    assert "group" not in ha(pve9_sim)["resources"]["vm:101"]
    assert node_of(pve9_sim, 101) == "pve-2"
    assert any("group of vm:101 is managed as membership in the node-affinity rule ha-group-<group>" in w
               for w in warnings)


def test_pve9_changing_group_moves_between_group_rules(pve9_sim, run_module):
    for vmid in (100, 101, 102):
        make_vm(pve9_sim, vmid)
        pve9_sim.api().cluster.ha.resources.post(sid="vm:%d" % vmid)
    rules = pve9_sim.api().cluster.ha.rules
    rules.post(rule="ha-group-ga", type="node-affinity", nodes="pve-1", resources="vm:100,vm:101")
    rules.post(rule="ha-group-gb", type="node-affinity", nodes="pve-2", resources="vm:102")
    items = [dict(sid="vm:100", group="gb"), dict(sid="vm:101", group="")]
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, resources=items)
    assert not result.get("failed"), result
    assert "ha-group-ga" not in ha(pve9_sim)["rules"]  # left empty: deleted
    assert ha(pve9_sim)["rules"]["ha-group-gb"]["resources"] == "vm:102,vm:100"
    # out of the old rule first, so that PVE never sees vm:100 in two enabled node-affinity rules
    assert [(w["method"], w["path"]) for w in pve9_sim.writes()] == [
        ("DELETE", "/cluster/ha/rules/ha-group-ga"), ("PUT", "/cluster/ha/rules/ha-group-gb")]
    assert node_of(pve9_sim, 100) == "pve-2"
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, resources=items)
    assert result["changed"] is False and pve9_sim.writes() == []


def test_pve9_a_resource_in_a_user_rule_cannot_join_a_group(pve9_sim, run_module):
    make_vm(pve9_sim, 100)
    pve9_sim.api().cluster.ha.resources.post(sid="vm:100")
    pve9_sim.api().cluster.ha.rules.post(rule="pinned", type="node-affinity", nodes="pve-1", resources="vm:100")
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, sid="vm:100", group="gpu")
    assert result["failed"]
    assert "HA resource vm:100 is in node-affinity rule pinned, so it cannot join group gpu" in result["msg"]
    assert pve9_sim.writes() == []


def test_pve9_deleting_the_last_member_lets_pve_drop_the_rule(pve9_sim, run_module):
    make_vm(pve9_sim, 100)
    run(pve9_sim, run_module, sid="vm:100", group="gpu")
    assert "ha-group-gpu" in ha(pve9_sim)["rules"]
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, sid="vm:100", state="absent")
    assert result["action"] == "deleted"
    assert [(w["method"], w["path"]) for w in pve9_sim.writes()] == [("DELETE", "/cluster/ha/resources/vm:100")]
    assert ha(pve9_sim)["rules"] == {}


# ------------------------------------------------------ migrate / relocate
@pytest.mark.parametrize("option", ["migrate_to", "relocate_to"])
def test_move_through_ha_changes_the_node(pve_sim, run_module, option):
    make_vm(pve_sim, 100, node="pve-1")
    run(pve_sim, run_module, sid="vm:100")
    pve_sim.clear_log()
    result = run(pve_sim, run_module, diff=True, sid="vm:100", **{option: "pve-2"})
    assert not result.get("failed"), result
    assert result["changed"] is True and result["moved"] is True and result["node"] == "pve-2"
    assert result["action"] == ("migrated" if option == "migrate_to" else "relocated")
    assert (result["diff"]["before"]["node"], result["diff"]["after"]["node"]) == ("pve-1", "pve-2")
    verb = option.split("_")[0]
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("POST", "/cluster/ha/resources/vm:100/" + verb)]
    assert node_of(pve_sim, 100) == "pve-2"
    assert "/cluster/ha/status/current" in paths(pve_sim.reads())  # waited for the HA manager


def test_move_to_the_current_node_is_a_no_op(pve_sim, run_module):
    make_vm(pve_sim, 100, node="pve-2")
    run(pve_sim, run_module, sid="vm:100")
    pve_sim.clear_log()
    result = run(pve_sim, run_module, sid="vm:100", migrate_to="pve-2")
    assert result["changed"] is False and result["moved"] is False and result["node"] == "pve-2"
    assert pve_sim.writes() == []


def test_move_in_check_mode_is_predicted(pve_sim, run_module):
    make_vm(pve_sim, 100, node="pve-1")
    pve_sim.clear_log()
    result = run(pve_sim, run_module, check_mode=True, sid="vm:100", migrate_to="pve-2")
    assert result["changed"] is True and result["action"] == "created" and result["node"] == "pve-2"
    assert pve_sim.writes() == []
    assert node_of(pve_sim, 100) == "pve-1"


def test_move_to_an_unknown_node_fails_before_any_write(pve_sim, run_module):
    make_vm(pve_sim, 100)
    pve_sim.clear_log()
    result = run(pve_sim, run_module, sid="vm:100", relocate_to="pve-9")
    assert result["failed"]
    assert "cannot relocate to pve-9, which is not a node of this cluster (nodes: pve-1, pve-2)" in result["msg"]
    assert pve_sim.writes() == []


def test_pve9_move_blocked_by_negative_affinity_fails(pve9_sim, run_module):
    make_vm(pve9_sim, 100, node="pve-1")
    make_vm(pve9_sim, 101, node="pve-2")
    run(pve9_sim, run_module, resources=[dict(sid="vm:100"), dict(sid="vm:101")])
    pve9_sim.api().cluster.ha.rules.post(rule="apart", type="resource-affinity", affinity="negative",
                                         resources="vm:100,vm:101")
    result = run(pve9_sim, run_module, sid="vm:100", migrate_to="pve-2")
    assert result["failed"]
    assert "HA migrate of vm:100 from pve-1 to pve-2 refused by the HA manager: blocked by vm:101" in result["msg"]
    assert node_of(pve9_sim, 100) == "pve-1"


# ------------------------------------------------------ list mode
def test_list_mode_reads_once_and_writes_only_differences(pve_sim, run_module):
    vmids = list(range(100, 110))
    for vmid in vmids:
        make_vm(pve_sim, vmid)
    items = [dict(sid="vm:%d" % v, max_restart=2) for v in vmids]
    pve_sim.clear_log()
    result = run(pve_sim, run_module, resources=items)
    assert [r["action"] for r in result["resources"]] == ["created"] * 10
    # then it polls the HA status until all ten services are started (one status read per poll)
    assert set(paths(pve_sim.reads())) == {"/cluster/ha/resources", "/cluster/ha/status/current",
                                           "/cluster/resources", "/version"}
    assert {e["state"] for e in pve_sim.api().cluster.ha.status.current.get() if e["type"] == "service"} == {
        "started"}
    items[4] = dict(items[4], state="stopped")
    pve_sim.clear_log()
    result = run(pve_sim, run_module, resources=items)
    assert result["changed"] is True
    assert set(paths(pve_sim.reads())) == {"/cluster/ha/resources", "/cluster/ha/status/current", "/version"}
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("PUT", "/cluster/ha/resources/vm:104")]
    pve_sim.clear_log()
    assert run(pve_sim, run_module, resources=items)["changed"] is False
    assert pve_sim.writes() == [] and len(pve_sim.reads()) == 2


def test_pve9_list_mode_with_groups_reads_rules_once(pve9_sim, run_module):
    for vmid in range(100, 106):
        make_vm(pve9_sim, vmid)
    items = [dict(sid="vm:%d" % v, group="ga" if v % 2 else "gb") for v in range(100, 106)]
    result = run(pve9_sim, run_module, resources=items)
    assert not result.get("failed"), result
    rules = ha(pve9_sim)["rules"]
    assert rules["ha-group-ga"]["resources"] == "vm:101,vm:103,vm:105"
    assert rules["ha-group-gb"]["resources"] == "vm:100,vm:102,vm:104"
    pve9_sim.clear_log()
    assert run(pve9_sim, run_module, resources=items)["changed"] is False
    assert pve9_sim.writes() == []
    assert paths(pve9_sim.reads()) == ["/cluster/ha/resources", "/cluster/ha/rules", "/version"]


def test_purge_removes_unlisted_resources(pve_sim, run_module):
    for vmid in (100, 101):
        make_vm(pve_sim, vmid)
    run(pve_sim, run_module, resources=[dict(sid="vm:100"), dict(sid="vm:101")])
    result = run(pve_sim, run_module, resources=[dict(sid="vm:100")], purge=True)
    assert [(r["sid"], r["action"]) for r in result["resources"]] == [("vm:100", "unchanged"), ("vm:101", "deleted")]
    assert sorted(ha(pve_sim)["resources"]) == ["vm:100"]


@pytest.mark.parametrize("args, message", [
    (dict(sid="vm:abc"), "sid must be HA resource ids like vm:100 or ct:101"),
    (dict(sid="vm:100", vmid=100), "parameters are mutually exclusive: sid|vmid"),
    (dict(sid="vm:100", migrate_to="pve-1", relocate_to="pve-2"), "mutually exclusive: migrate_to|relocate_to"),
    (dict(sid="vm:100", state="absent", migrate_to="pve-2"), "need an HA-managed resource (state is absent)"),
    (dict(sid="vm:100", migrate_to="pve-2:1"), "migrate_to/relocate_to must be a node name"),
    (dict(sid="vm:100", group="9x"), "group must start with a letter"),
    (dict(sid="vm:100", purge=True), "purge needs list mode"),
    (dict(resources=[dict(sid="vm:100")], state="stopped"), "set state inside each item of resources"),
    (dict(resources=[dict(sid="vm:100"), dict(vmid=100)]), "resource vm:100 is listed twice"),
    (dict(resources=[dict(state="started")]), "resources[0]: one of the following is required: sid, vmid"),
    (dict(state="started"), "one of the following is required: sid, vmid, resources"),
])
def test_bad_input_is_rejected_before_any_request(pve_sim, run_module, args, message):
    pve_sim.clear_log()
    result = run(pve_sim, run_module, **args)
    assert result["failed"]
    assert message in result["msg"]
    assert pve_sim.requests_log() == []


def test_move_to_an_offline_node_fails_before_any_write(pve8_sim, run_module):
    make_vm(pve8_sim, 100, node="pve-1")
    run(pve8_sim, run_module, sid="vm:100")
    pve8_sim.node_down("pve-2")
    pve8_sim.clear_log()
    result = run(pve8_sim, run_module, sid="vm:100", migrate_to="pve-2")
    assert result["failed"]
    assert "HA resource vm:100: cannot migrate to pve-2, the node is offline" in result["msg"]
    assert pve8_sim.writes() == []


def test_waiting_for_a_move_times_out_with_what_to_check():
    from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxError
    from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_ha import wait_for_node

    class StillThere:
        def get(self, path, what=None):
            return [{"type": "service", "sid": "vm:100", "node": "pve-1"}]

    with pytest.raises(ProxmoxError) as exc:
        wait_for_node(StillThere(), "vm:100", "pve-2", 0, "HA migrate of vm:100 from pve-1 to pve-2")
    assert "Timed out after 0s waiting for HA migrate of vm:100" in exc.value.msg
    assert "ha-manager status" in exc.value.msg


def test_pve9_group_rule_of_another_type_fails_before_any_write(pve9_sim, run_module):
    for vmid in (100, 101):
        make_vm(pve9_sim, vmid)
        pve9_sim.api().cluster.ha.resources.post(sid="vm:%d" % vmid)
    pve9_sim.api().cluster.ha.rules.post(rule="ha-group-gpu", type="resource-affinity", affinity="positive",
                                         resources="vm:100,vm:101")
    pve9_sim.clear_log()
    result = run(pve9_sim, run_module, sid="vm:100", group="gpu")
    assert result["failed"]
    assert "group gpu maps to rule ha-group-gpu, which is a resource-affinity rule" in result["msg"]
    assert pve9_sim.writes() == []


# ------------------------------------------------------------------ HA requests take CRM rounds
def test_waits_until_the_guest_has_stopped(pve_sim, run_module):
    make_vm(pve_sim, 100)
    assert not run(pve_sim, run_module, sid="vm:100").get("failed")
    assert pve_sim.state()["guests"]["100"]["status"] == "running"
    result = run(pve_sim, run_module, sid="vm:100", state="stopped")
    assert result["changed"] is True
    assert pve_sim.state()["guests"]["100"]["status"] == "stopped"  # not only requested: done
    service = [e for e in pve_sim.api().cluster.ha.status.current.get() if e.get("sid") == "vm:100"][0]
    assert service["state"] == "stopped"


def test_no_wait_when_the_state_does_not_change(pve_sim, run_module):
    make_vm(pve_sim, 100)
    run(pve_sim, run_module, sid="vm:100")
    pve_sim.clear_log()
    assert run(pve_sim, run_module, sid="vm:100", comment="x")["changed"] is True
    assert "/cluster/ha/status/current" not in paths(pve_sim.reads())


def test_wait_timeout_names_the_service_and_its_state(pve9_sim, run_module):
    pve9_sim.reseed({"cluster": {"name": "ailab"}, "nodes": [{"name": n} for n in ("pve-1", "pve-2", "pve-3")],
                     "storages": [{"storage": "nas", "type": "nfs", "server": "10.0.0.5", "export": "/x",
                                   "path": "/mnt/pve/nas", "content": "images"}]})
    make_vm(pve9_sim, 100, node="pve-3")
    pve9_sim.node_down("pve-3")  # quorum holds; the service of a guest on the dead node is fenced, never started
    result = run(pve9_sim, run_module, sid="vm:100", wait_timeout=1)
    assert result["failed"]
    assert result["msg"].startswith("Timed out after 1s waiting for HA resource vm:100 to be started: the HA "
                                    "manager reports it as fence on pve-3")
