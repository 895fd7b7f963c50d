"""Users, roles, ACLs and API tokens: who may do what on which path, as pve-access-control decides it.

The access configuration (``user.cfg`` and ``priv/token.cfg`` on a real cluster) is part of the
cluster state (``state.access``, persisted with it): users made through the API, custom roles,
ACL entries and the API tokens of those users (their secrets only as a SHA-256 digest).

Rules modelled, each from pve-access-control:

- privileges of a path: ``PVE::AccessControl::roles()`` (src/PVE/AccessControl.pm) walks the path
  from ``/`` down; at each level the ACL entries of the user (or, when there are none, of its
  groups) REPLACE what the levels above gave, an entry applies below its own path only with
  ``propagate``; ``NoAccess`` wins over every other role at the same level.
- a token (``user@realm!name``) only ever sees its own ACL entries (no groups); with ``privsep``
  its privileges are the intersection of the user's and the token's
  (``PVE::RPCEnvironment::permissions()``, src/PVE/RPCEnvironment.pm); without, the user's.
- ``root@pam`` holds every privilege everywhere (``permissions()``: ``return $cfg->{roles}->{'Administrator'}``
  for ``root@pam``); a privilege-separated root@pam token does not.
- the ``check`` expressions of the API schema (``perm``, ``and``, ``or``, ``userid-param``,
  ``userid-group``, ``perm-modify``): ``PVE::RPCEnvironment::check_api2_permissions()``.

Not modelled: groups' own API (groups can only come from the seed), pools, realms other than
``pam`` and ``pve`` (passwords of API-made users: they cannot log in with a ticket), two-factor
authentication, token and user expiry dates (stored, never enforced: stricter would refuse nothing
the collection does).
"""

import copy
import hashlib
import hmac
import re

from .errors import ApiError, PermissionDenied

ROOT = "root@pam"

# PVE 8's privileges (pve-access-control src/PVE/AccessControl.pm, $privgroups); PVE 9 drops
# VM.Monitor and adds the VM.GuestAgent.* and VM.Replicate privileges.
_COMMON_PRIVILEGES = (
    "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
    "Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify",
    "Pool.Allocate", "Pool.Audit", "Realm.Allocate", "Realm.AllocateUser", "SDN.Allocate", "SDN.Audit",
    "SDN.Use", "Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify",
    "Sys.PowerMgmt", "Sys.Syslog", "User.Modify", "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone",
    "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType",
    "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.Console", "VM.Migrate",
    "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback",
)
PRIVILEGES = {
    8: frozenset(_COMMON_PRIVILEGES + ("VM.Monitor",)),
    9: frozenset(_COMMON_PRIVILEGES + ("VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite",
                                       "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.Unrestricted", "VM.Replicate")),
}


def builtin_roles(major):
    """PVE's predefined roles (``$special_roles`` and ``$builtin_roles`` in AccessControl.pm), a subset."""
    privileges = PRIVILEGES[major]
    audit = sorted(p for p in privileges if p.endswith(".Audit") or p in ("Sys.Syslog", "VM.GuestAgent.Audit"))
    return {
        "Administrator": sorted(privileges),
        "NoAccess": [],
        "PVEAuditor": audit,
        "PVEDatastoreAdmin": ["Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate",
                              "Datastore.Audit"],
        "PVEDatastoreUser": ["Datastore.AllocateSpace", "Datastore.Audit"],
        "PVEMappingAdmin": ["Mapping.Audit", "Mapping.Modify", "Mapping.Use"],
        "PVEMappingUser": ["Mapping.Audit", "Mapping.Use"],
        "PVEVMAdmin": sorted(p for p in privileges if p.startswith("VM.")),
        "PVEUserAdmin": ["Group.Allocate", "Realm.AllocateUser", "User.Modify"],
    }


