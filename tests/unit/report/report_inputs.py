"""Inputs of the lab report tests: the example lab's model and groups as the role hands them to the filter."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "inventories" / "example-lab"

EXAMPLE_GROUPS = {
    "all": ["localhost", "pve-1", "pve-2", "k8s-1", "k8s-2", "k8s-3", "k8s-gpu-h200", "k8s-gpu-rtx"],
    "proxmox_api": ["localhost"],
    "proxmox_nodes": ["pve-1", "pve-2"],
    "proxmox_gpu_nodes": ["pve-1", "pve-2"],
    "k8s_cluster": ["k8s-1", "k8s-2", "k8s-3", "k8s-gpu-h200", "k8s-gpu-rtx"],
    "kube_control_plane": ["k8s-1", "k8s-2", "k8s-3"],
    "kube_node": ["k8s-1", "k8s-2", "k8s-3", "k8s-gpu-h200", "k8s-gpu-rtx"],
    "gpu_h200": ["k8s-gpu-h200"],
    "gpu_rtx": ["k8s-gpu-rtx"],
}
EXAMPLE_HOSTVARS = {
    "pve-1": {"ansible_host": "192.168.10.11"}, "pve-2": {"ansible_host": "192.168.10.12"},
    "k8s-1": {"ansible_host": "192.168.10.21", "node_prep_address": "192.168.10.21"},
    "k8s-gpu-h200": {"node_prep_address": "192.168.10.31"},
}


def _services(grafana_type="LoadBalancer", grafana_ip="", dashboard_type="ClusterIP", ceph=False):
    return {
        "proxmox": {"name": "Proxmox VE", "description": "The hypervisor cluster", "host": "192.168.10.5", "port": 8006},
        "jupyterhub": {"name": "JupyterHub", "description": "Notebooks", "namespace": "jupyterhub",
                       "service": "proxy-public", "type": "LoadBalancer", "load_balancer_ip": "", "scheme": "http",
                       "port": 80},
        "dashboard": {"name": "Headlamp", "description": "Kubernetes web UI", "namespace": "dashboard",
                      "service": "headlamp", "type": dashboard_type, "load_balancer_ip": "", "scheme": "http", "port": 80},
        "grafana": {"name": "Grafana", "description": "Dashboards", "namespace": "monitoring",
                    "service": "kube-prometheus-stack-grafana-lb", "type": grafana_type,
                    "load_balancer_ip": grafana_ip, "scheme": "http", "port": 80},
        "ceph": {"name": "Ceph dashboard", "description": "Storage", "enabled": ceph,
                 "disabled_why": "No Ceph in this lab: rook_ceph is not in ailab_storage_backends",
                 "namespace": "rook-ceph", "service": "rook-ceph-mgr-dashboard", "type": "ClusterIP",
                 "load_balancer_ip": "", "scheme": "https", "port": 8443},
    }


def example_settings(**services):
    lab = yaml.safe_load((EXAMPLE / "group_vars" / "all" / "lab.yml").read_text())
    net = yaml.safe_load((EXAMPLE / "group_vars" / "all" / "services.yml").read_text())
    return {
        "title": "example-lab", "mode": "export", "export_dir": "/srv/export/example-lab",
        "gpu_node_groups": lab["ailab_gpu_node_groups"], "tenants": lab["ailab_tenants"],
        "cpu_profiles": lab["ailab_cpu_profiles"], "storage_backends": ["nfs_provisioner"],
        "metallb_pools": net["metallb_pools"], "queues": {"enabled": True, "cohort": "lab", "local_queue": "default"},
        "services": _services(**services), "layers": None,
    }


def sandbox_settings():
    """The sandbox inventory: a Proxmox API (the simulator), no Kubernetes host, no lab model."""
    proxmox = {"name": "Proxmox VE", "host": "127.0.0.1", "port": 8006}
    return {"title": "sandbox", "mode": "apply", "services": {"proxmox": proxmox}, "layers": None}


SANDBOX_GROUPS = {"all": ["localhost"], "ungrouped": [], "proxmox_api": ["localhost"], "proxmox_nodes": [],
                  "proxmox_gpu_nodes": []}
