"""The tenants and gpu_queues roles in export mode, on sample labs, in one ansible-playbook run.

Every variant host reaches nothing: ``ansible_connection: ssh`` to 127.0.0.1 port 9 (closed), so a task
that ran on the host instead of the controller would make it unreachable. Variants:

- ``cpu_only``: no GPU node groups, two tenants;
- ``timesliced``: two time-sliced GPU groups (RTX 3090 x4 and RTX 4090 x2 renamed to nvidia.com/gpu.shared);
- ``h200_mig``: one H200 node with a mixed-strategy MIG layout; an earlier export holds a tenant that is gone
  (reported, kept);
- ``three_tenants``: MIG, time-slicing and whole L40S GPUs (two keys on nvidia.com/gpu), three tenants with
  different quotas and borrowing, oversubscribed; ``tenants_prune``/``gpu_queues_prune`` remove a stale tenant;
- ``bad_*``: bad inventory, each stopped in preflight with its message and nothing exported.

``three_tenants`` is exported a second time into another directory: the two exports are identical. A second
run with ``--check`` exports the ``three_tenants`` lab (nothing is written) and runs apply mode before the
cluster exists (no kubeconfig: nothing fails).
"""

import copy
import json
from pathlib import Path

import pytest
import yaml

from export_check import CHARTS, check_export, reference
from unit.roles.playbook_runner import PYTHON, export_objects, run_playbook, shared_run
from unit.roles.playbook_runner import UNREACHABLE as RUNNER_UNREACHABLE

