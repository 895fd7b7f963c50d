"""kubeadm_control_plane renders the kubeadm configuration and the kube-vip static pod.

The role's real preflight and configure tasks run on local-connection hosts (no kubeadm here, so
the template's `kubeadm config validate` is skipped, as the role does when kubeadm is missing).
Without a published schema for kubeadm.k8s.io/v1beta4 (see reference/kubeadm/SOURCE.md), the
documents are checked against the v1beta4 facts listed there; the kube-vip Pod is validated
strictly with kubernetes-validate for the pinned Kubernetes minor.
"""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from unit.roles.playbook_runner import K8S_MINOR, ROOT, load_all, local_inventory, run_playbook, shared_run

ROLE = "ailab.cluster.kubeadm_control_plane"
TAGS = "kubeadm_control_plane_preflight,kubeadm_control_plane_configure"
CONTAINERD = "unix:///run/containerd/containerd.sock"
CRI_DOCKERD = "unix:///var/run/cri-dockerd.sock"


SCENARIOS = "single_cp:ha_cp:bad_cp:novip_cp"
HA_VARS = {"kubeadm_control_plane_vip": "10.10.0.10", "kubeadm_control_plane_vip_interface": "ens18"}
# One host per kind of bad input: each must stop in preflight with its own message.
BAD_INPUT = {
    # Caught by the role argument spec (type list) before the preflight assert.
    "b1": ({"kubeadm_control_plane_apiserver_extra_args": {"audit-log-maxage": "30"}}, "kubeadm_control_plane_apiserver_extra_args"),
    "b2": ({"kubeadm_control_plane_ignore_preflight_errors": ["all"]}, "never 'all'"),
    "b3": ({"kubeadm_control_plane_kubelet_config": {"cgroupDriver": "cgroupfs"}}, "cgroupDriver"),
    "b4": ({"kubeadm_control_plane_pod_subnet": "10.244.0.0"}, "pod_subnet"),
    "b5": ({"kubeadm_control_plane_node_name": "GPU_Node"}, "node_name"),
    "b6": ({"kubeadm_control_plane_kubelet_config": {"cpuManagerPolicy": "static"}},
           "cpuManagerPolicy static needs CPUs kept for the system"),
    "b7": ({"kubeadm_control_plane_pod_subnet": "10.96.0.0/16"}, "overlaps the service network 10.96.0.0/12"),
    "b8": ({"kubeadm_control_plane_pod_subnet": "10.10.0.0/16"}, "(10.10.0.11) lies in the pod network 10.10.0.0/16"),
    "b9": ({"kubeadm_control_plane_pod_subnet": "10.244.0.0/28"}, "smaller than one node's range /24"),
    # The documented example that logged nothing: an audit log path without a policy or volumes.
    "b10": ({"kubeadm_control_plane_apiserver_extra_args": [{"name": "audit-log-path", "value": "/var/log/kubernetes/audit.log"}]},
            "Set kubeadm_control_plane_audit_log: true instead"),
}
# The valid first control plane of the bad_cp cluster, also in kube_node (a one-node lab running workloads).
SCHEDULABLE = "b0"
JOIN_SECRETS = {
    "_kubeadm_control_plane_join_endpoint": "10.10.0.10:6443",
    "_kubeadm_control_plane_join_token": "abcdef.0123456789abcdef",
    "_kubeadm_control_plane_join_ca_cert_hash": "sha256:" + "a" * 64,
    "_kubeadm_control_plane_join_certificate_key": "b" * 64,
}
KUBEADM_OUTPUT = ("kubeadm join 10.10.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:"
                  + "c" * 64 + " --control-plane --certificate-key " + "d" * 64)


def node_vars(tmp_path, host, address):
    return {
        "node_prep_address": address,
        "kubeadm_control_plane_config_path": str(tmp_path / host / "kubeadm-config.yaml"),
        "kubeadm_control_plane_manifests_dir": str(tmp_path / host / "manifests"),
        "kubeadm_control_plane_audit_policy_path": str(tmp_path / host / "audit" / "policy.yaml"),
        "kubeadm_control_plane_audit_log_dir": str(tmp_path / host / "audit-log"),
    }


