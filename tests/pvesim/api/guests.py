"""QEMU VMs (``/nodes/{node}/qemu``) and LXC containers (``/nodes/{node}/lxc``).

Both guest kinds share one implementation; ``Kind`` holds what differs (task names, disk keys,
messages). Asynchronous calls reserve what they need at once (the VMID of a VM being created, a
``lock`` on the config) and change the state when their task finishes, so a client that does not
wait for the task sees what it would see on PVE.

Disks use PVE's syntax: ``scsi0: local-lvm:32`` allocates a 32 GiB volume and is stored as
``local-lvm:vm-100-disk-0,size=32G``; removed or replaced disks become ``unusedN``.

Config changes of a running guest that PVE cannot hot-plug stay pending (``Guest.pending``) until
the next start (``apply_config``/``apply_pending``). Migrations move local volumes, to another
storage with ``targetstorage``; ``start_ha_move`` is what the HA stack runs for an HA migration.
"""

import base64
import hashlib
import math
import re
import secrets
import time
from dataclasses import dataclass

from ..errors import ApiError, NotModelled, ParamError, TaskFailure
from ..formats import format_size, parse_size, split_list
from ..state import (
    FILE_STORAGES,
    Guest,
    is_disk_key,
    mac_for,
    new_uuid,
    parse_property_string,
    print_property_string,
)
from ..auth import is_root
from . import route

GIB = 1024**3
NEW_DISK = re.compile(r"^([^:]+):(\d+(?:\.\d+)?)$")
RESIZE = re.compile(r"^(\+)?(\d+(?:\.\d+)?)([KMGT])?$")
NET_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", "e1000-82540em", "e1000-82544gc", "e1000-82545em",
              "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet")
DISK_ORDER = ("size", "backup", "cache", "discard", "iothread", "ssd", "media", "format")


@dataclass(frozen=True)
class Kind:
    """What differs between VMs and containers."""

    name: str
    word: str
    prefix: str
    volume_key: str
    create_ignore: tuple

    def task(self, action):
        """PVE task type for ``action`` (``qmstart`` / ``vzstart``)."""
        if action in ("resize", "hastart", "hastop", "hamigrate"):
            return action
        if action == "migrate":
            return "qmigrate" if self.name == "qemu" else "vzmigrate"
        return ("qm" if self.name == "qemu" else "vz") + action


QEMU = Kind("qemu", "VM", "/nodes/{node}/qemu", "file",
            ("node", "vmid", "start", "storage", "pool", "unique", "archive", "live-restore", "bwlimit", "force",
             "import-working-storage", "ha-managed"))
LXC = Kind("lxc", "CT", "/nodes/{node}/lxc", "volume",
           ("node", "vmid", "start", "storage", "pool", "unique", "restore", "force", "bwlimit", "ostemplate",
            "password", "ssh-public-keys", "ignore-unpack-errors", "ha-managed"))
CONFIG_CONTROL = ("node", "vmid", "delete", "revert", "digest", "skiplock", "force", "background_delay")


def _stamp(seconds=None):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _guest(call, kind):
    return call.state.guest(call.get("vmid"), call.get("node"), kind.name)


def _check_lock(guest, kind, skiplock=False):
    if guest.lock and not skiplock:
        raise ApiError(f"{kind.word} {guest.vmid} is locked ({guest.lock})")


def _unused_key(config):
    index = 0
    while f"unused{index}" in config:
        index += 1
    return f"unused{index}"


def _owned(volid, vmid):
    name = volid.split(":", 1)[-1].split("/")[-1]
    return f"-{vmid}-" in name


# ------------------------------------------------------------ config edits
def _disk_value(state, guest, kind, key, value):
    """Allocate/validate one disk option; return the value PVE would store."""
    parsed = parse_property_string(value, kind.volume_key)
    volume = parsed.get(kind.volume_key, "")
    node = guest.node
    if kind.name == "qemu" and volume in ("none", "cdrom"):
        return value
    match = NEW_DISK.match(volume)
    if match and kind.name == "qemu" and match.group(2) == "0" and parsed.get("import-from"):
        source = state.volume(parsed.pop("import-from"), node)
        size = source.size if source else 8 * GIB
        volid = state.allocate(guest, volume.split(":", 1)[0], size, parsed.get("format"))
        parsed[kind.volume_key] = volid
        parsed["size"] = format_size(size)
        return print_property_string(parsed, kind.volume_key, DISK_ORDER)
    if match:
        storage_id, size_gib = match.group(1), float(match.group(2))
        if key.startswith("efidisk") or key.startswith("tpmstate"):
            size = 4 * 1024**2
        else:
            size = int(size_gib * GIB)
        volid = state.allocate(guest, storage_id, size, parsed.get("format"))
        parsed[kind.volume_key] = volid
        parsed["size"] = format_size(size)
        return print_property_string(parsed, kind.volume_key, DISK_ORDER)
    if kind.name == "qemu" and volume.endswith(":cloudinit"):
        storage_id = volume.split(":", 1)[0]
        volid = state.allocate(guest, storage_id, 4 * 1024**2, None, name=f"vm-{guest.vmid}-cloudinit")
        parsed[kind.volume_key] = volid
        parsed["media"] = "cdrom"
        return print_property_string(parsed, kind.volume_key, DISK_ORDER)
    if ":" not in volume:
        if kind.name == "lxc" and volume.startswith("/"):
            return value  # bind mount
        raise ParamError({key: f"invalid format - unable to parse volume ID '{volume}'\n"})
    storage_id = volume.split(":", 1)[0]
    state.storage_on_node(storage_id, node)
    existing = state.volume(volume, node)
    if existing is None:
        raise ApiError(f"volume '{volume}' does not exist")
    if "size" not in parsed and parsed.get("media") != "cdrom":
        parsed["size"] = format_size(existing.size)
    return print_property_string(parsed, kind.volume_key, DISK_ORDER)


def _net_value(guest, kind, key, value):
    """Normalise a NIC: QEMU ``model=MAC,...``; LXC adds ``hwaddr`` and ``type=veth``."""
    index = int(key[3:])
    if kind.name == "qemu":
        parsed = parse_property_string(value, "model")
        model = parsed.pop("model", None)
        mac = parsed.pop("macaddr", None)
        for candidate in NET_MODELS:
            if candidate in parsed:
                model, mac = candidate, parsed.pop(candidate)
        mac = mac or mac_for(guest.vmid, index, guest.config.get("vmgenid", ""))
        rest = ",".join(f"{k}={v}" for k, v in parsed.items())
        return f"{model}={mac}" + (f",{rest}" if rest else "")
    parsed = parse_property_string(value, None)
    parsed.setdefault("hwaddr", mac_for(guest.vmid, index, "ct"))
    parsed.setdefault("type", "veth")
    order = ("name", "bridge", "hwaddr", "ip", "gw", "ip6", "gw6", "firewall", "tag", "mtu", "rate", "type")
    return print_property_string(parsed, None, order)


def _detach(state, guest, key):
    """Move the volume of disk ``key`` to an ``unusedN`` slot (or forget cdrom/bind mounts)."""
    value = guest.config.pop(key, None)
    if isinstance(value, str):
        _park(guest, value)


def _volume_of(kind, value):
    return parse_property_string(value, kind.volume_key).get(kind.volume_key, "") if isinstance(value, str) else ""


def _park(guest, value):
    """Keep the guest-owned volume of a disk value as ``unusedN`` (unless it is still attached)."""
    kind = QEMU if guest.kind == "qemu" else LXC
    parsed = parse_property_string(value, kind.volume_key)
    volume = parsed.get(kind.volume_key, "")
    if parsed.get("media") == "cdrom" or ":" not in volume or not _owned(volume, guest.vmid):
        return
    if any(_volume_of(kind, v) == volume for k, v in guest.config.items() if is_disk_key(kind.name, k)
           or k.startswith("unused")):
        return
    guest.config[_unused_key(guest.config)] = volume


