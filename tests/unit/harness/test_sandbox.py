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


KUBESIM_MOUNTS = sandbox.kubesim_mounts("/src/tests/kubesim")
DOCKER_MOUNTS = [{"Type": "bind", "Source": "/src/tests/kubesim", "Destination": "/usr/lib/kubesim/kubesim", "RW": False},
                 {"Type": "volume", "Name": "ailab-sandbox-kubesim", "Source": "/var/lib/docker/volumes/x/_data",
                  "Destination": "/var/lib/kubesim", "RW": True},
                 {"Type": "volume", "Name": "0f73ed16", "Destination": "/var/lib/containerd", "RW": True}]


def inspected(image="ailab-test/debian:12", running=True, sandbox_label="1", mounts=None):
    return {"Config": {"Labels": {sandbox.LABEL: sandbox_label, sandbox.IMAGE_LABEL: image}},
            "State": {"Running": running}, "Mounts": DOCKER_MOUNTS if mounts is None else mounts}


@pytest.mark.parametrize("info, action", [
    (None, "create"),
    (inspected(), "reuse"),
    (inspected(running=False), "start"),
    (inspected(image="ailab-test/debian:13"), "recreate"),
    (inspected(sandbox_label=None), "recreate"),
    # A container of an older sandbox (no kubesim mounts), or of another checkout: made again.
    (inspected(mounts=DOCKER_MOUNTS[2:]), "recreate"),
    (inspected(mounts=[{**DOCKER_MOUNTS[0], "Source": "/elsewhere/tests/kubesim"}, *DOCKER_MOUNTS[1:]]), "recreate"),
    (inspected(mounts=[DOCKER_MOUNTS[0], {**DOCKER_MOUNTS[1], "Name": "ailab-kubesim-kubernetes-cluster"}]),
     "recreate"),
])
def test_container_action(info, action):
    assert sandbox.container_action(info, "ailab-test/debian:12", KUBESIM_MOUNTS) == action


def test_container_action_without_mounts_asked_for_ignores_them():
    assert sandbox.container_action(inspected(mounts=[]), "ailab-test/debian:12") == "reuse"


def test_docker_run_args_carry_the_molecule_flags_and_labels():
    args = sandbox.docker_run_args("ailab-sandbox-k8s-cp-1", "k8s-cp-1", "ailab-test/debian:12", KUBESIM_MOUNTS)
    joined = " ".join(args)
    for flag in ("--cgroupns host", "--cap-add SYS_ADMIN", "--security-opt seccomp=unconfined", "--tmpfs /run",
                 "--volume /sys/fs/cgroup:/sys/fs/cgroup:rw", "--volume /var/lib/containerd",
                 "--label ailab.sandbox=1", "--hostname k8s-cp-1",
                 "--volume /src/tests/kubesim:/usr/lib/kubesim/kubesim:ro",
                 "--volume ailab-sandbox-kubesim:/var/lib/kubesim "):
        assert flag in joined
    assert args[-2:] == ["ailab-test/debian:12", "/lib/systemd/systemd"]


def test_docker_run_args_mounts_match_what_container_action_expects():
    """A container made with these arguments is reused, not made again, by the next run."""
    args = sandbox.docker_run_args("c", "h", "i", KUBESIM_MOUNTS)
    volumes = [args[i + 1].split(":") for i, a in enumerate(args) if a == "--volume"]
    mounts = [{"Type": "volume" if not src.startswith("/") else "bind", "Name": src, "Source": src,
               "Destination": dest} for src, dest, *_ro in (v for v in volumes if len(v) > 1)]
    assert sandbox.container_action(inspected(image="i", mounts=mounts), "i", KUBESIM_MOUNTS) == "reuse"


