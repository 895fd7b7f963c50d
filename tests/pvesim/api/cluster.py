"""Cluster-wide read endpoints: ``/version``, ``/cluster/status``, ``/cluster/resources``, ``/cluster/nextid``."""

import math
import time

from ..errors import ParamError
from ..formats import split_list
from . import route


@route("GET", "/version")
def version(call):
    """pve-manager version of the answering node."""
    personality = call.personality
    return {"version": personality.version, "release": personality.release, "repoid": personality.repoid,
            "console": "html5"}


@route("GET", "/cluster/status")
def cluster_status(call):
    """Cluster entry (name, quorate, node count) followed by one entry per node.

    A standalone node reports only itself, with node id 0 (PVE's fake entry for the local node).
    """
    state = call.state
    local = state.local_node().name
    if not state.clustered:
        node = state.local_node()
        return [{"type": "node", "id": f"node/{node.name}", "name": node.name, "nodeid": 0, "ip": node.ip,
                 "online": 1, "local": 1, "level": ""}]
    entries = [{
        "type": "cluster", "id": "cluster", "name": state.cluster_name, "nodes": len(state.nodes),
        "quorate": int(state.quorate()), "version": state.config_version,
    }]
    for node in state.nodes.values():
        entries.append({
            "type": "node", "id": f"node/{node.name}", "name": node.name, "nodeid": node.nodeid, "ip": node.ip,
            "online": int(node.online), "local": int(node.name == local), "level": "",
        })
    return entries


def node_resource(state, node):
    """The ``/cluster/resources`` entry of a node."""
    used = sum(g.memory_bytes() for g in state.guests.values() if g.node == node.name and g.status == "running")
    entry = {"id": f"node/{node.name}", "type": "node", "node": node.name, "status": "online" if node.online else
             "offline", "level": "", "cgroup-mode": 2}
    if node.online:
        entry.update({"maxcpu": node.cpus, "cpu": 0.03, "maxmem": node.memory,
                      "mem": min(node.memory, used + 4 * 1024**3), "maxdisk": 100 * 1024**3, "disk": 12 * 1024**3,
                      "uptime": int(time.time() - node.boot_time)})
    return entry


# What pvestatd reports about a guest (about every 10 s, broadcast through the RRD cache) and
# /cluster/resources therefore shows with a lag: pve-manager PVE/API2Tools.pm extract_vm_stats
# starts each entry as {id, vmid, node, type, status => 'unknown'} and fills these keys only when
# the RRD cache has data for the guest (pvestatd's update_qemu_status/update_lxc_status).
STAT_KEYS = ("name", "status", "template", "maxcpu", "maxmem", "maxdisk", "mem", "cpu", "disk", "uptime", "netin",
             "netout", "diskread", "diskwrite")


def _live_stats(state, guest):
    node = state.nodes[guest.node]
    status = guest.status
    return {
        "name": guest.name, "status": status, "template": int(guest.config.get("template", 0)),
        "maxcpu": guest.cpus(node.cpus), "maxmem": guest.memory_bytes(), "maxdisk": guest.boot_disk_size(),
        "mem": guest.memory_bytes() // 3 if status == "running" else 0, "cpu": 0.01 if status == "running" else 0,
        "disk": 0, "uptime": guest.uptime(), "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
    }


def guest_stats(state, guest, interval, now=None):
    """The pvestatd view of ``guest`` (the STAT_KEYS), or None while pvestatd has not seen it yet.

    pvestatd runs every ``interval`` seconds (``stats_interval``; 0 means always fresh). What a guest
    showed at its last round is kept on the guest (``pvestatd``) and renewed once a new round has
    begun; a guest created (``created_at``) after the latest round has no data yet. The renewal takes
    the state at the first read after a round, not at the round itself: a change made between the
    round and that read shows one round early.
    """
    now = time.time() if now is None else now
    if not interval or interval <= 0:
        stats = _live_stats(state, guest)
        guest.pvestatd = (now, stats)  # what a longer interval set later starts from
        return stats
    round_start = math.floor(now / interval) * interval
    seen = getattr(guest, "pvestatd", None)
    if seen is not None and seen[0] >= round_start:
        return seen[1]
    if getattr(guest, "created_at", 0.0) > round_start:
        return seen[1] if seen is not None else None
    stats = _live_stats(state, guest)
    guest.pvestatd = (round_start, stats)
    return stats


def guest_resource(state, guest, interval=0.0):
    """The ``/cluster/resources`` entry of a VM or container (pvestatd data lags by ``interval``)."""
    node = state.nodes[guest.node]
    entry = {"id": f"{guest.kind}/{guest.vmid}", "type": guest.kind, "vmid": guest.vmid, "node": guest.node,
             "status": "unknown"}
    stats = guest_stats(state, guest, interval)
    if stats is not None and node.online:
        entry.update(stats)
    elif stats is not None:  # the node is gone: PVE keeps the last data but cannot say the state
        entry.update(stats, status="unknown", mem=0, cpu=0)
    # live keys: the config lock and tags (pmxcfs), the HA state (the manager status)
    if guest.lock:
        entry["lock"] = guest.lock
    if guest.config.get("tags"):
        entry["tags"] = guest.config["tags"]
    ha = state.ha_managed(guest)
    if ha is not None:
        entry["hastate"] = ha.get("state", "started")
    return entry


def storage_resource(state, storage_id, config, node):
    """The ``/cluster/resources`` entry of a storage on one node."""
    total, used = state.storage_usage(storage_id, node.name)
    return {
        "id": f"storage/{node.name}/{storage_id}", "type": "storage", "storage": storage_id, "node": node.name,
        "status": "available" if node.online and not int(config.get("disable", 0)) else "unknown",
        "plugintype": config.get("type"), "content": config.get("content", ""),
        "shared": int(state.is_shared(storage_id)), "maxdisk": total, "disk": used,
    }


@route("GET", "/cluster/resources")
def cluster_resources(call):
    """Nodes, guests and storages of the cluster (``type`` filters: vm, node, storage, sdn)."""
    state = call.state
    wanted = call.get("type")
    result = []
    if wanted in (None, "node"):
        result.extend(node_resource(state, node) for node in state.nodes.values())
    if wanted in (None, "vm"):
        interval = call.app.settings.stats_interval
        result.extend(guest_resource(state, guest, interval) for guest in sorted(state.guests.values(), key=lambda g: g.vmid))
    if wanted in (None, "storage"):
        for storage_id, config in state.storages.items():
            allowed = split_list(config.get("nodes", ""))
            for node in state.nodes.values():
                if not allowed or node.name in allowed:
                    result.append(storage_resource(state, storage_id, config, node))
    return result


@route("GET", "/cluster/nextid")
def next_id(call):
    """Lowest free VMID, or check that a given ``vmid`` is free (400 when it is taken).

    PVE answers the id as a JSON string ("100"), and so does the simulator.
    """
    state = call.state
    vmid = call.get("vmid")
    if vmid is not None:
        if vmid in state.guests:
            raise ParamError({"vmid": f"VM {vmid} already exists"})
        return str(vmid)
    return str(state.next_vmid())
