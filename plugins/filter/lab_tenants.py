# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's tenants (courses, research groups, staff) and CPU notebook sizes, from the inventory.

* ``lab_cpu_profiles``: the CPU-only notebook sizes (``ailab_cpu_profiles``), with Kubernetes
  quantities and the values KubeSpawner takes;
* ``lab_tenants``: ``ailab_tenants`` validated and normalised against the lab's GPU resources
  (``lab_gpu_resources``) and CPU profiles: namespace, priority, users, quota, GPU requests per
  Kubernetes resource name, profiles;
* ``lab_tenants_capacity_report``: per GPU resource key, the lab's capacity against the sum of the
  tenants' quotas.

All three are pure functions of their arguments and raise AnsibleFilterError with one sentence that
names the entry and what to change. The model is described in ``docs/tenants.md``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from ansible.errors import AnsibleFilterError
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import closest as _closest
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import fail as _fail
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import plain as _plain
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import unknown_keys as _unknown_keys

TENANTS = "ailab_tenants"
CPU_PROFILES = "ailab_cpu_profiles"

KINDS = ("course", "research", "staff")
# Kueue WorkloadPriorityClass / PriorityClass value of each kind: course < research < staff.
KIND_PRIORITY = {"course": 1000, "research": 2000, "staff": 3000}

TENANT_KEYS = ("name", "namespace", "kind", "description", "users", "admins", "admin_groups", "quota", "gpu_borrowing",
               "profiles")
USERS_KEYS = ("group", "groups", "users")
QUOTA_KEYS = ("cpu", "memory", "storage", "pvcs", "gpu")
CPU_PROFILE_KEYS = ("name", "description", "cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit",
                    "kubespawner_override")
CPU_PROFILE_REQUIRED = ("cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit")

DEFAULT_CPU_PROFILES = (
    {"name": "cpu-small", "description": "Small CPU notebook: 0.5 to 2 CPUs, 1 to 4 GiB memory",
     "cpu_guarantee": "500m", "cpu_limit": "2", "mem_guarantee": "1Gi", "mem_limit": "4Gi"},
    {"name": "cpu-large", "description": "Large CPU notebook: 2 to 8 CPUs, 8 to 16 GiB memory",
     "cpu_guarantee": "2", "cpu_limit": "8", "mem_guarantee": "8Gi", "mem_limit": "16Gi"},
)

# RFC 1123 label: namespaces, ClusterQueue names, label values.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
RESERVED_NAMESPACES = ("default",)
RESERVED_PREFIXES = ("kube-",)
QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
SUFFIXES = {
    "Ki": Decimal(1024), "Mi": Decimal(1024) ** 2, "Gi": Decimal(1024) ** 3, "Ti": Decimal(1024) ** 4,
    "Pi": Decimal(1024) ** 5, "Ei": Decimal(1024) ** 6,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
}
BINARY = ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki")
DECIMAL = ("E", "P", "T", "G", "M", "k")
# KubeSpawner's ByteSpecification takes K, M, G, T as powers of 1024 (jupyterhub/traitlets.py).
KUBESPAWNER_BYTES = (("T", "Ti"), ("G", "Gi"), ("M", "Mi"), ("K", "Ki"))


