# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's GPU model: everything GPU-related is derived from one inventory list, ``ailab_gpu_node_groups``.

* ``lab_gpu_resources``: the lab's schedulable GPU resources (key, Kubernetes resource name, nodes,
  capacity, node selector, tolerations, a description a student understands);
* ``lab_gpu_operator_config``: what the GPU Operator needs (MIG strategy, device-plugin time-slicing
  ConfigMap, MIG manager ConfigMap, node labels, driver per node);
* ``lab_gpu_check``: inventory against the GPU facts of the reachable nodes (``nvidia_gpu_info``).

All three are pure functions of their arguments. They validate the whole list first and raise
AnsibleFilterError with one sentence that names the entry and what to change. The GPU models and MIG
rules come from ``plugins/module_utils/_gpu_models.py``. The inventory reference is ``docs/lab_model.md``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.module_utils import _gpu_models as catalogue
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import closest as _closest
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import fail as _fail
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import plain as _plain
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import unknown_keys as _unknown_keys

VARIABLE = "ailab_gpu_node_groups"
GROUP_LABEL = "ailab.cluster/gpu-group"
DEVICE_PLUGIN_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
DEVICE_PLUGIN_CONFIGMAP = "ailab-device-plugin-config"
DEVICE_PLUGIN_DEFAULT_KEY = "default"
MIG_PARTED_CONFIGMAP = "ailab-mig-parted-config"
CUSTOM_LAYOUT_PREFIX = "ailab-"

