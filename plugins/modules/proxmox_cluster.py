#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_cluster
short_description: Create a Proxmox VE cluster and join nodes to it
version_added: 0.1.0
description:
  - Owns cluster membership, what C(pvecm create) and C(pvecm add) do by hand. The node reached with
    the connection options (the first node) creates the cluster, the nodes in O(nodes) join it one
    at a time.
  - Reads C(/cluster/status) of the first node. When it reports cluster O(cluster_name) with every
    node of O(nodes), nothing is written.
  - When the first node is in no cluster, creates it (C(POST /cluster/config)) and waits for the
    task and for the cluster to be quorate.
  - Every node of O(nodes) that is not a member yet is checked first (its own C(/cluster/status)
    must not name another cluster), then joined (C(POST /cluster/config/join) sent to that node,
    with the first node's address and certificate fingerprint from C(GET /cluster/config/join));
    the module waits for the join task and until the first node reports the node online before it
    joins the next one.
  - Fails before any write when the first node is in a cluster of another name, a node to join is
    in another cluster, or a connection that must create or join is not a root@pam password login.
  - Only O(state=present) exists. Dissolving a cluster or removing a node (C(pvecm delnode) and
    reinstalling the node) is not offered. Members that are not listed are left alone and returned
    in RV(not_listed).
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
  cluster_name:
    description:
      - Name of the cluster (letters, digits and V(-), at most 15 characters). It cannot change once
        the cluster exists.
    type: str
    required: true
  state:
    description:
      - V(present) creates the cluster and joins the nodes. Dissolving a cluster is not offered.
    type: str
    choices: [present]
    default: present
  link0:
    description: Corosync link 0 address of the first node, used when the cluster is created.
    type: str
  link1:
    description: Corosync link 1 address of the first node, used when the cluster is created.
    type: str
  nodeid:
    description: Corosync node ID of the first node when the cluster is created (default chosen by Proxmox VE).
    type: int
  votes:
    description: Quorum votes of the first node when the cluster is created (default 1).
    type: int
  nodes:
    description:
      - Nodes that must be members, in join order. An entry naming the first node is allowed and
        needs nothing. Each node that has to join is reached with its own connection, because a node
        outside the cluster has its own CA and its own root@pam; the cluster's API tokens are only
        valid on it after the join.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Node name as Proxmox VE knows it (its hostname).
        type: str
        required: true
      api_host:
        description: Address of the node's API. Default is O(nodes[].name).
        type: str
      api_port:
        description: HTTPS port of the node's API.
        type: int
        default: 8006
      api_user:
        description: User to log in to the node with. Joining needs V(root@pam).
        type: str
        default: root@pam
      api_password:
        description: Password of O(nodes[].api_user) on the node (its root password), needed to join it.
        type: str
      api_token_id:
        description:
          - API token name on the node. Accepted so that a shared connection can be passed, but Proxmox VE
            refuses to join with a token; a node that must join with only a token fails before any write.
        type: str
      api_token_secret:
        description: Secret of O(nodes[].api_token_id).
        type: str
      validate_certs:
        description: Verify the node's TLS certificate.
        type: bool
        default: true
      ca_path:
        description: CA that signed the node's certificate, for example a copy of its C(/etc/pve/pve-root-ca.pem).
        type: path
      link0:
        description: Corosync link 0 address of the node (default the address its hostname resolves to).
        type: str
      link1:
        description: Corosync link 1 address of the node.
        type: str
      nodeid:
        description: Corosync node ID of the node (default chosen by Proxmox VE).
        type: int
      votes:
        description: Quorum votes of the node (default 1).
        type: int
  join_password:
    description:
      - root@pam password of the first node; Proxmox VE needs it to join another node.
      - Default is O(api_password) when the connection to the first node is a root@pam password login.
      - Only used when a node has to join.
    type: str
  timeout:
    description:
      - Seconds to wait for each task (create, join), for the new cluster to be quorate and for each
        joined node to show up online.
    type: int
    default: 300
notes:
  - Creating and joining work only for root@pam logged in with its password, as in Proxmox VE (API
    tokens get HTTP 403 C(Permission check failed (user != root@pam))). Reading the status works with
    any connection, so a run where everything is in place may use an API token.
  - A join restarts the node's cluster services and replaces its certificate by one of the cluster
    CA. When the joining node's API cannot be reached any more while the module waits for its join
    task, the module waits through the first node instead.
  - While it waits (tasks, quorum, a joined node online), the module rides through the restart of a
    node's API after a create or join - answers 5xx (C(ipcc_send_rec failed), C(595 Errors during
    connection establishment)), failed connections - and logs in again when the node answers 401
    (tickets signed with the node's old key are refused after a join), until O(timeout).
seealso:
  - module: ailab.cluster.proxmox_cluster_info
"""

EXAMPLES = r"""
- name: Create the cluster on pve-1 and join pve-2
  ailab.cluster.proxmox_cluster:
    api_host: pve-1.lab.example
    api_user: root@pam
    api_password: "{{ vault_pve1_root_password }}"
    ca_path: /etc/ailab/pve-1-root-ca.pem
    cluster_name: ailab
    link0: 192.168.10.11
    nodes:
      - name: pve-2
        api_host: 192.168.10.12
        api_password: "{{ vault_pve2_root_password }}"
        ca_path: /etc/ailab/pve-2-root-ca.pem
        link0: 192.168.10.12
  register: cluster

- name: Check an existing cluster with an API token (no join needed, nothing written)
  ailab.cluster.proxmox_cluster:
    api_host: pve-1.lab.example
    api_token_id: ansible
    api_token_secret: "{{ vault_pve_token_secret }}"
    ca_path: /etc/ailab/pve-root-ca.pem
    cluster_name: ailab
    nodes:
      - name: pve-2
"""

RETURN = r"""
cluster:
  description: The cluster after the run (predicted in check mode) with its members.
  returned: always
  type: dict
  sample: {name: ailab, members: [pve-1, pve-2]}
created:
  description: Whether the cluster was (or in check mode would be) created on the first node.
  returned: always
  type: bool
  sample: false
joined:
  description: Nodes that joined (or in check mode would join), in join order.
  returned: always
  type: list
  elements: str
  sample: [pve-2]
not_listed:
  description: Members of the cluster that are neither the first node nor in O(nodes); left alone.
  returned: always
  type: list
  elements: str
  sample: []
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    ProxmoxClient,
    ProxmoxError,
    proxmox_argument_spec,
    proxmox_module_kwargs,
    requests,
)

