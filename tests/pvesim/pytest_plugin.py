"""pytest fixtures for tests that need a Proxmox VE API.

Load with ``-p pvesim.pytest_plugin`` (``tests/`` on ``sys.path``) or import the fixtures into a
``conftest.py``. One simulator process is started per test module and personality; the state is
reset before every test, so tests stay independent and fast.

The processes start from the built-in seed ``empty`` (``FIXTURE_SEED``): the default two-node lab
without the sandbox's template VM 9000 and PCI mapping, so every test creates the guests and
mappings it relies on. A test that wants the sandbox content calls ``reseed(default_seed())``.

* ``pve_sim``   - parametrized over PVE 8 and PVE 9 (test ids ``pve8``/``pve9``)
* ``pve8_sim``  - PVE 8 only
* ``pve9_sim``  - PVE 9 only

Each yields a started ``pvesim.testing.SimulatorProcess``. The module-scoped processes are
also available without the per-test reset as ``pve_sim_process``, ``pve8_sim_process`` and
``pve9_sim_process``.
"""

import pytest

from .testing import SimulatorProcess

FIXTURE_SEED = "empty"


def _process(tmp_path_factory, pve):
    simulator = SimulatorProcess(pve=pve, seed=FIXTURE_SEED, state_dir=tmp_path_factory.mktemp(f"pvesim{pve}"))
    simulator.start()
    return simulator


@pytest.fixture(scope="module", params=[8, 9], ids=["pve8", "pve9"])
def pve_sim_process(request, tmp_path_factory):
    """A simulator process per module and personality (8 and 9)."""
    simulator = _process(tmp_path_factory, request.param)
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def pve8_sim_process(tmp_path_factory):
    """A PVE 8 simulator process per module."""
    simulator = _process(tmp_path_factory, 8)
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def pve9_sim_process(tmp_path_factory):
    """A PVE 9 simulator process per module."""
    simulator = _process(tmp_path_factory, 9)
    yield simulator
    simulator.stop()


@pytest.fixture
def pve_sim(pve_sim_process):
    """The module's simulator (PVE 8 and 9), reset to the seed before the test."""
    pve_sim_process.reset()
    return pve_sim_process


@pytest.fixture
def pve8_sim(pve8_sim_process):
    """The module's PVE 8 simulator, reset to the seed before the test."""
    pve8_sim_process.reset()
    return pve8_sim_process


@pytest.fixture
def pve9_sim(pve9_sim_process):
    """The module's PVE 9 simulator, reset to the seed before the test."""
    pve9_sim_process.reset()
    return pve9_sim_process
