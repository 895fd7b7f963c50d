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

Every key is optional except ``nodes``. ``cluster: {name: null}`` makes a standalone seed: the
first node is a node without a cluster (it answers the API) and the other nodes are hosts that are
not in a cluster yet; ``POST /cluster/config`` creates the cluster and ``POST /cluster/config/join``
adds them. A node with ``member: false`` in a named cluster is such a host too. A node with
``iommu: false`` has not enabled IOMMU yet (a fresh host before GPU passthrough is set up): its
PCI devices report ``iommugroup`` -1.

Built-in seeds, by name (``--seed NAME``, ``load_seed(NAME)``):

* ``default`` - the lab of the seed documents: a two-node cluster ``ailab`` (pve-1, pve-2),
  quorate, with storages ``local``, ``local-lvm`` and the shared NFS storage ``nas`` (a TrueNAS
  export) on both nodes, an RTX 3090 in each node, and for the sandbox a stopped cloud-init
  template VM 9000 ``debian-12-cloud`` on pve-1 (disks on ``nas``) and the PCI mapping
  ``gpu-rtx3090`` for both nodes' GPUs.
* ``empty`` - the same cluster without guests and PCI mappings (what the pytest fixtures start
  from, so that every test creates the guests it uses).
* ``standalone`` - ``empty`` before ``pvecm create``: pve-1 alone, pve-2 a host that may join.
* ``fresh`` - ``standalone`` on freshly installed hosts: IOMMU is not enabled on either node yet.
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
    "guests": [
        {
            # The cloud-init template the sandbox clones lab VMs from (qm template 9000).
            "vmid": 9000, "type": "qemu", "node": "pve-1", "status": "stopped",
            "config": {
                "name": "debian-12-cloud", "template": 1, "memory": "2048", "cores": 2, "agent": "1",
                "ostype": "l26", "scsihw": "virtio-scsi-single",
                "scsi0": "nas:9000/base-9000-disk-0.qcow2,size=10G",
                "ide2": "nas:9000/vm-9000-cloudinit.qcow2,media=cdrom",
                "net0": "virtio=BC:24:11:3C:90:00,bridge=vmbr0", "boot": "order=scsi0",
                "vmgenid": "5d1c3a7e-2f4b-4c8e-9a61-0d3e7b9f9000",
                "smbios1": "uuid=8e0f6c2a-7b1d-4e35-a9c4-3f5b2d1e9000",
                "meta": "creation-qemu=9.2.0,ctime=1735689600",
            },
        },
    ],
    "ha": {"groups": [], "resources": [], "rules": []},
    "backup_jobs": [],
    "pci_mappings": [
        # Entries as the GUI writes them: Proxmox VE refuses to start a VM with an entry that lacks the IOMMU
        # group or subsystem ID its device has (pve-guest-common PVE/Mapping/PCI.pm assert_valid).
        {"id": "gpu-rtx3090", "map": [
            "node=pve-1,path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454",
            "node=pve-2,path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454"]},
    ],
}


def default_seed():
    """A fresh copy of the default lab seed."""
    return copy.deepcopy(DEFAULT_SEED)


def empty_seed():
    """The default cluster without guests and PCI mappings."""
    seed = default_seed()
    seed["guests"] = []
    seed["pci_mappings"] = []
    return seed


def standalone_seed():
    """The ``empty`` lab before the cluster exists: pve-1 standalone, pve-2 a host that may join."""
    seed = empty_seed()
    seed["cluster"] = dict(seed["cluster"], name=None)
    return seed


def without_iommu(seed, *nodes):
    """``seed`` with IOMMU not enabled yet on ``nodes`` (all when none are named)."""
    for entry in seed["nodes"]:
        if not nodes or entry["name"] in nodes:
            entry["iommu"] = False
    return seed


def fresh_seed():
    """Freshly installed hosts: ``standalone``, and IOMMU not enabled on any node yet."""
    return without_iommu(standalone_seed())


SEEDS = {"default": default_seed, "empty": empty_seed, "standalone": standalone_seed, "fresh": fresh_seed}


def load_seed(path):
    """A built-in seed by name (``default``, ``empty``, ``standalone``, ``fresh``), or a YAML or JSON file.

    For a file, JSON is tried first, then YAML. A file of the same name as a built-in seed wins.
    """
    if str(path) in SEEDS and not Path(path).exists():
        return SEEDS[str(path)]()
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml  # only needed for YAML seeds

        data = yaml.safe_load(text)
    if not isinstance(data, dict) or not data.get("nodes"):
        raise ValueError(f"seed {path} must be a mapping with a non-empty 'nodes' list")
    return data
