"""The sandbox's node containers through the docker CLI: one systemd container per Kubernetes node VM
(inventories/sandbox/hosts.yml), labelled ailab.sandbox=1 so that `make lab-clean` finds them, with the
kubeadm/kubelet/kubectl test double's package (tests/kubesim) and its state volume (same label) mounted.

The decisions (create / start / reuse / recreate, the `docker run` flags) are pure functions in
sandbox.py; this module only runs docker.
"""

import json
import subprocess
import time

from sandbox import KUBESIM_VOLUME, LABEL, cluster_actions, container_action, docker_run_args, kubesim_mounts


class ContainerError(RuntimeError):
    """A container could not be made ready; the message says which and why."""


def docker(*args, check=True):
    """Run `docker ARGS`; return the CompletedProcess (text)."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise ContainerError(f"docker {' '.join(args[:2])}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def docker_available():
    """True when the docker CLI exists and the daemon answers."""
    try:
        return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def image_present(image):
    return docker("image", "inspect", image, check=False).returncode == 0


def inspect(container):
    proc = docker("container", "inspect", container, check=False)
    if proc.returncode:
        return None
    return json.loads(proc.stdout)[0]


def wait_for_systemd(container, timeout=90.0):
    """Wait until systemd in the container has booted (running or degraded)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        proc = docker("exec", container, "systemctl", "is-system-running", check=False)
        state = proc.stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(1)
    raise ContainerError(f"{container}: systemd did not finish booting in {timeout:.0f}s (state: {state or 'none'}); "
                         f"see: docker logs {container}")


def ensure(nodes, kubesim_package):
    """Make every (host, container, image) ready, with ``kubesim_package`` (tests/kubesim) and the kubesim
    state volume mounted; return {container: action taken}. When one container is new, every one is and
    the state volume starts empty (sandbox.cluster_actions says why)."""
    mounts = kubesim_mounts(kubesim_package)
    actions = {}
    for host, container, image in nodes:
        if not image_present(image):
            raise ContainerError(f"image {image} (for {host}) is missing: build it with make images")
        actions[container] = container_action(inspect(container), image, mounts)
    actions, fresh = cluster_actions(actions)
    for container, action in actions.items():
        if action == "recreate":
            docker("rm", "--force", "--volumes", container)
    if fresh:
        docker("volume", "rm", "--force", KUBESIM_VOLUME)
    if docker("volume", "inspect", KUBESIM_VOLUME, check=False).returncode:
        docker("volume", "create", "--label", f"{LABEL}=1", KUBESIM_VOLUME)
    for host, container, image in nodes:
        action = actions[container]
        if action in ("create", "recreate"):
            docker(*docker_run_args(container, host, image, mounts))
        elif action == "start":
            docker("start", container)
    for _host, container, _image in nodes:
        wait_for_systemd(container)
    # A new container has no apt lists (the images ship without them), as a new cloud VM has stale
    # ones: fetch them once, as the molecule scenarios' prepare step does. Later runs keep them
    # (inventories/sandbox/group_vars/k8s_cluster/kubernetes_packages.yml says why).
    for container, action in actions.items():
        if action in ("create", "recreate"):
            proc = docker("exec", container, "apt-get", "update", "-qq", check=False)
            if proc.returncode:
                raise ContainerError(f"{container}: apt-get update failed (is deb.debian.org reachable?): "
                                     f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    return actions


def containers_ready(nodes, kubesim_package):
    """True when every node container runs its image with the kubesim mounts (ensure would reuse them all)."""
    mounts = kubesim_mounts(kubesim_package)
    return all(container_action(inspect(container), image, mounts) == "reuse" for _host, container, image in nodes)


def kubesim_dump(container):
    """The kubesim cluster state (``python3 -m kubesim.ctl dump`` in ``container``) as a dict."""
    proc = docker("exec", "--env", "PYTHONPATH=/usr/lib/kubesim", container, "python3", "-m", "kubesim.ctl", "dump")
    return json.loads(proc.stdout)


def remove_all():
    """Remove every container labelled ailab.sandbox=1 with its volumes, then the volumes with that label
    (the kubesim state); return their names."""
    proc = docker("ps", "--all", "--filter", f"label={LABEL}=1", "--format", "{{.Names}}", check=False)
    names = proc.stdout.split()
    if names:
        docker("rm", "--force", "--volumes", *names)
    proc = docker("volume", "ls", "--quiet", "--filter", f"label={LABEL}=1", check=False)
    volumes = proc.stdout.split()
    if volumes:
        docker("volume", "rm", "--force", *volumes)
    return names + volumes
