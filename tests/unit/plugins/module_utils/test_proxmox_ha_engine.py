"""module_utils/_proxmox_ha.py run whole with a fake AnsibleModule and an in-memory client: the
checks, the feasibility rules of PVE 9, the group-migration check, and the three planners (groups,
rules, resources) through run_ha_module, with exact calls, results and messages so that a changed
condition or constant fails a test (``make mutation``)."""

import copy

import pytest

from ansible_collections.ailab.cluster.plugins.module_utils import _proxmox_ha as ha
from ansible_collections.ailab.cluster.plugins.module_utils import _proxmox_list as pl
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxError
from unit.plugins.module_utils.module_fakes import Exited, Failed


class FakeModule(object):
    PARAMS = {}
    CHECK = False
    DIFF = False

    def __init__(self, argument_spec=None, supports_check_mode=False, **kwargs):
        self.params = dict((k, v.get("default")) for k, v in argument_spec.items())
        self.params.update(self.PARAMS)
        self.check_mode = self.CHECK
        self._diff = self.DIFF
        self.warnings = []

    def fail_json(self, msg, **kwargs):
        raise Failed(msg, warnings=list(self.warnings), **kwargs)

    def exit_json(self, **result):
        result["warnings"] = list(self.warnings)
        raise Exited(result)

    def warn(self, msg):
        self.warnings.append(msg)


class FakeClient(object):
    """GETs answer from ``data`` (a list per call when it is a list of answers); writes are recorded."""

    def __init__(self, major=9, groups=(), rules=(), resources=(), guests=(), nodes=("pve-1", "pve-2"),
                 offline=(), status=None, answers=None):
        self.major = major
        self.version = {"version": "%d.1.2" % major}
        cluster = [dict(type="node", node=n, status="offline" if n in offline else "online") for n in nodes]
        cluster += [dict(g) for g in guests]
        self.data = {"cluster/ha/groups": list(groups), "cluster/ha/rules": list(rules),
                     "cluster/ha/resources": list(resources), "cluster/resources": cluster,
                     "cluster/ha/status/current": status if status is not None else []}
        self.answers = answers or {}
        self.calls = []
        self.answer_if = {}

    def get(self, path, what=None, answer_if=None, **params):
        self.calls.append(("get", path, what))
        self.answer_if[path] = answer_if
        value = self.data[path]
        if isinstance(value, tuple):  # successive answers
            value, rest = value[0], value[1:]
            self.data[path] = rest if len(rest) > 1 else rest[0]
        if isinstance(value, Exception):
            raise value
        return copy.deepcopy(value)

    def _write(self, method, path, what, params):
        self.calls.append((method, path, what, params))
        answer = self.answers.get((method, path))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def post(self, path, what=None, **params):
        return self._write("post", path, what, params)

    def put(self, path, what=None, **params):
        return self._write("put", path, what, params)

    def delete(self, path, what=None, **params):
        return self._write("delete", path, what, params)

    def writes(self):
        return [c for c in self.calls if c[0] != "get"]

    def reads(self):
        return [c[1] for c in self.calls if c[0] == "get"]


def vm(vmid, node="pve-1", kind="qemu"):
    return dict(type=kind, vmid=vmid, node=node)


OPTIONS = {
    ha.GroupPlanner: {},
    ha.RulePlanner: dict(planned_resources=dict(type="list", elements="str", default=[]),
                         planned_groups=dict(type="list", elements="dict", default=[]),
                         planned_members=dict(type="list", elements="dict", default=[])),
    ha.ResourcePlanner: dict(wait_timeout=dict(type="int", default=300),
                             planned_guests=dict(type="list", elements="int", default=[]),
                             planned_groups=dict(type="list", elements="dict", default=[])),
}


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setattr(pl, "AnsibleModule", FakeModule)

    def run(planner, client, check=False, diff=False, **params):
        monkeypatch.setattr(FakeModule, "PARAMS", params)
        monkeypatch.setattr(FakeModule, "CHECK", check)
        monkeypatch.setattr(FakeModule, "DIFF", diff)
        monkeypatch.setattr(ha.ProxmoxClient, "from_module", classmethod(lambda cls, module: client))
        with pytest.raises((Exited, Failed)) as raised:
            ha.run_ha_module(planner, **OPTIONS[planner])
        if isinstance(raised.value, Exited):
            return raised.value.result
        return dict(failed=True, msg=raised.value.msg, **raised.value.kwargs)

    return run


# ------------------------------------------------------------------ small helpers
def test_node_helpers():
    assert ha.group_rule_id("gpu") == "ha-group-gpu"
    assert ha.node_priorities("pve-1:2,pve-2") == {"pve-1": 2, "pve-2": 0}
    assert ha.node_priorities("pve-1:x") == {"pve-1": 0}
    assert ha.canonical_nodes("pve-2,pve-1:2") == "pve-1:2,pve-2:0"
    assert ha.check_nodes([]) == "nodes must name at least one node"
    assert ha.check_nodes(["pve-1:2", "pve-2"]) is None
    assert ha.check_nodes(["bad_name", "pve-1:a"]) == (
        "nodes must be node names with an optional priority (node[:prio], for example pve-1:2), got bad_name, "
        "pve-1:a")
    assert ha.check_nodes(["pve-1:1", "pve-1:2", "pve-2", "pve-2"]) == "nodes names a node twice: pve-1, pve-2"


def test_sid_and_configid_checks():
    assert ha.check_sids(["vm:100", "ct:101"]) is None
    assert ha.check_sids(["vm:99", "x:100"]) == "resources must be HA resource ids like vm:100 or ct:101, got vm:99, x:100"
    assert ha.check_sids(["vm:100", "vm:100"], "sid") == "sid lists a resource twice"
    assert ha.check_configid("ab", "name") is None
    assert ha.check_configid("a", "name") == "name must start with a letter and hold at least two letters, digits, " \
        "'-' or '_', got 'a'"
    assert ha.check_configid(None, "group").endswith("got None")
    assert ha.check_configid("1a", "name") is not None


def test_enable_with_delete():
    assert ha.enable_with_delete({"disable": 0, "nodes": "pve-1"}) == {"nodes": "pve-1", "delete": "disable"}
    assert ha.enable_with_delete({"disable": 0, "delete": "comment"}) == {"delete": "comment,disable"}
    assert ha.enable_with_delete({"disable": 1}) == {"disable": 1}
    assert ha.enable_with_delete({}) == {}


def test_write_runs_then_with_the_answer():
    client = FakeClient(answers={("post", "x"): {"ok": 1}})
    seen = []
    write = ha.Write(ha.MOVES, "post", "x", "thing", {"a": 1}, then=lambda c, answer: seen.append((c, answer)))
    assert write.run(client) == {"ok": 1}
    assert seen == [(client, {"ok": 1})] and client.calls == [("post", "x", "thing", {"a": 1})]
    assert ha.Write(ha.GROUPS, "delete", "y", "other").run(client) is None
    assert ha.DELETE_RESOURCES < ha.RESOURCES < ha.GROUPS < ha.RULES_DELETE < ha.RULES_SHRINK < ha.RULES_GROW \
        < ha.FAILBACK < ha.MOVES


