"""TLS, authentication (ticket + CSRF, API tokens), authorisation and the control API token."""

import json
import signal
import ssl
import subprocess
import sys

import pytest
import requests
from proxmoxer import AuthenticationError, ProxmoxAPI
from proxmoxer.core import ResourceException

from pvesim.testing import TESTS_DIR


def test_tls_verifies_with_the_simulator_ca(pve9_sim):
    api = pve9_sim.api()
    assert api.version.get()["release"] == "9.1"


def test_tls_fails_without_the_ca(pve9_sim):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{pve9_sim.api_url}/version", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        ProxmoxAPI(pve9_sim.host, port=pve9_sim.port, user=pve9_sim.user, password=pve9_sim.password,
                   verify_ssl=True).version.get()


def test_server_certificate_names_loopback(pve9_sim):
    context = ssl.create_default_context(cafile=pve9_sim.ca_file)
    with context.wrap_socket(__import__("socket").create_connection((pve9_sim.host, pve9_sim.port)),
                             server_hostname="localhost") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_ticket_login_and_csrf(pve9_sim):
    api = pve9_sim.api(auth="password")
    ticket, csrf = api._backend.get_tokens()
    assert ticket.startswith(f"PVE:{pve9_sim.user}:") and csrf
    assert api.nodes("pve-1").status.get()["pveversion"].startswith("pve-manager/9.1")
    base = pve9_sim.api_url
    cookies = {"PVEAuthCookie": ticket}
    # A write with the ticket but without the CSRF header is refused like PVE does.
    response = requests.post(f"{base}/cluster/backup", cookies=cookies, verify=pve9_sim.ca_file,
                             data={"id": "nightly", "schedule": "02:00", "all": 1, "storage": "nas"}, timeout=5)
    assert response.status_code == 401
    assert "csrf" in response.reason.lower()
    response = requests.post(f"{base}/cluster/backup", cookies=cookies, headers={"CSRFPreventionToken": csrf},
                             verify=pve9_sim.ca_file,
                             data={"id": "nightly", "schedule": "02:00", "all": 1, "storage": "nas"}, timeout=5)
    assert response.status_code == 200, response.text


def test_ticket_can_be_renewed_with_the_ticket(pve9_sim):
    first = requests.post(f"{pve9_sim.api_url}/access/ticket", verify=pve9_sim.ca_file, timeout=5,
                          data={"username": pve9_sim.user, "password": pve9_sim.password}).json()["data"]
    second = requests.post(f"{pve9_sim.api_url}/access/ticket", verify=pve9_sim.ca_file, timeout=5,
                           data={"username": pve9_sim.user, "password": first["ticket"]})
    assert second.status_code == 200
    assert second.json()["data"]["clustername"] == "ailab"


def test_wrong_password_is_401(pve9_sim):
    with pytest.raises(AuthenticationError):
        ProxmoxAPI(pve9_sim.host, port=pve9_sim.port, user=pve9_sim.user, password="wrong",
                   verify_ssl=pve9_sim.ca_file)


def test_missing_and_bad_credentials_are_401(pve9_sim):
    response = requests.get(f"{pve9_sim.api_url}/nodes", verify=pve9_sim.ca_file, timeout=5)
    assert (response.status_code, response.reason) == (401, "No ticket")
    bad_token = {"Authorization": f"PVEAPIToken={pve9_sim.token_id}=00000000-0000-0000-0000-000000000000"}
    response = requests.get(f"{pve9_sim.api_url}/nodes", headers=bad_token, verify=pve9_sim.ca_file, timeout=5)
    assert response.status_code == 401
    response = requests.get(f"{pve9_sim.api_url}/nodes", cookies={"PVEAuthCookie": "PVE:root@pam:00000000::x"},
                            verify=pve9_sim.ca_file, timeout=5)
    assert response.status_code == 401


def test_token_auth(pve9_sim):
    headers = {"Authorization": f"PVEAPIToken={pve9_sim.token_id}={pve9_sim.token_secret}"}
    response = requests.get(f"{pve9_sim.api_url}/cluster/status", headers=headers, verify=pve9_sim.ca_file, timeout=5)
    assert response.status_code == 200
    assert response.json()["data"][0]["name"] == "ailab"


@pytest.mark.parametrize("auth", ["token", "password"])
def test_readonly_principal_reads_but_gets_403_on_writes(pve9_sim, auth):
    api = pve9_sim.api(auth=auth, readonly=True)
    assert [n["node"] for n in api.nodes.get()] == ["pve-1", "pve-2"]
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu.post(vmid=100)
    assert raised.value.status_code == 403
    assert raised.value.content == "Permission check failed (/vms/100, VM.Allocate)"
    assert pve9_sim.writes()[-1]["status"] == 403


def test_control_api_needs_its_token(pve9_sim):
    response = requests.get(f"{pve9_sim.control_url}/health", verify=pve9_sim.ca_file, timeout=5)
    assert response.status_code == 401
    assert pve9_sim.control("GET", "health")["pve"] == 9


def test_cli_prints_one_json_line_and_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "pvesim", "--pve", "8", "--port", "0", "--state-dir", str(tmp_path),
         "--password", "secret", "--token-secret", "11111111-2222-3333-4444-555555555555"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PYTHONPATH": str(TESTS_DIR), "PATH": "/usr/bin"},
    )
    try:
        info = json.loads(process.stdout.readline())
        assert {"url", "host", "port", "ca_file", "user", "password", "token_id", "token_secret", "readonly_user",
                "control_url", "pid"} <= set(info)
        assert info["pid"] == process.pid and info["password"] == "secret"
        assert json.loads((tmp_path / "pvesim.json").read_text()) == info
        api = ProxmoxAPI(info["host"], port=info["port"], user="root@pam", token_name="ansible",
                         token_value="11111111-2222-3333-4444-555555555555", verify_ssl=info["ca_file"])
        assert api.version.get()["release"] == "8.4"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        process.stdout.close()
        process.stderr.close()
