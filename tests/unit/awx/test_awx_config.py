"""playbooks/awx.yml rendered for inventories/example-lab (awx_render_dir: the objects as files, no
AWX contacted): every object AWX would receive is checked against AWX's rules (awx_rules), every job
template names a playbook of this repository, the workflow runs the layers in site.yml's order and
stops at the first failure, and the apply tasks keep a second run at changed=0."""

import json
import re

import pytest
import yaml

from unit.awx.awx_rules import credential_type_problems, launch_defaults, survey_problems
from unit.awx.conftest import SETTINGS, render
from unit.roles.playbook_runner import ROOT, assert_same_files

# Playbooks written in parallel with this configuration; their templates are checked once they exist.
PENDING_PLAYBOOKS = {"playbooks/validate.yml", "playbooks/report.yml"}
LAYERS = ["check", "plan", "proxmox", "nodes", "kubernetes", "storage", "services", "gpu", "tenants", "jupyterhub",
          "monitoring", "dashboard"]
APPLY_TASKS = ROOT / "awx" / "tasks"


def test_every_survey_is_accepted(job_templates):
    surveys = {name: t["survey_spec"] for name, t in job_templates.items() if t["survey_spec"]}
    assert set(surveys) == {"ailab tenants", "ailab upgrade", "ailab reset"}
    for name, survey in surveys.items():
        assert survey_problems(survey) == [], name


def test_every_credential_type_is_accepted(rendered):
    objects, _directory = rendered
    names = [ct["name"] for ct in objects["credential_types"]]
    assert names == ["ailab Proxmox VE API token", "ailab Kubernetes kubeconfig"]
    for credential_type in objects["credential_types"]:
        assert credential_type_problems(credential_type) == [], credential_type["name"]


def test_the_proxmox_credential_feeds_what_the_lab_inventory_reads(rendered):
    """The injected variables are the AILAB_PVE_* the inventories' connection.yml looks up."""
    objects, _directory = rendered
    injected = set(objects["credential_types"][0]["injectors"]["env"])
    for lab in ("example-lab", "sandbox"):
        text = (ROOT / "inventories" / lab / "group_vars" / "proxmox_api" / "connection.yml").read_text()
        assert set(re.findall(r"'(AILAB_PVE_[A-Z_]+)'", text)) == injected, lab
    credential = objects["credentials"][0]
    assert set(credential["inputs"]) | {"api_token_secret", "ca_cert"} == {
        f["id"] for f in objects["credential_types"][0]["inputs"]["fields"]}
    assert credential["credential_type"] == objects["credential_types"][0]["name"]


def test_every_template_names_a_playbook_of_the_project(job_templates):
    for name, template in job_templates.items():
        path = ROOT / template["playbook"]
        if template["playbook"] in PENDING_PLAYBOOKS and not path.exists():
            continue
        assert path.is_file(), f"{name}: {template['playbook']} does not exist"
    assert {t["playbook"] for t in job_templates.values()} >= {f"playbooks/{layer}.yml" for layer in LAYERS} | {
        "playbooks/add_nodes.yml", "playbooks/upgrade.yml", "playbooks/reset.yml"} | PENDING_PLAYBOOKS


@pytest.mark.parametrize("playbook", sorted(PENDING_PLAYBOOKS))
def test_pending_playbooks_exist(playbook):
    if not (ROOT / playbook).exists():
        pytest.skip(f"{playbook} is being written; its job template is checked once it exists")
    assert (ROOT / playbook).is_file()


def test_templates_share_the_project_inventory_and_environment(rendered, job_templates):
    objects, _directory = rendered
    for template in job_templates.values():
        assert template["project"] == objects["project"]["name"]
        assert template["inventory"] == objects["inventory"]["name"]
        assert template["execution_environment"] == objects["execution_environment"]["name"]
        assert template["organization"] == objects["organization"]["name"]
        assert template["timeout"] == 7200
    assert job_templates["ailab proxmox"]["credentials"] == ["ailab SSH", "ailab Proxmox VE API"]
    assert job_templates["ailab check"]["credentials"] == []
    assert "ailab Kubernetes admin" in job_templates["ailab report"]["credentials"]
    assert job_templates["ailab add nodes"]["ask_limit_on_launch"] is True
    assert objects["inventory_source"]["source_path"] == "inventories/example-lab"
    assert (ROOT / objects["inventory_source"]["source_path"] / "hosts.yml").is_file()
    assert objects["project"]["sync_timeout"] == 300


def test_surveys_offer_the_lab_model(job_templates):
    tenants = job_templates["ailab tenants"]["survey_spec"]["spec"][0]
    assert tenants["choices"].splitlines() == ["cs101", "vision", "nlp"]
    upgrade = {q["variable"]: q["default"] for q in job_templates["ailab upgrade"]["survey_spec"]["spec"]}
    assert upgrade == {"kubernetes_packages_version": "1.34.2", "kubernetes_packages_revision": "1.1"}
    reset = job_templates["ailab reset"]["survey_spec"]["spec"][0]
    assert reset["variable"] == "ailab_reset_confirm" and reset["default"] == ""


