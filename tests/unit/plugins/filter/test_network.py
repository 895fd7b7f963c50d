"""Filters of the lab's address plan (plugins/filter/network.py): pools, reserved networks, node
addresses and kubelet serving CSRs."""

import base64
import datetime
import ipaddress

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.ailab.cluster.plugins.filter.network import (
    FilterModule,
    kubelet_serving_csrs,
    network_kubernetes_subnets,
    network_node_addresses,
    network_overlaps,
    network_ranges,
)

POD = {"name": "the pod network", "addresses": ["10.244.0.0/16"], "variable": "kubeadm_control_plane_pod_subnet"}
SERVICE = {"name": "the service network", "addresses": ["10.96.0.0/12"], "variable": "kubeadm_control_plane_service_subnet"}


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"network_ranges", "network_overlaps", "network_node_addresses",
                                             "kubelet_serving_csrs", "network_kubernetes_subnets"}


# ------------------------------------------------------------------------------------- ranges
def test_ranges_parse_cidrs_and_ranges_of_both_families():
    ranges = network_ranges(["192.168.10.240/28", "192.168.10.200-192.168.10.209", " 192.168.9.1 - 192.168.9.1 ",
                             "fc00:f853:ccd:e799::/124"])
    assert [(r["first"], r["last"], r["size"], r["version"]) for r in ranges] == [
        ("192.168.10.240", "192.168.10.255", 16, 4),
        ("192.168.10.200", "192.168.10.209", 10, 4),
        ("192.168.9.1", "192.168.9.1", 1, 4),
        ("fc00:f853:ccd:e799::", "fc00:f853:ccd:e799::f", 16, 6),
    ]


@pytest.mark.parametrize("entry, reason", [
    ("192.168.10.250-192.168.10.240", "ends (192.168.10.240) before it starts (192.168.10.250)"),
    ("192.168.10.300/28", "neither a CIDR"),
    ("192.168.10.0/33", "neither a CIDR"),
    ("192.168.10.1-", "nor a range of two addresses"),
    ("192.168.10.1-fc00::1", "mixes an IPv4 and an IPv6 address"),
    ("192.168.10.5", "single address: write it as 192.168.10.5/32"),
    ("192.168.10.17/28", "host bits set: the network is 192.168.10.16/28"),
    ("lab-pool", "neither a CIDR"),
])
def test_ranges_refuse_malformed_entries_naming_them(entry, reason):
    with pytest.raises(AnsibleFilterError, match="metallb_pools\\[0\\].addresses: '.*' .*") as err:
        network_ranges([entry], "metallb_pools[0].addresses")
    assert entry in str(err.value) and reason in str(err.value)


def test_ranges_need_a_list():
    with pytest.raises(AnsibleFilterError, match="must be a list"):
        network_ranges("192.168.10.0/24")


# ----------------------------------------------------------------------------------- overlaps
def test_disjoint_pools_have_no_problems():
    pools = [{"name": "a", "addresses": ["192.168.10.240/28"]}, {"name": "b", "addresses": ["192.168.10.200-192.168.10.239"]},
             {"name": "v6", "addresses": ["fc00::/120"]}]
    assert network_overlaps(pools, [POD, SERVICE], "metallb_pools") == []


def test_adjacent_ranges_do_not_overlap_but_a_shared_address_does():
    pools = [{"name": "a", "addresses": ["192.168.10.0-192.168.10.9"]}, {"name": "b", "addresses": ["192.168.10.10/31"]}]
    assert network_overlaps(pools) == []
    pools[1]["addresses"] = ["192.168.10.9-192.168.10.12"]
    [problem] = network_overlaps(pools, variable="metallb_pools")
    assert "192.168.10.0-192.168.10.9 overlaps 192.168.10.9-192.168.10.12" in problem
    assert "pool 'a' and pool 'b'" in problem and "metallb_pools[1].addresses" in problem


def test_overlap_inside_one_pool_is_reported():
    [problem] = network_overlaps([{"name": "a", "addresses": ["192.168.10.0/24", "192.168.10.128/25"]}], variable="metallb_pools")
    assert "both in pool 'a'" in problem


@pytest.mark.parametrize("entry, other, variable", [
    ("10.244.5.0/24", "10.244.0.0/16", "kubeadm_control_plane_pod_subnet"),
    ("10.96.0.100-10.96.0.110", "10.96.0.0/12", "kubeadm_control_plane_service_subnet"),
    ("10.111.255.255/32", "10.96.0.0/12", "kubeadm_control_plane_service_subnet"),
])
def test_pools_inside_the_cluster_networks_are_refused(entry, other, variable):
    [problem] = network_overlaps([{"name": "lab", "addresses": [entry]}], [POD, SERVICE], "metallb_pools")
    assert entry in problem and other in problem
    assert "metallb_pools[0].addresses" in problem and variable in problem


