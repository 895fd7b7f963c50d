# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proxmox VE high availability for ailab.cluster modules (private to the collection).

The one place for what the three HA modules (``proxmox_ha_group``, ``proxmox_ha_rule``,
``proxmox_ha_resource``) share:

* their options, one ``_proxmox_list.ItemSpec`` each (single or list mode: every object is
  validated by the same rules before any request; list mode reads each collection once and writes
  only the differences, optionally removing unlisted objects with ``purge``);
* the plan/apply engine (:func:`run_ha_module`): read, work out every write, fail on bad input
  before the first write, then write in a fixed order (deletions, resources, rules, failback,
  migrations), or only predict in check mode;
* the PVE 8 -> 9 mapping of HA groups to node-affinity rules named ``ha-group-<name>``, which the
  group module (nodes, strict, failback) and the resource module (rule membership) both use.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    REMOVE,
    ProxmoxClient,
    ProxmoxError,
    applied,
    diff_config,
    split_list,
    to_pve,
    unordered_list,
    with_defaults,
)
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_list import ItemSpec, list_diff

# PVE 9 turned every HA group into a node-affinity rule with this prefix (pve-ha-manager's own
# migration does the same); the group module manages that rule and the resource module its members.
GROUP_RULE_PREFIX = "ha-group-"

_NODE_RE = re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(:(\d+))?$")
_SID_RE = re.compile(r"^(vm|ct):([1-9][0-9]{2,8})$")
_CONFIGID_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]+$")  # pve-configid: two characters or more


def group_rule_id(group):
    """The PVE 9 node-affinity rule that stands for HA group ``group``."""
    return GROUP_RULE_PREFIX + group


def node_priorities(value):
    """``"pve-1:2,pve-2"`` -> ``{"pve-1": 2, "pve-2": 0}`` (no priority is priority 0 in PVE)."""
    nodes = {}
    for entry in split_list(value):
        name, _sep, prio = entry.partition(":")
        nodes[name] = int(prio) if prio.isdigit() else 0
    return nodes


def canonical_nodes(value):
    """Node list in one comparable form: sorted ``node:prio``."""
    return ",".join("%s:%s" % (n, p) for n, p in sorted(node_priorities(value).items()))


def check_nodes(nodes):
    """Error text for a bad ``node[:prio]`` list, else None."""
    if not nodes:
        return "nodes must name at least one node"
    bad = [n for n in nodes if not _NODE_RE.match(str(n))]
    if bad:
        return "nodes must be node names with an optional priority (node[:prio], for example pve-1:2), got %s" % (
            ", ".join(bad))
    names = [str(n).partition(":")[0] for n in nodes]
    if len(set(names)) != len(names):
        return "nodes names a node twice: %s" % ", ".join(sorted(set(n for n in names if names.count(n) > 1)))
    return None


def check_sids(sids, what="resources"):
    """Error text for a bad list of ``vm:<id>``/``ct:<id>`` resource ids, else None."""
    bad = [s for s in sids if not _SID_RE.match(str(s))]
    if bad:
        return "%s must be HA resource ids like vm:100 or ct:101, got %s" % (what, ", ".join(bad))
    if len(set(sids)) != len(sids):
        return "%s lists a resource twice" % what
    return None


def check_configid(value, what):
    if not _CONFIGID_RE.match(value or ""):
        return "%s must start with a letter and hold at least two letters, digits, '-' or '_', got %r" % (what, value)
    return None


# ------------------------------------------------------------- feasibility
def _enabled(rule):
    return not int(with_defaults(rule, RULE_DEFAULTS)["disable"])


def _rule_sids(rule):
    return set(split_list(rule.get("resources")))


def _positive_groups(positive):
    """Positive rules that share resources, merged: ``[(rule names, resources)]``."""
    merged = []
    for name in sorted(positive):
        names, sids = [name], set(positive[name])
        for other in [m for m in merged if m[1] & sids]:
            merged.remove(other)
            names, sids = other[0] + names, other[1] | sids
        merged.append((sorted(names), sids))
    return merged


def _sids_text(sids):
    return ", ".join(sorted(sids))


def rule_conflicts(rules, nodes):
    """Why a set of HA rules cannot hold together on Proxmox VE 9: ``[(rule names, message)]``.

    The inter-rule checks that pve-ha-manager runs on every rule write (``check_feasibility`` of
    src/PVE/HA/Rules.pm, Rules/NodeAffinity.pm and Rules/ResourceAffinity.pm; PVE answers 400
    "Rule '<name>' is invalid."), over the enabled rules; ``nodes`` are the cluster's nodes.
    """
    located = dict((n, r) for n, r in rules.items() if r.get("type") == "node-affinity" and _enabled(r))
    affinity = dict((n, r) for n, r in rules.items() if r.get("type") == "resource-affinity" and _enabled(r))
    positive = dict((n, _rule_sids(r)) for n, r in affinity.items() if r.get("affinity") == "positive")
    negative = dict((n, _rule_sids(r)) for n, r in affinity.items() if r.get("affinity") == "negative")
    conflicts = []
    owner = {}
    for name in sorted(located):
        for sid in sorted(_rule_sids(located[name])):
            if sid in owner:
                conflicts.append(([owner[sid], name], "HA resource %s would be in two enabled node-affinity rules, %s "
                                  "and %s: Proxmox VE 9 allows one; remove it from one of them or disable one"
                                  % (sid, owner[sid], name)))
            else:
                owner[sid] = name
    for name in sorted(affinity):
        if len(_rule_sids(affinity[name])) < 2:
            conflicts.append(([name], "resource-affinity rule %s names fewer than two resources, so Proxmox VE 9 "
                              "finds it ineffective; name two or more" % name))
    for name in sorted(negative):
        if len(negative[name]) > len(nodes):
            conflicts.append(([name], "negative resource-affinity rule %s keeps %d resources apart (%s) but the "
                              "cluster has %d nodes; name at most %d" % (
                                  name, len(negative[name]), _sids_text(negative[name]), len(nodes), len(nodes))))
    for pos in sorted(positive):
        for neg in sorted(negative):
            shared = positive[pos] & negative[neg]
            if len(shared) >= 2:
                conflicts.append(([pos, neg], "resource-affinity rules %s (positive) and %s (negative) both name %s: "
                                  "they cannot be kept together and apart; remove them from one rule"
                                  % (pos, neg, _sids_text(shared))))
    for name in sorted(affinity):
        for other in sorted(located):
            shared = _rule_sids(affinity[name]) & _rule_sids(located[other])
            priorities = set(node_priorities(located[other].get("nodes")).values())
            if shared and len(priorities) > 1:
                conflicts.append(([name, other], "resource-affinity rule %s names %s, which node-affinity rule %s "
                                  "gives nodes of several priorities (%s): Proxmox VE 9 refuses a resource-affinity "
                                  "rule over resources of a node-affinity rule with more than one priority; give %s "
                                  "one priority for all its nodes or take those resources out of %s"
                                  % (name, _sids_text(shared), other, located[other].get("nodes"), other, name)))
    for names, sids in _positive_groups(positive):
        paired = [o for o in sorted(located) if _rule_sids(located[o]) & sids]
        if len(paired) > 1:
            conflicts.append((names + paired, "positive resource-affinity rule%s %s keep%s %s together, but they are "
                              "in several node-affinity rules (%s); Proxmox VE 9 allows one: put them in one rule"
                              % ("s" if len(names) > 1 else "", " and ".join(names), "" if len(names) > 1 else "s",
                                 _sids_text(sids), ", ".join(paired))))
    for name in sorted(negative):
        allowed, placed, paired = set(), set(), []
        for other in sorted(located):
            common = negative[name] & _rule_sids(located[other])
            if common:
                placed |= common
                allowed |= set(node_priorities(located[other].get("nodes")))
                paired.append(other)
        if len(allowed) < len(placed):
            conflicts.append(([name] + paired, "negative resource-affinity rule %s keeps %s apart, but node-affinity "
                              "rule%s %s allow%s only %d node%s (%s) for them; allow more nodes or keep fewer apart"
                              % (name, _sids_text(placed), "s" if len(paired) > 1 else "", ", ".join(paired),
                                 "" if len(paired) > 1 else "s", len(allowed), "" if len(allowed) == 1 else "s",
                                 ", ".join(sorted(allowed)))))
    return conflicts


