"""ailab.cluster.proxmox_storage against the PVE API simulator (PVE 8 and 9), real proxmoxer."""

import pytest

from ansible_collections.ailab.cluster.plugins.modules import proxmox_storage
from pvesim.seed import empty_seed, standalone_seed

BACKUPS = dict(storage="backups", type="dir", path="/srv/backups", content=["backup"])


def storage(sim, name):
    return {s["storage"]: s for s in sim.api().storage.get()}.get(name)


def run(run_module, sim, check_mode=False, diff=False, **args):
    return run_module(proxmox_storage, dict(sim.module_params(), **args), check_mode=check_mode, diff=diff)


# ------------------------------------------------------------------------------ single mode
def test_creates_a_dir_storage_then_changes_nothing(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, **BACKUPS, nodes=["pve-2", "pve-1"], prune_backups=dict(keep_weekly=4, keep_last=3))
    assert not result.get("failed"), result
    assert result["changed"]
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("POST", "/storage")]
    created = storage(pve_sim, "backups")
    assert created["type"] == "dir" and created["path"] == "/srv/backups" and created["content"] == "backup"
    assert created["nodes"] == "pve-1,pve-2"
    assert created["prune-backups"] == "keep-last=3,keep-weekly=4"
    assert result["storage"]["storage"] == "backups"
    assert result["changes"] == [dict(id="backups", action="create", params=dict(
        type="dir", path="/srv/backups", content="backup", nodes="pve-1,pve-2", **{"prune-backups": "keep-last=3,keep-weekly=4"}))]

    pve_sim.clear_log()
    same = dict(BACKUPS)
    same.update(path="/srv/backups/", nodes=["pve-1", "pve-2"], prune_backups=dict(keep_last=3, keep_weekly=4))
    again = run(run_module, pve_sim, **same)
    assert not again.get("failed"), again
    assert again["changed"] is False and again["changes"] == []
    assert pve_sim.writes() == []
    # the storage configuration, and the cluster's nodes once (storages with nodes are checked against them)
    assert [r["path"] for r in pve_sim.reads()] == ["/nodes", "/storage"]


def test_creates_an_nfs_storage_with_the_default_mount_point(pve_sim, run_module):
    result = run(run_module, pve_sim, storage="nas2", type="nfs", server="192.168.10.50", export="/mnt/tank/lab",
                 options="vers=4.2", content=["images", "iso"])
    assert result["changed"], result
    created = storage(pve_sim, "nas2")
    assert (created["server"], created["export"], created["path"]) == ("192.168.10.50", "/mnt/tank/lab", "/mnt/pve/nas2")
    assert created["shared"] == 1


def test_lvmthin_and_zfspool_storages(pve_sim, run_module):
    result = run(run_module, pve_sim, storage="thin2", type="lvmthin", vgname="vg2", thinpool="data2",
                 content=["rootdir", "images"])
    assert result["changed"], result
    result = run(run_module, pve_sim, storage="tank", type="zfspool", pool="tank/vm", sparse=True, nodes=["pve-1"])
    assert result["changed"], result
    assert storage(pve_sim, "tank")["sparse"] == 1
    pve_sim.clear_log()
    again = run(run_module, pve_sim, storage="tank", type="zfspool", pool="tank/vm", sparse=True, nodes=["pve-1"])
    assert again["changed"] is False and pve_sim.writes() == []


def test_updates_content_in_any_order_and_only_what_differs(pve_sim, run_module):
    # nas has backup,images,iso,rootdir,snippets,vztmpl: the same set in another order is no change.
    pve_sim.clear_log()
    same = run(run_module, pve_sim, storage="nas", content=["vztmpl", "snippets", "rootdir", "iso", "images", "backup"],
               prune_backups=dict(keep_last=3), disable=False)
    assert same["changed"] is False and pve_sim.writes() == []

    result = run(run_module, pve_sim, diff=True, storage="nas", content=["images", "backup"], nodes=["pve-1"])
    assert result["changed"]
    writes = pve_sim.writes()
    assert [(w["method"], w["path"]) for w in writes] == [("PUT", "/storage/nas")]
    assert writes[0]["params"] == {"content": "backup,images", "nodes": "pve-1"}
    assert result["diff"]["before"] == {"content": "backup,images,iso,rootdir,snippets,vztmpl", "nodes": None}
    assert result["diff"]["after"] == {"content": "backup,images", "nodes": "pve-1"}
    assert storage(pve_sim, "nas")["server"] == "192.168.10.50"


