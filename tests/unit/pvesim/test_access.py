"""Users, roles, ACLs, privilege-separated tokens and permission-filtered lists (tests/pvesim/acl.py).

Each rule names the pve-access-control / pve-manager code it models in acl.py or api/access.py.
"""

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from pvesim.acl import AccessConfig, split_path
from pvesim.auth import Principal


def token_api(sim, full_tokenid, secret):
    user, _bang, name = full_tokenid.rpartition("!")
    return ProxmoxAPI(sim.host, port=sim.port, user=user, token_name=name, token_value=secret,
                      verify_ssl=sim.ca_file, backend="https")


def make_token(root, userid="ailab@pve", tokenid="ansible", privsep=1):
    if userid not in [u["userid"] for u in root.access.users.get()]:
        root.access.users.post(userid=userid, comment="ailab automation")
    return root.access.users(userid).token(tokenid).post(privsep=privsep)


def denied(call):
    with pytest.raises(ResourceException) as raised:
        call()
    assert raised.value.status_code == 403
    return raised.value.content


def test_token_secret_is_answered_once_and_never_listed(pve9_sim):
    root = pve9_sim.api()
    answer = make_token(root)
    assert answer["full-tokenid"] == "ailab@pve!ansible"
    assert answer["info"]["privsep"] == 1
    assert len(answer["value"]) == 36
    assert answer["value"] not in str(root.access.users("ailab@pve").token("ansible").get())
    assert answer["value"] not in str(root.access.users.get(full=1))
    assert answer["value"] not in str(pve9_sim.state())
    with pytest.raises(ResourceException, match="Token already exists"):
        root.access.users("ailab@pve").token("ansible").post()
    assert token_api(pve9_sim, answer["full-tokenid"], answer["value"]).version.get()["release"] == "9.1"
    with pytest.raises(Exception, match="401"):
        token_api(pve9_sim, answer["full-tokenid"], "00000000-0000-0000-0000-000000000000").version.get()


def test_privsep_token_without_acl_sees_nothing_and_may_write_nothing(pve9_sim):
    root = pve9_sim.api()
    token = make_token(root)
    root.access.acl.put(path="/", roles="Administrator", users="ailab@pve")
    api = token_api(pve9_sim, token["full-tokenid"], token["value"])
    # pve-storage Config.pm index / pve-manager Cluster.pm resources: what the caller may not see is absent
    assert api.storage.get() == []
    assert api.cluster.mapping.pci.get() == []
    resources = api.cluster.resources.get()
    assert {r["type"] for r in resources} == {"node"}
    assert all("maxmem" not in r for r in resources)
    assert [n["node"] for n in api.nodes.get()] == ["pve-1", "pve-2"]
    assert denied(lambda: api.storage.post(storage="scratch", type="dir", path="/srv/scratch")) == \
        "Permission check failed (/storage, Datastore.Allocate)"
    assert denied(api.cluster.backup.get) == "Permission check failed (/, Sys.Audit)"
    # the same user without privilege separation holds the user's privileges
    full = make_token(root, tokenid="full", privsep=0)
    assert token_api(pve9_sim, full["full-tokenid"], full["value"]).storage.get() != []


def test_privsep_token_holds_the_intersection_of_user_and_token_acls(pve9_sim):
    root = pve9_sim.api()
    token = make_token(root)
    api = token_api(pve9_sim, token["full-tokenid"], token["value"])
    root.access.acl.put(path="/storage", roles="PVEDatastoreAdmin", tokens=token["full-tokenid"])
    assert api.storage.get() == []  # the user holds nothing
    root.access.acl.put(path="/storage", roles="PVEDatastoreUser", users="ailab@pve")
    visible = {s["storage"] for s in api.storage.get()}
    assert visible == {s["storage"] for s in root.storage.get()}
    # Datastore.Allocate: the token has it, the user not
    assert denied(lambda: api.storage.post(storage="scratch", type="dir", path="/srv/scratch")) == \
        "Permission check failed (/storage, Datastore.Allocate)"
    permissions = api.access.permissions.get(path="/storage/local")
    assert permissions == {"/storage/local": {"Datastore.AllocateSpace": 1, "Datastore.Audit": 1}}


