#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The options of one group are documented once (YAML anchors) and reused for the items of O(groups).
DOCUMENTATION = r"""
module: proxmox_ha_group
short_description: Manage Proxmox VE HA groups, also on PVE 9 where they became node-affinity rules
version_added: 0.1.0
description:
  - Creates, updates and deletes HA groups (C(/cluster/ha/groups)) on Proxmox VE 8.
  - Proxmox VE 9 replaced HA groups with HA rules, and every C(/cluster/ha/groups) call fails there. So that
    an inventory written for PVE 8 keeps working, on PVE 9 the module manages the node-affinity rule
    C(ha-group-<name>) instead (the name PVE's own upgrade gives the rule of a migrated group) and says so
    in a warning. O(nodes) become the rule's nodes with their priorities, O(restricted) its C(strict), and
    O(comment) its comment; the rule is enabled. O(nofailback) sets C(failback) (the inverse) on each HA
    resource the rule lists, because PVE 9 keeps failback per resource. The rule's resources are not
    touched, they are the resources whose O(ailab.cluster.proxmox_ha_resource#module:group) is this group.
  - A PVE 9 rule needs at least one resource, so a group that no resource uses has no rule yet (PVE's
    upgrade skips such groups too). The module then changes nothing and warns (RV(action=deferred));
    M(ailab.cluster.proxmox_ha_resource) with O(ailab.cluster.proxmox_ha_resource#module:group) creates the
    rule, disabled, with its first resource, and the next run of this module enables it with the group's
    nodes. The C(proxmox_ha) role runs resources before groups on PVE 9, so one run is enough there.
  - Takes one group (O(name) and its options) or a list (O(groups)). A list is read with one request and
    only the differences are written; O(purge) removes the groups that are not listed.
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
  name: &name
    description:
      - Name of the HA group. Required unless O(groups) is given.
      - On PVE 9 the rule C(ha-group-<name>) stands for the group.
    type: str
    aliases: [group]
  nodes: &nodes
    description:
      - Nodes the group prefers, each V(node) or V(node:priority); a higher priority wins, no priority is 0.
      - Required when O(state=present).
      - On PVE 9 the node-affinity rule's nodes.
    type: list
    elements: str
  restricted: &restricted
    description:
      - Whether the group's resources may run only on O(nodes). Not changed when not set (PVE's default is
        V(false)).
      - On PVE 9 the rule's C(strict).
    type: bool
  nofailback: &nofailback
    description:
      - Whether the group's resources stay where they are when a node with a higher priority comes back.
        Not changed when not set (PVE's default is V(false)).
      - On PVE 9 C(failback) (V(false) for O(nofailback=true)) of every HA resource in the group's rule.
    type: bool
  comment: &comment
    description:
      - Description of the group; V("") removes it. Not changed when not set.
    type: str
  state: &state
    description:
      - V(present) creates or updates the group, V(absent) deletes it. V(present) when not set.
      - On PVE 8 a group that a resource still uses cannot be deleted; the module says so before any change.
      - On PVE 9 V(absent) deletes the rule; its resources stay HA managed, without node preference.
    type: str
    choices: [present, absent]
  groups:
    description:
      - List mode. HA groups, each a dict with the same keys as the single-group options and checked by the
        same rules.
      - The groups are read with one request and only the differences are written.
      - The single-group options must not be set next to O(groups).
    type: list
    elements: dict
    suboptions:
      name: *name
      nodes: *nodes
      restricted: *restricted
      nofailback: *nofailback
      comment: *comment
      state: *state
  purge:
    description:
      - In list mode, delete the groups that O(groups) does not list (on PVE 9, the C(ha-group-*) rules that it
        does not list; other rules are left alone).
      - Only with O(groups).
    type: bool
    default: false
  planned_nodes:
    description:
      - Check mode only. Names of nodes that join the cluster earlier in the same run (the
        C(ailab.cluster.proxmox_cluster) role's nodes), so that the plan of a fresh cluster accepts them
        in O(nodes) instead of refusing them as unknown. A node neither in the cluster nor in this list is
        refused. Ignored outside check mode, where the join has happened.
    type: list
    elements: str
    default: []
notes:
  - See C(docs/proxmox_ha.md) in the collection for the PVE 8 to 9 behaviour of all HA modules.
seealso:
  - module: ailab.cluster.proxmox_ha_resource
  - module: ailab.cluster.proxmox_ha_rule
"""

EXAMPLES = r"""
- name: GPU guests prefer pve-1 and may fail over to pve-2
  ailab.cluster.proxmox_ha_group:
    name: gpu
    nodes: ["pve-1:2", "pve-2:1"]
    restricted: true
    nofailback: false
    comment: RTX 3090 guests

- name: All groups of the lab in one call, removing the others
  ailab.cluster.proxmox_ha_group:
    groups:
      - {name: gpu, nodes: ["pve-1:2", "pve-2:1"], restricted: true}
      - {name: services, nodes: [pve-1, pve-2]}
    purge: true

- name: Delete a group
  ailab.cluster.proxmox_ha_group:
    name: old
    state: absent
"""

RETURN = r"""
group:
  description:
    - Single-group mode. The group after the run (predicted in check mode); null when absent or deferred.
    - On PVE 9 with C(rule) (the rule's id), C(resources) (its HA resources), C(enabled), and C(nofailback)
      when O(nofailback) is managed (null when the resources disagree).
  returned: success and O(name) given
  type: dict
  sample: {name: gpu, nodes: ["pve-1:2", "pve-2:1"], restricted: true, nofailback: false, comment: RTX 3090 guests}
action:
  description:
    - Single-group mode. What happened to the group. One of V(created), V(updated), V(deleted), V(unchanged),
      V(absent), V(deferred).
    - V(deferred) on PVE 9 when no resource uses the group yet, so that it has no rule.
  returned: success and O(name) given
  type: str
  sample: created
rule:
  description: Single-group mode on PVE 9. Id of the node-affinity rule that stands for the group.
  returned: success, O(name) given and PVE 9
  type: str
  sample: ha-group-gpu
groups:
  description:
    - List mode. One entry per listed group and per group removed by O(purge), with C(name), C(action),
      C(config) (as RV(group)) and, on PVE 9, C(rule).
  returned: success and O(groups) given
  type: list
  elements: dict
  sample:
    - {name: gpu, action: unchanged, config: {name: gpu, nodes: ["pve-1:2", "pve-2:1"], restricted: true,
       nofailback: false, comment: ""}}
"""

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_ha import GroupPlanner, run_ha_module


def main():
    run_ha_module(GroupPlanner, planned_nodes=dict(type="list", elements="str", default=[]))


if __name__ == "__main__":
    main()
