# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU models a lab is likely to have, and the MIG rules of each (private to ailab.cluster).

Static data and pure functions, standard library only, Python 3.9 compatible. Used by the filters
in ``plugins/filter/lab_gpu.py``; nothing here talks to a GPU.

For every model: the name ``nvidia-smi`` prints (plus aliases an admin may write), the PCI
device+vendor id as ``nvidia-smi --query-gpu=pci.device_id`` prints it (``0x233510DE``), the memory,
and for MIG-capable models the GPU-instance profiles: compute slices, memory slices, the most
instances of the profile on one GPU, the memory ``nvidia-smi mig -lgip`` reports, and the placements
(start slot and size, as ``nvidia-smi mig -lgipp`` prints them).

Sources, cited next to the data:

* [H200-REC] the real NVIDIA H200 SXM recorded 2026-12-04 (driver 580.159.04):
  ``gpu/nvidia-h200/nvidia-smi-mig-lgip.txt`` (profiles, instances, GiB), ``nvidia-smi-mig-lgipp.txt``
  (placements), ``nvml.json`` (slices, memory MiB), ``nvidia-smi-q.xml`` (name, PCI id, 143771 MiB)
  in the shared reference folder (``AILAB_REFERENCE``). The unit test cross-checks the table with them.
* [MIG-GUIDE] NVIDIA Multi-Instance GPU User Guide, "Supported MIG Profiles"
  (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html): profile
  names, fractions of memory and SMs, number of instances, and the placement diagrams for A30,
  A100, H100 and H200. "Supported GPUs" on the same site gives the 7 (4 on A30) instance maximum.
* [MIG-PARTED] mig-parted v0.15.0 ``deployments/systemd/config-default.yaml`` (shared reference
  ``mig-parted/``): PCI ids in its ``device-filter`` entries and the profile counts of its built-in
  layouts. The unit test checks every built-in layout for a catalogue device id against these rules.
* [H100-LGIP] ``nvidia-smi mig -lgip`` of an H100 80GB HBM3 published at
  https://jbarrow.ai/field_notes/nvidia-mig/ (memory GiB of the H100 80GB profiles).
* [NOMINAL] no recording available: memory is the marketed size (GB x 1024 MiB), and a MIG profile's
  memory is the size in its name. Replace with a recording when one exists.

Placement slots follow ``nvidia-smi mig -lgipp``: on 7-slice GPUs there are 8 slots (one per memory
slice), a profile of ``n`` memory slices occupies ``n`` consecutive slots from one of its allowed
starts. The placements for models other than the H200 follow the same diagrams in [MIG-GUIDE]
(A100, H100 and H200 share the GA100/GH100 slot layout; the A30 has 4 slots).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# ---------------------------------------------------------------------------------------- MIG tables
# One profile: (name, compute slices, memory slices, max instances, memory GiB, placement starts).
# The placement size is the memory-slice count.


def _table(compute_slices, memory_slices, profiles, source):
    return {
        "compute_slices": compute_slices,
        "memory_slices": memory_slices,
        "source": source,
        "profiles": dict(
            (name, {"name": name, "compute_slices": g, "memory_slices": m, "max_instances": count,
                    "memory_gib": gib, "placements": tuple(starts), "placement_size": m})
            for name, g, m, count, gib, starts in profiles),
    }


_ALL7 = (0, 1, 2, 3, 4, 5, 6)   # 1-slot profiles on 8-slot GPUs: {0,1,2,3,4,5,6}:1
_EVEN = (0, 2, 4, 6)            # 2-slot 1g profiles: {0,2,4,6}:2
_TWO_G = (0, 2, 4)              # 2-slot 2g profiles: {0,2,4}:2
_HALF = (0, 4)                  # 3g: {0,4}:4
_FIRST = (0,)                   # 4g: {0}:4, 7g: {0}:8