H200 = {"group": "gpu_h200", "gpu_model": "NVIDIA H200",
        "sharing": {"mode": "mig", "mig_strategy": "mixed",
                    "mig_layout": [{"profile": "2g.35gb", "count": 3}, {"profile": "1g.18gb", "count": 1}]},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
RTX3090 = {"group": "gpu_rtx3090", "gpu_model": "NVIDIA GeForce RTX 3090", "sharing": {"mode": "time-slicing", "replicas": 4}}
RTX4090 = {"group": "gpu_rtx4090", "gpu_model": "RTX 4090", "gpus_per_node": 2,
           "sharing": {"mode": "time-slicing", "replicas": 2, "rename_by_default": True}}
L40S = {"group": "gpu_l40s", "gpu_model": "NVIDIA L40S", "gpus_per_node": 2}
GPU_HOSTS = {"gpu_h200": ["h200-1"], "gpu_rtx3090": ["rtx3090-1", "rtx3090-2"], "gpu_rtx4090": ["rtx4090-1"],
             "gpu_l40s": ["l40s-1"]}

CPU_TENANTS = [
    {"name": "cs101", "kind": "course", "users": {"group": "cs101-students"}, "admins": ["alice"],
     "quota": {"cpu": 32, "memory": "128Gi", "storage": "200Gi", "pvcs": 60}, "profiles": ["cpu-small"]},
    {"name": "staff", "namespace": "lab-staff", "kind": "staff", "users": ["carol"], "admin_groups": ["lab-admins"],
     "quota": {"cpu": "8", "memory": "32Gi"}},
]
TIMESLICED_TENANTS = [
    {"name": "ml-course", "kind": "course", "users": {"groups": ["ml-students"]},
     "quota": {"cpu": 48, "memory": "192Gi", "gpu": {"rtx-3090-shared": 6}}},
    {"name": "nlp", "kind": "research", "users": {"users": ["dan", "erin"]}, "admins": ["dan"],
     "quota": {"cpu": 64, "memory": "256Gi", "storage": "1Ti", "gpu": {"rtx-3090-shared": 2, "rtx-4090-shared": 4}}},
]
MIG_TENANTS = [
    {"name": "cs101", "kind": "course", "users": {"group": "cs101-students"},
     "quota": {"cpu": 32, "memory": "128Gi", "gpu": {"mig-1g.18gb": 1}}, "profiles": ["cpu-small", "mig-1g.18gb"]},
    {"name": "vision", "kind": "research", "users": {"group": "vision-lab"},
     "quota": {"cpu": 128, "memory": "512Gi", "gpu": {"mig-2g.35gb": 3}}},
]
THREE_TENANTS = [
    {"name": "cs101", "kind": "course", "users": {"group": "cs101-students"}, "admins": ["alice"],
     "quota": {"cpu": 64, "memory": "256Gi", "storage": "500Gi", "pvcs": 100, "gpu": {"mig-1g.18gb": 1, "rtx-3090-shared": 4}},
     "profiles": ["cpu-small", "mig-1g.18gb", "rtx-3090-shared"]},
    {"name": "vision", "kind": "research", "users": {"group": "vision-lab"}, "admins": ["bob"],
     "quota": {"cpu": 256, "memory": "1Ti", "storage": "5Ti", "gpu": {"mig-2g.35gb": 2, "l40s": 2, "rtx-3090-shared": 4}},
     "gpu_borrowing": {"l40s": 0, "mig-1g.18gb": 1}},
    {"name": "ops", "kind": "staff", "users": {"users": ["carol"]},
     "quota": {"cpu": "16", "memory": "64Gi", "gpu": {"mig-2g.35gb": 2, "l40s": 1}}},
]
THREE_GROUPS = [H200, RTX3090, L40S]

GOOD = {
    "cpu_only": {"ailab_gpu_node_groups": [], "ailab_tenants": CPU_TENANTS},
    "timesliced": {"ailab_gpu_node_groups": [RTX3090, RTX4090], "ailab_tenants": TIMESLICED_TENANTS,
                   "tenants_ingress_namespace": "ingress-nginx", "tenants_egress_cidrs": ["10.20.0.0/24"],
                   "gpu_queues_image_registry": "harbor.lab.example/proxy",
                   "gpu_queues_chart_ref": "oci://harbor.lab.example/kueue/charts/kueue",
                   "gpu_queues_manager_config_extra": {"resources": {"excludeResourcePrefixes": ["ephemeral-storage"]}}},
    "h200_mig": {"ailab_gpu_node_groups": [H200], "ailab_tenants": MIG_TENANTS},
    "three_tenants": {"ailab_gpu_node_groups": THREE_GROUPS, "ailab_tenants": THREE_TENANTS,
                      "tenants_prune": True, "gpu_queues_prune": True},
}
BAD = {
    "bad_duplicate": ([H200], MIG_TENANTS + [dict(MIG_TENANTS[1], namespace="vision-2")],
                      "ailab_tenants[2] (tenant vision): the name is already used by entry 1"),
    "bad_unknown_key": ([H200], [dict(MIG_TENANTS[1], quota={"cpu": 8, "memory": "8Gi", "gpu": {"a100": 1}})],
                        "quota.gpu names a100, which no GPU node group provides; the lab's GPU resource keys: "
                        "mig-1g.18gb, mig-2g.35gb"),
    "bad_no_nodes": ([H200, dict(L40S, group="gpu_empty")],
                     [dict(MIG_TENANTS[1], quota={"cpu": 8, "memory": "8Gi", "gpu": {"l40s": 1}})],
                     "quota.gpu gives 1 l40s, but the lab has no node with it (group gpu_empty has no hosts)"),
    "bad_profile_over_quota": ([H200], [dict(MIG_TENANTS[0], profiles=["mig-2g.35gb"])],
                               "profile mig-2g.35gb asks for 1 mig-2g.35gb but quota.gpu gives the tenant 0"),
}
STALE = {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "old-course", "labels": {"ailab.cluster/tenant": "old-course"}}}
STALE_QUEUE = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
               "metadata": {"name": "old-course", "labels": {"ailab.cluster/tenant": "old-course"}},
               "spec": {"namespaceSelector": {"matchLabels": {"ailab.cluster/tenant": "old-course"}}}}
ROOT = Path(__file__).resolve().parents[3]
UNREACHABLE = dict(RUNNER_UNREACHABLE, ansible_user="nobody")


