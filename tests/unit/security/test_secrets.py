"""Secrets never appear in the output, at -vvv and with --diff, nor in the exported files meant for review.

Every secret the collection handles is given a unique marker value: the Proxmox API token secret and
the root password used to join nodes (Proxmox layer against the simulator), and the Weave Net
password, the JupyterHub proxy token, cookie secret and OIDC client secret, the Grafana admin
password, the smoke tests' MySQL password and hub API token (every Kubernetes-facing layer of the
example lab, exported). The runs capture stdout, stderr and the Ansible log file; none may contain a
marker. Exported Secrets and Helm values files (mode 0600, for a GitOps tool to encrypt) may hold
them; every other exported file may not.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pvesim.testing import SimulatorProcess
from unit.roles.playbook_runner import ROOT, UNREACHABLE
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


def ansible_playbook(tmp_path, inventory, playbook, *args, env=None):
    log = tmp_path / "ansible.log"
    env = dict(os.environ, **(env or {}), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOG_PATH=str(log),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-tmp"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "--diff", "-i", str(inventory),
                           str(playbook), *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    text = proc.stdout + proc.stderr + (log.read_text() if log.exists() else "")
    return proc.returncode, text


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