MIG_TABLES = {
    # [H200-REC] nvidia-smi-mig-lgip.txt / -lgipp.txt / nvml.json of the recorded H200 SXM 141GB.
    "h200": _table(7, 8, [
        ("1g.18gb", 1, 1, 7, 16.00, _ALL7),      # ID 19, {0,1,2,3,4,5,6}:1, 16384 MiB
        ("1g.18gb+me", 1, 1, 1, 16.00, _ALL7),   # ID 20, {0,1,2,3,4,5,6}:1
        ("1g.35gb", 1, 2, 4, 32.50, _EVEN),      # ID 15, {0,2,4,6}:2, 33280 MiB
        ("2g.35gb", 2, 2, 3, 32.50, _TWO_G),     # ID 14, {0,2,4}:2
        ("3g.71gb", 3, 4, 2, 69.75, _HALF),      # ID 9, {0,4}:4, 71424 MiB
        ("4g.71gb", 4, 4, 1, 69.75, _FIRST),     # ID 5, {0}:4
        ("7g.141gb", 7, 8, 1, 140.00, _FIRST),   # ID 0, {0}:8, 143360 MiB
    ], "H200-REC"),
    # [MIG-GUIDE] H100 80GB table; GiB from [H100-LGIP].
    "h100-80gb": _table(7, 8, [
        ("1g.10gb", 1, 1, 7, 9.75, _ALL7),
        ("1g.10gb+me", 1, 1, 1, 9.75, _ALL7),
        ("1g.20gb", 1, 2, 4, 19.62, _EVEN),
        ("2g.20gb", 2, 2, 3, 19.62, _TWO_G),
        ("3g.40gb", 3, 4, 2, 39.50, _HALF),
        ("4g.40gb", 4, 4, 1, 39.50, _FIRST),
        ("7g.80gb", 7, 8, 1, 79.25, _FIRST),
    ], "MIG-GUIDE, H100-LGIP"),
    # [MIG-GUIDE] H100 94GB (NVL) table; [MIG-PARTED] all-1g.12gb x7 ... all-7g.94gb; GiB [NOMINAL].
    "h100-94gb": _table(7, 8, [
        ("1g.12gb", 1, 1, 7, 12.0, _ALL7),
        ("1g.12gb+me", 1, 1, 1, 12.0, _ALL7),
        ("1g.24gb", 1, 2, 4, 24.0, _EVEN),
        ("2g.24gb", 2, 2, 3, 24.0, _TWO_G),
        ("3g.47gb", 3, 4, 2, 47.0, _HALF),
        ("4g.47gb", 4, 4, 1, 47.0, _FIRST),
        ("7g.94gb", 7, 8, 1, 94.0, _FIRST),
    ], "MIG-GUIDE, MIG-PARTED, NOMINAL"),
    # [MIG-GUIDE] "For A100-SXM4-80GB, the profile names will change according to the memory
    # proportion: 1g.10gb, 1g.10gb+me, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb"; GiB [NOMINAL].
    "a100-80gb": _table(7, 8, [
        ("1g.10gb", 1, 1, 7, 10.0, _ALL7),
        ("1g.10gb+me", 1, 1, 1, 10.0, _ALL7),
        ("1g.20gb", 1, 2, 4, 20.0, _EVEN),
        ("2g.20gb", 2, 2, 3, 20.0, _TWO_G),
        ("3g.40gb", 3, 4, 2, 40.0, _HALF),
        ("4g.40gb", 4, 4, 1, 40.0, _FIRST),
        ("7g.80gb", 7, 8, 1, 80.0, _FIRST),
    ], "MIG-GUIDE, NOMINAL"),
    # [MIG-GUIDE] A100-SXM4-40GB table (1g.10gb: 2/8 memory, 1/7 SMs, 4 instances, as
    # [MIG-PARTED] all-1g.10gb x4 for 0x20B010DE); GiB [NOMINAL].
    "a100-40gb": _table(7, 8, [
        ("1g.5gb", 1, 1, 7, 5.0, _ALL7),
        ("1g.5gb+me", 1, 1, 1, 5.0, _ALL7),
        ("1g.10gb", 1, 2, 4, 10.0, _EVEN),
        ("2g.10gb", 2, 2, 3, 10.0, _TWO_G),
        ("3g.20gb", 3, 4, 2, 20.0, _HALF),
        ("4g.20gb", 4, 4, 1, 20.0, _FIRST),
        ("7g.40gb", 7, 8, 1, 40.0, _FIRST),
    ], "MIG-GUIDE, NOMINAL"),
    # [MIG-GUIDE] A30-24GB table: 4 compute and 4 memory slices; "a single 1g (2g) profile can include
    # media extensions"; placements {0,1,2,3}:1, {0,2}:2, {0}:4; GiB [NOMINAL].
    "a30": _table(4, 4, [
        ("1g.6gb", 1, 1, 4, 6.0, (0, 1, 2, 3)),
        ("1g.6gb+me", 1, 1, 1, 6.0, (0, 1, 2, 3)),
        ("2g.12gb", 2, 2, 2, 12.0, (0, 2)),
        ("2g.12gb+me", 2, 2, 1, 12.0, (0, 2)),
        ("4g.24gb", 4, 4, 1, 24.0, (0,)),
    ], "MIG-GUIDE, NOMINAL"),
}

