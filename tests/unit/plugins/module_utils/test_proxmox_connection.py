"""Connection options of every Proxmox module and what the client gives proxmoxer (module_utils/_proxmox.py).

Real AnsibleModule objects built from ``proxmox_argument_spec()`` and ``proxmox_module_kwargs()``
(defaults, environment fallbacks, types, required/exclusive rules, no_log), and
``ProxmoxClient.from_module`` with ``proxmoxer.ProxmoxAPI`` replaced by a recorder: the exact
keyword arguments of the login, and the failure messages when it cannot log in.
"""

import os

import pytest
import requests
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from proxmoxer.core import AuthenticationError

from ansible_collections.ailab.cluster.plugins.module_utils import _proxmox
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    PROXMOX_CONNECTION_SPEC,
    ProxmoxClient,
    proxmox_argument_spec,
    proxmox_module_kwargs,
)

HOST = "pve.lab.example"
ENV = ("PROXMOX_HOST", "PROXMOX_PORT", "PROXMOX_USER", "PROXMOX_PASSWORD", "PROXMOX_TOKEN_ID",
       "PROXMOX_TOKEN_SECRET", "PROXMOX_VALIDATE_CERTS", "PROXMOX_CA_PATH")


class ModuleFailed(Exception):
    def __init__(self, msg, result):
        super().__init__(msg)
        self.msg, self.result = msg, result


