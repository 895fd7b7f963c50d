"""The simulated cluster: nodes, quorum, storages, volumes, guests, HA, backup jobs, PCI mappings.

``ClusterState`` is plain in-memory data built from a seed (see ``seed.py``). All access happens
under ``ClusterState.lock`` (the API handlers and the task runner hold it), so the model itself
needs no further locking. The helpers raise ``ApiError`` with the messages PVE uses, so the API
modules stay short.
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

    def uptime(self):
        """Seconds since start, 0 when stopped."""
        return int(time.time() - self.started) if self.status == "running" and self.started else 0


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
        self.cluster_name = cluster.get("name", "ailab")
        self.dhcp_subnet = ipaddress.ip_network(cluster.get("dhcp_subnet", "192.168.10.0/24"), strict=False)
        self.config_version = int(cluster.get("config_version", len(seed["nodes"]) + 1))
        self.nodes = {}
        for index, entry in enumerate(seed["nodes"], start=1):
            node = Node(
                name=entry["name"], nodeid=int(entry.get("nodeid", index)),
                ip=entry.get("ip", f"192.168.10.{10 + index}"), online=bool(entry.get("online", True)),
                cpus=int(entry.get("cpus", 16)), sockets=int(entry.get("sockets", 1)),
                cpu_model=entry.get("cpu_model", "Intel(R) Xeon(R) CPU"),
                memory=int(float(entry.get("memory_gib", 64)) * GIB),
                bridges=list(entry.get("bridges", ["vmbr0"])), pci_devices=list(entry.get("pci_devices", [])),
            )
            self.nodes[node.name] = node
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
            scopes = [""] if self.is_shared(storage_id) else entry.get("nodes") or list(self.nodes)
            for scope in scopes:
                self.volumes[(scope, entry["volid"])] = Volume(entry["volid"], storage_id, scope, content, size,
                                                               entry.get("format", volname.rsplit(".", 1)[-1]))
        self.guests = {}
        for entry in seed.get("guests") or []:
            guest = Guest(vmid=int(entry["vmid"]), kind=entry.get("type", "qemu"), node=entry["node"],
                          config=dict(entry.get("config") or {}), status=entry.get("status", "stopped"))
            if guest.status == "running":
                guest.started = time.time() - 3600
            self.guests[guest.vmid] = guest
            for _ignored, parsed in guest.disks():
                volid = parsed.get("volume" if guest.kind == "lxc" else "file")
                self._register_volume(guest, volid, parse_size(parsed.get("size", "8G")) or 8 * GIB)
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

    def _register_volume(self, guest, volid, size):
        storage_id = volid.split(":", 1)[0]
        scope = "" if self.is_shared(storage_id) else guest.node
        fmt = volid.rsplit(".", 1)[-1] if "." in volid.split("/")[-1] else "raw"
        self.volumes[(scope, volid)] = Volume(volid, storage_id, scope, "images" if guest.kind == "qemu" else "rootdir",
                                              size, fmt, guest.vmid)

    # -------------------------------------------------------------- cluster
    def quorate(self):
        """True when more than half of the votes (one per node) are online."""
        online = sum(1 for node in self.nodes.values() if node.online)
        return online * 2 > len(self.nodes)

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

    def allocate(self, guest, storage_id, size, fmt=None, name=None):
        """Create a new guest volume on ``storage_id``; return its volid."""
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
        index = 0
        while True:
            base = name or f"vm-{guest.vmid}-disk-{index}"
            if stype == "zfspool" and guest.kind == "lxc" and not name:
                base = f"subvol-{guest.vmid}-disk-{index}"
            volname = f"{guest.vmid}/{base}.{fmt}" if file_based else base
            volid = f"{storage_id}:{volname}"
            if (scope, volid) not in self.volumes or name:
                break
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
        return {
            "cluster": {"name": self.cluster_name, "quorate": self.quorate(), "config_version": self.config_version},
            "nodes": {n.name: {"online": n.online, "ip": n.ip, "nodeid": n.nodeid} for n in self.nodes.values()},
            "storages": copy.deepcopy(self.storages),
            "volumes": sorted(f"{scope or '*'}/{volid}" for scope, volid in self.volumes),
            "guests": {
                str(g.vmid): {"type": g.kind, "node": g.node, "status": g.status, "config": copy.deepcopy(g.config)}
                for g in self.guests.values()
            },
            "ha": {"groups": copy.deepcopy(self.ha_groups), "resources": copy.deepcopy(self.ha_resources),
                   "rules": copy.deepcopy(self.ha_rules)},
            "backup_jobs": copy.deepcopy(self.backup_jobs),
            "pci_mappings": copy.deepcopy(self.pci_mappings),
        }


def normalize_sid(sid):
    """``100`` -> ``vm:100`` (PVE accepts a bare VMID as HA resource id)."""
    return f"vm:{sid}" if sid.isdigit() else sid


def new_uuid():
    """A random UUID string (smbios1/vmgenid)."""
    return str(uuid.uuid4())