def check_feasible(rules, nodes, touched):
    """Raise ProxmoxError for the first conflict that involves a rule of ``touched``."""
    for names, message in rule_conflicts(rules, nodes):
        if set(names) & set(touched):
            raise ProxmoxError("HA rules %s cannot hold together: %s" % (", ".join(sorted(set(names))), message))


GROUPS_NOT_MIGRATED = (
    "this Proxmox VE %s cluster was upgraded from 8 and its HA manager has not migrated the HA groups (%s) to HA "
    "rules yet; until it has, Proxmox VE refuses every HA rule write (\"ha groups have not been migrated yet\"). "
    "The HA manager migrates them by itself once every node is online, runs Proxmox VE 9 and has an active LRM, "
    "and the cluster is quorate (journalctl -u pve-ha-crm shows \"ha groups migration\"): finish the upgrade of "
    "all nodes, check ha-manager status, and run again when GET /cluster/ha/groups no longer lists groups")


def unmigrated_groups(client):
    """PVE 9: the HA groups the CRM has not migrated to rules yet (empty once migrated)."""
    try:
        # pve-ha-manager PVE/API2/HA/Groups.pm (9.x) dies "ha groups have been migrated to rules": no retry.
        groups = client.get("cluster/ha/groups", what="the HA groups", answer_if="migrated") or []
    except ProxmoxError as exc:
        if exc.status == 500 and "migrated" in exc.msg:  # PVE 9 refuses group calls once migrated
            return []
        raise
    return sorted(g.get("group") for g in groups)


def check_groups_migrated(client):
    """Refuse, with what to do, to write HA rules on a PVE 9 cluster whose groups are not migrated."""
    if client.major < 9:
        return
    groups = unmigrated_groups(client)
    if groups:
        raise ProxmoxError(GROUPS_NOT_MIGRATED % (client.version.get("version", client.major), ", ".join(groups)))


# ------------------------------------------------------------------ engine
class Write(object):
    """One planned API write; ``then`` (optional) runs after it, given the client and the answer."""

    def __init__(self, phase, method, path, what, params=None, then=None):
        self.phase = phase
        self.method = method
        self.path = path
        self.what = what
        self.params = params or {}
        self.then = then

    def run(self, client):
        answer = getattr(client, self.method)(self.path, what=self.what, **self.params)
        if self.then is not None:
            self.then(client, answer)
        return answer


# Write phases, in the order they run.
DELETE_RESOURCES, RESOURCES, GROUPS, RULES_DELETE, RULES_SHRINK, RULES_GROW, FAILBACK, MOVES = range(8)


class HAState(object):
    """What one module run reads, each collection at most once (and only when it is needed)."""

    def __init__(self, client):
        self.client = client
        self._cache = {}

    def _list(self, key, path, what, ident):
        if key not in self._cache:
            entries = self.client.get(path, what=what) or []
            self._cache[key] = dict((e[ident], dict(e)) for e in entries)
        return self._cache[key]

    def groups(self):
        return self._list("groups", "cluster/ha/groups", "the HA groups", "group")

    def rules(self):
        return self._list("rules", "cluster/ha/rules", "the HA rules", "rule")

    def resources(self):
        return self._list("resources", "cluster/ha/resources", "the HA resources", "sid")

    def cluster(self):
        """``(guests, nodes)``: ``{vmid: entry}`` of VMs/CTs and ``{node: online}``, one read."""
        if "cluster" not in self._cache:
            guests, nodes = {}, {}
            for entry in self.client.get("cluster/resources", what="the cluster resources") or []:
                if entry.get("type") in ("qemu", "lxc"):
                    guests[int(entry["vmid"])] = entry
                elif entry.get("type") == "node":
                    nodes[entry.get("node")] = entry.get("status") == "online"
            self._cache["cluster"] = (guests, nodes)
        return self._cache["cluster"]


