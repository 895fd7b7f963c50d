"""The gpu_operator role and playbooks/gpu.yml in export mode, from the lab model to the exported files.

One ansible-playbook run renders every variant on its own "control plane" host with its own
ailab_gpu_node_groups and export directory:

- ``timeslice``: two time-sliced groups (RTX 3090 x2 nodes, replicas 4, driver preinstalled on the
  host; L4 with 2 GPUs, replicas 3, renamed to nvidia.com/gpu.shared, driver from the operator);
- ``mig_mixed``: one H200 node with the custom layout 3 x 2g.35gb + 1 x 1g.18gb under the mixed
  strategy, with a registry mirror for every image and an image pull Secret;
- ``mig_single``: one H200 node with the built-in layout all-1g.18gb under the single strategy, its
  driver preinstalled (the only driver of the lab: the operator's driver is off);
- ``empty``: no GPU node group;
- ``bad_profile``, ``bad_layout``, ``bad_replicas``: inventory the filter refuses.

playbooks/gpu.yml itself exports the ``timeslice`` inventory a second time (the two exports must be
byte-identical) and the role runs ``timeslice`` once more in check mode (nothing may be written). Each export costs seconds of module runs: the variants are few
and dense. Every host of the inventory is an SSH host on 127.0.0.1 port 9, where nothing listens: a
task that tried to reach a node would make that host unreachable.
"""

import os
import stat

import pytest
import yaml

from export_check import check_chart_values, check_export, validate_object
from unit.roles.playbook_runner import PYTHON, ROOT, UNREACHABLE, assert_same_files, load_all, reference, run_playbook, shared_run

H200_CUSTOM = [{"profile": "2g.35gb", "count": 3}, {"profile": "1g.18gb", "count": 1}]

VARIANTS = {
    "timeslice": [
        {"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "gpus_per_node": 1, "driver": "host",
         "sharing": {"mode": "time-slicing", "replicas": 4}},
        {"group": "gpu_l4", "gpu_model": "NVIDIA L4", "gpus_per_node": 2,
         "sharing": {"mode": "time-slicing", "replicas": 3, "rename_by_default": True}},
    ],
    "mig_mixed": [
        {"group": "gpu_h200", "gpu_model": "NVIDIA H200", "gpus_per_node": 1,
         "sharing": {"mode": "mig", "mig_strategy": "mixed", "mig_layout": H200_CUSTOM}},
    ],
    "mig_single": [
        {"group": "gpu_h200b", "gpu_model": "NVIDIA H200", "gpus_per_node": 1, "driver": "host",
         "sharing": {"mode": "mig", "mig_strategy": "single", "mig_config": "all-1g.18gb"}},
    ],
    "empty": [],
}
EXTRA = {
    "mig_mixed": {"gpu_operator_image_registry": "harbor.lab.example/proxy/",
                  "gpu_operator_image_pull_secrets": ["lab-registry"]},
}
BAD = {
    # The H200 offers 1g.18gb, 1g.35gb, 2g.35gb, 3g.71gb, 4g.71gb, 7g.141gb (and 1g.18gb+me).
    "bad_profile": ([{"group": "gpu_h200", "gpu_model": "NVIDIA H200", "gpus_per_node": 1,
                      "sharing": {"mode": "mig", "mig_strategy": "mixed",
                                  "mig_layout": [{"profile": "2g.20gb", "count": 3}]}}],
                    "2g.20gb"),
    # 3 x 2g.35gb + 2 x 3g.71gb needs 12 of the 7 compute slices.
    "bad_layout": ([{"group": "gpu_h200", "gpu_model": "NVIDIA H200", "gpus_per_node": 1,
                     "sharing": {"mode": "mig", "mig_strategy": "mixed",
                                 "mig_layout": [{"profile": "2g.35gb", "count": 3}, {"profile": "3g.71gb", "count": 2}]}}],
                   "slices"),
    "bad_replicas": ([{"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "gpus_per_node": 1,
                       "sharing": {"mode": "time-slicing", "replicas": 1}}],
                     "replicas"),
}
# Apply mode with GPU facts that contradict the inventory (an RTX 3090 where the inventory says L4),
# as the facts play of playbooks/gpu.yml would have gathered them: the role stops before anything.
WRONG_GPU = [{"group": "gpu_check", "gpu_model": "NVIDIA L4", "gpus_per_node": 1}]
RTX_FACTS = {"gpu_count": 1, "driver_version": "580.159.04", "cuda_version": "13.0",
             "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3090", "pci_device_id": "0x220410DE",
                       "memory_total_mib": 24576, "mig_mode": {"current": None, "pending": None}, "mig_profiles": []}]}
