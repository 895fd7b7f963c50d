"""Sandbox persistence (``--persist FILE``): the state and the CA survive a restart."""

import json
from pathlib import Path

import pytest

from pvesim.testing import SimulatorError, SimulatorProcess


def _start(tmp_path, pve=9, **kwargs):
    return SimulatorProcess(pve=pve, seed="empty", state_dir=tmp_path / "state", persist=tmp_path / "state.json",
                            **kwargs)


def test_state_survives_a_restart(tmp_path):
    state_file = tmp_path / "state.json"
    with _start(tmp_path) as sim:
        assert sim.info["persist"] == str(state_file) and not state_file.exists()
        api = sim.api()
        api.nodes("pve-1").qemu.post(vmid=100, name="kept", scsi0="local-lvm:8", cipassword="pw-1", start=1)
        api.cluster.ha.resources.post(sid="vm:100")
        assert sim.wait_tasks()
        api.nodes("pve-1").qemu(100).config.put(cores=4)  # stays pending: the VM runs
        document = json.loads(state_file.read_text())
        assert (document["format"], document["version"], document["pve"]) == ("pvesim-state", 1, 9)
        assert [g["vmid"] for g in document["state"]["guests"]] == [100]
        assert "pw-1" not in state_file.read_text()
        ca = Path(sim.ca_file).read_bytes()
    assert oct(state_file.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".state.json")] == []  # no temporary left
    with _start(tmp_path) as sim:
        api = sim.api()
        assert Path(sim.ca_file).read_bytes() == ca  # clients keep trusting the same CA
        vm = api.nodes("pve-1").qemu(100)
        current = vm.status.current.get()
        assert (current["name"], current["status"], current["ha"]["managed"]) == ("kept", "running", 1)
        assert [(i["key"], i["pending"]) for i in vm.pending.get() if "pending" in i] == [("cores", 4)]
        assert [v["volid"] for v in api.nodes("pve-1").storage("local-lvm").content.get()] == [
            "local-lvm:vm-100-disk-0"]
        assert api.cluster.nextid.get() == "101"
        sim.reset()  # back to the seed, and the file follows
        assert api.cluster.resources.get(type="vm") == []
    assert json.loads(state_file.read_text())["state"]["guests"] == []


def test_running_tasks_land_before_the_shutdown_save(tmp_path):
    with _start(tmp_path) as sim:
        sim.fault("slow_tasks", task_type="qmcreate", delay=0.5)
        sim.api().nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:1")
    guests = json.loads((tmp_path / "state.json").read_text())["state"]["guests"]
    assert [(g["vmid"], g["config"].get("lock")) for g in guests] == [(100, None)]


def test_a_joined_cluster_is_kept(tmp_path):
    with SimulatorProcess(pve=8, seed="standalone", state_dir=tmp_path / "state", persist=tmp_path / "s.json") as sim:
        api = sim.api(auth="password")
        api.cluster.config.post(clustername="lab")
        assert sim.wait_tasks()
        api.cluster.config.join.post(hostname="pve-1", fingerprint=sim.fingerprint, password=sim.password)
        assert sim.wait_tasks()
    with SimulatorProcess(pve=8, seed="standalone", state_dir=tmp_path / "state", persist=tmp_path / "s.json") as sim:
        cluster, *nodes = sim.api().cluster.status.get()
        assert (cluster["name"], [n["name"] for n in nodes]) == ("lab", ["pve-1", "pve-2"])


@pytest.mark.parametrize(("content", "message"), [
    ('{"format": "pvesim-state", "version": 1, "pve": 8, "state": {}}', "holds the state of a PVE 8 simulator"),
    ('{"format": "something-else"}', "is not a pvesim state file"),
    ("{not json", "cannot read state file"),
])
def test_an_unusable_state_file_stops_the_start(tmp_path, content, message):
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(SimulatorError, match=message):
        _start(tmp_path, startup_timeout=15).start()