def split_path(path):
    """``/storage/nas`` -> ``["/", "/storage", "/storage/nas"]`` (every level, root first)."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def normalize_path(path):
    """PVE's ``normalize_path``: one leading slash, no trailing or double slashes."""
    return "/" + "/".join(p for p in str(path).split("/") if p)


_ACL_PATH = re.compile(r"^/(?:(?:access|access/groups(?:/[^/]+)?|access/realm(?:/[^/]+)?|nodes(?:/[^/]+)?|"
                       r"vms(?:/\d+)?|storage(?:/[^/]+)?|pool(?:/.+)?|sdn(?:/.+)?|mapping(?:/(?:pci|usb|dir)"
                       r"(?:/[^/]+)?)?))?$")


def check_acl_path(path):
    """PVE's ``check_path`` (AccessControl.pm): only the documented ACL paths are accepted."""
    path = normalize_path(path)
    if not _ACL_PATH.match(path):
        raise ApiError(f"invalid ACL path '{path}'", status=400)
    return path


def _digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


class AccessConfig:
    """Users (with their tokens), custom roles and ACL entries of one cluster."""

    def __init__(self, major, data=None):
        self.major = major
        data = copy.deepcopy(data or {})
        self.users = data.get("users") or {}
        self.roles = data.get("roles") or {}
        self.groups = data.get("groups") or {}
        self.acl = data.get("acl") or []

    def dump(self):
        """A JSON-able copy (part of ``ClusterState.dump``)."""
        return copy.deepcopy({"users": self.users, "roles": self.roles, "groups": self.groups, "acl": self.acl})

    # --------------------------------------------------------------- roles
    def all_roles(self):
        """Every role, predefined and custom: ``roleid -> sorted privileges``."""
        roles = builtin_roles(self.major)
        roles.update({k: sorted(v) for k, v in self.roles.items()})
        return roles

    def check_privileges(self, privs):
        """PVE's ``verify_privname``: an unknown privilege is refused."""
        known = PRIVILEGES[self.major]
        for priv in privs:
            if priv not in known:
                raise ApiError(f"invalid privilege '{priv}'", status=400)
        return sorted(set(privs))

    # --------------------------------------------------------------- tokens
    def token(self, userid, tokenid):
        """The token entry or None."""
        return ((self.users.get(userid) or {}).get("tokens") or {}).get(tokenid)

    def token_matches(self, userid, tokenid, secret):
        """True when ``secret`` is the value of that token."""
        token = self.token(userid, tokenid)
        return token is not None and hmac.compare_digest(token["digest"], _digest(secret))

    def add_token(self, userid, tokenid, secret, info):
        """Store a new token (only a digest of its secret)."""
        self.users[userid].setdefault("tokens", {})[tokenid] = dict(info, digest=_digest(secret))

    # ----------------------------------------------------------- evaluation
    def _roles(self, ugid, kind, path, groups=()):
        """``PVE::AccessControl::roles()``: the roles of a user or token on ``path``."""
        roles = {}
        for level in split_path(path):
            final = level == path
            here = [e for e in self.acl if e["path"] == level]
            mine = {e["roleid"]: e["propagate"] for e in here if e["type"] == kind and e["ugid"] == ugid
                    and (final or e["propagate"])}
            if mine:
                roles = mine
                continue
            if kind == "token":
                continue
            theirs = {e["roleid"]: e["propagate"] for e in here if e["type"] == "group" and e["ugid"] in groups
                      and (final or e["propagate"])}
            if theirs:
                roles = theirs
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        return roles

    def _privileges(self, roles):
        defined = self.all_roles()
        return {priv for roleid in roles for priv in defined.get(roleid, ())}

    def user_privileges(self, userid, path, extra_roles=None):
        """The privileges ``userid`` holds on ``path``; ``extra_roles`` maps a path to roles given outside
        the ACL (the simulator's built-in read-only account)."""
        path = normalize_path(path)
        if userid == ROOT:
            return set(PRIVILEGES[self.major])
        user = self.users.get(userid) or {}
        if user and not user.get("enable", 1):
            return set()
        groups = [g for g, members in self.groups.items() if userid in (members or [])]
        roles = self._roles(userid, "user", path, groups)
        for base, extra in (extra_roles or {}).items():
            if not roles and (path == base or path.startswith(base.rstrip("/") + "/")):
                roles = {role: 1 for role in extra}
        return self._privileges(roles)

    def permissions(self, principal, path, extra_roles=None):
        """The privileges of a principal (user or token) on ``path``, as PVE computes them."""
        path = normalize_path(path)
        user = self.user_privileges(principal.userid, path, extra_roles)
        if not principal.tokenid or not principal.privsep:
            return user
        token = self._privileges(self._roles(principal.name, "token", path))
        return user & token

    def acl_paths(self):
        """Every path with an ACL entry, plus ``/`` (what ``GET /access/permissions`` reports)."""
        return sorted({"/"} | {e["path"] for e in self.acl})