# Options PVE changes on a running guest at once: qemu-server's $fast_plug_option and what
# vmconfig_hotplug_pending hot-plugs, pve-container's $LXC_FASTPLUG_OPTIONS and hotplug_pending.
# Cloud-init options go to the config at once too (they reach the guest with the next cloud-init
# drive). Everything else stays pending until the guest is started again.
QEMU_FASTPLUG = frozenset(("description", "hookscript", "lock", "migrate_downtime", "migrate_speed", "name", "onboot",
                           "protection", "shares", "startup", "tags", "vmstatestorage"))
QEMU_LIVE = frozenset(("balloon", "cpulimit", "cpuunits", "affinity"))
CLOUDINIT_OPTIONS = frozenset(("cicustom", "ciupgrade", "ciuser", "cipassword", "citype", "nameserver", "searchdomain",
                               "sshkeys"))
LXC_FASTPLUG = frozenset(("description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags",
                          "lock"))
LXC_LIVE = frozenset(("cpulimit", "cpuunits", "memory", "swap"))
# Drive options that change on a running VM without unplugging the drive.
DISK_LIVE_OPTIONS = frozenset(("size", "backup", "replicate", "iops", "iops_max", "iops_rd", "iops_rd_max", "iops_wr",
                               "iops_wr_max", "mbps", "mbps_max", "mbps_rd", "mbps_rd_max", "mbps_wr", "mbps_wr_max",
                               "iops_max_length", "iops_rd_max_length", "iops_wr_max_length", "bps", "bps_rd",
                               "bps_wr"))
HOTPLUG_DEFAULT = "network,disk,usb"
_INDEXED = re.compile(r"([a-z]+)(\d+)")
_CRYPTED = re.compile(r"^\$(?:[156]|2[ay])(\$.+){2}")
REDACTED = "**********"


def hotplug_features(value):
    """The set of hotplug features of a ``hotplug`` value (``0`` none, ``1`` the default)."""
    value = str(HOTPLUG_DEFAULT if value is None else value)
    if value == "0":
        return frozenset()
    return frozenset(split_list(HOTPLUG_DEFAULT if value == "1" else value))


def _family(key):
    match = _INDEXED.fullmatch(key)
    return match.group(1) if match else key


def _nic_identity(value):
    """``model=MAC`` of a QEMU NIC value (what needs a hot-unplug to change)."""
    return str(value).split(",", 1)[0]


def _hot(guest, kind, key, value):
    """True when PVE applies ``key`` (set to ``value``; deleted when None) to the running guest at once."""
    family = _family(key)
    if kind.name == "lxc":
        if key in LXC_FASTPLUG or family in ("unused", "net"):
            return True
        if key in LXC_LIVE:
            return value is not None or key != "memory"
        return family == "mp" and value is not None and key not in guest.config
    features = hotplug_features(guest.config.get("hotplug"))
    if key in QEMU_FASTPLUG or key in QEMU_LIVE or key in CLOUDINIT_OPTIONS or family in ("ipconfig", "unused"):
        return True
    if key == "vcpus":
        return "cpu" in features
    if key == "memory":
        return "memory" in features and str(guest.config.get("numa", 0)) == "1"
    if key == "tablet" or family == "usb":
        return "usb" in features
    if key == "hotplug":
        return ("memory" in features) == ("memory" in hotplug_features(value))
    if family == "net":
        if "network" in features:
            return True
        return value is not None and key in guest.config and _nic_identity(guest.config[key]) == _nic_identity(value)
    if not is_disk_key(kind.name, key) or family in ("efidisk", "tpmstate"):
        return False
    hot_bus = "disk" in features and family in ("scsi", "virtio")
    if value is None:
        return hot_bus
    new = parse_property_string(value, "file")
    if new.get("media") == "cdrom":
        return True
    if not isinstance(guest.config.get(key), str):
        return hot_bus
    old = parse_property_string(guest.config[key], "file")
    if old.get("file") != new.get("file"):
        return hot_bus
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)} <= DISK_LIVE_OPTIONS


def _set_option(guest, kind, key, value):
    """Write one option into the running config; a replaced disk volume becomes ``unusedN``."""
    old = guest.config.get(key)
    guest.config[key] = value
    if is_disk_key(kind.name, key) and isinstance(old, str) and _volume_of(kind, old) != _volume_of(kind, value):
        _park(guest, old)


def _delete_option(state, guest, kind, key, force):
    """Remove one option from the running config (a disk is detached to ``unusedN``, or freed with force)."""
    if key.startswith("unused"):
        if key in guest.config:
            state.free_volume(guest.config.pop(key), guest.node)
    elif is_disk_key(kind.name, key):
        if force:
            volume = _volume_of(kind, guest.config.pop(key, None))
            if ":" in volume and _owned(volume, guest.vmid):
                state.free_volume(volume, guest.node)
        else:
            _detach(state, guest, key)
    else:
        guest.config.pop(key, None)


def apply_pending(state, guest, kind):
    """Make every pending change current (``vmconfig_apply_pending``: on start, or for a stopped guest)."""
    for key, force in list(guest.pending_delete.items()):
        _delete_option(state, guest, kind, key, force)
    for key, value in list(guest.pending.items()):
        _set_option(guest, kind, key, value)
    guest.pending.clear()
    guest.pending_delete.clear()


# Tags as PVE stores them: pve-guest-common src/PVE/GuestHelpers.pm get_unique_tags splits the
# list (PVE::Tools::split_list: ';', ',' or spaces), drops repeats without regard to case (the first
# spelling wins; datacenter tag-style case-sensitive is off by default) and sorts them without
# regard to case (tag-style ordering defaults to alphabetical); qemu-server and pve-container call it
# for every 'tags' write.
def unique_tags(value):
    """``value`` as PVE stores a tags option: de-duplicated and sorted case-insensitively, ``;``-joined."""
    seen, tags = set(), []
    for tag in re.split(r"[;,\s]+", str(value or "")):
        if tag and tag.lower() not in seen:
            seen.add(tag.lower())
            tags.append(tag)
    return ";".join(sorted(tags, key=str.lower))


# Options only root@pam itself may set; an API token's user is "user@realm!token", so no token
# may set them, root@pam's own included (PVE compares the auth user id with 'root@pam').
# qemu-server src/PVE/API2/Qemu.pm $check_vm_modify_config_perm: every option outside the known
# privilege groups ends in `die "only root can set '$opt' config\n"` (args, the running*/vmstate
# keys...); hostpciN with a raw 'host' device: "only root can set '$opt' config for non-mapped
# devices" (mapped devices need Mapping.Use instead); usbN with a raw host device likewise.
# pve-container src/PVE/LXC.pm check_ct_modify_config_perm: bind mounts (a host path as volume) and
# devN device passthrough: "Only root can modify ..." (modelled with the qemu wording's structure).
QEMU_ROOT_ONLY = frozenset(("args", "lock", "vmstate", "runningmachine", "runningcpu"))


def root_only_problem(kind, key, value):
    """The message PVE dies with when a non-root caller sets ``key`` to ``value``, or None."""
    family = _family(key)
    if kind.name == "qemu":
        if key in QEMU_ROOT_ONLY:
            return f"only root can set '{key}' config"
        if family in ("hostpci", "usb") and isinstance(value, str):
            parsed = parse_property_string(value, "host")
            if parsed.get("host") and not parsed.get("mapping") and parsed.get("host") != "spice":
                return f"only root can set '{key}' config for non-mapped devices"
        return None
    if family == "mp" and isinstance(value, str) and parse_property_string(value, "volume").get("volume", "") \
            .startswith("/"):
        return f"Only root can modify bind mounts ({key})"
    if family == "dev":
        return f"Only root can modify device passthrough ({key})"
    return None