GROUP_KEYS = ("group", "gpu_model", "gpu_memory_gib", "gpus_per_node", "driver", "sharing", "key_prefix", "taints")
SHARING_KEYS = {
    "none": ("mode",),
    "time-slicing": ("mode", "replicas", "rename_by_default"),
    "mig": ("mode", "mig_strategy", "mig_config", "mig_layout"),
}
ALL_SHARING_KEYS = ("mode", "replicas", "rename_by_default", "mig_strategy", "mig_config", "mig_layout")
DRIVERS = ("operator", "host")
MIG_STRATEGIES = ("single", "mixed")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# A Kubernetes label value (the group goes into the label ailab.cluster/gpu-group and, for time-sliced
# groups, is the device-plugin config key): at most 63 characters.
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
KEY_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
TAINT_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def _integer(where, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not re.match(r"^\d+$", str(value).strip()):
        _fail(where, "%s must be a whole number of at least %d, got %r" % (name, minimum, value))
    number = int(str(value).strip())
    if number < minimum:
        _fail(where, "%s must be at least %d, got %d" % (name, minimum, number))
    return number


def _gb(value):
    """16.0 -> '16', 32.5 -> '32.5', 69.75 -> '69.8'."""
    return "%g" % round(float(value), 1)


def _slug(name):
    return catalogue.normalize_name(name).replace(" ", "-")


# ------------------------------------------------------------------------------------- validation
def _model(where, entry):
    name = entry.get("gpu_model")
    if name is None or not str(name).strip():
        _fail(where, "gpu_model is required: the GPU name as nvidia-smi prints it, e.g. NVIDIA H200")
    model = catalogue.find_model(name)
    memory = entry.get("gpu_memory_gib")
    if model is not None:
        if memory is not None:
            _fail(where, "remove gpu_memory_gib: the catalogue knows %s (%s GB)" % (model["name"], model["memory_gb"]))
        return model
    if memory is None:
        _fail(where, "unknown gpu_model %r%s; known models: %s. For another card without MIG, set gpu_memory_gib "
                     "(its memory in GiB)" % (str(name), _closest(name, catalogue.known_model_names()),
                                              ", ".join(catalogue.known_model_names())))
    if isinstance(memory, bool) or not isinstance(memory, (int, float, str)) \
            or not re.match(r"^\d+(\.\d+)?$", str(memory).strip()) or float(memory) <= 0:
        _fail(where, "gpu_memory_gib must be a positive number of GiB, got %r" % (memory,))
    if not _slug(name):
        _fail(where, "gpu_model %r is no model name; write it as nvidia-smi prints it" % (name,))
    gib = float(memory)
    return {"name": str(name).strip(), "slug": _slug(name), "aliases": (), "pci_device_ids": (),
            "memory_gb": gib, "memory_mib": int(round(gib * 1024)), "mig": None, "source": "inventory"}


def _mig_layout(where, model, layout):
    if not isinstance(layout, list) or not layout:
        _fail(where, "sharing.mig_layout must be a non-empty list of {profile, count} (per GPU), e.g. "
                     "[{profile: 1g.18gb, count: 7}]")
    result = {}
    for index, item in enumerate(layout):
        at = "%s sharing.mig_layout[%d]" % (where, index)
        if not isinstance(item, Mapping):
            _fail(at, "must be a dict {profile, count}, got %r" % (item,))
        _unknown_keys(at, item, ("profile", "count"), "a mig_layout item")
        profile = item.get("profile")
        if not isinstance(profile, str) or not profile:
            _fail(at, "profile is required, e.g. 1g.18gb; %s offers %s" % (model["name"], catalogue.offered_profiles(model)))
        if profile in result:
            _fail(at, "profile %s is listed twice; give it once with the total count" % profile)
        result[str(profile)] = _integer(at, "count", item.get("count"), 1)
    return result


def _mig(where, model, sharing):
    if catalogue.mig_table(model) is None:
        mig_models = sorted(m["name"] for m in catalogue.MODELS if m["mig"])
        _fail(where, "%s cannot run MIG; use sharing.mode none or time-slicing, or a MIG-capable model (%s)"
                     % (model["name"], ", ".join(mig_models)))
    strategy = sharing.get("mig_strategy", "mixed")
    if strategy not in MIG_STRATEGIES:
        _fail(where, "sharing.mig_strategy must be single or mixed, got %r" % (strategy,))
    has_config, has_layout = sharing.get("mig_config") is not None, sharing.get("mig_layout") is not None
    if has_config == has_layout:
        example = catalogue.layout_name(min(catalogue.mig_table(model)["profiles"]))
        _fail(where, "give either sharing.mig_config (a built-in layout such as %s) or sharing.mig_layout "
              "([{profile, count}] per GPU), %s" % (example, "not both" if has_config else "one of them is required"))
    if has_config:
        name = str(sharing["mig_config"])
        builtins = catalogue.builtin_layouts(model)
        if name not in builtins:
            _fail(where, "sharing.mig_config %r is not a MIG manager layout for %s%s; its layouts: %s"
                         % (name, model["name"], _closest(name, sorted(builtins)), ", ".join(sorted(builtins))))
        if not builtins[name]:
            _fail(where, "sharing.mig_config %s gives no MIG devices; use sharing.mode none for whole GPUs, or a "
                         "layout with devices" % name)
        layout, custom = dict(builtins[name]), False
    else:
        layout, custom = _mig_layout(where, model, sharing["mig_layout"]), True
        name = None
    problems = catalogue.layout_problems(model, layout)
    if problems:
        _fail(where, "the MIG layout %s does not fit: %s" % (_layout_text(layout), "; ".join(problems)))
    if strategy == "single" and len(layout) > 1:
        _fail(where, "mig_strategy single advertises every MIG device of a node as nvidia.com/gpu, so the layout must "
                     "use one profile, got %s; use mig_strategy mixed or one profile" % _layout_text(layout))
    return strategy, name, layout, custom


def _layout_text(layout):
    return " + ".join("%d x %s" % (count, profile) for profile, count in sorted(layout.items()))


def _tolerations(where, taints):
    if taints is None:
        return []
    if not isinstance(taints, list):
        _fail(where, "taints must be a list of {key, value, effect}, got %r" % (taints,))
    tolerations = []
    for index, taint in enumerate(taints):
        at = "%s taints[%d]" % (where, index)
        if not isinstance(taint, Mapping):
            _fail(at, "must be a dict {key, value, effect}, got %r" % (taint,))
        _unknown_keys(at, taint, ("key", "value", "effect"), "a taint")
        key, value, effect = taint.get("key"), taint.get("value"), taint.get("effect")
        if not isinstance(key, str) or not TAINT_KEY.match(key):
            _fail(at, "key must be a Kubernetes taint key such as nvidia.com/gpu, got %r" % (key,))
        if effect not in TAINT_EFFECTS:
            _fail(at, "effect must be one of %s, got %r" % (", ".join(TAINT_EFFECTS), effect))
        if value is None or value == "":
            tolerations.append({"key": str(key), "operator": "Exists", "effect": str(effect)})
        else:
            if not LABEL_VALUE.match(str(value)):
                _fail(at, "value must be a Kubernetes label value (letters, digits, - _ ., at most 63), got %r" % (value,))
            tolerations.append({"key": str(key), "operator": "Equal", "value": str(value), "effect": str(effect)})
    return tolerations


def _group(index, entry):
    where = "%s[%d]" % (VARIABLE, index)
    if not isinstance(entry, Mapping):
        _fail(where, "must be a dict with at least group and gpu_model, got %r" % (entry,))
    name = entry.get("group")
    if not isinstance(name, str) or not name:
        _fail(where, "group is required: the inventory group of the GPU nodes")
    where = "%s[%d] (group %s)" % (VARIABLE, index, name)
    if not LABEL_VALUE.match(name):
        _fail(where, "the group name must be usable as a Kubernetes label value (letters, digits, - _ ., at most "
                     "63 characters, starting and ending with a letter or digit); rename the inventory group")
    _unknown_keys(where, entry, GROUP_KEYS, "a node group")
    model = _model(where, entry)
    gpus = _integer(where, "gpus_per_node", entry.get("gpus_per_node", 1), 1)
    driver = entry.get("driver", "operator")
    if driver not in DRIVERS:
        _fail(where, "driver must be operator (the GPU Operator installs it) or host (already installed), got %r"
                     % (driver,))
    sharing = entry.get("sharing") or {"mode": "none"}
    if not isinstance(sharing, Mapping):
        _fail(where, "sharing must be a dict such as {mode: time-slicing, replicas: 4}, got %r" % (sharing,))
    _unknown_keys(where, sharing, ALL_SHARING_KEYS, "sharing")
    mode = sharing.get("mode", "none")
    if not isinstance(mode, str) or mode not in SHARING_KEYS:
        _fail(where, "sharing.mode must be none, time-slicing or mig, got %r%s" % (mode, _closest(mode, list(SHARING_KEYS))))
    for key in sorted(sharing):
        if key not in SHARING_KEYS[mode]:
            _fail(where, "sharing.%s does not apply to sharing.mode %s; remove it or change the mode" % (key, mode))
    name = str(name)  # plain str: the outputs go through yaml.safe_dump
    group = {"group": name, "index": index, "model": model, "gpus_per_node": gpus, "driver": str(driver), "mode": str(mode),
             "replicas": None, "rename_by_default": False, "mig_strategy": None, "layout_name": None,
             "layout": None, "custom_layout": False}
    if mode == "time-slicing":
        if "replicas" not in sharing:
            _fail(where, "sharing.replicas is required for time-slicing: how many pods share one GPU (at least 2)")
        group["replicas"] = _integer(where, "sharing.replicas", sharing["replicas"], 2)
        rename = sharing.get("rename_by_default", False)
        if not isinstance(rename, bool):
            _fail(where, "sharing.rename_by_default must be true or false, got %r" % (rename,))
        group["rename_by_default"] = rename
    elif mode == "mig":
        strategy, layout_name, layout, custom = _mig(where, model, sharing)
        group.update(mig_strategy=strategy, layout=layout, custom_layout=custom,
                     layout_name=layout_name or CUSTOM_LAYOUT_PREFIX + name)
        if len(group["layout_name"]) > 63:
            _fail(where, "the custom MIG layout is named %s, longer than the 63 characters of the node label %s; "
                  "use a group name of at most %d characters"
                  % (group["layout_name"], MIG_CONFIG_LABEL, 63 - len(CUSTOM_LAYOUT_PREFIX)))
    prefix = entry.get("key_prefix")
    if prefix is not None and (not isinstance(prefix, str) or not KEY_PREFIX.match(prefix)):
        _fail(where, "key_prefix must be lower-case letters, digits and -, at most 32 characters, got %r" % (prefix,))
    group["key_prefix"] = str(prefix) if prefix else None
    group["tolerations"] = _tolerations(where, entry.get("taints"))
    return group


def _groups(node_groups):
    """The validated entries of ailab_gpu_node_groups, in inventory order."""
    if node_groups is None:
        return []
    if isinstance(node_groups, (str, bytes, Mapping)) or not isinstance(node_groups, (list, tuple)):
        _fail(VARIABLE, "must be a list of node groups, got %s" % type(node_groups).__name__)
    result, seen = [], {}
    for index, entry in enumerate(_plain(node_groups)):
        group = _group(index, entry)
        if group["group"] in seen:
            _fail("%s[%d] (group %s)" % (VARIABLE, index, group["group"]),
                  "the group is already described by entry %d; describe each inventory group once" % seen[group["group"]])
        seen[group["group"]] = index
        result.append(group)
    return result


def _hosts(groups, inventory_groups, filter_name):
    """{group name: sorted hosts}; a host in two GPU groups is an error."""
    if not isinstance(inventory_groups, Mapping):
        raise AnsibleFilterError("%s: pass the inventory groups, e.g. %s | ailab.cluster.%s(groups)"
                                 % (filter_name, VARIABLE, filter_name))
    hosts, owner = {}, {}
    for group in groups:
        name = group["group"]
        if name not in inventory_groups:
            _fail("%s[%d] (group %s)" % (VARIABLE, group["index"], name),
                  "no inventory group is named %s%s; add the group to the inventory (it may be empty) or fix the name"
                  % (name, _closest(name, sorted(str(g) for g in inventory_groups))))
        members = sorted(set(str(h) for h in (inventory_groups[name] or [])))
        for host in members:
            if host in owner:
                _fail("%s[%d] (group %s)" % (VARIABLE, group["index"], name),
                      "host %s is also in group %s; a GPU node belongs to one GPU group" % (host, owner[host]))
            owner[host] = name
        hosts[name] = members
    return hosts


def _lab_mig_strategy(groups):
    strategies = sorted(set(g["mig_strategy"] for g in groups if g["mode"] == "mig"))
    if len(strategies) > 1:
        detail = ", ".join("%s: %s" % (g["group"], g["mig_strategy"]) for g in groups if g["mode"] == "mig")
        _fail(VARIABLE, "the GPU Operator's MIG strategy is one for the whole cluster, but the MIG groups disagree "
                        "(%s); give them the same sharing.mig_strategy" % detail)
    return strategies[0] if strategies else "none"


# -------------------------------------------------------------------------------------- resources
def _units(group):
    """(key, resource, mig profile, per node, memory MiB, description) of each resource of a group."""
    model, gpus, mode = group["model"], group["gpus_per_node"], group["mode"]
    if mode == "none":
        return [(model["slug"], "nvidia.com/gpu", None, gpus, model["memory_mib"],
                 "1 × %s, %s GB" % (model["name"], _gb(model["memory_gb"])))]
    if mode == "time-slicing":
        resource = "nvidia.com/gpu.shared" if group["rename_by_default"] else "nvidia.com/gpu"
        return [(model["slug"] + "-shared", resource, None, gpus * group["replicas"], model["memory_mib"],
                 "1 × %s (shared, 1 of %d time-slices), %s GB" % (model["name"], group["replicas"], _gb(model["memory_gb"])))]
    table = catalogue.mig_table(model)
    units = []
    for profile, count in sorted(group["layout"].items()):
        # Kubernetes resource names cannot hold "+": the device plugin writes 1g.18gb+me as mig-1g.18gb.me.
        name = "mig-" + profile.replace("+", ".")
        resource = "nvidia.com/" + name if group["mig_strategy"] == "mixed" else "nvidia.com/gpu"
        gib = table["profiles"][profile]["memory_gib"]
        units.append((name, resource, profile, gpus * count, int(round(gib * 1024)),
                      "1 × %s MIG %s slice, %s GB" % (model["name"], profile, _gb(gib))))
    return units


def lab_gpu_resources(node_groups, groups):
    """The lab's schedulable GPU resources, sorted by key (see docs/lab_model.md)."""
    entries = _groups(node_groups)
    return _resources(entries, _hosts(entries, groups, "lab_gpu_resources"))


def _resources(entries, hosts):
    _lab_mig_strategy(entries)
    resources, owner = [], {}
    for group in entries:
        nodes = hosts[group["group"]]
        for base_key, resource, profile, per_node, memory_mib, description in _units(group):
            key = "%s-%s" % (group["key_prefix"], base_key) if group["key_prefix"] else base_key
            if key in owner:
                _fail("%s[%d] (group %s)" % (VARIABLE, group["index"], group["group"]),
                      "the resource key %s is also produced by group %s; set key_prefix on one of them (e.g. "
                      "key_prefix: %s) so each key names one group" % (key, owner[key], _slug(group["group"])))
            owner[key] = group["group"]
            resources.append({
                "key": key,
                "resource": resource,
                "group": group["group"],
                "gpu_model": group["model"]["name"],
                "sharing": group["mode"],
                "mig_profile": profile,
                "per_node": per_node,
                "nodes": list(nodes),
                "capacity": per_node * len(nodes),
                "memory_mib": memory_mib,
                "node_selector": {GROUP_LABEL: group["group"]},
                "tolerations": [dict(t) for t in group["tolerations"]],
                "description": description,
            })
    return sorted(resources, key=lambda r: r["key"])


# ------------------------------------------------------------------------------- operator config
def _yaml(data):
    """YAML in the order the data was built (version first, as upstream writes it); every mapping is
    built in a fixed order, so the text is the same on every run."""
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=True)


