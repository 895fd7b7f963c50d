"""HA semantics of a real PVE: rule feasibility, requests handled in CRM rounds, disable, PVE 9
before the group migration. Each rule names the pve-ha-manager source it models."""

import time

import pytest
from proxmoxer.core import ResourceException

from pvesim.api.ha import HA_ROUND, feasibility_errors


def _vm(api, wait, vmid, node="pve-1"):
    upid = api.nodes(node).qemu.post(vmid=vmid, scsi0="nas:8", net0="virtio,bridge=vmbr0")
    assert wait(api, upid)["exitstatus"] == "OK"


def _managed(api, wait, *vmids):
    for vmid in vmids:
        _vm(api, wait, vmid)
        api.cluster.ha.resources.post(sid=f"vm:{vmid}")


def _refused(call):
    with pytest.raises(ResourceException) as raised:
        call()
    return raised.value


# ------------------------------------------------------------- feasibility
def test_negative_rule_with_more_resources_than_nodes_is_invalid(pve9_sim, wait):
    # src/PVE/HA/Rules/ResourceAffinity.pm check_negative_resource_affinity_resources_count
    api = pve9_sim.api()
    _managed(api, wait, 100, 101, 102)
    error = _refused(lambda: api.cluster.ha.rules.post(rule="apart", type="resource-affinity", affinity="negative",
                                                       resources="vm:100,vm:101,vm:102"))
    assert (error.status_code, error.content) == (400, "Rule 'apart' is invalid.")
    assert error.errors == {"resources": "rule defines more resources than available nodes"}
    assert api.cluster.ha.rules.get() == []
    api.cluster.ha.rules.post(rule="apart", type="resource-affinity", affinity="negative", resources="vm:100,vm:101")


def test_positive_and_negative_rules_sharing_two_resources_are_invalid(pve9_sim, wait):
    # src/PVE/HA/Rules/ResourceAffinity.pm check_inter_resource_affinity_rules_consistency
    api = pve9_sim.api()
    _managed(api, wait, 100, 101)
    api.cluster.ha.rules.post(rule="together", type="resource-affinity", affinity="positive",
                              resources="vm:100,vm:101")
    error = _refused(lambda: api.cluster.ha.rules.post(rule="apart", type="resource-affinity", affinity="negative",
                                                       resources="vm:101,vm:100"))
    assert error.errors == {"resources": "rule shares two or more resources with a positive resource affinity rule"}


def test_resource_affinity_over_a_multi_priority_node_affinity_rule_is_invalid(pve9_sim, wait):
    # src/PVE/HA/Rules.pm check_single_priority_node_affinity_in_resource_affinity_rules: the
    # sandbox's group "lab" (pve-1:2, pve-2:1) with a rule keeping two of its VMs apart.
    api = pve9_sim.api()
    _managed(api, wait, 201, 202)
    api.cluster.ha.rules.post(rule="ha-group-lab", type="node-affinity", nodes="pve-1:2,pve-2:1",
                              resources="vm:201,vm:202")
    error = _refused(lambda: api.cluster.ha.rules.post(
        rule="k8s-control-plane-apart", type="resource-affinity", affinity="negative", resources="vm:201,vm:202"))
    assert error.errors == {"resources": "resources are in node affinity rules with multiple priorities"}
    # the other way round the node-affinity rule is the invalid one
    api.cluster.ha.rules("ha-group-lab").put(type="node-affinity", nodes="pve-1,pve-2")
    api.cluster.ha.rules.post(rule="k8s-control-plane-apart", type="resource-affinity", affinity="negative",
                              resources="vm:201,vm:202")
    error = _refused(lambda: api.cluster.ha.rules("ha-group-lab").put(type="node-affinity", nodes="pve-1:2,pve-2"))
    assert error.errors == {"resources": "resources are in a resource affinity rule and cannot be in a node "
                                         "affinity rule with multiple priorities"}


