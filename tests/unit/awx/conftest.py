"""Fixtures of the AWX tests: playbooks/awx.yml rendered (awx_render_dir) for the example lab, once per
test session."""

import json

import pytest
import yaml

from unit.roles.playbook_runner import ROOT, run_playbook, shared_run

INVENTORY = ROOT / "inventories" / "example-lab"
# Settings a lab gives (awx/defaults.yml leaves these empty on purpose).
SETTINGS = {"project": {"scm_url": "https://git.lab.example/ailab/ailab.cluster.git"},
            "execution_environment": {"image": "registry.lab.example/ailab/ailab-ee:0.1.0"},
            "machine_credential": "ailab SSH",
            "proxmox": {"api_host": "pve-1.lab.example", "api_token_id": "ansible"}}
# Only its presence matters: the kubeconfig credential is configured when awx_kubeconfig is set.
KUBECONFIG = "apiVersion: v1\nkind: Config\n"
KINDS = ("organization", "execution_environment", "project", "inventory", "inventory_source", "credentials",
         "credential_types", "job_templates", "workflow_job_templates")


def render(directory, settings=None, *args):
    settings = SETTINGS if settings is None else settings
    plays = [{"name": "AWX", "ansible.builtin.import_playbook": str(ROOT / "playbooks" / "awx.yml")}]
    return run_playbook(directory, plays, {"all": {}}, "-i", str(INVENTORY),
                        "-e", json.dumps({"awx_settings": settings, "awx_render_dir": str(directory / "awx"),
                                          "awx_kubeconfig": KUBECONFIG}), *args)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """{kind: objects} of the example lab's AWX configuration, and the run."""
    directory, run = shared_run(tmp_path_factory, "awx-render", render)
    assert run.rc == 0, run.stdout[-3000:]
    objects = yaml.safe_load((directory / "awx" / "awx-objects.yml").read_text())
    assert set(objects) == set(KINDS)
    return objects, directory


@pytest.fixture(scope="session")
def job_templates(rendered):
    return {template["name"]: template for template in rendered[0]["job_templates"]}
