"""Single-object and list mode (module_utils/_proxmox_list.py): argument specs, diff, planned changes,
prune-backups retention. The runners are covered end to end by the module tests."""

import pytest

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import PROXMOX_CONNECTION_SPEC, ProxmoxError, PveArray
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_list import (
    Change,
    CollectionManager,
    ItemSpec,
    collection_argument_spec,
    collection_module_kwargs,
    list_argument_spec,
    list_diff,
    parse_prune,
    prune_key,
    prune_to_pve,
)


class ThingManager(CollectionManager):
    kind = "thing"
    path = "cluster/things"
    id_key = "name"
    list_key = "things"
    result_key = "thing"
    item_options = dict(name=dict(type="str"), size=dict(type="int"), tags=dict(type="list", elements="str"))


def test_list_argument_spec_has_connection_single_list_purge_and_own_options():
    spec = list_argument_spec(dict(name=dict(type="str")), dict(name=dict(type="str", required=True)), "things",
                              wait=dict(type="bool", default=True))
    assert set(spec) == set(PROXMOX_CONNECTION_SPEC) | {"name", "things", "purge", "wait"}
    assert spec["things"] == dict(type="list", elements="dict", options=dict(name=dict(type="str", required=True)))
    assert spec["purge"] == dict(type="bool", default=False)
    assert spec["name"] == dict(type="str") and spec["wait"] == dict(type="bool", default=True)


def test_collection_spec_adds_state_and_requires_the_id_in_list_entries():
    spec = collection_argument_spec(ThingManager, force=dict(type="bool", default=False))
    assert spec["state"] == dict(type="str", choices=["present", "absent"], default="present")
    assert spec["name"] == dict(type="str")  # single mode: required_one_of, not required
    elements = spec["things"]["options"]
    assert elements["name"] == dict(type="str", required=True)
    assert elements["state"] == dict(type="str", choices=["present", "absent"])  # defaults to the top-level state
    assert elements["tags"] == dict(type="list", elements="str")
    assert spec["force"] == dict(type="bool", default=False) and spec["purge"]["default"] is False
    assert "force" not in elements and "purge" not in elements
    assert ThingManager.item_options["name"] == dict(type="str")  # the manager's spec is not changed


def test_collection_kwargs_one_object_or_a_list_and_purge_only_with_a_list():
    kwargs = collection_module_kwargs(ThingManager)
    assert ("things", "name") in kwargs["mutually_exclusive"] and ("things", "tags") in kwargs["mutually_exclusive"]
    assert ("api_password", "api_token_secret") in kwargs["mutually_exclusive"]
    assert ("name", "things") in kwargs["required_one_of"]
    assert kwargs["required_if"] == [("purge", True, ("things",))]


def test_item_spec_leaves_required_and_defaults_to_the_item_validation():
    spec = ItemSpec(kind="group", list_name="groups", identity="name", options=dict(
        name=dict(type="str", required=True, aliases=["group"]),
        state=dict(type="str", default="present", choices=["present", "absent"])))
    module_spec = spec.argument_spec()
    assert module_spec["name"] == dict(type="str", aliases=["group"])
    assert module_spec["state"] == dict(type="str", choices=["present", "absent"])
    assert module_spec["groups"]["options"] == dict(name=module_spec["name"], state=module_spec["state"])
    assert module_spec["purge"] == dict(type="bool", default=False)
    assert spec.options["name"]["required"] is True  # the item spec keeps them


class Failed(Exception):
    pass


class FakeModule(object):
    def __init__(self, **params):
        self.params = params

    def fail_json(self, msg, **kwargs):
        raise Failed(msg)


RESOURCE_LIKE = ItemSpec(kind="resource", list_name="resources", identity="sid", options=dict(
    sid=dict(type="str"), vmid=dict(type="int"), max_restart=dict(type="int", default=1)),
    rules=dict(mutually_exclusive=[("sid", "vmid")], required_one_of=[("sid", "vmid")]),
    check=lambda item: "max_restart must be 0 or more" if item["max_restart"] < 0 else None,
    key=lambda item: item["sid"] or "vm:%s" % item["vmid"])


def test_item_spec_validates_each_item_and_fills_defaults():
    items, list_mode = RESOURCE_LIKE.items(FakeModule(sid="vm:100", vmid=None, max_restart=None, resources=None))
    assert list_mode is False and items == [dict(sid="vm:100", vmid=None, max_restart=1)]
    module = FakeModule(sid=None, vmid=None, max_restart=None, resources=[dict(vmid=101), dict(sid="vm:102", max_restart=3)])
    items, list_mode = RESOURCE_LIKE.items(module)
    assert list_mode is True and [RESOURCE_LIKE.key(i) for i in items] == ["vm:101", "vm:102"]
    assert [i["max_restart"] for i in items] == [1, 3]