def _names(where, name, value):
    """A list of non-empty strings (a single string is one item), sorted and without duplicates."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        _fail(where, "%s must be a list of names, got %r" % (name, value))
    result = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or item != item.strip() or "\n" in item:
            _fail(where, "%s must hold names as the identity provider spells them (non-empty, no surrounding "
                         "spaces), got %r" % (name, item))
        result.append(item)
    return sorted(set(result))


# -------------------------------------------------------------------------------------- quantities
def _quantity(where, name, value):
    """A Kubernetes quantity (64, 0.5, 500m, 256Gi, 1.5G) as a Decimal; refuses negative, zero-free
    malformed and exponent forms with a message that shows good examples."""
    text = str(value).strip() if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    match = QUANTITY.match(text) if text else None
    if not match:
        _fail(where, "%s must be a Kubernetes quantity such as 4, 500m, 16Gi or 1Ti, got %r" % (name, value))
    try:
        return Decimal(match.group("number")) * SUFFIXES[match.group("suffix") or ""]
    except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
        _fail(where, "%s must be a Kubernetes quantity such as 4, 500m, 16Gi or 1Ti, got %r" % (name, value))


def _cpu(where, name, value):
    """CPU as Kubernetes writes it: whole cores ("2") or millicores ("500m")."""
    cores = _quantity(where, name, value)
    milli = cores * 1000
    if cores <= 0:
        _fail(where, "%s must be more than 0 CPUs, got %r" % (name, value))
    if milli != milli.to_integral_value():
        _fail(where, "%s must be a whole number of millicores (e.g. 250m or 0.25), got %r" % (name, value))
    if cores == cores.to_integral_value():
        return "%d" % cores
    return "%dm" % milli


def _bytes(where, name, value):
    """Bytes (memory, storage) as an int."""
    amount = _quantity(where, name, value)
    if amount <= 0:
        _fail(where, "%s must be more than 0 bytes, got %r" % (name, value))
    if amount != amount.to_integral_value():
        _fail(where, "%s must be a whole number of bytes (e.g. 512Mi or 1.5Gi), got %r" % (name, value))
    return int(amount)


def _bytes_text(amount):
    """Bytes in the shortest exact Kubernetes form, binary suffixes first: 1536Mi, 32G, 1000001."""
    candidates = ["%d" % amount]
    for suffixes in (BINARY, DECIMAL):
        for suffix in suffixes:
            unit = int(SUFFIXES[suffix])
            if amount % unit == 0:
                candidates.append("%d%s" % (amount // unit, suffix))
                break
    return min(candidates, key=lambda text: (len(text), text[-1].isdigit(), not text.endswith("i")))


def _kubespawner_bytes(amount):
    """Bytes as KubeSpawner's ByteSpecification takes them: 4G (= 4Gi), 512M, or a plain int."""
    for suffix, binary in KUBESPAWNER_BYTES:
        unit = int(SUFFIXES[binary])
        if amount % unit == 0:
            return "%d%s" % (amount // unit, suffix)
    return amount


def quantity_value(text):
    """A normalised quantity string back to a number (Decimal): cores for CPU, bytes for memory."""
    return _quantity("quantity", "quantity", text)


# ------------------------------------------------------------------------------------ CPU profiles
def _cpu_profile(index, entry):
    where = "%s[%d]" % (CPU_PROFILES, index)
    if not isinstance(entry, Mapping):
        _fail(where, "must be a dict with name, cpu_guarantee, cpu_limit, mem_guarantee and mem_limit, got %r" % (entry,))
    name = entry.get("name")
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        _fail(where, "name must be lower-case letters, digits and -, at most 63 characters (e.g. cpu-small), "
                     "got %r" % (name,))
    where = "%s[%d] (profile %s)" % (CPU_PROFILES, index, name)
    _unknown_keys(where, entry, CPU_PROFILE_KEYS, "a CPU profile")
    for key in CPU_PROFILE_REQUIRED:
        if entry.get(key) is None:
            _fail(where, "%s is required (a Kubernetes quantity, e.g. cpu_guarantee: 500m, mem_limit: 4Gi)" % key)
    cpu_guarantee = _cpu(where, "cpu_guarantee", entry["cpu_guarantee"])
    cpu_limit = _cpu(where, "cpu_limit", entry["cpu_limit"])
    mem_guarantee = _bytes(where, "mem_guarantee", entry["mem_guarantee"])
    mem_limit = _bytes(where, "mem_limit", entry["mem_limit"])
    if quantity_value(cpu_guarantee) > quantity_value(cpu_limit):
        _fail(where, "cpu_guarantee %s is more than cpu_limit %s; the guarantee must not exceed the limit"
                     % (cpu_guarantee, cpu_limit))
    if mem_guarantee > mem_limit:
        _fail(where, "mem_guarantee %s is more than mem_limit %s; the guarantee must not exceed the limit"
                     % (_bytes_text(mem_guarantee), _bytes_text(mem_limit)))
    description = entry.get("description")
    if description is None:
        description = "CPU notebook: %s to %s CPUs, %s to %s memory" % (
            cpu_guarantee, cpu_limit, _bytes_text(mem_guarantee), _bytes_text(mem_limit))
    elif not isinstance(description, str):
        _fail(where, "description must be a string, got %r" % (description,))
    return {
        "name": name,
        "description": description,
        "cpu_guarantee": cpu_guarantee,
        "cpu_limit": cpu_limit,
        "mem_guarantee": _bytes_text(mem_guarantee),
        "mem_limit": _bytes_text(mem_limit),
        # The same sizes as KubeSpawner's traits take them (floats of CPUs, ByteSpecification).
        "kubespawner_override": {
            "cpu_guarantee": float(quantity_value(cpu_guarantee)),
            "cpu_limit": float(quantity_value(cpu_limit)),
            "mem_guarantee": _kubespawner_bytes(mem_guarantee),
            "mem_limit": _kubespawner_bytes(mem_limit),
        },
    }


def lab_cpu_profiles(profiles=None):
    """The lab's CPU-only notebook sizes, in inventory order; None or [] gives the defaults
    (cpu-small, cpu-large). Accepts its own output again unchanged."""
    if profiles is None or (isinstance(profiles, (list, tuple)) and not profiles):
        profiles = [dict(p) for p in DEFAULT_CPU_PROFILES]
    if isinstance(profiles, (str, bytes, Mapping)) or not isinstance(profiles, (list, tuple)):
        _fail(CPU_PROFILES, "must be a list of {name, cpu_guarantee, cpu_limit, mem_guarantee, mem_limit}, got %s"
                            % type(profiles).__name__)
    result, seen = [], {}
    for index, entry in enumerate(_plain(profiles)):
        profile = _cpu_profile(index, entry)
        if profile["name"] in seen:
            _fail("%s[%d] (profile %s)" % (CPU_PROFILES, index, profile["name"]),
                  "the name is already used by entry %d; give each profile its own name" % seen[profile["name"]])
        seen[profile["name"]] = index
        result.append(profile)
    return result


# ---------------------------------------------------------------------------------------- tenants
def _gpu_resources(gpu_resources):
    if gpu_resources is None:
        return {}
    if not isinstance(gpu_resources, (list, tuple)):
        raise AnsibleFilterError("lab_tenants: the GPU resources must be the list of lab_gpu_resources, e.g. "
                                 "ailab_gpu_node_groups | ailab.cluster.lab_gpu_resources(groups), got %s"
                                 % type(gpu_resources).__name__)
    result = {}
    for item in _plain(gpu_resources):
        if not isinstance(item, Mapping) or not {"key", "resource", "capacity"} <= set(item):
            raise AnsibleFilterError("lab_tenants: the GPU resources must come from ailab.cluster.lab_gpu_resources "
                                     "(each with key, resource and capacity), got %r" % (item,))
        result[item["key"]] = item
    return result


def _users(where, value):
    if value is None:
        return {"groups": [], "users": []}
    if isinstance(value, (list, tuple)):
        return {"groups": [], "users": _names(where, "users", value)}
    if not isinstance(value, Mapping):
        _fail(where, "users must be {group: <group>}, {groups: [...]}, {users: [...]} or a list of users, got %r"
                     % (value,))
    _unknown_keys(where, value, USERS_KEYS, "users")
    groups = _names(where, "users.group", value.get("group")) + _names(where, "users.groups", value.get("groups"))
    return {"groups": sorted(set(groups)), "users": _names(where, "users.users", value.get("users"))}


def _gpu_quota(where, value, resources):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(where, "quota.gpu must be a dict {<GPU resource key>: count}, got %r" % (value,))
    keys = sorted(resources)
    result = {}
    for key in sorted(value):
        count = value[key]
        if key not in resources:
            _fail(where, "quota.gpu names %s, which no GPU node group provides%s; the lab's GPU resource keys: %s"
                         % (key, _closest(key, keys), ", ".join(keys) or "none (ailab_gpu_node_groups is empty)"))
        if isinstance(count, bool) or not isinstance(count, (int, str)) or not re.match(r"^\d+$", str(count).strip()):
            _fail(where, "quota.gpu.%s must be a whole number of units (0 or more), got %r" % (key, count))
        result[key] = int(str(count).strip())
        if result[key] > 0 and resources[key]["capacity"] == 0:
            _fail(where, "quota.gpu gives %d %s, but the lab has no node with it (group %s has no hosts); add the "
                         "nodes to the inventory group or remove the key" % (result[key], key, resources[key].get("group")))
        if result[key] > resources[key]["capacity"]:
            _fail(where, "quota.gpu gives %d %s, more than the whole lab has (%d, from the GPU node groups); a tenant "
                         "cannot use more than the lab provides: lower the quota or add GPU nodes"
                         % (result[key], key, resources[key]["capacity"]))
    return result


def _quota(where, value, resources):
    if not isinstance(value, Mapping):
        _fail(where, "quota is required: a dict with at least cpu and memory, e.g. {cpu: 64, memory: 256Gi, "
                     "storage: 500Gi, pvcs: 50, gpu: {<key>: 4}}")
    _unknown_keys(where, value, QUOTA_KEYS, "quota")
    for key in ("cpu", "memory"):
        if value.get(key) is None:
            _fail(where, "quota.%s is required (e.g. cpu: 64, memory: 256Gi)" % key)
    quota = {
        "cpu": _cpu(where, "quota.cpu", value["cpu"]),
        "memory": _bytes_text(_bytes(where, "quota.memory", value["memory"])),
        "storage": None,
        "pvcs": None,
        "gpu": _gpu_quota(where, value.get("gpu"), resources),
    }
    if value.get("storage") is not None:
        quota["storage"] = _bytes_text(_bytes(where, "quota.storage", value["storage"]))
    if value.get("pvcs") is not None:
        pvcs = value["pvcs"]
        if isinstance(pvcs, bool) or not isinstance(pvcs, (int, str)) or not re.match(r"^\d+$", str(pvcs).strip()):
            _fail(where, "quota.pvcs must be a whole number of PersistentVolumeClaims, got %r" % (pvcs,))
        quota["pvcs"] = str(int(str(pvcs).strip()))
    return quota


def _borrowing(where, value, quota, resources):
    """How many units of each GPU key the tenant's queue may borrow from idle quota of the others.

    Default, per key of its quota: as many as its own quota, at most what the others hold; the keys
    given in ``gpu_borrowing`` replace the default."""
    if value is None:
        return dict((key, max(0, min(count, resources[key]["capacity"] - count)))
                    for key, count in sorted(quota["gpu"].items()))
    if not isinstance(value, Mapping):
        _fail(where, "gpu_borrowing must be a dict {<GPU resource key>: count}, got %r" % (value,))
    keys = sorted(resources)
    result = _borrowing(where, None, quota, resources)
    for key in sorted(value):
        count = value[key]
        if key not in resources:
            _fail(where, "gpu_borrowing names %s, which no GPU node group provides%s; the lab's GPU resource keys: %s"
                         % (key, _closest(key, keys), ", ".join(keys) or "none"))
        if isinstance(count, bool) or not isinstance(count, (int, str)) or not re.match(r"^\d+$", str(count).strip()):
            _fail(where, "gpu_borrowing.%s must be a whole number of units (0 or more), got %r" % (key, count))
        result[key] = int(str(count).strip())
    return dict(sorted(result.items()))


def _profiles(where, value, quota, cpu_profiles, resources):
    known = sorted(set(cpu_profiles) | set(resources))
    if value is None:
        return sorted(cpu_profiles) + sorted(k for k, n in quota["gpu"].items() if n > 0)
    names = _names(where, "profiles", value)
    for name in names:
        if name not in known:
            cpu_names = ", ".join(sorted(cpu_profiles)) or "none"
            gpu_names = ", ".join(sorted(resources)) or "none"
            _fail(where, "profile %s does not exist%s; the lab's profiles are the CPU profiles (%s) and the GPU "
                  "resource keys (%s)" % (name, _closest(name, known), cpu_names, gpu_names))
        if name in resources and quota["gpu"].get(name, 0) < 1:
            _fail(where, "profile %s asks for 1 %s but quota.gpu gives the tenant %d; add %s: <count> to quota.gpu or "
                         "remove the profile" % (name, name, quota["gpu"].get(name, 0), name))
        if name in cpu_profiles:
            profile = cpu_profiles[name]
            if quantity_value(profile["cpu_guarantee"]) > quantity_value(quota["cpu"]) or \
                    quantity_value(profile["mem_guarantee"]) > quantity_value(quota["memory"]):
                _fail(where, "profile %s guarantees %s CPUs and %s memory, more than the tenant's quota (cpu %s, "
                             "memory %s); raise the quota or remove the profile"
                             % (name, profile["cpu_guarantee"], profile["mem_guarantee"], quota["cpu"], quota["memory"]))
    return names


def _tenant(index, entry, resources, cpu_profiles):
    where = "%s[%d]" % (TENANTS, index)
    if not isinstance(entry, Mapping):
        _fail(where, "must be a dict with at least name, kind and quota, got %r" % (entry,))
    name = entry.get("name")
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        _fail(where, "name must be a DNS label (lower-case letters, digits and -, at most 63 characters, starting "
                     "and ending with a letter or digit), got %r; it names the namespace, quota and queue" % (name,))
    where = "%s[%d] (tenant %s)" % (TENANTS, index, name)
    _unknown_keys(where, entry, TENANT_KEYS, "a tenant")
    namespace = entry.get("namespace", name)
    if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
        _fail(where, "namespace must be a DNS label (lower-case letters, digits and -, at most 63 characters), "
                     "got %r" % (namespace,))
    if namespace in RESERVED_NAMESPACES or namespace.startswith(RESERVED_PREFIXES):
        _fail(where, "namespace %s is reserved for Kubernetes; choose another namespace for the tenant" % namespace)
    kind = entry.get("kind")
    if kind not in KINDS:
        _fail(where, "kind must be one of %s, got %r%s" % (", ".join(KINDS), kind, _closest(kind, KINDS)))
    description = entry.get("description", "")
    if not isinstance(description, str):
        _fail(where, "description must be a string, got %r" % (description,))
    users = _users(where, entry.get("users"))
    admins = _names(where, "admins", entry.get("admins"))
    admin_groups = _names(where, "admin_groups", entry.get("admin_groups"))
    quota = _quota(where, entry.get("quota"), resources)
    borrowing = _borrowing(where, entry.get("gpu_borrowing"), quota, resources)
    requests, limits = {}, {}
    for key, count in sorted(quota["gpu"].items()):
        resource = resources[key]["resource"]
        requests[resource] = requests.get(resource, 0) + count
    for key in sorted(set(quota["gpu"]) | set(borrowing)):
        resource = resources[key]["resource"]
        limits[resource] = limits.get(resource, 0) + quota["gpu"].get(key, 0) + borrowing.get(key, 0)
    return {
        "name": name,
        "namespace": namespace,
        "kind": kind,
        "priority": KIND_PRIORITY[kind],
        "description": description,
        "users": users,
        "admins": admins,
        "admin_groups": admin_groups,
        "quota": quota,
        "gpu_borrowing": borrowing,
        "gpu_requests": dict(sorted(requests.items())),
        "gpu_limits": dict(sorted(limits.items())),
        "profiles": _profiles(where, entry.get("profiles"), quota, cpu_profiles, resources),
    }


def lab_tenants(tenants, gpu_resources=None, cpu_profiles=None):
    """``ailab_tenants`` validated and normalised, sorted by name (see docs/tenants.md).

    ``gpu_resources`` is ``lab_gpu_resources``' output; ``cpu_profiles`` the list of
    ``lab_cpu_profiles`` (None: the default CPU profiles)."""
    resources = _gpu_resources(gpu_resources)
    profiles = dict((p["name"], p) for p in lab_cpu_profiles(cpu_profiles))
    clash = sorted(set(profiles) & set(resources))
    if clash:
        _fail(CPU_PROFILES, "the CPU profile %s has the name of a GPU resource key; profile names and GPU keys share "
                            "one list, rename the CPU profile" % clash[0])
    if tenants is None:
        return []
    if isinstance(tenants, (str, bytes, Mapping)) or not isinstance(tenants, (list, tuple)):
        _fail(TENANTS, "must be a list of tenants ({name, kind, users, quota, ...}), got %s" % type(tenants).__name__)
    result, names, namespaces = [], {}, {}
    for index, entry in enumerate(_plain(tenants)):
        tenant = _tenant(index, entry, resources, profiles)
        where = "%s[%d] (tenant %s)" % (TENANTS, index, tenant["name"])
        if tenant["name"] in names:
            _fail(where, "the name is already used by entry %d; give each tenant its own name" % names[tenant["name"]])
        if tenant["namespace"] in namespaces:
            _fail(where, "namespace %s is already the namespace of tenant %s; give each tenant its own namespace"
                         % (tenant["namespace"], namespaces[tenant["namespace"]]))
        names[tenant["name"]] = index
        namespaces[tenant["namespace"]] = tenant["name"]
        result.append(tenant)
    return sorted(result, key=lambda t: t["name"])


def lab_tenants_capacity_report(tenants, gpu_resources):
    """Per GPU resource key (sorted): the lab's capacity, the sum of the tenants' quotas, whether the
    quotas oversubscribe it, and which tenants hold a quota. ``tenants`` is lab_tenants' output.

    Oversubscription is allowed (Kueue lends idle quota and reclaims it); a quota on a key the lab does
    not provide, or with capacity 0, is an error."""
    resources = _gpu_resources(gpu_resources)
    report = dict((key, {"key": key, "resource": r["resource"], "capacity": r["capacity"], "quota": 0,
                         "tenants": [], "oversubscribed": False}) for key, r in resources.items())
    for tenant in _plain(tenants or []):
        for key, count in sorted(((tenant.get("quota") or {}).get("gpu") or {}).items()):
            if key not in report:
                _fail("%s (tenant %s)" % (TENANTS, tenant.get("name")),
                      "quota.gpu names %s, which no GPU node group provides; the lab's GPU resource keys: %s"
                      % (key, ", ".join(sorted(report)) or "none"))
            if count and report[key]["capacity"] == 0:
                _fail("%s (tenant %s)" % (TENANTS, tenant.get("name")),
                      "quota.gpu gives %s, but the lab has no node with it; add nodes or remove the key" % key)
            report[key]["quota"] += count
            if count:
                report[key]["tenants"].append(tenant.get("name"))
    for item in report.values():
        item["tenants"] = sorted(item["tenants"])
        item["oversubscribed"] = item["quota"] > item["capacity"]
    return [report[key] for key in sorted(report)]


# ------------------------------------------------------------------------------ Kubernetes objects
TENANT_LABEL = "ailab.cluster/tenant"
MANAGED_BY = {"app.kubernetes.io/managed-by": "ailab.cluster"}
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
# What KubeSpawner needs in the namespace it spawns in: the Role of z2jh's hub (jupyterhub/templates/hub/rbac.yaml).
SPAWNER_RULES = [
    {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
     "verbs": ["get", "watch", "list", "create", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]
# Egress to the internet: every IPv4 address but the private, link-local (cloud metadata) ranges,
# as z2jh's singleuser.networkPolicy.egressAllowRules.nonPrivateIPs.
PRIVATE_IPV4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]

TENANT_SETTINGS = {
    "pod_security_enforce": "baseline",
    "pod_security_warn": "restricted",
    "pod_security_version": "latest",
    "admin_cluster_role": "admin",
    "member_cluster_role": "edit",
    "user_prefix": "",
    "group_prefix": "",
    "jupyterhub_namespace": "jupyterhub",
    "jupyterhub_service_account": "hub",
    "jupyterhub_hub_port": 8081,
    "jupyterhub_spawner_access": True,
    "ingress_namespace": "",
    "dns_namespace": "kube-system",
    "dns_pod_labels": {"k8s-app": "kube-dns"},
    "egress_internet": True,
    "egress_cidrs": [],
    "default_request": {"cpu": "100m", "memory": "256Mi"},
    "default_limit": {},
}
QUEUE_SETTINGS = {
    "cohort": "lab",
    "cpu_flavor": "lab-cpu",
    "gpu_flavor_prefix": "gpu-",
    "local_queue": "default",
    "queueing_strategy": "BestEffortFIFO",
    "reclaim_within_cohort": "Any",
    "within_cluster_queue": "LowerPriority",
    "priority_class_prefix": "ailab-",
    "deadline_priority": 10000,
    "batch_user_cluster_role": "kueue-batch-user-role",
    "user_prefix": "",
    "group_prefix": "",
}


def _settings(filter_name, settings, defaults):
    settings = _plain(settings or {})
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError("%s: the settings must be a dict, got %s" % (filter_name, type(settings).__name__))
    _unknown_keys(filter_name, settings, sorted(defaults), "the settings")
    result = dict(defaults)
    result.update(settings)
    return result


def _labels(tenant, extra=None):
    labels = dict(MANAGED_BY)
    labels[TENANT_LABEL] = tenant["name"]
    labels.update(extra or {})
    return dict(sorted(labels.items()))


def _meta(name, tenant, namespace=True, labels=None):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = tenant["namespace"]
    meta["labels"] = _labels(tenant, labels)
    return meta


def _subjects(users, groups, settings):
    return ([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": settings["group_prefix"] + g}
             for g in groups]
            + [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": settings["user_prefix"] + u}
               for u in users])


def _role_binding(name, tenant, role_kind, role, subjects):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(name, tenant),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": subjects}


def _namespace_selector(name):
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def _network_policy(name, tenant, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name, tenant),
            "spec": dict([("podSelector", {})] + list(spec.items()))}


def _network_policies(tenant, settings):
    """default-deny, and one policy with every allowance a tenant needs (each rule commented)."""
    same_namespace = {"podSelector": {}}
    ingress = [{"from": [same_namespace]}]
    egress = [
        {"to": [same_namespace]},
        {"to": [{"namespaceSelector": _namespace_selector(settings["dns_namespace"]),
                 "podSelector": {"matchLabels": dict(settings["dns_pod_labels"])}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]
    if settings["jupyterhub_namespace"]:
        # The proxy and the hub reach the notebooks; the notebooks call the hub's API (z2jh labels the hub's
        # pod component=hub; its own NetworkPolicy must admit other namespaces, see docs/tenants.md).
        ingress.append({"from": [{"namespaceSelector": _namespace_selector(settings["jupyterhub_namespace"])}]})
        egress.append({"to": [{"namespaceSelector": _namespace_selector(settings["jupyterhub_namespace"]),
                               "podSelector": {"matchLabels": {"component": "hub"}}}],
                       "ports": [{"protocol": "TCP", "port": int(settings["jupyterhub_hub_port"])}]})
    if settings["ingress_namespace"]:
        ingress.append({"from": [{"namespaceSelector": _namespace_selector(settings["ingress_namespace"])}]})
    if settings["egress_internet"]:
        egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_IPV4)}}]})
    if settings["egress_cidrs"]:
        egress.append({"to": [{"ipBlock": {"cidr": str(c)}} for c in settings["egress_cidrs"]]})
    return [
        _network_policy("default-deny", tenant, {"policyTypes": ["Ingress", "Egress"]}),
        _network_policy("allow-tenant-traffic", tenant, {"policyTypes": ["Ingress", "Egress"],
                                                         "ingress": ingress, "egress": egress}),
    ]