class Planner(object):
    """Base of the per-kind planners: collects writes, per-object results, diff and warnings."""

    spec = None  # ItemSpec

    def __init__(self, module, client, purge):
        self.module = module
        self.client = client
        self.purge = purge
        self.state = HAState(client)
        self.writes = []
        self.results = []
        self.before = {}
        self.after = {}
        self.warnings = []

    @property
    def major(self):
        return self.client.major

    def write(self, phase, method, path, what, params=None, then=None):
        self.writes.append(Write(phase, method, path, what, params, then))

    def record(self, key, action, before, after, **extra):
        """One object's outcome; ``before``/``after`` go to the diff when they differ."""
        result = {self.spec.identity: key, "action": action}
        result.update(extra)
        result["config"] = after
        self.results.append(result)
        if before != after:
            if before is not None:
                self.before[key] = before
            if after is not None:
                self.after[key] = after
        return result

    # True: check (one read) that PVE 9 has migrated the HA groups even when no rule is written
    check_migration = False

    def settle(self, client):
        """After the writes: wait for what the HA manager does in its own rounds (resources)."""

    # planners implement these
    def check_version(self, items):
        """Refuse options the PVE version lacks (raise ProxmoxError) and add mapping warnings."""

    def plan(self, items):
        raise NotImplementedError

    def planned_nodes(self):
        """Check mode: the nodes that join the cluster earlier in the same run (``planned_nodes``) and are
        not members yet; empty outside check mode, where the join has happened."""
        if not self.module.check_mode:
            return []
        _guests, known = self.state.cluster()
        return sorted(set(self.module.params.get("planned_nodes") or []) - set(known))

    def node_names(self):
        """The cluster's node names, with the planned nodes of a check-mode plan."""
        _guests, known = self.state.cluster()
        return sorted(set(known) | set(self.planned_nodes()))

    def check_nodes_exist(self, what, nodes):
        """Refuse unknown node names before any write (one read of the cluster resources); in check mode
        the nodes that join the cluster earlier in the run (``planned_nodes``) count as members."""
        _guests, known = self.state.cluster()
        planned = self.planned_nodes()
        unknown = sorted(set(str(n).partition(":")[0] for n in nodes) - set(known) - set(planned))
        if unknown:
            raise ProxmoxError("%s names %s, which %s not a node of this cluster (nodes: %s)%s" % (
                what, ", ".join(unknown), "is" if len(unknown) == 1 else "are", ", ".join(sorted(known)),
                "" if not planned else " and %s not join it in this run (planned: %s)" % (
                    "does" if len(unknown) == 1 else "do", ", ".join(planned))))

    def return_values(self, list_mode):
        """The module's result keys besides changed/diff/warnings."""
        if list_mode:
            return {self.spec.list_name: self.results}
        single = dict(self.results[0])
        single.pop(self.spec.identity)
        single[self.spec.kind] = single.pop("config")
        return single


def run_ha_module(planner_class, **module_options):
    """The whole run of an HA module: validate, connect, read, plan, write (unless check mode), exit."""
    spec = planner_class.spec
    module = spec.module(**module_options)
    items, list_mode = spec.items(module)
    client = ProxmoxClient.from_module(module)
    planner = planner_class(module, client, module.params["purge"])
    done = []
    try:
        planner.check_version(items)
        planner.plan(items)
        writes = sorted(planner.writes, key=lambda w: w.phase)  # stable: planned order within a phase
        changed = bool(writes)
        writes_rules = any(w.path.startswith("cluster/ha/rules") for w in writes)
        if planner.check_migration or (module.check_mode and writes_rules):
            check_groups_migrated(client)  # PVE 9 upgraded from 8: say what to do instead of a 500
        if changed and not module.check_mode:
            for write in writes:
                try:
                    write.run(client)
                except ProxmoxError as exc:
                    if "have not been migrated yet" in exc.msg:  # an apply run reads nothing more to find out
                        check_groups_migrated(client)
                    raise
                done.append(write.what)
            planner.settle(client)
    except ProxmoxError as exc:
        for warning in planner.warnings:
            module.warn(warning)
        module.fail_json(msg=exc.msg, status=exc.status, completed=done)
    for warning in planner.warnings:
        module.warn(warning)
    result = dict(changed=changed)
    result.update(planner.return_values(list_mode))
    if module._diff:
        result["diff"] = list_diff(planner.before, planner.after, list_mode)
    module.exit_json(**result)


# Node lists compare with their priorities in any order, resource lists in any order.
NORMALIZERS = {"nodes": canonical_nodes, "resources": unordered_list}


def update_params(desired, current, defaults):
    """The PUT parameters that make ``current`` match ``desired`` (:func:`diff_config` with PVE's
    ``defaults``; None = not managed), where a desired ``""`` removes the option (``delete``)."""
    desired = dict((k, REMOVE if to_pve(v) == "" else v) for k, v in desired.items())
    params, delete, _before, _after = diff_config(desired, current, NORMALIZERS, defaults)
    if delete:
        params["delete"] = ",".join(delete)
    return params


def enable_with_delete(params):
    """Enable a rule with ``delete=disable``: Proxmox VE drops a false ``disable`` (pve-ha-manager
    src/PVE/HA/Rules.pm), so ``disable=0`` would leave a disabled rule disabled."""
    if "disable" in params and not int(params["disable"]):
        del params["disable"]
        params["delete"] = ",".join(sorted(set(split_list(params.get("delete")) + ["disable"])))
    return params


# ------------------------------------------------------------------ groups
def _check_group(item):
    if item["state"] == "present":
        return check_nodes(item["nodes"])
    return None


GROUP_SPEC = ItemSpec(
    kind="group",
    list_name="groups",
    identity="name",
    options=dict(
        name=dict(type="str", required=True, aliases=["group"]),
        nodes=dict(type="list", elements="str"),
        restricted=dict(type="bool"),
        nofailback=dict(type="bool"),
        comment=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    ),
    rules=dict(required_if=[("state", "present", ["nodes"])]),
    check=lambda item: check_configid(item["name"], "name") or _check_group(item),
)

GROUP_DEFAULTS = {"restricted": 0, "nofailback": 0, "comment": ""}
RULE_DEFAULTS = {"strict": 0, "disable": 0, "comment": ""}


