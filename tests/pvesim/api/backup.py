"""``/cluster/backup``: scheduled vzdump jobs and the volumes they would include.

Jobs are stored as POST/PUT send them (property strings); reads decode ``prune-backups``,
``fleecing`` and ``performance`` into objects, as PVE does.
"""

import secrets

from ..errors import ApiError, ParamError
from ..formats import split_list
from ..state import digest_of, is_disk_key, parse_property_string
from . import route

CONTROL_PARAMS = ("id", "delete", "digest")
DOW_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Options kept as property strings in jobs.cfg and decoded into objects when read, with their
# default key and the keys whose values are numbers or booleans (integers in the JSON answer).
# pve-manager PVE/Jobs/VZDump.pm decode_value: parse_property_string for each key of
# PVE::VZDump::Common::PROPERTY_STRINGS (performance, prune-backups, fleecing); the GET schema of
# /cluster/backup[/{id}] declares them `type: object`.
PROPERTY_STRINGS = {
    "prune-backups": (None, ("keep-all", "keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly",
                             "keep-yearly")),
    "fleecing": ("enabled", ("enabled",)),
    "performance": (None, ("max-workers", "pbs-entries-max")),
}


def _job(state, job_id):
    job = state.backup_jobs.get(job_id)
    if job is None:
        raise ApiError(f"Job '{job_id}' does not exist")
    return job


def _check(state, job):
    """Selection and storage checks shared by create and update."""
    selections = [key for key in ("vmid", "all", "pool") if job.get(key) not in (None, 0, "")]
    if "all" in selections and "vmid" in selections:
        raise ParamError({"all": "option conflicts with option 'vmid'"})
    if not selections:
        raise ApiError("please specify at least one VM (option 'vmid', 'all' or 'pool')")
    if job.get("storage"):
        config = state.storage(job["storage"])
        if "backup" not in split_list(config.get("content", "")):
            raise ApiError(f"storage '{job['storage']}' does not support backups")


def _schedule_from_legacy(job):
    """Turn ``starttime``/``dow`` into a ``schedule`` like PVE does for old-style jobs."""
    if job.get("schedule") or not job.get("starttime"):
        return
    days = split_list(job.pop("dow", ""))
    start = job.pop("starttime")
    prefix = ",".join(d for d in DOW_ORDER if d in days) if days and len(days) < 7 else ""
    job["schedule"] = f"{prefix} {start}".strip()


def _decoded(key, value):
    """A property-string option as the object PVE returns (numbers and booleans as integers)."""
    default_key, numeric = PROPERTY_STRINGS[key]
    parsed = parse_property_string(value, default_key)
    return {k: int(v) if k in numeric and str(v).lstrip("-").isdigit() else v for k, v in parsed.items()}


def _entry(state, job_id, job):
    entry = {"id": job_id, **job}
    for key in PROPERTY_STRINGS:
        if isinstance(entry.get(key), str):
            entry[key] = _decoded(key, entry[key])
    entry.setdefault("enabled", 1)
    entry["next-run"] = 1893456000
    return entry


@route("GET", "/cluster/backup")
def list_jobs(call):
    """All backup jobs."""
    state = call.state
    return [_entry(state, job_id, job) for job_id, job in sorted(state.backup_jobs.items())]


@route("GET", "/cluster/backup/{id}")
def read_job(call):
    """One backup job."""
    state = call.state
    job = _job(state, call.get("id"))
    return {**_entry(state, call.get("id"), job), "digest": digest_of(state.backup_jobs)}


@route("POST", "/cluster/backup")
def create_job(call):
    """Create a backup job (``id`` is generated when omitted)."""
    state = call.state
    job_id = call.get("id") or f"backup-{secrets.token_hex(4)}-{secrets.token_hex(2)}"
    job = {"type": "vzdump", **{k: v for k, v in call.params.items() if k not in CONTROL_PARAMS}}
    _schedule_from_legacy(job)
    if not job.get("schedule"):
        raise ParamError({"schedule": "property is missing and it is not optional"})
    _check(state, job)
    if job_id in state.backup_jobs:
        raise ApiError(f"Job '{job_id}' already exists")
    job.setdefault("enabled", 1)
    state.backup_jobs[job_id] = job


@route("PUT", "/cluster/backup/{id}")
def update_job(call):
    """Update a backup job; ``delete`` removes settings."""
    state = call.state
    job_id = call.get("id")
    job = _job(state, job_id)
    if call.get("digest") and call.get("digest") != digest_of(state.backup_jobs):
        raise ApiError("detected modified configuration - file changed by other user? Try again.")
    updated = dict(job)
    updated.update({k: v for k, v in call.params.items() if k not in CONTROL_PARAMS})
    for key in split_list(call.get("delete", "")):
        if key in ("schedule", "type"):
            raise ApiError(f"unable to delete required option '{key}'")
        updated.pop(key, None)
    if call.get("all") == 1:
        updated.pop("vmid", None)
    if call.get("vmid"):
        updated.pop("all", None)
    _schedule_from_legacy(updated)
    _check(state, updated)
    state.backup_jobs[job_id] = updated


@route("DELETE", "/cluster/backup/{id}")
def delete_job(call):
    """Delete a backup job."""
    state = call.state
    _job(state, call.get("id"))
    del state.backup_jobs[call.get("id")]


@route("GET", "/cluster/backup/{id}/included_volumes")
def included_volumes(call):
    """Guests selected by the job and, per disk, whether vzdump would include it."""
    state = call.state
    job = _job(state, call.get("id"))
    if job.get("all"):
        excluded = {int(v) for v in split_list(job.get("exclude", ""))}
        vmids = [g.vmid for g in state.guests.values() if g.vmid not in excluded
                 and (not job.get("node") or g.node == job["node"])]
    else:
        vmids = [int(v) for v in split_list(str(job.get("vmid", "")))]
    children = []
    for vmid in sorted(vmids):
        guest = state.guests.get(vmid)
        if guest is None:
            children.append({"id": vmid, "type": "unknown", "children": []})
            continue
        volumes = []
        for key, value in sorted(guest.config.items()):
            if not isinstance(value, str) or not is_disk_key(guest.kind, key):
                continue
            parsed = parse_property_string(value, "volume" if guest.kind == "lxc" else "file")
            name = parsed.get("volume" if guest.kind == "lxc" else "file", "")
            if parsed.get("media") == "cdrom":
                continue
            if guest.kind == "lxc" and key != "rootfs":
                included = parsed.get("backup") == "1"
                reason = "enabled" if included else "disabled"
            else:
                included = parsed.get("backup", "1") != "0"
                reason = "enabled" if included else "disabled"
            volumes.append({"id": key, "name": name, "included": int(included), "reason": reason})
        children.append({"id": vmid, "name": guest.name, "type": guest.kind, "children": volumes})
    return {"children": children}
