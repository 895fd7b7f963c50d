"""ailab.cluster.proxmox_pci_mapping against the PVE API simulator (PVE 8 and 9), real proxmoxer.

The default seed has an RTX 3090 (10de:2204, subsystem 10de:1454, IOMMU group 14) at 0000:01:00.0
and its audio function at 0000:01:00.1 on pve-1 and on pve-2.
"""

import pytest
from ansible.module_utils import basic

from ansible_collections.ailab.cluster.plugins.modules import proxmox_pci_mapping
from pvesim.seed import empty_seed, standalone_seed, without_iommu

GPU_MAP = [dict(node="pve-1", path=["0000:01:00"], id="10de:2204", subsystem_id="10de:1454", iommugroup=14),
           dict(node="pve-2", path=["0000:01:00"], id="10de:2204", subsystem_id="10de:1454", iommugroup=14)]
RTX = dict(id="rtx3090", description="GeForce RTX 3090", map=GPU_MAP)


def mapping(sim, mapping_id):
    return {m["id"]: m for m in sim.api().cluster.mapping.pci.get()}.get(mapping_id)


def run(run_module, sim, check_mode=False, diff=False, **args):
    return run_module(proxmox_pci_mapping, dict(sim.module_params(), **args), check_mode=check_mode, diff=diff)


# ------------------------------------------------------------------------------ single mode
def test_creates_the_gpu_mapping_then_changes_nothing(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, **RTX)
    assert not result.get("failed"), result
    assert result["changed"]
    writes = pve_sim.writes()
    assert [(w["method"], w["path"]) for w in writes] == [("POST", "/cluster/mapping/pci")]
    entries = ["node=pve-1,path=0000:01:00,id=10de:2204,subsystem-id=10de:1454,iommugroup=14",
               "node=pve-2,path=0000:01:00,id=10de:2204,subsystem-id=10de:1454,iommugroup=14"]
    assert writes[0]["params"]["map"] == entries
    # reads: the mapping list, then /nodes and each node's devices (check_devices)
    assert [r["path"] for r in pve_sim.reads()] == ["/cluster/mapping/pci", "/nodes", "/nodes/pve-1/hardware/pci",
                                                    "/nodes/pve-2/hardware/pci"]
    created = mapping(pve_sim, "rtx3090")
    assert sorted(created["map"]) == entries and created["description"] == "GeForce RTX 3090"
    assert result["mapping"]["map"] == entries

    pve_sim.clear_log()
    same = dict(RTX)
    same.update(map=list(reversed(GPU_MAP)))
    again = run(run_module, pve_sim, **same)
    assert again["changed"] is False, again
    assert pve_sim.writes() == []
    assert [r["path"] for r in pve_sim.reads()] == ["/cluster/mapping/pci"]


def test_entries_compare_without_order_or_case(pve_sim, run_module):
    pve_sim.api().cluster.mapping.pci.post(id="rtx3090", map=[
        "iommugroup=14,node=pve-2,path=0000:01:00,id=10DE:2204", "id=10de:2204,node=pve-1,path=0000:01:00,iommugroup=14"])
    pve_sim.clear_log()
    result = run(run_module, pve_sim, id="rtx3090", map=[
        dict(node="pve-1", path=["01:00"], id="10de:2204", iommugroup=14),
        dict(node="pve-2", path=["0000:01:00"], id="10DE:2204", iommugroup=14)])
    assert not result.get("failed"), result
    assert result["changed"] is False and pve_sim.writes() == []


def test_updates_the_map_and_options_with_diff(pve_sim, run_module):
    run(run_module, pve_sim, **RTX)
    pve_sim.clear_log()
    one_node = [dict(node="pve-1", path=["0000:01:00.0"], id="10de:2204", subsystem_id="10de:1454", iommugroup=14)]
    result = run(run_module, pve_sim, diff=True, id="rtx3090", map=one_node, mdev=False, live_migration_capable=True,
                 description="")
    assert result["changed"], result
    writes = pve_sim.writes()
    assert [(w["method"], w["path"]) for w in writes] == [("PUT", "/cluster/mapping/pci/rtx3090")]
    entry = "node=pve-1,path=0000:01:00.0,id=10de:2204,subsystem-id=10de:1454,iommugroup=14"
    assert writes[0]["params"] == {"map": entry, "live-migration-capable": "1",
                                   "delete": "description"}
    assert result["diff"]["before"]["description"] == "GeForce RTX 3090"
    assert result["diff"]["after"]["map"] == [entry]
    assert result["diff"]["after"]["live-migration-capable"] == 1
    current = mapping(pve_sim, "rtx3090")
    assert current["map"] == [entry] and "description" not in current
    # only the device of the changed entry is checked
    assert "/nodes/pve-2/hardware/pci" not in [r["path"] for r in pve_sim.reads()]


def test_alternative_paths_on_one_node(pve9_sim, run_module):
    result = run(run_module, pve9_sim, id="gpu-any", map=[
        dict(node="pve-1", path=["0000:01:00.0", "0000:01:00.1"], id="10de:2204")], check_devices=False)
    assert result["changed"], result
    assert mapping(pve9_sim, "gpu-any")["map"] == ["node=pve-1,path=0000:01:00.0;0000:01:00.1,id=10de:2204"]


