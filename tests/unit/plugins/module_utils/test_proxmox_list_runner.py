"""The list-mode engine of module_utils/_proxmox_list.py run whole with a fake AnsibleModule and a
recording client: ItemSpec.module, the CollectionManager hooks, and run_collection_module's steps
(validate, read once, plan, verify, write unless check mode, results, diff, failures).

Exact calls, results and messages, so that a changed condition or constant fails a test
(``make mutation``)."""

import pytest

from ansible_collections.ailab.cluster.plugins.module_utils import _proxmox_list as pl
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import PROXMOX_CONNECTION_SPEC, ProxmoxError
from unit.plugins.module_utils.module_fakes import Exited, Failed


class FakeAnsibleModule(object):
    """Records how the engine builds its AnsibleModule; params come from ``PARAMS``."""

    PARAMS = {}
    CHECK = False
    DIFF = False
    built = []

    def __init__(self, argument_spec=None, supports_check_mode=False, **kwargs):
        self.argument_spec = argument_spec
        self.supports_check_mode = supports_check_mode
        self.kwargs = kwargs
        self.params = dict((k, None) for k in argument_spec)
        self.params.update(purge=False, state="present")
        self.params.update(self.PARAMS)
        self.check_mode = self.CHECK
        self._diff = self.DIFF
        FakeAnsibleModule.built.append(self)

    def fail_json(self, msg, **kwargs):
        raise Failed(msg, **kwargs)

    def exit_json(self, **result):
        raise Exited(result)


class FakeClient(object):
    def __init__(self, entries, fail_on=None, visible_error=None):
        self.entries = entries
        self.calls = []
        self.fail_on = fail_on or {}
        self.visible_error = visible_error

    def get(self, path, what=None, **params):
        self.calls.append(("get", path, what, params))
        return self.entries

    def _write(self, method, path, what, params):
        self.calls.append((method, path, what, params))
        if (method, path) in self.fail_on:
            raise ProxmoxError(self.fail_on[(method, path)], status=500)

    def post(self, path, what=None, **params):
        self._write("post", path, what, params)

    def put(self, path, what=None, **params):
        self._write("put", path, what, params)

    def delete(self, path, what=None, **params):
        self._write("delete", path, what, params)

    def require_visible(self, path, privileges, what):
        self.calls.append(("visible", path, privileges, what))
        if self.visible_error:
            raise ProxmoxError(self.visible_error, status=403)


class Thing(pl.CollectionManager):
    kind = "thing"
    path = "cluster/things"
    id_key = "name"
    list_key = "things"
    result_key = "thing"
    item_options = dict(name=dict(type="str"), size=dict(type="int"), secret=dict(type="str", no_log=True))
    secret_params = ("secret",)
    log = []

    def check_item(self, item):
        name = item.get("name") or item.get("storage")
        Thing.log.append(("check", name))
        if item.get("size") is not None and item["size"] < 0:
            raise ProxmoxError("thing %s: size must be 0 or more" % name, status=400)

    def prepare(self, items, current):
        Thing.log.append(("prepare", [i.get("name") or i.get("storage") for i in items], sorted(current)))

    def plan_present(self, item, entry):
        params = dict((k, item[k]) for k in ("size", "secret") if item.get(k) is not None)
        if entry is None:
            return pl.Change(item["name"], "create", params=params, after=params)
        changed = dict((k, v) for k, v in params.items() if str(entry.get(k)) != str(v))
        if not changed:
            return None
        return pl.Change(item["name"], "update", params=changed, before=dict((k, entry.get(k)) for k in changed),
                         after=changed)

    def verify(self, changes):
        Thing.log.append(("verify", [(c.item_id, c.action) for c in changes]))

    def extra_results(self, result, entries, changes):
        result["count"] = len(entries)


class Storage(Thing):
    kind = "storage"
    path = "storage"
    id_key = "storage"
    list_key = "storages"
    result_key = "storage"
    item_options = dict(storage=dict(type="str"), size=dict(type="int"))

    def plan_present(self, item, entry):
        item = dict(item, name=item["storage"])
        return Thing.plan_present(self, item, entry)


ENTRIES = [{"name": "a", "size": 1, "digest": "d1"}, {"name": "b", "size": 2, "digest": "d2"}]