class GroupPlanner(Planner):
    """HA groups on PVE 8; on PVE 9 the node-affinity rule ``ha-group-<name>`` of each group."""

    spec = GROUP_SPEC

    def check_version(self, items):
        if self.major >= 9 and items:
            names = sorted(i["name"] for i in items)
            if len(names) == 1:
                what = "HA group %s is managed as the node-affinity rule %s" % (names[0], group_rule_id(names[0]))
            else:
                what = "HA groups %s%s are managed as the node-affinity rules %s<group>" % (
                    ", ".join(names[:5]), " and %d more" % (len(names) - 5) if len(names) > 5 else "",
                    GROUP_RULE_PREFIX)
            self.warnings.append(
                "Proxmox VE %s has no HA groups: %s (restricted -> strict, nodes -> rule nodes, nofailback -> "
                "failback of the rule's resources). Move to ailab.cluster.proxmox_ha_rule when the inventory no "
                "longer serves PVE 8." % (self.major, what))

    def plan(self, items):
        if self.major >= 9:
            self._plan_rules(items)
        else:
            self._plan_groups(items)

    # PVE 8 ------------------------------------------------------------------
    def _plan_groups(self, items):
        groups = self.state.groups()
        deleting = []
        for item in items:
            name = item["name"]
            current = groups.get(name)
            before = self._group_view(name, current) if current else None
            if item["state"] == "absent":
                if current:
                    deleting.append(name)
                    self.write(GROUPS, "delete", "cluster/ha/groups/%s" % name, "HA group %s" % name)
                self.record(name, "deleted" if current else "absent", before, None)
                continue
            send = dict(nodes=",".join(item["nodes"]), restricted=item["restricted"],
                        nofailback=item["nofailback"], comment=item["comment"] or None)
            if current is None:
                self.check_nodes_exist("HA group %s" % name, item["nodes"])
                self.write(GROUPS, "post", "cluster/ha/groups", "HA group %s" % name, dict(group=name, **send))
                after = self._group_view(name, dict((k, v) for k, v in send.items() if v is not None))
                self.record(name, "created", None, after)
                continue
            params = update_params(dict(send, comment=item["comment"]), current, GROUP_DEFAULTS)
            if "nodes" in params:
                self.check_nodes_exist("HA group %s" % name, item["nodes"])
            after = applied(current, params)
            if params:
                self.write(GROUPS, "put", "cluster/ha/groups/%s" % name, "HA group %s" % name, params)
            self.record(name, "updated" if params else "unchanged", before, self._group_view(name, after))
        if self.purge:
            listed = set(i["name"] for i in items)
            for name in sorted(set(groups) - listed):
                deleting.append(name)
                self.write(GROUPS, "delete", "cluster/ha/groups/%s" % name, "HA group %s" % name)
                self.record(name, "deleted", self._group_view(name, groups[name]), None)
        if deleting:
            self._check_unused(deleting)

    def _check_unused(self, names):
        """PVE 8 refuses to delete a group a resource uses: say so before any write."""
        users = {}
        for sid, resource in sorted(self.state.resources().items()):
            if resource.get("group") in names:
                users.setdefault(resource["group"], []).append(sid)
        if users:
            name = sorted(users)[0]
            raise ProxmoxError("HA group %s is still used by %s: move those resources to another group or remove "
                               "the group from them (ailab.cluster.proxmox_ha_resource group: '') before deleting it"
                               % (name, ", ".join(users[name])))

    @staticmethod
    def _group_view(name, entry):
        entry = with_defaults(entry, GROUP_DEFAULTS)
        return dict(name=name, nodes=split_list(entry.get("nodes")), restricted=bool(int(entry["restricted"])),
                    nofailback=bool(int(entry["nofailback"])), comment=entry["comment"])

    # PVE 9 ------------------------------------------------------------------
    def _plan_rules(self, items):
        rules = self.state.rules()
        resources = None
        if any(i["state"] == "present" and i["nofailback"] is not None for i in items):
            resources = self.state.resources()
        for item in items:
            name = item["name"]
            rule_id = group_rule_id(name)
            current = rules.get(rule_id)
            if current is not None and current.get("type") != "node-affinity":
                raise ProxmoxError("HA group %s maps to rule %s on Proxmox VE 9, but that is a %s rule: rename or "
                                   "delete that rule (ailab.cluster.proxmox_ha_rule) first"
                                   % (name, rule_id, current.get("type")))
            before = self._rule_view(name, current, resources) if current else None
            if item["state"] == "absent":
                if current:
                    self.write(RULES_DELETE, "delete", "cluster/ha/rules/%s" % rule_id, "HA rule %s" % rule_id)
                self.record(name, "deleted" if current else "absent", before, None, rule=rule_id)
                continue
            # Checked even when the rule is deferred: PVE only refuses the nodes once a resource exists.
            self.check_nodes_exist("HA group %s" % name, item["nodes"])
            if current is None:
                self.warnings.append(
                    "HA group %s has no rule %s yet: a Proxmox VE 9 node-affinity rule needs at least one HA "
                    "resource, and no resource names this group. ailab.cluster.proxmox_ha_resource with group: %s "
                    "creates the rule (disabled) with its first resource; the next run of this module enables it "
                    "with these nodes (the proxmox_ha role runs resources before groups on PVE 9, so one run "
                    "is enough)." % (name, rule_id, name))
                self.record(name, "deferred", None, None, rule=rule_id)
                continue
            desired = dict(nodes=",".join(item["nodes"]), strict=item["restricted"], comment=item["comment"],
                           disable=False)
            params = enable_with_delete(update_params(desired, current, RULE_DEFAULTS))
            after_rule = applied(current, params)
            if params:
                params["type"] = "node-affinity"
                self.write(RULES_GROW, "put", "cluster/ha/rules/%s" % rule_id, "HA rule %s" % rule_id, params)
            failback_changes = 0
            after_resources = resources
            if item["nofailback"] is not None:
                after_resources = dict((sid, dict(r)) for sid, r in resources.items())
                wanted = 0 if item["nofailback"] else 1
                for sid in sorted(split_list(current.get("resources"))):
                    resource = after_resources.get(sid)
                    if resource is None or int(with_defaults(resource, {"failback": 1})["failback"]) == wanted:
                        continue
                    resource["failback"] = wanted
                    failback_changes += 1
                    self.write(FAILBACK, "put", "cluster/ha/resources/%s" % sid, "HA resource %s" % sid,
                               dict(failback=wanted))
            after = self._rule_view(name, after_rule, after_resources)
            action = "updated" if params or failback_changes else "unchanged"
            self.record(name, action, before, after, rule=rule_id)
        if self.purge:
            listed = set(group_rule_id(i["name"]) for i in items)
            for rule_id in sorted(r for r in rules if r.startswith(GROUP_RULE_PREFIX) and r not in listed):
                name = rule_id[len(GROUP_RULE_PREFIX):]
                self.write(RULES_DELETE, "delete", "cluster/ha/rules/%s" % rule_id, "HA rule %s" % rule_id)
                self.record(name, "deleted", self._rule_view(name, rules[rule_id], None), None, rule=rule_id)

    @staticmethod
    def _rule_view(name, rule, resources):
        """A group as seen through its PVE 9 rule (``nofailback`` only when every member agrees)."""
        rule = with_defaults(rule, RULE_DEFAULTS)
        view = dict(name=name, nodes=split_list(rule.get("nodes")), restricted=bool(int(rule["strict"])),
                    comment=rule["comment"], rule=group_rule_id(name), resources=sorted(split_list(rule.get("resources"))),
                    enabled=not int(rule["disable"]))
        if resources is not None:
            values = set(int(with_defaults(resources.get(s), {"failback": 1})["failback"]) for s in view["resources"])
            view["nofailback"] = (values == {0}) if len(values) == 1 else None
        return view


