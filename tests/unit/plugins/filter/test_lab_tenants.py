# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's tenants and CPU profiles (plugins/filter/lab_tenants.py): normalisation and every error."""

import copy
import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.lab_gpu import lab_gpu_resources
from ansible_collections.ailab.cluster.plugins.filter.lab_tenants import (
    FilterModule,
    lab_cpu_profiles,
    lab_queue_objects,
    lab_tenant_objects,
    lab_tenants,
    lab_tenants_capacity_report,
)

H200_MIXED = {"group": "gpu_h200", "gpu_model": "NVIDIA H200",
              "sharing": {"mode": "mig", "mig_strategy": "mixed",
                          "mig_layout": [{"profile": "2g.35gb", "count": 3}, {"profile": "1g.18gb", "count": 1}]}}
RTX_3090 = {"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "sharing": {"mode": "time-slicing", "replicas": 4}}
L40S = {"group": "gpu_l40s", "gpu_model": "NVIDIA L40S", "gpus_per_node": 2}
EMPTY = {"group": "gpu_empty", "gpu_model": "NVIDIA L4"}
GROUPS = {"gpu_h200": ["h1"], "gpu_rtx": ["r1", "r2"], "gpu_l40s": ["l1"], "gpu_empty": []}
RESOURCES = lab_gpu_resources([H200_MIXED, RTX_3090, L40S, EMPTY], GROUPS)

CS101 = {"name": "cs101", "kind": "course", "users": {"group": "cs101-students"}, "admins": ["alice"],
         "quota": {"cpu": 64, "memory": "256Gi", "storage": "500Gi", "pvcs": 40, "gpu": {"mig-1g.18gb": 1}},
         "profiles": ["cpu-small", "mig-1g.18gb"]}
VISION = {"name": "vision", "kind": "research", "users": {"groups": ["vision-lab"], "users": ["bob"]},
          "quota": {"cpu": "256", "memory": "1Ti", "storage": "5Ti",
                    "gpu": {"mig-2g.35gb": 3, "rtx-3090-shared": 4, "l40s": 1}}}
STAFF = {"name": "staff", "namespace": "lab-staff", "kind": "staff", "users": ["carol", "dave"],
         "admin_groups": ["lab-admins"], "quota": {"cpu": "8.5", "memory": "32G"}}


def tenant(base, **changes):
    """A copy of a tenant with top-level keys changed (None removes) and quota keys changed."""
    result = copy.deepcopy(base)
    quota = changes.pop("quota_changes", None)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    for key, value in (quota or {}).items():
        if value is None:
            result["quota"].pop(key, None)
        else:
            result["quota"][key] = value
    return result


def error(tenants, resources=RESOURCES, profiles=None):
    with pytest.raises(AnsibleFilterError) as caught:
        lab_tenants(tenants, resources, profiles)
    return str(caught.value)


# ------------------------------------------------------------------------------------ CPU profiles
def test_default_cpu_profiles():
    profiles = lab_cpu_profiles()
    assert [p["name"] for p in profiles] == ["cpu-small", "cpu-large"]
    small = profiles[0]
    assert (small["cpu_guarantee"], small["cpu_limit"], small["mem_guarantee"], small["mem_limit"]) == ("500m", "2", "1Gi", "4Gi")
    assert small["kubespawner_override"] == {"cpu_guarantee": 0.5, "cpu_limit": 2.0, "mem_guarantee": "1G", "mem_limit": "4G"}
    assert lab_cpu_profiles([]) == profiles


def test_cpu_profiles_are_normalised_and_idempotent():
    given = [{"name": "tiny", "cpu_guarantee": 0.25, "cpu_limit": "1000m", "mem_guarantee": "1.5Gi",
              "mem_limit": 2147483648}]
    result = lab_cpu_profiles(given)
    assert result == [{"name": "tiny", "description": "CPU notebook: 250m to 1 CPUs, 1536Mi to 2Gi memory",
                       "cpu_guarantee": "250m", "cpu_limit": "1", "mem_guarantee": "1536Mi", "mem_limit": "2Gi",
                       "kubespawner_override": {"cpu_guarantee": 0.25, "cpu_limit": 1.0, "mem_guarantee": "1536M",
                                                "mem_limit": "2G"}}]
    assert lab_cpu_profiles(result) == result


def test_kubespawner_memory_is_a_byte_specification():
    """KubeSpawner's ByteSpecification knows K, M, G, T (powers of 1024) or plain bytes, never Gi or 500M (10^6)."""
    result = lab_cpu_profiles([{"name": "odd", "cpu_guarantee": 1, "cpu_limit": 1, "mem_guarantee": "500M",
                                "mem_limit": "1G"}])[0]
    assert result["mem_guarantee"] == "500M" and result["mem_limit"] == "1G"
    assert result["kubespawner_override"]["mem_guarantee"] == 500 * 10 ** 6
    assert result["kubespawner_override"]["mem_limit"] == 10 ** 9


@pytest.mark.parametrize("profiles, message", [
    ("cpu-small", "ailab_cpu_profiles: must be a list"),
    ([["x"]], r"ailab_cpu_profiles\[0\]: must be a dict"),
    ([{"name": "Big"}], r"ailab_cpu_profiles\[0\]: name must be lower-case"),
    ([{"name": "big", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": "1Gi"}], r"\(profile big\): mem_limit is required"),
    ([{"name": "big", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limt": "2Gi"}],
     "unknown key mem_limt in a CPU profile \\(did you mean mem_limit\\?\\)"),
    ([{"name": "big", "cpu_guarantee": "1 CPU", "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limit": "2Gi"}],
     "cpu_guarantee must be a Kubernetes quantity such as 4, 500m, 16Gi or 1Ti, got '1 CPU'"),
    ([{"name": "big", "cpu_guarantee": "0.0001", "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limit": "2Gi"}],
     "cpu_guarantee must be a whole number of millicores"),
    ([{"name": "big", "cpu_guarantee": 0, "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limit": "2Gi"}],
     "cpu_guarantee must be more than 0 CPUs"),
    ([{"name": "big", "cpu_guarantee": 4, "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limit": "2Gi"}],
     "cpu_guarantee 4 is more than cpu_limit 2"),
    ([{"name": "big", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": "4Gi", "mem_limit": "2Gi"}],
     "mem_guarantee 4Gi is more than mem_limit 2Gi"),
    ([{"name": "big", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": "1500m", "mem_limit": "2Gi"}],
     "mem_guarantee must be a whole number of bytes"),
    ([{"name": "big", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": True, "mem_limit": "2Gi"}],
     "mem_guarantee must be a Kubernetes quantity"),
    ([{"name": "big", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limit": "2Gi", "description": 3}],
     "description must be a string"),
    ([{"name": "big", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limit": "2Gi"},
      {"name": "big", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limit": "2Gi"}],
     r"ailab_cpu_profiles\[1\] \(profile big\): the name is already used by entry 0"),
])
def test_cpu_profile_errors(profiles, message):
    with pytest.raises(AnsibleFilterError, match=message):
        lab_cpu_profiles(profiles)


# ---------------------------------------------------------------------------------------- tenants
def test_tenants_are_normalised_and_sorted():
    result = lab_tenants([VISION, STAFF, CS101], RESOURCES, lab_cpu_profiles())
    assert [t["name"] for t in result] == ["cs101", "staff", "vision"]
    cs101, staff, vision = result
    assert cs101 == {
        "name": "cs101", "namespace": "cs101", "kind": "course", "priority": 1000, "description": "",
        "users": {"groups": ["cs101-students"], "users": []}, "admins": ["alice"], "admin_groups": [],
        "quota": {"cpu": "64", "memory": "256Gi", "storage": "500Gi", "pvcs": "40", "gpu": {"mig-1g.18gb": 1}},
        "gpu_borrowing": {"mig-1g.18gb": 0},
        "gpu_requests": {"nvidia.com/mig-1g.18gb": 1},
        "gpu_limits": {"nvidia.com/mig-1g.18gb": 1},
        "profiles": ["cpu-small", "mig-1g.18gb"],
    }
    assert staff["namespace"] == "lab-staff" and staff["priority"] == 3000
    assert staff["users"] == {"groups": [], "users": ["carol", "dave"]}
    assert staff["admin_groups"] == ["lab-admins"]
    assert staff["quota"] == {"cpu": "8500m", "memory": "32G", "storage": None, "pvcs": None, "gpu": {}}
    assert staff["gpu_requests"] == {}
    assert vision["priority"] == 2000
    assert vision["users"] == {"groups": ["vision-lab"], "users": ["bob"]}


def test_priority_follows_the_kind():
    result = lab_tenants([CS101, VISION, STAFF], RESOURCES)
    priority = {t["kind"]: t["priority"] for t in result}
    assert priority["course"] < priority["research"] < priority["staff"]


def test_gpu_requests_sum_keys_that_share_a_resource_name():
    """rtx-3090-shared (time-sliced) and l40s (whole) are both nvidia.com/gpu: a ResourceQuota sees one number."""
    vision = lab_tenants([VISION], RESOURCES)[0]
    assert vision["quota"]["gpu"] == {"l40s": 1, "mig-2g.35gb": 3, "rtx-3090-shared": 4}
    assert vision["gpu_requests"] == {"nvidia.com/gpu": 5, "nvidia.com/mig-2g.35gb": 3}


def test_default_profiles_are_every_cpu_profile_and_the_gpu_keys_of_the_quota():
    vision = lab_tenants([tenant(VISION, quota_changes={"gpu": {"mig-2g.35gb": 3, "l40s": 0}})], RESOURCES)[0]
    assert vision["profiles"] == ["cpu-large", "cpu-small", "mig-2g.35gb"]


def test_inventory_strings_and_none():
    """Ansible hands filters its own str subclasses; None is an empty lab."""
    class Tagged(str):
        pass
    given = tenant(CS101, name=Tagged("cs101"), kind=Tagged("course"))
    # A plain str, not Ansible's tagged subclass (yaml.safe_dump refuses those).
    assert lab_tenants([given], RESOURCES)[0]["name"].__class__ is str
    assert lab_tenants(None, RESOURCES) == []
    assert lab_tenants([tenant(CS101, quota_changes={"gpu": None}, profiles=None)], None)[0]["gpu_requests"] == {}


def test_cpu_only_lab():
    result = lab_tenants([tenant(CS101, quota_changes={"gpu": None}, profiles=["cpu-small"]), STAFF], [])
    assert [t["profiles"] for t in result] == [["cpu-small"], ["cpu-large", "cpu-small"]]


def test_zero_quota_on_a_group_without_nodes_is_allowed():
    result = lab_tenants([tenant(VISION, quota_changes={"gpu": {"l4": 0}})], RESOURCES)
    assert result[0]["quota"]["gpu"] == {"l4": 0}


@pytest.mark.parametrize("tenants, message", [
    ("cs101", "ailab_tenants: must be a list of tenants"),
    (["cs101"], r"ailab_tenants\[0\]: must be a dict"),
    ([tenant(CS101, name="CS101")], r"ailab_tenants\[0\]: name must be a DNS label"),
    ([tenant(CS101, name="cs_101")], r"ailab_tenants\[0\]: name must be a DNS label"),
    ([tenant(CS101, name="x" * 64)], r"ailab_tenants\[0\]: name must be a DNS label"),
    ([tenant(CS101, namespace="Course 101")], r"\(tenant cs101\): namespace must be a DNS label"),
    ([tenant(CS101, namespace="kube-system")], r"\(tenant cs101\): namespace kube-system is reserved"),
    ([tenant(CS101, namespace="default")], r"\(tenant cs101\): namespace default is reserved"),
    ([tenant(CS101, kind="lecture")], r"\(tenant cs101\): kind must be one of course, research, staff, got 'lecture'"),
    ([tenant(CS101, kind="cours")], "kind must be one of .* \\(did you mean course\\?\\)"),
    ([tenant(CS101, quotas={})], "unknown key quotas in a tenant \\(did you mean quota\\?\\)"),
    ([tenant(CS101, users={"grop": "x"})], "unknown key grop in users \\(did you mean group\\?\\)"),
    ([tenant(CS101, users="cs101-students")], "users must be {group: <group>}"),
    ([tenant(CS101, users={"users": [""]})], "users.users must hold names"),
    ([tenant(CS101, admins=[" alice"])], "admins must hold names"),
    ([tenant(CS101, admins=3)], "admins must be a list of names"),
    ([tenant(CS101, description=["x"])], "description must be a string"),
    ([tenant(CS101, quota=None)], r"\(tenant cs101\): quota is required"),
    ([tenant(CS101, quota_changes={"cpu": None})], r"\(tenant cs101\): quota.cpu is required"),
    ([tenant(CS101, quota_changes={"memory": None})], r"\(tenant cs101\): quota.memory is required"),
    ([tenant(CS101, quota_changes={"gpus": {}})], "unknown key gpus in quota \\(did you mean gpu\\?\\)"),
    ([tenant(CS101, quota_changes={"memory": "256 GB"})], "quota.memory must be a Kubernetes quantity .* got '256 GB'"),
    ([tenant(CS101, quota_changes={"memory": "-1Gi"})], "quota.memory must be a Kubernetes quantity"),
    ([tenant(CS101, quota_changes={"cpu": "1e3"})], "quota.cpu must be a Kubernetes quantity"),
    ([tenant(CS101, quota_changes={"storage": "lots"})], "quota.storage must be a Kubernetes quantity"),
    ([tenant(CS101, quota_changes={"pvcs": "ten"})], "quota.pvcs must be a whole number"),
    ([tenant(CS101, quota_changes={"gpu": ["mig-1g.18gb"]})], "quota.gpu must be a dict"),
    ([tenant(CS101, quota_changes={"gpu": {"mig-1g.18gb": -1}})], "quota.gpu.mig-1g.18gb must be a whole number"),
    ([tenant(CS101, quota_changes={"gpu": {"mig-1g.18gb": 1.5}})], "quota.gpu.mig-1g.18gb must be a whole number"),
    ([tenant(CS101, profiles=["cpu-small"], quota_changes={"gpu": {"a100": 2}})],
     r"\(tenant cs101\): quota.gpu names a100, which no GPU node group provides; the lab's GPU resource keys: "
     r"l4, l40s, mig-1g.18gb, mig-2g.35gb, rtx-3090-shared"),
    ([tenant(CS101, profiles=["cpu-small"], quota_changes={"gpu": {"mig-1g.18g": 2}})],
     "quota.gpu names mig-1g.18g, .*\\(did you mean mig-1g.18gb\\?\\)"),
    ([tenant(CS101, profiles=["cpu-small"], quota_changes={"gpu": {"l4": 2}})],
     r"\(tenant cs101\): quota.gpu gives 2 l4, but the lab has no node with it \(group gpu_empty has no hosts\)"),
    ([tenant(CS101, profiles=["cpu-medium"])], r"\(tenant cs101\): profile cpu-medium does not exist"),
    ([tenant(CS101, profiles=["cpu-smal"])], "profile cpu-smal does not exist \\(did you mean cpu-small\\?\\)"),
    ([tenant(CS101, profiles=["mig-2g.35gb"])],
     r"\(tenant cs101\): profile mig-2g.35gb asks for 1 mig-2g.35gb but quota.gpu gives the tenant 0"),
    ([tenant(CS101, profiles=["cpu-large"], quota_changes={"cpu": 1})],
     r"\(tenant cs101\): profile cpu-large guarantees 2 CPUs and 8Gi memory, more than the tenant's quota"),
    ([tenant(CS101, profiles=["cpu-large"], quota_changes={"memory": "4Gi"})], "profile cpu-large guarantees"),
    ([CS101, tenant(VISION, name="cs101")], r"ailab_tenants\[1\] \(tenant cs101\): the name is already used by entry 0"),
    ([CS101, tenant(VISION, namespace="cs101")],
     r"ailab_tenants\[1\] \(tenant vision\): namespace cs101 is already the namespace of tenant cs101"),
])
def test_tenant_errors(tenants, message):
    assert re.search(message, error(tenants)), error(tenants)


def test_errors_of_the_arguments():
    assert "the GPU resources must be the list of lab_gpu_resources" in error([CS101], resources={"a": 1})
    assert "must come from ailab.cluster.lab_gpu_resources" in error([CS101], resources=[{"key": "x"}])
    assert "quota.gpu names mig-1g.18gb, which no GPU node group provides; the lab's GPU resource keys: none" \
        in error([CS101], resources=[])
    clash = [{"name": "l40s", "cpu_guarantee": 1, "cpu_limit": 1, "mem_guarantee": "1Gi", "mem_limit": "1Gi"}]
    assert "the CPU profile l40s has the name of a GPU resource key" in error([CS101], profiles=clash)


# ------------------------------------------------------------------------------- capacity report
def test_capacity_report():
    tenants = lab_tenants([CS101, VISION, tenant(STAFF, quota_changes={"gpu": {"mig-1g.18gb": 1, "l40s": 2}})],
                          RESOURCES)
    report = {r["key"]: r for r in lab_tenants_capacity_report(tenants, RESOURCES)}
    assert list(report) == ["l4", "l40s", "mig-1g.18gb", "mig-2g.35gb", "rtx-3090-shared"]
    assert report["mig-1g.18gb"] == {"key": "mig-1g.18gb", "resource": "nvidia.com/mig-1g.18gb", "capacity": 1,
                                     "quota": 2, "tenants": ["cs101", "staff"], "oversubscribed": True}
    assert report["l40s"]["quota"] == 3 and report["l40s"]["capacity"] == 2 and report["l40s"]["oversubscribed"]
    assert report["rtx-3090-shared"] == {"key": "rtx-3090-shared", "resource": "nvidia.com/gpu", "capacity": 8,
                                         "quota": 4, "tenants": ["vision"], "oversubscribed": False}
    assert report["l4"]["capacity"] == 0 and report["l4"]["quota"] == 0 and not report["l4"]["oversubscribed"]
    assert lab_tenants_capacity_report([], []) == []


def test_capacity_report_refuses_keys_the_lab_does_not_provide():
    normalised = lab_tenants([CS101], RESOURCES)
    with pytest.raises(AnsibleFilterError, match="quota.gpu names mig-1g.18gb, which no GPU node group provides"):
        lab_tenants_capacity_report(normalised, lab_gpu_resources([RTX_3090], GROUPS))
    emptied = lab_gpu_resources([H200_MIXED], {"gpu_h200": []})
    with pytest.raises(AnsibleFilterError, match="quota.gpu gives mig-1g.18gb, but the lab has no node with it"):
        lab_tenants_capacity_report(normalised, emptied)


def test_filter_module_exports():
    assert set(FilterModule().filters()) == {"lab_cpu_profiles", "lab_tenants", "lab_tenants_capacity_report",
                                             "lab_tenant_objects", "lab_queue_objects"}


# -------------------------------------------------------------------------------------- borrowing
def test_default_borrowing_is_the_quota_at_most_what_the_others_hold():
    vision = lab_tenants([VISION], RESOURCES)[0]
    # mig-2g.35gb: 3 of 3 (nothing left to borrow); rtx-3090-shared: 4 of 8; l40s: 1 of 2.
    assert vision["gpu_borrowing"] == {"l40s": 1, "mig-2g.35gb": 0, "rtx-3090-shared": 4}
    assert vision["gpu_limits"] == {"nvidia.com/gpu": 10, "nvidia.com/mig-2g.35gb": 3}
    assert vision["gpu_requests"] == {"nvidia.com/gpu": 5, "nvidia.com/mig-2g.35gb": 3}


def test_explicit_borrowing():
    """The keys given replace the default; the others keep it."""
    vision = lab_tenants([tenant(VISION, gpu_borrowing={"rtx-3090-shared": 0, "mig-1g.18gb": 1})], RESOURCES)[0]
    assert vision["gpu_borrowing"] == {"l40s": 1, "mig-1g.18gb": 1, "mig-2g.35gb": 0, "rtx-3090-shared": 0}
    assert vision["gpu_limits"] == {"nvidia.com/gpu": 6, "nvidia.com/mig-1g.18gb": 1, "nvidia.com/mig-2g.35gb": 3}


@pytest.mark.parametrize("borrowing, message", [
    (["l40s"], "gpu_borrowing must be a dict"),
    ({"a100": 1}, "gpu_borrowing names a100, which no GPU node group provides"),
    ({"l40s": "two"}, "gpu_borrowing.l40s must be a whole number"),
])
def test_borrowing_errors(borrowing, message):
    assert message in error([tenant(VISION, gpu_borrowing=borrowing)])


# ------------------------------------------------------------------------------------- objects
def test_object_builders_refuse_unknown_settings():
    tenants = lab_tenants([CS101], RESOURCES)
    with pytest.raises(AnsibleFilterError, match="unknown key ingres_namespace in the settings \\(did you mean ingress_namespace"):
        lab_tenant_objects(tenants, RESOURCES, {"ingres_namespace": "x"})
    with pytest.raises(AnsibleFilterError, match="pod_security_enforce must be one of privileged, baseline, restricted"):
        lab_tenant_objects(tenants, RESOURCES, {"pod_security_enforce": "strict"})
    with pytest.raises(AnsibleFilterError, match="lab_tenant_objects: the settings must be a dict"):
        lab_tenant_objects(tenants, RESOURCES, ["x"])
    with pytest.raises(AnsibleFilterError, match="unknown key cohrt in the settings \\(did you mean cohort"):
        lab_queue_objects(tenants, RESOURCES, {"cohrt": "x"})


def test_object_builders_without_tenants():
    assert lab_tenant_objects([], RESOURCES) == []
    kinds = [o["kind"] for o in lab_queue_objects([], RESOURCES)]
    assert kinds.count("ClusterQueue") == 0 and kinds.count("ResourceFlavor") == 1 + len(RESOURCES)


def test_objects_without_jupyterhub_or_egress():
    tenants = lab_tenants([STAFF], RESOURCES)
    objects = lab_tenant_objects(tenants, RESOURCES, {"jupyterhub_namespace": "", "egress_internet": False,
                                                      "user_prefix": "oidc:", "group_prefix": "oidc:"})
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert ("Role", "jupyterhub-spawner") not in names
    allow = next(o for o in objects if o["metadata"]["name"] == "allow-tenant-traffic")["spec"]
    assert allow["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert [rule["to"] for rule in allow["egress"]] == [
        [{"podSelector": {}}],
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]]
    members = next(o for o in objects if o["metadata"]["name"] == "tenant-members")
    assert [s["name"] for s in members["subjects"]] == ["oidc:carol", "oidc:dave"]
