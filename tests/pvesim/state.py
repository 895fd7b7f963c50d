"""The simulated cluster: nodes, quorum, storages, volumes, guests, HA, backup jobs, PCI mappings.

``ClusterState`` is plain in-memory data built from a seed (see ``seed.py``). All access happens
under ``ClusterState.lock`` (the API handlers and the task runner hold it), so the model itself
needs no further locking. The helpers raise ``ApiError`` with the messages PVE uses, so the API
modules stay short.

``nodes`` are the nodes the API sees: the cluster members, or only the first (local) node of a
standalone seed (``cluster: {name: null}``). ``outside`` holds the seed's other hosts, which are
not in the cluster yet and become ``nodes`` when they join (``/cluster/config/join``).
``dump()``/``restore()`` turn the whole state into a JSON document and back (``--persist``).
"""

import copy
import hashlib
import ipaddress
import json
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

from .acl import AccessConfig
from .errors import ApiError
from .formats import format_size, parse_size, split_list

GIB = 1024**3
MIB = 1024**2
NO_QUORUM = "cluster not ready - no quorum?"
# Storage types whose guest volumes are files ("<vmid>/vm-<vmid>-disk-N.<fmt>").
FILE_STORAGES = {"dir", "nfs", "cifs", "cephfs", "btrfs", "glusterfs"}
SHARED_STORAGES = {"nfs", "cifs", "cephfs", "rbd", "pbs", "iscsi", "iscsidirect", "glusterfs", "esxi"}

# Options each storage type accepts and which of them are fixed after creation
# (PVE::Storage::*Plugin::options). Types not listed accept every schema option.
STORAGE_TYPES = {
    "dir": {"required": ("path",), "fixed": ("path",),
            "options": ("path", "nodes", "shared", "disable", "content", "format", "mkdir", "create-base-path",
                        "create-subdirs", "is_mountpoint", "bwlimit", "preallocation", "prune-backups",
                        "max-protected-backups", "content-dirs", "maxfiles", "snapshot-as-volume-chain")},
    "nfs": {"required": ("path", "server", "export"), "fixed": ("path", "server", "export"),
            "options": ("path", "server", "export", "nodes", "disable", "options", "content", "format", "mkdir",
                        "create-base-path", "create-subdirs", "bwlimit", "preallocation", "prune-backups",
                        "max-protected-backups", "content-dirs", "maxfiles", "snapshot-as-volume-chain")},
    "cifs": {"required": ("path", "server", "share"), "fixed": ("path", "server", "share", "subdir"),
             "options": ("path", "server", "share", "subdir", "nodes", "disable", "username", "password",
                         "domain", "smbversion", "options", "content", "format", "mkdir", "create-base-path",
                         "create-subdirs", "bwlimit", "preallocation", "prune-backups", "max-protected-backups",
                         "content-dirs", "maxfiles", "snapshot-as-volume-chain")},
    "lvm": {"required": ("vgname",), "fixed": ("vgname", "base"),
            "options": ("vgname", "base", "nodes", "shared", "disable", "saferemove", "saferemove_throughput",
                        "saferemove-stepsize", "content", "tagged_only", "bwlimit", "snapshot-as-volume-chain")},
    "lvmthin": {"required": ("vgname", "thinpool"), "fixed": ("vgname", "thinpool"),
                "options": ("vgname", "thinpool", "nodes", "disable", "content", "bwlimit")},
    "zfspool": {"required": ("pool",), "fixed": ("pool",),
                "options": ("pool", "sparse", "nodes", "disable", "content", "bwlimit", "mountpoint", "blocksize")},
    "pbs": {"required": ("server", "datastore"), "fixed": ("server", "datastore"),
            "options": ("server", "datastore", "namespace", "username", "password", "encryption-key",
                        "master-pubkey", "fingerprint", "port", "nodes", "disable", "content", "prune-backups",
                        "max-protected-backups")},
    "rbd": {"required": (), "fixed": (),
            "options": ("monhost", "pool", "data-pool", "namespace", "username", "keyring", "krbd", "nodes",
                        "disable", "content", "bwlimit")},
}