def _resource_names(gpu_resources):
    return sorted(set(r["resource"] for r in gpu_resources.values()))


def lab_tenant_objects(tenants, gpu_resources=None, settings=None):
    """The Kubernetes objects of every tenant, in apply order (namespaces first); ``tenants`` is
    lab_tenants' output, ``settings`` the role's choices (keys of TENANT_SETTINGS)."""
    settings = _settings("lab_tenant_objects", settings, TENANT_SETTINGS)
    for key in ("pod_security_enforce", "pod_security_warn"):
        if settings[key] not in POD_SECURITY_LEVELS:
            raise AnsibleFilterError("lab_tenant_objects: %s must be one of %s, got %r"
                                     % (key, ", ".join(POD_SECURITY_LEVELS), settings[key]))
    resources = _gpu_resources(gpu_resources)
    names = _resource_names(resources)
    tenants = _plain(tenants or [])
    namespaces, objects = [], []
    for tenant in tenants:
        security = {}
        for mode, level in (("enforce", settings["pod_security_enforce"]), ("warn", settings["pod_security_warn"]),
                            ("audit", settings["pod_security_warn"])):
            security["pod-security.kubernetes.io/%s" % mode] = level
            security["pod-security.kubernetes.io/%s-version" % mode] = settings["pod_security_version"]
        namespace = {"apiVersion": "v1", "kind": "Namespace",
                     "metadata": _meta(tenant["namespace"], tenant, namespace=False,
                                       labels=dict(security, **{"ailab.cluster/tenant-kind": tenant["kind"]}))}
        if tenant.get("description"):
            namespace["metadata"]["annotations"] = {"ailab.cluster/description": tenant["description"]}
        namespaces.append(namespace)
        quota = tenant["quota"]
        hard = {"requests.cpu": quota["cpu"], "requests.memory": quota["memory"]}
        if quota.get("storage"):
            hard["requests.storage"] = quota["storage"]
        if quota.get("pvcs"):
            hard["persistentvolumeclaims"] = quota["pvcs"]
        for name in names:
            # Extended resources are quota'd as requests.<name>; 0 where the tenant has no quota: it cannot use them.
            hard["requests.%s" % name] = str(tenant["gpu_limits"].get(name, 0))
        objects.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("tenant-quota", tenant),
                        "spec": {"hard": dict(sorted(hard.items()))}})
        limit = {"type": "Container", "defaultRequest": dict(sorted(settings["default_request"].items()))}
        if settings["default_limit"]:
            limit["default"] = dict(sorted(settings["default_limit"].items()))
        objects.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta("tenant-defaults", tenant),
                        "spec": {"limits": [limit]}})
        admins = _subjects(tenant["admins"], tenant["admin_groups"], settings)
        if admins:
            objects.append(_role_binding("tenant-admins", tenant, "ClusterRole", settings["admin_cluster_role"], admins))
        members = _subjects(tenant["users"]["users"], tenant["users"]["groups"], settings)
        if members:
            objects.append(_role_binding("tenant-members", tenant, "ClusterRole", settings["member_cluster_role"],
                                         members))
        if settings["jupyterhub_namespace"] and settings["jupyterhub_spawner_access"]:
            objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                            "metadata": _meta("jupyterhub-spawner", tenant), "rules": SPAWNER_RULES})
            objects.append(_role_binding("jupyterhub-spawner", tenant, "Role", "jupyterhub-spawner", [
                {"kind": "ServiceAccount", "name": settings["jupyterhub_service_account"],
                 "namespace": settings["jupyterhub_namespace"]}]))
        objects.extend(_network_policies(tenant, settings))
    return namespaces + objects


