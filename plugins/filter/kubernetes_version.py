# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that keep Kubernetes version changes inside kubeadm's upgrade procedure.

* ``kubernetes_dpkg_versions``: the installed upstream versions of the Kubernetes packages, from dpkg-query;
* ``kubernetes_version_change``: why a package version change must not happen here (kubernetes_packages
  refuses a minor change outside playbooks/upgrade.yml: new kubelets before the new API server break the
  version-skew policy);
* ``kubeadm_upgrade_steps``: what playbooks/upgrade.yml must still do on one node, from what kubeadm has
  applied there (static pod manifests, cluster version), not from kubelet versions alone;
* ``kubeadm_reset_api_host``: the control plane that stays when nodes are reset, to delete their Node objects.

Their documentation is in the ``<filter name>.yml`` files next to this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
# An upstream version inside a Debian package version: optional epoch, then MAJOR.MINOR.PATCH, then -revision.
_PACKAGE_VERSION_RE = re.compile(r"^(?:\d+:)?(\d+\.\d+\.\d+)(?:[-~+].*)?$")
_UPGRADE = "playbooks/upgrade.yml"


def _parse(version, what):
    match = _VERSION_RE.match(str(version).strip())
    if not match:
        raise AnsibleFilterError("%s is '%s', not a Kubernetes version such as 1.34.2" % (what, version))
    return tuple(int(part) for part in match.groups())


def _text(version):
    return "%d.%d.%d" % version


def _minor(version):
    return "%d.%d" % version[:2]


def kubernetes_dpkg_versions(output):
    """{package: upstream version} of the installed packages in the output of
    ``dpkg-query --show --showformat='${Package}\\t${db:Status-Abbrev}\\t${Version}\\n' <packages>``.

    A package that dpkg knows but that is not installed (status other than ii/hi, e.g. rc after a remove)
    is left out."""
    versions = {}
    for line in str(output or "").splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        name, status, version = (f.strip() for f in fields)
        if status not in ("ii", "hi"):
            continue
        match = _PACKAGE_VERSION_RE.match(version)
        if not match:
            raise AnsibleFilterError("dpkg reports %s version '%s', which has no Kubernetes version in it" % (name, version))
        versions[name] = match.group(1)
    return versions


def kubernetes_version_change(installed, wanted, allow_minor_upgrade=False):
    """The problems of moving the installed packages (``{package: version}``) to ``wanted``, one sentence each.

    Patch changes within a minor are fine. A minor change is refused unless ``allow_minor_upgrade`` (set by the
    upgrade entry points of kubeadm_control_plane and kubeadm_worker, i.e. playbooks/upgrade.yml); even there only
    one minor up, as kubeadm upgrades one minor at a time. Minor downgrades and major changes are always refused.
    """
    if not isinstance(installed, Mapping):
        raise AnsibleFilterError("kubernetes_version_change expects {package: version}, got %s" % type(installed).__name__)
    target = _parse(wanted, "kubernetes_packages_version")
    problems = []
    for name in sorted(installed):
        current = _parse(installed[name], "the installed version of %s" % name)
        if current[:2] == target[:2]:
            continue
        where = "%s %s is installed and kubernetes_packages_version is %s" % (name, _text(current), _text(target))
        if current[0] != target[0] or target[:2] < current[:2]:
            problems.append("%s: a downgrade across minors or a major change is not supported by kubeadm; set "
                            "kubernetes_packages_version back to %s.x." % (where, _minor(current)))
        elif not allow_minor_upgrade:
            problems.append("%s: a minor upgrade must go through %s (control planes first, then workers, each "
                            "drained), never through playbooks/nodes.yml, or new kubelets would run before the "
                            "new API server." % (where, _UPGRADE))
        elif target[1] - current[1] > 1:
            problems.append("%s: kubeadm upgrades one minor at a time; upgrade to %d.%d.x first." % (
                where, target[0], current[1] + 1))
    return problems


