"""ailab.cluster.proxmox_guest against the PVE API simulator (PVE 8 and 9), real proxmoxer."""

import re
import threading
from urllib.parse import unquote

import pytest

from ansible_collections.ailab.cluster.plugins.modules import proxmox_guest

CT_TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIlab admin@lab", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB ops@lab"]
# A complete mapping entry (the IDs and IOMMU group of the seed's RTX 3090): a VM start checks them all.
GPU_ENTRY = "node=%s,path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454"


def vm_args(sim, **extra):
    args = dict(sim.module_params(), name="k8s-cp-1", node="pve-1", cores=2, memory=4096,
                disks={"scsi0": {"storage": "local-lvm", "size": "8G", "discard": True, "ssd": True},
                       "ide2": "local-lvm:cloudinit"},
                networks={"net0": {"model": "virtio", "bridge": "vmbr0"}},
                ipconfig={"ipconfig0": {"ip": "192.168.10.21/24", "gw": "192.168.10.1"}},
                nameserver=["192.168.10.1"], searchdomain=["lab.example"], ciuser="ubuntu", cipassword="cloud-pw-1",
                sshkeys=KEYS, tags=["k8s", "control-plane"], onboot=True, agent=True,
                description="Kubernetes control plane")
    args.update(extra)
    return args


def ct_args(sim, **extra):
    args = dict(sim.module_params(), type="lxc", name="nfs-tools", node="pve-2", ostemplate=CT_TEMPLATE,
                unprivileged=True, features={"nesting": True, "keyctl": True}, cores=2, memory=1024, swap=512,
                disks={"rootfs": "local-lvm:4", "mp0": {"storage": "nas", "size": "10G", "mp": "/srv/data"}},
                networks={"net0": {"name": "eth0", "bridge": "vmbr0", "ip": "dhcp"}},
                nameserver=["192.168.10.1"], password="ct-root-pw", ssh_public_keys=KEYS[:1], tags=["infra"])
    args.update(extra)
    return args


def make_template(sim, vmid=9000, node="pve-1", storage="nas"):
    """A cloud-init VM template like the one a lab admin builds from a cloud image."""
    api = sim.api()
    api.nodes(node).qemu.post(vmid=vmid, name="ubuntu-2404-cloud", memory=2048, cores=2,
                              scsi0="%s:10,discard=on" % storage, ide2="%s:cloudinit" % storage,
                              net0="virtio,bridge=vmbr0", agent="1")
    sim.wait_tasks()
    api.nodes(node).qemu(vmid).template.post()
    sim.wait_tasks()


@pytest.fixture
def tune():
    """Change simulator settings for one test; reset() keeps them, so they are restored afterwards."""
    changed = []

    def apply(sim, **values):
        changed.append((sim, sim.settings()))
        sim.settings(**values)

    yield apply
    for sim, original in reversed(changed):
        sim.settings(**original)


def paths(sim):
    return [(w["method"], w["path"]) for w in sim.writes()]


def writes(sim):
    """The simulator's write log without the config ``digest`` the module sends on every update
    (test_update_sends_the_digest_and_retries_once_when_it_is_stale checks it)."""
    return [dict(w, params=dict((k, v) for k, v in w["params"].items() if k != "digest")) for w in sim.writes()]


# ---------------------------------------------------------------------------------- create
def test_creates_a_cloud_init_vm_and_reruns_without_writes(pve_sim, run_module):
    pve_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve_sim))
    assert not result.get("failed"), result
    assert result["changed"] and result["created"]
    assert result["vmid"] == 100 and result["node"] == "pve-1" and result["status"] == "stopped"
    assert paths(pve_sim) == [("POST", "/nodes/pve-1/qemu")]
    # the new config is read once, after the create task; nothing changed it since
    assert [r["path"] for r in pve_sim.reads()].count("/nodes/pve-1/qemu/100/config") == 1
    config = pve_sim.api().nodes("pve-1").qemu(100).config.get()
    assert unquote(config["sshkeys"]).splitlines() == KEYS
    assert "%20" in config["sshkeys"]  # urlencoded with %20, as PVE requires
    assert config["tags"] == "control-plane;k8s"  # as PVE stores them: sorted
    assert config["scsi0"].startswith("local-lvm:vm-100-disk-0,size=8G")
    assert "discard=on" in config["scsi0"]
    assert config["net0"].startswith("virtio=BC:24:11:")
    assert result["config"]["cipassword"] == "**********"
    assert "cloud-pw-1" not in str(result)

    pve_sim.clear_log()
    again = run_module(proxmox_guest, vm_args(pve_sim))
    assert again["changed"] is False, again["changes"]
    assert writes(pve_sim) == []
    assert again["config"]["net0"] == config["net0"]


def test_creates_a_container_and_reruns_without_writes(pve_sim, run_module):
    pve_sim.clear_log()
    result = run_module(proxmox_guest, ct_args(pve_sim, state="started"))
    assert not result.get("failed"), result
    assert result["type"] == "lxc" and result["node"] == "pve-2" and result["status"] == "running"
    assert paths(pve_sim) == [("POST", "/nodes/pve-2/lxc"), ("POST", "/nodes/pve-2/lxc/100/status/start")]
    create = writes(pve_sim)[0]["params"]
    assert create["password"] == "**********" and create["ssh-public-keys"] == KEYS[0]
    assert create["mp0"] == "nas:10,mp=/srv/data"
    config = result["config"]
    assert config["unprivileged"] == 1 and "hwaddr=" in config["net0"] and "type=veth" in config["net0"]
    assert result["ip_addresses"] and not result["ip_addresses"][0].startswith("127.")
    assert "ct-root-pw" not in str(result)

    pve_sim.clear_log()
    again = run_module(proxmox_guest, ct_args(pve_sim, state="started"))
    assert again["changed"] is False, again["changes"]
    assert writes(pve_sim) == []


def test_vmid_comes_from_nextid_and_name_finds_the_guest(pve9_sim, run_module):
    first = run_module(proxmox_guest, vm_args(pve9_sim, name="a"))
    second = run_module(proxmox_guest, vm_args(pve9_sim, name="b", ipconfig=None))
    assert (first["vmid"], second["vmid"]) == (100, 101)
    pve9_sim.clear_log()
    found = run_module(proxmox_guest, dict(pve9_sim.module_params(), name="b", cores=2))
    assert found["vmid"] == 101 and found["changed"] is False and writes(pve9_sim) == []


def test_check_mode_predicts_a_create_without_writes(pve_sim, run_module):
    pve_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve_sim, state="started"), check_mode=True, diff=True)
    assert result["changed"] and result["created"] and result["vmid"] == 100
    assert result["status"] == "running"
    assert writes(pve_sim) == []
    assert result["diff"]["before"] == {"state": "absent"}
    assert result["diff"]["after"]["config"]["cores"] == 2
    assert pve_sim.api().cluster.resources.get(type="vm") == []


def test_check_mode_predicts_an_update_without_writes(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve9_sim, cores=4, disks={"scsi0": {"size": "16G"}}),
                        check_mode=True, diff=True)
    assert result["changed"] and result["changes"] == {"config": {"cores": 4}, "resize": {"scsi0": "16G"}}
    assert result["config"]["cores"] == 4
    assert writes(pve9_sim) == []


# ---------------------------------------------------------------------------------- updates
def test_update_changes_only_what_differs_with_diff(pve_sim, run_module):
    run_module(proxmox_guest, vm_args(pve_sim))
    pve_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve_sim, cores=4, tags=["control-plane", "k8s", "gpu"]), diff=True)
    assert result["changed"]
    assert paths(pve_sim) == [("POST", "/nodes/pve-1/qemu/100/config")]
    assert writes(pve_sim)[0]["params"] == {"cores": "4", "tags": "control-plane;gpu;k8s"}
    assert result["diff"] == {"before": {"cores": 2, "tags": "control-plane;k8s"},
                              "after": {"cores": 4, "tags": "control-plane;gpu;k8s"}}


