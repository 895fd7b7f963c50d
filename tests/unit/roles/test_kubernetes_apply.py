"""kubernetes_apply in export mode through ansible-playbook: objects and Helm releases written on the
controller, valid for export_check, the same bytes on a second export, nothing changed on a re-run,
nothing written in check mode, Secrets (also from Ansible Vault) kept out of the output and the diff,
and a host no connection reaches exports all the same.

One ansible-playbook run (five plays) covers every variant on its own local host and directory;
the hosts with bad inventory fail in preflight and export nothing.
"""

import stat

import pytest
import yaml

from export_check import check_export
from unit.roles.playbook_runner import ROOT, UNREACHABLE, assert_same_files, local_inventory, run_playbook, shared_run

SECRET_VALUE = "hub-db-pa55word-never-shown"
VAULT_VALUE = "vaulted-t0ken-never-shown"
CHANGED_VALUE = "changed-pa55word-never-shown"
VAULT_PASSWORD = "test-vault-password"
OBJECTS_TASK = "Write each object to <namespace or _cluster>/<kind>-<name><suffix>.yaml"
RELEASES_TASK = "Record the release in releases.yml"

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nlp", "labels": {"ailab.dev/tenant": "nlp"}}}
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "nlp"},
              "data": {"zeta": "yes", "alpha": "0644", "note": "Grüße — ünïcode", "script": "#!/bin/sh\necho hi\n"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "hub-db", "namespace": "jupyterhub"}, "stringData": {"password": SECRET_VALUE}}
CLUSTER_ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "ailab:reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}
MANIFESTS = [NAMESPACE, CONFIG_MAP, SECRET, CLUSTER_ROLE]
FILES = {"_cluster/namespace-nlp.yaml": 0o644, "nlp/configmap-settings.yaml": 0o644,
         "jupyterhub/secret-hub-db.yaml": 0o600, "_cluster/clusterrole-ailab:reader.yaml": 0o644}