POLL = 2.0
# Seconds between tries while a node's API restarts (after a create or join).
RESTART_POLL = 0.5
CORO_KEYS = ("link0", "link1", "nodeid", "votes")
NODE_CONNECTION = ("api_host", "api_port", "api_user", "api_password", "api_token_id", "api_token_secret",
                   "validate_certs", "ca_path")


class Fail(Exception):
    """A refusal, already phrased for the user."""


class NodeConnection(object):
    """What ProxmoxClient.from_module needs to log in to a joining node with its own connection."""

    def __init__(self, module, node):
        self.params = dict((k, node[k]) for k in NODE_CONNECTION)
        self.params.update(api_host=node["api_host"] or node["name"], api_timeout=module.params["api_timeout"],
                           api_retries=module.params["api_retries"])
        self.fail_json = module.fail_json
        self.warn = module.warn


class LoginAgain(object):
    """The connection options of ``connection`` for a new login whose failure raises ProxmoxError
    (the API may still be restarting) instead of ending the module."""

    def __init__(self, connection):
        self.params = connection.params
        self.warn = connection.warn

    def fail_json(self, msg, **kwargs):
        raise ProxmoxError(msg)


class Session(object):
    """One node's API session; logs in again after the node's API restarted with a new auth key."""

    def __init__(self, connection, client):
        self.connection = connection
        self.client = client
        self.logins = 0

    def login_again(self):
        self.client = ProxmoxClient.from_module(LoginAgain(self.connection))
        self.logins += 1


def restarting(exc):
    """True for the errors a node's API gives while it restarts after a create or join: 5xx (not 501),
    a failed connection (not a TLS failure: that is a new certificate), 401 (a ticket of the old auth key)."""
    if exc.status is not None:
        return exc.status == 401 or (exc.status >= 500 and exc.status != 501)
    cause = exc.__cause__
    return (requests is not None and isinstance(cause, requests.exceptions.RequestException)
            and not isinstance(cause, requests.exceptions.SSLError))


def ride_through(session, call, what, timeout, sleep=time.sleep):
    """``call(session.client)``, waiting out the restart of the node's API (see :func:`restarting`) and logging
    in again on 401, for at most ``timeout`` seconds; other errors are raised at once."""
    deadline = time.time() + timeout
    while True:
        try:
            return call(session.client)
        except ProxmoxError as exc:
            if not restarting(exc):
                raise
            last = exc
        login = last.status == 401
        while True:
            if time.time() > deadline:
                raise ProxmoxError("Timed out after %ss waiting for %s: the Proxmox VE API did not come back after "
                                   "its restart (last error: %s)" % (timeout, what, last.msg), status=last.status)
            sleep(RESTART_POLL)
            if not login:
                break
            try:
                session.login_again()
                break
            except ProxmoxError as exc:  # still restarting: log in again later
                last = exc


