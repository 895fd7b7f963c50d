# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the nvidia-smi parsers in plugins/module_utils/_nvidia_smi.py.

The H200 recording (AILAB_REFERENCE gpu/nvidia-h200/) is the ground truth: what the parsers read
from nvidia-smi's XML and tables is cross-checked against what NVML (nvml.json) and the
--query-gpu CSV of the same machine say. The derived fixtures of tests/unit/fixtures/nvidia cover
what the machine could not show (MIG enabled, two GPUs, other models).
"""

import csv
import io
import json

import pytest

from ansible_collections.ailab.cluster.plugins.module_utils import _nvidia_smi as smi
from unit.fixtures.nvidia import nvidia_fixtures as fixtures

H200 = fixtures.RECORDING


def recorded(name):
    return fixtures.reference(f"{H200}/{name}").read_text()


@pytest.fixture(scope="module")
def nvml():
    return json.loads(recorded("nvml.json"))


@pytest.fixture(scope="module")
def query_gpu_csv():
    """The recorded --query-gpu CSV as dicts keyed by field name (units stripped from the header)."""
    rows = list(csv.reader(io.StringIO(recorded("nvidia-smi-query-gpu.csv")), skipinitialspace=True))
    header = [field.split(" [")[0] for field in rows[0]]
    return [dict(zip(header, row)) for row in rows[1:]]


def query_gpu_text(rows):
    """What COMMANDS['query_gpu'] prints, built from the recorded CSV's columns."""
    return "".join(f"{row['index']}, {row['pci.bus_id']}, {row['compute_cap']}\n" for row in rows)


def raises(function, text, *fragments):
    with pytest.raises(smi.NvidiaSmiError) as exc:
        function(text)
    for fragment in fragments:
        assert fragment in str(exc.value)
    return str(exc.value)