def test_normalisation_tags_order_sizes_and_property_strings(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.clear_log()
    same = vm_args(pve9_sim, tags=["control-plane", "k8s"], sshkeys=["\n".join(reversed(KEYS))],
                   disks={"scsi0": {"size": "8192M", "discard": "on", "ssd": 1}, "ide2": "local-lvm:cloudinit"},
                   networks={"net0": "virtio,bridge=vmbr0"}, ipconfig={"ipconfig0": "gw=192.168.10.1,ip=192.168.10.21/24"})
    result = run_module(proxmox_guest, same)
    assert result["changed"] is False, result["changes"]
    assert writes(pve9_sim) == []


def test_nic_change_keeps_the_generated_mac(pve_sim, run_module):
    run_module(proxmox_guest, vm_args(pve_sim))
    mac = pve_sim.api().nodes("pve-1").qemu(100).config.get()["net0"].split(",")[0].split("=")[1]
    pve_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve_sim, networks={"net0": {"bridge": "vmbr0", "tag": 20},
                                                                  "net1": {"bridge": "vmbr0", "firewall": True}}))
    assert result["changed"]
    params = writes(pve_sim)[0]["params"]
    assert params["net0"] == "virtio=%s,bridge=vmbr0,tag=20" % mac
    assert params["net1"] == "virtio,bridge=vmbr0,firewall=1"
    pve_sim.clear_log()
    removed = run_module(proxmox_guest, vm_args(pve_sim, networks={"net0": {"bridge": "vmbr0", "tag": 20},
                                                                   "net1": "absent"}))
    assert removed["changed"] and writes(pve_sim)[0]["params"] == {"delete": "net1"}


def test_explicit_mac_is_managed(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.clear_log()
    nets = {"net0": {"bridge": "vmbr0", "macaddr": "02:AA:BB:CC:DD:EE"}}
    result = run_module(proxmox_guest, vm_args(pve9_sim, networks=nets))
    assert result["changed"] and writes(pve9_sim)[0]["params"]["net0"] == "virtio=02:AA:BB:CC:DD:EE,bridge=vmbr0"
    pve9_sim.clear_log()
    assert run_module(proxmox_guest, vm_args(pve9_sim, networks=nets))["changed"] is False
    assert writes(pve9_sim) == []


def test_container_update_keeps_hwaddr_and_uses_put(pve9_sim, run_module):
    run_module(proxmox_guest, ct_args(pve9_sim))
    hwaddr = pve9_sim.api().nodes("pve-2").lxc(100).config.get()["net0"]
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, ct_args(pve9_sim, networks={"net0": {"bridge": "vmbr0", "ip": "192.168.10.30/24",
                                                                            "gw": "192.168.10.1"}}, memory=2048))
    assert result["changed"]
    assert paths(pve9_sim) == [("PUT", "/nodes/pve-2/lxc/100/config")]
    net0 = writes(pve9_sim)[0]["params"]["net0"]
    assert net0.split("hwaddr=")[1].split(",")[0] == hwaddr.split("hwaddr=")[1].split(",")[0]


def test_unprivileged_cannot_change(pve9_sim, run_module):
    run_module(proxmox_guest, ct_args(pve9_sim))
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, ct_args(pve9_sim, unprivileged=False))
    assert result["failed"] and "cannot change after creation" in result["msg"]
    assert writes(pve9_sim) == []


def test_config_extras_compare_and_delete(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim, config={"machine": "q35", "bios": "ovmf", "protection": True}))
    pve9_sim.clear_log()
    assert run_module(proxmox_guest, vm_args(pve9_sim, config={"machine": "q35", "bios": "ovmf",
                                                               "protection": 1}))["changed"] is False
    assert writes(pve9_sim) == []
    result = run_module(proxmox_guest, vm_args(pve9_sim, config={"protection": "absent"}))
    assert result["changed"] and writes(pve9_sim)[0]["params"] == {"delete": "protection"}


# ---------------------------------------------------------------------------------- disks
def test_disk_grows_through_resize(pve_sim, run_module):
    run_module(proxmox_guest, vm_args(pve_sim))
    pve_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve_sim, disks={"scsi0": {"size": "32G"}}), diff=True)
    assert result["changed"] and result["changes"] == {"resize": {"scsi0": "32G"}}
    assert paths(pve_sim) == [("PUT", "/nodes/pve-1/qemu/100/resize")]
    assert writes(pve_sim)[0]["params"] == {"disk": "scsi0", "size": "32G"}
    assert "size=32G" in result["config"]["scsi0"]
    assert result["diff"] == {"before": {"size_scsi0": "8G"}, "after": {"size_scsi0": "32G"}}
    pve_sim.clear_log()
    assert run_module(proxmox_guest, vm_args(pve_sim, disks={"scsi0": {"size": "32768M"}}))["changed"] is False
    assert writes(pve_sim) == []


def test_container_rootfs_grows(pve9_sim, run_module):
    run_module(proxmox_guest, ct_args(pve9_sim))
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, ct_args(pve9_sim, disks={"rootfs": {"size": 8}}))
    assert result["changed"] and paths(pve9_sim) == [("PUT", "/nodes/pve-2/lxc/100/resize")]
    assert writes(pve9_sim)[0]["params"] == {"disk": "rootfs", "size": "8G"}


def test_disk_shrink_is_refused_before_any_write(pve_sim, run_module):
    run_module(proxmox_guest, vm_args(pve_sim))
    pve_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve_sim, cores=8, disks={"scsi0": {"size": "4G"}}))
    assert result["failed"]
    assert "cannot shrink" in result["msg"] and "scsi0" in result["msg"] and "8G or more" in result["msg"]
    assert writes(pve_sim) == []


def test_new_disk_is_added_and_disk_options_compared(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.clear_log()
    disks = {"scsi0": {"size": "8G", "discard": True, "ssd": True, "iothread": True}, "scsi1": "nas:20"}
    result = run_module(proxmox_guest, vm_args(pve9_sim, disks=disks))
    params = writes(pve9_sim)[0]["params"]
    assert params["scsi1"] == "nas:20"
    assert params["scsi0"].startswith("local-lvm:vm-100-disk-0,") and "iothread=1" in params["scsi0"]
    assert "size=" not in params["scsi0"]
    assert result["config"]["scsi1"].startswith("nas:100/vm-100-disk-")
    pve9_sim.clear_log()
    assert run_module(proxmox_guest, vm_args(pve9_sim, disks=disks))["changed"] is False
    assert writes(pve9_sim) == []


def test_disk_on_another_storage_only_warns(pve9_sim, run_module, monkeypatch):
    warnings = []
    monkeypatch.setattr(proxmox_guest.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve9_sim, disks={"scsi0": {"storage": "nas", "size": "8G"}}))
    assert result["changed"] is False and writes(pve9_sim) == []
    assert any("on storage local-lvm, not nas" in w for w in warnings)


# ---------------------------------------------------------------------------------- clones
def test_linked_clone_from_template_then_configured(pve_sim, run_module):
    make_template(pve_sim)
    pve_sim.clear_log()
    args = dict(pve_sim.module_params(), name="k8s-w-1", vmid=211, node="pve-1", clone="ubuntu-2404-cloud",
                full=False, storage="local-lvm", cores=4, memory=8192, disks={"scsi0": {"size": "20G"}},
                networks={"net0": {"bridge": "vmbr0"}}, ipconfig={"ipconfig0": {"ip": "192.168.10.31/24"}},
                cipassword="clone-pw", state="started")
    result = run_module(proxmox_guest, args)
    assert not result.get("failed"), result
    assert result["created"] and result["status"] == "running"
    assert paths(pve_sim) == [("POST", "/nodes/pve-1/qemu/9000/clone"), ("POST", "/nodes/pve-1/qemu/211/config"),
                              ("PUT", "/nodes/pve-1/qemu/211/resize"), ("POST", "/nodes/pve-1/qemu/211/status/start")]
    clone = writes(pve_sim)[0]["params"]
    assert clone == {"newid": "211", "name": "k8s-w-1", "full": "0"}  # storage: only for full clones
    config = writes(pve_sim)[1]["params"]
    assert config["cipassword"] == "**********"  # set on the new clone
    assert "net0" not in config  # the clone's NIC (new MAC) already matches
    assert result["ip_addresses"] == ["192.168.10.31"]

    pve_sim.clear_log()
    again = run_module(proxmox_guest, args)
    assert again["changed"] is False, again["changes"]
    assert writes(pve_sim) == []