# -------------------------------------------------------------------------------------------- models
# name: as nvidia-smi prints it; slug: the resource key of whole GPUs; memory_gb: the marketed size
# (descriptions); memory_mib: nvidia-smi's memory.total where recorded, else [NOMINAL].
MODELS = (
    # [H200-REC] nvidia-smi-q.xml: product_name NVIDIA H200, pci_device_id 233510DE, 143771 MiB.
    {"name": "NVIDIA H200", "slug": "h200", "aliases": ("H200", "H200 SXM", "NVIDIA H200 SXM", "H200 141GB"),
     "pci_device_ids": ("0x233510DE",), "memory_gb": 141, "memory_mib": 143771, "mig": "h200",
     "source": "H200-REC"},
    # [MIG-PARTED] all-balanced entry "H200 141GB, H200 NVL": 0x233B10DE.
    {"name": "NVIDIA H200 NVL", "slug": "h200-nvl", "aliases": ("H200 NVL",),
     "pci_device_ids": ("0x233B10DE",), "memory_gb": 141, "memory_mib": 141 * 1024, "mig": "h200",
     "source": "MIG-PARTED, NOMINAL"},
    # [MIG-PARTED] H100-80GB filter entries: 0x233010DE (SXM5), 0x233110DE (PCIe).
    {"name": "NVIDIA H100 80GB HBM3", "slug": "h100-80gb", "aliases": ("H100 80GB", "H100 SXM5 80GB", "H100 80GB HBM3"),
     "pci_device_ids": ("0x233010DE",), "memory_gb": 80, "memory_mib": 80 * 1024, "mig": "h100-80gb",
     "source": "MIG-PARTED, NOMINAL"},
    {"name": "NVIDIA H100 PCIe", "slug": "h100-pcie", "aliases": ("H100 PCIe", "H100 80GB PCIe"),
     "pci_device_ids": ("0x233110DE",), "memory_gb": 80, "memory_mib": 80 * 1024, "mig": "h100-80gb",
     "source": "MIG-PARTED, NOMINAL"},
    # [MIG-PARTED] "H100 NVL, H800 NVL": 0x232110DE.
    {"name": "NVIDIA H100 NVL", "slug": "h100-nvl", "aliases": ("H100 NVL", "H100 94GB"),
     "pci_device_ids": ("0x232110DE",), "memory_gb": 94, "memory_mib": 94 * 1024, "mig": "h100-94gb",
     "source": "MIG-PARTED, NOMINAL"},
    # [MIG-PARTED] A100-80GB filter entries: 0x20B210DE (SXM4), 0x20B510DE (PCIe).
    {"name": "NVIDIA A100-SXM4-80GB", "slug": "a100-sxm4-80gb", "aliases": ("A100 SXM4 80GB",),
     "pci_device_ids": ("0x20B210DE",), "memory_gb": 80, "memory_mib": 80 * 1024, "mig": "a100-80gb",
     "source": "MIG-PARTED, NOMINAL"},
    {"name": "NVIDIA A100 80GB PCIe", "slug": "a100-pcie-80gb", "aliases": ("A100 PCIe 80GB",),
     "pci_device_ids": ("0x20B510DE",), "memory_gb": 80, "memory_mib": 80 * 1024, "mig": "a100-80gb",
     "source": "MIG-PARTED, NOMINAL"},
    # [MIG-PARTED] A100-40GB filter entries: 0x20B010DE (SXM4), 0x20B110DE (PCIe).
    {"name": "NVIDIA A100-SXM4-40GB", "slug": "a100-sxm4-40gb", "aliases": ("A100 SXM4 40GB",),
     "pci_device_ids": ("0x20B010DE",), "memory_gb": 40, "memory_mib": 40 * 1024, "mig": "a100-40gb",
     "source": "MIG-PARTED, NOMINAL"},
    {"name": "NVIDIA A100-PCIE-40GB", "slug": "a100-pcie-40gb", "aliases": ("A100 PCIe 40GB",),
     "pci_device_ids": ("0x20B110DE",), "memory_gb": 40, "memory_mib": 40 * 1024, "mig": "a100-40gb",
     "source": "MIG-PARTED, NOMINAL"},
    # [MIG-PARTED] A30-24GB: 0x20B710DE.
    {"name": "NVIDIA A30", "slug": "a30", "aliases": ("A30", "A30 24GB"),
     "pci_device_ids": ("0x20B710DE",), "memory_gb": 24, "memory_mib": 24 * 1024, "mig": "a30",
     "source": "MIG-PARTED, NOMINAL"},
    # Without MIG: [NOMINAL] memory; PCI ids from the PCI ID repository (https://pci-ids.ucw.cz, vendor 10de).
    {"name": "NVIDIA GeForce RTX 3090", "slug": "rtx-3090", "aliases": ("RTX 3090", "GeForce RTX 3090"),
     "pci_device_ids": ("0x220410DE",), "memory_gb": 24, "memory_mib": 24 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "NVIDIA GeForce RTX 4090", "slug": "rtx-4090", "aliases": ("RTX 4090", "GeForce RTX 4090"),
     "pci_device_ids": ("0x268410DE",), "memory_gb": 24, "memory_mib": 24 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "NVIDIA RTX A6000", "slug": "rtx-a6000", "aliases": ("RTX A6000", "A6000"),
     "pci_device_ids": ("0x223010DE",), "memory_gb": 48, "memory_mib": 48 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "NVIDIA RTX 6000 Ada Generation", "slug": "rtx-6000-ada", "aliases": ("RTX 6000 Ada",),
     "pci_device_ids": ("0x26B110DE",), "memory_gb": 48, "memory_mib": 48 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "NVIDIA L40S", "slug": "l40s", "aliases": ("L40S",),
     "pci_device_ids": ("0x26B910DE",), "memory_gb": 48, "memory_mib": 48 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "NVIDIA L40", "slug": "l40", "aliases": ("L40",),
     "pci_device_ids": ("0x26B510DE",), "memory_gb": 48, "memory_mib": 48 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "NVIDIA L4", "slug": "l4", "aliases": ("L4",),
     "pci_device_ids": ("0x27B810DE",), "memory_gb": 24, "memory_mib": 24 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "NVIDIA A40", "slug": "a40", "aliases": ("A40",),
     "pci_device_ids": ("0x223510DE",), "memory_gb": 48, "memory_mib": 48 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "NVIDIA A10", "slug": "a10", "aliases": ("A10",),
     "pci_device_ids": ("0x223610DE",), "memory_gb": 24, "memory_mib": 24 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "Tesla T4", "slug": "t4", "aliases": ("T4", "NVIDIA T4"),
     "pci_device_ids": ("0x1EB810DE",), "memory_gb": 16, "memory_mib": 16 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "Tesla V100-SXM2-16GB", "slug": "v100-sxm2-16gb", "aliases": ("V100 SXM2 16GB",),
     "pci_device_ids": ("0x1DB110DE",), "memory_gb": 16, "memory_mib": 16 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "Tesla V100-PCIE-16GB", "slug": "v100-pcie-16gb", "aliases": ("V100 PCIe 16GB",),
     "pci_device_ids": ("0x1DB410DE",), "memory_gb": 16, "memory_mib": 16 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "Tesla V100-SXM2-32GB", "slug": "v100-sxm2-32gb", "aliases": ("V100 SXM2 32GB",),
     "pci_device_ids": ("0x1DB510DE",), "memory_gb": 32, "memory_mib": 32 * 1024, "mig": None, "source": "NOMINAL"},
    {"name": "Tesla V100-PCIE-32GB", "slug": "v100-pcie-32gb", "aliases": ("V100 PCIe 32GB",),
     "pci_device_ids": ("0x1DB610DE",), "memory_gb": 32, "memory_mib": 32 * 1024, "mig": None, "source": "NOMINAL"},
)