# ------------------------------------------------------------------ rules
def _check_rule(item):
    error = check_configid(item["name"], "name")
    if error or item["state"] == "absent":
        return error
    kind = item["type"]
    if kind == "node-affinity":
        if item["affinity"] is not None:
            return "affinity is for resource-affinity rules; a node-affinity rule takes nodes and strict"
        error = check_nodes(item["nodes"])
    else:
        if item["nodes"] is not None or item["strict"] is not None:
            return "nodes and strict are for node-affinity rules; a resource-affinity rule takes affinity"
        if len(item["resources"]) < 2:
            return "a resource-affinity rule needs at least two resources"
    return error or check_sids(item["resources"])


RULE_SPEC = ItemSpec(
    kind="rule",
    list_name="rules",
    identity="name",
    options=dict(
        name=dict(type="str", required=True, aliases=["rule"]),
        type=dict(type="str", choices=["node-affinity", "resource-affinity"]),
        resources=dict(type="list", elements="str"),
        nodes=dict(type="list", elements="str"),
        strict=dict(type="bool"),
        affinity=dict(type="str", choices=["positive", "negative"]),
        disable=dict(type="bool"),
        comment=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    ),
    rules=dict(required_if=[("state", "present", ["type", "resources"]),
                            ("type", "node-affinity", ["nodes"]),
                            ("type", "resource-affinity", ["affinity"])]),
    check=_check_rule,
)

RULES_NEED_PVE9 = "HA rules need Proxmox VE 9; use ailab.cluster.proxmox_ha_group on PVE 8"


class RulePlanner(Planner):
    """PVE 9 HA rules, updated in place; deleted and created again only when the type changes."""

    spec = RULE_SPEC

    def check_version(self, items):
        if self.major < 9:
            raise ProxmoxError("%s (this cluster runs Proxmox VE %s)" % (RULES_NEED_PVE9, self.client.version.get(
                "version", self.major)))

    def plan(self, items):
        rules = self.state.rules()
        future = dict((k, dict(v)) for k, v in rules.items())
        touched = []
        for item in items:
            name = item["name"]
            current = rules.get(name)
            before = self._view(name, current) if current else None
            if item["state"] == "absent":
                if current:
                    future.pop(name)
                    self.write(RULES_DELETE, "delete", "cluster/ha/rules/%s" % name, "HA rule %s" % name)
                self.record(name, "deleted" if current else "absent", before, None)
                continue
            if name.startswith(GROUP_RULE_PREFIX):
                self.warnings.append("HA rule %s has the prefix %s that ailab.cluster.proxmox_ha_group uses for the "
                                     "rules of HA groups on PVE 9; both modules would manage it" % (name, GROUP_RULE_PREFIX))
            send = self._send(item)
            if current is not None and current.get("type") == item["type"]:
                params = self._update_params(item, current, send)
                after = applied(current, params)
                future[name] = after
                if params:
                    shrinking = set(split_list(after.get("resources"))) <= set(split_list(current.get("resources")))
                    self.write(RULES_SHRINK if shrinking else RULES_GROW, "put", "cluster/ha/rules/%s" % name,
                               "HA rule %s" % name, dict(params, type=item["type"]))
                    touched.append(name)
                self.record(name, "updated" if params else "unchanged", before, self._view(name, after))
                continue
            if current is not None:  # the type cannot change in place
                self.write(RULES_DELETE, "delete", "cluster/ha/rules/%s" % name, "HA rule %s" % name)
            create = dict((k, v) for k, v in send.items() if v is not None and v != "")
            self.write(RULES_GROW, "post", "cluster/ha/rules", "HA rule %s" % name, dict(rule=name, **create))
            future[name] = dict(create)
            touched.append(name)
            self.record(name, "replaced" if current else "created", before, self._view(name, create))
        if self.purge:
            listed = set(i["name"] for i in items)
            for name in sorted(set(rules) - listed):
                if name.startswith(GROUP_RULE_PREFIX):
                    continue  # the rule of an HA group: ailab.cluster.proxmox_ha_group owns it
                future.pop(name, None)
                self.write(RULES_DELETE, "delete", "cluster/ha/rules/%s" % name, "HA rule %s" % name)
                self.record(name, "deleted", self._view(name, rules[name]), None)
        touched += self._plan_groups(future)
        if touched:
            self._check_future(future, touched)

    def _plan_groups(self, future):
        """The ``ha-group-<name>`` rules that the groups and resources of this run will make
        (``planned_groups``/``planned_members``, the proxmox_ha role's preflight): into ``future``."""
        groups = self.module.params.get("planned_groups") or []
        if not groups:
            return []
        self.check_migration = True
        touched = []
        members = {}
        for member in self.module.params.get("planned_members") or []:
            if member.get("group") is not None and member.get("state") != "absent":
                item = dict(member, type=member.get("type") or "vm")
                members[_resource_sid(item)] = member["group"]
        for name, rule in list(future.items()):  # resources leave the group rules they no longer belong to
            if name.startswith(GROUP_RULE_PREFIX):
                kept = [s for s in split_list(rule.get("resources")) if members.get(s, name[len(GROUP_RULE_PREFIX):])
                        == name[len(GROUP_RULE_PREFIX):]]
                future[name] = dict(rule, resources=",".join(kept))
        for group in groups:
            rule_id = group_rule_id(group["name"])
            if group.get("state", "present") == "absent":
                future.pop(rule_id, None)
                continue
            sids = set(split_list(future.get(rule_id, {}).get("resources")))
            sids |= set(s for s, g in members.items() if g == group["name"])
            if not sids:
                continue  # a rule needs a resource: the group module defers it
            future[rule_id] = dict(type="node-affinity", nodes=",".join(group.get("nodes") or []),
                                   strict=int(bool(group.get("restricted"))), resources=",".join(sorted(sids)))
            touched.append(rule_id)
        return touched

    @staticmethod
    def _send(item):
        send = dict(type=item["type"], resources=",".join(item["resources"]), disable=item["disable"],
                    comment=item["comment"])
        if item["type"] == "node-affinity":
            send.update(nodes=",".join(item["nodes"]), strict=item["strict"])
        else:
            send.update(affinity=item["affinity"])
        return send

    @staticmethod
    def _update_params(item, current, send):
        desired = dict(resources=send["resources"], disable=item["disable"], comment=item["comment"])
        if item["type"] == "node-affinity":
            desired.update(nodes=send["nodes"], strict=item["strict"])
        else:
            desired.update(affinity=item["affinity"])
        return enable_with_delete(update_params(desired, current, RULE_DEFAULTS))

    def _check_future(self, future, touched):
        """Refuse, before any write, what PVE would refuse half-way: unmanaged resources, a resource in
        two enabled node-affinity rules."""
        managed = set(self.state.resources())
        if self.module.check_mode:  # the plan of a run: resources an earlier task of the run creates
            managed |= set(self.module.params.get("planned_resources") or [])
        for name in touched:
            if future[name].get("type") == "node-affinity":
                self.check_nodes_exist("HA rule %s" % name, split_list(future[name].get("nodes")))
            unmanaged = sorted(s for s in split_list(future[name].get("resources")) if s not in managed)
            if unmanaged:
                raise ProxmoxError("HA rule %s names %s, which %s not HA managed: add them with "
                                   "ailab.cluster.proxmox_ha_resource first" % (
                                       name, ", ".join(unmanaged), "is" if len(unmanaged) == 1 else "are"))
        owner = {}
        for name in sorted(future):
            rule = future[name]
            if rule.get("type") != "node-affinity" or int(with_defaults(rule, RULE_DEFAULTS)["disable"]):
                continue
            for sid in split_list(rule.get("resources")):
                if sid in owner and (name in touched or owner[sid] in touched):
                    raise ProxmoxError("HA resource %s would be in two enabled node-affinity rules, %s and %s: "
                                       "Proxmox VE 9 allows one; remove it from one of them or disable one"
                                       % (sid, owner[sid], name))
                owner[sid] = name
        check_feasible(future, self.node_names(), touched)

    @staticmethod
    def _view(name, rule):
        rule = with_defaults(rule, RULE_DEFAULTS)
        view = dict(name=name, type=rule.get("type"), resources=sorted(split_list(rule.get("resources"))),
                    disable=bool(int(rule["disable"])), comment=rule["comment"])
        if rule.get("type") == "node-affinity":
            view.update(nodes=split_list(rule.get("nodes")), strict=bool(int(rule["strict"])))
        else:
            view.update(affinity=rule.get("affinity"))
        return view


