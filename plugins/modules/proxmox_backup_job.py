#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_backup_job
short_description: Manage scheduled Proxmox VE backup (vzdump) jobs
version_added: 0.1.0
description:
  - Creates, updates and removes the scheduled backup jobs of a Proxmox VE cluster
    (C(/cluster/backup), B(Datacenter > Backup) in the web interface).
  - The module owns the job by its O(id). A re-run with the same options writes nothing; guest
    lists and the C(prune-backups) retention compare without regard to order.
  - One job with the top-level options, or many with O(jobs) (list mode). Either way the job list is
    read once and only the differences are written.
  - Input errors (two guest selections, a target storage that does not exist or does not hold
    backups, a missing schedule) fail before anything is written, for every job of the run.
  - Only the options you set are managed; the others keep their current values.
author:
  - ailab.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ailab.cluster.proxmox
  - ailab.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  id:
    description:
      - Job ID, for example V(weekly). Required unless O(jobs) is given.
    type: str
  state:
    description:
      - V(present) creates or updates the job, V(absent) removes it.
      - In list mode, the state of the entries that do not set their own.
    type: str
    choices: [present, absent]
    default: present
  schedule: &schedule
    description:
      - When the job runs, as a systemd-like calendar event, for example V(sun 01:00),
        V(mon..fri 22:30) or V(daily). Required to create a job.
    type: str
  storage: &storage
    description:
      - Storage the backups go to. It must exist and hold C(backup) content (checked before
        anything is written).
    type: str
  vmid: &vmid
    description:
      - Guests to back up; the order does not matter.
      - Exactly one of O(vmid), O(all) and O(pool) selects the guests when a job is created;
        setting one on an existing job replaces the old selection.
    type: list
    elements: int
  all: &all
    description: Back up every guest of the cluster (except O(exclude)).
    type: bool
  pool: &pool
    description: Back up the guests of this resource pool.
    type: str
  exclude: &exclude
    description:
      - Guests left out when O(all) or O(pool) selects them; the order does not matter. An empty list
        removes the exclusions.
    type: list
    elements: int
  node: &node
    description: Run only on this node (only its guests are backed up). Empty string to run on all nodes.
    type: str
  mode: &mode
    description: Backup mode; Proxmox VE uses V(snapshot) when not set.
    type: str
    choices: [snapshot, suspend, stop]
  compress: &compress
    description: Compression of the backup files; V(0) is none (the Proxmox VE default).
    type: str
    choices: ["0", gzip, lzo, zstd]
  prune_backups: &prune_backups
    description:
      - Retention for this job instead of the storage's. Becomes the Proxmox VE C(prune-backups)
        string, for example O(prune_backups.keep_last=3) gives C(keep-last=3).
    type: dict
    suboptions:
      keep_all:
        description: Keep every backup (cannot be combined with the other settings).
        type: bool
      keep_last:
        description: Keep the last N backups.
        type: int
      keep_hourly:
        description: Keep backups of the last N hours (one per hour).
        type: int
      keep_daily:
        description: Keep backups of the last N days (one per day).
        type: int
      keep_weekly:
        description: Keep backups of the last N weeks (one per week).
        type: int
      keep_monthly:
        description: Keep backups of the last N months (one per month).
        type: int
      keep_yearly:
        description: Keep backups of the last N years (one per year).
        type: int
  enabled: &enabled
    description: Whether the job runs on its schedule (Proxmox VE default true).
    type: bool
  repeat_missed: &repeat_missed
    description: Run the job as soon as possible when a scheduled run was missed (node down).
    type: bool
  notes_template: &notes_template
    description:
      - Notes added to each backup. Proxmox VE replaces C({{cluster}}), C({{guestname}}),
        C({{node}}) and C({{vmid}}); protect them from Ansible templating with
        C({% raw %}...{% endraw %}) or the C(!unsafe) tag.
      - Line breaks are sent as the C(\n) Proxmox VE expects. Needs a O(storage).
    type: str
  comment: &comment
    description: Description of the job. Empty string to remove it.
    type: str
  mailto: &mailto
    description:
      - E-mail addresses or users notified (legacy notifications); the order does not matter.
        An empty list removes them.
    type: list
    elements: str
  mailnotification: &mailnotification
    description: When legacy e-mail notifications are sent.
    type: str
    choices: [always, failure]
  notification_mode: &notification_mode
    description:
      - Notification system; V(legacy-sendmail) uses O(mailto), V(notification-system) the
        Proxmox VE notification targets and matchers, V(auto) picks one.
    type: str
    choices: [auto, legacy-sendmail, notification-system]
  jobs:
    description:
      - List mode. Backup jobs to manage, each a dict with the same keys as the top-level options
        (O(id) is required, O(state) defaults to the top-level O(state)).
      - Cannot be combined with the top-level job options.
    type: list
    elements: dict
    suboptions:
      id:
        description: Job ID.
        type: str
        required: true
      state:
        description: V(present) or V(absent); defaults to the top-level O(state).
        type: str
        choices: [present, absent]
      schedule: *schedule
      storage: *storage
      vmid: *vmid
      all: *all
      pool: *pool
      exclude: *exclude
      node: *node
      mode: *mode
      compress: *compress
      prune_backups: *prune_backups
      enabled: *enabled
      repeat_missed: *repeat_missed
      notes_template: *notes_template
      comment: *comment
      mailto: *mailto
      mailnotification: *mailnotification
      notification_mode: *notification_mode
  purge:
    description: In list mode, remove every backup job that O(jobs) does not name.
    type: bool
    default: false
  report_included:
    description:
      - Also return, per present job, the guests and disks the job backs up
        (C(/cluster/backup/{id}/included_volumes)); one read per job.
      - A job that only check mode would create has none yet (V(null)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Every guest, every Sunday at 01:00, to the NAS, keep the last three
  ailab.cluster.proxmox_backup_job:
    id: weekly
    schedule: "sun 01:00"
    storage: nas
    all: true
    mode: snapshot
    compress: zstd
    prune_backups:
      keep_last: 3
    notes_template: "{% raw %}{{guestname}} on {{node}}{% endraw %}"
    comment: Weekly backup of the lab
    report_included: true
  register: weekly

- name: Show which disks the weekly job skips
  ansible.builtin.debug:
    msg: "{{ weekly.included_volumes.weekly | map(attribute='volumes') | flatten | rejectattr('included') | list }}"

- name: All jobs of the lab in one read; remove jobs nobody listed
  ailab.cluster.proxmox_backup_job:
    purge: true
    jobs:
      - id: weekly
        schedule: "sun 01:00"
        storage: nas
        all: true
        exclude: [9000]
        prune_backups: {keep_last: 3, keep_weekly: 4}
      - id: gpu-nightly
        schedule: "mon..fri 22:30"
        storage: nas
        vmid: [103, 102]
        mode: snapshot
        compress: zstd
        mailto: [admin@lab.example]
        mailnotification: failure
        notification_mode: legacy-sendmail

- name: Pause a job without removing it
  ailab.cluster.proxmox_backup_job:
    id: gpu-nightly
    enabled: false
"""

RETURN = r"""
job:
  description: The job after the run (as Proxmox VE stores it); empty when absent. Single mode.
  returned: success and O(id) given
  type: dict
  sample: {id: weekly, type: vzdump, schedule: "sun 01:00", storage: nas, all: 1, mode: snapshot,
           compress: zstd, prune-backups: "keep-last=3", enabled: 1}
jobs:
  description: The jobs after the run, every present entry of O(jobs) in order. List mode.
  returned: success and O(jobs) given
  type: list
  elements: dict
  sample: [{id: gpu-nightly, schedule: "mon..fri 22:30", storage: nas, vmid: "102,103"}]
changes:
  description: What was written (or would be in check mode), one entry per created, updated or removed job.
  returned: always
  type: list
  elements: dict
  sample: [{id: weekly, action: update, params: {all: 1}, delete: [vmid]}]
included_volumes:
  description:
    - Per job ID, the guests the job selects and for each its disks and whether vzdump includes
      them (a disk with C(backup=0) is skipped). V(null) for a job that does not exist yet.
  returned: O(report_included=true)
  type: dict
  sample:
    weekly:
      - vmid: 100
        name: gpu-1
        type: qemu
        volumes: [{key: scsi0, volume: "nas:100/vm-100-disk-0.qcow2", included: true, reason: enabled}]
"""

import re

from ansible_collections.ailab.cluster.plugins.module_utils._calendar_event import calendar_event_problem
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    REMOVE,
    ProxmoxError,
    diff_config,
    split_list,
    to_pve,
    unordered_list,
)
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_list import (
    PRUNE_KEYS,
    PRUNE_OPTIONS,
    Change,
    CollectionManager,
    prune_key,
    prune_to_pve,
    run_collection_module,
)

ITEM_OPTIONS = dict(
    id=dict(type="str"),
    schedule=dict(type="str"),
    storage=dict(type="str"),
    vmid=dict(type="list", elements="int"),
    all=dict(type="bool"),
    pool=dict(type="str"),
    exclude=dict(type="list", elements="int"),
    node=dict(type="str"),
    mode=dict(type="str", choices=["snapshot", "suspend", "stop"]),
    compress=dict(type="str", choices=["0", "gzip", "lzo", "zstd"]),
    prune_backups=dict(type="dict", options=PRUNE_OPTIONS),
    enabled=dict(type="bool"),
    repeat_missed=dict(type="bool"),
    notes_template=dict(type="str"),
    comment=dict(type="str"),
    mailto=dict(type="list", elements="str"),
    mailnotification=dict(type="str", choices=["always", "failure"]),
    notification_mode=dict(type="str", choices=["auto", "legacy-sendmail", "notification-system"]),
)
SELECTION = ("vmid", "all", "pool")
# Values PVE assumes when the key is absent.
DEFAULTS = {"enabled": 1, "all": 0, "repeat-missed": 0, "mode": "snapshot", "compress": "0"}
NORMALIZERS = {"vmid": unordered_list, "exclude": unordered_list, "mailto": unordered_list, "prune-backups": prune_key}
# Options whose empty value means "remove it".
REMOVABLE_EMPTY = ("exclude", "mailto", "comment", "node", "notes_template")
JOB_ID = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
# Options PVE returns as objects (GET /cluster/backup decodes them) but takes as property strings
# on POST/PUT, with the key order Proxmox VE prints them in.
PROPERTY_STRINGS = {
    "prune-backups": tuple(k.replace("_", "-") for k in PRUNE_KEYS),
    "fleecing": ("enabled", "storage"),
    "performance": ("max-workers", "pbs-entries-max"),
}


def property_string(value, order):
    """An option PVE returned decoded (``{'keep-last': 3}``) as the property string PVE takes (``keep-last=3``).

    A string (older releases, or a job written by hand) is returned as it is.
    """
    if not isinstance(value, dict):
        return value
    keys = [k for k in order if k in value] + sorted(k for k in value if k not in order)
    return ",".join("%s=%s" % (k, to_pve(value[k])) for k in keys if value[k] is not None)


def escape_notes(text):
    """PVE keeps notes-template on one line: backslash and newline escaped."""
    return text.replace("\\", "\\\\").replace("\r\n", "\n").replace("\n", "\\n")


def selected(item, key):
    return item.get(key) not in (None, False, [], "")


class BackupJobManager(CollectionManager):
    kind = "backup job"
    path = "cluster/backup"
    id_key = "id"
    list_key = "jobs"
    result_key = "job"
    item_options = ITEM_OPTIONS

    def read(self):
        """The jobs, with the options PVE returns as objects turned back into the strings it takes."""
        entries = super(BackupJobManager, self).read()
        for entry in entries.values():
            for key, order in PROPERTY_STRINGS.items():
                if key in entry:
                    entry[key] = property_string(entry[key], order)
        return entries

    def check_item(self, item):
        name = item["id"]
        if not JOB_ID.match(name):
            raise ProxmoxError("backup job %s: invalid job ID; use letters, digits, '-' and '_', starting with a letter "
                               "(at least two characters)" % name)
        if item["state"] == "absent":
            return
        chosen = [key for key in SELECTION if selected(item, key)]
        if len(chosen) > 1:
            raise ProxmoxError("backup job %s: %s select the guests in different ways; keep exactly one" %
                               (name, " and ".join(chosen)))
        if selected(item, "exclude") and selected(item, "vmid"):
            raise ProxmoxError("backup job %s: exclude works with all or pool, not with a vmid list; remove the "
                               "excluded guests from vmid instead" % name)
        for key in ("vmid", "exclude"):
            bad = [v for v in item.get(key) or [] if not 100 <= v <= 999999999]
            if bad:
                raise ProxmoxError("backup job %s: %s must be guest IDs from 100 to 999999999 (got %s)" %
                                   (name, key, ", ".join(str(v) for v in bad)))
        problem = item["schedule"] is not None and calendar_event_problem(item["schedule"])
        if problem:
            raise ProxmoxError("backup job %s: %s" % (name, problem))
        self.desired(item)  # prune-backups errors

    def desired(self, item):
        desired = {}
        for option in ITEM_OPTIONS:
            value = item.get(option)
            if option == "id" or value is None:
                continue
            if option in REMOVABLE_EMPTY and value in ("", []):
                value = REMOVE
            elif option == "prune_backups":
                value = prune_to_pve(value, "backup job %s" % item["id"])
            elif option in ("vmid", "exclude", "mailto"):
                value = sorted(set(value))
            elif option == "notes_template":
                value = escape_notes(value)
            elif option == "schedule":
                value = value.strip()
            desired[option.replace("_", "-")] = value
        return desired

    def prepare(self, items, current):
        """One read of /storage when a present job names a storage: it must exist and hold backups."""
        wanted = [item for item in items if item["state"] == "present" and item["storage"]]
        if not wanted:
            return
        storages = dict((s["storage"], s) for s in self.client.get("storage", what="the storage configuration") or [])
        for item in wanted:
            entry = storages.get(item["storage"])
            if entry is None:
                raise ProxmoxError("backup job %s: storage %s does not exist; create it first (proxmox_storage) or "
                                   "choose another storage" % (item["id"], item["storage"]))
            if entry.get("type") != "pbs" and "backup" not in split_list(entry.get("content")):
                raise ProxmoxError("backup job %s: storage %s does not hold backups (content %s); add backup to its "
                                   "content or choose another storage" % (item["id"], item["storage"], entry.get("content")))

    def plan_present(self, item, entry):
        name = item["id"]
        desired = self.desired(item)
        if entry is None:
            if not item["schedule"]:
                raise ProxmoxError("backup job %s does not exist; set schedule (for example 'sun 01:00') to create it" % name)
            if not any(selected(item, key) for key in SELECTION):
                raise ProxmoxError("backup job %s: select the guests with vmid, all: true or pool to create it" % name)
            if item["notes_template"] and not item["storage"]:
                raise ProxmoxError("backup job %s: notes_template needs storage" % name)
            params = dict((k, v) for k, v in desired.items() if v != REMOVE)
            change = Change(name, "create", params=params)
            change.after = dict(change.params)
            return change
        if item["notes_template"] and not (item["storage"] or entry.get("storage")):
            raise ProxmoxError("backup job %s: notes_template needs storage" % name)
        if item["all"] is False and not selected(item, "vmid") and not selected(item, "pool") and entry.get("all"):
            raise ProxmoxError("backup job %s: all: false leaves the job without guests; select them with vmid or pool" % name)
        # A new selection replaces the old one (and exclude goes with a vmid list).
        chosen = [key for key in SELECTION if selected(item, key)]
        if selected(item, "exclude") and not chosen and entry.get("vmid"):
            raise ProxmoxError("backup job %s: exclude works with all or pool and the job selects a vmid list; set "
                               "all: true or pool as well" % name)
        if chosen:
            for key in SELECTION:
                if key not in chosen and key not in desired:
                    desired[key] = REMOVE
            if chosen == ["vmid"] and "exclude" not in desired:
                desired["exclude"] = REMOVE
        params, delete, before, after = diff_config(desired, entry, NORMALIZERS, DEFAULTS)
        if not params and not delete:
            return None
        return Change(name, "update", params=params, delete=delete, before=before, after=after)

    def extra_results(self, result, entries, changes):
        if not self.module.params["report_included"]:
            return
        created = set(c.item_id for c in changes if c.action == "create")
        included = {}
        for entry in entries:
            job_id = entry["id"]
            if self.module.check_mode and job_id in created:
                included[job_id] = None
                continue
            try:
                answer = self.client.get("cluster/backup/%s/included_volumes" % job_id,
                                         what="the volumes of backup job %s" % job_id)
            except ProxmoxError as exc:
                self.module.fail_json(msg=exc.msg, status=exc.status, changed=result["changed"],
                                      changes=result["changes"])
            included[job_id] = [
                dict(vmid=guest.get("id"), name=guest.get("name"), type=guest.get("type"),
                     volumes=[dict(key=vol.get("id"), volume=vol.get("name"), included=bool(int(vol.get("included", 0))),
                                   reason=vol.get("reason")) for vol in guest.get("children") or []])
                for guest in (answer or {}).get("children") or []]
        result["included_volumes"] = included


def main():
    run_collection_module(BackupJobManager, report_included=dict(type="bool", default=False))


if __name__ == "__main__":
    main()