class TestRecordedH200:
    def test_query_xml(self):
        parsed = smi.parse_query_xml(recorded("nvidia-smi-q.xml"))
        assert parsed == {
            "driver_version": "580.159.04",
            "cuda_version": "13.0",
            "gpus": [{
                "name": "NVIDIA H200",
                "architecture": "Hopper",
                "uuid": "GPU-5b450c73-aa60-81f2-523e-df255f059bc6",
                "pci_bus_id": "00000000:00:06.0",
                "pci_device_id": "0x233510DE",
                "pci_device_id_raw": "233510DE",
                "memory_total_mib": 143771,
                "mig_mode": {"current": "Disabled", "pending": "Disabled"},
                "mig_capable": True,
            }],
        }

    def test_query_xml_agrees_with_nvml(self, nvml):
        parsed = smi.parse_query_xml(recorded("nvidia-smi-q.xml"))
        assert parsed["driver_version"] == nvml["driver"]
        major, minor = divmod(nvml["cuda_driver"], 1000)
        assert parsed["cuda_version"] == f"{major}.{minor // 10}"
        assert len(parsed["gpus"]) == len(nvml["gpus"])
        for gpu, truth in zip(parsed["gpus"], nvml["gpus"]):
            assert gpu["name"] == truth["name"]
            assert gpu["uuid"] == truth["uuid"]
            assert gpu["pci_bus_id"] == truth["pci"]
            assert gpu["pci_device_id"] == truth["pci_device_id"].upper().replace("0X", "0x")
            assert gpu["memory_total_mib"] == truth["memory_total"] // 2**20
            modes = {0: "Disabled", 1: "Enabled"}
            assert [gpu["mig_mode"]["current"], gpu["mig_mode"]["pending"]] == [modes[m] for m in truth["mig_mode"]]

    def test_query_xml_agrees_with_query_gpu_csv(self, query_gpu_csv):
        parsed = smi.parse_query_xml(recorded("nvidia-smi-q.xml"))
        assert len(parsed["gpus"]) == len(query_gpu_csv)
        for gpu, row in zip(parsed["gpus"], query_gpu_csv):
            assert gpu["name"] == row["name"]
            assert gpu["uuid"] == row["uuid"]
            assert gpu["pci_bus_id"] == row["pci.bus_id"]
            assert gpu["pci_device_id"] == row["pci.device_id"]
            assert f"{gpu['memory_total_mib']} MiB" == row["memory.total"]
            assert gpu["mig_mode"] == {"current": row["mig.mode.current"], "pending": row["mig.mode.pending"]}
            assert parsed["driver_version"] == row["driver_version"]

    def test_query_gpu_from_the_recorded_columns(self, query_gpu_csv, nvml):
        rows = smi.parse_query_gpu(query_gpu_text(query_gpu_csv))
        assert rows == [{"index": 0, "pci_bus_id": "00000000:00:06.0", "compute_capability": "9.0"}]
        assert rows[0]["compute_capability"] == ".".join(str(part) for part in nvml["gpus"][0]["compute_capability"])

    def test_mig_profiles(self):
        profiles = smi.parse_mig_profiles(recorded("nvidia-smi-mig-lgip.txt"))
        assert list(profiles) == [0]
        assert [(p["name"], p["instances_total"]) for p in profiles[0]] == [
            ("1g.18gb", 7), ("1g.18gb+me", 1), ("1g.35gb", 4), ("2g.35gb", 3), ("3g.71gb", 2), ("4g.71gb", 1), ("7g.141gb", 1),
        ]
        assert all(p["instances_free"] == p["instances_total"] for p in profiles[0])
        assert profiles[0][-1] == {
            "name": "7g.141gb", "id": 0, "instances_free": 1, "instances_total": 1, "memory_gib": 140.0,
            "p2p": False, "sm": 132, "dec": 7, "enc": 0, "ce": 8, "jpeg": 7, "ofa": 1,
        }
        # The media-extension profile is the one 1g profile with an optical flow accelerator.
        assert [p["name"] for p in profiles[0] if p["ofa"]] == ["1g.18gb+me", "7g.141gb"]

    def test_mig_profiles_agree_with_nvml(self, nvml):
        profiles = smi.parse_mig_profiles(recorded("nvidia-smi-mig-lgip.txt"))[0]
        truth = [p for p in nvml["gpus"][0]["gpu_instance_profiles"] if "error" not in p]
        assert sorted(p["id"] for p in profiles) == sorted(p["id"] for p in truth)
        by_id = {p["id"]: p for p in profiles}
        for expected in truth:
            parsed = by_id[expected["id"]]
            assert parsed["instances_total"] == expected["instances"]
            assert parsed["memory_gib"] * 1024 == expected["memory_mib"]
            assert parsed["sm"] == expected["sm"]
            # The name starts with the number of compute slices.
            assert parsed["name"].startswith(f"{expected['slices']}g.")

    def test_mig_instances_with_mig_disabled(self):
        text = recorded("nvidia-smi-mig-lci.txt")
        assert text.strip() == "No MIG-enabled devices found."
        assert smi.parse_compute_instances(text) == {}
        assert smi.parse_gpu_instances(text) == {}

    def test_build_facts(self, query_gpu_csv):
        facts = smi.build_facts(
            smi.parse_query_xml(recorded("nvidia-smi-q.xml")),
            smi.parse_query_gpu(query_gpu_text(query_gpu_csv)),
            smi.parse_mig_profiles(recorded("nvidia-smi-mig-lgip.txt")),
        )
        assert facts["gpu_count"] == 1
        assert facts["models"] == ["NVIDIA H200"]
        assert (facts["driver_version"], facts["cuda_version"]) == ("580.159.04", "13.0")
        gpu = facts["gpus"][0]
        assert (gpu["index"], gpu["compute_capability"], gpu["driver_version"], gpu["cuda_version"]) == (0, "9.0", "580.159.04", "13.0")
        assert len(gpu["mig_profiles"]) == 7
        assert gpu["gpu_instances"] == gpu["compute_instances"] == []


