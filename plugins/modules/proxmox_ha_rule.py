#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The options of one rule are documented once (YAML anchors) and reused for the items of O(rules).
DOCUMENTATION = r"""
module: proxmox_ha_rule
short_description: Manage Proxmox VE 9 HA rules (node affinity and resource affinity)
version_added: 0.1.0
description:
  - Creates, updates and deletes HA rules (C(/cluster/ha/rules)), which Proxmox VE 9 introduced in place of
    HA groups. A node-affinity rule keeps HA resources on preferred nodes; a resource-affinity rule keeps
    resources together (V(positive)) or apart (V(negative)).
  - An existing rule is updated in place; it is deleted and created again only when its O(type) changes.
  - Before any change the module checks what PVE would refuse half-way through a list, and says which rule
    to fix - resources that are not HA managed, unknown nodes, and a resource in two enabled
    node-affinity rules.
  - Fails on Proxmox VE 8, which has no HA rules; use M(ailab.cluster.proxmox_ha_group) there.
  - Takes one rule (O(name) and its options) or a list (O(rules)). A list is read with one request and only
    the differences are written; O(purge) removes the rules that are not listed.
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
      - Id of the rule. Required unless O(rules) is given.
      - Ids starting with C(ha-group-) are the rules of HA groups that M(ailab.cluster.proxmox_ha_group)
        manages on PVE 9; the module warns when you manage one here too.
    type: str
    aliases: [rule]
  type: &type
    description:
      - Kind of rule. Required when O(state=present).
    type: str
    choices: [node-affinity, resource-affinity]
  resources: &resources
    description:
      - HA resources the rule applies to, as V(vm:<vmid>) or V(ct:<vmid>); they must be HA managed
        (M(ailab.cluster.proxmox_ha_resource)). Required when O(state=present).
      - A resource-affinity rule needs at least two.
      - The rule holds exactly these resources; the order does not matter.
    type: list
    elements: str
  nodes: &nodes
    description:
      - Node-affinity rules. Nodes the resources prefer, each V(node) or V(node:priority); a higher priority
        wins, no priority is 0. Required for O(type=node-affinity).
    type: list
    elements: str
  strict: &strict
    description:
      - Node-affinity rules. Whether the resources may run only on O(nodes). Not changed when not set (PVE's
        default is V(false)).
    type: bool
  affinity: &affinity
    description:
      - Resource-affinity rules. V(positive) keeps the resources on one node, V(negative) on different nodes.
        Required for O(type=resource-affinity).
    type: str
    choices: [positive, negative]
  disable: &disable
    description:
      - Whether the rule is disabled (kept, but without effect). Not changed when not set (PVE's default is
        V(false)).
    type: bool
  comment: &comment
    description:
      - Description of the rule; V("") removes it. Not changed when not set.
    type: str
  state: &state
    description:
      - V(present) creates or updates the rule, V(absent) deletes it. V(present) when not set.
    type: str
    choices: [present, absent]
  rules:
    description:
      - List mode. HA rules, each a dict with the same keys as the single-rule options and checked by the
        same rules.
      - The rules are read with one request and only the differences are written.
      - The single-rule options must not be set next to O(rules).
    type: list
    elements: dict
    suboptions:
      name: *name
      type: *type
      resources: *resources
      nodes: *nodes
      strict: *strict
      affinity: *affinity
      disable: *disable
      comment: *comment
      state: *state
  purge:
    description:
      - In list mode, delete the rules that O(rules) does not list, except the C(ha-group-*) rules of HA groups
        (M(ailab.cluster.proxmox_ha_group) owns those).
      - Only with O(rules).
    type: bool
    default: false
  planned_nodes:
    description:
      - Check mode only. Names of nodes that join the cluster earlier in the same run (the
        C(ailab.cluster.proxmox_cluster) role's nodes), so that the plan of a fresh cluster accepts them
        in the O(nodes) of a node-affinity rule (and in the groups of O(planned_groups)) and counts them
        among the nodes a negative resource-affinity rule spreads its resources over, instead of refusing
        them as unknown. A node neither in the cluster nor in this list is refused. Ignored outside check
        mode, where the join has happened.
    type: list
    elements: str
    default: []
  planned_resources:
    description:
      - Check mode only. HA resource ids (C(vm:201)) that an earlier task of the same run makes HA managed,
        so that a plan in check mode on a fresh cluster counts them as managed instead of refusing the
        rules that name them. Ignored outside check mode.
    type: list
    elements: str
    default: []
  planned_groups:
    description:
      - HA groups (dicts with the keys of M(ailab.cluster.proxmox_ha_group)) that the same run creates or
        changes. On Proxmox VE 9 each is the node-affinity rule C(ha-group-<name>); with O(planned_members)
        they join the rules checked for feasibility, so that a set of groups and rules that PVE would refuse
        half-way is refused before any write. Setting it also checks that PVE 9 has migrated the HA groups.
    type: list
    elements: dict
    default: []
  planned_members:
    description:
      - HA resources (dicts with the keys of M(ailab.cluster.proxmox_ha_resource); C(sid) or C(vmid) and
        C(type), and C(group)) that the same run puts in the groups of O(planned_groups).
    type: list
    elements: dict
    default: []
notes:
  - Before any write the module checks the rules it writes together with the other enabled rules, as
    Proxmox VE 9 does (a resource in two node-affinity rules, a resource-affinity rule over resources of a
    node-affinity rule with several priorities, a negative rule naming more resources than the cluster has
    nodes, positive and negative rules sharing resources, ...), and names the conflicting rules.
  - On a Proxmox VE 9 cluster upgraded from 8 whose HA manager has not migrated the HA groups yet, PVE
    refuses every rule write; the module then fails before any write and says what to do.
  - "A rule is enabled with C(delete=disable): Proxmox VE ignores C(disable=0)."
  - See C(docs/proxmox_ha.md) in the collection for the PVE 8 to 9 behaviour of all HA modules.
seealso:
  - module: ailab.cluster.proxmox_ha_resource
  - module: ailab.cluster.proxmox_ha_group
"""

