"""Guest rules of a real PVE the simulator models: the pvestatd lag of /cluster/resources, tags as
PVE stores them, root-only options, locks, stale digests and the destroy of a running guest.

Each test names the PVE source of its rule.
"""

import time

import pytest
from proxmoxer.core import ResourceException

DEBIAN = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def _vm(api, wait, vmid=100, node="pve-1", **options):
    options.setdefault("scsi0", "local-lvm:8")
    wait(api, api.nodes(node).qemu.post(vmid=vmid, **options))
    return api.nodes(node).qemu(vmid)


def _entry(api, vmid):
    return next(e for e in api.cluster.resources.get(type="vm") if e["vmid"] == vmid)


def _after_round_start(interval, margin=0.05):
    """Sleep until just after a pvestatd round began (rounds start at multiples of ``interval``)."""
    time.sleep(interval - (time.time() % interval) + margin)


def _error(call, *args, **kwargs):
    with pytest.raises(ResourceException) as raised:
        call(*args, **kwargs)
    return raised.value.status_code, raised.value.content


# ------------------------------------------------------------------ /cluster/resources lag
# pve-manager PVE/API2/Cluster.pm (resources) and PVE/API2Tools.pm extract_vm_stats: a guest's
# name, status, template flag, CPU and memory come from the RRD data pvestatd broadcasts every 10 s;
# without data the entry has status 'unknown' and no name. lock and tags come from the live config.
def test_realistic_default_is_ten_seconds(pve9_sim):
    from pvesim.app import Settings

    assert Settings().stats_interval == 10.0
    assert pve9_sim.settings()["stats_interval"] == 0.0  # the test fixtures start fresh


def test_a_new_guest_shows_unknown_without_name_until_pvestatd_saw_it(pve9_sim, wait):
    api = pve9_sim.api()
    pve9_sim.settings(stats_interval=1.0)
    upid = api.nodes("pve-1").qemu.post(vmid=100, name="gpu-1", scsi0="local-lvm:8", tags="K8s;gpu")
    entry = _entry(api, 100)
    assert (entry["status"], entry["lock"], entry["tags"], entry["node"]) == ("unknown", "create", "gpu;K8s", "pve-1")
    assert "name" not in entry and "template" not in entry and "maxmem" not in entry
    wait(api, upid)
    deadline = time.monotonic() + 3
    while "name" not in _entry(api, 100) and time.monotonic() < deadline:
        time.sleep(0.1)
    entry = _entry(api, 100)
    assert (entry["name"], entry["status"], entry.get("lock")) == ("gpu-1", "stopped", None)


def test_status_in_resources_lags_but_status_current_is_live(pve9_sim, wait):
    api = pve9_sim.api()
    vm = _vm(api, wait, name="gpu-1")
    pve9_sim.settings(stats_interval=2.0)
    _after_round_start(2.0)
    assert _entry(api, 100)["status"] == "stopped"  # the round's data
    wait(api, vm.status.start.post())
    vm.config.put(tags="late")
    entry = _entry(api, 100)
    assert (entry["status"], entry["tags"]) == ("stopped", "late")  # status stale, tags live
    assert vm.status.current.get()["status"] == "running"
    _after_round_start(2.0)
    assert _entry(api, 100)["status"] == "running"


def test_interval_zero_is_always_fresh(pve9_sim, wait):
    api = pve9_sim.api()
    pve9_sim.settings(stats_interval=0)
    upid = api.nodes("pve-1").qemu.post(vmid=100, name="gpu-1", scsi0="local-lvm:8")
    assert (_entry(api, 100)["name"], _entry(api, 100)["status"]) == ("gpu-1", "stopped")
    wait(api, upid)


# ------------------------------------------------------------------ tags
# pve-guest-common src/PVE/GuestHelpers.pm get_unique_tags: split on ; , or spaces, repeats dropped
# without regard to case (the first spelling stays), sorted without regard to case.
def test_tags_are_stored_unique_and_sorted(pve9_sim, wait):
    api = pve9_sim.api()
    vm = _vm(api, wait, tags="zeta,gpu;K8s gpu GPU")
    assert vm.config.get()["tags"] == "gpu;K8s;zeta"
    vm.config.put(tags="b;a;a")
    assert vm.config.get()["tags"] == "a;b"
    wait(api, vm.config.post(tags="c,a"))
    assert vm.config.get()["tags"] == "a;c"


# ------------------------------------------------------------------ root-only options
# qemu-server src/PVE/API2/Qemu.pm $check_vm_modify_config_perm: returns early only for
# 'root@pam'; an API token's user id is user@realm!token (pve-access-control RPCEnvironment), so
# args and raw (non-mapped) hostpciN die with "only root can set ..." for every token (HTTP 500).
@pytest.mark.parametrize(("key", "value", "message"), [
    ("args", "-cpu host", "only root can set 'args' config"),
    ("hostpci0", "0000:01:00,pcie=1", "only root can set 'hostpci0' config for non-mapped devices"),
    ("usb0", "host=1234:5678", "only root can set 'usb0' config for non-mapped devices"),
])
def test_root_only_options_fail_for_any_token(pve9_sim, wait, key, value, message):
    token, root = pve9_sim.api(), pve9_sim.api(auth="password")
    vm = _vm(token, wait)
    assert _error(vm.config.put, **{key: value}) == (500, message)
    assert _error(token.nodes("pve-1").qemu.post, vmid=101, **{key: value}) == (500, message)
    assert key not in vm.config.get()
    root.nodes("pve-1").qemu(100).config.put(**{key: value})
    assert key in vm.config.get()


def test_mapped_devices_are_allowed_for_a_token(pve9_sim, wait):
    api = pve9_sim.api(auth="password")
    api.cluster.mapping.pci.post(id="gpu", map=["node=pve-1,path=0000:01:00.0,id=10de:2204"])
    vm = _vm(pve9_sim.api(), wait)
    vm.config.put(hostpci0="mapping=gpu,pcie=1")
    assert vm.config.get()["hostpci0"] == "mapping=gpu,pcie=1"


def test_container_bind_mounts_are_root_only(pve9_sim, wait):
    token = pve9_sim.api()
    wait(token, token.nodes("pve-1").lxc.post(vmid=120, ostemplate=DEBIAN, rootfs="local-lvm:4"))
    status, message = _error(token.nodes("pve-1").lxc(120).config.put, mp0="/srv/data,mp=/data")
    assert (status, message) == (500, "Only root can modify bind mounts (mp0)")


# ------------------------------------------------------------------ locks, digests, destroy
# qemu-server PVE/QemuConfig.pm (AbstractConfig check_lock): a locked guest refuses changes with
# "VM N is locked (backup)"; PVE::AbstractConfig lock_config compares the digest ("detected modified
# configuration - file changed by other user? Try again."); API2/Qemu.pm destroy_vm: "VM N is
# running - destroy failed".
def test_locked_guest_stale_digest_and_running_destroy(pve9_sim, wait):
    api = pve9_sim.api()
    vm = _vm(api, wait)
    digest = vm.config.get()["digest"]
    vm.config.put(cores=2)
    assert _error(vm.config.put, cores=4, digest=digest) == (
        500, "detected modified configuration - file changed by other user? Try again.")
    wait(api, vm.status.start.post())
    assert _error(vm.delete) == (500, "VM 100 is running - destroy failed")
    root = pve9_sim.api(auth="password")
    root.nodes("pve-1").qemu(100).config.put(lock="backup")
    assert _error(vm.config.put, cores=4) == (500, "VM 100 is locked (backup)")
    assert _entry(api, 100)["lock"] == "backup"
