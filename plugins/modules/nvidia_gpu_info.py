#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nvidia_gpu_info
short_description: Read the NVIDIA GPUs of a host, their MIG profiles and MIG instances with nvidia-smi
version_added: 0.1.0
description:
  - Runs C(nvidia-smi -q -x) and C(nvidia-smi --query-gpu=index,pci.bus_id,compute_cap --format=csv,noheader)
    and returns, per GPU, its model name as nvidia-smi prints it (for example V(NVIDIA H200)), UUID, PCI
    ids, memory, driver and CUDA versions, compute capability and MIG mode.
  - When a GPU supports MIG and O(mig_profiles=true), also runs C(nvidia-smi mig -lgip) once and returns
    the GPU instance profiles each GPU offers, with how many instances of each are still free.
  - When MIG is enabled on a GPU, also runs C(nvidia-smi mig -lgi) and C(nvidia-smi mig -lci) once each
    and returns the GPU instances and compute instances that exist.
  - Returns the same dictionary as module results and as the fact C(ansible_facts.nvidia_gpu).
  - Never changes anything, and runs the same read-only commands in check mode.
  - A host where nvidia-smi finds no GPU, or has no C(nvidia-smi), is an error unless
    O(fail_on_no_gpu=false). A failing C(nvidia-smi) (driver not loaded, driver/library version mismatch)
    is always an error, and the message includes what nvidia-smi printed.
author:
  - ailab.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ailab.cluster.attributes.INFO_MODULE
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
options:
  nvidia_smi_path:
    description:
      - Path of the C(nvidia-smi) to run on the host.
      - By default C(nvidia-smi) is looked up in E(PATH) and the usual system directories.
      - Where the GPU Operator runs the driver in a container, the host has no C(nvidia-smi); point this
        option at a wrapper such as C(exec chroot /run/nvidia/driver nvidia-smi "$@").
    type: path
  mig_profiles:
    description:
      - Whether to run C(nvidia-smi mig -lgip) to read the MIG profiles of MIG-capable GPUs.
      - With V(false), RV(gpus[].mig_profiles) is empty for every GPU.
      - GPUs without MIG never trigger the command.
    type: bool
    default: true
  fail_on_no_gpu:
    description:
      - What to do on a host without GPUs, that is where C(nvidia-smi) is not found, prints
        C(No devices were found), or lists no GPU.
      - V(true) fails the task; V(false) returns RV(gpu_count=0) and empty lists, which suits plays that
        run on every node of a mixed inventory.
      - A C(nvidia-smi) that exists but fails for another reason fails the task either way.
    type: bool
    default: true
  timeout:
    description:
      - Seconds each C(nvidia-smi) command may run before it is stopped and the task fails. nvidia-smi hangs
        when a GPU or the driver is stuck.
      - Uses C(timeout) from coreutils on the host; where that is missing the commands run without a limit.
      - V(0) means no limit.
    type: int
    default: 60
notes:
  - Verified against output recorded on one NVIDIA H200 (driver 580.159.04, CUDA 13.0) and fixtures derived
    from it (MIG enabled with instances, two GPUs, A100 80GB, GeForce RTX 3090), not on further hardware.
  - C(nvidia-smi mig -lgi) and C(-lci) print C(No GPU instances found) or C(No compute instances found)
    with a non-zero exit status when MIG is enabled but nothing has been created; that gives empty lists.
requirements:
  - the NVIDIA driver's C(nvidia-smi) on the host (driver 510 or later, for C(compute_cap))
seealso:
  - name: nvidia-smi documentation
    description: The commands this module runs and their output.
    link: https://docs.nvidia.com/deploy/nvidia-smi/index.html
  - name: NVIDIA Multi-Instance GPU User Guide
    description: MIG profiles, GPU instances and compute instances.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/
"""

EXAMPLES = r"""
- name: Read the GPUs of the GPU workers
  ailab.cluster.nvidia_gpu_info:
  register: __gpu

- name: Check that the node has the GPUs its inventory group promises
  ansible.builtin.assert:
    that:
      - __gpu.gpu_count == 1
      - __gpu.models == ['NVIDIA H200']
    fail_msg: >-
      {{ inventory_hostname }} has {{ __gpu.gpu_count }} GPU(s) {{ __gpu.models }}:
      fix gpus_per_node or gpu_model of its group in ailab_gpu_node_groups.

