#!/usr/bin/python
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kubeadm_token
short_description: Create and delete kubeadm bootstrap tokens and build the join command
version_added: 0.1.0
description:
  - Manages kubeadm bootstrap tokens through the Kubernetes API. A bootstrap token is a Secret
    C(bootstrap-token-<id>) of type C(bootstrap.kubernetes.io/token) in the C(kube-system) namespace;
    this module writes the same Secret as C(kubeadm token create), without running C(kubeadm) or a shell.
  - Computes the C(--discovery-token-ca-cert-hash) of the cluster CA certificate and, with
    O(api_server_endpoint), the whole C(kubeadm join) command.
  - With O(state=present) and no O(token), every run creates a fresh token by default, so a node
    always joins with a token made at join time and an expired token can never break a scale-out.
  - Every run returns the bootstrap tokens of the cluster, without their secrets, in RV(tokens);
    expired tokens that the token cleaner has not removed yet are listed with C(expired=true).
author:
  - ailab.cluster maintainers (!UNKNOWN)
options:
  state:
    description:
      - V(present) makes sure a token exists and returns it with the CA hash and the join command.
      - V(absent) deletes the token with the id given by O(token_id) or taken from O(token), whatever
        its secret. Deleting a token that does not exist is not a change.
    type: str
    choices: [present, absent]
    default: present
  token:
    description:
      - An explicit token C(<id>.<secret>) matching C([a-z0-9]{6}.[a-z0-9]{16}).
      - With O(state=present) the module is idempotent for this token. It creates the token if it is
        missing and updates its usages, groups, description or secret if they differ. An expiration
        that is still in the future is kept. Only an expired token, or a change between O(ttl=0) and a
        finite O(ttl), sets a new expiration.
      - If unset with O(state=present), the module generates a random token (see O(reuse)).
      - This is a C(no_log) option, so Ansible masks its value in every return value. RV(token) reads
        C(VALUE_SPECIFIED_IN_NO_LOG_PARAMETER) and RV(join_command) shows C(********) instead of the
        token. Build the join command from your own variable.
    type: str
  token_id:
    description:
      - The id, the part before the dot, of the token to delete with O(state=absent).
      - Not allowed with O(state=present); use O(token) to manage a token with a known value.
    type: str
  ttl:
    description:
      - How long a new token stays valid, as a kubeadm C(--ttl) duration such as V(30m), V(2h),
        V(1.5h) or V(24h0m0s) (units C(h), C(m), C(s)).
      - V(0) creates a token that never expires. Quote it in YAML (V("0")).
    type: str
    default: 1h
  usages:
    description:
      - What the token may be used for. C(kubeadm join) needs both. V(authentication) lets the kubelet
        authenticate to the API server and V(signing) lets it verify the C(cluster-info) ConfigMap.
    type: list
    elements: str
    choices: [authentication, signing]
    default: [authentication, signing]
  groups:
    description:
      - Extra groups the token authenticates as. Each must match
        C(^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$).
      - The default group is the one that kubeadm binds to kubelet bootstrap and CSR auto-approval.
    type: list
    elements: str
    default: ['system:bootstrappers:kubeadm:default-node-token']
  description:
    description:
      - A human readable description stored with the token, such as who created it and why.
      - Required with O(reuse=true), where it identifies the token to reuse.
    type: str
  reuse:
    description:
      - With O(state=present) and no O(token), return an existing token that has not expired and has
        the same O(description), O(usages) and O(groups), instead of creating one. If there are
        several, the one that expires last is used.
      - Defaults to V(false) on purpose. A reused token may expire between this task and
        C(kubeadm join), and an old token may be one that leaked. A fresh short-lived token per join
        avoids both, and the API server's token cleaner deletes it when it expires.
    type: bool
    default: false
  ca_cert_path:
    description:
      - Path, on the host that runs the module, to the cluster CA certificate (PEM) whose public key
        hash becomes RV(ca_cert_hash). Only read with O(state=present).
      - This is the Kubernetes cluster CA that joining nodes pin. Do not confuse it with O(ca_cert),
        which only verifies the TLS certificate of the API server this module talks to.
      - Set to an empty string to skip the hash, for example when the module does not run on a
        control-plane node. A path that cannot be read or parsed is an error and is never skipped
        silently.
    type: path
    default: /etc/kubernetes/pki/ca.crt
  api_server_endpoint:
    description:
      - The C(host:port) that joining nodes use to reach the API server, for example the control-plane
        endpoint V(k8s-api.lab.example:6443).
      - When set, the module returns RV(join_command). This needs the CA hash, so O(ca_cert_path) must not be empty.
    type: str