class TestDerivedFixtures:
    def test_h200x2_lists_both_gpus_with_their_tables(self):
        out = fixtures.outputs("h200x2")
        facts = smi.build_facts(
            smi.parse_query_xml(out["query_xml"]["stdout"]),
            smi.parse_query_gpu(out["query_gpu"]["stdout"]),
            smi.parse_mig_profiles(out["mig_profiles"]["stdout"]),
            smi.parse_gpu_instances(out["gpu_instances"]["stdout"]),
            smi.parse_compute_instances(out["compute_instances"]["stdout"]),
        )
        assert [gpu["pci_bus_id"] for gpu in facts["gpus"]] == ["00000000:00:06.0", "00000000:00:07.0"]
        assert [gpu["mig_mode"]["current"] for gpu in facts["gpus"]] == ["Disabled", "Enabled"]
        assert facts["gpus"][0]["gpu_instances"] == []
        assert facts["gpus"][1]["gpu_instances"] == [{"name": "3g.71gb", "profile_id": 9, "id": 2, "placement": {"start": 0, "size": 4}}]
        assert facts["gpus"][1]["compute_instances"] == [
            {"gpu_instance_id": 2, "name": "3g.71gb", "profile_id": 2, "id": 0, "placement": {"start": 0, "size": 4}},
        ]
        assert facts["models"] == ["NVIDIA H200"]

    def test_mig_devices_of_a_mig_enabled_gpu_do_not_shadow_the_gpu(self):
        """<mig_device> has its own <fb_memory_usage>; the GPU's memory is the GPU's, not a slice's."""
        gpu = smi.parse_query_xml(fixtures.outputs("h200-mig-enabled")["query_xml"]["stdout"])["gpus"][0]
        assert gpu["memory_total_mib"] == 143771
        assert gpu["mig_mode"] == {"current": "Enabled", "pending": "Enabled"}

    def test_free_instances_of_a_carved_gpu(self):
        profiles = smi.parse_mig_profiles(fixtures.outputs("h200-mig-enabled")["mig_profiles"]["stdout"])[0]
        assert [(p["instances_free"], p["instances_total"]) for p in profiles] == [(0, 7), (0, 1), (0, 4), (0, 3), (0, 2), (0, 1), (0, 1)]

    def test_p2p_column(self):
        text = recorded("nvidia-smi-mig-lgip.txt").replace("16.00      No", "16.00      Yes", 1)
        assert [p["p2p"] for p in smi.parse_mig_profiles(text)[0]] == [True] + [False] * 6

    def test_gpu_without_mig(self):
        out = fixtures.outputs("rtx3090")
        gpu = smi.parse_query_xml(out["query_xml"]["stdout"])["gpus"][0]
        assert gpu["mig_mode"] == {"current": "N/A", "pending": "N/A"}
        assert gpu["mig_capable"] is False
        assert smi.reports_none("mig_profiles", out["mig_profiles"]["stdout"])
        assert smi.parse_mig_profiles(out["mig_profiles"]["stdout"]) == {}

    def test_the_fixture_edits_find_their_text(self):
        """Every derived fixture builds, and each changed the recording where it says it did."""
        for name in fixtures.names():
            fixtures.outputs(name)  # raises when an edit no longer matches the recording


class TestQueryXmlErrors:
    def test_empty(self):
        raises(smi.parse_query_xml, "", "printed nothing")
        raises(smi.parse_query_xml, " \n\t", "printed nothing")

    @pytest.mark.parametrize("cut", [0.5, 0.99])
    def test_truncated(self, cut):
        text = recorded("nvidia-smi-q.xml")
        message = raises(smi.parse_query_xml, text[: int(len(text) * cut)], "cannot be parsed", "check that it completes")
        assert "line" in message

    def test_truncated_before_the_last_tag(self):
        text = recorded("nvidia-smi-q.xml")
        raises(smi.parse_query_xml, text[: text.rindex("</nvidia_smi_log>")], "cannot be parsed")

    def test_no_gpu_is_not_a_parse_error(self):
        text = recorded("nvidia-smi-q.xml")
        start, end = text.index("\t<gpu id="), text.index("</nvidia_smi_log>")
        parsed = smi.parse_query_xml(text[:start] + text[end:])
        assert parsed == {"driver_version": "580.159.04", "cuda_version": "13.0", "gpus": []}

    def test_entity_declarations_are_refused(self):
        laughs = '<?xml version="1.0"?><!DOCTYPE nvidia_smi_log [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>' \
                 "<nvidia_smi_log><driver_version>&b;</driver_version></nvidia_smi_log>"
        raises(smi.parse_query_xml, laughs, "entity declarations")

    def test_other_document(self):
        raises(smi.parse_query_xml, "<html><body>502</body></html>", "<html>", "nvidia_smi_path")

    def test_not_xml(self):
        message = raises(
            smi.parse_query_xml,
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
            "cannot be parsed",
        )
        assert "couldn't communicate" in message

    @pytest.mark.parametrize(("element", "named"), [
        ("product_name", "<product_name>"), ("uuid", "<uuid>"), ("pci_device_id", "<pci/pci_device_id>"), ("pci_bus_id", "<pci/pci_bus_id>"),
    ])
    def test_missing_required_element(self, element, named):
        text = recorded("nvidia-smi-q.xml")
        start = text.index(f"<{element}>")
        end = text.index(f"</{element}>") + len(f"</{element}>")
        raises(smi.parse_query_xml, text[:start] + text[end:], named, "00000000:00:06.0")

    def test_bad_pci_device_id(self):
        text = recorded("nvidia-smi-q.xml").replace("<pci_device_id>233510DE<", "<pci_device_id>2335<")
        raises(smi.parse_query_xml, text, "PCI device id", "'2335'")

    def test_memory(self):
        text = recorded("nvidia-smi-q.xml")
        assert smi.parse_query_xml(text.replace("<total>143771 MiB</total>", "<total>N/A</total>"))["gpus"][0]["memory_total_mib"] is None
        raises(smi.parse_query_xml, text.replace("<total>143771 MiB</total>", "<total>140 GiB</total>"), "'140 GiB'")

    def test_missing_mig_mode_reads_as_not_available(self):
        text = recorded("nvidia-smi-q.xml")
        start, end = text.index("<mig_mode>"), text.index("</mig_mode>") + len("</mig_mode>")
        gpu = smi.parse_query_xml(text[:start] + text[end:])["gpus"][0]
        assert gpu["mig_mode"] == {"current": "N/A", "pending": "N/A"}
        assert gpu["mig_capable"] is False


