"""Every role can be shown working alone with molecule (issue 15, "Role reuse").

- every role of roles/ is exercised by a scenario of molecule/ (its converge or another playbook of
  the scenario, or a playbook they import, names ``ailab.cluster.<role>``);
- every role's README has a "Use it alone" section naming ``molecule test -s <scenario>`` of an
  existing scenario that exercises the role; when that is a controller scenario (export mode, the
  Proxmox VE simulator) bearing the role's name, the README's playbook is its converge.yml;
- a scenario's molecule.yml repeats nothing the base config (.config/molecule/config.yml) gives, and
  a scenario directory holds a molecule.yml and a converge.yml;
- the controller-only scenarios (default driver) use the shared inventories and playbooks of
  molecule/shared, which exist.

The scenarios themselves run in the molecule tier (tests/harness/tier.py molecule).
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MOLECULE = ROOT / "molecule"
BASE_CONFIG = ROOT / ".config" / "molecule" / "config.yml"
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
SCENARIOS = sorted(p.parent.name for p in MOLECULE.glob("*/molecule.yml"))
# The kubeadm roles are exercised together by molecule/kubernetes_cluster (a kubeadm test double).
KUBEADM_SCENARIO = "kubernetes_cluster"
KUBEADM_ROLES = {"kubeadm_control_plane", "kubeadm_worker", "kubeconfig"}
ROLE_REFERENCE = r"ailab\.cluster\.{}(?![A-Za-z0-9_])"
RUN_ALONE = re.compile(r"molecule test -s ([A-Za-z0-9_]+)")


def load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def scenario_roles(scenario):
    """The roles a scenario's playbooks name: the YAML files of its directory and the playbooks they
    import (``import_playbook: ../../playbooks/x.yml``), followed to any depth."""
    todo, seen, text = sorted((MOLECULE / scenario).rglob("*.yml")), set(), []
    while todo:
        path = todo.pop().resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        content = path.read_text(encoding="utf-8")
        text.append(content)
        todo += [path.parent / ref for ref in re.findall(r"import_playbook:\s*[\"']?([^\s\"'{}]+\.ya?ml)", content)]
    joined = "\n".join(text)
    return {role for role in ROLES if re.search(ROLE_REFERENCE.format(role), joined)}


def skip_until_kubeadm_scenario(role):
    if role in KUBEADM_ROLES and KUBEADM_SCENARIO not in SCENARIOS:
        pytest.skip(f"{role} is exercised by molecule/{KUBEADM_SCENARIO}, which this checkout does not have yet")


def use_it_alone(role):
    """The text of the README's "Use it alone" section (up to the next heading), or None."""
    text = (ROOT / "roles" / role / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^#+ Use it alone\s*$(.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else None


def uses_containers(scenario):
    """True for a scenario on the base config's docker driver (systemd containers)."""
    config = load(MOLECULE / scenario / "molecule.yml") or {}
    return (config.get("driver") or {}).get("name", "docker") == "docker"


def leaves(node, path=()):
    """(path, value) of every non-mapping value of a mapping; lists are values (molecule replaces them)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    else:
        yield path, node


def lookup(node, path):
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return KeyError
        node = node[key]
    return node


def test_the_scenarios_and_roles_are_found():
    assert len(ROLES) >= 30, ROLES
    assert {"cni", "node_layer", "proxmox_guests", "lab_check"} <= set(SCENARIOS)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_scenario(role):
    skip_until_kubeadm_scenario(role)
    covering = [s for s in SCENARIOS if role in scenario_roles(s)]
    assert covering, f"no molecule scenario runs ailab.cluster.{role}: add molecule/{role}/ (molecule.yml + converge.yml)"


@pytest.mark.parametrize("role", ROLES)
def test_every_readme_names_a_scenario_that_runs_the_role(role):
    skip_until_kubeadm_scenario(role)
    section = use_it_alone(role)
    assert section is not None, f"roles/{role}/README.md has no '## Use it alone' section"
    named = RUN_ALONE.findall(section)
    assert named, f"roles/{role}/README.md: 'Use it alone' does not name `molecule test -s <scenario>`"
    for scenario in named:
        assert scenario in SCENARIOS, f"roles/{role}/README.md names molecule scenario {scenario}, which does not exist"
        assert role in scenario_roles(scenario), f"molecule/{scenario} does not run ailab.cluster.{role}"
    if role in named and not uses_containers(role):
        blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)]
        assert load(MOLECULE / role / "converge.yml") in blocks, (
            f"roles/{role}/README.md: the playbook of 'Use it alone' is not molecule/{role}/converge.yml")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_scenario_repeats_nothing_of_the_base_config(scenario):
    base, config = load(BASE_CONFIG), load(MOLECULE / scenario / "molecule.yml") or {}
    repeated = [".".join(map(str, path)) for path, value in leaves(config) if lookup(base, path) == value]
    assert not repeated, f"molecule/{scenario}/molecule.yml repeats the base config: {', '.join(repeated)}"
    assert (MOLECULE / scenario / "converge.yml").is_file(), f"molecule/{scenario} has no converge.yml"


def test_the_repeat_check_bites():
    base = load(BASE_CONFIG)
    config = {"provisioner": {"config_options": {"connection": {"pipelining": True}}}, "driver": {"name": "default"}}
    repeated = [path for path, value in leaves(config) if lookup(base, path) == value]
    assert repeated == [("provisioner", "config_options", "connection", "pipelining")]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_controller_scenarios_use_the_shared_files(scenario):
    config = load(MOLECULE / scenario / "molecule.yml") or {}
    if uses_containers(scenario):
        pytest.skip(f"{scenario} runs on systemd containers (base config)")
    assert config["platforms"] == [], f"molecule/{scenario}: a controller scenario has no platform"
    provisioner = config["provisioner"]
    paths = list(provisioner["inventory"]["links"].values()) + list((provisioner.get("playbooks") or {}).values())
    for rel in paths:
        assert (MOLECULE / scenario / rel).exists(), f"molecule/{scenario}: {rel} does not exist"
    assert all(rel.startswith("../shared/") for rel in provisioner["inventory"]["links"].values())
    verify = provisioner.get("playbooks", {}).get("verify") or "verify.yml"
    assert (MOLECULE / scenario / verify).is_file(), f"molecule/{scenario} has no verify playbook"