@pytest.mark.parametrize("actions, expected, fresh", [
    ({"a": "reuse", "b": "reuse"}, {"a": "reuse", "b": "reuse"}, False),
    ({"a": "create", "b": "create"}, {"a": "create", "b": "create"}, True),
    # One new node container next to kept ones: the whole cluster starts over.
    ({"a": "reuse", "b": "create"}, {"a": "recreate", "b": "create"}, True),
    ({"a": "reuse", "b": "recreate"}, {"a": "recreate", "b": "recreate"}, True),
    # A stopped container may come back with another address than kubeadm's certificates name.
    ({"a": "reuse", "b": "start"}, {"a": "recreate", "b": "recreate"}, True),
])
def test_cluster_actions(actions, expected, fresh):
    assert sandbox.cluster_actions(actions) == (expected, fresh)


@pytest.mark.parametrize("docker_ok, nodes_result, ready, target, why", [
    (True, "ok", False, "test double", None),
    (True, "not run", True, "test double", None),
    (False, "not run", False, "export", "kubeadm not run: " + sandbox.NO_KUBEADM_DOUBLE),
    (True, "failed", True, "not run", "the nodes layer failed"),
    (True, "not run", False, "not run", "the node containers are not ready"),
])
def test_kubernetes_target(docker_ok, nodes_result, ready, target, why):
    got_target, got_why = sandbox.kubernetes_target(docker_ok, nodes_result, ready)
    assert got_target == target and got_target in sandbox.TARGETS
    assert got_why == why if why is None else got_why.startswith(why)
    if not docker_ok:
        assert "Docker is not available" in got_why


def kube_node(name, ready=True, control_plane=False, version="v1.34.2"):
    labels = {"kubernetes.io/hostname": name}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True" if ready else "False"}],
                       "nodeInfo": {"kubeletVersion": version}}}


def kube_dump(*nodes, version="v1.34.2"):
    configmaps = {} if version is None else {"kube-system/kubeadm-config": {"data": {
        "ClusterConfiguration": f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                                f"kubernetesVersion: {version}\n"}}}
    return {"objects": {"nodes": {f"/{n['metadata']['name']}": n for n in nodes}, "configmaps": configmaps,
                        "daemonsets": {"kube-flannel/kube-flannel-ds": {}}}}


def test_kubesim_cluster_reads_nodes_and_version():
    cluster = sandbox.kubesim_cluster(kube_dump(kube_node("w", ready=False), kube_node("cp", control_plane=True)))
    assert cluster == {"version": "v1.34.2", "daemonsets": ["kube-flannel/kube-flannel-ds"], "nodes": {
        "cp": {"ready": True, "kubelet": "v1.34.2", "control_plane": True},
        "w": {"ready": False, "kubelet": "v1.34.2", "control_plane": False}}}
    assert sandbox.kubesim_cluster({}) == {"version": None, "nodes": {}, "daemonsets": []}


def test_kubernetes_problems_accepts_a_joined_ready_cluster():
    cluster = sandbox.kubesim_cluster(kube_dump(kube_node("cp", control_plane=True), kube_node("w1"), kube_node("g1")))
    assert sandbox.kubernetes_problems(cluster, ["cp"], ["g1", "w1"], "1.34.2") == []
    summary = sandbox.kubernetes_summary(cluster, ["cp"])
    assert summary.startswith("kubeadm init on cp, 2 node(s) joined (g1, w1), 3/3 Nodes Ready, Kubernetes v1.34.2")


@pytest.mark.parametrize("dump, message", [
    (kube_dump(kube_node("cp", control_plane=True), version=None),
     "no cluster: kubeadm-config does not exist (kubeadm init did not run)"),
    (kube_dump(kube_node("cp", control_plane=True), kube_node("w1"), version="v1.33.6"),
     "kubeadm-config says kubernetesVersion v1.33.6, the inventory v1.34.2"),
    (kube_dump(kube_node("cp", control_plane=True)), "w1: no Node object"),
    (kube_dump(kube_node("cp", control_plane=True), kube_node("w1", ready=False)), "w1: the Node is not Ready"),
    (kube_dump(kube_node("cp"), kube_node("w1")), "cp: the control-plane label is missing"),
    (kube_dump(kube_node("cp", control_plane=True), kube_node("w1", control_plane=True)),
     "w1: the control-plane label is set"),
])
def test_kubernetes_problems_name_what_is_wrong(dump, message):
    problems = sandbox.kubernetes_problems(sandbox.kubesim_cluster(dump), ["cp"], ["w1"], "1.34.2")
    assert message in problems


