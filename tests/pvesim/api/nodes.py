"""Node endpoints: ``/nodes``, node status, tasks, node storage views and PCI hardware."""

import time

from ..errors import ApiError, TaskFailure
from ..formats import split_list
from . import route
from .cluster import storage_resource


@route("GET", "/nodes")
def list_nodes(call):
    """All cluster nodes with online/offline status."""
    state = call.state
    result = []
    for node in state.nodes.values():
        entry = {"node": node.name, "status": "online" if node.online else "offline", "id": f"node/{node.name}",
                 "type": "node", "level": "", "ssl_fingerprint": call.app.fingerprint}
        if node.online:
            used = sum(g.memory_bytes() for g in state.guests.values() if g.node == node.name and g.status == "running")
            entry.update({"maxcpu": node.cpus, "cpu": 0.03, "maxmem": node.memory,
                          "mem": min(node.memory, used + 4 * 1024**3), "maxdisk": 100 * 1024**3,
                          "disk": 12 * 1024**3, "uptime": int(time.time() - node.boot_time)})
        result.append(entry)
    return result


@route("GET", "/nodes/{node}/status")
def node_status(call):
    """CPU, memory, kernel and pve-manager version of a node."""
    state = call.state
    node = state.online_node(call.get("node"))
    personality = call.personality
    used = sum(g.memory_bytes() for g in state.guests.values() if g.node == node.name and g.status == "running")
    used = min(node.memory, used + 4 * 1024**3)
    release = personality.kernel.rsplit("-pve", 1)[0]
    return {
        "uptime": int(time.time() - node.boot_time),
        "cpu": 0.03,
        "wait": 0.0,
        "loadavg": ["0.42", "0.37", "0.30"],
        "idle": 0,
        "kversion": f"Linux {personality.kernel} #1 SMP PREEMPT_DYNAMIC PMX {release}-1 x86_64",
        "pveversion": personality.pveversion,
        "current-kernel": {"sysname": "Linux", "release": personality.kernel, "machine": "x86_64",
                           "version": f"#1 SMP PREEMPT_DYNAMIC PMX {release}-1"},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "cpuinfo": {"model": node.cpu_model, "cpus": node.cpus, "sockets": node.sockets,
                    "cores": node.cpus // 2 // max(1, node.sockets) or 1, "mhz": "4000.000", "hvm": "1",
                    "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr svm"},
        "memory": {"total": node.memory, "used": used, "free": node.memory - used, "available": node.memory - used},
        "swap": {"total": 8 * 1024**3, "used": 0, "free": 8 * 1024**3},
        "rootfs": {"total": 100 * 1024**3, "used": 12 * 1024**3, "free": 88 * 1024**3, "avail": 83 * 1024**3},
        "ksm": {"shared": 0},
    }


def _task(call):
    task = call.app.tasks.get(call.get("upid"))
    if task is None:
        if not call.get("upid", "").startswith("UPID:"):
            raise ApiError(f"unable to parse worker upid '{call.get('upid')}'")
        raise ApiError("no such task")
    if task.node != call.get("node"):
        raise ApiError("no such task")
    return task


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(call):
    """``running`` or ``stopped`` (+ ``exitstatus``) of a task."""
    return _task(call).status_dict()


@route("GET", "/nodes/{node}/tasks/{upid}/log")
def task_log(call):
    """Task log lines ``[{n, t}]`` (``start``/``limit`` like PVE, default limit 50; ``limit=0``: to the end)."""
    task = _task(call)
    # pve-manager PVE/API2/Tasks.pm read_task_log: start // 0, limit // 50, then PVE::Tools::dump_logfile
    # (pve-common src/PVE/Tools.pm dump_logfile_by_filehandle): read_until_end = (limit == 0), so limit=0
    # returns every line from ``start`` to the end of the log, not the default 50; lines are numbered from
    # 1 (``n``); an empty log is the one line "no content"; a start past the end gives [].
    start = call.get("start", 0)
    limit = call.get("limit", 50)
    lines = task.lines or ["no content"]
    selected = lines[start : start + limit] if limit else lines[start:]
    return [{"n": start + index + 1, "t": text} for index, text in enumerate(selected)]


@route("GET", "/nodes/{node}/tasks/{upid}")
def task_index(call):
    """Directory index of a task."""
    _task(call)
    return [{"name": "log"}, {"name": "status"}]


@route("DELETE", "/nodes/{node}/tasks/{upid}")
def stop_task(call):
    """Stop a running task: when it finishes it fails with ``received interrupt`` and changes nothing."""
    task = _task(call)
    if task.status == "running":
        task.work = _interrupted(task.undo)


