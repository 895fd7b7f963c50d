# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the lab's address plan: load-balancer pools against the networks a cluster already uses.

* ``network_ranges``: parse address entries (``192.168.10.240/28``, ``192.168.10.200-192.168.10.209``,
  IPv6 alike) into first/last addresses, refusing malformed entries;
* ``network_overlaps``: every problem of a set of pools (malformed entries, pools overlapping each other)
  and of pools against reserved networks (pod network, service network, node addresses), one sentence each;
* ``network_node_addresses``: each inventory host's cluster address (node_prep_address, else an IP ansible_host);
* ``kubelet_serving_csrs``: the pending kubelet serving certificate requests whose node name and
  addresses match the inventory (what ``metrics_server_kubelet_tls: approved`` may approve);
* ``network_kubernetes_subnets``: every problem of a cluster's pod and service subnets - malformed, overlapping
  each other, a node address or the API VIP, a pod subnet too small for one per-node range per node, a
  service subnet larger than the API server accepts.

Their documentation is in the ``<filter name>.yml`` files next to this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ipaddress
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes, to_text

try:
    from cryptography import x509
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - ansible-core itself depends on cryptography
    HAS_CRYPTOGRAPHY = False

KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
NODE_USER_PREFIX = "system:node:"
NOT_AN_ENTRY = "is neither a CIDR (192.168.10.240/28) nor a range of two addresses (192.168.10.200-192.168.10.209)"


def _parse_entry(entry, allow_address=False):
    """(version, first, last) of one entry as integers; raises ValueError with the reason."""
    if not isinstance(entry, str):
        raise ValueError("must be a string such as 192.168.10.240/28 or 192.168.10.200-192.168.10.209, got %s"
                         % type(entry).__name__)
    text = entry.strip()
    if "-" in text:
        start_text, end_text = (part.strip() for part in text.split("-", 1))
        try:
            start, end = ipaddress.ip_address(start_text), ipaddress.ip_address(end_text)
        except ValueError:
            raise ValueError(NOT_AN_ENTRY) from None
        if start.version != end.version:
            raise ValueError("mixes an IPv%d and an IPv%d address" % (start.version, end.version))
        if int(end) < int(start):
            raise ValueError("ends (%s) before it starts (%s): write the lower address first" % (end, start))
        return start.version, int(start), int(end)
    if "/" not in text:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(NOT_AN_ENTRY) from None
        if not allow_address:
            raise ValueError("is a single address: write it as %s/%d" % (address, address.max_prefixlen))
        return address.version, int(address), int(address)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(NOT_AN_ENTRY) from None
    if network.network_address != ipaddress.ip_interface(text).ip:
        raise ValueError("has host bits set: the network is %s" % network)
    return network.version, int(network.network_address), int(network.broadcast_address)


def _as_list(value, what, filter_name):
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise AnsibleFilterError("%s: %s must be a list, got %s" % (filter_name, what, type(value).__name__))
    return list(value)


def network_ranges(entries, what="addresses"):
    """Each entry (CIDR or ``first-last`` range) as ``{entry, version, first, last, size}``; raises
    AnsibleFilterError naming ``what`` and the entry when one is malformed."""
    ranges = []
    for entry in _as_list(entries, what, "network_ranges"):
        try:
            version, first, last = _parse_entry(entry)
        except ValueError as exc:
            raise AnsibleFilterError("%s: '%s' %s" % (what, entry, exc)) from None
        ranges.append(dict(entry=entry, version=version, first=str(ipaddress.ip_address(first)),
                           last=str(ipaddress.ip_address(last)), size=last - first + 1))
    return ranges


def _pool_sets(pools, variable):
    sets = []
    for index, pool in enumerate(_as_list(pools, variable, "network_overlaps")):
        if not isinstance(pool, Mapping):
            raise AnsibleFilterError("network_overlaps: %s[%d] must be a dict with name and addresses" % (variable, index))
        addresses = pool.get("addresses")
        where = "%s[%d].addresses" % (variable, index)
        if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
            raise AnsibleFilterError("network_overlaps: %s must be a list of CIDRs or ranges, got %r" % (where, addresses))
        sets.append(dict(name="pool '%s'" % pool.get("name", index), variable=where, addresses=list(addresses)))
    return sets


def _reserved_sets(reserved):
    sets = []
    for index, net in enumerate(_as_list(reserved, "reserved", "network_overlaps")):
        if not isinstance(net, Mapping):
            raise AnsibleFilterError("network_overlaps: reserved[%d] must be a dict with name, addresses and variable" % index)
        addresses = net.get("addresses")
        if isinstance(addresses, str):
            addresses = [addresses]
        sets.append(dict(name=net.get("name", "reserved[%d]" % index), variable=net.get("variable", "reserved"),
                         addresses=_as_list(addresses, "reserved[%d].addresses" % index, "network_overlaps"),
                         if_address=bool(net.get("if_address", False))))
    return sets


