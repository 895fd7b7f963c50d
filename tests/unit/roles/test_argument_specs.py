"""Every role's meta/argument_specs.yml agrees with its defaults/main.yml: each default is a documented
option, and where the spec states a default it is the same value (templated defaults compared with
their whitespace folded), so `ansible-doc -t role` and lab_check never describe another role than the
one that runs."""

import re

import pytest
import yaml

from unit.roles.playbook_runner import ROOT

ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml")
               if (p.parent.parent / "defaults" / "main.yml").exists())


def folded(value):
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value).strip()
    return value


def test_every_role_is_covered():
    assert len(ROLES) >= 25 and {"cni", "gpu_operator", "jupyterhub", "tenants", "proxmox_guests"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_document_the_role_defaults(role):
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    entry_points = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = {}
    for entry_point in entry_points.values():
        for name, spec in ((entry_point or {}).get("options") or {}).items():
            options.setdefault(name, spec)
    assert sorted(set(defaults) - set(options)) == [], "defaults without an option in meta/argument_specs.yml"
    for name, value in defaults.items():
        if "default" in options[name]:
            assert folded(options[name]["default"]) == folded(value), name