class TestQueryGpu:
    def test_several_gpus_and_unknown_capability(self):
        assert smi.parse_query_gpu("0, 00000000:00:06.0, 9.0\n\n1, 00000000:00:07.0, [N/A]\n") == [
            {"index": 0, "pci_bus_id": "00000000:00:06.0", "compute_capability": "9.0"},
            {"index": 1, "pci_bus_id": "00000000:00:07.0", "compute_capability": None},
        ]

    def test_empty(self):
        raises(smi.parse_query_gpu, "", "printed no GPU")

    def test_old_driver_message(self):
        raises(smi.parse_query_gpu, 'Field "compute_cap" is not a valid field to query.\n', "line 1", "driver 510")

    def test_wrong_columns(self):
        raises(smi.parse_query_gpu, "0, NVIDIA H200, 00000000:00:06.0, 9.0\n", "line 1")


class TestMigTableErrors:
    def test_profile_without_its_second_line(self):
        lines = recorded("nvidia-smi-mig-lgip.txt").splitlines()
        raises(smi.parse_mig_profiles, "\n".join(lines[:-2]), "7g.141gb", "cut short")

    def test_cut_before_the_header_separator(self):
        lines = recorded("nvidia-smi-mig-lgip.txt").splitlines()
        raises(smi.parse_mig_profiles, "\n".join(lines[:3]), "header separator")

    def test_no_table(self):
        raises(smi.parse_mig_profiles, "Failed to initialize NVML: Unknown Error\n", "no 'GPU instance profiles:' table", "Unknown Error")
        raises(smi.parse_gpu_instances, "", "no 'GPU instances:' table", "(nothing)")
        raises(smi.parse_compute_instances, "Insufficient Permissions\n", "no 'Compute instances:' table")

    def test_unexpected_row(self):
        text = recorded("nvidia-smi-mig-lgip.txt").replace("7/7        16.00", "7/7        N/A  ")
        raises(smi.parse_mig_profiles, text, "line 6 of 'nvidia-smi mig -lgip'", "1g.18gb")

    def test_unexpected_continuation(self):
        text = recorded("nvidia-smi-mig-lgip.txt").replace(
            "|                                                               1     1     0   |", "|   garbage   |", 1)
        raises(smi.parse_mig_profiles, text, "line 7")

    def test_unexpected_instance_rows(self):
        gi = fixtures.outputs("h200-mig-enabled")["gpu_instances"]["stdout"]
        raises(smi.parse_gpu_instances, gi.replace("0:2 ", "0-2 "), "line 6 of 'nvidia-smi mig -lgi'")
        ci = fixtures.outputs("h200-mig-enabled")["compute_instances"]["stdout"]
        raises(smi.parse_compute_instances, ci.replace("MIG 1g.18gb", "1g.18gb    "), "line 13 of 'nvidia-smi mig -lci'")

    @pytest.mark.parametrize(("parser", "text"), [
        (smi.parse_gpu_instances, "No GPU instances found: Not Found\n"),
        (smi.parse_compute_instances, "No compute instances found: Not Found\n"),
        (smi.parse_gpu_instances, "No MIG-enabled devices found.\n"),
        (smi.parse_mig_profiles, "No MIG-supported devices found.\n"),
    ])
    def test_nothing_to_list(self, parser, text):
        assert parser(text) == {}

    def test_empty_table(self):
        gi = fixtures.outputs("h200-mig-enabled")["gpu_instances"]["stdout"].splitlines()
        assert smi.parse_gpu_instances("\n".join(gi[:5] + [gi[-1]])) == {}


