"""Fixtures of the role tests: ``ansible_playbook(plays, inventory, *args, check=False) -> PlaybookRun``
runs ansible-playbook on local-connection hosts (see playbook_runner)."""

import pytest

from unit.roles.playbook_runner import run_playbook


@pytest.fixture
def ansible_playbook(tmp_path):
    def run(plays, inventory, *args, check=False):
        return run_playbook(tmp_path, plays, inventory, *args, check=check)

    return run