def write_stale(directory):
    (directory / "_cluster").mkdir(parents=True)
    (directory / "old-course").mkdir()
    (directory / "_cluster" / "namespace-old-course.yaml").write_text("---\n" + yaml.safe_dump(STALE))
    (directory / "_cluster" / "clusterqueue-old-course.yaml").write_text("---\n" + yaml.safe_dump(STALE_QUEUE))
    (directory / "old-course" / "localqueue-default.yaml").write_text("---\n" + yaml.safe_dump({
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
        "metadata": {"name": "default", "namespace": "old-course"}, "spec": {"clusterQueue": "old-course"}}))


def _inventory(hosts):
    gpu_groups = {group: {"hosts": {h: {} for h in members}} for group, members in GPU_HOSTS.items()}
    gpu_groups["gpu_empty"] = {"hosts": {}}
    return {"all": {"children": {"variants": {"hosts": hosts}, "gpu_nodes": {"children": gpu_groups}}}}


ROLES = [{"role": "ailab.cluster.tenants"}, {"role": "ailab.cluster.gpu_queues"}]


def build(tmp):
    hosts = {}
    for name, variables in GOOD.items():
        hosts[name] = dict(UNREACHABLE, **copy.deepcopy(variables), ailab_kubernetes_export_dir=str(tmp / name),
                           second_export_dir=str(tmp / "second" / name))
    for name, (node_groups, tenants, _message) in BAD.items():
        hosts[name] = dict(UNREACHABLE, ailab_gpu_node_groups=node_groups, ailab_tenants=tenants,
                           ailab_kubernetes_export_dir=str(tmp / name))
    write_stale(tmp / "h200_mig")
    write_stale(tmp / "three_tenants")
    plays = [
        {"name": "Export", "hosts": ":".join(list(GOOD) + list(BAD)), "gather_facts": False, "roles": ROLES},
        # The richest lab once more, into a fresh directory: the export is the same, byte for byte.
        {"name": "Export again", "hosts": "three_tenants", "gather_facts": False, "roles": ROLES,
         "vars": {"ailab_kubernetes_export_dir": "{{ second_export_dir }}"}},
    ]
    return run_playbook(tmp, plays, _inventory(hosts))


def build_check(tmp):
    """ansible-playbook --check: export mode writes nothing; apply mode before the cluster exists does not fail."""
    hosts = {
        "check": dict(UNREACHABLE, ailab_gpu_node_groups=THREE_GROUPS, ailab_tenants=THREE_TENANTS,
                      ailab_kubernetes_export_dir=str(tmp / "check")),
        "apply_check": {"ansible_connection": "local", "ansible_python_interpreter": PYTHON,
                        "ailab_gpu_node_groups": THREE_GROUPS, "ailab_tenants": THREE_TENANTS,
                        "tenants_kubeconfig": str(tmp / "no-cluster.conf"),
                        "gpu_queues_kubeconfig": str(tmp / "no-cluster.conf")},
    }
    plays = [{"name": "Check mode", "hosts": "variants", "gather_facts": False, "roles": ROLES}]
    return run_playbook(tmp, plays, _inventory(hosts), check=True)


def build_playbook(tmp):
    """playbooks/tenants.yml itself, on two labs (ailab_platform_hosts): a good one, and one whose gpu_queues
    settings are wrong, which must stop in the preflight play, before the tenants role exports anything."""
    hosts = {
        "playbook_good": dict(UNREACHABLE, ailab_gpu_node_groups=[], ailab_tenants=CPU_TENANTS,
                              ailab_kubernetes_export_dir=str(tmp / "playbook_good")),
        "playbook_bad": dict(UNREACHABLE, ailab_gpu_node_groups=THREE_GROUPS, ailab_tenants=THREE_TENANTS,
                             gpu_queues_deadline_priority=100, ailab_kubernetes_export_dir=str(tmp / "playbook_bad")),
    }
    plays = [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "tenants.yml")}]
    return run_playbook(tmp, plays, _inventory(hosts), "-e", "ailab_platform_hosts=playbook_good:playbook_bad")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp, run = shared_run(tmp_path_factory, "tenants-export", build)
    for host in GOOD:
        stats = run.stats[host]
        assert stats["failures"] == 0 and stats["unreachable"] == 0, (host, run.failure(host), run.stdout[-3000:])
    return tmp, run


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return shared_run(tmp_path_factory, "tenants-check", build_check)


