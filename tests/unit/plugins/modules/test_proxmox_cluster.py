"""ailab.cluster.proxmox_cluster against the PVE API simulator (PVE 8 and 9), real proxmoxer.

The fixtures' lab is the existing cluster ``ailab`` (pve-1, pve-2). The ``standalone`` fixture
reseeds it to the lab before ``pvecm create`` (pve-1 alone, pve-2 a host that may join) and back
after the test. The simulator has one API endpoint: pve-2 is reached at the same address, and a
join request is pve-2's because its ``link0`` is pve-2's address.
"""

import pytest
import requests

from ansible_collections.ailab.cluster.plugins.module_utils import _proxmox
from ansible_collections.ailab.cluster.plugins.modules import proxmox_cluster
from pvesim.seed import empty_seed, standalone_seed

PVE1_LINK = "192.168.10.11"
PVE2_LINK = "192.168.10.12"


@pytest.fixture
def standalone(pve_sim):
    pve_sim.reseed(standalone_seed())
    # The joining node's API restarts after the join (faults.NodeRestart): short here; the realistic
    # default in test_join_rides_through_the_api_restart.
    pve_sim.settings(join_restart=0.2)
    yield pve_sim
    pve_sim.reseed(empty_seed())


def root_login(sim):
    """Connection options of a root@pam password login (what create and join need)."""
    return dict(api_host=sim.host, api_port=sim.port, api_user="root@pam", api_password=sim.password, ca_path=sim.ca_file)


def pve2(sim, **extra):
    return dict(dict(name="pve-2", link0=PVE2_LINK, **root_login(sim)), **extra)


def run(run_module, conn, check_mode=False, diff=False, **args):
    return run_module(proxmox_cluster, dict(conn, **args), check_mode=check_mode, diff=diff)


def members(sim):
    cluster = [e for e in sim.api().cluster.status.get() if e["type"] == "cluster"]
    nodes = sorted(e["name"] for e in sim.api().cluster.status.get() if e["type"] == "node")
    return (cluster[0]["name"] if cluster else None), nodes


# ------------------------------------------------------------------------------ create and join
def test_creates_the_cluster_joins_the_node_then_changes_nothing(standalone, run_module):
    sim = standalone
    sim.clear_log()
    result = run(run_module, root_login(sim), diff=True, cluster_name="ailab", link0=PVE1_LINK, nodes=[pve2(sim)])
    assert not result.get("failed"), result
    assert result["changed"] and result["created"] and result["joined"] == ["pve-2"]
    assert result["cluster"] == dict(name="ailab", members=["pve-1", "pve-2"])
    assert result["not_listed"] == []
    assert result["diff"] == dict(before=dict(cluster=None, members=[]),
                                  after=dict(cluster="ailab", members=["pve-1", "pve-2"]))
    writes = sim.writes()
    assert [(w["method"], w["path"], w["status"]) for w in writes] == [
        ("POST", "/cluster/config", 200), ("POST", "/cluster/config/join", 200)]
    assert writes[0]["params"] == {"clustername": "ailab", "link0": PVE1_LINK}
    join = writes[1]["params"]
    assert (join["hostname"], join["link0"]) == (PVE1_LINK, PVE2_LINK)
    assert join["fingerprint"] == sim.api().cluster.config.join.get()["nodelist"][0]["pve_fp"]
    # both tasks were waited for (status read until stopped), and pve-2 was seen online
    task_reads = [r["path"] for r in sim.reads() if "/tasks/" in r["path"]]
    assert any(":clustercreate:" in p for p in task_reads) and any(":clusterjoin:" in p for p in task_reads)
    assert members(sim) == ("ailab", ["pve-1", "pve-2"])
    assert all(t["exitstatus"] == "OK" for t in sim.tasks() if t["type"] in ("clustercreate", "clusterjoin"))

    sim.clear_log()
    again = run(run_module, root_login(sim), diff=True, cluster_name="ailab", link0=PVE1_LINK, nodes=[pve2(sim)])
    assert not again.get("failed"), again
    assert again["changed"] is False and again["created"] is False and again["joined"] == []
    assert again["diff"]["before"] == again["diff"]["after"] == dict(cluster="ailab", members=["pve-1", "pve-2"])
    assert sim.writes() == []
    assert [r["path"] for r in sim.reads()] == ["/cluster/status"]


