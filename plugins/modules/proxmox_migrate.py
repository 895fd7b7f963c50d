#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_migrate
short_description: Move a Proxmox VE VM or container to another node, live where possible
version_added: 0.1.0
description:
  - Migrates a guest to the node O(target). A running VM is migrated online (live), a running container
    by restart migration (shut down, moved, started again), and a stopped guest offline.
  - Guests managed by the Proxmox VE HA stack are moved through the HA manager
    (C(/cluster/ha/resources/{sid}/migrate)). The module then waits until the cluster shows the guest
    on the target node.
  - Nothing happens when the guest is already on O(target).
  - Everything is checked before the migration starts. The target node must be online, the guest must
    not be locked, running guests with local disks need O(with_local_disks), and local or
    non-live-capable PCI devices block a live migration. Each problem fails with a message before
    any change.
  - Waits for the migration task, checks that the guest runs on the target, and returns the
    migration time and the downtime from the task log (C(downtime 49 ms)).
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
  vmid:
    description: VMID of the guest to move.
    type: int
  name:
    description: Name of the guest to move, when O(vmid) is not given. It must be unique in the cluster.
    type: str
  type:
    description: Kind of guest. Found from the cluster when omitted.
    type: str
    choices: [qemu, lxc]
  target:
    description: Node to move the guest to.
    type: str
    required: true
  online:
    description:
      - Live-migrate a running VM. With V(false), a running VM is refused and only stopped VMs move.
    type: bool
    default: true
  restart:
    description:
      - Move a running container by restart migration. Containers cannot migrate live. With V(false), a
        running container is refused.
    type: bool
    default: true
  shutdown_timeout:
    description: Seconds a running container may take to shut down in a restart migration.
    type: int
    default: 180
  with_local_disks:
    description:
      - Copy the disks on local storage (for example C(local-lvm)) to the target node during a live
        migration. Guests on shared storage (NFS, Ceph) do not need it.
    type: bool
    default: false
  targetstorage:
    description:
      - Storage on the target node for the copied local disks, or a mapping like C(local-lvm:nvme,local:local).
    type: str
  bwlimit:
    description: Bandwidth limit of the migration in KiB/s.
    type: int
  timeout:
    description: Seconds to wait for the migration, including the HA manager moving an HA-managed guest.
    type: int
    default: 900
notes:
  - Works on Proxmox VE 8 and 9. On Proxmox VE 9, an HA migration that resource-affinity rules block
    fails with the blocking resources. Resources moved along by positive affinity are returned in
    RV(comigrated).
  - Whether the guest runs (online or offline migration) and its lock are read from C(status/current), because
    C(/cluster/resources) shows the status pvestatd reported up to 10 seconds ago, and V(unknown) without
    a name for a guest created seconds before, which the module finds by name through its configuration.
seealso:
  - module: ailab.cluster.proxmox_guest
"""

EXAMPLES = r"""
- name: Live-migrate the GPU worker to pve-2 (shared NFS storage, like the seed lab)
  ailab.cluster.proxmox_migrate:
    name: k8s-gpu-1
    target: pve-2
  register: moved

- name: Show the downtime
  ansible.builtin.debug:
    msg: "{{ moved.vmid }} on {{ moved.node }} after {{ moved.duration }} s, downtime {{ moved.downtime_ms }} ms"

- name: Live-migrate a VM whose disks are on local-lvm, copying them to the target's local-lvm
  ailab.cluster.proxmox_migrate:
    vmid: 201
    target: pve-1
    with_local_disks: true
    targetstorage: local-lvm

- name: Move a running container (restart migration)
  ailab.cluster.proxmox_migrate:
    vmid: 120
    type: lxc
    target: pve-2
    shutdown_timeout: 60

- name: Drain a node before maintenance
  ailab.cluster.proxmox_migrate:
    vmid: "{{ item }}"
    target: pve-2
  loop: [201, 211, 212]
"""

RETURN = r"""
vmid:
  description: VMID of the guest.
  returned: always
  type: int
  sample: 103
name:
  description: Name of the guest.
  returned: always
  type: str
  sample: maria-GPU
type:
  description: V(qemu) or V(lxc).
  returned: always
  type: str
  sample: qemu
node:
  description: Node the guest is on after the run (the target, or the source in check mode).
  returned: always
  type: str
  sample: pve-2