@pytest.fixture(scope="module")
def playbook(tmp_path_factory):
    return shared_run(tmp_path_factory, "tenants-playbook", build_playbook)


def of_kind(found, kind):
    return {key[1] if key[1] != "_cluster" else key[2]: obj for key, obj in found.items() if key[0] == kind}


def tree(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ export
@pytest.mark.parametrize("variant", list(GOOD))
def test_export_is_valid(exported, variant):
    tmp, _run = exported
    reference("kueue/crds/kueue.x-k8s.io_clusterqueues.yaml")
    assert check_export(tmp / variant) == []
    assert export_objects(tmp / variant)


def test_second_export_is_identical(exported):
    tmp, _run = exported
    first, second = tree(tmp / "three_tenants"), tree(tmp / "second" / "three_tenants")
    assert second and first == second


def test_no_task_ran_on_the_unreachable_hosts(exported):
    _tmp, run = exported
    for host in list(GOOD) + list(BAD):
        assert run.stats[host]["unreachable"] == 0, host


def test_tenant_namespaces_quotas_and_rbac(exported):
    tmp, _run = exported
    found = export_objects(tmp / "cpu_only")
    namespaces = of_kind(found, "Namespace")
    assert set(namespaces) == {"cs101", "lab-staff"}
    labels = namespaces["lab-staff"]["metadata"]["labels"]
    assert labels["ailab.cluster/tenant"] == "staff"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    quota = of_kind(found, "ResourceQuota")["cs101"]["spec"]["hard"]
    assert quota == {"persistentvolumeclaims": "60", "requests.cpu": "32", "requests.memory": "128Gi",
                     "requests.storage": "200Gi"}
    assert of_kind(found, "ResourceQuota")["lab-staff"]["spec"]["hard"] == {"requests.cpu": "8", "requests.memory": "32Gi"}
    limits = found[("LimitRange", "cs101", "tenant-defaults")]["spec"]["limits"]
    assert limits == [{"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "256Mi"}}]
    admins = found[("RoleBinding", "cs101", "tenant-admins")]
    assert admins["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}
    assert admins["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]
    members = found[("RoleBinding", "cs101", "tenant-members")]
    assert members["roleRef"]["name"] == "edit"
    assert members["subjects"] == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "cs101-students"}]
    staff_admins = found[("RoleBinding", "lab-staff", "tenant-admins")]["subjects"]
    assert staff_admins == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "lab-admins"}]


def test_jupyterhub_can_spawn_in_tenant_namespaces(exported):
    """The hub's ServiceAccount gets z2jh's hub Role verbs in every tenant namespace, and nothing more."""
    tmp, _run = exported
    found = export_objects(tmp / "cpu_only")
    for namespace in ("cs101", "lab-staff"):
        role = found[("Role", namespace, "jupyterhub-spawner")]
        rules = {(tuple(r["apiGroups"]), res): tuple(r["verbs"]) for r in role["rules"] for res in r["resources"]}
        assert rules == {
            (("",), "pods"): ("get", "watch", "list", "create", "delete"),
            (("",), "persistentvolumeclaims"): ("get", "watch", "list", "create", "delete"),
            (("",), "secrets"): ("get", "watch", "list", "create", "delete"),
            (("",), "services"): ("get", "watch", "list", "create", "delete"),
            (("",), "events"): ("get", "watch", "list"),
        }
        binding = found[("RoleBinding", namespace, "jupyterhub-spawner")]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": "jupyterhub"}]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jupyterhub-spawner"}


