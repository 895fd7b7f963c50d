"""Pending changes of running guests (``/pending``, ``current=1``), and secrets in guest configs."""

import pytest
from proxmoxer.core import ResourceException

DEBIAN = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def _running_vm(api, wait, **options):
    upid = api.nodes("pve-1").qemu.post(vmid=100, cores=2, memory=2048, scsi0="local-lvm:8",
                                        net0="virtio,bridge=vmbr0", start=1, **options)
    assert wait(api, upid)["exitstatus"] == "OK"
    return api.nodes("pve-1").qemu(100)


def _pending(vm):
    return {item["key"]: {k: v for k, v in item.items() if k != "key"} for item in vm.pending.get()
            if "pending" in item or "delete" in item}


def test_cold_changes_of_a_running_vm_stay_pending_until_the_next_start(pve9_sim, wait):
    api = pve9_sim.api()
    vm = _running_vm(api, wait)
    vm.config.put(cores=4, memory=4096, machine="q35", bios="ovmf", description="hot", delete="net0")
    # What qemu-server hot-plugs applies at once (description; the NIC: hotplug has network) ...
    current = vm.config.get(current=1)
    assert (current["description"], "net0" in current) == ("hot", False)
    # ... the rest stays pending: /pending lists key, current value and pending value.
    assert _pending(vm) == {"cores": {"value": 2, "pending": 4}, "memory": {"value": "2048", "pending": "4096"},
                            "machine": {"pending": "q35"}, "bios": {"pending": "ovmf"}}
    assert (current["cores"], current["memory"], "machine" in current) == (2, "2048", False)
    # GET config returns the pending values (PVE's default; current=1 gives the running values).
    config = vm.config.get()
    assert (config["cores"], config["memory"], config["machine"], config["bios"]) == (4, "4096", "q35", "ovmf")
    assert config["digest"] == current["digest"]
    # Shutdown keeps them pending; the next start applies them.
    assert wait(api, vm.status.shutdown.post())["exitstatus"] == "OK"
    assert _pending(vm)["cores"] == {"value": 2, "pending": 4}
    assert wait(api, vm.status.start.post())["exitstatus"] == "OK"
    assert _pending(vm) == {}
    assert vm.config.get(current=1)["cores"] == 4


def test_reboot_applies_pending_changes_and_revert_drops_them(pve_sim, wait):
    api = pve_sim.api(auth="password")  # root@pam itself: a raw hostpciN is root-only
    vm = _running_vm(api, wait)
    vm.config.put(sockets=2, hostpci0="0000:01:00,pcie=1", machine="q35")
    assert set(_pending(vm)) == {"sockets", "hostpci0", "machine"}
    vm.config.put(revert="hostpci0")
    assert set(_pending(vm)) == {"sockets", "machine"}
    with pytest.raises(ResourceException) as raised:
        vm.config.put(cores=3, revert="cores")
    assert raised.value.status_code == 400 and "revert" in raised.value.errors
    assert wait(api, vm.status.reboot.post())["exitstatus"] == "OK"
    current = vm.config.get(current=1)
    assert (current["sockets"], current["machine"], "hostpci0" in current) == (2, "q35", False)
    assert _pending(vm) == {}


def test_hotplug_option_decides_what_applies_to_a_running_vm(pve9_sim, wait):
    api = pve9_sim.api()
    vm = _running_vm(api, wait, hotplug="network,disk,cpu,memory", numa=1)
    vm.config.put(vcpus=2, memory=4096, scsi1="local-lvm:4", ide3="local-lvm:4")
    assert set(_pending(vm)) == {"ide3"}  # IDE and SATA drives cannot be hot-plugged
    current = vm.config.get(current=1)
    assert (current["vcpus"], current["memory"], current["scsi1"]) == (2, "4096", "local-lvm:vm-100-disk-1,size=4G")
    vm.config.put(hotplug="disk")  # turning memory hotplug off needs a restart
    assert set(_pending(vm)) == {"hotplug", "ide3"}