def check_root_only(call, kind, params):
    """Refuse root-only options unless the caller is root@pam itself (a ticket, not a token)."""
    if is_root(call.principal):
        return
    for key, value in params.items():
        problem = root_only_problem(kind, key, value)
        if problem:
            raise ApiError(problem)


def _hash_password(password):
    """Store a cloud-init password hashed, as PVE does (the shape of a crypt(3) SHA-256 hash)."""
    salt = secrets.token_urlsafe(12)
    digest = base64.b64encode(hashlib.sha256(f"{salt}{password}".encode()).digest(), altchars=b"./").decode()
    return f"$5${salt}${digest.rstrip('=')}"


def apply_config(state, guest, kind, params, creating=False):
    """Apply option changes and deletions to ``guest`` (allocating disks, normalising NICs).

    On a stopped guest (and on create) everything applies at once. On a running guest each change
    is written to the pending section first and applied at once only when PVE can hot-plug it
    (``_hot``); the rest stays pending until the next start (``apply_pending``).
    """
    ignore = kind.create_ignore if creating else CONFIG_CONTROL
    deletions = split_list(params.get("delete", ""))
    reverts = [] if creating else split_list(params.get("revert", ""))
    force = bool(params.get("force")) and not creating
    for key in deletions:
        if key in params:
            raise ApiError(f"unable to delete and set option '{key}' at the same time")
        if kind.name == "lxc" and key == "rootfs":
            raise ApiError("unable to delete required option 'rootfs'")
    for key in reverts:
        if key in params or key in deletions:
            raise ParamError({"revert": f"you can't use '-{key}' and -revert {key}' at the same time"})
    changes = {}
    for key, value in params.items():
        if key in ignore:
            continue
        if isinstance(value, str) and key.startswith("hostpci"):
            mapping = parse_property_string(value, "host").get("mapping")
            if mapping and mapping not in state.pci_mappings:
                raise ApiError(f"PCI mapping '{mapping}' does not exist")
        if key.startswith("unused") and not creating:
            raise ParamError({key: "unable to set unused disks directly - use the disk options"})
        if is_disk_key(kind.name, key):
            changes[key] = _disk_value(state, guest, kind, key, value)
        elif key.startswith("net") and key[3:].isdigit():
            changes[key] = _net_value(guest, kind, key, value)
        elif key == "cipassword" and kind.name == "qemu" and not _CRYPTED.match(str(value)):
            changes[key] = _hash_password(str(value))
        elif key == "tags":
            changes[key] = unique_tags(value)
        else:
            changes[key] = value
    for key in reverts:
        guest.pending_delete.pop(key, None)
        reverted = guest.pending.pop(key, None)
        if isinstance(reverted, str) and is_disk_key(kind.name, key):
            _park(guest, reverted)
    running = guest.status == "running" and not creating
    for key in deletions:
        if running and key.startswith("unused"):
            _delete_option(state, guest, kind, key, True)  # unused volumes go at once, even when running
            continue
        dropped = guest.pending.pop(key, None)
        if isinstance(dropped, str) and is_disk_key(kind.name, key):
            _park(guest, dropped)
        if key in guest.config:
            guest.pending_delete[key] = force
    for key, value in changes.items():
        guest.pending_delete.pop(key, None)
        guest.pending[key] = value
    if not running:
        apply_pending(state, guest, kind)
        return
    for key, key_force in list(guest.pending_delete.items()):
        if _hot(guest, kind, key, None):
            _delete_option(state, guest, kind, key, key_force)
            del guest.pending_delete[key]
    for key, value in list(guest.pending.items()):
        if _hot(guest, kind, key, value):
            _set_option(guest, kind, key, value)
            del guest.pending[key]
    for key, value in list(guest.pending.items()):  # PVE's cleanup_pending
        if guest.config.get(key) == value:
            del guest.pending[key]
    for key in [k for k in guest.pending_delete if k not in guest.config]:
        del guest.pending_delete[key]


def _release_volumes(state, guest):
    for (scope, volid), volume in list(state.volumes.items()):
        if volume.vmid == guest.vmid and (scope in ("", guest.node)) and _owned(volid, guest.vmid):
            del state.volumes[(scope, volid)]


# ------------------------------------------------------------------ lists
def _status_entry(state, guest, kind):
    node = state.nodes[guest.node]
    running = guest.status == "running"
    entry = {
        "vmid": guest.vmid, "name": guest.name, "status": guest.status, "cpus": guest.cpus(node.cpus),
        "maxmem": guest.memory_bytes(), "mem": guest.memory_bytes() // 3 if running else 0,
        "maxdisk": guest.boot_disk_size(), "disk": 0, "uptime": guest.uptime(), "cpu": 0.01 if running else 0,
        "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
    }
    if kind.name == "lxc":
        entry["type"] = "lxc"
        entry["maxswap"] = int(guest.config.get("swap", 512)) * 1024**2
    if running:
        entry["pid"] = 10000 + guest.vmid
    if guest.lock:
        entry["lock"] = guest.lock
    if guest.config.get("template"):
        entry["template"] = 1
    if guest.config.get("tags"):
        entry["tags"] = guest.config["tags"]
    return entry


def _list(kind):
    def handler(call):
        state = call.state
        return [_status_entry(state, g, kind) for g in sorted(state.guests.values(), key=lambda g: g.vmid)
                if g.kind == kind.name and g.node == call.get("node")]

    handler.__doc__ = f"{kind.word}s on a node."
    return handler


def _status_current(kind):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        entry = _status_entry(state, guest, kind)
        ha = state.ha_managed(guest)
        entry["ha"] = {"managed": 1, "state": ha.get("state", "started")} if ha else {"managed": 0}
        if ha and ha.get("group"):
            entry["ha"]["group"] = ha["group"]
        if kind.name == "qemu":
            entry["qmpstatus"] = guest.status
            agent = parse_property_string(guest.config.get("agent", "0"), "enabled").get("enabled", "0")
            if agent in ("1", 1):
                entry["agent"] = 1
            if guest.status == "running":
                entry["running-qemu"] = "9.2.0"
                entry["running-machine"] = "pc-i440fx-9.2+pve1"
        return entry

    handler.__doc__ = f"Current status of a {kind.word}."
    return handler


def _read_config(kind):
    def handler(call):
        guest = _guest(call, kind)
        if call.get("snapshot"):
            raise ApiError(f"snapshot '{call.get('snapshot')}' does not exist")
        config = dict(guest.config) if call.get("current") else guest.effective_config()
        if kind.name == "qemu" and config.get("cipassword"):
            config["cipassword"] = REDACTED
        return {**config, "digest": guest.digest()}

    handler.__doc__ = (f"Configuration of a {kind.word} with pending changes applied (``current=1``: without them), "
                       f"digest; ``cipassword`` is masked.")
    return handler


def _pending(kind):
    def handler(call):
        guest = _guest(call, kind)
        config, pending = dict(guest.config, digest=guest.digest()), dict(guest.pending)
        if kind.name == "qemu":
            if config.get("cipassword") is not None:
                config["cipassword"] = REDACTED
            if pending.get("cipassword") is not None:
                pending["cipassword"] = REDACTED + " "  # differs from the current value, like PVE's
        result = []
        for key in sorted(set(config) | set(pending) | set(guest.pending_delete)):
            item = {"key": key}
            if key in config:
                item["value"] = config[key]
            if key in pending:
                item["pending"] = pending[key]
            if key in guest.pending_delete:
                item["delete"] = 2 if guest.pending_delete[key] else 1
            result.append(item)
        return result

    handler.__doc__ = f"Current and pending values of every {kind.word} option (``key``, ``value``, ``pending``, ``delete``)."
    return handler


