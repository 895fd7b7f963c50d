"""Fault injection (failing/slow tasks, HTTP errors, node failures), the request log and reset."""

import time

import pytest
from proxmoxer.core import ResourceException

from pvesim.seed import empty_seed
from pvesim.testing import SimulatorError, SimulatorProcess


def test_next_task_of_a_type_fails_with_the_message(pve9_sim, wait):
    api = pve9_sim.api()
    pve9_sim.fault("task_fail", task_type="qmcreate", message="lvcreate failed: out of extents", count=1)
    status = wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:8"))
    assert status["exitstatus"] == "lvcreate failed: out of extents"
    log = api.nodes("pve-1").tasks(status["upid"]).log.get()
    assert log[-1]["t"] == "TASK ERROR: lvcreate failed: out of extents"
    # A failed create leaves nothing behind, and the fault was consumed.
    assert api.cluster.resources.get(type="vm") == []
    assert api.nodes("pve-1").storage("local-lvm").content.get() == []
    assert pve9_sim.control("GET", "faults") == []
    assert wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:8"))["exitstatus"] == "OK"


def test_http_errors_for_matching_requests(pve9_sim):
    api = pve9_sim.api()
    pve9_sim.fault("http_error", path=r"^/cluster/status$", method="GET", status=503, count=2,
                   message="Service Unavailable")
    for _ignored in range(2):
        with pytest.raises(ResourceException) as raised:
            api.cluster.status.get()
        assert (raised.value.status_code, raised.value.content) == (503, "Service Unavailable")
    assert api.cluster.status.get()[0]["name"] == "ailab"
    api.version.get()  # other paths were never affected


def test_slow_tasks_and_wait(pve9_sim):
    api = pve9_sim.api()
    pve9_sim.fault("slow_tasks", task_type="*", delay=0.3, count=0)
    upid = api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1")
    time.sleep(0.1)
    assert api.nodes("pve-1").tasks(upid).status.get()["status"] == "running"
    assert api.nodes("pve-1").tasks.get(source="active")[0]["upid"] == upid
    assert pve9_sim.wait_tasks()
    assert api.nodes("pve-1").tasks(upid).status.get()["exitstatus"] == "OK"
    pve9_sim.clear_faults()
    assert pve9_sim.control("GET", "faults") == []


def test_stopping_a_task_aborts_it(pve9_sim, wait):
    api = pve9_sim.api()
    pve9_sim.fault("slow_tasks", task_type="qmcreate", delay=0.5)
    upid = api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1")
    api.nodes("pve-1").tasks(upid).delete()
    assert wait(api, upid)["exitstatus"] == "received interrupt"
    assert api.cluster.resources.get(type="vm") == []


def test_request_log_separates_reads_and_writes(pve9_sim, wait):
    api = pve9_sim.api(auth="password")
    pve9_sim.clear_log()
    api.cluster.status.get()
    upid = api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1", cipassword="hunter22")
    wait(api, upid)
    log = pve9_sim.requests_log()
    assert [(e["method"], e["path"], e["write"]) for e in log][:2] == [
        ("GET", "/cluster/status", False), ("POST", "/nodes/pve-1/qemu", True)]
    writes = pve9_sim.writes()
    assert len(writes) == 1
    assert writes[0]["params"] == {"vmid": "100", "scsi0": "local-lvm:1", "cipassword": "**********"}
    assert writes[0]["status"] == 200 and writes[0]["user"] == pve9_sim.user
    assert all(e["path"] == f"/nodes/pve-1/tasks/{upid}/status" for e in pve9_sim.reads()[1:])
    # Logging in is not a write.
    pve9_sim.clear_log()
    pve9_sim.api(auth="password").version.get()
    assert pve9_sim.writes() == []
    assert [e["path"] for e in pve9_sim.requests_log()] == ["/access/ticket", "/version"]


def test_reset_returns_to_the_seed(pve9_sim, wait):
    api = pve9_sim.api()
    wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1"))
    pve9_sim.node_down("pve-2")
    pve9_sim.fault("task_fail", task_type="qmstart", message="boom")
    pve9_sim.reset()
    assert pve9_sim.requests_log() == []
    assert api.cluster.resources.get(type="vm") == []
    assert api.cluster.status.get()[0]["quorate"] == 1
    assert pve9_sim.control("GET", "faults") == []


