#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_guest
short_description: Create, clone, configure, start, stop and remove Proxmox VE VMs and containers
version_added: 0.1.0
description:
  - Manages the lifecycle of a QEMU VM (O(type=qemu)) or an LXC container (O(type=lxc)) on a Proxmox VE
    cluster, or of a whole list of guests in one call with O(guests).
  - A new guest is created from the options, or cloned from a template with O(clone) (full or linked) on
    the node O(node), then configured like an existing one.
  - Updates are idempotent. The module reads the guest configuration, compares it with the options the
    way Proxmox VE stores them and writes only what differs. With O(config_check=fingerprint) it reads the
    configuration only of the guests whose options changed since the last run, or whose entry in
    C(/cluster/resources) does not match them. Property strings such as C(net0) or
    C(hostpci0) are compared as key=value sets. A MAC address that Proxmox VE generated is kept when
    the option does not set one. Tags are compared without order. Sizes compare by value, so C(32G)
    equals C(32768M). A second run with the same options makes no write call.
  - Disks only grow, through the resize API. A smaller size fails with a message and changes nothing.
  - Changes to a running guest that take effect only after a restart are reported with
    RV(pending_reboot). With O(restart_on_change=true) the guest is rebooted to apply them.
  - Every Proxmox VE task the module starts is waited for, and a failed task fails the module with the
    end of the task log.
  - C(/cluster/resources) shows a guest's name, status and template flag as pvestatd last reported them
    (about every 10 seconds), so a guest created seconds ago has status C(unknown) and no name there. The
    module reads the configuration of such entries to find a guest by name, so two runs in a row never
    create it twice, and takes the power state of a guest it changes from C(status/current).
  - Updates of an existing guest send the configuration digest the module read. When someone else
    changed the guest in between, Proxmox VE refuses the write; the module reads the configuration again
    and retries once.
