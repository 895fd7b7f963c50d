# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role ailab.cluster.jupyterhub: notebook profiles derived from the lab model.

* ``jupyterhub_profiles``: the z2jh ``singleuser.profileList`` (KubeSpawner ``profile_list``): the lab's
  CPU profiles, then one profile per GPU resource that a node provides (whole GPU, MIG slice,
  time-slice), each with the ``kubespawner_override`` that reaches it;
* ``jupyterhub_tenant_access``: per tenant, who belongs to it, its namespace and the profile slugs it
  may use: what the hub's ``ailab-tenants`` snippet (roles/jupyterhub/files/tenants.py) reads to show a
  user only the profiles of their tenants and to start their server in the tenant's namespace.

Inputs are the outputs of ``lab_gpu_resources``, ``lab_tenants`` and ``lab_cpu_profiles``. Their
documentation is in the ``<filter name>.yml`` files next to this one; the role's README and
docs/jupyterhub.md explain the result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import fail as _fail
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import plain as _plain

# The label lab_gpu puts on the nodes of a GPU group (node_selector of every GPU resource).
GROUP_LABEL = "ailab.cluster/gpu-group"
OPTION_KEYS = ("gpu_cpu_profile", "gpu_image", "default_profile")
CPU_KEYS = ("name", "description", "kubespawner_override")
SIZE_KEYS = ("cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit")
# KubeSpawner's ByteSpecification: a number with K, M, G or T (powers of 1024), or bytes.
KUBESPAWNER_BYTES = re.compile(r"^[0-9]+(\.[0-9]+)?[KMGT]$")
SLUG = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
IMAGE = re.compile(r"^[^\s:@]+(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$")


def _closest(word, choices):
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return " (did you mean %s?)" % match[0] if match else ""


def _number(value):
    """2.0 -> '2', 0.5 -> '0.5'."""
    return "%g" % value


def _memory(size):
    """KubeSpawner's 4G (powers of 1024) as a reader sees it: 4 GiB."""
    return "%s %siB" % (size[:-1], size[-1])


# ---------------------------------------------------------------------------------------- inputs
def _cpu_profiles(cpu_profiles):
    if not isinstance(cpu_profiles, (list, tuple)) or not cpu_profiles:
        raise AnsibleFilterError(
            "jupyterhub_profiles: cpu_profiles must be the non-empty list of lab_cpu_profiles, e.g. "
            "ailab_cpu_profiles | default([]) | ailab.cluster.lab_cpu_profiles, got %r" % (cpu_profiles,))
    result, seen = [], set()
    for index, profile in enumerate(_plain(cpu_profiles)):
        where = "ailab_cpu_profiles[%d]" % index
        if not isinstance(profile, Mapping) or not isinstance(profile.get("name"), str) \
                or not isinstance(profile.get("kubespawner_override"), Mapping):
            _fail(where, "expected an entry of lab_cpu_profiles (name, description, kubespawner_override), got %r"
                         % (profile,))
        name = profile["name"]
        where = "%s (profile %s)" % (where, name)
        if not SLUG.match(name):
            _fail(where, "the name is also the profile's slug: lower-case letters, digits, - and ., at most 63")
        if name in seen:
            _fail(where, "duplicate profile name %s: two profiles cannot share a name (it is the slug users "
                         "pick); rename one in ailab_cpu_profiles" % name)
        seen.add(name)
        sizes = profile["kubespawner_override"]
        for key in SIZE_KEYS:
            if key not in sizes:
                _fail(where, "kubespawner_override lacks %s; pass the profiles through ailab.cluster.lab_cpu_profiles"
                             % key)
        for key in ("cpu_guarantee", "cpu_limit"):
            if isinstance(sizes[key], bool) or not isinstance(sizes[key], (int, float)) or sizes[key] <= 0:
                _fail(where, "%s must be a positive number of CPUs, got %r" % (key, sizes[key]))
        for key in ("mem_guarantee", "mem_limit"):
            if not isinstance(sizes[key], str) or not KUBESPAWNER_BYTES.match(sizes[key]):
                _fail(where, "%s must be a KubeSpawner size such as 4G (K, M, G, T), got %r" % (key, sizes[key]))
        result.append({"name": name, "description": str(profile.get("description") or ""),
                       "sizes": dict((k, sizes[k]) for k in SIZE_KEYS)})
    return result