def test_ha_state_reads_each_collection_once():
    client = FakeClient(groups=[{"group": "g1", "nodes": "pve-1"}], guests=[vm(100)], offline=("pve-2",))
    state = ha.HAState(client)
    assert state.groups() == {"g1": {"group": "g1", "nodes": "pve-1"}}
    assert state.groups() is state.groups()
    guests, nodes = state.cluster()
    assert guests == {100: vm(100)} and nodes == {"pve-1": True, "pve-2": False}
    assert state.cluster() is state.cluster()
    assert client.reads() == ["cluster/ha/groups", "cluster/resources"]


# ------------------------------------------------------------------ feasibility (pve-ha-manager)
def na(nodes, resources, **extra):
    return dict(type="node-affinity", nodes=nodes, resources=resources, **extra)


def ra(affinity, resources, **extra):
    return dict(type="resource-affinity", affinity=affinity, resources=resources, **extra)


NODES = ["pve-1", "pve-2"]


def test_feasible_rules_have_no_conflicts():
    rules = {"pin": na("pve-1", "vm:100"), "apart": ra("negative", "vm:100,vm:101"),
             "off": ra("negative", "vm:1,vm:2,vm:3", disable=1), "together": ra("positive", "vm:102,vm:103")}
    assert ha.rule_conflicts(rules, NODES) == []


def test_a_resource_in_two_node_affinity_rules():
    rules = {"a": na("pve-1", "vm:100"), "b": na("pve-2", "vm:100,vm:101"), "c": na("pve-2", "vm:100", disable="1")}
    assert ha.rule_conflicts(rules, NODES) == [(["a", "b"], "HA resource vm:100 would be in two enabled node-affinity "
                                                "rules, a and b: Proxmox VE 9 allows one; remove it from one of them "
                                                "or disable one")]


def test_resource_affinity_counts():
    rules = {"one": ra("positive", "vm:100"), "three": ra("negative", "vm:100,vm:101,vm:102"),
             "two": ra("negative", "vm:103,vm:104")}
    assert ha.rule_conflicts(rules, NODES) == [
        (["one"], "resource-affinity rule one names fewer than two resources, so Proxmox VE 9 finds it ineffective; "
                  "name two or more"),
        (["three"], "negative resource-affinity rule three keeps 3 resources apart (vm:100, vm:101, vm:102) but the "
                    "cluster has 2 nodes; name at most 2")]
    assert ha.rule_conflicts(rules, NODES + ["pve-3"]) == ha.rule_conflicts({"one": rules["one"]}, NODES)


def test_positive_and_negative_sharing_two_resources():
    rules = {"p": ra("positive", "vm:100,vm:101,vm:102"), "n": ra("negative", "vm:101,vm:100"),
             "m": ra("negative", "vm:102,vm:103")}
    assert ha.rule_conflicts(rules, NODES) == [
        (["p", "n"], "resource-affinity rules p (positive) and n (negative) both name vm:100, vm:101: they cannot be "
                     "kept together and apart; remove them from one rule")]


def test_resource_affinity_over_several_priorities():
    rules = {"lab": na("pve-1:2,pve-2:1", "vm:201,vm:202,vm:203"), "apart": ra("negative", "vm:201,vm:202"),
             "same": na("pve-1:1,pve-2:1", "vm:300"), "near": ra("positive", "vm:300,vm:301")}
    assert ha.rule_conflicts(rules, NODES) == [
        (["apart", "lab"], "resource-affinity rule apart names vm:201, vm:202, which node-affinity rule lab gives "
                           "nodes of several priorities (pve-1:2,pve-2:1): Proxmox VE 9 refuses a resource-affinity "
                           "rule over resources of a node-affinity rule with more than one priority; give lab one "
                           "priority for all its nodes or take those resources out of apart")]


def test_positive_rules_over_several_node_affinity_rules():
    rules = {"p1": ra("positive", "vm:100,vm:101"), "p2": ra("positive", "vm:101,vm:102"),
             "a": na("pve-1", "vm:100"), "b": na("pve-2", "vm:102")}
    assert ha.rule_conflicts(rules, NODES) == [
        (["p1", "p2", "a", "b"], "positive resource-affinity rules p1 and p2 keep vm:100, vm:101, vm:102 together, "
                                 "but they are in several node-affinity rules (a, b); Proxmox VE 9 allows one: put "
                                 "them in one rule")]
    single = {"p1": rules["p1"], "a": rules["a"], "c": na("pve-2", "vm:101")}
    assert ha.rule_conflicts(single, NODES) == [
        (["p1", "a", "c"], "positive resource-affinity rule p1 keeps vm:100, vm:101 together, but they are in several "
                           "node-affinity rules (a, c); Proxmox VE 9 allows one: put them in one rule")]


def test_negative_rule_restricted_to_too_few_nodes():
    rules = {"n": ra("negative", "vm:100,vm:101"), "a": na("pve-1", "vm:100"), "b": na("pve-1", "vm:101")}
    assert ha.rule_conflicts(rules, NODES) == [
        (["n", "a", "b"], "negative resource-affinity rule n keeps vm:100, vm:101 apart, but node-affinity rules a, b "
                          "allow only 1 node (pve-1) for them; allow more nodes or keep fewer apart")]
    three = {"n": ra("negative", "vm:100,vm:101,vm:102"), "a": na("pve-1,pve-2", "vm:100,vm:101,vm:102")}
    assert ha.rule_conflicts(three, ["pve-1", "pve-2", "pve-3"]) == [
        (["n", "a"], "negative resource-affinity rule n keeps vm:100, vm:101, vm:102 apart, but node-affinity rule a "
                     "allows only 2 nodes (pve-1, pve-2) for them; allow more nodes or keep fewer apart")]
    enough = {"n": ra("negative", "vm:100,vm:101"), "a": na("pve-1,pve-2", "vm:100,vm:101")}
    assert ha.rule_conflicts(enough, NODES) == []


def test_check_feasible_reports_only_conflicts_of_touched_rules():
    rules = {"lab": na("pve-1:2,pve-2:1", "vm:201,vm:202"), "apart": ra("negative", "vm:201,vm:202")}
    ha.check_feasible(rules, NODES, ["other"])
    with pytest.raises(ProxmoxError) as raised:
        ha.check_feasible(rules, NODES, ["lab"])
    assert raised.value.msg.startswith("HA rules apart, lab cannot hold together: resource-affinity rule apart")


