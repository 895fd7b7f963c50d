# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: kubernetes_python_interpreter
author:
  - ailab.cluster maintainers (!UNKNOWN)
version_added: 0.1.0
short_description: The Python interpreter of a task that uses the Kubernetes Python client
description:
  - Returns the interpreter that every task of the collection calling C(kubernetes.core) or
    M(ailab.cluster.kubeadm_token) runs with, as C(ansible_python_interpreter) of that task. It is the one place of
    its default.
  - The C(ailab_kubernetes_python_interpreter) of the host that runs the task, that is for a task delegated to another
    host (a worker's task delegated to the first control plane) the delegated-to host's setting; else the current
    host's C(ailab_kubernetes_python_interpreter); else C(/opt/ailab/python/bin/python3), the virtual environment with
    the pinned Kubernetes client that M(ailab.cluster.kubeadm_control_plane) installs on every control plane.
  - An empty setting counts as not set.
  - A host reached with the C(local) connection (the controller, for example C(localhost) as the API host of a task)
    without a setting uses the controller's Python, C(ansible_playbook_python), which has the client where Ansible and
    kubernetes.core run (an execution environment); C(/opt/ailab/python) exists only on the control planes.
  - Needs no role import and no inventory variable, so a role's entry point or tasks file used alone works.
options: {}
notes:
  - A task's C(vars) are templated in the context of the host the task runs for, even when it is delegated; the
    delegated-to host's variables are in C(ansible_delegated_vars), which this lookup reads.
"""

EXAMPLES = r"""
- name: Read the nodes with the pinned client
  kubernetes.core.k8s_info:
    kind: Node
    kubeconfig: /etc/kubernetes/admin.conf
  vars:
    ansible_python_interpreter: "{{ lookup('ailab.cluster.kubernetes_python_interpreter') }}"
"""

RETURN = r"""
_raw:
  description: One interpreter path (or an Ansible interpreter discovery mode such as C(auto)).
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DEFAULT = "/opt/ailab/python/bin/python3"
SETTING = "ailab_kubernetes_python_interpreter"
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")


class LookupModule(LookupBase):

    def _template(self, value):
        return self._templar.template(value) if value is not None else None

    def _interpreter(self, host_vars, variables):
        """The interpreter for the host of ``host_vars``, or '' when that host says nothing."""
        value = self._template((host_vars or {}).get(SETTING))
        if value is not None and not isinstance(value, str):
            raise AnsibleLookupError("%s must be a string (an interpreter path), got %s" % (SETTING, type(value).__name__))
        if value and value.strip():
            return value.strip()
        # Not ansible_python_interpreter: in a client task it is this lookup.
        if self._template((host_vars or {}).get("ansible_connection")) in LOCAL_CONNECTIONS:
            return self._template(variables.get("ansible_playbook_python")) or ""
        return ""

    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("kubernetes_python_interpreter takes no terms, got %s" % (terms,))
        variables = variables or {}
        delegated = variables.get("ansible_delegated_vars") or {}
        for host_vars in delegated.values():
            value = self._interpreter(host_vars, variables)
            if value:
                return [value]
        return [self._interpreter(variables, variables) or DEFAULT]