def _gpu_resources(gpu_resources):
    if gpu_resources is None:
        return []
    if not isinstance(gpu_resources, (list, tuple)):
        raise AnsibleFilterError(
            "jupyterhub_profiles: the GPU resources must be the list of lab_gpu_resources, e.g. "
            "ailab_gpu_node_groups | ailab.cluster.lab_gpu_resources(groups), got %s" % type(gpu_resources).__name__)
    result = []
    for item in _plain(gpu_resources):
        needed = {"key", "resource", "capacity", "node_selector", "tolerations", "description", "group"}
        if not isinstance(item, Mapping) or not needed <= set(item):
            raise AnsibleFilterError(
                "jupyterhub_profiles: each GPU resource must come from ailab.cluster.lab_gpu_resources (key, "
                "resource, group, capacity, node_selector, tolerations, description), got %r" % (item,))
        result.append(item)
    return result


def _options(options):
    options = _plain(options or {})
    if not isinstance(options, Mapping):
        raise AnsibleFilterError("jupyterhub_profiles: options must be a dict (%s), got %r"
                                 % (", ".join(OPTION_KEYS), options))
    for key in sorted(options):
        if key not in OPTION_KEYS:
            raise AnsibleFilterError("jupyterhub_profiles: unknown option %s%s; valid options: %s"
                                     % (key, _closest(key, OPTION_KEYS), ", ".join(OPTION_KEYS)))
    image = options.get("gpu_image") or ""
    if not isinstance(image, str) or (image and not IMAGE.match(image)):
        raise AnsibleFilterError("jupyterhub_gpu_image must be an image reference such as "
                                 "quay.io/jupyter/pytorch-notebook:cuda12-2025-10-20, got %r" % (image,))
    return options


# -------------------------------------------------------------------------------------- profiles
def _cpu_profile(profile, gpu_names):
    sizes = profile["sizes"]
    override = dict(sizes)
    if gpu_names:
        # A spawner whose last start failed is reused: clear what a GPU profile may have set
        # (KubeSpawner merges dict overrides and drops keys whose value is null).
        override["extra_resource_limits"] = dict((name, None) for name in gpu_names)
        override["node_selector"] = {GROUP_LABEL: None}
        # Keep CPU notebooks off GPU nodes while other nodes have room.
        override["node_affinity_preferred"] = [{
            "weight": 100,
            "preference": {"matchExpressions": [{"key": GROUP_LABEL, "operator": "DoesNotExist"}]},
        }]
    cores = "%s to %s CPUs" % (_number(sizes["cpu_guarantee"]), _number(sizes["cpu_limit"]))
    memory = "%s to %s memory" % (_memory(sizes["mem_guarantee"]), _memory(sizes["mem_limit"]))
    return {
        "display_name": "CPU only: %s" % profile["name"],
        "slug": profile["name"],
        "description": profile["description"] or "CPU notebook: %s, %s" % (cores, memory),
        "kubespawner_override": override,
    }


def _gpu_profile(resource, sizes, gpu_names, image):
    override = dict(sizes)
    limits = dict((name, None) for name in gpu_names)
    limits[resource["resource"]] = "1"
    override["extra_resource_limits"] = limits
    override["node_selector"] = dict(resource["node_selector"])
    if resource["tolerations"]:
        override["tolerations"] = [dict(t) for t in resource["tolerations"]]
    if image:
        override["image"] = image
    return {
        "display_name": "GPU: %s" % resource["description"],
        "slug": resource["key"],
        "description": "%s, with %s to %s CPUs and %s to %s memory (GPU nodes of group %s)" % (
            resource["description"], _number(sizes["cpu_guarantee"]), _number(sizes["cpu_limit"]),
            _memory(sizes["mem_guarantee"]), _memory(sizes["mem_limit"]), resource["group"]),
        "kubespawner_override": override,
    }


