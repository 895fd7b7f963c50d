"""ailab.cluster.proxmox_migrate against the PVE API simulator (PVE 8 and 9), real proxmoxer."""

import pytest

from ansible_collections.ailab.cluster.plugins.modules import proxmox_migrate

CT_TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
# A complete mapping entry (the IDs and IOMMU group of the seed's RTX 3090): a VM start checks them all.
GPU_ENTRY = "node=%s,path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454"


def make_vm(sim, vmid=103, name="maria-gpu", node="pve-1", disk="nas:32", running=True, **config):
    api = sim.api(auth="password")  # root@pam itself: raw hostpciN is root-only (no API token may set it)
    api.nodes(node).qemu.post(vmid=vmid, name=name, memory=8192, cores=4, scsi0=disk, net0="virtio,bridge=vmbr0",
                              **config)
    sim.wait_tasks()
    if running:
        api.nodes(node).qemu(vmid).status.start.post()
        sim.wait_tasks()


def make_ct(sim, vmid=104, name="ubuntu", node="pve-1", running=True):
    api = sim.api()
    api.nodes(node).lxc.post(vmid=vmid, hostname=name, ostemplate=CT_TEMPLATE, rootfs="nas:8",
                             net0="name=eth0,bridge=vmbr0,ip=dhcp")
    sim.wait_tasks()
    if running:
        api.nodes(node).lxc(vmid).status.start.post()
        sim.wait_tasks()


def where(sim, vmid):
    entry = [g for g in sim.api().cluster.resources.get(type="vm") if g["vmid"] == vmid][0]
    return entry["node"], entry["status"]


def writes(sim):
    return [(w["method"], w["path"], w["params"]) for w in sim.writes()]


def test_live_migration_returns_duration_and_downtime(pve_sim, run_module):
    make_vm(pve_sim)
    pve_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve_sim.module_params(), name="maria-gpu", target="pve-2"), diff=True)
    assert not result.get("failed"), result
    assert result["changed"] and result["mode"] == "online" and result["ha"] is False
    assert (result["source_node"], result["node"]) == ("pve-1", "pve-2")
    assert writes(pve_sim) == [("POST", "/nodes/pve-1/qemu/103/migrate", {"target": "pve-2", "online": "1"})]
    assert 45 <= result["downtime_ms"] <= 55
    assert result["duration"] == 1.0  # "migration finished successfully (duration 00:00:01)"
    assert 0 < result["elapsed"] < 30
    assert result["upid"].startswith("UPID:pve-1:") and ":qmigrate:103:" in result["upid"]
    assert result["diff"] == {"before": {"node": "pve-1"}, "after": {"node": "pve-2"}}
    assert where(pve_sim, 103) == ("pve-2", "running")


def test_already_on_the_target_is_a_no_op(pve_sim, run_module):
    make_vm(pve_sim, node="pve-2")
    pve_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve_sim.module_params(), vmid=103, target="pve-2"))
    assert result["changed"] is False and result["mode"] == "none" and result["node"] == "pve-2"
    assert pve_sim.writes() == []


def test_check_mode_validates_and_writes_nothing(pve_sim, run_module):
    make_vm(pve_sim)
    pve_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve_sim.module_params(), vmid=103, target="pve-2"), check_mode=True)
    assert result["changed"] and result["mode"] == "online" and result["node"] == "pve-1"
    assert pve_sim.writes() == []
    assert where(pve_sim, 103)[0] == "pve-1"


def test_stopped_vm_migrates_offline(pve9_sim, run_module):
    make_vm(pve9_sim, running=False, disk="local-lvm:8")
    pve9_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    assert result["mode"] == "offline" and result["downtime_ms"] is None
    assert writes(pve9_sim) == [("POST", "/nodes/pve-1/qemu/103/migrate", {"target": "pve-2"})]
    assert where(pve9_sim, 103) == ("pve-2", "stopped")


def test_container_restart_migration(pve_sim, run_module):
    make_ct(pve_sim)
    pve_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve_sim.module_params(), vmid=104, target="pve-2", shutdown_timeout=60))
    assert not result.get("failed"), result
    assert result["mode"] == "restart" and result["type"] == "lxc"
    assert writes(pve_sim) == [("POST", "/nodes/pve-1/lxc/104/migrate",
                                {"target": "pve-2", "restart": "1", "timeout": "60"})]
    assert where(pve_sim, 104) == ("pve-2", "running")


def test_running_container_without_restart_is_refused(pve9_sim, run_module):
    make_ct(pve9_sim)
    pve9_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=104, target="pve-2", restart=False))
    assert result["failed"] and "containers cannot migrate live: set restart: true" in result["msg"]
    assert pve9_sim.writes() == []


def test_running_vm_with_online_false_is_refused(pve9_sim, run_module):
    make_vm(pve9_sim)
    pve9_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2", online=False))
    assert result["failed"] and "online is false" in result["msg"]
    assert pve9_sim.writes() == []


