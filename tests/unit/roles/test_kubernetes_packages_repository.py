"""kubernetes_packages with kubernetes_packages_install false leaves no apt source that breaks apt.

The pkgs.k8s.io source used to stay enabled where the repository cannot be reached (the sandbox), so a
later `apt-get update` failed. The role's real install and service tasks run on local hosts, writing the
source, key and pin under a temporary directory (the role's file paths given as task vars); apt itself
then reads each host's sources directory and shows which URIs it would fetch (--print-uris: no network).
"""

import shutil
import subprocess

import pytest
import yaml

from unit.roles.playbook_runner import ROOT, local_inventory, run_playbook, shared_run

SANDBOX = yaml.safe_load((ROOT / "inventories" / "sandbox" / "group_vars" / "k8s_cluster" / "kubernetes_packages.yml")
                         .read_text())
REPO = "https://pkgs.k8s.io/core:/stable:/v1.34/deb/"
# host: role variables
HOSTS = {
    "not_installed": {"kubernetes_packages_install": False},
    "not_installed_enabled": {"kubernetes_packages_install": False, "kubernetes_packages_repository_enabled": True},
}


def build(tmp):
    host_vars = {}
    for host, variables in HOSTS.items():
        (tmp / host / "sources").mkdir(parents=True)
        host_vars[host] = dict(variables, out=str(tmp / host), kubernetes_packages_key_fingerprint="",
                               kubernetes_packages_key_content=SANDBOX["kubernetes_packages_key_content"])
    paths = {"_kubernetes_packages_sources_file": "{{ out }}/sources/kubernetes.sources",
             "_kubernetes_packages_preferences_file": "{{ out }}/kubernetes.pref",
             "kubernetes_packages_keyring": "{{ out }}/keyrings/kubernetes-apt-keyring.asc"}
    plays = [{"name": "kubernetes_packages install and service", "hosts": "package_hosts", "gather_facts": False,
              "tasks": [{"name": f"Run {part}", "ansible.builtin.include_role": {
                  "name": "ailab.cluster.kubernetes_packages", "tasks_from": part}, "vars": paths}
                  for part in ("install.yml", "service.yml")]}]
    return run_playbook(tmp, plays, local_inventory({"package_hosts": list(HOSTS)}, host_vars=host_vars))


@pytest.fixture(scope="module")
def repository_run(tmp_path_factory):
    if not shutil.which("apt-get"):
        pytest.skip("apt-get is not installed: the role targets Debian and Ubuntu, and apt is what reads its source")
    return shared_run(tmp_path_factory, "kubernetes-packages-repository", build)


def apt_uris(tmp, host):
    """What `apt-get update` would fetch with only this host's sources directory (nothing is fetched)."""
    lists = tmp / host / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["apt-get", "update", "--print-uris", "-o", "Dir::Etc::SourceList=/dev/null",
                           "-o", f"Dir::Etc::SourceParts={tmp / host / 'sources'}", "-o", f"Dir::State::Lists={lists}",
                           "-o", "Debug::NoLocking=1"], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_role_runs(repository_run):
    _tmp, run = repository_run
    assert run.rc == 0, run.stdout[-3000:]
    assert all(stats["failures"] == 0 for stats in run.stats.values())


def test_packages_not_installed_leave_the_source_disabled(repository_run):
    tmp, _run = repository_run
    source = (tmp / "not_installed" / "sources" / "kubernetes.sources").read_text()
    assert f"URIs: {REPO}" in source and "\nEnabled: no\n" in source
    rc, output = apt_uris(tmp, "not_installed")
    assert rc == 0, output
    assert REPO not in output, "apt would still fetch the unreachable repository"
    assert (tmp / "not_installed" / "kubernetes.pref").read_text().count("Pin: version 1.34.2-1.1") == 1
    assert (tmp / "not_installed" / "keyrings" / "kubernetes-apt-keyring.asc").exists()


def test_an_enabled_source_is_what_apt_fetches(repository_run):
    """The contrast that shows the check can fail: enabled, apt would fetch the repository."""
    tmp, _run = repository_run
    source = (tmp / "not_installed_enabled" / "sources" / "kubernetes.sources").read_text()
    assert "Enabled:" not in source
    rc, output = apt_uris(tmp, "not_installed_enabled")
    assert rc == 0, output
    assert f"'{REPO}InRelease'" in output


def test_the_run_says_what_it_configured(repository_run):
    _tmp, run = repository_run
    (disabled,) = run.results("Report that the Kubernetes packages are not installed", "not_installed")
    assert "configured but disabled (Enabled: no), so apt update does not use it" in disabled["msg"]
    (enabled,) = run.results("Report that the Kubernetes packages are not installed", "not_installed_enabled")
    assert "is configured and enabled" in enabled["msg"]
