"""``/access``: login (ticket + CSRF token), roles, users, API tokens, ACLs and permissions.

The access endpoints follow pve-access-control src/PVE/API2/{Role,User,ACL,AccessControl}.pm;
their privilege checks come from the schema (auth.authorize), the list filters are here.
"""

from ..acl import ROOT, can, check_acl_path, normalize_path
from ..auth import new_secret
from ..errors import ApiError, NotModelled
from ..formats import split_list
from . import route

REALMS = ("pam", "pve")


@route("GET", "/access/ticket")
def login_form(call):
    """PVE's dummy GET (exists for login pages); answers null."""
    return None


@route("POST", "/access/ticket")
def create_ticket(call):
    """Log in with ``username`` + ``password`` (or a valid ticket as password)."""
    if call.get("path") or call.get("tfa-challenge"):
        raise NotModelled("POST", "/access/ticket (path/privs or TFA)")
    principal = call.app.auth.login(call.get("username"), call.get("password"), call.get("realm"))
    ticket, csrf = call.app.auth.issue(principal.userid)
    call.principal = principal
    answer = {
        "username": principal.userid,
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "cap": {
            "vms": {"VM.Audit": 1, **({"VM.Allocate": 1, "VM.PowerMgmt": 1} if principal.role == "admin" else {})},
            "storage": {"Datastore.Audit": 1, **({"Datastore.Allocate": 1} if principal.role == "admin" else {})},
            "nodes": {"Sys.Audit": 1, **({"Sys.Modify": 1, "Sys.Console": 1} if principal.role == "admin" else {})},
        },
    }
    if call.state.cluster_name:  # a standalone node has no cluster name to report
        answer["clustername"] = call.state.cluster_name
    return answer


# ------------------------------------------------------------------------------ roles
@route("GET", "/access/roles")
def list_roles(call):
    """Every role with its privileges as a comma list; predefined ones carry ``special: 1``."""
    access = call.state.access
    return [{"roleid": roleid, "privs": ",".join(privs), "special": int(roleid not in access.roles)}
            for roleid, privs in sorted(access.all_roles().items())]


@route("GET", "/access/roles/{roleid}")
def read_role(call):
    """``{privilege: 1}`` of one role."""
    roles = call.state.access.all_roles()
    roleid = call.get("roleid")
    if roleid not in roles:
        raise ApiError(f"role '{roleid}' does not exist", status=400)
    return {priv: 1 for priv in roles[roleid]}


@route("POST", "/access/roles")
def create_role(call):
    """Role.pm create_role: a new custom role; a taken id (predefined ones included) is refused."""
    access = call.state.access
    roleid = call.get("roleid")
    if roleid in access.all_roles():
        raise ApiError(f"create role failed: role '{roleid}' already exists")
    access.roles[roleid] = access.check_privileges(split_list(call.get("privs")))


@route("PUT", "/access/roles/{roleid}")
def update_role(call):
    """Role.pm update_role: replace the privileges (or add them with ``append``); predefined roles are fixed."""
    access = call.state.access
    roleid = call.get("roleid")
    if roleid not in access.roles:
        if roleid in access.all_roles():
            raise ApiError(f"update role failed: cannot modify predefined role '{roleid}'")
        raise ApiError(f"update role failed: role '{roleid}' does not exist")
    privs = access.check_privileges(split_list(call.get("privs")))
    if call.get("append"):
        privs = sorted(set(access.roles[roleid]) | set(privs))
    access.roles[roleid] = privs


@route("DELETE", "/access/roles/{roleid}")
def delete_role(call):
    """Role.pm delete_role: also drops the role's ACL entries."""
    access = call.state.access
    roleid = call.get("roleid")
    if roleid not in access.roles:
        raise ApiError(f"delete role failed: role '{roleid}' does not exist")
    del access.roles[roleid]
    access.acl = [e for e in access.acl if e["roleid"] != roleid]


# ------------------------------------------------------------------------------ users
def _user_entry(call, userid, full=False):
    account = call.app.auth.accounts.get(userid)
    user = call.state.access.users.get(userid) or {}
    entry = {"userid": userid, "enable": int(user.get("enable", 1)), "expire": int(user.get("expire", 0))}
    for key in ("comment", "email", "firstname", "lastname"):
        if user.get(key):
            entry[key] = user[key]
    if full:
        tokens = user.get("tokens") or {}
        if account is not None:
            tokens = dict({name: {"privsep": 0} for name in account.tokens}, **tokens)
        entry["tokens"] = [dict(_token_info(info), tokenid=name) for name, info in sorted(tokens.items())]
    return entry


