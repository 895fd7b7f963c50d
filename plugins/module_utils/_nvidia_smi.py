# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers for nvidia-smi output (private to ailab.cluster).

Pure functions: each takes the text one nvidia-smi command printed and returns plain data, or raises
``NvidiaSmiError`` with a message a lab admin can act on. Nothing here runs a command; the module
``ailab.cluster.nvidia_gpu_info`` does, with the argument lists in ``COMMANDS``.

The formats were checked against output recorded on an NVIDIA H200 with driver 580.159.04 (the
collection's test reference ``gpu/nvidia-h200/``): ``nvidia-smi -q -x`` (DTD ``nvsmi_device_v13``),
``nvidia-smi mig -lgip`` and ``nvidia-smi --query-gpu``. The ``mig -lgi`` / ``mig -lci`` tables and the
"none" messages follow published output of the same driver family (see the unit-test fixtures).
Only the standard library is used, and the module must stay Python 3.9 compatible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import xml.etree.ElementTree as ET

# The nvidia-smi arguments of each read, by name. All of them only read.
COMMANDS = {
    "query_xml": ["-q", "-x"],
    "query_gpu": ["--query-gpu=index,pci.bus_id,compute_cap", "--format=csv,noheader"],
    "mig_profiles": ["mig", "-lgip"],
    "gpu_instances": ["mig", "-lgi"],
    "compute_instances": ["mig", "-lci"],
}

# What nvidia-smi prints instead of a table when there is nothing to list. ``mig -lgip`` on a GPU
# without MIG exits 6 with the first message; ``mig -lgi``/``-lci`` say the second when MIG is off on
# every GPU (exit 0 in the H200 recording) and "No GPU/compute instances found: Not Found" when MIG
# is on and nothing has been created yet.
NONE_MESSAGES = {
    "mig_profiles": ("No MIG-supported devices found",),
    "gpu_instances": ("No MIG-enabled devices found", "No GPU instances found"),
    "compute_instances": ("No MIG-enabled devices found", "No compute instances found"),
}

# nvidia-smi's answer when the driver is loaded but sees no GPU (exit status 6).
NO_DEVICES_MESSAGE = "No devices were found"

MIG_MODES = ("Enabled", "Disabled", "N/A")

_MIB_RE = re.compile(r"^(\d+)\s*MiB$")
_PCI_DEVICE_ID_RE = re.compile(r"^(?:0x)?([0-9A-Fa-f]{8})$")

# | GPU   Name               ID    Instances   Memory     P2P    SM    DEC   ENC  |
# |                                Free/Total   GiB              CE    JPEG  OFA  |
# |   0  MIG 1g.18gb         19     7/7        16.00      No     16     1     0   |
# |                                                               1     1     0   |
_PROFILE_ROW_RE = re.compile(
    r"^\|\s*(?P<gpu>\d+)\s+MIG\s+(?P<name>\S+)\s+(?P<id>\d+)\s+(?P<free>\d+)/(?P<total>\d+)\s+"
    r"(?P<memory>\d+(?:\.\d+)?)\s+(?P<p2p>Yes|No)\s+(?P<sm>\d+)\s+(?P<dec>\d+)\s+(?P<enc>\d+)\s*\|$"
)
_PROFILE_CONTINUATION_RE = re.compile(r"^\|\s*(?P<ce>\d+)\s+(?P<jpeg>\d+)\s+(?P<ofa>\d+)\s*\|$")

# | GPU   Name               Profile  Instance   Placement  |
# |   0  MIG 2g.35gb           14        3          0:2     |
_GPU_INSTANCE_ROW_RE = re.compile(
    r"^\|\s*(?P<gpu>\d+)\s+MIG\s+(?P<name>\S+)\s+(?P<profile_id>\d+)\s+(?P<id>\d+)\s+"
    r"(?P<start>\d+):(?P<size>\d+)\s*\|$"
)

# | GPU     GPU       Name             Profile   Instance   Placement  |
# |   0      3       MIG 2g.35gb          1         0          0:2     |
_COMPUTE_INSTANCE_ROW_RE = re.compile(
    r"^\|\s*(?P<gpu>\d+)\s+(?P<gpu_instance_id>\d+)\s+MIG\s+(?P<name>\S+)\s+(?P<profile_id>\d+)\s+"
    r"(?P<id>\d+)\s+(?P<start>\d+):(?P<size>\d+)\s*\|$"
)


class NvidiaSmiError(Exception):
    """nvidia-smi printed something these parsers cannot read; the message says what and where."""


def command_line(name):
    """The command as a lab admin would type it, for messages: ``nvidia-smi mig -lgip``."""
    return " ".join(["nvidia-smi"] + COMMANDS[name])


def excerpt(text, limit=300):
    """The first ``limit`` characters of ``text`` on one line, for error messages."""
    flat = " ".join((text or "").split())
    if len(flat) > limit:
        return flat[:limit] + "..."
    return flat


def reports_no_devices(text):
    """Tell whether nvidia-smi said that it found no GPU at all."""
    return NO_DEVICES_MESSAGE.lower() in (text or "").lower()


def reports_none(name, text):
    """Tell whether the MIG listing ``name`` printed its "nothing to list" message instead of a table."""
    lowered = (text or "").lower()
    return any(message.lower() in lowered for message in NONE_MESSAGES[name])


# -- nvidia-smi -q -x -------------------------------------------------------------------------------


def _child_text(element, path):
    """The stripped text of ``path`` below ``element`` (direct children only), or None."""
    found = element.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _required_text(gpu, path, bus_id):
    value = _child_text(gpu, path)
    if not value:
        raise NvidiaSmiError(
            "nvidia-smi -q -x lists GPU %s without <%s>: the driver may be too old or the output cut short; "
            "compare with 'nvidia-smi -q' on the host" % (bus_id, path)
        )
    return value


def _memory_mib(text, bus_id):
    if text is None or text == "N/A":
        return None
    match = _MIB_RE.match(text)
    if not match:
        raise NvidiaSmiError(
            "nvidia-smi -q -x gives the memory of GPU %s as %r, not as '<number> MiB'" % (bus_id, text)
        )
    return int(match.group(1))


def _pci_device_id(text, bus_id):
    match = _PCI_DEVICE_ID_RE.match(text)
    if not match:
        raise NvidiaSmiError(
            "nvidia-smi -q -x gives the PCI device id of GPU %s as %r, not as 8 hex digits like 233510DE" % (bus_id, text)
        )
    return match.group(1).upper()


def _mig_mode(gpu, which):
    value = _child_text(gpu, "mig_mode/" + which)
    if value is None:
        return "N/A"  # GPUs without MIG: the driver prints N/A, older drivers leave the element out
    return value


def parse_query_xml(text):
    """Parse ``nvidia-smi -q -x``.

    Returns ``{"driver_version", "cuda_version", "gpus": [...]}`` with one dict per ``<gpu>`` in the
    order nvidia-smi lists them: name, architecture, uuid, pci_bus_id, pci_device_id ("0x233510DE"),
    pci_device_id_raw ("233510DE"), memory_total_mib, mig_mode {current, pending} and mig_capable.
    """
    if not text or not text.strip():
        raise NvidiaSmiError("nvidia-smi -q -x printed nothing: run it on the host to see why")
    # nvidia-smi declares an external DTD only. An internal subset with entities is not nvidia-smi
    # output, and refusing it keeps entity expansion out of the parser.
    if "<!ENTITY" in text:
        raise NvidiaSmiError("nvidia-smi -q -x printed XML with entity declarations, which nvidia-smi never does: check nvidia_smi_path")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise NvidiaSmiError(
            "nvidia-smi -q -x printed XML that cannot be parsed (%s; %d characters, the last ones %r): "
            "run 'nvidia-smi -q -x' on the host and check that it completes" % (exc, len(text), excerpt(text[-80:], 80))
        ) from None
    if root.tag != "nvidia_smi_log":
        raise NvidiaSmiError("nvidia-smi -q -x printed a <%s> document, not <nvidia_smi_log>: check nvidia_smi_path" % root.tag)

    gpus = []
    for gpu in root.findall("gpu"):
        bus_id = gpu.get("id") or _child_text(gpu, "pci/pci_bus_id") or "#%d" % len(gpus)
        raw_device_id = _pci_device_id(_required_text(gpu, "pci/pci_device_id", bus_id), bus_id)
        current = _mig_mode(gpu, "current_mig")
        gpus.append({
            "name": _required_text(gpu, "product_name", bus_id),
            "architecture": _child_text(gpu, "product_architecture"),
            "uuid": _required_text(gpu, "uuid", bus_id),
            "pci_bus_id": _required_text(gpu, "pci/pci_bus_id", bus_id),
            "pci_device_id": "0x" + raw_device_id,
            "pci_device_id_raw": raw_device_id,
            "memory_total_mib": _memory_mib(_child_text(gpu, "fb_memory_usage/total"), bus_id),
            "mig_mode": {"current": current, "pending": _mig_mode(gpu, "pending_mig")},
            "mig_capable": current != "N/A",
        })
    return {
        "driver_version": _child_text(root, "driver_version"),
        "cuda_version": _child_text(root, "cuda_version"),
        "gpus": gpus,
    }


# -- nvidia-smi --query-gpu=index,pci.bus_id,compute_cap --format=csv,noheader ----------------------


def parse_query_gpu(text):
    """Parse the ``--query-gpu`` CSV of ``COMMANDS['query_gpu']``: ``[{index, pci_bus_id, compute_capability}]``.

    ``compute_capability`` is the string nvidia-smi prints ("9.0"), or None where it prints
    ``[N/A]`` or another bracketed placeholder.
    """
    rows = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 3 or not fields[0].isdigit():
            raise NvidiaSmiError(
                "line %d of '%s' is not 'index, pci.bus_id, compute_cap': %r; "
                "compute_cap needs NVIDIA driver 510 or later" % (number, command_line("query_gpu"), line.strip())
            )
        capability = fields[2]
        if not re.match(r"^\d+\.\d+$", capability):
            capability = None
        rows.append({"index": int(fields[0]), "pci_bus_id": fields[1], "compute_capability": capability})
    if not rows:
        raise NvidiaSmiError("'%s' printed no GPU: run it on the host to see why" % command_line("query_gpu"))
    return rows


# -- nvidia-smi mig -lgip / -lgi / -lci -------------------------------------------------------------


def _table_rows(name, text, banner):
    """The data lines of the box-drawn table called ``banner``, as (line number, stripped line)."""
    lines = (text or "").splitlines()
    start = next((i for i, line in enumerate(lines) if banner in line), None)
    if start is None:
        raise NvidiaSmiError(
            "'%s' printed no '%s' table: %r" % (command_line(name), banner, excerpt(text, 200) or "(nothing)")
        )
    separator = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("|=")), None)
    if separator is None:
        raise NvidiaSmiError("the '%s' table of '%s' has no header separator (|===|): the output is cut short" % (banner, command_line(name)))
    rows = []
    for number in range(separator + 1, len(lines)):
        line = lines[number].strip()
        if line and not line.startswith("+"):
            rows.append((number + 1, line))
    return rows


