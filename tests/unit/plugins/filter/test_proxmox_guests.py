"""Filters of the role proxmox_guests (plugins/filter/proxmox_guests.py)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.proxmox_guests import (
    FilterModule,
    proxmox_guests_ha_resources,
    proxmox_guests_hosts,
    proxmox_guests_module_items,
)

QEMU_ONLY = ["sockets", "cpu", "ipconfig", "ciuser", "cipassword", "sshkeys", "agent", "hostpci"]
LXC_ONLY = ["ostemplate", "unprivileged", "features", "password", "ssh_public_keys", "swap"]
ROLE_KEYS = ["groups", "ha", "ansible_host"]


def items(guests, defaults):
    return proxmox_guests_module_items(guests, defaults, qemu_only=QEMU_ONLY, lxc_only=LXC_ONLY, role_keys=ROLE_KEYS)


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"proxmox_guests_module_items", "proxmox_guests_hosts",
                                             "proxmox_guests_ha_resources"}


# ------------------------------------------------------------------------------ module items
def test_module_items_take_the_defaults_of_their_type_then_their_own_keys():
    defaults = {"storage": "local-lvm", "agent": True, "ciuser": "ubuntu", "unprivileged": True,
                "disks": {"scsi0": {"size": "32G"}}, "memory": 2048}
    guests = [{"name": "k8s-cp-1", "vmid": 201, "memory": 8192, "groups": ["kube_control_plane"],
               "ha": {"state": "started"}, "ansible_host": "10.0.0.1", "disks": {"scsi0": {"size": "64G"}}},
              {"name": "nfs", "type": "lxc", "ostemplate": "local:vztmpl/x.tar.zst"}]
    assert items(guests, defaults) == [
        {"name": "k8s-cp-1", "vmid": 201, "memory": 8192, "storage": "local-lvm", "agent": True, "ciuser": "ubuntu",
         "disks": {"scsi0": {"size": "64G"}}},  # one level deep: the guest's disks replace the default disks
        {"name": "nfs", "type": "lxc", "ostemplate": "local:vztmpl/x.tar.zst", "storage": "local-lvm",
         "unprivileged": True, "disks": {"scsi0": {"size": "32G"}}, "memory": 2048},
    ]


def test_module_items_keep_the_order_and_leave_the_input_alone():
    guests = [{"name": "g%02d" % i} for i in range(50)]
    defaults = {"cores": 1}
    result = items(guests, defaults)
    assert [g["name"] for g in result] == ["g%02d" % i for i in range(50)]
    assert all(g["cores"] == 1 for g in result)
    assert guests[0] == {"name": "g00"} and defaults == {"cores": 1}


def test_module_items_of_an_empty_list():
    assert items([], {"cores": 1}) == [] and proxmox_guests_module_items(None) == []


@pytest.mark.parametrize("guests, defaults, message", [
    ("k8s-cp-1", {}, "the guest list must be a list of dicts, got str"),
    ([{"name": "a"}, "b"], {}, "the guest list[1] must be a dict, got str"),
    ([{"name": "a"}], ["cores"], "defaults must be a dict, got list"),
])
def test_module_items_refuse_what_is_not_a_list_of_dicts(guests, defaults, message):
    with pytest.raises(AnsibleFilterError) as raised:
        items(guests, defaults)
    assert message in str(raised.value)


# ------------------------------------------------------------------------------ hosts
def result(name, vmid, **extra):
    entry = dict(name=name, vmid=vmid, node="pve-1", type="qemu", status="running", ip_addresses=[], created=False)
    entry.update(extra)
    return entry


def test_hosts_take_the_explicit_then_the_static_then_the_reported_address():
    guests = [{"name": "a", "ansible_host": "a.lab.example", "groups": ["kube_control_plane"]},
              {"name": "b", "groups": ["kube_node", "kube_gpu_node"]},
              {"name": "c"},
              {"name": "d", "type": "lxc"},
              {"name": "e"}]
    results = [result("a", 201, config={"ipconfig0": "ip=192.168.10.21/24,gw=192.168.10.1"}, ip_addresses=["10.9.9.9"]),
               result("b", 211, config={"ipconfig0": "gw=192.168.10.1,ip=192.168.10.31/24"}, ip_addresses=["10.9.9.9"]),
               result("c", 212, config={"ipconfig0": "ip=dhcp"}, ip_addresses=["10.0.0.12", "fd00::12"]),
               result("d", 220, type="lxc", config={"net0": "name=eth0,bridge=vmbr0,ip=192.168.10.40/24"}),
               result("e", 230, config={}, status="stopped")]
    hosts = proxmox_guests_hosts(results, guests, None, ["k8s_cluster"])
    assert [(h["name"], h["ansible_host"]) for h in hosts] == [
        ("a", "a.lab.example"), ("b", "192.168.10.31"), ("c", "10.0.0.12"), ("d", "192.168.10.40"), ("e", "")]
    assert hosts[1] == {"name": "b", "vmid": 211, "node": "pve-1", "type": "qemu", "status": "running",
                        "ip_addresses": ["10.9.9.9"], "ansible_host": "192.168.10.31",
                        "groups": ["k8s_cluster", "kube_node", "kube_gpu_node"]}
    assert hosts[2]["groups"] == ["k8s_cluster"]


def test_hosts_of_guests_not_read_take_the_static_address_from_the_options():
    # config_check: fingerprint returns no config for the guests it left alone
    guests = [{"name": "a"}, {"name": "b"}, {"name": "c", "type": "lxc"}]
    module_items = [{"name": "a", "ipconfig": {"ipconfig0": {"ip": "192.168.10.21/24", "gw": "192.168.10.1"}}},
                    {"name": "b", "ipconfig": {"ipconfig0": "ip=192.168.10.22/24"}},
                    {"name": "c", "type": "lxc", "networks": {"net0": {"name": "eth0", "ip": "192.168.10.23/24"}}}]
    results = [result("a", 201, checked="fingerprint"), result("b", 202, checked="fingerprint"),
               result("c", 203, type="lxc", checked="fingerprint")]
    hosts = proxmox_guests_hosts(results, guests, module_items, [])
    assert [h["ansible_host"] for h in hosts] == ["192.168.10.21", "192.168.10.22", "192.168.10.23"]


def test_hosts_skip_removed_guests_and_an_empty_result():
    guests = [{"name": "a"}, {"name": "b", "state": "absent"}]
    results = [result("a", 201), result("b", 202, status="absent")]
    assert [h["name"] for h in proxmox_guests_hosts(results, guests, None, [])] == ["a"]
    assert proxmox_guests_hosts([], guests, None, ["k8s_cluster"]) == []  # the module did not run


def test_hosts_refuse_items_that_do_not_match_the_guests():
    with pytest.raises(AnsibleFilterError) as raised:
        proxmox_guests_hosts([result("a", 201)], [{"name": "a"}, {"name": "b"}], [{"name": "a"}], [])
    assert "must match the guest list" in str(raised.value)


# ------------------------------------------------------------------------------ HA resources
def test_ha_resources_of_the_guests_that_opt_in():
    guests = [{"name": "a", "ha": True}, {"name": "b"}, {"name": "c", "ha": False},
              {"name": "d", "type": "lxc", "ha": {"state": "started", "max_restart": 2}}, {"name": "e", "ha": True}]
    results = [result("a", 201), result("b", 202), result("c", 203), result("d", 204, type="lxc"),
               result("e", 205, status="absent")]
    assert proxmox_guests_ha_resources(results, guests) == [
        {"vmid": 201, "type": "vm"}, {"vmid": 204, "type": "ct", "state": "started", "max_restart": 2}]


def test_ha_resources_leave_out_guests_check_mode_would_create():
    guests = [{"name": "a", "ha": True}, {"name": "b", "ha": True}]
    results = [result("a", 201), result("b", 202, created=True)]
    assert proxmox_guests_ha_resources(results, guests, check_mode=True) == [{"vmid": 201, "type": "vm"}]
    assert len(proxmox_guests_ha_resources(results, guests, check_mode=False)) == 2