def test_group_hosts_walks_children_once():
    inventory = {"k8s_cluster": {"children": ["kube_control_plane", "kube_node"]},
                 "kube_control_plane": {"hosts": ["cp"]},
                 "kube_node": {"hosts": ["w"], "children": ["gpu"]}, "gpu": {"hosts": ["g", "w"]}}
    assert sandbox.group_hosts(inventory, "k8s_cluster") == ["cp", "g", "w"]
    assert sandbox.group_hosts(inventory, "kube_node") == ["g", "w"]
    assert sandbox.group_hosts(inventory, "missing") == []


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


def test_run_problems_second_run_changes_in_the_kubernetes_layer_against_the_double():
    layers = [ok("proxmox"), ok("nodes"), {**ok("kubernetes", 3), "target": "test double"}, ok("platform")]
    layers_asked = ("proxmox", "nodes", "kubernetes", "platform")
    assert sandbox.run_problems(run_of(*layers), second=True, layers=layers_asked) == [
        "kubernetes: changed=3 on the second run"]
    assert sandbox.run_problems(run_of(*layers), second=False, layers=layers_asked) == []


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


def test_the_kubernetes_layer_playbooks_pass_the_syntax_check_on_the_sandbox_inventory():
    """What lab.py runs against the test double: the shared kubesim install, then playbooks/kubernetes.yml."""
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check",
                           "-i", "inventories/sandbox", sandbox.KUBESIM_INSTALL, "playbooks/kubernetes.yml"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout + proc.stderr


def yaml_file(path):
    import yaml  # noqa: PLC0415

    return yaml.safe_load((ROOT / path).read_text()) or {}


def test_the_sandbox_runs_kubeadm_against_the_double_without_waiting_for_pods():
    kubernetes = yaml_file("inventories/sandbox/group_vars/k8s_cluster/kubernetes.yml")
    assert "ailab_kubeadm_skip" not in kubernetes  # kubeadm runs (against the double)
    assert kubernetes["cni_wait_ready"] is False  # the double runs no pods
    packages = yaml_file("inventories/sandbox/group_vars/k8s_cluster/kubernetes_packages.yml")
    assert packages["kubernetes_packages_install"] is False  # never installs over the double's files


# The containerd series of the sandbox's images: Debian 12 ships 1.6, Debian 13 1.7 (roles/containerd/vars).
@pytest.mark.parametrize("series", ["1.6", "1.7"])
def test_the_sandbox_keeps_the_distribution_containerd_without_a_warning(series):
    """The sandbox accepts Debian's containerd explicitly (no warning line); the role's own minimum still warns
    a real lab that takes the distribution's 1.x."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("containerd_filter", ROOT / "plugins/filter/containerd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sandbox_vars = yaml_file("inventories/sandbox/group_vars/k8s_cluster/containerd.yml")
    role_minimum = yaml_file("roles/containerd/defaults/main.yml")["containerd_minimum_version"]
    decide = module.containerd_source_decision
    for installed, may_switch in (("", True), ("distro", False)):
        quiet = decide(sandbox_vars["containerd_source"], series, "Debian",
                       sandbox_vars["containerd_minimum_version"], installed, may_switch)
        assert quiet == {"source": "distro", "warning": ""}
    loud = decide(sandbox_vars["containerd_source"], series, "Debian", role_minimum)
    assert loud["source"] == "distro" and "deprecates containerd 1.x" in loud["warning"]