def _unexpected(name, number, line):
    return NvidiaSmiError(
        "line %d of '%s' is not a row this module can read: %r; run the command on the host and report "
        "the output if it looks right" % (number, command_line(name), line)
    )


def parse_mig_profiles(text):
    """Parse ``nvidia-smi mig -lgip``: ``{gpu index: [profile, ...]}`` in table order.

    Each profile: name ("1g.18gb", without the "MIG " prefix), id, instances_free, instances_total,
    memory_gib (float, as printed), p2p (bool), sm, dec, enc, ce, jpeg, ofa (ints). A GPU without
    MIG gives ``{}`` (nvidia-smi says "No MIG-supported devices found").
    """
    if reports_none("mig_profiles", text):
        return {}
    rows = _table_rows("mig_profiles", text, "GPU instance profiles:")
    profiles = {}
    pending = None
    for number, line in rows:
        if pending is not None:
            match = _PROFILE_CONTINUATION_RE.match(line)
            if not match:
                raise _unexpected("mig_profiles", number, line)
            pending.update({key: int(value) for key, value in match.groupdict().items()})
            pending = None
            continue
        match = _PROFILE_ROW_RE.match(line)
        if not match:
            raise _unexpected("mig_profiles", number, line)
        row = match.groupdict()
        pending = {
            "name": row["name"],
            "id": int(row["id"]),
            "instances_free": int(row["free"]),
            "instances_total": int(row["total"]),
            "memory_gib": float(row["memory"]),
            "p2p": row["p2p"] == "Yes",
            "sm": int(row["sm"]),
            "dec": int(row["dec"]),
            "enc": int(row["enc"]),
        }
        profiles.setdefault(int(row["gpu"]), []).append(pending)
    if pending is not None:
        raise NvidiaSmiError(
            "the last profile of '%s' (%s) has no CE/JPEG/OFA line: the output is cut short" % (command_line("mig_profiles"), pending["name"])
        )
    return profiles


