"""Figures of the security suite: secrets checked / leaks; bad inputs tried / rejected before any
write / wrongly accepted.

Each case records one line in a file shared by the pytest-xdist workers; the controlling process
prints the figures at the end of the run.
"""

import json
import os
from pathlib import Path

import pytest

from pvesim.testing import SimulatorProcess

ROOT = Path(__file__).resolve().parents[3]
RESULTS = Path(os.environ.get("AILAB_RESULTS", ROOT / ".cache" / "results")) / "bad-inputs.jsonl"
SECRETS = RESULTS.with_name("secrets.jsonl")
FAULTS = RESULTS.with_name("faults.jsonl")


@pytest.fixture(scope="module")
def pve_sim_for_cases(tmp_path_factory):
    """A PVE 9 simulator per test module, with the default (sandbox) seed; tests reset it."""
    with SimulatorProcess(pve=9, state_dir=tmp_path_factory.mktemp("pvesim-security")) as sim:
        yield sim


def record(case, refused, before_write, named):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as handle:
        handle.write(json.dumps({"case": case, "refused": refused, "before_write": before_write, "named": named}) + "\n")


def record_secret(check, leaked):
    SECRETS.parent.mkdir(parents=True, exist_ok=True)
    with open(SECRETS, "a") as handle:
        handle.write(json.dumps({"check": check, "leaked": leaked}) + "\n")


def record_fault(fault, handled):
    FAULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(FAULTS, "a") as handle:
        handle.write(json.dumps({"fault": fault, "handled": handled}) + "\n")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controlling process, not an xdist worker
        RESULTS.unlink(missing_ok=True)
        SECRETS.unlink(missing_ok=True)
        FAULTS.unlink(missing_ok=True)


def _entries(path, key, value):
    entries = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            entries[entry[key]] = entry if value is None else entry[value]
    return entries


def pytest_terminal_summary(terminalreporter, config):
    """One line of figures: secrets checked / leaks; bad inputs tried / rejected before any write /
    wrongly accepted; faults injected / handled."""
    if hasattr(config, "workerinput"):
        return
    secrets = _entries(SECRETS, "check", "leaked")
    faults = _entries(FAULTS, "fault", "handled")
    cases = _entries(RESULTS, "case", None)
    if not (secrets or faults or cases):
        return
    rejected = sum(1 for c in cases.values() if c["refused"] and c["before_write"])
    accepted = sum(1 for c in cases.values() if not c["refused"])
    unnamed = sum(1 for c in cases.values() if c["refused"] and not c["named"])
    terminalreporter.write_line(
        f"security: secrets {len(secrets)} checked / {sum(secrets.values())} leaks; "
        f"bad inputs {len(cases)} tried / {rejected} rejected before any write / {accepted} wrongly accepted"
        f" ({unnamed} refused without naming the field); faults {len(faults)} injected / {sum(faults.values())} handled")