def test_join_password_defaults_to_the_first_nodes_root_password_and_entry_for_the_first_node_is_fine(
        standalone, run_module):
    sim = standalone
    result = run(run_module, root_login(sim), cluster_name="lab2",
                 nodes=[dict(name="pve-1"), pve2(sim, nodeid=5, votes=2)])
    assert not result.get("failed"), result
    assert result["created"] and result["joined"] == ["pve-2"]
    join = sim.writes()[1]
    assert (join["params"]["nodeid"], join["params"]["votes"]) in (("5", "2"), (5, 2))
    assert members(sim) == ("lab2", ["pve-1", "pve-2"])


def test_existing_cluster_with_an_api_token_only_reads_the_status(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim.module_params(), diff=True, cluster_name="ailab", nodes=[dict(name="pve-2")])
    assert not result.get("failed"), result
    assert result["changed"] is False and result["cluster"] == dict(name="ailab", members=["pve-1", "pve-2"])
    assert pve_sim.writes() == []
    assert [r["path"] for r in pve_sim.reads()] == ["/cluster/status"]
    # pve-2 is a member that is not listed: reported, left alone
    alone = run(run_module, pve_sim.module_params(), cluster_name="ailab")
    assert alone["changed"] is False and alone["not_listed"] == ["pve-2"]


def test_check_mode_reports_create_and_join_and_writes_nothing(standalone, run_module):
    sim = standalone
    sim.clear_log()
    result = run(run_module, root_login(sim), check_mode=True, diff=True, cluster_name="ailab", link0=PVE1_LINK,
                 nodes=[pve2(sim)])
    assert not result.get("failed"), result
    assert result["changed"] and result["created"] and result["joined"] == ["pve-2"]
    assert result["diff"]["after"] == dict(cluster="ailab", members=["pve-1", "pve-2"])
    assert sim.writes() == []
    # the first node's status, and pve-2's own status (logged in with its password)
    assert [r["path"] for r in sim.reads()] == ["/cluster/status", "/cluster/status"]
    assert members(sim) == (None, ["pve-1"])


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # what the test sets up
def test_a_node_without_certificate_checks_is_connected_with_a_warning(standalone, run_module):
    sim = standalone
    node = pve2(sim, validate_certs=False)
    node.pop("ca_path")
    result = run(run_module, root_login(sim), check_mode=True, cluster_name="ailab", nodes=[node])
    assert not result.get("failed"), result  # the node's connection has the module's warn()
    assert result["joined"] == ["pve-2"]


def test_check_mode_on_an_existing_cluster_reports_the_join(pve_sim, run_module):
    node = dict(name="pve-3", link0="192.168.10.13", **root_login(pve_sim))
    pve_sim.clear_log()
    result = run(run_module, root_login(pve_sim), check_mode=True, diff=True, cluster_name="ailab", nodes=[node])
    assert result["changed"] and not result["created"] and result["joined"] == ["pve-3"]
    assert result["diff"]["before"]["members"] == ["pve-1", "pve-2"]
    assert result["diff"]["after"]["members"] == ["pve-1", "pve-2", "pve-3"]
    assert pve_sim.writes() == []


# ------------------------------------------------------------------------------ refusals
def test_first_node_in_a_cluster_of_another_name_fails_before_any_write(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, root_login(pve_sim), cluster_name="other-lab", nodes=[pve2(pve_sim)])
    assert result["failed"]
    assert "pve-1 is already in cluster 'ailab', not 'other-lab'" in result["msg"]
    assert "set cluster_name to 'ailab'" in result["msg"]
    assert pve_sim.writes() == []


def test_node_in_another_cluster_fails_before_any_write(standalone, pve9_sim, run_module):
    # pve-2 is reached at a second simulator, which is in cluster 'ailab'; the first node is standalone.
    node = dict(name="pve-2", link0=PVE2_LINK, **root_login(pve9_sim))
    standalone.clear_log()
    pve9_sim.clear_log()
    result = run(run_module, root_login(standalone), cluster_name="newlab", nodes=[node])
    assert result["failed"]
    assert "pve-2 is already in cluster 'ailab' and cannot join 'newlab'" in result["msg"]
    assert standalone.writes() == [] and pve9_sim.writes() == []
    assert [r["path"] for r in pve9_sim.reads()] == ["/cluster/status"]
    assert members(standalone) == (None, ["pve-1"])


def test_token_only_create_is_refused_before_any_write(standalone, run_module):
    sim = standalone
    sim.clear_log()
    result = run(run_module, sim.module_params(), cluster_name="ailab", nodes=[pve2(sim)])
    assert result["failed"]
    assert "only for root@pam logged in with its password" in result["msg"]
    assert "pve-1 (the connection options)" in result["msg"]
    assert sim.writes() == [] and [r["path"] for r in sim.reads()] == ["/cluster/status"]