source_node:
  description: Node the guest was on before the run.
  returned: always
  type: str
  sample: pve-1
mode:
  description: How the guest moved, V(online), V(restart), V(offline), V(ha), or V(none) when it was already there.
  returned: always
  type: str
  sample: online
ha:
  description: Whether the guest is HA managed and was moved through the HA manager.
  returned: always
  type: bool
  sample: false
upid:
  description: The migration task, when Proxmox VE returned one (not for HA migrations).
  returned: when a migration ran
  type: str
  sample: "UPID:pve-1:00001A2B:0012F00D:6626A8C1:qmigrate:103:root@pam!ansible:"
duration:
  description:
    - Duration of the migration in seconds, from the task log (C(migration finished successfully (duration
      00:00:21))) when it has one, otherwise as measured by the module.
  returned: when a migration ran
  type: float
  sample: 21.0
elapsed:
  description: Seconds from the migration request until the guest was seen on the target.
  returned: when a migration ran
  type: float
  sample: 22.4
downtime_ms:
  description: Downtime of a live migration in milliseconds, from the task log; null when the log has none.
  returned: when a migration ran
  type: int
  sample: 49
comigrated:
  description: HA resources moved along by positive resource-affinity rules (Proxmox VE 9).
  returned: when a migration ran
  type: list
  elements: str
  sample: ["vm:104"]
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    ProxmoxClient,
    ProxmoxError,
    proxmox_argument_spec,
    proxmox_module_kwargs,
)
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_guest import (
    find_guest,
    live_status,
    name_unnamed,
    guest_word,
    ha_sid,
    is_upid,
    node_problem,
    split_resources,
    upid_node,
)

DOWNTIME = re.compile(r"downtime\s+(\d+)\s*ms")
DURATION = re.compile(r"migration finished successfully \(duration (\d+):(\d\d):(\d\d)\)")


def log_figures(lines):
    """(downtime in ms, duration in s) from a migration task log, each None when absent."""
    downtime = duration = None
    for line in lines:
        text = line.get("t", "") if isinstance(line, dict) else str(line)
        match = DOWNTIME.search(text)
        if match:
            downtime = int(match.group(1))
        match = DURATION.search(text)
        if match:
            duration = float(int(match.group(1)) * 3600 + int(match.group(2)) * 60 + int(match.group(3)))
    return downtime, duration


