"""docker's cri-dockerd checksum follows the node's architecture (one ansible-playbook run of the role's real
preflight on local hosts, one host per case; the archive itself is not downloaded here)."""

import pytest

from unit.roles.playbook_runner import local_inventory, run_playbook, shared_run

AMD64 = "sha256:dd4b7f514c248a3aaca398f467430a4c58aae9a77ea8b96a2f5b5d6fba0948d1"
ARM64 = "sha256:c783a03735887c4a8fc894bd4cf7a1c0defef3ecf50a4d79ff31eed45c26b17e"
GOOD = {
    "x86": ({"ansible_architecture_override": "x86_64"}, AMD64),
    "arm": ({"ansible_architecture_override": "aarch64"}, ARM64),
    "newer": ({"docker_cri_dockerd_version": "0.3.25", "docker_cri_dockerd_checksums": {"amd64": "sha256:" + "1" * 64}},
              "sha256:" + "1" * 64),
    "offline": ({"ansible_architecture_override": "ppc64le", "docker_cri_dockerd_src": "/srv/cri-dockerd.tgz"}, ""),
}
BAD = {
    "ppc": ({"ansible_architecture_override": "ppc64le"}, "(ppc64le, archive 'ppc64le') has no checksum for cri-dockerd 0.3.24"),
    "stale": ({"docker_cri_dockerd_version": "0.3.25"}, "lists amd64, arm64 for version 0.3.24"),
}


def build(tmp):
    host_vars = {h: v for h, (v, _x) in list(GOOD.items()) + list(BAD.items())}
    for hv in host_vars.values():
        # The node's architecture as the role reads it; the test machine's own facts give the rest.
        hv.setdefault("ansible_architecture_override", "x86_64")
    plays = [{"name": "Docker preflight", "hosts": "nodes", "gather_facts": True, "gather_subset": ["min"], "tasks": [
        {"name": "Pretend the architecture", "ansible.builtin.set_fact": {
            "ansible_facts": "{{ ansible_facts | combine({'architecture': ansible_architecture_override}) }}"}},
        {"name": "Preflight", "ansible.builtin.import_role": {"name": "ailab.cluster.docker", "tasks_from": "preflight.yml"}},
        {"name": "Show the checksum", "ansible.builtin.debug": {"msg": "{{ docker_cri_dockerd_checksum }}"}},
    ]}]
    return run_playbook(tmp, plays, local_inventory({"nodes": list(host_vars)}, host_vars=host_vars))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    return shared_run(tmp_path_factory, "docker-preflight", build)[1]


@pytest.mark.parametrize("host", list(GOOD))
def test_checksum_of_the_node_architecture(ran, host):
    assert ran.stats[host]["failures"] == 0, ran.failure(host)
    if GOOD[host][1]:
        assert ran.results("Show the checksum", host)[0]["msg"] == GOOD[host][1]


@pytest.mark.parametrize("host", list(BAD))
def test_missing_checksum_is_refused_before_the_download(ran, host):
    message = ran.failure(host) or ""
    assert BAD[host][1] in message and "docker_cri_dockerd_checksums" in message, message
    assert ran.results("Show the checksum", host) == []