# ------------------------------------------------------------------ resources
def _resource_sid(item):
    """``vm:100`` from sid ``vm:100``, sid ``100`` + type, or vmid + type."""
    if item.get("sid") is not None:
        sid = str(item["sid"]).strip()
        if sid.isdigit():
            return "%s:%s" % (item["type"], sid)
        return sid
    return "%s:%s" % (item["type"], item["vmid"])


def _check_resource(item):
    sid = _resource_sid(item)
    error = check_sids([sid], "sid")
    if error:
        return "%s (or vmid with type)" % error
    move = item["migrate_to"] or item["relocate_to"]
    if move is not None:
        if item["state"] in ("absent", "ignored"):
            return "migrate_to/relocate_to need an HA-managed resource (state is %s)" % item["state"]
        if not _NODE_RE.match(move) or ":" in move:
            return "migrate_to/relocate_to must be a node name, got %s" % move
    if item["group"] and check_configid(item["group"], "group"):
        return check_configid(item["group"], "group")
    return None


RESOURCE_SPEC = ItemSpec(
    kind="resource",
    list_name="resources",
    identity="sid",
    options=dict(
        sid=dict(type="str"),
        vmid=dict(type="int"),
        type=dict(type="str", default="vm", choices=["vm", "ct"]),
        state=dict(type="str", choices=["started", "stopped", "disabled", "ignored", "absent"]),
        max_restart=dict(type="int"),
        max_relocate=dict(type="int"),
        group=dict(type="str"),
        failback=dict(type="bool"),
        comment=dict(type="str"),
        migrate_to=dict(type="str"),
        relocate_to=dict(type="str"),
    ),
    rules=dict(mutually_exclusive=[("sid", "vmid"), ("migrate_to", "relocate_to")],
               required_one_of=[("sid", "vmid")]),
    check=_check_resource,
    key=_resource_sid,
)

RESOURCE_DEFAULTS = {"state": "started", "max_restart": 1, "max_relocate": 1, "comment": "", "group": "",
                     "failback": 1}