@pytest.fixture
def engine(monkeypatch):
    """``engine(manager_cls, params, entries, check=False, diff=False, **client_options) -> (outcome, client, module)``
    where outcome is an Exited or Failed."""
    monkeypatch.setattr(pl, "AnsibleModule", FakeAnsibleModule)
    Thing.log = []
    FakeAnsibleModule.built = []

    def run(manager_cls, params, entries=None, check=False, diff=False, **client_options):
        client = FakeClient(list(entries if entries is not None else ENTRIES), **client_options)

        class Client(object):
            @classmethod
            def from_module(cls, module):
                return client

        monkeypatch.setattr(pl, "ProxmoxClient", Client)
        monkeypatch.setattr(FakeAnsibleModule, "PARAMS", params)
        monkeypatch.setattr(FakeAnsibleModule, "CHECK", check)
        monkeypatch.setattr(FakeAnsibleModule, "DIFF", diff)
        try:
            pl.run_collection_module(manager_cls, wait=dict(type="bool", default=True))
        except (Exited, Failed) as outcome:
            return outcome, client, FakeAnsibleModule.built[-1]
        raise AssertionError("the module neither exited nor failed")

    return run


def writes(client):
    return [c for c in client.calls if c[0] in ("post", "put", "delete")]


# ------------------------------------------------------------------------------ run_collection_module
def test_single_mode_create_reads_once_and_writes_once(engine):
    outcome, client, module = engine(Thing, dict(name="c", size=3, secret="s3cret"))
    assert isinstance(outcome, Exited)
    assert module.supports_check_mode is True
    assert module.argument_spec == pl.collection_argument_spec(Thing, wait=dict(type="bool", default=True))
    assert module.kwargs == pl.collection_module_kwargs(Thing)
    assert client.calls == [("get", "cluster/things", "the thing configuration", {}),
                            ("post", "cluster/things", "creating thing c", {"size": 3, "secret": "s3cret", "name": "c"})]
    assert outcome.result == {
        "changed": True, "count": 1,
        "changes": [{"id": "c", "action": "create", "params": {"size": 3, "secret": "********"}}],
        "thing": {"size": 3, "secret": "s3cret", "name": "c"}}
    assert Thing.log == [("check", "c"), ("prepare", ["c"], ["a", "b"]), ("verify", [("c", "create")])]


def test_single_mode_no_change_writes_nothing_and_returns_the_public_entry(engine):
    outcome, client, module = engine(Thing, dict(name="a", size=1), diff=True)
    assert outcome.result == {"changed": False, "changes": [], "thing": {"name": "a", "size": 1}, "count": 1,
                              "diff": {"before": {}, "after": {}}}
    assert writes(client) == []


def test_single_mode_update_with_diff(engine):
    outcome, client, module = engine(Thing, dict(name="b", size=5), diff=True)
    assert writes(client) == [("put", "cluster/things/b", "updating thing b", {"size": 5})]
    assert outcome.result["thing"] == {"name": "b", "size": 5}
    assert outcome.result["diff"] == {"before": {"size": 2}, "after": {"size": 5}}
    assert outcome.result["changes"] == [{"id": "b", "action": "update", "params": {"size": 5}}]


def test_single_mode_absent_deletes_and_a_missing_one_is_a_no_op(engine):
    outcome, client, module = engine(Thing, dict(name="a", state="absent"), diff=True)
    assert writes(client) == [("delete", "cluster/things/a", "removing thing a", {})]
    assert outcome.result["thing"] == {} and outcome.result["changed"] is True
    assert outcome.result["diff"] == {"before": {"name": "a", "size": 1}, "after": {}}
    assert outcome.result["count"] == 0
    outcome, client, module = engine(Thing, dict(name="zz", state="absent"))
    assert writes(client) == [] and outcome.result["changed"] is False and outcome.result["changes"] == []


def test_check_mode_plans_but_writes_nothing(engine):
    outcome, client, module = engine(Thing, dict(name="c", size=3), check=True)
    assert writes(client) == [] and outcome.result["changed"] is True
    assert outcome.result["thing"] == {"size": 3, "name": "c"}


def test_list_mode_with_purge_and_state_defaults(engine):
    params = dict(things=[dict(name="b", size=2), dict(name="c", size=4), dict(name="d", state="absent")], purge=True,
                  state="present")
    outcome, client, module = engine(Thing, params, diff=True)
    assert writes(client) == [("post", "cluster/things", "creating thing c", {"size": 4, "name": "c"}),
                              ("delete", "cluster/things/a", "removing thing a", {})]
    assert outcome.result["things"] == [{"name": "b", "size": 2}, {"size": 4, "name": "c"}]
    assert outcome.result["diff"] == {"before": {"c": {}, "a": {"name": "a", "size": 1}},
                                      "after": {"c": {"size": 4}, "a": {}}}
    assert [c["id"] for c in outcome.result["changes"]] == ["c", "a"]
    assert Thing.log[0:3] == [("check", "b"), ("check", "c"), ("check", "d")]


