# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of ailab.cluster.kubernetes_apply.

* ``kubernetes_apply_batches``: the objects to apply, in their order, cut into runs of consecutive objects that
  carry secrets (kind Secret) or do not. The role applies each run with one loop task whose no_log is the run's:
  ansible-core hides a loop's whole result as soon as one item is no_log, so one loop with a per-item no_log hid
  every object of a role that applies one Secret.

Their documentation is in the ``<filter name>.yml`` files next to this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Kinds whose objects carry secret data: their task output is hidden (no_log).
_SECRET_KINDS = ("Secret",)


def _is_secret(obj):
    return obj.get("kind") in _SECRET_KINDS


def kubernetes_apply_batches(manifests):
    """[{'secret': bool, 'objects': [...]}, ...]: ``manifests`` in order, one entry per run of consecutive objects
    that are all Secrets or all not."""
    if isinstance(manifests, (str, bytes, Mapping)) or not hasattr(manifests, "__iter__"):
        raise AnsibleFilterError("kubernetes_apply_manifests must be a list of Kubernetes objects, got %s"
                                 % type(manifests).__name__)
    batches = []
    for index, obj in enumerate(manifests):
        if not isinstance(obj, Mapping):
            raise AnsibleFilterError("kubernetes_apply_manifests[%d] is a %s, not a Kubernetes object (a mapping with "
                                     "apiVersion, kind and metadata.name)" % (index, type(obj).__name__))
        secret = _is_secret(obj)
        if batches and batches[-1]["secret"] == secret:
            batches[-1]["objects"].append(obj)
        else:
            batches.append({"secret": secret, "objects": [obj]})
    return batches


class FilterModule(object):
    def filters(self):
        return {"kubernetes_apply_batches": kubernetes_apply_batches}