RELEASES = [
    {"name": "metallb", "namespace": "metallb-system", "chart_ref": "metallb",
     "chart_repo_url": "https://metallb.github.io/metallb", "chart_version": "0.16.1",
     "values": {"speaker": {"frr": {"enabled": False}}}},
    {"name": "dcgm-exporter", "namespace": "gpu-operator", "chart_ref": "dcgm-exporter",
     "chart_repo_url": "https://nvidia.github.io/dcgm-exporter/helm-charts", "chart_version": "4.8.2",
     "values": {"serviceMonitor": {"enabled": True}}},
]
# Every host that exports, each into its own directory.
EXPORTERS = ["objects", "again", "unreachable", "vault", "check", "diff"]
BAD = {"bad_dir": {"ailab_kubernetes_export_dir": "relative/export"},
       "bad_object": {"kubernetes_apply_manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                                                     "metadata": {"namespace": "nlp"}}]}}


def role(**task_vars):
    return {"name": "Export", "ansible.builtin.import_role": {"name": "ailab.cluster.kubernetes_apply"},
            **({"vars": task_vars} if task_vars else {})}


def build(tmp):
    host_vars = {name: {"ailab_kubernetes_export_dir": str(tmp / name), "kubernetes_apply_manifests": MANIFESTS}
                 for name in EXPORTERS + ["helm"] + list(BAD)}
    host_vars["unreachable"].update(UNREACHABLE)
    host_vars["vault"]["kubernetes_apply_manifests"] = [
        dict(SECRET, stringData={"password": SECRET_VALUE, "token": "{{ vaulted_token }}"})]
    for name, bad in BAD.items():
        host_vars[name].update(bad)
    inventory = local_inventory({"exporters": EXPORTERS + list(BAD), "helm_hosts": ["helm"]}, host_vars=host_vars)
    helm = [{"name": f"Export release {r['name']}", "ansible.builtin.include_role": {
        "name": "ailab.cluster.kubernetes_apply", "tasks_from": "helm"}, "vars": {"kubernetes_apply_helm_release": r}}
        for r in RELEASES]
    plays = [
        {"name": "Export", "hosts": "exporters:!check:!diff", "gather_facts": False, "become": True,
         "tasks": [role()]},
        {"name": "Export again into the same directory", "hosts": "objects", "gather_facts": False,
         "tasks": [role()]},
        {"name": "Helm releases, the first one twice", "hosts": "helm", "gather_facts": False,
         "tasks": [role(), *helm, helm[0]]},
        {"name": "Check mode", "hosts": "check", "gather_facts": False, "check_mode": True, "tasks": [role()]},
        {"name": "Diff mode, then a changed Secret", "hosts": "diff", "gather_facts": False, "diff": True,
         "tasks": [role(), role(kubernetes_apply_manifests=[dict(SECRET, stringData={"password": CHANGED_VALUE})])]},
    ]
    vault = tmp / "vault"
    vault.mkdir()
    (vault / "password").write_text(VAULT_PASSWORD)
    # The vaulted variable, encrypted as ansible-vault encrypt_string does.
    from ansible.parsing.vault import VaultLib, VaultSecret

    ciphertext = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))]).encrypt(VAULT_VALUE).decode()
    (vault / "vars.yml").write_text("vaulted_token: !vault |\n" + "".join(f"  {line}\n" for line in ciphertext.splitlines()))
    return run_playbook(tmp, plays, inventory, "--vault-password-file", str(vault / "password"),
                        "-e", f"@{vault / 'vars.yml'}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return shared_run(tmp_path_factory, "kubernetes-apply-export", build)


def files(directory):
    return {p.relative_to(directory).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in directory.rglob("*") if p.is_file()}


def test_the_good_hosts_succeed_and_the_bad_ones_fail(exported):
    _tmp, run = exported
    assert {h: s["failures"] for h, s in run.stats.items()} == {
        **{h: 0 for h in EXPORTERS + ["helm"]}, **{h: 1 for h in BAD}}, run.stdout[-3000:]
    assert run.stats["unreachable"]["unreachable"] == 0


def test_objects_are_written_with_their_modes_and_valid(exported):
    tmp, _run = exported
    assert files(tmp / "objects") == FILES
    for directory in ("_cluster", "nlp", "jupyterhub"):
        assert stat.S_IMODE((tmp / "objects" / directory).stat().st_mode) == 0o755
    assert check_export(tmp / "objects") == []
    text = (tmp / "objects" / "nlp/configmap-settings.yaml").read_text()
    assert text.startswith("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n")  # keys in the given order
    assert "zeta: 'yes'\n  alpha: '0644'\n  note: Grüße — ünïcode\n" in text


def test_a_second_export_is_byte_identical(exported):
    tmp, _run = exported
    assert_same_files(tmp / "objects", tmp / "again")


def test_a_re_export_into_the_same_directory_changes_nothing(exported):
    _tmp, run = exported
    first, second = run.results(OBJECTS_TASK, "objects")
    assert first["changed"] is True
    assert second["changed"] is False


def test_a_host_no_connection_reaches_exports_all_the_same(exported):
    tmp, _run = exported
    assert_same_files(tmp / "objects", tmp / "unreachable")


def test_helm_values_files_and_releases(exported):
    tmp, run = exported
    out = tmp / "helm"
    assert check_export(out) == []
    releases = yaml.safe_load((out / "releases.yml").read_text())["releases"]
    assert [(r["namespace"], r["name"], r["values_file"]) for r in releases] == [
        ("gpu-operator", "dcgm-exporter", "gpu-operator/helm-dcgm-exporter-values.yaml"),
        ("metallb-system", "metallb", "metallb-system/helm-metallb-values.yaml")]
    assert (out / "releases.yml").read_text().startswith(
        "---\n# Helm releases exported by ailab.cluster (kubernetes_apply); values files are relative to this file.\n")
    assert files(out)["metallb-system/helm-metallb-values.yaml"] == 0o600
    assert (out / "metallb-system/helm-metallb-values.yaml").read_text() == "---\nspeaker:\n  frr:\n    enabled: false\n"
    assert files(out)["releases.yml"] == 0o644
    # The first release exported again: same files, nothing changed.
    assert [r["changed"] for r in run.results(RELEASES_TASK, "helm")] == [True, True, False]


def test_check_mode_writes_nothing(exported):
    tmp, run = exported
    assert not (tmp / "check").exists()
    assert [r["changed"] for r in run.results(OBJECTS_TASK, "check")] == [True]


def test_diff_mode_hides_secrets(exported):
    _tmp, run = exported
    first, changed = run.results(OBJECTS_TASK, "diff")
    shown = "\n".join(str(d.get("after", "")) for d in first["diff"])
    assert "kind: ConfigMap" in shown and "(secret content hidden)" in shown
    assert [(d["before"], d["after"]) for d in changed["diff"]] == [
        ("(secret content hidden: previous version)\n", "(secret content hidden)\n")]


def test_secrets_are_written_but_never_shown(exported):
    tmp, run = exported
    assert f"password: {SECRET_VALUE}\n" in (tmp / "objects" / "jupyterhub/secret-hub-db.yaml").read_text()
    vaulted = (tmp / "vault" / "jupyterhub/secret-hub-db.yaml").read_text()
    assert f"token: {VAULT_VALUE}\n" in vaulted and "$ANSIBLE_VAULT" not in vaulted
    for value in (SECRET_VALUE, VAULT_VALUE, CHANGED_VALUE):
        assert value not in run.stdout and value not in run.stderr, value


@pytest.mark.parametrize(("host", "message"), [
    ("bad_dir", "must be an absolute path on the controller, got 'relative/export'"),
    ("bad_object", "each with apiVersion, kind and metadata.name"),
])
def test_bad_inventory_fails_clearly_and_exports_nothing(exported, host, message):
    tmp, run = exported
    assert message in (run.failure(host) or "")
    assert not (tmp / host).exists()
    assert not (ROOT / "relative").exists()
