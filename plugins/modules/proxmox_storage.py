#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_storage
short_description: Manage Proxmox VE cluster storage definitions
version_added: 0.1.0
description:
  - Creates, updates and removes storage definitions of a Proxmox VE cluster (C(/storage), the
    cluster-wide C(storage.cfg)) of type V(nfs), V(dir), V(lvm), V(lvmthin) and V(zfspool).
  - One storage with the top-level options, or many with O(storages) (list mode). Either way the
    storage configuration is read once and only the differences are written.
  - Options that Proxmox VE fixes when a storage is created (the type, V(path), V(server),
    V(export), V(vgname), V(thinpool), V(pool), ...) cannot change afterwards. A different value
    fails with a message that says so before anything is written, for every storage of the run.
  - Options that are not valid for the storage type, content types a block storage cannot hold and
    options that the Proxmox VE version does not have are refused before anything is written.
  - Only the options you set are managed; the others keep their current values.
  - Removing a storage definition (O(state=absent)) does not remove its data.
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
  storage:
    description:
      - Storage ID, for example V(nas). Required unless O(storages) is given.
    type: str
  state:
    description:
      - V(present) creates or updates the storage, V(absent) removes its definition.
      - In list mode, the state of the entries that do not set their own.
    type: str
    choices: [present, absent]
    default: present
  type: &type
    description:
      - Storage type. Required to create a storage; it cannot change afterwards.
    type: str
    choices: [dir, nfs, lvm, lvmthin, zfspool]
  content: &content
    description:
      - Content types the storage holds; the order does not matter.
      - Block storages (V(lvm), V(lvmthin), V(zfspool)) hold only V(images) and V(rootdir).
      - V(import) needs Proxmox VE 8.2 or later.
    type: list
    elements: str
    choices: [backup, images, import, iso, rootdir, snippets, vztmpl, none]
  nodes: &nodes
    description:
      - Nodes the storage is available on; the order does not matter.
      - An empty list makes it available on all nodes again.
    type: list
    elements: str
  disable: &disable
    description: Disable the storage (it stays defined).
    type: bool
  shared: &shared
    description:
      - Tell Proxmox VE that the same V(dir) or V(lvm) storage is reachable with the same content
        from every node (for example a cluster file system). NFS storages are always shared.
    type: bool
  path: &path
    description:
      - File system path (V(dir)) or mount point (V(nfs)). Fixed at creation.
      - For V(nfs) it defaults to C(/mnt/pve/<storage>) when the storage is created.
    type: str
  server: &server
    description: NFS server address (V(nfs)). Fixed at creation.
    type: str
  export: &export
    description: NFS export path on the server (V(nfs)). Fixed at creation.
    type: str
  options: &options
    description: NFS mount options, for example V(vers=4.2) (V(nfs)).
    type: str
  vgname: &vgname
    description: LVM volume group (V(lvm), V(lvmthin)). Fixed at creation.
    type: str
  thinpool: &thinpool
    description: LVM thin pool (V(lvmthin)). Fixed at creation.
    type: str
  pool: &pool
    description: ZFS pool or dataset, for example V(tank/vm) (V(zfspool)). Fixed at creation.
    type: str
  sparse: &sparse
    description: Thin-provision ZFS volumes (V(zfspool)).
    type: bool
  blocksize: &blocksize
    description: ZFS volume block size, for example V(16k) (V(zfspool)).
    type: str
  format: &format
    description: Default image format (V(dir), V(nfs)).
    type: str
    choices: [raw, qcow2, vmdk, subvol]
  preallocation: &preallocation
    description: Preallocation mode of raw and qcow2 images (V(dir), V(nfs)).
    type: str
    choices: ["off", metadata, falloc, full]
  prune_backups: &prune_backups
    description:
      - Backup retention of the storage (V(dir), V(nfs)), used by backup jobs that do not set their
        own. Becomes the Proxmox VE C(prune-backups) string; the key order does not matter.
    type: dict
    suboptions: &prune_suboptions
      keep_all:
        description: Keep every backup (cannot be combined with the other settings).
        type: bool
      keep_last:
        description: Keep the last N backups.
        type: int
      keep_hourly:
        description: Keep backups of the last N hours (one per hour).
        type: int
      keep_daily:
        description: Keep backups of the last N days (one per day).
        type: int
      keep_weekly:
        description: Keep backups of the last N weeks (one per week).
        type: int
      keep_monthly:
        description: Keep backups of the last N months (one per month).
        type: int
      keep_yearly:
        description: Keep backups of the last N years (one per year).
        type: int
  max_protected_backups: &max_protected_backups
    description: Maximum number of protected backups per guest (V(-1) is unlimited) (V(dir), V(nfs)).
    type: int
  mkdir: &mkdir
    description:
      - Create the directory if it does not exist (V(dir), V(nfs)). Deprecated by Proxmox VE in
        favour of O(create_base_path) and O(create_subdirs).
    type: bool
  create_base_path: &create_base_path
    description: Create the base directory if it does not exist (V(dir), V(nfs)).
    type: bool
  create_subdirs: &create_subdirs
    description: Populate the directory with the default structure (V(dir), V(nfs)).
    type: bool
  snapshot_as_volume_chain: &snapshot_as_volume_chain
    description:
      - Take snapshots as volume chains (V(dir), V(nfs), V(lvm)). Proxmox VE 9 or later; refused on
        Proxmox VE 8 before anything is written.
      - Fixed when the storage is created on V(dir) and V(nfs) (changing it means removing and re-adding the
        storage); an V(lvm) storage may change it.
    type: bool
  storages:
    description:
      - List mode. Storages to manage, each a dict with the same keys as the top-level options
        (O(storage) is required, O(state) defaults to the top-level O(state)).
      - Cannot be combined with the top-level storage options.
    type: list
    elements: dict
    suboptions:
      storage:
        description: Storage ID.
        type: str
        required: true
      state:
        description: V(present) or V(absent); defaults to the top-level O(state).
        type: str
        choices: [present, absent]
      type: *type
      content: *content
      nodes: *nodes
      disable: *disable
      shared: *shared
      path: *path
      server: *server
      export: *export
      options: *options
      vgname: *vgname
      thinpool: *thinpool
      pool: *pool
      sparse: *sparse
      blocksize: *blocksize
      format: *format
      preallocation: *preallocation
      prune_backups: *prune_backups
      max_protected_backups: *max_protected_backups
      mkdir: *mkdir
      create_base_path: *create_base_path
      create_subdirs: *create_subdirs
      snapshot_as_volume_chain: *snapshot_as_volume_chain
  purge:
    description:
      - In list mode, remove every storage definition that O(storages) does not name.
      - This includes the C(local) and C(local-lvm) storages of a fresh installation unless they
        are listed. Their data is not removed.
    type: bool
    default: false
  planned_nodes:
    description:
      - Check mode only. Names of nodes that join the cluster earlier in the same run (the
        C(ailab.cluster.proxmox_cluster) role's nodes), so that a plan in check mode on a fresh cluster
        accepts them in O(nodes) instead of refusing them as unknown. Ignored outside check mode.
    type: list
    elements: str
    default: []
notes:
  - Changing a fixed option means removing the storage definition and adding it again; guests
    whose disks live on it keep working once it is back with the same ID.
"""

EXAMPLES = r"""
- name: NFS export of the TrueNAS box as shared storage on both nodes
  ailab.cluster.proxmox_storage:
    storage: nas
    type: nfs
    server: 192.168.10.50
    export: /mnt/tank/pve
    options: vers=4.2
    content: [images, rootdir, iso, vztmpl, backup, snippets]
    nodes: [pve-1, pve-2]
    prune_backups:
      keep_last: 3

- name: All storages of the lab in one read and only the differences written
  ailab.cluster.proxmox_storage:
    storages:
      - storage: backups
        type: dir
        path: /srv/backups
        content: [backup]
        create_base_path: true
      - storage: tank
        type: zfspool
        pool: tank/vm
        sparse: true
        content: [images, rootdir]
        nodes: [pve-1]
      - storage: old-nfs
        state: absent

- name: Take a storage out of service without removing it
  ailab.cluster.proxmox_storage:
    storage: backups
    disable: true
"""

RETURN = r"""
storage:
  description: The storage definition after the run (as Proxmox VE stores it); empty when absent. Single mode.
  returned: success and O(storage) given
  type: dict
  sample: {storage: nas, type: nfs, server: 192.168.10.50, export: /mnt/tank/pve, path: /mnt/pve/nas,
           content: "backup,images,iso,rootdir,snippets,vztmpl", shared: 1}
storages:
  description: The storage definitions after the run of every present entry of O(storages), in order. List mode.
  returned: success and O(storages) given
  type: list
  elements: dict
  sample: [{storage: backups, type: dir, path: /srv/backups, content: backup}]
changes:
  description: What was written (or would be in check mode), one entry per created, updated or removed storage.
  returned: always
  type: list
  elements: dict
  sample: [{id: nas, action: update, params: {content: "backup,images"}, delete: [nodes]}]
"""

import re

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    REMOVE,
    ProxmoxError,
    diff_config,
    to_pve,
    unordered_list,
)
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_list import (
    PRUNE_OPTIONS,
    Change,
    CollectionManager,
    prune_key,
    prune_to_pve,
    run_collection_module,
)

ITEM_OPTIONS = dict(
    storage=dict(type="str"),
    type=dict(type="str", choices=["dir", "nfs", "lvm", "lvmthin", "zfspool"]),
    content=dict(type="list", elements="str",
                 choices=["backup", "images", "import", "iso", "rootdir", "snippets", "vztmpl", "none"]),
    nodes=dict(type="list", elements="str"),
    disable=dict(type="bool"),
    shared=dict(type="bool"),
    path=dict(type="str"),
    server=dict(type="str"),
    export=dict(type="str"),
    options=dict(type="str"),
    vgname=dict(type="str"),
    thinpool=dict(type="str"),
    pool=dict(type="str"),
    sparse=dict(type="bool"),
    blocksize=dict(type="str"),
    format=dict(type="str", choices=["raw", "qcow2", "vmdk", "subvol"]),
    preallocation=dict(type="str", choices=["off", "metadata", "falloc", "full"]),
    prune_backups=dict(type="dict", options=PRUNE_OPTIONS),
    max_protected_backups=dict(type="int"),
    mkdir=dict(type="bool"),
    create_base_path=dict(type="bool"),
    create_subdirs=dict(type="bool"),
    snapshot_as_volume_chain=dict(type="bool"),
)

# Options every type takes.
COMMON = ("content", "nodes", "disable")
_FILE = ("path", "format", "preallocation", "prune_backups", "max_protected_backups", "mkdir", "create_base_path",
         "create_subdirs", "snapshot_as_volume_chain")
TYPE_OPTIONS = {
    "dir": _FILE + ("shared",),
    "nfs": _FILE + ("server", "export", "options"),
    "lvm": ("vgname", "shared", "snapshot_as_volume_chain"),
    "lvmthin": ("vgname", "thinpool"),
    "zfspool": ("pool", "sparse", "blocksize"),
}
REQUIRED = {"dir": ("path",), "nfs": ("server", "export"), "lvm": ("vgname",), "lvmthin": ("vgname", "thinpool"),
            "zfspool": ("pool",)}
BLOCK_CONTENT = ("images", "rootdir", "none")
BLOCK_TYPES = ("lvm", "lvmthin", "zfspool")

# Parameters of POST /storage that PUT /storage/{storage} does not take (apidata.js, pve-docs 9.1):
# Proxmox VE fixes them when the storage is created.
SCHEMA_CREATE_ONLY = ("authsupported", "base", "datastore", "export", "iscsiprovider", "path", "portal", "share",
                      "target", "thinpool", "type", "vgname")
# Parameters PUT takes that the storage plugin marks fixed for its type (server of NFS/CIFS/PBS, the
# pool of a zfspool storage; on other types, such as rbd, they may change). Sending one fails with
# 500 "can't change value of fixed parameter", even with the same value (pve-common SectionConfig.pm
# check_config); snapshot-as-volume-chain is fixed on file storages, not on LVM (pve-storage plugins'
# options()).
TYPE_FIXED = {"nfs": ("server", "snapshot-as-volume-chain"), "cifs": ("server", "snapshot-as-volume-chain"),
              "dir": ("snapshot-as-volume-chain",), "pbs": ("server",), "zfspool": ("pool",)}
# Where the data of a removed definition stays, for the fixed-option message.
DATA_STAYS = {"nfs": "its data stays on the server", "dir": "its data stays in the directory",
              "lvm": "its data stays in the volume group", "lvmthin": "its data stays in the thin pool",
              "zfspool": "its data stays in the ZFS pool"}
# Values PVE assumes when the key is absent.
DEFAULTS = {"disable": 0, "shared": 0, "sparse": 0, "mkdir": 1, "create-base-path": 1, "create-subdirs": 1,
            "snapshot-as-volume-chain": 0}
NORMALIZERS = {"content": unordered_list, "nodes": unordered_list, "prune-backups": prune_key,
               "path": lambda v: None if v is None else (str(v).rstrip("/") or "/")}
PVE9_OPTIONS = ("snapshot_as_volume_chain",)
STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)


def pve_key(option):
    return option.replace("_", "-")


def _as_pve_text(value):
    """A value as PVE stores it, as text (True and 1 compare equal)."""
    return None if value is None else str(to_pve(value))


def fixed_options(storage_type):
    return set(SCHEMA_CREATE_ONLY) | set(TYPE_FIXED.get(storage_type, ()))


class StorageManager(CollectionManager):
    kind = "storage"
    path = "storage"
    id_key = "storage"
    list_key = "storages"
    result_key = "storage"
    item_options = ITEM_OPTIONS

    def __init__(self, module, client):
        super(StorageManager, self).__init__(module, client)
        # The cluster's node names, read once (for all storages) when a storage names nodes.
        self.node_names = None

    def cluster_node_names(self):
        """The cluster's nodes, and in check mode the nodes that join it earlier in the run (planned_nodes)."""
        if self.node_names is None:
            names = set(n["node"] for n in self.client.get("nodes", what="the cluster's nodes") or [])
            if self.module.check_mode:
                names.update(self.module.params["planned_nodes"])
            self.node_names = sorted(names)
        return self.node_names

    def set_options(self, item):
        return [k for k in ITEM_OPTIONS if k not in ("storage", "type") and item.get(k) is not None]

    def check_item(self, item):
        name = item["storage"]
        if not STORAGE_ID.match(name):
            raise ProxmoxError("storage %s: invalid storage ID; use letters, digits, '-', '_' and '.', starting "
                               "with a letter" % name)
        if item["state"] == "absent":
            return
        if item["content"] is not None:
            if not item["content"]:
                raise ProxmoxError("storage %s: content is empty; list at least one content type (or none)" % name)
            if "none" in item["content"] and len(item["content"]) > 1:
                raise ProxmoxError("storage %s: content none cannot be combined with other content types" % name)
        if item["nodes"]:
            # PVE accepts any node name here (format pve-node-list); a typo would silently hide the storage
            # from the node meant. One read of the cluster's nodes, for all storages.
            known = self.cluster_node_names()
            unknown = sorted(set(item["nodes"]) - set(known))
            if unknown:
                raise ProxmoxError("storage %s: nodes names %s, which %s not a node of this cluster (nodes: %s)"
                                   % (name, ", ".join(unknown), "is" if len(unknown) == 1 else "are",
                                      ", ".join(known)))
        version_bound = [k for k in PVE9_OPTIONS if item.get(k) is not None]
        if version_bound and self.client.major < 9:
            raise ProxmoxError("storage %s: %s needs Proxmox VE 9 or later and this cluster runs %s; leave it out"
                               % (name, ", ".join(version_bound), self.client.version.get("version")))
        self.desired(item)  # prune-backups errors

    def desired(self, item):
        desired = {}
        for option in self.set_options(item):
            value = item[option]
            if option == "prune_backups":
                value = prune_to_pve(value, "storage %s" % item["storage"])
            elif option == "nodes":
                value = sorted(set(value)) or REMOVE
            elif option == "content":
                value = sorted(set(value))
            desired[pve_key(option)] = value
        return desired

    def plan_present(self, item, entry):
        name = item["storage"]
        storage_type = item["type"] or (entry or {}).get("type")
        if entry is None and not item["type"]:
            raise ProxmoxError("storage %s does not exist; set type (and the options it needs) to create it" % name)
        if entry is not None and item["type"] and item["type"] != entry.get("type"):
            raise ProxmoxError("storage %s: type cannot change after creation (it is %s); remove and re-add the "
                               "storage (%s) or keep the old value" %
                               (name, entry.get("type"), DATA_STAYS.get(entry.get("type"), "its data is not removed")))
        allowed = TYPE_OPTIONS.get(storage_type)
        options = self.set_options(item)
        if allowed is not None:
            foreign = [o for o in options if o not in allowed and o not in COMMON]
            if foreign:
                raise ProxmoxError("storage %s: %s %s not valid for a %s storage; remove %s" %
                                   (name, ", ".join(foreign), "is" if len(foreign) == 1 else "are", storage_type,
                                    "it" if len(foreign) == 1 else "them"))
        if storage_type in BLOCK_TYPES and item["content"]:
            wrong = [c for c in item["content"] if c not in BLOCK_CONTENT]
            if wrong:
                raise ProxmoxError("storage %s: a %s storage holds only images and rootdir, not %s" %
                                   (name, storage_type, ", ".join(wrong)))
        desired = self.desired(item)
        if entry is None:
            missing = [o for o in REQUIRED.get(storage_type, ()) if item.get(o) is None]
            if missing:
                raise ProxmoxError("storage %s: creating a %s storage needs %s" % (name, storage_type, ", ".join(missing)))
            if storage_type == "nfs" and item["path"] is None:
                desired["path"] = "/mnt/pve/%s" % name
            params = dict((k, v) for k, v in desired.items() if v != REMOVE)
            params["type"] = storage_type
            change = Change(name, "create", params=params)
            change.after = dict(change.params)
            return change
        for option in options:
            key = pve_key(option)
            if key not in fixed_options(storage_type):
                continue
            # Absent means PVE's default (snapshot-as-volume-chain: 0); a fixed option without one cannot be added.
            current = entry.get(key, DEFAULTS.get(key))
            norm = NORMALIZERS.get(key, _as_pve_text)
            if current is None or norm(desired[key]) != norm(current):
                raise ProxmoxError(
                    "storage %s: %s cannot change after creation (it is %s, wanted %s); remove and re-add the "
                    "storage (%s) or keep the old value" %
                    (name, option, "unset" if current is None else current, to_pve(desired[key]),
                     DATA_STAYS.get(storage_type, "its data is not removed")))
        for option in options:
            key = pve_key(option)
            if key in fixed_options(storage_type):
                desired.pop(key)  # equal (checked above): never sent in an update, PVE refuses even the same value
        params, delete, before, after = diff_config(desired, entry, NORMALIZERS, DEFAULTS)
        if not params and not delete:
            return None
        return Change(name, "update", params=params, delete=delete, before=before, after=after)


def main():
    run_collection_module(StorageManager, planned_nodes=dict(type="list", elements="str", default=[]))


if __name__ == "__main__":
    main()