def _device_plugin_config(entries, strategy):
    shared = [g for g in entries if g["mode"] == "time-slicing"]
    if not shared:
        return None
    data = {DEVICE_PLUGIN_DEFAULT_KEY: _yaml({"version": "v1", "flags": {"migStrategy": strategy}})}
    for group in shared:
        if group["group"] == DEVICE_PLUGIN_DEFAULT_KEY:
            _fail("%s[%d] (group %s)" % (VARIABLE, group["index"], group["group"]),
                  "a time-sliced group cannot be named %s: that is the device-plugin config of unlabelled nodes; "
                  "rename the inventory group" % DEVICE_PLUGIN_DEFAULT_KEY)
        data[group["group"]] = _yaml({
            "version": "v1",
            "flags": {"migStrategy": strategy},
            "sharing": {"timeSlicing": {
                "renameByDefault": group["rename_by_default"],
                "resources": [{"name": "nvidia.com/gpu", "replicas": group["replicas"]}],
            }},
        })
    return {"name": DEVICE_PLUGIN_CONFIGMAP, "default": DEVICE_PLUGIN_DEFAULT_KEY,
            "data": dict(sorted(data.items()))}


def _mig_entry(layout, device_filter=None):
    entry = {"devices": "all", "mig-enabled": True, "mig-devices": dict(sorted(layout.items()))}
    if device_filter:
        entry = dict([("device-filter", list(device_filter))] + list(entry.items()))
    return entry