def test_full_clone_to_the_other_node_on_another_storage(pve9_sim, run_module):
    make_template(pve9_sim)
    pve9_sim.clear_log()
    args = dict(pve9_sim.module_params(), name="k8s-w-2", node="pve-2", clone="9000", storage="nas")
    result = run_module(proxmox_guest, args)
    assert not result.get("failed"), result
    assert result["node"] == "pve-2" and result["vmid"] == 100
    assert writes(pve9_sim)[0]["params"] == {"newid": "100", "name": "k8s-w-2", "target": "pve-2", "full": "1",
                                             "storage": "nas"}
    assert len(writes(pve9_sim)) == 1  # nothing else to change
    assert result["config"]["scsi0"].startswith("nas:100/vm-100-disk-0")


def test_clone_check_mode_uses_the_template_config(pve9_sim, run_module):
    make_template(pve9_sim)
    pve9_sim.clear_log()
    args = dict(pve9_sim.module_params(), name="k8s-w-3", node="pve-1", clone="ubuntu-2404-cloud", cores=8)
    result = run_module(proxmox_guest, args, check_mode=True)
    assert result["changed"] and result["changes"]["clone"] == {"source": 9000, "full": True, "node": "pve-1"}
    assert result["changes"]["config"] == {"cores": 8}
    assert writes(pve9_sim) == []


def test_clone_failures_are_found_before_any_write(pve9_sim, run_module):
    make_template(pve9_sim)
    api = pve9_sim.api()
    api.nodes("pve-1").qemu.post(vmid=150, name="plain-vm", scsi0="nas:4")
    pve9_sim.wait_tasks()
    pve9_sim.clear_log()
    base = dict(pve9_sim.module_params(), name="x", node="pve-1")
    missing = run_module(proxmox_guest, dict(base, clone="no-such-template"))
    assert missing["failed"] and "clone source template no-such-template does not exist" in missing["msg"]
    linked = run_module(proxmox_guest, dict(base, clone="plain-vm", full=False))
    assert linked["failed"] and "linked clone needs a template" in linked["msg"]
    shrink = run_module(proxmox_guest, dict(base, clone="9000", disks={"scsi0": {"size": "5G"}}))
    assert shrink["failed"] and "cannot shrink" in shrink["msg"]
    assert writes(pve9_sim) == []


def test_container_clone(pve9_sim, run_module):
    run_module(proxmox_guest, ct_args(pve9_sim, vmid=8000, name="ct-template", node="pve-1",
                                      disks={"rootfs": "nas:4"}))
    pve9_sim.api().nodes("pve-1").lxc(8000).template.post()
    pve9_sim.wait_tasks()
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, dict(pve9_sim.module_params(), type="lxc", name="ct-clone", node="pve-1",
                                            clone="ct-template", full=False, cores=4))
    assert not result.get("failed"), result
    assert paths(pve9_sim) == [("POST", "/nodes/pve-1/lxc/8000/clone"), ("PUT", "/nodes/pve-1/lxc/100/config")]
    assert writes(pve9_sim)[0]["params"]["hostname"] == "ct-clone"


# ---------------------------------------------------------------------------------- power and removal
def test_start_stop_and_absent(pve_sim, run_module):
    run_module(proxmox_guest, vm_args(pve_sim))
    pve_sim.clear_log()
    started = run_module(proxmox_guest, vm_args(pve_sim, state="started"), diff=True)
    assert started["changed"] and started["status"] == "running"
    assert started["diff"] == {"before": {"status": "stopped"}, "after": {"status": "running"}}
    assert paths(pve_sim) == [("POST", "/nodes/pve-1/qemu/100/status/start")]
    pve_sim.clear_log()
    assert run_module(proxmox_guest, vm_args(pve_sim, state="started"))["changed"] is False
    assert writes(pve_sim) == []
    stopped = run_module(proxmox_guest, vm_args(pve_sim, state="stopped", shutdown_timeout=30))
    assert stopped["status"] == "stopped"
    assert writes(pve_sim)[-1]["path"] == "/nodes/pve-1/qemu/100/status/shutdown"
    assert writes(pve_sim)[-1]["params"] == {"forceStop": "1", "timeout": "30"}
    run_module(proxmox_guest, vm_args(pve_sim, state="started"))
    pve_sim.clear_log()
    gone = run_module(proxmox_guest, dict(pve_sim.module_params(), name="k8s-cp-1", state="absent"), diff=True)
    assert gone["changed"] and gone["status"] == "absent"
    assert paths(pve_sim) == [("POST", "/nodes/pve-1/qemu/100/status/stop"), ("DELETE", "/nodes/pve-1/qemu/100")]
    assert writes(pve_sim)[1]["params"] == {"purge": "1", "destroy-unreferenced-disks": "1"}
    assert gone["diff"]["after"] == {"state": "absent"} and gone["diff"]["before"]["state"] == "running"
    pve_sim.clear_log()
    assert run_module(proxmox_guest, dict(pve_sim.module_params(), name="k8s-cp-1", state="absent"))["changed"] is False
    assert writes(pve_sim) == []


def test_force_stop_and_absent_in_check_mode(pve9_sim, run_module):
    run_module(proxmox_guest, ct_args(pve9_sim, state="started"))
    pve9_sim.clear_log()
    assert run_module(proxmox_guest, dict(pve9_sim.module_params(), type="lxc", name="nfs-tools", state="absent"),
                      check_mode=True)["changed"]
    assert writes(pve9_sim) == []
    run_module(proxmox_guest, dict(pve9_sim.module_params(), type="lxc", name="nfs-tools", state="stopped",
                                   force_stop=True))
    assert paths(pve9_sim) == [("POST", "/nodes/pve-2/lxc/100/status/stop")]


def test_ha_managed_guest_starts_through_ha_and_is_purged(pve_sim, run_module):
    run_module(proxmox_guest, vm_args(pve_sim, disks={"scsi0": "nas:8"}))
    pve_sim.api().cluster.ha.resources.post(sid="vm:100", state="stopped")
    result = run_module(proxmox_guest, vm_args(pve_sim, disks={"scsi0": "nas:8"}, state="started"))
    assert result["status"] == "running"
    assert pve_sim.api().nodes("pve-1").qemu(100).status.current.get()["status"] == "running"
    gone = run_module(proxmox_guest, dict(pve_sim.module_params(), vmid=100, state="absent"))
    assert not gone.get("failed"), gone
    assert pve_sim.api().cluster.ha.resources.get() == []


def test_pending_reboot_and_restart_on_change(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim, state="started"))
    pve9_sim.clear_log()
    hot = run_module(proxmox_guest, vm_args(pve9_sim, state="started", description="cp", onboot=False))
    assert hot["changed"] and hot["pending_reboot"] is False
    cold = run_module(proxmox_guest, vm_args(pve9_sim, state="started", description="cp", onboot=False, cores=4))
    assert cold["changed"] and cold["pending_reboot"] is True
    pve9_sim.clear_log()
    applied = run_module(proxmox_guest, vm_args(pve9_sim, state="started", description="cp", onboot=False, cores=8,
                                                restart_on_change=True))
    assert applied["pending_reboot"] is False and applied["changes"]["power"] == "reboot"
    assert paths(pve9_sim) == [("POST", "/nodes/pve-1/qemu/100/config"), ("POST", "/nodes/pve-1/qemu/100/status/reboot")]


