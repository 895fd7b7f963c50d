"""ailab.cluster.proxmox_cluster_info against the PVE API simulator (PVE 8 and 9), real proxmoxer."""

import pytest

from ansible_collections.ailab.cluster.plugins.modules import proxmox_cluster_info


def test_reads_the_cluster(pve_sim, run_module):
    result = run_module(proxmox_cluster_info, pve_sim.module_params())
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["version"]["major"] == pve_sim.pve
    assert result["cluster"] == {"name": "ailab", "quorate": True, "nodes": 2,
                                 "config_version": result["cluster"]["config_version"]}
    assert [(n["name"], n["online"]) for n in result["nodes"]] == [("pve-1", True), ("pve-2", True)]
    assert result["ha"]["quorate"] is True
    assert set(result["ha"]["lrm"]) == {"pve-1", "pve-2"}
    assert "nas" in [s["storage"] for s in result["storages"]]


def test_makes_no_write_and_a_fixed_number_of_reads(pve_sim, run_module):
    pve_sim.clear_log()
    run_module(proxmox_cluster_info, pve_sim.module_params(), check_mode=True)
    log = pve_sim.requests_log()
    assert [r for r in log if r["write"]] == []
    assert sorted(r["path"] for r in log) == sorted(
        ["/version", "/cluster/status", "/cluster/ha/status/current", "/storage"])


def test_password_login_works(pve9_sim, run_module):
    params = pve9_sim.module_params()
    params.pop("api_token_id")
    params.pop("api_token_secret")
    params["api_password"] = pve9_sim.password
    result = run_module(proxmox_cluster_info, params)
    assert not result.get("failed"), result
    assert result["version"]["major"] == 9


def test_full_token_id_form_is_accepted(pve9_sim, run_module):
    params = dict(pve9_sim.module_params(), api_token_id=pve9_sim.token_id, api_user="ignored@pam")
    result = run_module(proxmox_cluster_info, params)
    assert not result.get("failed"), result


def test_lost_quorum_is_reported(pve9_sim, run_module):
    pve9_sim.node_down("pve-2")
    result = run_module(proxmox_cluster_info, pve9_sim.module_params())
    assert result["cluster"]["quorate"] is False
    assert [n["online"] for n in result["nodes"]] == [True, False]


def test_wrong_token_fails_with_what_to_fix(pve9_sim, run_module):
    secret = "00000000-0000-0000-0000-000000000000"
    result = run_module(proxmox_cluster_info, dict(pve9_sim.module_params(), api_token_secret=secret))
    assert result["failed"]
    assert "authentication failed" in result["msg"]
    assert "api_token_id" in result["msg"]
    assert secret not in result["msg"]


def test_wrong_password_fails_at_login(pve9_sim, run_module):
    params = pve9_sim.module_params()
    params.pop("api_token_id")
    params.pop("api_token_secret")
    params["api_password"] = "not-the-password"
    result = run_module(proxmox_cluster_info, params)
    assert result["failed"]
    assert "login as root@pam" in result["msg"] and "authentication failed" in result["msg"]
    assert "not-the-password" not in result["msg"]


def test_untrusted_certificate_is_refused(pve9_sim, run_module):
    result = run_module(proxmox_cluster_info, dict(pve9_sim.module_params(), ca_path="/etc/ssl/certs/ca-certificates.crt"))
    assert result["failed"]
    assert "Cannot connect to the Proxmox VE API" in result["msg"]
    assert "set ca_path" in result["msg"]


def test_unreachable_api_fails_clearly(run_module):
    params = dict(api_host="127.0.0.1", api_port=1, api_token_id="ansible", api_token_secret="x", api_retries=0)
    result = run_module(proxmox_cluster_info, params)
    assert result["failed"]
    assert "Cannot connect to the Proxmox VE API at 127.0.0.1:1" in result["msg"]
    assert "check api_host, api_port" in result["msg"]


def test_reads_are_retried_after_5xx(pve9_sim, run_module):
    pve9_sim.fault("http_error", path="^/cluster/status$", method="GET", status=503, message="busy", count=2)
    pve9_sim.clear_log()
    result = run_module(proxmox_cluster_info, dict(pve9_sim.module_params(), api_retries=3))
    assert not result.get("failed"), result
    assert sum(1 for r in pve9_sim.requests_log() if r["path"] == "/cluster/status") == 3


def test_persistent_5xx_fails_after_the_retries(pve9_sim, run_module):
    pve9_sim.fault("http_error", path="^/storage$", method="GET", status=500, message="storage cfg locked", count=10)
    result = run_module(proxmox_cluster_info, dict(pve9_sim.module_params(), api_retries=1))
    assert result["failed"]
    assert "storage configuration" in result["msg"] and "HTTP 500" in result["msg"]


def test_missing_credentials_are_rejected_before_any_request(pve9_sim, run_module):
    pve9_sim.clear_log()
    result = run_module(proxmox_cluster_info, {"api_host": pve9_sim.host, "api_port": pve9_sim.port})
    assert result["failed"]
    assert "api_password" in result["msg"] and "api_token_secret" in result["msg"]
    assert pve9_sim.requests_log() == []


@pytest.mark.parametrize("gather, reads, keys", [
    (["version"], ["/version"], {"version"}),
    (["cluster"], ["/cluster/status"], {"cluster"}),
    (["version", "cluster", "nodes"], ["/version", "/cluster/status"], {"version", "cluster", "nodes"}),
    (["ha"], ["/cluster/ha/status/current"], {"ha"}),
    (["storages", "nodes"], ["/cluster/status", "/storage"], {"nodes", "storages"}),
    (["all"], ["/version", "/cluster/status", "/cluster/ha/status/current", "/storage"],
     {"version", "cluster", "nodes", "ha", "storages"}),
    (["version", "all"], ["/version", "/cluster/status", "/cluster/ha/status/current", "/storage"],
     {"version", "cluster", "nodes", "ha", "storages"}),
])
def test_gather_reads_only_the_parts_asked_for(pve_sim, run_module, gather, reads, keys):
    pve_sim.clear_log()
    result = run_module(proxmox_cluster_info, dict(pve_sim.module_params(), gather=gather))
    assert not result.get("failed"), result
    assert sorted(r["path"] for r in pve_sim.requests_log()) == sorted(reads)
    assert set(result) - {"changed"} == keys


def test_gather_version_and_quorum_for_the_ha_preflight(pve9_sim, run_module):
    pve9_sim.node_down("pve-2")
    result = run_module(proxmox_cluster_info, dict(pve9_sim.module_params(), gather=["version", "cluster", "nodes"]))
    assert result["version"]["major"] == 9 and result["cluster"]["quorate"] is False
    assert [n["online"] for n in result["nodes"]] == [True, False]


def test_empty_gather_is_refused_before_any_request(pve9_sim, run_module):
    pve9_sim.clear_log()
    result = run_module(proxmox_cluster_info, dict(pve9_sim.module_params(), gather=[]))
    assert result["failed"] and "gather is empty" in result["msg"]
    assert pve9_sim.requests_log() == []
    wrong = run_module(proxmox_cluster_info, dict(pve9_sim.module_params(), gather=["vms"]))
    assert wrong["failed"] and "gather" in wrong["msg"] and "vms" in wrong["msg"]
