# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role ailab.cluster.lab_check: inventory variables that no role knows.

* ``lab_known_variables``: every option of every role's ``meta/argument_specs.yml`` (all entry points);
* ``lab_unknown_variables``: inventory variables whose name starts with a prefix of the collection's
  roles but that no role (and no lab-level variable) knows, with the closest known name.

Their documentation is in the ``<filter name>.yml`` files next to this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Role names whose first word is too common to claim every variable that starts with it.
GENERIC_FIRST_WORDS = frozenset(("local", "lab"))


def lab_known_variables(specs):
    """``specs``: role name -> parsed meta/argument_specs.yml. Returns the sorted option names."""
    if not isinstance(specs, Mapping):
        raise AnsibleFilterError("lab_known_variables: expects a mapping of role name to argument specs")
    known = set()
    for role, doc in specs.items():
        entry_points = (doc or {}).get("argument_specs") or {}
        if not isinstance(entry_points, Mapping):
            raise AnsibleFilterError("lab_known_variables: %s: argument_specs is not a mapping" % role)
        for entry_point in entry_points.values():
            known.update(((entry_point or {}).get("options") or {}).keys())
    return sorted(known)


def lab_variable_prefixes(roles, extra=()):
    """Prefixes that mark a variable as the collection's: each role name plus '_', and the first word
    of each role name ('proxmox_', 'kubeadm_' ...) unless it is too common."""
    prefixes = set(extra)
    for role in roles:
        prefixes.add(role + "_")
        first = role.split("_")[0]
        if first != role and first not in GENERIC_FIRST_WORDS:
            prefixes.add(first + "_")
    return sorted(prefixes)


def lab_unknown_variables(host_variables, known, roles, extra_prefixes=("ailab_",)):
    """Inventory variables that look like the collection's but that no role knows.

    ``host_variables``: host -> list of variable names (the hosts' inventory and extra vars);
    ``known``: the known names (``lab_known_variables`` plus the lab-level variables);
    ``roles``: the collection's role names (they give the prefixes).
    Returns a list sorted by name of {name, hosts (sorted), suggestion (closest known name or '')}.
    """
    if not isinstance(host_variables, Mapping):
        raise AnsibleFilterError("lab_unknown_variables: expects a mapping of host name to variable names")
    known = set(known)
    prefixes = tuple(lab_variable_prefixes(roles, extra_prefixes))
    found = {}
    for host, names in host_variables.items():
        for name in names:
            if not isinstance(name, str) or name in known or not name.startswith(prefixes):
                continue
            found.setdefault(name, set()).add(host)
    result = []
    for name in sorted(found):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        result.append({"name": name, "hosts": sorted(found[name]), "suggestion": close[0] if close else ""})
    return result


def lab_unknown_variables_message(unknown, limit=5):
    """One line per unknown variable, as a lab admin reads it."""
    lines = []
    for item in unknown:
        hosts = item["hosts"]
        where = ", ".join(hosts[:limit]) + (" and %d more" % (len(hosts) - limit) if len(hosts) > limit else "")
        hint = "; did you mean `%s`?" % item["suggestion"] if item["suggestion"] else ""
        lines.append("`%s` (set for %s) is not a variable of any ailab.cluster role%s" % (item["name"], where, hint))
    return lines


class FilterModule(object):
    def filters(self):
        return {
            "lab_known_variables": lab_known_variables,
            "lab_unknown_variables": lab_unknown_variables,
            "lab_unknown_variables_message": lab_unknown_variables_message,
        }
