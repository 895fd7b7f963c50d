"""The cni role in export mode: Flannel and Weave Net manifests compared with the upstream files
(reference/flannel, reference/weave-net) and validated strictly with kubernetes-validate.

One ansible-playbook run renders the variants on local hosts, each with its own export directory:
Flannel defaults, Flannel with a registry mirror and a host-gw backend, Weave Net with an encryption
password, and Flannel in a lab whose first control plane has a node address (the interface choice).
"""

import json

import kubernetes_validate
import pytest
import yaml
from export_check import check_export

from unit.roles.playbook_runner import K8S_MINOR, load_all, local_inventory, reference, run_playbook, shared_run

VARIANTS = {
    "flannel": {},
    "flannel_mirror": {"cni_image_registry": "harbor.lab.example/proxy/", "cni_flannel_backend": "host-gw",
                       "cni_pod_cidr": "10.200.0.0/16", "cni_flannel_iface": ["ens19"]},
    "weave": {"cni_plugin": "weave", "cni_weave_password": "s3cret-lab-password", "cni_weave_mtu": 1400},
    # First control plane of the group cni_cp (below), with a node address on a second NIC.
    "flannel_nodenet": {"cni_control_plane_group": "cni_cp"},
    "flannel_regex": {"cni_control_plane_group": "cni_cp", "cni_flannel_iface_regex": ["^10\\.10\\.0\\."]},
    "flannel_default_route": {"cni_control_plane_group": "cni_cp", "cni_flannel_iface_can_reach": ""},
}
# The first control plane of cni_cp: kubelet's node-ip is node_prep_address.
FIRST_CP = {"cp1": {"node_prep_address": "10.10.0.11"}}


def flannel_args(tmp, variant):
    ds = objects(tmp / variant)[("DaemonSet", "kube-flannel", "kube-flannel-ds")]
    return ds["spec"]["template"]["spec"]["containers"][0]["args"]


def build(tmp):
    host_vars = {name: dict(v, ailab_kubernetes_export_dir=str(tmp / name)) for name, v in VARIANTS.items()}
    host_vars.update(FIRST_CP)
    inventory = local_inventory({"cni_hosts": list(VARIANTS), "cni_cp": list(FIRST_CP)}, host_vars=host_vars)
    plays = [{"name": "CNI export", "hosts": "cni_hosts", "gather_facts": False, "roles": [{"role": "ailab.cluster.cni"}]}]
    return run_playbook(tmp, plays, inventory)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp, run = shared_run(tmp_path_factory, "cni-export", build)
    assert run.rc == 0, run.stdout[-3000:]
    return tmp, run


def objects(directory):
    found = {}
    for path in sorted(directory.rglob("*.yaml")):
        docs = load_all(path)
        assert len(docs) == 1, path
        obj = docs[0]
        ns = obj["metadata"].get("namespace", "_cluster")
        assert path.relative_to(directory).as_posix() == f"{ns}/{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        found[(obj["kind"], ns, obj["metadata"]["name"])] = obj
    return found


def images(obj):
    spec = obj["spec"]["template"]["spec"]
    return [c["image"] for c in spec.get("initContainers", []) + spec["containers"]]


def upstream_flannel():
    docs = load_all(reference("flannel/Documentation/kube-flannel.yml"))
    return {(d["kind"], d["metadata"].get("namespace", "_cluster"), d["metadata"]["name"]): d for d in docs}


