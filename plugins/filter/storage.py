# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the storage layer (roles rook_ceph, nfs_provisioner, local_path; playbooks/storage.yml).

* ``storage_classes``: the StorageClasses the lab's enabled backends create, with their default flags;
* ``storage_default_class``: the one default StorageClass of the lab (refuses none and several);
* ``storage_unmanaged_defaults``: default StorageClasses found in a cluster that the inventory does not manage;
* ``rook_ceph_storage_nodes``: the ``storage.nodes`` list of the CephCluster from the storage group's host vars;
* ``local_path_node_path_map``: a checked ``nodePathMap`` of the local-path-provisioner's config.json.

Their documentation is in the ``<filter name>.yml`` files next to this one. The lab-level filters read
the inventory variables of one host (``hostvars[inventory_hostname]``); a variable the inventory does
not set takes the default of the role that owns it, listed in ``BACKENDS`` (a unit test keeps the two
in step).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"

# Backend -> the StorageClasses it creates: (class name variable, its role default, default-class flag
# variable, variable that enables the class or None when the backend always creates it).
BACKENDS = {
    "rook_ceph": (
        ("rook_ceph_block_storage_class", "ceph-block", "rook_ceph_block_default_class", None),
        ("rook_ceph_filesystem_storage_class", "ceph-filesystem", "rook_ceph_filesystem_default_class",
         "rook_ceph_filesystem_enabled"),
    ),
    "nfs_provisioner": (
        ("nfs_provisioner_storage_class", "nfs-client", "nfs_provisioner_default_class", None),
    ),
    "local_path": (
        ("local_path_storage_class", "local-path", "local_path_default_class", None),
    ),
}

# A DNS subdomain (RFC 1123), what Kubernetes accepts as a StorageClass name.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DEVICE = re.compile(r"^/dev/[^\s/][^\s]*$")
NODE_NAME = DNS_SUBDOMAIN
LOCAL_PATH_DEFAULT_NODE = "DEFAULT_PATH_FOR_NON_LISTED_NODES"


def _settings(settings, filter_name):
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError("%s: pass the inventory variables of the host, e.g. hostvars[inventory_hostname], "
                                 "got %s" % (filter_name, type(settings).__name__))
    return settings


def _flag(settings, name, default=False):
    value = settings.get(name, default)
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise AnsibleFilterError("%s must be true or false, got %r" % (name, value)) from None


def _backends(settings):
    value = settings.get("ailab_storage_backends", [])
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise AnsibleFilterError("ailab_storage_backends must be a list such as [rook_ceph, nfs_provisioner], got %r"
                                 % (value,))
    backends = list(value)
    for backend in backends:
        if backend not in BACKENDS:
            raise AnsibleFilterError(
                "ailab_storage_backends: %r is not a storage backend of ailab.cluster; use any of %s (or [] for none)"
                % (backend, ", ".join(BACKENDS)))
    if len(set(backends)) != len(backends):
        raise AnsibleFilterError("ailab_storage_backends lists a backend twice: %s" % ", ".join(backends))
    return backends


def storage_classes(settings):
    """The StorageClasses of the enabled backends, in the order of ``ailab_storage_backends``: a list of
    ``{name, backend, default, flag}`` (``flag`` is the variable that makes the class the default)."""
    settings = _settings(settings, "storage_classes")
    backends = _backends(settings)
    classes = []
    for backend in backends:
        for name_var, name_default, flag_var, enabled_var in BACKENDS[backend]:
            if enabled_var is not None and not _flag(settings, enabled_var):
                if _flag(settings, flag_var):
                    raise AnsibleFilterError(
                        "%s is true but %s is false: enable the class or make another one the default"
                        % (flag_var, enabled_var))
                continue
            name = settings.get(name_var, name_default)
            if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name):
                raise AnsibleFilterError("%s must be a StorageClass name (lowercase letters, digits, '-' and '.'), got %r"
                                         % (name_var, name))
            classes.append({"name": name, "backend": backend, "default": _flag(settings, flag_var), "flag": flag_var})
    for backend, entries in BACKENDS.items():
        if backend in backends:
            continue
        for _name_var, _name_default, flag_var, _enabled_var in entries:
            if _flag(settings, flag_var):
                raise AnsibleFilterError(
                    "%s is true but %s is not in ailab_storage_backends (%s): add the backend or set the flag to false"
                    % (flag_var, backend, ", ".join(backends) or "empty"))
    seen = {}
    for cls in classes:
        if cls["name"] in seen:
            raise AnsibleFilterError("StorageClass %r would be created by both %s and %s: give each class its own name"
                                     % (cls["name"], seen[cls["name"]], cls["backend"]))
        seen[cls["name"]] = cls["backend"]
    return classes


