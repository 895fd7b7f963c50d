#!/usr/bin/python
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kubernetes_export
short_description: Write Kubernetes objects and Helm export files on the controller in one task
version_added: 0.1.0
description:
  - The export mode of the C(ailab.cluster.kubernetes_apply) role. Writes every object of O(objects) to
    C(<export_dir>/<namespace or _cluster>/<kind>-<name><suffix>.yaml) and every entry of O(files) to
    C(<export_dir>/<path>), on the controller, in one task. The host the play runs on is never contacted.
  - An object file holds C(---) and the object as the C(ansible.builtin.to_nice_yaml) filter renders it
    (indent 2, keys in the given order, width 1000).
  - Object files are mode C(0644), Secrets C(0600). Missing directories are created C(0755); the directories
    below O(export_dir) that hold files are set back to C(0755) when their mode differs. O(export_dir)
    itself keeps its mode.
  - A file is rewritten only when its content differs, through a temporary file in the same directory
    renamed over it, so an interrupted run never leaves half a file. A file whose mode alone differs is
    only chmod-ed.
  - The content of Secrets and of O(files) entries marked O(files[].secret) is never returned; diff mode
    shows C((secret content hidden)) in its place.
  - This is an action plugin; it runs on the controller only.
author:
  - ailab.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ailab.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  export_dir:
    description:
      - Absolute directory on the controller (the lab's C(ailab_kubernetes_export_dir)).
    type: str
    required: true
  objects:
    description:
      - Kubernetes objects; each needs C(kind) and C(metadata.name), namespaced objects set
        C(metadata.namespace). A later object with the same file name replaces an earlier one.
    type: list
    elements: dict
    default: []
  suffix:
    description:
      - Appended to each object file name before C(.yaml); empty or a dot and a lowercase word (V(.gpu-operator)).
    type: str
    default: ""
  cluster_dir:
    description:
      - Directory of cluster-scoped objects, below O(export_dir).
    type: str
    default: _cluster
  files:
    description:
      - Already rendered files, such as Helm values files and C(releases.yml).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path below O(export_dir), without C(..).
        type: str
        required: true
      content:
        description: The text of the file.
        type: str
        required: true
      mode:
        description: Octal mode of the file; V(0644) when unset, V(0600) when unset with O(files[].secret=true).
        type: str
      secret:
        description: Hide the content in diff mode (values files can hold passwords).
        type: bool
        default: false
notes:
  - Returns no content of any file marked secret and of any Secret, also on errors.
"""

EXAMPLES = r"""
- name: Write the objects of a role to the export directory
  ailab.cluster.kubernetes_export:
    export_dir: /srv/gitops/lab
    objects:
      - apiVersion: v1
        kind: Namespace
        metadata:
          name: nlp
      - apiVersion: v1
        kind: Secret
        metadata:
          name: hub-db
          namespace: jupyterhub
        stringData:
          password: "{{ vault_hub_db_password }}"

- name: Write a Helm values file (mode 0600, hidden in diffs)
  ailab.cluster.kubernetes_export:
    export_dir: /srv/gitops/lab
    files:
      - path: monitoring/helm-kube-prometheus-stack-values.yaml
        content: "{{ '---\n' ~ (values | to_nice_yaml(indent=2)) }}"
        secret: true
"""

RETURN = r"""
files:
  description: Every file of this call, absolute paths, in order.
  returned: success
  type: list
  elements: str
  sample: [/srv/gitops/lab/_cluster/namespace-nlp.yaml, /srv/gitops/lab/jupyterhub/secret-hub-db.yaml]
changed_files:
  description: The files whose content or mode changed (or would change in check mode).
  returned: always
  type: list
  elements: str
  sample: [/srv/gitops/lab/jupyterhub/secret-hub-db.yaml]
changed_directories:
  description: The directories created or set back to mode 0755 (or that would be in check mode).
  returned: success
  type: list
  elements: str
  sample: [/srv/gitops/lab/nlp]
"""
