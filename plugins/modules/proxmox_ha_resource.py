#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The options of one resource are documented once (YAML anchors) and reused for the items of O(resources).
DOCUMENTATION = r"""
module: proxmox_ha_resource
short_description: Manage Proxmox VE HA resources and move them through the HA manager
version_added: 0.1.0
description:
  - Puts VMs and containers under HA management (C(/cluster/ha/resources)), sets their requested state,
    restart and relocate limits, group (PVE 8) or failback (PVE 9) and comment, and removes them from HA.
  - Migrates (online) or relocates (stop, move, start) a resource to a node through the HA manager
    (C(/cluster/ha/resources/<sid>/migrate|relocate)) and waits until the HA manager reports it there; a
    resource already on that node is left alone.
  - Proxmox VE 9 has no HA groups. So that an inventory written for PVE 8 keeps working, O(group) then means
    membership in the node-affinity rule C(ha-group-<group>) that M(ailab.cluster.proxmox_ha_group) manages
    for the group - the resource is added to that rule and taken out of other C(ha-group-*) rules - with a
    warning. When the rule does not exist yet, it is created disabled, on all nodes, with the resource, and
    M(ailab.cluster.proxmox_ha_group) enables it with the group's nodes.
  - Takes one resource (O(sid) or O(vmid) and its options) or a list (O(resources)). A list is read with one
    request and only the differences are written; O(purge) removes the HA resources that are not listed.
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
  sid: &sid
    description:
      - HA resource id, V(vm:<vmid>) or V(ct:<vmid>); a bare V(<vmid>) takes its kind from O(type).
      - One of O(sid), O(vmid) and O(resources) is required.
    type: str
  vmid: &vmid
    description:
      - VMID of the guest, with O(type), instead of O(sid).
    type: int
  type: &type
    description:
      - Kind of guest for O(vmid) or a bare O(sid). V(vm) when not set.
    type: str
    choices: [vm, ct]
  state: &state
    description:
      - Requested HA state; V(absent) removes the guest from HA management (the guest itself stays).
      - When not set, a new resource gets PVE's default V(started) and an existing one keeps its state.
      - On PVE 9 V(absent) also takes the resource out of its rules, and PVE deletes a rule left empty.
    type: str
    choices: [started, stopped, disabled, ignored, absent]
  max_restart: &max_restart
    description:
      - Restart tries on the same node after a failed start. Not changed when not set (PVE's default is 1).
    type: int
  max_relocate: &max_relocate
    description:
      - Relocation tries to other nodes after the restarts failed. Not changed when not set (PVE's default is
        1).
    type: int
  group: &group
    description:
      - HA group of the resource; V("") takes it out of its group. Not changed when not set.
      - PVE 8. The resource's C(group); the group must exist.
      - PVE 9. Membership in the node-affinity rule C(ha-group-<group>), with a warning. A resource that is in
        another enabled node-affinity rule (not C(ha-group-*)) cannot join; the module fails before any change.
    type: str
  failback: &failback
    description:
      - PVE 9 only. Whether the HA manager moves the resource back to a higher-priority node of its
        node-affinity rule when that node comes back. Not changed when not set (PVE's default is V(true)).
      - On PVE 8 the module fails; set O(ailab.cluster.proxmox_ha_group#module:nofailback) on the group there.
      - M(ailab.cluster.proxmox_ha_group) with O(ailab.cluster.proxmox_ha_group#module:nofailback) also sets
        it for the resources of a group; set it in one place only.
    type: bool
  comment: &comment
    description:
      - Description of the resource; V("") removes it. Not changed when not set.
    type: str
  migrate_to: &migrate_to
    description:
      - Online-migrate the resource to this node through the HA manager, unless it is there already.
    type: str
  relocate_to: &relocate_to
    description:
      - Relocate the resource to this node (stop, move, start) through the HA manager, unless it is there
        already.
    type: str
  resources:
    description:
      - List mode. HA resources, each a dict with the same keys as the single-resource options and checked by
        the same rules.
      - The resources are read with one request and only the differences are written.
      - The single-resource options must not be set next to O(resources).
    type: list
    elements: dict
    suboptions:
      sid: *sid
      vmid: *vmid
      type: *type
      state: *state
      max_restart: *max_restart
      max_relocate: *max_relocate
      group: *group
      failback: *failback
      comment: *comment
      migrate_to: *migrate_to
      relocate_to: *relocate_to
  purge:
    description:
      - In list mode, remove from HA management every resource that O(resources) does not list (the guests
        stay).
      - Only with O(resources).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for what the HA manager does after the API has answered; V(0) only sends the requests.
      - HA state changes are requests that the HA manager carries out one or two rounds (about 10 s each)
        later. After creating a resource or changing its O(state), the module waits until C(ha-manager status)
        shows the service C(started) (for V(started)) or C(stopped) (for V(stopped) and V(disabled)); it fails
        naming the service and its current state when that takes longer, or when the service goes to C(error).
      - Also the time to wait for each migration or relocation to finish.
    type: int
    default: 300
  planned_nodes:
    description:
      - Check mode only. Names of nodes that join the cluster earlier in the same run (the
        C(ailab.cluster.proxmox_cluster) role's nodes), so that the plan of a fresh cluster accepts them
        as the target of O(migrate_to) or O(relocate_to) instead of refusing them as unknown. A node neither
        in the cluster nor in this list is refused. Ignored outside check mode, where the join has happened.
    type: list
    elements: str
    default: []
  planned_groups:
    description:
      - Check mode only, Proxmox VE 8. HA groups (dicts with at least C(name), as M(ailab.cluster.proxmox_ha_group)
        takes them) that an earlier task of the same run creates, so that a plan in check mode counts them as
        existing instead of refusing the resources that name them. Ignored outside check mode.
    type: list
    elements: dict
    default: []
  planned_guests:
    description:
      - Check mode only. VMIDs of guests that an earlier task of the same run creates (the
        C(ailab.cluster.proxmox_guests) role's guests), so that a plan in check mode on a fresh cluster
        counts them as existing instead of refusing their HA resources. Ignored outside check mode.
    type: list
    elements: int
    default: []
notes:
  - See C(docs/proxmox_ha.md) in the collection for the PVE 8 to 9 behaviour of all HA modules.
seealso:
  - module: ailab.cluster.proxmox_ha_group
  - module: ailab.cluster.proxmox_ha_rule
"""

