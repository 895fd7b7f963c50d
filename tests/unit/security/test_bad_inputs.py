"""Realistic inventory mistakes, one at a time: each is refused before anything changes.

For every case the run must fail, the message must name the field (and what was given), and nothing
may have been written:
* Proxmox layer: site.yml's order (the inventory check, then playbooks/proxmox.yml, which plans every
  role in check mode before any play writes) against a fresh simulator; the simulator's request log
  must show zero writes. One ansible-playbook run per case (the Proxmox plays stop on the first error).
* Kubernetes-facing layers: the layer's own playbook in export mode; every case is a host of its own
  (its own lab variables, its own export directory) in one run per layer, next to a control host with
  the unchanged lab that must pass; a refused case's export directory must stay empty, and no host is
  ever contacted (closed loopback port).
* Unknown variables (typos): the inventory check (playbooks/check.yml) names each with the closest
  valid name.
* Unknown keys inside list items (guests, storages, backup jobs, PCI mappings, cluster nodes, HA rules and
  resources, tenants, GPU node groups (also a role's copy of them), CPU profiles, MetalLB pools, local-path
  directories, dashboard rules, nested keys too): the
  inventory check names the item, the key and the closest valid key before any layer runs; Proxmox cases
  show zero simulator writes, Kubernetes-facing cases an empty export directory.
* The whole-lab order: a mistake in the last layers (tenants) stops site.yml's plan before the
  Proxmox layer writes anything.

The figures (tried / rejected before any write / wrongly accepted) are printed at the end of the
pytest run (conftest.py).
"""

import copy
import json
import sys

import pytest
import yaml

from unit.roles.playbook_runner import ROOT, UNREACHABLE, run_playbook, shared_run
from unit.security.conftest import record

EXAMPLE_LAB = ROOT / "inventories" / "example-lab"

# ------------------------------------------------------------------------------------ Proxmox layer
# A small lab of its own (the sandbox's Proxmox part), so that the cases do not depend on how the
# sandbox inventory evolves.
PVE_BASE = {
    "proxmox_cluster_name": "ailab",
    "proxmox_cluster_nodes": [{"name": "pve-1", "link0": "192.168.10.11"}, {"name": "pve-2", "link0": "192.168.10.12"}],
    "proxmox_storage_list": [
        {"storage": "nas", "type": "nfs", "server": "192.168.10.50", "export": "/mnt/tank/pve", "path": "/mnt/pve/nas",
         "options": "vers=4.2", "content": ["images", "rootdir", "iso", "vztmpl", "backup", "snippets"],
         "nodes": ["pve-1", "pve-2"], "prune_backups": {"keep_last": 3}},
        {"storage": "backups", "type": "dir", "path": "/srv/backups", "content": ["backup"], "create_base_path": True},
    ],
    "proxmox_pci_mapping_list": [
        {"id": "rtx3090", "description": "GeForce RTX 3090",
         "map": [{"node": "pve-1", "path": "0000:01:00", "id": "10de:2204", "subsystem_id": "10de:1454", "iommugroup": 14},
                 {"node": "pve-2", "path": "0000:01:00", "id": "10de:2204", "subsystem_id": "10de:1454", "iommugroup": 14}]},
    ],
    "proxmox_pci_mapping_check_devices": True,
    "proxmox_guests_defaults": {"storage": "local-lvm", "memory": 8192, "agent": True, "onboot": True,
                                "networks": {"net0": {"model": "virtio", "bridge": "vmbr0"}},
                                "disks": {"scsi0": {"size": "32G"}, "ide2": "local-lvm:cloudinit"}},
    "proxmox_guests_list": [
        {"name": "k8s-cp-1", "vmid": 201, "node": "pve-1", "cores": 4, "tags": ["k8s", "control-plane"],
         "ipconfig": {"ipconfig0": {"ip": "192.168.10.21/24", "gw": "192.168.10.1"}}},
        {"name": "k8s-w-1", "vmid": 211, "node": "pve-1", "cores": 8, "memory": 16384, "tags": ["k8s", "worker"],
         "ipconfig": {"ipconfig0": {"ip": "192.168.10.31/24", "gw": "192.168.10.1"}}},
        {"name": "k8s-gpu-1", "vmid": 212, "node": "pve-2", "cores": 8, "memory": 32768, "tags": ["k8s", "gpu"]},
    ],
    "proxmox_guests_state": "started",
    "proxmox_guests_wait_for_ip": 10,
    "proxmox_guests_add_hosts": False,
    "proxmox_ha_groups": [{"name": "lab", "nodes": ["pve-1:2", "pve-2:1"]}],
    "proxmox_backup_jobs": [
        {"id": "weekly", "schedule": "sun 01:00", "storage": "nas", "all": True, "mode": "snapshot", "compress": "zstd",
         "prune_backups": {"keep_last": 3}},
    ],
}


