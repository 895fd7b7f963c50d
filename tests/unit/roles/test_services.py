"""playbooks/services.yml (roles metallb and metrics_server) in export mode.

One ansible-playbook run exports every lab shape at once: each host of the group ``labs`` stands for
one lab (its own pools, settings and export directory), and the playbook's plays run on that group
(``-e ailab_platform_hosts=labs``). Every lab host is an SSH host on a closed loopback port
(127.0.0.1:9): export mode must never connect to it. A canary play proves that connecting fails.
A second run, in check mode, renders the good labs again onto their first export (nothing would change: a
byte-identical re-export) and into new directories (check mode writes nothing).
"""

import ipaddress
import json

import pytest
import yaml

from export_check import check_chart_values, check_export
from unit.roles.playbook_runner import (UNREACHABLE, assert_export_touches_no_node, assert_refused, export_objects, local_inventory,
                                        of_kind, platform_plays, reference, run_playbook, shared_run)


L2_POOL = {"name": "lab-lb", "addresses": ["192.168.10.240/28", "192.168.10.200-192.168.10.209"]}

GOOD = {
    # Layer 2, a CIDR and a range; metrics-server with --kubelet-insecure-tls (the default).
    "l2": {"metallb_pools": [L2_POOL]},
    # Two pools announced over BGP to two routers (FRR-K8s); kubelet certificates from the cluster CA.
    "bgp": {
        "metallb_pools": [
            {"name": "bgp-a", "addresses": ["10.50.0.0/24"], "advertise": "bgp"},
            {"name": "bgp-b", "addresses": ["10.60.0.10-10.60.0.20"], "advertise": "bgp", "auto_assign": False,
             "bgp_peers": ["router-b"], "bgp_advertisement": {"communities": ["64512:100"]}},
        ],
        "metallb_bgp_peers": [
            {"name": "router-a", "peer_address": "192.168.10.1", "peer_asn": 64501, "my_asn": 64500},
            {"name": "router-b", "peer_address": "192.168.10.2", "peer_asn": 64502, "my_asn": 64500, "hold_time": "90s",
             "ebgp_multihop": True, "password_secret": "bgp-router-b"},
        ],
        "metrics_server_kubelet_tls": "approved",
        "kubeadm_control_plane_kubelet_config": {"serverTLSBootstrap": True},
    },
    # Air gap: mirrors for charts and images, native BGP next to an L2 pool, a moved pod network (so a
    # pool in 10.244.0.0/24 is fine), an extra metrics-server flag.
    "airgap": {
        "metallb_pools": [{"name": "lan", "addresses": ["10.244.0.0/24"], "l2_interfaces": ["ens18"]},
                          {"name": "routed", "addresses": ["172.16.50.0/28"], "advertise": "bgp"}],
        "metallb_bgp_backend": "native",
        "metallb_bgp_peers": [{"name": "core", "peer_address": "172.16.0.1", "peer_asn": 65001, "my_asn": 65000}],
        "metallb_image_registry": "harbor.lab.example/quay/",
        "metallb_chart_repo_url": "https://harbor.lab.example/chartrepo/metallb",
        "metrics_server_image_registry": "harbor.lab.example/k8s",
        "metrics_server_chart_repo_url": "https://harbor.lab.example/chartrepo/metrics-server",
        "metrics_server_extra_args": ["--metric-resolution=30s"],
        "kubeadm_control_plane_pod_subnet": "10.200.0.0/16",
    },
}