class ResourcePlanner(Planner):
    """HA resources: requested state, limits, group (PVE 8) / group rule membership (PVE 9), failback
    (PVE 9), comment, and migration or relocation through the HA manager."""

    spec = RESOURCE_SPEC

    def check_version(self, items):
        if self.major < 9:
            bad = [_resource_sid(i) for i in items if i["failback"] is not None]
            if bad:
                raise ProxmoxError("failback of HA resource %s needs Proxmox VE 9; on PVE 8 set nofailback on its HA "
                                   "group (ailab.cluster.proxmox_ha_group)" % ", ".join(bad[:5]))
            return
        grouped = [_resource_sid(i) for i in items if i["group"] is not None]
        if grouped:
            more = " and %d more" % (len(grouped) - 5) if len(grouped) > 5 else ""
            self.warnings.append(
                "Proxmox VE %s has no HA groups: group of %s%s is managed as membership in the node-affinity rule "
                "%s<group> (ailab.cluster.proxmox_ha_group manages its nodes)."
                % (self.major, ", ".join(grouped[:5]), more, GROUP_RULE_PREFIX))

    def plan(self, items):
        self.waits = {}
        resources = self.state.resources()
        map_groups = self.major >= 9 and any(i["group"] is not None for i in items)
        self.rules_before = self.state.rules() if map_groups else {}
        self.future_rules = dict((k, dict(v)) for k, v in self.rules_before.items())
        memberships, listed = [], set()
        for item in items:
            sid = _resource_sid(item)
            listed.add(sid)
            current = resources.get(sid)
            before = self._view(sid, current) if current else None
            if item["state"] == "absent":
                if current:
                    self._delete(sid)
                self.record(sid, "deleted" if current else "absent", before, None)
                continue
            action, after = self._plan_config(item, sid, current)
            extra = {}
            if map_groups and item["group"] is not None:
                memberships.append((sid, item["group"]))
                old_group = self._group_of(sid)
                if before is not None:
                    before["group"] = old_group
                after["group"] = item["group"]
                if action == "unchanged" and old_group != item["group"]:
                    action = "updated"
            move = self._plan_move(item, sid)
            if move is not None:
                node, target, verb = move
                extra = dict(moved=node != target, node=target)
                if node != target:
                    if before is not None:
                        before["node"] = node
                    after["node"] = target
                    if action == "unchanged":
                        action = "migrated" if verb == "migrate" else "relocated"
            self.record(sid, action, before, after, **extra)
        if self.purge:
            for sid in sorted(set(resources) - listed):
                self._delete(sid)
                self.record(sid, "deleted", self._view(sid, resources[sid]), None)
        if memberships:
            self._plan_memberships(memberships)

    def _group_of(self, sid):
        """PVE 9: the group whose rule lists ``sid`` ('' when none)."""
        for name, rule in sorted(self.rules_before.items()):
            if name.startswith(GROUP_RULE_PREFIX) and sid in split_list(rule.get("resources")):
                return name[len(GROUP_RULE_PREFIX):]
        return ""

    def _delete(self, sid):
        self.write(DELETE_RESOURCES, "delete", "cluster/ha/resources/%s" % sid, "HA resource %s" % sid)
        # PVE 9 also takes it out of its rules (purge=1) and drops the rules left empty
        for name, rule in list(self.future_rules.items()):
            members = split_list(rule.get("resources"))
            if sid in members:
                members.remove(sid)
                if members:
                    rule["resources"] = ",".join(members)
                else:
                    del self.future_rules[name]

    def _plan_config(self, item, sid, current):
        desired = dict(state=item["state"], max_restart=item["max_restart"], max_relocate=item["max_relocate"],
                       comment=item["comment"])
        if self.major >= 9:
            desired["failback"] = item["failback"]
        else:
            desired["group"] = item["group"]
        if current is None:
            self._check_guest(sid)
            create = dict((k, v) for k, v in desired.items() if v is not None and v != "")
            if create.get("group"):
                self._check_group_exists(sid, create["group"])
            self.write(RESOURCES, "post", "cluster/ha/resources", "HA resource %s" % sid, dict(sid=sid, **create))
            self._wait_for(sid, create.get("state", "started"))
            return "created", self._view(sid, create)
        now = dict(current, state="started") if current.get("state") == "enabled" else current
        params = update_params(desired, now, RESOURCE_DEFAULTS)
        if params.get("group"):
            self._check_group_exists(sid, params["group"])
        if params:
            self.write(RESOURCES, "put", "cluster/ha/resources/%s" % sid, "HA resource %s" % sid, params)
        if "state" in params or "delete" in params and "state" in split_list(params["delete"]):
            self._wait_for(sid, applied(now, params).get("state") or "started")
        return ("updated" if params else "unchanged"), self._view(sid, applied(current, params))

    def _wait_for(self, sid, requested):
        """Remember to wait for the service state that ``requested`` leads to (none for ignored)."""
        target = SERVICE_STATE.get(requested)
        if target is not None:
            self.waits[sid] = target

    def settle(self, client):
        timeout = self.module.params["wait_timeout"]
        if self.waits and timeout:
            wait_for_services(client, self.waits, timeout)

    def _check_guest(self, sid):
        guests, _nodes = self.state.cluster()
        kind, vmid = sid.split(":")
        guest = guests.get(int(vmid))
        if guest is None and self.module.check_mode and int(vmid) in (self.module.params.get("planned_guests") or []):
            return {"vmid": int(vmid), "type": "qemu" if kind == "vm" else "lxc"}  # created earlier in this run
        if guest is None:
            raise ProxmoxError("HA resource %s: there is no VM or container %s in the cluster; create the guest "
                               "first" % (sid, vmid))
        actual = "vm" if guest.get("type") == "qemu" else "ct"
        if actual != kind:
            raise ProxmoxError("HA resource %s: guest %s is a %s, so its HA id is %s:%s; fix sid or type"
                               % (sid, vmid, "VM" if actual == "vm" else "container", actual, vmid))
        return guest

    def _check_group_exists(self, sid, group):
        planned = [g.get("name") for g in self.module.params.get("planned_groups") or []
                   if g.get("state", "present") != "absent"]
        if self.module.check_mode and group in planned:
            return  # created by an earlier task of this run
        if group not in self.state.groups():
            raise ProxmoxError("HA resource %s: HA group %s does not exist; create it with "
                               "ailab.cluster.proxmox_ha_group first" % (sid, group))

    def _plan_move(self, item, sid):
        """``(node, target, verb)`` when migrate_to/relocate_to is set; plans the HA request if needed."""
        target = item["migrate_to"] or item["relocate_to"]
        if target is None:
            return None
        verb = "migrate" if item["migrate_to"] else "relocate"
        _guests, nodes = self.state.cluster()
        if target not in nodes and target in self.planned_nodes():
            # check mode: the node joins earlier in the run, so the request is planned like one to a member
            nodes = dict(nodes, **{target: True})
        if target not in nodes:
            raise ProxmoxError("HA resource %s: cannot %s to %s, which is not a node of this cluster (nodes: %s)"
                               % (sid, verb, target, ", ".join(sorted(nodes))))
        node = self._check_guest(sid).get("node")
        if node == target:
            return node, target, verb
        if not nodes[target]:
            raise ProxmoxError("HA resource %s: cannot %s to %s, the node is offline; bring it back or choose "
                               "another node" % (sid, verb, target))
        timeout = self.module.params["wait_timeout"]
        what = "HA %s of %s from %s to %s" % (verb, sid, node, target)

        def wait(client, answer):
            blocking = answer.get("blocking-resources") if isinstance(answer, dict) else None
            if blocking:
                raise ProxmoxError("%s refused by the HA manager: blocked by %s; change the resource-affinity rules "
                                   "or move those first" % (what, ", ".join(
                                       "%s (%s)" % (b.get("sid"), b.get("cause")) for b in blocking)))
            if timeout:
                wait_for_node(client, sid, target, timeout, what)

        self.write(MOVES, "post", "cluster/ha/resources/%s/%s" % (sid, verb), what, dict(node=target), then=wait)
        return node, target, verb

    def _plan_memberships(self, memberships):
        """PVE 9: put each resource in the rule of its group and take it out of other group rules."""
        rules = self.future_rules
        baseline = dict((k, dict(v)) for k, v in rules.items())  # after PVE's own purge of deleted resources
        for sid, group in memberships:
            target = group_rule_id(group) if group else None
            for name, rule in sorted(rules.items()):
                members = split_list(rule.get("resources"))
                if sid not in members or name == target or rule.get("type") != "node-affinity":
                    continue
                if name.startswith(GROUP_RULE_PREFIX):
                    members.remove(sid)
                    rule["resources"] = ",".join(members)
                elif target and not int(with_defaults(rule, RULE_DEFAULTS)["disable"]):
                    raise ProxmoxError("HA resource %s is in node-affinity rule %s, so it cannot join group %s "
                                       "(rule %s): a resource can be in one enabled node-affinity rule; remove it "
                                       "from %s or drop group" % (sid, name, group, target, name))
            if target is None:
                continue
            if target not in rules:
                _guests, nodes = self.state.cluster()
                rules[target] = dict(type="node-affinity", resources=sid, nodes=",".join(sorted(nodes)), disable=1,
                                     comment="Generated from HA group '%s'." % group)
                self.warnings.append(
                    "HA group %s has no rule %s yet: created it disabled with %s on all nodes; "
                    "ailab.cluster.proxmox_ha_group enables it with the group's nodes" % (group, target, sid))
                continue
            if rules[target].get("type") != "node-affinity":
                raise ProxmoxError("HA resource %s: group %s maps to rule %s, which is a %s rule; rename that rule"
                                   % (sid, group, target, rules[target].get("type")))
            members = split_list(rules[target].get("resources"))
            if sid not in members:
                rules[target]["resources"] = ",".join(members + [sid])
        for name in sorted(rules):
            old, new = baseline.get(name), rules[name]
            if old is None:
                self.write(RULES_GROW, "post", "cluster/ha/rules", "HA rule %s" % name, dict(rule=name, **new))
            elif unordered_list(old.get("resources")) == unordered_list(new.get("resources")):
                continue
            elif not split_list(new.get("resources")):
                self.write(RULES_SHRINK, "delete", "cluster/ha/rules/%s" % name, "HA rule %s" % name)
            else:
                shrinking = set(split_list(new.get("resources"))) <= set(split_list(old.get("resources")))
                self.write(RULES_SHRINK if shrinking else RULES_GROW, "put", "cluster/ha/rules/%s" % name,
                           "HA rule %s" % name, dict(type=old.get("type"), resources=new["resources"]))

    def _view(self, sid, resource):
        resource = with_defaults(resource, RESOURCE_DEFAULTS)
        view = dict(sid=sid, state=resource["state"], max_restart=int(resource["max_restart"]),
                    max_relocate=int(resource["max_relocate"]), comment=resource["comment"])
        if self.major >= 9:
            view["failback"] = bool(int(resource["failback"]))
        else:
            view["group"] = resource["group"]
        return view