def test_list_mode_entries_take_the_top_level_state(engine):
    outcome, client, module = engine(Thing, dict(things=[dict(name="a"), dict(name="b", state="present")],
                                                 state="absent"))
    assert writes(client) == [("delete", "cluster/things/a", "removing thing a", {})]
    assert outcome.result["things"] == [{"name": "b", "size": 2}]


def test_list_mode_without_purge_leaves_the_others(engine):
    outcome, client, module = engine(Thing, dict(things=[dict(name="c", size=4)]))
    assert [w[0] for w in writes(client)] == ["post"]


def test_an_id_listed_twice_fails_before_connecting(engine):
    outcome, client, module = engine(Thing, dict(things=[dict(name="a"), dict(name="b"), dict(name="a", size=3)]))
    assert isinstance(outcome, Failed)
    assert outcome.msg == "thing a is listed twice in things; merge the entries into one"
    assert client.calls == []


def test_an_input_problem_fails_before_the_read_and_any_write(engine):
    outcome, client, module = engine(Thing, dict(things=[dict(name="c", size=4), dict(name="e", size=-1)]))
    assert isinstance(outcome, Failed)
    assert outcome.msg == "thing e: size must be 0 or more" and outcome.kwargs == {"status": 400}
    assert client.calls == []


def test_a_write_error_names_what_was_already_applied(engine):
    params = dict(things=[dict(name="c", size=4), dict(name="d", size=5), dict(name="e", size=6)])
    outcome, client, module = engine(Thing, params, fail_on={("post", "cluster/things"): "boom"})
    assert isinstance(outcome, Failed)
    assert outcome.msg == "boom (already applied in this run: nothing)"
    assert outcome.kwargs == {"status": 500, "changed": False, "changes": []}
    outcome, client, module = engine(Thing, dict(things=[dict(name="b", size=9), dict(name="c", size=4)]),
                                     fail_on={("post", "cluster/things"): "storage full"})
    assert outcome.msg == "storage full (already applied in this run: update b)"
    assert outcome.kwargs == {"status": 500, "changed": True,
                              "changes": [{"id": "b", "action": "update", "params": {"size": 9}}]}
    outcome, client, module = engine(Thing, dict(things=[dict(name="a", size=8), dict(name="b", size=9),
                                                         dict(name="c", size=4)]),
                                     fail_on={("post", "cluster/things"): "x"})
    assert outcome.msg == "x (already applied in this run: update a, update b)"


def test_creating_a_storage_first_checks_that_it_is_not_only_hidden(engine):
    outcome, client, module = engine(Storage, dict(storage="nfs", size=3), entries=[])
    assert client.calls[1] == ("visible", "/storage/nfs", ("Datastore.Audit", "Datastore.AllocateSpace"),
                               "storage nfs")
    assert writes(client) == [("post", "storage", "creating storage nfs", {"size": 3, "storage": "nfs"})]
    outcome, client, module = engine(Storage, dict(storage="nfs", size=3), entries=[],
                                     visible_error="missing privilege")
    assert isinstance(outcome, Failed) and outcome.msg == "missing privilege" and outcome.kwargs == {"status": 403}
    assert writes(client) == []
    outcome, client, module = engine(Storage, dict(storage="nfs", size=3),
                                     entries=[{"storage": "nfs", "size": 1}])
    assert [c[0] for c in client.calls] == ["get", "put"]  # an update needs no visibility check
    outcome, client, module = engine(Thing, dict(name="c", size=3))
    assert "visible" not in [c[0] for c in client.calls]  # only storages and PCI mappings are filtered


def test_pci_mapping_visibility_path():
    assert pl.VISIBLE_WITH["cluster/mapping/pci"] == ("/mapping/pci/%s", ("Mapping.Audit", "Mapping.Use",
                                                                          "Mapping.Modify"))


# ------------------------------------------------------------------------------ manager defaults
class Bare(pl.CollectionManager):
    path = "cluster/bare"