def test_network_policies_deny_by_default_with_allowances(exported):
    tmp, _run = exported
    found = export_objects(tmp / "timesliced")
    policies = {name: obj["spec"] for (kind, ns, name), obj in found.items() if kind == "NetworkPolicy" and ns == "nlp"}
    assert set(policies) == {"default-deny", "allow-tenant-traffic"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = policies["allow-tenant-traffic"]
    assert allow["podSelector"] == {} and allow["policyTypes"] == ["Ingress", "Egress"]

    def namespace(name):
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}
    assert [rule["from"] for rule in allow["ingress"]] == [
        [{"podSelector": {}}], [namespace("jupyterhub")], [namespace("ingress-nginx")]]
    same, dns, hub, internet, cidrs = allow["egress"]
    assert same == {"to": [{"podSelector": {}}]}
    assert dns["to"] == [dict(namespace("kube-system"), podSelector={"matchLabels": {"k8s-app": "kube-dns"}})]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert hub == {"to": [dict(namespace("jupyterhub"), podSelector={"matchLabels": {"component": "hub"}})],
                   "ports": [{"protocol": "TCP", "port": 8081}]}
    assert internet["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in internet["to"][0]["ipBlock"]["except"]
    assert cidrs == {"to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}]}
    # Without an ingress namespace there is no such allowance.
    cpu_allow = export_objects(tmp / "cpu_only")[("NetworkPolicy", "cs101", "allow-tenant-traffic")]["spec"]
    assert namespace("ingress-nginx") not in [peer for rule in cpu_allow["ingress"] for peer in rule["from"]]


def gpu_quota(resource_quota):
    return {k[len("requests."):]: int(v) for k, v in resource_quota["spec"]["hard"].items()
            if k.startswith("requests.nvidia.com/")}


def test_gpu_quotas_zero_for_resources_a_tenant_has_none_of(exported):
    tmp, _run = exported
    quotas = of_kind(export_objects(tmp / "h200_mig"), "ResourceQuota")
    # Nominal + default borrowing (as much as the tenant's own quota, at most what the others hold).
    assert gpu_quota(quotas["cs101"]) == {"nvidia.com/mig-1g.18gb": 1, "nvidia.com/mig-2g.35gb": 0}
    assert gpu_quota(quotas["vision"]) == {"nvidia.com/mig-1g.18gb": 0, "nvidia.com/mig-2g.35gb": 3}
    quotas = of_kind(export_objects(tmp / "timesliced"), "ResourceQuota")
    assert gpu_quota(quotas["ml-course"]) == {"nvidia.com/gpu": 8, "nvidia.com/gpu.shared": 0}
    assert gpu_quota(quotas["nlp"]) == {"nvidia.com/gpu": 4, "nvidia.com/gpu.shared": 4}
    assert of_kind(export_objects(tmp / "cpu_only"), "ResourceQuota") and all(
        not gpu_quota(q) for q in of_kind(export_objects(tmp / "cpu_only"), "ResourceQuota").values())


def test_two_gpu_keys_on_one_resource_name(exported):
    """rtx-3090-shared and l40s are both nvidia.com/gpu: the ResourceQuota holds their sum, Kueue one flavor each."""
    tmp, _run = exported
    found = export_objects(tmp / "three_tenants")
    quotas = of_kind(found, "ResourceQuota")
    # vision: rtx 4 (+4 borrowing) and l40s 2 (+0, gpu_borrowing says so)
    assert gpu_quota(quotas["vision"])["nvidia.com/gpu"] == 10
    queue = of_kind(found, "ClusterQueue")["vision"]
    group = next(g for g in queue["spec"]["resourceGroups"] if g["coveredResources"] == ["nvidia.com/gpu"])
    assert [(f["name"], f["resources"][0]["nominalQuota"], f["resources"][0]["borrowingLimit"]) for f in group["flavors"]] \
        == [("gpu-l40s", 2, 0), ("gpu-rtx-3090-shared", 4, 4)]


def test_queue_flavors_match_the_resource_quota(exported):
    """Derived from the exported objects alone: each tenant's ClusterQueue covers exactly the GPU resources of
    its ResourceQuota, and per resource its nominal quota plus borrowing limit is the quota's hard cap."""
    tmp, _run = exported
    for variant in GOOD:
        found = export_objects(tmp / variant)
        namespaces = of_kind(found, "Namespace")
        quotas = of_kind(found, "ResourceQuota")
        flavors = of_kind(found, "ResourceFlavor")
        for name, queue in of_kind(found, "ClusterQueue").items():
            if name == "old-course":
                continue
            namespace = next(n for n, obj in namespaces.items()
                             if obj["metadata"]["labels"]["ailab.cluster/tenant"] == name)
            assert queue["spec"]["namespaceSelector"] == {"matchLabels": {"ailab.cluster/tenant": name}}
            covered = {}
            for group in queue["spec"]["resourceGroups"]:
                for flavor in group["flavors"]:
                    assert flavor["name"] in flavors, (variant, flavor["name"])
                    for resource in flavor["resources"]:
                        if resource["name"] in ("cpu", "memory"):
                            continue
                        covered[resource["name"]] = covered.get(resource["name"], 0) + \
                            int(resource["nominalQuota"]) + int(resource.get("borrowingLimit", 0))
            hard = quotas[namespace]["spec"]["hard"]
            assert covered == gpu_quota(quotas[namespace]), (variant, name)
            cpu_group = queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
            assert [(r["name"], r["nominalQuota"]) for r in cpu_group] == [
                ("cpu", hard["requests.cpu"]), ("memory", hard["requests.memory"])]


def test_cel_rules_of_cluster_queues(exported):
    """The CRD's CEL rules the JSON schema cannot check (reference kueue/SOURCE.md)."""
    tmp, _run = exported
    for variant in GOOD:
        for name, queue in of_kind(export_objects(tmp / variant), "ClusterQueue").items():
            spec = queue["spec"]
            seen_resources, seen_flavors = set(), set()
            for group in spec.get("resourceGroups", []):
                for flavor in group["flavors"]:
                    # Each flavor lists as many resources as coveredResources, in the same order.
                    assert [r["name"] for r in flavor["resources"]] == group["coveredResources"], (variant, name)
                    assert flavor["name"] not in seen_flavors
                    seen_flavors.add(flavor["name"])
                    for resource in flavor["resources"]:
                        if "borrowingLimit" in resource or "lendingLimit" in resource:
                            assert spec.get("cohortName"), (variant, name)
                assert not seen_resources & set(group["coveredResources"])
                seen_resources |= set(group["coveredResources"])
            if name != "old-course":
                assert spec["cohortName"] == "lab"
                assert spec["preemption"] == {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}


def test_flavors_follow_the_gpu_node_groups(exported):
    tmp, _run = exported
    flavors = of_kind(export_objects(tmp / "three_tenants"), "ResourceFlavor")
    assert set(flavors) == {"lab-cpu", "gpu-l40s", "gpu-mig-1g.18gb", "gpu-mig-2g.35gb", "gpu-rtx-3090-shared"}
    assert flavors["lab-cpu"]["spec"] == {}
    assert flavors["gpu-mig-2g.35gb"]["spec"] == {
        "nodeLabels": {"ailab.cluster/gpu-group": "gpu_h200"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}]}
    assert flavors["gpu-l40s"]["spec"] == {"nodeLabels": {"ailab.cluster/gpu-group": "gpu_l40s"}}


def test_local_queues_priorities_and_batch_users(exported):
    tmp, _run = exported
    found = export_objects(tmp / "three_tenants")
    for tenant in ("cs101", "vision", "ops"):
        assert found[("LocalQueue", tenant, "default")]["spec"] == {"clusterQueue": tenant}
    wpc = of_kind(found, "WorkloadPriorityClass")
    pcs = of_kind(found, "PriorityClass")
    values = {name: obj["value"] for name, obj in wpc.items()}
    assert values == {"ailab-course": 1000, "ailab-research": 2000, "ailab-staff": 3000, "ailab-deadline": 10000}
    assert {name: obj["value"] for name, obj in pcs.items()} == values
    assert all(obj["preemptionPolicy"] == "Never" and obj["globalDefault"] is False for obj in pcs.values())
    users = found[("RoleBinding", "vision", "kueue-batch-users")]
    assert users["roleRef"]["name"] == "kueue-batch-user-role"
    assert {(s["kind"], s["name"]) for s in users["subjects"]} == {("Group", "vision-lab"), ("User", "bob")}


def release(directory, name="kueue"):
    releases = yaml.safe_load((directory / "releases.yml").read_text())["releases"]
    entry = next(r for r in releases if r["name"] == name)
    return entry, yaml.safe_load((directory / entry["values_file"]).read_text())


def test_kueue_release_pinned_with_fair_sharing(exported):
    tmp, _run = exported
    entry, values = release(tmp / "h200_mig")
    assert entry["chart"] == "oci://registry.k8s.io/kueue/charts/kueue"
    assert entry["version"] == CHARTS["kueue"]["version"] == "0.19.2"
    assert entry["namespace"] == "kueue-system"
    assert values["controllerManager"]["manager"]["image"] == {
        "repository": "registry.k8s.io/kueue/kueue", "tag": "v0.19.2", "pullPolicy": "IfNotPresent"}
    config = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    upstream = yaml.safe_load(yaml.safe_load(reference("kueue/values.yaml").read_text())
                              ["managerConfig"]["controllerManagerConfigYaml"])
    # The chart's configuration, plus fair sharing.
    assert {k: v for k, v in config.items() if k != "fairSharing"} == upstream
    assert config["fairSharing"] == {"preemptionStrategies": ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]}


