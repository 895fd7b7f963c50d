"""Creating a cluster on a standalone node and joining nodes to it (``/cluster/config*``)."""

import time

import pytest
import requests
from proxmoxer.core import ResourceException

from pvesim.seed import standalone_seed
from pvesim.testing import SimulatorProcess


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A PVE 9 simulator seeded with pve-1 standalone and pve-2 a host outside any cluster."""
    with SimulatorProcess(pve=9, seed="standalone", state_dir=tmp_path_factory.mktemp("standalone")) as sim:
        yield sim


@pytest.fixture
def sim(standalone):
    standalone.reset()
    standalone.settings(join_restart=0.2)  # the API restart after a join: short here, see the restart test
    return standalone


def _through_the_restart(sim, timeout=10.0):
    """Wait for the join task and the joining node's API restart; the (status, message) answers seen meanwhile."""
    assert sim.wait_tasks()
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = requests.get(f"{sim.api_url}/version", headers={"Authorization": f"PVEAPIToken={sim.token_id}={sim.token_secret}"},
                              verify=sim.ca_file, timeout=5)
        if answer.status_code == 200:
            return seen
        if not seen or seen[-1] != (answer.status_code, answer.reason):
            seen.append((answer.status_code, answer.reason))
        time.sleep(0.05)
    raise AssertionError(f"the API still restarts after {timeout}s: {seen}")


def _create(api, wait):
    upid = api.cluster.config.post(clustername="ailab", link0="192.168.10.11")
    assert upid.split(":")[5:7] == ["clustercreate", "ailab"]
    assert wait(api, upid)["exitstatus"] == "OK"


def _join(sim, api, **overrides):
    params = dict(hostname="192.168.10.11", fingerprint=sim.fingerprint.lower(), password=sim.password,
                  link0="192.168.10.12")
    params.update(overrides)
    return api.cluster.config.join.post(**params)


def test_a_standalone_node_reports_only_itself(sim):
    api = sim.api()
    assert api.cluster.status.get() == [{"type": "node", "id": "node/pve-1", "name": "pve-1", "nodeid": 0,
                                         "ip": "192.168.10.11", "online": 1, "local": 1, "level": ""}]
    assert [n["node"] for n in api.nodes.get()] == ["pve-1"]
    assert api.cluster.config.nodes.get() == [] and api.cluster.config.totem.get() == {}
    with pytest.raises(ResourceException) as raised:
        api.cluster.config.join.get()
    assert (raised.value.status_code, raised.value.content) == (424, "node is not in a cluster, no join info available!")
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-2").status.get()
    assert raised.value.content.startswith("hostname lookup 'pve-2' failed")
    login = requests.post(f"{sim.api_url}/access/ticket", data={"username": sim.user, "password": sim.password},
                          verify=sim.ca_file, timeout=5).json()["data"]
    assert login["username"] == "root@pam" and "clustername" not in login


def test_create_and_join_need_root_at_pam_itself(sim):
    with pytest.raises(ResourceException) as raised:
        sim.api().cluster.config.post(clustername="ailab")  # root@pam's API token is not root@pam
    assert (raised.value.status_code, raised.value.content) == (403, "Permission check failed (user != root@pam)")
    with pytest.raises(ResourceException) as raised:
        _join(sim, sim.api())
    assert raised.value.status_code == 403


def test_create_then_join_builds_the_two_node_cluster(sim, wait):
    api = sim.api(auth="password")
    _create(api, wait)
    cluster, node = api.cluster.status.get()
    assert (cluster["name"], cluster["nodes"], cluster["quorate"], cluster["version"]) == ("ailab", 1, 1, 1)
    assert (node["name"], node["nodeid"], node["local"]) == ("pve-1", 1, 1)
    assert api.cluster.config.nodes.get() == [{"node": "pve-1", "name": "pve-1", "nodeid": "1", "quorum_votes": "1",
                                               "ring0_addr": "192.168.10.11"}]
    with pytest.raises(ResourceException) as raised:
        api.cluster.config.post(clustername="ailab")
    assert raised.value.content == "cluster config '/etc/pve/corosync.conf' already exists"

    info = api.cluster.config.join.get()
    assert info["preferred_node"] == "pve-1" and info["totem"]["cluster_name"] == "ailab"
    assert [(n["name"], n["pve_addr"], n["pve_fp"]) for n in info["nodelist"]] == [
        ("pve-1", "192.168.10.11", sim.fingerprint)]
    upid = _join(sim, api)
    assert upid.startswith("UPID:pve-2:") and upid.split(":")[5] == "clusterjoin"
    _through_the_restart(sim)
    api = sim.api(auth="password")  # the old ticket is refused now (see the restart test)
    status = wait(api, upid)  # the joining node answers for its own task
    assert status["exitstatus"] == "OK"
    log = [line["t"] for line in api.nodes("pve-2").tasks(upid).log.get()]
    assert log[:2] == ["Establishing API connection with host '192.168.10.11'", "Login succeeded."]
    assert log[-2:] == ["successfully added node 'pve-2' to cluster.", "TASK OK"]
    cluster, *nodes = api.cluster.status.get()
    assert (cluster["nodes"], cluster["quorate"], cluster["version"]) == (2, 1, 2)
    assert [(n["name"], n["nodeid"], n["online"]) for n in nodes] == [("pve-1", 1, 1), ("pve-2", 2, 1)]
    assert [n["node"] for n in api.cluster.config.nodes.get()] == ["pve-1", "pve-2"]
    assert api.nodes("pve-2").status.get()["cpuinfo"]["cpus"] == 32
    assert len(api.nodes("pve-2").storage("local").content.get(content="vztmpl")) == 2  # its own local content
    wait(api, api.nodes("pve-2").qemu.post(vmid=100, scsi0="local-lvm:1"))


