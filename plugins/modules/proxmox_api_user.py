#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_api_user
short_description: Proxmox VE roles, a user and a privilege-separated API token with ACLs per path
version_added: 0.1.0
description:
  - Makes the least-privilege identity of an automation, a user O(userid) of the C(pve) or C(pam)
    realm, its API token O(token), and for each entry of O(acls) a custom role holding exactly that
    entry's privileges, given on that path to the user AND to the token.
  - One role per path (V(<role>-<path>), for example V(AilabAutomation-storage) for C(/storage) and
    V(AilabAutomation-root) for C(/)), so that a privilege needed on one path is not granted on
    the others (C(Sys.Console) for HA on C(/) must not become a node shell on C(/nodes)).
  - The token is privilege-separated (C(privsep)), so Proxmox VE gives it the privileges that the
    user's and the token's ACLs both grant; both get the same entries.
  - Roles named V(<role>-*) belong to this module; one no longer in O(acls) is removed with its ACL
    entries. ACL entries of those roles for this user or token on other paths are removed. Other
    roles and entries are left alone.
  - The token secret exists only in the answer to its creation. The module returns it once, in
    RV(token_secret), when it creates the token; it cannot be read back later. Register the
    result with C(no_log) and store the secret at once.
  - Needs a connection that may manage users, roles and ACLs, normally C(root@pam) (the bootstrap).
author:
  - ailab.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ailab.cluster.proxmox
  - ailab.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  userid:
    description: The user, C(name@realm) with realm C(pve) or C(pam), for example V(ailab@pve).
    type: str
    required: true
  comment:
    description: Comment of the user and the token (set when they are created).
    type: str
  role:
    description:
      - Prefix of the custom roles, for example V(AilabAutomation); each ACL path gets the role
        V(<role>-<path>). A predefined role name is refused.
    type: str
    required: true
  token:
    description: The API token's name, for example V(ansible).
    type: str
    required: true
  acls:
    description: The paths where the user and the token get a role, each with that role's privileges.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: ACL path, for example V(/storage) or V(/).
        type: str
        required: true
      privileges:
        description: Exactly the privileges of the role on this path (order does not matter).
        type: list
        elements: str
        required: true
      propagate:
        description: Whether the role also applies below the path.
        type: bool
        default: true
"""

EXAMPLES = r"""
- name: The automation identity of the lab (run as root@pam once)
  ailab.cluster.proxmox_api_user:
    api_host: pve-1.lab.example
    api_user: root@pam
    api_password: "{{ vault_pve_root_password }}"
    ca_path: /etc/ailab/pve-root-ca.pem
    userid: ailab@pve
    role: AilabAutomation
    token: ansible
    acls:
      - {path: /, privileges: [Sys.Audit, Sys.Console], propagate: false}
      - {path: /storage, privileges: [Datastore.Allocate, Datastore.Audit]}
  register: __pve_identity
  no_log: true
"""

RETURN = r"""
token_id:
  description: The full token id, C(user@realm!name), as api_token_id takes it.
  returned: always
  type: str
  sample: ailab@pve!ansible
token_secret:
  description: The token secret. Only when this run created the token (never in check mode).
  returned: when the token was created
  type: str
  sample: 0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9
roles:
  description: The role of each ACL path.
  returned: always
  type: dict
  sample: {"/": AilabAutomation-root, "/storage": AilabAutomation-storage}
changes:
  description: What was written (or would be in check mode).
  returned: always
  type: list
  elements: str
  sample: ["create role AilabAutomation-storage", "add ACL /storage for ailab@pve!ansible"]
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    ProxmoxClient,
    ProxmoxError,
    proxmox_argument_spec,
    proxmox_module_kwargs,
    split_list,
)

PREDEFINED = ("Administrator", "NoAccess", "PVEAdmin", "PVEAuditor", "PVEDatastoreAdmin", "PVEDatastoreUser",
              "PVEMappingAdmin", "PVEMappingUser", "PVEPoolAdmin", "PVEPoolUser", "PVESDNAdmin", "PVESDNUser",
              "PVESysAdmin", "PVETemplateUser", "PVEUserAdmin", "PVEVMAdmin", "PVEVMUser")


def normalize_path(path):
    return "/" + "/".join(p for p in path.split("/") if p)


def role_for(prefix, path):
    """``AilabAutomation`` + ``/mapping/pci`` -> ``AilabAutomation-mapping-pci``; ``/`` -> ``...-root``."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", path).strip("-")
    return "%s-%s" % (prefix, slug or "root")


def read_state(client, p, full):
    """The module's roles with their privileges, whether the user and the token exist, its ACL entries."""
    mine = p["role"] + "-"
    roles = dict((r["roleid"], sorted(split_list(r.get("privs")))) for r in client.get("access/roles", what="the roles")
                 if r["roleid"].startswith(mine))
    users = [u["userid"] for u in client.get("access/users", what="the users")]
    token = None
    if p["userid"] in users:
        tokens = client.get("access/users/%s/token" % p["userid"], what="the tokens of %s" % p["userid"])
        token = dict((t["tokenid"], t) for t in tokens).get(p["token"])
    acl = [e for e in client.get("access/acl", what="the ACL")
           if e.get("roleid", "").startswith(mine) and e.get("ugid") in (p["userid"], full)]
    return dict(roles=roles, user=p["userid"] in users, token=token, acl=acl)