def test_task_failure_is_reported_with_the_log(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.fault("task_fail", task_type="qmstart", message="start failed: QEMU exited with code 1", count=1)
    result = run_module(proxmox_guest, vm_args(pve9_sim, state="started"))
    assert result["failed"]
    assert "starting VM 100 (k8s-cp-1) failed" in result["msg"] and "QEMU exited with code 1" in result["msg"]


# ---------------------------------------------------------------------------------- GPU and agent
def test_gpu_vm_through_a_pci_mapping(pve_sim, run_module):
    pve_sim.api().cluster.mapping.pci.post(id="rtx3090", map=[GPU_ENTRY % "pve-1", GPU_ENTRY % "pve-2"])
    args = vm_args(pve_sim, name="k8s-gpu-1", hostpci={"hostpci0": {"mapping": "rtx3090", "pcie": True}},
                   config={"machine": "q35"}, state="started", ipconfig=None)
    result = run_module(proxmox_guest, args)
    assert not result.get("failed"), result
    assert result["config"]["hostpci0"] == "mapping=rtx3090,pcie=1" and result["status"] == "running"
    pve_sim.clear_log()
    again = run_module(proxmox_guest, dict(args, hostpci={"hostpci0": "mapping=rtx3090,pcie=1"}))
    assert again["changed"] is False and writes(pve_sim) == []
    assert again["ip_addresses"] and again["ip_addresses"][0].startswith("192.168.10.")


def test_missing_or_foreign_pci_mapping_is_refused_before_any_write(pve9_sim, run_module):
    pve9_sim.clear_log()
    gpu = {"hostpci0": {"mapping": "rtx3090", "pcie": True}}
    missing = run_module(proxmox_guest, vm_args(pve9_sim, hostpci=gpu))
    assert missing["failed"] and "PCI mapping rtx3090 used by VM k8s-cp-1 does not exist" in missing["msg"]
    pve9_sim.api().cluster.mapping.pci.post(id="rtx3090", map=["node=pve-2,path=0000:01:00,id=10de:2204"])
    pve9_sim.clear_log()
    foreign = run_module(proxmox_guest, vm_args(pve9_sim, hostpci=gpu))
    assert foreign["failed"] and "no device on node pve-1" in foreign["msg"] and "pve-2" in foreign["msg"]
    assert writes(pve9_sim) == []


def test_ip_addresses_from_the_agent_skip_loopback(pve_sim, run_module):
    result = run_module(proxmox_guest, vm_args(pve_sim, state="started"))
    assert result["ip_addresses"] == ["192.168.10.21"]
    assert result["interfaces"][0]["addresses"] == ["192.168.10.21/24"]
    assert all(i["name"] != "lo" for i in result["interfaces"])
    no_agent = run_module(proxmox_guest, vm_args(pve_sim, name="no-agent", agent=False, ipconfig=None,
                                                 state="started"))
    assert no_agent["ip_addresses"] == []


def test_wait_for_ip_polls_the_agent(pve9_sim, run_module, tune):
    tune(pve9_sim, agent_delay=0.3)
    result = run_module(proxmox_guest, vm_args(pve9_sim, state="started", wait_for_ip=10))
    assert result["ip_addresses"] == ["192.168.10.21"]


# ---------------------------------------------------------------------------------- batch
def batch_args(sim, count=3, **extra):
    guests = [dict(name="k8s-node-%d" % i, vmid=200 + i, node="pve-1" if i % 2 else "pve-2", cores=2,
                   disks={"scsi0": {"size": 4}}, networks={"net0": {"bridge": "vmbr0"}},
                   ipconfig={"ipconfig0": {"ip": "192.168.10.%d/24" % (40 + i)}}) for i in range(count)]
    return dict(sim.module_params(), storage="local-lvm", memory=2048, agent=True, state="started",
                cipassword="batch-pw", guests=guests, **extra)


def test_batch_reads_resources_once_and_is_idempotent(pve_sim, run_module):
    pve_sim.clear_log()
    result = run_module(proxmox_guest, batch_args(pve_sim))
    assert not result.get("failed"), result
    assert result["changed"] and [g["vmid"] for g in result["guests"]] == [200, 201, 202]
    assert [g["ip_addresses"] for g in result["guests"]] == [["192.168.10.40"], ["192.168.10.41"], ["192.168.10.42"]]
    assert sum(1 for r in pve_sim.requests_log() if r["path"] == "/cluster/resources") == 1
    pve_sim.clear_log()
    again = run_module(proxmox_guest, batch_args(pve_sim), diff=True)
    assert again["changed"] is False and writes(pve_sim) == []
    assert sum(1 for r in pve_sim.requests_log() if r["path"] == "/cluster/resources") == 1
    assert again["diff"] == {"before": {}, "after": {}}


def test_batch_check_mode_predicts_distinct_vmids(pve9_sim, run_module):
    args = batch_args(pve9_sim)
    for guest in args["guests"]:
        guest.pop("vmid")
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, args, check_mode=True, diff=True)
    assert [g["vmid"] for g in result["guests"]] == [100, 101, 102]
    assert writes(pve9_sim) == []
    assert set(result["diff"]["after"]) == {"VM 100 (k8s-node-0)", "VM 101 (k8s-node-1)", "VM 102 (k8s-node-2)"}


def test_batch_of_fifty_guests(pve9_sim, run_module):
    # The 50 guests are made directly through the API (tasks run in parallel), then the module is run on them.
    api = pve9_sim.api()
    for i in range(50):
        api.nodes("pve-1" if i % 2 else "pve-2").qemu.post(
            vmid=200 + i, name="k8s-node-%d" % i, cores=2, memory=2048, agent="1", scsi0="local-lvm:4",
            net0="virtio,bridge=vmbr0")
    pve9_sim.wait_tasks()
    args = batch_args(pve9_sim, count=50)
    args["state"] = "present"
    for guest in args["guests"]:
        guest.pop("ipconfig")
    pve9_sim.clear_log()
    again = run_module(proxmox_guest, args)
    assert again["changed"] is False and writes(pve9_sim) == []
    assert len(again["guests"]) == 50
    reads = pve9_sim.reads()
    assert sum(1 for r in reads if r["path"] == "/cluster/resources") == 1
    assert len(reads) == 1 + 50  # the resources once, then one config per guest
    for guest in args["guests"]:
        guest["cores"] = 4
    predicted = run_module(proxmox_guest, args, check_mode=True)
    assert [g["changes"] for g in predicted["guests"]] == [{"config": {"cores": 4}}] * 50
    assert writes(pve9_sim) == []


def test_batch_input_errors_before_any_request(pve9_sim, run_module):
    pve9_sim.clear_log()
    secret = run_module(proxmox_guest, dict(pve9_sim.module_params(), guests=[{"name": "a", "cipassword": "item-pw"}]))
    assert secret["failed"] and "guests[0] sets cipassword" in secret["msg"]
    assert "item-pw" not in secret["msg"]
    unknown = run_module(proxmox_guest, dict(pve9_sim.module_params(), guests=[{"name": "a", "colour": "red"}]))
    assert unknown["failed"] and "guests[0] (a)" in unknown["msg"] and "colour" in unknown["msg"]
    duplicate = run_module(proxmox_guest, dict(pve9_sim.module_params(), guests=[{"name": "a"}, {"name": "a"}]))
    assert duplicate["failed"] and "more than once" in duplicate["msg"]
    assert pve9_sim.requests_log() == []


def test_batch_validates_every_guest_before_the_first_write(pve9_sim, run_module):
    args = batch_args(pve9_sim)
    args["guests"][2]["networks"] = {"nic0": {"bridge": "vmbr0"}}
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, args)
    assert result["failed"] and "VM 202 (k8s-node-2): networks key nic0" in result["msg"]
    assert writes(pve9_sim) == []