@pytest.fixture
def make_module(monkeypatch):
    """``make_module(**args)``: an AnsibleModule with the Proxmox connection options (fail_json raises)."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)

    def fail_json(self, msg, **result):
        raise ModuleFailed(msg, result)

    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def make(**args):
        with patch_module_args(args):
            return basic.AnsibleModule(argument_spec=proxmox_argument_spec(), **proxmox_module_kwargs())

    return make


@pytest.fixture
def logins(monkeypatch):
    """Replaces proxmoxer.ProxmoxAPI: records (host, kwargs) and returns a marker object."""
    calls = []

    def api(host, **kwargs):
        calls.append((host, kwargs))
        return "api for %s" % host

    monkeypatch.setattr(_proxmox, "ProxmoxAPI", api)
    return calls


def failure(call, *args):
    with pytest.raises(ModuleFailed) as exc:
        call(*args)
    return exc.value


# ------------------------------------------------------------------------------ options
def test_defaults_of_the_connection_options(make_module):
    params = make_module(api_host=HOST, api_password="pw").params
    assert {k: params[k] for k in PROXMOX_CONNECTION_SPEC} == dict(
        api_host=HOST, api_port=8006, api_user="root@pam", api_password="pw", api_token_id=None,
        api_token_secret=None, validate_certs=True, ca_path=None, api_timeout=30, api_retries=3)


def test_every_connection_option_falls_back_to_its_environment_variable(make_module, monkeypatch, tmp_path):
    values = dict(PROXMOX_HOST=HOST, PROXMOX_PORT="8443", PROXMOX_USER="automation@pve",
                  PROXMOX_TOKEN_ID="ansible", PROXMOX_TOKEN_SECRET="0b5d-secret", PROXMOX_VALIDATE_CERTS="false",
                  PROXMOX_CA_PATH=str(tmp_path / "pve-root-ca.pem"))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    params = make_module().params
    assert (params["api_host"], params["api_port"], params["api_user"]) == (HOST, 8443, "automation@pve")
    assert (params["api_token_id"], params["api_token_secret"]) == ("ansible", "0b5d-secret")
    assert params["validate_certs"] is False and params["ca_path"] == str(tmp_path / "pve-root-ca.pem")
    monkeypatch.delenv("PROXMOX_TOKEN_ID")
    monkeypatch.delenv("PROXMOX_TOKEN_SECRET")
    monkeypatch.setenv("PROXMOX_PASSWORD", "from-env")
    assert make_module().params["api_password"] == "from-env"


def test_option_types(make_module):
    params = make_module(api_host=HOST, api_password="pw", api_port="8443", api_timeout="90", api_retries="0",
                         validate_certs="no", ca_path="~/pve-root-ca.pem").params
    assert (params["api_port"], params["api_timeout"], params["api_retries"]) == (8443, 90, 0)
    assert params["validate_certs"] is False
    assert params["ca_path"] == os.path.expanduser("~/pve-root-ca.pem")  # type path
    with pytest.raises(ModuleFailed) as exc:
        make_module(api_host=HOST, api_password="pw", api_timeout="soon")
    assert "api_timeout" in exc.value.msg


def test_secrets_are_not_logged(make_module):
    assert "pw-1" in make_module(api_host=HOST, api_password="pw-1").no_log_values
    module = make_module(api_host=HOST, api_token_id="ansible", api_token_secret="0b5d-secret")
    assert "0b5d-secret" in module.no_log_values and "ansible" not in module.no_log_values


def test_api_host_is_required(make_module):
    assert failure(make_module).msg == "missing required arguments: api_host"


def test_a_token_id_without_its_secret_is_refused(make_module):
    err = failure(lambda: make_module(api_host=HOST, api_password="pw", api_token_id="ansible"))
    assert err.msg == "parameters are required together: api_token_id, api_token_secret"
    err = failure(lambda: make_module(api_host=HOST, api_token_secret="0b5d-secret"))
    assert err.msg == "parameters are required together: api_token_id, api_token_secret"


def test_a_password_or_a_token_secret_is_needed_and_not_both(make_module):
    assert failure(lambda: make_module(api_host=HOST)).msg == (
        "one of the following is required: api_password, api_token_secret")
    err = failure(lambda: make_module(api_host=HOST, api_password="pw", api_token_id="ansible",
                                      api_token_secret="0b5d-secret"))
    assert err.msg == "parameters are mutually exclusive: api_password|api_token_secret"


def test_module_options_join_the_connection_options():
    spec = proxmox_argument_spec(name=dict(type="str", required=True), api_timeout=dict(type="int", default=120))
    assert spec["name"] == dict(type="str", required=True) and spec["api_host"] == PROXMOX_CONNECTION_SPEC["api_host"]
    assert spec["api_timeout"]["default"] == 120 and PROXMOX_CONNECTION_SPEC["api_timeout"]["default"] == 30
    assert set(spec) == set(PROXMOX_CONNECTION_SPEC) | {"name"}
    kwargs = proxmox_module_kwargs()
    kwargs["required_one_of"].append(("x", "y"))
    assert proxmox_module_kwargs() == dict(required_one_of=[("api_password", "api_token_secret")],
                                           required_together=[("api_token_id", "api_token_secret")],
                                           mutually_exclusive=[("api_password", "api_token_secret")])


# ------------------------------------------------------------------------------ what proxmoxer is given
def test_a_password_login(make_module, logins):
    client = ProxmoxClient.from_module(make_module(api_host=HOST, api_password="pw"))
    assert logins == [(HOST, dict(port=8006, user="root@pam", verify_ssl=True, timeout=30, password="pw"))]
    assert client.api == "api for %s" % HOST
    assert (client.endpoint, client.retries, client.backoff) == ("%s:8006" % HOST, 3, 0.5)
    assert (client.reads, client.writes) == (0, 0)
    assert client.userid == "root@pam"  # require_visible skips its privilege read for root@pam only


@pytest.mark.parametrize("validate_certs, ca_path, verify_ssl", [
    (True, "/etc/ailab/pve-root-ca.pem", "/etc/ailab/pve-root-ca.pem"),
    (False, "/etc/ailab/pve-root-ca.pem", False),
    (False, None, False),
    (True, None, True),
])
def test_certificate_checks(make_module, logins, validate_certs, ca_path, verify_ssl):
    module = make_module(api_host=HOST, api_password="pw", validate_certs=validate_certs, ca_path=ca_path)
    warnings = []
    module.warn = warnings.append
    ProxmoxClient.from_module(module)
    assert logins[0][1]["verify_ssl"] == verify_ssl
    # Turning verification off is said on every run (proxmoxer silences urllib3's own warning).
    if validate_certs:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert warnings[0].startswith("validate_certs is false: the certificate of the Proxmox VE API at %s is not "
                                      "checked" % HOST)
        assert "ca_path" in warnings[0]
        assert warnings == ["validate_certs is false: the certificate of the Proxmox VE API at %s is not checked, so "
                            "anyone on the network path can read the API token. Give the cluster's CA with ca_path "
                            "(/etc/pve/pve-root-ca.pem on a node) and keep validate_certs on." % HOST]


def test_port_user_and_api_timeout_reach_proxmoxer(make_module, logins):
    client = ProxmoxClient.from_module(make_module(api_host=HOST, api_port=443, api_user="ops@pve",
                                                   api_password="pw", api_timeout=90))
    assert logins == [(HOST, dict(port=443, user="ops@pve", verify_ssl=True, timeout=90, password="pw"))]
    assert client.endpoint == "%s:443" % HOST
    assert client.userid == "ops@pve"


@pytest.mark.parametrize("token_id, user, token_name", [
    ("automation@pve!ansible", "automation@pve", "ansible"),  # the full form PVE shows
    ("ansible", "root@pam", "ansible"),  # the name alone: the user is api_user
    # PVE splits at the last "!": a user name may contain "!" ([^\s:/]+), a token name may not
    # (pve-access-control, PVE/Auth/Plugin.pm user_regex and PVE/AccessControl.pm split_tokenid)
    ("ci!bot@pve!ansible", "ci!bot@pve", "ansible"),
])
def test_a_token_login(make_module, logins, token_id, user, token_name):
    client = ProxmoxClient.from_module(make_module(api_host=HOST, api_token_id=token_id, api_token_secret="0b5d-secret"))
    assert logins == [(HOST, dict(port=8006, user=user, verify_ssl=True, timeout=30, token_name=token_name,
                                  token_value="0b5d-secret"))]
    assert client.userid == user  # the token's user, whose privileges require_visible reads


@pytest.mark.parametrize("api_retries, retries", [(0, 0), (-2, 0), (5, 5)])
def test_api_retries_sets_the_clients_retries(make_module, logins, api_retries, retries):
    client = ProxmoxClient.from_module(make_module(api_host=HOST, api_password="pw", api_retries=api_retries))
    assert client.retries == retries


def test_a_refused_login_says_which_credentials_to_check(make_module, monkeypatch):
    def refuse(host, **kwargs):
        raise AuthenticationError("Couldn't authenticate user: ops@pve to https://pve.lab.example:8006/api2/json")

    monkeypatch.setattr(_proxmox, "ProxmoxAPI", refuse)
    err = failure(ProxmoxClient.from_module, make_module(api_host=HOST, api_user="ops@pve", api_password="pw"))
    assert err.msg == ("Proxmox VE login as ops@pve at pve.lab.example:8006 failed: authentication failed: check "
                       "api_user and api_password (or use api_token_id/api_token_secret)")


@pytest.mark.parametrize("exc, hint", [
    (requests.exceptions.ConnectionError("Connection refused"),
     "connection failed: check api_host, api_port and that pveproxy runs and is reachable (Connection refused)"),
    (requests.exceptions.SSLError("certificate verify failed"),
     "the API certificate is not trusted: set ca_path to the CA that signed it (a copy of /etc/pve/pve-root-ca.pem "
     "from a node) (certificate verify failed)"),
])
def test_a_login_that_cannot_connect_says_why(make_module, monkeypatch, exc, hint):
    def unreachable(host, **kwargs):
        raise exc

    monkeypatch.setattr(_proxmox, "ProxmoxAPI", unreachable)
    err = failure(ProxmoxClient.from_module, make_module(api_host=HOST, api_password="pw"))
    assert err.msg == "Cannot connect to the Proxmox VE API at pve.lab.example:8006 for login: " + hint


def test_missing_proxmoxer_is_reported_with_the_import_error(make_module, logins, monkeypatch):
    monkeypatch.setattr(_proxmox, "PROXMOXER_IMPORT_ERROR", "Traceback: No module named 'proxmoxer'")
    err = failure(ProxmoxClient.from_module, make_module(api_host=HOST, api_password="pw"))
    assert err.msg.startswith("Failed to import the required Python library (proxmoxer and requests) on ")
    assert err.result["exception"] == "Traceback: No module named 'proxmoxer'"
    assert logins == []
