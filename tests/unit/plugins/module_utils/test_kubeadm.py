# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pure bootstrap-token helpers in plugins/module_utils/_kubeadm.py."""

import base64
import datetime
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.ailab.cluster.plugins.module_utils import _kubeadm as kubeadm

UTC = datetime.timezone.utc
NOW = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def write_ca(directory, key, filename="ca.crt"):
    """Write a self-signed CA certificate like kubeadm's ca.crt and return its path."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / filename
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def openssl_hash(ca_path, key_command):
    """The kubeadm documentation's pipeline: x509 -pubkey | <rsa|pkey> -pubin -outform der | dgst -sha256 -hex."""
    pubkey = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(ca_path)], check=True, capture_output=True
    ).stdout
    der = subprocess.run(
        ["openssl", key_command, "-pubin", "-outform", "der"], input=pubkey, check=True, capture_output=True
    ).stdout
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hex"], input=der, check=True, capture_output=True
    ).stdout.decode()
    # "SHA2-256(stdin)= <hex>" (OpenSSL 3) or "(stdin)= <hex>" (OpenSSL 1.1)
    return "sha256:" + digest.strip().rsplit("= ", 1)[1]


class TestCaCertHash:
    def test_rsa_ca_matches_openssl_pipeline(self, tmp_path):
        ca = write_ca(tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        expected = openssl_hash(ca, "rsa")
        assert re.match(r"^sha256:[0-9a-f]{64}$", expected)
        assert kubeadm.ca_cert_hash(ca.read_bytes()) == expected

    def test_ecdsa_ca_matches_openssl_pipeline(self, tmp_path):
        ca = write_ca(tmp_path, ec.generate_private_key(ec.SECP256R1()))
        assert kubeadm.ca_cert_hash(ca.read_text()) == openssl_hash(ca, "pkey")

    def test_first_certificate_of_a_bundle_is_hashed(self, tmp_path):
        first = write_ca(tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=2048), "first.crt")
        second = write_ca(tmp_path, ec.generate_private_key(ec.SECP256R1()), "second.crt")
        assert kubeadm.ca_cert_hash(first.read_bytes() + second.read_bytes()) == openssl_hash(first, "rsa")

    def test_not_a_certificate_raises_value_error(self):
        with pytest.raises(ValueError):
            kubeadm.ca_cert_hash(b"-----BEGIN PRIVATE KEY-----\nnot a cert\n-----END PRIVATE KEY-----\n")


class TestTokens:
    def test_generated_tokens_have_kubeadm_format(self):
        tokens = [kubeadm.generate_token() for dummy in range(200)]
        assert all(re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token) for token in tokens)

    def test_generated_tokens_are_unique_and_use_the_whole_alphabet(self):
        tokens = [kubeadm.generate_token() for dummy in range(2000)]
        assert len(set(tokens)) == len(tokens)
        assert len({token.split(".")[0] for token in tokens}) == len(tokens)
        assert set("".join(tokens).replace(".", "")) == set(kubeadm.TOKEN_CHARS)

    def test_split_token(self):
        assert kubeadm.split_token("abcdef.0123456789abcdef") == ("abcdef", "0123456789abcdef")

    @pytest.mark.parametrize(
        "token",
        [
            "",
            None,
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef0",
            "abcdef:0123456789abcdef",
            " abcdef.0123456789abcdef",
            "abcdef.0123456789abcdef\n",
        ],
    )
    def test_split_token_rejects_bad_format(self, token):
        with pytest.raises(kubeadm.KubeadmTokenError, match=re.escape("[a-z0-9]{6}.[a-z0-9]{16}")):
            kubeadm.split_token(token)

    def test_split_token_error_does_not_echo_the_secret(self):
        with pytest.raises(kubeadm.KubeadmTokenError) as error:
            kubeadm.split_token("q7w8e9.Zx1c2v3b4n5m6l7k")
        assert "Zx1c2v3b4n5m6l7k" not in str(error.value)

    def test_check_token_id(self):
        kubeadm.check_token_id("abc123")
        for bad in ("abc12", "abc1234", "ABC123", "abc-12", ""):
            with pytest.raises(kubeadm.KubeadmTokenError, match="does not match"):
                kubeadm.check_token_id(bad)

    @pytest.mark.parametrize(
        "group",
        [
            "system:bootstrappers:kubeadm:default-node-token",
            "system:bootstrappers:a",
            "system:bootstrappers:gpu-nodes",
            "system:bootstrappers:" + "a" * 256,
        ],
    )
    def test_valid_groups(self, group):
        kubeadm.check_groups([group])

    @pytest.mark.parametrize(
        "group",
        [
            "system:bootstrappers:",
            "system:bootstrappers:gpu:",
            "system:bootstrappers:GPU",
            "system:nodes",
            "bootstrappers:gpu",
            "system:bootstrappers:" + "a" * 257,
        ],
    )
    def test_invalid_groups(self, group):
        with pytest.raises(kubeadm.KubeadmTokenError) as error:
            kubeadm.check_groups([kubeadm.DEFAULT_GROUP, group])
        assert f"'{group}'" in str(error.value)