def test_local_disks_need_with_local_disks(pve_sim, run_module):
    make_vm(pve_sim, disk="local-lvm:8")
    pve_sim.clear_log()
    refused = run_module(proxmox_migrate, dict(pve_sim.module_params(), vmid=103, target="pve-2"))
    assert refused["failed"]
    assert "disks on local storage (local-lvm:vm-103-disk-0): set with_local_disks: true" in refused["msg"]
    assert pve_sim.writes() == []
    result = run_module(proxmox_migrate, dict(pve_sim.module_params(), vmid=103, target="pve-2",
                                              with_local_disks=True, targetstorage="local-lvm", bwlimit=512000))
    assert not result.get("failed"), result
    assert writes(pve_sim) == [("POST", "/nodes/pve-1/qemu/103/migrate",
                                {"target": "pve-2", "bwlimit": "512000", "online": "1", "with-local-disks": "1",
                                 "targetstorage": "local-lvm"})]
    assert where(pve_sim, 103) == ("pve-2", "running")


def test_ha_managed_guest_moves_through_the_ha_manager(pve_sim, run_module):
    make_vm(pve_sim)
    pve_sim.api().cluster.ha.resources.post(sid="vm:103", state="started")
    pve_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve_sim.module_params(), vmid=103, target="pve-2"))
    assert not result.get("failed"), result
    assert result["ha"] is True and result["mode"] == "ha"
    assert result["upid"].startswith("UPID:pve-1:") and ":qmigrate:103:root@pam:" in result["upid"]
    assert 45 <= result["downtime_ms"] <= 55 and result["duration"] == 1.0
    assert writes(pve_sim) == [("POST", "/cluster/ha/resources/vm:103/migrate", {"node": "pve-2"})]
    assert where(pve_sim, 103) == ("pve-2", "running")
    assert result["comigrated"] == []


def test_ha_positive_affinity_comigrates_on_pve9(pve9_sim, run_module):
    make_vm(pve9_sim)
    make_vm(pve9_sim, vmid=105, name="partner")
    api = pve9_sim.api()
    for sid in ("vm:103", "vm:105"):
        api.cluster.ha.resources.post(sid=sid)
    api.cluster.ha.rules.post(rule="together", type="resource-affinity", affinity="positive", resources="vm:103,vm:105")
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    assert not result.get("failed"), result
    assert result["comigrated"] == ["vm:105"]
    assert where(pve9_sim, 105)[0] == "pve-2"


def test_ha_negative_affinity_blocks_on_pve9(pve9_sim, run_module):
    make_vm(pve9_sim)
    make_vm(pve9_sim, vmid=105, name="rival", node="pve-2")
    api = pve9_sim.api()
    for sid in ("vm:103", "vm:105"):
        api.cluster.ha.resources.post(sid=sid)
    api.cluster.ha.rules.post(rule="apart", type="resource-affinity", affinity="negative", resources="vm:103,vm:105")
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    assert result["failed"]
    assert "will not move VM 103 (maria-gpu) to pve-2: blocked by vm:105 (resource-affinity)" in result["msg"]
    assert where(pve9_sim, 103)[0] == "pve-1"


def test_offline_target_is_refused_before_any_write(pve_sim, run_module):
    make_vm(pve_sim)
    pve_sim.node_down("pve-2")
    pve_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve_sim.module_params(), vmid=103, target="pve-2"))
    assert result["failed"]
    assert "Cannot migrate VM 103 (maria-gpu) to pve-2: node pve-2 is offline" in result["msg"]
    assert pve_sim.writes() == []


def test_unknown_target_and_missing_guest(pve9_sim, run_module):
    make_vm(pve9_sim)
    pve9_sim.clear_log()
    unknown = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-9"))
    assert unknown["failed"] and "node pve-9 is not in the cluster (nodes: pve-1, pve-2)" in unknown["msg"]
    missing = run_module(proxmox_migrate, dict(pve9_sim.module_params(), name="nope", target="pve-2"))
    assert missing["failed"] and "guest nope does not exist" in missing["msg"]
    wrong_type = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, type="lxc", target="pve-2"))
    assert wrong_type["failed"] and "VMID 103 is a VM, not a CT" in wrong_type["msg"]
    assert pve9_sim.writes() == []


def test_source_node_offline(pve9_sim, run_module):
    make_vm(pve9_sim)
    pve9_sim.node_down("pve-1")
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    assert result["failed"] and "its node pve-1 is offline" in result["msg"]


def test_locked_guest_is_refused(pve9_sim, run_module):
    make_vm(pve9_sim)
    pve9_sim.api(auth="password").nodes("pve-1").qemu(103).config.put(lock="backup")  # lock: root@pam only
    pve9_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    assert result["failed"] and "is locked (backup): wait" in result["msg"]
    assert pve9_sim.writes() == []


