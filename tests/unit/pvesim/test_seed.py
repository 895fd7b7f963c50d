"""Seeds: a YAML seed file given to the CLI, and reseeding a running simulator."""

import textwrap

import pytest
from proxmoxer.core import ResourceException

from pvesim.seed import default_seed, empty_seed, load_seed
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
    pve9_sim.reseed(empty_seed())  # what the fixtures start from
    with pytest.raises(ResourceException):
        api.nodes("pve-3").lxc.get()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A simulator started without --seed: the default seed, as `make lab` uses it."""
    with SimulatorProcess(pve=9, state_dir=tmp_path_factory.mktemp("sandbox")) as sim:
        yield sim


def test_default_seed_has_a_cloud_init_template_to_clone(sandbox):
    sandbox.reset()
    api = sandbox.api()
    vm = api.cluster.resources.get(type="vm")[0]
    assert (vm["vmid"], vm["name"], vm["node"], vm["status"], vm["template"]) == (
        9000, "debian-12-cloud", "pve-1", "stopped", 1)
    config = api.nodes("pve-1").qemu(9000).config.get()
    assert {k: config[k] for k in ("memory", "cores", "agent", "ostype", "scsihw", "boot", "template")} == {
        "memory": "2048", "cores": 2, "agent": "1", "ostype": "l26", "scsihw": "virtio-scsi-single",
        "boot": "order=scsi0", "template": 1}
    assert config["scsi0"] == "nas:9000/base-9000-disk-0.qcow2,size=10G"
    assert config["ide2"] == "nas:9000/vm-9000-cloudinit.qcow2,media=cdrom"
    assert config["net0"].startswith("virtio=BC:24:11:") and config["net0"].endswith(",bridge=vmbr0")
    assert {"nas:9000/base-9000-disk-0.qcow2", "nas:9000/vm-9000-cloudinit.qcow2"} <= {
        v["volid"] for v in api.nodes("pve-2").storage("nas").content.get(vmid=9000)}
    assert api.cluster.nextid.get() == "100"
    upid = api.nodes("pve-1").qemu(9000).clone.post(newid=100, name="k8s-cp-1", target="pve-2")
    assert sandbox.wait_tasks() and api.nodes("pve-1").tasks(upid).status.get()["exitstatus"] == "OK"
    clone = api.nodes("pve-2").qemu(100).config.get()
    assert clone["scsi0"] == "nas:100/vm-100-disk-0.qcow2,size=10G"
    assert clone["ide2"] == "nas:100/vm-100-cloudinit.qcow2,media=cdrom"


def test_default_seed_maps_the_gpus_of_both_nodes(sandbox):
    sandbox.reset()
    api = sandbox.api()
    assert api.cluster.mapping.pci.get(**{"check-node": "pve-2"}) == [{
        "id": "gpu-rtx3090", "type": "pci", "checks": [],
        "map": ["node=pve-1,path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454",
                "node=pve-2,path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454"]}]
    gpus = [d for d in api.nodes("pve-1").hardware.pci.get() if d["id"].startswith("0000:01:00")]
    expected = [("0000:01:00.0", "0x10de", "0x2204"), ("0000:01:00.1", "0x10de", "0x1aef")]
    assert [(d["id"], d["vendor"], d["device"]) for d in gpus] == expected


def test_built_in_seeds_by_name():
    assert load_seed("default") == default_seed()
    assert load_seed("empty")["guests"] == [] and load_seed("empty")["pci_mappings"] == []
    assert load_seed("standalone")["cluster"]["name"] is None
