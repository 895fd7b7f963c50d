"""Seed documents: the cluster the simulator starts with (and returns to on reset).

A seed is a mapping (YAML or JSON file, or a dict over the control API)::

    cluster: {name: ailab, dhcp_subnet: 192.168.10.0/24}
    nodes:                  # corosync node ids follow the list order
      - {name: pve-1, ip: 192.168.10.11, online: true, cpus: 32, memory_gib: 128,
         bridges: [vmbr0], pci_devices: [{id: "0000:01:00.0", vendor: "0x10de", device: "0x2204", ...}]}
    storages:               # /etc/pve/storage.cfg entries, plus total_gib (capacity per node)
      - {storage: nas, type: nfs, server: 192.168.10.50, export: /mnt/tank/pve,
         path: /mnt/pve/nas, content: "images,rootdir", total_gib: 8192}
    volumes:                # pre-existing content (ISOs, container templates)
      - {volid: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", nodes: [pve-1, pve-2], size_mib: 120}
    guests:                 # optional; config values as PVE writes them (disks already allocated)
      - {vmid: 100, type: qemu, node: pve-1, status: running,
         config: {name: vm1, scsi0: "local-lvm:vm-100-disk-0,size=32G"}}
    ha: {groups: [...], resources: [...], rules: [...]}
    backup_jobs: [...]      # /cluster/backup entries (id, schedule, storage, vmid|all, ...)
    pci_mappings: [...]     # /cluster/mapping/pci entries (id, map: ["node=..,path=..,id=.."], ...)

Every key is optional except ``nodes``. The default seed is the lab of the seed documents: a
two-node cluster ``ailab`` (pve-1, pve-2), quorate, with storages ``local``, ``local-lvm`` and the
shared NFS storage ``nas`` (a TrueNAS export) on both nodes, and no guests.
"""

import copy
import json
from pathlib import Path

_GPU = {
    "id": "0000:01:00.0", "class": "0x030000", "vendor": "0x10de", "device": "0x2204",
    "subsystem_vendor": "0x10de", "subsystem_device": "0x1454", "iommugroup": 14,
    "vendor_name": "NVIDIA Corporation", "device_name": "GA102 [GeForce RTX 3090]",
}
_GPU_AUDIO = {
    "id": "0000:01:00.1", "class": "0x040300", "vendor": "0x10de", "device": "0x1aef",
    "subsystem_vendor": "0x10de", "subsystem_device": "0x1454", "iommugroup": 14,
    "vendor_name": "NVIDIA Corporation", "device_name": "GA102 High Definition Audio Controller",
}

DEFAULT_SEED = {
    "cluster": {"name": "ailab", "dhcp_subnet": "192.168.10.0/24"},
    "nodes": [
        {
            "name": "pve-1", "ip": "192.168.10.11", "online": True, "cpus": 32, "sockets": 1,
            "cpu_model": "AMD Ryzen Threadripper PRO 5955WX 16-Cores", "memory_gib": 128,
            "bridges": ["vmbr0"], "pci_devices": [_GPU, _GPU_AUDIO],
        },
        {
            "name": "pve-2", "ip": "192.168.10.12", "online": True, "cpus": 32, "sockets": 1,
            "cpu_model": "AMD Ryzen Threadripper PRO 5955WX 16-Cores", "memory_gib": 128,
            "bridges": ["vmbr0"], "pci_devices": [_GPU, _GPU_AUDIO],
        },
    ],
    "storages": [
        {"storage": "local", "type": "dir", "path": "/var/lib/vz", "content": "backup,iso,vztmpl", "total_gib": 94},
        {"storage": "local-lvm", "type": "lvmthin", "vgname": "pve", "thinpool": "data",
         "content": "images,rootdir", "total_gib": 794},
        {"storage": "nas", "type": "nfs", "server": "192.168.10.50", "export": "/mnt/tank/pve",
         "path": "/mnt/pve/nas", "content": "backup,images,iso,rootdir,snippets,vztmpl", "options": "vers=4.2",
         "prune-backups": "keep-last=3", "total_gib": 8192},
    ],
    "volumes": [
        {"volid": "local:iso/ubuntu-24.04.2-live-server-amd64.iso", "nodes": ["pve-1", "pve-2"], "size_mib": 3136},
        {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", "nodes": ["pve-1", "pve-2"],
         "size_mib": 120},
        {"volid": "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst", "nodes": ["pve-1", "pve-2"],
         "size_mib": 141},
        {"volid": "nas:iso/ubuntu-24.04.2-live-server-amd64.iso", "size_mib": 3136},
        {"volid": "nas:iso/noble-server-cloudimg-amd64.img", "size_mib": 587},
    ],
    "guests": [],
    "ha": {"groups": [], "resources": [], "rules": []},
    "backup_jobs": [],
    "pci_mappings": [],
}


def default_seed():
    """A fresh copy of the default lab seed."""
    return copy.deepcopy(DEFAULT_SEED)


def load_seed(path):
    """Read a seed from a YAML or JSON file (JSON is tried first, then YAML)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml  # only needed for YAML seeds

        data = yaml.safe_load(text)
    if not isinstance(data, dict) or not data.get("nodes"):
        raise ValueError(f"seed {path} must be a mapping with a non-empty 'nodes' list")
    return data
