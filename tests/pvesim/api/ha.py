"""High availability: status, resources, groups (PVE 8) and rules (PVE 9).

HA state changes are requests, as in pve-ha-manager: creating or updating a resource only writes
its configuration; the CRM (src/PVE/HA/Manager.pm, ``manage``) picks the request up in its next
round and the LRM (src/PVE/HA/LRM.pm) starts or stops the guest a round later. A round lasts
``Settings.ha_round`` seconds when the simulator has that setting, else ``HA_ROUND`` (short, so
tests stay fast; real clusters run a round about every 10 s). A service passes through
``queued`` (configured, not yet seen by the CRM), ``request_start`` -> ``starting`` (the CRM has
set it started, the LRM has not started the guest yet) -> ``started``, and ``request_stop`` ->
``stopped``; ``GET /cluster/ha/status/current`` shows these states. Services follow their group
(PVE 8) or node-affinity rule (PVE 9) to the highest-priority online node at once.

``migrate``/``relocate`` requests start at once what the HA stack runs for them
(``guests.start_ha_move``: a ``qmigrate``/``vzmigrate`` task on the source node, a relocate stops
and starts the guest); the guest moves when that task ends, and until then the service shows
``migrate``/``relocate``.

Rules are checked for feasibility together with the existing rules on every write, as
src/PVE/API2/HA/Rules.pm (``$assert_feasibility``) does with the checks of src/PVE/HA/Rules.pm,
Rules/NodeAffinity.pm and Rules/ResourceAffinity.pm (see ``feasibility_errors``).

On PVE 9 group calls are refused by ``Personality.refusal`` before they reach this module, unless
the personality is ``9-upgraded`` (a cluster upgraded from 8 whose groups the CRM has not migrated
yet): then group calls work, ``GET /cluster/ha/rules`` shows the computed ``ha-group-*`` rules and
rule writes fail with 500 "ha groups have not been migrated yet".

Not modelled: the CRM's own group migration (it needs every node on 9 with an active LRM), fencing
delays, and ``max_restart``/``max_relocate`` accounting.
"""

import threading
import time

from ..errors import ApiError, ParamError
from ..formats import split_list
from ..state import digest_of, normalize_sid
from . import route
from .guests import start_ha_move

RESOURCE_OPTIONS = ("comment", "group", "max_relocate", "max_restart", "state", "failback")
GROUP_OPTIONS = ("comment", "nodes", "nofailback", "restricted")
RULE_OPTIONS = {
    "node-affinity": ("comment", "disable", "nodes", "resources", "strict"),
    "resource-affinity": ("affinity", "comment", "disable", "resources"),
}
RULE_REQUIRED = {"node-affinity": ("resources", "nodes"), "resource-affinity": ("resources", "affinity")}


def _stamp(seconds):
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(seconds))


def _guest_of(state, sid):
    kind, _ignored, name = sid.partition(":")
    guest = state.guests.get(int(name)) if name.isdigit() else None
    if guest is None or (kind == "vm") != (guest.kind == "qemu"):
        return None
    return guest


def parse_sid(state, sid):
    """Normalise a resource id; a bare VMID becomes ``vm:`` or ``ct:`` depending on the guest."""
    if sid.isdigit():
        guest = state.guests.get(int(sid))
        if guest is None:
            raise ApiError(f"unable do add resource - VM/CT {sid} does not exist")
        return f"{'vm' if guest.kind == 'qemu' else 'ct'}:{sid}"
    return normalize_sid(sid)


HA_ROUND = 0.05  # seconds per CRM/LRM round unless Settings.ha_round says otherwise (PVE: about 10)


def _crm(state):
    """The CRM's service status (``{sid: {"state": ...}}``) of this state; a reset starts afresh."""
    crm = state.__dict__.get("_ha_crm")
    if crm is None or crm["resources"] is not state.ha_resources:  # load()/restore() made new dicts
        crm = {"resources": state.ha_resources, "services": {}, "timer": None}
        for sid, resource in state.ha_resources.items():  # a seeded cluster has settled long ago
            guest = _guest_of(state, sid)
            if resource.get("state") != "ignored" and guest is not None:
                crm["services"][sid] = {"state": "started" if guest.status == "running" else "stopped"}
        state.__dict__["_ha_crm"] = crm
    return crm