# Bad inventories: (host vars, parts of the one failure message).
BAD = {
    "bad_pod": ({"metallb_pools": [{"name": "lab", "addresses": ["10.244.10.0/24"]}]},
                ["10.244.10.0/24", "the pod network 10.244.0.0/16", "metallb_pools[0].addresses",
                 "kubeadm_control_plane_pod_subnet"]),
    "bad_service": ({"metallb_pools": [{"name": "lab", "addresses": ["10.96.0.100-10.96.0.110"]}]},
                    ["10.96.0.100-10.96.0.110", "the service network 10.96.0.0/12", "kubeadm_control_plane_service_subnet"]),
    "bad_range": ({"metallb_pools": [{"name": "lab", "addresses": ["192.168.10.250-192.168.10.240"]}]},
                  ["'192.168.10.250-192.168.10.240'", "ends (192.168.10.240) before it starts (192.168.10.250)"]),
    "bad_malformed": ({"metallb_pools": [{"name": "lab", "addresses": ["192.168.10.300/28"]}]},
                      ["'192.168.10.300/28'", "is neither a CIDR", "metallb_pools[0].addresses"]),
    "bad_overlap": ({"metallb_pools": [{"name": "a", "addresses": ["192.168.10.240/28"]},
                                       {"name": "b", "addresses": ["192.168.10.250-192.168.10.252"]}]},
                    ["192.168.10.240/28 overlaps 192.168.10.250-192.168.10.252", "pool 'a' and pool 'b'",
                     "metallb_pools[1].addresses"]),
    "bad_node": ({"metallb_pools": [{"name": "lab", "addresses": ["192.168.20.16/28"]}]},
                 ["192.168.20.16/28", "the address of node worker1 192.168.20.21", "node_prep_address of worker1"]),
    "bad_no_pools": ({}, ["metallb_pools must list at least one pool"]),
    "bad_approved": ({"metallb_pools": [L2_POOL], "metrics_server_kubelet_tls": "approved"},
                     ["serverTLSBootstrap: true", "metrics_server_kubelet_tls: insecure"]),
    "bad_airgap_frrk8s": ({"metallb_pools": [{"name": "r", "addresses": ["172.16.50.0/28"], "advertise": "bgp"}],
                           "metallb_bgp_peers": [{"name": "core", "peer_address": "172.16.0.1", "peer_asn": 65001,
                                                  "my_asn": 65000}],
                           "metallb_image_registry": "harbor.lab.example/quay"},
                          ["metallb_bgp_backend: native"]),
    "bad_peer": ({"metallb_pools": [{"name": "r", "addresses": ["172.16.50.0/28"], "advertise": "bgp", "bgp_peers": ["nope"]}],
                  "metallb_bgp_peers": [{"name": "core", "peer_address": "router.lab", "peer_asn": 65001, "my_asn": 65000}]},
                 ["metallb_bgp_peers must list the lab routers", "unknown: nope"]),
}


# The lab whose twin exports into a new directory in check mode (every kind of object and both releases).
FRESH = "bgp"


def inventory(export_root, labs, fresh_root=None):
    """The lab hosts of ``labs``, each exporting to export_root/<lab>; with ``fresh_root``, a twin <lab>-fresh of
    the richest lab (bgp) that exports to fresh_root/<lab> (a directory that does not exist yet)."""
    host_vars = {name: dict(UNREACHABLE, ailab_kubernetes_export_dir=str(export_root / name), **(GOOD.get(name) or BAD[name][0]))
                 for name in labs if name != "no_cluster"}
    if fresh_root:
        host_vars.update({f"{name}-fresh": dict(UNREACHABLE, ailab_kubernetes_export_dir=str(fresh_root / name), **GOOD[name])
                          for name in labs if name == FRESH})
    if "no_cluster" in labs:
        # Apply mode on a host where kubeadm has not run: a local host without an admin kubeconfig.
        missing = str(export_root.parent / "missing-admin.conf")
        host_vars["no_cluster"] = {"ansible_connection": "local", "ansible_become": False, "metallb_pools": [L2_POOL],
                                   "metallb_kubeconfig": missing, "metrics_server_kubeconfig": missing}
    host_vars["canary"] = dict(UNREACHABLE)
    # A node that is never targeted: its address is reserved for every lab's pools.
    host_vars["worker1"] = dict(UNREACHABLE, node_prep_address="192.168.20.21")
    labs = [h for h in host_vars if h not in ("canary", "worker1")]
    return local_inventory({"labs": labs, "canary_hosts": ["canary"], "kube_node": ["worker1"]}, host_vars=host_vars)


def plays():
    return platform_plays("Services", "services.yml")


