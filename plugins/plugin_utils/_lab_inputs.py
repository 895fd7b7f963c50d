# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private helpers of the lab-model filters (lab_gpu, lab_tenants, jupyterhub_profiles): the inventory
as plain data, one error format, and "did you mean" suggestions. Controller side only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def plain(value):
    """The same data as plain dict/list/str/int/float/bool: Ansible hands filters its own subclasses
    (tagged or unsafe strings), which yaml.safe_dump refuses."""
    if isinstance(value, Mapping):
        return dict((plain(k), plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    for kind in (bool, str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def fail(where, message):
    """Stop the filter with one sentence that names the inventory entry (``where``) and what to change."""
    raise AnsibleFilterError("%s: %s" % (where, message))


def closest(word, choices):
    """' (did you mean X?)' for the choice closest to ``word``, by similarity or a shared prefix; '' if none."""
    word = str(word)
    choices = list(choices)
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6) or \
        [c for c in choices if word and (c.startswith(word) or word.startswith(c))][:1] or \
        difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return " (did you mean %s?)" % match[0] if match else ""


def unknown_keys(where, given, allowed, what):
    """Fail on the first key of ``given`` that ``allowed`` does not list, with the closest valid key."""
    for key in sorted(str(k) for k in given):
        if key not in allowed:
            fail(where, "unknown key %s in %s%s; valid keys: %s" % (key, what, closest(key, allowed), ", ".join(allowed)))