EXAMPLES = r"""
- name: Keep the JupyterHub VM on the GPU node
  ailab.cluster.proxmox_ha_rule:
    name: jupyter-on-gpu
    type: node-affinity
    resources: ["vm:300"]
    nodes: ["pve-1:2", "pve-2:1"]
    strict: false

- name: Keep the two Kubernetes control-plane VMs apart
  ailab.cluster.proxmox_ha_rule:
    name: k8s-cp-apart
    type: resource-affinity
    affinity: negative
    resources: ["vm:201", "vm:202"]
    comment: one control plane per node

- name: All rules of the lab in one call
  ailab.cluster.proxmox_ha_rule:
    rules:
      - {name: jupyter-on-gpu, type: node-affinity, resources: ["vm:300"], nodes: ["pve-1:2", "pve-2:1"]}
      - {name: k8s-cp-apart, type: resource-affinity, affinity: negative, resources: ["vm:201", "vm:202"]}
    purge: true
"""

RETURN = r"""
rule:
  description:
    - Single-rule mode. The rule after the run (predicted in check mode); null when absent.
  returned: success and O(name) given
  type: dict
  sample: {name: k8s-cp-apart, type: resource-affinity, affinity: negative, resources: ["vm:201", "vm:202"],
           disable: false, comment: one control plane per node}
action:
  description:
    - Single-rule mode. What happened to the rule; V(replaced) when its type changed (deleted and created).
    - One of V(created), V(updated), V(replaced), V(deleted), V(unchanged), V(absent).
  returned: success and O(name) given
  type: str
  sample: updated
rules:
  description:
    - List mode. One entry per listed rule and per rule removed by O(purge), with C(name), C(action) and
      C(config) (as RV(rule)).
  returned: success and O(rules) given
  type: list
  elements: dict
  sample:
    - {name: k8s-cp-apart, action: created, config: {name: k8s-cp-apart, type: resource-affinity,
       affinity: negative, resources: ["vm:201", "vm:202"], disable: false, comment: ""}}
"""

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_ha import RulePlanner, run_ha_module


def main():
    run_ha_module(RulePlanner, planned_nodes=dict(type="list", elements="str", default=[]),
                  planned_resources=dict(type="list", elements="str", default=[]),
                  planned_groups=dict(type="list", elements="dict", default=[]),
                  planned_members=dict(type="list", elements="dict", default=[]))


if __name__ == "__main__":
    main()
