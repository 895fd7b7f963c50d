"""kubernetes_packages refuses a minor-version change outside playbooks/upgrade.yml.

Raising kubernetes_packages_version by a minor and re-running playbooks/nodes.yml used to put new kubelets
on every node before the API server was upgraded (the version skew policy forbids a kubelet newer than
the API server). The role's real preflight runs on local hosts; a stand-in dpkg-query (first in PATH) reports
what each host has installed, in dpkg-query's own output format.
"""

import getpass
import grp
import os
import platform
import shutil
from pathlib import Path

import pytest

from unit.roles.playbook_runner import ROOT, local_inventory, run_playbook, shared_run

FAKE_DPKG_QUERY = """#!/bin/sh
# Stand-in for dpkg-query --show --showformat=... PACKAGES: prints $AILAB_FAKE_DPKG, and exits 1 like dpkg-query
# when it knows none of the packages.
printf '%s\\n' "$*" >> "$AILAB_FAKE_DPKG_LOG"
if [ -z "$AILAB_FAKE_DPKG" ]; then
  for p in "$@"; do case "$p" in --*) ;; *) echo "dpkg-query: no packages found matching $p" >&2 ;; esac; done
  exit 1
fi
printf '%b' "$AILAB_FAKE_DPKG"
"""


TEST_KEY = ROOT / "molecule" / "node_layer" / "files" / "test-apt-key.asc"
TEST_KEY_FINGERPRINT = "3910AF1E1BDC1DF1F9D998C3ADF732FDDFA378FC"
PKGS_K8S_IO_FINGERPRINT = "DE15B14486CD377B9E876E1A234654DA9A296436"


def installed(version, status="ii"):
    return "".join(f"{p}\\t{status} \\t{version}-1.1\\n" for p in ("kubelet", "kubeadm", "kubectl"))


HOSTS = {
    # host: (installed packages, allowed by the upgrade procedure, expected failure text or None)
    "fresh": ("", False, None),
    "patch": (installed("1.34.1"), False, None),
    "minor": (installed("1.33.5", "hi"), False, "a minor upgrade must go through playbooks/upgrade.yml"),
    "upgrade": (installed("1.33.5", "hi"), True, None),
    "two_minors": (installed("1.32.9"), True, "kubeadm upgrades one minor at a time; upgrade to 1.33.x first"),
    "downgrade": (installed("1.35.0"), True, "set kubernetes_packages_version back to 1.35.x"),
    # The keyring already holds the given key, which is not the one kubernetes_packages_key_fingerprint names: the
    # role would not write it again, so the check stops the run here.
    "other_key": ("", False, f"holds the keys ['{TEST_KEY_FINGERPRINT}'], not {PKGS_K8S_IO_FINGERPRINT}"),
}


def build(tmp):
    fake = tmp / "bin" / "dpkg-query"
    fake.parent.mkdir()
    fake.write_text(FAKE_DPKG_QUERY)
    fake.chmod(0o755)
    host_vars = {}
    for host, (dpkg, allow, _expected) in HOSTS.items():
        host_vars[host] = {"fake_dpkg": dpkg, "fake_log": str(tmp / f"{host}.log")}
        if allow:
            host_vars[host]["_kubernetes_packages_allow_minor_upgrade"] = True
    keyring = tmp / "other_key.asc"
    keyring.write_text(TEST_KEY.read_text())
    keyring.chmod(0o644)
    host_vars["other_key"].update({
        "kubernetes_packages_keyring": str(keyring), "kubernetes_packages_key_content": TEST_KEY.read_text(),
        "kubernetes_packages_key_fingerprint": PKGS_K8S_IO_FINGERPRINT,
        "_kubernetes_packages_file_owner_mode": f"{getpass.getuser()}:{grp.getgrgid(os.getgid()).gr_name}:644"})
    inventory = local_inventory({"package_hosts": list(HOSTS)}, host_vars=host_vars)
    plays = [{
        "name": "kubernetes_packages preflight", "hosts": "package_hosts",
        "gather_facts": True, "gather_subset": ["min"],
        "environment": {"PATH": f"{fake.parent}:{os.environ['PATH']}",
                        "AILAB_FAKE_DPKG": "{{ fake_dpkg }}", "AILAB_FAKE_DPKG_LOG": "{{ fake_log }}"},
        "tasks": [{"name": "Run the preflight", "ansible.builtin.include_role": {
            "name": "ailab.cluster.kubernetes_packages", "tasks_from": "preflight.yml"}}],
    }]
    return run_playbook(tmp, plays, inventory)


@pytest.fixture(scope="module")
def preflight(tmp_path_factory):
    if not Path("/usr/bin/dpkg").exists() or platform.system() != "Linux" or not shutil.which("gpg"):
        pytest.skip("the role's preflight only runs on Debian or Ubuntu (its OS check; its probe reads the keyring with"
                    " gpg), and this machine is neither or lacks gpg")
    return shared_run(tmp_path_factory, "kubernetes-packages-preflight", build)


def message(run, host):
    results = run.results("Check the settings and that the version change stays inside the upgrade procedure", host)
    return results[0].get("msg", "") if results and results[0].get("failed") else ""


@pytest.mark.parametrize("host", [h for h, (_d, _a, expected) in HOSTS.items() if expected is None])
def test_installs_and_patch_changes_and_the_upgrade_procedure_pass(preflight, host):
    _tmp, run = preflight
    assert run.stats[host]["failures"] == 0, run.failure(host)
    assert run.results("Check the settings and that the version change stays inside the upgrade procedure", host), "the check did not run"


@pytest.mark.parametrize("host", [h for h, (_d, _a, expected) in HOSTS.items() if expected is not None])
def test_minor_changes_outside_the_procedure_are_refused(preflight, host):
    _tmp, run = preflight
    expected = HOSTS[host][2]
    text = message(run, host)
    assert expected in text, run.failure(host)
    assert text.startswith(f"{host}: ") and text.endswith("Nothing was changed.")
    assert run.stats[host]["changed"] == 0


def test_the_refusal_names_every_package_and_the_versions(preflight):
    _tmp, run = preflight
    text = message(run, "minor")
    for package in ("kubelet", "kubeadm", "kubectl"):
        assert f"{package} 1.33.5 is installed and kubernetes_packages_version is 1.34.2" in text


def test_dpkg_is_asked_about_the_role_packages(preflight):
    tmp, _run = preflight
    # One call; its --showformat ends in a newline, so the logged arguments span two lines.
    calls = (tmp / "fresh.log").read_text()
    assert calls.count("--show ") == 1
    assert "--showformat=${Package}\t${db:Status-Abbrev}\t${Version}\n kubelet kubeadm kubectl\n" in calls