extends_documentation_fragment:
  - ailab.cluster.attributes
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    details:
      - In check mode a token that would be created is generated and returned but not stored.
  diff_mode:
    support: full
    details:
      - The diff shows the token without its secret. A replaced secret shows as C(token_secret=(replaced)).
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
  - cryptography (for O(ca_cert_path))
notes:
  - The connection options are those of the M(kubernetes.core.k8s) module and take the same
    C(K8S_AUTH_*) environment variables. On a kubeadm control-plane node use
    O(kubeconfig=/etc/kubernetes/admin.conf).
  - RV(token) and RV(join_command) contain the secret in clear text. Set C(no_log=true) on the task
    that registers them and on the task that uses them, as in the examples.
  - There is no read-only mode; RV(tokens) is returned by every run. Use O(state=absent) with the
    O(token_id) of a token you created to clean up after a join.
seealso:
  - name: kubeadm token
    description: The C(kubeadm token) command this module replaces.
    link: https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-token/
  - name: Authenticating with bootstrap tokens
    description: The Secret format and the C(auth-extra-groups) rules.
    link: https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/
"""

EXAMPLES = r"""
# In the kubeadm_worker role: a node that has not joined yet gets a fresh token made on the
# first control plane, joins with it, and the token is deleted. Joined nodes skip all three,
# so a second run changes nothing.
- name: Check whether the node has joined
  ansible.builtin.stat:
    path: /etc/kubernetes/kubelet.conf
  register: __kubeadm_worker_kubelet_conf

- name: Create a join token on the first control plane
  ailab.cluster.kubeadm_token:
    kubeconfig: /etc/kubernetes/admin.conf
    ttl: 30m
    description: "ailab.cluster join of {{ inventory_hostname }}"
  delegate_to: "{{ groups['kube_control_plane'][0] }}"
  register: __kubeadm_worker_token
  when: not __kubeadm_worker_kubelet_conf.stat.exists
  no_log: true  # the result holds the token in clear text

- name: Join the node to the cluster
  ansible.builtin.command:
    argv:
      - kubeadm
      - join
      - "{{ kubeadm_worker_control_plane_endpoint }}"
      - --token
      - "{{ __kubeadm_worker_token.token }}"
      - --discovery-token-ca-cert-hash
      - "{{ __kubeadm_worker_token.ca_cert_hash }}"
    creates: /etc/kubernetes/kubelet.conf
  when: not __kubeadm_worker_kubelet_conf.stat.exists
  no_log: true

- name: Delete the join token once the node has joined
  ailab.cluster.kubeadm_token:
    kubeconfig: /etc/kubernetes/admin.conf
    state: absent
    token_id: "{{ __kubeadm_worker_token.token_id }}"
  delegate_to: "{{ groups['kube_control_plane'][0] }}"
  when: not __kubeadm_worker_kubelet_conf.stat.exists

# Print a join command for nodes provisioned outside Ansible (cloud-init, PXE).
- name: Create a token valid for one day and a join command
  ailab.cluster.kubeadm_token:
    kubeconfig: /etc/kubernetes/admin.conf
    ttl: 24h
    description: PXE-installed GPU nodes
    api_server_endpoint: k8s-api.lab.example:6443
  register: __pxe_token
  no_log: true

- name: Write the join command for the PXE installer
  ansible.builtin.copy:
    content: "{{ __pxe_token.join_command }}\n"
    dest: /srv/pxe/kubeadm-join.sh
    mode: "0600"
  no_log: true