def test_kueue_registry_and_chart_mirror(exported):
    tmp, _run = exported
    entry, values = release(tmp / "timesliced")
    assert entry["chart"] == "oci://harbor.lab.example/kueue/charts/kueue"
    assert values["controllerManager"]["manager"]["image"]["repository"] == "harbor.lab.example/proxy/kueue/kueue"
    config = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    assert config["resources"] == {"excludeResourcePrefixes": ["ephemeral-storage"]}
    assert config["fairSharing"]["preemptionStrategies"] and config["integrations"]["frameworks"]


def test_capacity_report_warns_about_oversubscription(exported):
    _tmp, run = exported
    warnings = [r.get("msg", "") for r in run.results("Warn about oversubscribed GPU resources", "three_tenants")]
    # mig-2g.35gb: vision 2 + ops 2 of 3; l40s: vision 2 + ops 1 of 2.
    assert any("l40s (3 of 2)" in m and "mig-2g.35gb (4 of 3)" in m for m in warnings), warnings
    assert run.skipped("Warn about oversubscribed GPU resources", "h200_mig")


def test_run_reports_one_line_per_tenant_and_per_gpu_resource(exported):
    _tmp, run = exported
    tenants = run.results("Report the tenants", "three_tenants")[0]
    assert tenants["msg"] == [
        "tenant cs101: namespace cs101, kind course; quota cpu 64, memory 256Gi, storage 500Gi, 100 volumes, "
        "GPUs mig-1g.18gb 1, rtx-3090-shared 4",
        "tenant ops: namespace ops, kind staff; quota cpu 16, memory 64Gi, GPUs l40s 1, mig-2g.35gb 2",
        "tenant vision: namespace vision, kind research; quota cpu 256, memory 1Ti, storage 5Ti, "
        "GPUs l40s 2, mig-2g.35gb 2, rtx-3090-shared 4",
    ], tenants["msg"]
    staff = run.results("Report the tenants", "cpu_only")[0]
    assert staff["msg"][1] == "tenant staff: namespace lab-staff, kind staff; quota cpu 8, memory 32Gi", staff["msg"]
    capacity = run.results("Report the GPU capacity and quotas", "three_tenants")[0]
    assert "l40s: the tenants' quotas take 3 of the lab's 2" in capacity["msg"], capacity["msg"]
    assert "mig-2g.35gb: the tenants' quotas take 4 of the lab's 3" in capacity["msg"], capacity["msg"]


