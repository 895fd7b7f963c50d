"""The proxmox_cluster role run by ansible-playbook against the PVE API simulator.

The role applies ``ailab.cluster.proxmox_cluster`` once with the connection of each node. The
simulator's lab is the existing cluster ``ailab`` (pve-1, pve-2): the role must only read its
status. Simulators seeded with standalone nodes (no cluster name) cover the create/join plan and
a real create and join, which Proxmox VE allows only to root@pam logged in with its password.
"""

import copy

import pytest

from pvesim.seed import default_seed
from pvesim.testing import SimulatorProcess
from unit.roles.playbook_runner import PYTHON, run_playbook


def connection(sim):
    return dict(api_host=sim.host, api_port=sim.port, api_user="root@pam", api_token_id=sim.token_id,
                api_token_secret=sim.token_secret, ca_path=sim.ca_file)


def plays(sim, **role_vars):
    return [{
        "name": "proxmox_cluster role",
        "hosts": "proxmox_api",
        "gather_facts": False,
        "vars": dict({"proxmox_api_connection": connection(sim)}, **role_vars),
        "module_defaults": {"group/ailab.cluster.proxmox": "{{ proxmox_api_connection }}"},
        "roles": [{"role": "ailab.cluster.proxmox_cluster"}],
    }]


INVENTORY = {"all": {"children": {"proxmox_api": {"hosts": {"localhost": {
    "ansible_connection": "local", "ansible_python_interpreter": PYTHON}}}}}}
LAB_NODES = [{"name": "pve-1", "link0": "192.168.10.11"}, {"name": "pve-2", "link0": "192.168.10.12"}]


@pytest.fixture(scope="module")
def standalone_sim():
    seed = copy.deepcopy(default_seed())
    seed["cluster"] = {"name": None}
    with SimulatorProcess(pve=9, seed=seed) as sim:
        yield sim


def test_existing_cluster_is_detected_and_nothing_is_written(pve9_sim, tmp_path):
    pve9_sim.clear_log()
    run = run_playbook(tmp_path, plays(pve9_sim, proxmox_cluster_name="ailab", proxmox_cluster_nodes=LAB_NODES),
                       INVENTORY)
    assert run.rc == 0, run.stdout[-3000:]
    assert run.stats["localhost"]["changed"] == 0
    assert pve9_sim.writes() == []
    assert [r["path"] for r in pve9_sim.reads()] == ["/cluster/status"]
    report = run.results("Report the cluster", "localhost")[0]["msg"]
    assert report == "Cluster ailab exists; no node joined in this run"


def test_another_cluster_name_fails_before_any_write(pve9_sim, tmp_path):
    pve9_sim.clear_log()
    run = run_playbook(tmp_path, plays(pve9_sim, proxmox_cluster_name="other-lab", proxmox_cluster_nodes=LAB_NODES),
                       INVENTORY)
    assert run.rc != 0
    assert "pve-1 is already in cluster 'ailab', not 'other-lab'" in run.failure("localhost")
    assert pve9_sim.writes() == []


def test_bad_settings_fail_in_preflight(pve9_sim, tmp_path):
    pve9_sim.clear_log()
    run = run_playbook(tmp_path, plays(pve9_sim, proxmox_cluster_name="a-name-longer-than-15",
                                       proxmox_cluster_nodes=[{"name": "pve-1"}, {"name": "pve-1"}]), INVENTORY)
    assert run.rc != 0
    assert "must be 1-15 letters" in run.failure("localhost") and "each once" in run.failure("localhost")
    assert pve9_sim.requests_log() == []


def test_joining_with_an_api_token_is_refused_before_any_write(pve9_sim, tmp_path):
    nodes = [*LAB_NODES, {"name": "pve-3", "api_host": pve9_sim.host, "api_port": pve9_sim.port}]
    pve9_sim.clear_log()
    run = run_playbook(tmp_path, plays(pve9_sim, proxmox_cluster_name="ailab", proxmox_cluster_nodes=nodes,
                                       proxmox_cluster_join_password="secret"), INVENTORY)
    # PVE answers 403 "user != root@pam" to a token; the role says so before it sends anything.
    assert run.rc != 0
    assert "only for root@pam logged in with its password" in run.failure("localhost")
    assert "pve-3" in run.failure("localhost")
    assert pve9_sim.writes() == []
    assert [r for r in pve9_sim.requests_log() if r["path"].startswith("/cluster/config")] == []


def test_standalone_node_check_mode_plans_create_and_join(standalone_sim, tmp_path):
    root = dict(api_user="root@pam", api_password=standalone_sim.password)
    nodes = [dict(LAB_NODES[0], **root), dict(LAB_NODES[1], api_host=standalone_sim.host, api_port=standalone_sim.port,
                                              ca_path=standalone_sim.ca_file, **root)]
    standalone_sim.clear_log()
    run = run_playbook(tmp_path, plays(standalone_sim, proxmox_cluster_name="ailab", proxmox_cluster_nodes=nodes,
                                       proxmox_cluster_join_password="secret"), INVENTORY, check=True)
    assert run.rc == 0, run.stdout[-3000:]
    planned = run.results("Create the cluster and join the missing nodes", "localhost")[0]
    assert planned["changed"] and planned["created"] and planned["joined"] == ["pve-2"]
    report = run.results("Report the cluster", "localhost")[0]["msg"]
    assert report == "Cluster ailab would be created on pve-1; would join: pve-2"
    assert standalone_sim.writes() == []
    # the first node's status, and pve-2's own status (logged in with its password)
    statuses = [r for r in standalone_sim.requests_log() if r["path"] == "/cluster/status"]
    assert [r["status"] for r in statuses] == [200, 200]


def test_standalone_nodes_become_the_cluster_with_root_passwords(tmp_path):
    with SimulatorProcess(pve=9, seed="standalone", state_dir=tmp_path / "sim") as sim:
        sim.settings(join_restart=0.2)  # the joining node's API restart window, short for the test
        conn = dict(api_host=sim.host, api_port=sim.port, api_user="root@pam", api_password=sim.password,
                    ca_path=sim.ca_file)
        nodes = [LAB_NODES[0], dict(LAB_NODES[1], api_host=sim.host, api_port=sim.port, api_password=sim.password,
                                    ca_path=sim.ca_file)]
        role_plays = plays(sim, proxmox_cluster_name="ailab", proxmox_cluster_nodes=nodes,
                           proxmox_cluster_join_password=sim.password)
        role_plays[0]["vars"]["proxmox_api_connection"] = conn
        run = run_playbook(tmp_path, role_plays, INVENTORY)
        assert run.rc == 0, run.stdout[-3000:]
        writes = sim.writes()
        assert [(w["method"], w["path"], w["status"]) for w in writes] == [
            ("POST", "/cluster/config", 200), ("POST", "/cluster/config/join", 200)]
        assert writes[0]["params"] == {"clustername": "ailab", "link0": "192.168.10.11"}
        assert (writes[1]["params"]["hostname"], writes[1]["params"]["link0"]) == ("192.168.10.11", "192.168.10.12")
        report = run.results("Report the cluster", "localhost")[0]["msg"]
        assert report == "Cluster ailab created on pve-1; joined in this run: pve-2"
        cluster, *members = sim.api().cluster.status.get()
        assert (cluster["name"], [m["name"] for m in members]) == ("ailab", ["pve-1", "pve-2"])
        sim.clear_log()
        again = run_playbook(tmp_path, role_plays, INVENTORY)
        assert again.rc == 0 and again.stats["localhost"]["changed"] == 0 and sim.writes() == []