# ------------------------------------------------------------------ group migration (PVE 9 upgraded from 8)
def test_unmigrated_groups():
    assert ha.unmigrated_groups(FakeClient(groups=[{"group": "b"}, {"group": "a"}])) == ["a", "b"]
    assert ha.unmigrated_groups(FakeClient(groups=[])) == []
    client = FakeClient()
    client.data["cluster/ha/groups"] = ProxmoxError("cannot index groups: ha groups have been migrated", status=500)
    assert ha.unmigrated_groups(client) == []
    assert client.answer_if == {"cluster/ha/groups": "migrated"}  # that 500 is PVE 9's answer: never retried
    for error in (ProxmoxError("no such thing", status=500), ProxmoxError("migrated", status=403)):
        client.data["cluster/ha/groups"] = error
        with pytest.raises(ProxmoxError):
            ha.unmigrated_groups(client)


def test_check_groups_migrated():
    pve8 = FakeClient(major=8, groups=[{"group": "a"}])
    ha.check_groups_migrated(pve8)
    assert pve8.calls == []
    ha.check_groups_migrated(FakeClient(groups=[]))
    with pytest.raises(ProxmoxError) as raised:
        ha.check_groups_migrated(FakeClient(groups=[{"group": "lab"}, {"group": "gpu"}]))
    assert raised.value.msg.startswith("this Proxmox VE 9.1.2 cluster was upgraded from 8 and its HA manager has not "
                                       "migrated the HA groups (gpu, lab) to HA rules yet")


# ------------------------------------------------------------------ groups
def test_pve8_group_created_updated_unchanged_and_deleted(run):
    client = FakeClient(major=8, groups=[
        {"group": "old", "nodes": "pve-1", "comment": "x"},
        {"group": "same", "nodes": "pve-2:1,pve-1:2", "restricted": 1},
        {"group": "gone", "nodes": "pve-1"}])
    groups = [dict(name="new", nodes=["pve-1:2", "pve-2"], restricted=True, comment="c"),
              dict(name="old", nodes=["pve-2"], comment=""),
              dict(name="same", nodes=["pve-1:2", "pve-2:1"], restricted=True),
              dict(name="gone", state="absent"), dict(name="never", state="absent")]
    result = run(ha.GroupPlanner, client, diff=True, groups=groups)
    assert [(r["name"], r["action"]) for r in result["groups"]] == [
        ("new", "created"), ("old", "updated"), ("same", "unchanged"), ("gone", "deleted"), ("never", "absent")]
    assert client.writes() == [
        ("post", "cluster/ha/groups", "HA group new", dict(group="new", nodes="pve-1:2,pve-2", restricted=True,
                                                           nofailback=None, comment="c")),
        ("put", "cluster/ha/groups/old", "HA group old", {"nodes": "pve-2", "delete": "comment"}),
        ("delete", "cluster/ha/groups/gone", "HA group gone", {})]
    assert result["changed"] is True
    assert result["groups"][0]["config"] == dict(name="new", nodes=["pve-1:2", "pve-2"], restricted=True,
                                                 nofailback=False, comment="c")
    assert result["diff"]["before"]["old"] == dict(name="old", nodes=["pve-1"], restricted=False, nofailback=False,
                                                   comment="x")
    assert sorted(result["diff"]["after"]) == ["new", "old"]


def test_pve8_group_check_mode_writes_nothing_and_purge_deletes_unlisted(run):
    client = FakeClient(major=8, groups=[{"group": "ga", "nodes": "pve-1"}, {"group": "gb", "nodes": "pve-1"}])
    result = run(ha.GroupPlanner, client, check=True, groups=[dict(name="ga", nodes=["pve-1"])], purge=True)
    assert result["changed"] is True and client.writes() == []
    assert [(r["name"], r["action"]) for r in result["groups"]] == [("ga", "unchanged"), ("gb", "deleted")]
    result = run(ha.GroupPlanner, client, name="ga", nodes=["pve-1"])
    assert result["changed"] is False and result["action"] == "unchanged" and result["group"]["name"] == "ga"


def test_pve8_group_in_use_and_unknown_node_are_refused(run):
    client = FakeClient(major=8, groups=[{"group": "ga", "nodes": "pve-1"}],
                        resources=[{"sid": "vm:100", "group": "ga"}, {"sid": "vm:101", "group": "ga"}])
    result = run(ha.GroupPlanner, client, name="ga", state="absent")
    assert result["msg"] == ("HA group ga is still used by vm:100, vm:101: move those resources to another group or "
                             "remove the group from them (ailab.cluster.proxmox_ha_resource group: '') before "
                             "deleting it")
    assert result["completed"] == [] and client.writes() == []
    result = run(ha.GroupPlanner, client, name="gb", nodes=["pve-9", "pve-1"])
    assert result["msg"] == "HA group gb names pve-9, which is not a node of this cluster (nodes: pve-1, pve-2)"
    result = run(ha.GroupPlanner, client, name="ga", nodes=["pve-8", "pve-9"])
    assert result["msg"] == "HA group ga names pve-8, pve-9, which are not a node of this cluster (nodes: pve-1, pve-2)"


def test_pve9_groups_are_rules(run):
    client = FakeClient(rules=[
        dict(rule="ha-group-gpu", type="node-affinity", nodes="pve-1", resources="vm:100,vm:101", disable=1),
        dict(rule="ha-group-stale", type="node-affinity", nodes="pve-1", resources="vm:102"),
        dict(rule="other", type="resource-affinity", affinity="positive", resources="vm:1,vm:2")],
        resources=[{"sid": "vm:100", "failback": 0}, {"sid": "vm:101"}])
    groups = [dict(name="gpu", nodes=["pve-2:2", "pve-1"], restricted=True, nofailback=True),
              dict(name="later", nodes=["pve-1"])]
    result = run(ha.GroupPlanner, client, diff=True, groups=groups, purge=True)
    assert [(r["name"], r["action"], r["rule"]) for r in result["groups"]] == [
        ("gpu", "updated", "ha-group-gpu"), ("later", "deferred", "ha-group-later"),
        ("stale", "deleted", "ha-group-stale")]
    assert client.writes() == [
        ("delete", "cluster/ha/rules/ha-group-stale", "HA rule ha-group-stale", {}),
        ("put", "cluster/ha/rules/ha-group-gpu", "HA rule ha-group-gpu",
         {"nodes": "pve-2:2,pve-1", "strict": 1, "delete": "disable", "type": "node-affinity"}),
        ("put", "cluster/ha/resources/vm:101", "HA resource vm:101", {"failback": 0})]
    gpu = result["groups"][0]["config"]
    assert gpu == dict(name="gpu", nodes=["pve-2:2", "pve-1"], restricted=True, comment="", rule="ha-group-gpu",
                       resources=["vm:100", "vm:101"], enabled=True, nofailback=True)
    assert result["diff"]["before"]["gpu"]["nofailback"] is None and result["diff"]["before"]["gpu"]["enabled"] is False
    assert len(result["warnings"]) == 2
    assert result["warnings"][0].startswith("Proxmox VE 9 has no HA groups: HA groups gpu, later are managed as the "
                                            "node-affinity rules ha-group-<group>")
    assert "HA group later has no rule ha-group-later yet" in result["warnings"][1]