@dataclass
class Node:
    """A cluster node as corosync and ``/nodes`` see it."""

    name: str
    nodeid: int
    ip: str
    online: bool = True
    cpus: int = 16
    sockets: int = 1
    cpu_model: str = "Intel(R) Xeon(R) CPU"
    memory: int = 64 * GIB
    bridges: list = field(default_factory=lambda: ["vmbr0"])
    pci_devices: list = field(default_factory=list)
    boot_time: float = field(default_factory=lambda: time.time() - 86400 * 3)
    votes: int = 1
    link0: str = ""
    fingerprint: str = ""  # of its API certificate once it has its own (a joined node); empty: the simulator's

    def as_dict(self):
        """JSON form (seed-like, exact memory) for ``dump()``."""
        return {"name": self.name, "nodeid": self.nodeid, "ip": self.ip, "online": self.online, "cpus": self.cpus,
                "sockets": self.sockets, "cpu_model": self.cpu_model, "memory": self.memory,
                "bridges": list(self.bridges), "pci_devices": copy.deepcopy(self.pci_devices),
                "boot_time": self.boot_time, "votes": self.votes, "link0": self.link0,
                "fingerprint": self.fingerprint}


@dataclass
class Volume:
    """A volume on a storage; ``scope`` is the node for local storages, '' for shared ones."""

    volid: str
    storage: str
    scope: str
    content: str
    size: int
    fmt: str = "raw"
    vmid: int | None = None

    def as_content(self):
        """An entry of ``GET /nodes/{node}/storage/{storage}/content``."""
        entry = {"volid": self.volid, "content": self.content, "size": self.size, "format": self.fmt,
                 "ctime": 1735689600}
        if self.vmid is not None:
            entry["vmid"] = self.vmid
        return entry


@dataclass
class Guest:
    """A QEMU VM (``kind='qemu'``) or LXC container (``kind='lxc'``)."""

    vmid: int
    kind: str
    node: str
    config: dict
    status: str = "stopped"
    started: float | None = None
    # Changes PVE keeps until the next start (``[PENDING]`` section): values, and keys to delete
    # (key -> force flag, in request order).
    pending: dict = field(default_factory=dict)
    pending_delete: dict = field(default_factory=dict)

    @property
    def lock(self):
        """The config lock (``create``, ``migrate``, ``clone``...) or None."""
        return self.config.get("lock")

    @property
    def name(self):
        """VM name or container hostname."""
        key = "name" if self.kind == "qemu" else "hostname"
        return self.config.get(key, f"{'VM' if self.kind == 'qemu' else 'CT'}{self.vmid}")

    @property
    def conf_path(self):
        """The config file path PVE names in its errors."""
        directory = "qemu-server" if self.kind == "qemu" else "lxc"
        return f"nodes/{self.node}/{directory}/{self.vmid}.conf"

    def disks(self):
        """``(key, parsed property dict)`` of every volume-backed disk (not unused, not cdrom/none)."""
        result = []
        for key, value in self.config.items():
            if not isinstance(value, str) or not is_disk_key(self.kind, key):
                continue
            parsed = parse_property_string(value, "volume" if self.kind == "lxc" else "file")
            volume = parsed.get("volume" if self.kind == "lxc" else "file", "")
            if parsed.get("media") == "cdrom" or volume in ("none", "cdrom") or ":" not in volume:
                continue
            result.append((key, parsed))
        return result

    def memory_bytes(self):
        """Configured memory in bytes."""
        memory = self.config.get("memory", 512)
        if isinstance(memory, str):
            memory = parse_property_string(memory, "current").get("current", 512)
        return int(memory) * MIB

    def cpus(self, node_cpus):
        """Number of vCPUs (sockets*cores for VMs, cores or all host CPUs for containers)."""
        if self.kind == "qemu":
            if "vcpus" in self.config:
                return int(self.config["vcpus"])
            return int(self.config.get("sockets", 1)) * int(self.config.get("cores", 1))
        return int(self.config.get("cores", node_cpus))

    def boot_disk_size(self):
        """Size in bytes of the first disk (rootfs for containers)."""
        for _ignored, parsed in self.disks():
            size = parse_size(parsed.get("size", "0"))
            if size:
                return size
        return 0

    def running_for(self):
        """Seconds (float) since start, 0.0 when stopped."""
        return time.time() - self.started if self.status == "running" and self.started else 0.0

    def uptime(self):
        """Whole seconds since start, 0 when stopped (what ``uptime`` fields report)."""
        return int(self.running_for())

    def effective_config(self):
        """The config with pending changes applied (what ``GET .../config`` returns by default)."""
        config = {k: v for k, v in self.config.items() if k not in self.pending_delete}
        config.update(self.pending)
        return config

    def digest(self):
        """Digest of the whole config file, pending section included."""
        if not self.pending and not self.pending_delete:
            return digest_of(self.config)
        return digest_of({"config": self.config, "pending": self.pending, "delete": list(self.pending_delete)})

    def as_dict(self):
        """JSON form for ``dump()``."""
        return {"vmid": self.vmid, "type": self.kind, "node": self.node, "status": self.status,
                "started": self.started, "config": copy.deepcopy(self.config), "pending": copy.deepcopy(self.pending),
                "pending_delete": dict(self.pending_delete)}

    @classmethod
    def from_dict(cls, entry):
        """Inverse of ``as_dict``."""
        return cls(vmid=int(entry["vmid"]), kind=entry.get("type", "qemu"), node=entry["node"],
                   config=dict(entry.get("config") or {}), status=entry.get("status", "stopped"),
                   started=entry.get("started"), pending=dict(entry.get("pending") or {}),
                   pending_delete=dict(entry.get("pending_delete") or {}))


