# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role ailab.cluster.lab_check: inventory variables that no role knows.

* ``lab_known_variables``: every option of every role's ``meta/argument_specs.yml`` (all entry points);
* ``lab_unknown_variables``: inventory variables whose name starts with a prefix of the collection's
  roles but that no role (and no lab-level variable) knows, with the closest known name;
* ``lab_unknown_variables_item_specs``: the options whose argument spec describes their keys (``type: list,
  elements: dict, options: ...`` or ``type: dict, options: ...``), from every role and entry point;
* ``lab_unknown_variables_item_keys``: walks the inventory's values of those options (nested options too)
  and returns each unknown key with its inventory item, the closest valid key and the valid keys.

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


def _hosts_phrase(hosts, limit):
    """``a, b, c and 2 more``: the hosts a setting comes from, the first ``limit`` named."""
    return ", ".join(hosts[:limit]) + (" and %d more" % (len(hosts) - limit) if len(hosts) > limit else "")


def lab_unknown_variables_message(unknown, limit=5):
    """One line per unknown variable, as a lab admin reads it."""
    lines = []
    for item in unknown:
        where = _hosts_phrase(item["hosts"], limit)
        hint = "; did you mean `%s`?" % item["suggestion"] if item["suggestion"] else ""
        lines.append("`%s` (set for %s) is not a variable of any ailab.cluster role%s" % (item["name"], where, hint))
    return lines


# Keys that name an item in a message when the spec marks none as required (first one present wins).
ITEM_NAME_KEYS = ("name", "id", "storage", "sid", "vmid", "group", "node", "profile", "key")


def _described(option):
    """True when the option's spec lists the keys of its items (list of dicts) or of itself (dict)."""
    if not isinstance(option, Mapping) or not isinstance(option.get("options"), Mapping) or not option["options"]:
        return False
    kind = option.get("type", "str")
    return kind == "dict" or (kind == "list" and option.get("elements") == "dict")


def lab_unknown_variables_item_specs(specs):
    """``specs``: role name -> parsed meta/argument_specs.yml. Returns variable -> its option spec, for every
    option whose spec describes its keys; when several roles or entry points describe one variable, the
    first role (by name) and entry point (main first) wins."""
    if not isinstance(specs, Mapping):
        raise AnsibleFilterError("lab_unknown_variables_item_specs: expects a mapping of role name to argument specs")
    found = {}
    for role in sorted(specs):
        entry_points = (specs[role] or {}).get("argument_specs") or {}
        if not isinstance(entry_points, Mapping):
            raise AnsibleFilterError("lab_unknown_variables_item_specs: %s: argument_specs is not a mapping" % role)
        for entry_point in sorted(entry_points, key=lambda name: (name != "main", name)):
            for name, option in (((entry_points[entry_point] or {}).get("options")) or {}).items():
                if name not in found and _described(option):
                    found[name] = option
    return found


def _valid_keys(options):
    keys = set()
    for name, option in options.items():
        keys.add(name)
        keys.update((option or {}).get("aliases") or ())
    return sorted(keys)


def _item_label(entry, options):
    """'storage nas' for an item: its first required scalar option, else a usual naming key; '' if none."""
    required = [name for name, option in options.items() if (option or {}).get("required")]
    for key in required + [k for k in ITEM_NAME_KEYS if k not in required]:
        value = entry.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return "%s %s" % (key, value)
    return ""


def _walk(value, option, path, label, found):
    """Unknown keys in ``value`` (the value of ``option`` at ``path``): appends (path, label, key, valid)."""
    options = option["options"]
    if option.get("type") == "list":
        entries = [("%s[%d]" % (path, index), entry) for index, entry in enumerate(value)] \
            if isinstance(value, (list, tuple)) else []
    else:
        entries = [(path, value)]
    valid = _valid_keys(options)
    names = {}
    for name, sub in options.items():
        for alias in [name] + list((sub or {}).get("aliases") or ()):
            names[alias] = sub
    for where, entry in entries:
        if not isinstance(entry, Mapping):
            continue  # a wrong type is the roles' own check, with their message
        here = label or (_item_label(entry, options) if option.get("type") == "list" else "")
        for key in sorted(entry, key=str):
            sub = names.get(key)
            if sub is None:
                found.append((where, here, str(key), valid))
            elif _described(sub):
                _walk(entry[key], sub, "%s.%s" % (where, key), here, found)


def lab_unknown_variables_item_keys(host_values, item_specs):
    """Unknown keys inside the items of described variables.

    ``host_values``: host -> mapping of its variables (hostvars; only the variables of ``item_specs`` are
    read); ``item_specs``: the result of ``lab_unknown_variables_item_specs``.
    Returns a list sorted by path and key of {variable, path, item, key, suggestion, valid, hosts}.
    """
    if not isinstance(host_values, Mapping):
        raise AnsibleFilterError("lab_unknown_variables_item_keys: expects a mapping of host name to its variables")
    if not isinstance(item_specs, Mapping):
        raise AnsibleFilterError("lab_unknown_variables_item_keys: expects the result of lab_unknown_variables_item_specs")
    merged = {}
    for host in sorted(host_values):
        variables = host_values[host]
        for variable in sorted(item_specs):
            if variable not in variables:
                continue
            found = []
            _walk(variables[variable], item_specs[variable], variable, "", found)
            for path, label, key, valid in found:
                entry = merged.setdefault((path, key), {"variable": variable, "path": path, "item": label, "key": key,
                                                        "valid": valid, "hosts": set()})
                entry["hosts"].add(host)
    result = []
    for path, key in sorted(merged):
        entry = merged[(path, key)]
        close = difflib.get_close_matches(key, entry["valid"], n=1, cutoff=0.6)
        entry.update(hosts=sorted(entry["hosts"]), suggestion=close[0] if close else "")
        result.append(entry)
    return result


def lab_unknown_variables_item_keys_message(unknown, limit=5):
    """One line per unknown key inside an item, as a lab admin reads it."""
    lines = []
    for entry in unknown:
        where = _hosts_phrase(entry["hosts"], limit)
        item = "%s, " % entry["item"] if entry["item"] else ""
        hint = "; did you mean `%s`?" % entry["suggestion"] if entry["suggestion"] else ""
        lines.append("`%s` (%sset for %s) has the unknown key `%s`%s Valid keys: %s."
                     % (entry["path"], item, where, entry["key"], hint or ".", ", ".join(entry["valid"])))
    return lines


class FilterModule(object):
    def filters(self):
        return {
            "lab_known_variables": lab_known_variables,
            "lab_unknown_variables": lab_unknown_variables,
            "lab_unknown_variables_message": lab_unknown_variables_message,
            "lab_unknown_variables_item_specs": lab_unknown_variables_item_specs,
            "lab_unknown_variables_item_keys": lab_unknown_variables_item_keys,
            "lab_unknown_variables_item_keys_message": lab_unknown_variables_item_keys_message,
        }
