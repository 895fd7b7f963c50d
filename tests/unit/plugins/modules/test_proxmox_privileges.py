"""Modules run with a privilege-separated token do not recreate what they may not see.

Proxmox VE filters ``/storage`` and ``/cluster/mapping/pci`` by permission: an entry the token
may not see is absent from the list. Before the module creates such an entry it reads
``/access/permissions`` (ProxmoxClient.require_visible) and fails with "missing privilege X on
path Y", without any write. The old code sent the create and failed on PVE's "already defined".
"""

import pytest

from ansible_collections.ailab.cluster.plugins.modules import proxmox_guest, proxmox_pci_mapping, proxmox_storage

NAS = dict(storage="nas", type="nfs", server="192.168.10.50", export="/mnt/tank/pve",
           content=["backup", "images", "iso", "rootdir", "snippets", "vztmpl"])
GPU = dict(id="rtx3090", map=[dict(node="pve-1", path=["0000:01:00"], id="10de:2204", subsystem_id="10de:1454",
                                   iommugroup=14)])


def token_params(sim, acls):
    """A privilege-separated token of ailab@pve holding ``acls`` ``(path, role)`` (user and token alike)."""
    root = sim.api()
    root.access.users.post(userid="ailab@pve")
    secret = root.access.users("ailab@pve").token("ansible").post(privsep=1)["value"]
    for path, role in acls:
        root.access.acl.put(path=path, roles=role, users="ailab@pve", tokens="ailab@pve!ansible", propagate=0)
    return dict(sim.module_params(), api_user="ailab@pve", api_token_id="ailab@pve!ansible", api_token_secret=secret)


@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
def test_storage_hidden_by_acl_is_not_recreated(pve9_sim, run_module, check_mode):
    # Datastore.Allocate on /storage (create), nothing on /storage/nas: the list comes back without nas
    params = token_params(pve9_sim, [("/storage", "PVEDatastoreAdmin")])
    pve9_sim.clear_log()
    result = run_module(proxmox_storage, dict(params, **NAS), check_mode=check_mode)
    assert result.get("failed"), result
    assert result["msg"].startswith("missing privilege Datastore.Audit or Datastore.AllocateSpace on path "
                                    "/storage/nas: the API user or token cannot see storage nas"), result["msg"]
    assert pve9_sim.writes() == []


def test_storage_visible_to_the_token_is_left_alone(pve9_sim, run_module):
    params = token_params(pve9_sim, [("/storage", "PVEDatastoreAdmin"), ("/storage/nas", "PVEDatastoreAdmin")])
    pve9_sim.clear_log()
    result = run_module(proxmox_storage, dict(params, **NAS))
    assert not result.get("failed"), result
    assert result["changed"] is False and pve9_sim.writes() == []
    assert "/access/permissions" not in [r["path"] for r in pve9_sim.reads()]  # no create, no extra read


def test_new_storage_with_the_privilege_is_created(pve9_sim, run_module):
    params = token_params(pve9_sim, [("/storage", "PVEDatastoreAdmin"), ("/storage/scratch", "PVEDatastoreAdmin")])
    result = run_module(proxmox_storage, dict(params, storage="scratch", type="dir", path="/srv/scratch"))
    assert not result.get("failed"), result
    assert result["changed"] and [w["path"] for w in pve9_sim.writes()][-1] == "/storage"


def test_pci_mapping_hidden_by_acl_is_not_recreated(pve9_sim, run_module):
    pve9_sim.api().cluster.mapping.pci.post(id="rtx3090", map=["node=pve-1,path=0000:01:00,id=10de:2204"])
    params = token_params(pve9_sim, [("/mapping/pci", "PVEMappingAdmin"), ("/", "PVEAuditor")])
    pve9_sim.clear_log()
    result = run_module(proxmox_pci_mapping, dict(params, **GPU))
    assert result.get("failed"), result
    assert result["msg"].startswith("missing privilege Mapping.Audit or Mapping.Use or Mapping.Modify on path "
                                    "/mapping/pci/rtx3090"), result["msg"]
    assert pve9_sim.writes() == []


def test_guest_hidden_by_acl_is_not_recreated(pve9_sim, run_module):
    # VM 300 exists; the token may allocate VMs on /vms/300 but not see it (no VM.Audit there), so
    # /cluster/resources leaves it out. The old code sent the create and failed on "already exists".
    root = pve9_sim.api()
    root.nodes("pve-1").qemu.post(vmid=300, name="web", memory=512)
    pve9_sim.wait_tasks()
    root.access.roles.post(roleid="AllocOnly", privs="VM.Allocate,VM.Config.Memory,VM.PowerMgmt")
    params = token_params(pve9_sim, [("/vms/300", "AllocOnly"), ("/", "PVEAuditor")])
    pve9_sim.clear_log()
    result = run_module(proxmox_guest, dict(params, name="web", vmid=300, node="pve-1", memory=512,
                                            state="present"))
    assert result.get("failed"), result
    assert result["msg"].startswith("missing privilege VM.Audit on path /vms/300"), result["msg"]
    assert pve9_sim.writes() == []
