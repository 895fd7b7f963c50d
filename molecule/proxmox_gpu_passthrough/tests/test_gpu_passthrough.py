"""What a lab admin relies on after proxmox_gpu_passthrough: the boot arguments and VFIO setup."""

import json

import pytest


def _is_sdboot(host):
    return host.backend.get_hostname().endswith("sdboot")


def test_grub_dropin_adds_iommu_arguments(host):
    if _is_sdboot(host):
        pytest.skip("GRUB path is tested on the Debian 12 (GRUB) node only")
    dropin = host.file("/etc/default/grub.d/ailab-gpu-passthrough.cfg")
    assert dropin.mode == 0o644
    # The drop-in is sourced by grub-mkconfig after /etc/default/grub: check what the shell sees.
    out = host.check_output(
        "GRUB_CMDLINE_LINUX_DEFAULT=quiet; . /etc/default/grub.d/ailab-gpu-passthrough.cfg; "
        "echo \"$GRUB_CMDLINE_LINUX_DEFAULT\"")
    assert out.split() == ["quiet", "intel_iommu=on", "iommu=pt"]


def test_systemd_boot_cmdline_keeps_admin_arguments(host):
    if not _is_sdboot(host):
        pytest.skip("systemd-boot path is tested on the Debian 13 (systemd-boot) node only")
    args = host.file("/etc/kernel/cmdline").content_string.split()
    # root= and boot= stay, the conflicting iommu=soft is replaced, arguments appear once.
    assert args == ["root=ZFS=rpool/ROOT/pve-1", "boot=zfs", "quiet", "intel_iommu=on", "iommu=pt"]
    assert not host.file("/etc/default/grub.d/ailab-gpu-passthrough.cfg").exists


def test_vfio_modules_load_at_boot(host):
    modules = host.file("/etc/modules-load.d/ailab-vfio.conf").content_string.split("\n")
    assert [m for m in modules if m and not m.startswith("#")] == ["vfio", "vfio_iommu_type1", "vfio_pci"]


def test_vfio_pci_claims_gpu_and_host_drivers_blacklisted(host):
    conf = host.file("/etc/modprobe.d/ailab-gpu-passthrough.conf").content_string
    assert "options vfio-pci ids=10de:2204,10de:1aef disable_vga=1" in conf
    assert "blacklist nouveau" in conf
    assert "softdep nouveau pre: vfio-pci" in conf
    assert "options nouveau modeset=0" in conf


def test_refresh_commands_it_would_run(host):
    pending = json.loads(host.file("/root/gpu-passthrough-pending.json").content_string)
    loader = ["proxmox-boot-tool", "refresh"] if _is_sdboot(host) else ["update-grub"]
    assert loader in pending
    assert ["update-initramfs", "-u", "-k", "all"] in pending