def guest(index, **changes):
    def change(lab):
        lab["proxmox_guests_list"][index].update(changes)
    return change


def item(variable, index, **changes):
    def change(lab):
        lab[variable][index].update(changes)
    return change


def setvar(**changes):
    def change(lab):
        lab.update(changes)
    return change


def mapping_node(node):
    def change(lab):
        lab["proxmox_pci_mapping_list"][0]["map"][1]["node"] = node
    return change


def mapping_entry(index, **changes):
    def change(lab):
        lab["proxmox_pci_mapping_list"][0]["map"][index].update(changes)
    return change


# id -> (mutation, texts the error must contain)
PVE_CASES = {
    "guest-duplicate-vmid": (guest(1, vmid=201), ["vmid", "201"]),
    "guest-memory-with-unit": (guest(1, memory="16G"), ["memory", "16G"]),
    "guest-memory-float": (guest(1, memory="16.5"), ["memory"]),
    "guest-unknown-node": (guest(1, node="pve-9"), ["pve-9"]),
    "guest-unknown-key": (guest(1, cpus=4), ["cpus"]),
    "guest-name-underscore": (guest(1, name="k8s_w_1"), ["k8s_w_1"]),
    "guest-upper-case-tag": (guest(1, tags=["K8S"]), ["K8S", "lower case"]),
    "guest-cores-word": (guest(1, cores="four"), ["cores", "four"]),
    "guest-vmid-too-small": (guest(1, vmid=42), ["vmid 42"]),
    "guest-disk-size-word": (guest(1, disks={"scsi0": {"size": "big"}}), ["big"]),
    "guest-bad-ip": (guest(0, ipconfig={"ipconfig0": {"ip": "192.168.10.300/24", "gw": "192.168.10.1"}}),
                     ["192.168.10.300"]),
    "guests-defaults-typo": (setvar(proxmox_guests_defaults={"storag": "local-lvm", "memory": 8192}), ["storag"]),
    "storage-nfs-export-relative": (item("proxmox_storage_list", 0, export="mnt/tank/pve"), ["export", "mnt/tank/pve"]),
    "storage-nfs-server-malformed": (item("proxmox_storage_list", 0, server="nas..lab"), ["server", "nas..lab"]),
    "storage-unknown-key": (item("proxmox_storage_list", 0, exports="/mnt/tank"), ["exports"]),
    "storage-unknown-content": (item("proxmox_storage_list", 1, content=["backups"]), ["backups"]),
    "storage-unknown-node": (item("proxmox_storage_list", 0, nodes=["pve-1", "pve-3"]), ["pve-3"]),
    "pci-mapping-unknown-node": (mapping_node("pve-5"), ["pve-5"]),
    "pci-mapping-bad-device-id": (lambda lab: lab["proxmox_pci_mapping_list"][0]["map"][0].update(id="10de-2204"),
                                  ["10de-2204"]),
    "ha-group-unknown-node": (item("proxmox_ha_groups", 0, nodes=["pve-1:2", "pve-7:1"]), ["pve-7"]),
    "ha-group-priority-word": (item("proxmox_ha_groups", 0, nodes=["pve-1:high"]), ["pve-1:high"]),
    "backup-schedule-words": (item("proxmox_backup_jobs", 0, schedule="every sunday"), ["schedule", "every sunday"]),
    "backup-schedule-hour": (item("proxmox_backup_jobs", 0, schedule="sun 25:00"), ["hour 25"]),
    "backup-unknown-storage": (item("proxmox_backup_jobs", 0, storage="tape"), ["tape"]),
    "backup-negative-keep": (item("proxmox_backup_jobs", 0, prune_backups={"keep_last": -1}), ["keep_last"]),
    "cluster-name-space": (setvar(proxmox_cluster_name="ai lab"), ["ai lab"]),
    # unknown keys inside items, found by the inventory check (playbooks/check.yml) before the plan
    "guest-role-key-typo": (guest(1, group=["k8s_node"]),
                            ["proxmox_guests_list[1]", "name k8s-w-1", "`group`", "did you mean `groups`?"]),
    "guest-ansible-host-typo": (guest(0, ansible_hosts="192.168.10.21"),
                                ["proxmox_guests_list[0]", "`ansible_hosts`", "did you mean `ansible_host`?"]),
    "storage-prune-key-typo": (item("proxmox_storage_list", 0, prune_backups={"keep_lst": 3}),
                               ["proxmox_storage_list[0].prune_backups", "storage nas", "`keep_lst`",
                                "did you mean `keep_last`?"]),
    "backup-job-key-typo": (item("proxmox_backup_jobs", 0, schedul="sun 02:00"),
                            ["proxmox_backup_jobs[0]", "id weekly", "`schedul`", "did you mean `schedule`?"]),
    "pci-map-key-typo": (mapping_entry(1, iommu_group=14),
                         ["proxmox_pci_mapping_list[0].map[1]", "id rtx3090", "`iommu_group`",
                          "did you mean `iommugroup`?"]),
    "cluster-node-key-typo": (item("proxmox_cluster_nodes", 1, node_id=2),
                              ["proxmox_cluster_nodes[1]", "name pve-2", "`node_id`", "did you mean `nodeid`?"]),
    "ha-rule-key-typo": (setvar(proxmox_ha_rules=[{"name": "k8s-apart", "type": "resource-affinity",
                                                   "afinity": "negative", "resources": ["vm:201", "vm:211"]}]),
                         ["proxmox_ha_rules[0]", "name k8s-apart", "`afinity`", "did you mean `affinity`?"]),
    "ha-resource-key-typo": (setvar(proxmox_ha_resources=[{"sid": "vm:201", "state": "started", "max_restarts": 2}]),
                             ["proxmox_ha_resources[0]", "sid vm:201", "`max_restarts`",
                              "did you mean `max_restart`?"]),
}


