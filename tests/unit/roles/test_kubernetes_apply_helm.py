"""kubernetes_apply installs its pinned helm binary in apply mode: the archive is checked against the
published .sha256sum, a re-run with the pinned version in place changes nothing, and a wrong checksum
installs nothing. A loopback HTTP server stands in for get.helm.sh (same layout)."""

import hashlib
import http.server
import io
import tarfile
import threading
from functools import partial

import pytest

from unit.roles.playbook_runner import local_inventory, run_playbook

VERSION = "v3.19.3"
ARCHIVE = f"helm-{VERSION}-linux-amd64.tar.gz"


def fake_archive(version):
    """A helm release archive whose helm prints ``version`` for `helm version --template {{.Version}}`."""
    script = f"#!/bin/sh\necho {version}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("linux-amd64/helm")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    return buf.getvalue()


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    data = fake_archive(VERSION)
    (root / ARCHIVE).write_bytes(data)
    (root / f"{ARCHIVE}.sha256sum").write_text(f"{hashlib.sha256(data).hexdigest()}  {ARCHIVE}\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def install(tmp_path, url, dest):
    task = {"name": "Install helm",
            "ansible.builtin.include_role": {"name": "ailab.cluster.kubernetes_apply", "tasks_from": "helm_binary.yml"}}
    plays = [{"name": "helm", "hosts": "h1", "gather_facts": False, "tasks": [task]}]
    inventory = local_inventory({"helm_hosts": ["h1"]}, host_vars={"h1": {
        "kubernetes_apply_helm_download_url": url, "kubernetes_apply_helm_install_path": str(dest)}})
    return run_playbook(tmp_path, plays, inventory)


def test_installs_the_pinned_helm_once(tmp_path, mirror):
    _root, url = mirror
    dest = tmp_path / "bin" / "helm"
    dest.parent.mkdir()
    first = install(tmp_path, url, dest)
    assert first.rc == 0, first.stdout[-3000:]
    assert first.stats["h1"]["changed"] >= 1
    assert dest.read_text().startswith("#!/bin/sh") and dest.stat().st_mode & 0o111
    second = install(tmp_path, url, dest)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.stats["h1"]["changed"] == 0


def test_another_installed_version_is_replaced(tmp_path, mirror):
    _root, url = mirror
    dest = tmp_path / "helm"
    dest.write_text("#!/bin/sh\necho v3.12.0\n")
    dest.chmod(0o755)
    run = install(tmp_path, url, dest)
    assert run.rc == 0, run.stdout[-3000:]
    assert VERSION in dest.read_text()


def test_a_wrong_checksum_installs_nothing(tmp_path, mirror):
    root, url = mirror
    (root / f"{ARCHIVE}.sha256sum").write_text(f"{'0' * 64}  {ARCHIVE}\n")
    dest = tmp_path / "helm"
    run = install(tmp_path, url, dest)
    assert run.rc != 0
    assert "checksum" in (run.failure("h1") or "").lower()
    assert not dest.exists()
