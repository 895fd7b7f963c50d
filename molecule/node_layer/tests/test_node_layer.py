"""What a kubeadm user relies on after node_prep + containerd + kubernetes_packages (Debian 12 and 13)."""

import re

import pytest

NODES = ("ailab-node-layer-debian12", "ailab-node-layer-debian13")
TEST_KEY_FINGERPRINT = "3910AF1E1BDC1DF1F9D998C3ADF732FDDFA378FC"


# --------------------------------------------------------------------------------- node_prep
def node_lines(hosts_file):
    """The lines of the role's "# Kubernetes nodes" section of /etc/hosts, as (address, names) pairs."""
    section = hosts_file.split("# Kubernetes nodes\n", 1)
    assert len(section) == 2, "/etc/hosts has no '# Kubernetes nodes' section: node_prep did not write it"
    rows = []
    for line in section[1].splitlines():
        if not line.strip():
            break
        address, *names = line.split()
        rows.append((address, names))
    return rows


def test_etc_hosts_lists_this_node_under_its_own_address(host):
    """Docker already sets the hostname to the inventory name (and the role cannot change a container's
    static hostname: /etc/hostname is a bind mount), so the kernel hostname proves nothing here. What
    the role decides is the /etc/hosts it writes whole: this node, once, with the address of its
    default route, the one kubelet and the other nodes use."""
    hosts_file = host.file("/etc/hosts").content_string
    assert "Written whole by ailab.cluster.node_prep" in hosts_file
    name = host.check_output("hostname")
    device = host.check_output("ip -4 -o route show default").split(" dev ")[1].split()[0]
    address = host.check_output(f"ip -4 -o addr show dev {device}").split(" inet ")[1].split("/")[0]
    rows = node_lines(hosts_file)
    assert [row for row in rows if name in row[1]] == [(address, [name])], rows
    assert sorted(n for _address, names in rows for n in names) == sorted(NODES), rows


def test_every_node_resolves_through_etc_hosts(host):
    for node in NODES:
        entry = host.check_output(f"getent hosts {node}")
        address = entry.split()[0]
        assert not address.startswith("127."), f"{node} resolves to loopback ({entry})"
    assert host.check_output("getent hosts nfs.lab.example").split()[0] == "10.10.0.5"


# The swap lines of /etc/fstab: molecule/node_dirty_host (this image's fstab has none). Active swap is the
# container host's (/proc/swaps), which a container cannot turn off: no test here can see the role's swapoff.
def test_swap_target_is_masked(host):
    assert host.run("systemctl is-enabled swap.target").stdout.strip() == "masked"


