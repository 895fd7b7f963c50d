"""Faults while the Proxmox layer runs (simulator fault injection): each is handled and said clearly.

The layer runs as site.yml runs it (inventory check, then playbooks/proxmox.yml) on the small lab of
the bad-input suite, against a fresh simulator with one fault armed:
* a node down: the plan stops before any write, naming the node;
* a task that fails: the error carries the task's own message (its log tail) and names the guest;
* a burst of 5xx answers on reads: retried with backoff, the run succeeds;
* a 5xx answer to a write: not retried blindly, the run stops naming the status;
* a clone/create slower than the task timeout: a timeout message naming the task (UPID);
* the API restart of a node joining the cluster (a fresh lab): ridden through, the run succeeds.
Figures: faults injected / handled (printed by conftest.py).
"""

import copy

import pytest
import yaml

from pvesim.seed import default_seed, standalone_seed
from unit.security.conftest import record_fault
from unit.security.test_bad_inputs import PVE_BASE, play_check_and_proxmox, pve_inventory, run_proxmox_layer


def lab(**changes):
    base = copy.deepcopy(PVE_BASE)
    base.update(changes)
    return base


@pytest.fixture
def sim(pve_sim_for_cases):
    pve_sim_for_cases.reset()
    yield pve_sim_for_cases
    pve_sim_for_cases.clear_faults()
    pve_sim_for_cases.reset()


def test_a_node_down_stops_the_plan_before_any_write(tmp_path, sim):
    sim.node_down("pve-2")
    run, writes = run_proxmox_layer(tmp_path, sim, lab(), reset=False)
    message = run.failure("localhost") or ""
    handled = run.rc != 0 and not writes and "pve-2" in message
    record_fault("node down", handled)
    assert run.rc != 0
    assert writes == [], [(w["method"], w["path"]) for w in writes]
    assert "pve-2" in message, message


def test_a_failing_task_reports_its_own_message(tmp_path, sim):
    sim.fault("task_fail", task_type="qmcreate", message="unable to create VM 211 - lvcreate 'pve/vm-211-disk-0' "
                                                         "failed: Volume group \"pve\" has insufficient free space",
              count=1)
    run, _writes = run_proxmox_layer(tmp_path, sim, lab(), reset=False)
    message = run.failure("localhost") or ""
    handled = run.rc != 0 and "insufficient free space" in message
    record_fault("task fails", handled)
    assert run.rc != 0
    assert "insufficient free space" in message, message


def test_a_burst_of_5xx_on_reads_is_retried(tmp_path, sim):
    sim.fault("http_error", path="^/cluster/resources$", method="GET", status=503, message="Service Unavailable",
              count=2)
    run, writes = run_proxmox_layer(tmp_path, sim, lab(), reset=False)
    handled = run.rc == 0 and bool(writes)
    record_fault("5xx burst on reads", handled)
    assert run.rc == 0, run.failure("localhost")


def test_a_5xx_on_a_write_is_not_retried_blindly(tmp_path, sim):
    sim.fault("http_error", path="^/cluster/backup$", method="POST", status=503, message="Service Unavailable",
              count=1)
    run, writes = run_proxmox_layer(tmp_path, sim, lab(), reset=False)
    message = run.failure("localhost") or ""
    posts = [w for w in sim.requests_log() if w["method"] == "POST" and w["path"] == "/cluster/backup"]
    handled = run.rc != 0 and len(posts) == 1 and "503" in message
    record_fault("5xx on a write", handled)
    assert run.rc != 0
    assert len(posts) == 1, posts
    assert "503" in message, message


def test_a_slow_create_times_out_naming_the_task(tmp_path, sim):
    sim.fault("slow_tasks", task_type="qmcreate", delay=30, count=1)
    run, _writes = run_proxmox_layer(tmp_path, sim, lab(proxmox_guests_task_timeout=3), reset=False)
    message = run.failure("localhost") or ""
    handled = run.rc != 0 and "UPID:" in message and "qmcreate" in message
    record_fault("slow create past the timeout", handled)
    assert run.rc != 0
    assert "UPID:" in message and "qmcreate" in message, message


def test_the_api_restart_during_a_cluster_join_is_ridden_through(tmp_path, sim):
    """A fresh lab: pve-1 standalone, pve-2 joins. The join restarts pve-2's API (500, then 595, then 401 for
    old tickets, faults.NodeRestart with the simulator's realistic default): the layer rides through it."""
    sim.reseed(standalone_seed())
    try:
        root = dict(api_host=sim.host, api_port=sim.port, api_user="root@pam", api_password=sim.password,
                    ca_path=sim.ca_file)
        nodes = [{"name": "pve-1", "link0": "192.168.10.11"}, dict(name="pve-2", link0="192.168.10.12", **root)]
        # the whole small lab: its storages, PCI mappings, a guest and the HA group name pve-2, which joins in
        # this run (the plan counts the nodes of proxmox_cluster_nodes as members)
        run = run_layer_as_root(tmp_path, sim, lab(proxmox_cluster_nodes=nodes), root)
        statuses = [r["status"] for r in sim.requests_log()]
        joined = [w for w in sim.writes() if w["path"] == "/cluster/config/join"]
        handled = run.rc == 0 and len(joined) == 1 and {500, 595, 401} <= set(statuses)
        record_fault("API restart during a cluster join", handled)
        assert run.rc == 0, run.failure("localhost") or run.stdout[-3000:]
        assert len(joined) == 1
        assert {500, 595, 401} <= set(statuses), sorted(set(statuses))
        cluster, *members = sim.api().cluster.status.get()
        assert (cluster["name"], [m["name"] for m in members]) == ("ailab", ["pve-1", "pve-2"])
        # the guest planned on the joining node was created there
        placed = {vm["vmid"]: vm["node"] for vm in sim.api().cluster.resources.get(type="vm")}
        assert placed == {201: "pve-1", 211: "pve-1", 212: "pve-2"}, placed
    finally:
        sim.reseed(default_seed())


def run_layer_as_root(tmp_path, sim, lab_vars, connection):
    """run_proxmox_layer with a root@pam password connection (creating and joining a cluster need it)."""
    sim.clear_log()
    inventory = pve_inventory(tmp_path, sim, lab_vars)
    (inventory / "group_vars" / "proxmox_api" / "lab.yml").write_text(
        yaml.safe_dump(dict(lab_vars, proxmox_api_connection=connection)))
    return play_check_and_proxmox(tmp_path, inventory)