GPU_GROUPS = {
    "gpu_rtx": ["rtx-1", "rtx-2"],
    "gpu_l4": ["l4-1"],
    "gpu_h200": ["h200-1"],
    "gpu_h200b": ["h200-2"],
    "gpu_check": ["check-1"],
}
CHECK = ["timeslice", "empty"]
GOOD = list(VARIANTS)
RUNNERS = GOOD + list(BAD) + ["wrong_gpu"]
# Nothing listens on port 9 of the loopback address: a connection attempt fails at once.


def build(tmp):
    root = str(tmp)
    runners = {}
    for name in RUNNERS:
        groups = VARIANTS[name] if name in VARIANTS else BAD[name][0] if name in BAD else WRONG_GPU
        runners[name] = dict(UNREACHABLE, ailab_gpu_node_groups=groups, **EXTRA.get(name, {}),
                             ailab_kubernetes_export_dir=f"{root}/{name}")
    # playbooks/gpu.yml runs on kube_control_plane[0]: the timeslice node groups, its own directory.
    runners["cp-playbook"] = dict(UNREACHABLE, ailab_gpu_node_groups=VARIANTS["timeslice"],
                                  ailab_kubernetes_export_dir=f"{root}/playbook")
    # Apply mode for this one (no export directory).
    runners["wrong_gpu"]["ailab_kubernetes_export_dir"] = ""
    gpu_children = {g: {"hosts": {h: dict(UNREACHABLE) for h in hosts}} for g, hosts in GPU_GROUPS.items()}
    gpu_children["gpu_check"]["hosts"]["check-1"]["__gpu_operator_gpu_facts"] = RTX_FACTS
    inventory = {"all": {
        "vars": {"ansible_python_interpreter": PYTHON,
                 # Every host exports: the facts play must end on each of them without contacting it.
                 "ailab_kubernetes_export_dir": f"{root}/unused"},
        "hosts": {"localhost": {"ansible_connection": "local"}},
        "children": {"k8s_cluster": {"children": {
            "kube_control_plane": {"hosts": {"cp-playbook": runners.pop("cp-playbook")}},
            "gpu_runners": {"hosts": runners},
            **gpu_children,
        }}},
    }}

    def plays(suffix, check, hosts="gpu_runners"):
        play = {"name": f"GPU Operator export{suffix}", "hosts": hosts, "gather_facts": False,
                "become": True, "roles": [{"role": "ailab.cluster.gpu_operator"}]}
        if suffix:
            play["vars"] = {"ailab_kubernetes_export_dir": f"{root}/{{{{ inventory_hostname }}}}{suffix}"}
        if check:
            play["check_mode"] = True
        return play

    playbook = [
        {"name": "The GPU layer playbook", "ansible.builtin.import_playbook": str(ROOT / "playbooks" / "gpu.yml")},
        plays("", False),
        plays("-check", True, ":".join(CHECK)),
    ]
    return run_playbook(tmp, playbook, inventory)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp, run = shared_run(tmp_path_factory, "gpu-operator-export", build)
    return tmp, run


def ok(exported):
    """The run, after checking that every good variant succeeded and no host was unreachable."""
    _tmp, run = exported
    for host in GOOD + ["cp-playbook"]:
        assert run.failure(host) is None, f"{host}: {run.failure(host)}\n{run.stdout[-3000:]}"
    for host, stats in run.stats.items():
        assert stats.get("unreachable", 0) == 0, f"{host} was contacted: {stats}"
    return run