def pve_inventory(tmp_path, sim, lab):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "proxmox_api").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "proxmox_api": {"hosts": {"localhost": {"ansible_connection": "local",
                                                "ansible_python_interpreter": sys.executable}}},
        "k8s_cluster": {"children": {"kube_control_plane": {"hosts": {}}, "kube_node": {"hosts": {}}}}}}}))
    connection = {"proxmox_api_connection": dict(sim.module_params())}
    (inventory / "group_vars" / "proxmox_api" / "lab.yml").write_text(yaml.safe_dump(dict(lab, **connection)))
    return inventory


def play_check_and_proxmox(tmp_path, inventory):
    """check.yml then proxmox.yml, as site.yml starts, on ``inventory``; JSON output."""
    plays = [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / name)} for name in ("check.yml", "proxmox.yml")]
    return run_playbook(tmp_path, plays, inventory)


def run_proxmox_layer(tmp_path, sim, lab, reset=True):
    if reset:
        sim.reset()
    sim.clear_log()
    tmp_path.mkdir(parents=True, exist_ok=True)
    inventory = pve_inventory(tmp_path, sim, lab)
    return play_check_and_proxmox(tmp_path, inventory), sim.writes()


def test_the_proxmox_base_lab_is_accepted(tmp_path, pve_sim_for_cases):
    """The cases below change one thing each in a lab that passes: the checks do not refuse everything."""
    run, writes = run_proxmox_layer(tmp_path, pve_sim_for_cases, copy.deepcopy(PVE_BASE))
    assert run.rc == 0, run.stdout[-3000:]
    assert writes
    # The run says, one line per guest, what exists where and how to reach it.
    (shown,) = [r for r in run.results("Show the guests (name, VMID, node, state, address)", "localhost")
                if not r.get("skipped")]
    assert shown["msg"] == ["k8s-cp-1: VM 201 on pve-1, running, address 192.168.10.21",
                            "k8s-w-1: VM 211 on pve-1, running, address 192.168.10.31",
                            "k8s-gpu-1: VM 212 on pve-2, running, address 192.168.10.138"], shown["msg"]


