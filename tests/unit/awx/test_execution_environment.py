"""execution-environment.yml: `ansible-builder create` (no registry, no image build) writes a build
context from it and the collection tarball; the context installs the pinned ansible-core and
ansible-runner, the collection and the collections it depends on, the collection's Python and system
dependencies (meta/execution-environment.yml, read by ansible-builder's own introspection from the
built tarball), and kubectl and helm at the roles' versions, each checked against a SHA-256."""

import re
import shutil
import subprocess
import sys
import tarfile
from importlib import resources
from pathlib import Path

import pytest
import yaml

from unit.roles.playbook_runner import ROOT

BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
TARBALL = f"ailab-cluster-{GALAXY['version']}.tar.gz"


def pinned(name):
    """The version constraints.txt pins for a Python package."""
    match = re.search(rf"^{re.escape(name)}==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M | re.I)
    assert match, name
    return match.group(1)


def role_default(role, variable):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())[variable]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The build context of execution-environment.yml with a freshly built collection tarball."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(ROOT / "execution-environment.yml", work / "execution-environment.yml")
    subprocess.run([BIN / "ansible-galaxy", "collection", "build", "--output-path", work / "build", ROOT],
                   check=True, capture_output=True, cwd=ROOT)
    subprocess.run([BIN / "ansible-builder", "create", "-f", "execution-environment.yml", "-c", "context",
                    "--output-filename", "Containerfile"], check=True, capture_output=True, cwd=work)
    return work / "context"


def test_the_context_is_complete(context):
    assert (context / "Containerfile").is_file()
    assert (context / "_build" / "collection" / TARBALL).is_file()
    for name in ("requirements.txt", "requirements.yml", "bindep.txt"):
        assert (context / "_build" / name).is_file(), name


def test_base_image_and_ansible_are_pinned(context):
    containerfile = (context / "Containerfile").read_text()
    image = re.search(r'^ARG EE_BASE_IMAGE="([^"]+)"', containerfile, re.M).group(1)
    assert re.search(r"(@sha256:[0-9a-f]{64}|:[\w.-]+)$", image) and not image.endswith(":latest"), image
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]+)"', containerfile, re.M).group(1).split()
    assert refs == [f"ansible-core=={pinned('ansible-core')}", "ansible-runner==2.4.3"]
    # ansible-core 2.21 needs Python 3.12+.
    assert re.search(r'^ARG PYCMD="/usr/bin/python3\.1[2-9]"', containerfile, re.M)


def test_the_collection_and_its_dependencies_go_in(context):
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert {c["name"] for c in requirements["collections"]} == set(GALAXY["dependencies"])
    bundled = ROOT / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for collection in requirements["collections"]:
        manifest = bundled / "ansible_collections" / collection["name"].replace(".", "/") / "MANIFEST.json"
        if manifest.exists():  # the versions the tests run with
            assert yaml.safe_load(manifest.read_text())["collection_info"]["version"] == collection["version"]
    containerfile = (context / "Containerfile").read_text()
    galaxy_stage = containerfile.split("FROM base AS galaxy")[1].split("FROM base AS builder")[0]
    assert 'ansible-galaxy collection install --no-deps "$1" --collections-path /usr/share/ansible/collections' in galaxy_stage
    assert "/build/collection/ailab-cluster-*.tar.gz" in galaxy_stage
    python = (context / "_build" / "requirements.txt").read_text().split()
    for package in ("proxmoxer", "requests", "cryptography", "kubernetes"):
        assert f"{package}=={pinned(package)}" in python


def test_builder_introspection_finds_the_collection_requirements(context, tmp_path):
    """ansible-builder's own introspect.py, run on the collection as the tarball installs it."""
    target = tmp_path / "collections" / "ansible_collections" / "ailab" / "cluster"
    target.mkdir(parents=True)
    with tarfile.open(context / "_build" / "collection" / TARBALL) as tar:
        tar.extractall(target, filter="data")
    introspect = resources.files("ansible_builder._target_scripts") / "introspect.py"
    out = subprocess.run([sys.executable, str(introspect), "introspect", str(tmp_path / "collections")],
                         check=True, capture_output=True, text=True).stdout
    found = yaml.safe_load(out)
    assert all(line.endswith("# from collection ailab.cluster") for line in found["python"] + found["system"])
    python = [line.split()[0] for line in found["python"]]
    assert python == ["proxmoxer>=2.0,<3", "requests>=2.31", "cryptography>=42"]
    assert "openssh-clients [platform:rpm]  # from collection ailab.cluster" in found["system"]


def test_kubectl_and_helm_are_pinned_and_checked(context):
    containerfile = (context / "Containerfile").read_text()
    final = containerfile.split("FROM base AS final")[1]
    kubernetes = role_default("kubernetes_packages", "kubernetes_packages_version")
    assert f"ARG KUBECTL_VERSION=v{kubernetes}" in final
    assert f"ARG HELM_VERSION={role_default('kubernetes_apply', 'kubernetes_apply_helm_version')}" in final
    for tool, download in (("KUBECTL", "/tmp/kubectl"), ("HELM", "/tmp/helm.tar.gz")):
        assert f'echo "${tool}_SHA256  {download}" | sha256sum -c -' in final
        # No checksum, no image: the build stops before downloading anything.
        assert f'[ -z "${tool}_SHA256" ]' in final.split("curl")[0]
    assert final.index("sha256sum -c") < final.index("install -m 0755 /tmp/kubectl")
    # Installed as root, before the image switches to its unprivileged user.
    assert final.index("/usr/local/bin/helm") < final.index("USER 1000")
