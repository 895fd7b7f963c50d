"""The Makefile's first step on a machine without a suitable Python says what to install, for Debian 12
(Python 3.11 only) and for the platforms that ship 3.12+."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def old_python():
    for candidate in ("/usr/bin/python3", "/usr/bin/python3.11", shutil.which("python3.11") or ""):
        if candidate and Path(candidate).exists():
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info < (3, 12))"],
                                 capture_output=True, text=True, check=False).stdout.strip()
            if out == "True":
                return candidate
    return None


@pytest.mark.parametrize("candidates", ["/nonexistent/python3", "OLD"])
def test_no_suitable_python_says_what_to_install(tmp_path, candidates):
    if candidates == "OLD":
        candidates = old_python()
        if not candidates:
            pytest.skip("no Python older than 3.12 on this machine to stand for Debian 12's 3.11")
    proc = subprocess.run(["make", "-s", f"{tmp_path}/venv", f"STAMP={tmp_path}", f"VENV={tmp_path}/venv",
                           f"PYTHON_CANDIDATES={candidates}"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "no Python >= 3.12 found" in proc.stderr
    assert "Debian 12 ships Python 3.11 only" in proc.stderr
    assert "make BASE_PYTHON=/path/to/python3.13" in proc.stderr
    assert not (tmp_path / "venv").exists(), "nothing is created without a suitable Python"
