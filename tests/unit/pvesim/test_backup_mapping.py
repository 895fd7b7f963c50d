"""Backup jobs (``/cluster/backup``) and PCI mappings (``/cluster/mapping/pci``)."""

import pytest
from proxmoxer.core import ResourceException

from pvesim.seed import empty_seed, load_seed, without_iommu
from pvesim.testing import SimulatorProcess

GPU_MAP = ["node=pve-1,path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454",
           "node=pve-2,path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454"]


def test_backup_job_crud(pve_sim, wait):
    api = pve_sim.api()
    wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:8", scsi1="local-lvm:2,backup=0"))
    api.cluster.backup.post(id="nightly", schedule="02:30", storage="nas", vmid="100", mode="snapshot",
                            compress="zstd", **{"prune-backups": "keep-daily=7,keep-weekly=4"})
    job = api.cluster.backup("nightly").get()
    assert (job["schedule"], job["storage"], job["vmid"], job["enabled"]) == ("02:30", "nas", "100", 1)
    assert job["prune-backups"] == {"keep-daily": 7, "keep-weekly": 4} and job["digest"]
    assert [j["id"] for j in api.cluster.backup.get()] == ["nightly"]
    volumes = api.cluster.backup("nightly").included_volumes.get()
    assert volumes == {"children": [{"id": 100, "name": "VM100", "type": "qemu", "children": [
        {"id": "scsi0", "name": "local-lvm:vm-100-disk-0", "included": 1, "reason": "enabled"},
        {"id": "scsi1", "name": "local-lvm:vm-100-disk-1", "included": 0, "reason": "disabled"},
    ]}]}
    api.cluster.backup("nightly").put(all=1, enabled=0, delete="compress")
    job = api.cluster.backup("nightly").get()
    assert (job["all"], job["enabled"], "vmid" in job, "compress" in job) == (1, 0, False, False)
    with pytest.raises(ResourceException) as raised:
        api.cluster.backup.post(id="bad", schedule="daily", storage="local-lvm", all=1)
    assert raised.value.content == "storage 'local-lvm' does not support backups"
    with pytest.raises(ResourceException) as raised:
        api.cluster.backup.post(id="both", schedule="daily", storage="nas", all=1, vmid="100")
    assert raised.value.status_code == 400 and raised.value.errors == {"all": "option conflicts with option 'vmid'"}
    with pytest.raises(ResourceException) as raised:
        api.cluster.backup.post(id="nightly", schedule="daily", storage="nas", all=1)
    assert raised.value.content == "Job 'nightly' already exists"
    api.cluster.backup("nightly").delete()
    assert api.cluster.backup.get() == []
    with pytest.raises(ResourceException) as raised:
        api.cluster.backup("nightly").get()
    assert raised.value.content == "Job 'nightly' does not exist"


def test_backup_job_reads_decode_property_strings(pve_sim):
    """pve-manager PVE/Jobs/VZDump.pm decode_value: prune-backups, fleecing and performance are
    property strings on POST/PUT and objects in GET /cluster/backup and GET /cluster/backup/{id}."""
    api = pve_sim.api()
    api.cluster.backup.post(id="tuned", schedule="sun 01:00", storage="nas", all=1,
                            **{"prune-backups": "keep-last=3,keep-weekly=4", "fleecing": "1,storage=local-lvm",
                               "performance": "max-workers=8"})
    decoded = {"prune-backups": {"keep-last": 3, "keep-weekly": 4}, "fleecing": {"enabled": 1, "storage": "local-lvm"},
               "performance": {"max-workers": 8}}
    job = api.cluster.backup("tuned").get()
    listed = api.cluster.backup.get()[0]
    for key, value in decoded.items():
        assert job[key] == value and listed[key] == value, key
    api.cluster.backup("tuned").put(**{"prune-backups": "keep-all=1"})
    assert api.cluster.backup("tuned").get()["prune-backups"] == {"keep-all": 1}


def test_backup_job_from_legacy_starttime(pve8_sim):
    api = pve8_sim.api()
    api.cluster.backup.post(id="weekly", starttime="03:15", dow="sat,sun", storage="nas", all=1)
    assert api.cluster.backup("weekly").get()["schedule"] == "sat,sun 03:15"


