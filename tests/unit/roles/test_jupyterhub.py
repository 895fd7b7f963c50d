"""playbooks/jupyterhub.yml (role jupyterhub) in export mode.

One ansible-playbook run exports every lab shape at once: each host of the group ``labs`` stands for
one lab (its own GPU groups, tenants, authentication and export directory), and the playbook runs on
that group (``-e ailab_platform_hosts=labs``). Every lab host is an SSH host on a closed loopback
port (127.0.0.1:9): export mode must never connect to it; a canary play proves that connecting fails.
A second run, with ``-v --diff``, exports the good labs again over a copy of the first export: the
secrets are read back, so the files are byte-identical, and no secret appears in its output. A third
run in check mode writes nothing.

The exported values are then followed to where they act: merged onto the chart's values.yaml and
validated against its schema (export_check), every kubespawner_override checked against KubeSpawner's
traits, and the hub's tenants snippet run in a real KubeSpawner that renders each tenant's notebook
pod, which must be a valid Kubernetes 1.34 Pod in the tenant's namespace, meet Pod Security
"restricted" and fit the tenant's ResourceQuota.
"""

import asyncio
import importlib
import re
import shutil
import types
from unittest import mock

import pytest
import yaml

from export_check import check_chart_values, check_export, validate_object
from unit.plugins.filter.test_jupyterhub_profiles import User, kubespawner, load_snippet, override_problems
from unit.roles.playbook_runner import (ROOT, UNREACHABLE, assert_export_touches_no_node, assert_same_files, local_inventory,
                                        platform_plays, reference, run_playbook, shared_run)


H200 = {"group": "gpu_h200", "gpu_model": "NVIDIA H200",
        "sharing": {"mode": "mig", "mig_strategy": "mixed",
                    "mig_layout": [{"profile": "2g.35gb", "count": 3}, {"profile": "1g.18gb", "count": 1}]}}