def _token_info(info):
    return {k: v for k, v in info.items() if k in ("privsep", "expire", "comment")}


def _known_users(call):
    return sorted(set(call.app.auth.accounts) | set(call.state.access.users) | {ROOT})


@route("GET", "/access/users")
def list_users(call):
    """User.pm index: the caller always; others with User.Modify or Sys.Audit on /access/groups."""
    see_all = can(call, "/access/groups", ["User.Modify", "Sys.Audit"], any_of=True)
    users = [u for u in _known_users(call) if see_all or u == call.principal.userid]
    entries = [_user_entry(call, u, full=bool(call.get("full"))) for u in users]
    if call.get("enabled") is not None:
        entries = [e for e in entries if e["enable"] == int(call.get("enabled"))]
    return entries


def _require_user(call, userid, action):
    if userid not in _known_users(call):
        raise ApiError(f"{action}: no such user ('{userid}')")


@route("GET", "/access/users/{userid}")
def read_user(call):
    """One user with its tokens (``{name: info}``)."""
    userid = call.get("userid")
    _require_user(call, userid, "get user failed")
    entry = _user_entry(call, userid, full=True)
    entry.pop("userid")
    entry["tokens"] = {t.pop("tokenid"): t for t in entry["tokens"]}
    return entry


@route("POST", "/access/users")
def create_user(call):
    """User.pm create_user: a user of the ``pam`` or ``pve`` realm; passwords are not modelled."""
    userid = call.get("userid")
    realm = userid.rpartition("@")[2]
    if realm not in REALMS:
        raise ApiError(f"create user failed: domain '{realm}' does not exist")
    if userid in _known_users(call):
        raise ApiError(f"create user failed: user '{userid}' already exists")
    if call.get("password") is not None or call.get("groups") is not None:
        raise NotModelled("POST", "/access/users (password, groups)")
    user = {"enable": int(call.get("enable", 1)), "expire": int(call.get("expire", 0)), "tokens": {}}
    for key in ("comment", "email", "firstname", "lastname"):
        if call.get(key) is not None:
            user[key] = call.get(key)
    call.state.access.users[userid] = user


@route("PUT", "/access/users/{userid}")
def update_user(call):
    """User.pm update_user: comment, names, email, enable, expire."""
    userid = call.get("userid")
    user = call.state.access.users.get(userid)
    if user is None:
        _require_user(call, userid, "update user failed")
        raise NotModelled("PUT", "/access/users/{userid} (command-line accounts)")
    if call.get("groups") is not None or call.get("append") is not None:
        raise NotModelled("PUT", "/access/users/{userid} (groups)")
    for key in ("comment", "email", "firstname", "lastname", "enable", "expire"):
        if call.get(key) is not None:
            user[key] = int(call.get(key)) if key in ("enable", "expire") else call.get(key)


@route("DELETE", "/access/users/{userid}")
def delete_user(call):
    """User.pm delete_user: the user, its tokens and every ACL entry of both."""
    access = call.state.access
    userid = call.get("userid")
    if userid not in access.users:
        raise ApiError(f"delete user failed: no such user ('{userid}')")
    del access.users[userid]
    access.acl = [e for e in access.acl if e["ugid"] != userid and not e["ugid"].startswith(userid + "!")]


# ------------------------------------------------------------------------------ tokens
def _api_user(call, action):
    userid = call.get("userid")
    user = call.state.access.users.get(userid)
    if user is None:
        if userid in _known_users(call):
            raise NotModelled(call.method.method, call.method.template + " (tokens of command-line accounts)")
        raise ApiError(f"{action}: no such user ('{userid}')")
    return user


@route("GET", "/access/users/{userid}/token")
def list_tokens(call):
    """The user's tokens (without secrets)."""
    user = _api_user(call, "get tokens failed")
    return [dict(_token_info(info), tokenid=name) for name, info in sorted((user.get("tokens") or {}).items())]


