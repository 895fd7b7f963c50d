"""Helpers to run the collection's real roles and playbooks with ansible-playbook on local-connection hosts.

The Kubernetes layer cannot reach a cluster or kubeadm here, so these tests run the roles' own
tasks where they need neither: the preflight and configure concerns of kubeadm_control_plane
(tags), and every Kubernetes-facing role in export mode. ``ansible_playbook`` returns the parsed
result of the JSON stdout callback, one entry per play/task/host.
"""

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = Path(os.environ.get("AILAB_REFERENCE", ROOT.parent / "shared" / "reference"))
PYTHON = sys.executable
# The Kubernetes minor the collection pins (kubernetes_packages_version 1.34.x).
K8S_MINOR = "1.34"
# The stdout callback whose output PlaybookRun parses (one entry per play/task/host).
JSON_CALLBACK = "ansible.builtin.json"
# Host variables of a host that no connection can reach: ssh to a closed loopback port. An export-mode
# test gives them to its hosts, so a task that touched a node would end unreachable (never traffic
# to a lab network).
UNREACHABLE = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
               "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}


def reference(relpath):
    """Path of an upstream reference file; skips the test when the reference data is not there."""
    path = REFERENCE / relpath
    if not path.exists():
        pytest.skip(f"upstream reference data {path} is not available (set AILAB_REFERENCE)")
    return path


class PlaybookRun:
    """Result of one ansible-playbook run with the JSON callback."""

    def __init__(self, rc, stdout, stderr, parse=True):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        if not parse:  # another stdout callback (text): only rc, stdout and stderr
            self.data = None
            return
        start = stdout.find("{")
        if start < 0:
            raise AssertionError(f"ansible-playbook printed no JSON (rc {rc}):\n{stdout}\n{stderr}")
        self.data, _end = json.JSONDecoder().raw_decode(stdout[start:])

    def save(self, path):
        """Written for the other pytest-xdist workers; ``data`` too, with what the builder added to it."""
        Path(path).write_text(json.dumps({"rc": self.rc, "stdout": self.stdout, "stderr": self.stderr,
                                          "data": self.data}))

    @classmethod
    def load(cls, path):
        saved = json.loads(Path(path).read_text())
        run = cls(saved["rc"], saved["stdout"], saved["stderr"])
        run.data = saved.get("data", run.data)
        return run

    @property
    def stats(self):
        return self.data["stats"]

    def results(self, task_name, host):
        """Result dicts of every run of the task called ``task_name`` (suffix match) on ``host``."""
        found = []
        for play in self.data["plays"]:
            for task in play["tasks"]:
                if task["task"]["name"].endswith(task_name) and host in task["hosts"]:
                    found.append(task["hosts"][host])
        return found

    def skipped(self, task_name, host):
        """True when the task ran on ``host`` and was skipped each time: a task that was renamed, moved
        or never reached is not "skipped", so an assertion on it cannot pass by finding nothing."""
        found = self.results(task_name, host)
        return bool(found) and all(r.get("skipped") for r in found)

    def failure(self, host):
        """The message of the task that failed on ``host``, or None."""
        for play in self.data["plays"]:
            for task in play["tasks"]:
                result = task["hosts"].get(host)
                if result and result.get("failed") and not result.get("ignore_errors"):
                    return result.get("msg", "")
        return None


def run_playbook(tmp_path, plays, inventory, *args, check=False, env=None, stdin=None, callback=JSON_CALLBACK,
                 timeout=None):
    """Run ansible-playbook with the JSON callback. ``plays`` and ``inventory`` are Python data written under
    tmp_path, or paths (a Path) used as they are (a playbook of the collection, an inventory directory).
    ``env`` adds environment variables; ``stdin=subprocess.DEVNULL`` runs it without a terminal, as AWX does.
    ``callback`` names another stdout callback (the run's ``data`` is then None: read its stdout, as a lab
    admin reads it); ``timeout`` (seconds) stops a run that hangs (subprocess.TimeoutExpired)."""
    playbook, inv = plays, inventory
    if not isinstance(plays, Path):
        playbook = tmp_path / "playbook.yml"
        playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    if not isinstance(inventory, Path):
        inv = tmp_path / "inventory.yml"
        inv.write_text(yaml.safe_dump(inventory, sort_keys=False))
    environment = dict(os.environ,
                       ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                       ANSIBLE_STDOUT_CALLBACK=callback,
                       ANSIBLE_CALLBACKS_ENABLED="ansible.posix.timer",
                       ANSIBLE_FACT_CACHING="memory",
                       ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-tmp"))
    environment.update(env or {})
    cmd = [str(Path(PYTHON).parent / "ansible-playbook"), "-i", str(inv), str(playbook), *args]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=ROOT, env=environment, stdin=stdin, capture_output=True, text=True, check=False,
                          timeout=timeout)
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, parse=callback == JSON_CALLBACK)


def shared_run(tmp_path_factory, key, build):
    """``build(directory) -> PlaybookRun`` once per test session, shared by the pytest-xdist workers.

    Each ansible-playbook run takes seconds; the tests of a module spread over the workers would
    otherwise repeat the module's runs on each worker. Returns (directory, PlaybookRun).
    """
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run_id:  # a single process: nothing to share
        directory = tmp_path_factory.mktemp(key)
        return directory, build(directory)
    directory = tmp_path_factory.getbasetemp().parent / f"shared-{run_id}-{key}"
    with FileLock(f"{directory}.lock"):
        result = directory / ".playbook-run.json"
        if result.exists():
            return directory, PlaybookRun.load(result)
        directory.mkdir(parents=True, exist_ok=True)
        run = build(directory)
        run.save(result)
        return directory, run