def _service_state(state, sid, resource):
    guest = _guest_of(state, sid)
    requested = resource.get("state", "started")
    if requested == "ignored":
        return "ignored", guest.node if guest else ""
    if guest is None:
        return "error", ""
    if not state.nodes[guest.node].online:
        return "fence", guest.node
    if sid in state.ha_moves:
        return state.ha_moves[sid]["state"], guest.node
    service = _crm(state)["services"].get(sid)
    if service is None:  # pve-ha-manager src/PVE/API2/HA/Status.pm: configured, not in the manager status yet
        return "queued", guest.node
    if service["state"] == "started" and guest.status != "running":
        return "starting", guest.node  # the CRM said started, the LRM has not started it yet
    return service["state"], guest.node


def crm_round(state):
    """One CRM round and the LRM work it triggers; True when every service has settled.

    pve-ha-manager src/PVE/HA/Manager.pm ``manage``: a new service enters as ``request_start`` or
    ``request_stop`` (``next_state_stopped`` turns a stopped service whose requested state is
    started into ``request_start``; ``next_state_started`` turns one that should stop into
    ``request_stop``); the LRM (src/PVE/HA/LRM.pm) then starts or stops the guest and the CRM
    records ``started``/``stopped`` in a later round.
    """
    services = _crm(state)["services"]
    for sid in [s for s in services if s not in state.ha_resources]:
        del services[sid]
    settled = True
    for sid, resource in sorted(state.ha_resources.items()):
        guest = _guest_of(state, sid)
        requested = "started" if resource.get("state", "started") in ("started", "enabled") else resource.get("state")
        if requested == "ignored" or guest is None:
            services.pop(sid, None)
            continue
        if sid in state.ha_moves or not state.nodes[guest.node].online:
            settled = False
            continue
        service = services.get(sid)
        if service is None:
            services[sid] = {"state": "request_start" if requested == "started" else "request_stop"}
            settled = False
            continue
        current = service["state"]
        if current == "request_start":
            service["state"] = "started"
            settled = False
        elif current == "started" and requested != "started":
            service["state"] = "request_stop"
            settled = False
        elif current == "started" and guest.status != "running":
            guest.status, guest.started = "running", time.time()  # LRM: start the guest
        elif current == "request_stop":
            if guest.status == "running":
                guest.status, guest.started = "stopped", None  # LRM: stop the guest
            service["state"] = "stopped"
            settled = False
        elif current == "stopped" and requested == "started":
            service["state"] = "request_start"
            settled = False
        elif current == "stopped" and guest.status == "running":
            guest.status, guest.started = "stopped", None
    return settled


def _round_seconds(app):
    value = getattr(app.settings, "ha_round", None)
    return HA_ROUND if value is None else float(value)


def queue_request(app):
    """Let the CRM pick up a configuration change: run rounds every ``ha_round`` seconds until settled."""
    crm = _crm(app.state)
    if crm["timer"] is not None:
        return

    def tick():
        with app.state.lock:
            current = _crm(app.state)
            if current is not crm:  # the state was reset: the new one schedules its own rounds
                return
            crm["timer"] = None
            settled = crm_round(app.state)
            if not settled:
                _schedule()
        app.state_changed()

    def _schedule():
        timer = threading.Timer(_round_seconds(app), tick)
        timer.daemon = True
        crm["timer"] = timer
        timer.start()

    _schedule()


def apply_resource(state, sid, app=None):
    """Place the service on its group's/rule's preferred node; the CRM handles start and stop."""
    resource = state.ha_resources.get(sid)
    guest = _guest_of(state, sid)
    if resource is None or guest is None or resource.get("state") == "ignored":
        return
    if not state.nodes[guest.node].online:
        return
    preferred = state.ha_preferred_nodes(sid)
    explicit = _explicit_nodes(state, sid, resource)
    if explicit and preferred and guest.node not in explicit:
        _move(state, guest, preferred[0])
    if app is not None:
        queue_request(app)


