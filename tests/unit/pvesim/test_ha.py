"""HA: groups on PVE 8, rules on PVE 9 (groups migrated), resources, migrate/relocate, status."""

import time

import pytest
import requests
from proxmoxer.core import ResourceException


def _vm(api, wait, vmid=100, node="pve-1", **options):
    options.setdefault("scsi0", "nas:8")
    upid = api.nodes(node).qemu.post(vmid=vmid, net0="virtio,bridge=vmbr0", **options)
    assert wait(api, upid)["exitstatus"] == "OK"


def _service(api, sid="vm:100"):
    return [e for e in api.cluster.ha.status.current.get() if e.get("sid") == sid][0]


def _settle(api, sid="vm:100", want="started", timeout=5.0):
    """The service states seen until ``sid`` reaches ``want`` (the CRM acts in rounds)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        current = _service(api, sid)["state"]
        if not seen or seen[-1] != current:
            seen.append(current)
        if current == want:
            return seen
        assert time.monotonic() < deadline, f"{sid} stuck in {seen}"
        time.sleep(0.005)


def test_pve8_ha_groups_crud(pve8_sim, wait):
    api = pve8_sim.api()
    api.cluster.ha.groups.post(group="gpu", nodes="pve-1:2,pve-2:1", restricted=1, comment="GPU nodes")
    group = api.cluster.ha.groups("gpu").get()
    assert (group["nodes"], group["restricted"], group["type"]) == ("pve-1:2,pve-2:1", 1, "group")
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.groups.post(group="gpu", nodes="pve-1")
    assert raised.value.content == "create ha group failed: ha group ID 'gpu' already defined"
    api.cluster.ha.groups("gpu").put(nodes="pve-2:2,pve-1:1", delete="comment")
    assert "comment" not in api.cluster.ha.groups("gpu").get()
    _vm(api, wait)
    api.cluster.ha.resources.post(sid="vm:100", group="gpu", state="started", max_restart=2)
    resource = api.cluster.ha.resources("vm:100").get()
    assert (resource["group"], resource["state"], resource["max_restart"]) == ("gpu", "started", 2)
    assert "failback" not in resource
    # The CRM moves the service to the group's highest-priority node and starts it a round later.
    _settle(api)
    vm = list(api.cluster.resources.get(type="vm"))[0]
    assert (vm["node"], vm["status"], vm["hastate"]) == ("pve-2", "running", "started")
    service = [e for e in api.cluster.ha.status.current.get() if e["type"] == "service"][0]
    assert (service["sid"], service["group"], service["node"]) == ("vm:100", "gpu", "pve-2")
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.groups("gpu").delete()
    assert raised.value.content == "delete ha group failed: ha group is used by service 'vm:100'"
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.resources("vm:100").put(group="nope")
    assert raised.value.content == "HA group 'nope' does not exist"
    api.cluster.ha.resources("vm:100").delete()
    api.cluster.ha.groups("gpu").delete()
    assert api.cluster.ha.groups.get() == []


def test_pve8_has_no_rules_and_no_failback(pve8_sim, wait):
    api = pve8_sim.api()
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.rules.get()
    assert (raised.value.status_code, raised.value.content) == (501, "Method 'GET /cluster/ha/rules' not implemented")
    _vm(api, wait)
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.resources.post(sid="vm:100", failback=0)
    assert raised.value.status_code == 400 and "failback" in raised.value.errors


@pytest.mark.parametrize(("method", "path", "verb"), [
    ("GET", "/cluster/ha/groups", "index groups"),
    ("GET", "/cluster/ha/groups/gpu", "read group"),
    ("POST", "/cluster/ha/groups", "create group"),
    ("PUT", "/cluster/ha/groups/gpu", "update group"),
    ("DELETE", "/cluster/ha/groups/gpu", "delete group"),
])
def test_pve9_every_group_call_fails_with_migration_hint(pve9_sim, method, path, verb):
    headers = {"Authorization": f"PVEAPIToken={pve9_sim.token_id}={pve9_sim.token_secret}"}
    response = requests.request(method, pve9_sim.api_url + path, headers=headers, verify=pve9_sim.ca_file,
                                data={"group": "gpu", "nodes": "pve-1"} if method == "POST" else None, timeout=5)
    assert response.status_code == 500
    assert response.reason == (f"cannot {verb}: ha groups have been migrated to rules - use /cluster/ha/rules "
                               f"instead")
    assert response.json() == {"data": None, "message": response.reason + "\n"}


def test_pve9_rules_crud_and_feasibility(pve9_sim, wait):
    api = pve9_sim.api()
    _vm(api, wait, 100)
    _vm(api, wait, 101)
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.rules.post(rule="gpu", type="node-affinity", resources="vm:100", nodes="pve-2")
    assert raised.value.content == "create ha rule failed: cannot use unmanaged resource(s) vm:100."
    api.cluster.ha.resources.post(sid="100", failback=0)
    api.cluster.ha.resources.post(sid="vm:101")
    assert api.cluster.ha.resources("vm:100").get()["failback"] == 0
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.resources("vm:100").put(group="gpu")
    assert raised.value.content == "invalid parameter 'group': ha groups have been migrated to rules"
    api.cluster.ha.rules.post(rule="gpu", type="node-affinity", resources="vm:100", nodes="pve-2:2,pve-1:1",
                              strict=1)
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.rules.post(rule="gpu2", type="node-affinity", resources="vm:100", nodes="pve-1")
    assert raised.value.status_code == 400
    assert raised.value.errors == {"resources": "resource 'vm:100' is already used in another node affinity rule"}
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.rules.post(rule="spread", type="resource-affinity", resources="vm:100,vm:101",
                                  affinity="negative", nodes="pve-1")
    assert raised.value.content == "unexpected property 'nodes'"
    # pve-ha-manager src/PVE/HA/Rules.pm check_single_priority_node_affinity_in_resource_affinity_rules:
    # vm:100 is in a node-affinity rule with two priorities, so no resource-affinity rule may name it.
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.rules.post(rule="spread", type="resource-affinity", resources="vm:100,vm:101",
                                  affinity="negative")
    assert (raised.value.status_code, raised.value.content) == (400, "Rule 'spread' is invalid.")
    assert raised.value.errors == {"resources": "resources are in node affinity rules with multiple priorities"}
    api.cluster.ha.rules("gpu").put(type="node-affinity", nodes="pve-2")
    api.cluster.ha.rules.post(rule="spread", type="resource-affinity", resources="vm:100,vm:101",
                              affinity="negative")
    rules = {r["rule"]: r for r in api.cluster.ha.rules.get()}
    assert rules["gpu"]["nodes"] == "pve-2" and rules["gpu"]["strict"] == 1
    assert rules["spread"]["affinity"] == "negative"
    assert [r["rule"] for r in api.cluster.ha.rules.get(type="resource-affinity")] == ["spread"]
    placement = {r["vmid"]: r["node"] for r in api.cluster.resources.get(type="vm")}
    assert placement == {100: "pve-2", 101: "pve-1"}
    api.cluster.ha.rules("gpu").put(type="node-affinity", nodes="pve-1", comment="moved")
    assert api.cluster.ha.rules("gpu").get()["comment"] == "moved"
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.rules("gpu").put(type="resource-affinity", affinity="positive")
    assert raised.value.content == "update HA rules failed: types does not match"
    api.cluster.ha.resources("vm:101").delete()  # purge (the default) drops it from its rules
    assert {r["rule"]: r["resources"] for r in api.cluster.ha.rules.get()} == {"gpu": "vm:100", "spread": "vm:100"}
    api.cluster.ha.resources("vm:100").delete()  # the last resource of a rule takes the rule with it
    assert api.cluster.ha.rules.get() == []
    api.cluster.ha.rules("gpu").delete()  # deleting a missing rule is not an error, as in PVE


def _tasks(sim, vmid):
    return [(t["node"], t["type"], t["user"], t.get("exitstatus")) for t in reversed(sim.tasks())
            if t["id"] == str(vmid)]


def test_ha_migrate_runs_a_qmigrate_task_on_the_source_node(pve_sim, wait):
    api = pve_sim.api()
    _vm(api, wait, scsi0="local-lvm:8")
    api.cluster.ha.resources.post(sid="vm:100", state="started")
    _settle(api)
    pve_sim.settings(migrate_duration=0.3)
    result = api.cluster.ha.resources("vm:100").migrate.post(node="pve-2")
    if pve_sim.pve == 9:
        assert result == {"sid": "vm:100", "requested-node": "pve-2"}
    else:
        assert result is None
    # The HA stack migrates the VM in a task; until it ends, the service is in state migrate on pve-1.
    service = [e for e in api.cluster.ha.status.current.get() if e["type"] == "service"][0]
    assert (service["node"], service["state"]) == ("pve-1", "migrate")
    assert api.nodes("pve-1").qemu(100).status.current.get()["lock"] == "migrate"
    task = api.nodes("pve-1").tasks.get(source="active", vmid=100)[0]
    assert (task["type"], task["user"]) == ("qmigrate", "root@pam")
    assert wait(api, task["upid"])["exitstatus"] == "OK"
    log = [line["t"] for line in api.nodes("pve-1").tasks(task["upid"]).log.get()]
    assert "found local disk 'local-lvm:vm-100-disk-0' (attached)" in log[1]
    assert any(line.endswith("average migration speed: 586.3 MiB/s - downtime 46 ms") for line in log)
    assert log[-2].endswith("migration finished successfully (duration 00:00:01)")
    current = api.nodes("pve-2").qemu(100).status.current.get()
    assert (current["status"], current["ha"]) == ("running", {"managed": 1, "state": "started"})
    service = [e for e in api.cluster.ha.status.current.get() if e["type"] == "service"][0]
    assert (service["node"], service["state"]) == ("pve-2", "started")
    assert [v["volid"] for v in api.nodes("pve-2").storage("local-lvm").content.get()] == ["local-lvm:vm-100-disk-0"]


def test_ha_relocate_stops_migrates_offline_and_starts_again(pve_sim, wait):
    api = pve_sim.api()
    _vm(api, wait)
    api.cluster.ha.resources.post(sid="vm:100", state="started")
    _settle(api)
    pve_sim.clear_log()
    api.cluster.ha.resources("vm:100").relocate.post(node="pve-2")
    assert pve_sim.wait_tasks()
    assert _tasks(pve_sim, 100)[-3:] == [("pve-1", "qmshutdown", "root@pam", "OK"),
                                         ("pve-1", "qmigrate", "root@pam", "OK"),
                                         ("pve-2", "qmstart", "root@pam", "OK")]
    migration = [t for t in pve_sim.tasks() if t["type"] == "qmigrate"][0]
    assert not any("downtime" in line for line in migration["log"])  # offline: no memory state to copy
    assert api.nodes("pve-2").qemu(100).status.current.get()["status"] == "running"


def test_ha_migration_of_a_container_is_a_restart_migration(pve9_sim, wait):
    api = pve9_sim.api()
    upid = api.nodes("pve-1").lxc.post(vmid=200, ostemplate="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                                       rootfs="nas:4")
    wait(api, upid)
    api.cluster.ha.resources.post(sid="ct:200")
    _settle(api, "ct:200")
    api.cluster.ha.resources("ct:200").migrate.post(node="pve-2")
    assert pve9_sim.wait_tasks()
    expected = [("pve-1", "vzshutdown"), ("pve-1", "vzmigrate"), ("pve-2", "vzstart")]
    assert [t[:2] for t in _tasks(pve9_sim, 200)][-3:] == expected
    assert api.nodes("pve-2").lxc(200).status.current.get()["status"] == "running"


def test_failed_ha_migration_leaves_the_guest_running_on_the_source(pve9_sim, wait):
    api = pve9_sim.api()
    _vm(api, wait)
    api.cluster.ha.resources.post(sid="vm:100")
    _settle(api)
    pve9_sim.fault("task_fail", task_type="qmigrate", message="migration aborted")
    api.cluster.ha.resources("vm:100").relocate.post(node="pve-2")
    assert pve9_sim.wait_tasks()
    expected = [("qmshutdown", "root@pam", "OK"), ("qmigrate", "root@pam", "migration aborted"),
                ("qmstart", "root@pam", "OK")]
    assert [t[1:] for t in _tasks(pve9_sim, 100)][-3:] == expected
    current = api.nodes("pve-1").qemu(100).status.current.get()
    assert current["status"] == "running" and "lock" not in current
    service = [e for e in api.cluster.ha.status.current.get() if e["type"] == "service"][0]
    assert (service["node"], service["state"]) == ("pve-1", "started")


def test_ha_power_requests_and_direct_migration_go_through_the_ha_stack(pve_sim, wait):
    api = pve_sim.api()
    _vm(api, wait)
    api.cluster.ha.resources.post(sid="vm:100", state="started")
    # Power requests of an HA-managed guest are forwarded to the HA stack.
    upid = api.nodes("pve-1").qemu(100).status.stop.post()
    assert upid.split(":")[5] == "hastop"
    wait(api, upid)
    assert api.cluster.ha.resources("vm:100").get()["state"] == "stopped"
    upid = api.nodes("pve-1").qemu(100).migrate.post(target="pve-2")
    assert upid.split(":")[5] == "hamigrate"
    assert wait(api, upid)["exitstatus"] == "OK"
    assert api.nodes("pve-1").tasks(upid).log.get()[0]["t"] == "Requesting HA migration for VM 100 to node pve-2"
    assert pve_sim.wait_tasks()  # then the HA stack runs the (offline) qmigrate
    assert [t[:2] for t in _tasks(pve_sim, 100)][-2:] == [("pve-1", "hamigrate"), ("pve-1", "qmigrate")]
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-2").qemu(100).delete()
    assert raised.value.content == "unable to remove VM 100 - used in HA resources and purge parameter not set."
    wait(api, api.nodes("pve-2").qemu(100).delete(purge=1))
    assert api.cluster.ha.resources.get() == []


def test_pve9_positive_affinity_partners_migrate_along(pve9_sim, wait):
    api = pve9_sim.api()
    _vm(api, wait, 100)
    _vm(api, wait, 101)
    for sid in ("vm:100", "vm:101"):
        api.cluster.ha.resources.post(sid=sid)
    api.cluster.ha.rules.post(rule="together", type="resource-affinity", affinity="positive",
                              resources="vm:100,vm:101")
    pve9_sim.wait_tasks()
    result = api.cluster.ha.resources("vm:100").migrate.post(node="pve-2")
    assert result == {"sid": "vm:100", "requested-node": "pve-2", "comigrated-resources": ["vm:101"]}
    assert pve9_sim.wait_tasks()
    assert {r["vmid"]: r["node"] for r in api.cluster.resources.get(type="vm")} == {100: "pve-2", 101: "pve-2"}


def test_pve9_a_disabled_node_affinity_rule_may_share_resources(pve9_sim, wait):
    api = pve9_sim.api()
    _vm(api, wait)
    api.cluster.ha.resources.post(sid="vm:100")
    api.cluster.ha.rules.post(rule="pin", type="node-affinity", resources="vm:100", nodes="pve-1")
    # Only enabled rules are checked for conflicts: a disabled one may name vm:100 as well ...
    api.cluster.ha.rules.post(rule="spare", type="node-affinity", resources="vm:100", nodes="pve-2", disable=1)
    assert pve9_sim.wait_tasks()
    assert api.cluster.resources.get(type="vm")[0]["node"] == "pve-1"  # ... and is not acted on
    # ... but enabling it while "pin" is enabled is refused.
    with pytest.raises(ResourceException) as raised:
        api.cluster.ha.rules("spare").put(type="node-affinity", delete="disable")
    assert raised.value.status_code == 400
    assert raised.value.errors == {"resources": "resource 'vm:100' is already used in another node affinity rule"}
    api.cluster.ha.rules("pin").put(type="node-affinity", disable=1)
    # PVE drops a false ``disable`` (src/PVE/HA/Rules.pm): disable=0 leaves the rule disabled ...
    api.cluster.ha.rules("spare").put(type="node-affinity", disable=0)
    assert api.cluster.ha.rules("spare").get()["disable"] == 1
    assert api.cluster.resources.get(type="vm")[0]["node"] == "pve-1"
    # ... and delete=disable enables it.
    api.cluster.ha.rules("spare").put(type="node-affinity", delete="disable")
    assert "disable" not in api.cluster.ha.rules("spare").get()
    assert api.cluster.resources.get(type="vm")[0]["node"] == "pve-2"


def test_ha_recovers_services_when_a_node_of_three_fails(pve9_sim, wait):
    seed = pve9_sim.state()
    three_nodes = {
        "cluster": {"name": "ailab"},
        "nodes": [{"name": n} for n in ("pve-1", "pve-2", "pve-3")],
        "storages": [{"storage": "nas", "type": "nfs", "server": "10.0.0.5", "export": "/x", "path": "/mnt/pve/nas",
                      "content": "images"}],
    }
    assert seed["cluster"]["name"] == "ailab"
    pve9_sim.reseed(three_nodes)
    api = pve9_sim.api()
    _vm(api, wait, node="pve-3")
    api.cluster.ha.resources.post(sid="vm:100")
    pve9_sim.node_down("pve-3")
    assert api.cluster.status.get()[0]["quorate"] == 1
    vm = api.cluster.resources.get(type="vm")[0]
    assert vm["node"] != "pve-3" and vm["status"] == "running"
