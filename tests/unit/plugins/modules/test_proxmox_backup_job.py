"""ailab.cluster.proxmox_backup_job against the PVE API simulator (PVE 8 and 9), real proxmoxer."""

import pytest

from ansible_collections.ailab.cluster.plugins.modules import proxmox_backup_job

WEEKLY = dict(id="weekly", schedule="sun 01:00", storage="nas", all=True, mode="snapshot", compress="zstd",
              prune_backups=dict(keep_last=3))


def job(sim, job_id):
    return {j["id"]: j for j in sim.api().cluster.backup.get()}.get(job_id)


def run(run_module, sim, check_mode=False, diff=False, **args):
    return run_module(proxmox_backup_job, dict(sim.module_params(), **args), check_mode=check_mode, diff=diff)


def make_guests(sim):
    api = sim.api()
    api.nodes("pve-1").qemu.post(vmid=100, name="gpu-1", scsi0="local-lvm:8", scsi1="local-lvm:4,backup=0")
    api.nodes("pve-2").qemu.post(vmid=101, name="cpu-1", scsi0="local-lvm:8")
    sim.wait_tasks()


# ------------------------------------------------------------------------------ single mode
def test_creates_the_weekly_job_then_changes_nothing(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, **WEEKLY)
    assert not result.get("failed"), result
    assert result["changed"]
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("POST", "/cluster/backup")]
    expected = {"id": "weekly", "schedule": "sun 01:00", "storage": "nas", "all": "1", "mode": "snapshot",
                "compress": "zstd", "prune-backups": "keep-last=3"}
    assert pve_sim.writes()[0]["params"] == expected
    # one read of the jobs and one of the storages (the target must hold backups)
    assert sorted(r["path"] for r in pve_sim.reads()) == ["/cluster/backup", "/storage"]
    created = job(pve_sim, "weekly")
    assert created["schedule"] == "sun 01:00" and created["all"] == 1 and created["prune-backups"] == {"keep-last": 3}
    assert result["job"]["id"] == "weekly" and result["job"]["storage"] == "nas"

    pve_sim.clear_log()
    again = run(run_module, pve_sim, **dict(WEEKLY, enabled=True))
    assert again["changed"] is False and again["changes"] == []
    assert pve_sim.writes() == []


def test_vmid_and_prune_compare_without_order(pve_sim, run_module):
    args = dict(id="gpu", schedule="mon..fri 22:30", storage="nas", vmid=[103, 102, 1000],
                prune_backups=dict(keep_weekly=4, keep_last=2, keep_daily=7))
    assert run(run_module, pve_sim, **args)["changed"]
    assert job(pve_sim, "gpu")["vmid"] == "102,103,1000"
    # PVE may hand the retention back in another key order
    pve_sim.api().cluster.backup("gpu").put(**{"prune-backups": "keep-weekly=4,keep-daily=7,keep-last=2"})
    pve_sim.clear_log()
    same = dict(args)
    same.update(vmid=[1000, 102, 103, 103], prune_backups=dict(keep_daily=7, keep_last=2, keep_weekly=4))
    again = run(run_module, pve_sim, **same)
    assert again["changed"] is False, again
    assert pve_sim.writes() == []


def test_rerun_is_a_no_op_when_pve_returns_the_retention_as_an_object(pve_sim, run_module):
    """GET /cluster/backup decodes prune-backups, fleecing and performance (PVE/Jobs/VZDump.pm)."""
    run(run_module, pve_sim, **WEEKLY)
    # settings the module does not manage, set by hand in the GUI, come back as objects too
    pve_sim.api().cluster.backup("weekly").put(fleecing="1,storage=local-lvm", performance="max-workers=8")
    assert job(pve_sim, "weekly")["prune-backups"] == {"keep-last": 3}
    pve_sim.clear_log()
    again = run(run_module, pve_sim, diff=True, **WEEKLY)
    assert again["changed"] is False and again["changes"] == [], again
    assert pve_sim.writes() == []
    assert again["job"]["prune-backups"] == "keep-last=3"
    assert (again["job"]["fleecing"], again["job"]["performance"]) == ("enabled=1,storage=local-lvm", "max-workers=8")
    changed = run(run_module, pve_sim, diff=True, **{**WEEKLY, "prune_backups": dict(keep_last=3, keep_weekly=2)})
    assert [w["params"] for w in pve_sim.writes()] == [{"prune-backups": "keep-last=3,keep-weekly=2"}]
    assert changed["diff"]["before"]["prune-backups"] == "keep-last=3"


