"""containerd's source decision and Docker's repository, key and pin, with the role's real tasks on local hosts.

One ansible-playbook run, two passes (the second must change nothing): the role's preflight (which loads the
distribution's variables: the test machine is Debian 12, whose containerd is 1.6) and its repository tasks
(tasks_from: repository.yml) with the files redirected under the test's directory, the key from
molecule/node_layer/files/test-apt-key.asc (download.docker.com is not reachable here; nothing is
downloaded or installed). The pin file is checked by apt-cache as the role's validate does.
"""

import pytest

from unit.roles.playbook_runner import ROOT, local_inventory, run_playbook, shared_run

ROLE = "ailab.cluster.containerd"
TEST_KEY = ROOT / "molecule" / "node_layer" / "files" / "test-apt-key.asc"
JOINED = {"__containerd_joined": {"stat": {"exists": True}}}
HOSTS = {
    # host: (vars, expected source, words of the warning or "")
    "fresh": ({}, "docker", ""),
    "distro": ({"containerd_source": "distro"}, "distro", "installs Debian 12"),
    "joined": (dict(JOINED, __containerd_installed_source="distro"), "distro", "playbooks/upgrade.yml switches it"),
    "upgrading": (dict(JOINED, __containerd_installed_source="distro", _containerd_upgrading=True), "docker", ""),
    "nopin": ({"containerd_docker_version_pin": ""}, "docker", ""),
    "mirror": ({"containerd_docker_repo_url": "https://mirror.lab.example/docker/debian"}, "docker", ""),
}


def build(tmp):
    host_vars = {}
    for host, (extra, _s, _w) in HOSTS.items():
        host_vars[host] = dict(extra, containerd_docker_repo_key_src=str(TEST_KEY))
    redirect = {"_containerd_docker_keyring": "{{ _h8_dir }}/keyrings/docker.asc",
                "_containerd_docker_sources": "{{ _h8_dir }}/docker.sources",
                "_containerd_docker_preferences": "{{ _h8_dir }}/containerd.io.pref"}
    tasks = [
        {"name": "Preflight", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "preflight.yml"}},
        {"name": "Show the decision", "ansible.builtin.debug": {"var": "_containerd_decision"}},
        {"name": "Repository", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "repository.yml"},
         "vars": redirect, "when": "_containerd_source == 'docker'"},
    ]
    # Facts once (the memory fact cache keeps them for the second pass).
    plays = [{"name": f"Pass {n}", "hosts": "nodes", "gather_facts": n == 1, "gather_subset": ["min"],
              "vars": {"_h8_dir": str(tmp) + "/{{ inventory_hostname }}"}, "tasks": tasks} for n in (1, 2)]
    return run_playbook(tmp, plays, local_inventory({"nodes": list(host_vars)}, host_vars=host_vars))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    return shared_run(tmp_path_factory, "containerd-source", build)


@pytest.mark.parametrize("host", list(HOSTS))
def test_source_decision(ran, host):
    _tmp, run = ran
    assert run.stats[host]["failures"] == 0, run.failure(host)
    decision = run.results("Show the decision", host)[0]["_containerd_decision"]
    _extra, source, words = HOSTS[host]
    assert decision["source"] == source
    assert (words in decision["warning"]) if words else decision["warning"] == ""


def test_second_pass_changes_nothing(ran):
    _tmp, run = ran
    changed = [(t["task"]["name"], h) for t in run.data["plays"][1]["tasks"] for h, r in t["hosts"].items() if r.get("changed")]
    assert changed == []
    assert any(r.get("changed") for t in run.data["plays"][0]["tasks"] for r in t["hosts"].values())


def test_repository_key_and_pin(ran):
    tmp, _run = ran
    assert (tmp / "fresh" / "keyrings" / "docker.asc").read_bytes() == TEST_KEY.read_bytes()
    sources = dict(line.split(": ", 1) for line in (tmp / "fresh" / "docker.sources").read_text().splitlines()
                   if ": " in line and not line.startswith("#"))
    assert sources["URIs"] == "https://download.docker.com/linux/debian"
    assert sources["Suites"] == "bookworm" and sources["Components"] == "stable"
    assert sources["Signed-By"].endswith("/fresh/keyrings/docker.asc")
    pin = (tmp / "fresh" / "containerd.io.pref").read_text()
    assert "Package: containerd.io\nPin: version 2.*\nPin-Priority: 990\n" in pin


def test_mirror_and_no_pin(ran):
    tmp, _run = ran
    assert "URIs: https://mirror.lab.example/docker/debian\n" in (tmp / "mirror" / "docker.sources").read_text()
    assert not (tmp / "nopin" / "containerd.io.pref").exists()
    # The distribution's package needs no repository.
    assert not (tmp / "distro").exists() and not (tmp / "joined").exists()