_NOISE = ("nvidia", "geforce", "tesla")


def normalize_name(name):
    """A model name reduced for comparison: lower case, vendor words dropped, punctuation as spaces
    ("NVIDIA GeForce RTX 3090" and "rtx-3090" both give "rtx 3090")."""
    words = re.split(r"[^a-z0-9]+", str(name).lower())
    return " ".join(w for w in words if w and w not in _NOISE)


def _build_index():
    index = {}
    for model in MODELS:
        for name in (model["name"], model["slug"]) + tuple(model["aliases"]):
            key = normalize_name(name)
            if key in index and index[key] is not model:
                raise ValueError("GPU catalogue: %r names both %s and %s" % (name, index[key]["name"], model["name"]))
            index[key] = model
    return index


_INDEX = _build_index()


def known_model_names():
    """The names nvidia-smi prints for the catalogue's models, sorted."""
    return sorted(model["name"] for model in MODELS)


def find_model(name):
    """The catalogue entry for a model name or alias (case and punctuation do not matter), or None."""
    if name is None:
        return None
    return _INDEX.get(normalize_name(name))


def find_model_by_pci_id(pci_device_id):
    """The catalogue entry whose PCI device+vendor id is ``pci_device_id`` (``0x233510DE`` or
    ``233510DE``, any case), or None."""
    wanted = str(pci_device_id or "").upper()
    if wanted.startswith("0X"):
        wanted = wanted[2:]
    for model in MODELS:
        if any(pci[2:].upper() == wanted for pci in model["pci_device_ids"]):
            return model
    return None