def _explicit_nodes(state, sid, resource):
    """Highest-priority online nodes of the resource's group or node-affinity rule (empty if none)."""
    entries = []
    if state.personality.ha_rules:
        for rule in state.ha_rules.values():
            if rule.get("type") == "node-affinity" and not int(rule.get("disable", 0)) and sid in split_list(
                rule.get("resources", "")
            ):
                entries = split_list(rule.get("nodes", ""))
                break
    elif resource.get("group") in state.ha_groups:
        entries = split_list(state.ha_groups[resource["group"]].get("nodes", ""))
    ranked = {}
    for entry in entries:
        name, _ignored, priority = entry.partition(":")
        if name in state.nodes and state.nodes[name].online:
            ranked[name] = int(priority or 0)
    if not ranked:
        return []
    best = max(ranked.values())
    return [name for name, priority in ranked.items() if priority == best]


def _move(state, guest, target):
    state.move_local_volumes(guest, target)
    guest.node = target


# ---------------------------------------------------------------- status
@route("GET", "/cluster/ha/status/current")
def ha_status(call):
    """Quorum, master, one LRM per node and one entry per service (like ``ha-manager status``)."""
    state = call.state
    local = state.local_node().name
    now = int(time.time())
    quorate = state.quorate()
    entries = [{"id": "quorum", "type": "quorum", "node": local, "quorate": int(quorate),
                "status": "OK" if quorate else f"No quorum on node '{local}'!"}]
    entries.append({"id": "master", "type": "master", "node": local, "timestamp": now,
                    "status": f"{local} ({'active' if quorate else 'wait_for_quorum'}, {_stamp(now)})"})
    for node in state.nodes.values():
        if not node.online:
            status = f"{node.name} (old timestamp - dead?, {_stamp(now - 120)})"
        else:
            busy = any(_guest_of(state, sid) and _guest_of(state, sid).node == node.name
                       for sid in state.ha_resources)
            status = f"{node.name} ({'active' if busy else 'idle'}, {_stamp(now)})"
        entries.append({"id": f"lrm:{node.name}", "type": "lrm", "node": node.name, "status": status,
                        "timestamp": now if node.online else now - 120})
    for sid, resource in sorted(state.ha_resources.items()):
        crm_state, node = _service_state(state, sid, resource)
        entry = {
            "id": f"service:{sid}", "type": "service", "sid": sid, "node": node, "state": crm_state,
            "crm_state": crm_state, "request_state": resource.get("state", "started"),
            "status": f"{sid} ({node}, {crm_state})",
            "max_restart": int(resource.get("max_restart", 1)), "max_relocate": int(resource.get("max_relocate", 1)),
        }
        if call.personality.ha_rules:
            entry["failback"] = int(resource.get("failback", 1))
        elif resource.get("group"):
            entry["group"] = resource["group"]
        entries.append(entry)
    return entries


@route("GET", "/cluster/ha/status/manager_status")
def manager_status(call):
    """The CRM's manager status document."""
    state = call.state
    now = int(time.time())
    local = state.local_node().name
    services = {}
    for sid, resource in state.ha_resources.items():
        crm_state, node = _service_state(state, sid, resource)
        services[sid] = {"node": node, "state": crm_state, "uid": digest_of([sid, node])[:22]}
    return {
        "manager_status": {
            "master_node": local, "timestamp": now, "service_status": services,
            "node_status": {n.name: "online" if n.online else "unknown" for n in state.nodes.values()},
        },
        "quorum": {"node": local, "quorate": str(int(state.quorate()))},
        "lrm_status": {
            n.name: {"mode": "active", "state": "active" if n.online else "lost_agent_lock", "results": {},
                     "timestamp": now if n.online else now - 120}
            for n in state.nodes.values()
        },
    }


# ------------------------------------------------------------- resources
def _resource_entry(state, sid, resource, digest=None):
    entry = {"sid": sid, **resource, "digest": digest or digest_of(state.ha_resources)}
    if not state.personality.ha_rules and entry.get("group") and entry["group"] not in state.ha_groups:
        entry["errors"] = {"group": f"group '{entry['group']}' does not exist"}
    return entry


def _resource(state, sid):
    resource = state.ha_resources.get(sid)
    if resource is None:
        raise ApiError(f"no such resource '{sid}'")
    return resource