def test_removes_a_mapping(pve_sim, run_module):
    run(run_module, pve_sim, **RTX)
    pve_sim.clear_log()
    result = run(run_module, pve_sim, diff=True, id="rtx3090", state="absent")
    assert result["changed"] and result["mapping"] == {}
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("DELETE", "/cluster/mapping/pci/rtx3090")]
    assert result["diff"]["before"]["id"] == "rtx3090" and result["diff"]["after"] == {}
    pve_sim.clear_log()
    assert run(run_module, pve_sim, id="rtx3090", state="absent")["changed"] is False
    assert pve_sim.writes() == []


def test_check_mode_writes_nothing(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, check_mode=True, diff=True, **RTX)
    assert result["changed"] and result["mapping"]["id"] == "rtx3090"
    assert len(result["diff"]["after"]["map"]) == 2
    assert pve_sim.writes() == []
    assert mapping(pve_sim, "rtx3090") is None


# ------------------------------------------------------------------------------ refused input
@pytest.mark.parametrize("args,message", [
    (dict(id="rtx3090"), "PCI mapping rtx3090 does not exist; set map"),
    (dict(id="rtx3090", map=[]), "map is empty"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["01:00:0"], id="10de:2204")]), "path 01:00:0 on pve-1 is not a PCI address"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="0x10de")]), "id 0x10de on pve-1 is not a vendor:device ID"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204", subsystem_id="nvidia")]),
     "subsystem_id nvidia on pve-1"),
    (dict(id="rtx3090", map=[dict(node="pve_1", path=["0000:01:00"], id="10de:2204")]), "'pve_1' is not a valid node name"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204", iommugroup=-1)]),
     "iommugroup on pve-1 must be 0 or more"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204", description="a,b")]),
     "cannot contain ','"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204"),
                             dict(node="pve-1", path=["01:00"], id="10de:2204")]), "pve-1 0000:01:00 is mapped twice"),
    (dict(id="3090"), "PCI mapping 3090: invalid mapping ID"),
    # check_devices: what the nodes report
    (dict(id="rtx3090", map=[dict(node="pve-9", path=["0000:01:00"], id="10de:2204")]), "node pve-9 is not a cluster node"),
    (dict(id="rtx3090", map=[dict(node="pve-2", path=["0000:02:00.0"], id="10de:2204")]), "pve-2 has no PCI device 0000:02:00.0"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00.1"], id="10de:2204")]),
     "device 0000:01:00.1 on pve-1 is 10de:1aef, not 10de:2204 (GA102 High Definition Audio Controller)"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204", subsystem_id="10de:0000")]),
     "has subsystem ID 10de:1454, not 10de:0000"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204", subsystem_id="10de:1454",
                                  iommugroup=3)]), "is in IOMMU group 14, not 3"),
    # what a VM start on Proxmox VE would refuse (pve-guest-common Mapping/PCI.pm assert_valid)
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204", iommugroup=14)]),
     "PCI mapping rtx3090: device 0000:01:00 on pve-1 has subsystem ID 10de:1454 and the entry names none; add "
     "subsystem_id: 10de:1454 (Proxmox VE refuses to start a VM with this entry: missing expected property "
     "'subsystem-id')"),
    (dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204", subsystem_id="10de:1454")]),
     "PCI mapping rtx3090: device 0000:01:00 on pve-1 is in IOMMU group 14 and the entry names none; add "
     "iommugroup: 14 (Proxmox VE refuses to start a VM with this entry: missing expected property 'iommugroup')"),
])
def test_bad_input_is_refused_before_any_write(pve_sim, run_module, args, message):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, **args)
    assert result["failed"], result
    assert message in result["msg"], result["msg"]
    assert pve_sim.writes() == []


def test_check_devices_false_maps_hardware_not_installed_yet(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, id="a100", check_devices=False,
                 map=[dict(node="pve-2", path=["0000:41:00.0"], id="10de:20b5")])
    assert result["changed"], result
    assert [r["path"] for r in pve_sim.reads()] == ["/cluster/mapping/pci"]


def test_offline_node_is_skipped_with_a_warning(pve_sim, run_module, monkeypatch):
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    # with one of two nodes down the cluster has no quorum and refuses writes: check mode shows the plan
    pve_sim.node_down("pve-2")
    result = run(run_module, pve_sim, check_mode=True, **RTX)
    assert not result.get("failed"), result
    assert result["changed"]
    assert warnings == ["PCI mapping: node pve-2 is offline, its devices were not checked"]