class Migration(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.p = module.params
        self.timeout = self.p["timeout"]

    def fail(self, msg):
        raise ProxmoxError(msg)

    def locate(self):
        p = self.p
        nodes, guests = split_resources(self.client.get("cluster/resources", what="the cluster resources"))
        if p["vmid"] is None:
            name_unnamed(self.client, guests)  # guests pvestatd has not reported yet have no name there
        entry = find_guest(guests, p["vmid"], p["name"] if p["vmid"] is None else None, p["type"])
        if entry is None:
            self.fail("%s does not exist in the cluster: check vmid or name" % (
                "VMID %s" % p["vmid"] if p["vmid"] is not None else "guest %s" % p["name"]))
        self.entry = entry
        self.kind = entry["type"]
        self.vmid = int(entry["vmid"])
        self.name = entry.get("name")
        self.source = entry["node"]
        self.what = guest_word(self.kind, self.vmid, self.name)
        self.running = None  # from status/current once the node is known to be online (validate)
        self.ha = bool(entry.get("hastate")) and entry.get("hastate") != "ignored"
        return nodes

    def validate(self, nodes):
        """Every check that can be made before the migration starts."""
        p = self.p
        target = p["target"]
        problem = node_problem(nodes, target)
        if problem:
            self.fail("Cannot migrate %s to %s: %s; bring it back online or choose another target"
                      % (self.what, target, problem))
        # Only the node entry says whether the node is offline: a guest's status there is pvestatd's, up
        # to ~10 s old, and 'unknown' for a guest it has not reported yet.
        if nodes.get(self.source, {}).get("status") != "online":
            self.fail("Cannot migrate %s: its node %s is offline (HA recovers HA-managed guests by itself)"
                      % (self.what, self.source))
        # Online or offline migration follows the power state now, not pvestatd's last report.
        live = live_status(self.client, self.source, self.kind, self.vmid)
        self.running = live.get("status") == "running"
        lock = live.get("lock") or self.entry.get("lock")
        if lock:
            self.fail("%s is locked (%s): wait for the running operation to finish, then retry"
                      % (self.what, lock))
        if self.running and self.kind == "qemu" and not p["online"]:
            self.fail("%s is running and online is false: set online: true for a live migration or stop it first"
                      % self.what)
        if self.running and self.kind == "lxc" and not p["restart"]:
            self.fail("%s is running and containers cannot migrate live: set restart: true for a restart "
                      "migration or stop it first" % self.what)
        if self.kind == "qemu":
            self.check_preconditions(target)

    def check_preconditions(self, target):
        p = self.p
        info = self.client.get("nodes/%s/qemu/%s/migrate" % (self.source, self.vmid), what="migration check of %s"
                               % self.what, target=target) or {}
        local_resources = info.get("local_resources") or []
        if local_resources:
            self.fail("%s uses local devices (%s) and cannot migrate: pass them through a PCI resource mapping "
                      "instead" % (self.what, ", ".join(str(r) for r in local_resources)))
        blocked = (info.get("not_allowed_nodes") or {}).get(target) or {}
        storages = blocked.get("unavailable_storages") or []
        if storages and not p["targetstorage"]:
            self.fail("%s has disks on storage %s, which node %s does not have: set targetstorage"
                      % (self.what, ", ".join(storages), target))
        attached = [d.get("volid") for d in info.get("local_disks") or [] if not int(d.get("is_unused", 0) or 0)
                    and not int(d.get("cdrom", 0) or 0)]
        if self.running and attached and not p["with_local_disks"] and not self.ha:
            self.fail("%s runs with disks on local storage (%s): set with_local_disks: true to copy them during the "
                      "live migration" % (self.what, ", ".join(attached)))
        if self.running:
            mapped = info.get("mapped-resource-info") or {}
            fixed = sorted(k for k, v in mapped.items() if not int((v or {}).get("live-migration", 0) or 0))
            if fixed:
                self.fail("%s is running with mapped devices %s that cannot live-migrate: stop it first, or mark the "
                          "PCI mapping live-migration capable if the hardware supports it"
                          % (self.what, ", ".join(fixed)))

    def run(self):
        p = self.p
        nodes = self.locate()
        target = p["target"]
        result = dict(vmid=self.vmid, name=self.name, type=self.kind, source_node=self.source, node=self.source,
                      ha=self.ha, changed=False, mode="none")
        if self.source == target:
            return result
        self.validate(nodes)
        if self.ha:
            mode = "ha"
        elif not self.running:
            mode = "offline"
        else:
            mode = "online" if self.kind == "qemu" else "restart"
        result.update(changed=True, mode=mode)
        if self.module._diff:
            result["diff"] = dict(before=dict(node=self.source), after=dict(node=target))
        if self.module.check_mode:
            return result
        started = time.time()
        if self.ha:
            figures = self.migrate_ha(target, started)
        else:
            figures = self.migrate_task(target)
        self.verify(target, started)
        elapsed = round(time.time() - started, 3)
        upid, downtime, duration, comigrated = figures
        result.update(node=target, upid=upid, downtime_ms=downtime, elapsed=elapsed,
                      duration=duration if duration is not None else elapsed, comigrated=comigrated)
        return result

    def migrate_task(self, target):
        p = self.p
        params = dict(target=target, bwlimit=p["bwlimit"])
        if self.kind == "qemu":
            params["online"] = 1 if self.running else None
            params["with-local-disks"] = 1 if p["with_local_disks"] else None
            params["targetstorage"] = p["targetstorage"]
        else:
            if self.running:
                params.update(restart=1, timeout=p["shutdown_timeout"])
            params["target-storage"] = p["targetstorage"]
        what = "migrating %s from %s to %s" % (self.what, self.source, target)
        upid = self.client.post("nodes/%s/%s/%s/migrate" % (self.source, self.kind, self.vmid), what=what, **params)
        if not is_upid(upid):
            return None, None, None, []
        node = upid_node(upid, self.source)
        self.client.wait_task(node, upid, what, timeout=self.timeout)
        log = self.client.get("nodes/%s/tasks/%s/log" % (node, upid), what="log of %s" % what, limit=5000)
        downtime, duration = log_figures(log if isinstance(log, list) else [])
        return upid, downtime, duration, []

    def migrate_ha(self, target, started):
        sid = ha_sid(self.kind, self.vmid)
        answer = self.client.post("cluster/ha/resources/%s/migrate" % sid, what="HA migration of %s" % self.what,
                                  node=target)
        answer = answer if isinstance(answer, dict) else {}
        blocking = answer.get("blocking-resources") or []
        if blocking:
            self.fail("The HA manager will not move %s to %s: blocked by %s; change the HA rules or move those first"
                      % (self.what, target, ", ".join("%s (%s)" % (b.get("sid"), b.get("cause")) for b in blocking)))
        comigrated = list(answer.get("comigrated-resources") or [])
        self.wait_on_target(target, started)
        upid, downtime, duration = self.ha_task_figures(started)
        return upid, downtime, duration, comigrated

    def wait_on_target(self, target, started):
        deadline = started + self.timeout
        delay = 0.1
        while True:
            entry = self.current_entry()
            if entry and entry.get("node") == target and not entry.get("lock") and \
                    (not self.running or self.live_on(target).get("status") == "running"):
                return
            if time.time() > deadline:
                self.fail("The HA manager did not move %s to %s within %ss (now on %s): check 'ha-manager status' "
                          "and the HA log" % (self.what, target, self.timeout, (entry or {}).get("node")))
            time.sleep(delay)
            delay = min(delay * 2, 2)

    def ha_task_figures(self, started):
        """The migration task the HA stack ran on the source node, if any: (upid, downtime, duration)."""
        typefilter = "qmigrate" if self.kind == "qemu" else "vzmigrate"
        try:
            tasks = self.client.get("nodes/%s/tasks" % self.source, what="tasks of node %s" % self.source,
                                    vmid=self.vmid, typefilter=typefilter, since=int(started) - 1, limit=1)
            if not tasks:
                return None, None, None
            upid = tasks[0]["upid"]
            log = self.client.get("nodes/%s/tasks/%s/log" % (self.source, upid), what="migration log", limit=5000)
        except ProxmoxError:
            return None, None, None
        downtime, duration = log_figures(log if isinstance(log, list) else [])
        return upid, downtime, duration

    def current_entry(self):
        guests = split_resources(self.client.get("cluster/resources", what="the cluster resources", type="vm"))[1]
        return find_guest(guests, self.vmid)

    def live_on(self, node):
        return live_status(self.client, node, self.kind, self.vmid)

    def verify(self, target, started):
        entry = self.current_entry()
        if entry is None or entry.get("node") != target:
            self.fail("Migration of %s reported success but the cluster shows it on %s, not %s: check the task log"
                      % (self.what, (entry or {}).get("node"), target))
        if self.running:
            status = self.live_on(target).get("status")
            if status != "running":
                self.fail("%s is on %s after the migration but %s, not running: check the guest and start it"
                          % (self.what, target, status))


def main():
    spec = dict(
        vmid=dict(type="int"),
        name=dict(type="str"),
        type=dict(type="str", choices=["qemu", "lxc"]),
        target=dict(type="str", required=True),
        online=dict(type="bool", default=True),
        restart=dict(type="bool", default=True),
        shutdown_timeout=dict(type="int", default=180),
        with_local_disks=dict(type="bool", default=False),
        targetstorage=dict(type="str"),
        bwlimit=dict(type="int"),
        timeout=dict(type="int", default=900),
    )
    kwargs = proxmox_module_kwargs()
    kwargs["required_one_of"] = kwargs["required_one_of"] + [("vmid", "name")]
    module = AnsibleModule(argument_spec=proxmox_argument_spec(**spec), supports_check_mode=True, **kwargs)
    p = module.params
    for key in ("shutdown_timeout", "timeout"):
        if p[key] < 1:
            module.fail_json(msg="%s must be at least 1 second, got %s" % (key, p[key]))
    if p["bwlimit"] is not None and p["bwlimit"] < 0:
        module.fail_json(msg="bwlimit must be 0 (no limit) or more KiB/s, got %s" % p["bwlimit"])
    client = ProxmoxClient.from_module(module)
    try:
        result = Migration(module, client).run()
    except ProxmoxError as exc:
        module.fail_json(msg=exc.msg, status=exc.status)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