def _placement(row):
    return {"start": int(row["start"]), "size": int(row["size"])}


def parse_gpu_instances(text):
    """Parse ``nvidia-smi mig -lgi``: ``{gpu index: [{name, profile_id, id, placement {start, size}}]}``."""
    if reports_none("gpu_instances", text):
        return {}
    instances = {}
    for number, line in _table_rows("gpu_instances", text, "GPU instances:"):
        match = _GPU_INSTANCE_ROW_RE.match(line)
        if not match:
            raise _unexpected("gpu_instances", number, line)
        row = match.groupdict()
        instances.setdefault(int(row["gpu"]), []).append({
            "name": row["name"],
            "profile_id": int(row["profile_id"]),
            "id": int(row["id"]),
            "placement": _placement(row),
        })
    return instances


def parse_compute_instances(text):
    """Parse ``nvidia-smi mig -lci``: ``{gpu index: [{gpu_instance_id, name, profile_id, id, placement}]}``."""
    if reports_none("compute_instances", text):
        return {}
    instances = {}
    for number, line in _table_rows("compute_instances", text, "Compute instances:"):
        match = _COMPUTE_INSTANCE_ROW_RE.match(line)
        if not match:
            raise _unexpected("compute_instances", number, line)
        row = match.groupdict()
        instances.setdefault(int(row["gpu"]), []).append({
            "gpu_instance_id": int(row["gpu_instance_id"]),
            "name": row["name"],
            "profile_id": int(row["profile_id"]),
            "id": int(row["id"]),
            "placement": _placement(row),
        })
    return instances