def plan(p, full, before):
    """``(changes, writes, wanted roles, wanted ACL)``: what to write, in order."""
    roles, acl = {}, {}
    for entry in p["acls"]:
        path = normalize_path(entry["path"])
        role = role_for(p["role"], path)
        roles[role] = sorted(set(entry["privileges"]))
        for kind, ugid in (("token", full), ("user", p["userid"])):
            acl[(path, kind, ugid, role)] = 1 if entry["propagate"] else 0
    changes, writes = [], []
    for role, privileges in sorted(roles.items()):
        if role not in before["roles"]:
            changes.append("create role %s" % role)
            writes.append(("post", "access/roles", dict(roleid=role, privs=",".join(privileges))))
        elif before["roles"][role] != privileges:
            changes.append("set the privileges of role %s" % role)
            writes.append(("put", "access/roles/%s" % role, dict(privs=",".join(privileges))))
    if not before["user"]:
        changes.append("create user %s" % p["userid"])
        writes.append(("post", "access/users", dict(userid=p["userid"], comment=p["comment"])))
    if before["token"] is None:
        changes.append("create token %s" % full)
        writes.append(("token", "access/users/%s/token/%s" % (p["userid"], p["token"]),
                       dict(privsep=1, comment=p["comment"])))
    elif not int(before["token"].get("privsep", 1)):
        changes.append("privilege-separate token %s" % full)
        writes.append(("put", "access/users/%s/token/%s" % (p["userid"], p["token"]), dict(privsep=1)))
    current = dict(((e["path"], e["type"], e["ugid"], e["roleid"]), int(e.get("propagate", 1))) for e in before["acl"])
    for (path, kind, ugid, role), propagate in sorted(acl.items()):
        if current.get((path, kind, ugid, role)) != propagate:
            changes.append("add ACL %s for %s" % (path, ugid))
            writes.append(("put", "access/acl", dict(path=path, roles=role, propagate=propagate, **{kind + "s": ugid})))
    stale_roles = sorted(set(before["roles"]) - set(roles))
    for (path, kind, ugid, role) in sorted(set(current) - set(acl)):
        if role not in stale_roles:  # removing a role removes its entries
            changes.append("remove ACL %s for %s" % (path, ugid))
            writes.append(("put", "access/acl", dict(path=path, roles=role, delete=1, **{kind + "s": ugid})))
    for role in stale_roles:
        changes.append("remove role %s" % role)
        writes.append(("delete", "access/roles/%s" % role, {}))
    return changes, writes, roles, acl


def main():
    spec = proxmox_argument_spec(
        userid=dict(type="str", required=True),
        comment=dict(type="str"),
        role=dict(type="str", required=True),
        token=dict(type="str", required=True, no_log=False),
        acls=dict(type="list", elements="dict", required=True, options=dict(
            path=dict(type="str", required=True),
            privileges=dict(type="list", elements="str", required=True),
            propagate=dict(type="bool", default=True))),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **proxmox_module_kwargs())
    p = module.params
    if "@" not in p["userid"] or "!" in p["userid"]:
        module.fail_json(msg="userid %s is not a user id: write it as name@realm, for example ailab@pve" % p["userid"])
    if not re.match(r"^[A-Za-z][A-Za-z0-9._-]+$", p["token"]):
        module.fail_json(msg="token %s is not a token name: at least two letters, digits, '.', '_' or '-', "
                             "starting with a letter, for example ansible" % p["token"])
    if p["role"] in PREDEFINED or p["role"].startswith("PVE") or not re.match(r"^[A-Za-z0-9._-]+$", p["role"]):
        module.fail_json(msg="role %s cannot prefix the module's roles: use letters, digits, '.', '_' and '-', not a "
                             "predefined Proxmox VE role name, for example AilabAutomation" % p["role"])
    if not p["acls"] or not all(entry["privileges"] for entry in p["acls"]):
        module.fail_json(msg="acls must not be empty and each entry needs privileges: the token would be allowed "
                             "nothing there")
    paths = [normalize_path(entry["path"]) for entry in p["acls"]]
    twice = sorted(set(path for path in paths if paths.count(path) > 1))
    if twice:
        module.fail_json(msg="acls lists %s more than once: merge the privileges of each path into one entry"
                         % ", ".join(twice))
    full = "%s!%s" % (p["userid"], p["token"])
    client = ProxmoxClient.from_module(module)
    try:
        before = read_state(client, p, full)
    except ProxmoxError as exc:
        module.fail_json(msg=exc.msg, status=exc.status)
    changes, writes, roles, acl = plan(p, full, before)

    result = dict(changed=bool(changes), changes=changes, token_id=full,
                  roles=dict((normalize_path(e["path"]), role_for(p["role"], normalize_path(e["path"])))
                             for e in p["acls"]))
    if module._diff:
        result["diff"] = dict(
            before=dict(roles=before["roles"], user=before["user"], token=before["token"] is not None,
                        acl=sorted("%s %s %s %s" % k for k in (
                            (e["path"], e["type"], e["ugid"], e["roleid"]) for e in before["acl"]))),
            after=dict(roles=roles, user=True, token=True, acl=sorted("%s %s %s %s" % k for k in acl)))
    if changes and not module.check_mode:
        for method, path, params in writes:
            try:
                if method == "token":
                    answer = client.post(path, what="creating token %s" % full, **params)
                    result["token_secret"] = answer["value"]
                else:
                    getattr(client, method)(path, what=path, **params)
            except ProxmoxError as exc:
                # a token made before the failure keeps its secret in this (no_log) result: its only copy
                module.fail_json(msg=exc.msg, status=exc.status, changes=changes,
                                 **dict((k, v) for k, v in result.items() if k == "token_secret"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
