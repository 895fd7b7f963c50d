# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versions of the installed doubles and kubeadm's version rules.

The version of each "binary" is a file the scenario can change to simulate a package
upgrade: /etc/kubesim/<kubeadm|kubelet|kubectl>-version (default DEFAULT_VERSION);
KUBESIM_ETC moves the directory.
"""

import os
import re

DEFAULT_VERSION = "v1.34.2"
ETC_ENV = "KUBESIM_ETC"
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


class VersionError(Exception):
    """A version kubeadm refuses; the message is kubeadm's."""


def parse(text):
    match = _VERSION_RE.match(str(text).strip())
    if not match:
        raise VersionError(f'could not parse "{text}" as version')
    return tuple(int(part) for part in match.groups())


def text(version):
    return "v%d.%d.%d" % version


def etc_dir():
    return os.environ.get(ETC_ENV, "/etc/kubesim")


def installed(binary):
    """The version of the installed kubeadm, kubelet or kubectl double."""
    try:
        with open(os.path.join(etc_dir(), f"{binary}-version")) as f:
            return text(parse(f.read()))
    except FileNotFoundError:
        return DEFAULT_VERSION


def check_supported(kubeadm_version, kubernetes_version):
    """kubeadm deploys its own minor and the one before it (cmd/kubeadm/app/constants:
    MinimumControlPlaneVersion = current minor - 1; util/config ValidateSupportedVersion), and never a
    newer version than itself (stricter than kubeadm, which only warns about a newer patch)."""
    have, want = parse(kubeadm_version), parse(kubernetes_version)
    if want[:2] < (have[0], have[1] - 1):
        raise VersionError(
            f"this version of kubeadm only supports deploying clusters with the control plane version >= "
            f"v{have[0]}.{have[1] - 1}.0. Current version: {kubernetes_version}"
        )
    if want > have:
        raise VersionError(
            f"the Kubernetes version {kubernetes_version} is newer than kubeadm {kubeadm_version}; "
            "upgrade kubeadm first"
        )


def check_upgrade(kubeadm_version, cluster_version, target_version):
    """kubeadm upgrade apply's policy (cmd/kubeadm/app/phases/upgrade/policy.go EnforceVersionPolicies):
    the target is not above kubeadm, at most one minor above the cluster, and not a minor below it."""
    have, cluster, target = parse(kubeadm_version), parse(cluster_version), parse(target_version)
    if target > have:
        raise VersionError(
            f'Specified version to upgrade to "{target_version}" is higher than the kubeadm version '
            f'"{kubeadm_version}". Upgrade kubeadm first using the tool you used to install kubeadm'
        )
    if target[1] > cluster[1] + 1:
        raise VersionError(
            f'Specified version to upgrade to "{target_version}" is too high; kubeadm can upgrade only 1 minor '
            "version at a time"
        )
    if target[:2] < cluster[:2]:
        raise VersionError(
            f'Specified version to downgrade to "{target_version}" is too low; kubeadm can downgrade only patch '
            "versions"
        )
    if target[:2] < (have[0], have[1] - 1):
        raise VersionError(
            f"kubeadm {kubeadm_version} cannot manage a control plane at {target_version} (too old)"
        )