def _update_config(kind, asynchronous):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        check_root_only(call, kind, call.params)
        _check_lock(guest, kind, call.get("skiplock"))
        if call.get("digest") and call.get("digest") != guest.digest():
            raise ApiError("detected modified configuration - file changed by other user? Try again.")
        if not asynchronous:
            apply_config(state, guest, kind, call.params)
            return None
        params = dict(call.params)
        staged = Guest(guest.vmid, guest.kind, guest.node, dict(guest.config), guest.status, guest.started,
                       dict(guest.pending), dict(guest.pending_delete))
        apply_config(state, staged, kind, params)

        def work(task):
            current = state.guests.get(guest.vmid)
            if current is not None:
                current.config, current.pending, current.pending_delete = (staged.config, staged.pending,
                                                                           staged.pending_delete)

        def undo(task):
            kept = [str(v) for v in (*guest.config.values(), *guest.pending.values())]
            for value in (*staged.config.values(), *staged.pending.values()):
                volume = _volume_of(kind, value)
                if ":" in volume and _owned(volume, guest.vmid) and not any(volume in k for k in kept):
                    state.free_volume(volume, guest.node)

        return call.task(guest.node, kind.task("config"), guest.vmid, work, undo=undo)

    mode = "asynchronous, returns a UPID" if asynchronous else "synchronous"
    handler.__doc__ = f"Change {kind.word} options ({mode}); on a running guest what cannot be hot-plugged stays pending."
    return handler


# ----------------------------------------------------------------- create
def _create(kind):
    def handler(call):
        state = call.state
        node, vmid = call.get("node"), call.get("vmid")
        if call.get("archive") or call.get("restore"):
            raise NotModelled("POST", f"{kind.prefix} (restore from backup)")
        check_root_only(call, kind, call.params)
        state.check_vmid_unused(vmid)
        guest = Guest(vmid=vmid, kind=kind.name, node=node, config={})
        params = dict(call.params)
        if kind.name == "qemu":
            guest.config.update({"vmgenid": new_uuid(), "smbios1": f"uuid={new_uuid()}",
                                 "meta": f"creation-qemu=9.2.0,ctime={int(time.time())}"})
        else:
            template = params.get("ostemplate")
            storage_id = template.split(":", 1)[0] if ":" in template else ""
            config = state.storage_on_node(storage_id, node) if storage_id else None
            if config is None or "vztmpl" not in split_list(config.get("content", "")):
                raise ApiError(f"volume '{template}' does not exist" if config is None else
                               f"storage '{storage_id}' does not support container templates")
            if state.volume(template, node) is None:
                raise ApiError(f"volume '{template}' does not exist")
            params.setdefault("rootfs", f"{params.get('storage', 'local')}:4")
            params.setdefault("hostname", f"CT{vmid}")
            guest.config["arch"] = params.pop("arch", "amd64")
            guest.config["ostype"] = params.pop("ostype", _ostype(template))
        apply_config(state, guest, kind, params, creating=True)
        if kind.name == "qemu" and "boot" not in guest.config:
            order = [k for k in sorted(guest.config) if is_disk_key("qemu", k) and not k.startswith(("efi", "tpm"))
                     and "cloudinit" not in str(guest.config[k])]
            order += [k for k in sorted(guest.config) if k.startswith("net")]
            if order:
                guest.config["boot"] = "order=" + ";".join(order)
        guest.config["lock"] = "create"
        guest.created_at = time.time()  # pvestatd has not seen it yet (api/cluster.py guest_stats)
        state.guests[vmid] = guest
        start = bool(call.get("start"))

        def work(task):
            guest.config.pop("lock", None)
            if start:
                _do_start(state, guest, kind, task)

        def undo(task):
            state.guests.pop(vmid, None)
            _release_volumes(state, guest)

        return call.task(node, kind.task("create"), vmid, work, undo=undo)

    handler.__doc__ = f"Create a {kind.word} (task {kind.task('create')})."
    return handler


def _ostype(template):
    name = template.rsplit("/", 1)[-1].lower()
    for os_name in ("debian", "ubuntu", "alpine", "centos", "fedora", "archlinux", "rocky", "almalinux"):
        if name.startswith(os_name):
            return os_name
    return "unmanaged"


# ------------------------------------------------------------ power state
def _do_start(state, guest, kind, task):
    """Apply pending changes, do the worker's start checks (bridges, PCI devices), then mark running."""
    node = state.nodes[guest.node]
    if guest.status == "running":
        raise TaskFailure(f"{kind.word} {guest.vmid} already running")
    apply_pending(state, guest, kind)
    for key, value in sorted(guest.config.items()):
        if key.startswith("net") and key[3:].isdigit():
            bridge = parse_property_string(value, None).get("bridge")
            if bridge and bridge not in node.bridges:
                raise TaskFailure(f"bridge '{bridge}' does not exist")
        if key.startswith("hostpci") and key[7:].isdigit():
            _check_pci(state, guest, node, key, value)
    guest.status, guest.started = "running", time.time()


def _check_pci(state, guest, node, key, value):
    """The start checks of one ``hostpciN`` (qemu-server PVE/QemuServer/PCI.pm parse_hostpci, then
    prepare_pci_device)."""
    parsed = parse_property_string(value, "host")
    devices = {d["id"]: d for d in node.pci_devices}
    if parsed.get("mapping"):
        name = parsed["mapping"]
        mapping = state.pci_mappings.get(name)
        # parse_hostpci: PVE::Mapping::PCI::find_on_current_node gives the entries for this node.
        entries = [parse_property_string(e) for e in (mapping or {}).get("map", []) if f"node={node.name}" in e.split(",")]
        if not entries:
            raise TaskFailure(f"PCI device mapping not found for '{name}'")
        for entry in entries:  # every entry of the node must be valid, not only the one that is used
            problem = _mapping_entry_problem(name, entry, devices)
            if problem:
                raise TaskFailure(f"PCI device mapping invalid (hardware probably changed): {problem}")
        paths = [path for entry in entries for path in entry.get("path", "").split(";")]
    else:
        paths = parsed.get("host", "").split(";")
    used = []
    for host in paths:
        full = host if host.count(":") == 2 else f"0000:{host}"
        found = [d for d in devices.values() if d["id"] == full or d["id"].startswith(full + ".")]
        if not found:
            raise TaskFailure(f"no PCI device found for '{host}'")
        used.extend(found)
    # qemu-server PVE/QemuServer/PCI.pm prepare_pci_device: PVE::SysFSTools::check_iommu_support (IOMMU groups
    # exist) before binding to vfio; the devices of a node without IOMMU report group -1 (SysFSTools.pm lspci).
    if any(str(d.get("iommugroup")) == "-1" for d in used):
        raise TaskFailure("cannot prepare PCI pass-through, IOMMU not present")