def can(call, path, privileges, any_of=False):
    """True when the caller holds ``privileges`` (all, or one of them with ``any_of``) on ``path``."""
    held = call.principal.privileges(path)
    return any(p in held for p in privileges) if any_of else all(p in held for p in privileges)


def version_privilege(privilege, major):
    """The schema is PVE 9's: PVE 8 checks VM.Monitor where PVE 9 names a VM.GuestAgent.* privilege
    (pve-access-control 9.0 split VM.Monitor; qemu-server's agent endpoints changed with it)."""
    return "VM.Monitor" if major < 9 and privilege.startswith("VM.GuestAgent.") else privilege


def _substitute(path, params):
    for key, value in params.items():
        path = path.replace("{" + key + "}", str(value))
    return normalize_path(path)


def evaluate(check, principal, params):
    """Evaluate a schema ``check`` expression; raise PermissionDenied naming what is missing.

    ``PVE::RPCEnvironment::check_api2_permissions()``; unknown expressions are refused (stricter).
    """
    kind = check[0]
    if kind == "perm":
        path = _substitute(check[1], params)
        major = principal.access.major if principal.access is not None else 9
        privileges = list(dict.fromkeys(version_privilege(p, major) for p in check[2]))
        options = dict(zip(check[3::2], check[4::2]))
        held = principal.privileges(path)
        if options.get("any"):
            if not any(p in held for p in privileges):
                raise PermissionDenied(f"Permission check failed ({path}, {' | '.join(privileges)})")
            return
        for priv in privileges:
            if priv not in held:
                raise PermissionDenied(f"Permission check failed ({path}, {priv})")
        return
    if kind == "and":
        for item in check[1:]:
            evaluate(item, principal, params)
        return
    if kind == "or":
        failures = []
        for item in check[1:]:
            try:
                evaluate(item, principal, params)
                return
            except PermissionDenied as exc:
                failures.append(exc)
        raise failures[-1] if failures else PermissionDenied("Permission check failed")
    if kind == "userid-param":
        userid = str(params.get("userid", ""))
        if check[1] == "self":
            if userid != principal.userid:
                raise PermissionDenied("Permission check failed (user != userid)")
            return
        realm = userid.rpartition("@")[2]
        evaluate(["perm", f"/access/realm/{realm}", [check[1]]], principal, params)
        return
    if kind == "userid-group":
        # check_user_group: any of the privileges on /access/groups (groups of the user: not modelled)
        evaluate(["perm", "/access/groups", list(check[1]), "any", 1], principal, params)
        return
    if kind == "perm-modify":
        # check_perm_modify: Permissions.Modify on the path (PVE also accepts some narrower privileges
        # on /vms, /storage and /pool paths: not modelled, stricter)
        evaluate(["perm", check[1], ["Permissions.Modify"]], principal, params)
        return
    raise PermissionDenied("Permission check failed")