class TestTtlAndExpiry:
    @pytest.mark.parametrize(
        "ttl, seconds",
        [
            ("0", 0),
            (0, 0),
            ("0s", 0),
            ("0h0m0s", 0),
            ("90s", 90),
            ("30m", 1800),
            ("2h", 7200),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("24h0m0s", 86400),
            ("0.5s", 1),
            ("1m1h", 3660),
        ],
    )
    def test_parse_ttl(self, ttl, seconds):
        assert kubeadm.parse_ttl(ttl) == seconds

    @pytest.mark.parametrize("ttl", ["", "1d", "-1h", "h", "1 h", "soon", "1hm", "1.h", "100ms", "1H"])
    def test_parse_ttl_rejects(self, ttl):
        with pytest.raises(kubeadm.KubeadmTokenError) as error:
            kubeadm.parse_ttl(ttl)
        assert f"'{ttl}'" in str(error.value)

    def test_expiration_for(self):
        assert kubeadm.expiration_for(0, NOW) is None
        assert kubeadm.expiration_for(3600, NOW) == "2025-06-01T13:00:00Z"
        assert kubeadm.expiration_for(kubeadm.parse_ttl("24h0m0s"), NOW) == "2025-06-02T12:00:00Z"

    def test_expiration_for_defaults_to_now(self):
        before = kubeadm.utcnow()
        expires = kubeadm.parse_rfc3339(kubeadm.expiration_for(600))
        after = kubeadm.utcnow()
        assert before + datetime.timedelta(seconds=600) <= expires <= after + datetime.timedelta(seconds=600)

    @pytest.mark.parametrize(
        "text, expected",
        [
            ("2025-06-01T12:00:00Z", NOW),
            ("2025-06-01T12:00:00.123456789Z", NOW),
            ("2025-06-01T14:00:00+02:00", NOW),
            ("2025-06-01T09:30:00-02:30", NOW),
            ("2025-06-01t12:00:00z", NOW),
            ("2025-06-01 12:00:00Z", None),
            ("2025-13-01T12:00:00Z", None),
            ("2025-06-01T12:00:00", None),
            ("tomorrow", None),
            ("", None),
        ],
    )
    def test_parse_rfc3339(self, text, expected):
        assert kubeadm.parse_rfc3339(text) == expected

    def test_is_expired(self):
        assert kubeadm.is_expired(None, NOW) is False
        assert kubeadm.is_expired("2025-06-01T12:00:01Z", NOW) is False
        assert kubeadm.is_expired("2025-06-01T12:00:00Z", NOW) is True
        assert kubeadm.is_expired("2025-06-01T11:59:59Z", NOW) is True
        assert kubeadm.is_expired("not a time", NOW) is True


def decode(data):
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


class TestSecretConversion:
    def test_token_to_secret(self):
        secret = kubeadm.token_to_secret(
            "abcdef",
            "0123456789abcdef",
            ["signing", "authentication", "signing"],
            [kubeadm.DEFAULT_GROUP, "system:bootstrappers:gpu"],
            "join of gpu01",
            "2025-06-01T13:00:00Z",
        )
        assert secret["apiVersion"] == "v1"
        assert secret["kind"] == "Secret"
        assert secret["type"] == "bootstrap.kubernetes.io/token"
        assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
        assert decode(secret["data"]) == {
            "token-id": "abcdef",
            "token-secret": "0123456789abcdef",
            "expiration": "2025-06-01T13:00:00Z",
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token,system:bootstrappers:gpu",
            "description": "join of gpu01",
        }

    def test_token_to_secret_leaves_out_empty_fields(self):
        secret = kubeadm.token_to_secret("abcdef", "0123456789abcdef", ["signing"], [], None, None)
        assert decode(secret["data"]) == {
            "token-id": "abcdef",
            "token-secret": "0123456789abcdef",
            "usage-bootstrap-signing": "true",
        }

    def test_round_trip(self):
        secret = kubeadm.token_to_secret(
            "abcdef", "0123456789abcdef", list(kubeadm.USAGES), [kubeadm.DEFAULT_GROUP], "d", "2025-06-01T13:00:00Z"
        )
        assert kubeadm.secret_to_token(secret, NOW) == {
            "token_id": "abcdef",
            "token_secret": "0123456789abcdef",
            "description": "d",
            "usages": ["authentication", "signing"],
            "groups": [kubeadm.DEFAULT_GROUP],
            "expires": "2025-06-01T13:00:00Z",
            "expired": False,
        }

    def test_secret_to_token_reads_kubeadm_secrets(self):
        # What `kubeadm token create` writes: usages only when "true", no description.
        secret = {
            "metadata": {"name": "bootstrap-token-07401b"},
            "type": "bootstrap.kubernetes.io/token",
            "data": {
                "token-id": base64.b64encode(b"07401b").decode(),
                "token-secret": base64.b64encode(b"f395accd246ae52d").decode(),
                "expiration": base64.b64encode(b"2025-06-01T11:00:00Z").decode(),
                "usage-bootstrap-authentication": base64.b64encode(b"true").decode(),
                "usage-bootstrap-signing": base64.b64encode(b"false").decode(),
            },
        }
        token = kubeadm.secret_to_token(secret, NOW)
        assert token["usages"] == ["authentication"]
        assert token["groups"] == []
        assert token["description"] == ""
        assert token["expired"] is True

    @pytest.mark.parametrize(
        "name, token_id",
        [("bootstrap-token-abcdef", "abcdeg"), ("other-secret", "abcdef"), ("bootstrap-token-ABCDEF", "ABCDEF")],
    )
    def test_secret_to_token_ignores_malformed_secrets(self, name, token_id):
        secret = {"metadata": {"name": name}, "data": {"token-id": base64.b64encode(token_id.encode()).decode()}}
        assert kubeadm.secret_to_token(secret, NOW) is None

    def test_secret_to_token_survives_bad_base64(self):
        secret = {"metadata": {"name": "bootstrap-token-abcdef"}, "data": {"token-id": "!!!"}}
        assert kubeadm.secret_to_token(secret, NOW) is None

    def test_token_view_drops_the_secret(self):
        token = {"token_id": "abcdef", "token_secret": "0123456789abcdef", "expires": None}
        assert kubeadm.token_view(token) == {"token_id": "abcdef", "expires": None}
        assert "token_secret" in token
