"""Authentication and authorisation: tickets, CSRF tokens, API tokens, ACLs.

Like PVE, a client logs in with ``POST /access/ticket`` and then sends the ticket as cookie
``PVEAuthCookie`` and, for every non-GET request, the ``CSRFPreventionToken`` header; or it sends
``Authorization: PVEAPIToken=user@realm!name=secret``. Tickets are HMAC-signed and expire after
two hours (PVE's lifetime).

The command line configures two accounts: ``admin`` (root@pam and its token, which holds every
privilege) and ``audit`` (a read-only user and token holding PVE's PVEAuditor role on ``/``).
Users, roles, ACLs and privilege-separated tokens made through ``/access`` are evaluated by
:mod:`pvesim.acl`. Every call is checked against the ``permissions`` of its method in the API
schema (``check`` expressions as PVE's RPCEnvironment evaluates them; for ``user: all`` writes, the
privilege the description names); a refusal answers 403 with PVE's
``Permission check failed (<path>, <privilege>)``. Methods whose schema has no permissions at all
(``POST /cluster/config``, ``.../join``) are root@pam-only, as in PVE: a token, even root@pam's,
gets ``Permission check failed (user != root@pam)``.
"""

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

from .acl import AccessConfig, evaluate
from .errors import AuthError, PermissionDenied

TICKET_LIFETIME = 7200


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: user id, optional token name, role (``admin``/``audit``/``user``).

    ``privsep`` tells whether a token is privilege-separated; ``access`` is the cluster's
    AccessConfig, ``extra_roles`` the roles a command-line account holds outside the ACL.
    """

    userid: str
    role: str
    tokenid: str | None = None
    privsep: bool = False
    access: object = field(default=None, compare=False, repr=False)
    extra_roles: tuple = ()

    @property
    def name(self):
        """``user@realm`` or ``user@realm!token`` as PVE writes it into task UPIDs."""
        return f"{self.userid}!{self.tokenid}" if self.tokenid else self.userid

    def privileges(self, path):
        """The privileges this caller holds on ``path``."""
        access = self.access or AccessConfig(9)
        return access.permissions(self, path, dict(self.extra_roles))


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
        self.state = None  # the ClusterState, whose ``access`` holds users, tokens and ACLs made through the API

    @property
    def access(self):
        """The cluster's AccessConfig (an empty one when no state is attached)."""
        return getattr(self.state, "access", None) or AccessConfig(9)

    def principal(self, userid, tokenid=None, privsep=False):
        """A Principal with the roles its account holds outside the ACL."""
        account = self.accounts.get(userid)
        role = account.role if account else "user"
        extra = {"admin": (("/", ("Administrator",)),), "audit": (("/", ("PVEAuditor",)),)}.get(role, ())
        return Principal(userid, role, tokenid, privsep, self.access, extra)

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
            return self.principal(account.userid)
        if self.verify_ticket(password) == account.userid:
            return self.principal(account.userid)
        raise AuthError("authentication failure")

    def authenticate(self, headers, cookies, method):
        """Return the Principal for a request, or None when it carries no credentials.

        Raises AuthError for credentials that are present but invalid, and for a write made
        with a ticket but without a valid CSRF token.
        """
        authorization = headers.get("Authorization") or headers.get("authorization")
        if authorization and authorization.startswith("PVEAPIToken="):
            full, sep, secret = authorization[len("PVEAPIToken="):].partition("=")
            userid, bang, tokenname = full.rpartition("!")
            if not sep or not bang:
                raise AuthError("invalid token value!")
            account = self.accounts.get(userid)
            if account is not None and tokenname in account.tokens:
                if not hmac.compare_digest(account.tokens[tokenname].encode(), secret.strip().encode()):
                    raise AuthError("invalid token value!")
                return self.principal(userid, tokenname)
            access = self.access
            if not access.token_matches(userid, tokenname, secret.strip()):
                raise AuthError("invalid token value!")
            user = access.users.get(userid) or {}
            if not user.get("enable", 1):  # PVE's check_token_exist + check_user_enabled
                raise AuthError("user account disabled or expired.")
            return self.principal(userid, tokenname, bool(access.token(userid, tokenname).get("privsep", 1)))
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
        return self.principal(userid)


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
    A ``check`` expression is evaluated as ``PVE::RPCEnvironment::check_api2_permissions`` does
    (pve-access-control src/PVE/RPCEnvironment.pm). Methods open to ``all`` users check inside
    their handler on PVE: reads filter what they return (the handlers here do the same), writes
    check the privilege their description names; a write whose description names none is refused
    to everyone but root@pam (stricter than PVE).
    """
    if not method.permissions and (principal.userid != ROOT or principal.tokenid):
        raise PermissionDenied(f"Permission check failed (user != {ROOT})")
    if principal.userid == ROOT and not principal.privsep:
        return
    check = method.permissions.get("check")
    if check:
        evaluate(check, principal, params)
        return
    if method.permissions.get("user") == "world" or method.method == "GET":
        return
    found = _described_perm(method.permissions.get("description"))
    if found is None:
        raise PermissionDenied("Permission check failed")
    path, privileges = found
    evaluate(["perm", path, privileges], principal, params)