@route("GET", "/access/users/{userid}/token/{tokenid}")
def read_token(call):
    """One token's info; an unknown token answers PVE's ``no such token``."""
    user = _api_user(call, "get token failed")
    info = (user.get("tokens") or {}).get(call.get("tokenid"))
    if info is None:
        raise ApiError(f"no such token '{call.get('tokenid')}' for user '{call.get('userid')}'")
    return _token_info(info)


@route("POST", "/access/users/{userid}/token/{tokenid}")
def create_token(call):
    """User.pm generate_token: the secret is in this answer and nowhere else, ever."""
    user = _api_user(call, "generating token failed")
    tokenid = call.get("tokenid")
    if tokenid in (user.get("tokens") or {}):
        raise ApiError("generating token failed: Token already exists.")
    info = {"privsep": int(call.get("privsep", 1)), "expire": int(call.get("expire", user.get("expire", 0)))}
    if call.get("comment") is not None:
        info["comment"] = call.get("comment")
    secret = new_secret()
    call.state.access.add_token(call.get("userid"), tokenid, secret, info)
    return {"full-tokenid": f"{call.get('userid')}!{tokenid}", "info": info, "value": secret}


@route("PUT", "/access/users/{userid}/token/{tokenid}")
def update_token(call):
    """User.pm update_token_info: comment, expire, privsep."""
    user = _api_user(call, "updating token failed")
    info = (user.get("tokens") or {}).get(call.get("tokenid"))
    if info is None:
        raise ApiError(f"no such token '{call.get('tokenid')}' for user '{call.get('userid')}'")
    for key in ("comment", "expire", "privsep"):
        if call.get(key) is not None:
            info[key] = call.get(key) if key == "comment" else int(call.get(key))
    return _token_info(info)


@route("DELETE", "/access/users/{userid}/token/{tokenid}")
def delete_token(call):
    """User.pm remove_token: the token and its ACL entries."""
    user = _api_user(call, "deleting token failed")
    tokenid = call.get("tokenid")
    if tokenid not in (user.get("tokens") or {}):
        raise ApiError(f"no such token '{tokenid}' for user '{call.get('userid')}'")
    del user["tokens"][tokenid]
    full = f"{call.get('userid')}!{tokenid}"
    call.state.access.acl = [e for e in call.state.access.acl if e["ugid"] != full]


# ------------------------------------------------------------------------------ ACL
@route("GET", "/access/acl")
def read_acl(call):
    """ACL.pm read_acl: only entries on paths where the caller holds Permissions.Modify."""
    return [dict(e) for e in sorted(call.state.access.acl, key=lambda e: (e["path"], e["type"], e["ugid"], e["roleid"]))
            if can(call, e["path"], ["Permissions.Modify"])]


@route("PUT", "/access/acl")
def update_acl(call):
    """ACL.pm update_acl: add (or with ``delete`` remove) roles for users, groups and tokens on a path."""
    access = call.state.access
    path = check_acl_path(call.get("path"))
    roles = split_list(call.get("roles"))
    known_roles = access.all_roles()
    subjects = ([("user", u) for u in split_list(call.get("users"))]
                + [("group", g) for g in split_list(call.get("groups"))]
                + [("token", t) for t in split_list(call.get("tokens"))])
    if not subjects:
        raise ApiError("ACL update failed: no user, group or token given", status=400)
    for role in roles:
        if role not in known_roles:
            raise ApiError(f"ACL update failed: role '{role}' does not exist")
    for kind, ugid in subjects:
        if kind == "user" and ugid not in _known_users(call):
            raise ApiError(f"ACL update failed: user '{ugid}' does not exist")
        if kind == "group" and ugid not in access.groups:
            raise ApiError(f"ACL update failed: group '{ugid}' does not exist")
        if kind == "token":
            userid, _bang, name = ugid.rpartition("!")
            if access.token(userid, name) is None:
                raise ApiError(f"ACL update failed: no such token '{name}' for user '{userid}'")
    propagate = int(call.get("propagate", 1))
    for kind, ugid in subjects:
        for role in roles:
            access.acl = [e for e in access.acl if (e["path"], e["type"], e["ugid"], e["roleid"]) != (path, kind, ugid, role)]
            if not call.get("delete"):
                access.acl.append({"path": path, "type": kind, "ugid": ugid, "roleid": role, "propagate": propagate})