def objects(directory):
    found = {}
    for path in sorted(directory.rglob("*.yaml")):
        if path.name.startswith("helm-"):
            continue
        docs = load_all(path)
        assert len(docs) == 1, path
        found[path.relative_to(directory).as_posix()] = docs[0]
    return found


def values(directory):
    releases = yaml.safe_load((directory / "releases.yml").read_text())["releases"]
    assert [(r["namespace"], r["name"]) for r in releases] == [("gpu-operator", "gpu-operator")]
    rel = releases[0]
    assert rel["chart"] == "gpu-operator" and rel["version"] == "v26.7.0"
    assert rel["repo"] == "https://helm.ngc.nvidia.com/nvidia"
    return yaml.safe_load((directory / rel["values_file"]).read_text())


def config_map(directory, name):
    return yaml.safe_load((directory / "gpu-operator" / f"configmap-{name}.yaml").read_text())


def node_labels(directory):
    found = {}
    for path in sorted((directory / "_cluster").glob("node-*.yaml")):
        assert path.name.endswith(".gpu-operator.yaml"), path.name
        node = yaml.safe_load(path.read_text())
        assert set(node) == {"apiVersion", "kind", "metadata"} and set(node["metadata"]) == {"name", "labels"}
        found[node["metadata"]["name"]] = node["metadata"]["labels"]
    return found


# ----------------------------------------------------------------------------------- the whole run
def test_no_node_is_contacted_in_export_mode(exported):
    run = ok(exported)
    for hosts in GPU_GROUPS.values():
        for host in hosts:
            # The facts play ended these hosts before the module ran on them.
            assert run.results("Read the GPUs of the node", host) == []
            assert run.stats[host].get("unreachable", 0) == 0 and run.stats[host]["failures"] == 0


@pytest.mark.parametrize("variant", [v for v in GOOD if v != "empty"])
def test_export_is_valid_against_the_reference(exported, variant):
    ok(exported)
    tmp, _run = exported
    assert check_export(tmp / variant) == []


def test_second_export_is_byte_identical(exported):
    """playbooks/gpu.yml on kube_control_plane[0] exports the timeslice inventory again: the same bytes."""
    ok(exported)
    tmp, _run = exported
    assert_same_files(tmp / "timeslice", tmp / "playbook")


@pytest.mark.parametrize("variant", CHECK)
def test_check_mode_writes_nothing(exported, variant):
    run = ok(exported)
    tmp, _run = exported
    written = [r for r in run.results("Write the values file of the release", variant) if not r.get("skipped")]
    # The export tasks ran in both plays (the second one in check mode) for a variant with GPU groups.
    assert len(written) == (0 if variant == "empty" else 2)
    assert not (tmp / f"{variant}-check").exists()


def test_no_gpu_groups_says_so_and_does_nothing(exported):
    run = ok(exported)
    msgs = [r.get("msg", "") for r in run.results("Report that the lab has no GPU node groups", "empty")]
    assert len(msgs) == 2 and all("the lab has no GPU nodes" in m for m in msgs), msgs
    assert run.skipped("Report that the lab has no GPU node groups", "timeslice")


@pytest.mark.parametrize("variant", list(BAD))
def test_bad_inventory_stops_before_anything_is_exported(exported, variant):
    tmp, run = exported
    message = run.failure(variant)
    assert run.rc != 0
    assert message and "ailab_gpu_node_groups" in message and BAD[variant][1] in message, message
    for suffix in ("", "-again", "-check"):
        assert not (tmp / f"{variant}{suffix}").exists()


def test_gpus_that_contradict_the_inventory_stop_the_apply(exported):
    """Apply mode: lab_gpu_check's problems stop the run before the kubeconfig is even looked at."""
    _tmp, run = exported
    message = run.failure("wrong_gpu")
    assert message and "The inventory does not match the GPUs on the nodes" in message, message
    assert "check-1" in message and "NVIDIA GeForce RTX 3090" in message and "NVIDIA L4" in message
    assert run.results("Find the admin kubeconfig of the cluster", "wrong_gpu") == []
    assert run.stats["wrong_gpu"].get("unreachable", 0) == 0


