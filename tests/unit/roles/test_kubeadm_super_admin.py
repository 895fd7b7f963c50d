"""kubeadm_control_plane removes kubeadm's system:masters credential (super-admin.conf) after init, only when no
static pod uses it any more and admin.conf answers with cluster-admin rights (role tasks super_admin.yml on local
hosts; kubectl is a script that answers `auth can-i` as the case needs)."""

import pytest

from unit.roles.playbook_runner import local_inventory, run_playbook, shared_run

KUBE_VIP_ADMIN = "volumes: [{name: kubeconfig, hostPath: {path: /etc/kubernetes/admin.conf}}]\n"
KUBE_VIP_SUPER = "volumes: [{name: kubeconfig, hostPath: {path: /etc/kubernetes/super-admin.conf}}]\n"
CASES = {
    # host: (kube-vip manifest, kubectl's answer, extra vars, removed?, words of the explanation)
    "clean": (KUBE_VIP_ADMIN, "yes", {}, True, ""),
    "single": (None, "yes", {}, True, ""),
    "bootstrapping": (KUBE_VIP_SUPER, "yes", {}, False, "it is still used by"),
    "no_rights": (KUBE_VIP_ADMIN, "no", {}, False, "admin.conf does not answer with cluster-admin rights"),
    "kept": (KUBE_VIP_ADMIN, "yes", {"kubeadm_control_plane_keep_super_admin_conf": True}, False, ""),
}


def build(tmp):
    host_vars = {}
    for host, (manifest, answer, extra, _removed, _words) in CASES.items():
        base = tmp / host
        (base / "manifests").mkdir(parents=True)
        (base / "bin").mkdir()
        if manifest:
            (base / "manifests" / "kube-vip.yaml").write_text(manifest)
        (base / "super-admin.conf").write_text("kind: Config\n")
        kubectl = base / "bin" / "kubectl"
        kubectl.write_text(f"#!/bin/sh\necho {answer}\n")
        kubectl.chmod(0o755)
        host_vars[host] = dict(extra, kubeadm_control_plane_manifests_dir=str(base / "manifests"), _h8_base=str(base))
    plays = [{"name": "Super admin", "hosts": "cps", "gather_facts": False,
              "environment": {"PATH": "{{ _h8_base }}/bin:/usr/bin:/bin"},
              "tasks": [{"name": "Run", "ansible.builtin.include_role": {
                  "name": "ailab.cluster.kubeadm_control_plane", "tasks_from": "super_admin.yml"},
                  "vars": {"_kubeadm_control_plane_super_admin_conf": "{{ _h8_base }}/super-admin.conf",
                           "_kubeadm_control_plane_admin_conf": "{{ _h8_base }}/admin.conf",
                           "_kubeadm_control_plane_super_admin_retries": 1,
                           "_kubeadm_control_plane_super_admin_delay": 0}}]}]
    return run_playbook(tmp, plays, local_inventory({"cps": list(CASES)}, host_vars=host_vars))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    return shared_run(tmp_path_factory, "kubeadm-super-admin", build)


@pytest.mark.parametrize("host", list(CASES))
def test_super_admin_conf(ran, host):
    tmp, run = ran
    _manifest, _answer, _extra, removed, words = CASES[host]
    assert run.stats[host]["failures"] == 0, run.failure(host)
    assert (tmp / host / "super-admin.conf").exists() is not removed
    explained = run.results("Say why super-admin.conf stays", host)
    message = explained[0].get("msg", "") if explained and not explained[0].get("skipped") else ""
    assert (words in message) if words else message == ""