def read_status(client):
    """``(cluster name or None, quorate, {member: online}, name of the node answering)``."""
    name, quorate, members, local = None, True, {}, None
    for entry in client.get("cluster/status", what="the cluster status"):
        if entry.get("type") == "cluster":
            name, quorate = entry.get("name") or None, bool(entry.get("quorate"))
        elif entry.get("type") == "node":
            members[entry.get("name")] = bool(entry.get("online"))
            if entry.get("local"):
                local = entry.get("name")
    if local is None and len(members) == 1:
        local = next(iter(members))
    return name, quorate, members, local


def password_login(params):
    """True when ``params`` log in as root@pam with a password (what create and join need)."""
    return params.get("api_user") == "root@pam" and bool(params.get("api_password")) and not params.get("api_token_secret")


def task_node(upid, default):
    parts = str(upid).split(":")
    return parts[1] if len(parts) > 2 and parts[0] == "UPID" else default


def wait_for(check, timeout, what):
    """Call ``check()`` until it returns true; fail after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise ProxmoxError("Timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(POLL)


class ClusterMembership(object):
    def __init__(self, module, client):
        self.module = module
        self.session = Session(module, client)
        self.params = module.params
        self.name = module.params["cluster_name"]
        self.created = False
        self.joined = []
        self.members = {}
        self.before = []
        self.first = None

    @property
    def client(self):
        """The first node's client (a new one after a login again)."""
        return self.session.client

    def waiting(self, session, call, what):
        return ride_through(session, call, what, self.params["timeout"])

    # ---------------------------------------------------------------- plan
    def plan(self):
        current, quorate, self.members, self.first = read_status(self.client)
        self.before = sorted(self.members) if current else []
        first = self.first or self.params["api_host"]
        if current and current != self.name:
            raise Fail("%s is already in cluster '%s', not '%s'. A cluster cannot be renamed through the API: set "
                       "cluster_name to '%s', or connect to a node of the cluster you want." % (first, current, self.name, current))
        names = [n["name"] for n in self.params["nodes"]]
        twice = sorted(set(n for n in names if names.count(n) > 1))
        if twice:
            raise Fail("nodes lists %s more than once: give each node once." % ", ".join(twice))
        create = not current
        known = set() if create else set(self.members)
        missing = [n for n in self.params["nodes"] if n["name"] not in known and n["name"] != self.first]
        return current, create, missing

    def check_logins(self, create, missing):
        """Refuse before any write what Proxmox VE would refuse: create/join without a root@pam password."""
        token_only = [n["name"] for n in missing if not password_login(n)]
        if create and not password_login(self.params):
            token_only.insert(0, "%s (the connection options)" % (self.first or self.params["api_host"]))
        if token_only:
            raise Fail("Proxmox VE creates and joins clusters only for root@pam logged in with its password (API tokens "
                       "get 403 \"Permission check failed (user != root@pam)\"): set api_user root@pam and api_password "
                       "(from Ansible Vault) for %s." % ", ".join(token_only))
        if missing and not self.join_password():
            joining = ", ".join(n["name"] for n in missing)
            raise Fail("%s must join cluster %s; Proxmox VE needs the root@pam password of %s for that: set "
                       "join_password (from Ansible Vault)." % (joining, self.name, self.first or self.params["api_host"]))

    def join_password(self):
        if self.params["join_password"]:
            return self.params["join_password"]
        return self.params["api_password"] if password_login(self.params) else None

    def connect_and_check(self, missing):
        """Log in to each node that must join and check that it is in no other cluster."""
        clients = {}
        for node in missing:
            connection = NodeConnection(self.module, node)
            client = ProxmoxClient.from_module(connection)
            other, quorate, members, local = read_status(client)
            if other and other != self.name:
                raise Fail("%s is already in cluster '%s' and cannot join '%s'. Remove it from that cluster first "
                           "(pvecm delnode on a member of '%s', then reinstall or separate the node), or leave it out of "
                           "nodes." % (node["name"], other, self.name, other))
            clients[node["name"]] = Session(connection, client)
        return clients

    # ---------------------------------------------------------------- act
    def create(self):
        params = dict((k, self.params[k]) for k in CORO_KEYS)
        what = "creating cluster %s on %s" % (self.name, self.first)
        upid = self.client.post("cluster/config", what=what, clustername=self.name, **params)
        # pvecm create restarts corosync and pmxcfs on the node: wait through it
        self.waiting(self.session, lambda c: c.wait_task(task_node(upid, self.first), upid, what,
                                                         timeout=self.params["timeout"]), what)
        self.created = True

        def up():
            name, quorate, self.members, local = self.waiting(self.session, read_status, "the status of cluster %s" % self.name)
            self.first = self.first or local
            return name == self.name and quorate
        wait_for(up, self.params["timeout"], "cluster %s to be quorate on %s" % (self.name, self.first))

    def join_target(self):
        info = self.client.get("cluster/config/join", what="the join information of cluster %s" % self.name)
        nodelist = info.get("nodelist") or []
        peer = next((n for n in nodelist if n.get("name") == info.get("preferred_node")), nodelist[0] if nodelist else None)
        if not peer or not peer.get("pve_addr") or not peer.get("pve_fp"):
            raise ProxmoxError("The join information of cluster %s has no address and fingerprint of %s." % (self.name, self.first))
        return peer["pve_addr"], peer["pve_fp"]

    def join(self, node, session, hostname, fingerprint):
        what = "joining %s to cluster %s" % (node["name"], self.name)
        params = dict((k, node[k]) for k in CORO_KEYS)
        upid = session.client.post("cluster/config/join", what=what, hostname=hostname, fingerprint=fingerprint,
                                   password=self.join_password(), **params)
        tasknode = task_node(upid, node["name"])

        def task_done(client):
            return client.wait_task(tasknode, upid, what, timeout=self.params["timeout"])
        try:
            # The join restarts pmxcfs, pveproxy and pvedaemon on the node, with the cluster's auth key
            # (old tickets get 401): ride through it.
            self.waiting(session, task_done, what)
            waited = True
        except ProxmoxError as exc:
            # ... and with a certificate of the cluster CA: when the node's certificate is not trusted
            # any more (or it stays unreachable), wait through the first node, which sees the task once
            # the node is a member.
            if requests is None or not isinstance(exc.__cause__, requests.exceptions.RequestException):
                raise
            waited = False

        def online():
            self.members = self.waiting(self.session, read_status, "the status of cluster %s" % self.name)[2]
            return self.members.get(node["name"], False)
        wait_for(online, self.params["timeout"], "%s to show online in cluster %s" % (node["name"], self.name))
        if not waited:
            self.waiting(self.session, task_done, what)
        self.joined.append(node["name"])

    def result(self, current, create, missing, done):
        if done:
            members = sorted(self.members)
        else:
            members = sorted(set(self.before) | set([self.first] if self.first else []) | set(n["name"] for n in missing))
        listed = set(n["name"] for n in self.params["nodes"]) | set([self.first])
        result = dict(changed=bool(create or missing), cluster=dict(name=self.name, members=members),
                      created=bool(create), joined=[n["name"] for n in missing],
                      not_listed=sorted(m for m in members if m not in listed))
        if self.module._diff:
            result["diff"] = dict(before=dict(cluster=current, members=self.before), after=dict(cluster=self.name, members=members))
        return result