def test_without_network_hotplug_a_new_nic_model_waits(pve9_sim, wait):
    api = pve9_sim.api()
    vm = _running_vm(api, wait, hotplug="disk", scsi1="local-lvm:4")
    mac = vm.config.get()["net0"].split(",")[0].split("=")[1]
    vm.config.put(net0=f"virtio={mac},bridge=vmbr0,tag=20", delete="scsi1")
    assert _pending(vm) == {}  # same model and MAC: the bridge settings change live; the disk unplugs
    current = vm.config.get(current=1)
    assert current["net0"].endswith("tag=20") and current["unused0"] == "local-lvm:vm-100-disk-1"
    vm.config.put(net0="e1000,bridge=vmbr0")
    assert set(_pending(vm)) == {"net0"}


def test_a_pending_delete_is_reported_and_applied_at_start(pve9_sim, wait):
    api = pve9_sim.api()
    vm = _running_vm(api, wait, agent="1", balloon=1024)
    vm.config.put(delete="agent,balloon")
    assert _pending(vm) == {"agent": {"value": "1", "delete": 1}}  # balloon changes at once
    assert "agent" not in vm.config.get()
    assert vm.config.get(current=1)["agent"] == "1"
    wait(api, vm.status.stop.post())
    wait(api, vm.status.start.post())
    assert "agent" not in vm.config.get(current=1)


def test_stopped_guest_applies_earlier_pending_changes_with_the_next_edit(pve8_sim, wait):
    api = pve8_sim.api()
    vm = _running_vm(api, wait)
    vm.config.put(cores=8)
    wait(api, vm.status.stop.post())
    vm.config.put(description="stopped")  # a change on a stopped VM applies all pending changes
    assert _pending(vm) == {} and vm.config.get(current=1)["cores"] == 8


def test_container_pending_changes(pve9_sim, wait):
    api = pve9_sim.api()
    upid = api.nodes("pve-1").lxc.post(vmid=200, ostemplate=DEBIAN, rootfs="local-lvm:4", password="ct-secret-1",
                                       memory=512, start=1)
    assert wait(api, upid)["exitstatus"] == "OK"
    ct = api.nodes("pve-1").lxc(200)
    ct.config.put(cores=2, memory=1024, hostname="web", nameserver="192.168.10.1", mp0="local-lvm:2,mp=/srv")
    assert _pending(ct) == {"nameserver": {"pending": "192.168.10.1"}}
    current = ct.config.get(current=1)
    assert (current["cores"], current["memory"], current["hostname"]) == (2, 1024, "web")
    assert current["mp0"].startswith("local-lvm:vm-200-disk-1")
    assert ct.config.get()["nameserver"] == "192.168.10.1"
    assert all("password" not in item["key"] for item in ct.pending.get())
    assert "password" not in ct.config.get() and "ct-secret-1" not in str(pve9_sim.state())
    wait(api, ct.status.reboot.post())
    assert _pending(ct) == {}


def test_cipassword_is_never_returned(pve_sim, wait):
    api = pve_sim.api()
    wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1", ide2="local-lvm:cloudinit",
                                           cipassword="hunter22", ciuser="ubuntu"))
    vm = api.nodes("pve-1").qemu(100)
    assert vm.config.get()["cipassword"] == "**********"
    assert vm.config.get(current=1)["cipassword"] == "**********"
    assert {i["key"]: i.get("value") for i in vm.pending.get()}["cipassword"] == "**********"
    # stored hashed like PVE does: not even the control API's state dump has the plain text
    stored = pve_sim.state()["guests"]["100"]["config"]["cipassword"]
    assert stored.startswith("$5$") and "hunter22" not in str(pve_sim.state())
    wait(api, vm.status.start.post())
    vm.config.put(cipassword="hunter23")  # cloud-init options change at once, also while running
    assert vm.config.get()["cipassword"] == "**********"
    assert pve_sim.state()["guests"]["100"]["config"]["cipassword"] != stored