EXAMPLES = r"""
- name: Keep the JupyterHub VM running under HA, preferring the GPU group
  ailab.cluster.proxmox_ha_resource:
    sid: vm:300
    state: started
    max_restart: 2
    group: gpu

- name: The same for a container, by VMID
  ailab.cluster.proxmox_ha_resource:
    vmid: 301
    type: ct
    state: started

- name: Move the JupyterHub VM to pve-2 before maintenance on pve-1
  ailab.cluster.proxmox_ha_resource:
    sid: vm:300
    migrate_to: pve-2

- name: Every HA resource of the lab in one call
  ailab.cluster.proxmox_ha_resource:
    resources:
      - {sid: "vm:300", group: gpu}
      - {sid: "vm:201", max_relocate: 2}
      - {sid: "ct:301", state: stopped}

- name: No longer HA managed
  ailab.cluster.proxmox_ha_resource:
    sid: vm:300
    state: absent
"""

RETURN = r"""
resource:
  description:
    - Single-resource mode. The HA resource after the run (predicted in check mode); null when absent.
    - C(group) on PVE 8; C(failback) on PVE 9, and C(group) there when O(group) is set; C(node) when the
      resource was moved.
  returned: success and O(sid) or O(vmid) given
  type: dict
  sample: {sid: "vm:300", state: started, max_restart: 2, max_relocate: 1, comment: "", group: gpu}
action:
  description:
    - Single-resource mode. What happened to the resource. One of V(created), V(updated), V(deleted),
      V(unchanged), V(absent), V(migrated), V(relocated) (moved, nothing else changed).
  returned: success and O(sid) or O(vmid) given
  type: str
  sample: created
moved:
  description: Single-resource mode. Whether a migration or relocation was requested.
  returned: success and O(migrate_to) or O(relocate_to) given
  type: bool
  sample: true
node:
  description: Single-resource mode. The node the resource is on after the run.
  returned: success and O(migrate_to) or O(relocate_to) given
  type: str
  sample: pve-2
resources:
  description:
    - List mode. One entry per listed resource and per resource removed by O(purge), with C(sid), C(action),
      C(config) (as RV(resource)) and, when a move was asked for, C(moved) and C(node).
  returned: success and O(resources) given
  type: list
  elements: dict
  sample:
    - {sid: "vm:300", action: unchanged, config: {sid: "vm:300", state: started, max_restart: 1,
       max_relocate: 1, comment: "", failback: true}}
"""

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_ha import ResourcePlanner, run_ha_module


def main():
    run_ha_module(ResourcePlanner, planned_nodes=dict(type="list", elements="str", default=[]),
                  wait_timeout=dict(type="int", default=300),
                  planned_guests=dict(type="list", elements="int", default=[]),
                  planned_groups=dict(type="list", elements="dict", default=[]))


if __name__ == "__main__":
    main()
