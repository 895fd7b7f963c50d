"""QEMU VMs and LXC containers: create, config, power, migrate, clone, resize, template, delete."""

import re
import time

import pytest
from proxmoxer.core import ResourceException

UPID = re.compile(r"^UPID:pve-[12]:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:(\w+):(\d+):root@pam!ansible:$")
DEBIAN = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def _create_vm(api, wait, vmid=100, node="pve-1", **options):
    options.setdefault("scsi0", "local-lvm:32")
    options.setdefault("net0", "virtio,bridge=vmbr0")
    upid = api.nodes(node).qemu.post(vmid=vmid, **options)
    return upid, wait(api, upid)


def test_create_vm_returns_upid_and_task_finishes_ok(pve9_sim, wait):
    api = pve9_sim.api()
    # The task must still run when it is looked at: hold it 2 s instead of the usual 0.05 s, far
    # longer than the two reads below take even on a loaded machine.
    pve9_sim.fault("slow_tasks", task_type="qmcreate", delay=2.0)
    upid = api.nodes("pve-1").qemu.post(vmid=100, name="gpu-1", memory=8192, cores=4, agent="enabled=1",
                                        scsi0="local-lvm:32,iothread=1", net0="virtio,bridge=vmbr0",
                                        ipconfig0="ip=dhcp", ide2="nas:cloudinit")
    assert UPID.match(upid).groups() == ("qmcreate", "100")
    running = api.nodes("pve-1").tasks(upid).status.get()
    assert running["status"] == "running"
    assert api.nodes("pve-1").qemu(100).status.current.get()["lock"] == "create"
    status = wait(api, upid)
    assert (status["status"], status["exitstatus"], status["type"]) == ("stopped", "OK", "qmcreate")
    assert api.nodes("pve-1").tasks(upid).log.get() == [{"n": 1, "t": "TASK OK"}]
    config = api.nodes("pve-1").qemu(100).config.get()
    assert config["scsi0"] == "local-lvm:vm-100-disk-0,size=32G,iothread=1"
    assert re.fullmatch(r"virtio=BC:24:11(:[0-9A-F]{2}){3},bridge=vmbr0", config["net0"])
    assert config["ide2"] == "nas:100/vm-100-cloudinit.qcow2,media=cdrom"
    assert config["boot"] == "order=scsi0;net0"
    assert (config["cores"], config["memory"], config["name"]) == (4, "8192", "gpu-1")
    assert "lock" not in config
    volumes = [v["volid"] for v in api.nodes("pve-1").storage("local-lvm").content.get()]
    assert volumes == ["local-lvm:vm-100-disk-0"]
    assert api.cluster.nextid.get() == "101"


def test_duplicate_vmid_is_a_semantic_500(pve9_sim, wait):
    api = pve9_sim.api()
    _create_vm(api, wait)
    for node in ("pve-1", "pve-2"):
        with pytest.raises(ResourceException) as raised:
            api.nodes(node).qemu.post(vmid=100)
        assert (raised.value.status_code, raised.value.content) == (500, "VM 100 already exists on node 'pve-1'")
    with pytest.raises(ResourceException) as raised:
        api.cluster.nextid.get(vmid=100)
    assert raised.value.status_code == 400 and raised.value.errors == {"vmid": "VM 100 already exists"}


def test_create_checks_storage_semantics(pve9_sim):
    api = pve9_sim.api()
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu.post(vmid=100, scsi0="local:8")
    assert raised.value.content == "storage 'local' does not support vm images"
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu.post(vmid=100, scsi0="missing:8")
    assert raised.value.content == "storage 'missing' does not exist"
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu.post(vmid=100, ide2="local:iso/missing.iso,media=cdrom")
    assert raised.value.content == "volume 'local:iso/missing.iso' does not exist"
    assert api.cluster.resources.get(type="vm") == []


def test_config_get_put_post_and_digest(pve9_sim, wait):
    api = pve9_sim.api()
    _create_vm(api, wait)
    vm = api.nodes("pve-1").qemu(100)
    before = vm.config.get()
    assert vm.config.put(cores=8, description="lab vm", digest=before["digest"]) is None
    config = vm.config.get()
    assert (config["cores"], config["description"]) == (8, "lab vm")
    with pytest.raises(ResourceException) as raised:
        vm.config.put(cores=2, digest=before["digest"])
    assert "detected modified configuration" in raised.value.content
    pve9_sim.fault("slow_tasks", task_type="qmconfig", delay=0.3)
    upid = vm.config.post(memory=2048, delete="description")
    assert UPID.match(upid).group(1) == "qmconfig"
    assert vm.config.get()["description"] == "lab vm"  # the asynchronous change lands when the task ends
    wait(api, upid)
    config = vm.config.get()
    assert config["memory"] == "2048" and "description" not in config
    vm.config.put(scsi1="local-lvm:4")
    vm.config.put(delete="scsi1")
    assert vm.config.get()["unused0"] == "local-lvm:vm-100-disk-1"
    vm.config.put(delete="unused0")
    assert "unused0" not in vm.config.get()
    with pytest.raises(ResourceException) as raised:
        vm.config.put(hostpci0="mapping=nope")
    assert raised.value.content == "PCI mapping 'nope' does not exist"


