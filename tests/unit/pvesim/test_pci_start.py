"""PCI devices at VM start: mapped entries checked like qemu-server and pve-guest-common do.

qemu-server PVE/QemuServer/PCI.pm parse_hostpci takes the mapping's entries for the node
(find_on_current_node: none -> "PCI device mapping not found") and runs pve-guest-common
PVE/Mapping/PCI.pm assert_valid on every one ("PCI device mapping invalid (hardware probably
changed): ..."); prepare_pci_device then needs IOMMU (PVE::SysFSTools::check_iommu_support:
"cannot prepare PCI pass-through, IOMMU not present").
"""

import pytest

from pvesim.seed import empty_seed, without_iommu

GOOD = "path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454"


@pytest.fixture
def sim(pve9_sim):
    yield pve9_sim
    pve9_sim.reseed(empty_seed())


def start(sim, wait, entries, node="pve-1", vmid=100):
    """A VM on ``node`` with ``hostpci0: mapping=gpu``, the mapping ``gpu`` made of ``entries``; the start's status."""
    api = sim.api()
    api.cluster.mapping.pci.post(id="gpu", map=entries)
    wait(api, api.nodes(node).qemu.post(vmid=vmid, memory=1024, machine="q35", hostpci0="mapping=gpu,pcie=1"))
    status = wait(api, api.nodes(node).qemu(vmid).status.start.post())
    return status, api.nodes(node).qemu(vmid).status.current.get()["status"]


def test_a_complete_entry_starts_the_vm(sim, wait):
    status, state = start(sim, wait, ["node=pve-1," + GOOD, "node=pve-2," + GOOD])
    assert (status["exitstatus"], state) == ("OK", "running")


@pytest.mark.parametrize(("entry", "error"), [
    ("path=0000:01:00,id=10de:2204,subsystem-id=10de:1454",
     "missing expected property 'iommugroup' for device '0000:01:00.0'"),
    ("path=0000:01:00,id=10de:2204,iommugroup=14", "missing expected property 'subsystem-id' for device '0000:01:00.0'"),
    ("path=0000:01:00,id=10de:2206,iommugroup=14,subsystem-id=10de:1454", "'id' does not match for 'gpu' (10de:2204 != 10de:2206)"),
    ("path=0000:01:00,id=10de:2204,iommugroup=15,subsystem-id=10de:1454", "'iommugroup' does not match for 'gpu' (14 != 15)"),
    ("path=0000:01:00,id=10de:2204,iommugroup=14,subsystem-id=10de:147e",
     "'subsystem-id' does not match for 'gpu' (10de:1454 != 10de:147e)"),
    ("path=0000:05:00,id=10de:2204,iommugroup=14,subsystem-id=10de:1454", "pci device '0000:05:00.0' not found"),
    # the audio function of the same card: IDs of the first device of each path; the group of the first path only
    ("path=0000:01:00.1;0000:01:00.0,id=10de:1aef,iommugroup=14,subsystem-id=10de:1454",
     "'id' does not match for 'gpu' (10de:2204 != 10de:1aef)"),
])
def test_an_entry_that_does_not_match_the_hardware_fails_the_start(sim, wait, entry, error):
    status, state = start(sim, wait, ["node=pve-1," + entry])
    assert status["exitstatus"] == "PCI device mapping invalid (hardware probably changed): " + error
    assert state == "stopped"


def test_every_entry_of_the_node_is_checked(sim, wait):
    status, state = start(sim, wait, ["node=pve-1," + GOOD, "node=pve-1,path=0000:01:00.0,id=10de:2204"])
    assert status["exitstatus"] == ("PCI device mapping invalid (hardware probably changed): missing expected "
                                    "property 'iommugroup' for device '0000:01:00.0'")
    assert state == "stopped"


def test_a_node_without_an_entry_cannot_start_it(sim, wait):
    status, state = start(sim, wait, ["node=pve-2," + GOOD])
    assert status["exitstatus"] == "PCI device mapping not found for 'gpu'" and state == "stopped"


def test_iommu_off_fails_the_start_whatever_the_entry_says(sim, wait):
    sim.reseed(without_iommu(empty_seed(), "pve-2"))
    status, state = start(sim, wait, ["node=pve-2," + GOOD], node="pve-2")
    # IOMMU off: the device's group is -1 (pve-common PVE/SysFSTools.pm), so the real group does not match
    assert status["exitstatus"] == ("PCI device mapping invalid (hardware probably changed): 'iommugroup' does not "
                                    "match for 'gpu' (-1 != 14)")
    api = sim.api()
    api.cluster.mapping.pci("gpu").put(map=["node=pve-2," + GOOD.replace("iommugroup=14", "iommugroup=-1")])
    again = wait(api, api.nodes("pve-2").qemu(100).status.start.post())
    assert again["exitstatus"] == "cannot prepare PCI pass-through, IOMMU not present"
    assert api.nodes("pve-2").qemu(100).status.current.get()["status"] == "stopped"