def test_propagation_and_deeper_acls_replace_upper_ones(pve9_sim):
    root = pve9_sim.api()
    token = make_token(root, privsep=0)
    api = token_api(pve9_sim, token["full-tokenid"], token["value"])
    # AccessControl.pm roles(): an entry without propagate applies to its own path only
    root.access.acl.put(path="/storage", roles="PVEDatastoreUser", users="ailab@pve", propagate=0)
    assert api.storage.get() == []
    root.access.acl.put(path="/storage", roles="PVEDatastoreUser", users="ailab@pve", propagate=1)
    names = {s["storage"] for s in api.storage.get()}
    assert "local" in names
    # a deeper entry replaces what the levels above gave: NoAccess on one storage hides it
    root.access.acl.put(path="/storage/local", roles="NoAccess", users="ailab@pve")
    assert {s["storage"] for s in api.storage.get()} == names - {"local"}
    root.access.acl.put(path="/storage/local", roles="NoAccess", users="ailab@pve", delete=1)
    assert {s["storage"] for s in api.storage.get()} == names


def test_acl_update_refuses_unknown_roles_users_tokens_and_paths(pve9_sim):
    root = pve9_sim.api()
    make_token(root)
    for params, message in [
        ({"path": "/", "roles": "Nope", "users": "ailab@pve"}, "role 'Nope' does not exist"),
        ({"path": "/", "roles": "PVEAuditor", "users": "ghost@pve"}, "user 'ghost@pve' does not exist"),
        ({"path": "/", "roles": "PVEAuditor", "tokens": "ailab@pve!ghost"}, "no such token 'ghost'"),
        ({"path": "/nowhere", "roles": "PVEAuditor", "users": "ailab@pve"}, "invalid ACL path '/nowhere'"),
    ]:
        with pytest.raises(ResourceException, match=message):
            root.access.acl.put(**params)
    assert root.access.acl.get() == []


def test_roles_check_privileges_per_version(pve8_sim, pve9_sim):
    # AccessControl.pm verify_privname: PVE 9 dropped VM.Monitor
    pve8_sim.api().access.roles.post(roleid="Ailab", privs="VM.Monitor,Sys.Audit")
    assert pve8_sim.api().access.roles("Ailab").get() == {"Sys.Audit": 1, "VM.Monitor": 1}
    with pytest.raises(ResourceException, match="invalid privilege 'VM.Monitor'"):
        pve9_sim.api().access.roles.post(roleid="Ailab", privs="VM.Monitor,Sys.Audit")
    root = pve9_sim.api()
    root.access.roles.post(roleid="Ailab", privs="Sys.Audit")
    root.access.roles("Ailab").put(privs="Datastore.Audit", append=1)
    assert root.access.roles("Ailab").get() == {"Datastore.Audit": 1, "Sys.Audit": 1}
    with pytest.raises(ResourceException, match="already exists"):
        root.access.roles.post(roleid="PVEAuditor", privs="Sys.Audit")
    with pytest.raises(ResourceException, match="predefined role"):
        root.access.roles("PVEAuditor").put(privs="Sys.Modify")
    listed = {r["roleid"]: r for r in root.access.roles.get()}
    assert listed["Ailab"]["special"] == 0 and listed["PVEAuditor"]["special"] == 1


def test_pci_mappings_and_guests_are_filtered_per_object(pve9_sim):
    root = pve9_sim.api()
    for name in ("gpu-a", "gpu-b"):
        root.cluster.mapping.pci.post(id=name, map=["node=pve-1,path=0000:01:00,id=10de:2204"])
    for vmid in (100, 101):
        root.nodes("pve-1").qemu.post(vmid=vmid)
    pve9_sim.wait_tasks()
    mappings = [m["id"] for m in root.cluster.mapping.pci.get()]
    guests = sorted(r["vmid"] for r in root.cluster.resources.get(type="vm"))
    assert (mappings, guests) == (["gpu-a", "gpu-b"], [100, 101])
    token = make_token(root, privsep=0)
    api = token_api(pve9_sim, token["full-tokenid"], token["value"])
    root.access.acl.put(path=f"/mapping/pci/{mappings[0]}", roles="PVEMappingUser", users="ailab@pve")
    root.access.acl.put(path=f"/vms/{guests[0]}", roles="PVEAuditor", users="ailab@pve")
    assert [m["id"] for m in api.cluster.mapping.pci.get()] == mappings[:1]
    assert [r["vmid"] for r in api.cluster.resources.get(type="vm")] == guests[:1]