class TestBuildFacts:
    XML = {
        "driver_version": "580.159.04", "cuda_version": "13.0",
        "gpus": [
            {"name": "NVIDIA H200", "architecture": "Hopper", "uuid": "GPU-b", "pci_bus_id": "00000000:00:07.0",
             "pci_device_id": "0x233510DE", "pci_device_id_raw": "233510DE", "memory_total_mib": 143771,
             "mig_mode": {"current": "Disabled", "pending": "Disabled"}, "mig_capable": True},
            {"name": "NVIDIA A100 80GB PCIe", "architecture": "Ampere", "uuid": "GPU-a", "pci_bus_id": "00000000:00:06.0",
             "pci_device_id": "0x20B510DE", "pci_device_id_raw": "20B510DE", "memory_total_mib": 81920,
             "mig_mode": {"current": "Disabled", "pending": "Disabled"}, "mig_capable": True},
        ],
    }
    ROWS = [
        {"index": 1, "pci_bus_id": "00000000:00:07.0", "compute_capability": "9.0"},
        {"index": 0, "pci_bus_id": "00000000:00:06.0", "compute_capability": "8.0"},
    ]

    def test_joined_by_bus_id_and_sorted_by_index(self):
        facts = smi.build_facts(self.XML, self.ROWS)
        assert [(g["index"], g["uuid"], g["compute_capability"]) for g in facts["gpus"]] == [(0, "GPU-a", "8.0"), (1, "GPU-b", "9.0")]
        assert facts["models"] == ["NVIDIA A100 80GB PCIe", "NVIDIA H200"]
        assert facts["gpu_count"] == 2

    @pytest.mark.parametrize(("in_xml", "in_csv"), [("00000000:3B:00.0", "00000000:3b:00.0"), ("00000000:3b:00.0", "00000000:3B:00.0")])
    def test_bus_ids_compare_without_case(self, in_xml, in_csv):
        xml = dict(self.XML, gpus=[dict(self.XML["gpus"][0], pci_bus_id=in_xml)])
        facts = smi.build_facts(xml, [{"index": 0, "pci_bus_id": in_csv, "compute_capability": "9.0"}])
        assert facts["gpus"][0]["pci_bus_id"] == in_xml

    def test_count_mismatch(self):
        with pytest.raises(smi.NvidiaSmiError, match="lists 2 GPUs but .* lists 1"):
            smi.build_facts(self.XML, self.ROWS[:1])

    def test_duplicate_rows(self):
        with pytest.raises(smi.NvidiaSmiError, match="lists 2 GPUs but"):
            smi.build_facts(self.XML, [self.ROWS[0], self.ROWS[0]])

    def test_unknown_bus_id(self):
        rows = [self.ROWS[0], dict(self.ROWS[1], pci_bus_id="00000000:00:08.0")]
        with pytest.raises(smi.NvidiaSmiError, match="GPU 00000000:00:06.0 .* is missing"):
            smi.build_facts(self.XML, rows)

    def test_table_names_an_unknown_gpu(self):
        with pytest.raises(smi.NvidiaSmiError, match="'nvidia-smi mig -lgi' lists GPU 5"):
            smi.build_facts(self.XML, self.ROWS, gpu_instances={5: []})

    def test_empty_facts(self):
        assert smi.empty_facts() == {"gpus": [], "gpu_count": 0, "driver_version": None, "cuda_version": None, "models": []}


def test_reports_no_devices():
    assert smi.reports_no_devices("No devices were found\n")
    assert not smi.reports_no_devices("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    assert not smi.reports_no_devices(None)


def test_excerpt():
    assert smi.excerpt("a\n  b\tc") == "a b c"
    assert smi.excerpt("x" * 400) == "x" * 300 + "..."
    assert smi.excerpt(None) == ""
