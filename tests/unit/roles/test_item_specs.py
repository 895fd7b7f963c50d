"""Every list-of-dicts or fixed-key dict option of the roles names its keys in the argument spec.

The whole-lab check (roles/lab_check, filter lab_unknown_variables_item_keys) walks the options whose
spec lists their keys (``options:``) and reports a typo inside any item before anything changes. An
option without ``options:`` is invisible to it, so each one must be in the allow-list below, with the
reason why its keys are not fixed (or who describes them later).
"""

import re

import pytest
import yaml

from ansible_collections.ailab.cluster.plugins.filter.lab_variables import (
    lab_unknown_variables_item_keys,
    lab_unknown_variables_item_specs,
)
from unit.roles.playbook_runner import ROOT

ROLES = ROOT / "roles"

# (role, option) -> why its keys are not fixed.
FREE_FORM = {
    # Helm values merged over the role's: the chart's values.yaml decides the keys (export_check checks them).
    ("dashboard", "dashboard_chart_values"): "Helm values of the Headlamp chart",
    ("gpu_operator", "gpu_operator_extra_values"): "Helm values of the GPU Operator chart",
    ("gpu_queues", "gpu_queues_extra_values"): "Helm values of the Kueue chart",
    ("jupyterhub", "jupyterhub_chart_values"): "Helm values of the JupyterHub chart",
    ("metallb", "metallb_chart_values"): "Helm values of the MetalLB chart",
    ("metrics_server", "metrics_server_chart_values"): "Helm values of the metrics-server chart",
    ("monitoring", "monitoring_chart_values"): "Helm values of the kube-prometheus-stack chart",
    # Configuration files of upstream programs, merged as they spell them.
    ("node_prep", "node_prep_kubelet_config"): "KubeletConfiguration fields (checked by the kubelet filter's rules)",
    ("kubeadm_control_plane", "kubeadm_control_plane_kubelet_config"): "KubeletConfiguration fields",
    ("kubeadm_control_plane", "kubeadm_control_plane_kube_proxy_config"): "KubeProxyConfiguration fields",
    ("cni", "cni_flannel_backend_options"): "keys of Flannel's Backend object (net-conf.json)",
    ("docker", "docker_daemon_options_extra"): "daemon.json keys (dockerd --config-file)",
    ("gpu_queues", "gpu_queues_manager_config_extra"): "Kueue's Configuration keys, merged over the role's",
    ("jupyterhub", "jupyterhub_auth_settings"): "traitlets of the chosen authenticator class (differ per class)",
    # Kubernetes maps whose keys are names chosen by the lab.
    ("tenants", "tenants_dns_pod_labels"): "pod labels of the cluster DNS",
    ("tenants", "tenants_default_request"): "resource names of a LimitRange (cpu, memory, extended resources)",
    ("tenants", "tenants_default_limit"): "resource names of a LimitRange (cpu, memory, extended resources)",
    ("kubeadm_worker", "kubeadm_worker_node_labels"): "node label names chosen by the lab",
    ("docker", "docker_cri_dockerd_checksums"): "architectures as cri-dockerd's release archives name them",
    ("node_prep", "node_prep_sysctl"): "kernel parameter names (sysctl -a)",
    # Passed whole to modules or other roles that check them.
    ("kubernetes_apply", "kubernetes_apply_manifests"): "Kubernetes objects of any kind (checked by the API)",
    ("lab_check", "proxmox_api_connection"): "module_defaults of the Proxmox modules (they check their options)",
    ("proxmox_api_user", "proxmox_api_user_connection"): "module_defaults of the Proxmox modules",
    ("proxmox_cluster", "proxmox_cluster_api_connection"): "connection options given whole to proxmox_cluster",
    ("lab_report", "lab_report_layers"): "layer records the playbooks build, never set in an inventory",
}


def _specs():
    specs = {}
    for path in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        specs[path.parent.parent.name] = yaml.safe_load(path.read_text())
    return specs


def _options(options, path):
    """(path, option) of every option, nested options too."""
    for name, spec in (options or {}).items():
        here = "%s.%s" % (path, name) if path else name
        yield here, spec or {}
        yield from _options((spec or {}).get("options"), here)


def _undescribed(specs):
    """(role, top-level option) of every list of dicts or dict option (nested too) without options:."""
    found = set()
    for role, spec in specs.items():
        for entry_point in (spec.get("argument_specs") or {}).values():
            for path, option in _options((entry_point or {}).get("options"), ""):
                kind = option.get("type")
                if (kind == "dict" or (kind == "list" and option.get("elements") == "dict")) \
                        and not option.get("options"):
                    found.add((role, path))
    return found


SPECS = _specs()


