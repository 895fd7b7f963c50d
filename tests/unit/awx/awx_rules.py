"""AWX 24.6.1's rules for survey specs and custom credential types, as a checker of plain data.

Each rule names the upstream code it models (github.com/ansible/awx). Where the checked sources were
not certainly those of 24.6.1, or AWX is lenient where a lenient answer would hurt a lab, the rule is
stricter than AWX and says so.

- ``survey_problems(spec)``: what ``POST /api/v2/job_templates/<id>/survey_spec/`` refuses
  (awx/api/views/__init__.py ``JobTemplateSurveySpec._validate_spec_data``).
- ``launch_defaults(spec)``: the survey defaults AWX puts in the extra vars of a job started without
  answers (a workflow node, an API launch): awx/main/models/mixins.py
  ``SurveyJobTemplateMixin._update_unified_job_kwargs`` applies a default only when
  ``_survey_element_validation`` accepts it.
- ``answer_problems(spec, answers)``: ``_survey_element_validation`` for each question, as at launch.
- ``credential_type_problems(credential_type)``: awx/main/fields.py ``CredentialTypeInputField`` and
  ``CredentialTypeInjectorField`` (JSON schema and ``validate``), plus the custom-type ``kind`` rule.
"""

import re

import jinja2
from jinja2 import sandbox

# awx/main/constants.py SURVEY_TYPE_MAPPING: question type -> type of a non-empty default.
SURVEY_TYPE_MAPPING = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                       "integer": int, "float": (float, int)}
# Keys the survey editor of AWX writes; AWX stores any key, this checker refuses unknown ones (stricter:
# a typo such as "choises" would otherwise be kept and do nothing).
QUESTION_KEYS = {"type", "question_name", "question_description", "variable", "required", "default", "choices",
                 "min", "max", "new_question"}
# Ansible variable names (awx/main/fields.py uses the same pattern for credential input ids and extra
# vars injectors); AWX does not check survey variable names at all (stricter).
VARIABLE_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Prefixes AWX reserves for the variables it sets itself (awx/main/constants.py JOB_VARIABLE_PREFIXES).
RESERVED_PREFIXES = ("awx_", "tower_")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _choice_list(choices):
    if isinstance(choices, str):
        return [choice for choice in choices.splitlines() if choice.strip() != ""]
    return list(choices)


