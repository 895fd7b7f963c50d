"""The storage filters (plugins/filter/storage.py) called alone: the lab's StorageClasses and its one
default class, unmanaged default classes of a cluster, Rook's storage nodes and local-path's nodePathMap."""

import json
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.ailab.cluster.plugins.filter import storage
from ansible_collections.ailab.cluster.plugins.filter.storage import (
    BACKENDS,
    FilterModule,
    local_path_node_path_map,
    rook_ceph_storage_nodes,
    storage_classes,
    storage_default_class,
    storage_unmanaged_defaults,
)

from unit.roles.playbook_runner import reference

ROOT = Path(__file__).resolve().parents[4]


def test_filter_module_exposes_every_filter():
    assert set(FilterModule().filters()) == {
        "storage_classes", "storage_default_class", "storage_unmanaged_defaults", "rook_ceph_storage_nodes",
        "local_path_node_path_map"}


def test_filter_defaults_are_the_role_defaults():
    """A variable the inventory does not set takes its role's default, in the filter too."""
    for backend, entries in BACKENDS.items():
        defaults = yaml.safe_load((ROOT / "roles" / backend / "defaults" / "main.yml").read_text())
        for name_var, name_default, flag_var, enabled_var in entries:
            assert defaults[name_var] == name_default, name_var
            assert defaults[flag_var] is False, flag_var
            if enabled_var:
                assert defaults[enabled_var] is False, enabled_var


def test_every_filter_has_its_documentation():
    for name in FilterModule().filters():
        doc = yaml.safe_load((ROOT / "plugins" / "filter" / f"{name}.yml").read_text())
        assert doc["DOCUMENTATION"]["name"] == name
        assert doc["EXAMPLES"] and doc["RETURN"]


# ------------------------------------------------------------------------------- lab StorageClasses
def test_classes_of_the_enabled_backends_in_order():
    settings = {"ailab_storage_backends": ["nfs_provisioner", "rook_ceph"], "rook_ceph_filesystem_enabled": True,
                "rook_ceph_block_default_class": True, "nfs_provisioner_storage_class": "nas"}
    assert storage_classes(settings) == [
        {"name": "nas", "backend": "nfs_provisioner", "default": False, "flag": "nfs_provisioner_default_class"},
        {"name": "ceph-block", "backend": "rook_ceph", "default": True, "flag": "rook_ceph_block_default_class"},
        {"name": "ceph-filesystem", "backend": "rook_ceph", "default": False,
         "flag": "rook_ceph_filesystem_default_class"}]
    assert storage_default_class(settings) == "ceph-block"


def test_no_backend_no_default_class():
    assert storage_classes({}) == []
    assert storage_default_class({"ailab_storage_backends": []}) == ""
    assert storage_default_class({"ailab_storage_backends": None}) == ""


@pytest.mark.parametrize("settings, message", [
    ({"ailab_storage_backends": ["rook_ceph", "local_path"], "rook_ceph_block_default_class": True,
      "local_path_default_class": "yes"},
     "Two or more default StorageClasses: ceph-block (rook_ceph_block_default_class) and local-path "
     "(local_path_default_class) are all true; set exactly one of them to true"),
    ({"ailab_storage_backends": ["rook_ceph"], "rook_ceph_filesystem_enabled": True},
     "No default StorageClass: set exactly one of rook_ceph_block_default_class (ceph-block), "
     "rook_ceph_filesystem_default_class (ceph-filesystem) to true"),
    ({"ailab_storage_backends": ["nfs_provisioner"], "nfs_provisioner_default_class": True,
      "local_path_default_class": True},
     "local_path_default_class is true but local_path is not in ailab_storage_backends (nfs_provisioner)"),
    ({"ailab_storage_backends": ["rook_ceph"], "rook_ceph_filesystem_default_class": True},
     "rook_ceph_filesystem_default_class is true but rook_ceph_filesystem_enabled is false"),
    ({"ailab_storage_backends": ["ceph"]},
     "ailab_storage_backends: 'ceph' is not a storage backend of ailab.cluster; use any of rook_ceph, "
     "nfs_provisioner, local_path"),
    ({"ailab_storage_backends": "rook_ceph"}, "ailab_storage_backends must be a list"),
    ({"ailab_storage_backends": ["local_path", "local_path"]}, "lists a backend twice"),
    ({"ailab_storage_backends": ["local_path", "nfs_provisioner"], "nfs_provisioner_storage_class": "local-path",
      "local_path_default_class": True},
     "StorageClass 'local-path' would be created by both local_path and nfs_provisioner"),
    ({"ailab_storage_backends": ["local_path"], "local_path_storage_class": "Local_Path"},
     "local_path_storage_class must be a StorageClass name"),
    ({"ailab_storage_backends": ["local_path"], "local_path_default_class": "maybe"},
     "local_path_default_class must be true or false, got 'maybe'"),
])
def test_bad_lab_settings(settings, message):
    with pytest.raises(AnsibleFilterError) as err:
        storage_default_class(settings)
    assert message in str(err.value)


def test_settings_must_be_a_mapping():
    with pytest.raises(AnsibleFilterError, match="hostvars\\[inventory_hostname\\]"):
        storage_classes(["rook_ceph"])


def sc(name, default=None):
    annotations = {} if default is None else {storage.DEFAULT_CLASS_ANNOTATION: default}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": annotations}}