def _mig_parted_config(entries):
    mig = [g for g in entries if g["mode"] == "mig"]
    if not any(g["custom_layout"] for g in mig):
        return None
    # A custom ConfigMap replaces MIG manager's own layouts: it holds every layout a group uses.
    by_name = {}
    for group in mig:
        by_name.setdefault(group["layout_name"], []).append(group)
    configs = {"all-disabled": [{"devices": "all", "mig-enabled": False}]}
    for name, users in sorted(by_name.items()):  # all-disabled first, then by name
        contents = {}
        for group in users:
            contents.setdefault(tuple(sorted(group["layout"].items())), []).append(group)
        if len(contents) == 1:
            configs[name] = [_mig_entry(users[0]["layout"])]
        else:
            # The same built-in name means other counts on other models (all-1g.10gb: 7 on A100-80GB,
            # 4 on A100-40GB): one entry per model, chosen by its PCI ids.
            configs[name] = [_mig_entry(dict(content), sorted(set(
                pci for g in groups for pci in g["model"]["pci_device_ids"])))
                for content, groups in sorted(contents.items())]
    return {"name": MIG_PARTED_CONFIGMAP,
            "data": {"config.yaml": _yaml({"version": "v1", "mig-configs": configs})}}


def lab_gpu_operator_config(node_groups, groups):
    """What the GPU Operator needs for the lab (see docs/lab_model.md)."""
    entries = _groups(node_groups)
    hosts = _hosts(entries, groups, "lab_gpu_operator_config")
    _resources(entries, hosts)  # the same checks as the resources (key clashes)
    strategy = _lab_mig_strategy(entries)
    labels, drivers = {}, {}
    for group in entries:
        for host in hosts[group["group"]]:
            host_labels = {GROUP_LABEL: group["group"]}
            if group["mode"] == "time-slicing":
                host_labels[DEVICE_PLUGIN_LABEL] = group["group"]
            elif group["mode"] == "mig":
                host_labels[MIG_CONFIG_LABEL] = group["layout_name"]
            labels[host] = dict(sorted(host_labels.items()))
            drivers[host] = group["driver"]
    return {
        "mig_strategy": strategy,
        "device_plugin_config": _device_plugin_config(entries, strategy),
        "mig_parted_config": _mig_parted_config(entries),
        "node_labels": dict(sorted(labels.items())),
        "drivers": dict(sorted(drivers.items())),
    }


