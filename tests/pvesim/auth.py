"""Authentication and authorisation: tickets, CSRF tokens, API tokens and two roles.

Like PVE, a client logs in with ``POST /access/ticket`` and then sends the ticket as cookie
``PVEAuthCookie`` and, for every non-GET request, the ``CSRFPreventionToken`` header; or it sends
``Authorization: PVEAPIToken=user@realm!name=secret``. Tickets are HMAC-signed and expire after
two hours (PVE's lifetime).

There are two roles. ``admin`` (root@pam and its token) may do everything; ``audit`` (a read-only
user and token, like PVE's PVEAuditor role) may only read: any non-GET request answers 403 with
PVE's ``Permission check failed (<path>, <privilege>)`` text, taken from the method's schema.
Methods whose schema has no permissions at all (``POST /cluster/config``, ``.../join``) are
root@pam-only, as in PVE: a token, even root@pam's, gets ``Permission check failed (user != root@pam)``.
"""

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import AuthError, PermissionDenied

TICKET_LIFETIME = 7200


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: user id, optional token name and role (``admin``/``audit``)."""

    userid: str
    role: str
    tokenid: str | None = None

    @property
    def name(self):
        """``user@realm`` or ``user@realm!token`` as PVE writes it into task UPIDs."""
        return f"{self.userid}!{self.tokenid}" if self.tokenid else self.userid


@dataclass
class Account:
    """A configured login: user id, password, role and API tokens (``name -> secret``)."""

    userid: str
    password: str
    role: str
    tokens: dict


def new_secret():
    """A token secret shaped like PVE's (a UUID)."""
    return str(uuid.uuid4())


def new_password():
    """A random password for generated accounts."""
    return secrets.token_urlsafe(18)


class Authenticator:
    """Issues and verifies tickets, CSRF tokens and API tokens for a set of accounts."""

    def __init__(self, accounts):
        self.accounts = {account.userid: account for account in accounts}
        self._key = secrets.token_bytes(32)

    def _sign(self, text):
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode().rstrip("=")

    def issue(self, userid):
        """Return ``(ticket, csrf_token)`` for ``userid``."""
        stamp = f"{int(time.time()):08X}"
        plain = f"PVE:{userid}:{stamp}"
        ticket = f"{plain}::{self._sign(plain)}"
        csrf = f"{stamp}:{self._sign('csrf:' + stamp + ':' + userid)}"
        return ticket, csrf

    def verify_ticket(self, ticket):
        """Return the userid of a valid, unexpired ticket, else None."""
        plain, sep, signature = ticket.partition("::")
        parts = plain.split(":")
        if not sep or len(parts) != 3 or parts[0] != "PVE":
            return None
        if not hmac.compare_digest(self._sign(plain), signature):
            return None
        try:
            age = time.time() - int(parts[2], 16)
        except ValueError:
            return None
        if age > TICKET_LIFETIME or parts[1] not in self.accounts:
            return None
        return parts[1]

    def verify_csrf(self, token, userid):
        """True when ``token`` is a valid, unexpired CSRF token for ``userid``."""
        stamp, _ignored, signature = (token or "").partition(":")
        try:
            age = time.time() - int(stamp, 16)
        except ValueError:
            return False
        expected = self._sign("csrf:" + stamp + ":" + userid)
        return age <= TICKET_LIFETIME and hmac.compare_digest(expected, signature)

    def login(self, username, password, realm=None):
        """Check a password (or a still-valid ticket, for renewal); return the Principal."""
        if realm and "@" not in username:
            username = f"{username}@{realm}"
        account = self.accounts.get(username)
        if account is None:
            raise AuthError("authentication failure")
        if hmac.compare_digest(account.password.encode(), password.encode()):
            return Principal(account.userid, account.role)
        if self.verify_ticket(password) == account.userid:
            return Principal(account.userid, account.role)
        raise AuthError("authentication failure")

    def authenticate(self, headers, cookies, method):
        """Return the Principal for a request, or None when it carries no credentials.

        Raises AuthError for credentials that are present but invalid, and for a write made
        with a ticket but without a valid CSRF token.
        """
        authorization = headers.get("Authorization") or headers.get("authorization")
        if authorization and authorization.startswith("PVEAPIToken="):
            full, sep, secret = authorization[len("PVEAPIToken="):].partition("=")
            userid, bang, tokenname = full.partition("!")
            account = self.accounts.get(userid)
            if not sep or not bang or account is None or tokenname not in account.tokens:
                raise AuthError("invalid token value!")
            if not hmac.compare_digest(account.tokens[tokenname].encode(), secret.strip().encode()):
                raise AuthError("invalid token value!")
            return Principal(userid, account.role, tokenname)
        ticket = cookies.get("PVEAuthCookie")
        if not ticket:
            return None
        userid = self.verify_ticket(unquote(ticket))
        if userid is None:
            raise AuthError("permission denied - invalid PVE ticket")
        if method != "GET":
            csrf = headers.get("CSRFPreventionToken") or headers.get("csrfpreventiontoken")
            if not self.verify_csrf(csrf, userid):
                raise AuthError("Permission denied - invalid csrf token")
        return Principal(userid, self.accounts[userid].role)


def _first_perm(check):
    """Find the first ``['perm', path, [privs]]`` clause in a PVE permission check."""
    if not isinstance(check, list) or not check:
        return None
    if check[0] == "perm" and len(check) >= 3:
        return check[1], check[2]
    for item in check[1:]:
        found = _first_perm(item)
        if found:
            return found
    return None


_DESCRIBED = re.compile(r"'(?P<priv>[A-Z][A-Za-z]*\.[A-Za-z.]+)'[^/]*? on '?(?P<path>/[^\s',]*)")


def _described_perm(description):
    """Derive ``(path, [privilege])`` from a prose permission description, if it names one."""
    match = _DESCRIBED.search(description or "")
    return (match.group("path"), [match.group("priv")]) if match else None


ROOT = "root@pam"


def is_root(principal):
    """True for root@pam itself (a ticket), the only caller PVE lets set root-only options.

    PVE compares the authenticated user id with 'root@pam'; for an API token that id is
    ``user@realm!token`` (pve-access-control PVE/RPCEnvironment.pm), so no token is root, not even
    one of root@pam. None (an internal call without a principal) counts as root.
    """
    return principal is None or (principal.userid == ROOT and not principal.tokenid)


def authorize(principal, method, params):
    """Raise PermissionDenied when ``principal`` may not call ``method`` with ``params``.

    A method without permissions in the schema (cluster create and join, ...) is for root@pam
    itself: PVE refuses it to every other user and to every API token, root@pam's included.
    """
    if not method.permissions and (principal.userid != ROOT or principal.tokenid):
        raise PermissionDenied(f"Permission check failed (user != {ROOT})")
    if principal.role == "admin" or method.method == "GET":
        return
    found = _first_perm(method.permissions.get("check")) or _described_perm(method.permissions.get("description"))
    if found is None:
        raise PermissionDenied("Permission check failed")
    path, privileges = found
    for key, value in params.items():
        path = path.replace("{" + key + "}", str(value))
    privilege = privileges[0] if isinstance(privileges, list) and privileges else "Sys.Modify"
    raise PermissionDenied(f"Permission check failed ({path}, {privilege})")