def test_settings_change_task_duration(pve9_sim, wait):
    api = pve9_sim.api()
    assert pve9_sim.settings()["task_duration"] == 0.05
    pve9_sim.settings(task_duration=0)
    started = time.monotonic()
    wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1"))
    assert time.monotonic() - started < 0.5


def test_reset_restores_the_default_settings(pve9_sim):
    defaults = pve9_sim.settings()
    # stats_interval 0: the test fixtures' simulators serve fresh /cluster/resources
    assert defaults == {"task_duration": 0.05, "migrate_duration": None, "agent_delay": 0.0, "stats_interval": 0.0,
                        "join_restart": 2.0, "ha_round": 0.05}
    pve9_sim.settings(task_duration=1, migrate_duration=2, agent_delay=3, join_restart=0.1)
    pve9_sim.reset()
    assert pve9_sim.settings() == defaults
    pve9_sim.settings(task_duration=0.5)
    pve9_sim.reseed(empty_seed())
    assert pve9_sim.settings() == defaults


def test_reset_restores_the_settings_given_on_the_command_line(tmp_path):
    with SimulatorProcess(pve=8, seed="empty", state_dir=tmp_path, args=["--task-duration", "0.01"]) as sim:
        sim.settings(task_duration=0.2)
        sim.reset()
        assert sim.settings()["task_duration"] == 0.01


def test_bad_fault_requests_are_rejected(pve9_sim):
    with pytest.raises(SimulatorError, match="unknown fault kind"):
        pve9_sim.fault("meteor")
    with pytest.raises(SimulatorError, match="unknown fault option"):
        pve9_sim.fault("task_fail", colour="red")


def test_task_log_limit_0_reads_to_the_end(pve9_sim, wait):
    """pve-manager PVE/API2/Tasks.pm read_task_log (limit defaults to 50) and pve-common PVE/Tools.pm
    dump_logfile_by_filehandle (read_until_end when limit is 0): limit=0 is the whole log from start."""
    api = pve9_sim.api()
    pve9_sim.fault("task_fail", task_type="qmcreate", message="lvcreate failed: out of extents", count=1,
                   log_lines=120)
    status = wait(api, api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:8"))
    log = api.nodes("pve-1").tasks(status["upid"]).log
    assert len(log.get()) == 50 and log.get()[-1] == {"n": 50, "t": "progress line 50"}
    whole = log.get(limit=0)
    assert len(whole) == 121 and whole[-1] == {"n": 121, "t": "TASK ERROR: lvcreate failed: out of extents"}
    assert [line["n"] for line in log.get(start=100, limit=0)] == list(range(101, 122))
    assert log.get(start=110, limit=5) == [{"n": n, "t": "progress line %d" % n} for n in range(111, 116)]
    assert log.get(start=500, limit=0) == []


def test_a_failed_task_names_the_end_of_a_long_log(pve9_sim, run_module):
    """The modules' task error carries the last lines of the log (one read with limit=0), not its start."""
    from ansible_collections.ailab.cluster.plugins.modules import proxmox_guest

    pve9_sim.fault("task_fail", task_type="qmcreate", message="lvcreate failed: out of extents", count=1,
                   log_lines=600)
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, dict(pve9_sim.module_params(), name="big", vmid=100, node="pve-1",
                                            disks={"scsi0": {"storage": "local-lvm", "size": "8G"}}))
    assert result["failed"]
    assert result["msg"].endswith("Task log tail: progress line 592 | progress line 593 | progress line 594 | "
                                  "progress line 595 | progress line 596 | progress line 597 | progress line 598 | "
                                  "progress line 599 | progress line 600 | TASK ERROR: lvcreate failed: out of "
                                  "extents"), result["msg"]
    logs = [r for r in pve9_sim.reads() if r["path"].endswith("/log")]
    assert [r["params"] for r in logs] == [{"limit": "0"}], logs  # one read; the old 500-line pages took two