def _check_group_param(call):
    group = call.get("group")
    if group is None:
        return
    if call.personality.ha_rules and call.personality.groups_migrated:
        raise ApiError("invalid parameter 'group': ha groups have been migrated to rules")
    if group not in call.state.ha_groups:
        raise ApiError(f"HA group '{group}' does not exist")


@route("GET", "/cluster/ha/resources")
def list_resources(call):
    """All HA resources (``type`` filter: vm or ct)."""
    state = call.state
    digest = digest_of(state.ha_resources)
    return [_resource_entry(state, sid, r, digest) for sid, r in sorted(state.ha_resources.items())
            if not call.get("type") or r.get("type") == call.get("type")]


@route("GET", "/cluster/ha/resources/{sid}")
def read_resource(call):
    """One HA resource."""
    state = call.state
    sid = parse_sid(state, call.get("sid"))
    return _resource_entry(state, sid, _resource(state, sid))


@route("POST", "/cluster/ha/resources")
def create_resource(call):
    """Put a VM/CT under HA management; the guest then follows the requested state."""
    state = call.state
    sid = parse_sid(state, call.get("sid"))
    kind = sid.split(":", 1)[0]
    if call.get("type") and call.get("type") != kind:
        raise ApiError("types does not match")
    if _guest_of(state, sid) is None:
        raise ApiError(f"resource '{sid}' does not exist in cluster")
    _check_group_param(call)
    if sid in state.ha_resources:
        raise ApiError(f"create resource failed: resource ID '{sid}' already defined")
    _crm(state)  # the services configured so far; the new one is queued until the next round
    resource = {"type": kind}
    resource.update({k: call.get(k) for k in RESOURCE_OPTIONS if call.get(k) is not None})
    resource["state"] = "started" if resource.get("state", "started") == "enabled" else resource.get("state", "started")
    state.ha_resources[sid] = resource
    apply_resource(state, sid, call.app)


@route("PUT", "/cluster/ha/resources/{sid}")
def update_resource(call):
    """Change an HA resource (requested state, limits, group/failback, comment)."""
    state = call.state
    sid = parse_sid(state, call.get("sid"))
    _check_group_param(call)
    resource = state.ha_resources.get(sid)
    if resource is None:
        raise ApiError(f"update resource failed: no such resource '{sid}'")
    if call.get("digest") and call.get("digest") != digest_of(state.ha_resources):
        raise ApiError("update resource failed: detected modified configuration - file changed by other user? "
                       "Try again.")
    for key in RESOURCE_OPTIONS:
        if call.get(key) is not None:
            resource[key] = call.get(key)
    if resource.get("state") == "enabled":
        resource["state"] = "started"
    for key in split_list(call.get("delete", "")):
        if key not in RESOURCE_OPTIONS:
            raise ApiError(f"update resource failed: no such option '{key}'")
        resource.pop(key, None)
    apply_resource(state, sid, call.app)


@route("DELETE", "/cluster/ha/resources/{sid}")
def delete_resource(call):
    """Remove a resource from HA (PVE 9: and from the rules that name it, unless purge=0)."""
    state = call.state
    sid = parse_sid(state, call.get("sid"))
    if sid not in state.ha_resources:
        raise ApiError(f"resource '{sid}' is not HA managed")
    del state.ha_resources[sid]
    if call.personality.ha_rules and call.get("purge", 1):
        for rule_id, rule in list(state.ha_rules.items()):
            remaining = [r for r in split_list(rule.get("resources", "")) if r != sid]
            if not remaining:
                del state.ha_rules[rule_id]
            else:
                rule["resources"] = ",".join(remaining)