author:
  - ailab.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ailab.cluster.proxmox
  - ailab.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - VM name or container hostname.
      - Finds an existing guest when O(vmid) is not set, so the name must be unique in the cluster.
      - With O(vmid) set, a different name renames the guest.
    type: str
  vmid:
    description:
      - VMID of the guest. When omitted, an existing guest is found by O(name), and a new guest gets the
        next free VMID of the cluster (C(/cluster/nextid)).
    type: int
  node:
    description:
      - Node a new guest is created or cloned on. Required to create a guest.
      - For an existing guest the node is read from the cluster. If the guest runs elsewhere, for example
        after a migration or an HA recovery, the module warns and leaves it where it is. Use
        M(ailab.cluster.proxmox_migrate) to move guests.
    type: str
  type:
    description: Kind of guest, QEMU VM or LXC container.
    type: str
    choices: [qemu, lxc]
    default: qemu
  state:
    description:
      - V(present) creates and configures the guest and leaves its power state alone.
      - V(started) and V(stopped) also set the power state. V(stopped) shuts the guest down cleanly, or
        stops it at once with O(force_stop=true).
      - V(absent) stops a running guest, then destroys it and its disks (see O(purge)).
    type: str
    choices: [present, started, stopped, absent]
    default: present
  clone:
    description:
      - VMID or name of the template (or guest) a new guest is cloned from. The source is found in the
        whole cluster and must be of the same O(type).
      - Used only when the guest does not exist yet.
    type: str
  full:
    description:
      - Full clone (independent copy of the disks) or linked clone (V(false), only from a template, on
        the template's storage).
    type: bool
    default: true
  storage:
    description:
      - Target storage of a full clone. A linked clone stays on the template's storage.
      - Default storage for the disks in O(disks) that do not name one, and the storage of a new
        container's root file system.
    type: str
  cores:
    description: CPU cores (per socket for VMs).
    type: int
  sockets:
    description: CPU sockets (VMs only).
    type: int
  cpu:
    description: Emulated CPU type of a VM, for example V(host) or V(x86-64-v2-AES).
    type: str
  memory:
    description: Memory in MiB.
    type: int
  swap:
    description: Swap of a container in MiB (containers only).
    type: int
  disks:
    description:
      - Disks by slot. VMs use C(scsi0), C(virtio0), C(sata0), C(ide2), C(efidisk0), C(tpmstate0).
        Containers use C(rootfs) and C(mp0), C(mp1), and so on.
      - 'Each value is a dict with C(storage), C(size) and any other disk option, for example
        C({storage: local-lvm, size: 32G, discard: true, ssd: true}). For a container mount point,
        add C(mp) with the path in the container. A PVE string such as C(local-lvm:32,discard=on)
        works too, with the size in GiB.'
      - 'V(storage:cloudinit), for example C(ide2: local-lvm:cloudinit), adds the cloud-init drive.
        An existing volume or ISO is given by its volume id, for example
        C(local:iso/ubuntu.iso,media=cdrom). A host path is a container bind mount.'
      - A bare number as size counts GiB. C(32G), C(32768M) and C(1T) also work.
      - A larger size grows the disk through the resize API, and a smaller size is an error. A
        different storage only gives a warning, because moving disks is not done here. Only the
        options you give are compared, so other options of an existing disk stay as they are.
      - V(absent) detaches the disk, and Proxmox VE keeps it as an C(unusedN) volume.
    type: dict
  networks:
    description:
      - NICs by slot (C(net0), C(net1)...), as a dict or a PVE string.
      - 'VM: C({model: virtio, bridge: vmbr0, tag: 20, firewall: true}); C(macaddr) is optional.'
      - 'Container: C({name: eth0, bridge: vmbr0, ip: dhcp}) or C(ip: 192.168.10.30/24, gw: ...);
        C(hwaddr) is optional; C(name) defaults to C(ethN).'
      - Without a MAC address, the MAC that Proxmox VE generated is kept. The other settings are
        compared as a whole, so a setting you leave out is removed. V(absent) removes the NIC.
    type: dict
  ipconfig:
    description:
      - 'Cloud-init IP configuration of a VM by slot (C(ipconfig0) for C(net0)...), as a dict or a PVE
        string, for example C({ip: 192.168.10.21/24, gw: 192.168.10.1}) or C(ip=dhcp).'
    type: dict
  nameserver:
    description: DNS servers (cloud-init for VMs, C(/etc/resolv.conf) for containers).
    type: list
    elements: str
  searchdomain:
    description: DNS search domains.
    type: list
    elements: str
  ciuser:
    description: Cloud-init user of a VM.
    type: str
  cipassword:
    description:
      - Cloud-init password of a VM. Proxmox VE keeps only a hash, so the password cannot be compared.
        It is set when the VM is created or cloned, or on every run with O(update_password=always).
      - With O(guests), set it here at the top level for all guests, not in a list item.
    type: str
  sshkeys:
    description:
      - Public SSH keys cloud-init installs for O(ciuser), one per item. A multi-line string also works.
      - The module URL-encodes the keys the way Proxmox VE requires.
    type: list
    elements: str
  agent:
    description: Enable the QEMU guest agent of a VM. The module reads the VM's IP addresses through it.
    type: bool
  tags:
    description:
      - Tags, for example V([k8s, gpu]). Order does not matter. Proxmox VE stores them separated by C(;).
      - The fingerprint tag C(ailab-fp-...) of O(config_check=fingerprint) is not one of them. It is
        neither compared nor removed here, and tags starting with C(ailab-fp-) are refused.
      - Tags must be lower case (PVE compares them without case); upper-case letters are refused.
    type: list
    elements: str
  onboot:
    description: Start the guest when its node boots.
    type: bool
  description:
    description: Notes shown in the Proxmox VE GUI.
    type: str
  hostpci:
    description:
      - 'PCI passthrough of a VM by slot, through a cluster PCI resource mapping, for example
        C(hostpci0: mapping=rtx3090,pcie=1) or C({mapping: rtx3090, pcie: true}). C(pcie) needs
        C(machine: q35) in O(config).'
      - The mapping must exist, with an entry for the VM's node. This is checked before any change.
      - A raw device (C(host=0000:01:00)) can be set only by C(root@pam) itself with a password. Proxmox VE
        refuses it to every other user and to every API token, C(root@pam)'s own included ("only root can set
        'hostpci0' config for non-mapped devices"). With a token the module refuses it before any change;
        create a PCI resource mapping (M(ailab.cluster.proxmox_pci_mapping)) and use C(mapping=<id>).
        The same holds for O(config) keys C(args), C(lock), C(vmstate), C(runningmachine), C(runningcpu),
        C(usbN) with a raw host device, and container bind mounts and C(devN) passthrough.
      - V(absent) removes the device.
    type: dict
  ostemplate:
    description:
      - Container template volume, for example C(local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst).
      - Required to create a container that is not cloned.
    type: str
  unprivileged:
    description: Create an unprivileged container. This cannot change after creation.
    type: bool
  features:
    description:
      - 'Container features as a dict or a PVE string, for example C({nesting: true, keyctl: true}).
        Kubernetes nodes in containers need C(nesting).'
    type: raw
  password:
    description:
      - Root password of a new container. Proxmox VE takes it only at creation.
      - With O(guests), set it here at the top level for all guests, not in a list item.
    type: str
  ssh_public_keys:
    description: Public SSH keys for root in a new container. Proxmox VE takes them only at creation.
    type: list
    elements: str
  config:
    description:
      - 'Other Proxmox VE options as they appear in the guest configuration, for example
        C({machine: q35, bios: ovmf, scsihw: virtio-scsi-single, protection: true}).'
      - Compared like the other options. A value with C(=) is compared as a key=value set.
        V(absent) removes the option.
      - Options that have their own parameter (C(net0), C(scsi0), C(cores), ...) are refused here.
    type: dict
  update_password:
    description:
      - V(on_create) sets O(cipassword) only when the VM is created or cloned. V(always) sets it on
        every run, which then always reports a change.
    type: str
    choices: [on_create, always]
    default: on_create
  purge:
    description:
      - With O(state=absent), also remove the guest from backup jobs, replication and HA. HA-managed
        guests cannot be destroyed without it.
    type: bool
    default: true
  force_stop:
    description: With O(state=stopped), stop the guest at once instead of shutting it down cleanly.
    type: bool
    default: false
  shutdown_timeout:
    description: Seconds a clean shutdown may take before Proxmox VE stops the guest.
    type: int
    default: 180
  restart_on_change:
    description:
      - Reboot a running guest when a change takes effect only after a restart (RV(pending_reboot)).
      - The module then also reads the pending changes of a running guest it did not change, so that
        changes an earlier run left pending are applied (one more read per running guest).
    type: bool
    default: false
  wait_for_ip:
    description:
      - Seconds to wait for the guest agent (VMs) or the container to report an IP address after the
        guest is running. With V(0), the module asks once and returns what is there.
    type: int
    default: 0
  timeout:
    description:
      - Seconds to wait for each Proxmox VE task (create, clone, resize, start, stop...), and for an
        HA-managed guest to reach the power state asked for (the HA stack acts a round or two after
        the request).
    type: int
    default: 600
  lock_timeout:
    description:
      - Seconds to wait for the lock of an existing guest (C(backup), C(migrate), C(snapshot), C(clone)...)
        to go away before changing it. With V(0) a locked guest that needs a change fails at once with
        a message naming the lock.
    type: int
    default: 0
  planned_nodes:
    description:
      - Check mode only. Names of nodes that join the cluster earlier in the same run (the
        C(ailab.cluster.proxmox_cluster) role's nodes), so that the plan of a fresh cluster accepts a new
        guest on such a node (with a warning) instead of refusing the node as unknown. A node neither in the
        cluster nor in this list is refused. Ignored outside check mode, where the join has happened.
      - A top-level option only, not an item key of O(guests).
    type: list
    elements: str
    default: []
  config_check:
    description:
      - How an existing guest is checked for changes.
      - V(full) reads the configuration of every guest (one C(GET .../config) per guest; Proxmox VE has no call
        that returns the configuration of many guests) and compares it with the options.
      - V(fingerprint) keeps a fingerprint of the options in a tag on the guest, C(ailab-fp-) and 12 hex digits
        (the start of the SHA-256 of the options as the module compares them, as canonical JSON). It covers every
        option that goes into the configuration, but not O(state) and not the secrets O(cipassword) and
        O(password). A guest whose C(/cluster/resources) entry has the tag of the current options and matches
        them is left alone without a configuration read. Matching means the same node (when O(node) is set),
        name, user tags (when O(tags) is set), not a template, C(maxcpu) equal to O(cores) x O(sockets)
        (sockets 1 when not set) or C(vcpus) of O(config), C(maxmem) equal to O(memory), and the power state
        of O(state=started) or O(state=stopped). Any other guest is read, compared and updated as with V(full),
        and gets the current tag in the same write as its other changes. When only the tag is missing or old,
        the tag is written alone, which is a change with C(tags) in the diff.
      - Switching to V(fingerprint) costs one changed run, which reads every guest and writes the tags.
      - 'Not detected in V(fingerprint) mode: changes made outside this module (web UI, C(qm set)) to settings
        that C(/cluster/resources) does not show. These are NICs (O(networks)), cloud-init settings
        (O(ipconfig), O(ciuser), O(sshkeys), O(nameserver), O(searchdomain)), O(hostpci), disks (their options,
        a disk added or detached, and a disk grown by hand, which V(full) reports as an impossible shrink),
        O(onboot), O(description), O(agent), O(cpu), O(features), O(swap) and the O(config) options. Use
        V(full) once to find and undo such edits.'
      - The cloud-init password is never compared (Proxmox VE keeps a hash). With O(update_password=always)
        a VM is read and written on every run in both modes. That is the way to change the password of
        existing VMs.
      - A running guest with changes that wait for a restart (for example memory) shows the old values in
        C(/cluster/resources), so it is read on every run until it restarts. The API user must be allowed to
        create tags (datacenter option C(user-tag-access), by default V(free)).
      - In V(fingerprint) mode a guest that is left alone returns no RV(config). Its addresses are read only
        when O(agent=true) is set (VMs), because the module does not read whether the agent is on.
    type: str
    choices: [full, fingerprint]
    default: full
  guests:
    description:
      - Manage many guests in one call. C(/cluster/resources) is read once for the whole list.
      - Each item takes the per-guest options of this module (O(name), O(vmid), O(node), O(type),
        O(state), O(clone), O(cores), O(disks), O(networks), ...). Options set at the top level are
        defaults for every item they apply to (VM-only options such as O(cipassword) are not passed to
        containers, container-only options such as O(password) not to VMs). The secrets O(cipassword) and
        O(password) are only accepted at the top level.
      - All items are checked before any change is made.
      - Mutually exclusive with O(name) and O(vmid).
    type: list
    elements: dict
notes:
  - The module works on Proxmox VE 8 and 9.
  - V(absent) stops a running guest first. An HA-managed guest is stopped through the HA stack, and the
    module waits (up to O(timeout)) until it is stopped, because Proxmox VE refuses to destroy a running
    guest.
  - Proxmox VE applies most changes to a running guest at once. RV(pending_reboot) is true when the
    change is one that Proxmox VE keeps pending until a restart, for example CPU, memory, PCI
    devices, cloud-init settings, disk options such as C(discard), C(cache), C(ssd) or C(iothread), and
    for containers everything except NICs, mount points, CPU, memory and swap. After writing to a running
    guest the module reads its pending changes, so RV(pending_reboot) says what Proxmox VE kept.
seealso:
  - module: ailab.cluster.proxmox_migrate
"""

EXAMPLES = r"""
- name: Kubernetes worker cloned from the cloud-init template, with a GPU through a PCI mapping
  ailab.cluster.proxmox_guest:
    name: k8s-gpu-1
    vmid: 212
    node: pve-2
    clone: ubuntu-2404-cloud
    storage: local-lvm
    cores: 8
    memory: 32768
    disks:
      scsi0: {size: 100G, discard: true, ssd: true}
    networks:
      net0: {model: virtio, bridge: vmbr0}
    ipconfig:
      ipconfig0: {ip: 192.168.10.32/24, gw: 192.168.10.1}
    nameserver: [192.168.10.1]
    ciuser: ubuntu
    sshkeys: "{{ lookup('ansible.builtin.file', 'files/lab_admin.pub') }}"
    agent: true
    hostpci:
      hostpci0: {mapping: rtx3090, pcie: true}
    config:
      machine: q35
    tags: [k8s, gpu]
    onboot: true
    state: started
    wait_for_ip: 180
  register: gpu_worker

- name: A container created from a template
  ailab.cluster.proxmox_guest:
    type: lxc
    name: nfs-tools
    node: pve-1
    ostemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
    unprivileged: true
    features: {nesting: true}
    cores: 2
    memory: 2048
    disks:
      rootfs: local-lvm:8
      mp0: {storage: nas, size: 50G, mp: /srv/data}
    networks:
      net0: {name: eth0, bridge: vmbr0, ip: dhcp}
    password: "{{ vault_ct_root_password }}"
    state: started

- name: Grow the worker's disk (never shrinks)
  ailab.cluster.proxmox_guest:
    name: k8s-gpu-1
    disks:
      scsi0: {size: 150G}

- name: Several guests at once, one read of the cluster
  ailab.cluster.proxmox_guest:
    clone: ubuntu-2404-cloud
    storage: local-lvm
    state: started
    config_check: fingerprint   # a re-run with the same options reads only /cluster/resources
    guests:
      - {name: k8s-cp-1, vmid: 201, node: pve-1, cores: 4, memory: 8192}
      - {name: k8s-w-1, vmid: 211, node: pve-1, cores: 8, memory: 16384}
      - {name: k8s-w-2, vmid: 212, node: pve-2, cores: 8, memory: 16384}
  register: k8s_guests

- name: Remove a VM and its disks, also from HA and backup jobs
  ailab.cluster.proxmox_guest:
    name: scratch-vm
    state: absent
"""

RETURN = r"""
vmid:
  description: VMID of the guest.
  returned: when one guest is managed (not with O(guests))
  type: int
  sample: 212
name:
  description: VM name or container hostname.
  returned: when one guest is managed
  type: str
  sample: k8s-gpu-1
node:
  description: Node the guest is on.
  returned: when one guest is managed
  type: str
  sample: pve-2
type:
  description: V(qemu) or V(lxc).
  returned: when one guest is managed
  type: str
  sample: qemu
status:
  description:
    - Power state after the run (V(running), V(stopped), or V(absent) once removed).
    - For a guest the module did not need to change it is the status C(/cluster/resources) shows, which can be
      up to 10 seconds old, and V(unknown) for a guest Proxmox VE's pvestatd has not reported yet.
  returned: when one guest is managed
  type: str
  sample: running
created:
  description: Whether the guest was created or cloned by this run.
  returned: when one guest is managed
  type: bool
  sample: true
config:
  description:
    - The guest configuration after the run as C(GET .../config) returns it, without C(digest). Passwords
      are masked. In check mode this is the predicted configuration.
  returned: when one guest is managed, it exists, and its configuration was read (RV(checked) is not V(fingerprint))
  type: dict
  sample: {name: k8s-gpu-1, cores: 8, memory: "32768", net0: "virtio=BC:24:11:5E:0A:12,bridge=vmbr0",
           hostpci0: "mapping=rtx3090,pcie=1", tags: "gpu;k8s"}
changes:
  description: The options written (new values; passwords masked), and the disks resized.
  returned: when one guest is managed
  type: dict
  sample: {config: {cores: 8}, resize: {scsi0: 150G}, power: start}
pending_reboot:
  description: Whether changes wait for a restart of the running guest (see O(restart_on_change)).
  returned: when one guest is managed
  type: bool
  sample: false
ip_addresses:
  description:
    - Addresses the guest agent (VMs with O(agent) on) or the container reports, IPv4 first, without
      loopback and link-local addresses. Empty when the guest is not running or the agent does not
      answer (yet).
  returned: when one guest is managed
  type: list
  elements: str
  sample: [192.168.10.32]
interfaces:
  description: The reported interfaces with MAC and addresses (CIDR), without loopback.
  returned: when one guest is managed
  type: list
  elements: dict
  sample: [{name: ens18, mac: "bc:24:11:5e:0a:12", addresses: [192.168.10.32/24]}]
checked:
  description:
    - How an existing guest was checked. V(config) means its configuration was read and compared. V(fingerprint)
      means that its fingerprint tag and its C(/cluster/resources) entry matched the options, so it was not read
      (see O(config_check)).
    - Null for a guest that did not exist before the run, or that is removed.
  returned: when one guest is managed
  type: str
  sample: fingerprint
fingerprint:
  description: The fingerprint tag of the options with O(config_check=fingerprint), null otherwise.
  returned: when one guest is managed
  type: str
  sample: ailab-fp-3f9a0c1d2e4b
guests:
  description: One result per item of O(guests), with the keys above plus C(changed).
  returned: with O(guests)
  type: list
  elements: dict
  sample: [{name: k8s-cp-1, vmid: 201, node: pve-1, type: qemu, status: running, changed: true,
            ip_addresses: [192.168.10.21]}]
"""

import ipaddress
import re
import time
from urllib.parse import quote, unquote

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    ProxmoxClient,
    ProxmoxError,
    config_changes,
    proxmox_argument_spec,
    proxmox_module_kwargs,
)
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox_guest import (
    as_props,
    find_guest,
    fingerprint_tag,
    fingerprint_tags,
    format_props,
    format_size,
    gib_text,
    guest_word,
    ha_sid,
    is_fingerprint_tag,
    live_status,
    name_unnamed,
    nic_string,
    node_problem,
    norm_value,
    parse_props,
    parse_size,
    props_key,
    pve_tags,
    split_nic,
    split_resources,
    split_tags,
    tags_key,
    user_tags,
    wait_result,
)

GUEST_SPEC = dict(
    name=dict(type="str"),
    vmid=dict(type="int"),
    node=dict(type="str"),
    type=dict(type="str", choices=["qemu", "lxc"], default="qemu"),
    state=dict(type="str", choices=["present", "started", "stopped", "absent"], default="present"),
    clone=dict(type="str"),
    full=dict(type="bool", default=True),
    storage=dict(type="str"),
    cores=dict(type="int"),
    sockets=dict(type="int"),
    cpu=dict(type="str"),
    memory=dict(type="int"),
    swap=dict(type="int"),
    disks=dict(type="dict"),
    networks=dict(type="dict"),
    ipconfig=dict(type="dict"),
    nameserver=dict(type="list", elements="str"),
    searchdomain=dict(type="list", elements="str"),
    ciuser=dict(type="str"),
    cipassword=dict(type="str", no_log=True),
    sshkeys=dict(type="list", elements="str", no_log=False),
    agent=dict(type="bool"),
    tags=dict(type="list", elements="str"),
    onboot=dict(type="bool"),
    description=dict(type="str"),
    hostpci=dict(type="dict"),
    ostemplate=dict(type="str"),
    unprivileged=dict(type="bool"),
    features=dict(type="raw"),
    password=dict(type="str", no_log=True),
    # Public keys are not secrets; hiding them would only make failures harder to read.
    ssh_public_keys=dict(type="list", elements="str", no_log=False),
    config=dict(type="dict"),
    update_password=dict(type="str", choices=["on_create", "always"], default="on_create", no_log=False),
    purge=dict(type="bool", default=True),
    force_stop=dict(type="bool", default=False),
    shutdown_timeout=dict(type="int", default=180),
    restart_on_change=dict(type="bool", default=False),
    wait_for_ip=dict(type="int", default=0),
    timeout=dict(type="int", default=600),
    lock_timeout=dict(type="int", default=0),
    config_check=dict(type="str", choices=["full", "fingerprint"], default="full"),
)
SECRETS = ("cipassword", "password")
QEMU_ONLY = ("sockets", "cpu", "ipconfig", "ciuser", "cipassword", "sshkeys", "agent", "hostpci")
LXC_ONLY = ("ostemplate", "unprivileged", "features", "password", "ssh_public_keys", "swap")
ABSENT = "absent"
MIB = 1024 ** 2
# Version of what the fingerprint covers: a new version makes every guest read once.
FINGERPRINT_VERSION = 1

QEMU_DISK = re.compile(r"^(?:scsi(?:[12]?\d|30)|virtio(?:1[0-5]|\d)|sata[0-5]|ide[0-3]|efidisk0|tpmstate0)$")
LXC_DISK = re.compile(r"^(?:rootfs|mp(?:2[0-5]\d|1?\d?\d))$")
NET_KEY = re.compile(r"^net(?:[12]?\d|3[01])$")
IPCONFIG_KEY = re.compile(r"^ipconfig(?:[12]?\d|3[01])$")
HOSTPCI_KEY = re.compile(r"^hostpci(?:1[0-5]|\d)$")
NEW_DISK = re.compile(r"^([^:/\s]+):(\d+(?:\.\d+)?)$")
DNS_NAME = re.compile(r"^(?=.{1,255}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_\-+.]*$")
# Options that have their own module parameter, refused in ``config``.
OWN_OPTIONS = ("name", "hostname", "cores", "sockets", "cpu", "memory", "swap", "nameserver", "searchdomain",
               "ciuser", "cipassword", "sshkeys", "agent", "tags", "onboot", "description", "ostemplate",
               "unprivileged", "features", "password", "ssh-public-keys", "digest", "delete", "revert", "lock",
               "template", "vmid", "node")

# Changes Proxmox VE applies to a running guest at once; everything else waits for a restart.
HOT_COMMON = ("name", "description", "tags", "onboot", "protection", "startup", "hookscript")
HOT_LXC = HOT_COMMON + ("memory", "swap", "cores", "cpulimit", "cpuunits")
HOT_QEMU_PREFIX = ("net", "scsi", "virtio", "usb", "unused")
HOT_LXC_PREFIX = ("net", "mp", "unused")


def is_hot(kind, key):
    prefixes = HOT_QEMU_PREFIX if kind == "qemu" else HOT_LXC_PREFIX
    if key.startswith(prefixes) and key.rstrip("0123456789") in prefixes:
        return True
    return key in (HOT_COMMON if kind == "qemu" else HOT_LXC)


# Options only root@pam itself may set (qemu-server API2/Qemu.pm $check_vm_modify_config_perm dies
# "only root can set '<key>' config" for them; pve-container check_ct_modify_config_perm for bind
# mounts and devices). An API token's user is user@realm!token, never root@pam.
ROOT_ONLY_QEMU = ("args", "lock", "vmstate", "runningmachine", "runningcpu")
USB_KEY = re.compile(r"^usb\d+$")
DEV_KEY = re.compile(r"^dev\d+$")
# Drive options Proxmox VE changes on a running VM without a restart (qemu-server
# vmconfig_hotplug_pending / vmconfig_update_disk: throttling and flags, not cache/discard/ssd/iothread).
DISK_LIVE_OPTIONS = ("size", "backup", "replicate") + tuple(
    "%s%s%s" % (base, kind, suffix) for base in ("iops", "mbps", "bps") for kind in ("", "_rd", "_wr")
    for suffix in ("", "_max", "_max_length"))


class GuestError(Exception):
    """Bad input for one guest, found before any write."""


HA_SETTLED = {"running": "started", "stopped": "stopped"}
# What holds a guest's lock, for messages (PVE::AbstractConfig lock names).
LOCK_WORDS = {"backup": "backup", "migrate": "migration", "clone": "clone", "create": "create task",
              "snapshot": "snapshot", "snapshot-delete": "snapshot removal", "rollback": "snapshot rollback",
              "suspending": "suspend", "suspended": "suspend (hibernated guest)", "copy": "disk copy",
              "disk": "disk move"}
_LOCKED = re.compile(r"\b(?:VM|CT) \d+ is locked \(([\w-]+)\)")


def locked_by(exc):
    """The lock named in a PVE 'VM N is locked (backup)' error, or None."""
    match = _LOCKED.search(getattr(exc, "msg", "") or str(exc))
    return match.group(1) if match else None


def is_stale_digest(exc):
    """True for PVE's answer to a write with an outdated config digest."""
    text = getattr(exc, "msg", "") or str(exc)
    return "detected modified configuration" in text or "checksum mismatch" in text or "checksum missmatch" in text


def disk_change_is_hot(kind, old, new):
    """True when changing an existing disk from ``old`` to ``new`` applies to a running guest at once."""
    volume_key = "file" if kind == "qemu" else "volume"
    before, after = parse_props(old, volume_key), parse_props(new, volume_key)
    if kind != "qemu" or before.get(volume_key) != after.get(volume_key):
        return True  # another volume is hot-plugged like a new disk where the bus allows it (is_hot)
    changed = set(k for k in set(before) | set(after) if norm_value(before.get(k, "")) != norm_value(after.get(k, "")))
    return changed <= set(DISK_LIVE_OPTIONS)


# ---------------------------------------------------------------------------------- desired config
def disk_spec(kind, slot, value, default_storage):
    """A disk option -> dict(kind=new|cloudinit|volume, storage, size, volume, opts) or ABSENT."""
    volume_key = "file" if kind == "qemu" else "volume"
    if isinstance(value, str) and value.strip() == ABSENT:
        return ABSENT
    if isinstance(value, dict):
        props = as_props(value)
        volume = props.pop("volume", None) or props.pop("file", None)
        explicit = props.pop("storage", None)
        storage = explicit or default_storage
        size = props.pop("size", None)
    elif isinstance(value, str):
        props = parse_props(value, volume_key)
        volume = props.pop(volume_key, None)
        storage = explicit = None
        size = props.pop("size", None)
        match = NEW_DISK.match(volume or "")
        if match:
            volume, storage, size = None, match.group(1), match.group(2) + "G"
            explicit = storage
    else:
        raise GuestError("disk %s must be a dict or a PVE string, not %r" % (slot, value))
    if "discard" in props and str(props["discard"]) in ("1", "0", "True", "False"):
        # YAML turns `discard: on` into true; PVE wants on/ignore.
        props["discard"] = "on" if str(props["discard"]) in ("1", "True") else "ignore"
    if isinstance(size, (str, int, float)):
        parsed = parse_size(size, "G")
        if parsed is None or parsed <= 0:
            raise GuestError("disk %s has an invalid size %r: use a size like 32G, 32768M or a number of GiB"
                             % (slot, size))
        size = parsed
    if kind == "lxc" and slot.startswith("mp") and "mp" not in props:
        raise GuestError("mount point %s needs mp, the path inside the container (for example mp: /srv/data)" % slot)
    if volume and volume.endswith(":cloudinit") and kind == "qemu":
        return dict(kind="cloudinit", storage=volume.split(":", 1)[0], size=None, volume=None, opts=props)
    if volume:
        return dict(kind="volume", storage=None, size=size, volume=volume, opts=props)
    if size is None:
        raise GuestError("disk %s needs a size, for example size: 32G" % slot)
    return dict(kind="new", storage=storage, size=size, volume=None, opts=props, slot=slot, explicit=bool(explicit))


def new_disk_string(spec):
    """What to send to allocate a disk: ``local-lvm:32,discard=on`` / ``local-lvm:cloudinit``."""
    if spec["kind"] == "cloudinit":
        head = "%s:cloudinit" % spec["storage"]
    elif spec["kind"] == "new":
        if not spec["storage"]:
            raise GuestError("new disk %s needs a storage: set storage in the disk or the storage option"
                             % spec["slot"])
        head = "%s:%s" % (spec["storage"], gib_text(spec["size"]))
    else:
        head = spec["volume"]
        if spec["size"]:
            spec = dict(spec, opts=dict(spec["opts"], size=format_size(spec["size"])))
    rest = format_props(spec["opts"])
    return head + ("," + rest if rest else "")


def nic_desired(kind, slot, value):
    if isinstance(value, str) and value.strip() == ABSENT:
        return ABSENT
    if not isinstance(value, (dict, str)):
        raise GuestError("NIC %s must be a dict or a PVE string, not %r" % (slot, value))
    props, mac = split_nic(kind, value)
    if kind == "qemu":
        props.setdefault("model", "virtio")
    else:
        props.setdefault("name", "eth%s" % slot[3:])
    return props, mac


def prop_desired(slot, value, default_key=None):
    if isinstance(value, str) and value.strip() == ABSENT:
        return ABSENT
    if not isinstance(value, (dict, str)):
        raise GuestError("%s must be a dict or a PVE string, not %r" % (slot, value))
    return as_props(value, default_key)


def check_ipconfig(slot, props):
    """The addresses of a cloud-init ipconfig, checked as qemu-server's $ipconfig_fmt does (ip and ip6 in
    CIDR notation or dhcp / auto, gw and gw6 plain addresses of the same family), before any API call."""
    for key in sorted(props):
        value = str(props[key])
        try:
            # pve-common PVE::JSONSchema pve_verify_ipv4_config / _ipv6_config: dhcp, manual (auto for IPv6)
            # or CIDR with a prefix length above 7.
            if key in ("ip", "ip6"):
                version = 4 if key == "ip" else 6
                specials = ("dhcp", "manual") if version == 4 else ("dhcp", "auto", "manual")
                ok = value in specials or ("/" in value and ipaddress.ip_interface(value).version == version
                                           and int(value.rsplit("/", 1)[1]) > 7)
            elif key in ("gw", "gw6"):
                ok = ipaddress.ip_address(value).version == (4 if key == "gw" else 6)
            else:
                raise GuestError("%s key %s is not a cloud-init ipconfig key: use ip, gw, ip6, gw6" % (slot, key))
        except ValueError:
            ok = False
        if not ok:
            example = {"ip": "192.168.10.21/24 or dhcp", "ip6": "2001:db8::21/64, dhcp or auto",
                       "gw": "192.168.10.1", "gw6": "2001:db8::1"}[key]
            raise GuestError("%s.%s %s is not a valid %s (e.g. %s)" % (
                slot, key, value, "address with prefix length" if key in ("ip", "ip6") else "gateway address", example))


def scalar(value):
    """A plain option value for comparison: booleans 1/0, numbers and text as text."""
    return norm_value(value)


def sshkeys_list(value):
    lines = []
    for item in value or []:
        lines.extend(line.strip() for line in str(item).splitlines() if line.strip())
    return lines


class Desired(object):
    """The options of one guest, as comparable values and as values to write."""

    def __init__(self, p):
        self.p = p
        self.kind = p["type"]
        kind = self.kind
        self.simple = {}     # key -> write value (compared as scalars)
        self.props = {}      # key -> (props dict, default key) compared as key=value sets
        self.nics = {}       # netN -> (props, mac)
        self.disks = {}      # slot -> spec
        self.deletes = []    # keys to remove
        name_key = "name" if kind == "qemu" else "hostname"
        if p["name"] is not None:
            if not DNS_NAME.match(p["name"]):
                raise GuestError("name %s is not a valid DNS name: use letters, digits and hyphens" % p["name"])
            self.simple[name_key] = p["name"]
        for key in ("cores", "sockets", "swap", "onboot", "description", "ciuser", "unprivileged"):
            if p[key] is not None:
                self.simple[key] = p[key]
        if p["memory"] is not None:
            self.props["memory"] = ({"current": str(p["memory"])}, "current")
        if p["cpu"] is not None:
            self.props["cpu"] = (as_props(p["cpu"], "cputype"), "cputype")
        if p["agent"] is not None:
            self.agent = bool(p["agent"])
        else:
            self.agent = None
        if p["features"] is not None:
            if not isinstance(p["features"], (dict, str)):
                raise GuestError("features must be a dict or a PVE string like nesting=1,keyctl=1")
            self.props["features"] = (as_props(p["features"]), None)
        self.tags = None
        if p["tags"] is not None:
            tags = split_tags(p["tags"])
            bad = [t for t in tags if not TAG.match(t)]
            if bad:
                raise GuestError("tags %s are not valid Proxmox VE tags: use letters, digits, _ - + ." % ", ".join(bad))
            # PVE de-duplicates tags case-insensitively (pve-guest-common PVE::GuestHelpers::get_unique_tags,
            # datacenter tag-style case-sensitive off by default), so "GPU" and "gpu" would fight on every run.
            upper = [t for t in tags if t != t.lower()]
            if upper:
                raise GuestError("tags %s have upper-case letters: Proxmox VE compares tags without case, so write "
                                 "them in lower case (%s)" % (", ".join(upper), ", ".join(t.lower() for t in upper)))
            reserved = [t for t in tags if is_fingerprint_tag(t)]
            if reserved:
                raise GuestError("tags %s start with ailab-fp-, which is kept for the fingerprint of config_check: "
                                 "fingerprint: remove them from tags" % ", ".join(reserved))
            self.tags = tags
        self.nameserver = " ".join(p["nameserver"]) if p["nameserver"] is not None else None
        self.searchdomain = " ".join(p["searchdomain"]) if p["searchdomain"] is not None else None
        self.sshkeys = sshkeys_list(p["sshkeys"]) if p["sshkeys"] is not None else None
        for slot, value in sorted((p["networks"] or {}).items()):
            if not NET_KEY.match(slot):
                raise GuestError("networks key %s is not a NIC slot: use net0 ... net31" % slot)
            nic = nic_desired(kind, slot, value)
            if nic == ABSENT:
                self.deletes.append(slot)
            else:
                self.nics[slot] = nic
        for option, pattern, default_key, example in (("ipconfig", IPCONFIG_KEY, None, "ipconfig0"),
                                                      ("hostpci", HOSTPCI_KEY, "host", "hostpci0")):
            for slot, value in sorted((p[option] or {}).items()):
                if not pattern.match(slot):
                    raise GuestError("%s key %s is not a slot: use %s, %s1 ..." % (option, slot, example, example[:-1]))
                props = prop_desired(slot, value, default_key)
                if option == "ipconfig" and props != ABSENT:
                    check_ipconfig(slot, props)
                if props == ABSENT:
                    self.deletes.append(slot)
                else:
                    self.props[slot] = (props, default_key)
        disk_key = QEMU_DISK if kind == "qemu" else LXC_DISK
        for slot, value in sorted((p["disks"] or {}).items()):
            if not disk_key.match(slot):
                raise GuestError("disks key %s is not a %s disk slot: use %s" % (
                    slot, "VM" if kind == "qemu" else "container",
                    "scsi0, virtio0, sata0, ide2, efidisk0, tpmstate0" if kind == "qemu" else "rootfs, mp0, mp1 ..."))
            spec = disk_spec(kind, slot, value, p["storage"])
            if spec == ABSENT:
                if slot == "rootfs":
                    raise GuestError("rootfs cannot be removed from a container")
                self.deletes.append(slot)
            else:
                self.disks[slot] = spec
        for key, value in sorted((p["config"] or {}).items()):
            if key in OWN_OPTIONS or NET_KEY.match(key) or IPCONFIG_KEY.match(key) or HOSTPCI_KEY.match(key) \
                    or disk_key.match(key):
                raise GuestError("config key %s has its own option: set it with %s" % (key, own_option(key)))
            if isinstance(value, str) and value.strip() == ABSENT:
                self.deletes.append(key)
            elif isinstance(value, dict):
                self.props[key] = (as_props(value), None)
            elif isinstance(value, (str, int, float, bool)):
                self.simple[key] = value
            else:
                raise GuestError("config key %s must be a string, number, boolean or dict" % key)

    # ---- fingerprint
    def fingerprint(self):
        """The fingerprint tag of these options: everything that goes into the config, normalized as compared.

        Not the power state and not the secrets (cipassword, password), nor options that only matter
        when the guest is created (clone, full, ostemplate, ssh_public_keys).
        """
        disks = {}
        for slot, spec in self.disks.items():
            disks[slot] = dict(kind=spec["kind"], storage=spec["storage"], size=spec["size"], volume=spec["volume"],
                               explicit=spec.get("explicit", False), opts=props_key(spec["opts"]))
        data = dict(
            version=FINGERPRINT_VERSION,
            type=self.kind,
            simple=dict((k, scalar(v)) for k, v in self.simple.items()),
            props=dict((k, props_key(props)) for k, (props, dk) in self.props.items()),
            agent=self.agent,
            tags=tags_key(self.tags) if self.tags is not None else None,
            nameserver=" ".join(self.nameserver.split()) if self.nameserver is not None else None,
            searchdomain=" ".join(self.searchdomain.split()) if self.searchdomain is not None else None,
            sshkeys=sorted(self.sshkeys) if self.sshkeys is not None else None,
            nics=dict((slot, [props_key(props), mac]) for slot, (props, mac) in self.nics.items()),
            disks=disks,
            deletes=sorted(self.deletes),
        )
        return fingerprint_tag(data)

    # ---- comparison against the current config
    def compare(self, current, vmid, fingerprint=None):
        """(cmp_desired, cmp_current, write) for config_changes; write holds what to send per key.

        ``fingerprint``: the fingerprint tag the guest must carry (config_check=fingerprint); None keeps
        the fingerprint tags the guest has. User tags never include fingerprint tags.
        """
        kind = self.kind
        want, have, write = {}, {}, {}
        for key, value in self.simple.items():
            want[key] = scalar(value)
            have[key] = scalar(current[key]) if key in current else None
            write[key] = value
        for key, (props, default_key) in self.props.items():
            want[key] = props_key(props)
            have[key] = props_key(parse_props(current[key], default_key)) if key in current else None
            write[key] = format_props(props, default_key)
        if self.agent is not None:
            cur = parse_props(current.get("agent", "0"), "enabled")
            want["agent"] = "1" if self.agent else "0"
            have["agent"] = norm_value(cur.get("enabled", "0"))
            cur["enabled"] = self.agent
            write["agent"] = format_props(cur, "enabled")
        cur_fp = fingerprint_tags(current.get("tags"))
        fp = [fingerprint] if fingerprint else cur_fp
        if self.tags is not None or tags_key(fp) != tags_key(cur_fp):
            tags = (self.tags if self.tags is not None else user_tags(current.get("tags"))) + fp
            want["tags"] = tags_key(tags)
            have["tags"] = tags_key(current.get("tags"))
            write["tags"] = pve_tags(tags)  # as PVE stores them, so the diff shows what PVE will have
        for key in ("nameserver", "searchdomain"):
            value = getattr(self, key)
            if value is not None:
                want[key] = " ".join(value.split())
                have[key] = " ".join(str(current.get(key, "")).split())
                write[key] = value
        if self.sshkeys is not None:
            want["sshkeys"] = "\n".join(sorted(self.sshkeys))
            have["sshkeys"] = "\n".join(sorted(sshkeys_list([unquote(current.get("sshkeys", ""))])))
            write["sshkeys"] = quote("\n".join(self.sshkeys), safe="")
        for slot, (props, mac) in self.nics.items():
            cur_props, cur_mac = split_nic(kind, current[slot]) if slot in current else ({}, None)
            if kind == "lxc" and "type" not in props and cur_props.get("type") == "veth":
                cur_props.pop("type")
            want[slot] = props_key(props) + ("|" + mac if mac else "")
            have[slot] = (props_key(cur_props) + ("|" + cur_mac if mac and cur_mac else "")) \
                if slot in current else None
            write[slot] = nic_string(kind, props, mac or cur_mac)
        return want, have, write

    def disk_plan(self, current, what):
        """(config writes, resizes {slot: bytes}, warnings) for the disks; raises GuestError on shrink."""
        volume_key = "file" if self.kind == "qemu" else "volume"
        writes, resizes, warnings = {}, {}, []
        for slot, spec in self.disks.items():
            if slot not in current:
                writes[slot] = new_disk_string(spec)
                continue
            cur = parse_props(current[slot], volume_key)
            cur_volume = cur.pop(volume_key, "")
            cur_size = parse_size(cur.pop("size", ""), "")
            if spec["kind"] == "cloudinit":
                if "cloudinit" not in cur_volume or cur_volume.split(":", 1)[0] != spec["storage"]:
                    writes[slot] = new_disk_string(spec)
                continue
            if spec["kind"] == "volume" and spec["volume"] != cur_volume:
                writes[slot] = new_disk_string(spec)
                continue
            # Only a storage named in the disk itself is compared; the storage option is a default for new disks.
            if spec["kind"] == "new" and spec["explicit"] and ":" in cur_volume \
                    and cur_volume.split(":", 1)[0] != spec["storage"]:
                where = cur_volume.split(":", 1)[0]
                warnings.append("disk %s of %s is on storage %s, not %s; moving disks is not done by this module "
                                "(use 'Move disk' in Proxmox VE)" % (slot, what, where, spec["storage"]))
            if spec["size"] and cur_size is not None:
                if spec["size"] < cur_size:
                    raise GuestError("disk %s of %s is %s and Proxmox VE cannot shrink disks: set its size to %s "
                                     "or more" % (slot, what, format_size(cur_size), format_size(cur_size)))
                if spec["size"] > cur_size:
                    resizes[slot] = spec["size"]
            changed_opts = dict((k, v) for k, v in spec["opts"].items() if norm_value(cur.get(k, "")) != norm_value(v))
            if changed_opts:
                cur.update(changed_opts)
                writes[slot] = format_props(dict([(volume_key, cur_volume)] + list(cur.items())), volume_key)
        return writes, resizes, warnings


def own_option(key):
    if NET_KEY.match(key):
        return "networks"
    if IPCONFIG_KEY.match(key):
        return "ipconfig"
    if HOSTPCI_KEY.match(key):
        return "hostpci"
    if QEMU_DISK.match(key) or LXC_DISK.match(key):
        return "disks"
    return {"hostname": "name", "ssh-public-keys": "ssh_public_keys"}.get(key, key)


def mask(config):
    """A config dict for output: no digest, passwords masked."""
    result = {}
    for key, value in (config or {}).items():
        if key == "digest":
            continue
        result[key] = "**********" if key in SECRETS and value else value
    return result


# ---------------------------------------------------------------------------------- one guest
class Guest(object):
    """Plan (reads and checks only) and apply (writes) for one guest."""

    def __init__(self, module, client, params, nodes, guests, mappings_reader):
        self.module = module
        self.client = client
        self.p = params
        self.kind = params["type"]
        self.nodes = nodes
        self.cluster_guests = guests
        self.mappings_reader = mappings_reader
        self.check = module.check_mode
        self.timeout = params["timeout"]
        self.entry = None
        self.vmid = params["vmid"]
        self.node = params["node"]
        self.current = None
        self.status = None
        self.source = None
        self.source_config = None
        self.changed = False
        self.created = False
        self.pending_reboot = False
        self.changes = {}
        self.warnings = []
        self.before = {}
        self.after = {}
        self.final_config = None
        # True while self.current is what PVE returned after the last config-changing call.
        self.config_fresh = False
        self.ip_addresses = []
        self.interfaces = []
        # config_check: the fingerprint tag the guest must carry (None in full mode), and how an
        # existing guest was checked: "config" (read) or "fingerprint" (left alone without a read).
        self.fingerprint = None
        self.checked = None
        # Live state from status/current (None until read): lock and HA state.
        self.lock = None
        self.ha = {}
        self.live_read = False
        self.digest_retried = False

    @property
    def what(self):
        return guest_word(self.kind, self.vmid, self.p["name"])

    def path(self, suffix=""):
        return "nodes/%s/%s/%s%s" % (self.node, self.kind, self.vmid, suffix)

    # ------------------------------------------------------------------ plan
    def validate_input(self):
        p = self.p
        if p["vmid"] is None and not p["name"]:
            raise GuestError("set name or vmid to say which guest to manage")
        if p["vmid"] is not None and not 100 <= p["vmid"] <= 999999999:
            raise GuestError("vmid %s is out of range: Proxmox VE VMIDs are 100 to 999999999" % p["vmid"])
        wrong = QEMU_ONLY if self.kind == "lxc" else LXC_ONLY
        used = [k for k in wrong if p[k] is not None]
        if used:
            raise GuestError("%s only apply to %s: remove them or set type: %s" % (
                ", ".join(used), "VMs" if self.kind == "lxc" else "containers", "qemu" if self.kind == "lxc" else "lxc"))
        for key in ("cores", "sockets", "memory", "shutdown_timeout", "timeout", "wait_for_ip"):
            if p[key] is not None and p[key] < (16 if key == "memory" else 0 if key in ("wait_for_ip",) else 1):
                raise GuestError("%s must be a positive number, got %s" % (key, p[key]))
        if p["swap"] is not None and p["swap"] < 0:
            raise GuestError("swap must be 0 or more, got %s" % p["swap"])
        if p["lock_timeout"] is not None and p["lock_timeout"] < 0:
            raise GuestError("lock_timeout must be 0 or more, got %s" % p["lock_timeout"])
        self.desired = Desired(p)
        self.check_root_only()
        if p["config_check"] == "fingerprint":
            self.fingerprint = self.desired.fingerprint()

    def check_root_only(self):
        """Refuse what only root@pam itself may set when the module logs in otherwise (a token, another user)."""
        params = self.module.params
        if not params.get("api_token_secret") and params.get("api_user") == "root@pam":
            return
        login = ("API token %s" % params.get("api_token_id") if params.get("api_token_secret")
                 else "user %s" % params.get("api_user"))
        found = []
        for key, (props, _default_key) in sorted(self.desired.props.items()):
            if (HOSTPCI_KEY.match(key) or USB_KEY.match(key)) and props.get("host") and not props.get("mapping") \
                    and props.get("host") != "spice":
                found.append("%s (raw device %s)" % (key, props["host"]))
        for key in sorted(self.desired.simple):
            value = self.desired.simple[key]
            if key in ROOT_ONLY_QEMU and self.kind == "qemu":
                found.append(key)
            elif USB_KEY.match(key) and self.kind == "qemu":
                host = parse_props(value, "host").get("host")
                if host and host != "spice" and not parse_props(value, "host").get("mapping"):
                    found.append("%s (raw device %s)" % (key, host))
            elif DEV_KEY.match(key) and self.kind == "lxc":
                found.append(key)
        if self.kind == "lxc":
            for slot, spec in sorted(self.desired.disks.items()):
                if str(spec.get("volume") or "").startswith("/"):
                    found.append("%s (bind mount %s)" % (slot, spec["volume"]))
        if found:
            raise GuestError("%s sets %s, which Proxmox VE lets only root@pam itself set (a password login as "
                             "root@pam, never an API token: a token's user is user@realm!token); the module logs in "
                             "as %s. For GPUs and other PCI devices create a PCI resource mapping "
                             "(ailab.cluster.proxmox_pci_mapping) and use hostpciN: mapping=<id>; drop the other "
                             "keys or run this one change as root@pam" % (self.what, ", ".join(found), login))

    def plan(self):
        self.validate_input()
        p = self.p
        self.entry = find_guest(self.cluster_guests, p["vmid"], p["name"] if p["vmid"] is None else None, self.kind)
        if self.entry is None:
            if p["state"] == "absent":
                return
            self.plan_create()
            return
        self.vmid = int(self.entry["vmid"])
        actual = self.entry["node"]
        if self.node and self.node != actual:
            self.warnings.append("%s is on node %s, not %s: leaving it there (use ailab.cluster.proxmox_migrate to "
                                 "move it)" % (self.what, actual, self.node))
        self.node = actual
        # The status in /cluster/resources is pvestatd's (up to ~10 s old; 'unknown' for a guest it has
        # not seen yet): only the node entry says whether the node is offline.
        self.status = self.entry.get("status")
        self.lock = self.entry.get("lock")
        if actual in self.nodes and self.nodes[actual].get("status") != "online":
            raise GuestError("%s is on node %s, which is offline: bring the node back or migrate the guest first"
                             % (self.what, actual))
        if p["state"] == "absent":
            self.read_live()
            return
        if self.fingerprint and self.summary_matches():
            self.checked = "fingerprint"
            return
        self.checked = "config"
        self.current = self.client.get(self.path("/config"), what=self.what)
        wanted = {"started": "running", "stopped": "stopped"}.get(p["state"])
        if wanted and self.status != wanted:
            self.read_live()  # pvestatd's status may be stale: ask before starting or stopping
        if norm_value(self.current.get("template", 0)) == "1" and p["state"] == "started":
            raise GuestError("%s is a template and cannot be started: clone it, or use state present" % self.what)
        self.plan_update(self.current)

    def read_live(self):
        """Power state, lock and HA state now (``status/current``), not as pvestatd last saw them."""
        self.live_read = True
        live = live_status(self.client, self.node, self.kind, self.vmid)
        self.status = live.get("status") or self.status
        self.lock = live.get("lock")
        self.ha = live.get("ha") or {}

    def summary_matches(self):
        """True when the guest's /cluster/resources entry carries the current fingerprint tag and shows
        what the options ask for, so that its configuration need not be read (config_check=fingerprint)."""
        p, entry = self.p, self.entry
        if fingerprint_tags(entry.get("tags")) != [self.fingerprint]:
            return False
        if entry.get("status") in (None, "unknown") or entry.get("lock"):
            return False  # pvestatd has not reported the guest yet, or it is busy: read it
        if self.kind == "qemu" and p["cipassword"] and p["update_password"] == "always":
            return False  # sent on every run: a write, so the full path
        if p["node"] and p["node"] != entry.get("node"):
            return False
        if p["name"] is not None and entry.get("name") != p["name"]:
            return False
        if self.desired.tags is not None and tags_key(user_tags(entry.get("tags"))) != tags_key(self.desired.tags):
            return False
        if norm_value(entry.get("template") or 0) != "0":
            return False
        if p["memory"] is not None and int(entry.get("maxmem") or 0) != p["memory"] * MIB:
            return False
        cpus = self.expected_cpus()
        if cpus is not None:
            node_cpus = int((self.nodes.get(entry.get("node")) or {}).get("maxcpu") or 0)
            # PVE counts at most the node's CPUs (unless vcpus is set).
            allowed = set([cpus]) | (set([node_cpus]) if node_cpus and cpus > node_cpus else set())
            if int(entry.get("maxcpu") or 0) not in allowed:
                return False
        wanted = {"started": "running", "stopped": "stopped"}.get(p["state"])
        if wanted and entry.get("status") != wanted:
            return False
        return True

    def expected_cpus(self):
        """``maxcpu`` the options give: vcpus, or cores x sockets (VM), or cores (CT); None when not set."""
        simple = self.desired.simple
        if self.kind == "qemu" and simple.get("vcpus") is not None:
            return int(simple["vcpus"])
        if self.p["cores"] is None and self.p["sockets"] is None:
            return None
        if self.kind == "lxc":
            return self.p["cores"]
        return (self.p["sockets"] or 1) * (self.p["cores"] or 1)

    def plan_create(self):
        p = self.p
        if not self.node:
            raise GuestError("node is required to create %s: set the node it should run on" % self.what)
        planned = self.module.params["planned_nodes"] if self.check else []
        problem = node_problem(self.nodes, self.node, planned)
        if problem:
            raise GuestError("cannot create %s: %s" % (self.what, problem))
        if self.node not in self.nodes:
            self.warnings.append("%s: node %s joins the cluster in this run (planned_nodes); the guest is created "
                                 "there once it is a member" % (self.what, self.node))
        if p["vmid"] is None and not p["name"]:
            raise GuestError("set name or vmid for the new guest")
        # /cluster/resources leaves out the guests the caller may not see: make sure this one is new,
        # not hidden, before creating it (one read, only for a create and never for root@pam).
        self.client.require_visible("/vms/%s" % p["vmid"] if p["vmid"] is not None else "/vms",
                                    ("VM.Audit",), self.what)
        if p["clone"] is not None:
            source = p["clone"]
            vmid = int(source) if source.isdigit() else None
            self.source = find_guest(self.cluster_guests, vmid, None if vmid else source, self.kind)
            if self.source is None:
                raise GuestError("clone source %s %s does not exist: create the template first or fix clone"
                                 % ("template" if vmid is None else "VMID", source))
            self.source_config = self.client.get("nodes/%s/%s/%s/config" % (
                self.source["node"], self.kind, self.source["vmid"]), what="clone source %s" % source)
            # The config, not /cluster/resources: pvestatd may not have reported a new template yet.
            if not p["full"] and norm_value(self.source_config.get("template", 0)) != "1":
                raise GuestError("a linked clone needs a template and %s is not one: set full: true or convert it "
                                 "to a template" % guest_word(self.kind, self.source["vmid"], self.source.get("name")))
            # A clone has the template's disks: refuse a shrink now, before anything is written.
            self.desired.disk_plan(self.source_config, self.what)
        else:
            if self.kind == "lxc" and not p["ostemplate"]:
                raise GuestError("ostemplate is required to create container %s (or clone it from a template)"
                                 % self.what)
            for spec in self.desired.disks.values():
                new_disk_string(spec)  # every new disk names its storage
        self.check_mappings()

    def plan_update(self, current):
        self.desired.disk_plan(current, self.what)  # raises on shrink
        if self.kind == "lxc" and self.p["unprivileged"] is not None:
            if norm_value(current.get("unprivileged", 0)) != norm_value(self.p["unprivileged"]):
                raise GuestError("%s is %s and that cannot change after creation: recreate it or drop unprivileged"
                                 % (self.what, "unprivileged" if norm_value(current.get("unprivileged", 0)) == "1"
                                    else "privileged"))
        self.check_mappings()

    def check_mappings(self):
        mappings = [props.get("mapping") for key, (props, dk) in self.desired.props.items()
                    if HOSTPCI_KEY.match(key) and props.get("mapping")]
        if not mappings:
            return
        known = self.mappings_reader()
        for name in mappings:
            if name not in known:
                raise GuestError("PCI mapping %s used by %s does not exist: create it first (Datacenter > Resource "
                                 "Mappings)" % (name, self.what))
            if self.node not in known[name]:
                raise GuestError("PCI mapping %s has no device on node %s, where %s runs: add the node's GPU to the "
                                 "mapping or place the guest on %s" % (name, self.node, self.what,
                                                                       " or ".join(sorted(known[name])) or "a mapped node"))

    # ------------------------------------------------------------------ apply
    def apply(self):
        p = self.p
        if self.entry is None and p["state"] == "absent":
            self.status = "absent"
            return
        if p["state"] == "absent":
            self.apply_absent()
            return
        if self.entry is None:
            self.apply_create()
        elif self.checked == "config":
            try:
                self.apply_update(self.current)
            except ProxmoxError as exc:
                if not is_stale_digest(exc) or self.digest_retried:
                    raise
                # Someone changed the guest between our read and our write: read it again, plan again, retry once.
                self.digest_retried = True
                self.changes = {}
                self.current = self.client.get(self.path("/config"), what=self.what)
                self.read_live()
                self.plan_update(self.current)
                self.apply_update(self.current)
        self.apply_power()
        self.read_back()

    def task(self, method, suffix, what, **params):
        if self.lock and self.entry is not None:
            self.wait_unlocked(what)
        if suffix in ("/config", "/resize"):
            self.config_fresh = False
        try:
            result = getattr(self.client, method)(self.path(suffix), what=what, **params)
            return wait_result(self.client, self.node, result, what, self.timeout)
        except ProxmoxError as exc:
            lock = locked_by(exc)
            if lock:
                raise ProxmoxError(self.locked_message(lock, what), status=exc.status) from None
            raise

    def locked_message(self, lock, what):
        waited = (" (waited %ss)" % self.p["lock_timeout"]) if self.p["lock_timeout"] else ""
        return ("%s is locked (%s)%s, so Proxmox VE refuses %s: a %s is running on it. Wait for it to finish and run "
                "again, or set lock_timeout to wait for the lock to go away" % (
                    self.what, lock, waited, what, LOCK_WORDS.get(lock, "task holding the lock")))

    def wait_unlocked(self, what):
        """Wait up to lock_timeout for the guest's lock to go away; fail with a message naming the lock."""
        deadline = time.time() + self.p["lock_timeout"]
        while self.lock:
            if time.time() >= deadline:
                raise ProxmoxError(self.locked_message(self.lock, what))
            time.sleep(min(2.0, max(0.05, deadline - time.time())))
            self.read_live()

    def wait_power(self, wanted, what):
        """Wait until status/current shows ``wanted`` (HA requests act a CRM round or two later)."""
        deadline = time.time() + self.timeout
        delay = 0.1
        while True:
            live = live_status(self.client, self.node, self.kind, self.vmid)
            ha = live.get("ha") or {}
            # An HA service has settled when the guest is in the state asked for and so is the service
            # (not request_stop, queued, starting... while the CRM and LRM still act on a request).
            if live.get("status") == wanted and (not ha.get("managed") or ha.get("state") == HA_SETTLED[wanted]):
                self.ha = ha or self.ha
                return
            if time.time() >= deadline:
                ha = live.get("ha") or {}
                raise ProxmoxError("Timed out after %ss waiting for %s to be %s for %s: it is %s%s. Check the HA "
                                   "state with ha-manager status, or raise timeout" % (
                                       self.timeout, self.what, wanted, what, live.get("status") or "unknown",
                                       " (HA service %s, state %s)" % (ha_sid(self.kind, self.vmid), ha.get("state"))
                                       if ha.get("managed") else ""))
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def apply_absent(self):
        self.changed = True
        self.before = {"state": self.status, "config": mask(self.client.get(self.path("/config"), what=self.what))}
        self.after = {"state": "absent"}
        self.changes = {"power": "destroy"}
        if not self.check:
            if self.status == "running":
                # Proxmox VE refuses to destroy a running guest ("VM N is running - destroy failed"); an
                # HA-managed guest stops only when the HA stack acts on the request, so wait for it.
                what = "stopping %s before removal" % self.what
                self.task("post", "/status/stop", what)
                self.wait_power("stopped", what)
            self.task("delete", "", "removing %s" % self.what, purge=self.p["purge"] or None,
                      **{"destroy-unreferenced-disks": 1})
        self.status = "absent"

    def next_vmid(self, reserved):
        vmid = int(self.client.get("cluster/nextid", what="the next free VMID"))
        taken = set(int(g["vmid"]) for g in self.cluster_guests) | reserved
        while vmid in taken:  # check mode: earlier guests of the list are not created
            vmid += 1
        return vmid

    def create_params(self):
        """Everything a create call takes for the desired options."""
        d = self.desired
        params = dict(d.compare({}, None, self.fingerprint)[2])
        for slot, spec in d.disks.items():
            params[slot] = new_disk_string(spec)
        if self.kind == "qemu":
            if self.p["cipassword"]:
                params["cipassword"] = self.p["cipassword"]
        else:
            params["ostemplate"] = self.p["ostemplate"]
            params["storage"] = self.p["storage"]
            params["password"] = self.p["password"]
            if self.p["ssh_public_keys"]:
                params["ssh-public-keys"] = "\n".join(sshkeys_list(self.p["ssh_public_keys"]))
        return dict((k, v) for k, v in params.items() if v is not None and v != "")

    def apply_create(self):
        self.changed = self.created = True
        if self.vmid is None:
            self.vmid = self.next_vmid(self.module.reserved_vmids)
        self.module.reserved_vmids.add(self.vmid)
        if self.p["clone"] is None:
            params = self.create_params()
            self.before = {"state": "absent"}
            self.after = {"state": "present", "config": mask(params)}
            self.changes = {"config": mask(params)}
            if not self.check:
                result = self.client.post("nodes/%s/%s" % (self.node, self.kind), what="creating %s" % self.what,
                                          vmid=self.vmid, **params)
                wait_result(self.client, self.node, result, "creating %s" % self.what, self.timeout)
                self.current = self.client.get(self.path("/config"), what=self.what)
                self.config_fresh = True
            else:
                self.current = dict(params)
            self.status = "stopped"
            return
        # Clone, then configure the copy like an existing guest.
        source = self.source
        name_key = "name" if self.kind == "qemu" else "hostname"
        clone = dict(newid=self.vmid, target=self.node if self.node != source["node"] else None,
                     full=self.p["full"], storage=self.p["storage"] if self.p["full"] else None)
        clone[name_key] = self.p["name"]
        what = "cloning %s into %s" % (guest_word(self.kind, source["vmid"], source.get("name")), self.what)
        self.changes = {"clone": dict(source=int(source["vmid"]), full=self.p["full"], node=self.node)}
        if not self.check:
            result = self.client.post("nodes/%s/%s/%s/clone" % (source["node"], self.kind, source["vmid"]), what=what,
                                      **clone)
            wait_result(self.client, source["node"], result, what, self.timeout)
            self.current = self.client.get(self.path("/config"), what=self.what)
            self.config_fresh = True
        else:
            self.current = dict((k, v) for k, v in self.source_config.items() if k not in ("template", "digest"))
            if self.p["name"]:
                self.current[name_key] = self.p["name"]
        self.status = "stopped"
        self.apply_update(self.current, cloned=True)
        self.before = {"state": "absent"}
        self.after = dict(self.after, state="present", clone=int(source["vmid"]))

    def apply_update(self, current, cloned=False):
        d = self.desired
        want, have, write = d.compare(current, self.vmid, self.fingerprint)
        keys_changed, before, after = config_changes(want, have)
        writes = dict((k, write[k]) for k in keys_changed if write[k] != "")
        emptied = [k for k in keys_changed if write[k] == "" and k in current]  # empty list: remove the option
        disk_writes, resizes, warnings = d.disk_plan(current, self.what)
        self.warnings.extend(warnings)
        writes.update(disk_writes)
        if self.kind == "qemu" and self.p["cipassword"] and (cloned or self.p["update_password"] == "always"):
            writes["cipassword"] = self.p["cipassword"]
        deletes = [k for k in d.deletes if k in current] + emptied
        self.before = dict((k, mask({k: current.get(k)})[k]) for k in sorted(set(writes) | set(deletes)))
        self.after = dict((k, mask({k: writes.get(k)})[k]) for k in sorted(set(writes) | set(deletes)))
        for slot, size in resizes.items():
            self.before.setdefault("size_" + slot, parse_props(current[slot]).get("size"))
            self.after["size_" + slot] = format_size(size)
        if writes or deletes:
            self.changes["config"] = mask(writes)
            if deletes:
                self.changes["delete"] = deletes
        if resizes:
            self.changes["resize"] = dict((k, format_size(v)) for k, v in resizes.items())
        if not (writes or deletes or resizes):
            return
        if not self.live_read and not cloned:
            self.read_live()  # running or not decides what stays pending; read once, only when writing
        self.changed = True
        cold = [k for k in list(writes) + deletes if not is_hot(self.kind, k)]
        cold += [k for k in disk_writes if k in current and is_hot(self.kind, k)
                 and not disk_change_is_hot(self.kind, current[k], disk_writes[k])]
        if self.status == "running" and cold:
            self.pending_reboot = True
        if self.check:
            current.update(writes)
            for key in deletes:
                current.pop(key, None)
            return
        params = dict(writes)
        last = {}
        if self.fingerprint and resizes and "tags" in params:
            # The fingerprint says "up to date": write it after the resizes, so that a failed resize
            # leaves the old tag and the next run reads the guest again.
            last["tags"] = params.pop("tags")
        if params or deletes:
            if deletes:
                params["delete"] = ",".join(deletes)
            if current.get("digest"):
                # Read-modify-write: PVE refuses it when the config changed since it was read.
                params["digest"] = current["digest"]
            self.write_config(params)
            params.pop("digest", None)
            if list(params) == ["tags"] and not resizes:
                # Only the tags changed (typically the fingerprint tag): no need to read the config again.
                current["tags"] = params["tags"]
                self.config_fresh = True
        for slot, size in sorted(resizes.items()):
            self.task("put", "/resize", "growing disk %s of %s to %s" % (slot, self.what, format_size(size)),
                      disk=slot, size=format_size(size))
        if last:
            self.write_config(last)
        if self.status == "running":
            self.read_pending()

    def read_pending(self):
        """pending_reboot as Proxmox VE has it after the writes: any option still pending (or to delete)."""
        pending = self.client.get(self.path("/pending"), what=self.what) or []
        self.pending_reboot = any("pending" in item or "delete" in item for item in pending
                                  if item.get("key") not in ("digest",))

    def write_config(self, params):
        # VMs: POST (a task: hotplug and disk allocation happen there); the tags alone go through the
        # synchronous PUT, which needs no task wait.
        if self.kind == "qemu" and sorted(params) not in (["tags"], ["digest", "tags"]):
            self.task("post", "/config", "configuring %s" % self.what, **params)
        else:
            self.task("put", "/config", "configuring %s" % self.what, **params)

    def apply_power(self):
        state = self.p["state"]
        running = self.status == "running"
        if running and self.p["restart_on_change"] and not self.pending_reboot and self.checked == "config" \
                and not self.changed:
            # Nothing written in this run, but an earlier run (or a hand edit) may have left changes pending.
            self.read_pending()
        if running and self.pending_reboot and self.p["restart_on_change"]:
            self.changes["power"] = "reboot"
            self.changed = True
            if not self.check:
                self.task("post", "/status/reboot", "rebooting %s to apply changes" % self.what,
                          timeout=self.p["shutdown_timeout"])
            self.pending_reboot = False
        if state == "started" and not running:
            self.changes["power"] = "start"
            self.changed = True
            if not self.created:
                self.before.setdefault("status", self.status)
            self.after["status"] = "running"
            if not self.check:
                what = "starting %s" % self.what
                self.task("post", "/status/start", what)
                if self.ha.get("managed"):
                    self.wait_power("running", what)
            self.status = "running"
        elif state == "stopped" and running:
            self.changes["power"] = "stop" if self.p["force_stop"] else "shutdown"
            self.changed = True
            self.before.setdefault("status", self.status)
            self.after["status"] = "stopped"
            if not self.check:
                if self.p["force_stop"]:
                    self.task("post", "/status/stop", "stopping %s" % self.what)
                else:
                    self.task("post", "/status/shutdown", "shutting down %s" % self.what,
                              forceStop=1, timeout=self.p["shutdown_timeout"])
                if self.ha.get("managed"):
                    self.wait_power("stopped", "stopping %s" % self.what)
            self.status = "stopped"
            self.pending_reboot = False

    def read_back(self):
        if self.changed and not self.check and not self.config_fresh and self.checked != "fingerprint":
            self.current = self.client.get(self.path("/config"), what=self.what)
        self.final_config = mask(self.current) if self.current is not None else None
        if self.status == "running" and not self.check:
            self.read_addresses()

    def read_addresses(self):
        if self.kind == "qemu":
            if self.current is None:  # not read (config_check=fingerprint): ask the agent only when it is set on
                if self.desired.agent is not True:
                    return
            else:
                agent = parse_props(self.current.get("agent", "0"), "enabled").get("enabled", "0")
                if norm_value(agent) != "1":
                    return
        deadline = time.time() + max(self.p["wait_for_ip"], 0)
        delay = 0.25
        while True:
            try:
                if self.kind == "qemu":
                    answer = self.client.get(self.path("/agent/network-get-interfaces"), what="guest agent of %s"
                                             % self.what)
                    self.interfaces = agent_interfaces(answer)
                else:
                    self.interfaces = ct_interfaces(self.client.get(self.path("/interfaces"), what=self.what))
            except ProxmoxError:
                self.interfaces = []
            self.ip_addresses = addresses_of(self.interfaces)
            if self.ip_addresses or time.time() >= deadline:
                return
            time.sleep(max(0.05, min(delay, deadline - time.time())))
            delay = min(delay * 2, 5)

    def result(self):
        result = dict(changed=self.changed, vmid=self.vmid, name=self.p["name"] or (self.entry or {}).get("name"),
                      node=self.node, type=self.kind, status=self.status, created=self.created,
                      pending_reboot=self.pending_reboot, changes=self.changes, ip_addresses=self.ip_addresses,
                      interfaces=self.interfaces, checked=self.checked, fingerprint=self.fingerprint)
        if self.status != "absent" and self.final_config is not None:
            result["config"] = self.final_config
            name_key = "name" if self.kind == "qemu" else "hostname"
            result["name"] = self.final_config.get(name_key, result["name"])
        return result


# ---------------------------------------------------------------------------------- addresses
def agent_interfaces(answer):
    result = []
    for iface in (answer or {}).get("result", []):
        addresses = ["%s/%s" % (a.get("ip-address"), a.get("prefix")) for a in iface.get("ip-addresses", [])
                     if a.get("ip-address") and not is_local(a["ip-address"])]
        if iface.get("name") == "lo" or not addresses:
            continue
        result.append(dict(name=iface.get("name"), mac=iface.get("hardware-address"), addresses=addresses))
    return result


def ct_interfaces(answer):
    result = []
    for iface in answer or []:
        addresses = [a for a in (iface.get("inet"), iface.get("inet6")) if a and not is_local(a.split("/")[0])]
        if iface.get("name") == "lo" or not addresses:
            continue
        result.append(dict(name=iface.get("name"), mac=iface.get("hwaddr"), addresses=addresses))
    return result


def is_local(address):
    address = address.lower()
    return address.startswith("127.") or address == "::1" or address.startswith("fe80:")


def addresses_of(interfaces):
    addresses = [a.split("/")[0] for i in interfaces for a in i["addresses"]]
    return [a for a in addresses if ":" not in a] + [a for a in addresses if ":" in a]


# ---------------------------------------------------------------------------------- module
def guest_params(module):
    """The per-guest parameter sets: one, or one per item of ``guests`` (top-level options as defaults)."""
    top = dict((k, module.params[k]) for k in GUEST_SPEC)
    if module.params["guests"] is None:
        return [top]
    validator = ArgumentSpecValidator(GUEST_SPEC)
    items = []
    errors = []
    for index, item in enumerate(module.params["guests"]):
        if not isinstance(item, dict):
            errors.append("guests[%s] must be a dict of guest options" % index)
            continue
        for key in SECRETS:
            if item.get(key):
                module.no_log_values.add(str(item[key]))
                errors.append("guests[%s] sets %s: set secrets once at the top level, where they are kept out of "
                              "logs" % (index, key))
        kind = item.get("type") or top["type"]
        foreign = LXC_ONLY if kind == "qemu" else QEMU_ONLY
        merged = dict((k, v) for k, v in top.items() if v is not None and k not in foreign)
        merged.update(item)
        result = validator.validate(merged)
        if result.error_messages:
            label = item.get("name") or item.get("vmid")
            errors.append("guests[%s] (%s): %s" % (index, label, "; ".join(result.error_messages)))
            continue
        items.append(result.validated_parameters)
    if errors:
        module.fail_json(msg="Invalid guests list: " + " | ".join(errors))
    names, vmids = {}, {}
    for item in items:
        if item["name"]:
            key = (item["type"], item["name"])
            names[key] = names.get(key, 0) + 1
        if item["vmid"] is not None:
            vmids[item["vmid"]] = vmids.get(item["vmid"], 0) + 1
    dup = sorted("%s" % n for (t, n), c in names.items() if c > 1) + sorted("VMID %s" % v for v, c in vmids.items()
                                                                            if c > 1)
    if dup:
        module.fail_json(msg="The guests list names %s more than once: each guest must appear once" % ", ".join(dup))
    return items


def main():
    spec = dict(GUEST_SPEC, guests=dict(type="list", elements="dict"),
                planned_nodes=dict(type="list", elements="str", default=[]))
    kwargs = proxmox_module_kwargs()
    kwargs["mutually_exclusive"] = kwargs["mutually_exclusive"] + [("guests", "name"), ("guests", "vmid")]
    kwargs["required_one_of"] = kwargs["required_one_of"] + [("name", "vmid", "guests")]
    module = AnsibleModule(argument_spec=proxmox_argument_spec(**spec), supports_check_mode=True, **kwargs)
    items = guest_params(module)
    module.reserved_vmids = set()
    batch = module.params["guests"] is not None
    client = ProxmoxClient.from_module(module)

    mapping_cache = {}

    def read_mappings():
        if "all" not in mapping_cache:
            mapping_cache["all"] = dict(
                (m["id"], set(parse_props(e).get("node") for e in (m.get("map") or [])))
                for m in client.get("cluster/mapping/pci", what="the PCI resource mappings"))
        return mapping_cache["all"]

    guests = []
    try:
        nodes, cluster_guests = split_resources(client.get("cluster/resources", what="the cluster resources"))
        if any(item["vmid"] is None or (item["clone"] and not item["clone"].isdigit()) for item in items):
            # Guests pvestatd has not reported yet have no name there: read their config, once each.
            name_unnamed(client, cluster_guests)
        for item in items:
            guest = Guest(module, client, item, nodes, cluster_guests, read_mappings)
            try:
                guest.plan()
            except GuestError as exc:
                raise ProxmoxError("%s: %s" % (guest.what, exc) if batch else str(exc)) from None
            guests.append(guest)
        for guest in guests:
            guest.apply()
    except GuestError as exc:
        module.fail_json(msg=str(exc))
    except ProxmoxError as exc:
        done = [g.what for g in guests if g.changed and not module.check_mode]
        extra = dict(status=exc.status)
        if batch and done:
            extra["changed_guests"] = done
        module.fail_json(msg=exc.msg, **extra)

    warnings = [w for g in guests for w in g.warnings]
    for warning in warnings:
        module.warn(warning)
    changed = any(g.changed for g in guests)
    if batch:
        result = dict(changed=changed, guests=[g.result() for g in guests])
        if module._diff:
            result["diff"] = dict(before=dict((g.what, g.before) for g in guests if g.changed),
                                  after=dict((g.what, g.after) for g in guests if g.changed))
    else:
        guest = guests[0]
        result = guest.result()
        if module._diff:
            result["diff"] = dict(before=guest.before, after=guest.after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