# ------------------------------------------------------------------------------------- live check
def _profile_name(name):
    name = str(name or "").strip()
    return name[4:].strip() if name.upper().startswith("MIG ") else name


def _model_matches(model, gpu):
    """Whether a GPU of the facts is the inventory's model: by PCI id or name through the catalogue, or by
    name for a model the catalogue does not know."""
    if model.get("source") == "inventory":
        return catalogue.normalize_name(gpu.get("name", "")) == catalogue.normalize_name(model["name"])
    found = catalogue.find_model_by_pci_id(gpu.get("pci_device_id")) or catalogue.find_model(gpu.get("name"))
    return found is model


def _check_host(group, host, facts):
    problems = []
    model = group["model"]
    at = "%s (group %s)" % (host, group["group"])
    if not isinstance(facts, Mapping):
        return ["%s: the GPU facts are not a dict (%r)" % (at, facts)]
    gpus = [g for g in (facts.get("gpus") or []) if isinstance(g, Mapping)]
    count = facts.get("gpu_count", len(gpus))
    count = count if isinstance(count, int) and not isinstance(count, bool) else len(gpus)
    if count == 0 and group["driver"] == "operator":
        # Before the GPU Operator installs its driver container, the host has no nvidia-smi to read the
        # GPUs with (nvidia_gpu_info fail_on_no_gpu=false reports 0): nothing to compare yet.
        return []
    if count < group["gpus_per_node"]:
        problems.append("%s: %d GPU(s) found, the inventory says gpus_per_node %d"
                        % (at, count, group["gpus_per_node"]))
    for index, gpu in enumerate(gpus):
        if not _model_matches(model, gpu):
            problems.append("%s: GPU %d is %s (%s), the inventory says %s"
                            % (at, index, gpu.get("name"), gpu.get("pci_device_id"), model["name"]))
            continue
        if group["mode"] != "mig":
            continue
        if gpu.get("mig_capable") is False:
            problems.append("%s: GPU %d reports no MIG support (MIG mode %s), the inventory asks for MIG"
                            % (at, index, (gpu.get("mig_mode") or {}).get("current", "N/A")))
            continue
        offered = dict((_profile_name(p.get("name")), p) for p in (gpu.get("mig_profiles") or [])
                       if isinstance(p, Mapping))
        if not offered:
            continue  # profiles not read (nvidia_gpu_info mig_profiles=false): the catalogue's check stands
        for profile, wanted in sorted(group["layout"].items()):
            if profile not in offered:
                problems.append("%s: GPU %d does not offer the MIG profile %s (it offers: %s)"
                                % (at, index, profile, ", ".join(sorted(offered))))
            elif int(offered[profile].get("instances_total", wanted)) < wanted:
                problems.append("%s: GPU %d allows %s x %s, the layout asks for %d"
                                % (at, index, offered[profile].get("instances_total"), profile, wanted))
    return problems


