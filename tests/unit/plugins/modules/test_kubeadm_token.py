# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for ailab.cluster.kubeadm_token.

The module runs with its real kubernetes client (through kubernetes.core's client factory)
against k8s_api_double, a real HTTP server, reached through a generated kubeconfig.
"""

import base64
import datetime
import json
import re
import socket
import subprocess
import tempfile

import kubernetes
import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.ailab.cluster.plugins.module_utils import _kubeadm as kubeadm
from ansible_collections.ailab.cluster.plugins.modules import kubeadm_token
from ansible_collections.kubernetes.core.plugins.module_utils.k8s import client as k8s_client
from unit.plugins.modules.k8s_api_double import BEARER_TOKEN, KubernetesApiDouble

TOKEN = "abcdef.0123456789abcdef"
SECRET = "0123456789abcdef"
TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
FUTURE = "2999-01-01T00:00:00Z"
PAST = "2001-01-01T00:00:00Z"


REAL_EXIT_JSON = basic.AnsibleModule.exit_json


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


def exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def fail_json(self, msg, **kwargs):
    kwargs["msg"] = msg
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Give every run the fresh process Ansible gives a module.

    No K8S_AUTH_*/KUBECONFIG from the environment, discovery cache files in tmp_path, and none
    of the kubernetes client's process-wide state: the default Configuration that
    load_kube_config() leaves behind carries a refresh hook that would point the next run,
    even one with host/api_key, back at the previous kubeconfig's server.
    """
    for name in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", None)
    monkeypatch.setattr(k8s_client, "_pool", {})


@pytest.fixture
def patched_exit(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


@pytest.fixture
def api():
    with KubernetesApiDouble() as double:
        yield double


@pytest.fixture(scope="module")
def ca_cert(tmp_path_factory):
    """A kubeadm-like RSA cluster CA and the hash the documented openssl pipeline gives for it."""
    directory = tmp_path_factory.mktemp("pki")
    key, crt = directory / "ca.key", directory / "ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
         "-subj", "/CN=kubernetes", "-days", "1"],
        check=True, capture_output=True,
    )
    pipeline = f"openssl x509 -pubkey -in {crt} | openssl rsa -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex"
    digest = subprocess.run(pipeline, shell=True, check=True, capture_output=True, text=True).stdout
    return str(crt), "sha256:" + digest.strip().rsplit("= ", 1)[1]


@pytest.fixture
def base_args(api, ca_cert, tmp_path):
    return {"kubeconfig": api.write_kubeconfig(tmp_path / "kubeconfig"), "ca_cert_path": ca_cert[0]}


