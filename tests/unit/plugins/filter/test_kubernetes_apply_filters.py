# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubernetes_apply_batches: the objects in their order, in runs of Secrets and runs of other objects (the role
applies each run with its own no_log)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.kubernetes_apply import FilterModule, kubernetes_apply_batches


def obj(kind, name):
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "lab"}}


def shape(batches):
    return [(b["secret"], [o["metadata"]["name"] for o in b["objects"]]) for b in batches]


def test_filter_is_registered():
    assert FilterModule().filters() == {"kubernetes_apply_batches": kubernetes_apply_batches}


def test_runs_keep_the_order():
    manifests = [obj("Namespace", "ns"), obj("ConfigMap", "a"), obj("Secret", "s1"), obj("Secret", "s2"),
                 obj("Deployment", "d"), obj("Secret", "s3")]
    assert shape(kubernetes_apply_batches(manifests)) == [
        (False, ["ns", "a"]), (True, ["s1", "s2"]), (False, ["d"]), (True, ["s3"])]


@pytest.mark.parametrize("manifests, expected", [
    ([], []),
    ([obj("Secret", "s")], [(True, ["s"])]),
    ([obj("ConfigMap", "a"), obj("ConfigMap", "b")], [(False, ["a", "b"])]),
    # Only the kind Secret carries secret data; a ConfigMap named like one does not.
    ([obj("ConfigMap", "secret"), {"apiVersion": "v1", "kind": "SecretList", "metadata": {"name": "x"}}],
     [(False, ["secret", "x"])]),
])
def test_edges(manifests, expected):
    assert shape(kubernetes_apply_batches(manifests)) == expected


def test_objects_are_the_same_objects():
    manifests = [obj("ConfigMap", "a"), obj("Secret", "s")]
    batches = kubernetes_apply_batches(manifests)
    assert batches[0]["objects"][0] is manifests[0] and batches[1]["objects"][0] is manifests[1]


@pytest.mark.parametrize("bad, message", [
    ("ConfigMap", "must be a list of Kubernetes objects, got str"),
    ({"kind": "ConfigMap"}, "must be a list of Kubernetes objects, got dict"),
    ([obj("ConfigMap", "a"), "Secret"], "kubernetes_apply_manifests[1] is a str, not a Kubernetes object"),
])
def test_refuses_what_is_not_a_list_of_objects(bad, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        kubernetes_apply_batches(bad)
