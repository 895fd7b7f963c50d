"""The test tiers leave the user's installed collections alone and are not fooled by them.

An ailab.cluster installed in ~/.ansible/collections (a copy the user relies on) used to shadow the
checkout for ansible-lint and molecule, so the tiers deleted it. They now keep the tools' caches
inside the checkout (tests/harness/tier.py tool_cache_env) instead.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

import tier  # noqa: E402


def sentinel_home(tmp_path):
    home = tmp_path / "home"
    installed = home / ".ansible" / "collections" / "ansible_collections" / "ailab" / "cluster"
    installed.mkdir(parents=True)
    (installed / "galaxy.yml").write_text("namespace: ailab\nname: cluster\nversion: 0.0.1\n")
    (installed / "SENTINEL").write_text("the user's own copy\n")
    return home, installed


def test_lint_ignores_and_keeps_an_installed_copy(tmp_path):
    home, installed = sentinel_home(tmp_path)
    env = dict(os.environ, HOME=str(home), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), **tier.tool_cache_env())
    out = subprocess.run([Path(sys.executable).parent / "ansible-lint", "--nocolor", "roles/local_path"], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (installed / "SENTINEL").read_text() == "the user's own copy\n"
    assert sorted(p.name for p in installed.iterdir()) == ["SENTINEL", "galaxy.yml"]


def test_lint_with_the_users_cache_is_shadowed(tmp_path):
    """Without tool_cache_env the same run fails: the check above is not vacuous."""
    home, _installed = sentinel_home(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_HOME", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run([Path(sys.executable).parent / "ansible-lint", "--nocolor", "roles/local_path"], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "ailab.cluster.kubernetes_apply' was not found" in out.stdout + out.stderr


def test_fingerprint_sees_a_change(tmp_path, monkeypatch):
    home, installed = sentinel_home(tmp_path)
    monkeypatch.setattr(tier, "USER_COLLECTIONS", home / ".ansible" / "collections")
    before = tier.user_files_fingerprint()
    assert any(line.startswith("ansible_collections/ailab/cluster/SENTINEL ") for line in before)
    (installed / "SENTINEL").unlink()
    assert set(before) ^ set(tier.user_files_fingerprint())