# ---------------------------------------------------------------------------------- input errors
@pytest.mark.parametrize("extra, message", [
    (dict(node=None), "node is required to create VM k8s-cp-1"),
    (dict(node="pve-9"), "node pve-9 is not in the cluster (nodes: pve-1, pve-2)"),
    (dict(type="lxc", ostemplate=None, ipconfig=None, ciuser=None, cipassword=None, sshkeys=None, agent=None,
          disks={"rootfs": "local-lvm:4"}), "ostemplate is required to create container"),
    (dict(type="lxc"), "ipconfig, ciuser, cipassword, sshkeys, agent only apply to VMs"),
    (dict(unprivileged=True), "unprivileged only apply to containers"),
    (dict(networks={"eth0": "virtio"}), "networks key eth0 is not a NIC slot"),
    (dict(disks={"scsi0": {"storage": "local-lvm", "size": "big"}}), "invalid size 'big'"),
    (dict(disks={"scsi0": {"size": "8G"}}), "new disk scsi0 needs a storage"),
    (dict(disks={"hda": "local-lvm:8"}), "disks key hda is not a VM disk slot"),
    (dict(config={"net0": "virtio"}), "config key net0 has its own option: set it with networks"),
    (dict(config={"hostname": "x"}), "config key hostname has its own option: set it with name"),
    (dict(tags=["k8s", "bad tag!"]), "tags bad tag! are not valid"),
    (dict(ipconfig={"ipconfig0": {"ip": "192.168.10.300/24", "gw": "192.168.10.1"}}),
     "ipconfig0.ip 192.168.10.300/24 is not a valid address with prefix length (e.g. 192.168.10.21/24 or dhcp)"),
    (dict(ipconfig={"ipconfig0": {"ip": "192.168.10.30", "gw": "192.168.10.1"}}), "ipconfig0.ip 192.168.10.30 is not"),
    (dict(ipconfig={"ipconfig0": {"ip": "dhcp", "gw": "10.0.0.999"}}), "ipconfig0.gw 10.0.0.999 is not a valid gateway"),
    (dict(ipconfig={"ipconfig0": "ip=dhcp,gateway=10.0.0.1"}), "ipconfig0 key gateway is not a cloud-init ipconfig key"),
    (dict(tags=["k8s", "GPU"]), "tags GPU have upper-case letters: Proxmox VE compares tags without case, so write them in lower case (gpu)"),
    (dict(name="under_score"), "name under_score is not a valid DNS name"),
    (dict(vmid=42), "vmid 42 is out of range"),
    (dict(memory=8), "memory must be a positive number"),
    (dict(hostpci={"pci0": "mapping=x"}), "hostpci key pci0 is not a slot"),
    (dict(ipconfig={"ipconfig0": 5}), "ipconfig0 must be a dict or a PVE string"),
])
def test_bad_input_is_rejected_before_any_write(pve9_sim, run_module, extra, message):
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve9_sim, **extra))
    assert result["failed"], result
    assert message in result["msg"]
    assert writes(pve9_sim) == []


def test_mount_point_needs_a_path(pve9_sim, run_module):
    result = run_module(proxmox_guest, ct_args(pve9_sim, disks={"rootfs": "local-lvm:4", "mp0": "nas:10"}))
    assert result["failed"] and "mount point mp0 needs mp" in result["msg"]
    rootfs = run_module(proxmox_guest, ct_args(pve9_sim, disks={"rootfs": "absent"}))
    assert rootfs["failed"] and "rootfs cannot be removed" in rootfs["msg"]
    features = run_module(proxmox_guest, ct_args(pve9_sim, features=["nesting"]))
    assert features["failed"] and "features must be a dict or a PVE string" in features["msg"]


def test_name_or_vmid_is_required(pve9_sim, run_module):
    result = run_module(proxmox_guest, dict(pve9_sim.module_params(), cores=2))
    assert result["failed"] and "name, vmid, guests" in result["msg"]


def test_ambiguous_name_and_wrong_type(pve9_sim, run_module):
    api = pve9_sim.api()
    for vmid in (150, 151):
        api.nodes("pve-1").qemu.post(vmid=vmid, name="twin")
    pve9_sim.wait_tasks()
    twin = run_module(proxmox_guest, dict(pve9_sim.module_params(), name="twin", cores=2))
    assert twin["failed"] and "Several guests are named twin (VMIDs 150, 151): set vmid" in twin["msg"]
    wrong = run_module(proxmox_guest, dict(pve9_sim.module_params(), vmid=150, type="lxc", cores=2))
    assert wrong["failed"] and "VMID 150 is a VM, not a CT" in wrong["msg"]


def test_guest_on_an_offline_node(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim, node="pve-2"))
    pve9_sim.node_down("pve-2")
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve9_sim, node="pve-2", cores=4))
    assert result["failed"] and "on node pve-2, which is offline" in result["msg"]
    create = run_module(proxmox_guest, vm_args(pve9_sim, name="new-one", node="pve-2"))
    assert create["failed"] and "node pve-2 is offline" in create["msg"]
    assert writes(pve9_sim) == []


def test_existing_guest_elsewhere_only_warns(pve9_sim, run_module, monkeypatch):
    warnings = []
    monkeypatch.setattr(proxmox_guest.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve9_sim, node="pve-2"))
    assert result["changed"] is False and result["node"] == "pve-1"
    assert any("on node pve-1, not pve-2" in w and "proxmox_migrate" in w for w in warnings)


def test_template_cannot_be_started(pve9_sim, run_module):
    make_template(pve9_sim)
    result = run_module(proxmox_guest, dict(pve9_sim.module_params(), vmid=9000, state="started"))
    assert result["failed"] and "is a template and cannot be started" in result["msg"]


def test_update_password_always_resends_cipassword(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.clear_log()
    assert run_module(proxmox_guest, vm_args(pve9_sim))["changed"] is False
    result = run_module(proxmox_guest, vm_args(pve9_sim, update_password="always"))
    assert result["changed"] and writes(pve9_sim)[0]["params"] == {"cipassword": "**********"}


def test_batch_top_level_options_apply_only_to_their_guest_type(pve9_sim, run_module):
    args = dict(pve9_sim.module_params(), cipassword="vm-pw", password="ct-pw", storage="local-lvm",
                guests=[dict(name="vm-a", node="pve-1", disks={"scsi0": {"size": 4}}),
                        dict(name="ct-a", type="lxc", node="pve-1", ostemplate=CT_TEMPLATE)])
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, args)
    assert not result.get("failed"), result
    creates = dict((w["path"], w["params"]) for w in writes(pve9_sim))
    assert creates["/nodes/pve-1/qemu"]["cipassword"] == "**********" and "password" not in creates["/nodes/pve-1/qemu"]
    assert creates["/nodes/pve-1/lxc"]["password"] == "**********" and "cipassword" not in creates["/nodes/pve-1/lxc"]
    assert "vm-pw" not in str(result) and "ct-pw" not in str(result)


def test_empty_lists_remove_the_option(pve9_sim, run_module):
    pve9_sim.clear_log()
    run_module(proxmox_guest, vm_args(pve9_sim, name="bare", sshkeys=[], tags=[], nameserver=[], ipconfig=None))
    assert not any(k in writes(pve9_sim)[0]["params"] for k in ("sshkeys", "tags", "nameserver"))
    pve9_sim.clear_log()
    assert run_module(proxmox_guest, vm_args(pve9_sim, name="bare", sshkeys=[], tags=[], nameserver=[],
                                             ipconfig=None))["changed"] is False
    assert writes(pve9_sim) == []
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve9_sim, sshkeys=[], tags=[]))
    assert result["changed"] and writes(pve9_sim)[0]["params"] == {"delete": "tags,sshkeys"}


