"""playbooks/dashboard.yml (role dashboard) in export mode.

One ansible-playbook run exports every lab shape: each host of the group ``labs`` stands for one lab
(its own settings and export directory) and the playbook runs on that group
(``-e ailab_platform_hosts=labs``). The same run imports the playbook a second time with another
export directory per lab (the two exports must be byte-identical). Every lab host is an SSH host on a
closed loopback port (127.0.0.1:9): export mode must never connect to it; a canary play proves that
connecting fails. A second run exports the good labs in check mode (nothing may be written).
"""


import pytest
import yaml

from export_check import check_chart_values, check_export, deep_merge
from unit.roles.playbook_runner import (UNREACHABLE, assert_apply_check_changes_nothing, assert_check_mode_writes_nothing,
                                        assert_export_touches_no_node, assert_refused, assert_same_files, export_objects,
                                        local_inventory, of_kind, platform_plays, reference, run_playbook, shared_run)


GOOD = {
    # Headlamp with every default.
    "headlamp": {},
    # The archived Kubernetes Dashboard behind a MetalLB address, images from a mirror.
    "kd": {"dashboard_kind": "kubernetes-dashboard", "dashboard_service_type": "LoadBalancer",
           "dashboard_image_registry": "harbor.lab.example/dockerhub/"},
    # Headlamp with OIDC login sharing JupyterHub's client, viewer groups with the API server's prefix,
    # a fixed MetalLB address, a mirror, and the cluster-admin token opted in.
    "admin": {"dashboard_admin_token": True, "dashboard_oidc": True,
              "dashboard_oidc_issuer_url": "https://keycloak.lab.example/realms/lab",
              "jupyterhub_auth_type": "oidc",
              "jupyterhub_auth_settings": {"client_id": "ailab", "client_secret": "oidc-s3cret-value"},
              "dashboard_viewer_groups": ["lab-staff", "cs101-teachers"], "ailab_rbac_group_prefix": "oidc:",
              "dashboard_service_type": "LoadBalancer", "dashboard_load_balancer_ip": "192.168.10.241",
              "dashboard_image_registry": "harbor.lab.example/ghcr",
              "dashboard_read_only_extra_rules": [{"api_groups": ["example.lab"], "resources": ["datasets"]}]},
}

# Bad inventories: (host vars, parts of the one failure message).
BAD = {
    "bad_kind": ({"dashboard_kind": "weave-scope"}, ["dashboard_kind", "headlamp, kubernetes-dashboard"]),
    "bad_wildcard": ({"dashboard_read_only_extra_rules": [{"api_groups": ["example.lab"], "resources": ["*"]}]},
                     ["no '*'", "a wildcard includes secrets"]),
    "bad_secrets": ({"dashboard_read_only_extra_rules": [{"api_groups": [""], "resources": ["secrets"]}]},
                    ["never reads Secrets"]),
    "bad_oidc_kd": ({"dashboard_kind": "kubernetes-dashboard", "dashboard_oidc": True,
                     "dashboard_oidc_issuer_url": "https://keycloak.lab.example/realms/lab", "dashboard_oidc_client_id": "x"},
                    ["dashboard_kind must be headlamp", "no OIDC login"]),
    "bad_oidc_issuer": ({"dashboard_oidc": True, "dashboard_oidc_client_id": "x"},
                        ["dashboard_oidc_issuer_url", "https issuer URL"]),
    "bad_lb_ip": ({"dashboard_load_balancer_ip": "192.168.10.241"},
                  ["dashboard_load_balancer_ip only for a Headlamp LoadBalancer"]),
}

AGAIN = "again"

# Apply mode on this machine (local connection, no become), where no cluster exists
# (/etc/kubernetes/admin.conf is absent): check mode passes and changes nothing, a real run stops
# with the message that says what to do.
NO_CLUSTER = {"ansible_connection": "local", "ansible_become": False, "dashboard_kubeconfig": "/nonexistent/admin.conf"}
APPLY = {"apply_check": NO_CLUSTER, "bad_no_cluster": NO_CLUSTER}


def inventory(root, labs):
    host_vars = {name: dict(UNREACHABLE, ailab_kubernetes_export_dir=str(root / "export" / name),
                            **(GOOD[name] if name in GOOD else BAD[name][0])) for name in labs if name not in APPLY}
    for name in labs:
        if name in APPLY:
            host_vars[name] = dict(APPLY[name])
    host_vars["canary"] = dict(UNREACHABLE)
    return local_inventory({"labs": list(labs), "canary_hosts": ["canary"]}, host_vars=host_vars)