def test_update_sends_only_what_differs_with_diff(pve_sim, run_module):
    run(run_module, pve_sim, **WEEKLY)
    pve_sim.clear_log()
    result = run(run_module, pve_sim, diff=True, id="weekly", schedule="sat 02:00", prune_backups=dict(keep_last=5),
                 comment="Weekly backup", enabled=False)
    assert result["changed"]
    writes = pve_sim.writes()
    assert [(w["method"], w["path"]) for w in writes] == [("PUT", "/cluster/backup/weekly")]
    assert writes[0]["params"] == {"schedule": "sat 02:00", "prune-backups": "keep-last=5", "comment": "Weekly backup",
                                   "enabled": "0"}
    assert result["diff"]["before"] == {"schedule": "sun 01:00", "prune-backups": "keep-last=3", "comment": None,
                                        "enabled": 1}
    assert result["diff"]["after"] == {"schedule": "sat 02:00", "prune-backups": "keep-last=5",
                                       "comment": "Weekly backup", "enabled": 0}
    assert job(pve_sim, "weekly")["enabled"] == 0


def test_switching_the_guest_selection_removes_the_old_one(pve_sim, run_module):
    run(run_module, pve_sim, **dict(WEEKLY, exclude=[9000]))
    pve_sim.clear_log()
    result = run(run_module, pve_sim, id="weekly", vmid=[100, 101])
    assert result["changed"]
    write = pve_sim.writes()[0]
    assert write["params"] == {"vmid": "100,101", "delete": "all,exclude"}
    current = job(pve_sim, "weekly")
    assert current["vmid"] == "100,101" and "all" not in current and "exclude" not in current

    pve_sim.clear_log()
    back = run(run_module, pve_sim, id="weekly", all=True)
    assert back["changed"]
    assert pve_sim.writes()[0]["params"] == {"all": "1", "delete": "vmid"}
    assert "vmid" not in job(pve_sim, "weekly")


def test_empty_lists_and_strings_remove_settings(pve_sim, run_module):
    run(run_module, pve_sim, **dict(WEEKLY, exclude=[9000], comment="x", mailto=["b@lab", "a@lab"]))
    assert job(pve_sim, "weekly")["mailto"] == "a@lab,b@lab"
    pve_sim.clear_log()
    result = run(run_module, pve_sim, id="weekly", exclude=[], comment="", mailto=[])
    assert result["changed"]
    assert pve_sim.writes()[0]["params"] == {"delete": "comment,exclude,mailto"}
    pve_sim.clear_log()
    assert run(run_module, pve_sim, id="weekly", exclude=[], comment="", mailto=[])["changed"] is False
    assert pve_sim.writes() == []


def test_notes_template_is_kept_on_one_line(pve_sim, run_module):
    result = run(run_module, pve_sim, **dict(WEEKLY, notes_template="{{guestname}}\nbackup of {{node}}"))
    assert result["changed"]
    assert job(pve_sim, "weekly")["notes-template"] == "{{guestname}}\\nbackup of {{node}}"
    pve_sim.clear_log()
    assert run(run_module, pve_sim, **dict(WEEKLY, notes_template="{{guestname}}\nbackup of {{node}}"))["changed"] is False
    assert pve_sim.writes() == []


def test_notification_settings(pve_sim, run_module):
    args = dict(WEEKLY, mailto=["admin@lab.example"], mailnotification="failure", notification_mode="legacy-sendmail",
                repeat_missed=True, node="pve-1")
    assert run(run_module, pve_sim, **args)["changed"]
    created = job(pve_sim, "weekly")
    assert (created["mailnotification"], created["notification-mode"], created["repeat-missed"]) == (
        "failure", "legacy-sendmail", 1)
    pve_sim.clear_log()
    assert run(run_module, pve_sim, **args)["changed"] is False and pve_sim.writes() == []


def test_removes_a_job(pve_sim, run_module):
    run(run_module, pve_sim, **WEEKLY)
    pve_sim.clear_log()
    result = run(run_module, pve_sim, diff=True, id="weekly", state="absent")
    assert result["changed"] and result["job"] == {}
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("DELETE", "/cluster/backup/weekly")]
    assert result["diff"]["before"]["schedule"] == "sun 01:00"
    assert job(pve_sim, "weekly") is None
    pve_sim.clear_log()
    assert run(run_module, pve_sim, id="weekly", state="absent")["changed"] is False
    assert pve_sim.writes() == []