def test_token_only_join_is_refused_before_any_write(pve_sim, run_module):
    token_node = dict(name="pve-3", api_host=pve_sim.host, api_port=pve_sim.port, api_token_id=pve_sim.token_id,
                      api_token_secret=pve_sim.token_secret, ca_path=pve_sim.ca_file)
    pve_sim.clear_log()
    result = run(run_module, pve_sim.module_params(), cluster_name="ailab", join_password=pve_sim.password,
                 nodes=[dict(name="pve-2"), token_node])
    assert result["failed"]
    assert "only for root@pam logged in with its password" in result["msg"] and "pve-3" in result["msg"]
    assert "pve-2" not in result["msg"]
    assert pve_sim.writes() == []
    assert [r for r in pve_sim.requests_log() if r["path"].startswith("/cluster/config")] == []
    assert pve_sim.password not in result["msg"]


def test_join_without_the_first_nodes_password_is_refused(pve_sim, run_module):
    node = dict(name="pve-3", link0="192.168.10.13", **root_login(pve_sim))
    pve_sim.clear_log()
    result = run(run_module, pve_sim.module_params(), cluster_name="ailab", nodes=[node])
    assert result["failed"]
    assert "pve-3 must join cluster ailab" in result["msg"] and "set join_password" in result["msg"]
    assert pve_sim.writes() == []


def test_a_node_listed_twice_is_refused(pve_sim, run_module):
    result = run(run_module, pve_sim.module_params(), cluster_name="ailab", nodes=[dict(name="pve-3"), dict(name="pve-3")])
    assert result["failed"] and "nodes lists pve-3 more than once" in result["msg"]


# ------------------------------------------------------------------------------ task failures
def test_a_failed_join_task_is_reported_with_its_log_tail(standalone, run_module):
    sim = standalone
    sim.fault("task_fail", task_type="clusterjoin", message="simulated: corosync did not start")
    result = run(run_module, root_login(sim), cluster_name="ailab", link0=PVE1_LINK, nodes=[pve2(sim)])
    assert result["failed"]
    assert result["msg"].startswith("joining pve-2 to cluster ailab failed: simulated: corosync did not start")
    assert "Task log tail:" in result["msg"]
    assert result["created"] is True and result["joined"] == []
    assert sim.password not in result["msg"]
    assert members(sim) == ("ailab", ["pve-1"])


def test_a_failed_create_task_is_reported_and_nothing_is_joined(standalone, run_module):
    sim = standalone
    sim.fault("task_fail", task_type="clustercreate", message="simulated: cannot write corosync.conf")
    result = run(run_module, root_login(sim), cluster_name="ailab", nodes=[pve2(sim)])
    assert result["failed"]
    assert "creating cluster ailab on pve-1 failed: simulated: cannot write corosync.conf" in result["msg"]
    assert "Task log tail:" in result["msg"]
    assert result["created"] is False and result["joined"] == []
    assert [w["path"] for w in sim.writes()] == ["/cluster/config"]


def test_join_waits_through_the_first_node_when_the_joining_node_is_unreachable(standalone, run_module, monkeypatch):
    # A real join restarts the node's API with a new certificate: reading its task there fails.
    sim = standalone
    original = _proxmox.ProxmoxClient.get
    joiner_reads = []

    def get(self, path, /, what=None, **params):
        if ":clusterjoin:" in path and self.api_marker == "joiner":
            joiner_reads.append(path)
            raise _proxmox.describe_connection_error(_proxmox.requests.exceptions.SSLError("certificate changed"),
                                                     self.endpoint, what or path) from _proxmox.requests.exceptions.SSLError()
        return original(self, path, what=what, **params)

    original_from_module = _proxmox.ProxmoxClient.from_module.__func__

    def from_module(cls, module):
        client = original_from_module(cls, module)
        client.api_marker = "joiner" if isinstance(module, proxmox_cluster.NodeConnection) else "first"
        return client

    monkeypatch.setattr(_proxmox.ProxmoxClient, "get", get)
    monkeypatch.setattr(_proxmox.ProxmoxClient, "from_module", classmethod(from_module))
    result = run(run_module, root_login(sim), cluster_name="ailab", link0=PVE1_LINK, nodes=[pve2(sim)])
    assert not result.get("failed"), result
    assert result["joined"] == ["pve-2"] and joiner_reads
    assert members(sim) == ("ailab", ["pve-1", "pve-2"])


