"""Secrets never appear in the output, at -vvv and with --diff, nor in the exported files meant for review.

Every secret the collection handles is given a unique marker value: the Proxmox API token secret and
the root password used to join nodes (Proxmox layer against the simulator), and the Weave Net
password, the JupyterHub proxy token, cookie secret and OIDC client secret, the Grafana admin
password, the smoke tests' MySQL password and hub API token (every Kubernetes-facing layer of the
example lab, exported). The runs capture stdout, stderr and the Ansible log file; none may contain a
marker. Exported Secrets and Helm values files (mode 0600, for a GitOps tool to encrypt) may hold
them; every other exported file may not.

kubeadm cannot run here, so its secrets are checked in two ways: the kubeadm_token module runs at -vvv
with --diff against the Kubernetes API double (a known token, a fresh token registered as the kubeadm
roles register it, its deletion), next to the roles' own "show what kubeadm reported" expressions fed
with a kubeadm output that holds a token and a certificate key; and a static check that every task of
roles/kubeadm_* that handles a token, a certificate key or a join command is no_log (or shows only
text with both replaced).
"""

import base64
import hashlib
import json
import re
import subprocess
import sys

import pytest
import yaml

from pvesim.testing import SimulatorProcess
from unit.plugins.modules.k8s_api_double import KubernetesApiDouble
from unit.roles.playbook_runner import ROOT, UNREACHABLE, run_playbook
from unit.security.conftest import record_secret
from unit.security.test_bad_inputs import PVE_BASE, pve_inventory

EXAMPLE_LAB = ROOT / "inventories" / "example-lab"


def marker(name, length=64):
    """A unique value per secret, hex so that every format check accepts it."""
    return hashlib.sha256(f"ailab-secret-{name}".encode()).hexdigest()[:length]


PLATFORM_SECRETS = {
    "cni_weave_password": marker("weave", 40),
    "jupyterhub_proxy_secret_token": marker("proxy"),
    "jupyterhub_cookie_secret": marker("cookie"),
    "monitoring_grafana_admin_password": marker("grafana", 32),
    "validation_mysql_password": marker("mysql", 32),
    "validation_jupyterhub_api_token": marker("hubtoken", 32),
}


def ansible_playbook(tmp_path, inventory, playbook, *args):
    """ansible-playbook -vvv --diff with the default (text) output and a log file: (rc, stdout + stderr + log)."""
    log = tmp_path / "ansible.log"
    run = run_playbook(tmp_path, playbook, inventory, "-vvv", "--diff", *args, callback="ansible.builtin.default",
                       env={"ANSIBLE_LOG_PATH": str(log), "ANSIBLE_NOCOLOR": "1"})
    return run.rc, run.stdout + run.stderr + (log.read_text() if log.exists() else "")


def leaks(text, secrets):
    return sorted(name for name, value in secrets.items() if value in text)