- name: List the MIG profiles the first GPU offers
  ansible.builtin.debug:
    msg: "{{ __gpu.gpus[0].mig_profiles | map(attribute='name') | list }}"

# On every node of a mixed inventory, as facts: CPU-only nodes report gpu_count 0.
- name: Gather GPU facts
  ailab.cluster.nvidia_gpu_info:
    fail_on_no_gpu: false

- name: Show the GPU models of the node
  ansible.builtin.debug:
    msg: "{{ ansible_facts.nvidia_gpu.models }}"

# A node where the GPU Operator runs the driver in a container.
- name: Read the GPUs through the driver container's nvidia-smi
  ailab.cluster.nvidia_gpu_info:
    nvidia_smi_path: /usr/local/sbin/nvidia-smi-driver-container
    mig_profiles: false
    timeout: 120
"""

RETURN = r"""
gpus:
  description: The GPUs, sorted by their nvidia-smi index.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: The index nvidia-smi gives the GPU (C(nvidia-smi -i)); the order is the PCI bus order.
      type: int
      sample: 0
    name:
      description: The product name as nvidia-smi prints it.
      type: str
      sample: NVIDIA H200
    architecture:
      description: The architecture nvidia-smi reports, or V(null) when it does not.
      type: str
      sample: Hopper
    uuid:
      description: The GPU UUID.
      type: str
      sample: GPU-5b450c73-aa60-81f2-523e-df255f059bc6
    pci_bus_id:
      description: The PCI address, with the 8-digit domain nvidia-smi prints.
      type: str
      sample: "00000000:00:06.0"
    pci_device_id:
      description:
        - The PCI device and vendor id as C(0x) and 8 upper-case hex digits, the form MIG manager
          C(device-filter) entries and C(nvidia-smi --query-gpu=pci.device_id) use.
      type: str
      sample: "0x233510DE"
    pci_device_id_raw:
      description: The same id without C(0x), as C(nvidia-smi -q) prints it.
      type: str
      sample: 233510DE
    memory_total_mib:
      description: The framebuffer memory in MiB, or V(null) when nvidia-smi prints C(N/A).
      type: int
      sample: 143771
    driver_version:
      description: The driver version (the same for every GPU of a host).
      type: str
      sample: 580.159.04
    cuda_version:
      description: The highest CUDA version the driver supports.
      type: str
      sample: "13.0"
    compute_capability:
      description: The CUDA compute capability, or V(null) when nvidia-smi does not know it.
      type: str
      sample: "9.0"
    mig_capable:
      description: Whether the GPU supports MIG (its MIG mode is not C(N/A)).
      type: bool
      sample: true
    mig_mode:
      description:
        - The MIG mode now (key C(current)) and after the next GPU reset (key C(pending)).
        - Each is V(Enabled), V(Disabled), or V(N/A) for GPUs without MIG.
      type: dict
      sample: {current: Disabled, pending: Enabled}
    mig_profiles:
      description:
        - The GPU instance profiles of C(nvidia-smi mig -lgip), in its order.
        - Empty for GPUs without MIG and with O(mig_profiles=false).
      type: list
      elements: dict
      contains:
        name:
          description: The profile name without the C(MIG) prefix, as GPU Operator resources and mig-parted use it.
          type: str
          sample: 1g.18gb
        id:
          description: The GPU instance profile id (C(nvidia-smi mig -cgi <id>)).
          type: int
          sample: 19
        instances_free:
          description: How many more instances of the profile can be created now.
          type: int
          sample: 7
        instances_total:
          description: How many instances of the profile the GPU can hold.
          type: int
          sample: 7
        memory_gib:
          description: The memory of one instance in GiB, as printed (two decimals).
          type: float
          sample: 16.0
        p2p:
          description: Whether peer-to-peer is supported.
          type: bool
          sample: false
        sm:
          description: Streaming multiprocessors per instance.
          type: int
          sample: 16
        dec:
          description: Video decoders per instance.
          type: int
          sample: 1
        enc:
          description: Video encoders per instance.
          type: int
          sample: 0
        ce:
          description: Copy engines per instance.
          type: int
          sample: 1
        jpeg:
          description: JPEG decoders per instance.
          type: int
          sample: 1
        ofa:
          description: Optical flow accelerators per instance.
          type: int
          sample: 0
    gpu_instances:
      description: The GPU instances of C(nvidia-smi mig -lgi); empty unless MIG is enabled and instances exist.
      type: list
      elements: dict
      contains:
        name:
          description: The profile name.
          type: str
          sample: 2g.35gb
        profile_id:
          description: The GPU instance profile id.
          type: int
          sample: 14
        id:
          description: The GPU instance id.
          type: int
          sample: 3
        placement:
          description: The first memory slice and the number of slices.
          type: dict
          sample: {start: 0, size: 2}
    compute_instances:
      description: The compute instances of C(nvidia-smi mig -lci); empty unless MIG is enabled and instances exist.
      type: list
      elements: dict
      contains:
        gpu_instance_id:
          description: The id of the GPU instance the compute instance belongs to.
          type: int
          sample: 3
        name:
          description: The compute instance profile name.
          type: str
          sample: 2g.35gb
        profile_id:
          description: The compute instance profile id.
          type: int
          sample: 1
        id:
          description: The compute instance id within its GPU instance.
          type: int
          sample: 0
        placement:
          description: The placement within the GPU instance.
          type: dict
          sample: {start: 0, size: 2}
  sample:
    - index: 0
      name: NVIDIA H200
      architecture: Hopper
      uuid: GPU-5b450c73-aa60-81f2-523e-df255f059bc6
      pci_bus_id: "00000000:00:06.0"
      pci_device_id: "0x233510DE"
      pci_device_id_raw: 233510DE
      memory_total_mib: 143771
      driver_version: 580.159.04
      cuda_version: "13.0"
      compute_capability: "9.0"
      mig_capable: true
      mig_mode: {current: Disabled, pending: Disabled}
      mig_profiles:
        - {name: 1g.18gb, id: 19, instances_free: 7, instances_total: 7, memory_gib: 16.0, p2p: false,
           sm: 16, dec: 1, enc: 0, ce: 1, jpeg: 1, ofa: 0}
      gpu_instances: []
      compute_instances: []
