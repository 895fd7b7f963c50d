"""Seeds: a YAML seed file given to the CLI, and reseeding a running simulator."""

import textwrap

import pytest
from proxmoxer.core import ResourceException

from pvesim.seed import default_seed, load_seed
from pvesim.testing import SimulatorProcess

SEED_YAML = textwrap.dedent("""
    cluster: {name: gpu-lab}
    nodes:
      - {name: node-a, ip: 10.0.0.11, cpus: 64, memory_gib: 256, bridges: [vmbr0, vmbr1]}
      - {name: node-b, ip: 10.0.0.12}
      - {name: node-c, ip: 10.0.0.13, online: false}
    storages:
      - {storage: tank, type: zfspool, pool: tank/vm, content: "images,rootdir", total_gib: 2048}
      - {storage: backups, type: nfs, server: 10.0.0.50, export: /backups, path: /mnt/pve/backups,
         content: backup}
    guests:
      - {vmid: 300, type: qemu, node: node-a, status: running,
         config: {name: jupyter-gpu, memory: "65536", scsi0: "tank:vm-300-disk-0,size=200G", agent: "1"}}
    ha:
      groups: [{group: gpu, nodes: "node-a:2,node-b:1"}]
      resources: [{sid: "vm:300", group: gpu, state: started}]
    backup_jobs:
      - {id: weekly, schedule: "sun 01:00", storage: backups, vmid: "300"}
""")


def test_yaml_seed_file_on_the_command_line(tmp_path):
    seed_file = tmp_path / "lab.yml"
    seed_file.write_text(SEED_YAML)
    assert load_seed(seed_file)["cluster"]["name"] == "gpu-lab"
    with SimulatorProcess(pve=8, seed=seed_file, state_dir=tmp_path / "state") as sim:
        api = sim.api()
        cluster, *nodes = api.cluster.status.get()
        assert (cluster["name"], cluster["nodes"], cluster["quorate"]) == ("gpu-lab", 3, 1)
        assert [n["online"] for n in nodes] == [1, 1, 0]
        vm = api.cluster.resources.get(type="vm")[0]
        assert (vm["vmid"], vm["node"], vm["status"], vm["hastate"]) == (300, "node-a", "running", "started")
        assert api.nodes("node-a").qemu(300).config.get()["scsi0"] == "tank:vm-300-disk-0,size=200G"
        assert api.cluster.ha.groups("gpu").get()["nodes"] == "node-a:2,node-b:1"
        assert api.cluster.backup("weekly").get()["schedule"] == "sun 01:00"
        assert [v["volid"] for v in api.nodes("node-a").storage("tank").content.get()] == ["tank:vm-300-disk-0"]


def test_reseed_replaces_the_cluster_until_the_next_reseed(pve9_sim):
    seed = default_seed()
    seed["nodes"].append({"name": "pve-3", "ip": "192.168.10.13"})
    seed["guests"] = [{"vmid": 150, "type": "lxc", "node": "pve-3", "status": "stopped",
                       "config": {"hostname": "proxy", "rootfs": "local-lvm:vm-150-disk-0,size=4G"}}]
    pve9_sim.reseed(seed)
    api = pve9_sim.api()
    assert len(api.nodes.get()) == 3
    assert api.nodes("pve-3").lxc(150).config.get()["hostname"] == "proxy"
    pve9_sim.reset()  # back to the *new* seed
    assert len(api.nodes.get()) == 3
    pve9_sim.reseed(default_seed())
    with pytest.raises(ResourceException):
        api.nodes("pve-3").lxc.get()