def test_power_cycle_and_guest_agent(pve9_sim, wait):
    api = pve9_sim.api()
    _create_vm(api, wait, agent="1", ipconfig0="ip=10.10.0.5/24,gw=10.10.0.1")
    vm = api.nodes("pve-1").qemu(100)
    with pytest.raises(ResourceException) as raised:
        vm.agent("network-get-interfaces").get()
    assert raised.value.content == "VM 100 is not running"
    assert wait(api, vm.status.start.post())["exitstatus"] == "OK"
    current = vm.status.current.get()
    assert (current["status"], current["qmpstatus"], current["agent"]) == ("running", "running", 1)
    interfaces = vm.agent("network-get-interfaces").get()["result"]
    assert interfaces[1]["ip-addresses"][0] == {"ip-address": "10.10.0.5", "ip-address-type": "ipv4", "prefix": 24}
    assert wait(api, vm.status.start.post())["exitstatus"] == "VM 100 already running"
    with pytest.raises(ResourceException) as raised:
        vm.delete()
    assert raised.value.content == "VM 100 is running - destroy failed"
    assert wait(api, vm.status.shutdown.post())["exitstatus"] == "OK"
    assert wait(api, vm.status.shutdown.post())["exitstatus"] == "VM 100 not running"
    assert wait(api, vm.status.stop.post())["exitstatus"] == "OK"
    vm.config.put(net1="virtio,bridge=vmbr9")
    assert wait(api, vm.status.start.post())["exitstatus"] == "bridge 'vmbr9' does not exist"


def test_agent_delay_can_be_shorter_than_a_second(pve9_sim, wait):
    api = pve9_sim.api()
    pve9_sim.settings(agent_delay=0.3)
    _create_vm(api, wait, agent="1", start=1)
    vm = api.nodes("pve-1").qemu(100)
    with pytest.raises(ResourceException) as raised:
        vm.agent.ping.post()
    assert raised.value.content == "QEMU guest agent is not running"
    time.sleep(0.35)
    assert vm.agent.ping.post() == {"result": {}}


def test_migrate_changes_node_and_logs_downtime(pve9_sim, wait):
    api = pve9_sim.api()
    _create_vm(api, wait, scsi0="nas:16", start=1)
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu(100).migrate.post(target="pve-2")
    assert raised.value.content == "can't migrate running VM without --online"
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu(100).migrate.post(target="pve-1", online=1)
    assert raised.value.status_code == 400 and raised.value.errors == {"target": "target is local node."}
    upid = api.nodes("pve-1").qemu(100).migrate.post(target="pve-2", online=1)
    assert UPID.match(upid).group(1) == "qmigrate"
    assert wait(api, upid)["exitstatus"] == "OK"
    log = [line["t"] for line in api.nodes("pve-1").tasks(upid).log.get()]
    assert any(re.search(r"downtime (4\d|5\d) ms$", line) for line in log)
    assert log[-2].endswith("migration finished successfully (duration 00:00:01)")
    assert [(r["vmid"], r["node"], r["status"]) for r in api.cluster.resources.get(type="vm")] == [
        (100, "pve-2", "running")]
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu(100).config.get()
    assert raised.value.content == "Configuration file 'nodes/pve-1/qemu-server/100.conf' does not exist"
    assert api.nodes("pve-2").qemu(100).config.get()["scsi0"].startswith("nas:100/vm-100-disk-0.qcow2")


def test_live_migration_of_local_disks_needs_with_local_disks(pve9_sim, wait):
    api = pve9_sim.api()
    _create_vm(api, wait, start=1)
    status = wait(api, api.nodes("pve-1").qemu(100).migrate.post(target="pve-2", online=1))
    assert status["exitstatus"] == "migration aborted"
    assert api.nodes("pve-1").qemu(100).status.current.get()["status"] == "running"
    status = wait(api, api.nodes("pve-1").qemu(100).migrate.post(target="pve-2", online=1, **{"with-local-disks": 1}))
    assert status["exitstatus"] == "OK"
    assert [v["volid"] for v in api.nodes("pve-2").storage("local-lvm").content.get()] == ["local-lvm:vm-100-disk-0"]
    assert api.nodes("pve-1").storage("local-lvm").content.get() == []