def test_unmanaged_default_classes():
    settings = {"ailab_storage_backends": ["local_path"], "local_path_default_class": True}
    cluster = [sc("local-path", "true"), sc("standard", "true"), sc("old-nfs", "false"), sc("legacy"),
               {"metadata": {"name": "bare"}}, sc("openebs", "True")]
    assert storage_unmanaged_defaults(cluster, settings) == ["openebs", "standard"]
    assert storage_unmanaged_defaults(None, settings) == []
    with pytest.raises(AnsibleFilterError, match="expected StorageClass objects"):
        storage_unmanaged_defaults(["standard"], settings)


# ---------------------------------------------------------------------------------- Rook storage nodes
HOSTVARS = {
    "ceph01": {"rook_ceph_devices": ["/dev/sdb", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64"]},
    "ceph02": {"rook_ceph_devices": ["/dev/nvme1n1"], "node_prep_hostname": "ceph02-k8s"},
}


def test_storage_nodes_from_host_vars():
    assert rook_ceph_storage_nodes(["ceph01", "ceph02"], HOSTVARS, "storage_nodes") == [
        {"name": "ceph01", "devices": [{"name": "sdb"}, {"name": "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64"}]},
        {"name": "ceph02-k8s", "devices": [{"name": "nvme1n1"}]}]


@pytest.mark.parametrize("hosts, hostvars, message", [
    ([], {}, "The inventory group storage_nodes (rook_ceph_storage_group) has no hosts or does not exist"),
    (["a"], {"a": {}}, "a: rook_ceph_devices is empty; list at least one raw disk"),
    (["a"], {"a": {"rook_ceph_devices": None}}, "a: rook_ceph_devices is empty"),
    (["a"], {"a": {"rook_ceph_devices": "/dev/sdb"}}, "a: rook_ceph_devices must be a list of device paths"),
    (["a"], {"a": {"rook_ceph_devices": ["sdb", "/dev/", "/etc/passwd", "/dev/sd b"]}},
     "a: rook_ceph_devices entries must be absolute device paths under /dev/, got 'sdb', '/dev/', '/etc/passwd', "
     "'/dev/sd b'"),
    (["a"], {"a": {"rook_ceph_devices": ["/dev/sdb", "/dev/sdc", "/dev/sdb"]}},
     "a: rook_ceph_devices lists /dev/sdb more than once"),
    (["a", "b"], {"a": {"rook_ceph_devices": ["/dev/sdb"], "node_prep_hostname": "n1"},
                  "b": {"rook_ceph_devices": ["/dev/sdb"], "node_prep_hostname": "n1"}},
     "a and b are both the Kubernetes node n1"),
    (["A_1"], {"A_1": {"rook_ceph_devices": ["/dev/sdb"]}}, "A_1: 'A_1' is not a Kubernetes node name"),
])
def test_bad_storage_nodes(hosts, hostvars, message):
    with pytest.raises(AnsibleFilterError) as err:
        rook_ceph_storage_nodes(hosts, hostvars, "storage_nodes")
    assert message in str(err.value)
    assert str(err.value).startswith("Rook-Ceph storage nodes (group storage_nodes): ") or not hosts


def test_every_bad_storage_node_is_reported_at_once():
    with pytest.raises(AnsibleFilterError) as err:
        rook_ceph_storage_nodes(["a", "b"], {"a": {}, "b": {"rook_ceph_devices": ["sdb"]}}, "storage_nodes")
    assert "a: rook_ceph_devices is empty" in str(err.value) and "b: rook_ceph_devices entries" in str(err.value)


# ------------------------------------------------------------------------------- local-path nodePathMap
def test_upstream_example_config_passes():
    config = yaml.safe_load(reference("local-path-provisioner/deploy/example-config.yaml").read_text())
    node_path_map = json.loads(config["data"]["config.json"])["nodePathMap"]
    # Upstream's example has a node with paths: [] ("refused") only to show the rule.
    usable = [e for e in node_path_map if e["paths"]]
    assert local_path_node_path_map(usable) == usable
    with pytest.raises(AnsibleFilterError, match="paths must be a non-empty list"):
        local_path_node_path_map(node_path_map)


@pytest.mark.parametrize("node_path_map, message", [
    ([], "local_path_node_path_map is empty"),
    ({"node": "a", "paths": ["/x"]}, "must be a list of {node, paths}"),
    ([{"node": "a"}], "entry 0 must be {node: <node name or DEFAULT_PATH_FOR_NON_LISTED_NODES>"),
    ([{"node": "a", "paths": ["/x"], "extra": 1}], "entry 0 must be {node:"),
    ([{"node": "a", "paths": ["data"]}], "node a: paths must be absolute and not '/', got 'data'"),
    ([{"node": "a", "paths": ["/"]}], "node a: paths must be absolute and not '/', got '/'"),
    ([{"node": "a", "paths": ["/x", "/x/"]}], "node a: path /x listed twice"),
    ([{"node": "a", "paths": ["/x"]}, {"node": "a", "paths": ["/y"]}], "node a is listed twice"),
    ([{"node": "a", "paths": []}], "node a: paths must be a non-empty list"),
    ([{"node": "Bad Node", "paths": ["/x"]}], "node 'Bad Node' is neither a Kubernetes node name nor"),
])
def test_bad_node_path_map(node_path_map, message):
    with pytest.raises(AnsibleFilterError) as err:
        local_path_node_path_map(node_path_map)
    assert message in str(err.value)
