"""The kubernetes_export action (plugins/action/kubernetes_export.py) run alone, constructed the way
ansible-core's own action tests do (a Task with args, a connection it must not use): the files it
writes, idempotence, mode repair, check and diff mode, Secrets kept out of every result, bad input,
and atomic writes. The text of each object is compared with what the copy loop rendered before,
``'---\\n' ~ (item | to_nice_yaml(indent=2, sort_keys=False, width=1000))`` through Ansible's Templar.
"""

import json
import stat
from unittest.mock import MagicMock

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.template import Templar, trust_as_template
from ansible_collections.ailab.cluster.plugins.action import kubernetes_export
from ansible_collections.ailab.cluster.plugins.action.kubernetes_export import ActionModule, render_object

SECRET_VALUE = "pa55-w0rd-never-printed"
# As export.yml had it: its YAML double-quoted scalar turned \n into a newline before Jinja saw it.
OLD_TEMPLATE = "{{ '---\n' ~ (item | to_nice_yaml(indent=2, sort_keys=False, width=1000)) }}"

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nlp", "labels": {"ailab/tenant": "nlp"}}}
CONFIG_MAP = {
    "apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "settings", "namespace": "nlp", "annotations": {"note": "Grüße, ünïcode — and a long line " * 8}},
    # Values YAML would change if quoted differently: booleans as strings, octal-looking, empty,
    # multi-line, keys out of alphabetical order, None, numbers.
    "data": {"zeta": "yes", "alpha": "0644", "empty": "", "script": "#!/bin/sh\necho hi\n", "on": "on",
             "colon": "a: b", "star": "*", "trailing ": "x "},
}
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "hub-db", "namespace": "jupyterhub"}, "stringData": {"password": SECRET_VALUE}}
CLUSTER_ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "system:ailab:reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
                "aggregationRule": None}
OBJECTS = [NAMESPACE, CONFIG_MAP, SECRET, CLUSTER_ROLE]
PATHS = ["_cluster/namespace-nlp.yaml", "nlp/configmap-settings.yaml", "jupyterhub/secret-hub-db.yaml",
         "_cluster/clusterrole-system:ailab:reader.yaml"]


def run_action(args, check=False, diff=False):
    """Run the action with ``args`` as a task would; the connection is a mock that fails when used."""
    task = Task()
    task.action = "ailab.cluster.kubernetes_export"
    task.args = args
    task.check_mode = check
    task.diff = diff
    connection = MagicMock(name="connection")
    connection._shell.tmpdir = None
    action = ActionModule(task=task, connection=connection, play_context=PlayContext(), loader=DataLoader(),
                          templar=Templar(loader=DataLoader()), shared_loader_obj=None)
    result = action.run(task_vars={})
    # The files are written on the controller: the host's connection is never used.
    assert connection.exec_command.call_count == 0 and connection.put_file.call_count == 0
    return result


def old_rendering(obj):
    return Templar(loader=DataLoader(), variables={"item": obj}).template(trust_as_template(OLD_TEMPLATE))


def files_under(directory):
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def exported(tmp_path):
    out = tmp_path / "export"
    result = run_action({"export_dir": str(out), "objects": OBJECTS})
    assert not result.get("failed"), result
    return out, result


def test_each_object_is_written_byte_for_byte_as_the_copy_loop_wrote_it(exported):
    out, result = exported
    assert result["changed"] is True
    assert files_under(out) == sorted(PATHS)
    for obj, rel in zip(OBJECTS, PATHS):
        assert (out / rel).read_bytes() == old_rendering(obj).encode(), rel
        assert render_object(obj) == old_rendering(obj)
    assert result["files"] == [str(out / p) for p in PATHS]
    assert result["changed_files"] == result["files"]


def test_modes_are_0644_0600_for_secrets_and_0755_for_directories(exported):
    out, result = exported
    assert {p: oct(mode(out / p)) for p in PATHS} == {
        p: ("0o600" if "secret-" in p else "0o644") for p in PATHS}
    for directory in ("_cluster", "nlp", "jupyterhub"):
        assert mode(out / directory) == 0o755
    # The export directory itself was missing: created first, 0755 like its subdirectories.
    assert result["changed_directories"] == [str(out / d) for d in ("", "_cluster", "nlp", "jupyterhub")]