# Keep a fixed, well-known token, for example one from a vault; re-runs change nothing.
- name: Ensure the lab's break-glass token exists
  ailab.cluster.kubeadm_token:
    kubeconfig: /etc/kubernetes/admin.conf
    token: "{{ vault_kubeadm_breakglass_token }}"
    ttl: "0"
    description: break-glass join token, rotate yearly
    ca_cert_path: ""

# From the controller, with its own kubeconfig; state=absent never reads ca_cert_path.
- name: Remove an old token from the controller
  ailab.cluster.kubeadm_token:
    kubeconfig: "{{ playbook_dir }}/artifacts/admin.conf"
    context: kubernetes-admin@ailab
    state: absent
    token_id: abcdef
"""

RETURN = r"""
token:
  description:
    - The bootstrap token C(<id>.<secret>) to pass to C(kubeadm join --token).
    - In check mode, a token that would be created is returned but not stored.
    - With an explicit O(token), Ansible returns C(VALUE_SPECIFIED_IN_NO_LOG_PARAMETER) here instead,
      because O(token) is a C(no_log) option; use the value you passed.
  returned: when O(state=present)
  type: str
  sample: abcdef.0123456789abcdef
token_id:
  description: The id of the token, the part before the dot; also the suffix of its Secret name.
  returned: always
  type: str
  sample: abcdef
expires:
  description: When the token expires (RFC 3339, UTC), or V(null) for a token that never expires.
  returned: when O(state=present)
  type: str
  sample: "2025-06-01T12:30:00Z"
ca_cert_hash:
  description: The C(--discovery-token-ca-cert-hash), C(sha256:) and the hash of the cluster CA public key.
  returned: when O(state=present) and O(ca_cert_path) is not empty
  type: str
  sample: sha256:8f1c1b3f3d1c1e0b8c6f5f6a2d9c1c1f5e2f0b6a7d8e9f0a1b2c3d4e5f6a7b8c
join_command:
  description:
    - The complete C(kubeadm join) command. It contains the token in clear text, or C(********)
      when the token came from O(token).
  returned: when O(state=present) and O(api_server_endpoint) is set
  type: str
  sample: >-
    kubeadm join k8s-api.lab.example:6443 --token abcdef.0123456789abcdef
    --discovery-token-ca-cert-hash sha256:8f1c1b3f3d1c1e0b8c6f5f6a2d9c1c1f5e2f0b6a7d8e9f0a1b2c3d4e5f6a7b8c
tokens:
  description:
    - All bootstrap tokens in C(kube-system) after this run, sorted by id and without their secrets.
    - In check mode, the tokens as they would be.
  returned: always
  type: list
  elements: dict
  contains:
    token_id:
      description: The token id.
      type: str
      sample: abcdef
    description:
      description: The stored description, empty if none.
      type: str
      sample: ailab.cluster join of gpu-node-01
    usages:
      description: The usages of the token, sorted.
      type: list
      elements: str
      sample: [authentication, signing]
    groups:
      description: The extra groups of the token.
      type: list
      elements: str
      sample: ['system:bootstrappers:kubeadm:default-node-token']
    expires:
      description: The expiration (RFC 3339), or V(null) if the token never expires.
      type: str
      sample: "2025-06-01T12:30:00Z"
    expired:
      description: Whether the token has expired. The API server no longer accepts an expired token.
      type: bool
      sample: false
  sample:
    - token_id: abcdef
      description: ailab.cluster join of gpu-node-01
      usages: [authentication, signing]
      groups: ['system:bootstrappers:kubeadm:default-node-token']
      expires: "2025-06-01T12:30:00Z"
      expired: false
