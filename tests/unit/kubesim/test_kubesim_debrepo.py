# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubesim.debrepo: the signed apt repositories of stand-in kubeadm, kubelet and kubectl packages.

One build per module (two versions, two minors). apt itself is exercised in the kubernetes_cluster
scenario; here: the layout, the index hashes, the signature against the exported key only, and what
each package installs.
"""

import gzip
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from kubesim import debrepo

pytestmark = pytest.mark.skipif(
    not (shutil.which("dpkg-deb") and shutil.which("gpg") and shutil.which("gpgv")),
    reason="kubesim.debrepo needs dpkg-deb, gpg and gpgv (Debian: dpkg, gnupg, gpgv)",
)

VERSIONS = ["1.34.2-1.1", "1.35.0-1.1"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("apt")
    return out, debrepo.build(str(out), VERSIONS)


def stanzas(text):
    return [dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(" "))
            for block in text.strip().split("\n\n")]


def test_one_flat_repository_per_minor_with_the_three_packages(repo):
    out, result = repo
    assert sorted(result["repositories"]) == ["1.34", "1.35"]
    for series, version in (("1.34", "1.34.2-1.1"), ("1.35", "1.35.0-1.1")):
        packages = stanzas((out / f"v{series}" / "Packages").read_text())
        assert sorted((s["Package"], s["Version"]) for s in packages) == [
            (name, version) for name in ("kubeadm", "kubectl", "kubelet")]
        for stanza in packages:
            data = (out / f"v{series}" / stanza["Filename"]).read_bytes()
            assert int(stanza["Size"]) == len(data)
            assert stanza["SHA256"] == hashlib.sha256(data).hexdigest()
        assert gzip.decompress((out / f"v{series}" / "Packages.gz").read_bytes()).decode() == \
            (out / f"v{series}" / "Packages").read_text()


def test_release_lists_the_indexes_by_hash(repo):
    out, _result = repo
    release = (out / "v1.35" / "Release").read_text()
    listed = dict((line.split()[2], line.split()[0]) for line in release.split("SHA256:\n", 1)[1].splitlines())
    assert listed == {name: hashlib.sha256((out / "v1.35" / name).read_bytes()).hexdigest()
                      for name in ("Packages", "Packages.gz")}
    assert "Date: " in release


def test_release_is_signed_by_the_exported_key_only(repo, tmp_path):
    out, result = repo
    assert (out / "Release.key").read_text() == result["key"]
    assert (out / "fingerprint").read_text().strip() == result["fingerprint"]
    keyring = tmp_path / "keyring.gpg"
    subprocess.run(["gpg", "--batch", "--homedir", str(tmp_path), "--dearmor", "--output", str(keyring)],
                   input=result["key"].encode(), check=True)
    good = subprocess.run(["gpgv", "--keyring", str(keyring), str(out / "v1.35" / "InRelease")], check=False, capture_output=True)
    assert good.returncode == 0, good.stderr
    detached = subprocess.run(["gpgv", "--keyring", str(keyring), str(out / "v1.34" / "Release.gpg"),
                               str(out / "v1.34" / "Release")], check=False, capture_output=True)
    assert detached.returncode == 0, detached.stderr
    # A changed index no longer matches the signed Release: apt would refuse it.
    tampered = tmp_path / "Release"
    tampered.write_text((out / "v1.34" / "Release").read_text().replace("Origin: kubesim", "Origin: other"))
    bad = subprocess.run(["gpgv", "--keyring", str(keyring), str(out / "v1.34" / "Release.gpg"), str(tampered)],
                         check=False, capture_output=True)
    assert bad.returncode != 0


@pytest.mark.parametrize("name", debrepo.PACKAGES)
def test_each_package_installs_the_double_and_its_version_file(repo, tmp_path, name):
    out, _result = repo
    deb = out / "v1.35" / f"{name}_1.35.0-1.1_all.deb"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    assert (tmp_path / "etc" / "kubesim" / f"{name}-version").read_text() == "v1.35.0\n"
    wrapper = tmp_path / "usr" / "bin" / name
    assert os.access(wrapper, os.X_OK)
    assert f"python3 -m kubesim.{name} " in wrapper.read_text()
    contents = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    assert all(" root/root " in line for line in contents.splitlines())


def test_the_packages_are_reproducible(repo, tmp_path):
    out, _result = repo
    again = debrepo.build_deb("kubelet", "1.34.2-1.1", str(tmp_path))
    assert open(again, "rb").read() == (out / "v1.34" / "kubelet_1.34.2-1.1_all.deb").read_bytes()


def test_a_version_without_revision_is_refused(tmp_path, capsys):
    assert debrepo.main([str(tmp_path), "--version", "1.35.0"]) == 2
    assert "must look like 1.34.2-1.1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_main_prints_the_key_and_the_repositories(tmp_path, capsys):
    assert debrepo.main([str(tmp_path), "--version", "1.35.0-1.1", "--package", "kubelet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["repositories"] == {"1.35": str(tmp_path / "v1.35")}
    assert sorted(os.listdir(tmp_path / "v1.35")) == [
        "InRelease", "Packages", "Packages.gz", "Release", "Release.gpg", "kubelet_1.35.0-1.1_all.deb"]
