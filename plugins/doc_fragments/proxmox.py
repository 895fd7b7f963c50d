# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every ailab.cluster Proxmox module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Proxmox VE node or cluster address the API is reached at.
      - Falls back to the E(PROXMOX_HOST) environment variable.
    type: str
    required: true
  api_port:
    description: HTTPS port of the API (E(PROXMOX_PORT)).
    type: int
    default: 8006
  api_user:
    description:
      - User for password login, or owner of the API token, for example V(root@pam) (E(PROXMOX_USER)).
    type: str
    default: root@pam
  api_password:
    description:
      - Password of O(api_user). Use O(api_token_id) and O(api_token_secret) instead where you can.
      - Falls back to E(PROXMOX_PASSWORD).
    type: str
  api_token_id:
    description:
      - API token name, for example V(ansible), or the full V(root@pam!ansible) form (E(PROXMOX_TOKEN_ID)).
    type: str
  api_token_secret:
    description: Secret (UUID) of the API token (E(PROXMOX_TOKEN_SECRET)).
    type: str
  validate_certs:
    description:
      - Verify the API's TLS certificate. Leave it on; give the cluster CA with O(ca_path) instead.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle that signed the API certificate, for example a copy of C(/etc/pve/pve-root-ca.pem).
    type: path
  api_timeout:
    description: Seconds to wait for one API answer.
    type: int
    default: 30
  api_retries:
    description:
      - How often a read (GET) is retried after a connection error or HTTP 5xx, with exponential backoff.
      - Writes are never retried.
    type: int
    default: 3
requirements:
  - proxmoxer >= 2.0
  - requests
notes:
  - "Every module of this collection that talks to Proxmox VE belongs to the action group
    C(ailab.cluster.proxmox), so the connection can be set once for a play with
    C(module_defaults) and the key C(group/ailab.cluster.proxmox)."
"""