def request_move(app, sid, target, relocate):
    """The CRM handling ``migrate``/``relocate`` of ``sid`` to ``target``: ``(comigrated, blocking)``.

    Positive resource-affinity partners move along, a negative partner on the target blocks
    (PVE 9). Unless blocked, every guest that is not on the target yet starts moving (partners
    first); a request for an offline target, or for a guest already moving, is ignored like the
    CRM does.
    """
    state = app.state
    comigrated, blocking = [], []
    if state.personality.ha_rules:
        for rule in state.ha_rules.values():
            members = split_list(rule.get("resources", ""))
            if rule.get("type") != "resource-affinity" or int(rule.get("disable", 0)) or sid not in members:
                continue
            for other in members:
                if other == sid:
                    continue
                other_guest = _guest_of(state, other)
                if rule.get("affinity") == "positive":
                    comigrated.append(other)
                elif other_guest is not None and other_guest.node == target:
                    blocking.append({"sid": other, "cause": "resource-affinity"})
    if not blocking and state.nodes[target].online:
        for moving in [*comigrated, sid]:
            moving_guest = _guest_of(state, moving)
            if moving_guest is None or moving_guest.node == target or moving in state.ha_moves:
                continue
            if state.ha_resources.get(moving, {}).get("state") == "ignored":
                continue
            start_ha_move(app, moving, moving_guest, target, relocate)
    return comigrated, blocking


def _request_move(call, relocate):
    state = call.state
    sid = parse_sid(state, call.get("sid"))
    resource = state.ha_resources.get(sid)
    if resource is None:
        raise ApiError(f"resource '{sid}' is not HA managed")
    target = call.get("node")
    state.node(target)
    comigrated, blocking = request_move(call.app, sid, target, relocate)
    if not call.personality.ha_rules:
        return None
    result = {"sid": sid, "requested-node": target}
    if comigrated:
        result["comigrated-resources"] = comigrated
    if blocking:
        result["blocking-resources"] = blocking
    return result


@route("POST", "/cluster/ha/resources/{sid}/migrate")
def migrate_resource(call):
    """Request an online migration of an HA resource to ``node`` (a qmigrate task runs at once)."""
    return _request_move(call, relocate=False)


@route("POST", "/cluster/ha/resources/{sid}/relocate")
def relocate_resource(call):
    """Request a relocation (stop, offline migration, start) of an HA resource to ``node``."""
    return _request_move(call, relocate=True)


# --------------------------------------------------------- groups (PVE 8)
def _group_entry(state, name, group, digest=None):
    return {"group": name, "type": "group", **group, "digest": digest or digest_of(state.ha_groups)}


@route("GET", "/cluster/ha/groups")
def list_groups(call):
    """All HA groups (PVE 8)."""
    state = call.state
    digest = digest_of(state.ha_groups)
    return [_group_entry(state, name, group, digest) for name, group in sorted(state.ha_groups.items())]


@route("GET", "/cluster/ha/groups/{group}")
def read_group(call):
    """One HA group (PVE 8)."""
    state = call.state
    group = state.ha_groups.get(call.get("group"))
    if group is None:
        raise ApiError(f"no such ha group '{call.get('group')}'")
    return _group_entry(state, call.get("group"), group)


@route("POST", "/cluster/ha/groups")
def create_group(call):
    """Create an HA group (PVE 8)."""
    state = call.state
    name = call.get("group")
    if call.get("type") not in (None, "group"):
        raise ApiError("types does not match")
    if name in state.ha_groups:
        raise ApiError(f"create ha group failed: ha group ID '{name}' already defined")
    state.ha_groups[name] = {k: call.get(k) for k in GROUP_OPTIONS if call.get(k) is not None}
    for sid, resource in state.ha_resources.items():
        if resource.get("group") == name:
            apply_resource(state, sid, call.app)


@route("PUT", "/cluster/ha/groups/{group}")
def update_group(call):
    """Update an HA group (PVE 8); services of the group follow the new node priorities."""
    state = call.state
    name = call.get("group")
    group = state.ha_groups.get(name)
    if group is None:
        raise ApiError(f"update ha group failed: no such ha group '{name}'")
    if call.get("digest") and call.get("digest") != digest_of(state.ha_groups):
        raise ApiError("update ha group failed: detected modified configuration - file changed by other user? "
                       "Try again.")
    for key in GROUP_OPTIONS:
        if call.get(key) is not None:
            group[key] = call.get(key)
    for key in split_list(call.get("delete", "")):
        if key not in GROUP_OPTIONS:
            raise ApiError(f"update ha group failed: no such option '{key}'")
        if key == "nodes":
            raise ApiError("update ha group failed: unable to delete required option 'nodes'")
        group.pop(key, None)
    for sid, resource in state.ha_resources.items():
        if resource.get("group") == name:
            apply_resource(state, sid, call.app)