def _overlap(one, other):
    return one[0] == other[0] and one[1] <= other[2] and other[1] <= one[2]


def network_overlaps(pools, reserved=None, variable="pools"):
    """Problems of ``pools`` (list of {name, addresses}, the inventory variable ``variable``) and of the pools
    against ``reserved`` networks ({name, addresses, variable, if_address}: with if_address, values that are
    not addresses, such as a host name in ansible_host, are skipped). An empty list means the pools are usable."""
    problems = []
    parsed_pools = []
    for pool in _pool_sets(pools, variable):
        if not pool["addresses"]:
            problems.append("%s (%s) has no addresses: list CIDRs or first-last ranges." % (pool["name"], pool["variable"]))
        for entry in pool["addresses"]:
            try:
                parsed_pools.append((pool, entry, _parse_entry(entry)))
            except ValueError as exc:
                problems.append("%s (%s): '%s' %s." % (pool["name"], pool["variable"], entry, exc))
    parsed_reserved = []
    for net in _reserved_sets(reserved):
        for entry in net["addresses"]:
            if net["if_address"] and not _is_address_or_network(entry):
                continue
            try:
                parsed_reserved.append((net, entry, _parse_entry(entry, allow_address=True)))
            except ValueError as exc:
                problems.append("%s (%s): '%s' %s." % (net["name"], net["variable"], entry, exc))
    for index, (pool, entry, rng) in enumerate(parsed_pools):
        for other_pool, other_entry, other_rng in parsed_pools[index + 1:]:
            if _overlap(rng, other_rng):
                where = "both in %s" % pool["name"] if other_pool is pool else "of %s and %s" % (pool["name"], other_pool["name"])
                problems.append("%s overlaps %s (%s): the same addresses would be handed out twice; change %s."
                                % (entry, other_entry, where, other_pool["variable"]))
        for net, net_entry, net_rng in parsed_reserved:
            if _overlap(rng, net_rng):
                problems.append("%s of %s overlaps %s %s: change %s (or %s) so that they do not overlap."
                                % (entry, pool["name"], net["name"], net_entry, pool["variable"], net["variable"]))
    return problems


def network_node_addresses(hosts, hostvars, address_var="node_prep_address"):
    """{name, host, node, address, addresses, variable} of each inventory host (usable as ``reserved`` items of
    network_overlaps): ``address`` is its ``address_var`` host variable, else its ansible_host when that is an IP
    address, else empty; ``node`` its node_prep_hostname or host name (the Kubernetes node name)."""
    nodes = []
    for host in _as_list(hosts, "hosts", "network_node_addresses"):
        hvars = hostvars[host]
        address = hvars.get(address_var) or ""
        variable = "%s of %s" % (address_var, host)
        if not address:
            candidate = hvars.get("ansible_host") or ""
            address = candidate if _is_address_or_network(candidate) and "/" not in candidate else ""
            variable = "ansible_host of %s" % host
        address = to_text(address).strip()
        nodes.append(dict(name="the address of node %s" % host, host=host, node=hvars.get("node_prep_hostname") or host,
                          address=address, addresses=[address] if address else [], variable=variable))
    return nodes


def _is_address_or_network(value):
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return True


def _csr_addresses(request_b64):
    """(DNS names, IP addresses) of a base64 PEM certificate request (spec.request of a CSR object)."""
    csr = x509.load_pem_x509_csr(base64.b64decode(request_b64))
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ([to_text(n) for n in san.get_values_for_type(x509.DNSName)],
            [str(a) for a in san.get_values_for_type(x509.IPAddress)])


def kubelet_serving_csrs(csrs, nodes):
    """Names of the pending kubelet serving CSRs (signer kubernetes.io/kubelet-serving) requested by a node of
    ``nodes`` ({node name: [addresses]}) for its own name (or a domain name under it) and only its own addresses."""
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError("kubelet_serving_csrs needs the python cryptography library on the controller")
    if not isinstance(nodes, Mapping):
        raise AnsibleFilterError("kubelet_serving_csrs: nodes must map node names to their addresses")
    approve = []
    for csr in _as_list(csrs, "the CertificateSigningRequest objects", "kubelet_serving_csrs"):
        spec = csr.get("spec") or {}
        status = csr.get("status") or {}
        user = spec.get("username", "")
        if spec.get("signerName") != KUBELET_SERVING_SIGNER or status.get("conditions") or not user.startswith(NODE_USER_PREFIX):
            continue
        node = user[len(NODE_USER_PREFIX):]
        if node not in nodes or "system:nodes" not in (spec.get("groups") or []):
            continue
        try:
            dns_names, ips = _csr_addresses(to_bytes(spec.get("request", "")))
        except (ValueError, TypeError):
            continue
        known = {str(ipaddress.ip_address(a)) for a in (nodes[node] or []) if _is_address_or_network(a)}
        if ips and set(ips) <= known and all(n == node or n.startswith(node + ".") for n in dns_names):
            approve.append(csr["metadata"]["name"])
    return sorted(approve)