def _mapping_entry_problem(name, entry, devices):
    """pve-guest-common src/PVE/Mapping/PCI.pm assert_valid: each path's device must exist, and its vendor:device
    ID, IOMMU group (first path only) and subsystem ID must be the configured ones. An ID the device has must be
    configured ("missing expected property"); one it lacks must not be; values compare as strings without
    ``0x``. The IOMMU group of a node without IOMMU is -1 (pve-common PVE/SysFSTools.pm pci_device_info)."""
    configured = {"id": entry.get("id"), "iommugroup": entry.get("iommugroup"),
                  "subsystem-id": entry.get("subsystem-id")}
    for index, given in enumerate(entry.get("path", "").split(";")):
        # the whole device (no function): its function 0 must exist
        path = given if re.search(r"\.[a-f0-9]", given, re.IGNORECASE) else f"{given}.0"
        device = devices.get(path)
        if device is None:
            return f"pci device '{path}' not found"
        expected = {"id": f"{device['vendor']}:{device['device']}", "iommugroup": device.get("iommugroup"),
                    "subsystem-id": None}
        if device.get("subsystem_vendor") is not None and device.get("subsystem_device") is not None:
            expected["subsystem-id"] = f"{device['subsystem_vendor']}:{device['subsystem_device']}"
        for prop in sorted(expected):
            if prop == "iommugroup" and index > 0:
                continue  # checked on the first device only
            want, have = expected[prop], configured[prop]
            if want is None and have is None:
                continue
            if have is None:
                return f"missing expected property '{prop}' for device '{path}'"
            if want is None:
                return f"unexpected property '{prop}' configured for device '{path}'"
            want, have = str(want).replace("0x", ""), str(have).replace("0x", "")
            if want != have:
                return f"'{prop}' does not match for '{name}' ({want} != {have})"
    return None


def _ha_request(call, kind, guest, action):
    """Forward a start/stop to the HA stack (``Requesting HA start for VM 100``)."""
    state = call.state
    sid = state.ha_sid(guest)
    verb = "start" if action == "hastart" else "stop"

    def work(task):
        resource = state.ha_resources.get(sid)
        if resource is not None:
            resource["state"] = "started" if verb == "start" else "stopped"
        current = state.guests.get(guest.vmid)
        if current is None:
            return
        if verb == "start" and current.status != "running":
            _do_start(state, current, kind, task)
        elif verb == "stop":
            current.status, current.started = "stopped", None

    return call.task(guest.node, action, guest.vmid, work,
                     lines=(f"Requesting HA {verb} for {kind.word} {guest.vmid}",))


def _ha_active(state, guest):
    resource = state.ha_managed(guest)
    return resource is not None and resource.get("state") != "ignored"


def _start(kind):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        _check_lock(guest, kind, call.get("skiplock"))
        if guest.config.get("template"):
            raise ApiError(f"you can't start a {kind.word.lower() if kind.name == 'qemu' else kind.word} "
                           f"if it's a template")
        if _ha_active(state, guest) and not call.get("migratedfrom"):
            return _ha_request(call, kind, guest, "hastart")

        def work(task):
            _do_start(state, guest, kind, task)

        return call.task(guest.node, kind.task("start"), guest.vmid, work)

    handler.__doc__ = f"Start a {kind.word}."
    return handler


def _stop(kind, action):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        _check_lock(guest, kind, call.get("skiplock"))
        if action in ("stop", "shutdown") and _ha_active(state, guest):
            return _ha_request(call, kind, guest, "hastop")

        def work(task):
            if guest.status != "running":
                if action == "stop":
                    return
                raise TaskFailure(f"{kind.word} {guest.vmid} not running")
            if action == "reboot":  # a reboot is a shutdown and a start: pending changes apply
                apply_pending(state, guest, kind)
                guest.started = time.time()
            else:
                guest.status, guest.started = "stopped", None

        return call.task(guest.node, kind.task(action), guest.vmid, work)

    handler.__doc__ = f"{action.capitalize()} a {kind.word}."
    return handler


# ----------------------------------------------------------------- delete
def _delete(kind):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        _check_lock(guest, kind, call.get("skiplock"))
        if guest.status == "running":
            raise ApiError(f"{kind.word} {guest.vmid} is running - destroy failed")
        if int(guest.config.get("protection", 0)):
            raise ApiError(f"can't remove {kind.word} {guest.vmid} - protection mode enabled")
        sid = state.ha_sid(guest)
        if sid in state.ha_resources and not call.get("purge"):
            raise ApiError(f"unable to remove {kind.word} {guest.vmid} - used in HA resources and purge parameter "
                           f"not set.")
        purge = bool(call.get("purge"))

        def work(task):
            state.guests.pop(guest.vmid, None)
            _release_volumes(state, guest)
            if purge:
                state.ha_resources.pop(sid, None)
                for rule_id, rule in list(state.ha_rules.items()):
                    remaining = [r for r in split_list(rule.get("resources", "")) if r != sid]
                    if remaining:
                        rule["resources"] = ",".join(remaining)
                    else:
                        del state.ha_rules[rule_id]
                for job in state.backup_jobs.values():
                    if "vmid" in job:
                        remaining = [v for v in split_list(str(job["vmid"])) if v != str(guest.vmid)]
                        job["vmid"] = ",".join(remaining)

        return call.task(guest.node, kind.task("destroy"), guest.vmid, work)

    handler.__doc__ = f"Destroy a {kind.word} (must be stopped)."
    return handler


# ------------------------------------------------------------------ clone
def _clone(kind):
    def handler(call):
        state = call.state
        source = _guest(call, kind)
        newid = call.get("newid")
        target = call.get("target") or source.node
        state.check_vmid_unused(newid)
        state.online_node(target)
        is_template = bool(source.config.get("template"))
        full = call.get("full")
        full = (not is_template) if full is None else bool(full)
        if not full and not is_template:
            raise ApiError("Linked clone feature is only available for templates")
        storage_id = call.get("storage")
        if target != source.node:
            local = [key for key, parsed in source.disks()
                     if not state.is_shared(parsed.get(kind.volume_key, "").split(":", 1)[0])]
            if local and not (storage_id and state.is_shared(storage_id)):
                raise ApiError(f"can't clone {kind.word} to node '{target}' ({kind.word} uses local storage)")
        if source.lock and source.lock != "clone":
            raise ApiError(f"{kind.word} {source.vmid} is locked ({source.lock})")
        clone = Guest(vmid=newid, kind=kind.name, node=target, config={})
        for key, value in source.config.items():
            if key in ("lock", "template", "digest") or key.startswith("unused"):
                continue
            clone.config[key] = value
        name_key = "name" if kind.name == "qemu" else "hostname"
        clone.config[name_key] = call.get(name_key) or f"Copy-of-{source.name}"
        if call.get("description"):
            clone.config["description"] = call.get("description")
        if kind.name == "qemu":
            clone.config["vmgenid"] = new_uuid()
            clone.config["smbios1"] = f"uuid={new_uuid()}"
        for key in list(clone.config):
            if key.startswith("net") and key[3:].isdigit():
                parsed = parse_property_string(clone.config[key], "model" if kind.name == "qemu" else None)
                if kind.name == "qemu":
                    model = parsed.pop("model", "virtio")
                    for candidate in NET_MODELS:
                        if candidate in parsed:
                            model = candidate
                            parsed.pop(candidate)
                    clone.config[key] = _net_value(clone, kind, key, print_property_string(
                        {"model": model, **{k: v for k, v in parsed.items() if k != "macaddr"}}, "model"))
                else:
                    parsed.pop("hwaddr", None)
                    clone.config[key] = _net_value(clone, kind, key, print_property_string(parsed))
        for key, source_disk in source.disks():
            volume = source_disk.get(kind.volume_key, "")
            stored = state.volume(volume, source.node)
            size = parse_size(source_disk.get("size", "0")) or (stored.size if stored else 8 * GIB)
            disk = dict(source_disk)
            disk[kind.volume_key] = state.allocate(clone, storage_id or volume.split(":", 1)[0], size,
                                                   call.get("format"))
            clone.config[key] = print_property_string(disk, kind.volume_key, DISK_ORDER)
        for key, value in source.config.items():
            cloudinit = _cloudinit_storage(value, source.vmid) if is_disk_key(kind.name, key) else None
            if cloudinit:
                clone.config[key] = _disk_value(state, clone, kind, key,
                                                f"{storage_id or cloudinit}:cloudinit,media=cdrom")
        clone.config["lock"] = "clone"
        clone.created_at = time.time()
        state.guests[newid] = clone

        def work(task):
            clone.config.pop("lock", None)

        def undo(task):
            state.guests.pop(newid, None)
            _release_volumes(state, clone)

        lines = [f"create {'full' if full else 'linked'} clone of drive {key} ({parsed.get(kind.volume_key)})"
                 for key, parsed in source.disks()]
        return call.task(source.node, kind.task("clone"), source.vmid, work, undo=undo, lines=lines)

    handler.__doc__ = f"Clone a {kind.word} or template (task {kind.task('clone')})."
    return handler