def test_a_join_restarts_the_api_of_the_joining_node(sim, wait):
    """pve-cluster PVE/Cluster/Setup.pm finish_join: pmxcfs restarts with the cluster's auth key, the node gets
    a certificate from the cluster CA, pveproxy and pvedaemon restart; PVE/AccessControl.pm verify_ticket then
    refuses tickets signed with the old key."""
    sim.settings(join_restart=2.0)
    api = sim.api(auth="password")
    _create(api, wait)
    before = api.cluster.config.join.get()["nodelist"]
    _join(sim, api)
    seen = _through_the_restart(sim)
    assert seen == [(500, "ipcc_send_rec[1] failed: Connection refused"),
                    (595, "Errors during connection establishment, proxy handler: Connection refused")], seen
    with pytest.raises(ResourceException) as raised:
        api.cluster.status.get()  # the ticket of the login before the join
    assert (raised.value.status_code, raised.value.content) == (401, "permission denied - invalid PVE ticket")
    fresh = sim.api(auth="password")  # a new login works
    assert [n["name"] for n in fresh.cluster.status.get()[1:]] == ["pve-1", "pve-2"]
    nodelist = {n["name"]: n["pve_fp"] for n in fresh.cluster.config.join.get()["nodelist"]}
    assert nodelist["pve-1"] == before[0]["pve_fp"] == sim.fingerprint
    assert nodelist["pve-2"] != sim.fingerprint and len(nodelist["pve-2"].split(":")) == 32
    assert sim.api().version.get()  # API tokens are not signed with the auth key


@pytest.mark.parametrize(("overrides", "error", "line"), [
    ({"fingerprint": "AA:" * 31 + "AA"}, "fingerprint '{fp}' not verified, abort!", None),
    ({"password": "wrong"}, "401 authentication failure", None),
    ({"hostname": "192.168.10.99"}, "500 Can't connect to 192.168.10.99:8006 (Connection refused)", None),
    ({"link0": "192.168.10.11"}, "Check if node may join a cluster failed!",
     "* cluster config '/etc/pve/corosync.conf' already exists"),
])
def test_join_failures_end_the_task_with_pve_messages(sim, wait, overrides, error, line):
    api = sim.api(auth="password")
    _create(api, wait)
    status = wait(api, _join(sim, api, **overrides))
    assert status["exitstatus"] == error.format(fp=sim.fingerprint)
    if line:
        assert line in [entry["t"] for entry in api.nodes(status["node"]).tasks(status["upid"]).log.get()]
    assert [n["name"] for n in api.cluster.status.get()[1:]] == ["pve-1"]


def test_a_host_with_guests_cannot_join(tmp_path, wait):
    seed = standalone_seed()
    seed["guests"] = [{"vmid": 300, "node": "pve-2", "config": {"name": "old-vm"}}]
    with SimulatorProcess(pve=8, seed=seed, state_dir=tmp_path) as sim:
        api = sim.api(auth="password")
        _create(api, wait)
        assert api.cluster.resources.get(type="vm") == []  # pve-2's guests are not in the cluster
        status = wait(api, _join(sim, api))
        assert status["exitstatus"] == "Check if node may join a cluster failed!"
        log = [entry["t"] for entry in api.nodes("pve-2").tasks(status["upid"]).log.get()]
        assert log[:2] == ["detected the following error(s):", "* this host already contains virtual guests"]


def test_the_default_lab_is_a_cluster(pve_sim):
    api = pve_sim.api()
    assert [(n["name"], n["nodeid"]) for n in api.cluster.config.nodes.get()] == [("pve-1", "1"), ("pve-2", "2")]
    assert [n["name"] for n in api.cluster.config.join.get(node="pve-2")["nodelist"]] == ["pve-1", "pve-2"]
    assert api.cluster.config.apiversion.get() == 1