def test_collection_manager_defaults():
    client = FakeClient([{"id": 7, "x": 1}, {"id": "b", "x": 2}])
    manager = Bare(module="m", client=client)
    assert (manager.module, manager.client) == ("m", client)
    assert (pl.CollectionManager.kind, pl.CollectionManager.path, pl.CollectionManager.id_key) == ("entry", "", "id")
    assert (pl.CollectionManager.list_key, pl.CollectionManager.result_key) == ("items", "item")
    assert pl.CollectionManager.item_options == {} and pl.CollectionManager.secret_params == ()
    assert manager.what("x") == "entry x"
    assert manager.item_path("x") == "cluster/bare/x"
    assert manager.read() == {"7": {"id": 7, "x": 1}, "b": {"id": "b", "x": 2}}
    assert client.calls == [("get", "cluster/bare", "the entry configuration", {})]
    assert Bare(None, FakeClient(None)).read() == {}
    assert manager.check_item({}) is None and manager.prepare([], {}) is None and manager.verify([]) is None
    assert manager.extra_results({}, [], []) is None
    with pytest.raises(NotImplementedError):
        manager.plan_present({}, None)
    assert manager.plan_absent("x", None) is None
    change = manager.plan_absent("b", {"id": "b", "x": 2, "digest": "d"})
    assert (change.item_id, change.action, change.before, change.params) == ("b", "delete", {"id": "b", "x": 2}, {})
    assert manager.public({"a": 1, "digest": "d"}) == {"a": 1}


def test_collection_manager_apply():
    client = FakeClient([])
    manager = Bare(None, client)
    manager.apply(pl.Change("n", "create", params=dict(x=1, flag=True)))
    manager.apply(pl.Change("n", "update", params=dict(x=2), delete=["y", "z"]))
    manager.apply(pl.Change("n", "delete"))
    assert client.calls == [("post", "cluster/bare", "creating entry n", {"x": 1, "flag": 1, "id": "n"}),
                            ("put", "cluster/bare/n", "updating entry n", {"x": 2, "delete": "y,z"}),
                            ("delete", "cluster/bare/n", "removing entry n", {})]


def test_change_defaults():
    change = pl.Change("a", "delete")
    assert (change.params, change.delete, change.before, change.after) == ({}, [], {}, {})
    assert change.as_result() == {"id": "a", "action": "delete", "params": {}}


# ------------------------------------------------------------------------------ ItemSpec.module
def test_item_spec_module_requires_the_identity_or_the_list(monkeypatch):
    monkeypatch.setattr(pl, "AnsibleModule", FakeAnsibleModule)
    spec = pl.ItemSpec(kind="group", list_name="groups", identity="name",
                       options=dict(name=dict(type="str", required=True), nodes=dict(type="list", default=[])))
    module = spec.module(timeout=dict(type="int", default=5))
    assert module.supports_check_mode is True
    assert module.argument_spec == spec.argument_spec(timeout=dict(type="int", default=5))
    assert set(module.argument_spec) == set(PROXMOX_CONNECTION_SPEC) | {"name", "nodes", "groups", "purge", "timeout"}
    assert module.kwargs["required_one_of"][-1] == ("name", "groups")
    assert ("api_password", "api_token_secret") in module.kwargs["required_one_of"]
    assert module.kwargs["mutually_exclusive"] == [("api_password", "api_token_secret")]
    assert spec.key({"name": "g"}) == "g"


def test_item_spec_required_one_of_group_extends_the_identity():
    spec = pl.ItemSpec(kind="resource", list_name="resources", identity="sid",
                       options=dict(sid=dict(type="str"), vmid=dict(type="int")),
                       rules=dict(required_one_of=[("other", "x"), ("sid", "vmid")]))
    assert spec._required_one() == ("sid", "vmid", "resources")
    plain = pl.ItemSpec(kind="rule", list_name="rules", identity="rule", options=dict(rule=dict(type="str")),
                        rules=dict(required_one_of=[("a", "b")]))
    assert plain._required_one() == ("rule", "rules")
    assert plain.rules == dict(required_one_of=[("a", "b")])
    assert pl.ItemSpec("k", "l", "i", {}).rules == {} and pl.ItemSpec("k", "l", "i", {}).check is None


class FakeItemModule(object):
    def __init__(self, **params):
        self.params = params

    def fail_json(self, msg, **kwargs):
        raise Failed(msg, **kwargs)