def test_pve9_group_warning_names_one_group_or_counts_many(run):
    client = FakeClient()
    result = run(ha.GroupPlanner, client, name="gpu", state="absent")
    assert result["warnings"][0].startswith("Proxmox VE 9 has no HA groups: HA group gpu is managed as the "
                                            "node-affinity rule ha-group-gpu")
    assert result["action"] == "absent" and result["changed"] is False
    many = [dict(name="g%d" % i, state="absent") for i in range(7)]
    result = run(ha.GroupPlanner, client, groups=many)
    assert "HA groups g0, g1, g2, g3, g4 and 2 more are managed" in result["warnings"][0]


def test_pve9_group_rule_of_another_type_and_deletion(run):
    client = FakeClient(rules=[dict(rule="ha-group-gpu", type="resource-affinity", affinity="positive",
                                    resources="vm:1,vm:2")])
    result = run(ha.GroupPlanner, client, name="gpu", nodes=["pve-1"])
    assert result["msg"] == ("HA group gpu maps to rule ha-group-gpu on Proxmox VE 9, but that is a resource-affinity "
                             "rule: rename or delete that rule (ailab.cluster.proxmox_ha_rule) first")
    client = FakeClient(rules=[dict(rule="ha-group-gpu", type="node-affinity", nodes="pve-1", resources="vm:1")])
    result = run(ha.GroupPlanner, client, name="gpu", state="absent")
    assert result["action"] == "deleted" and result["rule"] == "ha-group-gpu"
    assert client.writes() == [("delete", "cluster/ha/rules/ha-group-gpu", "HA rule ha-group-gpu", {})]
    client = FakeClient(rules=[dict(rule="ha-group-gpu", type="node-affinity", nodes="pve-1", resources="vm:1")])
    result = run(ha.GroupPlanner, client, name="gpu", nodes=["pve-1"])
    assert result["action"] == "unchanged" and client.writes() == []
    assert "nofailback" not in result["group"]


def test_pve9_group_rule_write_on_an_unmigrated_cluster(run):
    client = FakeClient(groups=[{"group": "gpu"}], rules=[dict(rule="ha-group-gpu", type="node-affinity",
                                                               nodes="pve-1", resources="vm:1")])
    client.answers[("put", "cluster/ha/rules/ha-group-gpu")] = ProxmoxError(
        "cannot update ha rule: ha groups have not been migrated yet", status=500)
    result = run(ha.GroupPlanner, client, name="gpu", nodes=["pve-2"])
    assert "has not migrated the HA groups (gpu) to HA rules yet" in result["msg"]
    result = run(ha.GroupPlanner, FakeClient(groups=[{"group": "gpu"}], rules=client.data["cluster/ha/rules"]),
                 check=True, name="gpu", nodes=["pve-2"])
    assert "has not migrated the HA groups (gpu)" in result["msg"]
    other = FakeClient(rules=client.data["cluster/ha/rules"])
    other.answers[("put", "cluster/ha/rules/ha-group-gpu")] = ProxmoxError("boom", status=500)
    result = run(ha.GroupPlanner, other, name="gpu", nodes=["pve-2"])
    assert result["msg"] == "boom" and result["status"] == 500 and "cluster/ha/groups" not in other.reads()


# ------------------------------------------------------------------ rules
PIN = dict(name="pin", type="node-affinity", resources=["vm:100"], nodes=["pve-2"])
APART = dict(name="apart", type="resource-affinity", affinity="negative", resources=["vm:100", "vm:101"])
MANAGED = [{"sid": "vm:100"}, {"sid": "vm:101"}, {"sid": "vm:102"}]


def test_pve8_rules_are_refused(run):
    client = FakeClient(major=8)
    result = run(ha.RulePlanner, client, **PIN)
    assert result["msg"] == ("HA rules need Proxmox VE 9; use ailab.cluster.proxmox_ha_group on PVE 8 (this cluster "
                             "runs Proxmox VE 8.1.2)")


def test_rules_created_updated_replaced_and_purged(run):
    client = FakeClient(resources=MANAGED, rules=[
        dict(rule="apart", type="node-affinity", nodes="pve-1", resources="vm:101"),
        dict(rule="grow", type="resource-affinity", affinity="positive", resources="vm:101,vm:102"),
        dict(rule="ha-group-x", type="node-affinity", nodes="pve-1", resources="vm:102"),
        dict(rule="stale", type="resource-affinity", affinity="positive", resources="vm:1,vm:2")])
    rules = [PIN, APART, dict(name="grow", type="resource-affinity", affinity="positive",
                              resources=["vm:102", "vm:101"], comment="c")]
    result = run(ha.RulePlanner, client, diff=True, rules=rules, purge=True)
    assert [(r["name"], r["action"]) for r in result["rules"]] == [
        ("pin", "created"), ("apart", "replaced"), ("grow", "updated"), ("stale", "deleted")]
    assert client.writes() == [
        ("delete", "cluster/ha/rules/apart", "HA rule apart", {}),
        ("delete", "cluster/ha/rules/stale", "HA rule stale", {}),
        ("put", "cluster/ha/rules/grow", "HA rule grow", dict(comment="c", type="resource-affinity")),
        ("post", "cluster/ha/rules", "HA rule pin", dict(rule="pin", type="node-affinity", resources="vm:100",
                                                         nodes="pve-2")),
        ("post", "cluster/ha/rules", "HA rule apart", dict(rule="apart", type="resource-affinity",
                                                           resources="vm:100,vm:101", affinity="negative"))]
    assert result["rules"][0]["config"] == dict(name="pin", type="node-affinity", resources=["vm:100"], disable=False,
                                                comment="", nodes=["pve-2"], strict=False)
    assert result["rules"][1]["config"]["affinity"] == "negative"
    assert sorted(result["diff"]["before"]) == ["apart", "grow", "stale"]


def test_rule_shrinking_is_written_before_growing_and_prefix_warns(run):
    client = FakeClient(resources=MANAGED, rules=[
        dict(rule="ra", type="node-affinity", nodes="pve-1", resources="vm:100,vm:101"),
        dict(rule="ha-group-b", type="node-affinity", nodes="pve-2", resources="vm:102")])
    rules = [dict(name="ha-group-b", type="node-affinity", nodes=["pve-2"], resources=["vm:101", "vm:102"]),
             dict(name="ra", type="node-affinity", nodes=["pve-1"], resources=["vm:100"])]
    result = run(ha.RulePlanner, client, rules=rules)
    assert [c[1] for c in client.writes()] == ["cluster/ha/rules/ra", "cluster/ha/rules/ha-group-b"]
    assert result["warnings"] == ["HA rule ha-group-b has the prefix ha-group- that ailab.cluster.proxmox_ha_group "
                                  "uses for the rules of HA groups on PVE 9; both modules would manage it"]