def test_empty_nodes_list_makes_the_storage_available_everywhere(pve_sim, run_module):
    run(run_module, pve_sim, storage="nas", nodes=["pve-1"])
    pve_sim.clear_log()
    result = run(run_module, pve_sim, storage="nas", nodes=[])
    assert result["changed"]
    assert pve_sim.writes()[0]["params"] == {"delete": "nodes"}
    assert "nodes" not in storage(pve_sim, "nas")
    pve_sim.clear_log()
    assert run(run_module, pve_sim, storage="nas", nodes=[])["changed"] is False
    assert pve_sim.writes() == []


def test_disable_and_enable_again(pve9_sim, run_module):
    assert run(run_module, pve9_sim, storage="nas", disable=True)["changed"]
    assert storage(pve9_sim, "nas")["disable"] == 1
    assert run(run_module, pve9_sim, storage="nas", disable=False)["changed"]
    assert run(run_module, pve9_sim, storage="nas", disable=False)["changed"] is False


def test_removes_a_storage_and_absent_is_a_no_op_then(pve_sim, run_module):
    result = run(run_module, pve_sim, storage="nas", state="absent", diff=True)
    assert result["changed"] and result["storage"] == {}
    assert result["diff"]["before"]["server"] == "192.168.10.50" and result["diff"]["after"] == {}
    assert storage(pve_sim, "nas") is None
    pve_sim.clear_log()
    again = run(run_module, pve_sim, storage="nas", state="absent")
    assert again["changed"] is False and pve_sim.writes() == []


def test_check_mode_predicts_and_writes_nothing(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, check_mode=True, diff=True, **BACKUPS)
    assert result["changed"]
    assert result["storage"]["path"] == "/srv/backups"
    assert result["diff"]["before"] == {} and result["diff"]["after"]["path"] == "/srv/backups"
    assert pve_sim.writes() == []
    assert storage(pve_sim, "backups") is None
    removed = run(run_module, pve_sim, check_mode=True, storage="nas", state="absent")
    assert removed["changed"] and pve_sim.writes() == []


# ------------------------------------------------------------------------------ refused input
@pytest.mark.parametrize("option,value", [("server", "192.168.10.60"), ("export", "/mnt/tank/other"),
                                          ("path", "/mnt/pve/elsewhere")])
def test_fixed_option_change_fails_before_any_write(pve_sim, run_module, option, value):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, storage="nas", type="nfs", content=["images"], **{option: value})
    assert result["failed"]
    assert result["msg"].startswith("storage nas: %s cannot change after creation" % option)
    assert "remove and re-add the storage (its data stays on the server) or keep the old value" in result["msg"]
    assert pve_sim.writes() == []


def test_fixed_options_of_block_storages(pve_sim, run_module):
    result = run(run_module, pve_sim, storage="local-lvm", thinpool="other")
    assert result["failed"] and "storage local-lvm: thinpool cannot change after creation" in result["msg"]
    result = run(run_module, pve_sim, storage="local-lvm", vgname="other")
    assert result["failed"] and "vgname cannot change" in result["msg"]
    # the same fixed value is fine and is not sent
    pve_sim.clear_log()
    same = run(run_module, pve_sim, storage="local-lvm", vgname="pve", thinpool="data", content=["images", "rootdir"])
    assert same["changed"] is False and pve_sim.writes() == []


def test_type_change_fails(pve_sim, run_module):
    result = run(run_module, pve_sim, storage="local", type="nfs", server="1.2.3.4", export="/x")
    assert result["failed"]
    assert "storage local: type cannot change after creation (it is dir)" in result["msg"]


def test_list_mode_checks_every_fixed_option_before_the_first_write(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, storages=[BACKUPS, dict(storage="nas", server="10.0.0.1")])
    assert result["failed"] and "storage nas: server cannot change" in result["msg"]
    assert pve_sim.writes() == []
    assert storage(pve_sim, "backups") is None