@route("DELETE", "/cluster/ha/groups/{group}")
def delete_group(call):
    """Delete an HA group (PVE 8); refused while a resource uses it."""
    state = call.state
    name = call.get("group")
    for sid, resource in sorted(state.ha_resources.items()):
        if resource.get("group") == name:
            raise ApiError(f"delete ha group failed: ha group is used by service '{sid}'")
    state.ha_groups.pop(name, None)


# ---------------------------------------------------------- rules (PVE 9)
def _rule_entry(state, name, rule, digest=None):
    entry = {"rule": name, **rule, "digest": digest or digest_of(state.ha_rules)}
    if rule.get("type") == "node-affinity":
        entry.setdefault("strict", 0)
    return entry


def _enabled(rule):
    # pve-ha-manager src/PVE/HA/Rules.pm foreach_rule: exclude_disabled_rules skips a rule when
    # ``disable`` exists; a false ``disable`` is never stored (see _drop_false_disable)
    return not int(rule.get("disable", 0))


def _members(rule):
    return set(split_list(rule.get("resources", "")))


def _node_priorities(rule):
    nodes = {}
    for entry in split_list(rule.get("nodes", "")):
        name, _ignored, priority = entry.partition(":")
        nodes[name] = int(priority or 0)
    return nodes


def _positive_components(positive):
    """Connected positive rules: ``[(rule ids, resources)]`` (Rules/Helpers.pm find_disjoint_rules_resource_sets)."""
    components = []
    for name in sorted(positive):
        resources, ids = set(positive[name]), [name]
        for other in [c for c in components if c[1] & resources]:
            components.remove(other)
            ids, resources = other[0] + ids, other[1] | resources
        components.append((sorted(ids), resources))
    return components


def feasibility_errors(rules, nodes):
    """``{rule id: {option: [message, ...]}}`` for the enabled rules that cannot hold together.

    The checks of pve-ha-manager's ``check_feasibility`` (src/PVE/HA/Rules.pm), each named after
    its upstream function; ``nodes`` are the configured cluster nodes.
    """
    errors = {}

    def add(rule_id, message):
        errors.setdefault(rule_id, {}).setdefault("resources", []).append(message)

    node_affinity = {n: r for n, r in rules.items() if r.get("type") == "node-affinity" and _enabled(r)}
    affinity = {n: r for n, r in rules.items() if r.get("type") == "resource-affinity" and _enabled(r)}
    positive = {n: _members(r) for n, r in affinity.items() if r.get("affinity") == "positive"}
    negative = {n: _members(r) for n, r in affinity.items() if r.get("affinity") == "negative"}
    # Rules/NodeAffinity.pm check_single_resource_reference
    users = {}
    for name in sorted(node_affinity):
        for sid in sorted(_members(node_affinity[name])):
            users.setdefault(sid, []).append(name)
    for sid, names in sorted(users.items()):
        if len(names) > 1:
            for name in names:
                add(name, f"resource '{sid}' is already used in another node affinity rule")
    # Rules/ResourceAffinity.pm check_resource_affinity_resources_count
    for name in sorted(affinity):
        if len(_members(affinity[name])) < 2:
            add(name, "rule is ineffective as there are less than two resources")
    # Rules/ResourceAffinity.pm check_negative_resource_affinity_resources_count
    for name in sorted(negative):
        if len(negative[name]) > len(nodes):
            add(name, "rule defines more resources than available nodes")
    # Rules/ResourceAffinity.pm check_inter_resource_affinity_rules_consistency
    for pos in sorted(positive):
        for neg in sorted(negative):
            if len(positive[pos] & negative[neg]) >= 2:
                add(pos, "rule shares two or more resources with a negative resource affinity rule")
                add(neg, "rule shares two or more resources with a positive resource affinity rule")
    # Rules.pm check_single_priority_node_affinity_in_resource_affinity_rules
    for name in sorted(affinity):
        paired = [n for n in sorted(node_affinity) if _members(node_affinity[n]) & _members(affinity[name])]
        if any(len(set(_node_priorities(node_affinity[n]).values())) > 1 for n in paired):
            add(name, "resources are in node affinity rules with multiple priorities")
            for other in paired:
                add(other, "resources are in a resource affinity rule and cannot be in a node affinity rule "
                           "with multiple priorities")
    # Rules.pm check_single_node_affinity_per_positive_resource_affinity_rule
    for ids, resources in _positive_components(positive):
        paired = [n for n in sorted(node_affinity) if _members(node_affinity[n]) & resources]
        if len(paired) > 1:
            for name in ids:
                add(name, "resources are in multiple node affinity rules")
            for other in paired:
                add(other, "at least one resource is in a positive resource affinity rule and there are other "
                           "resources in at least one other node affinity rule already")
    # Rules.pm check_negative_resource_affinity_node_affinity_consistency
    for name in sorted(negative):
        allowed, located, paired = set(), set(), []
        for other in sorted(node_affinity):
            common = negative[name] & _members(node_affinity[other])
            if common:
                located |= common
                allowed |= set(_node_priorities(node_affinity[other]))
                paired.append(other)
        if len(allowed) < len(located):
            add(name, "two or more resources are restricted to less nodes than available to the resources")
            for other in paired:
                add(other, "at least one resource is in a negative resource affinity rule and this rule would "
                           "restrict these to less nodes than available to the resources")
    return errors