def kubeadm_upgrade_steps(target, kubelet, control_plane=None, cluster=None, first=False):
    """What the upgrade of one node to ``target`` still needs, from what kubeadm has applied.

    ``kubelet``: the node's kubelet version (Node status); ``control_plane``: on a control plane, the images of
    its static pod manifests (kube-apiserver, kube-controller-manager, kube-scheduler; the lowest tag counts, an
    empty list means none is there), None on a worker; ``cluster``: the version ``kubeadm upgrade apply`` has set for the cluster (API server);
    ``first``: the node that runs ``kubeadm upgrade apply``.

    Returns ``{kubeadm: apply|node|none, kubelet: bool, reason}``. A worker always gets ``node``: the only trace
    of ``kubeadm upgrade node`` there is the kubelet configuration it rewrites, and the command is idempotent,
    so the caller runs it and compares that file. ``kubelet`` is true when the kubelet is not at the target or,
    on a control plane, kubeadm changes the node (the kubelet must restart to read what kubeadm wrote); the node
    is drained then. On a worker the caller adds the case of a kubelet configuration that kubeadm rewrote.
    """
    goal = _parse(target, "the target version")
    running = _parse(kubelet, "the kubelet version") if kubelet else None
    reasons = []
    if control_plane is None:
        step = "node"
        reasons.append("kubeadm upgrade node refreshes the kubelet configuration of a worker (idempotent)")
    else:
        applied = _lowest_tag(control_plane)
        at = _parse(cluster, "the cluster version") if cluster else None
        if first and at != goal:
            if at is not None and (goal[:2] < at[:2] or goal[0] != at[0]):
                raise AnsibleFilterError("The cluster runs %s; %s cannot go down to %s across minors." % (
                    _text(at), _UPGRADE, _text(goal)))
            if at is not None and goal[1] - at[1] > 1:
                raise AnsibleFilterError("The cluster runs %s; kubeadm upgrades one minor at a time: upgrade to "
                                         "%d.%d.x first." % (_text(at), at[0], at[1] + 1))
            step = "apply"
            reasons.append("the cluster is at %s" % (_text(at) if at else "an unknown version"))
        elif applied != goal:
            step = "node"
            reasons.append("the static pod manifests are at %s" % (_text(applied) if applied else "no version"))
        else:
            step = "none"
    kubelet_step = running != goal or (control_plane is not None and step != "none")
    if running != goal:
        reasons.append("the kubelet runs %s" % (_text(running) if running else "an unknown version"))
    return {"kubeadm": step, "kubelet": kubelet_step,
            "reason": "; ".join(reasons) if reasons else "kubeadm and the kubelet are at %s" % _text(goal)}


def _lowest_tag(images):
    """The lowest version among image references such as registry.k8s.io/kube-apiserver:v1.34.2; None if none."""
    if isinstance(images, str):
        images = [images]
    versions = []
    for image in images or []:
        reference = str(image).split("@", 1)[0]
        tag = reference.rsplit(":", 1)[1] if ":" in reference.rsplit("/", 1)[-1] else ""
        versions.append(_parse(tag, "the tag of the static pod image %s" % image))
    return min(versions) if versions else None


def kubeadm_reset_api_host(control_planes, reset_hosts):
    """The first of ``control_planes`` that is not in ``reset_hosts``, '' when every control plane is reset."""
    resetting = set(str(h) for h in (reset_hosts or []))
    for host in control_planes or []:
        if str(host) not in resetting:
            return str(host)
    return ""


class FilterModule(object):
    def filters(self):
        return {
            "kubernetes_dpkg_versions": kubernetes_dpkg_versions,
            "kubernetes_version_change": kubernetes_version_change,
            "kubeadm_upgrade_steps": kubeadm_upgrade_steps,
            "kubeadm_reset_api_host": kubeadm_reset_api_host,
        }
