"""Helpers for the simulator's own tests (its fixtures come from tests/unit/conftest.py)."""

import time

import pytest


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