def _interrupted(undo):
    def work(task):
        if undo is not None:
            undo(task)
        raise TaskFailure("received interrupt")

    return work


@route("GET", "/nodes/{node}/tasks")
def list_tasks(call):
    """Recent tasks of a node, newest first, with PVE's filters."""
    tasks = call.app.tasks.recent(call.get("node"))
    vmid = call.get("vmid")
    typefilter = call.get("typefilter")
    userfilter = call.get("userfilter")
    source = call.get("source", "archive")
    statuses = {s.lower() for s in split_list(call.get("statusfilter", ""))}
    result = []
    for task in tasks:
        if vmid is not None and task.id != str(vmid):
            continue
        if typefilter and task.type != typefilter:
            continue
        if userfilter and userfilter not in task.user:
            continue
        if source == "active" and task.status != "running":
            continue
        if source == "archive" and task.status == "running":
            continue
        if call.get("errors") and task.exitstatus in (None, "OK"):
            continue
        if statuses:
            kind = "ok" if task.exitstatus == "OK" else "error"
            if kind not in statuses:
                continue
        if call.get("since") and task.starttime < call.get("since"):
            continue
        if call.get("until") and task.starttime > call.get("until"):
            continue
        result.append(task.list_dict())
    start = call.get("start", 0)
    limit = call.get("limit", 50)
    return result[start : start + limit]


def _node_storages(call, node):
    state = call.state
    for storage_id, config in state.storages.items():
        allowed = split_list(config.get("nodes", ""))
        if not allowed or node in allowed:
            yield storage_id, config


def _storage_entry(call, storage_id, config, node):
    resource = storage_resource(call.state, storage_id, config, call.state.nodes[node])
    enabled = not int(config.get("disable", 0))
    total, used = resource["maxdisk"], resource["disk"]
    return {
        "storage": storage_id, "type": config.get("type"), "content": config.get("content", ""),
        "shared": resource["shared"], "enabled": int(enabled), "active": int(enabled),
        "total": total, "used": used, "avail": total - used, "used_fraction": round(used / total, 6) if total else 0,
    }


@route("GET", "/nodes/{node}/storage")
def node_storage(call):
    """Storages available on a node with usage (``content``, ``storage``, ``enabled`` filters)."""
    node = call.get("node")
    wanted = set(split_list(call.get("content", "")))
    result = []
    for storage_id, config in _node_storages(call, node):
        if call.get("storage") and call.get("storage") != storage_id:
            continue
        if wanted and not wanted & set(split_list(config.get("content", ""))):
            continue
        entry = _storage_entry(call, storage_id, config, node)
        if call.get("enabled") and not entry["enabled"]:
            continue
        if call.get("target"):
            target = call.get("target")
            allowed = split_list(config.get("nodes", ""))
            if allowed and target not in allowed:
                continue
        result.append(entry)
    return result


@route("GET", "/nodes/{node}/storage/{storage}/status")
def node_storage_status(call):
    """Usage of one storage on a node."""
    node, storage_id = call.get("node"), call.get("storage")
    config = call.state.storage_on_node(storage_id, node)
    entry = _storage_entry(call, storage_id, config, node)
    entry.pop("storage")
    entry.pop("used_fraction")
    return entry


@route("GET", "/nodes/{node}/storage/{storage}/content")
def node_storage_content(call):
    """Volumes on a storage as seen from a node (``content`` and ``vmid`` filters)."""
    node, storage_id = call.get("node"), call.get("storage")
    call.state.storage_on_node(storage_id, node)
    scope = "" if call.state.is_shared(storage_id) else node
    result = []
    for (volume_scope, _ignored), volume in sorted(call.state.volumes.items()):
        if volume.storage != storage_id or volume_scope != scope:
            continue
        if call.get("content") and volume.content != call.get("content"):
            continue
        if call.get("vmid") is not None and volume.vmid != call.get("vmid"):
            continue
        result.append(volume.as_content())
    return result


@route("GET", "/nodes/{node}/hardware/pci")
def node_pci(call):
    """PCI devices of a node from the seed (GPUs for passthrough)."""
    node = call.state.online_node(call.get("node"))
    blacklist = split_list(call.get("pci-class-blacklist", "05;06;0b"))
    result = []
    for device in node.pci_devices:
        device_class = str(device.get("class", "0x030000"))
        if any(device_class[2:].startswith(prefix) for prefix in blacklist):
            continue
        result.append(dict(device))
    return result