def test_rule_refusals_before_any_write(run):
    client = FakeClient(resources=[{"sid": "vm:100"}], rules=[dict(rule="ra", type="node-affinity", nodes="pve-1",
                                                                   resources="vm:100")])
    result = run(ha.RulePlanner, client, **dict(APART, resources=["vm:100", "vm:101", "vm:102"]))
    assert result["msg"] == ("HA rule apart names vm:101, vm:102, which are not HA managed: add them with "
                             "ailab.cluster.proxmox_ha_resource first")
    result = run(ha.RulePlanner, client, **dict(APART, resources=["vm:100", "vm:101"]))
    assert result["msg"].startswith("HA rule apart names vm:101, which is not HA managed")
    result = run(ha.RulePlanner, client, check=True, planned_resources=["vm:101"], **APART)
    assert result["changed"] is True and client.writes() == []
    result = run(ha.RulePlanner, client, planned_resources=["vm:101"], **APART)
    assert result["msg"].startswith("HA rule apart names vm:101")  # planned only counts in check mode
    result = run(ha.RulePlanner, client, **dict(PIN, nodes=["pve-7"]))
    assert result["msg"].startswith("HA rule pin names pve-7, which is not a node")
    result = run(ha.RulePlanner, client, **PIN)
    assert result["msg"] == ("HA resource vm:100 would be in two enabled node-affinity rules, pin and ra: Proxmox VE 9 "
                             "allows one; remove it from one of them or disable one")
    result = run(ha.RulePlanner, client, **dict(PIN, disable=True))
    assert result["changed"] is True
    assert client.writes()[-1][3] == dict(rule="pin", type="node-affinity", resources="vm:100", disable=True,
                                          nodes="pve-2")


def test_rule_feasibility_and_enable(run):
    client = FakeClient(resources=MANAGED, rules=[
        dict(rule="lab", type="node-affinity", nodes="pve-1:2,pve-2:1", resources="vm:100,vm:101"),
        dict(rule="off", type="node-affinity", nodes="pve-2", resources="vm:102", disable=1)])
    result = run(ha.RulePlanner, client, **APART)
    assert result["msg"].startswith("HA rules apart, lab cannot hold together: resource-affinity rule apart names "
                                    "vm:100, vm:101, which node-affinity rule lab gives nodes of several priorities")
    assert client.writes() == []
    result = run(ha.RulePlanner, client, name="off", type="node-affinity", nodes=["pve-2"], resources=["vm:102"],
                 disable=False)
    assert result["action"] == "updated"
    assert client.writes() == [("put", "cluster/ha/rules/off", "HA rule off", {"delete": "disable",
                                                                               "type": "node-affinity"})]
    assert "cluster/ha/groups" not in client.reads()


def test_planned_groups_join_the_feasibility_check(run):
    client = FakeClient(resources=MANAGED, rules=[
        dict(rule="ha-group-lab", type="node-affinity", nodes="pve-1", resources="vm:102"),
        dict(rule="ha-group-old", type="node-affinity", nodes="pve-1", resources="vm:100,vm:101"),
        dict(rule="ha-group-drop", type="node-affinity", nodes="pve-1", resources="vm:1")])
    lab = dict(name="lab", nodes=["pve-1:2", "pve-2:1"])
    members = [dict(sid="vm:100", group="lab"), dict(vmid=101, group="lab"), dict(sid="vm:102", group="x",
                                                                                  state="absent")]
    result = run(ha.RulePlanner, client, check=True, rules=[APART], planned_groups=[lab, dict(name="drop",
                 state="absent"), dict(name="empty", nodes=["pve-1"])], planned_members=members)
    assert result["msg"].startswith("HA rules apart, ha-group-lab cannot hold together")
    result = run(ha.RulePlanner, client, check=True, rules=[APART], planned_groups=[dict(lab, nodes=["pve-1", "pve-2"],
                 restricted=True)], planned_members=members)
    assert result.get("failed") is None and client.writes() == []
    assert "cluster/ha/groups" in client.reads()
    result = run(ha.RulePlanner, client, check=True, rules=[], planned_groups=[dict(name="lab", nodes=["pve-1"],
                 restricted=True)], planned_members=members + [dict(sid="vm:103", group="lab")],
                 planned_resources=["vm:103"])
    assert "HA rules ha-group-lab, ha-group-old" not in result.get("msg", "")
    assert result["changed"] is False
    # a member moved to group lab leaves ha-group-old: a negative rule over lab's members on one node fails
    result = run(ha.RulePlanner, client, check=True, rules=[APART], planned_groups=[dict(name="lab", nodes=["pve-1"],
                 restricted=True)], planned_members=members)
    assert result["msg"].startswith("HA rules apart, ha-group-lab cannot hold together: negative resource-affinity "
                                    "rule apart keeps vm:100, vm:101 apart, but node-affinity rule ha-group-lab "
                                    "allows only 1 node (pve-1)")


# ------------------------------------------------------------------ resources
def started(*sids, state="started", node="pve-1"):
    return [dict(type="service", sid=s, state=state, node=node) for s in sids]


def test_pve8_resource_created_waits_for_the_service(run):
    client = FakeClient(major=8, groups=[{"group": "gg"}], guests=[vm(100), vm(101, kind="lxc")],
                        status=(started("vm:100", state="request_start"), started("vm:100")))
    result = run(ha.ResourcePlanner, client, diff=True, sid="vm:100", group="gg", max_restart=2)
    assert result["action"] == "created" and result["resource"] == dict(
        sid="vm:100", state="started", max_restart=2, max_relocate=1, comment="", group="gg")
    assert client.writes() == [("post", "cluster/ha/resources", "HA resource vm:100",
                                dict(sid="vm:100", max_restart=2, group="gg"))]
    assert client.reads().count("cluster/ha/status/current") == 2
    assert result["diff"] == {"before": {}, "after": result["resource"]}