def _cloudinit_storage(value, vmid):
    """The storage of a guest's own cloud-init drive (``<storage>:vm-<vmid>-cloudinit``), or None."""
    volume = parse_property_string(value, "file").get("file", "") if isinstance(value, str) else ""
    name = volume.split(":", 1)[-1].split("/")[-1]
    if name in (f"vm-{vmid}-cloudinit", f"vm-{vmid}-cloudinit.qcow2", f"vm-{vmid}-cloudinit.raw"):
        return volume.split(":", 1)[0]
    return None


# ---------------------------------------------------------------- migrate
HA_USER = "root@pam"  # the HA stack's tasks run as root@pam


def storage_map(text):
    """``targetstorage``/``target-storage`` as a function: source storage -> target storage, or None.

    Like ``PVE::JSONSchema::parse_idmap``: ``src:dst`` pairs, a single id for every other storage,
    ``1`` for "each storage to itself".
    """
    if not text:
        return None
    entries, default = {}, None
    for item in split_list(text):
        source, sep, target = item.partition(":")
        if sep:
            entries[source] = target
        elif item != "1":
            default = item
    return lambda storage_id: entries.get(storage_id) or default or storage_id


def _check_target_storages(state, kind, text, target):
    """The API's own checks of the storages a storage map names (before the task starts)."""
    mapping = storage_map(text)
    wanted = "images" if kind.name == "qemu" else "rootdir"
    for item in split_list(text):
        storage_id = item.partition(":")[2] or item
        if storage_id == "1" and ":" not in item:
            continue
        state.storage_on_node(storage_id, target)
        if wanted not in split_list(state.storage(storage_id).get("content", "")):
            what = "vm images" if kind.name == "qemu" else "CT rootdirs"
            raise ApiError(f"storage '{storage_id}' does not support {what}")
    return mapping


def _local_volumes(state, guest):
    """The guest's volumes on local storages of its node (what a migration copies), sorted."""
    return [volume for (scope, _ignored), volume in sorted(state.volumes.items())
            if volume.vmid == guest.vmid and scope == guest.node]


def _migration_problem(state, guest, kind, target, params, online):
    """Why the worker would abort (checked when the task runs), or None."""
    if not state.nodes[target].online:
        return "Can't connect to destination address using public key"
    mapping = storage_map(params.get("targetstorage" if kind.name == "qemu" else "target-storage"))
    for _ignored, parsed in guest.disks():
        volume = parsed.get(kind.volume_key, "")
        storage_id = volume.split(":", 1)[0]
        if state.is_shared(storage_id):
            continue
        try:
            state.storage_on_node(mapping(storage_id) if mapping else storage_id, target)
        except ApiError as exc:
            return exc.message
        if online and kind.name == "qemu" and not params.get("with-local-disks"):
            return (f"can't migrate local disk '{volume}': can't live migrate attached local disks without "
                    f"with-local-disks option")
    for key, value in guest.config.items():
        if key.startswith("hostpci") and key[7:].isdigit():
            parsed = parse_property_string(value, "host")
            mapping_entry = state.pci_mappings.get(parsed.get("mapping", ""))
            if mapping_entry is None:
                return f"can't migrate VM which uses local devices: {key}"
            if not any(f"node={target}" in entry.split(",") for entry in mapping_entry.get("map", [])):
                return f"PCI mapping '{parsed['mapping']}' has no entry for node '{target}'"
            if online and not int(mapping_entry.get("live-migration-capable", 0)):
                return f"can't migrate running VM which uses mapped devices: {key}"
    return None


def _move_volumes(state, guest, kind, target, mapping):
    """Move the guest's local volumes to ``target`` (to the mapped storage: new volume ids).

    Returns ``[(old volid, new volid)]``; on failure nothing has moved (ApiError).
    """
    moves = []
    destination = Guest(guest.vmid, guest.kind, target, {})
    try:
        for volume in _local_volumes(state, guest):
            storage_id = mapping(volume.storage) if mapping else volume.storage
            if storage_id == volume.storage:
                moves.append((volume, volume.volid))
                continue
            name = volume.volid.split(":", 1)[1].split("/")[-1].rsplit(".", 1)[0]
            if state.storages.get(storage_id, {}).get("type") == "zfspool" and kind.name == "lxc":
                name = name.replace("vm-", "subvol-", 1)
            else:
                name = name.replace("subvol-", "vm-", 1)
            file_based = state.storages.get(storage_id, {}).get("type") in FILE_STORAGES
            fmt = volume.fmt if file_based and volume.fmt in ("raw", "qcow2") else None
            moves.append((volume, state.allocate(destination, storage_id, volume.size, fmt, prefer=name)))
    except ApiError:
        for volume, new in moves:
            if new != volume.volid:
                state.free_volume(new, target)
        raise
    renames = {}
    for volume, new in moves:
        if new == volume.volid:
            del state.volumes[(volume.scope, volume.volid)]
            volume.scope = target
            state.volumes[(target, new)] = volume
        else:
            state.free_volume(volume.volid, guest.node)
            renames[volume.volid] = new
    for section in (guest.config, guest.pending):
        for key, value in section.items():
            old = _volume_of(kind, value) if is_disk_key(kind.name, key) or key.startswith("unused") else ""
            if old in renames:
                section[key] = value.replace(old, renames[old], 1)
    return [(volume.volid, new) for volume, new in moves]


def _duration(task):
    """``HH:MM:SS`` of the task so far, rounded up to whole seconds (never 00:00:00)."""
    seconds = max(1, math.ceil(task.elapsed()))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _migration_log(state, guest, kind, target, online, task, volumes):
    """The task log of a successful migration, like qemu-server's and pve-container's."""
    start, now = _stamp(task.starttime), _stamp()
    node_ip = state.nodes[target].ip
    attached = {parsed.get(kind.volume_key) for _ignored, parsed in guest.disks()}
    lines = []
    if kind.name == "lxc" and online:
        lines.append(f"{start} shutdown CT {guest.vmid}")
    lines.append(f"{start} starting migration of {kind.word} {guest.vmid} to node '{target}' ({node_ip})")
    for old, _new in volumes:
        where = "attached" if old in attached else "in current VM config"
        lines.append(f"{start} found local {'disk' if kind.name == 'qemu' else 'volume'} '{old}' ({where})")
    moved = [f"{now} volume '{old}' is '{new}' on the target" for old, new in volumes]
    if kind.name == "qemu" and online:
        memory = guest.memory_bytes() / GIB
        downtime = 45 + guest.vmid % 11
        lines += [f"{now} starting VM {guest.vmid} on remote node '{target}'", *moved,
                  f"{now} start remote tunnel", f"{now} ssh tunnel ver 1"]
        disks = [(key, parsed) for key, parsed in guest.disks() if parsed.get("file") in {n for _o, n in volumes}]
        if disks:
            lines.append(f"{now} starting storage migration")
            for key, parsed in disks:
                size = parsed.get("size", "0")
                lines += [f"{now} {key}: start migration to nbd:unix:/run/qemu-server/{guest.vmid}_nbd.migrate:"
                          f"exportname=drive-{key}", f"drive mirror is starting for drive-{key}",
                          f"drive-{key}: transferred {size} of {size} (100.00%), ready"]
            lines.append("all 'mirror' jobs are ready")
        lines += [
            f"{now} starting online/live migration on unix:/run/qemu-server/{guest.vmid}.migrate",
            f"{now} set migration capabilities",
            f"{now} migration downtime limit: 100 ms",
            f"{now} migration cachesize: {max(0.25, memory / 8):.1f} GiB",
            f"{now} set migration parameters",
            f"{now} start migrate command to unix:/run/qemu-server/{guest.vmid}.migrate",
            f"{now} migration active, transferred 94.6 MiB of {memory:.1f} GiB VM-state, 130.8 MiB/s",
            f"{now} average migration speed: 586.3 MiB/s - downtime {downtime} ms",
            f"{now} migration status: completed",
        ]
        for key, _parsed in disks:
            lines += [f"drive-{key}: Completing block job...", f"drive-{key}: Completed successfully.",
                      f"drive-{key}: mirror-job finished"]
        if disks:
            lines.append(f"{now} stopping NBD storage migration server on target.")
    else:
        if volumes:
            lines.append(f"{now} copying local disk images")
        lines += moved
        if kind.name == "lxc" and online:
            lines.append(f"{now} start container on target node")
    lines.append(f"{now} migration finished successfully (duration {_duration(task)})")
    return lines


