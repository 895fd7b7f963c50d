#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_cluster_info
short_description: Read the state of a Proxmox VE cluster
version_added: 0.1.0
description:
  - Reads the Proxmox VE version, the cluster name and quorum, the nodes and whether they are
    online, the HA manager and local resource manager (LRM) status, and the storages.
  - Never changes anything. Makes at most four read requests whatever the size of the cluster, one
    per part in O(gather) (C(cluster) and C(nodes) share one).
author:
  - ailab.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ailab.cluster.proxmox
  - ailab.cluster.attributes.INFO_MODULE
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  gather:
    description:
      - The parts to read and return. V(all) reads everything.
      - V(version) reads C(/version). V(cluster) and V(nodes) read C(/cluster/status), once for both.
        V(ha) reads C(/cluster/ha/status/current), and V(storages) reads C(/storage).
      - A part that is not gathered is not returned.
    type: list
    elements: str
    choices: [all, version, cluster, nodes, ha, storages]
    default: [all]
"""

EXAMPLES = r"""
- name: Read the lab cluster
  ailab.cluster.proxmox_cluster_info:
    api_host: pve-1.lab.example
    api_user: root@pam
    api_token_id: ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    ca_path: /etc/ailab/pve-root-ca.pem
  register: pve

- name: Stop when the cluster has lost quorum
  ansible.builtin.assert:
    that: pve.cluster.quorate
    fail_msg: "Cluster {{ pve.cluster.name }} has no quorum: bring the other node back first."

- name: Use PVE 9 HA rules only where they exist
  ansible.builtin.debug:
    msg: "HA rules API available: {{ pve.version.major >= 9 }}"

- name: Only the version and the quorum (two reads)
  ailab.cluster.proxmox_cluster_info:
    gather: [version, cluster]
  register: pve_quorum
"""

RETURN = r"""
version:
  description: The API version of the node answering.
  returned: when O(gather) has V(version) or V(all)
  type: dict
  sample: {version: "9.1.3", release: "9.1", repoid: "e5010dce", major: 9}
cluster:
  description: Cluster name, quorum and size; the name is null on a standalone node.
  returned: when O(gather) has V(cluster) or V(all)
  type: dict
  sample: {name: ailab, quorate: true, nodes: 2, config_version: 2}
nodes:
  description: Every node with its online state and address.
  returned: when O(gather) has V(nodes) or V(all)
  type: list
  elements: dict
  sample: [{name: pve-1, online: true, ip: 192.168.1.11, nodeid: 1, local: true}]
ha:
  description: HA manager (CRM) master, quorum and LRM state of each node, and the HA services.
  returned: when O(gather) has V(ha) or V(all)
  type: dict
  sample:
    quorate: true
    master: {node: pve-1, status: "pve-1 (active, Mon Nov 23 06:00:00 2026)"}
    lrm: {pve-1: "active", pve-2: "idle"}
    services: [{sid: "vm:100", node: pve-1, state: started, status: "vm:100 (pve-1, started)"}]
storages:
  description: Storage definitions of the cluster (C(/storage)).
  returned: when O(gather) has V(storages) or V(all)
  type: list
  elements: dict
  sample: [{storage: nas, type: nfs, content: "images,rootdir,backup", shared: 1}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    ProxmoxClient,
    ProxmoxError,
    proxmox_argument_spec,
    proxmox_module_kwargs,
)


PARTS = ("version", "cluster", "nodes", "ha", "storages")


def cluster_state(client, gather=PARTS):
    """The parts in ``gather``, one read per part (``cluster`` and ``nodes`` share /cluster/status)."""
    result = {}
    if "version" in gather:
        version = dict(client.version)
        version["major"] = client.major
        result["version"] = version
    if "cluster" in gather or "nodes" in gather:
        cluster, nodes = cluster_status(client)
        if "cluster" in gather:
            result["cluster"] = cluster
        if "nodes" in gather:
            result["nodes"] = nodes
    if "ha" in gather:
        result["ha"] = ha_status(client)
    if "storages" in gather:
        result["storages"] = sorted(client.get("storage", what="the storage configuration"), key=lambda s: s["storage"])
    return result


def cluster_status(client):
    status = client.get("cluster/status", what="the cluster status")
    cluster = dict(name=None, quorate=True, nodes=1, config_version=None)
    nodes = []
    for entry in status:
        if entry.get("type") == "cluster":
            cluster.update(name=entry.get("name"), quorate=bool(entry.get("quorate")),
                           nodes=entry.get("nodes"), config_version=entry.get("version"))
        elif entry.get("type") == "node":
            nodes.append(dict(name=entry.get("name"), online=bool(entry.get("online")), ip=entry.get("ip"),
                              nodeid=entry.get("nodeid"), local=bool(entry.get("local"))))
    nodes.sort(key=lambda n: n["name"])
    return cluster, nodes


def ha_status(client):
    ha = dict(quorate=None, master=None, lrm={}, services=[])
    for entry in client.get("cluster/ha/status/current", what="the HA status"):
        kind = entry.get("type")
        if kind == "quorum":
            ha["quorate"] = bool(entry.get("quorate"))
        elif kind == "master":
            ha["master"] = dict(node=entry.get("node"), status=entry.get("status"))
        elif kind == "lrm":
            ha["lrm"][entry.get("node")] = entry.get("status")
        elif kind == "service":
            ha["services"].append(dict(sid=entry.get("sid"), node=entry.get("node"), state=entry.get("state"),
                                       status=entry.get("status")))
    return ha


def main():
    spec = proxmox_argument_spec(gather=dict(type="list", elements="str", choices=["all"] + list(PARTS), default=["all"]))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **proxmox_module_kwargs())
    gather = module.params["gather"]
    if not gather:
        module.fail_json(msg="gather is empty: list the parts to read (%s), or all" % ", ".join(PARTS))
    gather = PARTS if "all" in gather else gather
    client = ProxmoxClient.from_module(module)
    try:
        result = cluster_state(client, gather)
    except ProxmoxError as exc:
        module.fail_json(msg=exc.msg, status=exc.status)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