def computed_group_rules(state):
    """PVE 9 before the group migration: the ``ha-group-<name>`` rules computed from the groups.

    pve-ha-manager src/PVE/HA/Groups.pm ``migrate_groups_to_rules`` (called by
    src/PVE/API2/HA/Rules.pm ``$get_full_rules_config``): a node-affinity rule per group that
    resources use, ``strict`` from ``restricted``.
    """
    rules = {}
    for group, config in sorted(state.ha_groups.items()):
        members = sorted(sid for sid, r in state.ha_resources.items() if r.get("group") == group)
        if not members:
            continue
        rules[f"ha-group-{group}"] = {
            "type": "node-affinity", "resources": ",".join(members), "nodes": config.get("nodes", ""),
            "strict": int(config.get("restricted", 0)), "comment": f"Generated from HA group '{group}'.",
            "order": 0,
        }
    return rules


def _full_rules(state, personality):
    rules = dict(state.ha_rules)
    if not personality.groups_migrated:
        rules.update(computed_group_rules(state))
    return rules


def _check_rule(state, name, rule, errors_prefix, personality):
    """Semantic checks of a rule: managed resources, known nodes, then feasibility with the others."""
    resources = split_list(rule.get("resources", ""))
    unmanaged = sorted(r for r in resources if r not in state.ha_resources)
    if unmanaged:
        raise ApiError(f"{errors_prefix}cannot use unmanaged resource(s) {', '.join(unmanaged)}.")
    nodes = sorted({entry.partition(":")[0] for entry in split_list(rule.get("nodes", ""))} - set(state.nodes))
    if nodes:
        raise ApiError(f"{errors_prefix}cannot use non-existant node(s) {', '.join(nodes)}.")
    # src/PVE/API2/HA/Rules.pm $assert_feasibility: only the written rule's errors refuse the write
    # (400 "Rule '<id>' is invalid." with the messages per option, joined by ", ")
    errors = feasibility_errors(dict(_full_rules(state, personality), **{name: rule}), list(state.nodes))
    if name in errors:
        raise ParamError({k: ", ".join(v) for k, v in errors[name].items()}, f"Rule '{name}' is invalid.")


def _drop_false_disable(options):
    """PVE stores ``disable`` only when true: a false one is dropped, so it never enables a rule.

    pve-ha-manager src/PVE/HA/Rules.pm (``check_config``/``decode_value``: "disable" is a flag
    that is deleted when false); enabling a rule takes ``delete=disable``.
    """
    if "disable" in options and not int(options["disable"]):
        del options["disable"]
    return options


@route("GET", "/cluster/ha/rules")
def list_rules(call):
    """All HA rules in order (``type`` and ``resource`` filters)."""
    state = call.state
    digest = digest_of(state.ha_rules)
    rules = _full_rules(state, call.personality)
    errors = feasibility_errors(rules, list(state.nodes))
    result = []
    for name, rule in sorted(rules.items(), key=lambda item: (item[1].get("order", 0), item[0])):
        if call.get("type") and rule.get("type") != call.get("type"):
            continue
        if call.get("resource") and normalize_sid(call.get("resource")) not in split_list(rule.get("resources", "")):
            continue
        entry = _rule_entry(state, name, rule, digest)
        if name in errors:  # src/PVE/API2/HA/Rules.pm index: each rule with its feasibility errors
            entry["errors"] = {k: ", ".join(v) for k, v in errors[name].items()}
        result.append(entry)
    return result


