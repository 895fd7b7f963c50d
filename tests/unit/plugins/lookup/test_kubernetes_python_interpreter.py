# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The interpreter of the Kubernetes client's tasks: the task host's setting (the delegated-to host's for a
delegated task), else the current host's, else the pinned client's virtual environment."""

import pytest
from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.ailab.cluster.plugins.lookup.kubernetes_python_interpreter import DEFAULT, LookupModule

CP = "/srv/cp-python/bin/python3"
WORKER = "/srv/worker-python/bin/python3"


def lookup(variables, terms=()):
    loader = DataLoader()
    templar = Templar(loader=loader, variables=variables)
    return LookupModule(loader=loader, templar=templar).run(list(terms), variables=variables)


def test_default_is_the_pinned_clients_venv():
    assert DEFAULT == "/opt/ailab/python/bin/python3"
    assert lookup({}) == [DEFAULT]


@pytest.mark.parametrize("variables, expected", [
    ({"ailab_kubernetes_python_interpreter": WORKER}, WORKER),
    ({"ailab_kubernetes_python_interpreter": ""}, DEFAULT),
    ({"ailab_kubernetes_python_interpreter": "auto"}, "auto"),
    # Delegated to the control plane: its setting wins over the worker's.
    ({"ailab_kubernetes_python_interpreter": WORKER,
      "ansible_delegated_vars": {"cp1": {"ailab_kubernetes_python_interpreter": CP}}}, CP),
    # The control plane sets nothing (or an empty string): the worker's, else the default.
    ({"ailab_kubernetes_python_interpreter": WORKER, "ansible_delegated_vars": {"cp1": {}}}, WORKER),
    ({"ansible_delegated_vars": {"cp1": {"ailab_kubernetes_python_interpreter": ""}}}, DEFAULT),
    # A templated setting (from inventory: trusted as a template) is templated.
    ({"ailab_kubernetes_python_interpreter": trust_as_template("{{ venv }}/bin/python3"), "venv": "/srv/k8s"},
     "/srv/k8s/bin/python3"),
])
def test_which_setting_wins(variables, expected):
    assert lookup(variables) == [expected]


CONTROLLER = "/usr/lib/ailab-ee/bin/python3"


@pytest.mark.parametrize("variables, expected", [
    # The controller (a local connection) without a setting runs the client with its own Python ...
    ({"ansible_connection": "local", "ansible_playbook_python": CONTROLLER}, CONTROLLER),
    ({"ansible_connection": "ansible.builtin.local", "ansible_playbook_python": CONTROLLER}, CONTROLLER),
    # ... also as the delegated-to API host of a node's task (lab_report_api_host: localhost) ...
    ({"ansible_connection": "ssh", "ansible_playbook_python": CONTROLLER,
      "ansible_delegated_vars": {"localhost": {"ansible_connection": "local"}}}, CONTROLLER),
    # ... but a setting wins, and a node reached otherwise gets the venv.
    ({"ansible_connection": "local", "ansible_playbook_python": CONTROLLER, "ailab_kubernetes_python_interpreter": CP},
     CP),
    ({"ansible_connection": "ssh", "ansible_playbook_python": CONTROLLER}, DEFAULT),
    # The task's own ansible_python_interpreter (this lookup) is never read.
    ({"ansible_connection": "ssh", "ansible_python_interpreter": "/usr/bin/python3"}, DEFAULT),
])
def test_the_controller_uses_its_own_python(variables, expected):
    assert lookup(variables) == [expected]


def test_takes_no_terms():
    with pytest.raises(AnsibleLookupError, match="takes no terms"):
        lookup({}, terms=["python3"])


def test_refuses_a_setting_that_is_not_a_path():
    with pytest.raises(AnsibleLookupError, match="ailab_kubernetes_python_interpreter must be a string"):
        lookup({"ailab_kubernetes_python_interpreter": ["/usr/bin/python3"]})
