"""Faults while the Proxmox layer runs (simulator fault injection): each is handled and said clearly.

The layer runs as site.yml runs it (inventory check, then playbooks/proxmox.yml) on the small lab of
the bad-input suite, against a fresh simulator with one fault armed:
* a node down: the plan stops before any write, naming the node;
* a task that fails: the error carries the task's own message (its log tail) and names the guest;
* a burst of 5xx answers on reads: retried with backoff, the run succeeds;
* a 5xx answer to a write: not retried blindly, the run stops naming the status;
* a clone/create slower than the task timeout: a timeout message naming the task (UPID).
Figures: faults injected / handled (printed by conftest.py).
"""

import copy

import pytest

from unit.security.conftest import record_fault
from unit.security.test_bad_inputs import PVE_BASE, run_proxmox_layer


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