def survey_problems(survey):
    """The reasons AWX (or this stricter checker) refuses ``survey``; [] when it is accepted."""
    problems = []
    # _validate_spec_data: name and description strings, spec a non-empty list.
    for field, expected in (("name", str), ("description", str), ("spec", list)):
        if field not in survey:
            problems.append(f"Field '{field}' is missing from survey spec.")
        elif not isinstance(survey[field], expected):
            problems.append(f"Expected {expected.__name__} for field '{field}'.")
    if problems:
        return problems
    if not survey["spec"]:
        return ["'spec' doesn't contain any items."]
    unknown = set(survey) - {"name", "description", "spec"}
    if unknown:
        problems.append(f"unknown survey keys {sorted(unknown)} (stricter than AWX)")
    variables = set()
    for idx, item in enumerate(survey["spec"]):
        if not isinstance(item, dict):
            problems.append(f"Survey question {idx} is not a json object.")
            continue
        # type, question_name, variable: strings; required: a boolean.
        missing = [key for key in ("type", "question_name", "variable", "required") if key not in item]
        if missing:
            problems.append(f"'{missing[0]}' missing from survey question {idx}")
            continue
        for key in ("type", "question_name", "variable"):
            if not isinstance(item[key], str):
                problems.append(f"'{key}' in survey question {idx} expected to be string.")
        if not isinstance(item["required"], bool):
            problems.append(f"'required' in survey question {idx} expected to be boolean.")
        if problems:
            continue
        unknown = set(item) - QUESTION_KEYS
        if unknown:
            problems.append(f"survey question {idx} has unknown keys {sorted(unknown)} (stricter than AWX)")
        variable = item["variable"]
        # 'variable' duplicated in survey question <idx>.
        if variable in variables:
            problems.append(f"'variable' '{variable}' duplicated in survey question {idx}.")
        variables.add(variable)
        if not VARIABLE_NAME.match(variable) or variable.startswith(RESERVED_PREFIXES):
            problems.append(f"survey question {idx}: '{variable}' is not a usable Ansible variable name (stricter than AWX)")
        qtype = item["type"]
        if qtype not in SURVEY_TYPE_MAPPING:
            problems.append(f"'{qtype}' in survey question {idx} is not one of the allowed question types.")
            continue
        # A non-empty default must have the type SURVEY_TYPE_MAPPING gives.
        if "default" in item and item["default"] != "" and not isinstance(item["default"], SURVEY_TYPE_MAPPING[qtype]):
            problems.append(f"Default value {item['default']!r} in survey question {idx} expected to be {qtype}.")
        if qtype == "integer" and isinstance(item.get("default"), bool):
            problems.append(f"Default value in survey question {idx} is a boolean, not an integer.")
        # min and max: integers (or None).
        for key in ("min", "max"):
            if key in item and item[key] is not None and not _is_int(item[key]):
                problems.append(f"The {key} limit in survey question {idx} expected to be integer.")
        # multiselect / multiplechoice: choices required; defaults among them; one default for multiplechoice.
        if qtype in ("multiselect", "multiplechoice"):
            if "choices" not in item:
                problems.append(f"Survey question {idx} of type {qtype} must specify choices.")
                continue
            choices = _choice_list(item["choices"])
            if not choices:
                problems.append(f"Survey question {idx} of type {qtype} has no choices (stricter than AWX).")
            if len(set(choices)) != len(choices):
                problems.append(f"Survey question {idx} lists a choice twice (stricter than AWX).")
            if "default" in item:
                defaults = _choice_list(item["default"]) if isinstance(item["default"], str) else item["default"]
                if qtype == "multiplechoice" and len(defaults) > 1:
                    problems.append("Multiple Choice (Single Select) can only have one default value.")
                if any(default not in choices for default in defaults):
                    problems.append("Default choice must be answered from the choices listed.")
        elif "choices" in item and item["choices"] not in ("", [], None):
            problems.append(f"survey question {idx}: choices on a {qtype} question do nothing (stricter than AWX)")
        # $encrypted$ is reserved for password defaults.
        if isinstance(item.get("default"), str) and item["default"].startswith("$encrypted$") and qtype != "password":
            problems.append(f"$encrypted$ is a reserved keyword for password question defaults, survey question {idx}.")
        # The default must pass the launch-time validation too, or AWX silently drops it (stricter:
        # a default that is never used is a mistake, except the documented multiselect case below).
        if item.get("default") not in (None, "") and qtype != "multiselect":
            errors = _element_problems(item, {variable: item["default"]})
            if errors:
                problems.append(f"survey question {idx}: its default fails AWX's launch validation: {errors[0]}")
    return problems


def _element_problems(item, data):
    """awx/main/models/mixins.py SurveyJobTemplateMixin._survey_element_validation (validate_required)."""
    variable = item["variable"]
    qtype = item["type"]
    if variable not in data:
        return [f"'{variable}' value missing"] if item["required"] else []
    value = data[variable]
    low = item.get("min") if item.get("min") not in ("", None) else None
    high = item.get("max") if item.get("max") not in ("", None) else None
    if qtype in ("textarea", "text", "password"):
        if not isinstance(value, str):
            return [f"Value {value} for '{variable}' expected to be a string."]
        errors = []
        if low is not None and len(value) < int(low):
            errors.append(f"'{variable}' value {value} is too small (length is {len(value)} must be at least {low}).")
        if high is not None and len(value) > int(high):
            errors.append(f"'{variable}' value {value} is too large (must be no more than {high}).")
        return errors
    if qtype == "integer":
        if isinstance(value, bool) or not isinstance(value, int):  # AWX: type(value) is int
            return [f"Value {value} for '{variable}' expected to be an integer."]
    elif qtype == "float":
        if isinstance(value, bool) or not isinstance(value, (float, int)):
            return [f"Value {value} for '{variable}' expected to be a numeric type."]
    elif qtype == "multiselect":
        if not isinstance(value, list):
            return [f"'{variable}' value is expected to be a list."]
        choices = _choice_list(item["choices"])
        return [f"Value {val} for '{variable}' expected to be one of {choices}." for val in value if val not in choices]
    elif qtype == "multiplechoice":
        choices = _choice_list(item["choices"])
        return [] if value in choices else [f"Value {value} for '{variable}' expected to be one of {choices}."]
    errors = []
    if low is not None and value < low:
        errors.append(f"'{variable}' value {value} is too small (must be at least {low}).")
    if high is not None and value > high:
        errors.append(f"'{variable}' value {value} is too large (must be no more than {high}).")
    return errors