def mig_table(model):
    """The MIG table of a catalogue model, or None when it cannot run MIG."""
    return MIG_TABLES.get(model["mig"]) if model and model.get("mig") else None


def layout_name(profile):
    """The mig-parted layout name for all instances of one profile: ``+`` is written ``.``
    (profile ``1g.18gb+me`` gives ``all-1g.18gb.me``, see mig-parted/SOURCE.md)."""
    return "all-" + profile.replace("+", ".")


def _base_size(profile_name):
    # "1g.18gb" -> 1; attributes (+me, -me, +gfx) are not base profiles.
    match = re.match(r"^(\d+)g\.\d+gb$", profile_name)
    return int(match.group(1)) if match else None


def builtin_layouts(model):
    """The named layouts MIG manager v0.15.0 generates for a model (mig-parted/SOURCE.md, "dynamic MIG
    config generation", pkg/mig/builder): all-disabled, all-enabled, all-<profile> at its maximum count,
    and all-balanced (2 x 1g + 1 x 2g + 1 x 3g on 7-slice GPUs, 2 x 1g + 1 x 2g on 4-slice GPUs, each size
    the base profile with the most instances). Returns {name: {profile: count}} ({} for the first two)."""
    table = mig_table(model)
    if table is None:
        return {}
    layouts = {"all-disabled": {}, "all-enabled": {}}
    best = {}
    for name, profile in sorted(table["profiles"].items()):
        layouts[layout_name(name)] = {name: profile["max_instances"]}
        size = _base_size(name)
        if size is not None and (size not in best or profile["max_instances"] > best[size]["max_instances"]):
            best[size] = profile
    wanted = {1: 2, 2: 1, 3: 1} if table["compute_slices"] == 7 else {1: 2, 2: 1}
    if all(size in best for size in wanted):
        layouts["all-balanced"] = dict((best[size]["name"], count) for size, count in wanted.items())
    return layouts


