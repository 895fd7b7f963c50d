# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JupyterHub notebook profiles derived from the lab model (plugins/filter/jupyterhub_profiles.py) and
the hub's tenants snippet (roles/jupyterhub/files/ailab_tenants.py).

The lab shapes go through the real lab_gpu_resources, lab_cpu_profiles and lab_tenants first, as the
role does. Every ``kubespawner_override`` is checked against the traits of the real KubeSpawner
(jupyterhub-kubespawner 7.1.0, the KubeSpawner major of z2jh 4.x): KubeSpawner sets each key with
setattr, so a key that is not a trait would be silently ignored in a running hub.
"""

import asyncio
import copy
import importlib
import sys
import types
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.jupyterhub_profiles import (
    FilterModule,
    jupyterhub_profiles,
    jupyterhub_tenant_access,
)
from ansible_collections.ailab.cluster.plugins.filter.lab_gpu import lab_gpu_resources
from ansible_collections.ailab.cluster.plugins.filter.lab_tenants import lab_cpu_profiles, lab_tenants

ROOT = Path(__file__).resolve().parents[4]
SNIPPET = ROOT / "roles" / "jupyterhub" / "files" / "ailab_tenants.py"
KUBESPAWNER_PIN = "jupyterhub-kubespawner==7.1.0 and jupyterhub==5.5.0"


def kubespawner():
    """The KubeSpawner module (requirements-dev.txt pins it with the z2jh 4.4.0 hub image's versions)."""
    return importlib.import_module("kubespawner")


def override_problems(profiles):
    """Every kubespawner_override key that is not a KubeSpawner trait, or whose value the trait refuses."""
    traitlets = importlib.import_module("traitlets")
    traits = kubespawner().KubeSpawner.class_traits()
    holder = traitlets.HasTraits()
    problems = []
    for profile in profiles:
        for key, value in profile.get("kubespawner_override", {}).items():
            if key not in traits or not traits[key].metadata.get("config"):
                problems.append(f"{profile['slug']}: {key} is not a configurable KubeSpawner trait")
                continue
            try:
                traits[key]._validate(holder, value)
            except traitlets.TraitError as exc:
                problems.append(f"{profile['slug']}: {key}: {exc}")
    return problems


# ----------------------------------------------------------------------------------------- labs
RTX = {"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "sharing": {"mode": "time-slicing", "replicas": 4}}
T4 = {"group": "gpu_t4", "gpu_model": "Tesla T4", "gpus_per_node": 2, "sharing": {"mode": "time-slicing", "replicas": 2},
      "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
H200 = {"group": "gpu_h200", "gpu_model": "NVIDIA H200",
        "sharing": {"mode": "mig", "mig_strategy": "mixed",
                    "mig_layout": [{"profile": "2g.35gb", "count": 3}, {"profile": "1g.18gb", "count": 1}]}}
EMPTY_L40S = {"group": "gpu_l40s", "gpu_model": "NVIDIA L40S"}
GROUPS = {"gpu_rtx": ["rtx-1", "rtx-2"], "gpu_t4": ["t4-1"], "gpu_h200": ["h200-1"], "gpu_l40s": []}

TENANTS = [
    {"name": "cs101", "kind": "course", "users": {"group": "cs101-students"}, "admins": ["alice"],
     "quota": {"cpu": 64, "memory": "256Gi", "gpu": {"mig-1g.18gb": 1}}, "profiles": ["cpu-small", "mig-1g.18gb"]},
    {"name": "vision", "kind": "research", "users": {"groups": ["vision-lab"]},
     "quota": {"cpu": 256, "memory": "1Ti", "gpu": {"mig-2g.35gb": 3}}},
    {"name": "staff", "kind": "staff", "namespace": "lab-staff", "users": ["bob", "carol"],
     "quota": {"cpu": 32, "memory": "128Gi", "gpu": {"mig-1g.18gb": 1, "mig-2g.35gb": 1}}},
]


def lab(node_groups, tenants=None, cpu=None, options=None):
    resources = lab_gpu_resources(node_groups, GROUPS)
    cpu_profiles = lab_cpu_profiles(cpu)
    normalised = lab_tenants(tenants or [], resources, cpu_profiles)
    return jupyterhub_profiles(resources, normalised, cpu_profiles, options), normalised


def by_slug(profiles):
    return {p["slug"]: p for p in profiles}


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"jupyterhub_profiles", "jupyterhub_tenant_access"}


def test_cpu_only_lab_offers_the_cpu_profiles():
    profiles, _access = lab([])
    assert [p["slug"] for p in profiles] == ["cpu-small", "cpu-large"]
    assert [p.get("default", False) for p in profiles] == [True, False]
    small = profiles[0]
    assert small["kubespawner_override"] == {"cpu_guarantee": 0.5, "cpu_limit": 2.0, "mem_guarantee": "1G",
                                             "mem_limit": "4G"}
    assert small["display_name"] == "CPU only: cpu-small"
    assert override_problems(profiles) == []


def test_two_time_sliced_groups():
    profiles, _access = lab([RTX, T4], options={"gpu_cpu_profile": "cpu-large", "gpu_image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-10-20"})
    found = by_slug(profiles)
    assert list(found) == ["cpu-small", "cpu-large", "rtx-3090-shared", "t4-shared"]
    rtx = found["rtx-3090-shared"]
    assert rtx["display_name"] == "GPU: 1 × NVIDIA GeForce RTX 3090 (shared, 1 of 4 time-slices), 24 GB"
    assert rtx["description"].startswith("1 × NVIDIA GeForce RTX 3090 (shared, 1 of 4 time-slices), 24 GB, with 2 to 8 "
                                         "CPUs and 8 GiB to 16 GiB memory")
    assert rtx["kubespawner_override"] == {
        "cpu_guarantee": 2.0, "cpu_limit": 8.0, "mem_guarantee": "8G", "mem_limit": "16G",
        "extra_resource_limits": {"nvidia.com/gpu": "1"},
        "node_selector": {"ailab.cluster/gpu-group": "gpu_rtx"},
        "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-10-20"}
    # The T4 nodes are tainted: only their profile tolerates the taint.
    assert found["t4-shared"]["kubespawner_override"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}]
    assert found["t4-shared"]["kubespawner_override"]["node_selector"] == {"ailab.cluster/gpu-group": "gpu_t4"}
    # CPU profiles clear what a GPU profile set on a reused spawner and prefer nodes without GPUs.
    cpu = found["cpu-small"]["kubespawner_override"]
    assert cpu["extra_resource_limits"] == {"nvidia.com/gpu": None}
    assert cpu["node_selector"] == {"ailab.cluster/gpu-group": None}
    assert cpu["node_affinity_preferred"][0]["preference"]["matchExpressions"] == [
        {"key": "ailab.cluster/gpu-group", "operator": "DoesNotExist"}]
    assert "tolerations" not in cpu and "image" not in cpu
    assert override_problems(profiles) == []


def test_h200_mig_mixed_and_an_empty_group():
    profiles, _access = lab([H200, EMPTY_L40S])
    found = by_slug(profiles)
    # The L40S group has no nodes: no profile for it.
    assert list(found) == ["cpu-small", "cpu-large", "mig-1g.18gb", "mig-2g.35gb"]
    small = found["mig-1g.18gb"]
    assert small["display_name"] == "GPU: 1 × NVIDIA H200 MIG 1g.18gb slice, 16 GB"
    assert small["description"].startswith("1 × NVIDIA H200 MIG 1g.18gb slice, 16 GB")
    assert small["kubespawner_override"]["extra_resource_limits"] == {
        "nvidia.com/gpu": None, "nvidia.com/mig-1g.18gb": "1", "nvidia.com/mig-2g.35gb": None}
    assert found["mig-2g.35gb"]["kubespawner_override"]["extra_resource_limits"]["nvidia.com/mig-2g.35gb"] == "1"
    assert small["kubespawner_override"]["node_selector"] == {"ailab.cluster/gpu-group": "gpu_h200"}
    assert override_problems(profiles) == []


def test_default_profile_option():
    profiles, _access = lab([H200], options={"default_profile": "mig-2g.35gb"})
    assert [p["slug"] for p in profiles if p.get("default")] == ["mig-2g.35gb"]


def test_tenant_access_course_sees_only_its_profiles():
    profiles, tenants = lab([H200], TENANTS)
    access = {t["name"]: t for t in jupyterhub_tenant_access(tenants, profiles)}
    assert access["cs101"] == {"name": "cs101", "namespace": "cs101", "users": ["alice"], "groups": ["cs101-students"],
                               "profiles": ["cpu-small", "mig-1g.18gb"]}
    # Without a profiles list a tenant gets every CPU profile and the GPU keys of its quota.
    assert access["vision"]["profiles"] == ["cpu-small", "cpu-large", "mig-2g.35gb"]
    assert access["staff"]["namespace"] == "lab-staff"
    assert access["staff"]["users"] == ["bob", "carol"]


def test_the_trait_check_bites():
    """A misspelt key and a value of the wrong type are both reported (KubeSpawner would ignore the first)."""
    profiles = [{"slug": "x", "kubespawner_override": {"extra_resource_limit": {"nvidia.com/gpu": "1"},
                                                       "cpu_limit": "two", "mem_guarantee": "2Gi",
                                                       "node_selector": ["gpu"]}}]
    problems = override_problems(profiles)
    assert len(problems) == 4
    assert "extra_resource_limit is not a configurable KubeSpawner trait" in problems[0]


# ----------------------------------------------------------------------------------------- errors
def _fails(match, *args, **kwargs):
    with pytest.raises(AnsibleFilterError, match=match):
        jupyterhub_profiles(*args, **kwargs)


def test_a_tenant_profile_for_a_gpu_kind_no_node_has():
    resources = lab_gpu_resources([H200, EMPTY_L40S], GROUPS)
    cpu = lab_cpu_profiles(None)
    tenant = {"name": "cs101", "quota": {"gpu": {"l40s": 1}}, "profiles": ["cpu-small", "l40s"]}
    _fails(r"ailab_tenants\[0\] \(tenant cs101\): profile l40s asks for a GPU kind no node has: group gpu_l40s has no "
           r"nodes", resources, [tenant], cpu)
    tenant = {"name": "cs101", "quota": {"gpu": {}}, "profiles": ["rtx-3090-shared"]}
    _fails(r"profile rtx-3090-shared asks for a profile or GPU kind the lab does not have; the lab offers cpu-small, "
           r"cpu-large, mig-1g.18gb, mig-2g.35gb", resources, [tenant], cpu)
    tenant = {"name": "cs101", "quota": {"gpu": {}}, "profiles": ["mig-1g.18g"]}
    _fails(r"\(did you mean mig-1g.18gb\?\)", resources, [tenant], cpu)


def test_a_gpu_profile_without_quota():
    resources = lab_gpu_resources([H200], GROUPS)
    tenant = {"name": "cs101", "quota": {"gpu": {"mig-2g.35gb": 1}}, "profiles": ["mig-1g.18gb"]}
    _fails(r"profile mig-1g.18gb needs 1 nvidia.com/mig-1g.18gb but quota.gpu gives the tenant none",
           resources, [tenant], lab_cpu_profiles(None))


def test_duplicate_profile_names():
    cpu = lab_cpu_profiles(None)
    _fails(r"ailab_cpu_profiles\[1\] \(profile cpu-small\): duplicate profile name cpu-small",
           [], [], [cpu[0], copy.deepcopy(cpu[0])])
    resources = lab_gpu_resources([H200], GROUPS)
    clash = dict(copy.deepcopy(cpu[0]), name="mig-1g.18gb")
    _fails(r"profile mig-1g.18gb\): duplicate profile name: the CPU profile has the name of a GPU resource key",
           resources, [], [clash])


def test_duplicate_tenant_names():
    tenants = [{"name": "cs101", "profiles": []}, {"name": "cs101", "profiles": []}]
    _fails(r"ailab_tenants\[1\] \(tenant cs101\): duplicate tenant name cs101", [], tenants, lab_cpu_profiles(None))


@pytest.mark.parametrize("options, match", [
    ({"gpu_cpu_profil": "x"}, r"unknown option gpu_cpu_profil \(did you mean gpu_cpu_profile\?\)"),
    ({"gpu_cpu_profile": "cpu-huge"}, r"jupyterhub_gpu_cpu_profile: cpu-huge is not a CPU profile"),
    ({"default_profile": "gpu"}, r"jupyterhub_default_profile: gpu is not a profile of the lab"),
    ({"gpu_image": "pytorch notebook"}, r"jupyterhub_gpu_image must be an image reference"),
])
def test_bad_options(options, match):
    _fails(match, [], [], lab_cpu_profiles(None), options)


@pytest.mark.parametrize("args, match", [
    (([], [], []), r"cpu_profiles must be the non-empty list of lab_cpu_profiles"),
    (({"key": "x"}, [], None), r"the GPU resources must be the list of lab_gpu_resources"),
    (([{"key": "x"}], [], None), r"each GPU resource must come from ailab.cluster.lab_gpu_resources"),
    (([], [{"name": "a"}], [{"name": "cpu", "kubespawner_override": {"cpu_guarantee": 1}}]),
     r"kubespawner_override lacks cpu_limit"),
])
def test_inputs_that_are_not_the_lab_model(args, match):
    resources, tenants, cpu = args
    _fails(match, resources, tenants, cpu if cpu is not None else lab_cpu_profiles(None))


def test_tenant_access_refuses_an_unknown_profile():
    with pytest.raises(AnsibleFilterError, match=r"tenant cs101\): profile gpu is not in the lab's profile list"):
        jupyterhub_tenant_access([{"name": "cs101", "namespace": "cs101", "users": {}, "profiles": ["gpu"]}],
                                 [{"slug": "cpu-small"}])


# ---------------------------------------------------------------------------- the hub's snippet
class Group:
    def __init__(self, name):
        self.name = name


class User:
    def __init__(self, name, groups=()):
        self.name = name
        self.id = 1
        self.url = "/user/" + name
        self.groups = [Group(g) for g in groups]


def load_snippet(values):
    """Run the snippet as z2jh's jupyterhub_config.py does (exec with ``c`` and the z2jh module), with
    get_config reading the given chart values. Returns the profile_list callable it configured."""
    importlib.import_module("tornado")

    def get_config(key, default=None):
        node = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    z2jh = types.ModuleType("z2jh")
    z2jh.get_config = get_config
    config = types.SimpleNamespace(KubeSpawner=types.SimpleNamespace())
    saved = sys.modules.get("z2jh")
    sys.modules["z2jh"] = z2jh
    try:
        exec(compile(SNIPPET.read_text(), str(SNIPPET), "exec"), {"c": config})
    finally:
        if saved is None:
            sys.modules.pop("z2jh")
        else:
            sys.modules["z2jh"] = saved
    return config.KubeSpawner.profile_list


def snippet_values():
    profiles, tenants = lab([H200], TENANTS)
    return {"singleuser": {"profileList": profiles},
            "custom": {"ailab": {"tenants": jupyterhub_tenant_access(tenants, profiles), "no_tenant_message": "No tenant."}}}


def test_snippet_compiles_and_shows_a_course_only_its_profiles():
    profile_list = load_snippet(snippet_values())
    spawner = types.SimpleNamespace(user=User("dave", ["cs101-students"]))
    profiles = profile_list(spawner)
    assert [p["slug"] for p in profiles] == ["cs101-cpu-small", "cs101-mig-1g.18gb"]
    assert {p["kubespawner_override"]["namespace"] for p in profiles} == {"cs101"}
    assert [p.get("default", False) for p in profiles] == [True, False]
    assert profiles[1]["display_name"] == "GPU: 1 × NVIDIA H200 MIG 1g.18gb slice, 16 GB"
    assert override_problems(profiles) == []


def test_snippet_membership_by_user_name_tenant_group_and_several_tenants():
    profile_list = load_snippet(snippet_values())
    # Listed by name (staff) and a member of the JupyterHub group named after a tenant (vision).
    profiles = profile_list(types.SimpleNamespace(user=User("bob", ["vision"])))
    slugs = [p["slug"] for p in profiles]
    # Tenants in lab_tenants' order (by name).
    assert slugs == ["staff-cpu-small", "staff-cpu-large", "staff-mig-1g.18gb", "staff-mig-2g.35gb",
                     "vision-cpu-small", "vision-cpu-large", "vision-mig-2g.35gb"]
    assert len(set(slugs)) == len(slugs)
    assert profiles[0]["kubespawner_override"]["namespace"] == "lab-staff"
    assert profiles[4]["kubespawner_override"]["namespace"] == "vision"
    assert profiles[4]["display_name"].startswith("vision: ")
    # The static list the snippet copies from is left as it was.
    values = snippet_values()
    before = copy.deepcopy(values)
    load_snippet(values)(types.SimpleNamespace(user=User("alice")))
    assert values == before


def test_snippet_refuses_a_user_of_no_tenant():
    web = importlib.import_module("tornado.web")
    profile_list = load_snippet(snippet_values())
    with pytest.raises(web.HTTPError) as raised:
        profile_list(types.SimpleNamespace(user=User("mallory", ["other"])))
    assert raised.value.status_code == 403 and raised.value.log_message == "No tenant."


def test_snippet_profiles_load_in_a_real_kubespawner():
    """KubeSpawner applies the chosen profile (dict overrides merged, nulls removed) and starts the pod in
    the tenant's namespace with the GPU limit; a profile of another tenant is refused."""
    ks = kubespawner().spawner
    from unittest import mock

    profile_list = load_snippet(snippet_values())
    with mock.patch.object(ks, "load_config"), mock.patch.object(ks, "shared_client"):
        spawner = ks.KubeSpawner(_mock=True, namespace="jupyterhub", user=User("dave", ["cs101-students"]))
    spawner.profile_list = profile_list
    spawner.extra_resource_limits = {"nvidia.com/mig-2g.35gb": "1"}  # left over from an earlier failed start
    spawner.user_options = {"profile": "cs101-mig-1g.18gb"}
    asyncio.run(spawner.load_user_options())
    assert spawner.namespace == "cs101"
    assert spawner.extra_resource_limits == {"nvidia.com/mig-1g.18gb": "1"}
    assert spawner.node_selector == {"ailab.cluster/gpu-group": "gpu_h200"}
    spawner.user_options = {"profile": "vision-mig-2g.35gb"}
    with pytest.raises(ValueError, match="No such profile: vision-mig-2g.35gb"):
        asyncio.run(spawner.load_user_options())