@pytest.mark.parametrize("case", sorted(PVE_CASES))
def test_proxmox_mistake_is_refused_before_any_write(tmp_path, pve_sim_for_cases, case):
    mutate, texts = PVE_CASES[case]
    lab = copy.deepcopy(PVE_BASE)
    mutate(lab)
    run, writes = run_proxmox_layer(tmp_path, pve_sim_for_cases, lab)
    message = run.failure("localhost") or ""
    if isinstance(message, list):  # the inventory check's message: one line per mistake
        message = "\n".join(message)
    record(case, refused=run.rc != 0, before_write=not writes, named=all(t in message for t in texts))
    assert run.rc != 0, f"accepted; the simulator saw {[(w['method'], w['path']) for w in writes]}"
    assert writes == [], [(w["method"], w["path"]) for w in writes]
    for text in texts:
        assert text in message, message


# --------------------------------------------------------------------- Kubernetes-facing layers
def lab_vars(*groups):
    """Plain group_vars of the example lab for these groups, merged (later groups win)."""
    merged = {}
    for group in groups:
        for path in sorted((EXAMPLE_LAB / "group_vars" / group).glob("*.yml")):
            merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


BASE_PLATFORM = lab_vars("all", "k8s_cluster", "kube_control_plane")


def tenant(index, **changes):
    def change(lab):
        lab["ailab_tenants"][index].update(changes)
    return change


def quota(index, **changes):
    def change(lab):
        lab["ailab_tenants"][index]["quota"].update(changes)
    return change


def gpu_group(index, **changes):
    def change(lab):
        lab["ailab_gpu_node_groups"][index].update(changes)
    return change


def sharing(index, **changes):
    def change(lab):
        lab["ailab_gpu_node_groups"][index]["sharing"].update(changes)
    return change


def pool(index, **changes):
    def change(lab):
        lab["metallb_pools"][index].update(changes)
    return change