@pytest.fixture(scope="module")
def platform_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secrets-platform")
    extra = tmp / "secrets.yml"
    # The nodes' addresses become a closed loopback port (localhost keeps its local connection).
    extra.write_text(yaml.safe_dump(dict(PLATFORM_SECRETS, cni_plugin="weave", ailab_kubernetes_export_dir=str(tmp / "export"),
                                         ansible_host=UNREACHABLE["ansible_host"], ansible_port=UNREACHABLE["ansible_port"])))
    playbook = tmp / "export-and-smoke-tests.yml"
    playbook.write_text(yaml.safe_dump([
        {"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "export.yml")},
        {"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "validate.yml")}]))
    rc, text = ansible_playbook(tmp, EXAMPLE_LAB, playbook, "-e", f"@{extra}")
    return tmp / "export", rc, text


def test_platform_layers_print_no_secret(platform_run):
    _export, rc, text = platform_run
    assert rc == 0, text[-3000:]
    found = leaks(text, PLATFORM_SECRETS)
    for name in PLATFORM_SECRETS:
        record_secret(f"output:{name}", leaked=name in found)
    assert found == []


def test_reviewable_export_files_hold_no_secret(platform_run):
    export, rc, _text = platform_run
    assert rc == 0
    files = [p for p in export.rglob("*") if p.is_file()]
    secret_files = [p for p in files if p.stat().st_mode & 0o077 == 0]
    assert secret_files, "no 0600 file: the secrets were not exported at all"
    found = {}
    for path in files:
        if path in secret_files:
            continue
        hits = leaks(path.read_text(errors="replace"), PLATFORM_SECRETS)
        if hits:
            found[str(path.relative_to(export))] = hits
    for name in PLATFORM_SECRETS:
        record_secret(f"export:{name}", leaked=any(name in hits for hits in found.values()))
    assert found == {}
    # The secrets did reach the cluster-side files (the markers were really used).
    held = "".join(p.read_text(errors="replace") for p in secret_files)
    assert sorted(n for n in PLATFORM_SECRETS if PLATFORM_SECRETS[n] in held) == sorted(
        ["cni_weave_password", "jupyterhub_proxy_secret_token", "jupyterhub_cookie_secret",
         "monitoring_grafana_admin_password", "validation_mysql_password"])


def test_proxmox_layer_prints_no_secret(tmp_path):
    password = marker("root-password", 24)
    with SimulatorProcess(pve=9, state_dir=tmp_path / "pvesim") as sim:
        secrets = {"api_token_secret": sim.token_secret, "proxmox_cluster_join_password": password}
        inventory = pve_inventory(tmp_path, sim, dict(PVE_BASE, proxmox_cluster_join_password=password))
        playbook = tmp_path / "site.yml"
        playbook.write_text(yaml.safe_dump([
            {"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "check.yml")},
            {"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "proxmox.yml")}]))
        rc, text = ansible_playbook(tmp_path, inventory, playbook)
        assert sim.writes(), "the layer wrote nothing: the secrets were not used"
    assert rc == 0, text[-3000:]
    found = leaks(text, secrets)
    for name in secrets:
        record_secret(f"proxmox:{name}", leaked=name in found)
    assert found == []


# ----------------------------------------------------------------------------------------- kubeadm
KUBEADM_TOKEN = f"{marker('token-id', 6)}.{marker('token-secret', 16)}"
CERTIFICATE_KEY = marker("certificate-key", 64)
CA_HASH = "sha256:" + marker("ca-hash", 64)  # public: kubeadm prints it, nodes pin it
KUBEADM_OUTPUT = f"""Your Kubernetes control-plane has initialized successfully!
[upload-certs] Using certificate key:
{CERTIFICATE_KEY}
You can now join any number of control-plane nodes running the following command on each as root:
  kubeadm join k8s-api.lab:6443 --token {KUBEADM_TOKEN} \\
    --discovery-token-ca-cert-hash {CA_HASH} \\
    --control-plane --certificate-key {CERTIFICATE_KEY}
Then you can join any number of worker nodes by running the following on each as root:
kubeadm join k8s-api.lab:6443 --token {KUBEADM_TOKEN} --discovery-token-ca-cert-hash {CA_HASH}"""
# A worker's join (no certificate key there) that failed and repeats its discovery settings.
WORKER_OUTPUT = f"""[preflight] Running pre-flight checks
error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature
in the cluster-info ConfigMap for token ID "{KUBEADM_TOKEN.split('.', maxsplit=1)[0]}" (token {KUBEADM_TOKEN})"""


def role_task(role, tasks_file, name_start):
    """The task of roles/<role>/tasks/<tasks_file> whose name starts with ``name_start`` (blocks searched)."""
    def walk(tasks):
        for task in tasks or []:
            if str(task.get("name", "")).startswith(name_start):
                return task
            for key in ("block", "rescue", "always"):
                found = walk(task.get(key))
                if found:
                    return found
        return None
    found = walk(yaml.safe_load((ROOT / "roles" / role / "tasks" / tasks_file).read_text()))
    assert found, f"{role}/tasks/{tasks_file}: no task named {name_start}..."
    return found


def role_vars(role):
    return yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text())


@pytest.fixture(scope="module")
def kubeadm_run(tmp_path_factory):
    """kubeadm_token against the API double at -vvv --diff, and the roles' display tasks on kubeadm output."""
    tmp = tmp_path_factory.mktemp("secrets-kubeadm")
    key, crt = tmp / "ca.key", tmp / "ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-subj", "/CN=kubernetes", "-days", "1"], check=True, capture_output=True)
    shows = []
    for role, tasks_file, name, register, output in (
            ("kubeadm_control_plane", "init.yml", "Show what kubeadm init reported", "__kubeadm_control_plane_init",
             KUBEADM_OUTPUT),
            ("kubeadm_control_plane", "join.yml", "Show what kubeadm join reported", "__kubeadm_control_plane_join",
             KUBEADM_OUTPUT),
            ("kubeadm_worker", "join.yml", "Show what kubeadm join reported", "__kubeadm_worker_join", WORKER_OUTPUT)):
        task = role_task(role, tasks_file, name)
        patterns = {k: v for k, v in role_vars(role).items() if k.endswith("_pattern")}
        shows.append({"name": f"{role}: {task['name']}", "ansible.builtin.debug": task["ansible.builtin.debug"],
                      "vars": dict(patterns, **{register: {"rc": 1, "stdout": "", "stderr": output}})})
    with KubernetesApiDouble() as api:
        module = {"kubeconfig": api.write_kubeconfig(tmp / "kubeconfig"), "ca_cert_path": str(crt)}
        playbook = tmp / "kubeadm.yml"
        endpoint = "k8s-api.lab:6443"
        tasks = [
            {"name": "A known token (the module's token option is no_log)",
             "ailab.cluster.kubeadm_token": dict(module, token=KUBEADM_TOKEN, api_server_endpoint=endpoint,
                                                 description="known"),
             "register": "known"},
            {"name": "Its result", "ansible.builtin.debug": {"var": "known"}},
            {"name": "The same token again (idempotent, diff)",
             "ailab.cluster.kubeadm_token": dict(module, token=KUBEADM_TOKEN, description="known")},
            {"name": "A fresh join token, registered as the kubeadm roles do",
             "ailab.cluster.kubeadm_token": dict(module, ttl="30m", api_server_endpoint=endpoint,
                                                 description="ailab.cluster join of w1"),
             "register": "fresh", "no_log": True},
            {"name": "What the roles print of it", "ansible.builtin.debug": {"msg": "token id {{ fresh.token_id }}"}},
            *shows,
            {"name": "Delete the fresh token, as the kubeadm roles do",
             "ailab.cluster.kubeadm_token": dict(kubeconfig=module["kubeconfig"], state="absent",
                                                 token_id="{{ fresh.token_id }}")},
        ]
        playbook.write_text(yaml.safe_dump([{"name": "kubeadm secrets", "hosts": "localhost", "gather_facts": False,
                                             "tasks": tasks}]))
        inventory = tmp / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
        rc, text = ansible_playbook(tmp, inventory, playbook)
        created = [r for r in api.requests if r["method"] == "POST"]
        secrets = {"token_secret:known": KUBEADM_TOKEN.split(".")[1], "certificate_key": CERTIFICATE_KEY}
        for index, request in enumerate(created):
            body = request["body"] if isinstance(request["body"], dict) else json.loads(request["body"] or "{}")
            data = body.get("data", {})
            if "token-secret" in data:
                secrets[f"token_secret:created-{index}"] = base64.b64decode(data["token-secret"]).decode()
    return rc, text, secrets


def test_kubeadm_tokens_and_certificate_keys_are_never_printed(kubeadm_run):
    rc, text, secrets = kubeadm_run
    assert rc == 0, text[-3000:]
    assert len(secrets) == 4, f"expected the known and the fresh token created, got {sorted(secrets)}"
    assert "token id " in text and "<certificate-key>" in text and "<token>" in text, "the display tasks did not run"
    assert CA_HASH in text, "the public CA hash is shown (only the secrets are replaced)"
    found = leaks(text, secrets)
    for name in secrets:
        record_secret(f"kubeadm:{name}", leaked=name in found)
    assert found == []


# Tasks that run these kubeadm commands print a token or a certificate key in their output.
SECRET_COMMANDS = re.compile(r"kubeadm\W+(init|join|token|certs\W+certificate-key|init\W+phase\W+upload-certs)\b")
COMMAND_MODULES = ("ansible.builtin.command", "ansible.builtin.shell", "ansible.builtin.raw", "ansible.builtin.script")
# Words of a task body that carry a token, a certificate key or a join command (ids, patterns and
# the names of the display tasks' inputs taken out first).
SECRET_WORDS = re.compile(r"token|certificate[_-]key|join[_-]command|upload-certs", re.I)
NOT_SECRET = re.compile(r"ailab\.cluster\.kubeadm_token|[\w.]*token_id|_token_pattern|_key_pattern|ca_cert_hash")


def secret_handling(task):
    """Why the task handles a kubeadm secret, or '' when it does not."""
    # A register name says where a result goes, not what it holds (what it holds is judged by the module).
    body = {k: v for k, v in task.items()
            if k not in ("name", "no_log", "tags", "when", "register", "block", "rescue", "always")}
    text = json.dumps(body)
    token_module = task.get("ailab.cluster.kubeadm_token")
    if isinstance(token_module, dict):
        if token_module.get("state", "present") != "absent":
            return "creates or returns a bootstrap token"
        if "token" not in token_module:
            return ""  # deleting a token by its id carries no secret
    command = json.dumps([task.get(m) for m in COMMAND_MODULES if m in task])
    if SECRET_COMMANDS.search(command):
        return "runs " + SECRET_COMMANDS.search(command).group(0)
    words = sorted({m.group(0).lower() for m in SECRET_WORDS.finditer(NOT_SECRET.sub("", text))})
    return "mentions " + ", ".join(words) if words else ""


def shows_only_replaced(task):
    """A debug task that prints kubeadm output through the role's token (and certificate key) patterns."""
    msg = json.dumps((task.get("ansible.builtin.debug") or {}).get("msg", ""))
    if "regex_replace" not in msg or not re.search(r"_token_pattern", msg):
        return False
    return "certificate" not in json.dumps(task).lower() or "_key_pattern" in msg


def unsafe_secret_tasks(tasks, where, inherited=False):
    """(where, task name, why) for each task that handles a kubeadm secret without no_log."""
    found = []
    for task in tasks or []:
        no_log = task.get("no_log", inherited)
        for key in ("block", "rescue", "always"):
            found += unsafe_secret_tasks(task.get(key), where, no_log)
        if any(key in task for key in ("block", "rescue", "always")):
            continue
        why = secret_handling(task)
        if why and no_log is not True and not shows_only_replaced(task):
            found.append((where, task.get("name"), why))
    return found


KUBEADM_TASK_FILES = sorted((ROOT / "roles").glob("kubeadm_*/tasks/*.yml"))


def test_every_kubeadm_task_that_handles_a_secret_is_no_log():
    handling, unsafe = 0, []
    for path in KUBEADM_TASK_FILES:
        tasks = yaml.safe_load(path.read_text()) or []
        where = str(path.relative_to(ROOT))

        def count(items, where=where):
            total = 0
            for task in items or []:
                total += sum(count(task.get(k)) for k in ("block", "rescue", "always"))
                total += bool(secret_handling(task)) and not any(k in task for k in ("block", "rescue", "always"))
            return total
        handling += count(tasks)
        unsafe += unsafe_secret_tasks(tasks, where)
    record_secret("kubeadm:tasks-no_log", leaked=bool(unsafe))
    assert handling >= 8, f"only {handling} tasks found handling kubeadm secrets: the check no longer sees them"
    assert unsafe == []


@pytest.mark.parametrize("task,unsafe", [
    ({"name": "t", "ailab.cluster.kubeadm_token": {"ttl": "1h"}, "register": "x"}, True),
    ({"name": "t", "ailab.cluster.kubeadm_token": {"ttl": "1h"}, "no_log": True}, False),
    ({"name": "t", "ailab.cluster.kubeadm_token": {"state": "absent", "token_id": "{{ x.token_id }}"},
      "register": "x_token_deleted"}, False),
    ({"name": "t", "ailab.cluster.kubeadm_token": {"state": "absent", "token": "{{ x.token }}"}}, True),
    ({"name": "t", "ansible.builtin.command": {"argv": ["kubeadm", "certs", "certificate-key"]}}, True),
    ({"name": "t", "ansible.builtin.command": "kubeadm init --config /etc/kubernetes/kubeadm.yaml"}, True),
    ({"name": "t", "ansible.builtin.command": {"argv": ["kubeadm", "version", "-o", "short"]}}, False),
    ({"name": "t", "ansible.builtin.template": {"src": "join.yaml.j2"}, "vars": {"_key": "{{ x.certificate_key }}"}}, True),
    ({"name": "t", "ansible.builtin.debug": {"msg": "{{ x.stdout }}"}, "vars": {"_c": "{{ join_command }}"}}, True),
    ({"name": "t", "ansible.builtin.debug": {"msg": "{{ x.stdout | regex_replace(_r_token_pattern, '<token>') }}"}}, False),
    ({"name": "t", "ansible.builtin.debug": {"msg": "{{ x.stdout | regex_replace(_r_token_pattern, '<token>') }}"},
      "vars": {"note": "certificate-key"}}, True),
    ({"name": "b", "no_log": True, "block": [{"name": "t", "ansible.builtin.command": "kubeadm token create"}]}, False),
    ({"name": "b", "block": [{"name": "t", "ansible.builtin.command": "kubeadm token create"}]}, True),
])
def test_the_no_log_check_bites(task, unsafe):
    """The static check refuses a task that handles a secret without no_log (it can fail)."""
    assert bool(unsafe_secret_tasks([task], "x.yml")) is unsafe