def _migration_task(app, guest, kind, target, online, params, done=None, failed=None):
    """``(work, undo)`` of a migration task; ``done(task)``/``failed(task)`` run after it."""
    state = app.state
    mapping = storage_map(params.get("targetstorage" if kind.name == "qemu" else "target-storage"))

    def undo(task):
        guest.config.pop("lock", None)
        if failed is not None:
            failed(task)

    def work(task):
        guest.config.pop("lock", None)
        problem = _migration_problem(state, guest, kind, target, params, online)
        volumes = []
        if problem is None:
            try:
                volumes = _move_volumes(state, guest, kind, target, mapping)
            except ApiError as exc:
                problem = exc.message
        if problem:
            task.log(f"{_stamp()} ERROR: migration aborted (duration {_duration(task)}): {problem}")
            if failed is not None:
                failed(task)
            raise TaskFailure("migration aborted")
        for line in _migration_log(state, guest, kind, target, online, task, volumes):
            task.log(line)
        guest.node = target
        if online and kind.name == "lxc":
            guest.started = time.time()  # a restart migration starts the container again
        if done is not None:
            done(task)

    return work, undo


def start_ha_move(app, sid, guest, target, relocate):
    """What the HA stack does for a migrate/relocate request of ``guest`` (acting at once).

    A running VM migrates online (``qmigrate`` with local disks, ``downtime NN ms`` in its log); a
    relocate, and any container, is shut down first (``qmshutdown``/``vzshutdown``), migrated
    offline and started again on the target. All tasks run as root@pam on the node the guest is
    on; the HA service shows ``migrate``/``relocate`` until the guest has moved.
    """
    state = app.state
    kind = QEMU if guest.kind == "qemu" else LXC
    running = guest.status == "running"
    stop_first = running and (relocate or kind.name == "lxc")
    state.ha_moves[sid] = {"state": "relocate" if relocate else "migrate", "target": target}

    def settle(task):
        state.ha_moves.pop(sid, None)
        resource = state.ha_resources.get(sid)
        if (resource is not None and resource.get("state") in ("started", "enabled") and guest.status != "running"
                and state.guests.get(guest.vmid) is guest):
            app.tasks.start(guest.node, kind.task("start"), guest.vmid, HA_USER,
                            lambda start_task: _do_start(state, guest, kind, start_task))

    def migrate(task=None):
        online = running and not stop_first
        params = {"with-local-disks": 1, "online": int(online)} if kind.name == "qemu" else {}
        guest.config["lock"] = "migrate"
        work, undo = _migration_task(app, guest, kind, target, online, params, done=settle, failed=settle)
        app.tasks.start(guest.node, kind.task("migrate"), guest.vmid, HA_USER, work,
                        duration=app.settings.migrate_duration, undo=undo)

    if not stop_first:
        migrate()
        return

    def shutdown(task):
        guest.status, guest.started = "stopped", None
        migrate(task)

    app.tasks.start(guest.node, kind.task("shutdown"), guest.vmid, HA_USER, shutdown, undo=settle)


def _migrate(kind):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        target = call.get("target")
        if target == guest.node:
            raise ParamError({"target": "target is local node."})
        state.node(target)
        _check_lock(guest, kind)
        running = guest.status == "running"
        if kind.name == "qemu" and running and not call.get("online"):
            raise ApiError("can't migrate running VM without --online")
        if kind.name == "lxc" and running:
            if call.get("online"):
                raise ApiError("lxc live migration is currently not implemented")
            if not call.get("restart"):
                raise ApiError("CT is running - use online migration or restart mode")
        storages = call.get("targetstorage" if kind.name == "qemu" else "target-storage")
        if storages:
            _check_target_storages(state, kind, storages, target)
        if _ha_active(state, guest):
            def ha_work(task):
                from .ha import request_move  # ha imports this module

                request_move(call.app, state.ha_sid(guest), target, relocate=False)

            return call.task(guest.node, "hamigrate", guest.vmid, ha_work,
                             lines=(f"Requesting HA migration for {kind.word} {guest.vmid} to node {target}",))
        guest.config["lock"] = "migrate"
        work, undo = _migration_task(call.app, guest, kind, target, running, dict(call.params))
        duration = call.app.settings.migrate_duration
        return call.task(guest.node, kind.task("migrate"), guest.vmid, work, duration=duration, undo=undo)

    handler.__doc__ = f"Migrate a {kind.word} to another node (task {kind.task('migrate')})."
    return handler


def _migrate_preconditions(kind):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        running = guest.status == "running"
        allowed, not_allowed = [], {}
        for name, node in state.nodes.items():
            if name == guest.node or (call.get("target") and name != call.get("target")):
                continue
            unavailable = []
            for _ignored, parsed in guest.disks():
                storage_id = parsed.get(kind.volume_key, "").split(":", 1)[0]
                try:
                    state.storage_on_node(storage_id, name)
                except ApiError:
                    unavailable.append(storage_id)
            if unavailable or not node.online:
                not_allowed[name] = {"unavailable_storages": sorted(set(unavailable))} if unavailable else {}
            else:
                allowed.append(name)
        if kind.name == "lxc":
            return {"running": int(running), "allowed-nodes": allowed, "not-allowed-nodes": not_allowed}
        local_disks = []
        for (scope, volid), volume in sorted(state.volumes.items()):
            if volume.vmid == guest.vmid and scope == guest.node:
                attached = any(p.get("file") == volid for _ignored, p in guest.disks())
                local_disks.append({"volid": volid, "size": volume.size, "cdrom": 0, "is_unused": int(not attached)})
        local_resources, mapped = [], {}
        for key, value in sorted(guest.config.items()):
            if key.startswith("hostpci") and key[7:].isdigit():
                mapping = parse_property_string(value, "host").get("mapping")
                if mapping:
                    capable = int((state.pci_mappings.get(mapping) or {}).get("live-migration-capable", 0))
                    mapped[key] = {"live-migration": capable}
                else:
                    local_resources.append(key)
        return {"running": int(running), "allowed_nodes": allowed, "not_allowed_nodes": not_allowed,
                "local_disks": local_disks, "local_resources": local_resources, "mapped-resources": sorted(mapped),
                "mapped-resource-info": mapped, "has-dbus-vmstate": 1}

    handler.__doc__ = f"Which nodes a {kind.word} can migrate to, and what blocks the others."
    return handler