def active_lines(path_content):
    return [line.strip() for line in path_content.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_kernel_modules_are_persisted(host):
    """What systemd-modules-load reads at boot: exactly the two modules, one a line."""
    modules = host.file("/etc/modules-load.d/kubernetes.conf")
    assert sorted(active_lines(modules.content_string)) == ["br_netfilter", "overlay"]
    assert (modules.user, modules.mode) == ("root", 0o644)


SYSCTLS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")


def test_kernel_parameters_are_persisted(host):
    """What systemd-sysctl applies at boot: exactly the three parameters, each set to 1."""
    lines = active_lines(host.file("/etc/sysctl.d/90-kubernetes.conf").content_string)
    assert sorted(lines) == sorted(f"{key} = 1" for key in SYSCTLS), lines


@pytest.mark.parametrize("key", SYSCTLS)
def test_kernel_parameter_is_effective(host, key):
    """The running value. A container sees the host's br_netfilter (or not) and, where /proc/sys is mounted
    read-only, cannot set a value: those cases are skips that say so, never a pass."""
    proc = "/proc/sys/" + key.replace(".", "/")
    if not host.file(proc).exists:
        pytest.skip(f"{proc} does not exist: br_netfilter is not loaded on the container host, and a container cannot load it")
    value = host.file(proc).content_string.strip()
    if host.run(f"test -w {proc}").rc != 0:
        # The value is then the host's, whatever the role did: a pass would prove nothing.
        pytest.skip(f"{proc} is read-only in this container (value {value}): only the container host can set {key}")
    assert value == "1", f"{key} is {value} although {proc} is writable: node_prep did not apply it"


def test_time_sync_is_enabled_with_the_lab_servers(host):
    assert host.service("systemd-timesyncd").is_enabled
    conf = host.file("/etc/systemd/timesyncd.conf.d/ailab.conf").content_string
    assert "NTP=ntp1.lab.example ntp2.lab.example" in conf


def test_kubeadm_preflight_tools_are_installed(host):
    # ip and iptables are in the test image already (tests/images/build.sh): only the tools node_prep
    # must install are checked, so that a role that installs nothing fails here.
    for tool in ("conntrack", "socat", "ethtool", "ebtables"):
        assert host.exists(tool), f"{tool} missing"


# --------------------------------------------------------------------------------- containerd
def test_containerd_is_enabled_and_running(host):
    svc = host.service("containerd")
    assert svc.is_running and svc.is_enabled


def test_containerd_effective_config_uses_systemd_cgroups(host):
    dump = host.check_output("containerd config dump")
    assert re.search(r"^\s*SystemdCgroup = true$", dump, re.M)
    assert not re.search(r"SystemdCgroup = false", dump)


def test_containerd_effective_config_pins_sandbox_and_registry_dir(host):
    dump = host.check_output("containerd config dump")
    assert 'sandbox_image = "registry.k8s.io/pause:3.10.1"' in dump
    assert 'config_path = "/etc/containerd/certs.d"' in dump


def cni_table(dump):
    """The effective CRI cni table: [plugins."io.containerd.grpc.v1.cri".cni] (1.x) or the runtime plugin's (2.x)."""
    for table in ('plugins."io.containerd.grpc.v1.cri".cni', "plugins.'io.containerd.cri.v1.runtime'.cni",
                  'plugins."io.containerd.cri.v1.runtime".cni'):
        match = re.search(r"^\s*\[" + re.escape(table) + r"\]\n((?:(?!\s*\[).*\n)*)", dump + "\n", re.M)
        if match:
            return dict(line.strip().split(" = ", 1) for line in match.group(1).splitlines() if " = " in line)
    raise AssertionError("no CRI cni table in the effective configuration")


def test_containerd_looks_for_cni_plugins_where_kubernetes_installs_them(host):
    """kubernetes-cni and Flannel's install-cni write /opt/cni/bin; Debian 13's containerd looks in /usr/lib/cni
    unless told otherwise, and then every pod sandbox fails while the nodes are Ready."""
    cni = cni_table(host.check_output("containerd config dump"))
    bin_dirs = cni.get("bin_dirs") or "[" + cni.get("bin_dir", "") + "]"
    assert re.fullmatch(r"""\[\s*["']/opt/cni/bin["'],?\s*\]""", bin_dirs), cni
    assert cni["conf_dir"].strip("\"'") == "/etc/cni/net.d", cni


def test_containerd_config_schema_matches_major_version(host):
    version = host.check_output("containerd --version")
    major = int(re.search(r" v?(\d+)\.\d+\.\d+", version).group(1))
    expected = 3 if major >= 2 else 2
    assert re.search(rf"^version = {expected}$", host.file("/etc/containerd/config.toml").content_string, re.M)


def test_cri_plugin_is_loaded(host):
    rows = [r.split() for r in host.check_output("ctr plugins ls").splitlines()]
    cri = [r for r in rows if len(r) >= 4 and r[0] == "io.containerd.grpc.v1" and r[1] == "cri"]
    assert cri and cri[0][-1] == "ok", f"CRI plugin not ok: {cri}"


def test_dropin_directory_is_imported(host):
    dropin = "/etc/containerd/conf.d/50-molecule-probe.toml"
    host.run_expect([0], f"printf 'version = 2\\n[debug]\\n  level = \"warn\"\\n' > {dropin}")
    try:
        dump = host.check_output("containerd config dump")
    finally:
        host.run_expect([0], f"rm -f {dropin}")
    assert dropin in dump and re.search(r'^\s*level = "warn"$', dump, re.M)


def test_registry_mirror_host_config(host):
    hosts_toml = host.file("/etc/containerd/certs.d/docker.io/hosts.toml").content_string
    assert 'server = "https://registry-1.docker.io"' in hosts_toml
    assert '[host."https://harbor.lab.example"]' in hosts_toml


def test_crictl_talks_to_containerd(host):
    assert "containerd.sock" in host.file("/etc/crictl.yaml").content_string
    if not host.exists("crictl"):
        pytest.skip("crictl is not packaged by Debian; it arrives with cri-tools from pkgs.k8s.io (not reachable here)")
    host.run_expect([0], "crictl info")


# --------------------------------------------------------------------------------- GPU layer drop-in
# side_effect.yml wrote the NVIDIA Container Toolkit's drop-in (files/99-nvidia.toml.j2, as toolkit v1.20
# writes it for roles/gpu_operator), re-saved config.toml without comments as the toolkit does, and ran
# the containerd role again.
NVIDIA_DROPIN = "/etc/containerd/conf.d/99-nvidia.toml"
CRI = 'plugins."io.containerd.grpc.v1.cri"'


def dump_table(dump, table):
    """The key = value lines of one table of `containerd config dump` (its own lines, not sub-tables)."""
    match = re.search(r"^\s*\[" + re.escape(table) + r"\]\n((?:(?!\s*\[).*\n)*)", dump + "\n", re.M)
    assert match, f"[{table}] missing from the effective configuration"
    return dict(line.strip().split(" = ", 1) for line in match.group(1).splitlines() if " = " in line)


def test_toolkit_drop_in_survives_the_node_layer_rerun(host):
    assert host.file(NVIDIA_DROPIN).exists
    # config.toml is the role's template again: the toolkit's re-save had dropped these comment lines.
    assert "written whole by" in host.file("/etc/containerd/config.toml").content_string
    svc = host.service("containerd")
    assert svc.is_running and svc.is_enabled


def test_nvidia_runtimes_from_the_drop_in_are_effective(host):
    dump = host.check_output("containerd config dump")
    assert NVIDIA_DROPIN in dump
    for name, suffix in (("nvidia", ""), ("nvidia-cdi", ".cdi"), ("nvidia-legacy", ".legacy")):
        runtime = dump_table(dump, f"{CRI}.containerd.runtimes.{name}")
        assert runtime["runtime_type"] == '"io.containerd.runc.v2"'
        options = dump_table(dump, f"{CRI}.containerd.runtimes.{name}.options")
        assert options["BinaryName"] == f'"/usr/local/nvidia/toolkit/nvidia-container-runtime{suffix}"'
        assert options["SystemdCgroup"] == "true"


def test_node_layer_settings_stay_effective_with_the_drop_in(host):
    dump = host.check_output("containerd config dump")
    assert dump_table(dump, f"{CRI}.containerd.runtimes.runc.options")["SystemdCgroup"] == "true"
    cri = dump_table(dump, CRI)
    assert cri["sandbox_image"] == '"registry.k8s.io/pause:3.10.1"'
    assert dump_table(dump, f"{CRI}.registry")["config_path"] == '"/etc/containerd/certs.d"'
    assert dump_table(dump, f"{CRI}.containerd")["default_runtime_name"] == '"runc"'
    rows = [r.split() for r in host.check_output("ctr plugins ls").splitlines()]
    assert [r[-1] for r in rows if len(r) >= 4 and r[0] == "io.containerd.grpc.v1" and r[1] == "cri"] == ["ok"]


def test_a_drop_in_without_the_whole_cri_section_resets_it(host):
    """Why the toolkit copies the whole CRI section into its drop-in: containerd 1.x replaces a plugin's
    section with the imported one. A drop-in holding only the nvidia runtime, loaded next to the
    node layer's config.toml, loses runc's SystemdCgroup, the pinned sandbox image and config_path."""
    version = host.check_output("containerd --version")
    if int(re.search(r" v?(\d+)\.\d+\.\d+", version).group(1)) >= 2:
        pytest.skip("containerd 2 merges imported plugin sections; this caveat is about containerd 1.x")
    probe = "/tmp/molecule-dropin-probe"
    naive = (f"version = 2\n[{CRI}.containerd.runtimes.nvidia]\n  runtime_type = \"io.containerd.runc.v2\"\n"
             f"[{CRI}.containerd.runtimes.nvidia.options]\n  BinaryName = \"/usr/bin/nvidia-container-runtime\"\n")
    host.run_expect([0], f"rm -rf {probe} && mkdir -p {probe}/conf.d")
    try:
        config = host.file("/etc/containerd/config.toml").content_string.replace("/etc/containerd/conf.d/", f"{probe}/conf.d/")
        host.run_expect([0], f"cat > {probe}/config.toml <<'EOF'\n{config}EOF")
        host.run_expect([0], f"cat > {probe}/conf.d/99-naive.toml <<'EOF'\n{naive}EOF")
        dump = host.check_output(f"containerd --config {probe}/config.toml config dump")
    finally:
        host.run_expect([0], f"rm -rf {probe}")
    assert dump_table(dump, f"{CRI}.containerd.runtimes.nvidia.options")["BinaryName"] == '"/usr/bin/nvidia-container-runtime"'
    # The whole CRI section is the drop-in's now: runc's options (SystemdCgroup = true), the pinned sandbox
    # image and the registry directory of config.toml are gone (measured: containerd 1.6 and 1.7 do not
    # even list runc's options table any more).
    assert not re.search(r"^\s*SystemdCgroup = true$", dump, re.M)
    assert dump_table(dump, CRI)["sandbox_image"] != '"registry.k8s.io/pause:3.10.1"'
    assert dump_table(dump, f"{CRI}.registry").get("config_path") != '"/etc/containerd/certs.d"'


# --------------------------------------------------------------------------------- kubernetes_packages
def test_kubernetes_source_is_signed_by_the_keyring(host):
    sources = host.file("/etc/apt/sources.list.d/kubernetes.sources").content_string
    assert "URIs: https://pkgs.k8s.io/core:/stable:/v1.34/deb/" in sources
    assert "Signed-By: /etc/apt/keyrings/kubernetes-apt-keyring.asc" in sources


def test_keyring_holds_the_expected_key(host):
    out = host.check_output("gpg --batch --show-keys --with-colons /etc/apt/keyrings/kubernetes-apt-keyring.asc")
    assert f"fpr:::::::::{TEST_KEY_FINGERPRINT}:" in out


def test_apt_reads_the_source_and_the_pin(host):
    # --print-uris lists what apt would fetch without touching the network.
    uris = host.check_output("apt-get update --print-uris")
    assert "'https://pkgs.k8s.io/core:/stable:/v1.34/deb/InRelease'" in uris
    policy = host.run("apt-cache policy")
    assert policy.rc == 0 and "E:" not in policy.stderr
    pref = host.file("/etc/apt/preferences.d/kubernetes").content_string
    assert "Package: kubelet kubeadm kubectl" in pref
    assert "Pin: version 1.34.2-1.1" in pref and "Pin-Priority: 1001" in pref


# --------------------------------------------------------------------------------- reset
# side_effect.yml left a Flannel configuration, a cni0 bridge with a pod-network address and a flannel.1
# interface on both nodes, then ran the reset of kubeadm_control_plane (Debian 12) and kubeadm_worker (Debian 13).
def test_reset_empties_the_cni_configuration_directory_but_keeps_it(host):
    """Deleting /etc/cni/net.d itself while containerd runs kills containerd's watcher of it: the next
    cluster's Flannel configuration would never be loaded."""
    net_d = host.file("/etc/cni/net.d")
    assert net_d.is_directory, "/etc/cni/net.d must survive the reset"
    assert net_d.listdir() == []


def test_reset_removes_the_cni_interfaces(host):
    # Written by side_effect.yml right after it created cni0 and flannel.1: without it there was nothing to remove.
    assert host.file("/root/containerd-before-reset").exists, "side_effect.yml did not run: no interfaces to reset"
    links = host.check_output("ip -o link show")
    names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
    assert not {"cni0", "flannel.1"} & names, links


def test_reset_restarts_the_container_runtime(host):
    before = host.file("/root/containerd-before-reset").content_string.strip()
    now = host.check_output("systemctl show --property=InvocationID --value containerd")
    assert before and now != before, "containerd still runs with the old network state"
    assert host.service("containerd").is_running
    rows = [r.split() for r in host.check_output("ctr plugins ls").splitlines()]
    assert [r[-1] for r in rows if len(r) >= 4 and r[0] == "io.containerd.grpc.v1" and r[1] == "cri"] == ["ok"]


# --------------------------------------------------------------------------------- kubelet resources
# converge wrote /etc/default/kubelet; side_effect.yml then gave a "joined" node (stand-in kubelet unit,
# /var/lib/kubelet/config.yaml, CPU and memory manager checkpoints) an exclusive-CPU policy.
def test_kubelet_reads_its_drop_in_directory(host):
    """kubeadm's 10-kubeadm.conf appends $KUBELET_EXTRA_ARGS from /etc/default/kubelet."""
    env = host.file("/etc/default/kubelet").content_string
    assert 'KUBELET_EXTRA_ARGS="--config-dir=/etc/kubernetes/kubelet.conf.d"' in env.splitlines()
    assert host.file("/etc/kubernetes/kubelet.conf.d").is_directory


def test_kubelet_resource_drop_in(host):
    dropin = host.file("/etc/kubernetes/kubelet.conf.d/50-ailab-resources.conf")
    text = dropin.content_string
    assert "kind: KubeletConfiguration" in text and "apiVersion: kubelet.config.k8s.io/v1beta1" in text
    assert "cpuManagerPolicy: static" in text and "topologyManagerPolicy: single-numa-node" in text
    assert dropin.mode == 0o644


def test_changed_policy_resets_the_manager_checkpoints_and_restarts_kubelet(host):
    """The kubelet refuses to start with a checkpoint of another CPU or memory manager policy."""
    assert not host.file("/var/lib/kubelet/cpu_manager_state").exists
    assert not host.file("/var/lib/kubelet/memory_manager_state").exists
    assert host.file("/var/lib/kubelet/config.yaml").exists
    before = host.file("/root/kubelet-before-policy").content_string.strip()
    now = host.check_output("systemctl show --property=InvocationID --value kubelet")
    assert before and now != before, "the kubelet was not restarted"
    assert host.service("kubelet").is_running