def build(tmp, labs, check=False):
    plays = platform_plays("Dashboard", "dashboard.yml", again=not check, again_root=tmp / AGAIN)
    return run_playbook(tmp, plays, inventory(tmp, labs), "-e", "ailab_platform_hosts=labs", check=check)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_run(tmp_path_factory, "dashboard-export", lambda tmp: build(tmp, list(GOOD) + list(BAD) + ["bad_no_cluster"]))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return shared_run(tmp_path_factory, "dashboard-check", lambda tmp: build(tmp, list(GOOD) + ["apply_check"], check=True))


def release(directory):
    [rel] = yaml.safe_load((directory / "releases.yml").read_text())["releases"]
    return rel, yaml.safe_load((directory / rel["values_file"]).read_text())


# ------------------------------------------------------------------------------------ good labs
@pytest.mark.parametrize("lab", list(GOOD))
def test_export_is_valid(exported, lab):
    tmp, run = exported
    assert run.stats[lab]["failures"] == 0, run.failure(lab)
    assert check_export(tmp / "export" / lab) == []


@pytest.mark.parametrize("lab", list(GOOD))
def test_read_only_role_grants_no_secret_no_write_no_wildcard(exported, lab):
    tmp, _run = exported
    role = of_kind(export_objects(tmp / "export" / lab), "ClusterRole")["ailab-dashboard-view"]
    assert role["rules"]
    for rule in role["rules"]:
        assert rule["verbs"] == ["get", "list", "watch"], rule
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert not any(r == "secrets" or r.startswith("secrets/") for r in rule["resources"]), rule
        assert not {"pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "serviceaccounts/token"} & set(rule["resources"])
        # Exactly the three keys: no resourceNames, no nonResourceURLs, whatever the extra rules hold.
        assert sorted(rule) == ["apiGroups", "resources", "verbs"], rule
    granted = {(group, res) for rule in role["rules"] for group in rule["apiGroups"] for res in rule["resources"]}
    # What a lab admin looks at: workloads, nodes, logs, quotas, queues, GPU policy, Ceph.
    for needed in [("", "pods"), ("", "pods/log"), ("", "nodes"), ("", "resourcequotas"), ("apps", "deployments"),
                   ("batch", "jobs"), ("kueue.x-k8s.io", "clusterqueues"), ("nvidia.com", "clusterpolicies"),
                   ("ceph.rook.io", "cephclusters"), ("metrics.k8s.io", "pods")]:
        assert needed in granted, needed


@pytest.mark.parametrize("lab", list(GOOD))
def test_nothing_is_bound_to_cluster_admin_unless_opted_in(exported, lab):
    tmp, _run = exported
    found = export_objects(tmp / "export" / lab)
    admin_bindings = {n: b for n, b in of_kind(found, "ClusterRoleBinding").items() if b["roleRef"]["name"] == "cluster-admin"}
    rel, values = release(tmp / "export" / lab)
    if rel["chart"] == "headlamp":
        merged = deep_merge(yaml.safe_load(reference("headlamp/values.yaml").read_text()), values)
        # The chart's own binding of Headlamp's ServiceAccount: the read-only role, not cluster-admin.
        assert merged["clusterRoleBinding"]["clusterRoleName"] == "ailab-dashboard-view"
        assert merged["config"]["unsafeUseServiceAccountToken"] is False
    if GOOD[lab].get("dashboard_admin_token"):
        assert list(admin_bindings) == ["ailab-dashboard-admin"]
        [binding] = admin_bindings.values()
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dashboard-admin", "namespace": "dashboard"}]
        assert ("ServiceAccount", "dashboard", "dashboard-admin") in found
    else:
        assert admin_bindings == {}
        assert ("ServiceAccount", "dashboard", "dashboard-admin") not in found
    # Whatever the lab, no ServiceAccount token Secret is exported: tokens are short-lived (kubectl create token).
    assert not of_kind(found, "Secret")


def test_headlamp_defaults(exported):
    tmp, run = exported
    directory = tmp / "export" / "headlamp"
    rel, values = release(directory)
    assert (rel["name"], rel["namespace"], rel["chart"], rel["version"], rel["repo"]) == (
        "headlamp", "dashboard", "headlamp", "0.45.0", "https://kubernetes-sigs.github.io/headlamp/")
    assert yaml.safe_load(reference("headlamp/Chart.yaml").read_text())["version"] == "0.45.0"
    assert values == {"clusterRoleBinding": {"create": True, "clusterRoleName": "ailab-dashboard-view"},
                      "config": {"unsafeUseServiceAccountToken": False}, "service": {"type": "ClusterIP"}}
    found = export_objects(directory)
    binding = of_kind(found, "ClusterRoleBinding")["ailab-dashboard-view"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dashboard-viewer", "namespace": "dashboard"}]
    assert found[("Namespace", "_cluster", "dashboard")]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert run.skipped("Warn that the Kubernetes Dashboard is archived", "headlamp")
    assert run.skipped("Warn that a cluster-admin token is enabled", "headlamp")


def test_kubernetes_dashboard_is_flagged_as_archived(exported):
    tmp, run = exported
    msgs = [r.get("msg", "") for r in run.results("Warn that the Kubernetes Dashboard is archived", "kd")]
    assert any("DEPRECATED" in m and "archived" in m and "headlamp" in m for m in msgs), msgs
    rel, values = release(tmp / "export" / "kd")
    assert (rel["chart"], rel["version"]) == ("kubernetes-dashboard", "7.13.0")
    assert yaml.safe_load(reference("kubernetes-dashboard/Chart.yaml").read_text())["version"] == "7.13.0"
    assert values["kong"] == {"proxy": {"type": "LoadBalancer"}}
    upstream = yaml.safe_load(reference("kubernetes-dashboard/values.yaml").read_text())
    for part, image in (("auth", "dashboard-auth"), ("api", "dashboard-api"), ("web", "dashboard-web"),
                        ("metricsScraper", "dashboard-metrics-scraper")):
        assert upstream[part]["image"]["repository"] == f"docker.io/kubernetesui/{image}"
        assert values[part]["image"] == {"repository": f"harbor.lab.example/dockerhub/kubernetesui/{image}"}


def test_admin_token_is_opt_in_and_warned(exported):
    tmp, run = exported
    msgs = [r.get("msg", "") for r in run.results("Warn that a cluster-admin token is enabled", "admin")]
    assert any("cluster-admin" in m and "create token dashboard-admin --duration=1h" in m for m in msgs), msgs


def test_oidc_login_shares_jupyterhubs_client_and_binds_groups(exported):
    tmp, run = exported
    directory = tmp / "export" / "admin"
    _rel, values = release(directory)
    assert values["config"]["oidc"] == {
        "clientID": "ailab", "clientSecret": "oidc-s3cret-value", "issuerURL": "https://keycloak.lab.example/realms/lab",
        "scopes": "profile,email,groups", "callbackURL": ""}
    assert values["image"] == {"registry": "harbor.lab.example/ghcr"}
    assert values["service"] == {"type": "LoadBalancer", "annotations": {"metallb.io/loadBalancerIPs": "192.168.10.241"}}
    assert check_chart_values("headlamp", values) == []
    binding = of_kind(export_objects(directory), "ClusterRoleBinding")["ailab-dashboard-view"]
    assert binding["subjects"][1:] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "oidc:lab-staff"},
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "oidc:cs101-teachers"}]
    role = of_kind(export_objects(directory), "ClusterRole")["ailab-dashboard-view"]
    assert role["rules"][-1] == {"apiGroups": ["example.lab"], "resources": ["datasets"], "verbs": ["get", "list", "watch"]}
    # The client secret never reaches the output.
    assert "oidc-s3cret-value" not in run.stdout