RTX = {"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "sharing": {"mode": "time-slicing", "replicas": 4}}
T4 = {"group": "gpu_t4", "gpu_model": "Tesla T4", "gpus_per_node": 2, "sharing": {"mode": "time-slicing", "replicas": 2},
      "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
OIDC = {"client_id": "jupyterhub", "client_secret": "oidc-client-secret-4f9a", "oauth_callback_url":
        "https://hub.lab.example/hub/oauth_callback", "authorize_url": "https://id.lab.example/auth",
        "token_url": "https://id.lab.example/token", "userdata_url": "https://id.lab.example/userinfo",
        "username_claim": "preferred_username"}
TENANTS = [
    {"name": "cs101", "kind": "course", "users": {"group": "cs101-students"}, "admins": ["alice"],
     "quota": {"cpu": 64, "memory": "256Gi", "storage": "500Gi", "gpu": {"mig-1g.18gb": 1}},
     "profiles": ["cpu-small", "mig-1g.18gb"]},
    {"name": "vision", "kind": "research", "users": {"groups": ["vision-lab"]},
     "quota": {"cpu": 256, "memory": "1Ti", "gpu": {"mig-2g.35gb": 3}}},
    {"name": "staff", "kind": "staff", "namespace": "lab-staff", "users": ["bob", "carol"],
     "quota": {"cpu": 32, "memory": "128Gi", "gpu": {"mig-1g.18gb": 1, "mig-2g.35gb": 1}}},
]
# Secrets the inventory gives: none may appear in any output.
GIVEN_SECRETS = ["oidc-client-secret-4f9a", "gh-client-secret-77c1", "sandbox-pass-9d2e", "ldap-bind-pass-31b8"]

GOOD = {
    # CPU only, sign-up with admin approval, no tenants, no storage backend of the lab: the cluster's default class.
    "cpu": {"jupyterhub_admin_users": ["root"]},
    # Two time-sliced groups (one tainted), GitHub, an air gap (mirrors, no pre-pulling), NFS storage.
    "timeslice": {
        "ailab_gpu_node_groups": [RTX, T4],
        "jupyterhub_auth_type": "github",
        "jupyterhub_auth_settings": {"client_id": "abc", "client_secret": "gh-client-secret-77c1",
                                     "oauth_callback_url": "https://hub.lab.example/hub/oauth_callback",
                                     "allowed_organizations": ["lab-org"]},
        "jupyterhub_admin_users": ["root"],
        "jupyterhub_image_registry": "harbor.lab.example/mirror/",
        "jupyterhub_chart_repo_url": "https://harbor.lab.example/chartrepo/jupyterhub",
        "jupyterhub_image_prepull": False,
        "jupyterhub_gpu_image": "harbor.lab.example/mirror/jupyter/pytorch-notebook:cuda12-2025-10-20",
        "ailab_storage_backends": ["nfs_provisioner"], "nfs_provisioner_default_class": True,
        "jupyterhub_service_type": "ClusterIP",
    },
    # One H200 with MIG (mixed), three tenants, OIDC with groups, local-path storage.
    "mig": {
        "ailab_gpu_node_groups": [H200],
        "ailab_tenants": TENANTS,
        "jupyterhub_auth_type": "oidc",
        "jupyterhub_auth_settings": OIDC,
        "jupyterhub_admin_users": ["root"],
        "jupyterhub_admin_groups": ["lab-admins"],
        "jupyterhub_gpu_cpu_profile": "cpu-large",
        "jupyterhub_user_placeholders": 2,
        "ailab_storage_backends": ["local_path"], "local_path_default_class": True,
    },
    # A sandbox: the shared password, tenants listed by user name (JupyterHub groups mirror them).
    "sandbox": {
        "jupyterhub_sandbox": True,
        "jupyterhub_auth_type": "dummy",
        "jupyterhub_dummy_password": "sandbox-pass-9d2e",
        "ailab_tenants": [{"name": "demo", "kind": "course", "users": ["student1", "student2"],
                           "quota": {"cpu": 8, "memory": "32Gi"}, "profiles": ["cpu-small"]}],
        "jupyterhub_cull_timeout": 1800,
        "jupyterhub_storage_class": "scratch",
    },
    # LDAP; one tenant lists only a directory group, which LDAP does not pass on: a warning, not an error.
    "ldap": {
        "jupyterhub_auth_type": "ldap",
        "jupyterhub_auth_settings": {"server_address": "ldap.lab.example", "lookup_dn": True,
                                     "lookup_dn_search_user": "cn=hub,dc=lab", "lookup_dn_search_password": "ldap-bind-pass-31b8",
                                     "user_search_base": "ou=people,dc=lab", "user_attribute": "uid"},
        "ailab_tenants": [{"name": "physics", "kind": "research", "users": {"group": "physics"},
                           "quota": {"cpu": 16, "memory": "64Gi"}}],
    },
}

BAD = {
    "bad_gpu_kind": ({"ailab_gpu_node_groups": [H200],
                      "ailab_tenants": [{"name": "cs101", "kind": "course", "users": ["a"], "quota": {"cpu": 8, "memory": "8Gi"},
                                         "profiles": ["cpu-small", "rtx-3090-shared"]}]},
                     ["tenant cs101", "profile rtx-3090-shared does not exist", "mig-1g.18gb, mig-2g.35gb"]),
    "bad_empty_group": ({"ailab_gpu_node_groups": [H200, {"group": "gpu_l40s", "gpu_model": "NVIDIA L40S"}],
                         "ailab_tenants": [{"name": "ml", "kind": "research", "users": ["a"],
                                            "quota": {"cpu": 8, "memory": "8Gi", "gpu": {"l40s": 1}}}]},
                        ["tenant ml", "l40s", "gpu_l40s"]),
    "bad_dummy": ({"jupyterhub_auth_type": "dummy", "jupyterhub_dummy_password": "sandbox-pass-9d2e"},
                  ["jupyterhub_auth_type is dummy", "jupyterhub_sandbox is not true", "Choose native"]),
    "bad_duplicate": ({"ailab_cpu_profiles": [
        {"name": "small", "cpu_guarantee": 1, "cpu_limit": 2, "mem_guarantee": "1Gi", "mem_limit": "2Gi"},
        {"name": "small", "cpu_guarantee": 2, "cpu_limit": 4, "mem_guarantee": "2Gi", "mem_limit": "4Gi"}]},
        ["ailab_cpu_profiles[1] (profile small)", "already used by entry 0"]),
    "bad_oidc": ({"jupyterhub_auth_type": "oidc",
                  "jupyterhub_auth_settings": {"client_id": "x", "client_secret": "y", "oauth_callback_url": "https://h/cb"}},
                 ["jupyterhub_auth_type oidc needs authorize_url, token_url, userdata_url in jupyterhub_auth_settings"]),
    "bad_admin_groups": ({"jupyterhub_admin_groups": ["admins"]},
                         ["jupyterhub_admin_groups (admins) needs an identity provider", "jupyterhub_admin_users"]),
    "bad_reserved": ({"jupyterhub_auth_type": "github",
                      "jupyterhub_auth_settings": {"client_id": "x", "client_secret": "y", "oauth_callback_url": "https://h/cb",
                                                   "allowed_users": ["eve"]}},
                     ["Do not set allowed_users there", "jupyterhub_admin_users"]),
    "bad_cookie": ({"jupyterhub_cookie_secret": "not-hex"}, ["jupyterhub_cookie_secret must be 64 hex digits"]),
}

# Check mode takes the same paths in every lab: two shapes suffice (GPUs and tenants, CPU only).
CHECKED = ["cpu", "mig"]
NODE_GROUPS = {"gpu_h200": ["h200-1"], "gpu_rtx": ["rtx-1", "rtx-2"], "gpu_t4": ["t4-1"], "gpu_l40s": []}


# Apply mode on a local host without a cluster: preflight stops a real run, a check run installs nothing.
NO_CLUSTER = {"ansible_connection": "local", "jupyterhub_kubeconfig": "/nonexistent/admin.conf"}


def inventory(export_root, labs):
    host_vars = {name: dict(UNREACHABLE, ailab_kubernetes_export_dir=str(export_root / name), **(GOOD.get(name) or BAD[name][0]))
                 for name in labs if name != "no_cluster"}
    if "no_cluster" in labs:
        host_vars["no_cluster"] = dict(NO_CLUSTER)
    host_vars["canary"] = dict(UNREACHABLE)
    for hosts in NODE_GROUPS.values():
        for host in hosts:
            host_vars[host] = dict(UNREACHABLE)
    return local_inventory({"labs": list(labs), "canary_hosts": ["canary"], **NODE_GROUPS}, host_vars=host_vars)


def build(tmp, labs, *args, check=False):
    return run_playbook(tmp, platform_plays("JupyterHub", "jupyterhub.yml"), inventory(tmp / "export", labs),
                        "-e", "ailab_platform_hosts=labs", *args, check=check)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_run(tmp_path_factory, "jupyterhub-export",
                      lambda tmp: build(tmp, list(GOOD) + list(BAD) + ["no_cluster"]))


@pytest.fixture(scope="module")
def exported_again(tmp_path_factory, exported):
    """The good labs again, over a copy of the first export, with -v and --diff."""
    first, _run = exported

    def again(tmp):
        for lab in GOOD:
            shutil.copytree(first / "export" / lab, tmp / "export" / lab)
        return build(tmp, list(GOOD), "-v", "--diff")

    return shared_run(tmp_path_factory, "jupyterhub-export-again", again)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return shared_run(tmp_path_factory, "jupyterhub-check", lambda tmp: build(tmp, CHECKED + ["no_cluster"], check=True))


def release_values(directory):
    [release] = yaml.safe_load((directory / "releases.yml").read_text())["releases"]
    return release, yaml.safe_load((directory / release["values_file"]).read_text())


def values_of(exported, lab):
    tmp, run = exported
    assert run.stats[lab]["failures"] == 0, run.failure(lab)
    return release_values(tmp / "export" / lab)[1]


def export_problems(directory):
    """check_export, less one known gap of export_check: the z2jh schema declares hub.config free-form
    (patternProperties ^[A-Z], any content), but export_check compares its keys with values.yaml, which
    shows only hub.config.JupyterHub. Everything else, the schema validation of hub.config included, stays."""
    free = re.compile(r"^release jupyterhub/jupyterhub: jupyterhub: hub\.config\.[A-Z][A-Za-z]*(\.[a-z_]+)?: "
                      r"not a value of the chart \(not in its values\.yaml\)$")
    return [p for p in check_export(directory) if not free.match(p)]


# ------------------------------------------------------------------------------------ good labs
@pytest.mark.parametrize("lab", list(GOOD))
def test_export_is_valid(exported, lab):
    tmp, run = exported
    assert run.stats[lab]["failures"] == 0, run.failure(lab)
    assert export_problems(tmp / "export" / lab) == []
    release, values = release_values(tmp / "export" / lab)
    assert (release["name"], release["namespace"], release["chart"], release["version"]) == (
        "jupyterhub", "jupyterhub", "jupyterhub", "4.4.0")
    # The only files are the release and its values: no object of another role.
    files = sorted(p.relative_to(tmp / "export" / lab).as_posix() for p in (tmp / "export" / lab).rglob("*") if p.is_file())
    assert files == ["jupyterhub/helm-jupyterhub-values.yaml", "releases.yml"]
    assert set(values["hub"]["config"]) <= {"JupyterHub", "Authenticator", "KubeSpawner", "NativeAuthenticator",
                                            "GitHubOAuthenticator", "GenericOAuthenticator", "LDAPAuthenticator",
                                            "DummyAuthenticator"}


def test_the_schema_check_bites():
    """The merged values are validated against the chart's schema: a wrong key or type fails."""
    assert any("values schema" in p for p in check_chart_values("jupyterhub", {"singleuser": {"profilelist": []}}))
    assert any("values schema" in p for p in check_chart_values("jupyterhub", {"cull": {"timeout": "1h"}}))
    assert any("values schema" in p for p in check_chart_values("jupyterhub", {"hub": {"config": {"kubeSpawner": {}}}}))
    assert yaml.safe_load(reference("zero-to-jupyterhub/Chart.yaml").read_text())["appVersion"] == "5.5.0"


@pytest.mark.parametrize("lab", list(GOOD))
def test_every_profile_override_is_a_kubespawner_trait(exported, lab):
    values = values_of(exported, lab)
    profiles = values["singleuser"]["profileList"]
    assert override_problems(profiles) == []
    assert [p["slug"] for p in profiles if p.get("default")] == [profiles[0]["slug"]]
    traits = kubespawner().KubeSpawner.class_traits()
    assert set(values["hub"]["config"]["KubeSpawner"]) <= {k for k, t in traits.items() if t.metadata.get("config")}


def test_profiles_of_each_lab(exported):
    slugs = {lab: [p["slug"] for p in values_of(exported, lab)["singleuser"]["profileList"]] for lab in GOOD}
    assert slugs == {
        "cpu": ["cpu-small", "cpu-large"],
        "timeslice": ["cpu-small", "cpu-large", "rtx-3090-shared", "t4-shared"],
        "mig": ["cpu-small", "cpu-large", "mig-1g.18gb", "mig-2g.35gb"],
        "sandbox": ["cpu-small", "cpu-large"],
        "ldap": ["cpu-small", "cpu-large"],
    }
    mig = {p["slug"]: p for p in values_of(exported, "mig")["singleuser"]["profileList"]}
    assert mig["mig-1g.18gb"]["display_name"] == "GPU: 1 × NVIDIA H200 MIG 1g.18gb slice, 16 GB"
    # jupyterhub_gpu_cpu_profile: cpu-large gives the GPU profiles its sizes.
    assert mig["mig-1g.18gb"]["kubespawner_override"]["cpu_limit"] == 8.0
    timeslice = {p["slug"]: p for p in values_of(exported, "timeslice")["singleuser"]["profileList"]}
    assert timeslice["t4-shared"]["kubespawner_override"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert timeslice["rtx-3090-shared"]["kubespawner_override"]["image"].startswith("harbor.lab.example/mirror/")


def test_authentication_choices(exported):
    native = values_of(exported, "cpu")["hub"]["config"]
    assert native["JupyterHub"]["authenticator_class"] == "nativeauthenticator.NativeAuthenticator"
    assert native["NativeAuthenticator"] == {"open_signup": False}
    assert native["Authenticator"] == {"admin_users": ["root"], "allow_all": True}

    github = values_of(exported, "timeslice")["hub"]["config"]
    assert github["JupyterHub"]["authenticator_class"] == "oauthenticator.github.GitHubOAuthenticator"
    assert github["GitHubOAuthenticator"]["allowed_organizations"] == ["lab-org"]
    # No tenants and no jupyterhub_allow_all_users: only the admins get in (the role warns, see below).
    assert github["Authenticator"] == {"admin_users": ["root"], "allow_all": False, "allowed_users": ["root"]}

    oidc = values_of(exported, "mig")["hub"]["config"]
    assert oidc["JupyterHub"] == {"authenticator_class": "oauthenticator.generic.GenericOAuthenticator"}
    generic = oidc["GenericOAuthenticator"]
    assert generic["manage_groups"] is True and generic["auth_state_groups_key"] == "oauth_user.groups"
    assert generic["admin_groups"] == ["lab-admins"]
    assert generic["allowed_groups"] == ["cs101-students", "vision-lab"]
    assert generic["username_claim"] == "preferred_username"
    # Tenant members listed by name and the tenants' admins may log in too.
    assert oidc["Authenticator"] == {"admin_users": ["root"], "allow_all": False,
                                     "allowed_users": ["alice", "bob", "carol", "root"]}

    dummy = values_of(exported, "sandbox")["hub"]["config"]
    assert dummy["JupyterHub"]["authenticator_class"] == "jupyterhub.auth.DummyAuthenticator"
    assert dummy["DummyAuthenticator"] == {"password": "sandbox-pass-9d2e"}
    # JupyterHub groups mirror the tenants (the authenticator sends no groups).
    assert dummy["JupyterHub"]["load_groups"] == {"demo": {"users": ["student1", "student2"]}}

    ldap = values_of(exported, "ldap")["hub"]["config"]
    assert ldap["JupyterHub"]["authenticator_class"] == "ldapauthenticator.LDAPAuthenticator"
    assert ldap["LDAPAuthenticator"]["server_address"] == "ldap.lab.example"
    assert ldap["JupyterHub"]["load_groups"] == {"physics": {"users": []}}


AUTH_CLASSES = {"JupyterHub": "jupyterhub.app.JupyterHub", "Authenticator": "jupyterhub.auth.Authenticator",
                "DummyAuthenticator": "jupyterhub.auth.DummyAuthenticator",
                "NativeAuthenticator": "nativeauthenticator.NativeAuthenticator",
                "GitHubOAuthenticator": "oauthenticator.github.GitHubOAuthenticator",
                "GenericOAuthenticator": "oauthenticator.generic.GenericOAuthenticator",
                "LDAPAuthenticator": "ldapauthenticator.LDAPAuthenticator"}


def hub_config_problems(config):
    """Keys of hub.config.<Class> (c.<Class>.<key> in the hub) that the class lacks or whose value its trait
    refuses: traitlets only warns about those and the setting is lost."""
    traitlets = importlib.import_module("traitlets")
    holder = traitlets.HasTraits()
    problems = []
    for section, settings in config.items():
        if section == "KubeSpawner":
            continue  # test_every_profile_override_is_a_kubespawner_trait
        module, _dot, name = AUTH_CLASSES[section].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        traits = cls.class_traits(config=True)
        for key, value in settings.items():
            if key not in traits:
                problems.append(f"{section}.{key} is not a configurable trait of {AUTH_CLASSES[section]}")
                continue
            try:
                traits[key]._validate(holder, value)
            except traitlets.TraitError as exc:
                problems.append(f"{section}.{key}: {exc}")
    return problems


@pytest.mark.parametrize("lab", list(GOOD))
def test_hub_config_keys_are_traits_of_their_classes(exported, lab):
    assert hub_config_problems(values_of(exported, lab)["hub"]["config"]) == []


def test_the_hub_config_check_bites():
    problems = hub_config_problems({"GitHubOAuthenticator": {"allowed_organisations": ["lab-org"]},
                                    "Authenticator": {"allow_all": "yes please"}})
    assert len(problems) == 2 and "allowed_organisations is not a configurable trait" in problems[0]


def test_warns_when_only_the_admins_can_log_in(exported):
    _tmp, run = exported
    [warning] = run.results("Warn when only the admins can log in", "timeslice")
    assert "Only the admins (root) can log in" in warning["msg"] and "jupyterhub_allow_all_users: true" in warning["msg"]
    for lab in ("cpu", "mig", "sandbox", "ldap"):
        assert run.results("Warn when only the admins can log in", lab)[0].get("skipped"), lab


def test_ldap_warns_about_group_only_tenants(exported):
    _tmp, run = exported
    [warning] = run.results("Warn about tenants whose groups this authenticator cannot see", "ldap")
    assert "Tenants physics name only identity-provider groups" in warning["msg"]
    assert run.results("Warn about tenants whose groups this authenticator cannot see", "mig")[0].get("skipped")


def test_tenants_only_where_the_lab_has_them(exported):
    for lab in ("cpu", "timeslice"):
        values = values_of(exported, lab)
        assert "extraConfig" not in values["hub"] and "custom" not in values
    mig = values_of(exported, "mig")
    assert mig["hub"]["extraConfig"]["ailab-tenants"] == (ROOT / "roles/jupyterhub/files/ailab_tenants.py").read_text().rstrip("\n")
    assert mig["hub"]["networkPolicy"] == {"interNamespaceAccessLabels": "accept"}
    tenants = {t["name"]: t for t in mig["custom"]["ailab"]["tenants"]}
    assert tenants["cs101"]["profiles"] == ["cpu-small", "mig-1g.18gb"]
    assert tenants["staff"]["namespace"] == "lab-staff"
    compile(mig["hub"]["extraConfig"]["ailab-tenants"], "ailab-tenants", "exec")


def test_storage_culling_scheduling_and_network(exported):
    mig, cpu, sandbox = values_of(exported, "mig"), values_of(exported, "cpu"), values_of(exported, "sandbox")
    assert mig["singleuser"]["storage"] == {"type": "dynamic", "capacity": "10Gi", "dynamic": {"storageClass": "local-path"}}
    assert mig["hub"]["db"] == {"type": "sqlite-pvc", "pvc": {"storage": "1Gi", "storageClassName": "local-path"}}
    assert values_of(exported, "timeslice")["singleuser"]["storage"]["dynamic"] == {"storageClass": "nfs-client"}
    assert sandbox["singleuser"]["storage"]["dynamic"] == {"storageClass": "scratch"}
    # No storage backend in the inventory: the cluster's default StorageClass.
    assert "dynamic" not in cpu["singleuser"]["storage"] and "storageClassName" not in cpu["hub"]["db"]["pvc"]
    assert cpu["cull"] == {"enabled": True, "timeout": 3600, "every": 600, "maxAge": 0}
    assert sandbox["cull"]["timeout"] == 1800
    assert mig["scheduling"] == {"userScheduler": {"enabled": True}, "podPriority": {"enabled": True},
                                 "userPlaceholder": {"enabled": True, "replicas": 2}}
    # Network policies stay on (the chart's defaults) and nothing turns them off.
    merged_off = [k for k in ("hub", "proxy", "singleuser") if mig[k].get("networkPolicy", {}).get("enabled") is False]
    assert merged_off == []


def test_airgap_lab_pins_the_mirror_and_skips_prepulling(exported):
    values = values_of(exported, "timeslice")
    tmp, _run = exported
    release, _values = release_values(tmp / "export" / "timeslice")
    assert release["repo"] == "https://harbor.lab.example/chartrepo/jupyterhub"
    images = {
        "hub": values["hub"]["image"], "chp": values["proxy"]["chp"]["image"], "traefik": values["proxy"]["traefik"]["image"],
        "secret_sync": values["proxy"]["secretSync"]["image"], "singleuser": values["singleuser"]["image"],
        "network_tools": values["singleuser"]["networkTools"]["image"],
        "user_scheduler": values["scheduling"]["userScheduler"]["image"],
        "placeholder": values["scheduling"]["userPlaceholder"]["image"], "awaiter": values["prePuller"]["hook"]["image"],
        "pause": values["prePuller"]["pause"]["image"]}
    assert images == {
        "hub": {"name": "harbor.lab.example/mirror/jupyterhub/k8s-hub"},
        "chp": {"name": "harbor.lab.example/mirror/jupyterhub/configurable-http-proxy"},
        "traefik": {"name": "harbor.lab.example/mirror/library/traefik"},
        "secret_sync": {"name": "harbor.lab.example/mirror/jupyterhub/k8s-secret-sync"},
        "singleuser": {"name": "harbor.lab.example/mirror/jupyterhub/k8s-singleuser-sample"},
        "network_tools": {"name": "harbor.lab.example/mirror/jupyterhub/k8s-network-tools"},
        "user_scheduler": {"name": "harbor.lab.example/mirror/kube-scheduler"},
        "placeholder": {"name": "harbor.lab.example/mirror/pause"},
        "awaiter": {"name": "harbor.lab.example/mirror/jupyterhub/k8s-image-awaiter"},
        "pause": {"name": "harbor.lab.example/mirror/pause"},
    }
    # Every image of the chart's values.yaml is mirrored (none left pointing upstream).
    chart = yaml.safe_load(reference("zero-to-jupyterhub/values.yaml").read_text())

    def image_paths(node, path=()):
        if isinstance(node, dict):
            if isinstance(node.get("image"), dict) and "name" in node["image"]:
                yield path
            for key, value in node.items():
                yield from image_paths(value, path + (key,))

    paths = list(image_paths(chart))
    assert len(paths) == len(images)
    for path in paths:
        node = values
        for key in path:
            node = node[key]
        assert node["image"]["name"].startswith("harbor.lab.example/mirror/"), path
    assert values["prePuller"]["hook"]["enabled"] is False and values["prePuller"]["continuous"]["enabled"] is False
    # The default lab pulls ahead and keeps the upstream images.
    cpu = values_of(exported, "cpu")
    assert cpu["prePuller"] == {"hook": {"enabled": True}, "continuous": {"enabled": True}}
    assert "image" not in cpu["hub"] and "image" not in cpu["singleuser"]


# ------------------------------------------------------------------ notebooks in tenant namespaces
RESTRICTED_CAPS = {"drop": ["ALL"]}


def render_pod(values, user, slug):
    """The notebook pod a real KubeSpawner configured from the exported values renders for ``user``
    choosing ``slug`` (the z2jh settings the test relies on: uid, fsGid, allowPrivilegeEscalation,
    hub.config.KubeSpawner, the tenants snippet)."""
    ks = kubespawner().spawner
    from kubernetes_asyncio.client import ApiClient

    with mock.patch.object(ks, "load_config"), mock.patch.object(ks, "shared_client"):
        spawner = ks.KubeSpawner(_mock=True, namespace="jupyterhub", user=user)
    spawner.uid = values.get("singleuser", {}).get("uid", 1000)
    spawner.fs_gid = 100
    spawner.allow_privilege_escalation = False
    for key, value in values["hub"]["config"]["KubeSpawner"].items():
        setattr(spawner, key, value)
    spawner.profile_list = load_snippet(values)
    spawner.user_options = {"profile": slug}

    async def render():
        await spawner.load_user_options()
        pod = await spawner.get_pod_manifest()
        async with ApiClient() as client:
            return client.sanitize_for_serialization(pod)

    pod = asyncio.run(render())
    pod["metadata"]["namespace"] = spawner.namespace
    return pod


def quantity(text):
    """A Kubernetes quantity as a float (enough for the sizes used here)."""
    text = str(text)
    for suffix, factor in (("Ki", 2 ** 10), ("Mi", 2 ** 20), ("Gi", 2 ** 30), ("Ti", 2 ** 40), ("m", 1e-3)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * factor
    return float(text)


@pytest.mark.parametrize("user, groups, slug, namespace, resource", [
    ("dave", ["cs101-students"], "cs101-mig-1g.18gb", "cs101", "nvidia.com/mig-1g.18gb"),
    ("dave", ["cs101-students"], "cs101-cpu-small", "cs101", None),
    ("erin", ["vision-lab"], "vision-mig-2g.35gb", "vision", "nvidia.com/mig-2g.35gb"),
    ("bob", [], "staff-cpu-large", "lab-staff", None),
])
def test_notebook_pod_runs_in_the_tenant_namespace_within_its_quota(exported, user, groups, slug, namespace, resource):
    values = values_of(exported, "mig")
    pod = render_pod(values, User(user, groups), slug)
    assert pod["metadata"]["namespace"] == namespace
    assert validate_object(pod) == []
    [container] = pod["spec"]["containers"]
    limits, requests = container["resources"]["limits"], container["resources"].get("requests", {})
    # Pod Security "restricted".
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == RESTRICTED_CAPS
    assert not pod["spec"].get("initContainers")
    # Within the tenant's quota (ResourceQuota requests.*: an extended resource's request defaults to its limit).
    quota = {t["name"]: t["quota"] for t in TENANTS}[slug.split("-")[0]]
    assert quantity(requests["cpu"]) <= quantity(quota["cpu"]) and quantity(limits["cpu"]) <= quantity(quota["cpu"])
    assert quantity(requests["memory"]) <= quantity(quota["memory"])
    gpus = {k: v for k, v in limits.items() if k.startswith("nvidia.com/")}
    if resource:
        assert gpus == {resource: "1"}
        key = resource.split("/")[1]
        assert quota["gpu"][key] >= 1
        assert pod["spec"]["nodeSelector"] == {"ailab.cluster/gpu-group": "gpu_h200"}
    else:
        assert gpus == {}
        assert "ailab.cluster/gpu-group" not in (pod["spec"].get("nodeSelector") or {})


def tenant_objects(namespace):
    """The objects the tenants role derives from the same inventory (lab_tenant_objects) in ``namespace``."""
    from ansible_collections.ailab.cluster.plugins.filter.lab_gpu import lab_gpu_resources
    from ansible_collections.ailab.cluster.plugins.filter.lab_tenants import lab_cpu_profiles, lab_tenant_objects, lab_tenants

    resources = lab_gpu_resources(GOOD["mig"]["ailab_gpu_node_groups"], NODE_GROUPS)
    tenants = lab_tenants(TENANTS, resources, lab_cpu_profiles(None))
    found = {}
    for obj in lab_tenant_objects(tenants, resources):
        if obj["metadata"].get("namespace", obj["metadata"]["name"]) == namespace:
            found.setdefault(obj["kind"], []).append(obj)
    return found


@pytest.mark.parametrize("user, groups, slug", [
    ("dave", ["cs101-students"], "cs101-mig-1g.18gb"),
    ("erin", ["vision-lab"], "vision-mig-2g.35gb"),
    ("bob", [], "staff-cpu-large"),
])
def test_the_tenant_namespace_admits_the_notebook(exported, user, groups, slug):
    """From the tenants' objects alone: the notebook fits the namespace's ResourceQuota, the hub may spawn
    there, the proxy and hub may reach it, and its Pod Security level admits it."""
    values = values_of(exported, "mig")
    pod = render_pod(values, User(user, groups), slug)
    found = tenant_objects(pod["metadata"]["namespace"])
    [container] = pod["spec"]["containers"]
    resources = container["resources"]
    requests = dict(resources.get("requests", {}))
    for name, value in resources["limits"].items():
        requests.setdefault(name, value)  # an extended resource's request defaults to its limit
    [quota] = found["ResourceQuota"]
    for key, hard in quota["spec"]["hard"].items():
        kind, _dot, name = key.partition(".")
        if kind == "requests" and name in requests:
            assert quantity(requests[name]) <= quantity(hard), (key, requests[name], hard)
        elif kind == "limits" and name in resources["limits"]:
            assert quantity(resources["limits"][name]) <= quantity(hard), (key, hard)
    gpu = [name for name in resources["limits"] if name.startswith("nvidia.com/")]
    assert all(f"requests.{name}" in quota["spec"]["hard"] for name in gpu), "the quota must count the notebook's GPU"
    hub = {"kind": "ServiceAccount", "name": "hub", "namespace": values.get("hub", {}).get("namespace", "jupyterhub")}
    bindings = [b for b in found["RoleBinding"] if hub in b["subjects"]]
    assert bindings, "no RoleBinding lets the hub's ServiceAccount spawn in the tenant namespace"
    role = [r for r in found["Role"] if r["metadata"]["name"] == bindings[0]["roleRef"]["name"]][0]
    granted = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    needed = {("pods", v) for v in ("get", "list", "watch", "create", "delete")} | {
        ("persistentvolumeclaims", v) for v in ("get", "create")} | {("events", v) for v in ("list", "watch")}
    assert needed <= granted, needed - granted
    from_hub = [p for p in found["NetworkPolicy"] for rule in p["spec"].get("ingress", []) for peer in rule.get("from", [])
                if peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "jupyterhub"]
    assert from_hub, "no NetworkPolicy lets the proxy and the hub reach the notebook"
    [namespace] = found["Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] in ("baseline", "restricted")


def test_a_user_of_no_tenant_gets_no_server(exported):
    web = importlib.import_module("tornado.web")
    values = values_of(exported, "mig")
    with pytest.raises(web.HTTPError) as raised:
        load_snippet(values)(types.SimpleNamespace(user=User("root")))
    assert raised.value.status_code == 403
    assert "belongs to no team or course" in raised.value.log_message


# ---------------------------------------------------------------------------------- secrets
SECRET = re.compile(r"^[0-9a-f]{64}$")


def secrets_of(exported, lab):
    values = values_of(exported, lab)
    return values["proxy"]["secretToken"], values["hub"]["cookieSecret"]


def test_secrets_are_generated_per_lab(exported):
    seen = set()
    for lab in GOOD:
        token, cookie = secrets_of(exported, lab)
        assert SECRET.match(token) and SECRET.match(cookie) and token != cookie
        seen |= {token, cookie}
    assert len(seen) == 2 * len(GOOD)


def test_second_export_keeps_the_secrets_byte_identical(exported, exported_again):
    tmp, _run = exported
    tmp2, run2 = exported_again
    for lab in GOOD:
        assert run2.stats[lab]["failures"] == 0, run2.failure(lab)
        first, second = tmp / "export" / lab, tmp2 / "export" / lab
        assert_same_files(first, second)


def test_no_secret_in_the_output(exported, exported_again):
    _tmp, run = exported
    _tmp2, run2 = exported_again
    secrets = list(GIVEN_SECRETS)
    for lab in GOOD:
        secrets += list(secrets_of(exported, lab))
    for output in (run.stdout + run.stderr, run2.stdout + run2.stderr):
        leaked = [s for s in secrets if s in output]
        assert leaked == []
    # The -v --diff run did run the tasks that handle them.
    assert run2.results("Keep the secrets in use, or generate them once", "mig")


def test_check_mode_writes_nothing(checked):
    tmp, run = checked
    for lab in CHECKED + ["no_cluster"]:
        assert run.stats[lab]["failures"] == 0 and run.stats[lab]["unreachable"] == 0, run.failure(lab)
    assert not (tmp / "export").exists()
    # Apply mode before the cluster exists: nothing to compare with, so no helm task ran.
    [release] = run.results("Install or upgrade the release", "no_cluster")
    assert release.get("skipped")


def test_apply_mode_without_a_cluster_stops_in_preflight(exported):
    _tmp, run = exported
    assert "/nonexistent/admin.conf on no_cluster, which does not exist: run playbooks/kubernetes.yml first" in " ".join(
        run.failure("no_cluster").split())
    assert not run.results("Read the secrets of the running hub", "no_cluster")


# ------------------------------------------------------------------------------------ bad labs
@pytest.mark.parametrize("lab", list(BAD))
def test_bad_inventory_fails_clearly_and_exports_nothing(exported, lab):
    tmp, run = exported
    assert run.rc != 0
    assert run.stats[lab]["failures"] == 1
    message = " ".join(run.failure(lab).split())
    for part in BAD[lab][1]:
        assert part in message, message
    assert not (tmp / "export" / lab).exists()


def test_export_touches_no_node(exported):
    _tmp, run = exported
    assert_export_touches_no_node(run, GOOD, nodes={h for hosts in NODE_GROUPS.values() for h in hosts})