def test_check_mode_writes_nothing(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, check_mode=True, diff=True, report_included=True, **WEEKLY)
    assert result["changed"]
    assert result["job"]["schedule"] == "sun 01:00"
    assert result["diff"]["before"] == {} and result["diff"]["after"]["all"] == 1
    assert result["included_volumes"] == {"weekly": None}
    assert pve_sim.writes() == []
    assert job(pve_sim, "weekly") is None


def test_report_included_volumes(pve_sim, run_module):
    make_guests(pve_sim)
    result = run(run_module, pve_sim, report_included=True, **WEEKLY)
    assert not result.get("failed"), result
    guests = result["included_volumes"]["weekly"]
    assert [(g["vmid"], g["name"], g["type"]) for g in guests] == [(100, "gpu-1", "qemu"), (101, "cpu-1", "qemu")]
    assert [(v["key"], v["included"]) for v in guests[0]["volumes"]] == [("scsi0", True), ("scsi1", False)]
    # a no-op run that reports still writes nothing
    pve_sim.clear_log()
    again = run(run_module, pve_sim, report_included=True, **WEEKLY)
    assert again["changed"] is False and pve_sim.writes() == []
    assert "/cluster/backup/weekly/included_volumes" in [r["path"] for r in pve_sim.reads()]


# ------------------------------------------------------------------------------ refused input
@pytest.mark.parametrize("args,message", [
    (dict(id="weekly", storage="nas", all=True), "backup job weekly does not exist; set schedule"),
    (dict(id="weekly", schedule="sun 01:00", storage="nas"), "select the guests with vmid, all: true or pool"),
    (dict(id="weekly", schedule="sun 01:00", storage="nas", all=True, vmid=[100]), "vmid and all select the guests"),
    (dict(id="weekly", schedule="sun 01:00", storage="nas", pool="gpu", vmid=[100]), "vmid and pool select"),
    (dict(id="weekly", schedule="sun 01:00", storage="nas", vmid=[100], exclude=[101]), "exclude works with all or pool"),
    (dict(id="weekly", schedule="sun 01:00", storage="nas", vmid=[42]), "vmid must be guest IDs from 100"),
    (dict(id="weekly", schedule=" ", storage="nas", all=True), "schedule is empty"),
    (dict(id="weekly", schedule="every sunday", storage="nas", all=True),
     "backup job weekly: schedule 'every sunday' is not a Proxmox calendar event: 'every' is not a weekday list"),
    (dict(id="weekly", schedule="sun 25:00", storage="nas", all=True), "hour 25 is out of range 0..23"),
    (dict(id="weekly", schedule="sun 01:00", storage="missing", all=True), "storage missing does not exist"),
    (dict(id="weekly", schedule="sun 01:00", storage="local-lvm", all=True), "storage local-lvm does not hold backups"),
    (dict(id="weekly", schedule="sun 01:00", all=True, notes_template="{{vmid}}"), "notes_template needs storage"),
    (dict(id="1weekly", schedule="sun 01:00", all=True), "backup job 1weekly: invalid job ID"),
    (dict(WEEKLY, prune_backups=dict(keep_all=True, keep_daily=1)), "keep_all: true keeps every backup"),
])
def test_bad_input_is_refused_before_any_write(pve_sim, run_module, args, message):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, **args)
    assert result["failed"], result
    assert message in result["msg"], result["msg"]
    assert pve_sim.writes() == []


def test_refusals_on_an_existing_job(pve_sim, run_module):
    run(run_module, pve_sim, id="gpu", schedule="daily", storage="nas", vmid=[100])
    pve_sim.clear_log()
    result = run(run_module, pve_sim, id="gpu", exclude=[101])
    assert result["failed"] and "the job selects a vmid list" in result["msg"]
    run(run_module, pve_sim, **WEEKLY)
    result = run(run_module, pve_sim, id="weekly", all=False)
    assert result["failed"] and "all: false leaves the job without guests" in result["msg"]
    assert [w["method"] for w in pve_sim.writes()] == ["POST"]  # creating weekly; no update was sent