def test_the_values_check_bites():
    """export_check compares Headlamp overrides with values.yaml and its schema: a wrong key or type fails."""
    assert check_chart_values("headlamp", {"service": {"type": "Balancer"}})
    assert check_chart_values("headlamp", {"clusterRoleBinding": {"roleName": "x"}})
    assert check_chart_values("kubernetes-dashboard", {"kong": {"proxy": {"kind": "LoadBalancer"}}})


def test_export_touches_no_node(exported):
    _tmp, run = exported
    assert_export_touches_no_node(run, GOOD)


@pytest.mark.parametrize("lab", list(GOOD))
def test_second_export_is_byte_identical(exported, lab):
    tmp, _run = exported
    first, second = tmp / "export" / lab, tmp / AGAIN / lab
    assert_same_files(first, second)


def test_check_mode_writes_nothing(checked):
    tmp, run = checked
    assert_check_mode_writes_nothing(run, GOOD, tmp / "export")


# ------------------------------------------------------------------------------------- bad labs
@pytest.mark.parametrize("lab", list(BAD))
def test_bad_inventory_is_refused_before_anything_is_exported(exported, lab):
    tmp, run = exported
    assert_refused(run, lab, BAD[lab][1], tmp / "export" / lab)
    assert run.results("Record the release in releases.yml", "headlamp")
    assert not run.results("Record the release in releases.yml", lab)


def test_apply_mode_without_a_cluster_stops_with_what_to_do(exported):
    _tmp, run = exported
    message = run.failure("bad_no_cluster")
    assert "/nonexistent/admin.conf" in message and "run playbooks/kubernetes.yml first" in message, message


def test_apply_mode_check_without_a_cluster_changes_nothing(checked):
    _tmp, run = checked
    assert_apply_check_changes_nothing(run, "apply_check",
                                       ("Install or upgrade the release", "Apply each object with server-side apply"))