"""

import copy
import re

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.ailab.cluster.plugins.module_utils import _kubeadm as kubeadm
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

try:
    from kubernetes.dynamic.exceptions import DynamicApiError
    from urllib3.exceptions import HTTPError as TransportError
except ImportError:
    # AnsibleK8SModule fails with missing_required_lib('kubernetes') before these are used.
    DynamicApiError = TransportError = None

_ENDPOINT_RE = re.compile(r"^[^\s/]+:[0-9]{1,5}$")

# What to do about an API error, by HTTP status.
_API_HINTS = {
    401: "check the credentials in the kubeconfig",
    403: "give the kubeconfig user the right to {verb} Secrets in kube-system (kubeadm's admin.conf has it)",
    409: "another client changed the Secret at the same time; run the task again",
}
_DEFAULT_API_HINT = "check the API server and its logs"


def argument_spec():
    """The module's options plus the kubernetes.core connection options (one definition, one doc fragment)."""
    spec = {
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "token": {"type": "str", "no_log": True},
        "token_id": {"type": "str", "no_log": False},
        "ttl": {"type": "str", "default": "1h"},
        "usages": {"type": "list", "elements": "str", "choices": list(kubeadm.USAGES), "default": list(kubeadm.USAGES)},
        "groups": {"type": "list", "elements": "str", "default": [kubeadm.DEFAULT_GROUP]},
        "description": {"type": "str"},
        "reuse": {"type": "bool", "default": False},
        "ca_cert_path": {"type": "path", "default": "/etc/kubernetes/pki/ca.crt"},
        "api_server_endpoint": {"type": "str"},
    }
    spec.update(copy.deepcopy(AUTH_ARG_SPEC))
    return spec