def scenarios_inventory(tmp):
    """Four clusters in one inventory, each group naming itself as the control-plane group: single
    node (containerd), HA with kube-vip and cri-dockerd, bad input, HA without a VIP."""
    hosts = {"s1": "10.10.0.11", "h1": "10.10.1.11", "h2": "10.10.1.12", "h3": "10.10.1.13",
             SCHEDULABLE: "10.10.2.10", "n1": "10.10.3.11", "n2": "10.10.3.12", "n3": "10.10.3.13"}
    hosts.update({h: f"10.10.2.{20 + i}" for i, h in enumerate(BAD_INPUT)})
    host_vars = {h: node_vars(tmp, h, a) for h, a in hosts.items()}
    for host, (bad, _msg) in BAD_INPUT.items():
        host_vars[host].update(bad)
    return local_inventory(
        {"single_cp": ["s1"], "ha_cp": ["h1", "h2", "h3"], "bad_cp": [SCHEDULABLE, *BAD_INPUT],
         "novip_cp": ["n1", "n2", "n3"], "kube_node": [SCHEDULABLE]},
        host_vars=host_vars,
        group_vars={
            "single_cp": {"kubeadm_control_plane_group": "single_cp"},
            "ha_cp": dict(HA_VARS, **{
                "kubeadm_control_plane_group": "ha_cp",
                "kubeadm_control_plane_cert_sans": ["k8s-api.lab.example"],
                "kubeadm_control_plane_cri_socket": CRI_DOCKERD,
                "kubeadm_control_plane_apiserver_extra_args": [{"name": "profiling", "value": "false"}],
                "kubeadm_control_plane_audit_log": True,
                "kubeadm_control_plane_audit_log_maxage": 14,
                "kubeadm_control_plane_kubelet_config": {"maxPods": 150},
                "kubeadm_control_plane_kube_proxy_config": {"mode": "ipvs"},
                "kubeadm_control_plane_ignore_preflight_errors": ["NumCPU"],
            }),
            "bad_cp": dict(HA_VARS, kubeadm_control_plane_group="bad_cp"),
            "novip_cp": {"kubeadm_control_plane_group": "novip_cp"},
        })


def plays(tmp):
    """The role on every scenario, then the control-plane join template and the output redaction of
    the role, rendered with its defaults and vars for h2 (secrets are placeholders)."""
    template = ROOT / "roles" / "kubeadm_control_plane" / "templates" / "kubeadm-join.yaml.j2"
    return [
        {"name": "Render", "hosts": SCENARIOS, "gather_facts": False, "roles": [{"role": ROLE}]},
        {"name": "Join template", "hosts": "ha_cp", "gather_facts": False, "tags": ["always"], "tasks": [
            {"name": "Load the role's defaults and vars", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "preflight.yml"}},
            {"name": "Render the join configuration", "vars": JOIN_SECRETS,
             "ansible.builtin.template": {"src": str(template), "dest": str(tmp / "h2" / "join.yaml"), "mode": "0600"},
             "when": "inventory_hostname == 'h2'"},
            {"name": "Redact kubeadm output", "vars": {"out": KUBEADM_OUTPUT}, "ansible.builtin.debug": {"msg": (
                "{{ out | regex_replace(_kubeadm_control_plane_token_pattern, '<token>')"
                " | regex_replace(_kubeadm_control_plane_key_pattern, '<certificate-key>') }}")},
             "when": "inventory_hostname == 'h2'"},
        ]},
    ]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return shared_run(tmp_path_factory, "kubeadm-render",
                      lambda tmp: run_playbook(tmp, plays(tmp), scenarios_inventory(tmp), "--tags", TAGS))


@pytest.fixture(scope="module")
def single(rendered):
    tmp, run = rendered
    assert run.stats["s1"]["failures"] == 0, run.failure("s1")
    return tmp, run


@pytest.fixture(scope="module")
def ha(rendered):
    tmp, run = rendered
    for host in ("h1", "h2", "h3"):
        assert run.stats[host]["failures"] == 0, run.failure(host)
    return tmp, run