def upstream_weave():
    items = yaml.safe_load(reference("weave-net/weave-daemonset-k8s-1.11.yaml").read_text())["items"]
    return {(d["kind"], d["metadata"].get("namespace", "_cluster"), d["metadata"]["name"]): d for d in items}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_exported_object_is_valid_for_the_pinned_kubernetes(exported, variant):
    tmp, _run = exported
    found = objects(tmp / variant)
    assert found
    for obj in found.values():
        kubernetes_validate.validate(obj, K8S_MINOR, strict=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_export_check_accepts_every_variant(exported, variant):
    tmp, _run = exported
    assert check_export(tmp / variant) == []


def test_flannel_matches_upstream(exported):
    tmp, _run = exported
    ours, theirs = objects(tmp / "flannel"), upstream_flannel()
    assert set(ours) == set(theirs)
    ns = ours[("Namespace", "_cluster", "kube-flannel")]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    ds_key = ("DaemonSet", "kube-flannel", "kube-flannel-ds")
    assert images(ours[ds_key]) == images(theirs[ds_key])
    # Apart from the rendered values the objects are the upstream ones.
    for key, upstream in theirs.items():
        if key[0] != "ConfigMap":
            assert ours[key] == upstream, key
    cm_key = ("ConfigMap", "kube-flannel", "kube-flannel-cfg")
    assert json.loads(ours[cm_key]["data"]["cni-conf.json"]) == json.loads(theirs[cm_key]["data"]["cni-conf.json"])
    assert json.loads(ours[cm_key]["data"]["net-conf.json"]) == json.loads(theirs[cm_key]["data"]["net-conf.json"])


def test_flannel_network_is_the_kubeadm_pod_subnet(exported):
    tmp, _run = exported
    net_conf = json.loads(objects(tmp / "flannel")[("ConfigMap", "kube-flannel", "kube-flannel-cfg")]["data"]["net-conf.json"])
    # kubeadm_control_plane_pod_subnet's default, which cni_pod_cidr follows.
    assert net_conf["Network"] == "10.244.0.0/16"
    assert net_conf["Backend"]["Type"] == "vxlan"


def test_flannel_registry_override_backend_and_iface(exported):
    tmp, _run = exported
    ours = objects(tmp / "flannel_mirror")
    upstream_ds = upstream_flannel()[("DaemonSet", "kube-flannel", "kube-flannel-ds")]
    ds = ours[("DaemonSet", "kube-flannel", "kube-flannel-ds")]
    expected = [i.replace("ghcr.io/", "harbor.lab.example/proxy/") for i in images(upstream_ds)]
    assert images(ds) == expected
    # An interface named in the inventory replaces the automatic --iface; the route check stays as a
    # fallback only if a first control plane address is known (none here).
    assert [a for a in ds["spec"]["template"]["spec"]["containers"][0]["args"] if a.startswith("--iface")] == ["--iface=ens19"]
    net_conf = json.loads(ours[("ConfigMap", "kube-flannel", "kube-flannel-cfg")]["data"]["net-conf.json"])
    assert net_conf["Network"] == "10.200.0.0/16"
    assert net_conf["Backend"] == {"Type": "host-gw"}


def test_flannel_uses_the_node_network_of_the_first_control_plane(exported):
    """kubelet's node-ip is node_prep_address; Flannel must use the interface of that network, not the
    default route's: the first control plane holds the address (--iface=<address>), every other node
    picks the interface of its route to it (--iface-can-reach; flanneld tries --iface first)."""
    tmp, _run = exported
    args = flannel_args(tmp, "flannel_nodenet")
    assert [a for a in args if a.startswith("--iface")] == ["--iface=10.10.0.11", "--iface-can-reach=10.10.0.11"]
    assert args[:3] == ["--ip-masq", "--kube-subnet-mgr", "--healthz-port=8081"]


def test_flannel_iface_regex_from_inventory(exported):
    tmp, _run = exported
    args = [a for a in flannel_args(tmp, "flannel_regex") if a.startswith("--iface")]
    # With a regex the automatic --iface is left out: the regex decides, the route to cp1 is the fallback.
    assert args == ["--iface-regex=^10\\.10\\.0\\.", "--iface-can-reach=10.10.0.11"]


def test_flannel_default_route_when_asked(exported):
    tmp, _run = exported
    assert [a for a in flannel_args(tmp, "flannel_default_route") if a.startswith("--iface")] == []


def weave_container(objs):
    ds = objs[("DaemonSet", "kube-system", "weave-net")]
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "weave")


def test_weave_matches_upstream(exported):
    tmp, _run = exported
    ours, theirs = objects(tmp / "weave"), upstream_weave()
    # Upstream's objects plus the Secret of the encryption password.
    assert set(ours) == set(theirs) | {("Secret", "kube-system", "weave-passwd")}
    assert all(ns == "kube-system" for kind, ns, _n in ours if kind not in ("ClusterRole", "ClusterRoleBinding"))
    # Pinned release images instead of the template's :latest, as upstream's release step does.
    assert images(ours[("DaemonSet", "kube-system", "weave-net")]) == [
        "docker.io/weaveworks/weave-kube:2.8.1", "docker.io/weaveworks/weave-kube:2.8.1", "docker.io/weaveworks/weave-npc:2.8.1"]
    env = {e["name"]: e for e in weave_container(ours)["env"]}
    assert env["IPALLOC_RANGE"]["value"] == "10.244.0.0/16"
    container = weave_container(ours)
    ports = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert ports == {(6783, "TCP"), (6783, "UDP"), (6784, "UDP")}
    assert container["readinessProbe"]["httpGet"]["port"] == 6784


def test_weave_password_comes_from_a_secret(exported):
    tmp, run = exported
    ours = objects(tmp / "weave")
    secret = ours[("Secret", "kube-system", "weave-passwd")]
    assert secret["stringData"]["weave-passwd"] == "s3cret-lab-password"
    assert oct((tmp / "weave" / "kube-system" / "secret-weave-passwd.yaml").stat().st_mode & 0o777) == "0o600"
    env = {e["name"]: e for e in weave_container(ours)["env"]}
    assert env["WEAVE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "weave-passwd", "key": "weave-passwd"}
    assert env["WEAVE_MTU"]["value"] == "1400"
    # The password never reaches the output.
    assert "s3cret-lab-password" not in run.stdout


def test_weave_is_flagged_as_unmaintained(exported):
    _tmp, run = exported
    msgs = [r.get("msg", "") for r in run.results("Warn that Weave Net is unmaintained", "weave")]
    assert any("DEPRECATED" in m and "unmaintained" in m for m in msgs), msgs
    assert run.skipped("Warn that Weave Net is unmaintained", "flannel")