# layer playbook -> {case: (mutation, texts the error must contain)}
PLATFORM_CASES = {
    "storage.yml": {
        "nfs-server-empty": (setvar(nfs_provisioner_server=""), ["nfs_provisioner_server"]),
        "nfs-path-relative": (setvar(nfs_provisioner_path="mnt/tank/k8s"), ["nfs_provisioner_path", "mnt/tank/k8s"]),
        "two-default-classes": (setvar(ailab_storage_backends=["nfs_provisioner", "local_path"],
                                       local_path_default_class=True), ["default"]),
        "no-default-class": (setvar(nfs_provisioner_default_class=False), ["default"]),
        "unknown-backend": (setvar(ailab_storage_backends=["ceph"]), ["ceph"]),
    },
    "services.yml": {
        "pool-overlaps-reserved": (pool(0, addresses=["192.168.10.150-192.168.10.160"]), ["192.168.10.150"]),
        "pool-range-reversed": (pool(0, addresses=["192.168.10.220-192.168.10.200"]), ["192.168.10.220"]),
        "pool-bad-address": (pool(0, addresses=["192.168.10.300/30"]), ["192.168.10.300"]),
        "no-pool": (setvar(metallb_pools=[]), ["metallb_pools"]),
        "kubelet-tls-word": (setvar(metrics_server_kubelet_tls="maybe"), ["metrics_server_kubelet_tls"]),
    },
    "gpu.yml": {
        "unknown-gpu-model": (gpu_group(0, gpu_model="NVIDIA H300"), ["NVIDIA H300"]),
        "mig-profile-not-on-gpu": (sharing(0, mig_layout=[{"profile": "1g.10gb", "count": 7}]), ["1g.10gb"]),
        "mig-layout-too-big": (sharing(0, mig_layout=[{"profile": "2g.35gb", "count": 4}]), ["2g.35gb"]),
        "unknown-sharing-mode": (sharing(1, mode="sliced"), ["sliced"]),
        "zero-replicas": (sharing(1, replicas=0), ["replicas"]),
        "unknown-node-group": (gpu_group(0, group="gpu_a100"), ["gpu_a100"]),
    },
    "tenants.yml": {
        "quota-gpu-resource-not-in-lab": (quota(0, gpu={"mig-3g.71gb": 1}), ["mig-3g.71gb"]),
        "tenant-name-upper-case": (tenant(0, name="CS101"), ["CS101"]),
        "duplicate-tenant": (tenant(2, name="vision"), ["vision"]),
        "quota-memory-word": (quota(0, memory="lots"), ["memory", "lots"]),
        "tenant-unknown-key": (tenant(0, quotas={"cpu": 4}), ["quotas"]),
        "unknown-profile": (tenant(0, profiles=["cpu-small", "gpu-huge"]), ["gpu-huge"]),
        "unknown-kind": (tenant(0, kind="lecture"), ["lecture"]),
        "quota-beyond-the-lab": (quota(0, gpu={"mig-1g.18gb": 50}), ["mig-1g.18gb"]),
    },
    "jupyterhub.yml": {
        "unknown-authenticator": (setvar(jupyterhub_auth_type="magic"), ["jupyterhub_auth_type", "magic"]),
        "storage-size-with-space": (setvar(jupyterhub_user_storage_capacity="20 GB"), ["20 GB"]),
        "service-type-word": (setvar(jupyterhub_service_type="Ingress"), ["jupyterhub_service_type", "Ingress"]),
    },
    "monitoring.yml": {
        "retention-words": (setvar(monitoring_prometheus_retention="30 days"), ["30 days"]),
        "grafana-service-type": (setvar(monitoring_grafana_service_type="Public"), ["Public"]),
    },
    "dashboard.yml": {
        "unknown-dashboard": (setvar(dashboard_kind="grafana"), ["dashboard_kind", "grafana"]),
        "dashboard-service-type": (setvar(dashboard_service_type="Public"), ["Public"]),
    },
}


def platform_run(tmp_path_factory, playbook):
    cases = PLATFORM_CASES[playbook]

    def build(tmp):
        hosts = {}
        for case in ["control", *sorted(cases)]:
            lab = copy.deepcopy(BASE_PLATFORM)
            if case != "control":
                cases[case][0](lab)
            hosts[case] = dict(lab, ailab_kubernetes_export_dir=str(tmp / "export" / case), **UNREACHABLE)
        inventory = tmp / "cases.yml"
        inventory.write_text(yaml.safe_dump({"bad_cases": {"hosts": hosts}}, sort_keys=False))
        plays = [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / playbook)}]
        return run_playbook(tmp, plays, {"all": {}}, "-i", str(EXAMPLE_LAB), "-i", str(inventory),
                            "-e", "ailab_platform_hosts=bad_cases")

    return shared_run(tmp_path_factory, f"bad-inputs-{playbook}", build)


PLATFORM_PARAMS = [(playbook, case) for playbook, cases in PLATFORM_CASES.items() for case in sorted(cases)]