def test_positive_rule_over_two_node_affinity_rules_is_invalid(pve9_sim, wait):
    # src/PVE/HA/Rules.pm check_single_node_affinity_per_positive_resource_affinity_rule
    api = pve9_sim.api()
    _managed(api, wait, 100, 101)
    api.cluster.ha.rules.post(rule="one", type="node-affinity", nodes="pve-1", resources="vm:100")
    api.cluster.ha.rules.post(rule="two", type="node-affinity", nodes="pve-2", resources="vm:101")
    error = _refused(lambda: api.cluster.ha.rules.post(rule="together", type="resource-affinity",
                                                       affinity="positive", resources="vm:100,vm:101"))
    assert error.errors == {"resources": "resources are in multiple node affinity rules"}


def test_negative_rule_restricted_to_too_few_nodes_is_invalid(pve9_sim, wait):
    # src/PVE/HA/Rules.pm check_negative_resource_affinity_node_affinity_consistency
    api = pve9_sim.api()
    _managed(api, wait, 100, 101)
    api.cluster.ha.rules.post(rule="pin", type="node-affinity", nodes="pve-1", resources="vm:100,vm:101", strict=1)
    error = _refused(lambda: api.cluster.ha.rules.post(rule="apart", type="resource-affinity", affinity="negative",
                                                       resources="vm:100,vm:101"))
    assert error.errors == {"resources": "two or more resources are restricted to less nodes than available to the "
                                         "resources"}


def test_a_disabled_rule_is_not_checked_and_a_listed_conflict_shows_its_errors(pve9_sim, wait):
    # src/PVE/HA/Rules.pm foreach_rule(exclude_disabled_rules); src/PVE/API2/HA/Rules.pm index adds errors
    api = pve9_sim.api()
    _managed(api, wait, 100, 101, 102)
    api.cluster.ha.rules.post(rule="apart", type="resource-affinity", affinity="negative",
                              resources="vm:100,vm:101,vm:102", disable=1)
    assert "errors" not in api.cluster.ha.rules("apart").get()
    error = _refused(lambda: api.cluster.ha.rules("apart").put(type="resource-affinity", delete="disable"))
    assert error.errors == {"resources": "rule defines more resources than available nodes"}


def test_feasibility_errors_pairs_the_conflicting_rules():
    rules = {
        "lab": {"type": "node-affinity", "nodes": "pve-1:2,pve-2:1", "resources": "vm:201,vm:202"},
        "apart": {"type": "resource-affinity", "affinity": "negative", "resources": "vm:201,vm:202"},
        "off": {"type": "resource-affinity", "affinity": "negative", "resources": "vm:1,vm:2,vm:3", "disable": 1},
        "single": {"type": "resource-affinity", "affinity": "positive", "resources": "vm:9"},
    }
    errors = feasibility_errors(rules, ["pve-1", "pve-2"])
    assert sorted(errors) == ["apart", "lab", "single"]
    assert errors["single"] == {"resources": ["rule is ineffective as there are less than two resources"]}


def test_rule_enable_needs_delete_disable(pve9_sim, wait):
    # src/PVE/HA/Rules.pm: a false ``disable`` is dropped, so PUT disable=0 changes nothing
    api = pve9_sim.api()
    _managed(api, wait, 100)
    api.cluster.ha.rules.post(rule="pin", type="node-affinity", nodes="pve-2", resources="vm:100", disable=0)
    assert "disable" not in api.cluster.ha.rules("pin").get()
    api.cluster.ha.rules("pin").put(type="node-affinity", disable=1)
    api.cluster.ha.rules("pin").put(type="node-affinity", disable=0)
    assert api.cluster.ha.rules("pin").get()["disable"] == 1
    api.cluster.ha.rules("pin").put(type="node-affinity", delete="disable")
    assert "disable" not in api.cluster.ha.rules("pin").get()


# --------------------------------------------------------------- CRM rounds
def _states_until(api, sid, want, timeout=10.0):
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        entry = [e for e in api.cluster.ha.status.current.get() if e.get("sid") == sid][0]
        if not seen or seen[-1] != entry["state"]:
            seen.append(entry["state"])
        if entry["state"] == want:
            return seen
        assert time.monotonic() < deadline, f"{sid} stuck in {seen}"
        time.sleep(HA_ROUND / 5)


