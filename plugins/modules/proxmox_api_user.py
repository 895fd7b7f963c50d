#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxmox_api_user
short_description: A Proxmox VE role, user and privilege-separated API token with ACLs on given paths
version_added: 0.2.0
description:
  - Makes the least-privilege identity of an automation, a custom role holding exactly
    O(privileges), a user O(userid) of the C(pve) or C(pam) realm, its API token O(token), and
    for each of O(acls) one ACL entry giving the role on that path to the user AND to the token.
  - The token is privilege-separated (C(privsep)), so Proxmox VE gives it the privileges that the
    user's and the token's ACLs both grant, so both get the same entries.
  - Only the role's own ACL entries of this user and token are managed; entries of this role for
    the user or the token on paths not listed in O(acls) are removed. Other entries are left alone.
  - The token secret exists only in the answer to its creation. The module returns it once, in
    RV(token_secret), when it creates the token; it cannot be read back later. Register the
    result with C(no_log) and store the secret at once.
  - Needs a connection that may manage users and ACLs, normally C(root@pam) (the bootstrap).
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
    description: The custom role's id, for example V(AilabAutomation). A predefined role is refused.
    type: str
    required: true
  privileges:
    description: Exactly the privileges the role holds (order does not matter).
    type: list
    elements: str
    required: true
  token:
    description: The API token's name, for example V(ansible).
    type: str
    required: true
  acls:
    description: The paths where the user and the token get the role.
    type: list
    elements: dict
    required: true
    options:
      path:
        description: ACL path, for example V(/storage) or V(/).
        type: str
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
    privileges: [Sys.Audit, Datastore.Allocate, Datastore.Audit]
    token: ansible
    acls:
      - {path: /, propagate: false}
      - {path: /storage}
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
changes:
  description: What was written (or would be in check mode).
  returned: always
  type: list
  elements: str
  sample: ["create role AilabAutomation", "add ACL /storage for ailab@pve!ansible"]
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


def read_state(client, p, full):
    """The role's privileges, whether the user and the token exist, and the managed ACL entries."""
    roles = dict((r["roleid"], sorted(split_list(r.get("privs")))) for r in client.get("access/roles", what="the roles"))
    users = [u["userid"] for u in client.get("access/users", what="the users")]
    token = None
    if p["userid"] in users:
        tokens = client.get("access/users/%s/token" % p["userid"], what="the tokens of %s" % p["userid"])
        token = dict((t["tokenid"], t) for t in tokens).get(p["token"])
    acl = [e for e in client.get("access/acl", what="the ACL")
           if e.get("roleid") == p["role"] and e.get("ugid") in (p["userid"], full)]
    return dict(role=roles.get(p["role"]), user=p["userid"] in users, token=token, acl=acl)


def wanted_acl(p, full):
    wanted = {}
    for entry in p["acls"]:
        propagate = 1 if entry["propagate"] else 0
        wanted[(normalize_path(entry["path"]), "user", p["userid"])] = propagate
        wanted[(normalize_path(entry["path"]), "token", full)] = propagate
    return wanted


def main():
    spec = proxmox_argument_spec(
        userid=dict(type="str", required=True),
        comment=dict(type="str"),
        role=dict(type="str", required=True),
        privileges=dict(type="list", elements="str", required=True),
        token=dict(type="str", required=True, no_log=False),
        acls=dict(type="list", elements="dict", required=True, options=dict(
            path=dict(type="str", required=True),
            propagate=dict(type="bool", default=True))),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **proxmox_module_kwargs())
    p = module.params
    if "@" not in p["userid"] or "!" in p["userid"]:
        module.fail_json(msg="userid %s is not a user id: write it as name@realm, for example ailab@pve" % p["userid"])
    if not re.match(r"^[A-Za-z][A-Za-z0-9._-]+$", p["token"]):
        module.fail_json(msg="token %s is not a token name: at least two letters, digits, '.', '_' or '-', "
                             "starting with a letter, for example ansible" % p["token"])
    if p["role"] in PREDEFINED:
        module.fail_json(msg="role %s is predefined by Proxmox VE and cannot hold chosen privileges: name a role "
                             "of your own, for example AilabAutomation" % p["role"])
    if not p["privileges"] or not p["acls"]:
        module.fail_json(msg="privileges and acls must not be empty: the token would be allowed nothing")
    full = "%s!%s" % (p["userid"], p["token"])
    privileges = sorted(set(p["privileges"]))
    client = ProxmoxClient.from_module(module)
    try:
        before = read_state(client, p, full)
    except ProxmoxError as exc:
        module.fail_json(msg=exc.msg, status=exc.status)

    changes, writes = [], []
    if before["role"] is None:
        changes.append("create role %s" % p["role"])
        writes.append(("post", "access/roles", dict(roleid=p["role"], privs=",".join(privileges))))
    elif before["role"] != privileges:
        changes.append("set the privileges of role %s" % p["role"])
        writes.append(("put", "access/roles/%s" % p["role"], dict(privs=",".join(privileges))))
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
    wanted = wanted_acl(p, full)
    current = dict(((e["path"], e["type"], e["ugid"]), int(e.get("propagate", 1))) for e in before["acl"])
    for (path, kind, ugid), propagate in sorted(wanted.items()):
        if current.get((path, kind, ugid)) != propagate:
            changes.append("add ACL %s for %s" % (path, ugid))
            writes.append(("put", "access/acl", dict(path=path, roles=p["role"], propagate=propagate,
                                                     **{kind + "s": ugid})))
    for (path, kind, ugid) in sorted(set(current) - set(wanted)):
        changes.append("remove ACL %s for %s" % (path, ugid))
        writes.append(("put", "access/acl", dict(path=path, roles=p["role"], delete=1, **{kind + "s": ugid})))

    result = dict(changed=bool(changes), changes=changes, token_id=full)
    if module._diff:
        result["diff"] = dict(
            before=dict(role=before["role"], user=before["user"], token=before["token"] is not None,
                        acl=sorted("%s %s %s" % k for k in current)),
            after=dict(role=privileges, user=True, token=True, acl=sorted("%s %s %s" % k for k in wanted)))
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