@pytest.mark.parametrize("playbook", sorted(PLATFORM_CASES))
def test_the_platform_base_lab_is_accepted(tmp_path_factory, playbook):
    tmp, run = platform_run(tmp_path_factory, playbook)
    assert run.failure("control") is None, run.failure("control")
    assert run.stats["control"]["unreachable"] == 0
    assert list((tmp / "export" / "control").rglob("*.yaml")), "the control lab exported nothing"


@pytest.mark.parametrize("playbook,case", PLATFORM_PARAMS)
def test_platform_mistake_is_refused_before_any_write(tmp_path_factory, playbook, case):
    tmp, run = platform_run(tmp_path_factory, playbook)
    message = run.failure(case)
    written = sorted(str(p.relative_to(tmp / "export" / case)) for p in (tmp / "export" / case).rglob("*") if p.is_file())
    texts = PLATFORM_CASES[playbook][case][1]
    record(f"{playbook}:{case}", refused=message is not None, before_write=not written,
           named=message is not None and all(t in message for t in texts))
    assert run.stats[case]["unreachable"] == 0
    assert message is not None, f"accepted; exported {written[:5]}"
    assert written == []
    for text in texts:
        assert text in message, message


# ------------------------------------------------------------------------------- unknown variables
TYPOS = {
    "proxmox_storages_list": "proxmox_storage_list",
    "jupyterhub_auth_typ": "jupyterhub_auth_type",
    "metallb_pool": "metallb_pools",
    "monitoring_grafana_service": "monitoring_grafana_service_type",
    "nfs_provisoner_server": "nfs_provisioner_server",
    "containerd_version_pin": None,
}


@pytest.fixture(scope="module")
def typo_run(tmp_path_factory):
    def build(tmp):
        hosts = {f"typo-{i}": {name: "x", **UNREACHABLE} for i, name in enumerate(sorted(TYPOS))}
        inventory = tmp / "typos.yml"
        inventory.write_text(yaml.safe_dump({"typos": {"hosts": hosts}}))
        plays = [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "check.yml")}]
        return run_playbook(tmp, plays, {"all": {}}, "-i", str(EXAMPLE_LAB), "-i", str(inventory))

    return shared_run(tmp_path_factory, "bad-inputs-typos", build)[1]


@pytest.mark.parametrize("typo", sorted(TYPOS))
def test_unknown_variable_is_named_with_the_closest_valid_name(typo_run, typo):
    message = json.dumps(typo_run.failure("localhost"))
    suggestion = TYPOS[typo]
    named = typo in message and (suggestion is None or suggestion in message)
    record(f"variable:{typo}", refused=typo_run.rc != 0, before_write=True, named=named)
    assert typo_run.rc != 0
    assert typo in message, message
    if suggestion:
        assert f"did you mean {suggestion}" in message.replace("`", ""), message


# ----------------------------------------------------------------------- unknown keys inside items
def cpu_profile(index, **changes):
    def change(lab):
        lab["ailab_cpu_profiles"][index].update(changes)
    return change