@pytest.mark.parametrize("args,message", [
    (dict(storage="new"), "storage new does not exist; set type"),
    (dict(storage="new", type="nfs", server="10.0.0.1"), "storage new: creating a nfs storage needs export"),
    (dict(storage="new", type="lvmthin", vgname="pve"), "creating a lvmthin storage needs thinpool"),
    (dict(storage="new", type="dir", path="/x", server="10.0.0.1"), "storage new: server is not valid for a dir storage"),
    (dict(storage="nas", shared=True), "storage nas: shared is not valid for a nfs storage"),
    (dict(storage="local-lvm", content=["iso", "images"]), "holds only images and rootdir, not iso"),
    (dict(storage="nas", content=[]), "content is empty"),
    (dict(storage="nas", content=["none", "iso"]), "content none cannot be combined"),
    (dict(storage="9bad"), "storage 9bad: invalid storage ID"),
    (dict(storage="nas", prune_backups=dict(keep_all=True, keep_last=2)), "keep_all: true keeps every backup"),
    (dict(storage="nas", prune_backups=dict(keep_last=0)), "keep_last must be 1 or more"),
    (dict(storage="nas", prune_backups={}), "prune_backups needs at least one keep_* setting"),
    (dict(storage="nas", nodes=["pve-1", "pve-3"]),
     "storage nas: nodes names pve-3, which is not a node of this cluster (nodes: pve-1, pve-2)"),
])
def test_bad_input_is_refused_before_any_write(pve_sim, run_module, args, message):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, **args)
    assert result["failed"], result
    assert message in result["msg"]
    assert pve_sim.writes() == []


def test_snapshot_as_volume_chain_needs_pve9(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, **BACKUPS, snapshot_as_volume_chain=True)
    if pve_sim.pve == 8:
        assert result["failed"]
        assert "storage backups: snapshot_as_volume_chain needs Proxmox VE 9 or later" in result["msg"]
        assert "8.4" in result["msg"]
        assert pve_sim.writes() == []
    else:
        assert result["changed"], result
        assert storage(pve_sim, "backups")["snapshot-as-volume-chain"] == 1


def test_snapshot_as_volume_chain_is_fixed_on_a_dir_storage(pve9_sim, run_module):
    """PVE refuses any write of a fixed option with a 500 (SectionConfig.pm check_config): refuse it first."""
    assert run(run_module, pve9_sim, **BACKUPS)["changed"]
    pve9_sim.clear_log()
    result = run(run_module, pve9_sim, **BACKUPS, snapshot_as_volume_chain=True)
    assert result["failed"]
    assert result["msg"] == ("storage backups: snapshot_as_volume_chain cannot change after creation (it is 0, wanted 1); "
                             "remove and re-add the storage (its data stays in the directory) or keep the old value")
    assert pve9_sim.writes() == []
    # the value PVE assumes (absent = 0) is no change and is not sent: PVE would refuse even that
    same = run(run_module, pve9_sim, **BACKUPS, snapshot_as_volume_chain=False)
    assert same["changed"] is False and pve9_sim.writes() == []
    # an LVM storage may change it
    pve9_sim.api().storage.post(storage="thick", type="lvm", vgname="vg0")
    pve9_sim.clear_log()
    lvm = run(run_module, pve9_sim, storage="thick", snapshot_as_volume_chain=True)
    assert lvm["changed"], lvm
    assert [w["params"] for w in pve9_sim.writes()] == [{"snapshot-as-volume-chain": "1"}]


def test_node_names_are_read_once_for_all_storages(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, storages=[dict(BACKUPS, nodes=["pve-1"]),
                                                dict(storage="iso", type="dir", path="/srv/iso", content=["iso"],
                                                     nodes=["pve-2"])])
    assert result["changed"], result
    assert [r["path"] for r in pve_sim.reads()].count("/nodes") == 1


def test_plan_on_a_fresh_cluster_accepts_the_nodes_that_join_first(pve_sim, run_module):
    """The plan (check mode) runs before proxmox_cluster joins pve-2: planned_nodes counts it as a node."""
    pve_sim.reseed(standalone_seed())
    try:
        args = dict(BACKUPS, nodes=["pve-1", "pve-2"])
        planned = run(run_module, pve_sim, check_mode=True, planned_nodes=["pve-2"], **args)
        assert not planned.get("failed"), planned
        assert planned["changed"] and pve_sim.writes() == []
        unknown = run(run_module, pve_sim, check_mode=True, **args)
        assert unknown["failed"] and "nodes names pve-2, which is not a node of this cluster (nodes: pve-1)" in unknown["msg"]
        # outside check mode the join has happened (or failed): planned_nodes is ignored
        real = run(run_module, pve_sim, planned_nodes=["pve-2"], **args)
        assert real["failed"] and "nodes names pve-2" in real["msg"] and pve_sim.writes() == []
    finally:
        pve_sim.reseed(empty_seed())


def test_single_and_list_options_do_not_mix(pve_sim, run_module):
    result = run(run_module, pve_sim, storage="nas", storages=[BACKUPS])
    assert result["failed"] and "mutually exclusive" in result["msg"]
    result = run(run_module, pve_sim, storage="nas", purge=True)
    assert result["failed"] and "purge is True" in result["msg"]