def test_item_spec_items_drop_unset_and_unknown_keys_and_name_list_items():
    spec = pl.ItemSpec(kind="group", list_name="groups", identity="name",
                       options=dict(name=dict(type="str", required=True), size=dict(type="int", default=1)),
                       check=lambda item: "size too big" if item["size"] > 9 else None)
    items, list_mode = spec.items(FakeItemModule(name=None, size=None, purge=False,
                                                 groups=[dict(name="a", size=None, other=1)]))
    assert list_mode is True and items == [dict(name="a", size=1)]
    with pytest.raises(Failed) as raised:
        spec.items(FakeItemModule(name=None, size=None, purge=False, groups=[dict(name="a"), dict(name="b", size=10)]))
    assert raised.value.msg == "groups[1] (b): size too big"
    with pytest.raises(Failed) as raised:
        spec.items(FakeItemModule(name="a", size=10, purge=False, groups=None))
    assert raised.value.msg == "group: size too big"
    with pytest.raises(Failed) as raised:
        spec.items(FakeItemModule(name=None, size=None, purge=False, groups=[dict(name="a", size="x")]))
    assert raised.value.msg.startswith("groups[0] (a): ") and "size" in raised.value.msg
    with pytest.raises(Failed) as raised:
        spec.items(FakeItemModule(name=None, size=None, purge=False, groups=[dict(size=2), dict(name="a")]))
    assert raised.value.msg == "groups[0]: missing required arguments: name"
    with pytest.raises(Failed) as raised:
        spec.items(FakeItemModule(name="a", size=3, purge=False, groups=[dict(name="a")]))
    assert raised.value.msg == ("group: set name, size inside each item of groups, not next to the list (list mode "
                                "takes only groups and purge)")
    with pytest.raises(Failed) as raised:
        spec.items(FakeItemModule(name="a", size=None, purge=True, groups=None))
    assert raised.value.msg == "group: purge needs list mode: give the complete list in groups"
    items, list_mode = spec.items(FakeItemModule(name=None, size=None, purge=False, groups=[dict(name="z")]))
    assert items == [dict(name="z", size=1)]
    with pytest.raises(Failed) as raised:
        spec.items(FakeItemModule(name=None, size=None, purge=False, groups=[dict(name="a"), dict(name="a")]))
    assert raised.value.msg == "groups[1]: group a is listed twice; list each object once"


def test_item_spec_items_accept_an_empty_item():
    spec = pl.ItemSpec(kind="group", list_name="groups", identity="name", options=dict(name=dict(type="str")))
    items, list_mode = spec.items(FakeItemModule(name=None, purge=False, groups=[None]))
    assert items == [dict(name=None)] and list_mode is True


# ------------------------------------------------------------------------------ prune options
def test_prune_keys_and_options():
    assert pl.PRUNE_KEYS == ("keep_all", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
                             "keep_yearly")
    assert pl.PRUNE_OPTIONS == dict(keep_all=dict(type="bool"), keep_last=dict(type="int"),
                                    keep_hourly=dict(type="int"), keep_daily=dict(type="int"),
                                    keep_weekly=dict(type="int"), keep_monthly=dict(type="int"),
                                    keep_yearly=dict(type="int"))
    assert pl.STATES == ["present", "absent"]


def test_prune_to_pve_all_keys_in_order_and_messages():
    retention = dict(keep_yearly=1, keep_monthly=2, keep_weekly=3, keep_daily=4, keep_hourly=5, keep_last=6)
    assert pl.prune_to_pve(retention, "job x") == ("keep-last=6,keep-hourly=5,keep-daily=4,keep-weekly=3,"
                                                   "keep-monthly=2,keep-yearly=1")
    assert pl.prune_to_pve(dict(keep_all=False, keep_last=1), "job x") == "keep-all=0,keep-last=1"
    with pytest.raises(ProxmoxError) as raised:
        pl.prune_to_pve({}, "job x")
    assert raised.value.msg == "job x: prune_backups needs at least one keep_* setting, for example keep_last: 3"
    with pytest.raises(ProxmoxError) as raised:
        pl.prune_to_pve(dict(keep_all=True, keep_weekly=2, keep_daily=1), "job x")
    assert raised.value.msg == ("job x: prune_backups keep_all: true keeps every backup and cannot be combined with "
                                "keep_daily, keep_weekly; remove one of them")
    with pytest.raises(ProxmoxError) as raised:
        pl.prune_to_pve(dict(keep_last=2, keep_daily=-1), "job x")
    assert raised.value.msg == ("job x: prune_backups keep_daily must be 1 or more (got -1); leave it out to not keep "
                                "by that interval")
    assert pl.prune_to_pve(dict(keep_last=1), "job x") == "keep-last=1"


def test_parse_prune_and_key():
    assert pl.parse_prune("keep-all, keep-last = 3,") == {"keep-all": "1", "keep-last": "3"}
    assert pl.parse_prune(None) == {}
    assert pl.prune_key("keep-last=3,keep-all=1") == [("keep-all", "1"), ("keep-last", "3")]
    assert pl.prune_key("") == []
