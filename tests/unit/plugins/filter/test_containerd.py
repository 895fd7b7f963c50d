"""containerd version decisions (plugins/filter/containerd.py): where the package comes from and which
config.toml schema it reads."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter.containerd import (
    FilterModule,
    containerd_config_version,
    containerd_source_decision,
)


def test_registered():
    assert set(FilterModule().filters()) == {"containerd_source_decision", "containerd_config_version"}


@pytest.mark.parametrize("distro,series,expected", [
    ("Debian 12", "1.6", "docker"),   # 1.6.20: end of life
    ("Debian 13", "1.7", "docker"),   # 1.7.24: Kubernetes 1.34 deprecates 1.x
    ("Ubuntu 24.04", "1.7", "docker"),
    ("a future release", "2.1", "distro"),
])
def test_auto_takes_docker_where_the_distribution_is_too_old(distro, series, expected):
    assert containerd_source_decision("auto", series, distro) == {"source": expected, "warning": ""}


def test_distro_is_kept_with_a_warning():
    decision = containerd_source_decision("distro", "1.6", "Debian 12")
    assert decision["source"] == "distro"
    assert "containerd_source: distro installs Debian 12's containerd 1.6, older than 2.0" in decision["warning"]
    assert "containerd_source: auto or docker" in decision["warning"]
    assert containerd_source_decision("distro", "2.0", "Debian 14") == {"source": "distro", "warning": ""}


def test_docker_is_kept_and_minimum_is_configurable():
    assert containerd_source_decision("docker", "2.1") == {"source": "docker", "warning": ""}
    assert containerd_source_decision("auto", "1.7", minimum="1.7") == {"source": "distro", "warning": ""}
    assert containerd_source_decision("auto", "1.6", minimum="1.7")["source"] == "docker"


def test_a_joined_node_keeps_its_runtime_outside_the_upgrade():
    kept = containerd_source_decision("auto", "1.6", "Debian 12", installed="distro", may_switch=False)
    assert kept["source"] == "distro"
    assert "this node runs the distribution's containerd" in kept["warning"] and "playbooks/upgrade.yml" in kept["warning"]
    back = containerd_source_decision("distro", "1.7", installed="docker", may_switch=False)
    assert back["source"] == "docker" and "asks for the distribution's containerd" in back["warning"]
    # Not joined yet, or drained by the upgrade: the switch happens.
    assert containerd_source_decision("auto", "1.6", installed="distro", may_switch=True)["source"] == "docker"
    # Already what is wanted: nothing to say.
    assert containerd_source_decision("auto", "1.6", installed="docker", may_switch=False) == {"source": "docker", "warning": ""}


@pytest.mark.parametrize("args,words", [
    (("auto", "1.6", "Debian 12", "2.0", "snap"), "installed must be"),
    (("apt", "1.6"), "containerd_source must be auto, distro or docker"),
    (("auto", "one"), "the distribution's containerd series 'one' is not a version"),
    (("auto", "1.6", "Debian 12", "two"), "containerd_minimum_version 'two'"),
])
def test_bad_input(args, words):
    with pytest.raises(AnsibleFilterError, match=words):
        containerd_source_decision(*args)


@pytest.mark.parametrize("installed,candidate,fallback,expected", [
    ("1.6.20~ds1-1+deb12u1", "", "", "2"),
    ("2.1.4-1~debian.12~bookworm", "", "", "3"),
    ("(none)", "2.2.0-1~debian.13~trixie", "", "3"),
    ("", "1.7.28-1", "", "2"),
    ("1:1.7.24~ds1-6", "", "", "2"),   # an epoch
    ("(none)", "(none)", "1.7", "2"),
    ("", "", "", ""),
])
def test_config_version(installed, candidate, fallback, expected):
    assert containerd_config_version(installed, candidate, fallback) == expected