gpu_count:
  description: The number of GPUs; V(0) only with O(fail_on_no_gpu=false).
  returned: always
  type: int
  sample: 1
driver_version:
  description: The NVIDIA driver version, or V(null) when no GPU was found.
  returned: always
  type: str
  sample: 580.159.04
cuda_version:
  description: The highest CUDA version the driver supports, or V(null) when no GPU was found.
  returned: always
  type: str
  sample: "13.0"
models:
  description: The distinct GPU product names, sorted.
  returned: always
  type: list
  elements: str
  sample: [NVIDIA H200]
nvidia_smi_path:
  description: The C(nvidia-smi) that was run, or V(null) when none was found (only with O(fail_on_no_gpu=false)).
  returned: always
  type: str
  sample: /usr/bin/nvidia-smi
ansible_facts:
  description: The same results as one fact.
  returned: always
  type: dict
  contains:
    nvidia_gpu:
      description: A dictionary with RV(gpus), RV(gpu_count), RV(driver_version), RV(cuda_version), RV(models) and RV(nvidia_smi_path).
      type: dict
      sample: {gpus: [], gpu_count: 0, driver_version: null, cuda_version: null, models: [], nvidia_smi_path: null}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ailab.cluster.plugins.module_utils import _nvidia_smi as smi

# The exit status of coreutils timeout when the command ran out of time.
TIMEOUT_RC = 124


