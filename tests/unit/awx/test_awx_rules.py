"""The AWX rule checker (awx_rules) refuses what AWX 24.6.1 refuses: one case per rule, so that the
checks of the real configuration (test_awx_config) cannot pass by accident."""

import copy

import pytest

from unit.awx.awx_rules import answer_problems, credential_type_problems, launch_defaults, survey_problems

SURVEY = {"name": "S", "description": "", "spec": [
    {"question_name": "Version", "variable": "version", "type": "text", "required": True, "min": 1, "max": 8,
     "default": "1.34.2"},
    {"question_name": "Tenants", "variable": "tenants", "type": "multiselect", "required": False,
     "choices": "a\nb", "default": "a\nb"},
    {"question_name": "Size", "variable": "size", "type": "multiplechoice", "required": True, "choices": ["s", "l"],
     "default": "s"},
    {"question_name": "Count", "variable": "count", "type": "integer", "required": False, "min": 0, "max": 9,
     "default": 3},
]}


def broken(change):
    survey = copy.deepcopy(SURVEY)
    change(survey)
    return survey_problems(survey)


def test_a_valid_survey_passes():
    assert survey_problems(SURVEY) == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.pop("description"), "Field 'description' is missing"),
    (lambda s: s.update(spec=[]), "doesn't contain any items"),
    (lambda s: s["spec"][0].pop("required"), "'required' missing from survey question 0"),
    (lambda s: s["spec"][0].update(required="yes"), "'required' in survey question 0 expected to be boolean"),
    (lambda s: s["spec"][1].update(variable="version"), "'variable' 'version' duplicated"),
    (lambda s: s["spec"][0].update(type="date"), "not one of the allowed question types"),
    (lambda s: s["spec"][3].update(default="3"), "expected to be integer"),
    (lambda s: s["spec"][3].update(default=True), "is a boolean"),
    (lambda s: s["spec"][0].update(default=1.34), "expected to be text"),
    (lambda s: s["spec"][0].update(min="1"), "min limit in survey question 0 expected to be integer"),
    (lambda s: s["spec"][1].pop("choices"), "must specify choices"),
    (lambda s: s["spec"][2].update(default="s\nl"), "can only have one default value"),
    (lambda s: s["spec"][2].update(default="m"), "Default choice must be answered from the choices"),
    (lambda s: s["spec"][1].update(default="a\nc"), "Default choice must be answered from the choices"),
    (lambda s: s["spec"][0].update(default="$encrypted$x"), "reserved keyword"),
    (lambda s: s["spec"][0].update(default="1.34.2-too-long"), "fails AWX's launch validation"),
    (lambda s: s["spec"][0].update(variable="awx_version"), "not a usable Ansible variable name"),
    (lambda s: s["spec"][0].update(choises="x"), "unknown keys"),
])
def test_each_rule_refuses(change, message):
    problems = broken(change)
    assert any(message in problem for problem in problems), problems


def test_launch_applies_the_defaults_awx_applies():
    # The multiselect default is a string: _survey_element_validation wants a list, so AWX drops it.
    assert launch_defaults(SURVEY) == {"version": "1.34.2", "size": "s", "count": 3}


def test_launch_answers_are_checked():
    assert answer_problems(SURVEY, {"version": "1.34.2", "size": "s"}) == []
    assert answer_problems(SURVEY, {"size": "s"}) == ["'version' value missing"]
    assert answer_problems(SURVEY, {"version": "1.34.2", "size": "s", "tenants": "a"}) == ["'tenants' value is expected to be a list."]
    assert answer_problems(SURVEY, {"version": "1.34.2", "size": "s", "tenants": ["c"]})[0].startswith("Value c for 'tenants'")
    assert "too large" in answer_problems(SURVEY, {"version": "1.34.2", "size": "s", "count": 10})[0]


CREDENTIAL_TYPE = {
    "name": "T", "kind": "cloud",
    "inputs": {"fields": [{"id": "host", "label": "Host"}, {"id": "token", "label": "Token", "type": "string", "secret": True},
                          {"id": "ca", "label": "CA", "multiline": True}],
               "required": ["host", "token"]},
    "injectors": {"file": {"template": "{{ ca }}"},
                  "env": {"AILAB_HOST": "{{ host }}", "AILAB_TOKEN": "{{ token }}", "AILAB_CA": "{{ tower.filename }}"}},
}


def test_a_valid_credential_type_passes():
    assert credential_type_problems(CREDENTIAL_TYPE) == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.update(kind="ssh"), "kind must be one of"),
    (lambda c: c["inputs"].update(dependencies={}), "inputs may only have"),
    (lambda c: c["inputs"]["fields"][0].update(placeholder="x"), "keys AWX does not allow"),
    (lambda c: c["inputs"]["fields"][0].pop("label"), "needs id and label"),
    (lambda c: c["inputs"]["fields"][0].update(id="1host"), "invalid variable name"),
    (lambda c: c["inputs"]["fields"][0].update(id="tower"), "reserved field name"),
    (lambda c: c["inputs"]["fields"][1].update(id="host"), "field IDs must be unique"),
    (lambda c: c["inputs"]["fields"][0].update(type="integer"), "type must be string or boolean"),
    (lambda c: c["inputs"]["fields"][0].update(type="boolean", default="yes"), "is not a boolean"),
    (lambda c: c["inputs"]["fields"][0].update(type="boolean", secret=True), "secret not allowed for boolean"),
    (lambda c: c["inputs"].update(required=["port"]), "required input 'port' is not a field"),
    (lambda c: c["injectors"].update(args={}), "injectors may only have"),
    (lambda c: c["injectors"]["file"].update({"template.extra": "x"}), "multi-file syntax"),
    (lambda c: c["injectors"]["env"].update(ANSIBLE_CONFIG="x"), "may affect Ansible configuration"),
    (lambda c: c["injectors"]["env"].update(PATH="/tmp"), "not one ailab.cluster reads"),
    (lambda c: c["injectors"]["env"].update({"AILAB_PORT": "{{ port }}"}), "uses an undefined field"),
    (lambda c: c["injectors"]["env"].update({"AILAB_PORT": "{{ host "}), "Syntax error"),
    (lambda c: c["injectors"]["env"].update({"AILAB_PORT": "{{ tower.filename.ca }}"}), "undefined field"),
])
def test_each_credential_type_rule_refuses(change, message):
    credential_type = copy.deepcopy(CREDENTIAL_TYPE)
    change(credential_type)
    problems = credential_type_problems(credential_type)
    assert any(message in problem for problem in problems), problems
