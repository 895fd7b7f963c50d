"""Migrations to another storage (targetstorage / target-storage) and the migration log's duration."""

import re

import pytest
from proxmoxer.core import ResourceException

DEBIAN = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def _log(api, node, upid):
    return [line["t"] for line in api.nodes(node).tasks(upid).log.get(limit=0)]


def _volumes(api, node, storage):
    return [v["volid"] for v in api.nodes(node).storage(storage).content.get(content="images")]


def test_targetstorage_moves_local_disks_to_the_mapped_storage(pve9_sim, wait):
    api = pve9_sim.api()
    wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:8", scsi1="local-lvm:2", scsi2="nas:1",
                                           ide2="local-lvm:cloudinit", net0="virtio,bridge=vmbr0"))
    vm = api.nodes("pve-1").qemu(100)
    vm.config.put(delete="scsi1")  # a local unused disk moves too
    upid = vm.migrate.post(target="pve-2", targetstorage="local-lvm:nas")
    assert wait(api, upid)["exitstatus"] == "OK"
    config = api.nodes("pve-2").qemu(100).config.get()
    assert config["scsi0"] == "nas:100/vm-100-disk-0.raw,size=8G"
    assert config["unused0"] == "nas:100/vm-100-disk-1.raw"
    assert config["ide2"] == "nas:100/vm-100-cloudinit.raw,media=cdrom"
    assert config["scsi2"].startswith("nas:100/vm-100-disk-0.qcow2")  # shared disks stay where they are
    assert _volumes(api, "pve-1", "local-lvm") == [] and _volumes(api, "pve-2", "local-lvm") == []
    assert set(_volumes(api, "pve-2", "nas")) == {"nas:100/vm-100-disk-0.qcow2", "nas:100/vm-100-disk-0.raw",
                                                  "nas:100/vm-100-disk-1.raw", "nas:100/vm-100-cloudinit.raw"}
    log = _log(api, "pve-1", upid)
    assert any(line.endswith("volume 'local-lvm:vm-100-disk-0' is 'nas:100/vm-100-disk-0.raw' on the target")
               for line in log)


def test_live_storage_migration_logs_the_mirror_and_the_downtime(pve_sim, wait):
    api = pve_sim.api()
    wait(api, api.nodes("pve-1").qemu.post(vmid=101, scsi0="local-lvm:4", net0="virtio,bridge=vmbr0", start=1))
    options = {"target": "pve-2", "online": 1, "targetstorage": "nas", "with-local-disks": 1}
    upid = api.nodes("pve-1").qemu(101).migrate.post(**options)
    assert wait(api, upid)["exitstatus"] == "OK"
    log = _log(api, "pve-1", upid)
    assert "drive-scsi0: transferred 4G of 4G (100.00%), ready" in log
    assert any(re.search(r"downtime \d+ ms$", line) for line in log)
    assert api.nodes("pve-2").qemu(101).config.get()["scsi0"] == "nas:101/vm-101-disk-0.raw,size=4G"
    assert api.nodes("pve-2").qemu(101).status.current.get()["status"] == "running"


def test_container_target_storage(pve8_sim, wait):
    api = pve8_sim.api()
    wait(api, api.nodes("pve-1").lxc.post(vmid=200, ostemplate=DEBIAN, rootfs="local-lvm:4"))
    upid = api.nodes("pve-1").lxc(200).migrate.post(target="pve-2", **{"target-storage": "nas"})
    assert wait(api, upid)["exitstatus"] == "OK"
    assert api.nodes("pve-2").lxc(200).config.get()["rootfs"] == "nas:200/vm-200-disk-0.raw,size=4G"


def test_target_storages_are_checked_by_the_api_call(pve9_sim, wait):
    api = pve9_sim.api()
    api.storage.post(storage="scratch", type="dir", path="/srv/scratch", content="images", nodes="pve-1")
    wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1"))
    vm = api.nodes("pve-1").qemu(100)
    for storages, message in (("missing", "storage 'missing' does not exist"),
                              ("local", "storage 'local' does not support vm images"),
                              ("local-lvm:scratch", "storage 'scratch' is not available on node 'pve-2'")):
        with pytest.raises(ResourceException) as raised:
            vm.migrate.post(target="pve-2", targetstorage=storages)
        assert raised.value.content == message
    assert api.nodes("pve-1").tasks.get(typefilter="qmigrate") == []


def test_migration_log_duration_is_the_real_task_duration(pve9_sim, wait):
    api = pve9_sim.api()
    wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="nas:1"))
    pve9_sim.settings(migrate_duration=1.2)
    upid = api.nodes("pve-1").qemu(100).migrate.post(target="pve-2")
    assert wait(api, upid)["exitstatus"] == "OK"
    log = _log(api, "pve-1", upid)
    assert log[-2].endswith("migration finished successfully (duration 00:00:02)")
    started, finished = (re.match(r"(\S+ \S+)", line).group(1) for line in (log[0], log[-2]))
    assert started <= finished
