"""Figures of the security suite: secrets checked / leaks; bad inputs tried / rejected before any
write / wrongly accepted.

Each case records one line in a file shared by the pytest-xdist workers; the controlling process
prints the figures at the end of the run.
"""

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RESULTS = Path(os.environ.get("AILAB_RESULTS", ROOT / ".cache" / "results")) / "bad-inputs.jsonl"
SECRETS = RESULTS.with_name("secrets.jsonl")


def record(case, refused, before_write, named):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as handle:
        handle.write(json.dumps({"case": case, "refused": refused, "before_write": before_write, "named": named}) + "\n")


def record_secret(check, leaked):
    SECRETS.parent.mkdir(parents=True, exist_ok=True)
    with open(SECRETS, "a") as handle:
        handle.write(json.dumps({"check": check, "leaked": leaked}) + "\n")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controlling process, not an xdist worker
        RESULTS.unlink(missing_ok=True)
        SECRETS.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return
    if SECRETS.exists():
        checks = {}
        for line in SECRETS.read_text().splitlines():
            entry = json.loads(line)
            checks[entry["check"]] = entry["leaked"]
        terminalreporter.write_line(f"secrets: {len(checks)} checked / {sum(checks.values())} leaks")
    if not RESULTS.exists():
        return
    cases = {}
    for line in RESULTS.read_text().splitlines():
        entry = json.loads(line)
        cases[entry["case"]] = entry
    tried = len(cases)
    rejected = sum(1 for c in cases.values() if c["refused"] and c["before_write"])
    accepted = sum(1 for c in cases.values() if not c["refused"])
    unnamed = sum(1 for c in cases.values() if c["refused"] and not c["named"])
    terminalreporter.write_line(
        f"bad inputs: {tried} tried / {rejected} rejected before any write / {accepted} wrongly accepted"
        f" ({unnamed} refused without naming the field)")
