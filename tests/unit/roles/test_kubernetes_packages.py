"""kubernetes_packages refuses a minor-version change outside playbooks/upgrade.yml.

Raising kubernetes_packages_version by a minor and re-running playbooks/nodes.yml used to put new kubelets
on every node before the API server was upgraded (the version skew policy forbids a kubelet newer than
the API server). The role's real preflight runs on local hosts; a stand-in dpkg-query (first in PATH) reports
what each host has installed, in dpkg-query's own output format.
"""

import os
import platform
from pathlib import Path

import pytest

from unit.roles.playbook_runner import local_inventory, run_playbook, shared_run

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
    if not Path("/usr/bin/dpkg").exists() or platform.system() != "Linux":
        pytest.skip("the role's preflight only runs on Debian or Ubuntu (its OS check), and this machine is neither")
    return shared_run(tmp_path_factory, "kubernetes-packages-preflight", build)


def message(run, host):
    results = run.results("Check that the version change stays inside the upgrade procedure", host)
    return results[0].get("msg", "") if results and results[0].get("failed") else ""


@pytest.mark.parametrize("host", [h for h, (_d, _a, expected) in HOSTS.items() if expected is None])
def test_installs_and_patch_changes_and_the_upgrade_procedure_pass(preflight, host):
    _tmp, run = preflight
    assert run.stats[host]["failures"] == 0, run.failure(host)
    assert run.results("Check that the version change stays inside the upgrade procedure", host), "the check did not run"


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
