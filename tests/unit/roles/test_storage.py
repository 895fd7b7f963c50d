"""playbooks/storage.yml in export mode: Rook-Ceph, the NFS provisioner and local-path for several
sample labs, validated with export_check and compared with the upstream reference files.

One inventory holds every sample lab: each lab is one host of the group ``labs`` (standing for that
lab's first control plane, with the lab's variables as host vars and its own export directory), and
``-e ailab_platform_hosts=labs`` runs the playbook's plays on all of them. Rook's storage nodes are
hosts of per-lab groups. Every host is an SSH host on a closed loopback port (127.0.0.1:9): a task that
touched a node would come back unreachable, so a clean run proves the export runs on the controller
alone. Three ansible-playbook runs, shared by every test: the export (good and bad labs), the same
export again (the richest lab, must change nothing and write the same bytes), and the export in check
mode to other directories (writes nothing).
"""

import json

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from export_check import check_chart_values, check_export
from unit.roles.playbook_runner import (PYTHON, PlaybookRun, ROOT, UNREACHABLE, export_objects, load_all, reference, run_playbook,
                                        shared_run)

NAS = {"nfs_provisioner_server": "nas.lab.example", "nfs_provisioner_path": "/mnt/tank/k8s"}

# Good labs: host vars of the lab's control plane (the export dir is added per run).
LABS = {
    # A CPU-only lab whose volumes all live on the NAS.
    "nfs_only": dict(NAS, ailab_storage_backends=["nfs_provisioner"], nfs_provisioner_default_class=True,
                     nfs_provisioner_mount_options=["nfsvers=4.1", "hard"],
                     nfs_provisioner_path_pattern="${.PVC.namespace}/${.PVC.name}", nfs_provisioner_on_delete="retain",
                     nfs_provisioner_image_registry="harbor.lab.example/proxy/"),
    # Three storage nodes: Ceph block storage as the default, CephFS for RWX, the NAS as a second class.
    "rook3": dict(NAS, ailab_storage_backends=["rook_ceph", "nfs_provisioner"], rook_ceph_storage_group="rook3_storage",
                  rook_ceph_block_default_class=True, rook_ceph_filesystem_enabled=True,
                  rook_ceph_image_registry="harbor.lab.example/proxy"),
    # One storage node: one monitor, one copy, and a warning.
    "rook1": {"ailab_storage_backends": ["rook_ceph"], "rook_ceph_storage_group": "rook1_storage",
              "rook_ceph_block_default_class": True},
    # A single-node lab on node-local directories.
    "local": {"ailab_storage_backends": ["local_path"], "local_path_default_class": True,
              "local_path_node_path_map": [
                  {"node": "gpu01", "paths": ["/data/local-path", "/scratch/local-path"]},
                  {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/opt/local-path-provisioner"]}]},
    # No backend: the storage layer says so and exports nothing.
    "empty": {"ailab_storage_backends": []},
}
EXPECTED_DEFAULT = {"nfs_only": "nfs-client", "rook3": "ceph-block", "rook1": "ceph-block", "local": "local-path"}

# Bad labs: host vars and a piece of the message the run must stop with.
BAD = {
    "two_defaults": (dict(NAS, ailab_storage_backends=["rook_ceph", "nfs_provisioner"],
                          rook_ceph_storage_group="rook1_storage", rook_ceph_block_default_class=True,
                          nfs_provisioner_default_class=True),
                     ["Two or more default StorageClasses", "ceph-block (rook_ceph_block_default_class)",
                      "nfs-client (nfs_provisioner_default_class)"]),
    "no_default": (dict(NAS, ailab_storage_backends=["nfs_provisioner"]),
                   ["No default StorageClass", "nfs_provisioner_default_class (nfs-client)"]),
    "no_devices": ({"ailab_storage_backends": ["rook_ceph"], "rook_ceph_storage_group": "bad_storage",
                    "rook_ceph_block_default_class": True},
                   ["bad1: rook_ceph_devices is empty", "bad2: rook_ceph_devices entries must be absolute device "
                    "paths under /dev/, got 'sdb'", "bad3: rook_ceph_devices lists /dev/sdb more than once"]),
    # Rook is fine and comes first: nothing may be exported before the NFS check fails.
    "nfs_without_server": ({"ailab_storage_backends": ["rook_ceph", "nfs_provisioner"],
                            "rook_ceph_storage_group": "rook1_storage", "rook_ceph_block_default_class": True,
                            "nfs_provisioner_path": "/mnt/tank/k8s"},
                           ["nfs_provisioner_server a host name or IP address of the NAS (is '')"]),
}

STORAGE_GROUPS = {
    "rook3_storage": {"ceph01": {"rook_ceph_devices": ["/dev/sdb"]},
                      "ceph02": {"rook_ceph_devices": ["/dev/sdb", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64"]},
                      "ceph03": {"rook_ceph_devices": ["/dev/sdc"], "node_prep_hostname": "ceph03-k8s"}},
    "rook1_storage": {"solo01": {"rook_ceph_devices": ["/dev/nvme1n1"]}},
    "bad_storage": {"bad1": {}, "bad2": {"rook_ceph_devices": ["sdb"]},
                    "bad3": {"rook_ceph_devices": ["/dev/sdb", "/dev/sdb"]}},
}

# Apply mode on a controller-local host without a cluster: the export run must stop in preflight,
# the check-mode run must pass and skip everything that needs the cluster.
NO_CLUSTER = {"ansible_connection": "local", "ansible_become": False, "ailab_storage_backends": ["rook_ceph"],
              "rook_ceph_storage_group": "rook1_storage", "rook_ceph_block_default_class": True}

RUNS = ("export", "again", "check")
# Labs exported a second time and in check mode: rook3 has both kinds of export (objects and Helm
# releases) and two backends; each exported file costs a module run, so the others are left out. The
# check-mode run also takes the bad labs and the apply-mode host.
AGAIN = ("rook3",)
CHECK = (*AGAIN, *BAD, "no_cluster")


def inventory(out, labs):
    hosts = {name: dict(vars_, ailab_kubernetes_export_dir=str(out / name)) for name, vars_ in labs.items()}
    hosts["no_cluster"] = dict(NO_CLUSTER, rook_ceph_kubeconfig=str(out / "no-cluster" / "admin.conf"))
    children = {"labs": {"hosts": hosts, "vars": UNREACHABLE}}
    children.update({group: {"hosts": members, "vars": UNREACHABLE} for group, members in STORAGE_GROUPS.items()})
    children["again_labs"] = {"hosts": {name: {} for name in AGAIN}}
    children["check_labs"] = {"hosts": {name: {} for name in CHECK}}
    return {"all": {"vars": {"ansible_python_interpreter": PYTHON}, "children": children}}


def snapshot(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def build(tmp):
    plays = [{"import_playbook": str(ROOT / "playbooks" / "storage.yml")}]
    all_labs = dict(LABS, **{name: vars_ for name, (vars_, _msg) in BAD.items()})
    runs = {}
    for key in RUNS:
        (tmp / key).mkdir()
    runs["export"] = run_playbook(tmp / "export", plays, inventory(tmp / "out", all_labs), "-e", "ailab_platform_hosts=labs")
    (tmp / "first-export.json").write_text(json.dumps({k: v.decode() for k, v in snapshot(tmp / "out").items()}))
    runs["again"] = run_playbook(tmp / "again", plays, inventory(tmp / "out", all_labs), "-e",
                                 "ailab_platform_hosts=again_labs")
    runs["check"] = run_playbook(tmp / "check", plays, inventory(tmp / "check-out", all_labs), "-e",
                                 "ailab_platform_hosts=check_labs", check=True)
    for key, run in runs.items():
        run.save(tmp / f"{key}.json")
    return runs["export"]


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    tmp, _export = shared_run(tmp_path_factory, "storage-export", build)
    runs = {key: PlaybookRun.load(tmp / f"{key}.json") for key in RUNS}
    return tmp, runs


def releases(directory):
    path = directory / "releases.yml"
    if not path.exists():
        return {}
    rels = yaml.safe_load(path.read_text())["releases"]
    return {r["name"]: dict(r, values=yaml.safe_load((directory / r["values_file"]).read_text())) for r in rels}


def default_classes(directory):
    """Every StorageClass marked default in an export: objects, and the NFS chart's storageClass values."""
    found = [obj["metadata"]["name"] for (kind, _ns, _n), obj in export_objects(directory).items()
             if kind == "StorageClass"
             and obj["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    for rel in releases(directory).values():
        if rel["chart"] == "nfs-subdir-external-provisioner" and rel["values"]["storageClass"].get("defaultClass"):
            found.append(rel["values"]["storageClass"]["name"])
    return found


def stats(run, host):
    return run.stats[host]


def test_runs_reach_no_node_and_fail_only_the_bad_labs(storage):
    _tmp, runs = storage
    failing = {"export": set(BAD) | {"no_cluster"}, "again": set(), "check": set(BAD)}
    for key, run in runs.items():
        assert run.rc == (2 if failing[key] else 0), (key, run.stdout[-3000:], run.stderr[-2000:])
        for host, st in run.stats.items():
            assert st["unreachable"] == 0, (key, host)
            assert st["failures"] == (1 if host in failing[key] else 0), (key, host, run.failure(host))
    # Storage nodes are never targeted (nor any group but the labs).
    assert set(runs["export"].stats) == set(LABS) | set(BAD) | {"no_cluster"}
    assert set(runs["check"].stats) == set(CHECK)


@pytest.mark.parametrize("lab", sorted(EXPECTED_DEFAULT))
def test_export_is_valid(storage, lab):
    tmp, _runs = storage
    assert export_objects(tmp / "out" / lab) or releases(tmp / "out" / lab)
    assert check_export(tmp / "out" / lab) == []


@pytest.mark.parametrize("lab", sorted(EXPECTED_DEFAULT))
def test_exactly_one_default_storage_class(storage, lab):
    tmp, runs = storage
    assert default_classes(tmp / "out" / lab) == [EXPECTED_DEFAULT[lab]]
    msgs = [r["msg"] for r in runs["export"].results("Check the storage backends and the lab's one default StorageClass", lab)]
    assert msgs == [f"Storage backends: {', '.join(LABS[lab]['ailab_storage_backends'])}; "
                    f"default StorageClass: {EXPECTED_DEFAULT[lab]}"]


def test_second_export_is_byte_identical_and_changes_nothing(storage):
    tmp, runs = storage
    first = {k: v.encode() for k, v in json.loads((tmp / "first-export.json").read_text()).items()}
    assert first == snapshot(tmp / "out")
    assert any(k.startswith("rook3/") for k in first)
    assert set(runs["again"].stats) == set(AGAIN)
    for lab in AGAIN:
        assert stats(runs["again"], lab)["changed"] == 0, lab
        assert stats(runs["again"], lab)["ok"] > 10, lab


def test_check_mode_writes_nothing(storage):
    tmp, runs = storage
    assert not (tmp / "check-out").exists()
    # The check-mode run did go through the export tasks.
    assert any(r.get("changed") for r in runs["check"].results("Record the release in releases.yml", "rook3"))


def test_apply_mode_without_a_cluster(storage):
    tmp, runs = storage
    message = runs["export"].failure("no_cluster")
    assert "which does not exist: run playbooks/kubernetes.yml first" in message, message
    plays = [p["play"]["name"] for p in runs["export"].data["plays"] if any("no_cluster" in t["hosts"] for t in p["tasks"])]
    assert plays == ["Storage preflight"]
    # Check mode before kubeadm init: nothing to compare with, nothing attempted, and it says so.
    check = runs["check"]
    assert check.stats["no_cluster"]["failures"] == 0
    (msg,) = [r["msg"] for r in check.results("Say that check mode cannot compare the cluster objects yet", "no_cluster")]
    assert msg.startswith("Check mode: there is no cluster yet")
    for task in ("Install or upgrade the release", "Apply each object with server-side apply",
                 "Wait until the Rook CRDs are Established"):
        results = check.results(task, "no_cluster")
        assert results and all(r.get("skipped") for r in results), task
    assert not (tmp / "check-out" / "no-cluster").exists()


def test_empty_backends_install_nothing_and_say_so(storage):
    tmp, runs = storage
    assert not (tmp / "out" / "empty").exists()
    task = "Check the storage backends and the lab's one default StorageClass"
    (msg,) = [r["msg"] for r in runs["export"].results(task, "empty")]
    assert "ailab_storage_backends is empty: the storage layer installs nothing" in msg


@pytest.mark.parametrize("lab", sorted(BAD))
def test_bad_inventory_stops_before_anything_is_exported(storage, lab):
    tmp, runs = storage
    for key in ("export", "check"):
        message = runs[key].failure(lab)
        assert message, (key, lab)
        for part in BAD[lab][1]:
            assert part in message, (key, message)
    assert not (tmp / "out" / lab).exists()
    # The failure comes from the preflight play, before any backend's play.
    failed = [t["task"]["name"] for p in runs["export"].data["plays"] for t in p["tasks"]
              if t["hosts"].get(lab, {}).get("failed")]
    plays_with_lab = [p["play"]["name"] for p in runs["export"].data["plays"]
                      if any(lab in t["hosts"] for t in p["tasks"])]
    assert len(failed) == 1 and plays_with_lab == ["Storage preflight"], (failed, plays_with_lab)


# ----------------------------------------------------------------------------------------- Rook-Ceph
def rook(tmp, lab):
    found = export_objects(tmp / "out" / lab)
    return found, {kind: obj for (kind, _ns, _name), obj in found.items() if kind.startswith("Ceph")}


def chart_class_parameters(kind):
    values = yaml.safe_load(reference("rook/charts/rook-ceph-cluster/values.yaml").read_text())
    entry = values["cephBlockPools"][0] if kind == "block" else values["cephFileSystems"][0]
    return entry["storageClass"]["parameters"]


def test_rook_three_nodes(storage):
    tmp, _runs = storage
    found, ceph = rook(tmp, "rook3")
    cluster = ceph["CephCluster"]["spec"]
    assert cluster["mon"] == {"count": 3, "allowMultiplePerNode": False}
    assert cluster["mgr"]["count"] == 2
    assert cluster["dashboard"]["enabled"] is True
    assert cluster["storage"]["useAllNodes"] is False and cluster["storage"]["useAllDevices"] is False
    assert cluster["storage"]["nodes"] == [
        {"name": "ceph01", "devices": [{"name": "sdb"}]},
        {"name": "ceph02", "devices": [{"name": "sdb"}, {"name": "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64"}]},
        {"name": "ceph03-k8s", "devices": [{"name": "sdc"}]}]
    assert cluster["cephVersion"]["image"] == "harbor.lab.example/proxy/ceph/ceph:v20.2.4"
    pool = ceph["CephBlockPool"]["spec"]
    assert pool == {"failureDomain": "host", "replicated": {"size": 3, "requireSafeReplicaSize": True}}
    fs = ceph["CephFilesystem"]["spec"]
    assert fs["dataPools"][0]["replicated"]["size"] == 3 and fs["metadataPool"]["replicated"]["size"] == 3
    block = found[("StorageClass", "_cluster", "ceph-block")]
    cephfs = found[("StorageClass", "_cluster", "ceph-filesystem")]
    assert block["provisioner"] == "rook-ceph.rbd.csi.ceph.com"
    assert cephfs["provisioner"] == "rook-ceph.cephfs.csi.ceph.com"
    assert cephfs["parameters"]["fsName"] == "ceph-filesystem"
    assert cephfs["parameters"]["pool"] == "ceph-filesystem-data0"
    assert block["parameters"]["pool"] == "replicapool"
    # The CSI parameters are the ones the rook-ceph-cluster chart v1.20.6 puts in its classes.
    for cls, kind in ((block, "block"), (cephfs, "filesystem")):
        chart = chart_class_parameters(kind)
        assert set(cls["parameters"]) - {"clusterID", "pool", "fsName"} == set(chart), kind
        for key, value in chart.items():
            assert cls["parameters"][key] == value.replace("{{ .Release.Namespace }}", "rook-ceph"), key
    tools = found[("Deployment", "rook-ceph", "rook-ceph-tools")]
    assert tools["spec"]["template"]["spec"]["containers"][0]["image"] == "harbor.lab.example/proxy/ceph/ceph:v20.2.4"


def test_rook_operator_release(storage):
    tmp, _runs = storage
    rel = releases(tmp / "out" / "rook3")["rook-ceph"]
    assert (rel["repo"], rel["chart"], rel["version"], rel["namespace"]) == (
        "https://charts.rook.io/release", "rook-ceph", "v1.20.6", "rook-ceph")
    values = rel["values"]
    assert check_chart_values("rook-ceph", values) == []
    assert values["crds"] == {"enabled": True}
    assert values["image"] == {"repository": "harbor.lab.example/proxy/rook/ceph", "tag": "v1.20.6"}
    chart = yaml.safe_load(reference("rook/charts/rook-ceph/values.yaml").read_text())
    assert chart["image"]["tag"] == values["image"]["tag"]
    for name, image in values["csi"].items():
        upstream = chart["csi"][name]["repository"]
        assert image["repository"] == "harbor.lab.example/proxy/" + upstream.split("/", 1)[1], name
    upstream_values = releases(tmp / "out" / "rook1")["rook-ceph"]["values"]
    assert upstream_values["image"]["repository"] == chart["image"]["repository"]
    assert {k: v["repository"] for k, v in upstream_values["csi"].items()} == {
        k: chart["csi"][k]["repository"] for k in upstream_values["csi"]}


def test_rook_one_node_lowers_replication_and_warns(storage):
    tmp, runs = storage
    _found, ceph = rook(tmp, "rook1")
    cluster = ceph["CephCluster"]["spec"]
    assert cluster["mon"]["count"] == 1 and cluster["mgr"]["count"] == 1
    assert cluster["storage"]["nodes"] == [{"name": "solo01", "devices": [{"name": "nvme1n1"}]}]
    assert ceph["CephBlockPool"]["spec"]["replicated"] == {"size": 1, "requireSafeReplicaSize": False}
    assert "CephFilesystem" not in ceph
    warn = "Warn that replication is lowered to the number of storage nodes"
    msgs = [r.get("msg", "") for r in runs["export"].results(warn, "rook1") if not r.get("skipped")]
    assert msgs and all(m.startswith("WARNING: rook_ceph has 1 storage node(s)") for m in msgs), msgs
    assert "keep 1 copy of each object instead of 3" in msgs[0] and "losing that node loses the data" in msgs[0]
    assert runs["export"].skipped(warn, "rook3")


# ------------------------------------------------------------------------------------------------ NFS
def test_nfs_release_values(storage):
    tmp, _runs = storage
    rel = releases(tmp / "out" / "nfs_only")["nfs-subdir-external-provisioner"]
    assert (rel["repo"], rel["version"], rel["namespace"]) == (
        "https://kubernetes-sigs.github.io/nfs-subdir-external-provisioner/", "4.0.18", "nfs-provisioner")
    values = rel["values"]
    assert check_chart_values("nfs-subdir-external-provisioner", values) == []
    assert values["nfs"] == {"server": "nas.lab.example", "path": "/mnt/tank/k8s", "mountOptions": ["nfsvers=4.1", "hard"]}
    assert values["storageClass"] == {"name": "nfs-client", "defaultClass": True, "reclaimPolicy": "Delete",
                                      "archiveOnDelete": True, "onDelete": "retain",
                                      "pathPattern": "${.PVC.namespace}/${.PVC.name}"}
    assert values["image"] == {"repository": "harbor.lab.example/proxy/sig-storage/nfs-subdir-external-provisioner"}
    second = releases(tmp / "out" / "rook3")["nfs-subdir-external-provisioner"]["values"]
    assert second["storageClass"]["defaultClass"] is False
    assert "mountOptions" not in second["nfs"] and "onDelete" not in second["storageClass"]
    chart = yaml.safe_load(reference("nfs-subdir-external-provisioner/values.yaml").read_text())
    assert second["image"]["repository"] == chart["image"]["repository"]


# ----------------------------------------------------------------------------------------- local-path
def upstream_local_path():
    docs = load_all(reference("local-path-provisioner/deploy/local-path-storage.yaml"))
    return {(d["kind"], d["metadata"].get("namespace", "_cluster"), d["metadata"]["name"]): d for d in docs}


def test_local_path_matches_upstream(storage):
    tmp, _runs = storage
    ours, theirs = export_objects(tmp / "out" / "local"), upstream_local_path()
    assert set(ours) == set(theirs)
    for key, upstream in theirs.items():
        if key[0] not in ("Deployment", "StorageClass", "ConfigMap"):
            assert ours[key] == upstream, key
    deploy_key = ("Deployment", "local-path-storage", "local-path-provisioner")
    ours_deploy, their_deploy = ours[deploy_key], theirs[deploy_key]
    assert ours_deploy["spec"]["template"]["spec"]["containers"][0]["image"] == \
        their_deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/rancher/local-path-provisioner:v0.0.37"
    assert ours_deploy == their_deploy
    sc = ours[("StorageClass", "_cluster", "local-path")]
    upstream_sc = theirs[("StorageClass", "_cluster", "local-path")]
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert {k: v for k, v in sc.items() if k != "metadata"} == {k: v for k, v in upstream_sc.items() if k != "metadata"}
    cm_key = ("ConfigMap", "local-path-storage", "local-path-config")
    cm, upstream_cm = ours[cm_key]["data"], theirs[cm_key]["data"]
    assert cm["setup"] == upstream_cm["setup"] and cm["teardown"] == upstream_cm["teardown"]
    helper = yaml.safe_load(cm["helperPod.yaml"])
    upstream_helper = yaml.safe_load(upstream_cm["helperPod.yaml"])
    # The helper image is pinned; upstream leaves it untagged.
    assert helper["spec"]["containers"][0].pop("image") == "docker.io/library/busybox:1.37.0"
    assert upstream_helper["spec"]["containers"][0].pop("image") == "docker.io/library/busybox"
    assert helper == upstream_helper
    assert json.loads(cm["config.json"]) == {"nodePathMap": LABS["local"]["local_path_node_path_map"]}
    assert json.loads(upstream_cm["config.json"]).keys() == json.loads(cm["config.json"]).keys()


def test_local_path_config_follows_the_provisioner_rules(storage):
    tmp, _runs = storage
    cm = export_objects(tmp / "out" / "local")[("ConfigMap", "local-path-storage", "local-path-config")]
    node_path_map = json.loads(cm["data"]["config.json"])["nodePathMap"]
    nodes = [e["node"] for e in node_path_map]
    assert len(nodes) == len(set(nodes))
    for entry in node_path_map:
        assert entry["paths"], entry
        assert all(p.startswith("/") and p != "/" for p in entry["paths"])
        assert len(entry["paths"]) == len(set(entry["paths"]))


def test_inventory_uses_only_loopback_addresses():
    inv = inventory(ROOT, dict(LABS))
    assert inv["all"]["children"]["labs"]["vars"]["ansible_host"] == "127.0.0.1"
    assert all(group["vars"]["ansible_port"] == 9 for group in inv["all"]["children"].values() if "vars" in group)


def test_preflight_runs_once_before_any_backend(storage):
    _tmp, runs = storage
    run = runs["export"]
    assert [p["play"]["name"] for p in run.data["plays"]] == [
        "Storage preflight", "Rook-Ceph", "NFS provisioner", "Local path provisioner"]
    for task, lab in (("Check the storage nodes and their raw devices", "rook3"),
                      ("Check the NFS export", "rook3"), ("Check the volume directories (local_path_node_path_map)", "local")):
        results = run.results(task, lab)
        # Once in the preflight play; the role's own preflight is skipped in its play.
        assert [bool(r.get("skipped")) for r in results] == [False, True], (task, results)


def role_templar(role, **inventory):
    """Ansible's templar over a role's defaults and vars plus inventory values, as in a play."""
    variables = {}
    for part in ("defaults", "vars"):
        variables.update(yaml.safe_load((ROOT / "roles" / role / part / "main.yml").read_text()))
    variables.update(inventory)
    variables = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in variables.items()}
    return Templar(loader=DataLoader(), variables=variables)


@pytest.mark.parametrize("registry, provisioner, helper", [
    ("", "docker.io/rancher/local-path-provisioner:v0.0.37", "docker.io/library/busybox:1.37.0"),
    ("harbor.lab.example/proxy/", "harbor.lab.example/proxy/rancher/local-path-provisioner:v0.0.37",
     "harbor.lab.example/proxy/library/busybox:1.37.0"),
])
def test_local_path_images_follow_the_registry(registry, provisioner, helper):
    templar = role_templar("local_path", local_path_image_registry=registry)
    assert templar.template(trust_as_template("{{ _local_path_image }}")) == provisioner
    assert templar.template(trust_as_template("{{ _local_path_helper_image }}")) == helper


@pytest.mark.parametrize("release, deployment", [
    ("nfs-subdir-external-provisioner", "nfs-subdir-external-provisioner"),
    ("lab-nfs-subdir-external-provisioner", "lab-nfs-subdir-external-provisioner"),
    ("nas", "nas-nfs-subdir-external-provisioner"),
    ("a-very-long-release-name-for-the-lab-nas-x", "a-very-long-release-name-for-the-lab-nas-x-nfs-subdir-external"),
])
def test_nfs_deployment_name_is_the_chart_fullname(release, deployment):
    templar = role_templar("nfs_provisioner", nfs_provisioner_release_name=release)
    assert templar.template(trust_as_template("{{ _nfs_provisioner_fullname }}")) == deployment
