# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU model catalogue (plugins/module_utils/_gpu_models.py) against the recorded H200 and mig-parted.

The reference files are read from AILAB_REFERENCE (default ../shared/reference), never copied.
"""

import itertools
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ansible_collections.ailab.cluster.plugins.module_utils import _gpu_models as catalogue

ROOT = Path(__file__).resolve().parents[4]
REFERENCE = Path(os.environ.get("AILAB_REFERENCE", ROOT.parent / "shared" / "reference"))
H200 = REFERENCE / "gpu" / "nvidia-h200"
CONFIG_DEFAULT = REFERENCE / "mig-parted" / "config-default.yaml"


def reference_file(path):
    if not path.is_file():
        pytest.skip("upstream reference data %s is not available (set AILAB_REFERENCE)" % path)
    return path.read_text()


def model(name):
    found = catalogue.find_model(name)
    assert found is not None, name
    return found


# ---------------------------------------------------------------------------------- the recordings
def recorded_h200_profiles():
    """{name: {id, instances, gib, placements, size, slices, memory_mib}} from nvidia-smi and NVML."""
    profiles, by_id = {}, {}
    row = re.compile(r"^\|\s+\d+\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)/(\d+)\s+([\d.]+)\s")
    for line in reference_file(H200 / "nvidia-smi-mig-lgip.txt").splitlines():
        match = row.match(line)
        if match:
            name, profile_id, _free, total, gib = match.groups()
            profiles[name] = {"id": int(profile_id), "instances": int(total), "gib": float(gib)}
            by_id[int(profile_id)] = profiles[name]
    placement = re.compile(r"Profile ID\s+(\d+) Placements?\s*:\s*\{([\d,]+)\}:(\d+)")
    for line in reference_file(H200 / "nvidia-smi-mig-lgipp.txt").splitlines():
        match = placement.search(line)
        if match:
            entry = by_id[int(match.group(1))]
            entry["placements"] = tuple(int(s) for s in match.group(2).split(","))
            entry["size"] = int(match.group(3))
    nvml = json.loads(reference_file(H200 / "nvml.json"))
    for item in nvml["gpus"][0]["gpu_instance_profiles"]:
        if "id" in item:
            by_id[item["id"]].update(slices=item["slices"], instances_nvml=item["instances"],
                                     memory_mib=item["memory_mib"])
    return profiles


def test_the_recordings_parse_to_the_seven_h200_profiles():
    profiles = recorded_h200_profiles()
    assert sorted(profiles) == ["1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"]
    assert all({"placements", "size", "slices", "memory_mib"} <= set(p) for p in profiles.values())


def test_the_h200_table_is_the_recorded_one():
    table = catalogue.mig_table(model("NVIDIA H200"))
    recorded = recorded_h200_profiles()
    assert sorted(table["profiles"]) == sorted(recorded)
    for name, mine in table["profiles"].items():
        real = recorded[name]
        assert mine["max_instances"] == real["instances"] == real["instances_nvml"], name
        assert mine["memory_gib"] == real["gib"], name
        assert int(mine["memory_gib"] * 1024) == real["memory_mib"], name
        assert mine["compute_slices"] == real["slices"], name
        assert mine["placements"] == real["placements"], name
        assert mine["placement_size"] == mine["memory_slices"] == real["size"], name
    assert max(p["placement_size"] for p in table["profiles"].values()) == table["memory_slices"] == 8
    assert max(p["compute_slices"] for p in table["profiles"].values()) == table["compute_slices"] == 7


def test_the_h200_model_is_the_recorded_one():
    xml = ET.fromstring(reference_file(H200 / "nvidia-smi-q.xml"))
    gpu = xml.find("gpu")
    h200 = model(gpu.findtext("product_name"))
    assert h200["name"] == gpu.findtext("product_name") == "NVIDIA H200"
    assert h200["pci_device_ids"] == ("0x" + gpu.findtext("pci/pci_device_id"),)
    assert catalogue.find_model_by_pci_id(gpu.findtext("pci/pci_device_id")) is h200
    assert "%d MiB" % h200["memory_mib"] == gpu.findtext("fb_memory_usage/total")
    nvml = json.loads(reference_file(H200 / "nvml.json"))["gpus"][0]
    assert catalogue.find_model_by_pci_id(nvml["pci_device_id"]) is h200  # lower case 0x233510de


# ----------------------------------------------------------------------------- mig-parted layouts
def config_default():
    return yaml.safe_load(reference_file(CONFIG_DEFAULT))["mig-configs"]


def layouts_for(pci_id, table):
    """The layouts of config-default.yaml for a device id (rule of mig-parted/SOURCE.md: an entry matches by
    device-filter or because it has none, and every profile of the matching entries exists on the model)."""
    result = {}
    for name, entries in config_default().items():
        matching = []
        for entry in entries:
            device_filter = entry.get("device-filter")
            if isinstance(device_filter, str):
                device_filter = [device_filter]
            if device_filter is None or pci_id.upper() in (f.strip().upper() for f in device_filter):
                matching.append(entry)
        profiles = set(p for e in matching for p in (e.get("mig-devices") or {}))
        if matching and profiles <= set(table["profiles"]):
            assert len(matching) == 1, (name, pci_id)
            result[name] = dict(matching[0].get("mig-devices") or {})
    return result


MIG_MODELS = [m for m in catalogue.MODELS if m["mig"]]


@pytest.mark.parametrize("gpu", MIG_MODELS, ids=[m["slug"] for m in MIG_MODELS])
def test_every_built_in_layout_for_the_model_fits_the_catalogue_and_is_generated(gpu):
    table = catalogue.mig_table(gpu)
    generated = catalogue.builtin_layouts(gpu)
    for pci_id in gpu["pci_device_ids"]:
        upstream = layouts_for(pci_id, table)
        assert {"all-disabled", "all-enabled", "all-balanced"} <= set(upstream), pci_id
        for name, layout in sorted(upstream.items()):
            if layout:
                assert catalogue.layout_problems(gpu, layout) == [], (pci_id, name)
            assert generated.get(name) == layout, (pci_id, name)


@pytest.mark.parametrize("gpu", MIG_MODELS, ids=[m["slug"] for m in MIG_MODELS])
def test_the_catalogue_device_ids_of_mig_models_are_mig_parted_ones(gpu):
    filters = set()
    for entries in config_default().values():
        for entry in entries:
            value = entry.get("device-filter") or []
            filters.update(f.strip().upper() for f in ([value] if isinstance(value, str) else value))
    assert set(p.upper() for p in gpu["pci_device_ids"]) <= filters


def test_the_h200_layouts_are_the_ones_of_mig_parted_source():
    # mig-parted/SOURCE.md, "Named layouts per GPU model", H200 141GB SXM 0x233510DE.
    h200 = model("NVIDIA H200")
    assert layouts_for("0x233510DE", catalogue.mig_table(h200)) == {
        "all-disabled": {}, "all-enabled": {},
        "all-1g.18gb": {"1g.18gb": 7}, "all-1g.18gb.me": {"1g.18gb+me": 1}, "all-1g.35gb": {"1g.35gb": 4},
        "all-2g.35gb": {"2g.35gb": 3}, "all-3g.71gb": {"3g.71gb": 2}, "all-4g.71gb": {"4g.71gb": 1},
        "all-7g.141gb": {"7g.141gb": 1}, "all-balanced": {"1g.18gb": 2, "2g.35gb": 1, "3g.71gb": 1},
    }
    assert sorted(catalogue.builtin_layouts(h200)) == sorted(layouts_for("0x233510DE", catalogue.mig_table(h200)))


def test_the_same_layout_name_means_other_counts_on_other_models():
    # config-default.yaml: all-1g.10gb is 7 instances on 80 GB parts and 4 on A100-40GB.
    assert catalogue.builtin_layouts(model("NVIDIA A100-SXM4-80GB"))["all-1g.10gb"] == {"1g.10gb": 7}
    assert catalogue.builtin_layouts(model("NVIDIA A100-SXM4-40GB"))["all-1g.10gb"] == {"1g.10gb": 4}
    assert catalogue.builtin_layouts(model("NVIDIA A30"))["all-balanced"] == {"1g.6gb": 2, "2g.12gb": 1}
    assert catalogue.builtin_layouts(model("NVIDIA GeForce RTX 3090")) == {}


# --------------------------------------------------------------------------------------- names
@pytest.mark.parametrize("gpu", catalogue.MODELS, ids=[m["slug"] for m in catalogue.MODELS])
def test_every_name_alias_and_slug_finds_its_model(gpu):
    for name in (gpu["name"], gpu["slug"], gpu["name"].upper(), gpu["name"].lower()) + tuple(gpu["aliases"]):
        assert catalogue.find_model(name) is gpu, name
    for pci in gpu["pci_device_ids"]:
        assert re.match(r"^0x[0-9A-F]{4}10DE$", pci), pci
        assert catalogue.find_model_by_pci_id(pci) is gpu
        assert catalogue.find_model_by_pci_id(pci[2:].lower()) is gpu
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", gpu["slug"])
    assert gpu["memory_mib"] >= gpu["memory_gb"] * 1000 * 0.95


def test_names_are_compared_without_vendor_words_case_or_punctuation():
    assert catalogue.normalize_name("NVIDIA GeForce RTX 3090") == "rtx 3090"
    assert catalogue.find_model("rtx-3090") is catalogue.find_model("NVIDIA GeForce RTX 3090")
    assert catalogue.find_model("nvidia h200") is catalogue.find_model("H200")
    assert catalogue.find_model("NVIDIA H300") is None and catalogue.find_model(None) is None
    assert catalogue.find_model_by_pci_id("0x000010DE") is None and catalogue.find_model_by_pci_id(None) is None


def test_ambiguous_names_are_not_aliases():
    # "A100" is 40 or 80 GB, with other MIG profiles: an admin must say which.
    for name in ("A100", "H100", "V100", "A100 PCIe"):
        assert catalogue.find_model(name) is None, name


def test_unique_slugs_ids_and_names():
    slugs = [m["slug"] for m in catalogue.MODELS]
    ids = [p for m in catalogue.MODELS for p in m["pci_device_ids"]]
    assert len(set(slugs)) == len(slugs) and len(set(ids)) == len(ids)
    assert catalogue.known_model_names() == sorted(m["name"] for m in catalogue.MODELS)


def test_a_name_given_to_two_models_is_refused(monkeypatch):
    twin = dict(catalogue.MODELS[0], slug="twin", name="Twin", aliases=("H200",))
    monkeypatch.setattr(catalogue, "MODELS", catalogue.MODELS + (twin,))
    with pytest.raises(ValueError, match="names both NVIDIA H200 and Twin"):
        catalogue._build_index()


# -------------------------------------------------------------------------------------- layouts
H200_MODEL = catalogue.find_model("NVIDIA H200")


@pytest.mark.parametrize("layout, message", [
    ({"1g.20gb": 1}, "NVIDIA H200 does not offer the MIG profile 1g.20gb; it offers 1g.18gb (at most 7), "
                     "1g.18gb+me (at most 1), 1g.35gb (at most 4), 2g.35gb (at most 3), 3g.71gb (at most 2), "
                     "4g.71gb (at most 1), 7g.141gb (at most 1)"),
    ({"2g.35gb": 4}, "NVIDIA H200 allows at most 3 x 2g.35gb per GPU, the layout asks for 4"),
    ({"1g.18gb": 0}, "the count of 1g.18gb must be at least 1, got 0"),
    ({"2g.35gb": 3, "1g.18gb": 2}, "the layout needs 8 compute slices, NVIDIA H200 has 7"),
    ({"1g.35gb": 4, "1g.18gb": 1}, "the layout needs 9 memory slices, NVIDIA H200 has 8"),
])
def test_layouts_that_do_not_fit_say_why(layout, message):
    assert catalogue.layout_problems(H200_MODEL, layout) == [message]


def test_a_model_without_mig_has_no_layout():
    assert catalogue.layout_problems(model("RTX 3090"), {"1g.18gb": 1}) == ["NVIDIA GeForce RTX 3090 cannot run MIG"]


@pytest.mark.parametrize("layout", [
    {"2g.35gb": 3, "1g.18gb": 1}, {"1g.18gb": 7}, {"4g.71gb": 1, "3g.71gb": 1}, {"1g.35gb": 4},
    {"1g.18gb": 6, "1g.35gb": 1}, {"1g.18gb+me": 1, "1g.18gb": 6}, {"7g.141gb": 1},
    {"4g.71gb": 1, "2g.35gb": 1, "1g.18gb": 1},
])
def test_layouts_that_fit(layout):
    assert catalogue.layout_problems(H200_MODEL, layout) == []


def test_the_placement_search_bites_where_slot_sums_do_not(monkeypatch):
    # On the real 7/8-slice tables, the slice sums and the placements agree (next test). This table is
    # made up to show the search: 2-slot profiles only at {0,4}, so three of them cannot be placed in
    # 8 slots although 3 x 2 memory slices and 3 x 1 compute slices fit the sums.
    tables = dict(catalogue.MIG_TABLES)
    tables["made-up"] = catalogue._table(7, 8, [("1g.2s", 1, 2, 4, 1.0, (0, 4)), ("1g.1s", 1, 1, 7, 1.0, range(7))],
                                         "test")
    monkeypatch.setattr(catalogue, "MIG_TABLES", tables)
    gpu = dict(H200_MODEL, name="Made-up GPU", mig="made-up")
    assert catalogue.layout_problems(gpu, {"1g.2s": 2, "1g.1s": 3}) == []
    assert catalogue.layout_problems(gpu, {"1g.2s": 3}) == [
        "the layout has no valid placement on Made-up GPU: the profiles' slots overlap (placements: 1g.2s {0,4}:2)"]


@pytest.mark.parametrize("gpu", [catalogue.find_model("NVIDIA H200"), catalogue.find_model("NVIDIA A30")],
                         ids=["h200", "a30"])
def test_every_layout_within_the_counts_is_checked_quickly(gpu):
    table = catalogue.mig_table(gpu)
    names = sorted(table["profiles"])
    fitting = 0
    for counts in itertools.product(*(range(table["profiles"][p]["max_instances"] + 1) for p in names)):
        layout = dict((p, n) for p, n in zip(names, counts) if n)
        if layout:
            problems = catalogue.layout_problems(gpu, layout)
            assert not any("placement" in p for p in problems), layout
            fitting += not problems
    assert fitting > 10


def test_layout_names_write_plus_as_a_dot():
    assert catalogue.layout_name("1g.18gb+me") == "all-1g.18gb.me"
    assert catalogue.layout_name("2g.35gb") == "all-2g.35gb"