def test_api_error_is_reported_with_the_storage(pve9_sim, run_module):
    pve9_sim.fault("http_error", path="^/storage$", method="POST", status=500, message="storage.cfg locked")
    result = run(run_module, pve9_sim, **BACKUPS)
    assert result["failed"]
    assert "creating storage backups" in result["msg"] and "storage.cfg locked" in result["msg"]


def test_read_only_token_fails_on_the_write(pve9_sim, run_module):
    result = run_module(proxmox_storage, dict(pve9_sim.module_params(readonly=True), **BACKUPS))
    assert result["failed"] and "permission denied" in result["msg"]


# ------------------------------------------------------------------------------ list mode
def test_list_mode_reads_once_and_writes_only_the_differences(pve_sim, run_module):
    items = [BACKUPS,
             dict(storage="nas", type="nfs", server="192.168.10.50", export="/mnt/tank/pve", nodes=["pve-1", "pve-2"],
                  content=["backup", "images", "iso", "rootdir", "snippets", "vztmpl"]),
             dict(storage="local", content=["iso", "vztmpl", "backup"]),
             dict(storage="tank", type="zfspool", pool="tank/vm")]
    pve_sim.clear_log()
    result = run(run_module, pve_sim, storages=items)
    assert not result.get("failed"), result
    # the storage configuration, and the cluster's nodes once (storages with nodes are checked against them)
    assert [r["path"] for r in pve_sim.reads()] == ["/nodes", "/storage"]
    assert sorted((w["method"], w["path"]) for w in pve_sim.writes()) == [
        ("POST", "/storage"), ("POST", "/storage"), ("PUT", "/storage/nas")]
    assert [c["id"] for c in result["changes"]] == ["backups", "nas", "tank"]
    assert [s["storage"] for s in result["storages"]] == ["backups", "nas", "local", "tank"]

    pve_sim.clear_log()
    again = run(run_module, pve_sim, storages=list(reversed(items)))
    assert again["changed"] is False
    assert pve_sim.writes() == []
    # the storage configuration, and the cluster's nodes once (storages with nodes are checked against them)
    assert [r["path"] for r in pve_sim.reads()] == ["/nodes", "/storage"]


def test_list_mode_many_storages_cost_one_read(pve9_sim, run_module):
    items = [dict(storage="d%02d" % i, type="dir", path="/srv/d%02d" % i, content=["backup"]) for i in range(30)]
    run(run_module, pve9_sim, storages=items)
    pve9_sim.clear_log()
    result = run(run_module, pve9_sim, storages=items)
    assert result["changed"] is False
    assert len(pve9_sim.reads()) == 1 and pve9_sim.writes() == []


def test_list_mode_state_default_and_per_entry_state(pve_sim, run_module):
    run(run_module, pve_sim, **BACKUPS)
    result = run(run_module, pve_sim, state="absent", storages=[dict(storage="backups"), dict(storage="nas", state="present")])
    assert result["changed"]
    assert storage(pve_sim, "backups") is None and storage(pve_sim, "nas") is not None
    assert [c["action"] for c in result["changes"]] == ["delete"]


def test_list_mode_purge_removes_unlisted_storages(pve_sim, run_module):
    items = [dict(storage="nas"), dict(storage="local-lvm")]
    pve_sim.clear_log()
    check = run(run_module, pve_sim, check_mode=True, storages=items, purge=True)
    assert check["changed"] and [c["id"] for c in check["changes"]] == ["local"]
    assert pve_sim.writes() == []
    result = run(run_module, pve_sim, storages=items, purge=True, diff=True)
    assert result["changed"]
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("DELETE", "/storage/local")]
    assert list(result["diff"]["before"]) == ["local"]
    assert sorted(s["storage"] for s in pve_sim.api().storage.get()) == ["local-lvm", "nas"]
    # without purge the others are left alone
    assert run(run_module, pve_sim, storages=[dict(storage="nas")])["changed"] is False


def test_list_mode_duplicates_are_refused(pve_sim, run_module):
    result = run(run_module, pve_sim, storages=[dict(storage="nas"), dict(storage="nas", disable=True)])
    assert result["failed"] and "storage nas is listed twice in storages" in result["msg"]


def test_list_mode_failure_names_what_was_applied(pve9_sim, run_module):
    pve9_sim.fault("http_error", path="^/storage/nas$", method="PUT", status=500, message="boom")
    result = run(run_module, pve9_sim, storages=[BACKUPS, dict(storage="nas", disable=True)])
    assert result["failed"] and result["changed"]
    assert "updating storage nas" in result["msg"] and "already applied in this run: create backups" in result["msg"]