def test_api_error_names_the_job(pve_sim, run_module):
    pve_sim.fault("http_error", path="^/cluster/backup$", method="POST", status=500, message="cannot lock jobs.cfg")
    result = run(run_module, pve_sim, **WEEKLY)
    assert result["failed"]
    assert "creating backup job weekly" in result["msg"] and "cannot lock jobs.cfg" in result["msg"]


def test_included_volumes_read_failure_is_reported(pve9_sim, run_module):
    run(run_module, pve9_sim, **WEEKLY)
    pve9_sim.fault("http_error", path="included_volumes", status=403, message="Permission check failed")
    result = run(run_module, pve9_sim, report_included=True, **WEEKLY)
    assert result["failed"] and "the volumes of backup job weekly" in result["msg"]


# ------------------------------------------------------------------------------ list mode
def test_list_mode_reads_once_and_writes_only_the_differences(pve_sim, run_module):
    jobs = [WEEKLY, dict(id="gpu-nightly", schedule="mon..fri 22:30", storage="nas", vmid=[103, 102]),
            dict(id="local-daily", schedule="daily", storage="local", pool="lab")]
    pve_sim.clear_log()
    result = run(run_module, pve_sim, jobs=jobs)
    assert not result.get("failed"), result
    assert sorted(r["path"] for r in pve_sim.reads()) == ["/cluster/backup", "/storage"]
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("POST", "/cluster/backup")] * 3
    assert [j["id"] for j in result["jobs"]] == ["weekly", "gpu-nightly", "local-daily"]

    jobs[1] = dict(jobs[1], vmid=[102, 103, 104])
    pve_sim.clear_log()
    result = run(run_module, pve_sim, jobs=list(reversed(jobs)))
    assert [(w["method"], w["path"]) for w in pve_sim.writes()] == [("PUT", "/cluster/backup/gpu-nightly")]
    assert [c["id"] for c in result["changes"]] == ["gpu-nightly"]

    pve_sim.clear_log()
    again = run(run_module, pve_sim, jobs=jobs)
    assert again["changed"] is False and pve_sim.writes() == []


def test_list_mode_purge_and_per_entry_state(pve_sim, run_module):
    run(run_module, pve_sim, jobs=[WEEKLY, dict(id="old", schedule="daily", storage="nas", vmid=[100]),
                                   dict(id="older", schedule="daily", storage="nas", vmid=[101])])
    pve_sim.clear_log()
    check = run(run_module, pve_sim, check_mode=True, purge=True, jobs=[WEEKLY, dict(id="old", state="absent")])
    assert check["changed"] and sorted(c["id"] for c in check["changes"]) == ["old", "older"]
    assert pve_sim.writes() == []
    result = run(run_module, pve_sim, purge=True, diff=True, jobs=[WEEKLY, dict(id="old", state="absent")])
    assert sorted((w["method"], w["path"]) for w in pve_sim.writes()) == [
        ("DELETE", "/cluster/backup/old"), ("DELETE", "/cluster/backup/older")]
    assert sorted(result["diff"]["before"]) == ["old", "older"]
    assert [j["id"] for j in pve_sim.api().cluster.backup.get()] == ["weekly"]


def test_list_mode_checks_every_job_before_the_first_write(pve_sim, run_module):
    pve_sim.clear_log()
    result = run(run_module, pve_sim, jobs=[WEEKLY, dict(id="bad", schedule="daily", storage="local-lvm", all=True)])
    assert result["failed"] and "backup job bad: storage local-lvm does not hold backups" in result["msg"]
    assert pve_sim.writes() == []


def test_list_mode_reports_included_volumes_per_job(pve9_sim, run_module):
    make_guests(pve9_sim)
    result = run(run_module, pve9_sim, report_included=True,
                 jobs=[WEEKLY, dict(id="gpu", schedule="daily", storage="nas", vmid=[100])])
    assert [g["vmid"] for g in result["included_volumes"]["weekly"]] == [100, 101]
    assert [g["vmid"] for g in result["included_volumes"]["gpu"]] == [100]


def test_list_mode_duplicates_and_mixing_are_refused(pve_sim, run_module):
    result = run(run_module, pve_sim, jobs=[WEEKLY, WEEKLY])
    assert result["failed"] and "backup job weekly is listed twice in jobs" in result["msg"]
    result = run(run_module, pve_sim, id="weekly", jobs=[WEEKLY])
    assert result["failed"] and "mutually exclusive" in result["msg"]