# ------------------------------------------------------------------------------ the API restart after a join
def test_join_rides_through_the_api_restart(standalone, run_module):
    """pmxcfs, pveproxy and pvedaemon restart on the joining node (500, then 595), then tickets of the old
    auth key get 401: the module waits it out and logs in again (pve-cluster PVE/Cluster/Setup.pm finish_join)."""
    sim = standalone
    sim.settings(join_restart=6.0)  # 3 s per phase: every phase sees a poll even on a loaded machine
    sim.clear_log()
    result = run(run_module, root_login(sim), cluster_name="ailab", link0=PVE1_LINK, nodes=[pve2(sim)])
    assert not result.get("failed"), result
    assert result["joined"] == ["pve-2"] and members(sim) == ("ailab", ["pve-1", "pve-2"])
    log = sim.requests_log()
    join_at = next(i for i, r in enumerate(log) if r["path"] == "/cluster/config/join" and r["method"] == "POST")
    after = [(r["method"], r["path"], r["status"]) for r in log[join_at + 1:]]
    statuses = [status for _method, _path, status in after]
    assert 500 in statuses and 595 in statuses and 401 in statuses, after
    relogin = statuses.index(401)
    assert ("POST", "/access/ticket", 200) in after[relogin:], after
    assert after[-1][2] == 200
    assert [w["path"] for w in sim.writes()] == ["/cluster/config", "/cluster/config/join"]  # no write repeated


class FakeSession(object):
    def __init__(self, logins_fail=0):
        self.client = "old"
        self.logins = 0
        self.logins_fail = logins_fail

    def login_again(self):
        self.logins += 1
        if self.logins <= self.logins_fail:
            raise _proxmox.ProxmoxError("Proxmox VE login as root@pam at pve-2:8006 failed")
        self.client = "new"


def answers(*outcomes):
    """A call that raises or returns the outcomes in turn, recording the client it got."""
    seen = []

    def call(client):
        seen.append(client)
        outcome = outcomes[len(seen) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    return call, seen


def connection_error():
    try:
        raise requests.exceptions.ConnectionError("Connection refused")
    except requests.exceptions.ConnectionError as cause:
        try:
            raise _proxmox.ProxmoxError("Cannot connect to the Proxmox VE API at pve-2:8006") from cause
        except _proxmox.ProxmoxError as exc:
            return exc


def test_ride_through_waits_out_5xx_and_connection_errors_and_logs_in_again_on_401(monkeypatch):
    monkeypatch.setattr(proxmox_cluster, "RESTART_POLL", 0)
    session = FakeSession(logins_fail=1)
    call, seen = answers(_proxmox.ProxmoxError("ipcc_send_rec failed", status=500), connection_error(),
                         _proxmox.ProxmoxError("Errors during connection establishment", status=595),
                         _proxmox.ProxmoxError("invalid PVE ticket", status=401), "done")
    assert proxmox_cluster.ride_through(session, call, "the join", 5, sleep=lambda s: None) == "done"
    # the first login again failed (the API still restarting) and was tried again
    assert seen == ["old", "old", "old", "old", "new"] and session.logins == 2


@pytest.mark.parametrize("error", [
    _proxmox.ProxmoxError("invalid parameters", status=400),
    _proxmox.ProxmoxError("permission denied", status=403),
    _proxmox.ProxmoxError("not implemented", status=501),
    _proxmox.ProxmoxError("joining pve-2 failed: Cluster join aborted!"),  # a failed task: no HTTP status, no cause
])
def test_ride_through_raises_other_errors_at_once(error):
    call, seen = answers(error)
    with pytest.raises(_proxmox.ProxmoxError) as raised:
        proxmox_cluster.ride_through(FakeSession(), call, "the join", 5, sleep=lambda s: None)
    assert raised.value is error and len(seen) == 1


def test_ride_through_gives_up_after_the_timeout_with_the_last_error():
    error = _proxmox.ProxmoxError("Proxmox VE API error on task UPID:x (HTTP 595): Errors during connection "
                                  "establishment", status=595)
    call, seen = answers(*[error] * 1000)
    with pytest.raises(_proxmox.ProxmoxError) as raised:
        proxmox_cluster.ride_through(FakeSession(), call, "joining pve-2 to cluster ailab", 0, sleep=lambda s: None)
    assert raised.value.msg == ("Timed out after 0s waiting for joining pve-2 to cluster ailab: the Proxmox VE API did "
                                "not come back after its restart (last error: %s)" % error.msg)
    assert raised.value.status == 595