def test_resource_wait_fails_on_error_and_on_timeout(run, monkeypatch):
    client = FakeClient(major=8, guests=[vm(100)], status=started("vm:100", state="error"))
    result = run(ha.ResourcePlanner, client, sid="vm:100")
    assert result["msg"] == ("HA resource vm:100 is in state error on pve-1 instead of started: see ha-manager status "
                             "and the task log of the guest, fix the cause, then set the state to disabled and back")
    clock = iter([0, 0, 10, 20, 400])
    monkeypatch.setattr(ha.time, "time", lambda: next(clock))
    monkeypatch.setattr(ha.time, "sleep", lambda s: None)
    client = FakeClient(major=8, guests=[vm(100)], status=[])
    result = run(ha.ResourcePlanner, client, sid="vm:100", state="stopped", wait_timeout=30)
    assert result["msg"] == ("Timed out after 30s waiting for HA resource vm:100 to be stopped: the HA manager reports "
                             "it as not listed on no node (ha-manager status shows why; raise wait_timeout if the "
                             "cluster is just slow)")
    client = FakeClient(major=8, guests=[vm(100)])
    result = run(ha.ResourcePlanner, client, sid="vm:100", state="ignored")
    assert "cluster/ha/status/current" not in client.reads()
    result = run(ha.ResourcePlanner, FakeClient(major=8, guests=[vm(100)]), sid="vm:100", wait_timeout=0)
    assert result["changed"] is True


def test_wait_for_services_backs_off(monkeypatch):
    sleeps = []
    monkeypatch.setattr(ha.time, "sleep", sleeps.append)
    client = FakeClient(status=(started("vm:1", state="queued") + [dict(type="lrm", sid="vm:2", state="x")],
                                started("vm:1", state="queued"), started("vm:1", state="queued"),
                                started("vm:1", state="queued"), started("vm:1", state="queued"),
                                started("vm:1", state="queued"), started("vm:1", state="stopped")))
    ha.wait_for_services(client, {"vm:1": "stopped"}, 60, poll=0.3)
    assert sleeps == [0.05, 0.1, 0.2, 0.3, 0.3, 0.3]


def test_resource_update_waits_only_for_a_state_change(run):
    current = [{"sid": "vm:100", "state": "enabled", "max_restart": 1}]
    client = FakeClient(major=8, guests=[vm(100)], resources=current, status=started("vm:100", state="stopped"))
    result = run(ha.ResourcePlanner, client, sid="vm:100", state="disabled", comment="")
    assert result["action"] == "updated" and client.writes()[0][3] == {"state": "disabled"}
    assert "cluster/ha/status/current" in client.reads()
    client = FakeClient(major=8, guests=[vm(100)], resources=current)
    result = run(ha.ResourcePlanner, client, sid="vm:100", state="started", max_relocate=3)
    assert result["action"] == "updated" and client.writes()[0][3] == {"max_relocate": 3}
    assert "cluster/ha/status/current" not in client.reads()


def test_resource_checks(run):
    client = FakeClient(major=8, guests=[vm(100), vm(101, kind="lxc")], groups=[])
    assert run(ha.ResourcePlanner, client, sid="vm:101")["msg"] == (
        "HA resource vm:101: guest 101 is a container, so its HA id is ct:101; fix sid or type")
    assert run(ha.ResourcePlanner, client, sid="ct:100")["msg"] == (
        "HA resource ct:100: guest 100 is a VM, so its HA id is vm:100; fix sid or type")
    assert run(ha.ResourcePlanner, client, vmid=102)["msg"] == (
        "HA resource vm:102: there is no VM or container 102 in the cluster; create the guest first")
    assert run(ha.ResourcePlanner, client, check=True, vmid=102, planned_guests=[102])["changed"] is True
    assert run(ha.ResourcePlanner, client, sid="vm:100", group="gg")["msg"] == (
        "HA resource vm:100: HA group gg does not exist; create it with ailab.cluster.proxmox_ha_group first")
    assert run(ha.ResourcePlanner, client, check=True, sid="vm:100", group="gg",
               planned_groups=[{"name": "gg"}])["changed"] is True
    assert "does not exist" in run(ha.ResourcePlanner, client, check=True, sid="vm:100", group="gg",
                                   planned_groups=[{"name": "gg", "state": "absent"}])["msg"]
    assert "does not exist" in run(ha.ResourcePlanner, client, sid="vm:100", group="gg",
                                   planned_groups=[{"name": "gg"}])["msg"]
    assert run(ha.ResourcePlanner, client, sid="vm:100", failback=False)["msg"] == (
        "failback of HA resource vm:100 needs Proxmox VE 9; on PVE 8 set nofailback on its HA group "
        "(ailab.cluster.proxmox_ha_group)")
    assert run(ha.ResourcePlanner, client, sid="vm:100", state="absent", migrate_to="pve-2")["msg"] == (
        "resource: migrate_to/relocate_to need an HA-managed resource (state is absent)")
    assert run(ha.ResourcePlanner, client, sid="vm:100", migrate_to="pve-2:1")["msg"] == (
        "resource: migrate_to/relocate_to must be a node name, got pve-2:1")
    assert "sid must be HA resource ids" in run(ha.ResourcePlanner, client, sid="x:1")["msg"]
    assert run(ha.ResourcePlanner, client, sid="vm:100", group="1")["msg"].startswith("resource: group must start")


def test_resource_moves(run):
    status = started("vm:100", node="pve-2")
    client = FakeClient(major=8, guests=[vm(100)], resources=[{"sid": "vm:100"}], status=status)
    result = run(ha.ResourcePlanner, client, diff=True, sid="vm:100", migrate_to="pve-2")
    assert (result["action"], result["moved"], result["node"]) == ("migrated", True, "pve-2")
    assert client.writes() == [("post", "cluster/ha/resources/vm:100/migrate", "HA migrate of vm:100 from pve-1 to "
                                "pve-2", {"node": "pve-2"})]
    assert result["diff"]["before"]["node"] == "pve-1" and result["diff"]["after"]["node"] == "pve-2"
    result = run(ha.ResourcePlanner, client, sid="vm:100", relocate_to="pve-2", wait_timeout=0)
    assert result["action"] == "relocated"
    result = run(ha.ResourcePlanner, client, sid="vm:100", migrate_to="pve-1")
    assert (result["action"], result["moved"]) == ("unchanged", False) and result["changed"] is False
    assert run(ha.ResourcePlanner, client, sid="vm:100", migrate_to="pve-9")["msg"] == (
        "HA resource vm:100: cannot migrate to pve-9, which is not a node of this cluster (nodes: pve-1, pve-2)")
    down = FakeClient(major=8, guests=[vm(100)], resources=[{"sid": "vm:100"}], offline=("pve-2",))
    assert run(ha.ResourcePlanner, down, sid="vm:100", relocate_to="pve-2")["msg"] == (
        "HA resource vm:100: cannot relocate to pve-2, the node is offline; bring it back or choose another node")
    blocked = FakeClient(guests=[vm(100)], resources=[{"sid": "vm:100"}], answers={
        ("post", "cluster/ha/resources/vm:100/migrate"): {"blocking-resources": [{"sid": "vm:101",
                                                                                  "cause": "resource-affinity"}]}})
    assert run(ha.ResourcePlanner, blocked, sid="vm:100", migrate_to="pve-2")["msg"] == (
        "HA migrate of vm:100 from pve-1 to pve-2 refused by the HA manager: blocked by vm:101 (resource-affinity); "
        "change the resource-affinity rules or move those first")