# case -> (mutation of the example lab, texts the check's message must contain)
ITEM_CASES = {
    "tenant-key-typo": (tenant(1, profile=["cpu-small"]), ["ailab_tenants[1]", "`profile`", "did you mean `profiles`?"]),
    "tenant-quota-key-typo": (quota(0, cpus=8), ["ailab_tenants[0].quota", "`cpus`", "did you mean `cpu`?"]),
    "gpu-group-key-typo": (gpu_group(0, gpus_per_nod=2),
                           ["ailab_gpu_node_groups[0]", "`gpus_per_nod`", "did you mean `gpus_per_node`?"]),
    # a role's own copy of the lab model, set in the inventory (validation_gpu_node_groups), is checked the same
    "validation-gpu-group-key-typo": (
        lambda lab: lab.update(validation_gpu_node_groups=[dict(lab["ailab_gpu_node_groups"][0], gpu_modle="H200")]),
        ["validation_gpu_node_groups[0]", "group gpu_h200", "`gpu_modle`", "did you mean `gpu_model`?"]),
    "gpu-sharing-key-typo": (sharing(1, replica=4),
                             ["ailab_gpu_node_groups[1].sharing", "`replica`", "did you mean `replicas`?"]),
    "gpu-mig-layout-key-typo": (sharing(0, mig_layout=[{"profile": "1g.18gb", "cont": 7}]),
                                ["ailab_gpu_node_groups[0].sharing.mig_layout[0]", "`cont`", "did you mean `count`?"]),
    "gpu-taint-key-typo": (gpu_group(1, taints=[{"key": "nvidia.com/gpu", "value": "present", "efect": "NoSchedule"}]),
                           ["ailab_gpu_node_groups[1].taints[0]", "`efect`", "did you mean `effect`?"]),
    "cpu-profile-key-typo": (cpu_profile(0, mem_limt="4Gi"),
                             ["ailab_cpu_profiles[0]", "`mem_limt`", "did you mean `mem_limit`?"]),
    "metallb-pool-key-typo": (setvar(metallb_pools=[{"name": "lab", "addresses": ["192.168.10.240/28"],
                                                     "auto_asign": False}]),
                              ["metallb_pools[0]", "name lab", "`auto_asign`", "did you mean `auto_assign`?"]),
    "local-path-key-typo": (setvar(local_path_node_path_map=[{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                                                              "path": ["/srv/volumes"]}]),
                            ["local_path_node_path_map[0]", "`path`", "did you mean `paths`?"]),
    "dashboard-rule-key-typo": (setvar(dashboard_read_only_extra_rules=[{"api_group": ["kueue.x-k8s.io"],
                                                                         "resources": ["workloads"]}]),
                                ["dashboard_read_only_extra_rules[0]", "`api_group`", "did you mean `api_groups`?"]),
    # the node and Kubernetes layers' lists are checked the same, before any host is touched
    "containerd-mirror-key-typo": (setvar(containerd_registry_mirrors=[{
        "registry": "docker.io", "mirrors": [{"host": "https://harbor.lab.example", "skip_verfy": True}]}]),
        ["containerd_registry_mirrors[0].mirrors[0]", "`skip_verfy`", "did you mean `skip_verify`?"]),
    "worker-taint-key-typo": (setvar(kubeadm_worker_node_taints=[{"key": "lab/reserved", "efect": "NoSchedule"}]),
                              ["kubeadm_worker_node_taints[0]", "`efect`", "did you mean `effect`?"]),
    "hosts-extra-key-typo": (setvar(node_prep_hosts_extra=[{"address": "10.10.0.5", "name": ["nfs"]}]),
                             ["node_prep_hosts_extra[0]", "`name`", "did you mean `names`?"]),
}
ITEM_LAYERS = ("check.yml", "tenants.yml")  # tenants read the whole lab model (GPU groups, CPU profiles)


def item_cases_run(tmp, cases):
    """check.yml then a layer that reads the lab model, in export mode, each case a host of its own."""
    hosts = {}
    for case in cases:
        lab = copy.deepcopy(BASE_PLATFORM)
        if case != "control":
            ITEM_CASES[case][0](lab)
        hosts[case] = dict(lab, ailab_kubernetes_export_dir=str(tmp / "export" / case), **UNREACHABLE)
    inventory = tmp / "cases.yml"
    inventory.write_text(yaml.safe_dump({"bad_cases": {"hosts": hosts}}, sort_keys=False))
    plays = [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / name)} for name in ITEM_LAYERS]
    return run_playbook(tmp, plays, {"all": {}}, "-i", str(EXAMPLE_LAB), "-i", str(inventory),
                        "-e", "ailab_platform_hosts=bad_cases")


@pytest.fixture(scope="module")
def item_run(tmp_path_factory):
    return shared_run(tmp_path_factory, "bad-inputs-item-keys", lambda tmp: item_cases_run(tmp, sorted(ITEM_CASES)))