# -- the facts --------------------------------------------------------------------------------------


def _by_index(name, tables, indexes):
    """Check that a MIG table only names GPUs that nvidia-smi -q -x lists."""
    for index in sorted(tables or {}):
        if index not in indexes:
            raise NvidiaSmiError(
                "'%s' lists GPU %d, which nvidia-smi -q -x does not list (GPUs %s): a GPU may have been "
                "reset or lost between the two commands; run the task again" % (command_line(name), index, sorted(indexes))
            )
    return tables or {}


def empty_facts(driver_version=None, cuda_version=None):
    """The facts of a host without GPUs."""
    return {
        "gpus": [],
        "gpu_count": 0,
        "driver_version": driver_version,
        "cuda_version": cuda_version,
        "models": [],
    }


def build_facts(query_xml, query_gpu, mig_profiles=None, gpu_instances=None, compute_instances=None):
    """Join the parsed outputs into the facts the module returns.

    ``query_xml`` is ``parse_query_xml``'s result, ``query_gpu`` ``parse_query_gpu``'s; the MIG tables
    are ``{gpu index: [...]}`` (None or ``{}`` where the command was not run). GPUs are matched to
    their index and compute capability by PCI bus id and returned sorted by index.
    """
    rows = {row["pci_bus_id"].upper(): row for row in query_gpu}
    if len(rows) != len(query_xml["gpus"]) or len(query_gpu) != len(rows):
        raise NvidiaSmiError(
            "nvidia-smi -q -x lists %d GPUs but '%s' lists %d: a GPU may have been reset or lost between "
            "the two commands; run the task again" % (len(query_xml["gpus"]), command_line("query_gpu"), len(query_gpu))
        )
    gpus = []
    for gpu in query_xml["gpus"]:
        row = rows.get(gpu["pci_bus_id"].upper())
        if row is None:
            raise NvidiaSmiError(
                "GPU %s of nvidia-smi -q -x is missing from '%s' (which lists %s): run the task again"
                % (gpu["pci_bus_id"], command_line("query_gpu"), ", ".join(sorted(rows)))
            )
        gpus.append(dict(gpu, index=row["index"], compute_capability=row["compute_capability"]))
    gpus.sort(key=lambda gpu: gpu["index"])

    indexes = {gpu["index"] for gpu in gpus}
    profiles = _by_index("mig_profiles", mig_profiles, indexes)
    gis = _by_index("gpu_instances", gpu_instances, indexes)
    cis = _by_index("compute_instances", compute_instances, indexes)
    facts = []
    for gpu in gpus:
        index = gpu["index"]
        facts.append({
            "index": index,
            "name": gpu["name"],
            "architecture": gpu["architecture"],
            "uuid": gpu["uuid"],
            "pci_bus_id": gpu["pci_bus_id"],
            "pci_device_id": gpu["pci_device_id"],
            "pci_device_id_raw": gpu["pci_device_id_raw"],
            "memory_total_mib": gpu["memory_total_mib"],
            "driver_version": query_xml["driver_version"],
            "cuda_version": query_xml["cuda_version"],
            "compute_capability": gpu["compute_capability"],
            "mig_capable": gpu["mig_capable"],
            "mig_mode": gpu["mig_mode"],
            "mig_profiles": profiles.get(index, []),
            "gpu_instances": gis.get(index, []),
            "compute_instances": cis.get(index, []),
        })
    return {
        "gpus": facts,
        "gpu_count": len(facts),
        "driver_version": query_xml["driver_version"],
        "cuda_version": query_xml["cuda_version"],
        "models": sorted({gpu["name"] for gpu in facts}),
    }