class KubeadmToken:
    """One run of the module: validate, read, work out the change, then act."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.client = None
        self.secrets = None
        self.ca_hash = None
        self.resource = None
        self.ttl_seconds = None
        self.now = kubeadm.utcnow()

    # -- input ----------------------------------------------------------------------------------

    def fail(self, msg, **context):
        self.module.fail_json(msg=msg, **context)

    def validate(self):
        """Check every option before any file or API access."""
        params = self.params
        try:
            if params["token"] is not None:
                kubeadm.split_token(params["token"])
            if params["token_id"] is not None:
                kubeadm.check_token_id(params["token_id"])
            self.ttl_seconds = kubeadm.parse_ttl(params["ttl"])
            kubeadm.check_groups(params["groups"])
        except kubeadm.KubeadmTokenError as e:
            self.fail(to_native(e))
        if not params["usages"]:
            self.fail("usages is empty, so the token could not be used at all; give authentication, signing or both.")
        if params["state"] == "present" and params["token_id"] is not None:
            self.fail(
                "token_id only selects a token to delete with state=absent; give token to manage "
                "a token with a known value, or neither to create a new one."
            )
        endpoint = params["api_server_endpoint"]
        if endpoint is not None and not _ENDPOINT_RE.fullmatch(endpoint):
            self.fail(
                f"api_server_endpoint '{endpoint}' is not host:port; give the address nodes join, such as "
                "'k8s-api.lab.example:6443', without a scheme or path."
            )
        if endpoint is not None and not params["ca_cert_path"]:
            self.fail(
                "api_server_endpoint needs the CA hash for the join command; set ca_cert_path to the "
                "cluster CA certificate."
            )

    def read_ca_cert_hash(self):
        """Return the discovery hash of ca_cert_path, None if it is empty, or fail."""
        path = self.params["ca_cert_path"]
        if not path:
            return None
        if not kubeadm.HAS_CRYPTOGRAPHY:
            self.fail(
                missing_required_lib("cryptography", reason="to compute ca_cert_hash from ca_cert_path"),
                exception=kubeadm.CRYPTOGRAPHY_IMPORT_ERROR,
            )
        try:
            with open(path, "rb") as f:
                pem_data = f.read()
        except OSError as e:
            self.fail(
                f"Could not read the cluster CA certificate {path} ({to_native(e.strerror or e)}); run the task "
                "on a control-plane node, point ca_cert_path to the CA, or set ca_cert_path to '' to skip the hash.",
                ca_cert_path=path,
            )
        try:
            return kubeadm.ca_cert_hash(pem_data)
        except ValueError as e:
            self.fail(
                f"The cluster CA file {path} holds no PEM certificate ({to_native(e)}); point ca_cert_path to "
                "the CA certificate, normally /etc/kubernetes/pki/ca.crt.",
                ca_cert_path=path,
            )

    # -- API --------------------------------------------------------------------------------------

    def api(self, action, verb, what, call, *args, **kwargs):
        """Run one API call; fail with one sentence naming the object and the fix."""
        try:
            return call(*args, **kwargs)
        except DynamicApiError as e:
            message = to_native(e.summary() if e.body else e.reason)[:300]
            hint = _API_HINTS.get(e.status, _DEFAULT_API_HINT).format(verb=verb)
            self.fail(
                f"Could not {action} {what}: the API server answered HTTP {e.status} {e.reason} "
                f"({message.rstrip('.')}); {hint}.",
                status=e.status,
                reason=e.reason,
            )
        except TransportError as e:
            self.fail(
                f"Could not {action} {what}: the Kubernetes API server is unreachable ({to_native(e)}); check "
                "that kubeconfig, context or host point to a running API server.",
            )

    def connect(self):
        try:
            self.client = self.api(
                "connect to the Kubernetes API to manage", "get", "bootstrap tokens", get_api_client, self.module
            )
        except (CoreException, ValueError) as e:
            self.fail(
                f"Could not set up the Kubernetes client ({to_native(e)}); check the kubeconfig, context and "
                "host options."
            )
        self.resource = self.api(
            "discover", "get", "the Secret API (v1)", self.client.resource, "Secret", "v1"
        )

    def read_tokens(self):
        """Return {token_id: token} for every bootstrap token Secret in kube-system."""
        listing = self.api(
            "list",
            "list",
            "the bootstrap token Secrets in kube-system",
            self.client.get,
            self.resource,
            namespace=kubeadm.NAMESPACE,
            field_selector="type=" + kubeadm.SECRET_TYPE,
        )
        self.secrets = {}
        tokens = {}
        for secret in listing.to_dict().get("items") or []:
            token = kubeadm.secret_to_token(secret, self.now)
            if token is not None:
                tokens[token["token_id"]] = token
                self.secrets[token["token_id"]] = secret
        return tokens

    def write_secret(self, token, existing):
        body = kubeadm.token_to_secret(
            token["token_id"],
            token["token_secret"],
            token["usages"],
            token["groups"],
            token["description"],
            token["expires"],
        )
        name = f"Secret {kubeadm.NAMESPACE}/{body['metadata']['name']}"
        if existing is None:
            self.api("create", "create", name, self.client.create, self.resource, body, namespace=kubeadm.NAMESPACE)
            return
        # Keep what other tools put on the Secret; resourceVersion makes the replace safe.
        metadata = self.secrets[token["token_id"]].get("metadata") or {}
        for key in ("labels", "annotations", "resourceVersion"):
            if metadata.get(key):
                body["metadata"][key] = metadata[key]
        self.api("update", "update", name, self.client.replace, self.resource, body, namespace=kubeadm.NAMESPACE)

    # -- desired state ----------------------------------------------------------------------------

    def wanted(self, token_id, token_secret, expires):
        groups = []
        for group in self.params["groups"]:
            if group not in groups:
                groups.append(group)
        return {
            "token_id": token_id,
            "token_secret": token_secret,
            "description": self.params["description"] or "",
            "usages": sorted(set(self.params["usages"])),
            "groups": groups,
            "expires": expires,
            "expired": kubeadm.is_expired(expires, self.now),
        }

    @staticmethod
    def same_settings(token, wanted):
        """Tell whether two tokens grant the same; the order of groups does not matter."""
        return (
            token["description"] == wanted["description"]
            and token["usages"] == wanted["usages"]
            and sorted(token["groups"]) == sorted(wanted["groups"])
        )

    def differs(self, existing, wanted):
        return (
            not self.same_settings(existing, wanted)
            or existing["token_secret"] != wanted["token_secret"]
            or existing["expires"] != wanted["expires"]
        )

    def new_expiration(self):
        return kubeadm.expiration_for(self.ttl_seconds, self.now)

    def plan_explicit(self, tokens):
        """Return (existing, wanted) for an explicit token."""
        token_id, token_secret = kubeadm.split_token(self.params["token"])
        existing = tokens.get(token_id)
        if existing is None:
            return None, self.wanted(token_id, token_secret, self.new_expiration())
        expires = existing["expires"]
        if existing["expired"] or (self.ttl_seconds == 0) != (expires is None):
            expires = self.new_expiration()
        return existing, self.wanted(token_id, token_secret, expires)

    def plan_reuse(self, tokens):
        """Return a token to reuse, or None."""
        probe = self.wanted("", "", None)
        candidates = [
            token for token in tokens.values()
            if not token["expired"] and token["token_secret"] and self.same_settings(token, probe)
        ]
        if not candidates:
            return None
        # Never-expiring first, then the latest expiration; the id breaks ties.
        candidates.sort(key=lambda token: (token["expires"] is None, token["expires"] or "", token["token_id"]))
        return candidates[-1]

    def plan_generated(self, tokens):
        token_id, token_secret = kubeadm.split_token(kubeadm.generate_token())
        while token_id in tokens:
            token_id, token_secret = kubeadm.split_token(kubeadm.generate_token())
        return self.wanted(token_id, token_secret, self.new_expiration())

    # -- states -----------------------------------------------------------------------------------

    def present(self, tokens):
        existing = None
        if self.params["token"] is not None:
            existing, wanted = self.plan_explicit(tokens)
        else:
            wanted = self.plan_reuse(tokens) if self.params["reuse"] else None
            existing = wanted
            if wanted is None:
                wanted = self.plan_generated(tokens)

        changed = existing is None or self.differs(existing, wanted)
        if not changed:
            wanted = existing
        if changed and not self.module.check_mode:
            self.write_secret(wanted, existing)

        tokens[wanted["token_id"]] = wanted
        token = f"{wanted['token_id']}.{wanted['token_secret']}"
        result = {
            "changed": changed,
            "token": token,
            "token_id": wanted["token_id"],
            "expires": wanted["expires"],
            "tokens": self.token_list(tokens),
        }
        if self.ca_hash is not None:
            result["ca_cert_hash"] = self.ca_hash
        if self.params["api_server_endpoint"]:
            result["join_command"] = (
                f"kubeadm join {self.params['api_server_endpoint']} --token {token} "
                f"--discovery-token-ca-cert-hash {self.ca_hash}"
            )
        if self.module._diff:
            result["diff"] = self.diff(existing, wanted)
        return result

    def absent(self, tokens):
        token_id = self.params["token_id"]
        if token_id is None:
            token_id = kubeadm.split_token(self.params["token"])[0]
        existing = tokens.pop(token_id, None)
        changed = existing is not None
        if changed and not self.module.check_mode:
            name = f"Secret {kubeadm.NAMESPACE}/{kubeadm.secret_name(token_id)}"
            self.api(
                "delete", "delete", name, self.client.delete, self.resource,
                name=kubeadm.secret_name(token_id), namespace=kubeadm.NAMESPACE,
            )
        result = {"changed": changed, "token_id": token_id, "tokens": self.token_list(tokens)}
        if self.module._diff:
            result["diff"] = self.diff(existing, None)
        return result

    # -- output -----------------------------------------------------------------------------------

    @staticmethod
    def token_list(tokens):
        return [kubeadm.token_view(tokens[token_id]) for token_id in sorted(tokens)]

    @staticmethod
    def diff(before, after):
        """Before and after without the secret; a replaced secret is named, never shown."""
        before_view = kubeadm.token_view(before) if before else {}
        after_view = kubeadm.token_view(after) if after else {}
        if before and after and before["token_secret"] != after["token_secret"]:
            before_view["token_secret"] = "(hidden)"
            after_view["token_secret"] = "(replaced)"
        return {"before": before_view, "after": after_view}

    def run(self):
        self.validate()
        if self.params["state"] == "present":
            # Read the CA before any API call: a wrong path fails fast and writes nothing.
            self.ca_hash = self.read_ca_cert_hash()
        self.connect()
        tokens = self.read_tokens()
        if self.params["state"] == "present":
            return self.present(tokens)
        return self.absent(tokens)


def main():
    module = AnsibleK8SModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[("token", "token_id")],
        required_if=[
            ("state", "absent", ("token", "token_id"), True),
            ("reuse", True, ("description",)),
        ],
    )
    module.exit_json(**KubeadmToken(module).run())


if __name__ == "__main__":
    main()