def test_pci_mapping_crud_and_checks(pve_sim):
    api = pve_sim.api()
    api.cluster.mapping.pci.post(id="rtx3090", map=GPU_MAP, description="RTX 3090 for JupyterHub")
    mapping = api.cluster.mapping.pci("rtx3090").get()
    assert mapping["map"] == GPU_MAP and mapping["description"] == "RTX 3090 for JupyterHub"
    with pytest.raises(ResourceException) as raised:
        api.cluster.mapping.pci.post(id="rtx3090", map=GPU_MAP)
    assert raised.value.content == "pci ID 'rtx3090' already defined"
    listed = api.cluster.mapping.pci.get(**{"check-node": "pve-1"})
    assert listed[0]["id"] == "rtx3090" and listed[0]["checks"] == []
    api.cluster.mapping.pci("rtx3090").put(map=GPU_MAP[:1] + ["node=pve-2,path=0000:02:00,id=10de:2204"],
                                           delete="description")
    assert "description" not in api.cluster.mapping.pci("rtx3090").get()
    checks = api.cluster.mapping.pci.get(**{"check-node": "pve-2"})[0]["checks"]
    assert checks == [{"severity": "error", "message": "PCI device '0000:02:00' does not exist."}]
    with pytest.raises(ResourceException) as raised:
        api.cluster.mapping.pci.post(id="broken", map=["node=pve-1,path=not-a-path,id=10de:2204"])
    assert raised.value.status_code == 400 and list(raised.value.errors) == ["map[0]"]
    api.cluster.mapping.pci("rtx3090").delete()
    assert api.cluster.mapping.pci.get() == []


def test_mapped_gpu_follows_the_vm(pve9_sim, wait):
    api = pve9_sim.api()
    api.cluster.mapping.pci.post(id="rtx3090", map=GPU_MAP[:1])
    wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="nas:8", hostpci0="mapping=rtx3090,pcie=1"))
    assert wait(api, api.nodes("pve-1").qemu(100).status.start.post())["exitstatus"] == "OK"
    wait(api, api.nodes("pve-1").qemu(100).status.stop.post())
    status = wait(api, api.nodes("pve-1").qemu(100).migrate.post(target="pve-2"))
    assert status["exitstatus"] == "migration aborted"
    api.cluster.mapping.pci("rtx3090").put(map=GPU_MAP)
    assert wait(api, api.nodes("pve-1").qemu(100).migrate.post(target="pve-2"))["exitstatus"] == "OK"
    assert [d["id"] for d in api.nodes("pve-2").hardware.pci.get()] == ["0000:01:00.0", "0000:01:00.1"]


def test_a_host_without_iommu_reports_group_minus_one(tmp_path):
    """pve-common PVE/SysFSTools.pm lspci: iommugroup -1 without /sys/bus/pci/devices/<id>/iommu_group (IOMMU off);
    pve-manager PVE/Mapping/PCI.pm assert_valid then refuses a mapping with the real group."""
    with SimulatorProcess(pve=9, seed=without_iommu(empty_seed(), "pve-2"), state_dir=tmp_path) as sim:
        api = sim.api()
        groups = {node: [d["iommugroup"] for d in api.nodes(node).hardware.pci.get() if d["id"].startswith("0000:01:00")]
                  for node in ("pve-1", "pve-2")}
        assert groups == {"pve-1": [14, 14], "pve-2": [-1, -1]}
        api.cluster.mapping.pci.post(id="rtx3090", map=GPU_MAP)  # PVE does not check devices on write
        assert api.cluster.mapping.pci.get(**{"check-node": "pve-1"})[0]["checks"] == []
        assert api.cluster.mapping.pci.get(**{"check-node": "pve-2"})[0]["checks"] == [
            {"severity": "error", "message": "Invalid configuration: 'iommugroup' does not match for 'rtx3090' (-1 != 14)"}]
    assert load_seed("fresh")["cluster"]["name"] is None
    assert [n.get("iommu") for n in load_seed("fresh")["nodes"]] == [False, False]


@pytest.mark.parametrize("schedule", ["every sunday", "sun 25:00", "mon..fri 22:30:00:00"])
def test_backup_job_schedule_must_be_a_calendar_event(pve_sim, schedule):
    """pve-common PVE/JSONSchema.pm format pve-calendar-event (proxmox-time's parser) on POST and PUT."""
    api = pve_sim.api()
    with pytest.raises(ResourceException) as raised:
        api.cluster.backup.post(id="bad-schedule", schedule=schedule, storage="nas", all=1)
    assert raised.value.status_code == 400
    assert raised.value.errors["schedule"].startswith(f"invalid format - invalid calendar event '{schedule}'")
    api.cluster.backup.post(id="good-schedule", schedule="sun 01:00", storage="nas", all=1)
    with pytest.raises(ResourceException) as raised:
        api.cluster.backup("good-schedule").put(schedule=schedule)
    assert raised.value.status_code == 400 and "schedule" in raised.value.errors
