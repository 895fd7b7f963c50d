# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's GPU model (plugins/filter/lab_gpu.py): resources, GPU Operator config, live check.

The generated configs are checked against the format rules recorded in the shared reference
(gpu-operator/SOURCE.md, mig-parted/SOURCE.md), read from AILAB_REFERENCE.
"""

import copy
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.lab_gpu import (
    FilterModule,
    lab_gpu_check,
    lab_gpu_operator_config,
    lab_gpu_resources,
)
from ansible_collections.ailab.cluster.plugins.module_utils import _gpu_models as catalogue
from export_check import device_plugin_problems, mig_parted_problems

ROOT = Path(__file__).resolve().parents[4]
REFERENCE = Path(os.environ.get("AILAB_REFERENCE", ROOT.parent / "shared" / "reference"))

H200_MIXED = {"group": "gpu_h200", "gpu_model": "NVIDIA H200",
              "sharing": {"mode": "mig", "mig_strategy": "mixed",
                          "mig_layout": [{"profile": "2g.35gb", "count": 3}, {"profile": "1g.18gb", "count": 1}]}}
H200_SINGLE = {"group": "gpu_h200", "gpu_model": "NVIDIA H200",
               "sharing": {"mode": "mig", "mig_strategy": "single", "mig_config": "all-1g.18gb"}}
RTX_3090 = {"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "sharing": {"mode": "time-slicing", "replicas": 4}}
RTX_4090 = {"group": "gpu_rtx4090", "gpu_model": "RTX 4090", "gpus_per_node": 2,
            "sharing": {"mode": "time-slicing", "replicas": 2, "rename_by_default": True}}
WHOLE = {"group": "gpu_l40s", "gpu_model": "NVIDIA L40S", "gpus_per_node": 4, "driver": "host",
         "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
                    {"key": "lab/dedicated", "effect": "NoExecute"}]}

INVENTORY = {"all": ["cp1", "h1", "h2", "r1", "r2", "r3", "l1"], "kube_control_plane": ["cp1"],
             "gpu_h200": ["h2", "h1"], "gpu_rtx": ["r1"], "gpu_rtx4090": ["r3", "r2"], "gpu_l40s": ["l1"],
             "gpu_empty": []}


def entry(base, **changes):
    """A copy of a node-group entry with top-level keys changed (None removes) and sharing keys changed."""
    result = copy.deepcopy(base)
    sharing = changes.pop("sharing_changes", None)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    for key, value in (sharing or {}).items():
        if value is None:
            result["sharing"].pop(key, None)
        else:
            result["sharing"][key] = value
    return result


def by_key(resources):
    return dict((r["key"], r) for r in resources)


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"lab_gpu_resources", "lab_gpu_operator_config", "lab_gpu_check"}


# ------------------------------------------------------------------------------------ lab shapes
def test_a_cpu_only_lab_has_no_gpu_resources_and_no_operator_config():
    for node_groups in ([], None):
        assert lab_gpu_resources(node_groups, INVENTORY) == []
        assert lab_gpu_operator_config(node_groups, INVENTORY) == {
            "mig_strategy": "none", "device_plugin_config": None, "mig_parted_config": None,
            "node_labels": {}, "drivers": {}}


def test_two_time_sliced_rtx_groups():
    resources = lab_gpu_resources([RTX_3090, RTX_4090], INVENTORY)
    assert resources == [
        {"key": "rtx-3090-shared", "resource": "nvidia.com/gpu", "group": "gpu_rtx",
         "gpu_model": "NVIDIA GeForce RTX 3090", "sharing": "time-slicing", "mig_profile": None, "per_node": 4,
         "nodes": ["r1"], "capacity": 4, "memory_mib": 24576, "node_selector": {"ailab.cluster/gpu-group": "gpu_rtx"},
         "tolerations": [], "description": "1 × NVIDIA GeForce RTX 3090 (shared, 1 of 4 time-slices), 24 GB"},
        {"key": "rtx-4090-shared", "resource": "nvidia.com/gpu.shared", "group": "gpu_rtx4090",
         "gpu_model": "NVIDIA GeForce RTX 4090", "sharing": "time-slicing", "mig_profile": None, "per_node": 4,
         "nodes": ["r2", "r3"], "capacity": 8, "memory_mib": 24576,
         "node_selector": {"ailab.cluster/gpu-group": "gpu_rtx4090"},
         "tolerations": [], "description": "1 × NVIDIA GeForce RTX 4090 (shared, 1 of 2 time-slices), 24 GB"},
    ]
    config = lab_gpu_operator_config([RTX_3090, RTX_4090], INVENTORY)
    assert config["mig_strategy"] == "none" and config["mig_parted_config"] is None
    plugin = config["device_plugin_config"]
    assert plugin["name"] == "ailab-device-plugin-config" and plugin["default"] == "default"
    assert sorted(plugin["data"]) == ["default", "gpu_rtx", "gpu_rtx4090"]
    assert yaml.safe_load(plugin["data"]["default"]) == {"version": "v1", "flags": {"migStrategy": "none"}}
    assert yaml.safe_load(plugin["data"]["gpu_rtx"]) == {
        "version": "v1", "flags": {"migStrategy": "none"},
        "sharing": {"timeSlicing": {"renameByDefault": False, "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    assert yaml.safe_load(plugin["data"]["gpu_rtx4090"])["sharing"]["timeSlicing"] == {
        "renameByDefault": True, "resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}
    assert config["node_labels"] == {
        "r1": {"ailab.cluster/gpu-group": "gpu_rtx", "nvidia.com/device-plugin.config": "gpu_rtx"},
        "r2": {"ailab.cluster/gpu-group": "gpu_rtx4090", "nvidia.com/device-plugin.config": "gpu_rtx4090"},
        "r3": {"ailab.cluster/gpu-group": "gpu_rtx4090", "nvidia.com/device-plugin.config": "gpu_rtx4090"},
    }
    assert config["drivers"] == {"r1": "operator", "r2": "operator", "r3": "operator"}


def test_one_h200_mig_node_with_a_custom_mixed_layout():
    resources = lab_gpu_resources([H200_MIXED], {"gpu_h200": ["h1"]})
    assert resources == [
        {"key": "mig-1g.18gb", "resource": "nvidia.com/mig-1g.18gb", "group": "gpu_h200", "gpu_model": "NVIDIA H200",
         "sharing": "mig", "mig_profile": "1g.18gb", "per_node": 1, "nodes": ["h1"], "capacity": 1,
         "memory_mib": 16384, "node_selector": {"ailab.cluster/gpu-group": "gpu_h200"}, "tolerations": [],
         "description": "1 × NVIDIA H200 MIG 1g.18gb slice, 16 GB"},
        {"key": "mig-2g.35gb", "resource": "nvidia.com/mig-2g.35gb", "group": "gpu_h200", "gpu_model": "NVIDIA H200",
         "sharing": "mig", "mig_profile": "2g.35gb", "per_node": 3, "nodes": ["h1"], "capacity": 3,
         "memory_mib": 33280, "node_selector": {"ailab.cluster/gpu-group": "gpu_h200"}, "tolerations": [],
         "description": "1 × NVIDIA H200 MIG 2g.35gb slice, 32.5 GB"},
    ]
    config = lab_gpu_operator_config([H200_MIXED], {"gpu_h200": ["h1"]})
    assert config["mig_strategy"] == "mixed" and config["device_plugin_config"] is None
    assert config["mig_parted_config"]["name"] == "ailab-mig-parted-config"
    assert list(config["mig_parted_config"]["data"]) == ["config.yaml"]
    assert yaml.safe_load(config["mig_parted_config"]["data"]["config.yaml"]) == {
        "version": "v1",
        "mig-configs": {
            "all-disabled": [{"devices": "all", "mig-enabled": False}],
            "ailab-gpu_h200": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.18gb": 1, "2g.35gb": 3}}],
        }}
    assert config["node_labels"] == {"h1": {"ailab.cluster/gpu-group": "gpu_h200",
                                            "nvidia.com/mig.config": "ailab-gpu_h200"}}


def test_h200_with_the_built_in_all_1g_18gb_layout_under_single_strategy():
    resources = lab_gpu_resources([H200_SINGLE], INVENTORY)
    assert [(r["key"], r["resource"], r["per_node"], r["nodes"], r["capacity"], r["description"]) for r in resources] == [
        ("mig-1g.18gb", "nvidia.com/gpu", 7, ["h1", "h2"], 14, "1 × NVIDIA H200 MIG 1g.18gb slice, 16 GB")]
    config = lab_gpu_operator_config([H200_SINGLE], INVENTORY)
    # A built-in layout: MIG manager generates it from the hardware, no custom ConfigMap.
    assert config["mig_strategy"] == "single" and config["mig_parted_config"] is None
    assert config["node_labels"]["h1"] == {"ailab.cluster/gpu-group": "gpu_h200", "nvidia.com/mig.config": "all-1g.18gb"}


def test_whole_gpus_with_taints_and_a_host_driver():
    resources = lab_gpu_resources([WHOLE], INVENTORY)
    assert resources == [
        {"key": "l40s", "resource": "nvidia.com/gpu", "group": "gpu_l40s", "gpu_model": "NVIDIA L40S", "sharing": "none",
         "mig_profile": None, "per_node": 4, "nodes": ["l1"], "capacity": 4, "memory_mib": 49152,
         "node_selector": {"ailab.cluster/gpu-group": "gpu_l40s"},
         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
                         {"key": "lab/dedicated", "operator": "Exists", "effect": "NoExecute"}],
         "description": "1 × NVIDIA L40S, 48 GB"}]
    config = lab_gpu_operator_config([WHOLE], INVENTORY)
    assert config == {"mig_strategy": "none", "device_plugin_config": None, "mig_parted_config": None,
                      "node_labels": {"l1": {"ailab.cluster/gpu-group": "gpu_l40s"}}, "drivers": {"l1": "host"}}


def test_whole_h200_and_a_card_the_catalogue_does_not_know():
    groups = [{"group": "gpu_h200", "gpu_model": "h200"},
              {"group": "gpu_rtx", "gpu_model": "NVIDIA RTX 5000 Ada Generation", "gpu_memory_gib": 32}]
    resources = by_key(lab_gpu_resources(groups, INVENTORY))
    assert resources["h200"]["description"] == "1 × NVIDIA H200, 141 GB"
    assert resources["h200"]["memory_mib"] == 143771 and resources["h200"]["capacity"] == 2
    assert resources["rtx-5000-ada-generation"]["description"] == "1 × NVIDIA RTX 5000 Ada Generation, 32 GB"
    assert resources["rtx-5000-ada-generation"]["memory_mib"] == 32768


def test_a_group_without_hosts_gives_capacity_zero():
    resources = lab_gpu_resources([entry(RTX_3090, group="gpu_empty")], INVENTORY)
    assert [(r["nodes"], r["capacity"], r["per_node"]) for r in resources] == [([], 0, 4)]
    assert lab_gpu_operator_config([entry(RTX_3090, group="gpu_empty")], INVENTORY)["node_labels"] == {}


def test_a_mixed_lab_of_every_kind():
    lab = [H200_MIXED, RTX_3090, RTX_4090, WHOLE]
    resources = lab_gpu_resources(lab, INVENTORY)
    assert [r["key"] for r in resources] == ["l40s", "mig-1g.18gb", "mig-2g.35gb", "rtx-3090-shared", "rtx-4090-shared"]
    assert sum(r["capacity"] for r in resources) == 4 + 2 + 6 + 4 + 8
    config = lab_gpu_operator_config(lab, INVENTORY)
    assert config["mig_strategy"] == "mixed"
    assert yaml.safe_load(config["device_plugin_config"]["data"]["default"])["flags"] == {"migStrategy": "mixed"}
    assert sorted(config["node_labels"]) == ["h1", "h2", "l1", "r1", "r2", "r3"]
    assert config["drivers"]["l1"] == "host" and config["drivers"]["h1"] == "operator"


def test_key_prefix_separates_two_groups_of_one_model():
    first = entry(RTX_3090, key_prefix="lab1")
    second = entry(RTX_3090, group="gpu_rtx4090", key_prefix="lab2")
    keys = [r["key"] for r in lab_gpu_resources([first, second], INVENTORY)]
    assert keys == ["lab1-rtx-3090-shared", "lab2-rtx-3090-shared"]


def test_a_plus_me_profile_becomes_a_valid_resource_name():
    group = entry(H200_MIXED, sharing_changes={"mig_layout": [{"profile": "1g.18gb+me", "count": 1},
                                                              {"profile": "1g.18gb", "count": 6}]})
    resources = by_key(lab_gpu_resources([group], INVENTORY))
    assert resources["mig-1g.18gb.me"]["resource"] == "nvidia.com/mig-1g.18gb.me"
    assert resources["mig-1g.18gb.me"]["mig_profile"] == "1g.18gb+me"
    assert resources["mig-1g.18gb"]["per_node"] == 6


def test_built_in_and_custom_layouts_share_one_config_with_device_filters_where_names_clash():
    # all-1g.10gb is 7 x 1g.10gb on A100-80GB and 4 x on A100-40GB: one name, two contents.
    groups = [
        {"group": "gpu_h200", "gpu_model": "NVIDIA H200", "sharing": {"mode": "mig", "mig_layout": [
            {"profile": "3g.71gb", "count": 2}]}},
        {"group": "gpu_rtx", "gpu_model": "NVIDIA A100-SXM4-80GB", "key_prefix": "a80",
         "sharing": {"mode": "mig", "mig_config": "all-1g.10gb"}},
        {"group": "gpu_rtx4090", "gpu_model": "NVIDIA A100-PCIE-40GB", "key_prefix": "a40",
         "sharing": {"mode": "mig", "mig_config": "all-1g.10gb"}},
        {"group": "gpu_l40s", "gpu_model": "NVIDIA A30", "sharing": {"mode": "mig", "mig_config": "all-balanced"}},
    ]
    config = lab_gpu_operator_config(groups, INVENTORY)
    mig_configs = yaml.safe_load(config["mig_parted_config"]["data"]["config.yaml"])["mig-configs"]
    assert list(mig_configs) == ["all-disabled", "ailab-gpu_h200", "all-1g.10gb", "all-balanced"]
    assert mig_configs["all-1g.10gb"] == [
        {"device-filter": ["0x20B110DE"], "devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 4}},
        {"device-filter": ["0x20B210DE"], "devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 7}},
    ]
    assert mig_configs["all-balanced"] == [{"devices": "all", "mig-enabled": True,
                                            "mig-devices": {"1g.6gb": 2, "2g.12gb": 1}}]
    keys = [r["key"] for r in lab_gpu_resources(groups, INVENTORY)]
    assert keys == ["a40-mig-1g.10gb", "a80-mig-1g.10gb", "mig-1g.6gb", "mig-2g.12gb", "mig-3g.71gb"]


def reference_text(relpath):
    path = REFERENCE / relpath
    if not path.is_file():
        pytest.skip("upstream reference data %s is not available (set AILAB_REFERENCE)" % path)
    return path.read_text()


def test_the_format_checks_accept_upstream_files_and_catch_mistakes():
    assert device_plugin_problems(reference_text("gpu-operator/examples/plugin-config.yaml")) == []
    assert mig_parted_problems(reference_text("mig-parted/config-default.yaml")) == []
    assert mig_parted_problems(reference_text("mig-parted/examples/config.yaml")) == []
    operator_cm = yaml.safe_load(reference_text("gpu-operator/assets/state-mig-manager/0400_configmap.yaml"))
    assert mig_parted_problems(operator_cm["data"]["config.yaml"]) == []
    assert device_plugin_problems("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, "
                                  "replicas: 1}]}}") == ["replicas must be an integer >= 2, got 1"]
    assert mig_parted_problems("version: v1\nmig-configs: {x: [{devices: all, mig-enabled: true}]}") == [
        "x: mig-devices is required when mig-enabled"]


LABS = {
    "time-sliced": [RTX_3090, RTX_4090],
    "custom mixed": [H200_MIXED, RTX_3090],
    "built-in single": [H200_SINGLE, WHOLE],
    "all kinds": [H200_MIXED, RTX_3090, RTX_4090, WHOLE],
}
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


@pytest.mark.parametrize("lab", LABS.values(), ids=list(LABS))
def test_the_generated_configs_follow_the_upstream_formats(lab):
    config = lab_gpu_operator_config(lab, INVENTORY)
    plugin = config["device_plugin_config"]
    if plugin is not None:
        assert plugin["default"] in plugin["data"]
        for key, text in plugin["data"].items():
            assert DATA_KEY.match(key) and device_plugin_problems(text) == [], key
            assert yaml.safe_load(text)["flags"]["migStrategy"] == config["mig_strategy"]
    mig = config["mig_parted_config"]
    layouts = yaml.safe_load(mig["data"]["config.yaml"])["mig-configs"] if mig else {}
    if mig is not None:
        assert mig_parted_problems(mig["data"]["config.yaml"]) == []
        assert "all-disabled" in layouts  # the ClusterPolicy's migManager.config.default
    models = dict((g["group"], catalogue.find_model(g["gpu_model"])) for g in lab)
    for host, labels in config["node_labels"].items():
        group = labels["ailab.cluster/gpu-group"]
        assert host in INVENTORY[group]
        for value in labels.values():
            assert len(value) <= 63 and LABEL_VALUE.match(value), value
        if "nvidia.com/device-plugin.config" in labels:
            assert labels["nvidia.com/device-plugin.config"] in plugin["data"]
        if "nvidia.com/mig.config" in labels:
            name = labels["nvidia.com/mig.config"]
            model = models[group]
            if mig is not None:  # the custom ConfigMap replaces MIG manager's layouts: the label must be in it
                matching = [e for e in layouts[name]
                            if not e.get("device-filter") or set(model["pci_device_ids"]) & set(e["device-filter"])]
                assert len(matching) == 1
                assert catalogue.layout_problems(model, matching[0]["mig-devices"]) == []
            else:  # MIG manager generates the built-in layouts for the node's GPU
                assert name in catalogue.builtin_layouts(model)


@pytest.mark.parametrize("lab", LABS.values(), ids=list(LABS))
def test_the_outputs_are_deterministic(lab):
    shuffled_inventory = dict((k, list(reversed(v))) for k, v in reversed(list(INVENTORY.items())))
    first = json.dumps([lab_gpu_resources(lab, INVENTORY), lab_gpu_operator_config(lab, INVENTORY)])
    again = json.dumps([lab_gpu_resources(copy.deepcopy(lab), shuffled_inventory),
                        lab_gpu_operator_config(copy.deepcopy(lab), shuffled_inventory)])
    assert first == again


def test_the_inputs_are_left_alone():
    lab, inventory = copy.deepcopy(LABS["all kinds"]), copy.deepcopy(INVENTORY)
    lab_gpu_resources(lab, inventory)
    lab_gpu_operator_config(lab, inventory)
    assert lab == LABS["all kinds"] and inventory == INVENTORY


def test_the_operator_values_and_configmaps_pass_export_check():
    export_check = pytest.importorskip("export_check")
    config = lab_gpu_operator_config([H200_MIXED, RTX_3090], INVENTORY)
    plugin, mig = config["device_plugin_config"], config["mig_parted_config"]
    values = {"mig": {"strategy": config["mig_strategy"]},
              "devicePlugin": {"config": {"name": plugin["name"], "default": plugin["default"], "create": False}},
              "migManager": {"config": {"name": mig["name"], "default": "all-disabled"}}}
    assert export_check.check_chart_values("gpu-operator", values) == []
    for item in (plugin, mig):
        configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": item["name"], "namespace": "gpu-operator"}, "data": item["data"]}
        assert export_check.validate_object(configmap) == []


# ----------------------------------------------------------------------------------- errors
def error(node_groups, inventory=None, function=lab_gpu_resources):
    with pytest.raises(AnsibleFilterError) as caught:
        function(node_groups, INVENTORY if inventory is None else inventory)
    return str(caught.value)


@pytest.mark.parametrize("node_groups, message", [
    ({"group": "gpu_rtx"}, "ailab_gpu_node_groups: must be a list of node groups, got dict"),
    (["gpu_rtx"], "ailab_gpu_node_groups[0]: must be a dict with at least group and gpu_model, got 'gpu_rtx'"),
    ([{"gpu_model": "RTX 3090"}], "ailab_gpu_node_groups[0]: group is required: the inventory group of the GPU nodes"),
    ([entry(RTX_3090, group="gpu rtx")], "the group name must be usable as a Kubernetes label value"),
    ([entry(RTX_3090, gpus=2)], "ailab_gpu_node_groups[0] (group gpu_rtx): unknown key gpus in a node group "
                                "(did you mean gpus_per_node?); valid keys: group, gpu_model"),
    ([entry(RTX_3090, gpus_per_nodes=2)], "unknown key gpus_per_nodes in a node group (did you mean gpus_per_node?)"),
    ([entry(RTX_3090, sharing_changes={"replica": 4})],
     "unknown key replica in sharing (did you mean replicas?)"),
    ([entry(RTX_3090, gpu_model=None)], "gpu_model is required"),
    ([entry(RTX_3090, gpu_model="NVIDIA GeForce RTX 3080")],
     "unknown gpu_model 'NVIDIA GeForce RTX 3080' (did you mean NVIDIA GeForce RTX 3090?); known models: "
     "NVIDIA A10, NVIDIA A100 80GB PCIe"),
    ([entry(RTX_3090, gpu_model="A100")], "unknown gpu_model 'A100'"),
    ([entry(RTX_3090, gpu_memory_gib=24)], "remove gpu_memory_gib: the catalogue knows NVIDIA GeForce RTX 3090 (24 GB)"),
    ([entry(RTX_3090, gpu_model="Other card", gpu_memory_gib="lots")], "gpu_memory_gib must be a positive number"),
    ([entry(RTX_3090, gpu_model="NVIDIA", gpu_memory_gib=8)], "gpu_model 'NVIDIA' is no model name"),
    ([entry(RTX_3090, gpus_per_node=0)], "(group gpu_rtx): gpus_per_node must be at least 1, got 0"),
    ([entry(RTX_3090, gpus_per_node=True)], "gpus_per_node must be a whole number of at least 1, got True"),
    ([entry(RTX_3090, gpus_per_node="two")], "gpus_per_node must be a whole number of at least 1, got 'two'"),
    ([entry(RTX_3090, driver="nouveau")], "driver must be operator (the GPU Operator installs it) or host"),
    ([entry(RTX_3090, sharing="time-slicing")], "sharing must be a dict such as {mode: time-slicing, replicas: 4}"),
    ([entry(RTX_3090, sharing_changes={"mode": "mps"})], "sharing.mode must be none, time-slicing or mig, got 'mps'"),
    ([entry(RTX_3090, sharing_changes={"replicas": 1})], "(group gpu_rtx): sharing.replicas must be at least 2, got 1"),
    ([entry(RTX_3090, sharing_changes={"replicas": None})], "sharing.replicas is required for time-slicing"),
    ([entry(RTX_3090, sharing_changes={"rename_by_default": "yes"})], "sharing.rename_by_default must be true or false"),
    ([entry(RTX_3090, sharing_changes={"mig_strategy": "mixed"})],
     "sharing.mig_strategy does not apply to sharing.mode time-slicing; remove it or change the mode"),
    ([entry(RTX_3090, sharing={"mode": "mig", "mig_config": "all-1g.18gb"})],
     "(group gpu_rtx): NVIDIA GeForce RTX 3090 cannot run MIG; use sharing.mode none or time-slicing, or a "
     "MIG-capable model (NVIDIA A100 80GB PCIe"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": [{"profile": "1g.20gb", "count": 1}]})],
     "(group gpu_h200): the MIG layout 1 x 1g.20gb does not fit: NVIDIA H200 does not offer the MIG profile 1g.20gb; "
     "it offers 1g.18gb (at most 7), 1g.18gb+me (at most 1), 1g.35gb (at most 4), 2g.35gb (at most 3)"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": [{"profile": "2g.35gb", "count": 4}]})],
     "NVIDIA H200 allows at most 3 x 2g.35gb per GPU, the layout asks for 4"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": [{"profile": "3g.71gb", "count": 2},
                                                        {"profile": "1g.18gb", "count": 1}]})],
     "the MIG layout 1 x 1g.18gb + 2 x 3g.71gb does not fit: the layout needs 9 memory slices, NVIDIA H200 has 8"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": [{"profile": "2g.35gb", "count": 3},
                                                        {"profile": "1g.18gb", "count": 2}]})],
     "the layout needs 8 compute slices, NVIDIA H200 has 7"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": [{"profile": "1g.18gb", "count": 0}]})],
     "sharing.mig_layout[0]: count must be at least 1, got 0"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": [{"profile": "1g.18gb", "count": 1},
                                                        {"profile": "1g.18gb", "count": 2}]})],
     "sharing.mig_layout[1]: profile 1g.18gb is listed twice; give it once with the total count"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": [{"profile": "1g.18gb", "cont": 1}]})],
     "unknown key cont in a mig_layout item (did you mean count?)"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": []})], "sharing.mig_layout must be a non-empty list"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": [{"count": 1}]})],
     "sharing.mig_layout[0]: profile is required, e.g. 1g.18gb; NVIDIA H200 offers 1g.18gb (at most 7)"),
    ([entry(H200_MIXED, sharing_changes={"mig_strategy": "single"})],
     "mig_strategy single advertises every MIG device of a node as nvidia.com/gpu, so the layout must use one "
     "profile, got 1 x 1g.18gb + 3 x 2g.35gb; use mig_strategy mixed or one profile"),
    ([entry(H200_SINGLE, sharing_changes={"mig_config": "all-balanced"})],
     "mig_strategy single advertises every MIG device"),
    ([entry(H200_MIXED, sharing_changes={"mig_strategy": "none"})], "sharing.mig_strategy must be single or mixed"),
    ([entry(H200_MIXED, sharing_changes={"mig_config": "all-1g.18gb"})],
     "give either sharing.mig_config (a built-in layout such as all-1g.18gb) or sharing.mig_layout ([{profile, "
     "count}] per GPU), not both"),
    ([entry(H200_MIXED, sharing_changes={"mig_layout": None})], "one of them is required"),
    ([entry(H200_SINGLE, sharing_changes={"mig_config": "all-1g.10gb"})],
     "sharing.mig_config 'all-1g.10gb' is not a MIG manager layout for NVIDIA H200 (did you mean all-1g.18gb?); its "
     "layouts: all-1g.18gb, all-1g.18gb.me, all-1g.35gb"),
    ([entry(H200_SINGLE, sharing_changes={"mig_config": "all-disabled"})],
     "sharing.mig_config all-disabled gives no MIG devices; use sharing.mode none for whole GPUs"),
    ([entry(WHOLE, taints=[{"key": "nvidia.com/gpu", "effect": "NoRun"}])],
     "(group gpu_l40s) taints[0]: effect must be one of NoSchedule, PreferNoSchedule, NoExecute, got 'NoRun'"),
    ([entry(WHOLE, taints=[{"key": "bad key", "effect": "NoSchedule"}])], "taints[0]: key must be a Kubernetes taint key"),
    ([entry(WHOLE, taints=[{"key": "a", "effect": "NoSchedule", "operator": "Exists"}])],
     "taints[0]: unknown key operator in a taint"),
    ([entry(WHOLE, taints={"key": "a"})], "taints must be a list of {key, value, effect}"),
    ([entry(WHOLE, key_prefix="Lab_1")], "key_prefix must be lower-case letters, digits and -"),
    ([RTX_3090, entry(RTX_3090, gpu_model="RTX 4090")],
     "ailab_gpu_node_groups[1] (group gpu_rtx): the group is already described by entry 0; describe each inventory "
     "group once"),
    ([RTX_3090, entry(RTX_3090, group="gpu_rtx4090")],
     "ailab_gpu_node_groups[1] (group gpu_rtx4090): the resource key rtx-3090-shared is also produced by group "
     "gpu_rtx; set key_prefix on one of them (e.g. key_prefix: gpu-rtx4090) so each key names one group"),
    ([H200_MIXED, entry(H200_SINGLE, group="gpu_rtx", sharing_changes={"mig_config": "all-3g.71gb"})],
     "the GPU Operator's MIG strategy is one for the whole cluster, but the MIG groups disagree (gpu_h200: mixed, "
     "gpu_rtx: single); give them the same sharing.mig_strategy"),
    ([entry(RTX_3090, group="gpu_rtxx")],
     "(group gpu_rtxx): no inventory group is named gpu_rtxx (did you mean gpu_rtx?); add the group to the "
     "inventory (it may be empty) or fix the name"),
])
def test_bad_inventory_is_refused_with_a_clear_message(node_groups, message):
    for function in (lab_gpu_resources, lab_gpu_operator_config):
        assert message in error(node_groups, function=function)


def test_a_host_in_two_gpu_groups_is_refused():
    inventory = dict(INVENTORY, gpu_rtx4090=["r1"])
    assert "(group gpu_rtx4090): host r1 is also in group gpu_rtx; a GPU node belongs to one GPU group" in error(
        [RTX_3090, RTX_4090], inventory)


def test_a_time_sliced_group_named_default_is_refused():
    inventory = dict(INVENTORY, default=["r9"])
    assert "a time-sliced group cannot be named default" in error(
        [entry(RTX_3090, group="default")], inventory, lab_gpu_operator_config)


def test_a_custom_layout_name_must_fit_a_label_value():
    name = "g" * 58
    assert "use a group name of at most 57 characters" in error([entry(H200_MIXED, group=name)], {name: []})
    assert lab_gpu_resources([entry(H200_MIXED, group=name[1:])], {name[1:]: []})


def test_the_inventory_groups_are_required():
    assert "lab_gpu_resources: pass the inventory groups, e.g. ailab_gpu_node_groups | " \
           "ailab.cluster.lab_gpu_resources(groups)" in error([RTX_3090], inventory="gpu_rtx")


# -------------------------------------------------------------------------------- live check
def h200_facts(count=1, name="NVIDIA H200", pci="0x233510DE", profiles=None):
    """Facts in the shape of nvidia_gpu_info, built from the recorded H200 (gpu/nvidia-h200/), as a
    multi-GPU or other-model node is not recorded."""
    table = catalogue.mig_table(catalogue.find_model("NVIDIA H200"))
    if profiles is None:
        profiles = [{"name": p, "instances_total": v["max_instances"], "memory_gib": v["memory_gib"]}
                    for p, v in sorted(table["profiles"].items())]
    gpu = {"name": name, "pci_device_id": pci, "memory_total_mib": 143771,
           "mig_mode": {"current": "Disabled", "pending": "Disabled"}, "mig_profiles": profiles}
    return {"gpus": [dict(gpu) for _gpu in range(count)], "gpu_count": count}


def rtx_facts(count=1):
    gpu = {"name": "NVIDIA GeForce RTX 3090", "pci_device_id": "0x220410DE", "memory_total_mib": 24576,
           "mig_mode": {"current": "N/A", "pending": "N/A"}, "mig_profiles": []}
    return {"gpus": [dict(gpu) for _gpu in range(count)], "gpu_count": count}


def test_the_check_passes_when_the_nodes_match():
    facts = {"h1": h200_facts(), "h2": h200_facts(), "r1": rtx_facts()}
    assert lab_gpu_check([H200_MIXED, RTX_3090], facts, INVENTORY) == []
    assert lab_gpu_check([H200_MIXED, RTX_3090], facts) == []
    assert lab_gpu_check([H200_MIXED], {}, INVENTORY) == []  # no node reachable: nothing to compare
    assert lab_gpu_check([H200_MIXED], None) == []


def test_the_check_reports_every_difference():
    facts = {
        "h1": h200_facts(name="NVIDIA H200 NVL", pci="0x233B10DE"),
        "h2": h200_facts(profiles=[{"name": "MIG 1g.18gb", "instances_total": 7, "memory_gib": 16.0},
                                   {"name": "2g.35gb", "instances_total": 2, "memory_gib": 32.5}]),
        "r1": rtx_facts(count=1),
        "r2": rtx_facts(),
    }
    two_gpus = entry(RTX_3090, gpus_per_node=2)
    assert lab_gpu_check([H200_MIXED, two_gpus], facts, INVENTORY) == [
        "h1 (group gpu_h200): GPU 0 is NVIDIA H200 NVL (0x233B10DE), the inventory says NVIDIA H200",
        "h2 (group gpu_h200): GPU 0 allows 2 x 2g.35gb, the layout asks for 3",
        "r1 (group gpu_rtx): 1 GPU(s) found, the inventory says gpus_per_node 2",
    ]
    facts = {"h1": h200_facts(profiles=[{"name": "1g.20gb", "instances_total": 4}]), "r1": rtx_facts()}
    assert lab_gpu_check([H200_MIXED, RTX_3090], facts, INVENTORY) == [
        "h1 (group gpu_h200): GPU 0 does not offer the MIG profile 1g.18gb (it offers: 1g.20gb)",
        "h1 (group gpu_h200): GPU 0 does not offer the MIG profile 2g.35gb (it offers: 1g.20gb)",
    ]
    no_mig = h200_facts()
    no_mig["gpus"][0].update(mig_capable=False, mig_mode={"current": "N/A", "pending": "N/A"})
    assert lab_gpu_check([H200_MIXED], {"h1": no_mig}, INVENTORY) == [
        "h1 (group gpu_h200): GPU 0 reports no MIG support (MIG mode N/A), the inventory asks for MIG"]


def test_the_check_leaves_alone_what_the_facts_cannot_tell():
    # Profiles not read (nvidia_gpu_info mig_profiles=false): the catalogue already checked the layout.
    assert lab_gpu_check([H200_MIXED], {"h1": h200_facts(profiles=[])}, INVENTORY) == []
    # No nvidia-smi on the host before the operator's driver container runs: no GPU to compare yet.
    assert lab_gpu_check([H200_MIXED], {"h1": {"gpus": [], "gpu_count": 0}}, INVENTORY) == []
    # With a driver on the host, no GPU is a problem.
    assert lab_gpu_check([entry(H200_MIXED, driver="host")], {"h1": {"gpus": [], "gpu_count": 0}}, INVENTORY) == [
        "h1 (group gpu_h200): 0 GPU(s) found, the inventory says gpus_per_node 1"]


def test_the_check_without_groups_matches_hosts_by_model():
    facts = {"h1": h200_facts(), "x9": h200_facts(name="Tesla T4", pci="0x1EB810DE")}
    assert lab_gpu_check([H200_MIXED, RTX_3090], facts) == [
        "x9: its GPUs (Tesla T4) match no entry of ailab_gpu_node_groups"]


def test_the_check_of_a_card_the_catalogue_does_not_know_compares_names():
    other = {"group": "gpu_rtx", "gpu_model": "NVIDIA RTX 5000 Ada Generation", "gpu_memory_gib": 32}
    good = {"r1": {"gpus": [{"name": "NVIDIA RTX 5000 Ada Generation", "pci_device_id": "0x26B210DE"}], "gpu_count": 1}}
    assert lab_gpu_check([other], good, INVENTORY) == []
    bad = {"r1": rtx_facts()}
    assert lab_gpu_check([other], bad, INVENTORY) == [
        "r1 (group gpu_rtx): GPU 0 is NVIDIA GeForce RTX 3090 (0x220410DE), the inventory says NVIDIA RTX 5000 Ada "
        "Generation"]


def test_the_check_refuses_what_is_not_facts():
    with pytest.raises(AnsibleFilterError, match="the GPU facts must be a dict"):
        lab_gpu_check([RTX_3090], ["r1"])
    with pytest.raises(AnsibleFilterError, match="sharing.replicas must be at least 2"):
        lab_gpu_check([entry(RTX_3090, sharing_changes={"replicas": 1})], {})
    assert lab_gpu_check([RTX_3090], {"r1": "unreachable"}, INVENTORY) == [
        "r1 (group gpu_rtx): the GPU facts are not a dict ('unreachable')"]


class Tagged(str):
    """Ansible hands filters str subclasses (tagged or unsafe strings); yaml.safe_dump refuses them."""


def tagged(value):
    if isinstance(value, dict):
        return dict((tagged(k), tagged(v)) for k, v in value.items())
    if isinstance(value, list):
        return [tagged(v) for v in value]
    return Tagged(value) if isinstance(value, str) else value


def test_ansible_strings_come_out_as_plain_data():
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.safe_dump(tagged({"a": "b"}))
    lab = tagged(LABS["all kinds"])
    inventory = tagged(INVENTORY)
    outputs = [lab_gpu_resources(lab, inventory), lab_gpu_operator_config(lab, inventory)]
    assert yaml.safe_load(yaml.safe_dump(outputs)) == [lab_gpu_resources(LABS["all kinds"], INVENTORY),
                                                       lab_gpu_operator_config(LABS["all kinds"], INVENTORY)]
