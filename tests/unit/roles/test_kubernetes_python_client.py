"""kubeadm_control_plane's Kubernetes Python client (tasks/python.yml): the pinned client is not below what the
installed kubernetes.core needs, bad settings stop before anything is installed, and the install on a Debian 12
systemd container (ailab-test/debian:12) from pip's default index gives exactly the pinned packages, changes nothing
on a re-run, and writes nothing in check mode. (The wheel-directory path is checked here only up to its preflight:
its copy costs a module run per wheel, too slow for this tier on a loaded machine.)

The apply path with the oldest and the pinned client is tests/unit/kubesim/test_kubernetes_client_apply.py.
"""

import json
import shutil
import subprocess
import uuid

import pytest
import yaml

from unit.kubernetes_python_client import ROLE, kubernetes_core_minimums, pins, role_defaults, role_minimum, \
    version_tuple
from unit.roles.playbook_runner import UNREACHABLE, local_inventory, run_playbook, shared_run

IMAGE = "ailab-test/debian:12"
TAGS = ("--tags", "kubeadm_control_plane_install")


def test_pinned_client_meets_kubernetes_core():
    minimums = kubernetes_core_minimums()
    pinned = pins()["kubernetes"]
    assert version_tuple(pinned) >= version_tuple(minimums["warn"]), (pinned, minimums)
    assert version_tuple(pinned) >= version_tuple(minimums["server_side_apply"]), (pinned, minimums)
    # The oldest client the role accepts is the one kubernetes.core runs without a warning.
    assert role_minimum() == minimums["warn"]


def test_argument_spec_defaults_are_the_pins():
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    defaults = role_defaults()
    for name in ("kubeadm_control_plane_python_requirements", "kubeadm_control_plane_python_packages",
                 "kubeadm_control_plane_python_venv", "kubeadm_control_plane_python_index_url",
                 "kubeadm_control_plane_python_wheel_dir"):
        assert spec[name]["default"] == defaults[name], name
    assert all(pin.count("==") == 1 for pin in defaults["kubeadm_control_plane_python_requirements"])


# Each bad setting on its own unreachable host: the check fails before any task touches the host.
PINS = role_defaults()["kubeadm_control_plane_python_requirements"]
BAD = {
    "unpinned": ({"kubeadm_control_plane_python_requirements": ["kubernetes>=30.1.0", *PINS[1:]]},
                 'these are not pins: ["kubernetes>=30.1.0"]'),
    "too_old": ({"kubeadm_control_plane_python_requirements": ["kubernetes==22.6.0", *PINS[1:]]},
                'kubernetes pins: ["22.6.0"]'),
    "no_client": ({"kubeadm_control_plane_python_requirements": PINS[1:]}, "kubernetes pins: []"),
    "other_venv": ({"kubeadm_control_plane_python_venv": "/srv/k8s-python"},
                   "(is '/opt/ailab/python/bin/python3'): set both, or neither"),
    "two_sources": ({"kubeadm_control_plane_python_index_url": "https://pypi.lab.example/simple",
                     "kubeadm_control_plane_python_wheel_dir": "/srv/wheels"}, "not both"),
    "bad_index": ({"kubeadm_control_plane_python_index_url": "pypi.lab.example/simple"},
                  "(an http(s):// or file:// simple index, is 'pypi.lab.example/simple')"),
    "no_wheels": ({"kubeadm_control_plane_python_wheel_dir": "/nonexistent/ailab-wheels"},
                  "is not a directory of wheels on the controller"),
}
# Accepted settings that install nothing: the client comes from elsewhere; another venv named both ways.
GOOD = {"elsewhere": {"kubeadm_control_plane_install_python_packages": False,
                      "kubeadm_control_plane_python_requirements": []}}


@pytest.fixture(scope="module")
def preflight(tmp_path_factory):
    def build(tmp):
        host_vars = {name: dict(UNREACHABLE, **settings) for name, (settings, _msg) in BAD.items()}
        host_vars.update({name: dict(UNREACHABLE, **settings) for name, settings in GOOD.items()})
        plays = [{"name": "Python client", "hosts": "kube_control_plane", "gather_facts": False, "become": True,
                  "roles": ["ailab.cluster.kubeadm_control_plane"]}]
        return run_playbook(tmp, plays, local_inventory({"kube_control_plane": [*BAD, *GOOD]}, host_vars=host_vars),
                            *TAGS)
    return shared_run(tmp_path_factory, "kubernetes-python-client-preflight", build)[1]


@pytest.mark.parametrize("host", BAD)
def test_bad_setting_stops_before_install(preflight, host):
    stats = preflight.stats[host]
    assert (stats["failures"], stats["unreachable"], stats["changed"]) == (1, 0, 0), stats
    assert BAD[host][1] in " ".join(preflight.failure(host).split())