def _describe_profiles(table):
    return ", ".join("%s (at most %d)" % (name, p["max_instances"]) for name, p in sorted(
        table["profiles"].items(), key=lambda item: (item[1]["compute_slices"], item[1]["memory_slices"], item[0])))


def offered_profiles(model):
    """'1g.18gb (at most 7), 1g.18gb+me (at most 1), ...' for messages."""
    table = mig_table(model)
    return _describe_profiles(table) if table else ""


def _place(instances, starts_of, size_of, used, grid, floor=0):
    """Depth-first search: can every instance get one of its starts without overlapping slots?
    Instances of one profile are adjacent and take increasing starts (``floor``), so the search does
    not try the same placement in another order."""
    if not instances:
        return True
    profile = instances[0]
    size = size_of[profile]
    for start in starts_of[profile]:
        mask = ((1 << size) - 1) << start
        if start >= floor and start + size <= grid and not used & mask:
            following = start + 1 if len(instances) > 1 and instances[1] == profile else 0
            if _place(instances[1:], starts_of, size_of, used | mask, grid, following):
                return True
    return False


def layout_problems(model, layout):
    """Why a per-GPU layout ({profile: count}) does not fit the model's MIG rules: a list of sentences,
    empty when it fits. Checks, in order: MIG capable, known profiles, counts >= 1, per-profile maximum,
    compute slices, memory slices, and the exact placement search."""
    table = mig_table(model)
    if table is None:
        return ["%s cannot run MIG" % model["name"]]
    profiles = table["profiles"]
    unknown = sorted(p for p in layout if p not in profiles)
    if unknown:
        return ["%s does not offer the MIG profile%s %s; it offers %s"
                % (model["name"], "s" if len(unknown) > 1 else "", ", ".join(unknown), _describe_profiles(table))]
    problems = []
    for name, count in sorted(layout.items()):
        if count < 1:
            problems.append("the count of %s must be at least 1, got %s" % (name, count))
        elif count > profiles[name]["max_instances"]:
            problems.append("%s allows at most %d x %s per GPU, the layout asks for %d"
                            % (model["name"], profiles[name]["max_instances"], name, count))
    if problems:
        return problems
    compute = sum(profiles[p]["compute_slices"] * n for p, n in layout.items())
    memory = sum(profiles[p]["memory_slices"] * n for p, n in layout.items())
    if compute > table["compute_slices"]:
        problems.append("the layout needs %d compute slices, %s has %d"
                        % (compute, model["name"], table["compute_slices"]))
    if memory > table["memory_slices"]:
        problems.append("the layout needs %d memory slices, %s has %d"
                        % (memory, model["name"], table["memory_slices"]))
    if problems:
        return problems
    instances = sorted((p for p, n in layout.items() for _index in range(n)),
                       key=lambda p: (-profiles[p]["placement_size"], len(profiles[p]["placements"]), p))
    starts = dict((p, profiles[p]["placements"]) for p in layout)
    sizes = dict((p, profiles[p]["placement_size"]) for p in layout)
    if not _place(instances, starts, sizes, 0, table["memory_slices"]):
        slots = "; ".join("%s {%s}:%d" % (p, ",".join(str(s) for s in starts[p]), sizes[p]) for p in sorted(layout))
        problems.append("the layout has no valid placement on %s: the profiles' slots overlap (placements: %s)"
                        % (model["name"], slots))
    return problems