def test_wait_for_node(monkeypatch):
    monkeypatch.setattr(ha.time, "sleep", lambda s: None)
    client = FakeClient(status=(started("vm:1"), started("vm:1", node="pve-2")))
    ha.wait_for_node(client, "vm:1", "pve-2", 10, "move")
    clock = iter([0, 5, 20])
    monkeypatch.setattr(ha.time, "time", lambda: next(clock))
    with pytest.raises(ProxmoxError) as raised:
        ha.wait_for_node(FakeClient(status=[]), "vm:1", "pve-2", 10, "HA migrate of vm:1")
    assert raised.value.msg == ("Timed out after 10s waiting for HA migrate of vm:1; the HA manager may still be "
                                "working on it (see ha-manager status)")


def test_pve9_resources_join_group_rules(run):
    client = FakeClient(guests=[vm(100), vm(101), vm(102)], resources=[{"sid": "vm:101"}, {"sid": "vm:102",
                                                                                           "failback": 0}],
                        rules=[dict(rule="ha-group-ga", type="node-affinity", nodes="pve-1", resources="vm:101"),
                               dict(rule="ha-group-gb", type="node-affinity", nodes="pve-2", resources="vm:102"),
                               dict(rule="pin", type="node-affinity", nodes="pve-1", resources="vm:102", disable=1)],
                        status=started("vm:100"))
    items = [dict(sid="vm:100", group="new"), dict(sid="vm:101", group="gb"), dict(sid="vm:102", group="",
                                                                                   failback=False)]
    result = run(ha.ResourcePlanner, client, diff=True, resources=items)
    assert [(r["sid"], r["action"]) for r in result["resources"]] == [
        ("vm:100", "created"), ("vm:101", "updated"), ("vm:102", "updated")]
    assert client.writes() == [
        ("post", "cluster/ha/resources", "HA resource vm:100", {"sid": "vm:100"}),
        ("delete", "cluster/ha/rules/ha-group-ga", "HA rule ha-group-ga", {}),
        ("put", "cluster/ha/rules/ha-group-gb", "HA rule ha-group-gb", dict(type="node-affinity",
                                                                            resources="vm:101")),
        ("post", "cluster/ha/rules", "HA rule ha-group-new", dict(
            rule="ha-group-new", type="node-affinity", resources="vm:100", nodes="pve-1,pve-2", disable=1,
            comment="Generated from HA group 'new'."))]
    assert result["diff"]["before"]["vm:101"]["group"] == "ga" and result["diff"]["after"]["vm:101"]["group"] == "gb"
    assert result["resources"][2]["config"] == dict(sid="vm:102", state="started", max_restart=1, max_relocate=1,
                                                    comment="", failback=False, group="")
    assert any("HA group new has no rule ha-group-new yet" in w for w in result["warnings"])
    assert result["warnings"][0].startswith("Proxmox VE 9 has no HA groups: group of vm:100, vm:101, vm:102 is managed")


def test_pve9_membership_conflicts_and_purge(run):
    client = FakeClient(guests=[vm(100)], resources=[{"sid": "vm:100"}, {"sid": "vm:105"}],
                        rules=[dict(rule="pin", type="node-affinity", nodes="pve-1", resources="vm:100"),
                               dict(rule="ha-group-gx", type="resource-affinity", affinity="positive",
                                    resources="vm:105,vm:106")])
    assert run(ha.ResourcePlanner, client, sid="vm:100", group="gg")["msg"] == (
        "HA resource vm:100 is in node-affinity rule pin, so it cannot join group gg (rule ha-group-gg): a resource "
        "can be in one enabled node-affinity rule; remove it from pin or drop group")
    assert run(ha.ResourcePlanner, client, sid="vm:105", group="gx")["msg"] == (
        "HA resource vm:105: group gx maps to rule ha-group-gx, which is a resource-affinity rule; rename that rule")
    result = run(ha.ResourcePlanner, client, resources=[dict(sid="vm:100")], purge=True)
    assert [(r["sid"], r["action"]) for r in result["resources"]] == [("vm:100", "unchanged"), ("vm:105", "deleted")]
    assert client.writes() == [("delete", "cluster/ha/resources/vm:105", "HA resource vm:105", {})]
    result = run(ha.ResourcePlanner, client, resources=[dict(sid="vm:100", state="absent"),
                                                        dict(sid="vm:107", state="absent")])
    assert [(r["sid"], r["action"]) for r in result["resources"]] == [("vm:100", "deleted"), ("vm:107", "absent")]


def test_pve9_many_grouped_resources_warning(run):
    guests = [vm(v) for v in range(100, 107)]
    client = FakeClient(guests=guests, resources=[{"sid": "vm:%d" % v} for v in range(100, 107)],
                        rules=[dict(rule="ha-group-gg", type="node-affinity", nodes="pve-1",
                                    resources=",".join("vm:%d" % v for v in range(100, 107)))])
    result = run(ha.ResourcePlanner, client, resources=[dict(sid="vm:%d" % v, group="gg") for v in range(100, 107)])
    assert result["changed"] is False
    assert "group of vm:100, vm:101, vm:102, vm:103, vm:104 and 2 more is managed" in result["warnings"][0]


# ------------------------------------------------------------------ exact reads, warnings and messages
def test_each_read_names_what_it_reads():
    client = FakeClient(guests=[vm(100)])
    client.data["cluster/ha/rules"] = None
    state = ha.HAState(client)
    assert state.rules() == {} and state.resources() == {} and state.groups() == {}
    state.cluster()
    ha.wait_for_services(client, {}, 1)
    assert [c[2] for c in client.calls] == ["the HA rules", "the HA resources", "the HA groups",
                                            "the cluster resources", "the HA status"]
    ha.unmigrated_groups(client)
    assert client.calls[-1] == ("get", "cluster/ha/groups", "the HA groups")