class NvidiaGpuInfo:
    """One run: find nvidia-smi, run the read-only commands, parse and join their output."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.nvidia_smi = None
        self.prefix = []

    def fail(self, msg, **context):
        self.module.fail_json(msg=msg, nvidia_smi_path=self.nvidia_smi, **context)

    def no_gpu(self, reason, driver_version=None, cuda_version=None):
        """A host without GPUs: an error, or empty facts with fail_on_no_gpu=false."""
        if self.params["fail_on_no_gpu"]:
            self.fail(reason + "; set fail_on_no_gpu=false where hosts without GPUs are expected")
        facts = smi.empty_facts(driver_version, cuda_version)
        facts["nvidia_smi_path"] = self.nvidia_smi
        return facts

    def find_nvidia_smi(self):
        path = self.params["nvidia_smi_path"]
        if path:
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                self.fail("nvidia_smi_path %s is not an executable file on this host: fix the path, or leave it unset to search PATH" % path)
            return path
        return self.module.get_bin_path("nvidia-smi")

    def set_timeout(self):
        timeout = self.params["timeout"]
        if timeout < 0:
            self.fail("timeout must be 0 (no limit) or a number of seconds, not %d" % timeout)
        if timeout == 0:
            return
        timeout_bin = self.module.get_bin_path("timeout")
        if timeout_bin is None:
            self.module.warn("coreutils 'timeout' was not found on this host: nvidia-smi runs without a time limit")
            return
        self.prefix = [timeout_bin, "-k", "5", str(timeout)]

    def run(self, name):
        """Run one read; return (rc, stdout, stderr). A timeout fails the task."""
        rc, out, err = self.module.run_command(self.prefix + [self.nvidia_smi] + smi.COMMANDS[name])
        if self.prefix and rc in (TIMEOUT_RC, 128 + 9):
            self.fail(
                "'%s' did not finish within %d seconds: a GPU or the driver may be hung; check 'dmesg' for "
                "NVIDIA Xid errors, or raise timeout" % (smi.command_line(name), self.params["timeout"]),
                rc=rc,
            )
        return rc, out, err

    def command_failed(self, name, rc, out, err, hint):
        self.fail(
            "'%s' failed with exit status %d: %s; %s"
            % (smi.command_line(name), rc, smi.excerpt(err + " " + out) or "(it printed nothing)", hint),
            rc=rc, stdout=out, stderr=err,
        )

    def parse(self, parser, text):
        try:
            return parser(text)
        except smi.NvidiaSmiError as exc:
            self.fail(str(exc))

    def mig_table(self, name, parser):
        rc, out, err = self.run(name)
        if rc != 0 and not smi.reports_none(name, out + err):
            self.command_failed(name, rc, out, err, "run it on the host to see why")
        return self.parse(parser, out + err if rc != 0 else out)

    def gather(self):
        self.nvidia_smi = self.find_nvidia_smi()
        if self.nvidia_smi is None:
            return self.no_gpu(
                "nvidia-smi not found on this host (searched PATH and the system directories): install the "
                "NVIDIA driver, or where the GPU Operator manages the driver in a container set nvidia_smi_path "
                "to a wrapper that runs 'chroot /run/nvidia/driver nvidia-smi'"
            )
        self.set_timeout()

        rc, out, err = self.run("query_xml")
        if smi.reports_no_devices(out + err):
            return self.no_gpu("nvidia-smi found no NVIDIA GPU (it says: %s)" % smi.excerpt(out + " " + err))
        if rc != 0:
            self.command_failed(
                "query_xml", rc, out, err,
                "check that the NVIDIA kernel module is loaded and matches the installed driver "
                "(reboot after a driver upgrade; 'nvidia-smi' on the host prints the same message)",
            )
        query_xml = self.parse(smi.parse_query_xml, out)
        if not query_xml["gpus"]:
            return self.no_gpu(
                "nvidia-smi -q -x lists no GPU", query_xml["driver_version"], query_xml["cuda_version"]
            )

        rc, out, err = self.run("query_gpu")
        if rc != 0:
            self.command_failed("query_gpu", rc, out, err, "the compute_cap field needs NVIDIA driver 510 or later")
        query_gpu = self.parse(smi.parse_query_gpu, out)

        profiles = gpu_instances = compute_instances = None
        if self.params["mig_profiles"] and any(gpu["mig_capable"] for gpu in query_xml["gpus"]):
            profiles = self.mig_table("mig_profiles", smi.parse_mig_profiles)
        if any(gpu["mig_mode"]["current"] == "Enabled" for gpu in query_xml["gpus"]):
            gpu_instances = self.mig_table("gpu_instances", smi.parse_gpu_instances)
            compute_instances = self.mig_table("compute_instances", smi.parse_compute_instances)

        try:
            facts = smi.build_facts(query_xml, query_gpu, profiles, gpu_instances, compute_instances)
        except smi.NvidiaSmiError as exc:
            self.fail(str(exc))
        facts["nvidia_smi_path"] = self.nvidia_smi
        return facts


def main():
    module = AnsibleModule(
        argument_spec={
            "nvidia_smi_path": {"type": "path"},
            "mig_profiles": {"type": "bool", "default": True},
            "fail_on_no_gpu": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    facts = NvidiaGpuInfo(module).gather()
    module.exit_json(changed=False, ansible_facts={"nvidia_gpu": facts}, **facts)


if __name__ == "__main__":
    main()
