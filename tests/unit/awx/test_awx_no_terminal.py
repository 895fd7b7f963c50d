"""No playbook an AWX template runs prompts or needs a terminal: each playbook with a survey runs once
with stdin closed and the extra vars AWX would give it (the template's extra_vars and the survey
defaults AWX applies to a launch without answers), on inventories/example-lab with every node made
unreachable (ssh to a closed loopback port). Kubernetes-facing playbooks run in export mode.
Plus a static check of every playbook and role for vars_prompt and pauses without a duration."""

import json
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from export_check import check_export
from unit.awx.awx_rules import answer_problems, launch_defaults
from unit.roles.playbook_runner import ROOT, run_playbook, shared_run

INVENTORY = ROOT / "inventories" / "example-lab"
# The nodes of the example lab, unreachable: ssh to a closed loopback port (localhost stays local).
UNREACHABLE = {"ansible_host": "127.0.0.1", "ansible_port": 9,
               "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}


def run_as_awx(directory, playbook, extra_vars):
    """ansible-playbook as an AWX job runs it: no terminal (stdin closed), extra vars from a file."""
    directory.mkdir(parents=True, exist_ok=True)
    extra = directory / "extra_vars.json"
    extra.write_text(json.dumps({**extra_vars, **UNREACHABLE}))
    # Plays that do not ask for facts gather none: the node-facing plays reach their first task (the
    # survey's checks) before the unreachable nodes stop them.
    return run_playbook(directory, ROOT / playbook, INVENTORY, "-e", f"@{extra}", env={"ANSIBLE_GATHERING": "explicit"},
                        stdin=subprocess.DEVNULL, timeout=600)


def awx_launch_vars(job_templates, name, answers=None):
    template = job_templates[name]
    survey = template["survey_spec"]
    answers = answers or {}
    assert answer_problems(survey, {**launch_defaults(survey), **answers}) == []
    return {**template["extra_vars"], **launch_defaults(survey), **answers}


def assert_no_prompt(run):
    text = run.stdout + run.stderr
    assert "prompt" not in text.lower(), text[-2000:]


@pytest.fixture(scope="module")
def tenants_run(tmp_path_factory, job_templates):
    def build(directory):
        extra = {**awx_launch_vars(job_templates, "ailab tenants"), "ailab_kubernetes_export_dir": str(directory / "export")}
        return run_as_awx(directory, "playbooks/tenants.yml", extra)

    return shared_run(tmp_path_factory, "awx-tenants", build)


def test_tenants_runs_unattended_with_every_tenant(tenants_run):
    directory, run = tenants_run
    assert run.rc == 0, run.stdout[-3000:]
    assert_no_prompt(run)
    assert all(stats["unreachable"] == 0 for stats in run.stats.values()), run.stats
    assert check_export(directory / "export") == []
    for tenant in ("cs101", "vision", "nlp"):
        assert (directory / "export" / "_cluster" / f"namespace-{tenant}.yaml").is_file()


@pytest.mark.parametrize(("answer", "expected"), [
    ({"ailab_awx_tenants": ["vision"]}, ["vision"]),
    ({"ailab_awx_tenants": ["nlp", "cs101"]}, ["cs101", "nlp"]),
    ({}, ["cs101", "vision", "nlp"]),  # a workflow node: no answer, AWX applies no multiselect default
])
def test_tenants_survey_answer_selects_the_tenants(job_templates, answer, expected):
    """The template's extra vars, rendered by Ansible's own templar with the lab model and an answer."""
    lab = yaml.safe_load((INVENTORY / "group_vars" / "all" / "lab.yml").read_text())
    launch = awx_launch_vars(job_templates, "ailab tenants", answer)
    templar = Templar(loader=DataLoader(), variables={**lab, **launch})
    for variable in ("tenants_list", "gpu_queues_tenants"):
        selected = templar.template(trust_as_template(job_templates["ailab tenants"]["extra_vars"][variable]))
        assert [tenant["name"] for tenant in selected] == expected
        assert selected == [tenant for tenant in lab["ailab_tenants"] if tenant["name"] in expected]
    assert launch["tenants_prune"] is False and launch["gpu_queues_prune"] is False


def test_upgrade_runs_unattended_up_to_the_nodes(tmp_path, job_templates):
    """The survey's default version passes the role's own check; the run stops only at the unreachable
    first control plane."""
    run = run_as_awx(tmp_path, "playbooks/upgrade.yml", awx_launch_vars(job_templates, "ailab upgrade"))
    assert_no_prompt(run)
    assert run.rc == 4, run.stdout[-3000:]
    checks = run.results("Check the target version", "k8s-1")
    assert checks and not checks[0].get("failed"), checks
    assert run.stats["k8s-1"]["unreachable"] == 1 and run.stats["k8s-1"]["failures"] == 0


def test_reset_refuses_with_the_survey_default(tmp_path, job_templates):
    run = run_as_awx(tmp_path, "playbooks/reset.yml", awx_launch_vars(job_templates, "ailab reset"))
    assert_no_prompt(run)
    assert run.rc == 2
    assert "ailab_reset_confirm=yes-destroy-the-cluster" in run.failure("localhost")
    assert set(run.stats) == {"localhost"}


def playbook_files():
    return [ROOT / "site.yml", *sorted((ROOT / "playbooks").glob("*.yml"))]


def task_lists(node):
    """Every task dict under a play or task list (blocks, rescue, always, handlers)."""
    if isinstance(node, list):
        for item in node:
            yield from task_lists(item)
    elif isinstance(node, dict):
        yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            if key in node:
                yield from task_lists(node[key])


def test_no_playbook_prompts():
    for path in playbook_files():
        for play in yaml.safe_load(path.read_text()) or []:
            assert "vars_prompt" not in play, f"{path.name}: vars_prompt needs a terminal; AWX has none"


def test_no_pause_waits_for_a_key():
    files = playbook_files() + sorted(ROOT.glob("roles/*/tasks/*.yml")) + sorted(ROOT.glob("roles/*/handlers/*.yml"))
    checked = 0
    for path in files:
        for task in task_lists(yaml.safe_load(path.read_text()) or []):
            for module in ("ansible.builtin.pause", "pause"):
                if module in task:
                    args = task[module] or {}
                    assert "seconds" in args or "minutes" in args, f"{path}: a pause without a duration waits for Enter"
            checked += 1
    assert checked > 500