def test_a_second_run_changes_nothing_and_writes_nothing(exported):
    out, _result = exported
    before = {p: (out / p).stat().st_ino for p in PATHS}
    again = run_action({"export_dir": str(out), "objects": OBJECTS})
    assert again["changed"] is False
    assert again["changed_files"] == [] and again["changed_directories"] == []
    assert {p: (out / p).stat().st_ino for p in PATHS} == before


def test_a_mode_change_alone_is_repaired_without_rewriting(exported):
    out, _result = exported
    target = out / "jupyterhub/secret-hub-db.yaml"
    target.chmod(0o644)
    (out / "nlp").chmod(0o700)
    inode = target.stat().st_ino
    again = run_action({"export_dir": str(out), "objects": OBJECTS}, diff=True)
    assert again["changed"] is True
    assert again["changed_files"] == [str(target)]
    assert again["changed_directories"] == [str(out / "nlp")]
    assert mode(target) == 0o600 and target.stat().st_ino == inode
    assert mode(out / "nlp") == 0o755
    assert {"before": {"path": str(target), "mode": "0644"}, "after": {"path": str(target), "mode": "0600"}} in again["diff"]


def test_changed_content_is_rewritten_and_only_that_file_reported(exported):
    out, _result = exported
    changed = dict(CONFIG_MAP, data={"alpha": "1"})
    again = run_action({"export_dir": str(out), "objects": [NAMESPACE, changed, SECRET, CLUSTER_ROLE]})
    assert again["changed_files"] == [str(out / "nlp/configmap-settings.yaml")]
    assert (out / "nlp/configmap-settings.yaml").read_text() == old_rendering(changed)


def test_check_mode_writes_nothing_and_reports_the_changes(tmp_path):
    out = tmp_path / "export"
    result = run_action({"export_dir": str(out), "objects": OBJECTS}, check=True)
    assert result["changed"] is True
    assert result["changed_files"] == [str(out / p) for p in PATHS]
    assert not out.exists()


def test_check_mode_on_an_up_to_date_export_reports_nothing(exported):
    out, _result = exported
    (out / "nlp/configmap-settings.yaml").chmod(0o600)
    result = run_action({"export_dir": str(out), "objects": OBJECTS}, check=True)
    assert result["changed_files"] == [str(out / "nlp/configmap-settings.yaml")]
    assert mode(out / "nlp/configmap-settings.yaml") == 0o600  # check mode repaired nothing
    (out / "nlp/configmap-settings.yaml").chmod(0o644)
    assert run_action({"export_dir": str(out), "objects": OBJECTS}, check=True)["changed"] is False


def test_diff_mode_shows_content_but_never_a_secret(tmp_path):
    out = tmp_path / "export"
    result = run_action({"export_dir": str(out), "objects": OBJECTS}, diff=True)
    by_header = {d["after_header"]: d for d in result["diff"] if "after_header" in d}
    config_map = by_header[str(out / "nlp/configmap-settings.yaml")]
    assert config_map["before"] == "" and config_map["after"] == old_rendering(CONFIG_MAP)
    secret = by_header[str(out / "jupyterhub/secret-hub-db.yaml")]
    assert secret["after"] == "(secret content hidden)\n"
    assert SECRET_VALUE not in json.dumps(result)
    # A changed Secret: the diff says so, still without either content.
    changed = dict(SECRET, stringData={"password": SECRET_VALUE + "-2"})
    again = run_action({"export_dir": str(out), "objects": [changed]}, diff=True)
    assert [d["before"] for d in again["diff"]] == ["(secret content hidden: previous version)\n"]
    assert [d["after"] for d in again["diff"]] == ["(secret content hidden)\n"]
    assert SECRET_VALUE not in json.dumps(again)


def test_no_diff_is_returned_without_diff_mode(exported):
    _out, result = exported
    assert "diff" not in result
    assert SECRET_VALUE not in json.dumps(result)


def test_suffix_and_cluster_dir_name_the_files(tmp_path):
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "k8s-1", "labels": {"a": "b"}}}
    result = run_action({"export_dir": str(tmp_path), "objects": [node], "suffix": ".gpu-operator",
                         "cluster_dir": "_cluster"})
    assert result["files"] == [str(tmp_path / "_cluster/node-k8s-1.gpu-operator.yaml")]