# The service state the HA manager reports once it has done what a requested state asks for.
SERVICE_STATE = {"started": "started", "enabled": "started", "stopped": "stopped", "disabled": "stopped"}


def wait_for_services(client, targets, timeout, poll=0.5):
    """Wait until ``ha-manager status`` shows each service of ``targets`` (``{sid: state}``) in its state.

    HA state changes are requests: the CRM and LRM act on them one or two rounds (about 10 s
    each) after the API answered (pve-ha-manager src/PVE/HA/Manager.pm, LRM.pm).
    """
    deadline = time.time() + timeout
    delay = 0.05
    pending = dict(targets)
    while True:
        services = dict((e.get("sid"), e) for e in client.get("cluster/ha/status/current", what="the HA status") or []
                        if e.get("type") == "service")
        for sid in sorted(pending):
            entry = services.get(sid, {})
            if entry.get("state") == pending[sid]:
                del pending[sid]
            elif entry.get("state") == "error":
                raise ProxmoxError("HA resource %s is in state error on %s instead of %s: see ha-manager status and "
                                   "the task log of the guest, fix the cause, then set the state to disabled and back"
                                   % (sid, entry.get("node") or "no node", pending[sid]))
        if not pending:
            return
        if time.time() > deadline:
            sid = sorted(pending)[0]
            entry = services.get(sid, {})
            raise ProxmoxError("Timed out after %ss waiting for HA resource %s to be %s: the HA manager reports it as "
                               "%s on %s (ha-manager status shows why; raise wait_timeout if the cluster is just slow)"
                               % (timeout, sid, pending[sid], entry.get("state", "not listed"),
                                  entry.get("node") or "no node"))
        time.sleep(delay)
        delay = min(delay * 2, poll)


def wait_for_node(client, sid, node, timeout, what, poll=0.5):
    """Wait until the HA manager reports ``sid`` on ``node`` (migrations run after the API answers)."""
    deadline = time.time() + timeout
    delay = 0.05
    while True:
        for entry in client.get("cluster/ha/status/current", what="the HA status") or []:
            if entry.get("sid") == sid and entry.get("node") == node:
                return
        if time.time() > deadline:
            raise ProxmoxError("Timed out after %ss waiting for %s; the HA manager may still be working on it "
                               "(see ha-manager status)" % (timeout, what))
        time.sleep(delay)
        delay = min(delay * 2, poll)