def test_default_storage_does_not_warn_about_existing_disks(pve9_sim, run_module, monkeypatch):
    warnings = []
    monkeypatch.setattr(proxmox_guest.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    make_template(pve9_sim)  # disks on nas
    args = dict(pve9_sim.module_params(), name="linked", node="pve-1", clone="9000", full=False, storage="local-lvm",
                disks={"scsi0": {"size": "12G"}})
    result = run_module(proxmox_guest, args)
    assert result["changed"] and result["config"]["scsi0"].startswith("nas:") and "size=12G" in result["config"]["scsi0"]
    assert warnings == []


# ---------------------------------------------------------------------------------- config_check: fingerprint
FP_TAG = re.compile(r"^ailab-fp-[0-9a-f]{12}$")


def fp_args(sim, count=3, **extra):
    """Stopped guests managed with state present and no agent: a no-op needs nothing but /cluster/resources."""
    guests = [dict(name="fp-node-%d" % i, vmid=300 + i, node="pve-1" if i % 2 else "pve-2", cores=2,
                   tags=["k8s"], disks={"scsi0": {"size": 4}}, networks={"net0": {"bridge": "vmbr0"}})
              for i in range(count)]
    args = dict(sim.module_params(), storage="local-lvm", memory=1024, state="present", config_check="fingerprint",
                guests=guests)
    args.update(extra)
    return args


def config_reads(sim):
    return [r["path"] for r in sim.reads() if r["path"].endswith("/config")]


def tags_of(sim, vmid, node, kind="qemu"):
    return getattr(sim.api().nodes(node), kind)(vmid).config.get().get("tags", "").split(";")


def test_fingerprint_switch_writes_the_tags_once_then_reads_nothing_per_guest(pve_sim, run_module):
    full = run_module(proxmox_guest, fp_args(pve_sim, config_check="full"))
    assert full["changed"] and all(g["checked"] is None and g["fingerprint"] is None for g in full["guests"])
    assert all(tags_of(pve_sim, g["vmid"], g["node"]) == ["k8s"] for g in full["guests"])  # full mode adds no tag

    pve_sim.clear_log()
    switch = run_module(proxmox_guest, fp_args(pve_sim), diff=True)
    assert not switch.get("failed"), switch
    assert switch["changed"] and [g["checked"] for g in switch["guests"]] == ["config"] * 3
    assert len(config_reads(pve_sim)) == 3  # one read each; a tag-only write is not read back
    # the tag alone goes through the synchronous PUT: no task to wait for
    assert paths(pve_sim) == [("PUT", "/nodes/pve-2/qemu/300/config"), ("PUT", "/nodes/pve-1/qemu/301/config"),
                              ("PUT", "/nodes/pve-2/qemu/302/config")]
    assert [r["path"] for r in pve_sim.reads() if "/tasks/" in r["path"]] == []
    for guest, write in zip(switch["guests"], writes(pve_sim)):
        assert FP_TAG.match(guest["fingerprint"])
        assert write["params"] == {"tags": guest["fingerprint"] + ";k8s"}  # the tag alone, user tags kept
        assert guest["changes"] == {"config": {"tags": guest["fingerprint"] + ";k8s"}}
    label = "VM 300 (fp-node-0)"
    assert switch["diff"]["before"][label] == {"tags": "k8s"}
    assert switch["diff"]["after"][label] == {"tags": switch["guests"][0]["fingerprint"] + ";k8s"}

    pve_sim.clear_log()
    again = run_module(proxmox_guest, fp_args(pve_sim))
    assert again["changed"] is False and writes(pve_sim) == []
    assert [r["path"] for r in pve_sim.reads()] == ["/cluster/resources"]  # no config read at all
    assert [g["checked"] for g in again["guests"]] == ["fingerprint"] * 3
    assert all("config" not in g for g in again["guests"])
    assert [g["status"] for g in again["guests"]] == ["stopped"] * 3


def test_fingerprint_guests_get_the_tag_when_created(pve9_sim, run_module):
    pve9_sim.clear_log()
    created = run_module(proxmox_guest, fp_args(pve9_sim, count=2))
    assert [g["checked"] for g in created["guests"]] == [None, None]
    create = writes(pve9_sim)[0]
    assert create["path"] == "/nodes/pve-2/qemu" and create["params"]["tags"] == created["guests"][0]["fingerprint"] + ";k8s"
    pve9_sim.clear_log()
    again = run_module(proxmox_guest, fp_args(pve9_sim, count=2))
    assert again["changed"] is False and writes(pve9_sim) == [] and config_reads(pve9_sim) == []


def test_fingerprint_changed_option_reads_updates_and_retags(pve_sim, run_module):
    run_module(proxmox_guest, fp_args(pve_sim))
    old = tags_of(pve_sim, 301, "pve-1")[0]
    args = fp_args(pve_sim)
    args["guests"][1]["memory"] = 2048
    pve_sim.clear_log()
    result = run_module(proxmox_guest, args, diff=True)
    assert result["changed"]
    assert [g["checked"] for g in result["guests"]] == ["fingerprint", "config", "fingerprint"]
    assert set(config_reads(pve_sim)) == {"/nodes/pve-1/qemu/301/config"}  # read, then read back after the write
    new = result["guests"][1]["fingerprint"]
    assert new != old and FP_TAG.match(new)
    assert [(w["path"], w["params"]) for w in writes(pve_sim)] == [
        ("/nodes/pve-1/qemu/301/config", {"memory": "2048", "tags": new + ";k8s"})]  # one write: change and tag
    assert result["diff"]["after"]["VM 301 (fp-node-1)"] == {"memory": "2048", "tags": new + ";k8s"}
    pve_sim.clear_log()
    assert run_module(proxmox_guest, args)["changed"] is False
    assert writes(pve_sim) == [] and config_reads(pve_sim) == []


def test_fingerprint_same_options_spelled_differently_keep_the_fingerprint(pve9_sim, run_module):
    first = run_module(proxmox_guest, fp_args(pve9_sim, onboot=True, count=1))
    args = fp_args(pve9_sim, onboot=1, count=1)
    args["guests"][0].update(disks={"scsi0": {"size": "4096M"}}, networks={"net0": "virtio,bridge=vmbr0"})
    pve9_sim.clear_log()
    again = run_module(proxmox_guest, args)
    assert again["guests"][0]["fingerprint"] == first["guests"][0]["fingerprint"]
    assert again["changed"] is False and writes(pve9_sim) == [] and config_reads(pve9_sim) == []


@pytest.mark.parametrize("edit, detected", [
    ({"memory": 4096}, "maxmem"),
    ({"cores": 4}, "maxcpu"),
    ({"name": "renamed"}, "name"),
    ({"tags": "k8s;prod;FP"}, "user tags"),
    ({"delete": "tags"}, "fingerprint tag"),
])
def test_fingerprint_detects_hand_edits_that_cluster_resources_shows(pve_sim, run_module, edit, detected):
    run_module(proxmox_guest, fp_args(pve_sim, count=1))
    fingerprint = tags_of(pve_sim, 300, "pve-2")[0]
    if "tags" in edit:
        edit = {"tags": edit["tags"].replace("FP", fingerprint)}
    pve_sim.api().nodes("pve-2").qemu(300).config.put(**edit)  # the web UI's edit
    pve_sim.clear_log()
    result = run_module(proxmox_guest, fp_args(pve_sim, count=1))
    assert result["changed"], detected
    assert result["guests"][0]["checked"] == "config"
    assert set(config_reads(pve_sim)) == {"/nodes/pve-2/qemu/300/config"}
    config = pve_sim.api().nodes("pve-2").qemu(300).config.get()
    assert (config["memory"], config["cores"], config["name"]) == ("1024", 2, "fp-node-0")
    assert config["tags"].split(";") == [fingerprint, "k8s"]
    pve_sim.clear_log()
    assert run_module(proxmox_guest, fp_args(pve_sim, count=1))["changed"] is False and config_reads(pve_sim) == []


def test_fingerprint_does_not_see_a_hand_edited_nic_but_full_does(pve_sim, run_module):
    run_module(proxmox_guest, fp_args(pve_sim, count=1))
    vm = pve_sim.api().nodes("pve-2").qemu(300)
    mac = vm.config.get()["net0"].split(",")[0]
    vm.config.put(net0="%s,bridge=vmbr0,tag=99" % mac)  # a VLAN tag set in the web UI
    pve_sim.clear_log()
    blind = run_module(proxmox_guest, fp_args(pve_sim, count=1))
    # The documented limit: NICs are not in /cluster/resources, so fingerprint mode does not read them.
    assert blind["changed"] is False and blind["guests"][0]["checked"] == "fingerprint"
    assert writes(pve_sim) == [] and config_reads(pve_sim) == []
    pve_sim.clear_log()
    full = run_module(proxmox_guest, fp_args(pve_sim, count=1, config_check="full"))
    assert full["changed"] and full["guests"][0]["checked"] == "config"
    # full mode restores the NIC and leaves the fingerprint tag alone
    assert [(w["path"], w["params"]) for w in writes(pve_sim)] == [
        ("/nodes/pve-2/qemu/300/config", {"net0": "%s,bridge=vmbr0" % mac})]
    assert vm.config.get()["net0"] == "%s,bridge=vmbr0" % mac
    assert FP_TAG.match(tags_of(pve_sim, 300, "pve-2")[0])


def test_full_mode_ignores_and_keeps_the_fingerprint_tag(pve9_sim, run_module):
    run_module(proxmox_guest, fp_args(pve9_sim, count=1))
    fingerprint = tags_of(pve9_sim, 300, "pve-2")[0]
    pve9_sim.clear_log()
    same = run_module(proxmox_guest, fp_args(pve9_sim, count=1, config_check="full"))
    assert same["changed"] is False and writes(pve9_sim) == []  # the fingerprint tag is no user tag
    args = fp_args(pve9_sim, count=1, config_check="full")
    args["guests"][0]["tags"] = ["k8s", "gpu"]
    pve9_sim.clear_log()
    retag = run_module(proxmox_guest, args, diff=True)
    assert writes(pve9_sim)[0]["params"] == {"tags": fingerprint + ";gpu;k8s"}
    assert retag["diff"]["before"]["VM 300 (fp-node-0)"] == {"tags": fingerprint + ";k8s"}
    args["guests"][0]["tags"] = []
    pve9_sim.clear_log()
    run_module(proxmox_guest, args)
    assert writes(pve9_sim)[0]["params"] == {"tags": fingerprint}  # user tags gone, the fingerprint stays


def test_fingerprint_keeps_user_tags_it_does_not_manage(pve9_sim, run_module):
    args = fp_args(pve9_sim, count=1)
    args["guests"][0].pop("tags")
    pve9_sim.api().nodes("pve-2").qemu.post(vmid=300, name="fp-node-0", cores=2, memory=1024, scsi0="local-lvm:4",
                                            net0="virtio,bridge=vmbr0", tags="team-a;backup")
    pve9_sim.wait_tasks()
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, args)
    fingerprint = result["guests"][0]["fingerprint"]
    assert [w["params"] for w in writes(pve9_sim)] == [{"tags": fingerprint + ";backup;team-a"}]
    pve9_sim.clear_log()
    assert run_module(proxmox_guest, args)["changed"] is False and config_reads(pve9_sim) == []