def test_rendered_files_secret_values_and_releases(tmp_path):
    values = f"---\npassword: {SECRET_VALUE}\n"
    releases = "---\nreleases: []\n"
    files = [{"path": "monitoring/helm-kps-values.yaml", "content": values, "secret": True},
             {"path": "releases.yml", "content": releases, "mode": "0644"}]
    tmp_path.chmod(0o700)
    result = run_action({"export_dir": str(tmp_path), "files": files}, diff=True)
    assert result["changed"] is True
    # The export directory keeps its own mode; the namespace directory below it is created 0755.
    assert mode(tmp_path) == 0o700 and mode(tmp_path / "monitoring") == 0o755
    assert result["changed_directories"] == [str(tmp_path / "monitoring")]
    assert (tmp_path / "monitoring/helm-kps-values.yaml").read_text() == values
    assert mode(tmp_path / "monitoring/helm-kps-values.yaml") == 0o600
    assert (tmp_path / "releases.yml").read_text() == releases and mode(tmp_path / "releases.yml") == 0o644
    assert SECRET_VALUE not in json.dumps(result)
    assert run_action({"export_dir": str(tmp_path), "files": files})["changed"] is False


@pytest.mark.parametrize(("args", "message"), [
    ({"export_dir": "relative/dir", "objects": OBJECTS}, "must be an absolute path"),
    ({"export_dir": "", "objects": OBJECTS}, "must be an absolute path"),
    ({"objects": OBJECTS}, "must be an absolute path"),
    ({"export_dir": "/EXPORT", "objects": OBJECTS + [{"apiVersion": "v1", "metadata": {"name": "x"}}]},
     "objects[4] (x): each object needs kind and metadata.name"),
    ({"export_dir": "/EXPORT", "objects": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "a"},
                                            "stringData": {"p": SECRET_VALUE}}]},
     "objects[0] (Secret/a): each object needs kind and metadata.name"),
    ({"export_dir": "/EXPORT", "objects": [{"kind": "ConfigMap", "metadata": {"name": "../../etc/passwd"}}]},
     "metadata.name must be a non-empty string without '/'"),
    ({"export_dir": "/EXPORT", "objects": [{"kind": "ConfigMap", "metadata": {"name": "a", "namespace": ".."}}]},
     "metadata.namespace must be a non-empty string without '/'"),
    ({"export_dir": "/EXPORT", "objects": ["not an object"]}, "objects[0] (a str, not a mapping)"),
    ({"export_dir": "/EXPORT", "objects": {"kind": "ConfigMap"}}, "objects must be a list"),
    ({"export_dir": "/EXPORT", "objects": OBJECTS, "suffix": "gpu"}, "suffix must be empty or a dot"),
    ({"export_dir": "/EXPORT", "files": [{"path": "../x.yaml", "content": "a"}]}, "each part of path"),
    ({"export_dir": "/EXPORT", "files": [{"path": "/abs.yaml", "content": "a"}]}, "each part of path"),
    ({"export_dir": "/EXPORT", "files": [{"path": "x.yaml", "content": {"a": 1}}]}, "content must be a string"),
    ({"export_dir": "/EXPORT", "files": [{"path": "x.yaml", "content": "a", "mode": "rw"}]}, "mode must be an octal"),
    ({"export_dir": "/EXPORT", "files": [{"path": "x.yaml", "content": "a", "owner": "root"}]}, "unknown keys owner"),
])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "export"
    args = {k: (str(out) if v == "/EXPORT" else v) for k, v in args.items()}
    result = run_action(args)
    assert result["failed"] is True and result["changed"] is False
    assert message in result["msg"]
    assert SECRET_VALUE not in json.dumps(result)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_unknown_option_is_refused(tmp_path):
    with pytest.raises(Exception, match="Invalid options.*dest"):
        run_action({"export_dir": str(tmp_path), "dest": "x"})


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_file(exported, monkeypatch):
    out, _result = exported
    target = out / "nlp/configmap-settings.yaml"
    old = target.read_bytes()

    def killed(_src, _dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(kubernetes_export.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run_action({"export_dir": str(out), "objects": [dict(CONFIG_MAP, data={"new": "content"})]})
    assert target.read_bytes() == old
    assert [p.name for p in (out / "nlp").iterdir()] == ["configmap-settings.yaml"]


def test_an_unwritable_directory_fails_with_the_reason(tmp_path):
    blocker = tmp_path / "export"
    blocker.write_text("a file where the export directory should be")
    result = run_action({"export_dir": str(blocker / "sub"), "objects": [NAMESPACE]})
    assert result["failed"] is True
    assert "Cannot write the export" in result["msg"]
