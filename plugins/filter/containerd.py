# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the container runtime's version decisions.

* ``containerd_source_decision``: where containerd comes from - the distribution's ``containerd`` or
  ``containerd.io`` from Docker's apt repository - from ``containerd_source`` (auto, distro, docker) and the
  distribution's containerd series, with the warning to show when the distribution's is kept although it is
  older than the minimum (Kubernetes 1.34 deprecates containerd 1.x; 1.6 is end of life, 1.7 ends in 2026).
* ``containerd_config_version``: the config.toml schema (2 for containerd 1.6/1.7, 3 for 2.x) from apt's
  installed and candidate versions.

Their documentation is in the ``<filter name>.yml`` files next to this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

SOURCES = ("auto", "distro", "docker")
_PACKAGE = {"distro": "the distribution's containerd", "docker": "Docker's containerd.io"}
_SERIES = re.compile(r"^(?:[0-9]+:)?([0-9]+)\.([0-9]+)")


def _series(value, what):
    """(major, minor) of a version or series string such as 1.7, 1.7.24~ds1-1 or 2.1.4-1~debian.12~bookworm."""
    match = _SERIES.match(str(value or "").strip())
    if not match:
        raise AnsibleFilterError("%s '%s' is not a version such as 1.7 or 2.1.4" % (what, value))
    return int(match.group(1)), int(match.group(2))


def containerd_source_decision(source, distro_series, distribution="this distribution", minimum="2.0",
                               installed="", may_switch=True):
    """{source: distro|docker, warning: str} for ``containerd_source`` on a distribution whose own containerd is
    ``distro_series``: auto takes Docker's containerd.io when the distribution's is older than ``minimum``.
    ``installed`` is the source of the containerd package on the node ('' none, distro, docker); a switch
    between the two packages replaces the runtime under the node's pods, so without ``may_switch`` (a node
    that has joined, outside playbooks/upgrade.yml where it is drained) the installed one is kept, with a warning."""
    if source not in SOURCES:
        raise AnsibleFilterError("containerd_source must be auto, distro or docker, got %r" % (source,))
    if installed not in ("", "distro", "docker"):
        raise AnsibleFilterError("installed must be '', distro or docker, got %r" % (installed,))
    too_old = _series(distro_series, "the distribution's containerd series") < _series(minimum, "containerd_minimum_version")
    wanted = ("docker" if too_old else "distro") if source == "auto" else source
    if installed and installed != wanted and not may_switch:
        return {"source": installed, "warning": (
            "containerd_source %s asks for %s but this node runs %s, and replacing the runtime would stop its pods: it is "
            "kept. playbooks/upgrade.yml switches it while the node is drained."
            % (source, _PACKAGE[wanted], _PACKAGE[installed]))}
    warning = ""
    if wanted == "distro" and too_old:
        warning = ("containerd_source: %s installs %s's containerd %s, older than %s: Kubernetes 1.34 deprecates "
                   "containerd 1.x (1.6 is end of life, 1.7 ends in 2026) and a later Kubernetes minor will refuse it. "
                   "Use containerd_source: auto or docker (containerd.io 2.x from Docker's repository, or its mirror)."
                   % (source, distribution, distro_series, minimum))
    return {"source": wanted, "warning": warning}


def containerd_config_version(installed="", candidate="", fallback=""):
    """'3' for containerd 2.x, '2' for 1.x: from the installed version, else apt's candidate, else ``fallback``
    (the distribution's series when the package comes from it); '' when none is known."""
    for value in (installed, candidate, fallback):
        if value and str(value).strip() not in ("(none)", ""):
            return "3" if _series(value, "containerd version") >= (2, 0) else "2"
    return ""


class FilterModule(object):
    def filters(self):
        return {
            "containerd_source_decision": containerd_source_decision,
            "containerd_config_version": containerd_config_version,
        }