def test_template_clone_resize_and_delete(pve9_sim, wait):
    api = pve9_sim.api()
    _create_vm(api, wait, scsi0="nas:10", node="pve-2")
    source = api.nodes("pve-2").qemu(100)
    assert wait(api, source.template.post())["exitstatus"] == "OK"
    assert source.config.get()["scsi0"] == "nas:100/base-100-disk-0.qcow2,size=10G"
    with pytest.raises(ResourceException) as raised:
        source.status.start.post()
    assert raised.value.content == "you can't start a vm if it's a template"
    upid = source.clone.post(newid=101, name="worker-1", target="pve-1")
    assert UPID.match(upid).groups() == ("qmclone", "100")
    assert wait(api, upid)["exitstatus"] == "OK"
    clone = api.nodes("pve-1").qemu(101)
    config = clone.config.get()
    assert config["name"] == "worker-1" and config["scsi0"] == "nas:101/vm-101-disk-0.qcow2,size=10G"
    assert config["net0"] != source.config.get()["net0"]
    assert wait(api, clone.resize.put(disk="scsi0", size="+6G"))["exitstatus"] == "OK"
    assert clone.config.get()["scsi0"] == "nas:101/vm-101-disk-0.qcow2,size=16G"
    with pytest.raises(ResourceException) as raised:
        clone.resize.put(disk="scsi0", size="8G")
    assert raised.value.content == "shrinking disks is not supported"
    clone.config.put(protection=1)
    with pytest.raises(ResourceException) as raised:
        clone.delete()
    assert raised.value.content == "can't remove VM 101 - protection mode enabled"
    clone.config.put(protection=0)
    upid = clone.delete()
    assert UPID.match(upid).group(1) == "qmdestroy"
    wait(api, upid)
    assert [r["vmid"] for r in api.cluster.resources.get(type="vm")] == [100]
    assert "nas:101/vm-101-disk-0.qcow2" not in [v["volid"] for v in api.nodes("pve-1").storage("nas").content.get()]


def test_locked_guest_refuses_changes(pve9_sim, wait):
    api = pve9_sim.api()
    pve9_sim.fault("slow_tasks", task_type="qmcreate", delay=0.5)
    upid = api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1")
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu(100).config.put(cores=2)
    assert raised.value.content == "VM 100 is locked (create)"
    wait(api, upid)
    api.nodes("pve-1").qemu(100).config.put(cores=2)


def test_lxc_create_config_and_restart_migration(pve8_sim, wait):
    api = pve8_sim.api()
    ct = api.nodes("pve-1").lxc
    with pytest.raises(ResourceException) as raised:
        ct.post(vmid=200, ostemplate="local:vztmpl/missing.tar.zst")
    assert raised.value.content == "volume 'local:vztmpl/missing.tar.zst' does not exist"
    upid = ct.post(vmid=200, ostemplate=DEBIAN, hostname="ct-1", rootfs="local-lvm:8", memory=1024,
                   net0="name=eth0,bridge=vmbr0,ip=dhcp", password="secret1", start=1)
    assert UPID.match(upid).groups() == ("vzcreate", "200")
    assert wait(api, upid)["exitstatus"] == "OK"
    config = api.nodes("pve-1").lxc(200).config.get()
    assert config["rootfs"] == "local-lvm:vm-200-disk-0,size=8G" and config["ostype"] == "debian"
    assert "password" not in config and "hwaddr=BC:24:11:" in config["net0"]
    assert api.nodes("pve-1").lxc(200).status.current.get()["status"] == "running"
    assert api.nodes("pve-1").lxc(200).interfaces.get()[1]["name"] == "eth0"
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").lxc(200).migrate.post(target="pve-2")
    assert raised.value.content == "CT is running - use online migration or restart mode"
    upid = api.nodes("pve-1").lxc(200).migrate.post(target="pve-2", restart=1)
    assert UPID.match(upid).group(1) == "vzmigrate"
    assert wait(api, upid)["exitstatus"] == "OK"
    moved = api.nodes("pve-2").lxc(200)
    moved.config.put(cores=2, mp0="local-lvm:4,mp=/data")
    assert moved.config.get()["mp0"] == "local-lvm:vm-200-disk-1,size=4G,mp=/data"
    assert wait(api, moved.status.stop.post())["exitstatus"] == "OK"
    assert wait(api, moved.delete())["exitstatus"] == "OK"
    assert api.cluster.resources.get(type="vm") == []