def _check_tenants(tenants, slugs, resources):
    if tenants is None:
        return
    if not isinstance(tenants, (list, tuple)):
        raise AnsibleFilterError("jupyterhub_profiles: tenants must be the list of lab_tenants, got %s"
                                 % type(tenants).__name__)
    seen = set()
    for index, tenant in enumerate(_plain(tenants)):
        if not isinstance(tenant, Mapping) or not isinstance(tenant.get("name"), str):
            raise AnsibleFilterError("jupyterhub_profiles: each tenant must come from ailab.cluster.lab_tenants, got %r"
                                     % (tenant,))
        where = "ailab_tenants[%d] (tenant %s)" % (index, tenant["name"])
        if tenant["name"] in seen:
            _fail(where, "duplicate tenant name %s: it is also the JupyterHub group of the tenant; give each tenant "
                         "its own name" % tenant["name"])
        seen.add(tenant["name"])
        quota = (tenant.get("quota") or {}).get("gpu") or {}
        for name in tenant.get("profiles") or []:
            if name in slugs:
                if name in resources and int(quota.get(name, 0)) < 1:
                    _fail(where, "profile %s needs 1 %s but quota.gpu gives the tenant none; its notebooks would be "
                                 "refused by the ResourceQuota. Add %s to quota.gpu or remove the profile"
                                 % (name, resources[name]["resource"], name))
                continue
            if name in resources:
                _fail(where, "profile %s asks for a GPU kind no node has: group %s has no nodes in the inventory; add "
                             "nodes to the group or remove the profile" % (name, resources[name]["group"]))
            _fail(where, "profile %s asks for a profile or GPU kind the lab does not have%s; the lab offers %s"
                         % (name, _closest(name, slugs), ", ".join(slugs)))


def jupyterhub_profiles(gpu_resources, tenants=None, cpu_profiles=None, options=None):
    """The z2jh ``singleuser.profileList``: CPU profiles (inventory order), then one per GPU resource
    with capacity (sorted by key). Raises AnsibleFilterError on duplicate names, tenant profiles that
    no node provides, and GPU profiles without quota."""
    cpu = _cpu_profiles(cpu_profiles)
    resources = _gpu_resources(gpu_resources)
    options = _options(options)
    by_key = dict((r["key"], r) for r in resources)
    present = [r for r in resources if int(r["capacity"]) > 0]
    cpu_names = [p["name"] for p in cpu]
    for resource in resources:
        if resource["key"] in cpu_names:
            _fail("ailab_cpu_profiles (profile %s)" % resource["key"],
                  "duplicate profile name: the CPU profile has the name of a GPU resource key; rename the CPU profile")
    gpu_base = options.get("gpu_cpu_profile") or cpu_names[0]
    if gpu_base not in cpu_names:
        _fail("jupyterhub_gpu_cpu_profile", "%s is not a CPU profile%s; GPU profiles take their CPU and memory from "
                                            "one of %s" % (gpu_base, _closest(gpu_base, cpu_names), ", ".join(cpu_names)))
    sizes = [p for p in cpu if p["name"] == gpu_base][0]["sizes"]
    gpu_names = sorted(set(r["resource"] for r in resources))
    profiles = [_cpu_profile(p, gpu_names) for p in cpu]
    profiles += [_gpu_profile(r, sizes, gpu_names, options.get("gpu_image")) for r in present]
    slugs = [p["slug"] for p in profiles]
    _check_tenants(tenants, slugs, by_key)
    default = options.get("default_profile") or slugs[0]
    if default not in slugs:
        _fail("jupyterhub_default_profile", "%s is not a profile of the lab%s; choose one of %s"
                                            % (default, _closest(default, slugs), ", ".join(slugs)))
    for profile in profiles:
        if profile["slug"] == default:
            profile["default"] = True
    return profiles


def jupyterhub_tenant_access(tenants, profiles):
    """Per tenant (lab_tenants' order): name, namespace, the users and identity-provider groups that
    belong to it, and the profile slugs it may use, in the order of the profile list."""
    slugs = [p.get("slug") for p in _plain(profiles or [])]
    result = []
    for tenant in _plain(tenants or []):
        if not isinstance(tenant, Mapping) or not {"name", "namespace", "users", "profiles"} <= set(tenant):
            raise AnsibleFilterError("jupyterhub_tenant_access: each tenant must come from ailab.cluster.lab_tenants "
                                     "(name, namespace, users, profiles), got %r" % (tenant,))
        allowed = set(tenant["profiles"] or [])
        unknown = sorted(allowed - set(slugs))
        if unknown:
            _fail("ailab_tenants (tenant %s)" % tenant["name"],
                  "profile %s is not in the lab's profile list (%s)" % (unknown[0], ", ".join(slugs)))
        users = tenant["users"] or {}
        result.append({
            "name": tenant["name"],
            "namespace": tenant["namespace"],
            "users": sorted(set(users.get("users") or []) | set(tenant.get("admins") or [])),
            "groups": sorted(set(users.get("groups") or []) | set(tenant.get("admin_groups") or [])),
            "profiles": [s for s in slugs if s in allowed],
        })
    return result


class FilterModule(object):
    def filters(self):
        return {
            "jupyterhub_profiles": jupyterhub_profiles,
            "jupyterhub_tenant_access": jupyterhub_tenant_access,
        }