def test_task_failure_reports_the_log(pve_sim, run_module):
    make_vm(pve_sim)
    pve_sim.fault("task_fail", task_type="qmigrate", message="migration aborted", count=1)
    result = run_module(proxmox_migrate, dict(pve_sim.module_params(), vmid=103, target="pve-2"))
    assert result["failed"]
    assert "migrating VM 103 (maria-gpu) from pve-1 to pve-2 failed: migration aborted" in result["msg"]
    assert where(pve_sim, 103)[0] == "pve-1"


def test_local_pci_device_blocks_migration(pve9_sim, run_module):
    make_vm(pve9_sim, running=False, hostpci0="0000:01:00,pcie=1")
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    assert result["failed"] and "uses local devices (hostpci0)" in result["msg"] and "PCI resource mapping" in result["msg"]


def test_mapped_gpu_migrates_only_when_stopped_unless_live_capable(pve9_sim, run_module):
    api = pve9_sim.api()
    api.cluster.mapping.pci.post(id="rtx3090", map=[GPU_ENTRY % "pve-1", GPU_ENTRY % "pve-2"])
    make_vm(pve9_sim, hostpci0="mapping=rtx3090,pcie=1", machine="q35")
    pve9_sim.clear_log()
    running = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    assert running["failed"] and "mapped devices hostpci0 that cannot live-migrate" in running["msg"]
    assert pve9_sim.writes() == []
    api.nodes("pve-1").qemu(103).status.stop.post()
    pve9_sim.wait_tasks()
    stopped = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    assert not stopped.get("failed"), stopped
    assert where(pve9_sim, 103)[0] == "pve-2"


@pytest.mark.parametrize("extra, message", [
    (dict(timeout=0), "timeout must be at least 1 second"),
    (dict(shutdown_timeout=0), "shutdown_timeout must be at least 1 second"),
    (dict(bwlimit=-1), "bwlimit must be 0"),
])
def test_bad_input_is_rejected_before_any_request(pve9_sim, run_module, extra, message):
    pve9_sim.clear_log()
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2", **extra))
    assert result["failed"] and message in result["msg"]
    assert pve9_sim.requests_log() == []


def test_vmid_or_name_is_required(pve9_sim, run_module):
    result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), target="pve-2"))
    assert result["failed"] and "vmid, name" in result["msg"]


def test_log_figures_parse_the_seed_task_log():
    lines = [{"n": 1, "t": "2024-04-22 00:04:35 average migration speed: 586.3 MiB/s - downtime 49 ms"},
             {"n": 2, "t": "2024-04-22 00:04:38 migration finished successfully (duration 00:00:21)"},
             {"n": 3, "t": "TASK OK"}]
    assert proxmox_migrate.log_figures(lines) == (49, 21.0)
    assert proxmox_migrate.log_figures([{"t": "TASK OK"}]) == (None, None)


def test_online_or_offline_follows_status_current_not_the_lagging_resources(pve9_sim, run_module):
    # pvestatd has not reported the new VM (an hour-long round): /cluster/resources says status unknown
    # and has no name; the module must neither call the node offline nor pick the mode from that entry.
    original = pve9_sim.settings()
    pve9_sim.settings(stats_interval=3600)
    try:
        make_vm(pve9_sim)
        entry = pve9_sim.api().cluster.resources.get(type="vm")[0]
        assert entry["status"] == "unknown" and "name" not in entry
        pve9_sim.clear_log()
        result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), name="maria-gpu", target="pve-2"))
    finally:
        pve9_sim.settings(**original)
    assert not result.get("failed"), result
    assert result["changed"] and result["mode"] == "online"
    assert writes(pve9_sim) == [("POST", "/nodes/pve-1/qemu/103/migrate", {"target": "pve-2", "online": "1"})]
    reads = [r["path"] for r in pve9_sim.requests_log() if r["method"] == "GET"]
    assert "/nodes/pve-1/qemu/103/status/current" in reads and "/nodes/pve-1/qemu/103/config" in reads
    assert pve9_sim.api().nodes("pve-2").qemu(103).status.current.get()["status"] == "running"


def test_a_stale_running_entry_does_not_make_a_stopped_vm_migrate_online(pve9_sim, run_module):
    make_vm(pve9_sim, disk="local-lvm:8")
    assert where(pve9_sim, 103)[1] == "running"  # read fresh (interval 0): what the next round starts from
    original = pve9_sim.settings()
    pve9_sim.settings(stats_interval=3600)
    try:
        assert where(pve9_sim, 103)[1] == "running"  # pvestatd's round saw it running
        pve9_sim.api().nodes("pve-1").qemu(103).status.stop.post()
        pve9_sim.wait_tasks()
        assert where(pve9_sim, 103)[1] == "running"  # and still says so
        pve9_sim.clear_log()
        result = run_module(proxmox_migrate, dict(pve9_sim.module_params(), vmid=103, target="pve-2"))
    finally:
        pve9_sim.settings(**original)
    assert not result.get("failed"), result
    assert result["mode"] == "offline"
    assert writes(pve9_sim) == [("POST", "/nodes/pve-1/qemu/103/migrate", {"target": "pve-2"})]
