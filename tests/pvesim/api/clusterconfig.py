"""``/cluster/config``: create a cluster, join nodes, corosync node list and totem settings.

Modelled after pve-cluster's ``PVE::API2::ClusterConfig`` and ``PVE::Cluster::Setup``:

* ``POST /cluster/config`` (root@pam only) on a standalone node starts a ``clustercreate`` task;
  when it ends the node is a one-node cluster. On a node in a cluster: 500 ``cluster config
  '/etc/pve/corosync.conf' already exists``.
* ``GET /cluster/config/join`` gives the node list with each node's address (``pve_addr``) and
  certificate fingerprint (``pve_fp``); on a standalone node HTTP 424 ``node is not in a cluster,
  no join info available!``.
* ``POST /cluster/config/join`` (root@pam only) is sent to the node that joins. The simulator has
  one API endpoint, so the joining node is the seed host whose address is ``link0`` (else the
  first seed host outside the cluster). Its ``clusterjoin`` task checks what ``assert_joinable``
  checks (not in a cluster yet, no guests), then logs in to ``hostname`` (a cluster member's
  address or name) with the fingerprint and root password like ``PVE::APIClient::LWP``, and adds
  the node; when it ends the node is in ``/cluster/status``, ``/nodes`` and ``/cluster/config/nodes``.
* Finishing the join (pve-cluster ``PVE::Cluster::Setup::finish_join``) restarts pmxcfs with the
  cluster's auth key and gives the node a new certificate from the cluster CA before restarting
  pveproxy and pvedaemon: the node's ``pve_fp`` in the join information changes, and the API
  answers 500/595 for ``join_restart`` seconds (a setting), then 401 for tickets issued before
  (``faults.NodeRestart``).
"""

import secrets

from ..errors import ApiError, TaskFailure
from ..state import digest_of, parse_property_string
from . import route

JOIN_API_VERSION = 1
COROSYNC_CONF = "/etc/pve/corosync.conf"
AUTHKEY = "/etc/corosync/authkey"


def _link0(call):
    value = call.get("link0")
    return parse_property_string(value, "address").get("address") if value else None


def _totem(state):
    return {"cluster_name": state.cluster_name, "config_version": str(state.config_version),
            "interface": {"0": {"linknumber": "0"}}, "ip_version": "ipv4-6", "link_mode": "passive",
            "secauth": "on", "version": "2"}


def _corosync_node(node):
    return {"name": node.name, "nodeid": str(node.nodeid), "quorum_votes": str(node.votes),
            "ring0_addr": node.link0 or node.ip}


@route("GET", "/cluster/config/apiversion")
def api_version(call):
    """The cluster join API version of this node."""
    return JOIN_API_VERSION


@route("GET", "/cluster/config/nodes")
def corosync_nodes(call):
    """Nodes of corosync.conf (empty on a standalone node)."""
    state = call.state
    if not state.clustered:
        return []
    return [dict(_corosync_node(node), node=node.name) for node in state.nodes.values()]


@route("GET", "/cluster/config/totem")
def totem(call):
    """Corosync totem settings (empty on a standalone node)."""
    state = call.state
    return _totem(state) if state.clustered else {}


@route("GET", "/cluster/config/join")
def join_info(call):
    """What a node needs to join this cluster through the connected node."""
    state = call.state
    if not state.clustered:
        raise ApiError("node is not in a cluster, no join info available!", status=424)
    name = call.get("node") or state.local_node().name
    if name not in state.nodes:
        raise ApiError(f"unknown node '{name}'")
    nodelist = [dict(_corosync_node(node), pve_addr=node.ip, pve_fp=node.fingerprint or call.app.fingerprint)
                for node in state.nodes.values()]
    return {"nodelist": nodelist, "preferred_node": name, "totem": _totem(state),
            "config_digest": digest_of([_totem(state), nodelist])}