def test_fingerprint_check_mode_writes_nothing(pve_sim, run_module):
    run_module(proxmox_guest, fp_args(pve_sim, count=2, config_check="full"))
    pve_sim.clear_log()
    predicted = run_module(proxmox_guest, fp_args(pve_sim, count=2), check_mode=True, diff=True)
    assert predicted["changed"] and writes(pve_sim) == []
    assert [g["changes"]["config"]["tags"] for g in predicted["guests"]] == [
        g["fingerprint"] + ";k8s" for g in predicted["guests"]]
    assert set(predicted["diff"]["after"]) == {"VM 300 (fp-node-0)", "VM 301 (fp-node-1)"}
    assert tags_of(pve_sim, 300, "pve-2") == ["k8s"]
    created = run_module(proxmox_guest, fp_args(pve_sim, count=3), check_mode=True)
    assert created["guests"][2]["created"] and writes(pve_sim) == []


def test_fingerprint_state_and_power(pve9_sim, run_module):
    run_module(proxmox_guest, fp_args(pve9_sim, count=1, state="started"))
    pve9_sim.api().nodes("pve-2").qemu(300).status.stop.post()  # stopped by hand
    pve9_sim.wait_tasks()
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, fp_args(pve9_sim, count=1, state="started"))
    assert result["guests"][0]["checked"] == "config" and result["guests"][0]["changes"] == {"power": "start"}
    assert [w["path"] for w in writes(pve9_sim)] == ["/nodes/pve-2/qemu/300/status/start"]
    pve9_sim.clear_log()
    # running, state present: the power state is not compared; no agent option, so no agent read
    assert run_module(proxmox_guest, fp_args(pve9_sim, count=1))["changed"] is False
    assert [r["path"] for r in pve9_sim.reads()] == ["/cluster/resources"]


def test_fingerprint_asks_the_agent_only_when_the_options_set_it(pve9_sim, run_module):
    args = fp_args(pve9_sim, count=1, state="started", agent=True)
    args["guests"][0]["ipconfig"] = {"ipconfig0": {"ip": "192.168.10.60/24"}}
    run_module(proxmox_guest, args)
    pve9_sim.clear_log()
    again = run_module(proxmox_guest, args)
    assert again["guests"][0]["checked"] == "fingerprint" and again["guests"][0]["ip_addresses"] == ["192.168.10.60"]
    assert [r["path"] for r in pve9_sim.reads()] == ["/cluster/resources",
                                                     "/nodes/pve-2/qemu/300/agent/network-get-interfaces"]


def test_fingerprint_pending_change_is_read_until_the_restart(pve9_sim, run_module):
    run_module(proxmox_guest, fp_args(pve9_sim, count=1, state="started"))
    args = fp_args(pve9_sim, count=1, state="started", memory=2048)
    changed = run_module(proxmox_guest, args)
    assert changed["changed"] and changed["guests"][0]["pending_reboot"] is True
    pve9_sim.clear_log()
    # /cluster/resources shows the running 1024 MiB: read, nothing to write
    pending = run_module(proxmox_guest, args)
    assert pending["changed"] is False and pending["guests"][0]["checked"] == "config" and writes(pve9_sim) == []
    pve9_sim.api().nodes("pve-2").qemu(300).status.reboot.post()
    pve9_sim.wait_tasks()
    pve9_sim.clear_log()
    assert run_module(proxmox_guest, args)["guests"][0]["checked"] == "fingerprint" and config_reads(pve9_sim) == []


def test_fingerprint_tag_goes_after_a_resize(pve9_sim, run_module):
    run_module(proxmox_guest, fp_args(pve9_sim, count=1))
    args = fp_args(pve9_sim, count=1)
    args["guests"][0]["disks"] = {"scsi0": {"size": 8}}
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, args)
    assert [(w["method"], w["path"]) for w in writes(pve9_sim)] == [
        ("PUT", "/nodes/pve-2/qemu/300/resize"), ("PUT", "/nodes/pve-2/qemu/300/config")]
    assert writes(pve9_sim)[1]["params"] == {"tags": result["guests"][0]["fingerprint"] + ";k8s"}


def test_fingerprint_with_update_password_always_reads_and_writes(pve9_sim, run_module):
    args = vm_args(pve9_sim, config_check="fingerprint", update_password="always")
    run_module(proxmox_guest, args)
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, args)
    assert result["changed"] and result["checked"] == "config"
    assert writes(pve9_sim)[0]["params"] == {"cipassword": "**********"}
    assert "cloud-pw-1" not in str(result)


def test_fingerprint_container(pve9_sim, run_module):
    run_module(proxmox_guest, ct_args(pve9_sim, config_check="fingerprint"))
    pve9_sim.clear_log()
    again = run_module(proxmox_guest, ct_args(pve9_sim, config_check="fingerprint"))
    assert again["changed"] is False and again["checked"] == "fingerprint" and "config" not in again
    assert [r["path"] for r in pve9_sim.reads()] == ["/cluster/resources"]
    pve9_sim.api().nodes("pve-2").lxc(100).config.put(memory=2048)
    pve9_sim.clear_log()
    fixed = run_module(proxmox_guest, ct_args(pve9_sim, config_check="fingerprint"))
    assert fixed["checked"] == "config" and [w["params"] for w in writes(pve9_sim)] == [{"memory": "1024"}]


def test_fingerprint_tags_are_refused_as_user_tags(pve9_sim, run_module):
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve9_sim, tags=["k8s", "ailab-fp-0123456789ab"]))
    assert result["failed"] and "tags ailab-fp-0123456789ab start with ailab-fp-" in result["msg"]
    assert writes(pve9_sim) == []


# ---------------------------------------------------------------------------------- real PVE semantics
def as_root(args, sim):
    """``args`` with the connection of root@pam itself (password login), the only caller PVE lets set
    root-only keys."""
    args = dict(args, api_user="root@pam", api_password=sim.password)
    args.pop("api_token_id")
    args.pop("api_token_secret")
    return args


@pytest.mark.parametrize("state", ["present", "started"])
def test_two_runs_in_a_row_find_the_guest_pvestatd_has_not_reported(pve9_sim, run_module, tune, state):
    # /cluster/resources shows a new guest as status unknown without a name until pvestatd reports it
    # (tests/unit/pvesim/test_guest_semantics.py); an hour-long round keeps it that way for this test.
    tune(pve9_sim, stats_interval=3600)
    args = dict(vm_args(pve9_sim, state=state), disks={"scsi0": "local-lvm:8"})
    first = run_module(proxmox_guest, args)
    assert first["changed"] and first["vmid"] == 100
    entry = pve9_sim.api().cluster.resources.get(type="vm")[0]
    assert entry["status"] == "unknown" and "name" not in entry
    pve9_sim.clear_log()
    second = run_module(proxmox_guest, args)
    assert not second.get("failed"), second
    assert second["changed"] is False and second["vmid"] == 100 and second["status"] == ("running" if state ==
                                                                                         "started" else "unknown")
    assert writes(pve9_sim) == []
    assert [g["vmid"] for g in pve9_sim.api().cluster.resources.get(type="vm")] == [100]