def test_the_workflow_runs_the_layers_in_order_and_stops_on_failure(rendered, job_templates):
    objects, _directory = rendered
    (workflow,) = objects["workflow_job_templates"]
    nodes = workflow["workflow_nodes"]
    assert [n["identifier"] for n in nodes] == LAYERS + ["validate", "report"]
    # site.yml imports the same playbooks in the same order (validate and report last, once it has them).
    site = [re.search(r"playbooks/(\w+)\.yml", p["ansible.builtin.import_playbook"]).group(1)
            for p in yaml.safe_load((ROOT / "site.yml").read_text())]
    assert site == LAYERS + [layer for layer in ("validate", "report") if layer in site]
    for node, following in zip(nodes, nodes[1:] + [None]):
        assert set(node["related"]) == {"success_nodes"}, "no failure or always paths: a failed layer ends the run"
        assert node["related"]["success_nodes"] == ([{"identifier": following["identifier"]}] if following else [])
        template = job_templates[node["unified_job_template"]["name"]]
        assert node["unified_job_template"]["type"] == "job_template"
        # A workflow node starts without survey answers: every required question needs a default AWX applies.
        survey = template["survey_spec"]
        if survey:
            applied = launch_defaults(survey)
            assert all(q["variable"] in applied for q in survey["spec"] if q["required"]), template["name"]


def test_a_second_render_is_identical(rendered, tmp_path):
    _objects, directory = rendered
    run = render(tmp_path)
    assert run.rc == 0, run.stdout[-2000:]
    assert_same_files(directory / "awx", tmp_path / "awx")


@pytest.mark.parametrize(("settings", "message"), [
    ({**SETTINGS, "project": {"scm_url": ""}}, "project.scm_url"),
    ({**SETTINGS, "inventory": {"source_path": "inventories/no-such-lab"}}, "'inventories/no-such-lab'"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, settings, message):
    run = render(tmp_path, settings)
    assert run.rc != 0
    assert message in run.failure("localhost")
    assert "awx_settings" in run.failure("localhost")
    assert not (tmp_path / "awx").exists()


def test_apply_mode_needs_the_secrets_first(tmp_path):
    """Without the Proxmox token secret, the CA and CONTROLLER_HOST the run stops before any awx.awx task."""
    plays = [{"name": "AWX", "ansible.builtin.import_playbook": str(ROOT / "playbooks" / "awx.yml")}]
    from unit.roles.playbook_runner import run_playbook  # noqa: PLC0415

    run = run_playbook(tmp_path, plays, {"all": {}}, "-i", str(ROOT / "inventories" / "example-lab"),
                       "-e", json.dumps({"awx_settings": SETTINGS}))
    assert run.rc != 0
    tasks = [task["task"]["name"] for play in run.data["plays"] for task in play["tasks"]]
    assert tasks[-1] == "Check the secrets and the AWX connection"
    message = run.failure("localhost")
    assert "awx_proxmox_token_secret" in message and "CONTROLLER_HOST" in message
    assert "Nothing was changed in AWX" in message


def load_tasks(name):
    return yaml.safe_load((APPLY_TASKS / name).read_text())


def test_credentials_keep_their_secrets_on_a_second_run():
    for task in load_tasks("apply.yml"):
        if "awx.awx.credential" in task:
            assert task["awx.awx.credential"]["update_secrets"].startswith("{{ awx_update_secrets | default(false)")
            assert task["no_log"] is True


def test_the_project_sync_wait_is_bounded():
    """awx.awx.project's own wait polls a running sync without a time limit; the configuration polls
    the project's status instead, sync_timeout seconds at most, and stops unless the sync succeeded."""
    tasks = load_tasks("apply.yml")
    names = [task["name"] for task in tasks]
    (project,) = [t["awx.awx.project"] for t in tasks if "awx.awx.project" in t]
    assert project["wait"] is False
    wait = tasks[names.index("Wait for the project sync, at most project.sync_timeout seconds")]
    assert wait["delay"] == 5 and "sync_timeout" in wait["retries"] and "until" in wait
    check = tasks[names.index("Stop unless the project synced")]
    assert check["ansible.builtin.assert"]["that"] == "__awx_project_state.status == 'successful'"
    # Both before the first job template, which AWX refuses while the playbooks are not synced.
    assert names.index("Stop unless the project synced") < names.index("Job templates")


def test_a_survey_is_enabled_only_after_awx_accepted_it():
    """The template is saved with survey_enabled false whenever the spec is new or changed, and enabled
    by a second task; an unchanged spec keeps the survey enabled in one call (changed=0)."""
    save, enable = [t for t in load_tasks("job_template.yml") if "awx.awx.job_template" in t]
    assert save["awx.awx.job_template"]["survey_enabled"] == (
        "{{ __awx_wanted_survey and __awx_current_spec == __awx_job_template.survey_spec }}")
    assert enable["awx.awx.job_template"]["survey_enabled"] is True
    assert enable["when"] == ["__awx_wanted_survey", "__awx_current_spec != __awx_job_template.survey_spec"]
    assert set(enable["awx.awx.job_template"]) == {"name", "organization", "survey_enabled", "state"}


def test_every_awx_module_is_one_awx_24_ships():
    """awx.awx 24.6.1 plugins/modules; a misspelt module would only fail against a real AWX."""
    shipped = {"organization", "credential_type", "credential", "execution_environment", "project", "inventory",
               "inventory_source", "job_template", "workflow_job_template"}
    used = set()
    for name in ("apply.yml", "job_template.yml"):
        for task in load_tasks(name):
            used |= {key.split(".", 2)[2] for key in task if key.startswith("awx.awx.")}
    assert used == shipped