def answer_problems(survey, answers):
    """What AWX answers to a launch with ``answers`` (extra vars): the errors of every question."""
    return [error for item in survey["spec"] for error in _element_problems(item, answers)]


def launch_defaults(survey):
    """Extra vars AWX adds from the survey when a job starts without answers (_update_unified_job_kwargs):
    each default that passes _survey_element_validation. A multiselect default is a newline-separated
    string there, which that validation refuses (it wants a list): AWX never applies it."""
    applied = {}
    for item in survey.get("spec", []):
        if item.get("default") is not None and not _element_problems(item, {item["variable"]: item["default"]}):
            applied[item["variable"]] = item["default"]
    return applied


# ------------------------------------------------------------------ credential types
# awx/main/fields.py CredentialTypeInputField.schema: the only keys of inputs and of each field.
INPUT_KEYS = {"fields", "required"}
FIELD_KEYS = {"id", "type", "format", "choices", "label", "help_text", "multiline", "secret", "ask_at_runtime", "default"}
FIELD_ID = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
# CredentialTypeInjectorField.schema: file (template or template.<name>), env, extra_vars.
INJECTOR_KEYS = {"file", "env", "extra_vars"}
FILE_KEY = re.compile(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$")
ENV_NAME = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
ASCII = re.compile(r"^[\x00-\x7F]*$")
# validate_env_var_allowed refuses ANSIBLE_* and the names of awx/main/constants.py ENV_BLOCKLIST (the
# job's own environment). Stricter: only the names ailab.cluster and the Kubernetes clients read.
ENV_ALLOWED = re.compile(r"^(AILAB_[A-Z0-9_]+|KUBECONFIG|K8S_AUTH_[A-Z0-9_]+)$")
# AWX's API accepts only these kinds for a custom credential type (CredentialTypeSerializer.validate).
CUSTOM_KINDS = {"cloud", "net"}


class _Filename(str):
    """tower.filename of a single-file injector; with attributes for the multi-file form."""


def credential_type_problems(credential_type):
    """The reasons AWX refuses ``credential_type`` (name, kind, inputs, injectors); [] when accepted."""
    problems = []
    if not isinstance(credential_type.get("name"), str) or not credential_type["name"]:
        problems.append("a credential type needs a name")
    if credential_type.get("kind") not in CUSTOM_KINDS:
        problems.append(f"kind must be one of {sorted(CUSTOM_KINDS)} for a custom credential type")
    inputs = credential_type.get("inputs", {})
    injectors = credential_type.get("injectors", {})
    if not isinstance(inputs, dict) or set(inputs) - INPUT_KEYS:
        return problems + [f"inputs may only have {sorted(INPUT_KEYS)}"]
    ids = []
    for field in inputs.get("fields", []):
        if not isinstance(field, dict) or set(field) - FIELD_KEYS:
            problems.append(f"input field {field!r} has keys AWX does not allow ({sorted(set(field) - FIELD_KEYS)})")
            continue
        if "id" not in field or "label" not in field:
            problems.append(f"input field {field!r} needs id and label")
            continue
        if not isinstance(field["id"], str) or not FIELD_ID.match(field["id"]):
            problems.append(f"{field['id']!r} is an invalid variable name")
        if field["id"] == "tower" or field["id"] == "awx":
            problems.append(f"{field['id']!r} is a reserved field name")
        if field["id"] in ids:
            problems.append(f"field IDs must be unique ({field['id']})")
        ids.append(field["id"])
        ftype = field.get("type", "string")
        if ftype not in ("string", "boolean"):
            problems.append(f"field {field['id']}: type must be string or boolean")
            continue
        wanted = {"string": str, "boolean": bool}[ftype]
        if "default" in field and (not isinstance(field["default"], wanted)
                                   or (wanted is str and isinstance(field["default"], bool))):
            problems.append(f"field {field['id']}: {field['default']!r} is not a {ftype}")
        for key in ("choices", "multiline", "format", "secret"):
            if key in field and ftype != "string":
                problems.append(f"{key} not allowed for {ftype} type ({field['id']})")
        for key in ("label", "help_text"):
            if key in field and not isinstance(field[key], str):
                problems.append(f"field {field['id']}: {key} must be a string")
        for key in ("multiline", "secret", "ask_at_runtime"):
            if key in field and not isinstance(field[key], bool):
                problems.append(f"field {field['id']}: {key} must be a boolean")
        if "format" in field and field["format"] not in ("ssh_private_key", "url"):
            problems.append(f"field {field['id']}: format must be ssh_private_key or url")
        if "choices" in field and (not field["choices"] or len(set(field["choices"])) != len(field["choices"])):
            problems.append(f"field {field['id']}: choices must be a non-empty list of unique strings")
    for required in inputs.get("required", []):
        if required not in ids:
            problems.append(f"required input {required!r} is not a field (stricter than AWX)")
    if not isinstance(injectors, dict) or set(injectors) - INJECTOR_KEYS:
        return problems + [f"injectors may only have {sorted(INJECTOR_KEYS)}"]
    files = injectors.get("file", {})
    for key in files:
        if not FILE_KEY.match(key):
            problems.append(f"file injector {key!r} must be template or template.<name>")
    # Single-file or multi-file syntax, never both.
    if "template" in files and len(files) > 1:
        problems.append("Must use multi-file syntax when injecting multiple files")
    for name in injectors.get("env", {}):
        if not ENV_NAME.match(name):
            problems.append(f"environment variable name {name!r} is invalid")
        elif name.startswith("ANSIBLE_"):
            problems.append(f"Environment variable {name} may affect Ansible configuration so its use is not allowed in credentials.")
        elif not ENV_ALLOWED.match(name):
            problems.append(f"environment variable {name} is not one ailab.cluster reads (stricter than AWX)")
    for name in injectors.get("extra_vars", {}):
        if not ENV_NAME.match(name):
            problems.append(f"extra var name {name!r} is invalid")
    for kind in ("file", "env", "extra_vars"):
        for key, value in injectors.get(kind, {}).items():
            if not isinstance(value, str):
                problems.append(f"{kind} injector {key} must be a string template")
            elif kind == "env" and not ASCII.match(value):
                problems.append(f"env injector {key} must be ASCII")
    if problems:
        return problems
    # Every injector template renders with the defined fields and tower.filename only (StrictUndefined,
    # sandboxed): CredentialTypeInjectorField.validate.
    namespace = {field_id: "EXAMPLE" for field_id in ids}
    if "template" in files:
        filename = _Filename("EXAMPLE_FILENAME")
    else:
        filename = type("Files", (), {key.split(".", 1)[1]: "EXAMPLE_FILENAME" for key in files})()
    namespace["tower"] = type("Tower", (), {"filename": filename})()
    env = sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    for kind in ("file", "env", "extra_vars"):
        for key, template in injectors.get(kind, {}).items():
            try:
                rendered = env.from_string(template).render(namespace)
            except jinja2.UndefinedError as exc:
                problems.append(f"{key} uses an undefined field ({exc})")
                continue
            except jinja2.TemplateSyntaxError as exc:
                problems.append(f"Syntax error rendering template for {key} inside of {kind} ({exc})")
                continue
            if "<" in rendered and "object at" in rendered:
                problems.append(f"{key} renders an object, not a value: use tower.filename.<name> for multi-file injectors")
    return problems