def snapshot(directory):
    """Every file under ``directory``: relative path -> (bytes, mtime in ns, mode)."""
    return {p.relative_to(directory).as_posix(): (p.read_bytes().hex(), p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    def build(tmp):
        return run_playbook(tmp, plays(), inventory(tmp / "export", [*GOOD, *BAD, "no_cluster"]), "-e", "ailab_platform_hosts=labs")

    return shared_run(tmp_path_factory, "services-export", build)


@pytest.fixture(scope="module")
def checked(tmp_path_factory, exported):
    """A second run in check mode: the good labs again onto their first export (a re-export that would change a
    byte or a mode reports changed), their twins into directories that do not exist, and the apply-mode host."""
    first, _run = exported

    def build(tmp):
        (tmp / "before.json").write_text(json.dumps(snapshot(first / "export")))
        return run_playbook(tmp, plays(), inventory(first / "export", [*GOOD, "no_cluster"], fresh_root=tmp / "fresh"),
                            "-e", "ailab_platform_hosts=labs", check=True)

    tmp, run = shared_run(tmp_path_factory, "services-check", build)
    return tmp, run, json.loads((tmp / "before.json").read_text())


def releases(directory):
    return {r["name"]: r for r in yaml.safe_load((directory / "releases.yml").read_text())["releases"]}


def values(directory, release):
    rel = releases(directory)[release]
    return yaml.safe_load((directory / rel["values_file"]).read_text())


def parse(entry):
    """The test's own reading of a pool entry (MetalLB's format): (first, last) addresses."""
    if "-" in entry:
        first, last = (ipaddress.ip_address(p.strip()) for p in entry.split("-"))
    else:
        net = ipaddress.ip_network(entry, strict=True)
        first, last = net.network_address, net.broadcast_address
    assert first.version == last.version and first <= last, entry
    return first, last


# ------------------------------------------------------------------------------------ good labs
@pytest.mark.parametrize("lab", list(GOOD))
def test_export_is_valid(exported, lab):
    tmp, run = exported
    assert run.stats[lab]["failures"] == 0, run.failure(lab)
    assert check_export(tmp / "export" / lab) == []


@pytest.mark.parametrize("lab", list(GOOD))
def test_every_pool_entry_parses_and_stays_clear_of_the_cluster_networks(exported, lab):
    tmp, _run = exported
    pools = of_kind(export_objects(tmp / "export" / lab), "IPAddressPool")
    assert {name: p["spec"]["addresses"] for name, p in pools.items()} == {
        p["name"]: p["addresses"] for p in GOOD[lab]["metallb_pools"]}
    pod = ipaddress.ip_network(GOOD[lab].get("kubeadm_control_plane_pod_subnet", "10.244.0.0/16"))
    service = ipaddress.ip_network("10.96.0.0/12")
    ranges = [parse(e) for p in pools.values() for e in p["spec"]["addresses"]]
    for first, last in ranges:
        for net in (pod, service):
            assert last < net.network_address or first > net.broadcast_address
    for i, (first, last) in enumerate(ranges):
        for other_first, other_last in ranges[i + 1:]:
            assert last < other_first or first > other_last


@pytest.mark.parametrize("lab", list(GOOD))
def test_metallb_namespace_allows_the_speaker_and_holds_every_object(exported, lab):
    tmp, _run = exported
    found = export_objects(tmp / "export" / lab)
    ns = found[("Namespace", "_cluster", "metallb-system")]
    for mode in ("enforce", "audit", "warn"):
        assert ns["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] == "privileged"
    assert {ns for (_k, ns, _n) in found} == {"_cluster", "metallb-system"}
    assert releases(tmp / "export" / lab)["metallb"]["namespace"] == "metallb-system"


def test_l2_lab(exported):
    tmp, _run = exported
    directory = tmp / "export" / "l2"
    found = export_objects(directory)
    assert of_kind(found, "L2Advertisement") == {"lab-lb": {
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "lab-lb", "namespace": "metallb-system"}, "spec": {"ipAddressPools": ["lab-lb"]}}}
    assert not of_kind(found, "BGPPeer") and not of_kind(found, "BGPAdvertisement")
    pool = of_kind(found, "IPAddressPool")["lab-lb"]["spec"]
    assert pool["autoAssign"] is True and pool["avoidBuggyIPs"] is False
    # Layer 2 only: no FRR-K8s pods, and the deprecated in-speaker FRR stays off.
    metallb = values(directory, "metallb")
    assert metallb["frrk8s"]["enabled"] is False and metallb["speaker"]["frr"]["enabled"] is False
    assert "image" not in metallb["controller"] and "image" not in metallb["speaker"]
    rel = releases(directory)
    assert (rel["metallb"]["repo"], rel["metallb"]["chart"], rel["metallb"]["version"]) == (
        "https://metallb.github.io/metallb", "metallb", "0.16.1")
    assert (rel["metrics-server"]["repo"], rel["metrics-server"]["namespace"], rel["metrics-server"]["version"]) == (
        "https://kubernetes-sigs.github.io/metrics-server/", "kube-system", "3.13.1")
    # The pinned versions are the reference's.
    assert yaml.safe_load(reference("metallb/Chart.yaml").read_text())["version"] == "0.16.1"
    assert yaml.safe_load(reference("metrics-server/Chart.yaml").read_text())["version"] == "3.13.1"


def test_bgp_lab(exported):
    tmp, _run = exported
    directory = tmp / "export" / "bgp"
    found = export_objects(directory)
    assert not of_kind(found, "L2Advertisement")
    adverts = of_kind(found, "BGPAdvertisement")
    assert adverts["bgp-a"]["spec"] == {"ipAddressPools": ["bgp-a"]}
    assert adverts["bgp-b"]["spec"] == {"ipAddressPools": ["bgp-b"], "peers": ["router-b"], "communities": ["64512:100"]}
    assert of_kind(found, "IPAddressPool")["bgp-b"]["spec"]["autoAssign"] is False
    peers = of_kind(found, "BGPPeer")
    assert {p["apiVersion"] for p in peers.values()} == {"metallb.io/v1beta2"}
    assert peers["router-a"]["spec"] == {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.168.10.1"}
    assert peers["router-b"]["spec"] == {
        "myASN": 64500, "peerASN": 64502, "peerAddress": "192.168.10.2", "holdTime": "90s", "ebgpMultiHop": True,
        "passwordSecret": {"name": "bgp-router-b", "namespace": "metallb-system"}}
    assert values(directory, "metallb")["frrk8s"]["enabled"] is True


def test_airgap_lab(exported):
    tmp, _run = exported
    directory = tmp / "export" / "airgap"
    found = export_objects(directory)
    metallb = values(directory, "metallb")
    assert metallb["controller"]["image"] == {"repository": "harbor.lab.example/quay/metallb/controller"}
    assert metallb["speaker"]["image"] == {"repository": "harbor.lab.example/quay/metallb/speaker"}
    # Native BGP: no FRR-K8s images to mirror.
    assert metallb["frrk8s"]["enabled"] is False
    assert of_kind(found, "L2Advertisement")["lan"]["spec"] == {"ipAddressPools": ["lan"], "interfaces": ["ens18"]}
    assert set(of_kind(found, "BGPAdvertisement")) == {"routed"}
    rel = releases(directory)
    assert rel["metallb"]["repo"] == "https://harbor.lab.example/chartrepo/metallb"
    assert rel["metrics-server"]["repo"] == "https://harbor.lab.example/chartrepo/metrics-server"
    ms = values(directory, "metrics-server")
    assert ms["image"] == {"repository": "harbor.lab.example/k8s/metrics-server/metrics-server"}
    assert ms["args"] == ["--kubelet-insecure-tls", "--metric-resolution=30s"]


def test_metrics_server_kubelet_tls_insecure_vs_approved(exported):
    tmp, _run = exported
    insecure, approved = values(tmp / "export" / "l2", "metrics-server"), values(tmp / "export" / "bgp", "metrics-server")
    # The flag goes to args; the chart's defaultArgs are left alone (replacing them would drop its flags).
    assert insecure == {"args": ["--kubelet-insecure-tls"]}
    assert approved == {"args": []}
    assert check_chart_values("metrics-server", insecure) == [] and check_chart_values("metrics-server", approved) == []


def test_the_values_check_bites():
    """export_check validates MetalLB values with its draft-07 schema and unknown keys: a wrong value fails."""
    assert any("values schema" in p for p in check_chart_values("metallb", {"controller": {"logLevel": "verbose"}}))
    assert check_chart_values("metrics-server", {"defaultArg": []})


def test_export_touches_no_node(exported):
    _tmp, run = exported
    assert_export_touches_no_node(run, GOOD, nodes={"worker1"})


def test_apply_mode_needs_a_cluster(exported):
    _tmp, run = exported
    assert "missing-admin.conf on no_cluster, which does not exist: run playbooks/kubernetes.yml first" in run.failure("no_cluster")


@pytest.mark.parametrize("lab", list(GOOD))
def test_second_export_is_byte_identical(exported, checked, lab):
    first, _run = exported
    _tmp, run, before = checked
    assert run.stats[lab]["failures"] == 0 and run.stats[lab]["unreachable"] == 0, run.failure(lab)
    # Re-rendered in a new ansible-playbook process, every file and directory compares equal (copy compares
    # checksums and modes): nothing to change.
    assert run.results("Write each object to <namespace or _cluster>/<kind>-<name><suffix>.yaml", lab)
    assert run.stats[lab]["changed"] == 0, [t for t in run.results("", lab) if t.get("changed")]
    assert {k: v for k, v in snapshot(first / "export").items() if k.startswith(f"{lab}/")} == {
        k: tuple(v) for k, v in before.items() if k.startswith(f"{lab}/")}


def test_check_mode_writes_nothing(checked):
    tmp, run, _before = checked
    # The twin would write a new export; check mode reports it and writes nothing. Check mode in apply mode
    # before the cluster exists passes too: there is nothing to compare with yet.
    for host in (f"{FRESH}-fresh", "no_cluster"):
        assert run.stats[host]["failures"] == 0 and run.stats[host]["unreachable"] == 0, run.failure(host)
    assert run.stats[f"{FRESH}-fresh"]["changed"] > 0
    assert not (tmp / "fresh").exists()


# ------------------------------------------------------------------------------------- bad labs
@pytest.mark.parametrize("lab", list(BAD))
def test_bad_inventory_is_refused_before_anything_is_exported(exported, lab):
    tmp, run = exported
    assert_refused(run, lab, BAD[lab][1], tmp / "export" / lab)
    # Refused in the preflight play: no export task ran for this lab (while it did for a good one).
    assert run.results("Record the release in releases.yml", "l2")
    assert not run.results("Record the release in releases.yml", lab)