def test_a_clone_source_pvestatd_has_not_reported_is_found_by_name(pve9_sim, run_module, tune):
    tune(pve9_sim, stats_interval=3600)
    make_template(pve9_sim)
    result = run_module(proxmox_guest, dict(pve9_sim.module_params(), name="worker-1", node="pve-1",
                                            clone="ubuntu-2404-cloud", full=False, storage="nas"))
    assert not result.get("failed"), result
    assert result["changed"] and result["vmid"] == 100
    assert pve9_sim.api().nodes("pve-1").qemu(100).config.get()["name"] == "worker-1"


@pytest.mark.parametrize(("extra", "named"), [
    (dict(hostpci={"hostpci0": "0000:01:00,pcie=1"}, config={"machine": "q35"}), "hostpci0 (raw device 0000:01:00)"),
    (dict(config={"args": "-cpu host,kvm=off"}), "args"),
    (dict(config={"usb0": "host=1234:5678"}), "usb0 (raw device 1234:5678)"),
])
def test_root_only_settings_are_refused_for_a_token_before_any_write(pve9_sim, run_module, extra, named):
    result = run_module(proxmox_guest, vm_args(pve9_sim, **extra))
    assert result["failed"]
    assert result["msg"].startswith("VM k8s-cp-1 sets %s, which Proxmox VE lets only root@pam itself set" % named)
    assert "API token root@pam!" not in result["msg"] or "logs in as API token" in result["msg"]
    assert "mapping" in result["msg"]
    assert writes(pve9_sim) == []


def test_root_only_settings_work_for_root_pam_with_a_password(pve9_sim, run_module):
    args = as_root(vm_args(pve9_sim), pve9_sim)
    args.update(hostpci={"hostpci0": "0000:01:00,pcie=1"}, config={"machine": "q35", "args": "-cpu host"})
    result = run_module(proxmox_guest, args)
    assert not result.get("failed"), result
    config = pve9_sim.api().nodes("pve-1").qemu(100).config.get()
    assert (config["hostpci0"], config["args"]) == ("0000:01:00,pcie=1", "-cpu host")


def test_a_mapped_device_is_fine_for_a_token(pve9_sim, run_module):
    pve9_sim.api(auth="password").cluster.mapping.pci.post(id="rtx3090",
                                                           map=["node=pve-1,path=0000:01:00.0,id=10de:2204"])
    result = run_module(proxmox_guest, vm_args(pve9_sim, hostpci={"hostpci0": {"mapping": "rtx3090", "pcie": True}},
                                               config={"machine": "q35"}))
    assert not result.get("failed"), result


STALE = "detected modified configuration - file changed by other user? Try again."


def test_update_sends_the_digest_and_retries_once_when_it_is_stale(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    digest = pve9_sim.api().nodes("pve-1").qemu(100).config.get()["digest"]
    pve9_sim.clear_log()
    pve9_sim.fault("http_error", method="POST", path=r"^/nodes/pve-1/qemu/100/config$", status=500, message=STALE)
    result = run_module(proxmox_guest, vm_args(pve9_sim, cores=4))
    assert not result.get("failed"), result
    sent = [w for w in pve9_sim.writes() if w["path"] == "/nodes/pve-1/qemu/100/config"]
    assert [w["status"] for w in sent] == [500, 200]
    assert [w["params"] for w in sent] == [{"cores": "4", "digest": digest}] * 2
    reads = [r["path"] for r in pve9_sim.requests_log() if r["method"] == "GET"]
    assert reads.count("/nodes/pve-1/qemu/100/config") == 3  # plan, re-read after the refusal, read back
    assert pve9_sim.api().nodes("pve-1").qemu(100).config.get()["cores"] == 4


def test_a_digest_stale_twice_fails_with_the_pve_message(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.fault("http_error", method="POST", path=r"^/nodes/pve-1/qemu/100/config$", status=500, message=STALE,
                   count=2)
    result = run_module(proxmox_guest, vm_args(pve9_sim, cores=4))
    assert result["failed"] and "configuring VM 100 (k8s-cp-1)" in result["msg"] and STALE in result["msg"]


def test_a_locked_guest_gets_a_clear_message_or_a_wait(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    root = pve9_sim.api(auth="password").nodes("pve-1").qemu(100)
    root.config.put(lock="backup")
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, vm_args(pve9_sim, cores=4))
    assert result["failed"]
    assert result["msg"] == ("VM 100 (k8s-cp-1) is locked (backup), so Proxmox VE refuses configuring VM 100 "
                             "(k8s-cp-1): a backup is running on it. Wait for it to finish and run again, or set "
                             "lock_timeout to wait for the lock to go away")
    assert writes(pve9_sim) == []
    assert run_module(proxmox_guest, vm_args(pve9_sim))["changed"] is False  # no change needed: the lock is no matter
    timer = threading.Timer(0.5, lambda: root.config.put(delete="lock", skiplock=1))
    timer.start()
    try:
        waited = run_module(proxmox_guest, vm_args(pve9_sim, cores=4, lock_timeout=30))
    finally:
        timer.join()
    assert not waited.get("failed"), waited
    assert pve9_sim.api().nodes("pve-1").qemu(100).config.get()["cores"] == 4
    root.config.put(lock="migrate")
    timed_out = run_module(proxmox_guest, vm_args(pve9_sim, cores=2, lock_timeout=1))
    assert timed_out["failed"] and "is locked (migrate) (waited 1s)" in timed_out["msg"]
    assert "a migration is running on it" in timed_out["msg"]


def test_a_lock_taken_between_read_and_write_is_reported_clearly(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim))
    pve9_sim.fault("http_error", method="POST", path=r"^/nodes/pve-1/qemu/100/config$", status=500,
                   message="VM 100 is locked (snapshot)")
    result = run_module(proxmox_guest, vm_args(pve9_sim, cores=4))
    assert result["failed"] and result["msg"].startswith("VM 100 (k8s-cp-1) is locked (snapshot), so Proxmox VE "
                                                         "refuses configuring")


@pytest.mark.parametrize("option", [{"discard": False}, {"cache": "writeback"}, {"iothread": True}])
def test_disk_option_changes_of_a_running_vm_wait_for_a_restart(pve9_sim, run_module, option):
    run_module(proxmox_guest, vm_args(pve9_sim, state="started"))
    disks = {"scsi0": dict({"storage": "local-lvm", "size": "8G", "discard": True, "ssd": True}, **option),
             "ide2": "local-lvm:cloudinit"}
    changed = run_module(proxmox_guest, vm_args(pve9_sim, state="started", disks=disks))
    assert changed["changed"] and changed["pending_reboot"] is True
    pending = pve9_sim.api().nodes("pve-1").qemu(100).pending.get()
    assert [p["key"] for p in pending if "pending" in p] == ["scsi0"]
    pve9_sim.clear_log()
    # A later run with restart_on_change finds what the earlier run left pending and reboots.
    applied = run_module(proxmox_guest, vm_args(pve9_sim, state="started", disks=disks, restart_on_change=True))
    assert applied["changed"] and applied["changes"] == {"power": "reboot"} and applied["pending_reboot"] is False
    assert paths(pve9_sim) == [("POST", "/nodes/pve-1/qemu/100/status/reboot")]
    assert not [p for p in pve9_sim.api().nodes("pve-1").qemu(100).pending.get() if "pending" in p]


def test_disk_throttle_changes_apply_at_once(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim, state="started"))
    disks = {"scsi0": {"storage": "local-lvm", "size": "8G", "discard": True, "ssd": True, "mbps_rd": 200},
             "ide2": "local-lvm:cloudinit"}
    changed = run_module(proxmox_guest, vm_args(pve9_sim, state="started", disks=disks))
    assert changed["changed"] and changed["pending_reboot"] is False


def test_tags_compare_as_pve_stores_them(pve9_sim, run_module):
    run_module(proxmox_guest, vm_args(pve9_sim, tags=["k8s", "gpu", "control-plane", "k8s"]))
    assert pve9_sim.api().nodes("pve-1").qemu(100).config.get()["tags"] == "control-plane;gpu;k8s"
    pve9_sim.clear_log()
    again = run_module(proxmox_guest, vm_args(pve9_sim, tags=["gpu", "control-plane", "k8s"]))
    assert again["changed"] is False and writes(pve9_sim) == []