# ------------------------------------------------------------------------------ permissions
@route("GET", "/access/permissions")
def read_permissions(call):
    """AccessControl.pm permissions: ``{path: {privilege: 1}}`` of the caller (or, with Sys.Audit on
    /access, of another user or token); for every ACL path, or only ``path``."""
    principal = call.principal
    target = call.get("userid")
    if target and target != principal.name:
        owner = target.rpartition("!")[0] if "!" in target else target
        if owner != principal.userid and not can(call, "/access", ["Sys.Audit"]):
            raise ApiError("Permission check failed (/access, Sys.Audit)", status=403)
        userid, bang, tokenid = target.rpartition("!") if "!" in target else (target, "", None)
        token = call.state.access.token(userid, tokenid) if tokenid else None
        if tokenid and token is None:
            raise ApiError(f"no such token '{tokenid}' for user '{userid}'", status=400)
        principal = call.app.auth.principal(userid, tokenid, bool(token and token.get("privsep", 1)))
    paths = [normalize_path(call.get("path"))] if call.get("path") else call.state.access.acl_paths()
    return {path: {priv: 1 for priv in sorted(principal.privileges(path))} for path in paths}


# ------------------------------------------------------------------------------ list filters
# Lists open to every user ("user: all") answer only what the caller may see: an item without the
# privilege is simply absent, a node without Sys.Audit shows no usage. The filters wrap the list
# handlers of the other endpoint modules here, in one place, each naming the PVE code it models.
_NODE_STATS = ("maxcpu", "cpu", "maxmem", "mem", "maxdisk", "disk", "uptime")


def _node_entry(call, entry):
    # PVE::API2Tools::extract_node_stats($node, ..., !$can_audit): a node is listed, its usage only with Sys.Audit
    if can(call, f"/nodes/{entry['node']}", ["Sys.Audit"]):
        return entry
    return {k: v for k, v in entry.items() if k not in _NODE_STATS}


def _storage_visible(call, storage_id):
    return can(call, f"/storage/{storage_id}", ["Datastore.Audit", "Datastore.AllocateSpace"], any_of=True)


def _resource(call, entry):
    # pve-manager PVE/API2/Cluster.pm resources(): guests need VM.Audit on /vms/<vmid>, storages
    # Datastore.Audit or Datastore.AllocateSpace on /storage/<id>; nodes are always listed
    kind = entry.get("type")
    if kind in ("qemu", "lxc"):
        return entry if can(call, f"/vms/{entry['vmid']}", ["VM.Audit"]) else None
    if kind == "storage":
        return entry if _storage_visible(call, entry["storage"]) else None
    if kind == "node":
        return _node_entry(call, entry)
    return entry if can(call, "/", ["Sys.Audit"]) else None


_FILTERS = {
    "/cluster/resources": _resource,
    # pve-manager PVE/API2/Nodes.pm index(): every node, usage only with Sys.Audit
    "/nodes": _node_entry,
    # pve-storage src/PVE/API2/Storage/Config.pm index(): Datastore.Audit or Datastore.AllocateSpace
    "/storage": lambda call, e: e if _storage_visible(call, e["storage"]) else None,
    # pve-storage src/PVE/API2/Storage/Status.pm index(): the same privileges per storage
    "/nodes/{node}/storage": lambda call, e: e if _storage_visible(call, e["storage"]) else None,
    # pve-manager PVE/API2/Cluster/Mapping/PCI.pm index(): Mapping.Modify, Mapping.Use or Mapping.Audit
    "/cluster/mapping/pci": lambda call, e: e if can(call, f"/mapping/pci/{e['id']}",
                                                     ["Mapping.Modify", "Mapping.Use", "Mapping.Audit"],
                                                     any_of=True) else None,
}


def _filtered(handler, keep):
    def filtered(call):
        entries = handler(call)
        if call.principal is None or (call.principal.userid == ROOT and not call.principal.privsep):
            return entries
        return [e for e in (keep(call, entry) for entry in entries) if e is not None]

    filtered.__doc__ = handler.__doc__
    filtered.unfiltered = handler
    return filtered


def _install_filters():
    from . import ROUTES, cluster, mapping, nodes, storage  # noqa: F401,PLC0415 - their routes must exist first

    for template, keep in _FILTERS.items():
        handler = ROUTES[("GET", template)]
        if not hasattr(handler, "unfiltered"):
            ROUTES[("GET", template)] = _filtered(handler, keep)


_install_filters()
