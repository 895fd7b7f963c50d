# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest helpers shared by proxmox_guest and proxmox_migrate (private to the collection).

Finding a guest in ``/cluster/resources``, PVE property strings (``virtio=BC:24:11:..,bridge=vmbr0``)
parsed into comparable key=value sets, disk sizes (``32G`` equals ``32768M``), tags, the
fingerprint tag of ``config_check: fingerprint`` (``ailab-fp-<12 hex digits>``), and waiting on
the UPID an API call may or may not return. All Proxmox calls still go through ``_proxmox.py``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxError

KIND_WORD = {"qemu": "VM", "lxc": "CT"}
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_TRUE = ("1", "on", "yes", "true")
_FALSE = ("0", "off", "no", "false")
# QEMU NIC models: PVE stores a NIC as "<model>=<MAC>,bridge=...".
NET_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", "e1000-82540em", "e1000-82544gc",
              "e1000-82545em", "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet")


# ------------------------------------------------------------------ guests in /cluster/resources
def guest_word(kind, vmid=None, name=None):
    """'VM 101 (k8s-cp-1)' / 'CT 120' / 'VM k8s-cp-1', for messages."""
    word = KIND_WORD.get(kind, "guest")
    if vmid is not None and name:
        return "%s %s (%s)" % (word, vmid, name)
    return "%s %s" % (word, vmid if vmid is not None else name)


def ha_sid(kind, vmid):
    """HA service id of a guest: vm:100 / ct:101."""
    return "%s:%s" % ("vm" if kind == "qemu" else "ct", vmid)


def split_resources(resources):
    """``(nodes, guests)`` from GET /cluster/resources: nodes by name, guests as a list."""
    nodes = dict((r["node"], r) for r in resources if r.get("type") == "node")
    guests = [r for r in resources if r.get("type") in ("qemu", "lxc")]
    return nodes, guests


def find_guest(guests, vmid=None, name=None, kind=None):
    """The resource entry of the guest with ``vmid`` (or unique ``name``), or None.

    Raises ProxmoxError when the name is ambiguous or the vmid belongs to the other guest type.
    """
    if vmid is not None:
        for entry in guests:
            if int(entry.get("vmid")) == int(vmid):
                if kind and entry.get("type") != kind:
                    raise ProxmoxError("VMID %s is a %s, not a %s: use another vmid or set type: %s"
                                       % (vmid, KIND_WORD[entry["type"]], KIND_WORD[kind], entry["type"]))
                return entry
        return None
    matches = [e for e in guests if e.get("name") == name and (kind is None or e.get("type") == kind)]
    if len(matches) > 1:
        raise ProxmoxError("Several guests are named %s (VMIDs %s): set vmid to pick one"
                           % (name, ", ".join(str(e["vmid"]) for e in sorted(matches, key=lambda e: e["vmid"]))))
    return matches[0] if matches else None


def name_unnamed(client, guests, kind=None):
    """Give a name to the entries pvestatd has not reported yet, from their configuration.

    ``/cluster/resources`` takes a guest's name, status and template flag from pvestatd, which
    reports every 10 s or so (pve-manager PVE/API2Tools.pm extract_vm_stats): a guest created a few
    seconds ago has status ``unknown`` and no name. A lookup by name must still find it, or a second
    run would create it again. Reads the config of each unnamed entry (of ``kind``, when given) once;
    returns how many were read.
    """
    read = 0
    for entry in guests:
        if entry.get("name") or (kind and entry.get("type") != kind):
            continue
        config = client.get("nodes/%s/%s/%s/config" % (entry["node"], entry["type"], entry["vmid"]),
                            what=guest_word(entry["type"], entry["vmid"])) or {}
        read += 1
        name = config.get("name" if entry["type"] == "qemu" else "hostname")
        if name:
            entry["name"] = name
        if "template" not in entry:
            entry["template"] = int(norm_value(config.get("template", 0)) == "1")
    return read


def live_status(client, node, kind, vmid):
    """``status/current`` of a guest: its power state now (``/cluster/resources`` lags), lock and HA state."""
    return client.get("nodes/%s/%s/%s/status/current" % (node, kind, vmid), what=guest_word(kind, vmid)) or {}


def node_problem(nodes, node, planned=()):
    """Why ``node`` cannot take a guest (unknown or offline), or None; a ``planned`` node (one that joins
    the cluster earlier in the same run, check mode only) counts as a member."""
    if node not in nodes and node in planned:
        return None
    if node not in nodes:
        joining = sorted(set(planned) - set(nodes))
        return "node %s is not in the cluster (nodes: %s)%s" % (
            node, ", ".join(sorted(nodes)) or "none",
            " and does not join it in this run (planned: %s)" % ", ".join(joining) if joining else "")
    if nodes[node].get("status") != "online":
        return "node %s is offline" % node
    return None


# ------------------------------------------------------------------ tasks
def is_upid(value):
    return isinstance(value, str) and value.startswith("UPID:")


def upid_node(upid, default):
    """The node a UPID runs on (its second field)."""
    parts = upid.split(":")
    return parts[1] if len(parts) > 2 and parts[1] else default


def wait_result(client, node, result, what, timeout):
    """Wait on ``result`` when the call answered a UPID (some calls are synchronous on some versions)."""
    if is_upid(result):
        client.wait_task(upid_node(result, node), result, what, timeout=timeout)
    return result