def by_kind(docs):
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), f"one document per kind expected, got {kinds}"
    return {d["kind"]: d for d in docs}


def assert_v1beta4_shapes(cfg):
    """The v1beta4 facts of reference/kubeadm/SOURCE.md that hold for every rendered file."""
    assert cfg["InitConfiguration"]["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cfg["ClusterConfiguration"]["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cfg["KubeletConfiguration"]["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    if "KubeProxyConfiguration" in cfg:
        assert cfg["KubeProxyConfiguration"]["apiVersion"] == "kubeproxy.config.k8s.io/v1alpha1"
    cluster = cfg["ClusterConfiguration"]
    arg_lists = [cluster["apiServer"]["extraArgs"], cluster["controllerManager"]["extraArgs"],
                 cluster["scheduler"]["extraArgs"], cluster["etcd"]["local"]["extraArgs"],
                 cfg["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]]
    for args in arg_lists:
        assert isinstance(args, list), f"v1beta4 extraArgs are lists of {{name, value}}, got {args!r}"
        for arg in args:
            assert set(arg) == {"name", "value"} and all(isinstance(v, str) for v in arg.values()), arg
    # Only fields v1beta4's APIServer has (timeoutForControlPlane was v1beta3's; timeouts moved to InitConfiguration).
    assert set(cluster["apiServer"]) <= {"certSANs", "extraArgs", "extraVolumes", "extraEnvs"}, sorted(cluster["apiServer"])
    assert cfg["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    # Only v1beta4 InitConfiguration fields, and neither certificateKey (the key is uploaded at join time) nor dryRun.
    assert set(cfg["InitConfiguration"]) <= {"apiVersion", "kind", "bootstrapTokens", "nodeRegistration", "localAPIEndpoint",
                                             "skipPhases", "patches", "timeouts"}, sorted(cfg["InitConfiguration"])
    tokens = cfg["InitConfiguration"]["bootstrapTokens"]
    assert all("token" not in t for t in tokens), "no fixed bootstrap token in the file"


def test_single_node_containerd(single):
    tmp, _run = single
    cfg = by_kind(load_all(tmp / "s1" / "kubeadm-config.yaml"))
    assert set(cfg) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"}
    assert_v1beta4_shapes(cfg)
    init, cluster = cfg["InitConfiguration"], cfg["ClusterConfiguration"]
    assert init["nodeRegistration"]["criSocket"] == CONTAINERD
    assert init["nodeRegistration"]["name"] == "s1"
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.10.0.11", "bindPort": 6443}
    assert init["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.10.0.11"}]
    assert init["nodeRegistration"]["ignorePreflightErrors"] == []
    # Not in kube_node: kubeadm's control-plane taint stays.
    assert init["nodeRegistration"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    # The version agrees with kubernetes_packages (1.34.x) and is pinned to a patch release.
    assert cluster["kubernetesVersion"].startswith("v1.34.")
    # Flannel's default network; cni_pod_cidr follows this value (test_cni checks the other side).
    assert cluster["networking"]["podSubnet"] == "10.244.0.0/16"
    assert cluster["networking"]["serviceSubnet"] == "10.96.0.0/12"
    assert cluster["controlPlaneEndpoint"] == "10.10.0.11:6443"
    # No VIP: no kube-vip static pod.
    assert not (tmp / "s1" / "manifests" / "kube-vip.yaml").exists()
    assert oct((tmp / "s1" / "kubeadm-config.yaml").stat().st_mode & 0o777) == "0o600"


def test_join_configuration_carries_the_secrets_in_a_private_file(ha):
    tmp, _run = ha
    dest = tmp / "h2" / "join.yaml"
    docs = load_all(dest)
    assert [d["kind"] for d in docs] == ["JoinConfiguration"]
    join = docs[0]
    assert join["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert join["controlPlane"]["certificateKey"] == "b" * 64
    assert join["controlPlane"]["localAPIEndpoint"] == {"advertiseAddress": "10.10.1.12", "bindPort": 6443}
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.10.0.10:6443"
    assert join["discovery"]["bootstrapToken"]["caCertHashes"] == ["sha256:" + "a" * 64]
    assert join["nodeRegistration"]["criSocket"] == CRI_DOCKERD
    assert join["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.10.1.12"}]
    assert oct(dest.stat().st_mode & 0o777) == "0o600"


def test_kubeadm_output_is_shown_with_secrets_replaced(ha):
    _tmp, run = ha
    msg = run.results("Redact kubeadm output", "h2")[0]["msg"]
    assert "abcdef.0123456789abcdef" not in msg and "d" * 64 not in msg
    assert "<token>" in msg and "--certificate-key <certificate-key>" in msg
    assert "sha256:" + "c" * 64 in msg  # the CA hash is public and stays readable


@pytest.mark.parametrize("host", list(BAD_INPUT))
def test_preflight_rejects_bad_input(rendered, host):
    tmp, run = rendered
    message = BAD_INPUT[host][1]
    assert message in (run.failure(host) or ""), run.failure(host)
    assert not (tmp / host / "manifests" / "kube-vip.yaml").exists(), "nothing is written when preflight fails"


def test_control_plane_that_is_also_a_worker_has_no_control_plane_taint(rendered):
    tmp, run = rendered
    assert run.stats[SCHEDULABLE]["failures"] == 0, run.failure(SCHEDULABLE)
    cfg = by_kind(load_all(tmp / SCHEDULABLE / "kubeadm-config.yaml"))
    assert cfg["InitConfiguration"]["nodeRegistration"]["taints"] == []


@pytest.mark.parametrize("host", ["n1", "n2", "n3"])
def test_ha_without_vip_or_endpoint_is_refused(rendered, host):
    tmp, run = rendered
    assert "need a shared endpoint" in (run.failure(host) or ""), run.failure(host)
    assert not (tmp / host / "kubeadm-config.yaml").exists()


def test_ha_first_control_plane(ha):
    tmp, _run = ha
    cfg = by_kind(load_all(tmp / "h1" / "kubeadm-config.yaml"))
    assert set(cfg) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"}
    assert_v1beta4_shapes(cfg)
    init, cluster = cfg["InitConfiguration"], cfg["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "10.10.0.10:6443"
    assert {"10.10.0.10", "k8s-api.lab.example"} <= set(cluster["apiServer"]["certSANs"])
    assert init["nodeRegistration"]["criSocket"] == CRI_DOCKERD
    policy_path = str(tmp / "h1" / "audit" / "policy.yaml")
    log_dir = str(tmp / "h1" / "audit-log")
    assert cluster["apiServer"]["extraArgs"] == [
        {"name": "audit-policy-file", "value": policy_path},
        {"name": "audit-log-path", "value": log_dir + "/audit.log"},
        {"name": "audit-log-maxage", "value": "14"},
        {"name": "audit-log-maxbackup", "value": "10"},
        {"name": "audit-log-maxsize", "value": "100"},
        {"name": "profiling", "value": "false"},
    ]
    # The policy and the log directory reach the kube-apiserver static pod (v1beta4 HostPathMount).
    assert cluster["apiServer"]["extraVolumes"] == [
        {"name": "audit-policy", "hostPath": policy_path, "mountPath": policy_path, "readOnly": True, "pathType": "File"},
        {"name": "audit-log", "hostPath": log_dir, "mountPath": log_dir, "readOnly": False, "pathType": "DirectoryOrCreate"},
    ]
    assert cfg["KubeletConfiguration"]["maxPods"] == 150
    assert cfg["KubeProxyConfiguration"]["mode"] == "ipvs"
    assert init["nodeRegistration"]["ignorePreflightErrors"] == ["NumCPU"]


@pytest.mark.parametrize("host", ["h1", "h2", "h3"])
def test_ha_audit_policy_on_every_control_plane(ha, host):
    tmp, _run = ha
    policy_file = tmp / host / "audit" / "policy.yaml"
    policy = load_all(policy_file)
    assert len(policy) == 1 and policy[0]["apiVersion"] == "audit.k8s.io/v1" and policy[0]["kind"] == "Policy"
    assert policy[0]["omitStages"] == ["RequestReceived"]
    levels = [r["level"] for r in policy[0]["rules"]]
    assert levels[-1] == "Request" and set(levels) <= {"None", "Metadata", "Request", "RequestResponse"}
    # Secrets are logged without their content, and before the rule that drops other reads.
    secrets = next(i for i, r in enumerate(policy[0]["rules"])
                   if any("secrets" in g.get("resources", []) for g in r.get("resources", [])))
    assert policy[0]["rules"][secrets]["level"] == "Metadata"
    assert secrets < levels.index("None", 2)
    assert oct(policy_file.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp / host / "audit-log").stat().st_mode & 0o777) == "0o700"


def test_no_audit_log_by_default(single):
    tmp, _run = single
    cluster = by_kind(load_all(tmp / "s1" / "kubeadm-config.yaml"))["ClusterConfiguration"]
    assert cluster["apiServer"]["extraArgs"] == [] and "extraVolumes" not in cluster["apiServer"]
    assert not (tmp / "s1" / "audit").exists()


def test_ha_only_the_first_control_plane_gets_an_init_configuration(ha):
    tmp, _run = ha
    assert not (tmp / "h2" / "kubeadm-config.yaml").exists()
    assert not (tmp / "h3" / "kubeadm-config.yaml").exists()


@pytest.mark.parametrize("host", ["h1", "h2", "h3"])
def test_ha_kube_vip_static_pod(ha, host):
    tmp, _run = ha
    pods = load_all(tmp / host / "manifests" / "kube-vip.yaml")
    assert len(pods) == 1
    pod = pods[0]
    kubernetes_validate.validate(pod, K8S_MINOR, strict=True)
    container = pod["spec"]["containers"][0]
    image, tag = container["image"].rsplit(":", 1)
    assert image == "ghcr.io/kube-vip/kube-vip" and tag not in ("latest", "") and tag.startswith("v")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["vip_arp"] == "true"
    assert env["address"] == "10.10.0.10"
    assert env["vip_interface"] == "ens18"
    assert env["cp_enable"] == "true"
    assert env["svc_enable"] == "false"
    assert pod["spec"]["hostNetwork"] is True
    kubeconfig = pod["spec"]["volumes"][0]["hostPath"]["path"]
    # Kubernetes >= 1.29: only super-admin.conf has rights while kubeadm init bootstraps the first node.
    expected = "/etc/kubernetes/super-admin.conf" if host == "h1" else "/etc/kubernetes/admin.conf"
    assert kubeconfig == expected


def _tasks(path):
    def walk(tasks):
        for task in tasks or []:
            yield task
            for key in ("block", "rescue", "always"):
                yield from walk(task.get(key))

    return list(walk(yaml.safe_load(Path(path).read_text())))


@pytest.mark.parametrize("role,taskfile", [
    ("kubeadm_control_plane", "init.yml"),
    ("kubeadm_control_plane", "join.yml"),
    ("kubeadm_worker", "join.yml"),
])
def test_tasks_that_touch_secrets_are_no_log(role, taskfile):
    """Every task that runs kubeadm init/join or sees a token or certificate key hides its result."""
    secret_words = ("certificate_key", "_token.token", "kubeadm', 'init'", "[kubeadm, join", "kubeadm-join.yaml.j2",
                    "ailab.cluster.kubeadm_token")
    checked = 0
    for task in _tasks(ROOT / "roles" / role / "tasks" / taskfile):
        if "block" in task:
            continue
        text = yaml.safe_dump(task)
        module_args = {k: v for k, v in task.items() if k.startswith("ansible.builtin.") or k.startswith("ailab.")}
        flat = repr(module_args) + text
        if any(word in flat for word in secret_words) and "state: absent" not in text and "debug" not in text:
            checked += 1
            assert task.get("no_log") is True, f"{role}/{taskfile}: task {task.get('name')!r} must be no_log"
    assert checked >= 1
