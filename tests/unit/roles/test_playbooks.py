"""playbooks/reset.yml refuses to run without the confirmation phrase, before touching any node."""

import pytest

from unit.roles.playbook_runner import ROOT, local_inventory, run_playbook, shared_run


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """reset.yml without the phrase, on an inventory whose nodes are local hosts: nothing may run on them."""
    def build(tmp):
        inventory = local_inventory({"kube_control_plane": ["cp1"], "kube_node": ["w1"]},
                                    host_vars={"cp1": {"ailab_reset_confirm": "yes"}, "w1": {}})
        playbook = [{"name": "Reset", "ansible.builtin.import_playbook": str(ROOT / "playbooks" / "reset.yml")}]
        return run_playbook(tmp, playbook, inventory, "-e", "ailab_reset_confirm=yes please")

    return shared_run(tmp_path_factory, "reset-refused", build)


def test_reset_refuses_without_the_phrase(refused):
    _tmp, run = refused
    assert run.rc != 0
    assert "ailab_reset_confirm=yes-destroy-the-cluster" in run.failure("localhost")
    assert "Nothing was changed" in run.failure("localhost")


def test_reset_touches_no_node_when_refused(refused):
    _tmp, run = refused
    assert set(run.stats) == {"localhost"}, "no play may reach a node without the phrase"


@pytest.mark.parametrize("role", ["kubeadm_worker", "kubeadm_control_plane"])
def test_reset_entry_points_refuse_on_their_own(tmp_path, role):
    """The roles check the phrase too, for playbooks of the lab's own that include them."""
    inventory = local_inventory({"kube_control_plane": ["cp1"], "kube_node": []})
    plays = [{"name": "Reset", "hosts": "cp1", "gather_facts": False, "tasks": [
        {"name": "Reset through the role", "ansible.builtin.include_role": {"name": f"ailab.cluster.{role}", "tasks_from": "reset.yml"}}]}]
    run = run_playbook(tmp_path, plays, inventory)
    assert run.rc != 0
    assert "Refusing to reset cp1" in run.failure("cp1")
    assert run.stats["cp1"]["changed"] == 0
