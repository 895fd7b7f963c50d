"""The sandbox lab runner's pure logic (tests/harness/sandbox.py): PLAY RECAP parsing, the layer
records and lines, what runs against what, the export digest and the container decisions."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

import sandbox  # noqa: E402

RECAP = """\
PLAY [x] ***********************************************************************

PLAY RECAP *********************************************************************
k8s-cp-1                   : ok=40   changed=3    unreachable=0    failed=0    skipped=9    rescued=0    ignored=0
localhost                  : ok=5    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0

"""


def test_parse_recap_counts_each_host():
    recap = sandbox.parse_recap(RECAP)
    assert recap["k8s-cp-1"] == {"ok": 40, "changed": 3, "unreachable": 0, "failed": 0, "skipped": 9,
                                 "rescued": 0, "ignored": 0}
    assert sandbox.recap_totals(recap)["changed"] == 4


def test_parse_recap_takes_the_last_recap_and_ignores_colours():
    first = RECAP.replace("changed=3", "changed=7")
    coloured = "\x1b[0;33mk8s-cp-1\x1b[0m : \x1b[0;32mok=2\x1b[0m changed=0 unreachable=0 failed=0"
    text = first + "\nPLAY RECAP ***\n" + coloured + "\n"
    assert sandbox.parse_recap(text) == {"k8s-cp-1": {"ok": 2, "changed": 0, "unreachable": 0, "failed": 0}}


def test_parse_recap_without_recap_is_empty():
    assert sandbox.parse_recap("ERROR! the playbook could not be found") == {}


def test_playbook_layer_ok_reports_changed_and_warnings():
    output = "[WARNING]: something\n" + RECAP
    layer = sandbox.playbook_layer("nodes", "containers", 0, output, 12.34, "node layer")
    assert layer["result"] == "ok"
    assert layer["changed"] == 4
    assert layer["seconds"] == 12.3
    assert layer["detail"] == "node layer: changed=4, 1 warning(s)"


@pytest.mark.parametrize("rc, output", [(2, RECAP.replace("failed=0    skipped=9", "failed=1    skipped=9")),
                                        (0, "no recap at all"), (4, "")])
def test_playbook_layer_fails_on_rc_or_missing_recap(rc, output):
    layer = sandbox.playbook_layer("proxmox", "simulator", rc, output, 1.0, "proxmox")
    assert layer["result"] == "failed"
    assert f"exited {rc}" in layer["detail"]


def test_not_run_layers_say_why_and_the_line_says_it_too():
    layer = sandbox.not_run("nodes", sandbox.NO_DOCKER)
    assert layer["target"] == "not run"
    assert sandbox.layer_line(layer) == ("==> nodes: not run — Docker is not available (install docker.io and "
                                         "start dockerd: make system)")


def test_layer_line_names_the_target_and_time():
    layer = sandbox.playbook_layer("proxmox", "simulator", 0, RECAP, 3.0, "proxmox")
    assert sandbox.layer_line(layer) == "==> proxmox: ok against the simulator in 3.0s — proxmox: changed=4"


def test_layer_table_has_one_row_per_layer():
    layers = [sandbox.playbook_layer("proxmox", "simulator", 0, RECAP, 3.0, "p"), sandbox.not_run("report", "why")]
    table = sandbox.layer_table(layers).splitlines()
    assert len(table) == 3
    assert table[1].split()[:4] == ["proxmox", "simulator", "ok", "3.0s"]
    assert table[2].split()[:5] == ["report", "not", "run", "not", "run"]


def test_report_layers_carry_only_the_report_keys_and_known_targets():
    layers = [sandbox.playbook_layer("proxmox", "simulator", 0, RECAP, 3.0, "p"), sandbox.not_run("nodes", "why")]
    out = sandbox.report_layers(layers)
    assert json.loads(json.dumps(out)) == out
    assert [set(x) for x in out["lab_report_layers"]] == [{"layer", "target", "result", "seconds", "detail"}] * 2
    assert all(x["target"] in sandbox.TARGETS for x in out["lab_report_layers"])


def test_plan_without_docker_skips_only_the_nodes():
    reasons = sandbox.plan(docker_ok=False, have={"validate", "report"})
    assert reasons["nodes"] == sandbox.NO_DOCKER
    assert [k for k, v in reasons.items() if v] == ["nodes"]


def test_plan_names_missing_playbooks_and_unasked_layers():
    reasons = sandbox.plan(docker_ok=True, only=("proxmox",), have=())
    assert reasons["proxmox"] is None
    assert reasons["nodes"].startswith("not asked for (AILAB_LAB_LAYERS=proxmox)")
    assert sandbox.plan(True, None, ())["report"] == "playbooks/report.yml not present"
    assert sandbox.plan(True, None, ())["validate"] == "playbooks/validate.yml not present"


def test_parse_layers():
    assert sandbox.parse_layers("") is None
    assert sandbox.parse_layers(" proxmox , nodes") == ("proxmox", "nodes")
    with pytest.raises(ValueError, match="unknown layer.*proxmx"):
        sandbox.parse_layers("proxmx")


def test_export_digest_sees_content_and_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.yaml").write_text("kind: A\n")
    first = sandbox.export_digest(tmp_path)
    assert sandbox.export_digest(tmp_path) == first
    (tmp_path / "a" / "x.yaml").write_text("kind: B\n")
    assert sandbox.export_digest(tmp_path) != first
    (tmp_path / "a" / "x.yaml").write_text("kind: A\n")
    (tmp_path / "a" / "x.yaml").rename(tmp_path / "a" / "y.yaml")
    assert sandbox.export_digest(tmp_path) != first


def inspected(image="ailab-test/debian:12", running=True, sandbox_label="1"):
    return {"Config": {"Labels": {sandbox.LABEL: sandbox_label, sandbox.IMAGE_LABEL: image}},
            "State": {"Running": running}}


@pytest.mark.parametrize("info, action", [
    (None, "create"),
    (inspected(), "reuse"),
    (inspected(running=False), "start"),
    (inspected(image="ailab-test/debian:13"), "recreate"),
    (inspected(sandbox_label=None), "recreate"),
])
def test_container_action(info, action):
    assert sandbox.container_action(info, "ailab-test/debian:12") == action


def test_docker_run_args_carry_the_molecule_flags_and_labels():
    args = sandbox.docker_run_args("ailab-sandbox-k8s-cp-1", "k8s-cp-1", "ailab-test/debian:12")
    joined = " ".join(args)
    for flag in ("--cgroupns host", "--cap-add SYS_ADMIN", "--security-opt seccomp=unconfined", "--tmpfs /run",
                 "--volume /sys/fs/cgroup:/sys/fs/cgroup:rw", "--volume /var/lib/containerd",
                 "--label ailab.sandbox=1", "--hostname k8s-cp-1"):
        assert flag in joined
    assert args[-2:] == ["ailab-test/debian:12", "/lib/systemd/systemd"]


def test_pve_switch():
    assert sandbox.pve_switch(None, 9) is None
    assert sandbox.pve_switch("9", 9) is None
    assert "made with the Proxmox VE 8 simulator" in sandbox.pve_switch("8", 9)


INVENTORY = {
    "_meta": {"hostvars": {
        "a": {"ansible_connection": "community.docker.docker", "ansible_host": "c-a", "sandbox_container_image": "i:12"},
        "b": {"ansible_connection": "community.docker.docker", "ansible_host": "c-b", "sandbox_container_image": "i:13"},
    }},
    "k8s_cluster": {"children": ["kube_control_plane", "kube_node"]},
    "kube_control_plane": {"hosts": ["a"]},
    "kube_node": {"hosts": ["a"], "children": ["gpu"]},
    "gpu": {"hosts": ["b"]},
}


def test_node_containers_walks_the_groups():
    assert sandbox.node_containers(INVENTORY) == [("a", "c-a", "i:12"), ("b", "c-b", "i:13")]


@pytest.mark.parametrize("key, value, message", [("ansible_connection", "ssh", "are containers"),
                                                 ("sandbox_container_image", "", "sandbox_container_image is not set")])
def test_node_containers_rejects_non_containers(key, value, message):
    broken = json.loads(json.dumps(INVENTORY))
    broken["_meta"]["hostvars"]["b"][key] = value
    with pytest.raises(ValueError, match=message):
        sandbox.node_containers(broken)


def test_the_sandbox_inventory_has_a_container_per_node_vm():
    """Every Kubernetes node VM of guests.yml has its container host, in the groups the guest names."""
    import yaml  # noqa: PLC0415

    out = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", "inventories/sandbox", "--list"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    inventory = json.loads(out)
    nodes = sandbox.node_containers(inventory)
    guests = yaml.safe_load((ROOT / "inventories/sandbox/group_vars/proxmox_api/guests.yml").read_text())
    names = [g["name"] for g in guests["proxmox_guests_list"]]
    assert sorted(host for host, _c, _i in nodes) == sorted(names)
    assert all(container == f"ailab-sandbox-{host}" for host, container, _i in nodes)
    hostvars_groups = {g: set(inventory.get(g, {}).get("hosts", [])) for g in inventory if g != "_meta"}
    for guest in guests["proxmox_guests_list"]:
        for group in guest["groups"]:
            members = set(hostvars_groups.get(group, set()))
            for child in inventory.get(group, {}).get("children", []):
                members |= hostvars_groups.get(child, set())
                for grandchild in inventory.get(child, {}).get("children", []):
                    members |= hostvars_groups.get(grandchild, set())
            assert guest["name"] in members, f"{guest['name']} not in {group}"


def test_generated_plays_pass_the_syntax_check(tmp_path):
    """The drill and pod-network playbooks lab.py writes are valid playbooks for the sandbox inventory."""
    drill = sandbox.write_playbook(tmp_path / "live_migration.yml", sandbox.migration_drill_play())
    pod = sandbox.write_playbook(tmp_path / "pod_network.yml", sandbox.pod_network_play())
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check",
                           "-i", "inventories/sandbox", str(drill), str(pod)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout + proc.stderr


def sandbox_group_vars():
    import yaml  # noqa: PLC0415

    merged = {}
    for path in sorted((ROOT / "inventories/sandbox/group_vars/proxmox_api").glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def good_state(expect):
    guests = {str(vmid): {"node": node, "status": "running", "config": {"name": name}}
              for name, (vmid, node) in expect["guests"].items()}
    vmid, target = expect["drill"]
    guests[str(vmid)] = {"node": target, "status": "running", "config": {"name": "drill"}}
    return {"guests": guests, "backup_jobs": {j: {} for j in expect["backup_jobs"]},
            "pci_mappings": {m: {} for m in expect["pci_mappings"]},
            "ha": {"groups": {g: {} for g in expect["ha_groups"]}, "rules": {r: {} for r in expect["ha_rules"]},
                   "resources": {r: {} for r in expect["ha_resources"]}}}


@pytest.mark.parametrize("pve", [8, 9])
def test_sandbox_expectations_cover_ha_on_both_versions(pve):
    expect = sandbox.sandbox_expectations(sandbox_group_vars(), pve)
    assert set(expect["guests"]) == {"k8s-cp-1", "k8s-w-1", "k8s-gpu-1"}
    assert expect["ha_resources"] == ["vm:201", "vm:211", "vm:212"]   # every node VM opts in (guests.yml)
    assert expect["ha_groups"] == (["lab"] if pve == 8 else [])
    assert expect["ha_rules"] == ([] if pve == 8 else ["k8s-control-plane-prefers-pve-1", "k8s-workers-apart"])
    assert expect["drill"] == (290, "pve-2")
    assert sandbox.simulator_problems(good_state(expect), expect, pve) == []


@pytest.mark.parametrize("breakage, message", [
    (lambda s: s["guests"].pop("201"), "guest k8s-cp-1 (201) does not exist"),
    (lambda s: s["guests"]["211"].update(node="pve-2"), "guest k8s-w-1 is on pve-2, not pve-1"),
    (lambda s: s["guests"]["290"].update(node="pve-1"), "drill VM 290 is not running on pve-2"),
    (lambda s: s["backup_jobs"].clear(), "backup_jobs missing: weekly"),
    (lambda s: s["pci_mappings"].clear(), "pci_mappings missing: rtx3090"),
    (lambda s: s["ha"]["groups"].clear(), "HA groups missing: lab"),
])
def test_simulator_problems_name_what_is_missing(breakage, message):
    expect = sandbox.sandbox_expectations(sandbox_group_vars(), 8)
    state = good_state(expect)
    breakage(state)
    assert any(message in p for p in sandbox.simulator_problems(state, expect, 8))


def run_of(*layers, **facts):
    return {"layers": list(layers), "export_problems": [], "export_identical": True, **facts}


def ok(name, changed=0):
    return {"layer": name, "target": "export", "result": "ok", "detail": "", "changed": changed}


def test_run_problems_accepts_a_clean_second_run_and_missing_optional_playbooks():
    layers = [ok(n) for n in sandbox.LAYERS[:4]] + [
        sandbox.not_run("validate", "playbooks/validate.yml not present"),
        sandbox.not_run("report", "playbooks/report.yml not present")]
    assert sandbox.run_problems(run_of(*layers), second=True) == []


def test_run_problems_second_run_changes_and_export_differences():
    layers = [ok("proxmox", 2), ok("nodes", 1), ok("kubernetes", 5), ok("platform", 9)]
    run = run_of(*layers, export_identical=False)
    problems = sandbox.run_problems(run, second=True, layers=("proxmox", "nodes", "kubernetes", "platform"))
    assert problems == ["proxmox: changed=2 on the second run", "nodes: changed=1 on the second run",
                        "export: the second run's export differs from the first"]
    assert sandbox.run_problems(run, second=False, layers=("proxmox", "nodes", "kubernetes", "platform")) == []


def test_run_problems_failed_not_run_and_invalid_export():
    run = run_of({**ok("proxmox"), "result": "failed", "detail": "boom"}, sandbox.not_run("nodes", sandbox.NO_DOCKER),
                 export_problems=["x"])
    problems = sandbox.run_problems(run, layers=("proxmox", "nodes", "platform"))
    assert problems == ["proxmox: failed (boom)", f"nodes: not run ({sandbox.NO_DOCKER})", "platform: no record",
                        "export: 1 validation problem(s)"]


def test_simulator_problems_missing_ha_resources_and_rules():
    expect = {"guests": {}, "backup_jobs": [], "pci_mappings": [], "ha_groups": [], "drill": None,
              "ha_resources": ["vm:201"], "ha_rules": ["lab-nodes"]}
    state = {"ha": {"resources": {}, "rules": {}}}
    assert sandbox.simulator_problems(state, expect, 9) == ["HA resources missing: vm:201", "HA rules missing: lab-nodes"]