def test_a_host_without_iommu_yet_gets_the_mapping_with_a_warning(pve_sim, run_module, monkeypatch):
    """A fresh host reports IOMMU group -1 until IOMMU is on (pve-common SysFSTools.pm lspci): the mapping with
    the group it will have is written, and the group checked once IOMMU is on."""
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    pve_sim.reseed(without_iommu(empty_seed(), "pve-2"))
    try:
        result = run(run_module, pve_sim, **RTX)
        assert not result.get("failed"), result
        assert result["changed"] and mapping(pve_sim, "rtx3090")
        assert warnings == ["PCI mapping rtx3090: IOMMU is not enabled on pve-2 yet (its devices report IOMMU group "
                            "-1), so iommugroup was not checked there; a VM cannot use the mapping on pve-2 until "
                            "IOMMU is on (the proxmox_gpu_passthrough role enables it and reboots the node)"]
        # the node with IOMMU on is still checked
        wrong = [dict(GPU_MAP[0], iommugroup=15), GPU_MAP[1]]
        refused = run(run_module, pve_sim, id="rtx3090", map=wrong)
        assert refused["failed"] and "device 0000:01:00 on pve-1 is in IOMMU group 14, not 15" in refused["msg"]
    finally:
        pve_sim.reseed(empty_seed())


def test_plan_on_a_fresh_cluster_accepts_the_nodes_that_join_first(pve_sim, run_module, monkeypatch):
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    pve_sim.reseed(standalone_seed())
    try:
        planned = run(run_module, pve_sim, check_mode=True, planned_nodes=["pve-2"], **RTX)
        assert not planned.get("failed"), planned
        assert planned["changed"] and pve_sim.writes() == []
        assert warnings == ["PCI mapping: node pve-2 joins the cluster in this run, its devices are checked once it "
                            "is a member"]
        unknown = run(run_module, pve_sim, check_mode=True, **RTX)
        assert unknown["failed"] and "node pve-2 is not a cluster node (nodes: pve-1)" in unknown["msg"]
        real = run(run_module, pve_sim, planned_nodes=["pve-2"], **RTX)
        assert real["failed"] and "node pve-2 is not a cluster node" in real["msg"] and pve_sim.writes() == []
    finally:
        pve_sim.reseed(empty_seed())


def test_api_error_names_the_mapping(pve_sim, run_module):
    pve_sim.fault("http_error", path="^/cluster/mapping/pci$", method="POST", status=500, message="cannot lock mapping")
    result = run(run_module, pve_sim, **RTX)
    assert result["failed"] and "creating PCI mapping rtx3090" in result["msg"] and "cannot lock mapping" in result["msg"]


# ------------------------------------------------------------------------------ list mode
def test_alternative_paths_check_the_first_paths_iommu_group_only():
    """PVE checks the IOMMU group of an entry's first path only (assert_valid): a second GPU in another group
    passes as an alternative, and fails as the first path."""
    devices = {"0000:02:00.0": {"id": "0000:02:00.0", "vendor": "0x10de", "device": "0x2204",
                                "subsystem_vendor": "0x10de", "subsystem_device": "0x1454", "iommugroup": 15}}
    entry = {"id": "10de:2204", "subsystem-id": "10de:1454", "iommugroup": "14"}
    check = proxmox_pci_mapping.PciMappingManager._check_device
    assert check("gpu-any", "pve-1", "0000:02:00.0", entry, devices, False) is True
    with pytest.raises(proxmox_pci_mapping.ProxmoxError, match="is in IOMMU group 15, not 14; fix iommugroup"):
        check("gpu-any", "pve-1", "0000:02:00.0", entry, devices, True)


def test_list_mode_reads_once_and_writes_only_the_differences(pve_sim, run_module):
    items = [RTX, dict(id="rtx-audio", map=[dict(node="pve-1", path=["0000:01:00.1"], id="10de:1aef",
                                                 subsystem_id="10de:1454", iommugroup=14)]),
             dict(id="old", state="absent")]
    pve_sim.clear_log()
    result = run(run_module, pve_sim, mappings=items)
    assert not result.get("failed"), result
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("POST", "/cluster/mapping/pci")] * 2
    reads = [r["path"] for r in pve_sim.reads()]
    assert reads.count("/cluster/mapping/pci") == 1 and reads.count("/nodes/pve-1/hardware/pci") == 1
    assert [m["id"] for m in result["mappings"]] == ["rtx3090", "rtx-audio"]

    pve_sim.clear_log()
    again = run(run_module, pve_sim, mappings=list(reversed(items)))
    assert again["changed"] is False and pve_sim.writes() == []
    assert [r["path"] for r in pve_sim.reads()] == ["/cluster/mapping/pci"]


def test_list_mode_purge(pve_sim, run_module):
    run(run_module, pve_sim, mappings=[RTX, dict(id="spare", map=GPU_MAP[:1])])
    pve_sim.clear_log()
    result = run(run_module, pve_sim, mappings=[RTX], purge=True)
    assert [c["id"] for c in result["changes"]] == ["spare"]
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("DELETE", "/cluster/mapping/pci/spare")]
    assert [m["id"] for m in pve_sim.api().cluster.mapping.pci.get()] == ["rtx3090"]


def test_list_mode_checks_every_mapping_before_the_first_write(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, mappings=[RTX, dict(id="bad", map=[dict(node="pve-2", path=["0000:09:00"], id="10de:2204")])])
    assert result["failed"] and "PCI mapping bad: pve-2 has no PCI device 0000:09:00" in result["msg"]
    assert pve_sim.writes() == []
