# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for kubelet resource management (exclusive CPUs, NUMA alignment, reserved memory).

* ``kubelet_resource_problems``: every problem of a KubeletConfiguration fragment (the cluster-wide
  kubeadm_control_plane_kubelet_config merged with a node group's node_prep_kubelet_config) that the
  kubelet would refuse at start, or that a lab admin would not notice until pods misbehave, one
  sentence each naming the field and what to do. An empty list means the kubelet accepts it.

The rules follow the kubelet (kubernetes/kubernetes, release-1.34):
pkg/kubelet/apis/config/validation/validation.go (ValidateKubeletConfiguration: policy names,
reservedSystemCPUs with the reserved cgroups), pkg/kubelet/cm/cpumanager/policy_static.go
(NewStaticPolicy: "the static policy requires systemreserved.cpu + kubereserved.cpu to be greater
than zero" unless reservedSystemCPUs is set), pkg/kubelet/cm/memorymanager/memory_manager.go
(validateReservedMemory: the sum of reservedMemory equals kubeReserved + systemReserved +
evictionHard memory.available, "determined by Node Allocatable feature"; policy Static needs it).
Field names are those of k8s.io/kubelet/config/v1beta1 (KubeletConfiguration).

Its documentation is in the ``<filter name>.yml`` file next to this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping
from fractions import Fraction

from ansible.errors import AnsibleFilterError

# The KubeletConfiguration fields a node group may set (resource management). Other fields stay
# cluster-wide (kubeadm_control_plane_kubelet_config): a per-node drop-in must not weaken
# authentication or change the cgroup driver the runtimes use.
NODE_FIELDS = (
    "cpuManagerPolicy", "cpuManagerPolicyOptions", "cpuManagerReconcilePeriod", "reservedSystemCPUs",
    "kubeReserved", "systemReserved", "kubeReservedCgroup", "systemReservedCgroup", "enforceNodeAllocatable",
    "topologyManagerPolicy", "topologyManagerScope", "topologyManagerPolicyOptions",
    "memoryManagerPolicy", "reservedMemory", "evictionHard", "maxPods", "podPidsLimit",
)
CPU_POLICIES = ("none", "static")
TOPOLOGY_POLICIES = ("none", "best-effort", "restricted", "single-numa-node")
TOPOLOGY_SCOPES = ("container", "pod")
MEMORY_POLICIES = ("None", "Static")
# v1beta1 defaulting (SetDefaults_KubeletConfiguration): evictionHard memory.available 100Mi when
# evictionHard is not set at all; a set evictionHard replaces the defaults.
DEFAULT_EVICTION_MEMORY = "100Mi"

_SUFFIXES = {
    "": 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
    "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60, "m": Fraction(1, 1000),
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_CPUSET = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")


def quantity(value):
    """A Kubernetes resource quantity (``2``, ``500m``, ``1Gi``, ``1.5G``) as an exact Fraction; ValueError
    when it is not one (percentages included)."""
    if isinstance(value, bool):
        raise ValueError("is not a quantity")
    if isinstance(value, (int, float)):
        return Fraction(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError("is not a quantity such as 2, 500m or 1Gi")
    return Fraction(match.group(1)) * _SUFFIXES[match.group(2) or ""]


def cpuset(value):
    """The CPU ids of a Linux cpuset (``0-1,6``); ValueError when malformed."""
    text = str(value).strip().replace(" ", "")
    if not _CPUSET.match(text):
        raise ValueError("is not a CPU list such as 0-1 or 0,32")
    cpus = set()
    for part in text.split(","):
        first, _sep, last = part.partition("-")
        start, end = int(first), int(last or first)
        if end < start:
            raise ValueError("has the range %s that ends before it starts" % part)
        cpus.update(range(start, end + 1))
    return cpus


def _format_bytes(amount):
    for suffix in ("Gi", "Mi", "Ki"):
        if amount % _SUFFIXES[suffix] == 0 and amount >= _SUFFIXES[suffix]:
            return "%d%s" % (amount // _SUFFIXES[suffix], suffix)
    return str(amount)


def _reserved(config, field, resource, variable, problems):
    """The quantity of ``resource`` in the map ``field`` (0 when absent); appends a problem when malformed."""
    values = config.get(field) or {}
    if not isinstance(values, Mapping):
        problems.append("%s: %s must be a map such as {cpu: 500m, memory: 1Gi}, got %r." % (variable, field, values))
        return Fraction(0)
    if resource not in values:
        return Fraction(0)
    try:
        return quantity(values[resource])
    except ValueError as exc:
        problems.append("%s: %s.%s '%s' %s." % (variable, field, resource, values[resource], exc))
        return Fraction(0)


def _check_cpu(config, variable, cpu_count, problems):
    policy = config.get("cpuManagerPolicy", "none")
    if policy not in CPU_POLICIES:
        problems.append("%s: cpuManagerPolicy must be one of %s, got %r." % (variable, ", ".join(CPU_POLICIES), policy))
        return
    reserved_cpus = config.get("reservedSystemCPUs", "")
    cpus = set()
    if reserved_cpus not in ("", None):
        try:
            cpus = cpuset(reserved_cpus)
        except ValueError as exc:
            problems.append("%s: reservedSystemCPUs '%s' %s." % (variable, reserved_cpus, exc))
        if config.get("systemReservedCgroup") or config.get("kubeReservedCgroup"):
            problems.append("%s: reservedSystemCPUs cannot be combined with systemReservedCgroup or kubeReservedCgroup "
                            "(the kubelet refuses it): keep reservedSystemCPUs and drop the cgroups." % variable)
        if cpu_count and cpus and max(cpus) >= cpu_count:
            problems.append("%s: reservedSystemCPUs '%s' names CPU %d but the node has %d CPUs (0-%d)."
                            % (variable, reserved_cpus, max(cpus), cpu_count, cpu_count - 1))
        if cpu_count and cpus and len(cpus) >= cpu_count:
            problems.append("%s: reservedSystemCPUs '%s' reserves all %d CPUs of the node: leave CPUs for pods."
                            % (variable, reserved_cpus, cpu_count))
    reserved = _reserved(config, "kubeReserved", "cpu", variable, problems) + \
        _reserved(config, "systemReserved", "cpu", variable, problems)
    if policy == "static" and not cpus and reserved <= 0:
        problems.append("%s: cpuManagerPolicy static needs CPUs kept for the system: set reservedSystemCPUs (e.g. '0-1') "
                        "or kubeReserved.cpu/systemReserved.cpu (e.g. 500m each); the kubelet does not start "
                        "without a CPU reservation." % variable)
    if cpu_count and not cpus and reserved >= cpu_count:
        problems.append("%s: kubeReserved.cpu + systemReserved.cpu (%s) take all %d CPUs of the node."
                        % (variable, float(reserved), cpu_count))
    if config.get("cpuManagerPolicyOptions") and policy != "static":
        problems.append("%s: cpuManagerPolicyOptions only apply to cpuManagerPolicy static (is %r)." % (variable, policy))
    _check_policy_options(config, "cpuManagerPolicyOptions", "full-pcpus-only", variable, problems)


def _check_topology(config, variable, problems):
    policy = config.get("topologyManagerPolicy", "none")
    if policy not in TOPOLOGY_POLICIES:
        problems.append("%s: topologyManagerPolicy must be one of %s, got %r."
                        % (variable, ", ".join(TOPOLOGY_POLICIES), policy))
    scope = config.get("topologyManagerScope", "container")
    if scope not in TOPOLOGY_SCOPES:
        problems.append("%s: topologyManagerScope must be container or pod, got %r." % (variable, scope))
    _check_policy_options(config, "topologyManagerPolicyOptions", "prefer-closest-numa-nodes", variable, problems)


def _check_policy_options(config, key, example, variable, problems):
    """A manager's policy options: a map of option names to quoted strings, as the kubelet reads them."""
    options = config.get(key) or {}
    if not isinstance(options, Mapping) or any(not isinstance(v, str) for v in options.values()):
        problems.append("%s: %s is a map of option names to quoted strings, e.g. {%s: \"true\"}, got %r."
                        % (variable, key, example, options))


def _check_memory(config, variable, problems):
    policy = config.get("memoryManagerPolicy", "None")
    if policy not in MEMORY_POLICIES:
        problems.append("%s: memoryManagerPolicy must be None or Static (capitalised), got %r." % (variable, policy))
        return
    entries = config.get("reservedMemory") or []
    if not isinstance(entries, list):
        problems.append("%s: reservedMemory is a list of {numaNode, limits: {memory}}, got %r." % (variable, entries))
        return
    total = Fraction(0)
    for index, entry in enumerate(entries):
        where = "%s: reservedMemory[%d]" % (variable, index)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("numaNode"), int) or isinstance(entry.get("numaNode"), bool) \
                or not isinstance(entry.get("limits"), Mapping):
            problems.append("%s must be {numaNode: 0, limits: {memory: 1124Mi}}, got %r." % (where, entry))
            continue
        if "memory" in entry["limits"]:
            try:
                total += quantity(entry["limits"]["memory"])
            except ValueError as exc:
                problems.append("%s.limits.memory '%s' %s." % (where, entry["limits"]["memory"], exc))
    if policy != "Static":
        if entries:
            problems.append("%s: reservedMemory is only used by memoryManagerPolicy Static (is %r)." % (variable, policy))
        return
    eviction = config.get("evictionHard")
    eviction_memory = Fraction(0)
    if eviction is None:
        eviction_memory = quantity(DEFAULT_EVICTION_MEMORY)
    elif isinstance(eviction, Mapping) and "memory.available" in eviction:
        try:
            eviction_memory = quantity(eviction["memory.available"])
        except ValueError:
            problems.append("%s: evictionHard memory.available '%s' must be an absolute quantity (e.g. 100Mi) with "
                            "memoryManagerPolicy Static, to size reservedMemory." % (variable, eviction["memory.available"]))
            return
    expected = _reserved(config, "kubeReserved", "memory", variable, problems) + \
        _reserved(config, "systemReserved", "memory", variable, problems) + eviction_memory
    if total != expected:
        problems.append("%s: memoryManagerPolicy Static needs reservedMemory to add up to kubeReserved.memory + "
                        "systemReserved.memory + evictionHard memory.available = %s (the kubelet refuses to start "
                        "otherwise), but it adds up to %s; e.g. reservedMemory: [{numaNode: 0, limits: {memory: %s}}]."
                        % (variable, _format_bytes(expected), _format_bytes(total), _format_bytes(expected)))


def kubelet_resource_problems(config, variable="kubelet configuration", cpu_count=0, node_fields=None):
    """Every problem of the KubeletConfiguration fragment ``config`` (one sentence each, naming ``variable``);
    ``cpu_count`` (the node's CPUs, 0 unknown) bounds reservedSystemCPUs; ``node_fields`` (the fields a per-node
    drop-in sets) must be resource-management fields."""
    if config is None:
        return []
    if not isinstance(config, Mapping):
        raise AnsibleFilterError("kubelet_resource_problems: %s must be a map of KubeletConfiguration fields, got %s"
                                 % (variable, type(config).__name__))
    try:
        cpu_count = int(cpu_count or 0)
    except (TypeError, ValueError):
        raise AnsibleFilterError("kubelet_resource_problems: cpu_count must be a number, got %r" % (cpu_count,)) from None
    problems = []
    if node_fields is not None:
        if isinstance(node_fields, (str, bytes)) or not hasattr(node_fields, "__iter__"):
            raise AnsibleFilterError("kubelet_resource_problems: node_fields must be a list of field names")
        unknown = sorted(set(node_fields) - set(NODE_FIELDS))
        if unknown:
            problems.append("%s: %s cannot be set per node (allowed: %s); set cluster-wide fields in "
                            "kubeadm_control_plane_kubelet_config." % (variable, ", ".join(unknown), ", ".join(NODE_FIELDS)))
    for field in ("apiVersion", "kind"):
        if field in config:
            problems.append("%s: leave out %s, the role writes it." % (variable, field))
    _check_cpu(config, variable, cpu_count, problems)
    _check_topology(config, variable, problems)
    _check_memory(config, variable, problems)
    return problems


class FilterModule(object):
    def filters(self):
        return {"kubelet_resource_problems": kubelet_resource_problems}