def test_every_list_of_dicts_names_its_item_keys_or_is_allowed():
    missing = sorted((role, path) for role, path in _undescribed(SPECS)
                     if (role, path.split(".")[0]) not in FREE_FORM
                     and "." not in path)
    assert missing == [], ("these options do not list their item keys (options:) - add them to the role's "
                           "argument spec, or to FREE_FORM with the reason: %s" % missing)


def test_the_allow_list_holds_only_options_that_still_lack_keys():
    """An entry that gets its options (or no longer exists) must leave the allow-list."""
    undescribed = _undescribed(SPECS)
    stale = sorted(key for key in FREE_FORM if key not in undescribed)
    assert stale == [], "remove from FREE_FORM: %s" % stale


# Role option -> the lab-model variable it defaults to: the same keys, or a lab that passes the lab check
# would fail the role's own argument validation (or a typo would pass one of them).
LAB_MODEL_COPIES = {
    ("tenants", "tenants_list"): "ailab_tenants",
    ("tenants", "tenants_gpu_node_groups"): "ailab_gpu_node_groups",
    ("tenants", "tenants_cpu_profiles"): "ailab_cpu_profiles",
    ("gpu_queues", "gpu_queues_tenants"): "ailab_tenants",
    ("gpu_queues", "gpu_queues_gpu_node_groups"): "ailab_gpu_node_groups",
    ("gpu_queues", "gpu_queues_cpu_profiles"): "ailab_cpu_profiles",
    ("monitoring", "monitoring_gpu_node_groups"): "ailab_gpu_node_groups",
    ("gpu_operator", "gpu_operator_node_groups"): "ailab_gpu_node_groups",
    ("validation", "validation_gpu_node_groups"): "ailab_gpu_node_groups",
    ("validation", "validation_tenants"): "ailab_tenants",
    ("validation", "validation_cpu_profiles"): "ailab_cpu_profiles",
}


def _keys(option):
    return {name: _keys(sub or {}) for name, sub in (option.get("options") or {}).items()}


@pytest.mark.parametrize("role, option", sorted(LAB_MODEL_COPIES))
def test_role_copies_of_the_lab_model_have_its_keys(role, option):
    """Every entry point of the role that takes the option (gpu_operator: main and facts) has the keys."""
    lab = SPECS["lab_check"]["argument_specs"]["main"]["options"][LAB_MODEL_COPIES[(role, option)]]
    copies = {name: (entry_point or {}).get("options", {})[option]
              for name, entry_point in SPECS[role]["argument_specs"].items()
              if option in ((entry_point or {}).get("options") or {})}
    assert "main" in copies, sorted(copies)
    for mine in copies.values():
        assert mine["type"] == "list" and mine.get("elements") == "dict"
        assert _keys(mine) == _keys(lab)