# The last play of an export test: the lab hosts' connection settings (UNREACHABLE) really fail as soon
# as something connects, so "unreachable == 0" on the lab hosts means that nothing connected.
CANARY_PLAY = {"name": "Canary", "hosts": "canary_hosts", "gather_facts": False,
               "tasks": [{"name": "Connect to the canary", "ansible.builtin.ping": {}}]}


def platform_plays(name, playbook, again=False, again_root=None, between=()):
    """The plays of a platform role's export test: ``playbooks/<playbook>``; with ``again``, the plays of
    ``between`` and the same playbook once more (into ``<again_root>/<host>`` when given: play vars win
    over the inventory's export directory); last the canary play (group ``canary_hosts``)."""
    path = str(ROOT / "playbooks" / playbook)
    plays = [{"name": name, "ansible.builtin.import_playbook": path}]
    if again:
        plays.extend(between)
        second = {"name": f"{name} again", "ansible.builtin.import_playbook": path}
        if again_root is not None:
            second["vars"] = {"ailab_kubernetes_export_dir": str(again_root) + "/{{ inventory_hostname }}"}
        plays.append(second)
    plays.append(CANARY_PLAY)
    return plays


def local_inventory(groups, host_vars=None, group_vars=None):
    """An inventory of local-connection hosts: ``groups`` maps group name -> list of host names;
    every group is a child of k8s_cluster, as in the lab inventories."""
    host_vars = host_vars or {}
    group_vars = group_vars or {}
    children = {}
    for group, hosts in groups.items():
        children[group] = {"hosts": {h: _with_kubernetes_client(host_vars.get(h, {}), group_vars.get(group, {}))
                                     for h in hosts}}
        if group in group_vars:
            children[group]["vars"] = group_vars[group]
    return {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": PYTHON},
        "children": {"k8s_cluster": {"children": children}},
    }}


def _with_kubernetes_client(host, group):
    """A local-connection host runs the Kubernetes client's tasks (kubernetes_apply_python_interpreter) with the test
    Python, which has the client; a host that another connection reaches (unreachable, a container) keeps the
    collection's default, and a test's own setting wins."""
    key = "ailab_kubernetes_python_interpreter"
    local = host.get("ansible_connection", group.get("ansible_connection", "local")) == "local"
    if not local or key in host or key in group:
        return host
    return {**host, key: PYTHON}


def load_all(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]


def assert_same_files(first, second):
    """The two directories hold the same, non-empty set of files with the same bytes."""
    names = sorted(p.relative_to(first).as_posix() for p in Path(first).rglob("*") if p.is_file())
    assert names, f"{first} is empty"
    assert names == sorted(p.relative_to(second).as_posix() for p in Path(second).rglob("*") if p.is_file())
    _match, mismatch, errors = filecmp.cmpfiles(first, second, names, shallow=False)
    assert (mismatch, errors) == ([], [])


def export_objects(directory):
    """Every object exported under ``directory`` (one per file; Helm values files left out), keyed by
    (kind, namespace or "_cluster", name)."""
    found = {}
    for path in sorted(Path(directory).rglob("*.yaml")):
        if path.name.startswith("helm-"):
            continue
        [obj] = load_all(path)
        found[(obj["kind"], obj["metadata"].get("namespace", "_cluster"), obj["metadata"]["name"])] = obj
    return found


def of_kind(found, kind):
    """The objects of one kind of ``export_objects``, by name."""
    return {name: obj for (k, _ns, name), obj in found.items() if k == kind}


def assert_export_touches_no_node(run, labs, nodes=()):
    """Export mode on hosts that no connection reaches: each lab ran tasks and none connected (the canary
    with the same settings did not reach its host), and no node of ``nodes`` was in the run at all."""
    for lab in labs:
        stats = run.stats[lab]
        assert stats["unreachable"] == 0 and stats["failures"] == 0, run.failure(lab)
        assert stats["ok"] > 0
    assert run.stats["canary"]["unreachable"] == 1
    assert not set(nodes) & set(run.stats)


def assert_refused(run, host, parts, export_dir):
    """``host`` stopped the run with a message holding each of ``parts``, and ``export_dir`` was not written.
    Returns the message."""
    assert run.rc != 0
    message = run.failure(host)
    assert message, f"{host} did not fail"
    for part in parts:
        assert part in message, message
    assert not Path(export_dir).exists()
    return message


def assert_check_mode_writes_nothing(run, hosts, directory):
    """ansible-playbook --check on export-mode hosts: each ran tasks without failing and ``directory`` (their
    export root) was not created."""
    for host in hosts:
        stats = run.stats[host]
        assert stats["failures"] == 0 and stats["unreachable"] == 0, run.failure(host)
        assert stats["ok"] > 0
    assert not Path(directory).exists()


def assert_apply_check_changes_nothing(run, host, tasks):
    """ansible-playbook --check in apply mode before the cluster exists: ``host`` changed nothing and each
    of ``tasks`` (the ones that would talk to the cluster) ran and was skipped."""
    stats = run.stats[host]
    assert stats["failures"] == 0 and stats["unreachable"] == 0 and stats["changed"] == 0, run.failure(host)
    for task in tasks:
        assert run.skipped(task, host), (task, run.results(task, host))
