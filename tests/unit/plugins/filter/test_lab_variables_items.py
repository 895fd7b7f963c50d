"""lab_variables filters: unknown keys inside list items and dicts, walked from the argument specs."""

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.lab_variables import (
    FilterModule,
    lab_unknown_variables_item_keys,
    lab_unknown_variables_item_keys_message,
    lab_unknown_variables_item_specs,
)
from unit.roles.playbook_runner import ROOT

SPECS = {
    "proxmox_storage": {"argument_specs": {"main": {"options": {
        "proxmox_storage_list": {"type": "list", "elements": "dict", "options": {
            "storage": {"type": "str", "required": True},
            "export": {"type": "str", "aliases": ["nfs_export"]},
            "prune_backups": {"type": "dict", "options": {"keep_last": {"type": "int"}, "keep_daily": {"type": "int"}}},
        }},
        "proxmox_storage_purge": {"type": "bool"},
        "proxmox_storage_plain": {"type": "list", "elements": "dict"},
    }}}},
    "tenants": {"argument_specs": {"main": {"options": {
        "ailab_tenants": {"type": "list", "elements": "dict", "options": {
            "name": {"type": "str"}, "quota": {"type": "dict", "options": {"cpu": {}, "gpu": {"type": "raw"}}}}},
    }}, "other": {"options": {"tenants_settings": {"type": "dict", "options": {"a": {}}}}}}},
    "a_role": {"argument_specs": {"main": {"options": {
        "ailab_tenants": {"type": "list", "elements": "dict", "options": {"only": {}}}}}}},
}


def test_item_specs_are_the_options_that_describe_their_keys():
    specs = lab_unknown_variables_item_specs(SPECS)
    assert sorted(specs) == ["ailab_tenants", "proxmox_storage_list", "tenants_settings"]
    assert "only" in specs["ailab_tenants"]["options"], "the first role by name wins"


def test_item_specs_refuse_a_bad_spec():
    with pytest.raises(AnsibleFilterError, match="argument_specs is not a mapping"):
        lab_unknown_variables_item_specs({"a": {"argument_specs": ["main"]}})
    with pytest.raises(AnsibleFilterError, match="mapping of role name"):
        lab_unknown_variables_item_specs([])


def test_unknown_keys_are_found_in_items_and_nested_options():
    specs = lab_unknown_variables_item_specs({k: v for k, v in SPECS.items() if k != "a_role"})
    found = lab_unknown_variables_item_keys({
        "localhost": {"proxmox_storage_list": [
            {"storage": "nas", "exports": "/mnt/tank", "nfs_export": "/x", "prune_backups": {"keep_lst": 3}},
            {"storage": "local", "export": "/y"}],
            "proxmox_storage_plain": [{"anything": 1}]},
        "cp1": {"ailab_tenants": [{"name": "cs101", "quotas": {}, "quota": {"cpus": 4, "gpu": {"free": 1}}}],
                "tenants_settings": {"b": 1}},
    }, specs)
    assert [(f["path"], f["item"], f["key"], f["suggestion"], f["hosts"]) for f in found] == [
        ("ailab_tenants[0]", "name cs101", "quotas", "quota", ["cp1"]),
        ("ailab_tenants[0].quota", "name cs101", "cpus", "cpu", ["cp1"]),
        ("proxmox_storage_list[0]", "storage nas", "exports", "export", ["localhost"]),
        ("proxmox_storage_list[0].prune_backups", "storage nas", "keep_lst", "keep_last", ["localhost"]),
        ("tenants_settings", "", "b", "", ["cp1"]),
    ]
    assert found[2]["valid"] == ["export", "nfs_export", "prune_backups", "storage"], "aliases are valid keys"
    assert found[2]["variable"] == "proxmox_storage_list"


def test_one_mistake_set_for_many_hosts_is_one_entry_and_wrong_types_are_left_to_the_roles():
    specs = lab_unknown_variables_item_specs(SPECS)
    hosts = {f"n{i}": {"ailab_tenants": [{"naem": "x"}]} for i in range(7)}
    hosts["odd"] = {"ailab_tenants": "not a list"}
    hosts["odder"] = {"ailab_tenants": ["not a dict", None]}
    (entry,) = lab_unknown_variables_item_keys(hosts, specs)
    assert entry["hosts"] == sorted(f"n{i}" for i in range(7))
    (line,) = lab_unknown_variables_item_keys_message([entry])
    assert line == ("`ailab_tenants[0]` (set for n0, n1, n2, n3, n4 and 2 more) has the unknown key `naem`. "
                    "Valid keys: only.")


def test_the_message_names_item_key_closest_key_and_valid_keys():
    line, = lab_unknown_variables_item_keys_message([{
        "variable": "proxmox_guests_list", "path": "proxmox_guests_list[1]", "item": "name k8s-w-1", "key": "cpus",
        "suggestion": "cpu", "valid": ["cores", "cpu", "name"], "hosts": ["localhost"]}])
    assert line == ("`proxmox_guests_list[1]` (name k8s-w-1, set for localhost) has the unknown key `cpus`; "
                    "did you mean `cpu`? Valid keys: cores, cpu, name.")


def test_bad_input_is_refused():
    with pytest.raises(AnsibleFilterError, match="mapping of host name"):
        lab_unknown_variables_item_keys(["h"], {})
    with pytest.raises(AnsibleFilterError, match="lab_unknown_variables_item_specs"):
        lab_unknown_variables_item_keys({}, ["x"])


def test_the_collection_describes_the_lab_model_and_the_guests():
    """The real specs: the lab model (lab_check) and the guests describe their keys, nested ones too."""
    docs = {p.parent.parent.name: yaml.safe_load(p.read_text()) for p in (ROOT / "roles").glob("*/meta/argument_specs.yml")}
    specs = lab_unknown_variables_item_specs(docs)
    assert {"ailab_tenants", "ailab_gpu_node_groups", "ailab_cpu_profiles", "proxmox_guests_list",
            "proxmox_guests_defaults"} <= set(specs)
    found = lab_unknown_variables_item_keys({"h": {
        "ailab_gpu_node_groups": [{"group": "gpu_h200", "sharing": {"mode": "mig", "mig_layout": [{"profile": "1g.18gb",
                                                                                                   "cont": 7}]}}]}},
        specs)
    assert [(f["path"], f["key"], f["suggestion"]) for f in found] == [
        ("ailab_gpu_node_groups[0].sharing.mig_layout[0]", "cont", "count")]
    assert found[0]["item"] == "group gpu_h200"


def test_filters_are_registered():
    assert {"lab_unknown_variables_item_specs", "lab_unknown_variables_item_keys",
            "lab_unknown_variables_item_keys_message"} <= set(FilterModule().filters())
