"""node_prep on local hosts: the hostname check in containers, and files written only where the probe saw a difference.

One ansible-playbook run, three plays on local-connection hosts of this machine, read-only for the machine
itself (every file the role writes is redirected under the test's directory):

* preflight (tasks_from: preflight.yml) on hosts that want the machine's own name, another name, or
  another name with node_prep_manage_hostname false. In a container the runtime owns the hostname
  (hostnamectl fails with "Device or resource busy" on docker's bind-mounted /etc/hostname), so the
  node whose wanted name differs must fail in preflight with a message that says what to do.
* the state probe (probe.yml) and the kubelet files (kubelet.yml): written on the first pass; skipped on the
  second (the probe's checksum, owner and mode match: no module runs); written again on the third after a
  hand edit of one file and a mode change of the other.
"""

import stat

import pytest

from unit.roles.playbook_runner import local_inventory, run_playbook, shared_run

ROLE = "ailab.cluster.node_prep"
WRITE = "Point the kubelet at its drop-in directory and write the resource management drop-in"
GPU_NODE = {"cpuManagerPolicy": "static", "reservedSystemCPUs": "0"}
# host: (host variables, expected to fail in a container)
HOSTS = {
    "same": ({"node_prep_hostname": "{{ ansible_facts['nodename'] }}"}, False),
    "renamed": ({"node_prep_hostname": "renamed-node"}, True),
    "unmanaged": ({"node_prep_hostname": "unmanaged-node", "node_prep_manage_hostname": False}, False),
}


def build(tmp):
    host_vars = {h: dict(v, node_prep_address=f"127.0.0.{11 + i}") for i, (h, (v, _f)) in enumerate(HOSTS.items())}
    host_vars["files"] = {"node_prep_address": "127.0.0.20", "node_prep_hostname": "files-node",
                          "node_prep_manage_hostname": False, "node_prep_manage_hosts_file": False,
                          "node_prep_time_sync": "none", "node_prep_kubelet_config": GPU_NODE,
                          "node_prep_kubelet_config_dir": str(tmp / "files" / "kubelet.conf.d"),
                          "node_prep_modules_file": str(tmp / "files" / "modules.conf"),
                          "node_prep_sysctl_file": str(tmp / "files" / "sysctl.conf")}
    redirect = {"_node_prep_kubelet_env_file": "{{ node_prep_kubelet_config_dir | dirname }}/default-kubelet",
                "_node_prep_kubelet_config_file": "{{ node_prep_kubelet_config_dir | dirname }}/config.yaml"}
    files = [
        {"name": "Probe", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "probe.yml"}, "vars": redirect},
        {"name": "Kubelet", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "kubelet.yml"}, "vars": redirect},
    ]
    edit = [
        {"name": "Edit the environment file by hand", "ansible.builtin.lineinfile": {
            "path": str(tmp / "files" / "default-kubelet"), "line": "# edited by hand"}},
        {"name": "Loosen the mode of the drop-in", "ansible.builtin.file": {
            "path": str(tmp / "files" / "kubelet.conf.d" / "50-ailab-resources.conf"), "mode": "0666"}},
    ]
    facts = {"gather_facts": True, "gather_subset": ["!all", "min", "virtual"]}
    plays = [
        dict(name="Preflight", hosts="hostname", **facts, tasks=[
            {"name": "Preflight", "ansible.builtin.import_role": {"name": ROLE, "tasks_from": "preflight.yml"}},
            {"name": "Container facts", "ansible.builtin.debug": {"var": "_node_prep_in_container"}}]),
        dict(name="Pass 1", hosts="files", **facts, tasks=files),
        {"name": "Pass 2", "hosts": "files", "gather_facts": False, "tasks": files},
        {"name": "Pass 3", "hosts": "files", "gather_facts": False, "tasks": edit + files},
    ]
    inventory = local_inventory({"hostname": list(HOSTS), "files": ["files"]}, host_vars=host_vars)
    return run_playbook(tmp, plays, inventory)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    return shared_run(tmp_path_factory, "node-prep-probe", build)


def in_container(run):
    return run.results("Container facts", "same")[0]["_node_prep_in_container"]


@pytest.mark.parametrize("host", list(HOSTS))
def test_hostname_in_a_container(ran, host):
    _tmp, run = ran
    if not in_container(run):
        pytest.skip("this machine is not a container (ansible_virtualization_type/role): the container rule does not apply")
    _vars, fails = HOSTS[host]
    if not fails:
        assert run.stats[host]["failures"] == 0, run.failure(host)
        return
    msg = run.failure(host)
    assert msg, "preflight passed although the container cannot be renamed to renamed-node"
    assert "cannot rename from inside" in msg and "Give the container the hostname 'renamed-node'" in msg
    assert "node_prep_manage_hostname: false" in msg and "docker run --hostname" in msg


def test_files_written_only_where_the_probe_saw_a_difference(ran):
    tmp, run = ran
    assert run.stats["files"]["failures"] == 0, run.failure("files")
    first, second, third = run.results(WRITE, "files")
    assert [r["item"]["dest"] for r in first["results"]] == [
        str(tmp / "files" / "default-kubelet"), str(tmp / "files" / "kubelet.conf.d" / "50-ailab-resources.conf")]
    assert all(r["changed"] for r in first["results"])
    # Both files in place: no item, no module run.
    assert second.get("skipped") and second.get("results", []) == []
    # Only the two files that differ, each repaired.
    assert sorted(r["item"]["dest"] for r in third["results"] if r["changed"]) == sorted(
        r["item"]["dest"] for r in first["results"])
    assert "# edited by hand" not in (tmp / "files" / "default-kubelet").read_text()
    mode = (tmp / "files" / "kubelet.conf.d" / "50-ailab-resources.conf").stat().st_mode
    assert stat.S_IMODE(mode) == 0o644
