#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_pci_mapping
short_description: Manage Proxmox VE cluster PCI resource mappings (GPUs for passthrough)
version_added: 0.1.0
description:
  - Creates, updates and removes cluster-wide PCI resource mappings (C(/cluster/mapping/pci),
    B(Datacenter > Resource Mappings)). A mapping names the same kind of card on several nodes,
    so that a VM with C(hostpci0 mapping=<id>) can start, and move, on any node that has an entry.
  - The module builds the Proxmox VE C(map) property strings from O(map) dicts; the entries compare
    without regard to order, PCI addresses and IDs without regard to case.
  - One mapping with the top-level options, or many with O(mappings) (list mode). Either way the
    mapping list is read once and only the differences are written.
  - With O(check_devices) (default) the entries that would be written are checked against the PCI
    devices each node reports before anything is written, so a wrong address or a different card
    fails the run instead of failing the VM start later.
  - Only the options you set are managed; the others keep their current values.
author:
  - ailab.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ailab.cluster.proxmox
  - ailab.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  id:
    description:
      - Mapping ID, for example V(rtx3090). Required unless O(mappings) is given.
    type: str
  state:
    description:
      - V(present) creates or updates the mapping, V(absent) removes it (VMs that use it can then no
        longer start).
      - In list mode, the state of the entries that do not set their own.
    type: str
    choices: [present, absent]
    default: present
  description: &description
    description: Description of the mapping. Empty string to remove it.
    type: str
  map: &map
    description:
      - The devices, one entry per node and device; required to create a mapping. Replaces the
        current entries when set.
    type: list
    elements: dict
    suboptions:
      node:
        description: Cluster node that has the device.
        type: str
        required: true
      path:
        description:
          - PCI address of the device, for example V(0000:01:00.0), or V(0000:01:00) for all functions
            of the card (GPU and its audio device). The short C(lspci) form V(01:00.0) gets the
            V(0000:) domain added.
          - A list gives alternatives on that node; the first free one is used when the VM starts.
        type: list
        elements: str
        required: true
      id:
        description: Vendor and device ID the device must have, for example V(10de:2204).
        type: str
        required: true
      subsystem_id:
        description: Subsystem vendor and device ID, for example V(10de:1454).
        type: str
      iommugroup:
        description: IOMMU group the device must be in.
        type: int
      description:
        description: Description of this node's device.
        type: str
  mdev: &mdev
    description: The devices can provide mediated devices (vGPU).
    type: bool
  live_migration_capable: &live_migration_capable
    description:
      - Mark the devices as able to be live-migrated (experimental in Proxmox VE; needs driver support).
    type: bool
  mappings:
    description:
      - List mode. Mappings to manage, each a dict with the same keys as the top-level options
        (O(id) is required, O(state) defaults to the top-level O(state)).
      - Cannot be combined with the top-level mapping options.
    type: list
    elements: dict
    suboptions:
      id:
        description: Mapping ID.
        type: str
        required: true
      state:
        description: V(present) or V(absent); defaults to the top-level O(state).
        type: str
        choices: [present, absent]
      description: *description
      map: *map
      mdev: *mdev
      live_migration_capable: *live_migration_capable
  purge:
    description: In list mode, remove every PCI mapping that O(mappings) does not name.
    type: bool
    default: false
  check_devices:
    description:
      - Before writing, read the PCI devices of every node named in an entry that changes (one read
        of C(/nodes) and one per node) and fail when a path does not exist there or the device's
        IDs or IOMMU group differ, or when the entry lacks the subsystem ID or (for its first path) the
        IOMMU group the device has, as Proxmox VE checks them when a VM using the mapping starts.
      - Nodes that are offline are skipped with a warning. Set to V(false) to map hardware that is
        not installed yet.
      - A node where IOMMU is not enabled yet reports IOMMU group -1 for every device (a fresh host);
        there O(map[].iommugroup) is not checked and the module warns. Proxmox VE refuses to start a VM
        with the mapping on that node until IOMMU is on (the C(ailab.cluster.proxmox_gpu_passthrough) role
        enables it).
    type: bool
    default: true
  planned_nodes:
    description:
      - Check mode only. Names of nodes that join the cluster earlier in the same run (the
        C(ailab.cluster.proxmox_cluster) role's nodes), so that a plan in check mode on a fresh cluster
        accepts them in O(map[].node) (their devices are checked when they are members) instead of refusing them as unknown. Ignored outside check mode.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: The RTX 3090 of both nodes as one mapping, so GPU VMs can run on either node
  ailab.cluster.proxmox_pci_mapping:
    id: rtx3090
    description: GeForce RTX 3090 (GPU and audio function)
    map:
      - {node: pve-1, path: "0000:01:00", id: "10de:2204", subsystem_id: "10de:1454", iommugroup: 14}
      - {node: pve-2, path: "0000:01:00", id: "10de:2204", subsystem_id: "10de:1454", iommugroup: 14}

- name: All mappings of the lab in one read
  ailab.cluster.proxmox_pci_mapping:
    mappings:
      - id: rtx3090
        map:
          - {node: pve-1, path: "0000:01:00", id: "10de:2204"}
          - {node: pve-2, path: "0000:01:00", id: "10de:2204"}
      - id: a100-vgpu
        mdev: true
        map:
          - {node: pve-3, path: ["0000:41:00.0", "0000:c1:00.0"], id: "10de:20b5"}
      - id: old-card
        state: absent
"""

RETURN = r"""
mapping:
  description: The mapping after the run (as Proxmox VE stores it); empty when absent. Single mode.
  returned: success and O(id) given
  type: dict
  sample:
    id: rtx3090
    type: pci
    description: GeForce RTX 3090
    map: ["node=pve-1,path=0000:01:00,id=10de:2204,iommugroup=14", "node=pve-2,path=0000:01:00,id=10de:2204,iommugroup=14"]
mappings:
  description: The mappings after the run, every present entry of O(mappings) in order. List mode.
  returned: success and O(mappings) given
  type: list
  elements: dict
  sample: [{id: rtx3090, map: ["node=pve-1,path=0000:01:00,id=10de:2204"]}]
changes:
  description: What was written (or would be in check mode), one entry per created, updated or removed mapping.
  returned: always
  type: list
  elements: dict
  sample: [{id: rtx3090, action: update, params: {map: ["node=pve-1,path=0000:01:00,id=10de:2204"]}}]
"""

import re

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    REMOVE,
    ProxmoxError,
    PveArray,
    diff_config,
)
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_list import (
    Change,
    CollectionManager,
    run_collection_module,
)

MAP_OPTIONS = dict(
    node=dict(type="str", required=True),
    path=dict(type="list", elements="str", required=True),
    id=dict(type="str", required=True),
    subsystem_id=dict(type="str"),
    iommugroup=dict(type="int"),
    description=dict(type="str"),
)
ITEM_OPTIONS = dict(
    id=dict(type="str"),
    description=dict(type="str"),
    map=dict(type="list", elements="dict", options=MAP_OPTIONS),
    mdev=dict(type="bool"),
    live_migration_capable=dict(type="bool"),
)
DEFAULTS = {"mdev": 0, "live-migration-capable": 0}
MAP_KEYS = ("node", "path", "id", "subsystem-id", "iommugroup", "description")
MAPPING_ID = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
NODE_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$")
PCI_PATH = re.compile(r"^(?:([0-9a-f]{4,}):)?([0-9a-f]{2}):([0-9a-f]{2})(?:\.([0-7]))?$")
PCI_ID = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")


def parse_entry(text):
    """A PVE map property string as a dict."""
    result = {}
    for part in str(text).split(","):
        key, sep, value = part.partition("=")
        if sep:
            result[key.strip()] = value.strip()
    return result


def entry_key(entry):
    """Comparison key of one map entry (dict as parse_entry gives)."""
    return tuple((k, str(entry.get(k, "")).lower() if k != "description" else str(entry.get(k, "")))
                 for k in MAP_KEYS if entry.get(k) not in (None, ""))


def map_key(entries):
    return sorted(entry_key(parse_entry(e)) for e in entries or [])


class PciMappingManager(CollectionManager):
    kind = "PCI mapping"
    path = "cluster/mapping/pci"
    id_key = "id"
    list_key = "mappings"
    result_key = "mapping"
    item_options = ITEM_OPTIONS

    def entries(self, item):
        """The map entries as PVE property strings, normalised (raises on bad input)."""
        name = item["id"]
        result, seen = [], set()
        for entry in item["map"]:
            node = entry["node"]
            if not NODE_NAME.match(node):
                raise ProxmoxError("PCI mapping %s: %r is not a valid node name" % (name, node))
            paths = []
            for path in entry["path"]:
                match = PCI_PATH.match(path.strip().lower())
                if not match:
                    raise ProxmoxError("PCI mapping %s: path %s on %s is not a PCI address; use the form 0000:01:00.0 "
                                       "(lspci -D) or 0000:01:00 for all functions" % (name, path, node))
                domain, bus, slot, function = match.groups()
                full = "%s:%s:%s" % (domain or "0000", bus, slot)
                paths.append(full + ("." + function if function is not None else ""))
            if not paths:
                raise ProxmoxError("PCI mapping %s: the entry for %s has no path" % (name, node))
            fields = [("node", node), ("path", ";".join(paths))]
            for key, option in (("id", "id"), ("subsystem-id", "subsystem_id")):
                value = entry[option]
                if value is None:
                    continue
                value = value.strip().lower()
                if value.startswith("0x") or not PCI_ID.match(value):
                    raise ProxmoxError("PCI mapping %s: %s %s on %s is not a vendor:device ID such as 10de:2204 "
                                       "(lspci -nn)" % (name, option, entry[option], node))
                fields.append((key, value))
            if entry["iommugroup"] is not None:
                if entry["iommugroup"] < 0:
                    raise ProxmoxError("PCI mapping %s: iommugroup on %s must be 0 or more" % (name, node))
                fields.append(("iommugroup", str(entry["iommugroup"])))
            if entry["description"]:
                if re.search(r"[,=;]", entry["description"]):
                    raise ProxmoxError("PCI mapping %s: the description of the entry for %s cannot contain ',', '=' "
                                       "or ';'" % (name, node))
                fields.append(("description", entry["description"]))
            for path in paths:
                if (node, path) in seen:
                    raise ProxmoxError("PCI mapping %s: %s %s is mapped twice; keep one entry" % (name, node, path))
                seen.add((node, path))
            result.append(",".join("%s=%s" % field for field in fields))
        return result

    def check_item(self, item):
        name = item["id"]
        if not MAPPING_ID.match(name):
            raise ProxmoxError("PCI mapping %s: invalid mapping ID; use letters, digits, '-' and '_', starting with a "
                               "letter (at least two characters)" % name)
        if item["state"] == "present" and item["map"] is not None:
            if not item["map"]:
                raise ProxmoxError("PCI mapping %s: map is empty; list one entry per node, or use state: absent" % name)
            self.entries(item)

    def plan_present(self, item, entry):
        name = item["id"]
        desired = {}
        if item["description"] is not None:
            desired["description"] = item["description"] or REMOVE
        for option in ("mdev", "live_migration_capable"):
            if item[option] is not None:
                desired[option.replace("_", "-")] = item[option]
        entries = self.entries(item) if item["map"] is not None else None
        if entry is None:
            if entries is None:
                raise ProxmoxError("PCI mapping %s does not exist; set map (one entry per node) to create it" % name)
            params = dict((k, v) for k, v in desired.items() if v != REMOVE)
            params["map"] = PveArray(entries)
            change = Change(name, "create", params=params)
            change.after = dict(change.params, map=list(entries))
            return change
        params, delete, before, after = diff_config(desired, entry, defaults=DEFAULTS)
        if entries is not None:
            before["map"] = list(entry.get("map") or [])
            after["map"] = list(entries)
            if map_key(entries) != map_key(entry.get("map")):
                params["map"] = PveArray(entries)
        if not params and not delete:
            return None
        return Change(name, "update", params=params, delete=delete, before=before, after=after)

    def verify(self, changes):
        """Check the entries that will be written against the devices the nodes report."""
        if not self.module.params["check_devices"]:
            return
        wanted = {}
        for change in changes:
            for text in change.params.get("map") or []:
                entry = parse_entry(text)
                wanted.setdefault(entry["node"], []).append((change.item_id, entry))
        if not wanted:
            return
        nodes = dict((n["node"], n) for n in self.client.get("nodes", what="the cluster nodes") or [])
        planned = set(self.module.params["planned_nodes"]) if self.module.check_mode else set()
        for node in sorted(wanted):
            if node not in nodes and node in planned:
                self.module.warn("PCI mapping: node %s joins the cluster in this run, its devices are checked once it "
                                 "is a member" % node)
                continue
            if node not in nodes:
                raise ProxmoxError("PCI mapping %s: node %s is not a cluster node (nodes: %s); fix the node name" %
                                   (wanted[node][0][0], node, ", ".join(sorted(nodes))))
            if nodes[node].get("status") != "online":
                self.module.warn("PCI mapping: node %s is offline, its devices were not checked" % node)
                continue
            devices = self.client.get("nodes/%s/hardware/pci" % node, what="the PCI devices of %s" % node) or []
            by_address = dict((str(d.get("id", "")).lower(), d) for d in devices)
            unchecked = []
            for mapping_id, entry in wanted[node]:
                for index, path in enumerate(entry["path"].split(";")):
                    if not self._check_device(mapping_id, node, path, entry, by_address, index == 0):
                        unchecked.append(mapping_id)
            if unchecked:
                self.module.warn("PCI mapping %s: IOMMU is not enabled on %s yet (its devices report IOMMU group -1), "
                                 "so iommugroup was not checked there; a VM cannot use the mapping on %s until IOMMU is "
                                 "on (the proxmox_gpu_passthrough role enables it and reboots the node)"
                                 % (", ".join(sorted(set(unchecked))), node, node))

    @staticmethod
    def _check_device(mapping_id, node, path, entry, by_address, first):
        """Fail when the device does not match the entry; False when its IOMMU group could not be checked.

        As Proxmox VE checks an entry when a VM using it starts (pve-guest-common src/PVE/Mapping/PCI.pm
        assert_valid): the id, the subsystem ID when the device has one (and only then), the IOMMU group of
        the first path only; a property the device has and the entry lacks fails the start ("missing
        expected property"), so it is refused here.
        """
        device = by_address.get(path if "." in path else path + ".0")
        if device is None:
            raise ProxmoxError("PCI mapping %s: %s has no PCI device %s; check the address with lspci -D on %s, or set "
                               "check_devices: false to map hardware that is not installed yet" %
                               (mapping_id, node, path, node))

        def pair(vendor, dev):
            return "%s:%s" % (str(device.get(vendor, ""))[2:].lower(), str(device.get(dev, ""))[2:].lower())

        found = pair("vendor", "device")
        if entry.get("id") and entry["id"] != found:
            raise ProxmoxError("PCI mapping %s: device %s on %s is %s, not %s (%s); fix id or path" %
                               (mapping_id, path, node, found, entry["id"], device.get("device_name", "unknown device")))
        found_sub = pair("subsystem_vendor", "subsystem_device")
        has_sub = bool(device.get("subsystem_vendor")) and bool(device.get("subsystem_device"))
        if has_sub and not entry.get("subsystem-id"):
            raise ProxmoxError("PCI mapping %s: device %s on %s has subsystem ID %s and the entry names none; add "
                               "subsystem_id: %s (Proxmox VE refuses to start a VM with this entry: missing expected "
                               "property 'subsystem-id')" % (mapping_id, path, node, found_sub, found_sub))
        if entry.get("subsystem-id") and not has_sub:
            raise ProxmoxError("PCI mapping %s: device %s on %s reports no subsystem ID; remove subsystem_id (Proxmox "
                               "VE refuses to start a VM with this entry: unexpected property 'subsystem-id')"
                               % (mapping_id, path, node))
        if entry.get("subsystem-id") and entry["subsystem-id"] != found_sub:
            raise ProxmoxError("PCI mapping %s: device %s on %s has subsystem ID %s, not %s; fix subsystem_id" %
                               (mapping_id, path, node, found_sub, entry["subsystem-id"]))
        group = device.get("iommugroup")
        if not first or group is None:
            return True
        if str(group) == "-1":
            # IOMMU is off on the node (pve-common PVE/SysFSTools.pm lspci): the group exists only once it is on.
            return False
        if entry.get("iommugroup") in (None, ""):
            raise ProxmoxError("PCI mapping %s: device %s on %s is in IOMMU group %s and the entry names none; add "
                               "iommugroup: %s (Proxmox VE refuses to start a VM with this entry: missing expected "
                               "property 'iommugroup')" % (mapping_id, path, node, group, group))
        if str(group) != entry["iommugroup"]:
            raise ProxmoxError("PCI mapping %s: device %s on %s is in IOMMU group %s, not %s; fix iommugroup" %
                               (mapping_id, path, node, group, entry["iommugroup"]))
        return True


def main():
    run_collection_module(PciMappingManager, check_devices=dict(type="bool", default=True),
                          planned_nodes=dict(type="list", elements="str", default=[]))


if __name__ == "__main__":
    main()