def test_users_acl_and_permissions_are_limited_to_what_the_caller_may_see(pve9_sim):
    root = pve9_sim.api()
    token = make_token(root, privsep=0)
    root.access.acl.put(path="/", roles="PVEAuditor", users="ailab@pve")
    api = token_api(pve9_sim, token["full-tokenid"], token["value"])
    # User.pm index: Sys.Audit on /access/groups shows every user; ACL.pm read_acl: Permissions.Modify
    assert "root@pam" in [u["userid"] for u in api.access.users.get()]
    assert api.access.acl.get() == []
    assert len(root.access.acl.get()) == 1
    assert denied(lambda: api.access.acl.put(path="/", roles="Administrator", users="ailab@pve")) == \
        "Permission check failed (/, Permissions.Modify)"
    # own permissions are always readable; another user's need Sys.Audit on /access (the auditor has it)
    assert "Sys.Audit" in api.access.permissions.get(path="/")["/"]
    assert "Sys.Modify" in api.access.permissions.get(path="/", userid="root@pam")["/"]
    readonly = pve9_sim.api(readonly=True)
    assert denied(lambda: readonly.access.roles.post(roleid="x", privs="Sys.Audit")) == \
        "Permission check failed (/access, Sys.Modify)"


def test_access_config_survives_dump_and_restore():
    access = AccessConfig(9)
    access.users["a@pve"] = {"enable": 1, "expire": 0, "tokens": {}}
    access.add_token("a@pve", "t", "secret", {"privsep": 1, "expire": 0})
    access.acl.append({"path": "/vms", "type": "token", "ugid": "a@pve!t", "roleid": "PVEVMAdmin", "propagate": 1})
    access.acl.append({"path": "/vms", "type": "user", "ugid": "a@pve", "roleid": "PVEAuditor", "propagate": 1})
    copy = AccessConfig(9, access.dump())
    principal = Principal("a@pve", "user", "t", True, copy)
    assert copy.token_matches("a@pve", "t", "secret") and not copy.token_matches("a@pve", "t", "other")
    assert "secret" not in str(copy.dump())
    assert principal.privileges("/vms/100") == {"VM.Audit", "VM.GuestAgent.Audit"}
    assert principal.privileges("/storage") == set()
    assert split_path("/vms/100") == ["/", "/vms", "/vms/100"]


def test_pve8_checks_vm_monitor_where_the_schema_names_guest_agent_privileges(pve8_sim):
    root = pve8_sim.api()
    root.nodes("pve-1").qemu.post(vmid=100, agent=1)
    pve8_sim.wait_tasks()
    token = make_token(root, privsep=0)
    root.access.roles.post(roleid="Agent", privs="VM.Audit")
    root.access.acl.put(path="/vms", roles="Agent", users="ailab@pve")
    api = token_api(pve8_sim, token["full-tokenid"], token["value"])
    agent = api.nodes("pve-1").qemu(100).agent("network-get-interfaces")
    assert denied(agent.get) == "Permission check failed (/vms/100, VM.Monitor)"
    root.access.roles("Agent").put(privs="VM.Monitor", append=1)
    with pytest.raises(ResourceException) as raised:
        agent.get()
    assert raised.value.status_code != 403


def test_a_user_manages_its_own_tokens_only_and_a_disabled_user_has_none(pve9_sim):
    root = pve9_sim.api()
    token = make_token(root, privsep=0)
    api = token_api(pve9_sim, token["full-tokenid"], token["value"])
    # User.pm token methods: ['or', ['userid-param', 'self'], ['userid-group', ['User.Modify']]]
    assert [t["tokenid"] for t in api.access.users("ailab@pve").token.get()] == ["ansible"]
    root.access.users.post(userid="other@pve")
    assert denied(lambda: api.access.users("other@pve").token("xx").post()) == \
        "Permission check failed (/access/groups, User.Modify)"
    # deleting a token removes its ACL entries (User.pm remove_token); a disabled user's tokens stop working
    root.access.users("ailab@pve").token("extra").post()
    root.access.acl.put(path="/", roles="PVEAuditor", tokens="ailab@pve!extra")
    root.access.users("ailab@pve").token("extra").delete()
    assert root.access.acl.get() == []
    root.access.users("ailab@pve").put(enable=0)
    with pytest.raises(Exception, match="401"):
        api.version.get()


def test_a_privilege_separated_token_of_an_administrator_holds_only_its_own_acls(pve9_sim):
    root = pve9_sim.api()
    token = make_token(root, userid="helper@pve", privsep=1)
    root.access.acl.put(path="/", roles="Administrator", users="helper@pve")
    api = token_api(pve9_sim, token["full-tokenid"], token["value"])
    assert denied(api.cluster.backup.get) == "Permission check failed (/, Sys.Audit)"
    assert api.storage.get() == []
    log = pve9_sim.requests_log()
    assert token["value"] not in str(log)
    assert {r["user"] for r in log if r["path"] == "/storage"} == {"helper@pve!ansible"}