def run(args, check_mode=False, diff=False):
    """Run the module once; return the exit_json or fail_json arguments."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with pytest.raises((AnsibleExitJson, AnsibleFailJson)) as outcome:
            kubeadm_token.main()
    return outcome.value.args[0]


def ok(args, **kwargs):
    result = run(args, **kwargs)
    assert not result.get("failed"), result
    return result


def failed(args, **kwargs):
    result = run(args, **kwargs)
    assert result.get("failed"), result
    return result


def seed(api, token_id, secret=SECRET, expires=FUTURE, description="", groups=(kubeadm.DEFAULT_GROUP,), usages=kubeadm.USAGES):
    return api.add_secret(kubeadm.token_to_secret(token_id, secret, list(usages), list(groups), description, expires))


def stored(api, token_id):
    return api.decoded_data(kubeadm.secret_name(token_id))


def assert_no_secret(value, *secrets):
    text = json.dumps(value)
    for secret in secrets:
        assert secret not in text


pytestmark = pytest.mark.usefixtures("patched_exit")


class TestCreate:
    def test_creates_a_fresh_token(self, api, base_args, ca_cert):
        before = kubeadm.utcnow()
        result = ok(dict(base_args, ttl="30m", description="join of gpu01", api_server_endpoint="k8s-api.lab:6443"))

        assert result["changed"] is True
        assert TOKEN_RE.match(result["token"])
        token_id, secret = result["token"].split(".")
        assert result["token_id"] == token_id
        assert result["ca_cert_hash"] == ca_cert[1]
        assert result["join_command"] == (
            f"kubeadm join k8s-api.lab:6443 --token {result['token']} --discovery-token-ca-cert-hash {ca_cert[1]}"
        )
        expires = kubeadm.parse_rfc3339(result["expires"])
        assert before + datetime.timedelta(minutes=30) <= expires <= kubeadm.utcnow() + datetime.timedelta(minutes=30)

        [write] = api.writes()
        assert (write["method"], write["path"]) == ("POST", "/api/v1/namespaces/kube-system/secrets")
        assert write["authorization"] == f"Bearer {BEARER_TOKEN}"
        secret_object = api.get_secret(f"bootstrap-token-{token_id}")
        assert secret_object["type"] == "bootstrap.kubernetes.io/token"
        assert stored(api, token_id) == {
            "token-id": token_id,
            "token-secret": secret,
            "expiration": result["expires"],
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
            "description": "join of gpu01",
        }
        assert result["tokens"] == [
            {
                "token_id": token_id,
                "description": "join of gpu01",
                "usages": ["authentication", "signing"],
                "groups": [kubeadm.DEFAULT_GROUP],
                "expires": result["expires"],
                "expired": False,
            }
        ]
        assert_no_secret(result["tokens"], secret)

    def test_every_run_makes_a_new_token_by_default(self, api, base_args):
        first = ok(dict(base_args, description="join"))
        second = ok(dict(base_args, description="join"))
        assert first["token"] != second["token"]
        assert second["changed"] is True
        assert [w["method"] for w in api.writes()] == ["POST", "POST"]
        assert [t["token_id"] for t in second["tokens"]] == sorted([first["token_id"], second["token_id"]])

    def test_never_expiring_token_with_custom_usages_and_groups(self, api, base_args):
        result = ok(dict(base_args, ttl="0", usages=["signing"], groups=["system:bootstrappers:gpu", "system:bootstrappers:gpu"]))
        assert result["expires"] is None
        assert stored(api, result["token_id"]) == {
            "token-id": result["token_id"],
            "token-secret": result["token"].split(".")[1],
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:gpu",
        }

    def test_ca_cert_path_empty_skips_the_hash(self, api, base_args):
        result = ok(dict(base_args, ca_cert_path=""))
        assert "ca_cert_hash" not in result
        assert "join_command" not in result

    def test_host_and_api_key_connect_without_kubeconfig(self, api, ca_cert):
        result = ok({"host": api.url, "api_key": "another-token", "ca_cert_path": ca_cert[0]})
        assert result["changed"] is True
        assert {r["authorization"] for r in api.requests} == {"Bearer another-token"}


class TestReuse:
    def test_reuses_a_valid_token_with_the_same_description(self, api, base_args):
        seed(api, "old001", expires=PAST, description="workers")
        seed(api, "new001", secret="1111111111111111", expires="2998-01-01T00:00:00Z", description="workers")
        seed(api, "new002", secret="2222222222222222", expires=FUTURE, description="workers")
        seed(api, "grp001", secret="3333333333333333", expires=None, description="workers", groups=["system:bootstrappers:x"])
        seed(api, "oth001", secret="4444444444444444", expires=None, description="others")
        api.clear_log()

        result = ok(dict(base_args, reuse=True, description="workers"), diff=True)

        assert result["changed"] is False
        assert result["token"] == "new002.2222222222222222"
        assert result["expires"] == FUTURE
        assert api.writes() == []
        assert result["diff"]["before"] == result["diff"]["after"]

    def test_creates_when_nothing_can_be_reused(self, api, base_args):
        seed(api, "old001", expires=PAST, description="workers")
        api.clear_log()
        result = ok(dict(base_args, reuse=True, description="workers"))
        assert result["changed"] is True
        assert result["token_id"] != "old001"
        assert [w["method"] for w in api.writes()] == ["POST"]


class TestExplicitToken:
    def test_create_then_rerun_is_idempotent(self, api, base_args):
        args = dict(base_args, token=TOKEN, description="break-glass", groups=[kubeadm.DEFAULT_GROUP, "system:bootstrappers:gpu"])
        first = ok(args)
        assert first["changed"] is True
        assert stored(api, "abcdef")["token-secret"] == SECRET
        api.clear_log()

        # Same settings, groups in another order: nothing to do, and no write call at all.
        second = ok(dict(args, groups=["system:bootstrappers:gpu", kubeadm.DEFAULT_GROUP]), diff=True)
        assert second["changed"] is False
        assert second["expires"] == first["expires"]
        assert api.writes() == []
        assert [r["method"] for r in api.requests] == ["GET"] * len(api.requests)
        assert second["diff"]["before"] == second["diff"]["after"]

    def test_keeps_a_valid_expiration(self, api, base_args):
        seed(api, "abcdef", expires=FUTURE)
        api.clear_log()
        result = ok(dict(base_args, token=TOKEN, ttl="5m"))
        assert result["changed"] is False
        assert result["expires"] == FUTURE
        assert api.writes() == []

    def test_updates_a_different_description(self, api, base_args):
        seed(api, "abcdef", description="old")
        version = api.get_secret("bootstrap-token-abcdef")["metadata"]["resourceVersion"]
        api.clear_log()

        result = ok(dict(base_args, token=TOKEN, description="new"), diff=True)

        assert result["changed"] is True
        [write] = api.writes()
        assert (write["method"], write["path"]) == ("PUT", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef")
        assert write["body"]["metadata"]["resourceVersion"] == version
        assert stored(api, "abcdef")["description"] == "new"
        assert result["diff"]["before"]["description"] == "old"
        assert result["diff"]["after"]["description"] == "new"
        assert_no_secret(result["diff"], SECRET)

    def test_keeps_labels_and_annotations_on_update(self, api, base_args):
        secret = kubeadm.token_to_secret("abcdef", SECRET, list(kubeadm.USAGES), [kubeadm.DEFAULT_GROUP], "old", FUTURE)
        secret["metadata"]["labels"] = {"owner": "lab"}
        api.add_secret(secret)
        ok(dict(base_args, token=TOKEN, description="new"))
        assert api.get_secret("bootstrap-token-abcdef")["metadata"]["labels"] == {"owner": "lab"}

    def test_replaced_secret_is_named_not_shown(self, api, base_args):
        seed(api, "abcdef", secret="ffffffffffffffff")
        api.clear_log()
        result = ok(dict(base_args, token=TOKEN), diff=True)
        assert result["changed"] is True
        assert stored(api, "abcdef")["token-secret"] == SECRET
        assert result["diff"]["before"]["token_secret"] == "(hidden)"
        assert result["diff"]["after"]["token_secret"] == "(replaced)"
        assert_no_secret(result["diff"], SECRET, "ffffffffffffffff")

    def test_renews_an_expired_token(self, api, base_args):
        seed(api, "abcdef", expires=PAST)
        result = ok(dict(base_args, token=TOKEN, ttl="1h"))
        assert result["changed"] is True
        assert not kubeadm.is_expired(result["expires"])
        assert stored(api, "abcdef")["expiration"] == result["expires"]

    def test_switches_between_finite_and_infinite_ttl(self, api, base_args):
        seed(api, "abcdef", expires=FUTURE)
        result = ok(dict(base_args, token=TOKEN, ttl="0"))
        assert result["changed"] is True
        assert result["expires"] is None
        assert "expiration" not in stored(api, "abcdef")

        result = ok(dict(base_args, token=TOKEN, ttl="2h"))
        assert result["changed"] is True
        assert stored(api, "abcdef")["expiration"] == result["expires"]

    def test_ansible_masks_the_explicit_token_in_the_real_output(self, api, base_args, monkeypatch, capsys):
        # The real exit_json applies Ansible's no_log masking to the results.
        monkeypatch.setattr(basic.AnsibleModule, "exit_json", REAL_EXIT_JSON)
        with patch_module_args(dict(base_args, token=TOKEN, api_server_endpoint="k8s-api.lab:6443")):
            with pytest.raises(SystemExit) as exited:
                kubeadm_token.main()
        assert exited.value.code == 0
        result = json.loads(capsys.readouterr().out)
        assert result["changed"] is True
        assert TOKEN not in json.dumps(result)
        assert result["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        assert "--token ******** " in result["join_command"]


class TestCheckMode:
    def test_create_predicts_and_writes_nothing(self, api, base_args):
        result = ok(dict(base_args, description="join"), check_mode=True, diff=True)
        assert result["changed"] is True
        assert TOKEN_RE.match(result["token"])
        assert [t["token_id"] for t in result["tokens"]] == [result["token_id"]]
        assert api.writes() == []
        assert api.secrets == {}

    def test_update_predicts_and_writes_nothing(self, api, base_args):
        seed(api, "abcdef", description="old")
        api.clear_log()
        result = ok(dict(base_args, token=TOKEN, description="new"), check_mode=True)
        assert result["changed"] is True
        assert api.writes() == []
        assert stored(api, "abcdef")["description"] == "old"

    def test_absent_predicts_and_writes_nothing(self, api, base_args):
        seed(api, "abcdef")
        api.clear_log()
        result = ok(dict(base_args, state="absent", token_id="abcdef"), check_mode=True)
        assert result["changed"] is True
        assert result["tokens"] == []
        assert api.writes() == []
        assert api.get_secret("bootstrap-token-abcdef") is not None


class TestDiff:
    def test_create_diff_has_no_secret(self, api, base_args):
        result = ok(dict(base_args, description="join", ttl="2h"), diff=True)
        secret = result["token"].split(".")[1]
        assert result["diff"]["before"] == {}
        assert result["diff"]["after"] == {
            "token_id": result["token_id"],
            "description": "join",
            "usages": ["authentication", "signing"],
            "groups": [kubeadm.DEFAULT_GROUP],
            "expires": result["expires"],
            "expired": False,
        }
        assert_no_secret(result["diff"], secret)

    def test_no_diff_without_diff_mode(self, api, base_args):
        assert "diff" not in ok(base_args)

    def test_absent_diff(self, api, base_args):
        seed(api, "abcdef", description="old")
        result = ok(dict(base_args, state="absent", token_id="abcdef"), diff=True)
        assert result["diff"]["before"]["token_id"] == "abcdef"
        assert result["diff"]["after"] == {}
        assert_no_secret(result["diff"], SECRET)


class TestAbsent:
    def test_deletes_by_token_id(self, api, base_args):
        seed(api, "abcdef")
        seed(api, "keep01")
        api.clear_log()
        result = ok(dict(base_args, state="absent", token_id="abcdef"))
        assert result["changed"] is True
        assert result["token_id"] == "abcdef"
        assert [t["token_id"] for t in result["tokens"]] == ["keep01"]
        [write] = api.writes()
        assert (write["method"], write["path"]) == ("DELETE", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef")
        assert api.get_secret("bootstrap-token-abcdef") is None
        assert "token" not in result

    def test_deletes_by_token(self, api, base_args):
        seed(api, "abcdef")
        result = ok(dict(base_args, state="absent", token=TOKEN))
        assert result["changed"] is True
        assert api.get_secret("bootstrap-token-abcdef") is None

    def test_missing_token_is_a_no_op(self, api, base_args):
        result = ok(dict(base_args, state="absent", token_id="abcdef"))
        assert result["changed"] is False
        assert api.writes() == []

    def test_does_not_read_the_ca(self, api, base_args, tmp_path):
        result = ok(dict(base_args, state="absent", token_id="abcdef", ca_cert_path=str(tmp_path / "missing.crt")))
        assert result["changed"] is False
        assert "ca_cert_hash" not in result


class TestListing:
    def test_tokens_report_expiry_and_skip_foreign_secrets(self, api, base_args):
        seed(api, "exp001", expires=PAST, description="old join")
        seed(api, "inf001", expires=None)
        bad = kubeadm.token_to_secret("abcdef", SECRET, ["signing"], [], None, FUTURE)
        bad["metadata"]["name"] = "bootstrap-token-zzzzzz"  # name and token-id disagree: not a token
        api.add_secret(bad)
        api.add_secret({"metadata": {"name": "opaque"}, "type": "Opaque", "data": {}})
        api.clear_log()

        result = ok(dict(base_args, state="absent", token_id="nosuch"))

        assert result["tokens"] == [
            {
                "token_id": "exp001",
                "description": "old join",
                "usages": ["authentication", "signing"],
                "groups": [kubeadm.DEFAULT_GROUP],
                "expires": PAST,
                "expired": True,
            },
            {
                "token_id": "inf001",
                "description": "",
                "usages": ["authentication", "signing"],
                "groups": [kubeadm.DEFAULT_GROUP],
                "expires": None,
                "expired": False,
            },
        ]
        assert_no_secret(result["tokens"], SECRET)
        [listing] = [r for r in api.requests if r["path"].endswith("/secrets")]
        assert listing["query"] == {"fieldSelector": ["type=bootstrap.kubernetes.io/token"]}


class TestFailures:
    @pytest.mark.parametrize("token", ["abcdef.0123456789ABCDEF", "abcdef-0123456789abcdef", "abcdef.0123"])
    def test_bad_token(self, api, base_args, token):
        result = failed(dict(base_args, token=token))
        assert "does not match [a-z0-9]{6}.[a-z0-9]{16}" in result["msg"]
        assert api.requests == []

    def test_bad_token_id(self, api, base_args):
        result = failed(dict(base_args, state="absent", token_id="abc"))
        assert "token id 'abc' does not match" in result["msg"]
        assert api.requests == []

    @pytest.mark.parametrize("ttl", ["1d", "-1h", "forever"])
    def test_bad_ttl(self, api, base_args, ttl):
        result = failed(dict(base_args, ttl=ttl))
        assert f"The ttl '{ttl}' is not a duration" in result["msg"]
        assert api.requests == []

    def test_bad_group(self, api, base_args):
        result = failed(dict(base_args, groups=["system:nodes"]))
        assert "The extra group 'system:nodes' does not match" in result["msg"]
        assert api.requests == []

    def test_empty_usages(self, api, base_args):
        result = failed(dict(base_args, usages=[]))
        assert result["msg"].startswith("usages is empty")
        assert api.requests == []

    def test_token_id_with_state_present(self, api, base_args):
        result = failed(dict(base_args, token_id="abcdef"))
        assert result["msg"].startswith("token_id only selects a token to delete with state=absent")
        assert api.requests == []

    @pytest.mark.parametrize("endpoint", ["https://k8s-api.lab:6443", "k8s-api.lab", "k8s api:6443"])
    def test_bad_api_server_endpoint(self, api, base_args, endpoint):
        result = failed(dict(base_args, api_server_endpoint=endpoint))
        assert f"api_server_endpoint '{endpoint}' is not host:port" in result["msg"]
        assert api.requests == []

    def test_join_command_needs_the_ca(self, api, base_args):
        result = failed(dict(base_args, api_server_endpoint="k8s-api.lab:6443", ca_cert_path=""))
        assert result["msg"].startswith("api_server_endpoint needs the CA hash")
        assert api.requests == []

    def test_unreadable_ca(self, api, base_args, tmp_path):
        missing = tmp_path / "missing.crt"
        result = failed(dict(base_args, ca_cert_path=str(missing)))
        assert result["msg"].startswith(f"Could not read the cluster CA certificate {missing} (No such file or directory)")
        assert result["ca_cert_path"] == str(missing)
        assert api.requests == []

    def test_ca_that_is_not_a_certificate(self, api, base_args, tmp_path):
        garbage = tmp_path / "garbage.crt"
        garbage.write_text("this is not PEM\n")
        result = failed(dict(base_args, ca_cert_path=str(garbage)))
        assert result["msg"].startswith(f"The cluster CA file {garbage} holds no PEM certificate")
        assert api.requests == []

    def test_missing_cryptography(self, api, base_args, monkeypatch):
        monkeypatch.setattr(kubeadm, "HAS_CRYPTOGRAPHY", False)
        result = failed(base_args)
        assert "cryptography" in result["msg"]
        assert "to compute ca_cert_hash" in result["msg"]

    def test_argument_spec_requires_an_id_for_absent(self, api, base_args):
        result = failed(dict(base_args, state="absent"))
        assert "token, token_id" in result["msg"]

    def test_argument_spec_requires_a_description_for_reuse(self, api, base_args):
        result = failed(dict(base_args, reuse=True))
        assert "description" in result["msg"]

    def test_list_forbidden(self, api, base_args):
        api.fail("GET", r"/secrets$", 403, "Forbidden",
                 'secrets is forbidden: User "system:node:w1" cannot list resource "secrets" in the namespace "kube-system"')
        result = failed(base_args)
        assert result["msg"] == (
            "Could not list the bootstrap token Secrets in kube-system: the API server answered HTTP 403 Forbidden "
            '(secrets is forbidden: User "system:node:w1" cannot list resource "secrets" in the namespace "kube-system"); '
            "give the kubeconfig user the right to list Secrets in kube-system (kubeadm's admin.conf has it)."
        )
        assert result["status"] == 403
        assert api.writes() == []

    def test_create_server_error(self, api, base_args):
        api.fail("POST", r"/secrets$", 500, "InternalError", "etcdserver: request timed out")
        result = failed(base_args)
        assert re.match(
            r"^Could not create Secret kube-system/bootstrap-token-[a-z0-9]{6}: the API server answered HTTP 500 "
            r"Internal Server Error \(etcdserver: request timed out\); check the API server and its logs\.$",
            result["msg"],
        )
        assert result["status"] == 500

    def test_update_conflict(self, api, base_args):
        seed(api, "abcdef", description="old")
        api.fail("PUT", r"bootstrap-token-abcdef$", 409, "Conflict", "the object has been modified")
        result = failed(dict(base_args, token=TOKEN, description="new"))
        assert result["msg"].startswith("Could not update Secret kube-system/bootstrap-token-abcdef: the API server answered HTTP 409")
        assert result["msg"].endswith("another client changed the Secret at the same time; run the task again.")

    def test_delete_forbidden(self, api, base_args):
        seed(api, "abcdef")
        api.fail("DELETE", r"bootstrap-token-abcdef$", 403, "Forbidden", "nope")
        result = failed(dict(base_args, state="absent", token_id="abcdef"))
        assert result["msg"].startswith("Could not delete Secret kube-system/bootstrap-token-abcdef: the API server answered HTTP 403 Forbidden")
        assert "the right to delete Secrets" in result["msg"]

    def test_unauthorized_during_discovery(self, api, base_args):
        api.fail("GET", r"^/version$", 401, "Unauthorized", "Unauthorized")
        result = failed(base_args)
        assert "HTTP 401 Unauthorized" in result["msg"]
        assert result["msg"].endswith("check the credentials in the kubeconfig.")

    def test_unreachable_api_server(self, base_args, tmp_path):
        # A port that was free a moment ago: nothing listens there.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        kubeconfig = tmp_path / "closed.kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        result = failed(dict(base_args, kubeconfig=str(kubeconfig)))
        assert result["msg"].startswith("Could not connect to the Kubernetes API to manage bootstrap tokens: the Kubernetes API server is unreachable")

    def test_bad_kubeconfig(self, base_args, tmp_path):
        result = failed(dict(base_args, kubeconfig=str(tmp_path / "nosuch.conf")))
        assert result["msg"].startswith("Could not set up the Kubernetes client (")
        assert result["msg"].endswith("check the kubeconfig, context and host options.")


def test_secret_data_is_base64_in_the_request(api, base_args):
    """The body on the wire is what the API server expects: base64 ``data``, not ``stringData``."""
    result = ok(base_args)
    [write] = api.writes()
    assert "stringData" not in write["body"]
    assert base64.b64decode(write["body"]["data"]["token-secret"]).decode() == result["token"].split(".")[1]
