"""The pinned Kubernetes Python client of kubeadm_control_plane, read from the role, and virtual environments
with a given client version under .cache/ for the tests that run kubernetes.core with it.

The pins are the role's own (defaults/main.yml); the oldest supported client is the minimum the role's
python.yml enforces; kubernetes.core's own requirements are read from the installed collection.
"""

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

import ansible_collections.kubernetes.core as kubernetes_core

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "kubeadm_control_plane"
CACHE = ROOT / ".cache" / "kubernetes-python-client"
KUBERNETES_CORE = Path(kubernetes_core.__path__[0])
# The Python of the controller's OS, Debian 12's 3.11 as on a Debian 12 control plane.
SYSTEM_PYTHON = "/usr/bin/python3"


def role_defaults():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def pins():
    """The role's pins as {name: version}, in their order."""
    return dict(pin.split("==", 1) for pin in role_defaults()["kubeadm_control_plane_python_requirements"])


def role_minimum():
    """The oldest client the role accepts (kubeadm_control_plane python.yml)."""
    install = yaml.safe_load((ROLE / "tasks" / "install.yml").read_text())
    return str(install[0]["vars"]["_kubeadm_control_plane_python_kubernetes_min"])


def kubernetes_core_minimums():
    """kubernetes.core's client requirements, from the installed collection's module_utils:
    {'warn': the version below which every task warns, 'server_side_apply': the one SSA needs}."""
    core = (KUBERNETES_CORE / "plugins/module_utils/k8s/core.py").read_text()
    service = (KUBERNETES_CORE / "plugins/module_utils/k8s/service.py").read_text()
    warn = re.search(r'has_at_least\(\s*"kubernetes",\s*"([0-9.]+)",\s*warn=True', core)
    ssa = re.search(r'requires\(\s*"kubernetes",\s*"([0-9.]+)",\s*reason="to use server side apply"', service)
    assert warn and ssa, "kubernetes.core no longer states its client requirements where this test reads them"
    return {"warn": warn.group(1), "server_side_apply": ssa.group(1)}


def version_tuple(version):
    return tuple(int(part) for part in re.findall(r"[0-9]+", version)[:3])


def _pip(python, *args):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True, check=False, env=env,
                          timeout=600)


def client_venv(kubernetes_version):
    """A virtual environment (system Python) with the role's pins, kubernetes==``kubernetes_version``.

    Built once under .cache/ (keyed by the requirements); skips when PyPI cannot be reached to build it."""
    requirements = [f"{name}=={version}" for name, version in pins().items() if name != "kubernetes"]
    requirements.insert(0, f"kubernetes=={kubernetes_version}")
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    venv = CACHE / f"venv-{kubernetes_version}-{key}"
    stamp = venv / ".complete"
    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{venv}.lock"):
        if not stamp.exists():
            if not Path(SYSTEM_PYTHON).exists():
                pytest.skip(f"{SYSTEM_PYTHON} is not there to build the client venv")
            subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
            proc = _pip(str(venv / "bin" / "python"), "install", "--only-binary=:all:", *requirements)
            if proc.returncode != 0:
                if "Could not find a version" in proc.stderr or "NewConnectionError" in proc.stderr \
                        or "No matching distribution" in proc.stderr:
                    pytest.skip(f"PyPI cannot be reached to install {requirements[0]}: {proc.stderr[-300:]}")
                raise AssertionError(f"pip install {requirements} failed:\n{proc.stderr}")
            stamp.write_text("\n".join(requirements) + "\n")
    return venv / "bin" / "python"
