"""The proxmox_api_user role against the PVE API simulator, and docs/proxmox_privileges.md in sync.

One simulator, four ansible-playbook runs, several hosts (variants) per run: check mode, the
bootstrap run (one host writes the secret to a file, one prints it), the re-run (changed=0, and a
host whose kept secret is gone), and the bad variables (each refused before any API request).
"""

import json
import stat
from pathlib import Path

import pytest
import yaml
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from pvesim.testing import SimulatorProcess
from unit.roles.playbook_runner import PYTHON, ROOT, run_playbook

ROLE = ROOT / "roles" / "proxmox_api_user"
DOC = ROOT / "docs" / "proxmox_privileges.md"


def connection(sim):
    return dict(api_host=sim.host, api_port=sim.port, api_user="root@pam", api_token_id=sim.token_id,
                api_token_secret=sim.token_secret, ca_path=sim.ca_file)


def plays(sim):
    return [{"name": "proxmox_api_user role", "hosts": "proxmox_api", "gather_facts": False,
             "vars": {"proxmox_api_connection": connection(sim)},
             "roles": [{"role": "ailab.cluster.proxmox_api_user"}]}]


def inventory(hosts):
    return {"all": {"children": {"proxmox_api": {"hosts": {
        name: dict({"ansible_connection": "local", "ansible_python_interpreter": PYTHON}, **host_vars)
        for name, host_vars in hosts.items()}}}}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The simulator and the runs, in order (each run depends on the one before)."""
    base = tmp_path_factory.mktemp("proxmox_api_user")
    secret_file = base / "keep" / "pve-token.json"
    secret_file.parent.mkdir()
    good = {"filed": {"proxmox_api_user_secret_file": str(secret_file)},
            "printed": {"proxmox_api_user_userid": "other@pve", "proxmox_api_user_token": "lab",
                        "proxmox_api_user_role": "AilabStorage",
                        "proxmox_api_user_modules": ["proxmox_storage", "proxmox_cluster_info"]}}
    with SimulatorProcess(pve=9) as sim:
        runs = {}
        for name, hosts, check in [
            ("check", good, True),
            ("apply", good, False),
            ("again", dict(good, lost={"proxmox_api_user_secret_file": str(base / "gone.json")}), False),
        ]:
            sim.clear_log()
            directory = base / name
            directory.mkdir()
            runs[name] = (run_playbook(directory, plays(sim), inventory(hosts), check=check), sim.writes(),
                          sim.requests_log())
        sim.clear_log()
        (base / "bad").mkdir()
        bad = {"rootuser": {"proxmox_api_user_userid": "root@pam"},
               "unknown": {"proxmox_api_user_modules": ["proxmox_storage", "proxmox_teapot"]},
               "relative": {"proxmox_api_user_secret_file": "token.json"}}
        runs["bad"] = (run_playbook(base / "bad", plays(sim), inventory(bad)), sim.writes(), sim.requests_log())
        yield {"sim": sim, "runs": runs, "secret_file": secret_file}


def token_api(sim, token_id, secret):
    user, _bang, name = token_id.rpartition("!")
    return ProxmoxAPI(sim.host, port=sim.port, user=user, token_name=name, token_value=secret,
                      verify_ssl=sim.ca_file, backend="https")


def test_check_mode_reports_and_writes_nothing(lab):
    run, writes, _log = lab["runs"]["check"]
    assert run.rc == 0, run.stdout[-3000:]
    assert writes == []
    report = run.results("Report what changed", "filed")[0]["msg"]
    assert "create role AilabAutomation-root; create role AilabAutomation-sdn-zones; create role " \
        "AilabAutomation-storage; create role AilabAutomation-vms; create user ailab@pve; create token " \
        "ailab@pve!ansible" in report


def test_bootstrap_makes_role_user_token_and_acls_and_keeps_the_secret_once(lab):
    run, writes, _log = lab["runs"]["apply"]
    assert run.rc == 0, run.stdout[-3000:]
    assert run.stats["filed"]["changed"] > 0
    kept = json.loads(lab["secret_file"].read_text())
    assert kept["token_id"] == "ailab@pve!ansible"
    assert stat.S_IMODE(lab["secret_file"].stat().st_mode) == 0o600
    # the file host never shows its secret; the printing host shows it exactly once
    assert kept["token_secret"] not in run.stdout + run.stderr
    shown = run.results("Show the token secret (only now, when the token is created; store it in Ansible Vault)",
                        "printed")[0]["msg"]
    printed_secret = shown.rsplit("api_token_secret: ", 1)[1].strip()
    assert (run.stdout + run.stderr).count(printed_secret) == 1
    assert "/access/users/ailab@pve/token/ansible" in [w["path"] for w in writes]


def test_the_token_holds_exactly_the_privileges_of_its_modules(lab):
    sim = lab["sim"]
    kept = json.loads(lab["secret_file"].read_text())
    api = token_api(sim, kept["token_id"], kept["token_secret"])
    assert {s["storage"] for s in api.storage.get()} == {s["storage"] for s in sim.api().storage.get()}
    permissions = api.access.permissions.get()
    assert set(permissions) == {"/", "/mapping/pci", "/nodes", "/sdn/zones", "/storage", "/vms"}
    root = sim.api()
    roles = {r["roleid"]: set(r["privs"].split(",")) for r in root.access.roles.get()
             if r["roleid"].startswith("AilabAutomation-")}
    assert sorted(roles) == ["AilabAutomation-mapping-pci", "AilabAutomation-nodes", "AilabAutomation-root",
                             "AilabAutomation-sdn-zones", "AilabAutomation-storage", "AilabAutomation-vms"]
    assert "VM.GuestAgent.Audit" in roles["AilabAutomation-vms"] and "VM.Monitor" not in roles["AilabAutomation-vms"]
    assert set().union(*roles.values()).isdisjoint({"Permissions.Modify", "User.Modify", "Sys.PowerMgmt",
                                                    "Realm.AllocateUser"})
    # one role per path: the node shell (Sys.Console) and node settings (Sys.Modify) stay off /nodes
    assert roles["AilabAutomation-nodes"] == {"Sys.Audit"}
    assert set(permissions["/nodes"]) == {"Sys.Audit"}
    # "/" does not propagate: Sys.Modify (backup jobs) and Sys.Console (HA) on / only, not on /access
    assert {"Sys.Modify", "Sys.Console"} <= set(permissions["/"])
    assert api.access.permissions.get(path="/access") == {"/access": {}}
    with pytest.raises(ResourceException) as raised:
        api.access.users.post(userid="intruder@pve")
    assert raised.value.status_code == 403
    # the smaller identity: only the rows of proxmox_storage and proxmox_cluster_info
    assert root.access.roles("AilabStorage-root").get() == {"Sys.Audit": 1}
    assert sorted(root.access.roles("AilabStorage-storage").get()) == ["Datastore.Allocate", "Datastore.Audit"]


def test_second_run_changes_nothing_and_a_lost_secret_stops_the_run(lab):
    run, writes, log = lab["runs"]["again"]
    for host in ("filed", "printed"):
        assert run.stats[host]["changed"] == 0 and run.stats[host]["failures"] == 0, run.stdout[-3000:]
    assert writes == []
    assert "Show the token secret" not in json.dumps(
        [t["task"]["name"] for p in run.data["plays"] for t in p["tasks"] if "printed" in t["hosts"]
         and not t["hosts"]["printed"].get("skipped")])
    assert "exists but" in run.failure("lost") and "pveum user token remove ailab@pve ansible" in run.failure("lost")
    assert run.failure("filed") is None


def test_bad_variables_fail_before_any_request(lab):
    run, _writes, log = lab["runs"]["bad"]
    assert run.rc != 0
    assert log == []
    assert "not root@pam" in run.failure("rootuser")
    assert "proxmox_teapot" in run.failure("unknown")
    assert "must be an absolute path" in run.failure("relative")


# ------------------------------------------------------------------------------ docs in sync
def render_table(rows):
    """docs/proxmox_privileges.md's table, from the role's vars (the one source)."""
    lines = ["| Module | ACL path | Privileges | PVE | Calls | Note |", "|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: (r["module"], r["path"], str(r.get("pve", "")))):
        lines.append("| {module} | `{path}` | {privs} | {pve} | {calls} | {note} |".format(
            module=row["module"], path=row["path"], privs=", ".join(sorted(row["privileges"])),
            pve=row.get("pve", "8, 9"), calls=row.get("calls", ""), note=row.get("note", "")))
    return "\n".join(lines) + "\n"


BEGIN = "<!-- BEGIN privilege table: generated from roles/proxmox_api_user/vars/main.yml -->\n"
END = "<!-- END privilege table -->\n"


def test_privilege_doc_is_generated_from_the_role_data():
    rows = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_proxmox_api_user_module_privileges"]
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC} lost its table markers"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    expected = render_table(rows)
    if table != expected:
        Path("/tmp/proxmox_privileges_table.md").write_text(expected)
    assert table == expected, ("docs/proxmox_privileges.md is out of date with roles/proxmox_api_user/vars/main.yml: "
                               "paste /tmp/proxmox_privileges_table.md between the markers")


def test_every_privilege_in_the_data_exists_in_its_pve_version():
    from pvesim.acl import PRIVILEGES

    rows = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_proxmox_api_user_module_privileges"]
    for row in rows:
        for major in [row["pve"]] if "pve" in row else [8, 9]:
            unknown = set(row["privileges"]) - PRIVILEGES[major]
            assert not unknown, f"{row['module']} {row['path']}: {unknown} not a PVE {major} privilege"


def test_the_sandbox_points_its_inventory_at_the_kept_token(lab):
    import sys  # noqa: PLC0415

    sys.path.insert(0, str(ROOT / "tests" / "harness"))
    import sandbox  # noqa: PLC0415

    kept = json.loads(lab["secret_file"].read_text())
    assert sandbox.token_env(lab["secret_file"]) == {
        "AILAB_PVE_USER": "ailab@pve", "AILAB_PVE_TOKEN_ID": "ailab@pve!ansible",
        "AILAB_PVE_TOKEN_SECRET": kept["token_secret"]}
