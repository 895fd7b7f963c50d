"""A re-run of kubernetes_packages on a node that is as it should be runs one probe and one check, nothing else.

Every re-run of the node layer runs this role on every node; the role used to run about fifteen tasks there
(the key, source and pin modules, apt-cache, apt, three dpkg_selections, systemd) even when nothing was to do.
Now one probe reads the packages, files, fingerprints and the kubelet unit, and each later task runs only where
something differs. The role's real tasks run on local hosts in two plays of one run: the first writes the key,
source and pin as a first run does (without installing, into a temporary directory per host); the second runs the
whole role with the packages reported installed and held by a stand-in dpkg-query and kubelet reported enabled by a
stand-in systemctl (first in PATH, so nothing on this machine is installed, held or enabled).
"""

import getpass
import grp
import os
import shutil
from pathlib import Path

import pytest

from unit.roles.playbook_runner import ROOT, local_inventory, run_playbook, shared_run

KEY = ROOT / "molecule" / "node_layer" / "files" / "test-apt-key.asc"
KEY_FINGERPRINT = "3910AF1E1BDC1DF1F9D998C3ADF732FDDFA378FC"
REPO = "https://pkgs.k8s.io/core:/stable:/v1.34/deb/"
MIRROR = "https://mirror.lab.example/pkgs-k8s-v1.34/"

STUBS = {
    "dpkg-query": """#!/bin/sh
# Stand-in for dpkg-query --show --showformat=... PACKAGES: every package installed and held at 1.34.2-1.1.
for p in "$@"; do case "$p" in --*) ;; *) printf '%s\\thi \\t1.34.2-1.1\\n' "$p" ;; esac; done
""",
    "systemctl": """#!/bin/sh
# Stand-in for systemctl: only `systemctl is-enabled kubelet` is expected (the probe); anything else fails.
if [ "$1" = is-enabled ] && [ "$2" = kubelet ]; then echo enabled; exit 0; fi
echo "unexpected systemctl $*" >&2
exit 3
""",
}

# host: (variables of the first run, variables of the re-run)
FIRST = {"kubernetes_packages_version": "1.34.2", "kubernetes_packages_repo_url": REPO}
HOSTS = {
    "in_place": (FIRST, {}),
    "mirror": (FIRST, {"kubernetes_packages_repo_url": MIRROR}),
    "patch_pinned": ({**FIRST, "kubernetes_packages_version": "1.34.1"}, {}),
}
PROBE = "Read the Kubernetes packages, apt source, key and pin of the node"
CHECK = "Check the settings and that the version change stays inside the upgrade procedure"


def build(tmp):
    stubs = tmp / "bin"
    stubs.mkdir()
    for name, text in STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    owner = f"{getpass.getuser()}:{grp.getgrgid(os.getgid()).gr_name}:644"
    host_vars = {}
    for host, (first, again) in HOSTS.items():
        (tmp / host / "sources").mkdir(parents=True)
        common = {"kubernetes_packages_key_content": KEY.read_text(), "kubernetes_packages_key_fingerprint": KEY_FINGERPRINT,
                  "kubernetes_packages_repository_enabled": True, "_kubernetes_packages_file_owner_mode": owner,
                  "_kubernetes_packages_sources_file": f"{tmp / host}/sources/kubernetes.sources",
                  "_kubernetes_packages_preferences_file": f"{tmp / host}/kubernetes.pref",
                  "kubernetes_packages_keyring": f"{tmp / host}/keyrings/kubernetes-apt-keyring.asc"}
        host_vars[host] = {"first": {**common, **first, "kubernetes_packages_install": False},
                           "again": {**common, **FIRST, **again, "kubernetes_packages_install": True}}
    role = "ailab.cluster.kubernetes_packages"
    plays = [
        {"name": "First run: key, source and pin", "hosts": "package_hosts", "gather_facts": False,
         "tasks": [{"name": "Write the files", "ansible.builtin.include_role": {"name": role, "tasks_from": "install.yml"},
                    "vars": {"__vars": "{{ first }}"}}]},
        {"name": "Re-run", "hosts": "package_hosts", "gather_facts": True, "gather_subset": ["min"],
         "environment": {"PATH": f"{stubs}:{os.environ['PATH']}"},
         "tasks": [{"name": "Run the role", "ansible.builtin.include_role": {"name": role}, "vars": {"__vars": "{{ again }}"}}]},
    ]
    # The role's variables come from each host's dict of the play (every dict has the same keys): include_role vars
    # are task vars, templated per host.
    for play in plays:
        task = play["tasks"][0]
        task["vars"] = {name: f"{{{{ __vars['{name}'] }}}}" for name in host_vars["in_place"]["again"]} | task["vars"]
    return run_playbook(tmp, plays, local_inventory({"package_hosts": list(HOSTS)}, host_vars=host_vars))


@pytest.fixture(scope="module")
def rerun(tmp_path_factory):
    if not shutil.which("apt-cache") or not shutil.which("gpg") or not Path("/usr/bin/dpkg").exists():
        pytest.skip("the role targets Debian and Ubuntu: its probe and pin check need dpkg, apt-cache and gpg")
    return shared_run(tmp_path_factory, "kubernetes-packages-noop", build)


ROLE_TASK = "ailab.cluster.kubernetes_packages : "


def executed(run, host):
    """The role's tasks of the re-run that ran on ``host`` (not skipped), in order; the argument check is
    Ansible's own (every role with argument specs)."""
    names = []
    for task in run.data["plays"][1]["tasks"]:
        name, result = task["task"]["name"], task["hosts"].get(host)
        if name.startswith(ROLE_TASK) and result is not None and not result.get("skipped"):
            names.append(name.removeprefix(ROLE_TASK))
    return [name for name in names if not name.startswith("Validating arguments against arg spec")]


def changed(run, host):
    return [t["task"]["name"].removeprefix(ROLE_TASK) for t in run.data["plays"][1]["tasks"]
            if t["hosts"].get(host, {}).get("changed")]


def test_a_node_in_place_runs_the_probe_and_the_check_only(rerun):
    _tmp, run = rerun
    assert run.rc == 0, run.stderr[-2000:]
    assert executed(run, "in_place") == [PROBE, CHECK]
    assert changed(run, "in_place") == []


def test_only_what_differs_is_written(rerun):
    tmp, run = rerun
    assert run.stats["mirror"]["failures"] == 0, run.failure("mirror")
    assert changed(run, "mirror") == ["Write the Kubernetes apt source"]
    assert f"URIs: {MIRROR}" in (tmp / "mirror" / "sources" / "kubernetes.sources").read_text()
    assert run.stats["patch_pinned"]["failures"] == 0, run.failure("patch_pinned")
    assert changed(run, "patch_pinned") == ["Pin the Kubernetes packages to 1.34.2-1.1"]
    assert "Pin: version 1.34.2-1.1\n" in (tmp / "patch_pinned" / "kubernetes.pref").read_text()
    # The packages are in place at the version: apt is neither refreshed nor asked to install.
    for host in ("mirror", "patch_pinned"):
        assert run.skipped("Refresh the apt lists for the Kubernetes repository", host)
        assert run.skipped("Install the Kubernetes packages", host)
        assert run.skipped("Hold the Kubernetes packages", host)