# ------------------------------------------------------------------ property strings
def parse_props(text, default_key=None):
    """PVE property string -> dict (``"virtio,bridge=vmbr0"`` with default key model)."""
    result = {}
    for raw in str(text).split(","):
        part = raw.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if eq:
            result[key.strip()] = value.strip()
        elif default_key:
            result[default_key] = part
    return result


def format_props(values, default_key=None):
    """dict -> property string, the default key first without ``key=``; booleans as 1/0."""
    parts = []
    if default_key and values.get(default_key) is not None:
        parts.append(str(pve_scalar(values[default_key])))
    for key, value in values.items():
        if key == default_key or value is None:
            continue
        parts.append("%s=%s" % (key, pve_scalar(value)))
    return ",".join(parts)


def pve_scalar(value):
    if isinstance(value, bool):
        return 1 if value else 0
    return value


def norm_value(value):
    """One property value as PVE compares it: booleans 1/0, text stripped."""
    text = str(pve_scalar(value)).strip()
    low = text.lower()
    if low in _TRUE:
        return "1"
    if low in _FALSE:
        return "0"
    return text


def props_key(values):
    """A canonical text for a key=value set (order-insensitive, booleans normalised)."""
    return ",".join(sorted("%s=%s" % (k, norm_value(v)) for k, v in values.items() if v is not None))


def as_props(value, default_key=None):
    """A user value (dict or property string) as a dict of strings."""
    if isinstance(value, dict):
        return dict((str(k), pve_scalar(v)) for k, v in value.items() if v is not None)
    return parse_props(value, default_key)


# ------------------------------------------------------------------ sizes
def parse_size(text, bare_unit=""):
    """'32G' / '32768M' / '1T' -> bytes; a bare number counts in ``bare_unit`` ('' = bytes, 'G' = GiB)."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        text = str(text)
    match = _SIZE.match(str(text))
    if not match:
        return None
    unit = match.group(2).upper() or bare_unit
    return int(round(float(match.group(1)) * SIZE_UNITS[unit]))


def format_size(size):
    """bytes -> the largest exact PVE unit: 34359738368 -> '32G'."""
    for unit in ("T", "G", "M", "K"):
        if size and size % SIZE_UNITS[unit] == 0:
            return "%d%s" % (size // SIZE_UNITS[unit], unit)
    return str(size)


def gib_text(size):
    """bytes -> GiB as PVE's new-disk syntax takes it (``local-lvm:32``, ``local-lvm:0.5``)."""
    gib = size / float(SIZE_UNITS["G"])
    return ("%d" % gib) if gib == int(gib) else ("%.3f" % gib).rstrip("0").rstrip(".")


# ------------------------------------------------------------------ NICs
def split_nic(kind, value):
    """A NIC (dict or property string) -> (settings without MAC, MAC or None)."""
    if kind == "qemu":
        props = as_props(value, "model")
        mac = props.pop("macaddr", None)
        for model in NET_MODELS:
            if model in props:
                mac = props.pop(model) or mac
                props["model"] = model
        return props, (str(mac).upper() if mac else None)
    props = as_props(value)
    mac = props.pop("hwaddr", None)
    return props, (str(mac).upper() if mac else None)


def nic_string(kind, props, mac):
    """Settings and MAC -> the property string PVE stores."""
    props = dict(props)
    if kind == "qemu":
        model = props.pop("model", "virtio")
        head = "%s=%s" % (model, mac) if mac else str(model)
        rest = format_props(props)
        return head + ("," + rest if rest else "")
    if mac:
        props["hwaddr"] = mac
    return format_props(props)


# ------------------------------------------------------------------ tags and lists
def split_tags(value):
    """A tag list or PVE's ``a;b`` string (``,`` and spaces separate too) as a list of tags."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = value
    else:
        items = re.split(r"[;, ]+", str(value))
    return [str(t).strip() for t in items if str(t).strip()]


def pve_tags(value):
    """Tags as PVE stores them: repeats dropped without regard to case (the first spelling stays),
    sorted without regard to case, ``;``-joined (pve-guest-common PVE::GuestHelpers::get_unique_tags
    with the default datacenter tag-style)."""
    seen, tags = set(), []
    for tag in split_tags(value):
        if tag.lower() not in seen:
            seen.add(tag.lower())
            tags.append(tag)
    return ";".join(sorted(tags, key=lambda t: (t.lower(), t)))


def tags_key(value):
    """Comparison key of a tag list: equal when PVE would store the two the same way."""
    return pve_tags(value)


# ------------------------------------------------------------------ fingerprint tags
# A PVE tag (format pve-tag: [a-z0-9_][a-z0-9_\-+.]*, case-insensitive) that holds the fingerprint
# of the options a guest was last checked against.
FINGERPRINT_PREFIX = "ailab-fp-"
FINGERPRINT_DIGITS = 12


def fingerprint_tag(data):
    """``ailab-fp-`` and the first 12 hex digits of the SHA-256 of ``data`` as canonical JSON."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return FINGERPRINT_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:FINGERPRINT_DIGITS]


def is_fingerprint_tag(tag):
    """True for a tag of the ``ailab-fp-`` family (any case: PVE may compare tags case-insensitively)."""
    return str(tag).strip().lower().startswith(FINGERPRINT_PREFIX)


def fingerprint_tags(value):
    """The fingerprint tags among ``value`` (a tag list or PVE's ``a;b`` string)."""
    return [t for t in split_tags(value) if is_fingerprint_tag(t)]


def user_tags(value):
    """The tags among ``value`` that are not fingerprint tags."""
    return [t for t in split_tags(value) if not is_fingerprint_tag(t)]
