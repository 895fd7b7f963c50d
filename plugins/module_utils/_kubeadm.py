# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers for kubeadm bootstrap tokens (private to ailab.cluster).

Nothing here talks to a cluster: token generation and validation, kubeadm-style
TTL parsing, the ``--discovery-token-ca-cert-hash`` of a CA certificate, and the
conversion between a bootstrap token and its ``kube-system`` Secret. The module
``ailab.cluster.kubeadm_token`` does the API calls.

Bootstrap token Secret format:
https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import hashlib
import math
import re
import secrets
import traceback

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

# Not datetime.UTC: that needs Python 3.11 and modules must run on 3.9.
UTC = datetime.timezone.utc


NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_NAME_PREFIX = "bootstrap-token-"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
USAGES = ("authentication", "signing")

# Same alphabet and shape as kubeadm (k8s.io/cluster-bootstrap/token/util). Match with
# fullmatch(): "$" alone would accept a trailing newline.
TOKEN_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN_ID_LENGTH = 6
TOKEN_SECRET_LENGTH = 16
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")

# Go time.ParseDuration, restricted to the units that make sense for a token lifetime.
_TTL_RE = re.compile(r"^(?:\d+(?:\.\d+)?[hms])+$")
_TTL_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_TTL_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}

# RFC 3339 as written by kubeadm ("2024-05-01T10:00:00Z"), with optional fraction and offset.
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


class KubeadmTokenError(ValueError):
    """A value given for a bootstrap token is invalid; the message says what to fix."""


def generate_token():
    """Return a new random ``<id>.<secret>`` token from a CSPRNG."""
    token_id = "".join(secrets.choice(TOKEN_CHARS) for dummy in range(TOKEN_ID_LENGTH))
    token_secret = "".join(secrets.choice(TOKEN_CHARS) for dummy in range(TOKEN_SECRET_LENGTH))
    return token_id + "." + token_secret


def split_token(token):
    """Return ``(token_id, token_secret)`` of a token, or raise KubeadmTokenError.

    The message never contains the token itself: it is a secret.
    """
    match = TOKEN_RE.fullmatch(token or "")
    if not match:
        raise KubeadmTokenError(
            "The bootstrap token does not match [a-z0-9]{6}.[a-z0-9]{16}; give a token like "
            "'abcdef.0123456789abcdef' or leave token unset to generate one."
        )
    return match.group(1), match.group(2)


def check_token_id(token_id):
    """Raise KubeadmTokenError unless token_id is six characters of [a-z0-9]."""
    if not TOKEN_ID_RE.fullmatch(token_id or ""):
        raise KubeadmTokenError(
            f"The bootstrap token id '{token_id}' does not match [a-z0-9]{{6}}; give the part of the "
            "token before the dot."
        )


def check_groups(groups):
    """Raise KubeadmTokenError for the first group that the API server would reject."""
    for group in groups:
        if not GROUP_RE.fullmatch(group):
            raise KubeadmTokenError(
                f"The extra group '{group}' does not match ^system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]$; "
                f"use a group such as '{DEFAULT_GROUP}'."
            )


def parse_ttl(ttl):
    """Return a kubeadm ``--ttl`` duration string in seconds (int); 0 means never expires.

    Accepts the Go duration forms kubeadm prints and takes: ``0``, ``90s``, ``30m``,
    ``2h``, ``1.5h``, ``24h0m0s``.
    """
    text = str(ttl).strip()
    if text == "0":
        return 0
    if not _TTL_RE.fullmatch(text):
        raise KubeadmTokenError(
            f"The ttl '{ttl}' is not a duration; use a value such as '30m', '2h', '24h0m0s' or '0' "
            "for a token that never expires."
        )
    total = 0.0
    for number, unit in _TTL_PART_RE.findall(text):
        total += float(number) * _TTL_UNIT_SECONDS[unit]
    # Round a fraction of a second up: a tiny TTL must not turn into 0 (never expires).
    return math.ceil(total)


def utcnow():
    """Return the current time as an aware UTC datetime without microseconds."""
    return datetime.datetime.now(UTC).replace(microsecond=0)


def format_rfc3339(moment):
    """Format an aware datetime the way kubeadm does: ``2024-05-01T10:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    """Return an aware datetime for an RFC 3339 timestamp, or None if it is not one."""
    match = _RFC3339_RE.fullmatch(text or "")
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    if match.group(7):
        offset = datetime.timedelta(0)
    else:
        offset = datetime.timedelta(hours=int(match.group(9)), minutes=int(match.group(10)))
        if match.group(8) == "-":
            offset = -offset
    try:
        return datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone(offset))
    except ValueError:
        return None


def expiration_for(ttl_seconds, now=None):
    """Return the RFC 3339 expiration for a TTL in seconds, or None for 0 (never expires)."""
    if not ttl_seconds:
        return None
    return format_rfc3339((now or utcnow()) + datetime.timedelta(seconds=ttl_seconds))


def is_expired(expires, now=None):
    """Tell whether a token with this expiration is no longer valid.

    None means the token never expires. An expiration that cannot be parsed counts as
    expired, which is how the API server treats it.
    """
    if expires is None:
        return False
    moment = parse_rfc3339(expires)
    if moment is None:
        return True
    return moment <= (now or utcnow())


def ca_cert_hash(pem_data):
    """Return ``sha256:<hex>`` of the DER SubjectPublicKeyInfo of the first certificate in pem_data.

    This is the value of ``kubeadm join --discovery-token-ca-cert-hash`` and equals
    ``openssl x509 -pubkey -in ca.crt | openssl rsa -pubin -outform der | openssl dgst -sha256 -hex``.
    Raises ValueError when pem_data holds no PEM certificate.
    """
    if isinstance(pem_data, str):
        pem_data = pem_data.encode("ascii")
    certificate = x509.load_pem_x509_certificate(pem_data)
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def secret_name(token_id):
    """Return the name of the Secret that stores the token with this id."""
    return SECRET_NAME_PREFIX + token_id


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(text):
    try:
        return base64.b64decode(text or "").decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""


def token_to_secret(token_id, token_secret, usages, groups, description=None, expires=None):
    """Return the ``kube-system`` Secret (a dict) that stores a bootstrap token."""
    data = {"token-id": token_id, "token-secret": token_secret}
    if expires:
        data["expiration"] = expires
    for usage in sorted(set(usages)):
        data["usage-bootstrap-" + usage] = "true"
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    if description:
        data["description"] = description
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(token_id), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": {key: _b64(value) for key, value in data.items()},
    }


def secret_to_token(secret, now=None):
    """Return the token stored in a Secret (dict, base64 ``data``), or None if it holds none.

    The result contains ``token_secret``: pass it through token_view() before it leaves
    the module in anything but the ``token`` return value.
    """
    name = (secret.get("metadata") or {}).get("name") or ""
    data = {key: _unb64(value) for key, value in (secret.get("data") or {}).items()}
    token_id = data.get("token-id", "")
    if name != secret_name(token_id) or not TOKEN_ID_RE.fullmatch(token_id):
        return None
    expires = data.get("expiration") or None
    groups = data.get("auth-extra-groups", "")
    return {
        "token_id": token_id,
        "token_secret": data.get("token-secret", ""),
        "description": data.get("description", ""),
        "usages": sorted(usage for usage in USAGES if data.get("usage-bootstrap-" + usage) == "true"),
        "groups": [group for group in groups.split(",") if group],
        "expires": expires,
        "expired": is_expired(expires, now),
    }


def token_view(token):
    """Return a token without its secret: safe for ``tokens``, diff and logs."""
    return {key: value for key, value in token.items() if key != "token_secret"}