def test_the_lab_model_passes_the_check_and_exports(tmp_path):
    """The item cases change one key each in a lab that passes the check and exports."""
    run = item_cases_run(tmp_path, ["control"])
    assert run.rc == 0, run.stdout[-3000:]
    assert run.stats["control"]["unreachable"] == 0
    assert list((tmp_path / "export" / "control").rglob("*.yaml")), "the control lab exported nothing"


@pytest.mark.parametrize("case", sorted(ITEM_CASES))
def test_unknown_key_in_an_item_is_refused_before_any_layer(item_run, case):
    tmp, run = item_run
    message = "\n".join(run.failure("localhost") or [])
    written = sorted(str(p) for p in (tmp / "export" / case).rglob("*") if p.is_file())
    texts = ITEM_CASES[case][1]
    line = [entry for entry in message.splitlines() if f"set for {case})" in entry or f"set for {case}," in entry]
    named = bool(line) and all(t in line[0] for t in texts)
    record(f"item:{case}", refused=run.rc != 0, before_write=not written, named=named)
    assert run.rc != 0
    assert written == []
    assert set(run.stats) == {"localhost"}, "no layer ran and no host was contacted"
    assert line, message
    for text in texts:
        assert text in line[0], line[0]


# ------------------------------------------------------------------------------ the whole-lab order
def test_a_platform_mistake_stops_site_yml_before_the_proxmox_layer_writes(tmp_path, pve_sim_for_cases):
    """site.yml plans every Kubernetes-facing layer right after the inventory check: a tenant's quota
    typo stops the run before the Proxmox layer sends anything (and no node is contacted)."""
    sim = pve_sim_for_cases
    sim.reset()
    tenants = copy.deepcopy(BASE_PLATFORM["ailab_tenants"])
    tenants[0]["quota"]["memory"] = "lots"
    inventory = tmp_path / "lab.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "localhost": dict(PVE_BASE, proxmox_api_connection=dict(sim.module_params())),
        "k8s-1": {"ailab_tenants": tenants}}}}))
    plays = [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / name)}
             for name in ("check.yml", "plan.yml", "proxmox.yml")]
    run = run_playbook(tmp_path, plays, {"all": {}}, "-i", str(EXAMPLE_LAB), "-i", str(inventory),
                       "-e", "ansible_host=127.0.0.1", "-e", "ansible_port=9")
    message = run.failure("k8s-1") or ""
    record("site.yml:tenant-quota-before-proxmox", refused=run.rc != 0, before_write=not sim.writes(),
           named="memory" in message and "lots" in message)
    assert run.rc != 0
    assert "memory" in message and "lots" in message, message
    assert sim.writes() == []
    assert all(stats["unreachable"] == 0 for stats in run.stats.values()), run.stats


def test_ha_of_guests_created_in_the_same_run_passes_the_plan(tmp_path, pve_sim_for_cases):
    """On a fresh cluster the plan (check mode) counts the guests and HA resources the run creates as
    planned: HA for new guests and a rule naming them are not refused, and a second run changes nothing."""
    lab = copy.deepcopy(PVE_BASE)
    for entry in lab["proxmox_guests_list"]:
        entry["ha"] = {"state": "started"}
    lab["proxmox_ha_rules"] = [{"name": "k8s-apart", "type": "resource-affinity", "affinity": "negative",
                                "resources": ["vm:201", "vm:211"]}]
    run, writes = run_proxmox_layer(tmp_path / "first", pve_sim_for_cases, lab)
    assert run.rc == 0, run.failure("localhost")
    ha = pve_sim_for_cases.state()["ha"]
    assert sorted(ha["resources"]) == ["vm:201", "vm:211", "vm:212"]
    assert "k8s-apart" in ha["rules"]
    again, writes = run_proxmox_layer(tmp_path / "second", pve_sim_for_cases, lab, reset=False)
    assert again.rc == 0 and writes == []
    assert all(stats["changed"] == 0 for stats in again.stats.values()), again.stats
