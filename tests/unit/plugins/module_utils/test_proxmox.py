"""The shared Proxmox VE client (module_utils/_proxmox.py) against the simulator."""

import pytest

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    ProxmoxClient,
    ProxmoxError,
    config_changes,
    pve_params,
    to_pve,
)


def client_for(sim, **kwargs):
    return ProxmoxClient(sim.api(), endpoint=f"{sim.host}:{sim.port}", sleep=lambda s: None, **kwargs)


def test_booleans_become_1_and_0_and_none_is_dropped():
    assert to_pve(True) == 1 and to_pve(False) == 0
    assert to_pve(["a", "b"]) == "a,b"
    assert pve_params({"onboot": True, "description": None, "cores": 2}) == {"onboot": 1, "cores": 2}


def test_version_is_read_once(pve_sim):
    client = client_for(pve_sim)
    pve_sim.clear_log()
    assert client.major == pve_sim.pve
    assert client.major == pve_sim.pve
    assert [r["path"] for r in pve_sim.requests_log()] == ["/version"]


def test_task_ok_is_returned(pve9_sim):
    client = client_for(pve9_sim)
    upid = client.post("nodes/pve-1/qemu", what="VM 150", vmid=150, name="t", memory=512)
    status = client.wait_task("pve-1", upid, "creating VM 150", poll=0.01)
    assert status["exitstatus"] == "OK"
    assert client.writes == 1


def test_failed_task_raises_with_log_tail(pve9_sim):
    pve9_sim.fault("task_fail", task_type="qmcreate", message="unable to create VM 151 - storage full", count=1)
    client = client_for(pve9_sim)
    upid = client.post("nodes/pve-1/qemu", what="VM 151", vmid=151, memory=512)
    with pytest.raises(ProxmoxError) as exc:
        client.wait_task("pve-1", upid, "creating VM 151", poll=0.01)
    assert "creating VM 151 failed: unable to create VM 151 - storage full" in exc.value.msg
    assert "Task log tail" in exc.value.msg


def test_bad_parameter_is_reported_with_its_name(pve9_sim):
    client = client_for(pve9_sim)
    with pytest.raises(ProxmoxError) as exc:
        client.post("nodes/pve-1/qemu", what="VM 152", vmid=152, memory="lots")
    assert exc.value.status == 400
    assert "VM 152" in exc.value.msg and "memory:" in exc.value.msg


def test_semantic_error_names_the_object(pve9_sim):
    client = client_for(pve9_sim)
    client.wait_task("pve-1", client.post("nodes/pve-1/qemu", vmid=153, memory=512), "create", poll=0.01)
    with pytest.raises(ProxmoxError) as exc:
        client.post("nodes/pve-1/qemu", what="VM 153 on pve-1", vmid=153, memory=512)
    assert exc.value.status == 500
    assert exc.value.msg.startswith("Proxmox VE API error on VM 153 on pve-1 (HTTP 500)")


def test_writes_are_never_retried(pve9_sim):
    pve9_sim.fault("http_error", path="^/nodes/pve-1/qemu$", method="POST", status=503, message="busy", count=1)
    client = client_for(pve9_sim, retries=3)
    pve9_sim.clear_log()
    with pytest.raises(ProxmoxError):
        client.post("nodes/pve-1/qemu", vmid=154, memory=512)
    assert len([r for r in pve9_sim.requests_log() if r["method"] == "POST"]) == 1


def test_missing_path_on_pve8_says_the_version_lacks_it(pve8_sim):
    client = client_for(pve8_sim)
    with pytest.raises(ProxmoxError) as exc:
        client.get("cluster/ha/rules", what="the HA rules")
    assert exc.value.status == 501
    assert "does not have that API call" in exc.value.msg


def test_config_changes_compares_as_pve_stores_values():
    current = {"onboot": 1, "cores": "2", "content": "rootdir,images", "description": "lab\n", "unmanaged": "x"}
    desired = {"onboot": True, "cores": 2, "content": "images,rootdir", "description": "lab", "memory": None}
    changes, before, after = config_changes(desired, current, unordered=("content",))
    assert changes == {}
    assert before == {"onboot": 1, "cores": "2", "content": "rootdir,images", "description": "lab\n"}
    assert "unmanaged" not in before and "memory" not in after


def test_config_changes_reports_only_differences():
    changes, before, after = config_changes({"onboot": False, "cores": 4, "tags": "gpu"}, {"onboot": 1, "cores": 4})
    assert changes == {"onboot": 0, "tags": "gpu"}
    assert before == {"onboot": 1, "cores": 4, "tags": None}
    assert after == {"onboot": 0, "cores": 4, "tags": "gpu"}