def test_install_disabled_touches_nothing(preflight):
    assert preflight.rc != 0  # the bad hosts
    stats = preflight.stats["elsewhere"]
    assert (stats["failures"], stats["unreachable"], stats["changed"]) == (0, 0, 0), stats


# --- the install on a Debian 12 systemd container --------------------------------------------------------


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=300)


@pytest.fixture(scope="module")
def container():
    if shutil.which("docker") is None or docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip(f"docker or the image {IMAGE} is not available (make images)")
    name = f"ailab-kpc-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "--cgroupns=host", "--cap-add", "SYS_ADMIN", "--security-opt",
           "seccomp=unconfined", "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
           IMAGE, "/lib/systemd/systemd")
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def container_run(tmp, name, *args, check=False, plays=None):
    inventory = local_inventory({"kube_control_plane": ["cp1"]}, host_vars={"cp1": {
        "ansible_connection": "community.docker.docker", "ansible_host": name,
        "ansible_python_interpreter": "/usr/bin/python3"}})
    role = {"name": "Python client", "hosts": "cp1", "gather_facts": False, "become": True,
            "roles": ["ailab.cluster.kubeadm_control_plane"]}
    return run_playbook(tmp, plays or [role], inventory, *TAGS, *args, check=check)


def changed_tasks(run, play_index=None):
    plays = run.data["plays"] if play_index is None else [run.data["plays"][play_index]]
    return [task["task"]["name"] for play in plays for task in play["tasks"]
            if task["hosts"].get("cp1", {}).get("changed")]


def test_install_on_debian12_container(tmp_path, container):
    # A real node has package lists; the image has none, and check mode does not update them.
    for _attempt in range(3):  # a mirror mid-sync answers 100 now and then
        if docker("exec", container, "apt-get", "update", "-qq", check=False).returncode == 0:
            break
    else:
        pytest.fail("apt-get update failed three times in the container")
    # This machine reaches PyPI through a TLS-inspecting proxy: the container trusts the controller's CA bundle
    # (/etc/pip.conf, as a lab behind such a proxy does); the role itself is unchanged.
    docker("cp", "/etc/ssl/certs/ca-certificates.crt", f"{container}:/etc/ssl/certs/ailab-controller-ca.crt")
    docker("exec", container, "sh", "-c", "printf '[global]\\ncert = /etc/ssl/certs/ailab-controller-ca.crt\\n' > /etc/pip.conf")
    # Check mode on a fresh node: reports what it would do, writes nothing.
    (tmp_path / "check").mkdir()
    check = container_run(tmp_path / "check", container, check=True)
    assert check.rc == 0, check.failure("cp1") or check.stdout[-3000:]
    assert "Install the packages that build the virtual environment" in " ".join(changed_tasks(check))
    assert check.results("Say why check mode cannot compare the client", "cp1")[0].get("msg")
    assert docker("exec", container, "test", "-e", "/opt/ailab/python", check=False).returncode == 1
    assert docker("exec", container, "test", "-e", "/opt/ailab/python-wheels", check=False).returncode == 1

    # Install, install again (changed=0), check mode again (changed=0): one run, three plays.
    role = {"hosts": "cp1", "gather_facts": False, "become": True, "roles": ["ailab.cluster.kubeadm_control_plane"]}
    plays = [dict(role, name="Install"), dict(role, name="Install again"),
             dict(role, name="Check mode", check_mode=True)]
    (tmp_path / "converge").mkdir()
    run = container_run(tmp_path / "converge", container, plays=plays)
    assert run.rc == 0, run.failure("cp1") or run.stdout[-3000:]
    assert changed_tasks(run, 0), "the first install changed nothing"
    assert changed_tasks(run, 1) == [] and changed_tasks(run, 2) == [], (changed_tasks(run, 1), changed_tasks(run, 2))

    # Exactly the pins, and the client imports with what kubernetes.core and kubeadm_token need.
    freeze = docker("exec", container, "/opt/ailab/python/bin/python3", "-m", "pip", "list", "--format=json",
                    "--exclude", "pip", "--exclude", "setuptools").stdout
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(freeze)}
    assert installed == {name.lower(): version for name, version in pins().items()}
    probe = ("import kubernetes, yaml, jsonpatch, cryptography, requests_oauthlib; "
             "from kubernetes.dynamic import DynamicClient; print(kubernetes.__version__)")
    out = docker("exec", container, "/opt/ailab/python/bin/python3", "-c", probe).stdout.strip()
    assert out == pins()["kubernetes"]