def test_full_texts_of_the_migration_message_and_the_warnings(run):
    with pytest.raises(ProxmoxError) as raised:
        ha.check_groups_migrated(FakeClient(groups=[{"group": "lab"}]))
    assert raised.value.msg == (
        "this Proxmox VE 9.1.2 cluster was upgraded from 8 and its HA manager has not migrated the HA groups (lab) to "
        "HA rules yet; until it has, Proxmox VE refuses every HA rule write (\"ha groups have not been migrated "
        "yet\"). The HA manager migrates them by itself once every node is online, runs Proxmox VE 9 and has an "
        "active LRM, and the cluster is quorate (journalctl -u pve-ha-crm shows \"ha groups migration\"): finish "
        "the upgrade of all nodes, check ha-manager status, and run again when GET /cluster/ha/groups no longer "
        "lists groups")
    result = run(ha.GroupPlanner, FakeClient(), name="gpu", nodes=["pve-1"])
    assert result["warnings"] == [
        "Proxmox VE 9 has no HA groups: HA group gpu is managed as the node-affinity rule ha-group-gpu (restricted "
        "-> strict, nodes -> rule nodes, nofailback -> failback of the rule's resources). Move to "
        "ailab.cluster.proxmox_ha_rule when the inventory no longer serves PVE 8.",
        "HA group gpu has no rule ha-group-gpu yet: a Proxmox VE 9 node-affinity rule needs at least one HA "
        "resource, and no resource names this group. ailab.cluster.proxmox_ha_resource with group: gpu creates the "
        "rule (disabled) with its first resource; the next run of this module enables it with these nodes (the "
        "proxmox_ha role runs resources before groups on PVE 9, so one run is enough)."]
    assert result["action"] == "deferred" and result["group"] is None and result["changed"] is False
    result = run(ha.ResourcePlanner, FakeClient(guests=[vm(100)], status=started("vm:100")), sid="vm:100",
                 group="gg")
    assert result["warnings"] == [
        "Proxmox VE 9 has no HA groups: group of vm:100 is managed as membership in the node-affinity rule "
        "ha-group-<group> (ailab.cluster.proxmox_ha_group manages its nodes).",
        "HA group gg has no rule ha-group-gg yet: created it disabled with vm:100 on all nodes; "
        "ailab.cluster.proxmox_ha_group enables it with the group's nodes"]


def test_wait_for_node_backs_off_and_planned_guests_count_only_in_check_mode(run, monkeypatch):
    sleeps = []
    monkeypatch.setattr(ha.time, "sleep", sleeps.append)
    client = FakeClient(status=(started("vm:1"), started("vm:1"), started("vm:1"), started("vm:1"),
                                started("vm:1"), started("vm:1", node="pve-2")))
    ha.wait_for_node(client, "vm:1", "pve-2", 60, "move", poll=0.3)
    assert sleeps == [0.05, 0.1, 0.2, 0.3, 0.3]
    client = FakeClient(major=8)
    assert run(ha.ResourcePlanner, client, vmid=102, planned_guests=[102])["msg"].startswith(
        "HA resource vm:102: there is no VM or container 102")
    result = run(ha.ResourcePlanner, client, check=True, vmid=103, type="ct", planned_guests=[103])
    assert result["action"] == "created" and result["resource"]["sid"] == "ct:103"


def test_a_failed_write_reports_what_was_done(run):
    client = FakeClient(major=8, guests=[vm(100), vm(101)],
                        answers={("post", "cluster/ha/resources"): None})
    client.answers[("delete", "cluster/ha/resources/vm:105")] = None
    client.data["cluster/ha/resources"] = [{"sid": "vm:105"}]
    client.answers[("put", "cluster/ha/resources/vm:105")] = ProxmoxError("locked", status=500)
    result = run(ha.ResourcePlanner, client, wait_timeout=0, resources=[dict(sid="vm:100"), dict(sid="vm:105",
                 comment="x")])
    assert (result["msg"], result["status"], result["completed"]) == ("locked", 500, ["HA resource vm:100"])


@pytest.mark.parametrize("args, message", [
    (dict(name="r", type="node-affinity", nodes=["pve-1"], resources=["vm:100"]),
     "rule: name must start with a letter and hold at least two letters, digits, '-' or '_', got 'r'"),
    (dict(name="r", state="absent"), "rule: name must start with a letter"),
    (dict(name="pin", type="node-affinity", nodes=["pve-1"], resources=["vm:100"], affinity="positive"),
     "rule: affinity is for resource-affinity rules; a node-affinity rule takes nodes and strict"),
    (dict(name="pin", type="node-affinity", nodes=["pve_1"], resources=["vm:100"]),
     "rule: nodes must be node names with an optional priority"),
    (dict(name="ap", type="resource-affinity", affinity="negative", resources=["vm:100", "vm:101"], strict=True),
     "rule: nodes and strict are for node-affinity rules; a resource-affinity rule takes affinity"),
    (dict(name="ap", type="resource-affinity", affinity="negative", resources=["vm:100", "vm:101"],
          nodes=["pve-1"]), "rule: nodes and strict are for node-affinity rules"),
    (dict(name="ap", type="resource-affinity", affinity="negative", resources=["vm:100"]),
     "rule: a resource-affinity rule needs at least two resources"),
    (dict(name="ap", type="resource-affinity", affinity="negative", resources=["vm:100", "vm:1"]),
     "rule: resources must be HA resource ids like vm:100 or ct:101, got vm:1"),
])
def test_rule_item_checks(run, args, message):
    result = run(ha.RulePlanner, FakeClient(resources=MANAGED), **args)
    assert result["msg"].startswith(message), result["msg"]


def test_a_valid_absent_rule_needs_no_type(run):
    result = run(ha.RulePlanner, FakeClient(), name="gone", state="absent")
    assert result["action"] == "absent" and result["changed"] is False


@pytest.mark.parametrize("args, sid", [
    (dict(sid="100", type="ct"), "ct:100"), (dict(sid=" vm:100 "), "vm:100"), (dict(vmid=100), "vm:100"),
    (dict(vmid=100, type="ct"), "ct:100"), (dict(sid="100"), "vm:100"),
])
def test_resource_ids(run, args, sid):
    result = run(ha.ResourcePlanner, FakeClient(major=8), state="absent", **args)
    assert result["action"] == "absent" and result["resource"] is None
    assert result["changed"] is False
    assert ha._resource_sid(dict(dict(type="vm", sid=None, vmid=None), **args)) == sid


def test_resource_item_checks(run):
    client = FakeClient(major=8, guests=[vm(100)], resources=[{"sid": "vm:100"}])
    assert run(ha.ResourcePlanner, client, sid="vm:100", state="ignored", relocate_to="pve-2")["msg"] == (
        "resource: migrate_to/relocate_to need an HA-managed resource (state is ignored)")
    assert run(ha.ResourcePlanner, client, sid="vm:100", relocate_to="pve_2")["msg"] == (
        "resource: migrate_to/relocate_to must be a node name, got pve_2")
    assert run(ha.ResourcePlanner, client, sid="vm:1")["msg"] == (
        "resource: sid must be HA resource ids like vm:100 or ct:101, got vm:1 (or vmid with type)")
    assert run(ha.ResourcePlanner, client, sid="vm:100", group="ok")["msg"].startswith("HA resource vm:100: HA group ok")
    assert run(ha.GroupPlanner, FakeClient(major=8), name="gg")["msg"] == (
        "group: state is present but all of the following are missing: nodes")
    assert run(ha.GroupPlanner, FakeClient(major=8), name="gg", nodes=[])["msg"] == (
        "group: nodes must name at least one node")
    assert run(ha.GroupPlanner, FakeClient(major=8), name="gg", state="absent")["action"] == "absent"
