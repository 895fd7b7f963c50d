"""HA update parameters (module_utils/_proxmox_ha.py): the shared comparison with the HA rules
(node priorities and resource lists in any order, an empty string removes the option)."""

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_ha import (
    GROUP_DEFAULTS,
    RULE_DEFAULTS,
    update_params,
)


def test_equal_node_and_resource_lists_in_another_order_are_no_change():
    current = {"type": "node-affinity", "nodes": "pve-2,pve-1:2", "resources": "vm:101,vm:100"}
    desired = dict(nodes="pve-1:2,pve-2", resources="vm:100,vm:101", strict=False, comment=None)
    assert update_params(desired, current, RULE_DEFAULTS) == {}


def test_a_changed_list_is_sent_as_given():
    current = {"nodes": "pve-1:2,pve-2", "restricted": 1}
    params = update_params(dict(nodes="pve-2,pve-1:1", restricted=True), current, GROUP_DEFAULTS)
    assert params == {"nodes": "pve-2,pve-1:1"}


def test_defaults_count_for_absent_options():
    current = {"nodes": "pve-1"}
    assert update_params(dict(restricted=False, nofailback=False, comment=""), current, GROUP_DEFAULTS) == {}
    assert update_params(dict(restricted=True), current, GROUP_DEFAULTS) == {"restricted": 1}


def test_empty_string_removes_a_set_option():
    current = {"nodes": "pve-1", "comment": "old"}
    assert update_params(dict(comment="", restricted=True), current, GROUP_DEFAULTS) == {
        "restricted": 1, "delete": "comment"}
    assert update_params(dict(comment=""), {"nodes": "pve-1"}, GROUP_DEFAULTS) == {}