def _subnet(text, variable, problems):
    if "/" not in str(text):
        problems.append("%s '%s' is not a CIDR such as 10.244.0.0/16." % (variable, text))
        return None
    try:
        network = ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError:
        try:
            network = ipaddress.ip_network(str(text).strip(), strict=False)
        except ValueError:
            problems.append("%s '%s' is not a CIDR such as 10.244.0.0/16." % (variable, text))
            return None
        problems.append("%s '%s' has host bits set: the network is %s." % (variable, text, network))
        return None
    if network.version != 4:
        problems.append("%s '%s': the collection builds IPv4 clusters; give an IPv4 CIDR." % (variable, text))
        return None
    return network


def network_kubernetes_subnets(pod_subnet, service_subnet, nodes=None, node_cidr_mask_size=24,
                               pod_variable="kubeadm_control_plane_pod_subnet",
                               service_variable="kubeadm_control_plane_service_subnet"):
    """Problems of a cluster's pod and service subnets (one sentence each; empty: usable). ``nodes`` are
    {name, address, host} items (network_node_addresses; items without host, such as the API VIP, are only
    checked for overlap); the pod subnet must hold one
    /``node_cidr_mask_size`` per node (kube-controller-manager --node-cidr-mask-size, 24 for IPv4), the service
    subnet at most 2^20 addresses (kube-apiserver refuses a larger --service-cluster-ip-range)."""
    problems = []
    pod = _subnet(pod_subnet, pod_variable, problems)
    service = _subnet(service_subnet, service_variable, problems)
    try:
        mask = int(node_cidr_mask_size)
    except (TypeError, ValueError):
        raise AnsibleFilterError("network_kubernetes_subnets: node_cidr_mask_size must be a number, got %r"
                                 % (node_cidr_mask_size,)) from None
    nodes = [n for n in _as_list(nodes, "nodes", "network_kubernetes_subnets") if isinstance(n, Mapping)]
    # Items with a host are nodes (each needs a pod range); others (the API VIP) only must not overlap.
    hosts = [n for n in nodes if n.get("host")]
    if pod is not None and service is not None and pod.overlaps(service):
        problems.append("The pod network %s (%s) overlaps the service network %s (%s): pick two separate ranges, "
                        "e.g. 10.244.0.0/16 and 10.96.0.0/12." % (pod, pod_variable, service, service_variable))
    for network, variable, what in ((pod, pod_variable, "pod"), (service, service_variable, "service")):
        if network is None:
            continue
        for node in nodes:
            address = to_text(node.get("address") or "").strip()
            if not _is_address_or_network(address) or "/" in address:
                continue
            if ipaddress.ip_address(address) in network:
                problems.append("%s (%s) lies in the %s network %s (%s): nodes and %ss would share addresses; "
                                "change %s." % (node.get("name", address), address, what, network, variable, what,
                                                variable))
    if pod is not None:
        if pod.prefixlen > mask:
            problems.append("The pod network %s (%s) is smaller than one node's range /%d "
                            "(kube-controller-manager --node-cidr-mask-size): use /%d or larger, e.g. /16."
                            % (pod, pod_variable, mask, mask))
        elif 2 ** (mask - pod.prefixlen) < len(hosts):
            problems.append("The pod network %s (%s) holds %d node ranges of /%d but the cluster has %d nodes: "
                            "use a larger pod network." % (pod, pod_variable, 2 ** (mask - pod.prefixlen), mask,
                                                           len(hosts)))
    if service is not None and service.prefixlen < 12:
        problems.append("The service network %s (%s) is larger than kube-apiserver accepts (at most /12 for IPv4): "
                        "use e.g. 10.96.0.0/12." % (service, service_variable))
    return problems


class FilterModule(object):
    def filters(self):
        return {
            "network_ranges": network_ranges,
            "network_overlaps": network_overlaps,
            "network_node_addresses": network_node_addresses,
            "kubelet_serving_csrs": kubelet_serving_csrs,
            "network_kubernetes_subnets": network_kubernetes_subnets,
        }
