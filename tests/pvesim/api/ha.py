"""High availability: status, resources, groups (PVE 8) and rules (PVE 9).

The HA manager is modelled as acting at once: setting a resource's requested state starts or
stops the guest, and services follow their group (PVE 8) or node-affinity rule (PVE 9) to the
highest-priority online node. ``migrate``/``relocate`` requests start at once what the HA stack
runs for them (``guests.start_ha_move``: a ``qmigrate``/``vzmigrate`` task on the source node, a
relocate stops and starts the guest); the guest moves when that task ends, and until then the
service shows ``migrate``/``relocate``. On PVE 9 all group calls are refused by
``Personality.refusal`` before they reach this module.
"""

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
    if requested in ("stopped", "disabled"):
        return "stopped", guest.node
    return ("started" if guest.status == "running" else "starting"), guest.node


def apply_resource(state, sid):
    """Make the guest follow its HA resource: requested state and preferred node."""
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
    if resource.get("state") in ("started", "enabled"):
        if guest.status != "running":
            guest.status, guest.started = "running", time.time()
    elif guest.status == "running":
        guest.status, guest.started = "stopped", None


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
    if call.personality.ha_rules:
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
    resource = {"type": kind}
    resource.update({k: call.get(k) for k in RESOURCE_OPTIONS if call.get(k) is not None})
    resource["state"] = "started" if resource.get("state", "started") == "enabled" else resource.get("state", "started")
    state.ha_resources[sid] = resource
    apply_resource(state, sid)


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
    apply_resource(state, sid)


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
            apply_resource(state, sid)


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
            apply_resource(state, sid)


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


def _check_rule(state, name, rule, errors_prefix):
    """Semantic checks of a rule (managed resources, known nodes, feasibility)."""
    resources = split_list(rule.get("resources", ""))
    unmanaged = sorted(r for r in resources if r not in state.ha_resources)
    if unmanaged:
        raise ApiError(f"{errors_prefix}cannot use unmanaged resource(s) {', '.join(unmanaged)}.")
    nodes = sorted({entry.partition(":")[0] for entry in split_list(rule.get("nodes", ""))} - set(state.nodes))
    if nodes:
        raise ApiError(f"{errors_prefix}cannot use non-existant node(s) {', '.join(nodes)}.")
    errors = {}
    if rule.get("type") == "resource-affinity" and len(resources) < 2:
        errors["resources"] = "rule must specify at least two resources"
    # PVE checks the feasibility of enabled rules only: a disabled node-affinity rule may name a
    # resource that an enabled one has too (enabling it then fails)
    if rule.get("type") == "node-affinity" and not int(rule.get("disable", 0)):
        for other_name, other in state.ha_rules.items():
            if other_name == name or other.get("type") != "node-affinity" or int(other.get("disable", 0)):
                continue
            shared = sorted(set(resources) & set(split_list(other.get("resources", ""))))
            if shared:
                errors["resources"] = f"resource '{shared[0]}' is already used in another node affinity rule"
    if errors:
        raise ParamError(errors, f"Rule '{name}' is invalid.")


@route("GET", "/cluster/ha/rules")
def list_rules(call):
    """All HA rules in order (``type`` and ``resource`` filters)."""
    state = call.state
    digest = digest_of(state.ha_rules)
    result = []
    for name, rule in sorted(state.ha_rules.items(), key=lambda item: item[1].get("order", 0)):
        if call.get("type") and rule.get("type") != call.get("type"):
            continue
        if call.get("resource") and normalize_sid(call.get("resource")) not in split_list(rule.get("resources", "")):
            continue
        result.append(_rule_entry(state, name, rule, digest))
    return result


@route("GET", "/cluster/ha/rules/{rule}")
def read_rule(call):
    """One HA rule."""
    state = call.state
    rule = state.ha_rules.get(call.get("rule"))
    if rule is None:
        raise ApiError(f"no such ha rule '{call.get('rule')}'")
    return _rule_entry(state, call.get("rule"), rule)


@route("POST", "/cluster/ha/rules")
def create_rule(call):
    """Create a node-affinity or resource-affinity rule."""
    state = call.state
    name, rule_type = call.get("rule"), call.get("type")
    options = {k: v for k, v in call.params.items() if k not in ("rule", "type")}
    for key in options:
        if key not in RULE_OPTIONS[rule_type]:
            raise ApiError(f"unexpected property '{key}'")
    for key in RULE_REQUIRED[rule_type]:
        if key not in options:
            raise ApiError(f"missing value for required option '{key}'")
    if name in state.ha_rules:
        raise ApiError(f"create ha rule failed: HA rule '{name}' already defined")
    rule = {"type": rule_type, **options}
    _check_rule(state, name, rule, "create ha rule failed: ")
    rule["order"] = max([r.get("order", 0) for r in state.ha_rules.values()] + [0]) + 1
    state.ha_rules[name] = rule
    for sid in split_list(rule.get("resources", "")):
        apply_resource(state, sid)


@route("PUT", "/cluster/ha/rules/{rule}")
def update_rule(call):
    """Update a rule (its type cannot change); ``delete`` removes optional settings."""
    state = call.state
    name = call.get("rule")
    rule = state.ha_rules.get(name)
    if rule is None:
        raise ApiError(f"update HA rules failed: HA rule '{name}' does not exist")
    if call.get("digest") and call.get("digest") != digest_of(state.ha_rules):
        raise ApiError("update HA rules failed: detected modified configuration - file changed by other user? "
                       "Try again.")
    if call.get("type") != rule["type"]:
        raise ApiError("update HA rules failed: types does not match")
    options = {k: v for k, v in call.params.items() if k not in ("rule", "type", "digest", "delete")}
    for key in options:
        if key not in RULE_OPTIONS[rule["type"]]:
            raise ApiError(f"update HA rules failed: unexpected property '{key}'")
    updated = dict(rule, **options)
    for key in split_list(call.get("delete", "")):
        if key in RULE_REQUIRED[rule["type"]]:
            raise ApiError(f"update HA rules failed: unable to delete required option '{key}'")
        updated.pop(key, None)
    _check_rule(state, name, updated, "update HA rules failed: ")
    state.ha_rules[name] = updated
    for sid in split_list(updated.get("resources", "")):
        apply_resource(state, sid)


@route("DELETE", "/cluster/ha/rules/{rule}")
def delete_rule(call):
    """Delete a rule (no error when it does not exist, as in PVE)."""
    call.state.ha_rules.pop(call.get("rule"), None)