def test_ha_state_changes_are_requests_the_crm_handles_in_rounds(pve_sim, wait):
    # src/PVE/HA/Manager.pm manage/next_state_*: a new service is queued, then request_start, then
    # started once the LRM (src/PVE/HA/LRM.pm) has started it; a stop goes through request_stop.
    api = pve_sim.api()
    _vm(api, wait, 100)
    pve_sim.settings(ha_round=0.5)  # long enough that the reads below fall into the first round, even on a busy host
    api.cluster.ha.resources.post(sid="vm:100", state="started")
    assert api.nodes("pve-1").qemu(100).status.current.get()["status"] == "stopped"  # nothing happened yet
    seen = _states_until(api, "vm:100", "started")
    assert seen[0] == "queued" and seen[-1] == "started" and len(seen) >= 2
    assert set(seen) <= {"queued", "request_start", "starting", "started"}
    assert api.nodes("pve-1").qemu(100).status.current.get()["status"] == "running"
    api.cluster.ha.resources("vm:100").put(state="stopped")
    assert api.nodes("pve-1").qemu(100).status.current.get()["status"] == "running"  # still running
    seen = _states_until(api, "vm:100", "stopped")
    assert seen[0] == "started" and set(seen) <= {"started", "request_stop", "stopped"}
    assert api.nodes("pve-1").qemu(100).status.current.get()["status"] == "stopped"
    # the requested state is readable at once from the resource, the service state from the status
    assert api.cluster.ha.resources("vm:100").get()["state"] == "stopped"


def test_the_crm_round_is_a_setting(pve9_sim, wait):
    api = pve9_sim.api()
    _vm(api, wait, 100)
    pve9_sim.settings(ha_round=1.0)
    api.cluster.ha.resources.post(sid="vm:100")
    time.sleep(0.3)  # within the first round nothing has happened
    assert [e["state"] for e in api.cluster.ha.status.current.get() if e.get("sid") == "vm:100"] == ["queued"]
    started_at = time.monotonic()
    assert _states_until(api, "vm:100", "started")[-1] == "started"
    assert time.monotonic() - started_at >= 1.2  # two more rounds: request_start, then the LRM starts it


# -------------------------------------------------- PVE 9 before the group migration
@pytest.fixture
def upgraded(pve9_sim):
    pve9_sim.control("POST", "personality", {"name": "9-upgraded"})
    yield pve9_sim
    pve9_sim.control("POST", "personality", {"name": "9"})


def test_pve9_before_the_group_migration(upgraded, wait):
    # src/PVE/HA/Manager.pm try_persistent_group_migration has not run yet; src/PVE/API2/HA/Rules.pm
    # shows the groups as computed rules (Groups.pm migrate_groups_to_rules) and refuses rule writes.
    api = upgraded.api()
    _vm(api, wait, 100)
    api.cluster.ha.groups.post(group="lab", nodes="pve-1:2,pve-2:1")
    api.cluster.ha.resources.post(sid="vm:100", group="lab")
    rules = api.cluster.ha.rules.get()
    assert [(r["rule"], r["type"], r["resources"], r["nodes"]) for r in rules] == [
        ("ha-group-lab", "node-affinity", "vm:100", "pve-1:2,pve-2:1")]
    for call in (lambda: api.cluster.ha.rules.post(rule="pin", type="node-affinity", nodes="pve-1",
                                                   resources="vm:100"),
                 lambda: api.cluster.ha.rules("ha-group-lab").put(type="node-affinity", nodes="pve-1")):
        error = _refused(call)
        assert error.status_code == 500 and "ha groups have not been migrated yet" in error.content
    assert api.cluster.ha.groups("lab").get()["nodes"] == "pve-1:2,pve-2:1"


def test_personality_switch_keeps_the_major_version(pve9_sim):
    with pytest.raises(Exception, match="is not PVE 9"):
        pve9_sim.control("POST", "personality", {"name": "8"})
