# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A signed apt repository of stand-in kubeadm, kubelet and kubectl packages, built at test time.

``python3 -m kubesim.debrepo OUT --version 1.34.2-1.1 --version 1.35.0-1.1`` writes, for each minor, a flat
repository laid out as pkgs.k8s.io serves them (``OUT/v1.34/``: ``Packages``, ``Packages.gz``, ``Release``,
``InRelease``, ``Release.gpg`` and the ``.deb`` files), the public key as ``OUT/Release.key`` (ASCII-armored)
and its fingerprint as ``OUT/fingerprint``, then prints ``{"key": ..., "fingerprint": ..., "repositories":
{"1.34": ...}}`` as JSON. The signing key is generated for this build (ed25519, no passphrase) in a temporary
GnuPG home that is deleted afterwards: apt verifies the repository with the public key only, as on a lab.

Each package installs what prepare.yml of the kubernetes_cluster scenario installs by hand: the kubesim wrapper
``/usr/bin/<name>`` (``python3 -m kubesim.<name>``) and the version file ``/etc/kubesim/<name>-version`` that
the doubles read (kubesim.versions), so that ``apt-get install kubelet=1.35.0-1.1`` upgrades the kubelet double.
The packages are ``Architecture: all`` and declare no dependencies (the real ones depend on cri-tools and
kubernetes-cni, which the doubles do not need). Needs dpkg-deb and gpg on the machine that builds.
"""

import argparse
import email.utils
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

PACKAGES = ("kubeadm", "kubelet", "kubectl")
KEY_UID = "kubesim test repository <kubesim@localhost>"
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)-[0-9][0-9A-Za-z.+~]*$")
# Fixed file times and build date: two builds of the same versions give the same .deb files.
_EPOCH = 1767225600  # 2026-01-01T00:00:00Z

WRAPPER = """#!/bin/sh
# kubesim double of {name} (tests/kubesim, docs/kubesim.md), package {name} {version}
PYTHONPATH=/usr/lib/kubesim exec python3 -m kubesim.{name} "$@"
"""


def minor(version):
    """'1.35' for a package version such as 1.35.0-1.1; ValueError for anything else."""
    match = _VERSION_RE.match(version)
    if not match:
        raise ValueError(f"package version {version!r} must look like 1.34.2-1.1 (upstream version, revision)")
    return f"{match.group(1)}.{match.group(2)}"


def upstream(version):
    return version.split("-", 1)[0]


def _write(path, content, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, mode)
    os.utime(path, (_EPOCH, _EPOCH))


def build_deb(name, version, directory):
    """Build ``<name>_<version>_all.deb`` in ``directory``; return its path."""
    with tempfile.TemporaryDirectory() as tree:
        _write(os.path.join(tree, "usr/bin", name), WRAPPER.format(name=name, version=version), 0o755)
        _write(os.path.join(tree, "etc/kubesim", f"{name}-version"), f"v{upstream(version)}\n")
        _write(os.path.join(tree, "DEBIAN/control"), (
            f"Package: {name}\nVersion: {version}\nArchitecture: all\nSection: admin\nPriority: optional\n"
            f"Maintainer: ailab.cluster tests <kubesim@localhost>\n"
            f"Description: kubesim stand-in for {name} {upstream(version)}\n"
            f" Installs the kubesim double of {name} and its version file (tests only).\n"))
        for folder, dirs, _files in os.walk(tree):
            for entry in dirs:
                os.utime(os.path.join(folder, entry), (_EPOCH, _EPOCH))
        path = os.path.join(directory, f"{name}_{version}_all.deb")
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, path], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, SOURCE_DATE_EPOCH=str(_EPOCH)))
    return path


def _control(deb):
    return subprocess.run(["dpkg-deb", "--field", deb], check=True, capture_output=True, text=True).stdout.strip()


def _digests(path):
    with open(path, "rb") as f:
        data = f.read()
    return len(data), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()  # noqa: S324 (apt's field)


def write_index(directory):
    """Packages, Packages.gz and Release of the flat repository in ``directory``."""
    stanzas = []
    for deb in sorted(f for f in os.listdir(directory) if f.endswith(".deb")):
        size, md5, sha256 = _digests(os.path.join(directory, deb))
        stanzas.append(f"{_control(os.path.join(directory, deb))}\nFilename: ./{deb}\nSize: {size}\n"
                       f"MD5sum: {md5}\nSHA256: {sha256}\n")
    packages = "\n".join(stanzas)
    _write(os.path.join(directory, "Packages"), packages)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=_EPOCH) as f:
        f.write(packages.encode())
    with open(os.path.join(directory, "Packages.gz"), "wb") as f:
        f.write(buffer.getvalue())
    lines = ["Origin: kubesim", "Label: kubesim test repository",
             f"Date: {email.utils.formatdate(_EPOCH, usegmt=True)}", "SHA256:"]
    for index in ("Packages", "Packages.gz"):
        size, dummy, sha256 = _digests(os.path.join(directory, index))
        lines.append(f" {sha256} {size} {index}")
    _write(os.path.join(directory, "Release"), "\n".join(lines) + "\n")


class Signer:
    """A throwaway ed25519 signing key in a temporary GnuPG home (``with Signer() as signer``)."""

    def __enter__(self):
        self.home = tempfile.mkdtemp(prefix="kubesim-gpg-")
        os.chmod(self.home, 0o700)
        self._gpg("--passphrase", "", "--quick-gen-key", KEY_UID, "ed25519", "sign", "never")
        listing = self._gpg("--with-colons", "--list-keys", KEY_UID)
        self.fingerprint = re.findall(r"(?m)^fpr:+([0-9A-F]{40}):", listing)[0]
        self.public_key = self._gpg("--armor", "--export", self.fingerprint)
        return self

    def __exit__(self, *exc):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], check=False, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def _gpg(self, *args):
        return subprocess.run(["gpg", "--homedir", self.home, "--batch", "--pinentry-mode", "loopback", *args],
                              check=True, capture_output=True, text=True).stdout

    def sign(self, directory):
        release = os.path.join(directory, "Release")
        for path in ("InRelease", "Release.gpg"):
            if os.path.exists(os.path.join(directory, path)):
                os.remove(os.path.join(directory, path))
        self._gpg("--local-user", self.fingerprint, "--digest-algo", "SHA256", "--clearsign",
                  "--output", os.path.join(directory, "InRelease"), release)
        self._gpg("--local-user", self.fingerprint, "--digest-algo", "SHA256", "--armor", "--detach-sign",
                  "--output", os.path.join(directory, "Release.gpg"), release)


def build(out, versions, packages=PACKAGES):
    """Build one signed flat repository per minor of ``versions`` under ``out``; return what main prints."""
    by_minor = {}
    for version in versions:
        by_minor.setdefault(minor(version), []).append(version)
    os.makedirs(out, exist_ok=True)
    repositories = {}
    with Signer() as signer:
        for series, series_versions in sorted(by_minor.items()):
            directory = os.path.join(out, f"v{series}")
            if os.path.isdir(directory):
                shutil.rmtree(directory)
            os.makedirs(directory)
            for version in series_versions:
                for name in packages:
                    build_deb(name, version, directory)
            write_index(directory)
            signer.sign(directory)
            repositories[series] = directory
        _write(os.path.join(out, "Release.key"), signer.public_key)
        _write(os.path.join(out, "fingerprint"), signer.fingerprint + "\n")
        return {"key": signer.public_key, "fingerprint": signer.fingerprint, "repositories": repositories}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m kubesim.debrepo", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("out", help="directory of the repositories (one per minor: OUT/v1.34/, OUT/v1.35/)")
    parser.add_argument("--version", action="append", required=True, dest="versions",
                        help="a package version as pkgs.k8s.io names them, e.g. 1.34.2-1.1 (repeat)")
    parser.add_argument("--package", action="append", dest="packages", choices=PACKAGES,
                        help="a package to build (repeat; default: kubeadm, kubelet and kubectl)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = build(os.path.abspath(args.out), args.versions, tuple(args.packages or PACKAGES))
    except ValueError as e:
        print(f"kubesim.debrepo: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