# (variable, an item with every key the role reads): the keys the templates and filters read are listed.
READ_KEYS = {
    "metallb_pools": {"name": "lab", "addresses": [], "advertise": "bgp", "auto_assign": True,
                      "avoid_buggy_ips": False, "l2_interfaces": [], "bgp_peers": [], "bgp_advertisement": {}},
    "metallb_bgp_peers": {"name": "r", "peer_address": "a", "peer_asn": 1, "my_asn": 2, "peer_port": 179,
                          "hold_time": "90s", "keepalive_time": "30s", "ebgp_multihop": True,
                          "password_secret": "s", "node_selectors": [], "spec": {}},
    "metallb_reserved_networks": {"name": "dhcp", "addresses": [], "variable": "v"},
    "local_path_node_path_map": {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/x"]},
    "dashboard_read_only_extra_rules": {"api_groups": [""], "resources": ["pods"]},
    "proxmox_pci_mapping_list": {"id": "gpu", "map": [{"node": "pve-1", "path": "0000:01:00", "id": "10de:2204",
                                                       "subsystem_id": "x", "iommugroup": 1, "description": "d"}]},
    "proxmox_storage_list": {"storage": "nas", "prune_backups": {"keep_last": 1, "keep_all": False}},
    "proxmox_backup_jobs": {"id": "weekly", "prune_backups": {"keep_daily": 7}, "notes_template": "{{guestname}}"},
    "proxmox_cluster_nodes": {"name": "pve-1", "api_host": "h", "link0": "a", "link1": "b", "nodeid": 1, "votes": 1,
                              "api_port": 8006, "api_user": "root@pam", "api_password": "p", "ca_path": "/c",
                              "validate_certs": True, "api_token_id": "t", "api_token_secret": "s"},
    "proxmox_ha_groups": {"name": "lab", "nodes": ["pve-1:2"], "restricted": False, "nofailback": False,
                          "comment": "c", "state": "present"},
    "proxmox_ha_rules": {"name": "apart", "type": "resource-affinity", "resources": ["vm:201", "vm:211"],
                         "nodes": ["pve-1"], "strict": False, "affinity": "negative", "disable": False,
                         "comment": "c", "state": "present"},
    "containerd_registry_mirrors": {"registry": "docker.io", "server": "https://registry-1.docker.io",
                                    "mirrors": [{"host": "https://h", "capabilities": ["pull"], "skip_verify": False,
                                                 "ca": "/c", "override_path": False}]},
    "node_prep_hosts_extra": {"address": "10.10.0.5", "names": ["nfs"]},
    "kubeadm_control_plane_taints": {"key": "k", "value": "v", "effect": "NoSchedule"},
    "kubeadm_control_plane_apiserver_extra_args": {"name": "n", "value": "v"},
    "kubeadm_control_plane_audit_policy_rules": {"level": "None", "users": [], "userGroups": [], "verbs": [],
                                                 "resources": [{"group": "", "resources": [], "resourceNames": []}],
                                                 "namespaces": [], "nonResourceURLs": [], "omitStages": [],
                                                 "omitManagedFields": True},
    "kubeadm_worker_kubelet_extra_args": {"name": "n", "value": "v"},
    "kubeadm_worker_node_taints": {"key": "k", "effect": "NoExecute"},
    "proxmox_ha_resources": {"sid": "vm:201", "vmid": 201, "type": "vm", "state": "started", "max_restart": 1,
                             "max_relocate": 1, "group": "lab", "failback": True, "comment": "c",
                             "migrate_to": "pve-2", "relocate_to": "pve-2"},
}


def test_items_with_every_read_key_pass_and_a_typo_in_each_is_found():
    item_specs = lab_unknown_variables_item_specs(SPECS)
    assert set(READ_KEYS) <= set(item_specs), sorted(set(READ_KEYS) - set(item_specs))
    assert lab_unknown_variables_item_keys({"h": {k: [v] for k, v in READ_KEYS.items()}}, item_specs) == []
    typos = {variable: [dict(item, **{"x_" + sorted(item)[0]: 1})] for variable, item in READ_KEYS.items()}
    found = lab_unknown_variables_item_keys({"h": typos}, item_specs)
    assert sorted(f["variable"] for f in found) == sorted(READ_KEYS)


def test_the_modules_suboptions_are_the_item_keys():
    """The Proxmox roles pass their lists whole to a module: the item keys are its suboptions."""
    for role, option, module, module_option in [
        ("proxmox_storage", "proxmox_storage_list", "proxmox_storage", "storages"),
        ("proxmox_backup", "proxmox_backup_jobs", "proxmox_backup_job", "jobs"),
        ("proxmox_pci_mapping", "proxmox_pci_mapping_list", "proxmox_pci_mapping", "mappings"),
        ("proxmox_cluster", "proxmox_cluster_nodes", "proxmox_cluster", "nodes"),
        ("proxmox_ha", "proxmox_ha_groups", "proxmox_ha_group", "groups"),
        ("proxmox_ha", "proxmox_ha_rules", "proxmox_ha_rule", "rules"),
        ("proxmox_ha", "proxmox_ha_resources", "proxmox_ha_resource", "resources"),
    ]:
        source = (ROOT / "plugins" / "modules" / ("%s.py" % module)).read_text()
        quoted = re.search(r"DOCUMENTATION\s*=\s*r?(?:'''|\"\"\")(.*?)(?:'''|\"\"\")", source, re.S)
        documentation = yaml.safe_load(quoted.group(1))
        suboptions = documentation["options"][module_option]["suboptions"]

        def keys(options, field):
            """Each option and each of its aliases (the HA group's and rule's name): an item may use either.
            The role spec lists an alias as an option of its own (ansible-lint's schema has no aliases)."""
            found = {}
            for name, sub in options.items():
                for key in [name] + list(sub.get("aliases") or []):
                    found[key] = keys(sub.get(field) or {}, field)
            return found

        mine = SPECS[role]["argument_specs"]["main"]["options"][option]
        assert keys(mine["options"], "options") == keys(suboptions, "suboptions"), option


def test_the_ha_modules_aliases_are_valid_item_keys():
    """proxmox_ha_group and proxmox_ha_rule accept group / rule for the name: the lab check accepts them too."""
    item_specs = lab_unknown_variables_item_specs(SPECS)
    lab = {"proxmox_ha_groups": [{"group": "lab", "nodes": ["pve-1"]}],
           "proxmox_ha_rules": [{"rule": "apart", "type": "resource-affinity", "resources": ["vm:1", "vm:2"],
                                 "affinity": "negative"}]}
    assert lab_unknown_variables_item_keys({"h": lab}, item_specs) == []
    lab["proxmox_ha_rules"][0]["afinity"] = "negative"
    (found,) = lab_unknown_variables_item_keys({"h": lab}, item_specs)
    assert found["variable"] == "proxmox_ha_rules", found
