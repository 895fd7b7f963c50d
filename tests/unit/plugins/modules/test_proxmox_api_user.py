"""ailab.cluster.proxmox_api_user against the PVE API simulator (PVE 8 and 9), real proxmoxer."""

import pytest

from ansible_collections.ailab.cluster.plugins.modules import proxmox_api_user

IDENTITY = dict(userid="ailab@pve", role="AilabAutomation", token="ansible", comment="automation",
                acls=[dict(path="/", privileges=["Sys.Audit", "Sys.Console"], propagate=False),
                      dict(path="/storage", privileges=["Datastore.Audit", "Datastore.Allocate"])])


def run(run_module, sim, check_mode=False, diff=False, **args):
    return run_module(proxmox_api_user, dict(sim.module_params(), **dict(IDENTITY, **args)), check_mode=check_mode,
                      diff=diff)


def test_creates_everything_once_then_changes_nothing(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, diff=True)
    assert not result.get("failed"), result
    assert result["changed"] and result["token_id"] == "ailab@pve!ansible"
    assert len(result["token_secret"]) == 36
    assert result["changes"] == ["create role AilabAutomation-root", "create role AilabAutomation-storage",
                                 "create user ailab@pve", "create token ailab@pve!ansible",
                                 "add ACL / for ailab@pve!ansible", "add ACL / for ailab@pve",
                                 "add ACL /storage for ailab@pve!ansible", "add ACL /storage for ailab@pve"]
    assert result["roles"] == {"/": "AilabAutomation-root", "/storage": "AilabAutomation-storage"}
    assert result["diff"]["before"]["roles"] == {}
    api = pve_sim.api()
    # one role per path: Sys.Console on / only, Datastore.Allocate on /storage only
    assert api.access.roles("AilabAutomation-root").get() == {"Sys.Audit": 1, "Sys.Console": 1}
    assert api.access.roles("AilabAutomation-storage").get() == {"Datastore.Allocate": 1, "Datastore.Audit": 1}
    acl = sorted((e["path"], e["type"], e["roleid"], e["propagate"]) for e in api.access.acl.get())
    assert acl == [("/", "token", "AilabAutomation-root", 0), ("/", "user", "AilabAutomation-root", 0),
                   ("/storage", "token", "AilabAutomation-storage", 1),
                   ("/storage", "user", "AilabAutomation-storage", 1)]
    assert api.access.users("ailab@pve").token("ansible").get()["privsep"] == 1

    pve_sim.clear_log()
    again = run(run_module, pve_sim)
    assert again["changed"] is False and "token_secret" not in again
    assert pve_sim.writes() == []


def test_check_mode_writes_nothing_and_shows_no_secret(pve9_sim, run_module):
    pve9_sim.clear_log()
    result = run(run_module, pve9_sim, check_mode=True)
    assert result["changed"] and "token_secret" not in result
    assert pve9_sim.writes() == []


def test_drifted_privileges_privsep_and_stray_acls_are_corrected(pve9_sim, run_module):
    assert run(run_module, pve9_sim)["changed"]
    api = pve9_sim.api()
    api.access.roles("AilabAutomation-root").put(privs="Sys.Audit,Sys.Modify")
    api.access.users("ailab@pve").token("ansible").put(privsep=0)
    api.access.acl.put(path="/vms", roles="AilabAutomation-storage", users="ailab@pve")
    api.access.acl.put(path="/vms", roles="PVEAuditor", users="ailab@pve")  # another role: left alone
    api.access.roles.post(roleid="AilabAutomation-old", privs="VM.Audit")  # a path no longer listed
    api.access.acl.put(path="/vms", roles="AilabAutomation-old", tokens="ailab@pve!ansible")
    pve9_sim.clear_log()
    result = run(run_module, pve9_sim)
    assert result["changes"] == ["set the privileges of role AilabAutomation-root",
                                 "privilege-separate token ailab@pve!ansible", "remove ACL /vms for ailab@pve",
                                 "remove role AilabAutomation-old"]
    assert "token_secret" not in result
    assert sorted((e["path"], e["roleid"]) for e in api.access.acl.get() if e["path"] == "/vms") == [
        ("/vms", "PVEAuditor")]
    assert run(run_module, pve9_sim)["changed"] is False


@pytest.mark.parametrize("args, message", [
    (dict(userid="ailab"), "userid ailab is not a user id"),
    (dict(role="PVEAdmin"), "role PVEAdmin cannot prefix the module's roles"),
    (dict(acls=[]), "acls must not be empty"),
    (dict(acls=[dict(path="/vms", privileges=[])]), "each entry needs privileges"),
    (dict(acls=[dict(path="/vms", privileges=["VM.Audit"]), dict(path="/vms/", privileges=["VM.Allocate"])]),
     "acls lists /vms more than once"),
    (dict(token="t"), "token t is not a token name"),
])
def test_bad_options_fail_before_any_request(pve9_sim, run_module, args, message):
    pve9_sim.clear_log()
    result = run(run_module, pve9_sim, **args)
    assert result.get("failed") and message in result["msg"], result
    assert pve9_sim.requests_log() == []


def test_unknown_privilege_is_refused_by_proxmox(pve9_sim, run_module):
    result = run(run_module, pve9_sim, acls=[dict(path="/vms", privileges=["VM.Monitor"])])  # gone in PVE 9
    assert result.get("failed") and "invalid privilege 'VM.Monitor'" in result["msg"], result


def test_a_token_without_user_rights_gets_permission_denied(pve9_sim, run_module):
    assert run(run_module, pve9_sim)["changed"]
    other = run(run_module, pve9_sim, userid="other@pve", token="tk")
    assert not other.get("failed"), other
    secret = other["token_secret"]
    params = dict(pve9_sim.module_params(), api_user="other@pve", api_token_id="other@pve!tk", api_token_secret=secret)
    result = run_module(proxmox_api_user, dict(params, **dict(IDENTITY, userid="third@pve")))
    assert result.get("failed") and "HTTP 403" in result["msg"], result