@route("POST", "/cluster/config")
def create_cluster(call):
    """``pvecm create``: the standalone node becomes a one-node cluster (task clustercreate)."""
    state = call.state
    if state.clustered:
        raise ApiError(f"cluster config '{COROSYNC_CONF}' already exists")
    name = call.get("clustername")

    def work(task):
        if state.clustered:
            raise TaskFailure(f"cluster config '{COROSYNC_CONF}' already exists")
        state.create_cluster(name, call.get("nodeid"), call.get("votes"), _link0(call))

    lines = ("Corosync Cluster Engine Authentication key generator.",
             "Gathering 2048 bits for key from /dev/urandom.",
             f"Writing corosync key to {AUTHKEY}.",
             f"Writing corosync config to {COROSYNC_CONF}",
             "Restart corosync and cluster filesystem")
    return call.task(state.local_node().name, "clustercreate", name, work, lines=lines)


def _joining_host(state, address):
    """The seed host a join request comes from: the one with address ``link0``, else the first outside."""
    hosts = [*state.outside.values(), *state.nodes.values()]
    for host in hosts:
        if address and address in (host.ip, host.link0, host.name):
            return host
    return next(iter(state.outside.values()), state.local_node())


def _peer(state, hostname):
    for node in state.nodes.values():
        if hostname in (node.ip, node.name, node.link0) and node.online:
            return node
    return None


@route("POST", "/cluster/config/join")
def join_cluster(call):
    """``pvecm add``: the node joins the cluster of ``hostname`` (task clusterjoin on the joining node)."""
    state = call.state
    app = call.app
    link0 = _link0(call)
    joining = _joining_host(state, link0)
    hostname, fingerprint, password = call.get("hostname"), call.get("fingerprint"), call.get("password")
    force, nodeid, votes = bool(call.get("force")), call.get("nodeid"), call.get("votes")

    def work(task):
        errors = []
        if joining.name in state.nodes and state.clustered:
            errors += [f"authentication key '{AUTHKEY}' already exists",
                       f"cluster config '{COROSYNC_CONF}' already exists",
                       "corosync is already running, is this node already in a cluster?!"]
        if state.outside_guests.get(joining.name):
            errors.append("this host already contains virtual guests")
        if errors:
            task.log("detected the following error(s):")
            for error in errors:
                task.log(f"* {error}")
            if not force or joining.name in state.nodes:
                raise TaskFailure("Check if node may join a cluster failed!")
            task.log("WARNING : detected error but forced to continue!")
        task.log(f"Establishing API connection with host '{hostname}'")
        peer = _peer(state, hostname)
        if peer is None:
            raise TaskFailure(f"500 Can't connect to {hostname}:8006 (Connection refused)")
        if fingerprint.upper() != app.fingerprint.upper():
            raise TaskFailure(f"fingerprint '{app.fingerprint}' not verified, abort!")
        try:
            app.auth.login("root@pam", password)
        except ApiError:
            raise TaskFailure("401 authentication failure") from None
        task.log("Login succeeded.")
        task.log("check cluster join API version")
        if link0 is None:
            task.log(f"No cluster network links passed explicitly, fallback to local node IP '{joining.ip}'")
        task.log("Request addition of this node")
        address = link0 or joining.ip
        used = next((node.name for node in state.nodes.values()
                     if node.name != joining.name and (node.link0 or node.ip) == address), None)
        problem = None
        if not state.clustered:
            problem = "invalid corosync.conf"
        elif used:
            problem = f"corosync: address '{address}' already used on link ring0_addr by node '{used}'"
        elif joining.name not in state.outside:
            problem = f"can't add existing node '{joining.name}'"
        if problem:
            task.log(f"An error occurred on the cluster node: {problem}")
            raise TaskFailure("Cluster join aborted!")
        joined = state.join(joining.name, nodeid, votes, link0)
        # Setup.pm finish_join -> updatecerts_and_ssh(1, ...): a new node certificate from the cluster CA.
        joined.fingerprint = ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
        for line in ("Join request OK, finishing setup locally", "stopping pve-cluster service",
                     f"backup old database to '/var/lib/pve-cluster/backup/config-{task.starttime}.sql.gz'",
                     "waiting for quorum...OK", "(re)generate node files", "generate new node certificate",
                     "merge authorized SSH keys",
                     "generated new node certificate, restart pveproxy and pvedaemon services",
                     f"successfully added node '{joining.name}' to cluster."):
            task.log(line)
        # Setup.pm finish_join: pmxcfs restarted with the cluster's authkey, then pveproxy/pvedaemon restarted.
        app.faults.node_restart(joining.name, app.settings.join_restart)

    return call.task(joining.name, "clusterjoin", "", work)
