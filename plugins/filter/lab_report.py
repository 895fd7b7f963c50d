# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab report: one plain dict that says what the lab is and where to reach it.

* ``lab_report_model``: services (Proxmox VE, JupyterHub, the Kubernetes dashboard, Grafana, the Ceph
  dashboard) with a link or the reason there is none and a status; nodes with their groups and roles;
  GPU groups with model, count and sharing mode; tenants with quotas and queues; the table of what each
  layer ran against. Everything comes from the inventory (the lab model filters lab_gpu_resources and
  lab_tenants), the platform roles' settings and, in apply mode, the Services read from the cluster.
* ``lab_report_summary``: the same model as readable lines for the run output.

Both are pure functions. No address is invented: a LoadBalancer address is shown only when the
inventory pins it (MetalLB annotation) or the cluster reports it; otherwise the card says how to find
it. The model never holds a secret: its inputs are names, addresses, ports and quotas only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.lab_gpu import lab_gpu_resources
from ansible_collections.ailab.cluster.plugins.filter.lab_tenants import lab_tenants, lab_tenants_capacity_report
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import fail as _fail
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import plain as _plain
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import unknown_keys as _unknown_keys

LAYERS = "lab_report_layers"
LAYER_KEYS = ("layer", "target", "result", "seconds", "detail")
TARGETS = ("simulator", "containers", "test double", "export", "cluster", "not run")
MODES = ("apply", "export", "check")
PLATFORM_LAYERS = ("Storage", "Services (MetalLB, metrics-server)", "GPU Operator", "Tenants and GPU queues",
                   "JupyterHub", "Monitoring", "Dashboard")
# Service cards in the order of the landing page: (key, section).
SERVICE_ORDER = (("proxmox", "Hypervisor"), ("jupyterhub", "Lab services"), ("dashboard", "Kubernetes"),
                 ("grafana", "Monitoring"), ("ceph", "Storage"))


# ------------------------------------------------------------------------------------------ inputs
def _mapping(value, where):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError("lab_report_model: %s must be a dict, got %s" % (where, type(value).__name__))
    return value