def test_families_never_overlap():
    assert network_overlaps([{"name": "v6", "addresses": ["::/0"]}], [POD, SERVICE]) == []


def test_every_malformed_entry_is_one_problem_and_the_good_ones_are_still_checked():
    problems = network_overlaps([{"name": "lab", "addresses": ["192.168.10.9-192.168.10.1", "nonsense", "10.244.1.0/24"]}],
                                [POD], "metallb_pools")
    assert len(problems) == 3
    assert "ends (192.168.10.1) before it starts (192.168.10.9)" in problems[0]
    assert "'nonsense'" in problems[1]
    assert "overlaps the pod network 10.244.0.0/16" in problems[2]


def test_a_pool_without_addresses_is_a_problem():
    assert "has no addresses" in network_overlaps([{"name": "lab", "addresses": []}])[0]


def test_reserved_values_that_are_not_addresses_can_be_skipped():
    reserved = [{"name": "the address of node w1", "addresses": ["w1.lab.example"], "variable": "ansible_host of w1",
                 "if_address": True},
                {"name": "the address of node w2", "addresses": ["192.168.10.22"], "variable": "node_prep_address of w2"}]
    [problem] = network_overlaps([{"name": "lab", "addresses": ["192.168.10.16/28"]}], reserved, "metallb_pools")
    assert "192.168.10.16/28 of pool 'lab' overlaps the address of node w2 192.168.10.22" in problem
    assert "node_prep_address of w2" in problem
    # A reserved network that must be an address but is not is a problem of its own.
    assert "w1.lab.example" in network_overlaps([], [dict(reserved[0], if_address=False)])[0]


@pytest.mark.parametrize("pools, message", [
    ("192.168.10.0/24", "must be a list"),
    (["192.168.10.0/24"], "must be a dict"),
    ([{"name": "lab", "addresses": "192.168.10.0/24"}], "must be a list of CIDRs or ranges"),
])
def test_overlaps_refuse_other_shapes(pools, message):
    with pytest.raises(AnsibleFilterError, match=message):
        network_overlaps(pools)


# ------------------------------------------------------------------------------ node addresses
def test_node_addresses_prefer_node_prep_address_then_an_ip_ansible_host():
    hostvars = {
        "cp1": {"node_prep_address": "192.168.10.21", "ansible_host": "cp1.lab.example"},
        "w1": {"ansible_host": "192.168.10.31", "node_prep_hostname": "gpu-1"},
        "w2": {"ansible_host": "w2.lab.example"},
    }
    nodes = network_node_addresses(["cp1", "w1", "w2"], hostvars)
    assert [(n["host"], n["node"], n["addresses"], n["variable"]) for n in nodes] == [
        ("cp1", "cp1", ["192.168.10.21"], "node_prep_address of cp1"),
        ("w1", "gpu-1", ["192.168.10.31"], "ansible_host of w1"),
        ("w2", "w2", [], "ansible_host of w2"),
    ]
    # The entries are reserved networks of network_overlaps as they are.
    assert len(network_overlaps([{"name": "lab", "addresses": ["192.168.10.16/28"]}], nodes)) == 2


# --------------------------------------------------------------------------------------- CSRs
def make_csr(name, node, ips, dns=None, signer="kubernetes.io/kubelet-serving", approved=False, groups=("system:nodes",)):
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(d) for d in (dns if dns is not None else [node])]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}")]))
               .add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .sign(key, hashes.SHA256()))
    pem = request.public_bytes(serialization.Encoding.PEM)
    status = {"conditions": [{"type": "Approved", "status": "True",
                              "lastUpdateTime": datetime.datetime.now(datetime.timezone.utc).isoformat()}]} if approved else {}
    return {"metadata": {"name": name},
            "spec": {"signerName": signer, "username": f"system:node:{node}", "groups": list(groups),
                     "request": base64.b64encode(pem).decode(), "usages": ["digital signature", "server auth"]},
            "status": status}


NODES = {"cp1": ["192.168.10.21"], "w1": ["192.168.10.31"]}


def test_csrs_of_inventory_nodes_for_their_own_addresses_are_approved():
    csrs = [make_csr("csr-b", "w1", ["192.168.10.31"], dns=["w1", "w1.lab.example"]),
            make_csr("csr-a", "cp1", ["192.168.10.21"])]
    assert kubelet_serving_csrs(csrs, NODES) == ["csr-a", "csr-b"]


