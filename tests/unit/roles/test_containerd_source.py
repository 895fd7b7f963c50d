"""containerd's source decision and Docker's repository, key and pin, with the role's real tasks on local hosts.

One ansible-playbook run, two passes (the second must change nothing): the role's preflight (which loads the
distribution's variables: the test machine is Debian 12, whose containerd is 1.6) and its repository tasks
(tasks_from: repository.yml) with the files redirected under the test's directory, the key from
molecule/node_layer/files/test-apt-key.asc (download.docker.com is not reachable here; nothing is
downloaded or installed). The pin file is checked by apt-cache as the role's validate does. A third play reads the files the way the
role's probe does and asks the role whether Docker's repository is in place (install.yml then skips
repository.yml): yes with the key given as content and every file as the role writes it; no after a hand
edit of the source; no with a controller key file (copy compares that one on every run).
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
    "content": ({"containerd_docker_repo_key_content": TEST_KEY.read_text()}, "docker", ""),
    "edited": ({"containerd_docker_repo_key_content": TEST_KEY.read_text()}, "docker", ""),
}
# host: Docker's repository in place after the two passes (the third play's verdict)
IN_PLACE = {"content": True, "edited": False, "fresh": False}


def build(tmp):
    host_vars = {}
    for host, (extra, _s, _w) in HOSTS.items():
        key = {} if "containerd_docker_repo_key_content" in extra else {"containerd_docker_repo_key_src": str(TEST_KEY)}
        host_vars[host] = dict(extra, **key)
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
    # The probe's lines for the three repository files (tasks/install.yml prints them the same way).
    probe = ("for path in {{ [_containerd_docker_keyring, _containerd_docker_sources, _containerd_docker_preferences]"
             " | map('quote') | join(' ') }}; do if [ -f \"$path\" ]; then printf 'file|%s|%s|%s\\n' \"$path\""
             " \"$(sha1sum < \"$path\" | cut -d ' ' -f 1)\" \"$(stat -L -c '%U:%G:%a' \"$path\")\"; else"
             " printf 'file|%s|absent|\\n' \"$path\"; fi; done")
    plays.append({"name": "In place", "hosts": ",".join(IN_PLACE), "gather_facts": False,
                  "vars": {"_h8_dir": str(tmp) + "/{{ inventory_hostname }}"}, "tasks": [
                      {"name": "Edit the source by hand", "ansible.builtin.lineinfile": {
                          "path": "{{ _h8_dir }}/docker.sources", "line": "# edited"},
                       "when": "inventory_hostname == 'edited'"},
                      {"name": "Read the files as the probe does", "ansible.builtin.shell": {"cmd": probe},
                       "vars": redirect, "register": "__containerd_probe", "changed_when": False},
                      # The role's own preflight assert, asked about the repository instead (task vars win over
                      # role vars; the expression is evaluated inside the role, where its templates are found).
                      {"name": "Ask the role", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "preflight.yml"},
                       "vars": dict(redirect, _containerd_problems=(
                           "{{ [] if _containerd_repository_in_place | bool else ['repository not in place'] }}")),
                       }]})
    return run_playbook(tmp, plays, local_inventory({"nodes": list(host_vars)}, host_vars=host_vars))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    return shared_run(tmp_path_factory, "containerd-source", build)


@pytest.mark.parametrize("host", list(HOSTS))
def test_source_decision(ran, host):
    _tmp, run = ran
    failed = [t["task"]["name"] for play in run.data["plays"][:2] for t in play["tasks"] if t["hosts"].get(host, {}).get("failed")]
    assert failed == [], run.failure(host)
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


@pytest.mark.parametrize("host", list(IN_PLACE))
def test_repository_in_place_only_as_the_role_writes_it(ran, host):
    _tmp, run = ran
    verdict = run.results("Check the operating system and the configuration choices", host)[-1]
    if IN_PLACE[host]:
        assert not verdict.get("failed"), verdict
    else:
        assert verdict.get("failed") and "repository not in place" in verdict["msg"], verdict
