"""Unit-test set-up shared by every test under tests/unit.

- The checkout imports as ``ansible_collections.ailab.cluster`` (through .collections) and the
  packages under ``tests/`` (pvesim, unit) import by name.
- The Proxmox VE API simulator fixtures (``pve_sim``, ``pve8_sim``, ``pve9_sim``) come from
  ``pvesim.pytest_plugin``.
- ``run_module`` runs a module's ``main()`` with arguments the way Ansible would and returns its
  result dict (``failed`` set when it called fail_json).
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / ".collections", ROOT / "tests"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

pytest_plugins = ["pvesim.pytest_plugin"]


class ModuleExit(Exception):
    """Raised instead of exit_json/fail_json; carries the result."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


def _exit_json(self, **result):
    result.setdefault("changed", False)
    raise ModuleExit(result)


def _fail_json(self, msg, **result):
    result.update(msg=msg, failed=True)
    raise ModuleExit(result)


@pytest.fixture
def run_module(monkeypatch):
    """``run_module(module, args, check_mode=False, diff=False) -> result``."""
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)

    def run(module, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(ModuleExit) as exc:
            module.main()
        return exc.value.result

    return run
