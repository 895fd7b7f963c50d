"""lab_variables filters: unknown inventory variables with the closest valid name."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.lab_variables import (
    FilterModule,
    lab_known_variables,
    lab_unknown_variables,
    lab_unknown_variables_message,
    lab_variable_prefixes,
)

ROLES = ["proxmox_storage", "proxmox_ha", "kubeadm_worker", "node_prep", "local_path", "lab_check", "cni"]
KNOWN = ["proxmox_storage_list", "proxmox_ha_groups", "kubeadm_worker_node_labels", "node_prep_hostname",
         "local_path_node_path_map", "cni_plugin", "ailab_kubernetes_export_dir"]


def test_known_variables_come_from_every_entry_point():
    specs = {"a": {"argument_specs": {"main": {"options": {"a_x": {}, "a_y": {}}}, "helm": {"options": {"a_z": {}}}}},
             "b": {"argument_specs": {"main": {}}}, "c": {}}
    assert lab_known_variables(specs) == ["a_x", "a_y", "a_z"]


def test_known_variables_refuse_a_bad_spec():
    with pytest.raises(AnsibleFilterError, match="argument_specs is not a mapping"):
        lab_known_variables({"a": {"argument_specs": ["main"]}})


def test_prefixes_are_role_names_and_their_first_word():
    prefixes = lab_variable_prefixes(ROLES, ["ailab_"])
    assert {"proxmox_", "proxmox_storage_", "kubeadm_", "node_", "local_path_", "lab_check_", "cni_", "ailab_"} <= set(prefixes)
    assert "local_" not in prefixes and "lab_" not in prefixes


def test_a_typo_is_reported_with_the_closest_name():
    found = lab_unknown_variables({"localhost": ["proxmox_storages_list", "proxmox_storage_list", "ansible_host"],
                                   "cp-1": ["node_prep_hostnam", "kubeadm_worker_node_lables", "my_own_var"]},
                                  KNOWN, ROLES)
    assert found == [
        {"name": "kubeadm_worker_node_lables", "hosts": ["cp-1"], "suggestion": "kubeadm_worker_node_labels"},
        {"name": "node_prep_hostnam", "hosts": ["cp-1"], "suggestion": "node_prep_hostname"},
        {"name": "proxmox_storages_list", "hosts": ["localhost"], "suggestion": "proxmox_storage_list"},
    ]


def test_a_variable_far_from_every_name_has_no_suggestion():
    found = lab_unknown_variables({"h": ["proxmox_something_else_entirely", "local_thing", "ailab_x"]}, KNOWN, ROLES)
    assert [(f["name"], f["suggestion"]) for f in found] == [("ailab_x", ""), ("proxmox_something_else_entirely", "")]


def test_hosts_of_one_variable_are_merged_and_messages_name_a_few():
    hosts = {f"n{i}": ["cni_plugn"] for i in range(8)}
    found = lab_unknown_variables(hosts, KNOWN, ROLES)
    assert found[0]["hosts"] == sorted(hosts)
    (line,) = lab_unknown_variables_message(found)
    assert line == ("`cni_plugn` (set for n0, n1, n2, n3, n4 and 3 more) is not a variable of any ailab.cluster role; "
                    "did you mean `cni_plugin`?")


def test_bad_input_is_refused():
    with pytest.raises(AnsibleFilterError, match="mapping of host name"):
        lab_unknown_variables(["h"], KNOWN, ROLES)


def test_filters_are_registered():
    assert {"lab_known_variables", "lab_unknown_variables", "lab_unknown_variables_message"} <= set(FilterModule().filters())