@pytest.mark.parametrize("csr", [
    make_csr("foreign-node", "intruder", ["192.168.10.99"]),
    make_csr("wrong-ip", "w1", ["192.168.10.21"]),
    make_csr("extra-ip", "w1", ["192.168.10.31", "10.0.0.5"]),
    make_csr("other-name", "w1", ["192.168.10.31"], dns=["cp1"]),
    make_csr("no-ip", "w1", []),
    make_csr("client-cert", "w1", ["192.168.10.31"], signer="kubernetes.io/kube-apiserver-client-kubelet"),
    make_csr("done", "w1", ["192.168.10.31"], approved=True),
    make_csr("not-a-node", "w1", ["192.168.10.31"], groups=("system:authenticated",)),
], ids=lambda c: c["metadata"]["name"])
def test_other_csrs_are_left_alone(csr):
    assert kubelet_serving_csrs([csr], NODES) == []


def test_a_csr_with_an_unreadable_request_is_left_alone():
    csr = make_csr("garbled", "w1", ["192.168.10.31"])
    csr["spec"]["request"] = base64.b64encode(b"not a pem").decode()
    assert kubelet_serving_csrs([csr], NODES) == []


def test_csr_nodes_must_be_a_mapping():
    with pytest.raises(AnsibleFilterError, match="nodes must map node names"):
        kubelet_serving_csrs([], ["cp1"])


# ------------------------------------------------------------------------ kubernetes subnets
def _nodes(*addresses):
    return [{"name": "the address of node n%d" % i, "host": "n%d" % i, "address": a} for i, a in enumerate(addresses)]


def test_kubernetes_subnets_of_the_default_lab_are_usable():
    assert network_kubernetes_subnets("10.244.0.0/16", "10.96.0.0/12", _nodes("10.10.0.11", "10.10.0.21")) == []


def test_kubernetes_subnets_overlapping_each_other():
    found = network_kubernetes_subnets("10.96.0.0/16", "10.96.0.0/12")
    assert found == ["The pod network 10.96.0.0/16 (kubeadm_control_plane_pod_subnet) overlaps the service network "
                     "10.96.0.0/12 (kubeadm_control_plane_service_subnet): pick two separate ranges, e.g. 10.244.0.0/16 "
                     "and 10.96.0.0/12."]


def test_kubernetes_subnets_containing_a_node_or_the_vip():
    vip = {"name": "the API VIP (kubeadm_control_plane_vip)", "address": "10.96.5.5"}
    found = network_kubernetes_subnets("10.10.0.0/16", "10.96.0.0/12", _nodes("10.10.0.11", "192.168.1.5") + [vip])
    assert len(found) == 2
    assert found[0].startswith("the address of node n0 (10.10.0.11) lies in the pod network 10.10.0.0/16")
    assert found[1].startswith("the API VIP (kubeadm_control_plane_vip) (10.96.5.5) lies in the service network")
    # Host names in ansible_host (no address) are skipped.
    assert network_kubernetes_subnets("10.244.0.0/16", "10.96.0.0/12", _nodes("cp-1.lab.example")) == []


def test_kubernetes_pod_subnet_size():
    assert "smaller than one node's range /24" in network_kubernetes_subnets("10.244.0.0/25", "10.96.0.0/12")[0]
    # A /23 holds two /24 node ranges: three nodes do not fit; the VIP is not a node.
    vip = {"name": "the API VIP", "address": "10.10.0.10"}
    found = network_kubernetes_subnets("10.244.0.0/23", "10.96.0.0/12", _nodes("10.10.0.11", "10.10.0.12", "10.10.0.13"))
    assert found == ["The pod network 10.244.0.0/23 (kubeadm_control_plane_pod_subnet) holds 2 node ranges of /24 but "
                     "the cluster has 3 nodes: use a larger pod network."]
    assert network_kubernetes_subnets("10.244.0.0/23", "10.96.0.0/12", _nodes("10.10.0.11", "10.10.0.12") + [vip]) == []
    assert network_kubernetes_subnets("10.244.0.0/25", "10.96.0.0/12", node_cidr_mask_size=26) == []


def test_kubernetes_service_subnet_size_and_syntax():
    assert "larger than kube-apiserver accepts" in network_kubernetes_subnets("10.244.0.0/16", "10.0.0.0/11")[0]
    assert network_kubernetes_subnets("10.244.0.1/16", "10.96.0.0/12") == [
        "kubeadm_control_plane_pod_subnet '10.244.0.1/16' has host bits set: the network is 10.244.0.0/16."]
    assert network_kubernetes_subnets("10.244.0.0", "10.96.0.0/12") == [
        "kubeadm_control_plane_pod_subnet '10.244.0.0' is not a CIDR such as 10.244.0.0/16."]
    assert "is not a CIDR" in network_kubernetes_subnets("pods", "10.96.0.0/12")[0]
    assert "IPv4" in network_kubernetes_subnets("fd00::/64", "10.96.0.0/12")[0]
    with pytest.raises(AnsibleFilterError, match="node_cidr_mask_size must be a number"):
        network_kubernetes_subnets("10.244.0.0/16", "10.96.0.0/12", [], "big")
