# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role ailab.cluster.proxmox_guests: one expression per list, not one task per guest.

* ``proxmox_guests_module_items``: the role's guest list as the items of ``proxmox_guest``'s ``guests``;
* ``proxmox_guests_hosts``: the module's results as the fact ``proxmox_guests_hosts`` (addresses, groups);
* ``proxmox_guests_ha_resources``: the HA resources of the guests that opt in with ``ha``.

Their documentation is in the ``<filter name>.yml`` files next to this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# A static address in cloud-init ipconfig0 (VMs) or a container's net0: ip=192.168.10.21/24.
STATIC_IP = re.compile(r"(?:^|,)ip=([0-9a-fA-F.:]+)/")


def _dicts(value, what, filter_name):
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise AnsibleFilterError("%s: %s must be a list of dicts, got %s" % (filter_name, what, type(value).__name__))
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise AnsibleFilterError("%s: %s[%s] must be a dict, got %s" % (filter_name, what, index, type(item).__name__))
    return items


def proxmox_guests_module_items(guests, defaults=None, qemu_only=(), lxc_only=(), role_keys=()):
    """Each guest as an item of proxmox_guest: the defaults that apply to its type, then its own keys, without
    the role's keys. ``defaults`` merge one level deep (a guest's ``disks`` replaces the default ``disks``)."""
    if defaults is not None and not isinstance(defaults, Mapping):
        raise AnsibleFilterError("proxmox_guests_module_items: defaults must be a dict, got %s"
                                 % type(defaults).__name__)
    defaults = defaults or {}
    items = []
    for guest in _dicts(guests, "the guest list", "proxmox_guests_module_items"):
        foreign = qemu_only if guest.get("type", "qemu") == "lxc" else lxc_only
        item = dict((k, v) for k, v in defaults.items() if k not in foreign)
        item.update(guest)
        items.append(dict((k, v) for k, v in item.items() if k not in role_keys))
    return items


def _static_address(result, item):
    key = "ipconfig0" if result.get("type") == "qemu" else "net0"
    config = result.get("config")
    if isinstance(config, Mapping):
        value = config.get(key, "")
    else:
        # Not read (config_check: fingerprint): the guest matches the options, so take them.
        option = "ipconfig" if result.get("type") == "qemu" else "networks"
        value = ((item or {}).get(option) or {}).get(key, "")
    if isinstance(value, Mapping):
        value = ",".join("%s=%s" % (k, v) for k, v in value.items())
    match = STATIC_IP.search(str(value or ""))
    return match.group(1) if match else ""


def proxmox_guests_hosts(results, guests, items=None, inventory_groups=()):
    """One host entry per guest that exists after the run, with the address Ansible should use."""
    results = _dicts(results, "the module results", "proxmox_guests_hosts")
    guests = _dicts(guests, "the guest list", "proxmox_guests_hosts")
    items = _dicts(items, "the module items", "proxmox_guests_hosts") if items is not None else [{}] * len(guests)
    if len(items) != len(guests):
        raise AnsibleFilterError("proxmox_guests_hosts: the module items (%s) must match the guest list (%s) one to one"
                                 % (len(items), len(guests)))
    hosts = []
    for guest, item, result in zip(guests, items, results):
        if result.get("status") == "absent":
            continue
        addresses = list(result.get("ip_addresses") or [])
        hosts.append(dict(
            name=result.get("name"),
            vmid=result.get("vmid"),
            node=result.get("node"),
            type=result.get("type"),
            status=result.get("status"),
            ip_addresses=addresses,
            ansible_host=guest.get("ansible_host") or _static_address(result, item) or (addresses[0] if addresses else ""),
            groups=list(inventory_groups or []) + list(guest.get("groups") or []),
        ))
    return hosts


def proxmox_guests_ha_resources(results, guests, check_mode=False):
    """The items of proxmox_ha_resource's ``resources`` for the guests with ``ha`` (true or a dict of options)."""
    results = _dicts(results, "the module results", "proxmox_guests_ha_resources")
    guests = _dicts(guests, "the guest list", "proxmox_guests_ha_resources")
    resources = []
    for guest, result in zip(guests, results):
        if guest.get("ha", False) is False or result.get("status") == "absent":
            continue
        if check_mode and result.get("created"):
            continue  # in check mode a guest this run would create does not exist yet: HA cannot take it
        resource = dict(vmid=result.get("vmid"), type="vm" if result.get("type") == "qemu" else "ct")
        if isinstance(guest["ha"], Mapping):
            resource.update(guest["ha"])
        resources.append(resource)
    return resources


class FilterModule(object):
    def filters(self):
        return {
            "proxmox_guests_module_items": proxmox_guests_module_items,
            "proxmox_guests_hosts": proxmox_guests_hosts,
            "proxmox_guests_ha_resources": proxmox_guests_ha_resources,
        }