def lab_gpu_check(node_groups, gpu_facts_by_host, groups=None):
    """Problems between the inventory and the GPUs of the reachable nodes; [] when they agree.

    ``gpu_facts_by_host`` maps a host to its ``nvidia_gpu_info`` result. With ``groups`` (Ansible's
    ``groups``), each host is checked against its own group; without it, against every group whose
    model it has (a host whose GPUs match no group is a problem)."""
    entries = _groups(node_groups)
    if gpu_facts_by_host is None:
        return []
    gpu_facts_by_host = _plain(gpu_facts_by_host)
    if not isinstance(gpu_facts_by_host, Mapping):
        raise AnsibleFilterError("lab_gpu_check: the GPU facts must be a dict {host: nvidia_gpu_info result}, got %s"
                                 % type(gpu_facts_by_host).__name__)
    problems = []
    if groups is not None:
        hosts = _hosts(entries, groups, "lab_gpu_check")
        for group in entries:
            for host in hosts[group["group"]]:
                if host in gpu_facts_by_host:
                    problems.extend(_check_host(group, host, gpu_facts_by_host[host]))
        return problems
    for host in sorted(gpu_facts_by_host):
        facts = gpu_facts_by_host[host]
        gpus = [g for g in ((facts or {}).get("gpus") or []) if isinstance(g, Mapping)] \
            if isinstance(facts, Mapping) else []
        candidates = [g for g in entries if gpus and _model_matches(g["model"], gpus[0])]
        if not candidates:
            problems.append("%s: its GPUs (%s) match no entry of %s" % (
                host, ", ".join(sorted(set(str(g.get("name")) for g in gpus))) or "none found", VARIABLE))
            continue
        results = [_check_host(g, host, facts) for g in candidates]
        if all(results):
            problems.extend(min(results, key=len))
    return problems


class FilterModule(object):
    def filters(self):
        return {
            "lab_gpu_resources": lab_gpu_resources,
            "lab_gpu_operator_config": lab_gpu_operator_config,
            "lab_gpu_check": lab_gpu_check,
        }