def _bool(value):
    """A flag as Ansible reads it: true/false, yes/no, 1/0 as strings too."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def _text(value):
    return "" if value is None else str(value)


def _address(hostvars, host):
    """node_prep_address (the node's lab address), else ansible_host; '' when neither is set."""
    if not isinstance(hostvars, Mapping) or host not in hostvars:
        return ""
    host_vars = hostvars[host]
    for key in ("node_prep_address", "ansible_host"):
        try:
            value = host_vars.get(key) if isinstance(host_vars, Mapping) else None
        except Exception:  # an undefined or failing template: no address rather than no report
            value = None
        if value:
            return str(value)
    return ""


# ---------------------------------------------------------------------------------------- services
def _card(key, section, name, description):
    return {"key": key, "section": section, "name": name, "description": description, "url": None, "why": "",
            "status": "not configured", "state": "off"}


def _lb_pending_why(namespace, service, pools):
    why = "LoadBalancer IP assigned at install \u2014 `kubectl -n %s get svc %s`" % (namespace, service)
    if not pools:
        why += " (no MetalLB pool in metallb_pools: the address stays <pending> until one exists)"
    return why


def _kubernetes_card(card, spec, pools):
    """Link (or the reason there is none) of a Service described by spec {namespace, service, type,
    load_balancer_ip, scheme, port, path}."""
    namespace, service = _text(spec.get("namespace")), _text(spec.get("service"))
    kind = _text(spec.get("type")) or "ClusterIP"
    scheme = _text(spec.get("scheme")) or "http"
    port = int(spec.get("port") or (443 if scheme == "https" else 80))
    default_port = 443 if scheme == "https" else 80
    card.update(namespace=namespace, service=service, service_type=kind)

    def url(host):
        return "%s://%s%s%s" % (scheme, host, "" if port == default_port else ":%d" % port, _text(spec.get("path")) or "/")

    pinned = _text(spec.get("load_balancer_ip"))
    if kind == "LoadBalancer" and pinned:
        card["url"] = url(pinned)
    elif kind == "LoadBalancer":
        card["why"] = _lb_pending_why(namespace, service, pools)
    elif kind == "NodePort":
        card["why"] = "NodePort assigned at install \u2014 `kubectl -n %s get svc %s`, then http://<node>:<port>" % (
            namespace, service)
    else:
        local = port if port >= 1024 else (8443 if scheme == "https" else 8080)
        card["why"] = "ClusterIP only \u2014 `kubectl -n %s port-forward svc/%s %d:%d`, then %s://localhost:%d/" % (
            namespace, service, local, port, scheme, local)
    card["_url"] = url
    return card


def _service_status(card, observed, mode):
    """Status text and state (ok / pending / info / off) from the mode and, in apply mode, the Service."""
    url_of = card.pop("_url", None)
    if mode == "export":
        card.update(status="exported, not deployed", state="info")
        return card
    if mode == "check":
        card.update(status="not checked (check mode)", state="info")
        return card
    if observed is None:
        card.update(status="not checked", state="info")
        return card
    observed = _mapping(observed, "statuses.%s" % card["key"])
    if observed.get("error"):
        card.update(status="not checked: %s" % observed["error"], state="pending")
        return card
    if not observed.get("found"):
        card.update(status="Service %s/%s not found" % (card.get("namespace"), card.get("service")), state="off")
        return card
    if card.get("service_type") != "LoadBalancer":
        card.update(status="running (%s)" % card.get("service_type"), state="ok")
        return card
    ingress = [str(a) for a in observed.get("addresses") or [] if a]
    if not ingress:
        card.update(status="LoadBalancer address pending", state="pending")
        return card
    if card["url"] is None and url_of is not None:
        # The address MetalLB gave the Service: real, read from the cluster, not invented.
        card["url"] = url_of(ingress[0])
        card["why"] = ""
    card.update(status="running at %s" % ingress[0], state="ok")
    return card


def _services(settings, mode, statuses):
    services = _mapping(settings.get("services"), "services")
    pools = list(settings.get("metallb_pools") or [])
    cards = []
    for key, section in SERVICE_ORDER:
        spec = _mapping(services.get(key), "services.%s" % key)
        name = _text(spec.get("name")) or key
        card = _card(key, section, name, _text(spec.get("description")))
        if key == "proxmox":
            host = _text(spec.get("host"))
            if host:
                card["url"] = "https://%s:%d/" % (host, int(spec.get("port") or 8006))
                card.update(status="not checked", state="info")
            else:
                card["why"] = "No Proxmox VE API in the inventory (proxmox_api_connection.api_host of group proxmox_api)"
            cards.append(card)
            continue
        if not _bool(spec.get("enabled", True)):
            card["why"] = _text(spec.get("disabled_why")) or "not part of this lab's inventory"
            cards.append(card)
            continue
        _kubernetes_card(card, spec, pools)
        cards.append(_service_status(card, statuses.get(key), mode))
    return cards


# ------------------------------------------------------------------------------------ nodes, GPUs
def _nodes(groups, hostvars, gpu_groups):
    member_of = {}
    for group, hosts in sorted(groups.items()):
        if group in ("all", "ungrouped"):
            continue
        for host in hosts or []:
            member_of.setdefault(str(host), []).append(str(group))
    gpu_models = dict((g["group"], g["model"]) for g in gpu_groups)
    hosts = sorted(set(str(h) for h in groups.get("k8s_cluster") or []) | set(str(h) for h in groups.get("proxmox_nodes") or []))
    nodes = []
    for host in hosts:
        mine = member_of.get(host, [])
        roles = []
        if host in (groups.get("proxmox_nodes") or []):
            roles.append("Proxmox VE host")
        if host in (groups.get("kube_control_plane") or []):
            roles.append("control plane")
        if host in (groups.get("kube_node") or []):
            roles.append("worker")
        roles.extend("GPU %s (%s)" % (g, gpu_models[g]) for g in mine if g in gpu_models)
        nodes.append({"name": host, "address": _address(hostvars, host), "groups": mine, "roles": roles})
    return nodes


def _sharing_text(entry):
    sharing = entry.get("sharing") or {}
    mode = sharing.get("mode", "none")
    if mode == "time-slicing":
        return "time-slicing, %s replicas per GPU" % sharing.get("replicas")
    if mode == "mig":
        layout = sharing.get("mig_config")
        if not layout:
            layout = " + ".join("%s \u00d7 %s" % (item.get("count"), item.get("profile")) for item in sharing.get("mig_layout") or [])
        return "MIG (%s strategy): %s" % (sharing.get("mig_strategy", "single"), layout)
    return "exclusive (one pod per GPU)"


def _gpu_groups(node_groups, resources, groups):
    result = []
    for entry in _plain(node_groups or []):
        mine = [r for r in resources if r["group"] == entry["group"]]
        nodes = sorted(set(str(h) for h in groups.get(entry["group"]) or []))
        per_node = int(entry.get("gpus_per_node", 1))
        result.append({
            "group": entry["group"],
            "model": mine[0]["gpu_model"] if mine else str(entry.get("gpu_model")),
            "mode": (entry.get("sharing") or {}).get("mode", "none"),
            "sharing": _sharing_text(entry),
            "gpus_per_node": per_node,
            "nodes": nodes,
            "gpus": per_node * len(nodes),
            "resources": [{"key": r["key"], "resource": r["resource"], "capacity": r["capacity"]} for r in mine],
        })
    return result


# ----------------------------------------------------------------------------------------- tenants
def _tenants(tenants, queues):
    result = []
    for tenant in tenants:
        quota = tenant["quota"]
        result.append({
            "name": tenant["name"],
            "kind": tenant["kind"],
            "namespace": tenant["namespace"],
            "description": tenant["description"],
            "quota": {"cpu": quota["cpu"], "memory": quota["memory"], "storage": quota["storage"],
                      "pvcs": quota["pvcs"], "gpu": dict(sorted(quota["gpu"].items()))},
            "profiles": list(tenant["profiles"]),
            "queue": {"cluster_queue": tenant["name"], "cohort": queues.get("cohort", "lab"),
                      "local_queue": "%s/%s" % (tenant["namespace"], queues.get("local_queue", "default"))}
            if queues.get("enabled", True) else None,
        })
    return result


# ------------------------------------------------------------------------------------------ layers
def _given_layers(layers):
    if isinstance(layers, (str, bytes, Mapping)) or not isinstance(layers, (list, tuple)):
        _fail(LAYERS, "must be a list of {layer, target, result, seconds, detail}, got %s" % type(layers).__name__)
    rows = []
    for index, row in enumerate(_plain(layers)):
        where = "%s[%d]" % (LAYERS, index)
        if not isinstance(row, Mapping):
            _fail(where, "must be a dict {layer, target, result, seconds, detail}, got %r" % (row,))
        _unknown_keys(where, row, LAYER_KEYS, "a layer row")
        for key in ("layer", "target", "result"):
            if not isinstance(row.get(key), str) or not row.get(key):
                _fail(where, "%s is required (a non-empty string)" % key)
        if row["target"] not in TARGETS:
            _fail(where, "target must be one of %s, got %r" % (", ".join(TARGETS), row["target"]))
        seconds = row.get("seconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0):
            _fail(where, "seconds must be a number of seconds (0 or more), got %r" % (seconds,))
        rows.append({"layer": row["layer"], "target": row["target"], "result": row["result"],
                     "seconds": seconds, "detail": _text(row.get("detail"))})
    return rows


def _derived_layers(settings, groups, mode):
    proxmox = _mapping(_mapping(settings.get("services"), "services").get("proxmox"), "services.proxmox")
    k8s_hosts = sorted(str(h) for h in groups.get("k8s_cluster") or [])
    control = sorted(str(h) for h in groups.get("kube_control_plane") or [])
    result = "derived from the inventory (not measured)"
    rows = []
    if groups.get("proxmox_api") and proxmox.get("host"):
        rows.append({"layer": "Proxmox VE", "target": "proxmox api %s:%s" % (proxmox["host"], proxmox.get("port") or 8006),
                     "detail": "%d Proxmox VE host(s) over SSH" % len(groups.get("proxmox_nodes") or [])})
    else:
        rows.append({"layer": "Proxmox VE", "target": "not run", "detail": "no proxmox_api host or API address"})
    if mode == "export":
        rows.append({"layer": "Nodes", "target": "not run", "detail": "export mode touches no node"})
        rows.append({"layer": "Kubernetes (kubeadm)", "target": "not run", "detail": "kubeadm runs on the nodes"})
    else:
        rows.append({"layer": "Nodes", "target": "ssh" if k8s_hosts else "not run",
                     "detail": ", ".join(k8s_hosts) or "no host in k8s_cluster"})
        rows.append({"layer": "Kubernetes (kubeadm)", "target": "ssh" if control else "not run",
                     "detail": ("control plane " + ", ".join(control)) if control else "no host in kube_control_plane"})
    platform = "export" if mode == "export" else ("cluster" if control else "not run")
    for layer in PLATFORM_LAYERS:
        rows.append({"layer": layer, "target": platform,
                     "detail": _text(settings.get("export_dir")) if mode == "export" else ""})
    for row in rows:
        row.update(result=result, seconds=None)
    return rows


# ------------------------------------------------------------------------------------------- model
def lab_report_model(settings, groups, hostvars=None):
    """The report of the lab as one plain dict (see the role ailab.cluster.lab_report).

    ``settings``: title, mode (apply | export | check), export_dir, gpu_node_groups, tenants,
    cpu_profiles, storage_backends, metallb_pools, queues {enabled, cohort, local_queue}, services
    {proxmox: {name, description, host, port}, jupyterhub / dashboard / grafana / ceph: {name,
    description, enabled, disabled_why, namespace, service, type, load_balancer_ip, scheme, port, path}},
    statuses {service key: {found, addresses}} (apply mode), layers (None: derived).
    ``groups``: the inventory groups; ``hostvars``: read for node_prep_address / ansible_host only."""
    settings = _mapping(settings, "the settings")
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError("lab_report_model: pass the inventory groups, e.g. settings | "
                                 "ailab.cluster.lab_report_model(groups, hostvars)")
    groups = dict((str(k), [str(h) for h in (v or [])]) for k, v in groups.items())
    mode = _text(settings.get("mode")) or "apply"
    if mode not in MODES:
        raise AnsibleFilterError("lab_report_model: mode must be one of %s, got %r" % (", ".join(MODES), mode))
    node_groups = settings.get("gpu_node_groups") or []
    resources = lab_gpu_resources(node_groups, groups)
    tenants = lab_tenants(settings.get("tenants") or [], resources, settings.get("cpu_profiles") or None)
    gpu_groups = _gpu_groups(node_groups, resources, groups)
    statuses = _mapping(settings.get("statuses"), "statuses")
    layers = settings.get("layers") or None
    return {
        "title": _text(settings.get("title")) or "AI lab",
        "mode": mode,
        "export_dir": _text(settings.get("export_dir")) if mode == "export" else "",
        "services": _services(settings, mode, statuses),
        "nodes": _nodes(groups, hostvars, gpu_groups),
        "gpu_groups": gpu_groups,
        "gpu_capacity": lab_tenants_capacity_report(tenants, resources),
        "tenants": _tenants(tenants, _mapping(settings.get("queues"), "queues")),
        "storage_backends": [str(b) for b in settings.get("storage_backends") or []],
        "layers": {"derived": layers is None,
                   "rows": _derived_layers(settings, groups, mode) if layers is None else _given_layers(layers)},
    }


def _quota_text(quota):
    parts = ["cpu %s" % quota["cpu"], "memory %s" % quota["memory"]]
    if quota.get("storage"):
        parts.append("storage %s" % quota["storage"])
    if quota.get("pvcs"):
        parts.append("%s PVCs" % quota["pvcs"])
    parts.extend("%s \u00d7 %s" % (count, key) for key, count in sorted(quota["gpu"].items()) if count)
    return ", ".join(parts)


def lab_report_summary(model):
    """The model as lines for the run output (a debug task prints them)."""
    model = _plain(_mapping(model, "the model"))
    lines = ["%s (%s mode)" % (model["title"], model["mode"]), "Services:"]
    for card in model["services"]:
        lines.append("  %s: %s [%s]" % (card["name"], card["url"] or card["why"], card["status"]))
    lines.append("Nodes:" if model["nodes"] else "Nodes: none in the inventory")
    for node in model["nodes"]:
        lines.append("  %s%s: %s" % (node["name"], " (%s)" % node["address"] if node["address"] else "",
                                     ", ".join(node["roles"]) or "no role"))
    lines.append("GPUs:" if model["gpu_groups"] else "GPUs: none (ailab_gpu_node_groups is empty)")
    for group in model["gpu_groups"]:
        nodes = ", ".join(group["nodes"]) or "no node yet"
        lines.append("  %s: %d \u00d7 %s on %s; %s" % (group["group"], group["gpus"], group["model"], nodes, group["sharing"]))
    lines.append("Tenants:" if model["tenants"] else "Tenants: none (ailab_tenants is empty)")
    for tenant in model["tenants"]:
        queue = tenant["queue"]
        lines.append("  %s (%s, namespace %s): %s%s" % (
            tenant["name"], tenant["kind"], tenant["namespace"], _quota_text(tenant["quota"]),
            "; queue %s (cohort %s), LocalQueue %s" % (queue["cluster_queue"], queue["cohort"], queue["local_queue"])
            if queue else ""))
    lines.append("Layers%s:" % (" (derived from the inventory, not measured)" if model["layers"]["derived"] else ""))
    for row in model["layers"]["rows"]:
        seconds = " in %ss" % row["seconds"] if row.get("seconds") is not None else ""
        lines.append("  %s: %s \u2014 %s%s" % (row["layer"], row["target"], row["result"], seconds))
    return lines


class FilterModule(object):
    def filters(self):
        return {
            "lab_report_model": lab_report_model,
            "lab_report_summary": lab_report_summary,
        }
