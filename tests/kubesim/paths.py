# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's files, under KUBESIM_ROOT (default /) so that unit tests run the doubles in a temp dir."""

import os
import shutil
import subprocess


def root():
    return os.environ.get("KUBESIM_ROOT", "/")


def p(path):
    return os.path.join(root(), path.lstrip("/"))


ETC = "/etc/kubernetes"
PKI = "/etc/kubernetes/pki"
MANIFESTS = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
ETCD_DIR = "/var/lib/etcd"


def write(path, content, mode=0o600):
    target = p(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as f:
        f.write(content)
    os.chmod(target, mode)


def read(path):
    with open(p(path)) as f:
        return f.read()


def exists(path):
    return os.path.exists(p(path))


def remove(path):
    target = p(path)
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)
    elif os.path.lexists(target):
        os.unlink(target)


def systemctl(*args):
    """Run systemctl on a systemd host (not in unit tests: KUBESIM_ROOT set or no systemd)."""
    if root() != "/" or not os.path.isdir("/run/systemd/system"):
        return 0
    return subprocess.run(["systemctl", *args], check=False, capture_output=True).returncode