_QEMU_DISK_KEY = re.compile(r"(?:ide|sata|scsi|virtio|efidisk|tpmstate)\d+")
_LXC_DISK_KEY = re.compile(r"rootfs|mp\d+")


def is_disk_key(kind, key):
    """True for config keys that hold an attached volume (``scsi0``, ``efidisk0``, ``rootfs``, ``mp0``)."""
    return bool((_LXC_DISK_KEY if kind == "lxc" else _QEMU_DISK_KEY).fullmatch(key))


def parse_property_string(text, default_key=None):
    """Split a PVE property string into a dict (no validation; the schema did that)."""
    result = {}
    for part in str(text).split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if eq:
            result[key] = value
        elif default_key:
            result[default_key] = part
    return result


def print_property_string(values, default_key=None, order=()):
    """Join a dict into a property string, default key first (PVE writes it without ``key=``)."""
    parts = []
    if default_key and default_key in values:
        parts.append(str(values[default_key]))
    for key in order:
        if key in values and key != default_key:
            parts.append(f"{key}={values[key]}")
    for key, value in values.items():
        if key != default_key and key not in order:
            parts.append(f"{key}={value}")
    return ",".join(parts)


def digest_of(data):
    """A config digest (sha1 hex), as PVE returns in ``digest``."""
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def mac_for(vmid, index, salt=""):
    """A stable unicast MAC in Proxmox's BC:24:11 range for guest ``vmid`` NIC ``index``."""
    value = zlib.crc32(f"{vmid}:{index}:{salt}".encode())
    return "BC:24:11:{:02X}:{:02X}:{:02X}".format((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF)


class ClusterState:
    """The whole simulated cluster, built from a seed document."""

    def __init__(self, seed, personality):
        self.lock = threading.RLock()
        self.personality = personality
        self.seed = copy.deepcopy(seed)
        self.load(self.seed)

    # ----------------------------------------------------------------- seed
    def load(self, seed):
        """(Re)build the whole state from ``seed``."""
        cluster = seed.get("cluster") or {}
        # name null: every seed node is a standalone host; the API answers as the first one
        self.cluster_name = cluster.get("name", "ailab")
        self.dhcp_subnet = ipaddress.ip_network(cluster.get("dhcp_subnet", "192.168.10.0/24"), strict=False)
        self.nodes = {}
        self.outside = {}
        self.outside_guests = {}
        self.ha_moves = {}
        for index, entry in enumerate(seed["nodes"], start=1):
            node = Node(
                name=entry["name"], nodeid=int(entry.get("nodeid", index)),
                ip=entry.get("ip", f"192.168.10.{10 + index}"), online=bool(entry.get("online", True)),
                cpus=int(entry.get("cpus", 16)), sockets=int(entry.get("sockets", 1)),
                cpu_model=entry.get("cpu_model", "Intel(R) Xeon(R) CPU"),
                memory=int(float(entry.get("memory_gib", 64)) * GIB),
                bridges=list(entry.get("bridges", ["vmbr0"])), pci_devices=list(entry.get("pci_devices", [])),
                votes=int(entry.get("votes", 1)),
            )
            if entry.get("iommu") is False:
                # IOMMU not enabled on the host yet: pve-common PVE/SysFSTools.pm lspci reports
                # iommugroup -1 for a device without /sys/bus/pci/devices/<id>/iommu_group.
                node.pci_devices = [dict(device, iommugroup=-1) for device in node.pci_devices]
            node.link0 = entry.get("link0", node.ip)
            member = index == 1 or (self.cluster_name is not None and entry.get("member", True))
            (self.nodes if member else self.outside)[node.name] = node
        self.config_version = int(cluster.get("config_version", len(self.nodes) + 1))
        self.storages = {}
        self.storage_capacity = {}
        for storage_entry in seed.get("storages") or []:
            entry = dict(storage_entry)
            capacity = int(float(entry.pop("total_gib", 100)) * GIB)
            storage_id = entry.pop("storage")
            if entry.get("type") in SHARED_STORAGES:
                entry.setdefault("shared", 1)
            self.storages[storage_id] = entry
            self.storage_capacity[storage_id] = capacity
        self.volumes = {}
        for entry in seed.get("volumes") or []:
            storage_id, _ignored, volname = entry["volid"].partition(":")
            content = entry.get("content") or volname.split("/", 1)[0]
            size = int(float(entry.get("size_mib", 100)) * MIB)
            scopes = [""] if self.is_shared(storage_id) else entry.get("nodes") or [*self.nodes, *self.outside]
            for scope in scopes:
                self.volumes[(scope, entry["volid"])] = Volume(entry["volid"], storage_id, scope, content, size,
                                                               entry.get("format", volname.rsplit(".", 1)[-1]))
        self.guests = {}
        for entry in seed.get("guests") or []:
            guest = Guest(vmid=int(entry["vmid"]), kind=entry.get("type", "qemu"), node=entry["node"],
                          config=dict(entry.get("config") or {}), status=entry.get("status", "stopped"))
            if guest.status == "running":
                guest.started = time.time() - 3600
            if guest.node in self.outside:
                self.outside_guests.setdefault(guest.node, []).append(guest)
                continue
            self.guests[guest.vmid] = guest
            for _ignored, parsed in guest.disks():
                volid = parsed.get("volume" if guest.kind == "lxc" else "file")
                self._register_volume(guest, volid, parse_size(parsed.get("size", "8G")) or 8 * GIB)
            for value in guest.config.values():
                volid = parse_property_string(value, "file").get("file", "") if isinstance(value, str) else ""
                if guest.kind == "qemu" and f"vm-{guest.vmid}-cloudinit" in volid and ":" in volid:
                    self._register_volume(guest, volid, 4 * MIB)
        ha = seed.get("ha") or {}
        self.ha_groups = {g["group"]: {k: v for k, v in g.items() if k != "group"} for g in ha.get("groups") or []}
        self.ha_resources = {}
        for resource_entry in ha.get("resources") or []:
            entry = dict(resource_entry)
            sid = normalize_sid(str(entry.pop("sid")))
            entry.setdefault("type", sid.split(":", 1)[0])
            entry.setdefault("state", "started")
            self.ha_resources[sid] = entry
        self.ha_rules = {}
        for order, rule_entry in enumerate(ha.get("rules") or [], start=1):
            entry = dict(rule_entry)
            entry.setdefault("order", order)
            self.ha_rules[entry.pop("rule")] = entry
        self.backup_jobs = {}
        for job_entry in seed.get("backup_jobs") or []:
            entry = dict(job_entry)
            entry.setdefault("type", "vzdump")
            entry.setdefault("enabled", 1)
            self.backup_jobs[entry["id"]] = entry
        self.pci_mappings = {}
        for mapping_entry in seed.get("pci_mappings") or []:
            entry = dict(mapping_entry)
            self.pci_mappings[entry.pop("id")] = entry
        # users, custom roles, groups and ACL entries (user.cfg); see acl.py
        self.access = AccessConfig(self.personality.major, seed.get("access"))

    def _register_volume(self, guest, volid, size):
        storage_id = volid.split(":", 1)[0]
        scope = "" if self.is_shared(storage_id) else guest.node
        fmt = volid.rsplit(".", 1)[-1] if "." in volid.split("/")[-1] else "raw"
        self.volumes[(scope, volid)] = Volume(volid, storage_id, scope, "images" if guest.kind == "qemu" else "rootdir",
                                              size, fmt, guest.vmid)

    # -------------------------------------------------------------- cluster
    @property
    def clustered(self):
        """False on a standalone node (no corosync cluster yet)."""
        return self.cluster_name is not None

    def quorate(self):
        """True when more than half of the votes are online (a standalone node always is)."""
        online = sum(node.votes for node in self.nodes.values() if node.online)
        return online * 2 > sum(node.votes for node in self.nodes.values())

    def require_quorum(self):
        """Raise PVE's no-quorum error when the cluster is not quorate."""
        if not self.quorate():
            raise ApiError(NO_QUORUM)

    def local_node(self):
        """The node that answers the API (the first online node)."""
        for node in self.nodes.values():
            if node.online:
                return node
        return next(iter(self.nodes.values()))

    def create_cluster(self, name, nodeid=None, votes=None, link0=None):
        """``pvecm create`` on the local node of a standalone seed."""
        local = self.local_node()
        self.cluster_name = name
        local.nodeid = int(nodeid or 1)
        local.votes = 1 if votes is None else int(votes)
        local.link0 = link0 or local.ip
        self.config_version = 1

    def join(self, name, nodeid=None, votes=None, link0=None):
        """``pvecm add``: host ``name`` becomes a cluster node (its own guest configs are dropped)."""
        node = self.outside.pop(name)
        self.outside_guests.pop(name, None)
        used = {n.nodeid for n in self.nodes.values()}
        node.nodeid = int(nodeid) if nodeid else next(i for i in range(1, len(used) + 2) if i not in used)
        node.votes = 1 if votes is None else int(votes)
        node.link0 = link0 or node.ip
        node.online = True
        node.boot_time = time.time()
        self.nodes[name] = node
        self.config_version += 1
        return node

    def node(self, name):
        """Return a Node or fail like pveproxy resolving an unknown node name."""
        node = self.nodes.get(name)
        if node is None:
            raise ApiError(
                f"hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known"
            )
        return node

    def online_node(self, name):
        """Return a Node that must be online (API calls proxied to it)."""
        node = self.node(name)
        if not node.online:
            raise ApiError(f"unable to get IP for node '{name}' - node offline?")
        return node

    # ------------------------------------------------------------- storage
    def is_shared(self, storage_id):
        """True for shared storages (one copy of a volume for all nodes)."""
        config = self.storages.get(storage_id) or {}
        return bool(int(config.get("shared", 0))) or config.get("type") in SHARED_STORAGES

    def storage(self, storage_id):
        """Return a storage config or fail with PVE's message."""
        config = self.storages.get(storage_id)
        if config is None:
            raise ApiError(f"storage '{storage_id}' does not exist")
        return config

    def storage_on_node(self, storage_id, node):
        """Return the storage config if it is enabled and available on ``node``."""
        config = self.storage(storage_id)
        nodes = config.get("nodes")
        if nodes and node not in split_list(nodes):
            raise ApiError(f"storage '{storage_id}' is not available on node '{node}'")
        if int(config.get("disable", 0)):
            raise ApiError(f"storage '{storage_id}' is disabled")
        return config

    def storage_usage(self, storage_id, node):
        """``(total, used)`` bytes of a storage as seen from ``node``."""
        scope = "" if self.is_shared(storage_id) else node
        used = sum(v.size for (s, _ignored), v in self.volumes.items() if v.storage == storage_id and s == scope)
        total = self.storage_capacity.get(storage_id, 100 * GIB)
        base = total // 50
        return total, min(total, used + base)

    def storage_digest(self):
        """Digest of storage.cfg."""
        return digest_of(self.storages)

    def volume(self, volid, node):
        """Return a Volume visible from ``node`` or None."""
        storage_id = volid.split(":", 1)[0]
        scope = "" if self.is_shared(storage_id) else node
        return self.volumes.get((scope, volid))

    def allocate(self, guest, storage_id, size, fmt=None, name=None, prefer=None):
        """Create a new guest volume on ``storage_id`` for ``guest.node``; return its volid.

        ``name`` forces the volume name; ``prefer`` is tried first and replaced by the next free
        ``vm-<vmid>-disk-N`` when taken (what a storage migration does).
        """
        node = guest.node
        config = self.storage_on_node(storage_id, node)
        needed = "images" if guest.kind == "qemu" else "rootdir"
        if needed not in split_list(config.get("content", "")):
            what = "vm images" if guest.kind == "qemu" else "container directories"
            raise ApiError(f"storage '{storage_id}' does not support {what}")
        total, used = self.storage_usage(storage_id, node)
        if used + size > total:
            raise ApiError(
                f"unable to allocate {format_size(size)} on storage '{storage_id}' - not enough free space "
                f"({format_size(total - used)} available)"
            )
        scope = "" if self.is_shared(storage_id) else node
        stype = config.get("type")
        file_based = stype in FILE_STORAGES
        if fmt is None:
            fmt = "qcow2" if file_based and guest.kind == "qemu" else "raw"

        def volid_for(base):
            return f"{storage_id}:{guest.vmid}/{base}.{fmt}" if file_based else f"{storage_id}:{base}"

        volid = volid_for(name or prefer) if name or prefer else None
        index = 0
        while not name and (volid is None or (scope, volid) in self.volumes):
            prefix = "subvol" if stype == "zfspool" and guest.kind == "lxc" else "vm"
            volid = volid_for(f"{prefix}-{guest.vmid}-disk-{index}")
            index += 1
        self.volumes[(scope, volid)] = Volume(volid, storage_id, scope, "images" if guest.kind == "qemu" else "rootdir",
                                              size, fmt, guest.vmid)
        return volid

    def free_volume(self, volid, node):
        """Delete a volume (ignored when it does not exist)."""
        storage_id = volid.split(":", 1)[0]
        scope = "" if self.is_shared(storage_id) else node
        self.volumes.pop((scope, volid), None)

    def move_local_volumes(self, guest, target):
        """Move a guest's volumes on local storages from its node to ``target`` (migration)."""
        for (scope, volid), volume in list(self.volumes.items()):
            if volume.vmid == guest.vmid and scope == guest.node:
                del self.volumes[(scope, volid)]
                volume.scope = target
                self.volumes[(target, volid)] = volume

    # -------------------------------------------------------------- guests
    def guest(self, vmid, node=None, kind=None):
        """Return a Guest on ``node`` or fail like PVE with the missing config file path."""
        guest = self.guests.get(int(vmid))
        directory = "qemu-server" if kind != "lxc" else "lxc"
        if guest is None or (node is not None and guest.node != node) or (kind is not None and guest.kind != kind):
            raise ApiError(f"Configuration file 'nodes/{node}/{directory}/{vmid}.conf' does not exist")
        return guest

    def check_vmid_unused(self, vmid):
        """Fail when ``vmid`` is used anywhere in the cluster."""
        guest = self.guests.get(int(vmid))
        if guest is not None:
            raise ApiError(f"VM {vmid} already exists on node '{guest.node}'")

    def next_vmid(self):
        """The lowest free VMID >= 100."""
        vmid = 100
        while vmid in self.guests:
            vmid += 1
        return vmid

    def guest_ip(self, guest, index):
        """The IPv4 address (with prefix) the guest reports on NIC ``index``."""
        key = f"ipconfig{index}" if guest.kind == "qemu" else f"net{index}"
        parsed = parse_property_string(guest.config.get(key, ""), None)
        ip = parsed.get("ip", "dhcp")
        if ip not in ("dhcp", "manual", "") and "/" in ip:
            address, prefix = ip.split("/", 1)
            return address, int(prefix)
        hosts = self.dhcp_subnet.num_addresses - 2
        offset = 100 + (zlib.crc32(f"{guest.vmid}:{index}".encode()) % max(1, min(hosts - 100, 150)))
        return str(self.dhcp_subnet.network_address + offset), self.dhcp_subnet.prefixlen

    def ha_sid(self, guest):
        """The HA service id of a guest (``vm:100`` / ``ct:101``)."""
        return f"{'vm' if guest.kind == 'qemu' else 'ct'}:{guest.vmid}"

    def ha_managed(self, guest):
        """The HA resource config if the guest is HA managed, else None."""
        return self.ha_resources.get(self.ha_sid(guest))

    # ------------------------------------------------------------------ HA
    def ha_preferred_nodes(self, sid):
        """Online nodes a resource may run on, in priority order (groups on 8, rules on 9)."""
        online = [name for name, node in self.nodes.items() if node.online]
        entries = []
        strict = False
        resource = self.ha_resources.get(sid) or {}
        if self.personality.ha_rules:
            for rule in self.ha_rules.values():
                if rule.get("type") == "node-affinity" and not int(rule.get("disable", 0)) and sid in split_list(
                    rule.get("resources", "")
                ):
                    entries = split_list(rule.get("nodes", ""))
                    strict = bool(int(rule.get("strict", 0)))
                    break
        elif resource.get("group") in self.ha_groups:
            group = self.ha_groups[resource["group"]]
            entries = split_list(group.get("nodes", ""))
            strict = bool(int(group.get("restricted", 0)))
        ranked = []
        for entry in entries:
            name, _ignored, priority = entry.partition(":")
            if name in online:
                ranked.append((-int(priority or 0), name))
        preferred = [name for _ignored, name in sorted(ranked)]
        if strict:
            return preferred
        return preferred + [name for name in online if name not in preferred]

    def ha_recover(self, failed_node):
        """Move HA services off ``failed_node`` (fence + recovery) when the cluster is quorate."""
        if not self.quorate():
            return
        for sid, resource in self.ha_resources.items():
            guest = self.guests.get(int(sid.split(":", 1)[1]))
            if guest is None or guest.node != failed_node or resource.get("state") == "ignored":
                continue
            candidates = [n for n in self.ha_preferred_nodes(sid) if n != failed_node]
            if not candidates:
                guest.status = "stopped"
                continue
            self.move_local_volumes(guest, candidates[0])
            guest.node = candidates[0]
            if resource.get("state") in ("started", "enabled"):
                guest.status, guest.started = "running", time.time()
            else:
                guest.status = "stopped"

    def set_node_online(self, name, online):
        """Bring a node up or down (fault injection); HA recovers services when quorate."""
        node = self.node(name)
        if node.online == online:
            return
        node.online = online
        if online:
            node.boot_time = time.time()
        else:
            self.ha_recover(name)

    def snapshot(self):
        """A JSON-able dump of the whole state (``GET /_sim/state``)."""
        hosts = [(n, True) for n in self.nodes.values()] + [(n, False) for n in self.outside.values()]
        return {
            "cluster": {"name": self.cluster_name, "quorate": self.quorate(), "config_version": self.config_version},
            "nodes": {n.name: {"online": n.online, "ip": n.ip, "nodeid": n.nodeid, "member": member}
                      for n, member in hosts},
            "storages": copy.deepcopy(self.storages),
            "volumes": sorted(f"{scope or '*'}/{volid}" for scope, volid in self.volumes),
            "guests": {
                str(g.vmid): {"type": g.kind, "node": g.node, "status": g.status, "config": copy.deepcopy(g.config),
                              "pending": copy.deepcopy(g.pending), "pending_delete": list(g.pending_delete)}
                for g in self.guests.values()
            },
            "ha": {"groups": copy.deepcopy(self.ha_groups), "resources": copy.deepcopy(self.ha_resources),
                   "rules": copy.deepcopy(self.ha_rules)},
            "backup_jobs": copy.deepcopy(self.backup_jobs),
            "pci_mappings": copy.deepcopy(self.pci_mappings),
        }

    # ---------------------------------------------------------- persistence
    def dump(self):
        """The whole state as a JSON-able document (``restore`` reads it back)."""
        hosts = [(n, True) for n in self.nodes.values()] + [(n, False) for n in self.outside.values()]
        guests = list(self.guests.values()) + [g for gs in self.outside_guests.values() for g in gs]
        return {
            "cluster": {"name": self.cluster_name, "dhcp_subnet": str(self.dhcp_subnet),
                        "config_version": self.config_version},
            "nodes": [dict(node.as_dict(), member=member) for node, member in hosts],
            "storages": copy.deepcopy(self.storages), "storage_capacity": dict(self.storage_capacity),
            "volumes": [{"volid": v.volid, "storage": v.storage, "scope": v.scope, "content": v.content,
                         "size": v.size, "format": v.fmt, "vmid": v.vmid} for v in self.volumes.values()],
            "guests": [g.as_dict() for g in guests],
            "ha": {"groups": copy.deepcopy(self.ha_groups), "resources": copy.deepcopy(self.ha_resources),
                   "rules": copy.deepcopy(self.ha_rules)},
            "backup_jobs": copy.deepcopy(self.backup_jobs), "pci_mappings": copy.deepcopy(self.pci_mappings),
            "access": self.access.dump(),
        }

    def restore(self, data):
        """Replace the state with a ``dump()`` document."""
        cluster = data["cluster"]
        self.cluster_name = cluster["name"]
        self.dhcp_subnet = ipaddress.ip_network(cluster["dhcp_subnet"], strict=False)
        self.config_version = int(cluster["config_version"])
        self.nodes, self.outside, self.outside_guests, self.ha_moves = {}, {}, {}, {}
        for entry in data["nodes"]:
            fields = {k: v for k, v in entry.items() if k != "member"}
            node = Node(**fields)
            (self.nodes if entry["member"] else self.outside)[node.name] = node
        self.storages = copy.deepcopy(data["storages"])
        self.storage_capacity = {k: int(v) for k, v in data["storage_capacity"].items()}
        self.volumes = {}
        for entry in data["volumes"]:
            volume = Volume(entry["volid"], entry["storage"], entry["scope"], entry["content"], int(entry["size"]),
                            entry["format"], entry.get("vmid"))
            self.volumes[(volume.scope, volume.volid)] = volume
        self.guests = {}
        for entry in data["guests"]:
            guest = Guest.from_dict(entry)
            if guest.node in self.outside:
                self.outside_guests.setdefault(guest.node, []).append(guest)
            else:
                self.guests[guest.vmid] = guest
        self.ha_groups = copy.deepcopy(data["ha"]["groups"])
        self.ha_resources = copy.deepcopy(data["ha"]["resources"])
        self.ha_rules = copy.deepcopy(data["ha"]["rules"])
        self.backup_jobs = copy.deepcopy(data["backup_jobs"])
        self.pci_mappings = copy.deepcopy(data["pci_mappings"])
        self.access = AccessConfig(self.personality.major, data.get("access"))  # absent in older state files


def normalize_sid(sid):
    """``100`` -> ``vm:100`` (PVE accepts a bare VMID as HA resource id)."""
    return f"vm:{sid}" if sid.isdigit() else sid


def new_uuid():
    """A random UUID string (smbios1/vmgenid)."""
    return str(uuid.uuid4())
