"""playbooks/check.yml: an inventory variable that no role knows, or an unknown key inside a guest, tenant
or GPU node group (nested keys too), stops the run before anything else, with the inventory item and the
closest valid name; the sandbox inventory passes; `warn` only prints."""

import pytest

from unit.roles.playbook_runner import ROOT, local_inventory, run_playbook, shared_run

CHECK = [{"name": "Check", "ansible.builtin.import_playbook": str(ROOT / "playbooks" / "check.yml")}]


@pytest.fixture(scope="module")
def typo_run(tmp_path_factory):
    def build(tmp):
        inventory = local_inventory({"kube_control_plane": ["cp1"], "kube_node": ["w1"]},
                                    host_vars={"cp1": {"node_prep_hostnam": "cp-1",
                                                       "proxmox_guests_list": [{"name": "k8s-cp-1", "vmid": 201},
                                                                               {"name": "k8s-w-1", "memmory": 4096}]},
                                               "w1": {}},
                                    group_vars={"kube_node": {"kubeadm_worker_node_lables": {"a": "b"},
                                                              "ailab_tenants": [{"name": "cs101",
                                                                                 "quota": {"gpus": {"x": 1}}}]}})
        inventory["all"]["vars"]["proxmox_storages_list"] = []
        return run_playbook(tmp, CHECK, inventory)

    return shared_run(tmp_path_factory, "lab-check-typos", build)[1]


def test_typos_stop_the_run_with_the_closest_name(typo_run):
    assert typo_run.rc != 0
    msg = typo_run.failure("localhost")
    assert msg[0] == "Nothing was changed. Fix these inventory variables first:"
    assert ("`proxmox_storages_list` (set for cp1, localhost, w1) is not a variable of any ailab.cluster role; "
            "did you mean `proxmox_storage_list`?") in msg
    assert any(line.startswith("`node_prep_hostnam` (set for cp1)") and "`node_prep_hostname`" in line for line in msg)
    assert any(line.startswith("`kubeadm_worker_node_lables` (set for w1)") for line in msg)
    assert set(typo_run.stats) == {"localhost"}, "the check contacts no host"


def test_unknown_keys_inside_items_name_the_item_and_the_closest_key(typo_run):
    msg = typo_run.failure("localhost")
    guest = [line for line in msg if line.startswith("`proxmox_guests_list[1]`")]
    assert guest and guest[0].startswith("`proxmox_guests_list[1]` (name k8s-w-1, set for cp1) has the unknown key "
                                         "`memmory`; did you mean `memory`? Valid keys: agent, ansible_host,")
    assert ("`ailab_tenants[0].quota` (name cs101, set for w1) has the unknown key `gpus`; did you mean `gpu`? "
            "Valid keys: cpu, gpu, memory, pvcs, storage.") in msg
    assert not [line for line in msg if line.startswith("`proxmox_guests_list[0]`")], "a valid item is not reported"


def test_the_sandbox_inventory_passes(tmp_path):
    run = run_playbook(tmp_path, CHECK, {"all": {}}, "-i", str(ROOT / "inventories" / "sandbox"))
    assert run.rc == 0, run.stdout[-2000:]


def test_warn_only_prints(tmp_path):
    inventory = local_inventory({"kube_node": ["w1"]}, host_vars={"w1": {"cni_plugn": "flannel"}})
    run = run_playbook(tmp_path, CHECK, inventory, "-e", "lab_check_unknown_variables=warn")
    assert run.rc == 0
    (warning,) = run.results("Warn about unknown variables", "localhost")
    assert "did you mean `cni_plugin`?" in warning["msg"][0]


def test_ignored_names_pass(tmp_path):
    inventory = local_inventory({"kube_node": ["w1"]}, host_vars={"w1": {"cni_extra_note": "mine"}})
    inventory["all"]["vars"]["lab_check_ignore_variables"] = ["cni_extra_note"]
    run = run_playbook(tmp_path, CHECK, inventory)
    assert run.rc == 0, run.stdout[-2000:]
