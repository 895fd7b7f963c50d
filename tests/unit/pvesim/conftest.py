"""Make ``import pvesim`` work and provide the simulator fixtures to these tests."""

import sys
import time
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[2]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from pvesim.pytest_plugin import (  # noqa: E402,F401 - fixtures are used by name
    pve8_sim,
    pve8_sim_process,
    pve9_sim,
    pve9_sim_process,
    pve_sim,
    pve_sim_process,
)


def wait_task(api, upid, timeout=10.0):
    """Poll a task until it has stopped; return its final status."""
    node = upid.split(":")[1]
    deadline = time.monotonic() + timeout
    while True:
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"task {upid} still running after {timeout}s")
        time.sleep(0.01)


@pytest.fixture
def wait():
    """The ``wait_task`` helper as a fixture."""
    return wait_task