@route("GET", "/cluster/ha/rules/{rule}")
def read_rule(call):
    """One HA rule."""
    state = call.state
    rules = _full_rules(state, call.personality)
    rule = rules.get(call.get("rule"))
    if rule is None:
        raise ApiError(f"no such ha rule '{call.get('rule')}'")
    entry = _rule_entry(state, call.get("rule"), rule)
    errors = feasibility_errors(rules, list(state.nodes)).get(call.get("rule"))
    if errors:
        entry["errors"] = {k: ", ".join(v) for k, v in errors.items()}
    return entry


@route("POST", "/cluster/ha/rules")
def create_rule(call):
    """Create a node-affinity or resource-affinity rule."""
    state = call.state
    if not call.personality.groups_migrated:  # src/PVE/API2/HA/Rules.pm create_rule
        raise ApiError("cannot create ha rule: ha groups have not been migrated yet")
    name, rule_type = call.get("rule"), call.get("type")
    options = _drop_false_disable({k: v for k, v in call.params.items() if k not in ("rule", "type")})
    for key in options:
        if key not in RULE_OPTIONS[rule_type]:
            raise ApiError(f"unexpected property '{key}'")
    for key in RULE_REQUIRED[rule_type]:
        if key not in options:
            raise ApiError(f"missing value for required option '{key}'")
    if name in state.ha_rules:
        raise ApiError(f"create ha rule failed: HA rule '{name}' already defined")
    rule = {"type": rule_type, **options}
    _check_rule(state, name, rule, "create ha rule failed: ", call.personality)
    rule["order"] = max([r.get("order", 0) for r in state.ha_rules.values()] + [0]) + 1
    state.ha_rules[name] = rule
    for sid in split_list(rule.get("resources", "")):
        apply_resource(state, sid, call.app)


@route("PUT", "/cluster/ha/rules/{rule}")
def update_rule(call):
    """Update a rule (its type cannot change); ``delete`` removes optional settings."""
    state = call.state
    if not call.personality.groups_migrated:  # src/PVE/API2/HA/Rules.pm update_rule
        raise ApiError("cannot update ha rule: ha groups have not been migrated yet")
    name = call.get("rule")
    rule = state.ha_rules.get(name)
    if rule is None:
        raise ApiError(f"update HA rules failed: HA rule '{name}' does not exist")
    if call.get("digest") and call.get("digest") != digest_of(state.ha_rules):
        raise ApiError("update HA rules failed: detected modified configuration - file changed by other user? "
                       "Try again.")
    if call.get("type") != rule["type"]:
        raise ApiError("update HA rules failed: types does not match")
    options = _drop_false_disable({k: v for k, v in call.params.items()
                                   if k not in ("rule", "type", "digest", "delete")})
    for key in options:
        if key not in RULE_OPTIONS[rule["type"]]:
            raise ApiError(f"update HA rules failed: unexpected property '{key}'")
    updated = dict(rule, **options)
    for key in split_list(call.get("delete", "")):
        if key in RULE_REQUIRED[rule["type"]]:
            raise ApiError(f"update HA rules failed: unable to delete required option '{key}'")
        updated.pop(key, None)
    _check_rule(state, name, updated, "update HA rules failed: ", call.personality)
    state.ha_rules[name] = updated
    for sid in split_list(updated.get("resources", "")):
        apply_resource(state, sid, call.app)


@route("DELETE", "/cluster/ha/rules/{rule}")
def delete_rule(call):
    """Delete a rule (no error when it does not exist, as in PVE)."""
    if not call.personality.groups_migrated:  # src/PVE/API2/HA/Rules.pm delete_rule
        raise ApiError("cannot delete ha rule: ha groups have not been migrated yet")
    call.state.ha_rules.pop(call.get("rule"), None)
