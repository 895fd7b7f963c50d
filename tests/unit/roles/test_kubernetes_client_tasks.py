# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every task of the collection's roles that uses the Kubernetes Python client runs on the pinned client.

A task that calls kubernetes.core.* or a module of this collection that imports the client (kubeadm_token) must
set ``ansible_python_interpreter: "{{ lookup('ailab.cluster.kubernetes_python_interpreter') }}"`` on itself or on
an enclosing block (kubernetes_apply's own tasks: its kubernetes_apply_python_interpreter, which defaults to that
lookup): without it the task runs on the node's system Python and the distro's python3-kubernetes (Ubuntu 22.04:
12.0.1, too old for server-side apply; Debian 12: 22.6.0, a version warning on every task). The default lives in
one place, the lookup (docs/kubernetes_python_client.md).
"""

import re
from pathlib import Path

import pytest
import yaml

from unit.roles.playbook_runner import ROOT

WIRED = "{{ lookup('ailab.cluster.kubernetes_python_interpreter') }}"
# kubernetes_apply's tasks honour its public variable (a caller may set it), whose default is the lookup.
WIRED_IN = {"kubernetes_apply": "{{ kubernetes_apply_python_interpreter }}"}
DEFAULT = "/opt/ailab/python/bin/python3"
LOOKUP = "plugins/lookup/kubernetes_python_interpreter.py"
# Task files another change is editing; their tasks get the line there (listed, not failed, until then).
_CLIENT_IMPORT = re.compile(r"^\s*(from|import)\s+(kubernetes\b|ansible_collections\.kubernetes\.core\b)", re.M)


def client_modules(root=ROOT):
    """FQCNs of this collection's modules that import the Kubernetes client (directly or through kubernetes.core)."""
    return {f"ailab.cluster.{path.stem}" for path in sorted((Path(root) / "plugins" / "modules").glob("*.py"))
            if _CLIENT_IMPORT.search(path.read_text())}


def _tasks(tasks, inherited=None):
    """(task, interpreter of the task or its blocks) for every task in ``tasks``, blocks included."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        interpreter = ((task.get("vars") or {}).get("ansible_python_interpreter", inherited)
                       if isinstance(task.get("vars"), dict) else inherited)
        yield task, interpreter
        for section in ("block", "rescue", "always"):
            yield from _tasks(task.get(section), interpreter)


def task_files(root=ROOT):
    root = Path(root)
    return sorted(p for pattern in ("roles/*/tasks/**/*.yml", "roles/*/handlers/**/*.yml") for p in root.glob(pattern))


def unwired(root=ROOT, modules=None):
    """``<path>: <task name>`` of every client task without the pinned client's interpreter."""
    root = Path(root)
    prefixes = ("kubernetes.core.", *(modules if modules is not None else client_modules(root)))
    found = []
    for path in task_files(root):
        wired = WIRED_IN.get(path.relative_to(root).parts[1], WIRED)
        for task, interpreter in _tasks(yaml.safe_load(path.read_text())):
            if any(str(key).startswith(prefixes) for key in task) and interpreter != wired:
                found.append(f"{path.relative_to(root).as_posix()}: {task.get('name')}")
    return found


def test_the_client_modules_are_known():
    """kubeadm_token imports the client; kubernetes_export runs on the controller and does not."""
    modules = client_modules()
    assert "ailab.cluster.kubeadm_token" in modules
    assert "ailab.cluster.kubernetes_export" not in modules


def test_every_client_task_runs_on_the_pinned_client():
    assert unwired() == []


# The default as a value: `key: <path>`, a Jinja default('<path>') or a Python constant, not in a comment or a message.
_DEFAULT_VALUE = re.compile(r"^(?!\s*#).*(:\s*[\"']?%s[\"']?\s*$|default\(\s*[\"']%s|^DEFAULT = [\"']%s)"
                            % ((re.escape(DEFAULT),) * 3), re.M)


def test_the_default_is_written_once():
    """Roles' defaults, vars and tasks and the plugins never name the default interpreter: the lookup does, once
    (the argument specs and docs describe it)."""
    paths = [*ROOT.glob("roles/*/*/**/*.yml"), *ROOT.glob("plugins/**/*.py")]
    holders = {p.relative_to(ROOT).as_posix(): len(_DEFAULT_VALUE.findall(p.read_text()))
               for p in sorted(paths) if "/meta/" not in p.as_posix()}
    assert {path: count for path, count in holders.items() if count} == {LOOKUP: 1}
    # kubernetes_apply's variable defaults to the lookup itself.
    defaults = yaml.safe_load((ROOT / "roles" / "kubernetes_apply" / "defaults" / "main.yml").read_text())
    assert defaults["kubernetes_apply_python_interpreter"] == WIRED


# --- the scan itself finds what it must ---------------------------------------------------------------------------

SAMPLE = [
    {"name": "Unwired read", "kubernetes.core.k8s_info": {"kind": "Node"}},
    {"name": "Wired read", "kubernetes.core.k8s_info": {"kind": "Node"}, "vars": {"ansible_python_interpreter": WIRED}},
    {"name": "System Python", "kubernetes.core.k8s": {"state": "absent"},
     "vars": {"ansible_python_interpreter": "/usr/bin/python3"}},
    {"name": "Wired block", "vars": {"ansible_python_interpreter": WIRED}, "block": [
        {"name": "Drain in a wired block", "kubernetes.core.k8s_drain": {"name": "n1"}}]},
    {"name": "Plain block", "block": [
        {"name": "Token in a plain block", "ailab.cluster.kubeadm_token": {}}],
     "rescue": [{"name": "Events in a rescue", "kubernetes.core.k8s_info": {"kind": "Event"}}]},
    {"name": "Not a client task", "ansible.builtin.command": {"argv": ["kubeadm", "version"]}},
]


@pytest.fixture
def sample_role(tmp_path):
    for role, tasks in (("sample", SAMPLE), ("kubernetes_apply", [
            {"name": "Apply", "kubernetes.core.k8s": {}, "vars": {"ansible_python_interpreter": WIRED_IN["kubernetes_apply"]}},
            {"name": "Apply with the lookup", "kubernetes.core.k8s": {}, "vars": {"ansible_python_interpreter": WIRED}}])):
        directory = tmp_path / "roles" / role / "tasks"
        directory.mkdir(parents=True)
        (directory / "main.yml").write_text(yaml.safe_dump(tasks))
    return tmp_path


def test_scan_finds_unwired_tasks(sample_role):
    assert unwired(sample_role, modules=("ailab.cluster.kubeadm_token",)) == [
        "roles/kubernetes_apply/tasks/main.yml: Apply with the lookup",
        "roles/sample/tasks/main.yml: Unwired read",
        "roles/sample/tasks/main.yml: System Python",
        "roles/sample/tasks/main.yml: Token in a plain block",
        "roles/sample/tasks/main.yml: Events in a rescue",
    ]