# ------------------------------------------------------------------------------------ the chart
@pytest.mark.parametrize("variant", [v for v in GOOD if v != "empty"])
def test_values_pass_the_chart_rules(exported, variant):
    ok(exported)
    tmp, _run = exported
    vals = values(tmp / variant)
    assert check_chart_values("gpu-operator", vals) == []
    # templates/validations.yaml of v26.7.0 (reference/gpu-operator/SOURCE.md).
    assert vals.get("clusterPolicy", {}).get("deployCR", True) is True
    assert vals.get("gpuCluster", {}).get("deployCR", False) is False
    assert vals["devicePlugin"]["config"]["create"] is False and vals["migManager"]["config"]["create"] is False
    assert vals["nfd"]["enabled"] is True and vals["cdi"]["enabled"] is True
    # The NFD subchart's values are validated against its values.schema.json.
    assert "node-feature-discovery" in vals
    assert check_chart_values("node-feature-discovery", vals["node-feature-discovery"]) == []


def test_values_render_a_valid_cluster_policy(exported):
    """The ClusterPolicy the chart renders from these values (the parts the role sets) is valid for its CRD."""
    ok(exported)
    tmp, _run = exported
    for variant in ("timeslice", "mig_mixed", "mig_single"):
        vals = values(tmp / variant)
        spec = {
            "operator": {"defaultRuntime": "containerd"},
            "daemonsets": {},
            "driver": {"enabled": vals["driver"]["enabled"], "version": vals["driver"]["version"]},
            "toolkit": {"enabled": True, "env": vals["toolkit"]["env"]},
            "devicePlugin": {"enabled": True, "config": {k: vals["devicePlugin"]["config"][k] for k in ("name", "default")}},
            "dcgm": {"enabled": False},
            "dcgmExporter": {"enabled": vals["dcgmExporter"]["enabled"],
                             "serviceMonitor": {"enabled": vals["dcgmExporter"]["serviceMonitor"]["enabled"]}},
            "gfd": {"enabled": True},
            "migManager": {"enabled": True, "config": {k: vals["migManager"]["config"][k] for k in ("name", "default")}},
            "mig": {"strategy": vals["mig"]["strategy"]},
            "nodeStatusExporter": {"enabled": False},
        }
        policy = {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "cluster-policy"}, "spec": spec}
        assert validate_object(policy) == [], variant


def test_namespace_is_privileged(exported):
    ok(exported)
    tmp, _run = exported
    ns = yaml.safe_load((tmp / "timeslice" / "_cluster" / "namespace-gpu-operator.yaml").read_text())
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_values_file_is_private(exported):
    ok(exported)
    tmp, _run = exported
    mode = stat.S_IMODE((tmp / "timeslice" / "gpu-operator" / "helm-gpu-operator-values.yaml").stat().st_mode)
    assert mode & 0o077 == 0


