"""The shared Proxmox VE client and config comparison (module_utils/_proxmox.py), against the simulator."""

import pytest

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    REMOVE,
    ProxmoxClient,
    ProxmoxError,
    PveArray,
    applied,
    config_changes,
    diff_config,
    pve_params,
    split_list,
    to_pve,
    unordered_list,
    with_defaults,
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


def test_config_changes_ignores_order_and_repeats_of_unordered_keys():
    changes = config_changes({"content": ["iso", "images", "iso"]}, {"content": "images,iso"}, unordered=("content",))[0]
    assert changes == {}
    changes = config_changes({"content": "iso,images"}, {"content": "images,iso"})[0]
    assert changes == {"content": "iso,images"}  # ordered by default


# ------------------------------------------------------------------------------ comparison helpers
def test_split_list_takes_comma_strings_and_lists():
    assert split_list(None) == []
    assert split_list(" a, ,b ,") == ["a", "b"]
    assert split_list(["a ", "", 100]) == ["a", "100"]
    assert unordered_list("vm:101, vm:100,vm:101") == unordered_list(["vm:100", "vm:101"]) == "vm:100,vm:101"
    assert unordered_list(None) == ""


def test_with_defaults_fills_only_unset_keys():
    assert with_defaults({"enabled": None, "comment": "x"}, {"enabled": 1, "comment": "", "all": 0}) == {
        "enabled": 1, "comment": "x", "all": 0}
    assert with_defaults(None, {"disable": 0}) == {"disable": 0}


def test_diff_config_uses_defaults_for_absent_keys():
    defaults = {"enabled": 1, "repeat-missed": 0}
    current = {"schedule": "sun 01:00"}
    params, delete, before, after = diff_config({"enabled": True, "repeat-missed": True}, current, defaults=defaults)
    assert params == {"repeat-missed": 1} and delete == []  # enabled: true is the default, not a change
    assert before == {"enabled": None, "repeat-missed": None}
    assert after == {"enabled": 1, "repeat-missed": 1}
    params = diff_config({"enabled": False}, current, defaults=defaults)[0]
    assert params == {"enabled": 0}


def test_diff_config_removes_only_keys_that_are_set():
    current = {"nodes": "pve-1", "comment": "old", "cores": "2"}
    desired = {"nodes": REMOVE, "mailto": REMOVE, "cores": 2, "comment": None}
    params, delete, before, after = diff_config(desired, current)
    assert params == {} and delete == ["nodes"]
    assert before == {"nodes": "pve-1", "mailto": None, "cores": "2"}
    assert after == {"nodes": None, "mailto": None, "cores": 2}
    assert "comment" not in before  # None: not managed


def test_diff_config_skips_unmanaged_keys_wherever_they_are():
    params, delete, before, after = diff_config({"comment": None, "cores": 4, "nodes": REMOVE}, {"nodes": "pve-1"})
    assert (params, delete) == ({"cores": 4}, ["nodes"])
    assert before == {"cores": None, "nodes": "pve-1"} and after == {"cores": 4, "nodes": None}


def test_diff_config_a_value_that_reads_none_is_still_a_value():
    assert diff_config({"description": "None"}, {})[0] == {"description": "None"}
    assert diff_config({"description": "None"}, {"description": "None"})[0] == {}


def test_diff_config_normalizers_make_equivalent_values_equal():
    current = {"content": "iso,images", "path": "/srv/backups/"}
    normalizers = {"content": unordered_list, "path": lambda v: None if v is None else v.rstrip("/")}
    desired = {"content": ["images", "iso"], "path": "/srv/backups"}
    assert diff_config(desired, current, normalizers)[:2] == ({}, [])
    params = diff_config(dict(desired, content=["images"]), current, normalizers)[0]
    assert params == {"content": "images"}  # what is sent is the desired value as PVE takes it


def test_applied_predicts_the_config_after_a_write():
    current = {"comment": "old", "nodes": "pve-1", "digest": "abc"}
    after = applied(current, {"nodes": "pve-1,pve-2", "map": PveArray(["node=pve-1,path=0000:01:00"]),
                              "delete": "comment", "digest": "new"})
    assert after == {"nodes": "pve-1,pve-2", "map": ["node=pve-1,path=0000:01:00"], "digest": "abc"}
    assert isinstance(after["map"], list) and not isinstance(after["map"], PveArray)
    assert current["comment"] == "old"  # the input is not changed
    assert applied(None, {"type": "dir"}) == {"type": "dir"}
    assert applied({"nodes": "pve-1"}, {"delete": "comment,nodes"}) == {}  # deleting an unset key is fine


def test_pve_array_is_kept_as_an_array():
    entries = PveArray(["node=pve-1,path=0000:01:00", "node=pve-2,path=0000:01:00"])
    assert to_pve(entries) is entries
    sent = pve_params({"map": entries, "description": None, "mdev": False})
    assert sent == {"map": list(entries), "mdev": 0} and not isinstance(sent["map"], PveArray)


def test_pve_array_is_written_as_repeated_keys(pve9_sim):
    client = client_for(pve9_sim)
    entries = ["node=pve-1,path=0000:01:00,id=10de:2204", "node=pve-2,path=0000:01:00,id=10de:2204"]
    pve9_sim.clear_log()
    client.post("cluster/mapping/pci", what="PCI mapping gpu", id="gpu", map=PveArray(entries), mdev=False)
    writes = pve9_sim.writes()
    assert [(w["method"], w["path"]) for w in writes] == [("POST", "/cluster/mapping/pci")]
    assert writes[0]["params"]["map"] == entries
    assert client.writes == 1
    stored = {m["id"]: m for m in client.get("cluster/mapping/pci")}["gpu"]
    assert sorted(stored["map"]) == entries


def test_a_parameter_named_path_is_sent_as_a_parameter(pve9_sim):
    client = client_for(pve9_sim)
    pve9_sim.clear_log()
    params = dict(storage="scratch", type="dir", path="/srv/scratch", content="iso")
    client.post("storage", what="storage scratch", **params)  # "path" is a storage parameter, not the API path
    assert [(w["path"], w["params"]["path"]) for w in pve9_sim.writes()] == [("/storage", "/srv/scratch")]