def storage_default_class(settings):
    """The name of the lab's one default StorageClass; empty when ``ailab_storage_backends`` is empty."""
    classes = storage_classes(settings)
    if not classes:
        return ""
    defaults = [c for c in classes if c["default"]]
    if len(defaults) > 1:
        raise AnsibleFilterError(
            "Two or more default StorageClasses: %s are all true; set exactly one of them to true. With several "
            "defaults Kubernetes gives a PVC without storageClassName the newest one, so volumes land on whichever "
            "backend was installed last." % " and ".join("%s (%s)" % (c["name"], c["flag"]) for c in defaults))
    if not defaults:
        raise AnsibleFilterError(
            "No default StorageClass: set exactly one of %s to true (group_vars/all). Without a default class, PVCs "
            "that name no storageClassName (JupyterHub user volumes, most charts) stay Pending."
            % ", ".join("%s (%s)" % (c["flag"], c["name"]) for c in classes))
    return defaults[0]["name"]


def storage_unmanaged_defaults(cluster_classes, settings):
    """Names of the StorageClasses of a cluster (``k8s_info`` resources) that are marked default and that
    the inventory's enabled backends do not create."""
    managed = set(c["name"] for c in storage_classes(settings))
    found = []
    for obj in cluster_classes or []:
        if not isinstance(obj, Mapping):
            raise AnsibleFilterError("storage_unmanaged_defaults: expected StorageClass objects, got %r" % (obj,))
        metadata = obj.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        if str(annotations.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true" and metadata.get("name") not in managed:
            found.append(metadata.get("name"))
    return sorted(found)


def _rook_device_name(path):
    """The two forms Rook documents for storage.nodes[].devices[].name (deploy/examples/cluster.yaml): a
    kernel name (``sdb`` for /dev/sdb) or a full udev path (/dev/disk/by-id/..., /dev/mapper/...)."""
    rest = path[len("/dev/"):]
    return rest if "/" not in rest else path


def rook_ceph_storage_nodes(hosts, hostvars, group="rook_ceph_storage_group"):
    """The CephCluster ``storage.nodes``: one entry per host of the storage group, named after its
    Kubernetes node (``node_prep_hostname`` or the inventory name, which must be its
    ``kubernetes.io/hostname`` label), with the raw devices of its ``rook_ceph_devices`` host variable:
    /dev/sdb as ``sdb``, udev paths such as /dev/disk/by-id/... whole. Every problem of every host is
    reported at once."""
    if isinstance(hosts, (str, bytes, Mapping)) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError("rook_ceph_storage_nodes: expected the list of hosts of %s, got %r" % (group, hosts))
    hosts = list(hosts)
    if not hosts:
        raise AnsibleFilterError(
            "The inventory group %s (rook_ceph_storage_group) has no hosts or does not exist: add the nodes whose "
            "raw disks Ceph may use, each with rook_ceph_devices, or remove rook_ceph from ailab_storage_backends."
            % group)
    problems = []
    nodes = []
    names = {}
    for host in hosts:
        hv = hostvars[host]
        name = hv.get("node_prep_hostname") or host
        devices = hv.get("rook_ceph_devices", [])
        if devices is None:
            devices = []
        if isinstance(devices, (str, bytes, Mapping)) or not hasattr(devices, "__iter__"):
            problems.append("%s: rook_ceph_devices must be a list of device paths such as [/dev/sdb], got %r"
                            % (host, devices))
            continue
        devices = list(devices)
        if not devices:
            problems.append("%s: rook_ceph_devices is empty; list at least one raw disk such as /dev/sdb or "
                            "/dev/disk/by-id/... (a disk without partitions or filesystem: Ceph takes it whole)" % host)
        bad = [d for d in devices if not isinstance(d, str) or not DEVICE.match(d)]
        if bad:
            problems.append("%s: rook_ceph_devices entries must be absolute device paths under /dev/, got %s"
                            % (host, ", ".join(repr(d) for d in bad)))
        twice = sorted(set(d for d in devices if isinstance(d, str) and devices.count(d) > 1))
        if twice:
            problems.append("%s: rook_ceph_devices lists %s more than once" % (host, ", ".join(twice)))
        if not isinstance(name, str) or not NODE_NAME.match(name):
            problems.append("%s: %r is not a Kubernetes node name" % (host, name))
        elif name in names:
            problems.append("%s and %s are both the Kubernetes node %s" % (names[name], host, name))
        names.setdefault(name, host)
        nodes.append({"name": name, "devices": [{"name": _rook_device_name(d)} for d in devices]})
    if problems:
        raise AnsibleFilterError("Rook-Ceph storage nodes (group %s): %s" % (group, "; ".join(problems)))
    return nodes


def local_path_node_path_map(node_path_map):
    """``nodePathMap`` of the local-path-provisioner checked by its rules (upstream values.yaml comments):
    every path absolute and not ``/``, no path twice for a node, no node twice, no node with no path."""
    what = "local_path_node_path_map"
    if isinstance(node_path_map, (str, bytes, Mapping)) or not hasattr(node_path_map, "__iter__"):
        raise AnsibleFilterError("%s must be a list of {node, paths}, got %r" % (what, node_path_map))
    entries = list(node_path_map)
    if not entries:
        raise AnsibleFilterError("%s is empty: list at least {node: %s, paths: [/opt/local-path-provisioner]}"
                                 % (what, LOCAL_PATH_DEFAULT_NODE))
    problems = []
    seen = set()
    out = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or set(entry) != {"node", "paths"}:
            problems.append("entry %d must be {node: <node name or %s>, paths: [<absolute paths>]}, got %r"
                            % (index, LOCAL_PATH_DEFAULT_NODE, entry))
            continue
        node, paths = entry["node"], entry["paths"]
        if not isinstance(node, str) or not (node == LOCAL_PATH_DEFAULT_NODE or NODE_NAME.match(node)):
            problems.append("entry %d: node %r is neither a Kubernetes node name nor %s"
                            % (index, node, LOCAL_PATH_DEFAULT_NODE))
        elif node in seen:
            problems.append("node %s is listed twice" % node)
        seen.add(node)
        if isinstance(paths, (str, bytes, Mapping)) or not hasattr(paths, "__iter__") or not list(paths):
            problems.append("node %s: paths must be a non-empty list of absolute directories (the provisioner "
                            "refuses a listed node without paths)" % node)
            continue
        paths = list(paths)
        bad = [p for p in paths if not isinstance(p, str) or not p.startswith("/") or p.rstrip("/") == ""]
        if bad:
            problems.append("node %s: paths must be absolute and not '/', got %s" % (node, ", ".join(repr(p) for p in bad)))
        norm = [p.rstrip("/") for p in paths if isinstance(p, str)]
        twice = sorted(set(p for p in norm if norm.count(p) > 1))
        if twice:
            problems.append("node %s: path %s listed twice" % (node, ", ".join(twice)))
        out.append({"node": node, "paths": paths})
    if problems:
        raise AnsibleFilterError("%s: %s" % (what, "; ".join(problems)))
    return out


class FilterModule(object):
    def filters(self):
        return {
            "storage_classes": storage_classes,
            "storage_default_class": storage_default_class,
            "storage_unmanaged_defaults": storage_unmanaged_defaults,
            "rook_ceph_storage_nodes": rook_ceph_storage_nodes,
            "local_path_node_path_map": local_path_node_path_map,
        }