def lab_queue_objects(tenants, gpu_resources=None, settings=None):
    """The Kueue objects of the lab, in apply order: priority classes, ResourceFlavors, one
    ClusterQueue per tenant in one cohort, a LocalQueue and the batch-user RoleBinding in each tenant
    namespace. ``tenants`` is lab_tenants' output, ``settings`` the role's choices (QUEUE_SETTINGS)."""
    settings = _settings("lab_queue_objects", settings, QUEUE_SETTINGS)
    resources = _gpu_resources(gpu_resources)
    tenants = _plain(tenants or [])
    prefix = settings["priority_class_prefix"]
    classes = [(prefix + kind, KIND_PRIORITY[kind], "Workloads of %s tenants" % kind) for kind in KINDS]
    classes.append((prefix + "deadline", int(settings["deadline_priority"]),
                    "Workloads before a deadline; ahead of every tenant kind within a queue"))
    objects = []
    for name, value, description in classes:
        # Kueue preempts by quota and fair share; the kube-scheduler does not preempt for these pods.
        objects.append({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
                        "value": value, "globalDefault": False, "preemptionPolicy": "Never",
                        "description": description})
        objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
                        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
                        "value": value, "description": description})
    objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                    "metadata": {"name": settings["cpu_flavor"], "labels": dict(MANAGED_BY)}, "spec": {}})
    flavors = {}
    for key in sorted(resources):
        resource = resources[key]
        flavors[key] = settings["gpu_flavor_prefix"] + key
        spec = {"nodeLabels": dict(sorted(resource.get("node_selector", {}).items()))}
        if resource.get("tolerations"):
            spec["tolerations"] = [dict(t) for t in resource["tolerations"]]
        objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                        "metadata": {"name": flavors[key], "labels": dict(MANAGED_BY, **{
                            "ailab.cluster/gpu-resource-key": key})}, "spec": spec})
    by_resource = {}
    for key in sorted(resources):
        by_resource.setdefault(resources[key]["resource"], []).append(key)
    for tenant in tenants:
        groups = [{"coveredResources": ["cpu", "memory"], "flavors": [{"name": settings["cpu_flavor"], "resources": [
            {"name": "cpu", "nominalQuota": tenant["quota"]["cpu"], "borrowingLimit": "0"},
            {"name": "memory", "nominalQuota": tenant["quota"]["memory"], "borrowingLimit": "0"}]}]}]
        for resource_name in sorted(by_resource):
            groups.append({"coveredResources": [resource_name], "flavors": [
                {"name": flavors[key], "resources": [{
                    "name": resource_name,
                    "nominalQuota": tenant["quota"]["gpu"].get(key, 0),
                    "borrowingLimit": tenant["gpu_borrowing"].get(key, 0)}]}
                for key in by_resource[resource_name]]})
        objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
                        "metadata": _meta(tenant["name"], tenant, namespace=False),
                        "spec": {
                            "cohortName": settings["cohort"],
                            "namespaceSelector": {"matchLabels": {TENANT_LABEL: tenant["name"]}},
                            "queueingStrategy": settings["queueing_strategy"],
                            "preemption": {"reclaimWithinCohort": settings["reclaim_within_cohort"],
                                           "withinClusterQueue": settings["within_cluster_queue"]},
                            "resourceGroups": groups}})
    for tenant in tenants:
        objects.append({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                        "metadata": _meta(settings["local_queue"], tenant),
                        "spec": {"clusterQueue": tenant["name"]}})
        subjects = _subjects(sorted(set(tenant["users"]["users"] + tenant["admins"])),
                             sorted(set(tenant["users"]["groups"] + tenant["admin_groups"])), settings)
        if subjects:
            objects.append(_role_binding("kueue-batch-users", tenant, "ClusterRole",
                                         settings["batch_user_cluster_role"], subjects))
    return objects


class FilterModule(object):
    def filters(self):
        return {
            "lab_cpu_profiles": lab_cpu_profiles,
            "lab_tenants": lab_tenants,
            "lab_tenants_capacity_report": lab_tenants_capacity_report,
            "lab_tenant_objects": lab_tenant_objects,
            "lab_queue_objects": lab_queue_objects,
        }