# ------------------------------------------------------------------------------------------- prune
def test_removed_tenant_is_reported_and_kept(exported):
    tmp, run = exported
    messages = [r.get("msg", "") for r in run.results("Report the tenants removed from the inventory", "h200_mig")]
    assert any("old-course" in m and "tenants_prune: true" in m for m in messages), messages
    assert (tmp / "h200_mig" / "_cluster" / "namespace-old-course.yaml").exists()
    assert (tmp / "h200_mig" / "_cluster" / "clusterqueue-old-course.yaml").exists()


def test_removed_tenant_is_pruned(exported):
    tmp, run = exported
    messages = [r.get("msg", "") for r in run.results("Report the tenants removed from the inventory", "three_tenants")]
    assert any("old-course" in m for m in messages), messages
    assert not (tmp / "three_tenants" / "_cluster" / "namespace-old-course.yaml").exists()
    assert not (tmp / "three_tenants" / "old-course").exists()
    assert not (tmp / "three_tenants" / "_cluster" / "clusterqueue-old-course.yaml").exists()
    assert (tmp / "three_tenants" / "_cluster" / "namespace-cs101.yaml").exists()


# -------------------------------------------------------------------------------------- check mode
def test_check_mode_writes_nothing(checked):
    tmp, run = checked
    for host in ("check", "apply_check"):
        assert run.stats[host]["failures"] == 0 and run.stats[host]["unreachable"] == 0, (host, run.failure(host))
    assert not (tmp / "check").exists()
    assert not (tmp / "no-cluster.conf").exists()
    # The lab model is still validated in check mode.
    assert any("l40s (3 of 2)" in r.get("msg", "") for r in run.results("Warn about oversubscribed GPU resources", "check"))


