"""The hand-made broken states of prepare.yml are fixed after converge."""

import re


def test_swap_lines_are_commented_out(host):
    fstab = host.file("/etc/fstab").content_string
    active = [
        line
        for line in fstab.splitlines()
        if line.split() and not line.lstrip().startswith("#") and len(line.split()) > 2 and line.split()[2] == "swap"
    ]
    assert active == []
    # Both swap lines are still there, commented, so that an admin sees what was disabled.
    assert len(re.findall(r"^# .*\bswap\b", fstab, re.M)) == 2
    # The root file system line is untouched.
    assert re.search(r"^UUID=0a1b2c3d-0000-4000-8000-000000000001 /\s+ext4", fstab, re.M)


# Active swap is the container host's (/proc/swaps), which a container cannot turn off: no test here can
# see the role's swapoff; the fstab lines above are what the role changes.
NODES = ("ailab-node-dirty-debian12", "ailab-node-dirty-debian13")


def test_stale_hosts_line_is_gone(host):
    hosts = host.file("/etc/hosts").content_string
    assert "old-hostname" not in hosts
    # Docker's own /etc/hosts names this container already; only node_prep lists the other node too.
    assert "Written whole by ailab.cluster.node_prep" in hosts
    for node in NODES:
        assert re.search(rf"^\d+\.\d+\.\d+\.\d+\t{re.escape(node)}$", hosts, re.M), hosts


def test_containerd_runs_with_systemd_cgroups(host):
    assert host.service("containerd").is_running
    dump = host.check_output("containerd config dump")
    assert re.search(r"^\s*SystemdCgroup = true$", dump, re.M)
    assert "SystemdCgroup = false" not in dump
    assert 'sandbox_image = "registry.k8s.io/pause:3.10.1"' in dump


def test_cri_plugin_is_no_longer_disabled(host):
    dump = host.check_output("containerd config dump")
    assert re.search(r"^disabled_plugins = \[\]$", dump, re.M)
    rows = [r.split() for r in host.check_output("ctr plugins ls").splitlines()]
    cri = [r for r in rows if len(r) >= 4 and r[0] == "io.containerd.grpc.v1" and r[1] == "cri"]
    assert cri and cri[0][-1] == "ok", f"CRI plugin not ok: {cri}"