# ----------------------------------------------------- resize and template
def _resize(kind):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        _check_lock(guest, kind, call.get("skiplock"))
        if call.get("digest") and call.get("digest") != guest.digest():
            raise ApiError("detected modified configuration - file changed by other user? Try again.")
        disk = call.get("disk")
        value = guest.config.get(disk)
        if not isinstance(value, str) or not is_disk_key(kind.name, disk):
            raise ApiError(f"disk '{disk}' does not exist")
        parsed = parse_property_string(value, kind.volume_key)
        if parsed.get("media") == "cdrom":
            raise ApiError(f"disk '{disk}' is a cdrom and cannot be resized")
        match = RESIZE.match(call.get("size"))
        if not match:
            raise ParamError({"size": "invalid format - value does not look like a valid disk size\n"})
        current = parse_size(parsed.get("size", "0")) or 0
        amount = parse_size(match.group(2) + (match.group(3) or "")) or 0
        new_size = current + amount if match.group(1) else amount
        if new_size < current:
            raise ApiError("shrinking disks is not supported")
        volume = state.volume(parsed.get(kind.volume_key, ""), guest.node)

        def work(task):
            if volume is not None:
                total, used = state.storage_usage(volume.storage, guest.node)
                if used + new_size - volume.size > total:
                    raise TaskFailure(f"not enough free space on storage '{volume.storage}'")
                volume.size = new_size
            parsed["size"] = format_size(new_size)
            guest.config[disk] = print_property_string(parsed, kind.volume_key, DISK_ORDER)

        return call.task(guest.node, "resize", guest.vmid, work)

    handler.__doc__ = f"Grow a {kind.word} disk (task resize)."
    return handler


def _template(kind):
    def handler(call):
        state = call.state
        guest = _guest(call, kind)
        _check_lock(guest, kind)
        if guest.config.get("template"):
            raise ApiError("you can't convert a template to a template")
        if guest.status == "running":
            raise ApiError(f"you can't convert a {kind.word} to template if {kind.word} is running")

        def work(task):
            for key, parsed in guest.disks():
                volume = parsed.get(kind.volume_key, "")
                renamed = volume.replace(f"vm-{guest.vmid}-disk-", f"base-{guest.vmid}-disk-")
                stored = state.volume(volume, guest.node)
                if stored is not None and renamed != volume:
                    state.free_volume(volume, guest.node)
                    stored.volid = renamed
                    state.volumes[(stored.scope, renamed)] = stored
                parsed[kind.volume_key] = renamed
                guest.config[key] = print_property_string(parsed, kind.volume_key, DISK_ORDER)
            guest.config["template"] = 1

        return call.task(guest.node, kind.task("template"), guest.vmid, work)

    handler.__doc__ = f"Convert a {kind.word} into a template."
    return handler


# ------------------------------------------------------------ guest agent
def _agent_guest(call):
    state = call.state
    guest = _guest(call, QEMU)
    if guest.status != "running":
        raise ApiError(f"VM {guest.vmid} is not running")
    agent = parse_property_string(guest.config.get("agent", "0"), "enabled").get("enabled", "0")
    if str(agent) not in ("1",):
        raise ApiError("No QEMU guest agent configured")
    if guest.running_for() < call.app.settings.agent_delay:
        raise ApiError("QEMU guest agent is not running")
    return state, guest


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
def agent_interfaces(call):
    """Guest-agent view of the VM's NICs (static ipconfigN addresses or a DHCP lease)."""
    state, guest = _agent_guest(call)
    result = [{
        "name": "lo", "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                         {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}],
        "statistics": {"rx-bytes": 0, "rx-packets": 0, "tx-bytes": 0, "tx-packets": 0,
                       "rx-errs": 0, "tx-errs": 0, "rx-dropped": 0, "tx-dropped": 0},
    }]
    for key in sorted((k for k in guest.config if k.startswith("net") and k[3:].isdigit()), key=lambda k: int(k[3:])):
        index = int(key[3:])
        parsed = parse_property_string(guest.config[key], "model")
        mac = next((parsed[m] for m in NET_MODELS if m in parsed), parsed.get("macaddr", "")).lower()
        address, prefix = state.guest_ip(guest, index)
        result.append({
            "name": f"ens{18 + index}", "hardware-address": mac,
            "ip-addresses": [{"ip-address": address, "ip-address-type": "ipv4", "prefix": prefix}],
            "statistics": {"rx-bytes": 123456, "rx-packets": 1000, "tx-bytes": 65432, "tx-packets": 800,
                           "rx-errs": 0, "tx-errs": 0, "rx-dropped": 0, "tx-dropped": 0},
        })
    return {"result": result}


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/ping")
def agent_ping(call):
    """Ping the guest agent."""
    _agent_guest(call)
    return {"result": {}}


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name")
def agent_hostname(call):
    """Host name reported by the guest agent (the VM name)."""
    _ignored, guest = _agent_guest(call)
    return {"result": {"host-name": guest.name}}


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo")
def agent_osinfo(call):
    """OS information reported by the guest agent."""
    _agent_guest(call)
    return {"result": {"id": "ubuntu", "name": "Ubuntu", "pretty-name": "Ubuntu 24.04.2 LTS", "version-id": "24.04",
                       "kernel-release": "6.8.0-57-generic", "machine": "x86_64"}}


@route("GET", "/nodes/{node}/lxc/{vmid}/interfaces")
def lxc_interfaces(call):
    """Interfaces of a running container."""
    state = call.state
    guest = _guest(call, LXC)
    if guest.status != "running":
        raise ApiError(f"CT {guest.vmid} is not running")
    result = [{"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"}]
    for key in sorted((k for k in guest.config if k.startswith("net") and k[3:].isdigit()), key=lambda k: int(k[3:])):
        parsed = parse_property_string(guest.config[key], None)
        address, prefix = state.guest_ip(guest, int(key[3:]))
        result.append({"name": parsed.get("name", f"eth{key[3:]}"), "hwaddr": parsed.get("hwaddr", "").lower(),
                       "inet": f"{address}/{prefix}"})
    return result


# --------------------------------------------------------------- routes
for _kind in (QEMU, LXC):
    _p = _kind.prefix
    route("GET", _p)(_list(_kind))
    route("POST", _p)(_create(_kind))
    route("DELETE", _p + "/{vmid}")(_delete(_kind))
    route("GET", _p + "/{vmid}/config")(_read_config(_kind))
    route("GET", _p + "/{vmid}/pending")(_pending(_kind))
    route("PUT", _p + "/{vmid}/config")(_update_config(_kind, asynchronous=False))
    route("GET", _p + "/{vmid}/status/current")(_status_current(_kind))
    route("POST", _p + "/{vmid}/status/start")(_start(_kind))
    route("POST", _p + "/{vmid}/status/stop")(_stop(_kind, "stop"))
    route("POST", _p + "/{vmid}/status/shutdown")(_stop(_kind, "shutdown"))
    route("POST", _p + "/{vmid}/status/reboot")(_stop(_kind, "reboot"))
    route("POST", _p + "/{vmid}/clone")(_clone(_kind))
    route("POST", _p + "/{vmid}/migrate")(_migrate(_kind))
    route("GET", _p + "/{vmid}/migrate")(_migrate_preconditions(_kind))
    route("PUT", _p + "/{vmid}/resize")(_resize(_kind))
    route("POST", _p + "/{vmid}/template")(_template(_kind))
route("POST", QEMU.prefix + "/{vmid}/config")(_update_config(QEMU, asynchronous=True))
