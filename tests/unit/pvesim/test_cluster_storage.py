"""Cluster views (version, status, nodes, resources), storage CRUD and quorum, on PVE 8 and 9."""

import pytest
from proxmoxer.core import ResourceException


def test_version_follows_the_personality(pve_sim):
    version = pve_sim.api().version.get()
    assert version["release"] == {8: "8.4", 9: "9.1"}[pve_sim.pve]
    assert version["version"].startswith(version["release"] + ".")


def test_default_seed_is_the_two_node_lab(pve_sim):
    api = pve_sim.api()
    cluster, *nodes = api.cluster.status.get()
    assert cluster == {"type": "cluster", "id": "cluster", "name": "ailab", "nodes": 2, "quorate": 1,
                       "version": cluster["version"]}
    assert [(n["name"], n["online"]) for n in nodes] == [("pve-1", 1), ("pve-2", 1)]
    assert [n["status"] for n in api.nodes.get()] == ["online", "online"]
    assert api.nodes("pve-2").status.get()["cpuinfo"]["cpus"] == 32
    types = {s["storage"]: s["type"] for s in api.storage.get()}
    assert types == {"local": "dir", "local-lvm": "lvmthin", "nas": "nfs"}
    on_node = {s["storage"]: s["shared"] for s in api.nodes("pve-2").storage.get()}
    assert on_node == {"local": 0, "local-lvm": 0, "nas": 1}
    resources = api.cluster.resources.get(type="storage")
    assert sorted((r["node"], r["storage"]) for r in resources if r["storage"] == "nas") == [
        ("pve-1", "nas"), ("pve-2", "nas")]
    assert api.cluster.resources.get(type="vm") == []
    assert api.cluster.nextid.get() == "100"


def test_directory_indexes_come_from_the_schema(pve_sim):
    api = pve_sim.api()
    assert {"status", "resources", "groups"} <= {entry["id"] for entry in api.cluster.ha.get()}
    assert {"qemu", "lxc", "storage", "tasks"} <= {entry["name"] for entry in api.nodes("pve-1").get()}


def test_ha_status_shows_quorum_master_and_lrms(pve_sim):
    status = pve_sim.api().cluster.ha.status.current.get()
    by_id = {entry["id"]: entry for entry in status}
    assert by_id["quorum"]["status"] == "OK" and by_id["quorum"]["quorate"] == 1
    assert by_id["master"]["node"] == "pve-1"
    assert {"lrm:pve-1", "lrm:pve-2"} <= set(by_id)
    manager = pve_sim.api().cluster.ha.status.manager_status.get()
    assert manager["manager_status"]["node_status"] == {"pve-1": "online", "pve-2": "online"}


def test_storage_crud_and_fixed_properties(pve_sim):
    api = pve_sim.api()
    result = api.storage.post(storage="scratch", type="dir", path="/srv/scratch", content="images,iso",
                              nodes="pve-1")
    assert result == {"storage": "scratch", "type": "dir"}
    created = api.storage("scratch").get()
    assert created["path"] == "/srv/scratch" and created["nodes"] == "pve-1" and created["digest"]
    api.storage("scratch").put(content="iso,backup", delete="nodes")
    assert "nodes" not in api.storage("scratch").get()
    assert api.storage("scratch").get()["content"] == "iso,backup"
    with pytest.raises(ResourceException) as raised:
        api.storage("scratch").put(path="/srv/other")
    assert raised.value.status_code == 400
    assert raised.value.errors == {
        "path": "property is not defined in schema and the schema does not allow additional properties"}
    # pve-common SectionConfig.pm check_config inside pve-storage API2/Storage/Config.pm update: a 500,
    # for any value of a fixed option (the same one too)
    for server in ("10.0.0.9", api.storage("nas").get()["server"]):
        with pytest.raises(ResourceException) as raised:
            api.storage("nas").put(server=server)
        assert raised.value.status_code == 500
        assert raised.value.content == "update storage failed: can't change value of fixed parameter 'server'"
    with pytest.raises(ResourceException) as raised:
        api.storage.post(storage="scratch", type="dir", path="/srv/x")
    assert raised.value.status_code == 500
    assert "already defined" in raised.value.content
    with pytest.raises(ResourceException) as raised:
        api.storage.post(storage="nfs2", type="nfs", server="10.0.0.9", path="/mnt/pve/nfs2")
    assert raised.value.content == "missing value for required option 'export'"
    api.storage("scratch").delete()
    assert "scratch" not in {s["storage"] for s in api.storage.get()}
    with pytest.raises(ResourceException) as raised:
        api.storage("scratch").get()
    assert raised.value.content == "storage 'scratch' does not exist"


def test_storage_digest_protects_against_concurrent_changes(pve_sim):
    api = pve_sim.api()
    digest = api.storage("nas").get()["digest"]
    api.storage("nas").put(content="images,iso", digest=digest)
    with pytest.raises(ResourceException) as raised:
        api.storage("nas").put(content="images", digest=digest)
    assert "detected modified configuration" in raised.value.content


def test_losing_a_node_of_two_loses_quorum(pve_sim):
    api = pve_sim.api()
    pve_sim.node_down("pve-2")
    cluster, _ignored, node2 = api.cluster.status.get()
    assert cluster["quorate"] == 0 and node2["online"] == 0
    assert {n["node"]: n["status"] for n in api.nodes.get()} == {"pve-1": "online", "pve-2": "offline"}
    assert api.cluster.ha.status.current.get()[0]["status"] == "No quorum on node 'pve-1'!"
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:8")
    assert (raised.value.status_code, raised.value.content) == (500, "cluster not ready - no quorum?")
    with pytest.raises(ResourceException) as raised:
        api.storage("nas").put(content="iso")
    assert raised.value.content == "cluster not ready - no quorum?"
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-2").status.get()
    assert raised.value.content == "unable to get IP for node 'pve-2' - node offline?"
    pve_sim.node_up("pve-2")
    assert api.cluster.status.get()[0]["quorate"] == 1
    api.storage("nas").put(content="iso,images")


def test_unknown_node_fails_like_pveproxy(pve_sim):
    with pytest.raises(ResourceException) as raised:
        pve_sim.api().nodes("pve-9").qemu.get()
    assert raised.value.status_code == 500
    assert raised.value.content.startswith("hostname lookup 'pve-9' failed")


def test_snapshot_as_volume_chain_is_fixed_on_file_storages_only(pve9_sim):
    """pve-storage DirPlugin/NFSPlugin/CIFSPlugin options(): 'snapshot-as-volume-chain' is fixed; LVMPlugin: not."""
    api = pve9_sim.api()
    api.storage.post(storage="chain", type="dir", path="/srv/chain", **{"snapshot-as-volume-chain": 1})
    with pytest.raises(ResourceException) as raised:
        api.storage("chain").put(**{"snapshot-as-volume-chain": 0})
    assert raised.value.status_code == 500
    assert raised.value.content == "update storage failed: can't change value of fixed parameter 'snapshot-as-volume-chain'"
    with pytest.raises(ResourceException) as raised:
        api.storage("chain").put(delete="snapshot-as-volume-chain")
    assert raised.value.content == "update storage failed: unable to delete fixed option 'snapshot-as-volume-chain'"
    api.storage.post(storage="thick", type="lvm", vgname="vg0")
    api.storage("thick").put(**{"snapshot-as-volume-chain": 1})
    assert api.storage("thick").get()["snapshot-as-volume-chain"] == 1