def main():
    node_options = dict(
        name=dict(type="str", required=True),
        api_host=dict(type="str"),
        api_port=dict(type="int", default=8006),
        api_user=dict(type="str", default="root@pam"),
        api_password=dict(type="str", no_log=True),
        api_token_id=dict(type="str"),
        api_token_secret=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        link0=dict(type="str"),
        link1=dict(type="str"),
        nodeid=dict(type="int"),
        votes=dict(type="int"),
    )
    module = AnsibleModule(
        argument_spec=proxmox_argument_spec(
            cluster_name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present"]),
            link0=dict(type="str"),
            link1=dict(type="str"),
            nodeid=dict(type="int"),
            votes=dict(type="int"),
            nodes=dict(type="list", elements="dict", default=[], options=node_options),
            join_password=dict(type="str", no_log=True),
            timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
        **proxmox_module_kwargs()
    )
    client = ProxmoxClient.from_module(module)
    membership = ClusterMembership(module, client)
    current = create = None
    missing = []
    try:
        current, create, missing = membership.plan()
        membership.check_logins(create, missing)
        clients = membership.connect_and_check(missing)
        if module.check_mode or not (create or missing):
            module.exit_json(**membership.result(current, create, missing, done=False))
        if create:
            membership.create()
        if missing:
            hostname, fingerprint = membership.join_target()
            for node in missing:
                membership.join(node, clients[node["name"]], hostname, fingerprint)
        module.exit_json(**membership.result(current, create, missing, done=True))
    except Fail as exc:
        module.fail_json(msg="proxmox_cluster: %s" % exc, created=membership.created, joined=membership.joined)
    except ProxmoxError as exc:
        module.fail_json(msg=exc.msg, status=exc.status, created=membership.created, joined=membership.joined)


if __name__ == "__main__":
    main()