@pytest.mark.parametrize("params, message", [
    (dict(resources=[dict(sid="vm:100"), dict(vmid=101, max_restart=-1)]),
     "resources[1] (101): max_restart must be 0 or more"),
    (dict(resources=[dict(sid="vm:100", vmid=100)]), "resources[0] (vm:100): parameters are mutually exclusive: sid|vmid"),
    (dict(resources=[dict(max_restart=2)]), "resources[0]: one of the following is required: sid, vmid"),
    (dict(resources=[dict(sid="vm:100"), dict(sid="vm:100")]), "resources[1]: resource vm:100 is listed twice"),
    (dict(resources=[dict(sid="vm:100")], max_restart=2), "resource: set max_restart inside each item of resources"),
    (dict(sid="vm:100", purge=True), "resource: purge needs list mode"),
    (dict(sid="vm:100", max_restart=-1), "resource: max_restart must be 0 or more"),
])
def test_item_spec_refuses_bad_items_naming_them(params, message):
    module = FakeModule(**dict(dict(sid=None, vmid=None, max_restart=None, resources=None, purge=False), **params))
    with pytest.raises(Failed) as exc:
        RESOURCE_LIKE.items(module)
    assert message in str(exc.value)


def test_list_diff_is_keyed_in_list_mode_and_one_config_in_single_mode():
    before, after = {"a": {"size": 1}}, {"a": {"size": 2}, "b": {"size": 3}}
    assert list_diff(before, after, True) == dict(before=before, after=after)
    assert list_diff({"a": {"size": 1}}, {"a": {"size": 2}}, False) == dict(before={"size": 1}, after={"size": 2})
    assert list_diff({}, {"a": {"size": 2}}, False) == dict(before={}, after={"size": 2})
    assert list_diff({}, {}, False) == dict(before={}, after={})


def test_change_request_and_result():
    change = Change("a", "update", params=dict(size=2, secret="s", flag=True, map=PveArray(["x=1,y=2"])),
                    delete=["tags", "comment"])
    assert change.params["flag"] == 1 and isinstance(change.params["map"], PveArray)
    assert change.request() == dict(size=2, secret="s", flag=1, map=["x=1,y=2"], delete="tags,comment")
    result = change.as_result(hide=("secret",))
    assert result == dict(id="a", action="update", params=dict(size=2, secret="********", flag=1, map=["x=1,y=2"]),
                          delete=["tags", "comment"])
    assert isinstance(result["params"]["map"], list) and not isinstance(result["params"]["map"], PveArray)
    assert "delete" not in Change("b", "create", params=dict(size=1)).request()


def test_manager_predicts_the_entry_after_each_change():
    manager = ThingManager(module=None, client=None)
    entry = {"name": "a", "size": 1, "tags": "x", "digest": "abc"}
    assert manager.predicted("a", entry, None) == {"name": "a", "size": 1, "tags": "x"}
    assert manager.predicted("z", None, None) is None
    update = Change("a", "update", params=dict(size=2), delete=["tags"])
    assert manager.predicted("a", entry, update) == {"name": "a", "size": 2}
    create = Change("b", "create", params=dict(size=3, tags=["p", "q"]))
    assert manager.predicted("b", None, create) == {"name": "b", "size": 3, "tags": "p,q"}
    assert manager.predicted("a", entry, Change("a", "delete")) is None
    assert entry["tags"] == "x"  # the current entry is not changed


# ------------------------------------------------------------------------------ prune-backups
def test_prune_to_pve_in_pve_key_order():
    retention = dict(keep_weekly=4, keep_last=3, keep_all=None, keep_daily=None)
    assert prune_to_pve(retention, "storage nas") == "keep-last=3,keep-weekly=4"
    assert prune_to_pve(dict(keep_all=True), "storage nas") == "keep-all=1"
    assert prune_to_pve(None, "storage nas") is None


@pytest.mark.parametrize("retention, message", [
    (dict(keep_last=None), "storage nas: prune_backups needs at least one keep_* setting"),
    (dict(keep_all=True, keep_last=3), "keep_all: true keeps every backup and cannot be combined with keep_last"),
    (dict(keep_last=0), "prune_backups keep_last must be 1 or more (got 0)"),
])
def test_prune_to_pve_refuses_bad_retention(retention, message):
    with pytest.raises(ProxmoxError) as exc:
        prune_to_pve(retention, "storage nas")
    assert message in exc.value.msg


def test_prune_strings_compare_without_order_or_spaces():
    assert parse_prune("keep-last=3, keep-weekly=4") == {"keep-last": "3", "keep-weekly": "4"}
    assert prune_key("keep-weekly=4,keep-last=3") == prune_key("keep-last=3, keep-weekly=4")
    assert prune_key("keep-last=3") != prune_key("keep-last=4")
    assert prune_key(None) is None