# ---------------------------------------------------------------------------------- bad inventory
@pytest.mark.parametrize("variant", list(BAD))
def test_bad_inventory_stops_before_anything_is_exported(exported, variant):
    tmp, run = exported
    message = run.failure(variant)
    assert message and BAD[variant][2] in message, message
    assert run.stats[variant]["failures"] == 1
    assert not (tmp / variant).exists()


def test_run_output_never_holds_unexpected_hosts(exported):
    """Only loopback addresses appear in the inventory the test wrote."""
    tmp, _run = exported
    inventory = json.dumps(yaml.safe_load((tmp / "inventory.yml").read_text()))
    assert "127.0.0.1" in inventory
    for word in inventory.replace('"', " ").split():
        if word.count(".") == 3 and word.replace(".", "").isdigit():
            assert word.startswith("127."), word


# ------------------------------------------------------------------------------------ role metadata


def test_pinned_kueue_is_the_reference_chart():
    defaults = yaml.safe_load((ROOT / "roles" / "gpu_queues" / "defaults" / "main.yml").read_text())
    internal = yaml.safe_load((ROOT / "roles" / "gpu_queues" / "vars" / "main.yml").read_text())
    chart = yaml.safe_load(reference("kueue/Chart.yaml").read_text())
    assert defaults["gpu_queues_chart_version"] == chart["version"] == CHARTS["kueue"]["version"]
    assert internal["_gpu_queues_app_version"] == chart["appVersion"]
    upstream = yaml.safe_load(yaml.safe_load(reference("kueue/values.yaml").read_text())
                              ["managerConfig"]["controllerManagerConfigYaml"])
    assert defaults["gpu_queues_integrations"] == upstream["integrations"]["frameworks"]


# ---------------------------------------------------------------------------------------- playbook
def test_playbook_exports_tenants_then_queues(playbook):
    tmp, run = playbook
    assert run.stats["playbook_good"]["failures"] == 0 and run.stats["playbook_good"]["unreachable"] == 0, \
        run.failure("playbook_good")
    assert [p["play"]["name"] for p in run.data["plays"]] == ["Tenants and GPU queues preflight", "Tenants", "GPU queues"]
    assert check_export(tmp / "playbook_good") == []
    assert (tmp / "playbook_good" / "cs101" / "localqueue-default.yaml").exists()
    # The roles' own preflight is not repeated after the preflight play.
    derived = run.results("Derive the tenants from the lab model", "playbook_good")
    assert len(derived) > 1 and not derived[0].get("skipped") and all(r.get("skipped") for r in derived[1:]), derived


def test_playbook_checks_both_roles_before_anything_is_exported(playbook):
    tmp, run = playbook
    assert run.rc != 0
    message = run.failure("playbook_bad")
    assert "gpu_queues_deadline_priority above the staff priority 3000 (is 100)" in message, message
    failed_in = [p["play"]["name"] for p in run.data["plays"]
                 if any(t["hosts"].get("playbook_bad", {}).get("failed") for t in p["tasks"])]
    assert failed_in == ["Tenants and GPU queues preflight"]
    assert not (tmp / "playbook_bad").exists()