def repositories(node, path=""):
    """Every (path, repository) of the chart values, recursively."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "repository" and isinstance(value, str):
                found.append((path, value))
            else:
                found += repositories(value, f"{path}.{key}" if path else key)
    return found


def test_every_image_comes_from_the_lab_registry(exported):
    """With gpu_operator_image_registry set, no image of the chart (its defaults merged with the role's
    values, NFD included) is pulled from nvcr.io or registry.k8s.io."""
    ok(exported)
    tmp, _run = exported
    from export_check import deep_merge
    chart = yaml.safe_load(reference("gpu-operator/values.yaml").read_text())
    nfd = yaml.safe_load(reference("gpu-operator/charts/node-feature-discovery/values.yaml").read_text())
    vals = values(tmp / "mig_mixed")
    merged = deep_merge(chart, vals)
    merged["node-feature-discovery"] = deep_merge(nfd, vals["node-feature-discovery"])
    repos = [(p, r) for p, r in repositories(merged) if r]
    assert len(repos) >= 20
    wrong = [(p, r) for p, r in repos if not r.startswith("harbor.lab.example/proxy/")]
    assert wrong == []
    # The upstream path after the registry host is kept, e.g. nvcr.io/nvidia/k8s -> <mirror>/nvidia/k8s.
    assert vals["toolkit"]["repository"] == "harbor.lab.example/proxy/nvidia/k8s"
    assert vals["node-feature-discovery"]["image"]["repository"] == "harbor.lab.example/proxy/nfd/node-feature-discovery"
    assert vals["driver"]["imagePullSecrets"] == ["lab-registry"]
    assert vals["node-feature-discovery"]["imagePullSecrets"] == [{"name": "lab-registry"}]
    # Without a mirror the images come from upstream.
    default = values(tmp / "timeslice")
    assert default["toolkit"]["repository"] == "nvcr.io/nvidia/k8s"
    assert default["node-feature-discovery"]["image"]["repository"] == "registry.k8s.io/nfd/node-feature-discovery"


def test_toolkit_writes_a_containerd_drop_in(exported):
    ok(exported)
    tmp, _run = exported
    env = {e["name"]: e["value"] for e in values(tmp / "timeslice")["toolkit"]["env"]}
    assert env == {
        "CONTAINERD_CONFIG": "/etc/containerd/config.toml",
        "CONTAINERD_SOCKET": "/run/containerd/containerd.sock",
        "RUNTIME_CONFIG_SOURCE": "file=/etc/containerd/config.toml",
        # roles/containerd imports /etc/containerd/conf.d/*.toml (containerd_dropin_dir).
        "RUNTIME_DROP_IN_CONFIG": "/etc/containerd/conf.d/99-nvidia.toml",
    }


def test_dcgm_exporter_is_on_and_its_service_monitor_off(exported):
    ok(exported)
    tmp, _run = exported
    vals = values(tmp / "timeslice")
    assert vals["dcgmExporter"]["enabled"] is True
    assert vals["dcgmExporter"]["serviceMonitor"]["enabled"] is False


# ------------------------------------------------------------------------------- time-slicing
def test_time_slicing_config_map(exported):
    ok(exported)
    tmp, _run = exported
    vals = values(tmp / "timeslice")
    cm = config_map(tmp / "timeslice", vals["devicePlugin"]["config"]["name"])
    assert cm["metadata"]["namespace"] == "gpu-operator"
    assert vals["devicePlugin"]["config"]["default"] in cm["data"]
    configs = {key: yaml.safe_load(text) for key, text in cm["data"].items()}
    assert set(configs) >= {"gpu_rtx", "gpu_l4"}
    for key, config in configs.items():
        # Format rules of k8s-device-plugin v0.20.0 (reference/gpu-operator/SOURCE.md).
        assert config["version"] == "v1", key
        assert set(config) <= {"version", "flags", "sharing"}, key
        if "sharing" in config:
            assert set(config["sharing"]) == {"timeSlicing"}
            resources = config["sharing"]["timeSlicing"]["resources"]
            assert resources and all(r["name"] == "nvidia.com/gpu" and r["replicas"] >= 2 for r in resources)
    assert configs["gpu_rtx"]["sharing"]["timeSlicing"]["resources"][0]["replicas"] == 4
    assert configs["gpu_l4"]["sharing"]["timeSlicing"]["renameByDefault"] is True
    assert vals["mig"]["strategy"] == "none"


def test_time_slicing_node_labels(exported):
    ok(exported)
    tmp, _run = exported
    labels = node_labels(tmp / "timeslice")
    assert set(labels) == {"rtx-1", "rtx-2", "l4-1"}
    data = config_map(tmp / "timeslice", values(tmp / "timeslice")["devicePlugin"]["config"]["name"])["data"]
    for node, group in (("rtx-1", "gpu_rtx"), ("rtx-2", "gpu_rtx"), ("l4-1", "gpu_l4")):
        assert labels[node]["ailab.cluster/gpu-group"] == group
        assert labels[node]["nvidia.com/device-plugin.config"] in data
        assert "nvidia.com/mig.config" not in labels[node]


# ---------------------------------------------------------------------------------------- MIG
def mig_configs(directory):
    vals = values(directory)
    name = vals["migManager"]["config"]["name"]
    cm = config_map(directory, name)
    assert set(cm["data"]) == {"config.yaml"}
    return vals, yaml.safe_load(cm["data"]["config.yaml"])


def check_mig_parted_format(config):
    """The mig-parted v0.15.0 config rules (reference/mig-parted/SOURCE.md)."""
    assert set(config) == {"version", "mig-configs"} and config["version"] == "v1"
    assert config["mig-configs"]
    for name, entries in config["mig-configs"].items():
        assert isinstance(entries, list) and entries, name
        for entry in entries:
            assert set(entry) <= {"device-filter", "devices", "mig-enabled", "mig-devices"}, name
            assert entry["devices"] == "all" or all(isinstance(i, int) for i in entry["devices"])
            assert isinstance(entry["mig-enabled"], bool)
            if entry["mig-enabled"]:
                devices = entry.get("mig-devices")
                assert isinstance(devices, dict)
                assert all(isinstance(c, int) and c >= 0 for c in devices.values())
                assert not devices or any(c > 0 for c in devices.values())
            else:
                assert not entry.get("mig-devices")


def test_custom_mig_layout_under_mixed_strategy(exported):
    ok(exported)
    tmp, _run = exported
    vals, config = mig_configs(tmp / "mig_mixed")
    check_mig_parted_format(config)
    assert vals["mig"]["strategy"] == "mixed"
    assert vals["migManager"]["config"]["default"] == "all-disabled"
    labels = node_labels(tmp / "mig_mixed")
    assert set(labels) == {"h200-1"}
    layout = labels["h200-1"]["nvidia.com/mig.config"]
    assert labels["h200-1"]["ailab.cluster/gpu-group"] == "gpu_h200"
    assert "all-disabled" in config["mig-configs"]
    entries = config["mig-configs"][layout]
    assert [e["mig-devices"] for e in entries if e["mig-enabled"]] == [{"1g.18gb": 1, "2g.35gb": 3}]


def test_built_in_mig_layout_under_single_strategy(exported):
    ok(exported)
    tmp, _run = exported
    vals = values(tmp / "mig_single")
    assert vals["mig"]["strategy"] == "single"
    # A stock layout needs no ConfigMap: MIG manager generates all-1g.18gb from the H200 itself.
    assert vals["migManager"]["config"]["name"] == ""
    assert not list((tmp / "mig_single").rglob("configmap-*.yaml"))
    labels = node_labels(tmp / "mig_single")
    assert labels == {"h200-2": {"ailab.cluster/gpu-group": "gpu_h200b", "nvidia.com/mig.config": "all-1g.18gb",
                                 "nvidia.com/gpu.deploy.driver": "false"}}
    stock = yaml.safe_load(yaml.safe_load(reference("gpu-operator/assets/state-mig-manager/0400_configmap.yaml")
                                          .read_text())["data"]["config.yaml"])
    h200 = [e for e in stock["mig-configs"]["all-1g.18gb"]
            if "0x233510DE" in (e.get("device-filter") or ["0x233510DE"])]
    assert h200 and h200[0]["mig-devices"] == {"1g.18gb": 7}


# ------------------------------------------------------------------------------------- drivers
def test_host_driver_nodes_are_excluded_from_the_driver_daemonset(exported):
    """driver.enabled is global in the chart; per node the operator's driver DaemonSet selects
    nvidia.com/gpu.deploy.driver=true, so the host-driver nodes are labelled false."""
    ok(exported)
    tmp, _run = exported
    assert values(tmp / "timeslice")["driver"]["enabled"] is True
    labels = node_labels(tmp / "timeslice")
    assert labels["rtx-1"]["nvidia.com/gpu.deploy.driver"] == "false"
    assert labels["rtx-2"]["nvidia.com/gpu.deploy.driver"] == "false"
    assert "nvidia.com/gpu.deploy.driver" not in labels["l4-1"]
    assert values(tmp / "mig_mixed")["driver"]["enabled"] is True


def test_only_host_drivers_turn_the_driver_off(exported):
    ok(exported)
    tmp, _run = exported
    assert values(tmp / "mig_single")["driver"]["enabled"] is False


def test_reference_data_is_there():
    """Guards the skips above: without the reference folder the export checks would validate nothing."""
    assert os.path.isdir(reference("gpu-operator"))
