"""docs/variables.md: every role variable of the collection, generated from the roles' argument specs.

Usage: variables_reference.py [--check] [--roles-dir DIR] [--output FILE]

Reads roles/*/meta/argument_specs.yml (every entry point: main first, then the others) and writes one
section per role with a table per entry point: variable, type, default, required, description. Nested
options of dicts and lists of dicts follow their parent, indented (``parent.child``, ``parent[].child``).
The lab-level variables that roles/lab_check documents (those not named lab_check_*) come first, in their
own section. The output depends only on the specs, so a second run writes the same bytes.

--check writes nothing: it exits 1 and names the roles whose section is stale (or missing, or no longer a
role) when the file differs from what the specs give; `make docs` (or this script without --check)
regenerates it.
"""

import argparse
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB_LEVEL_ROLE = "lab_check"
LAB_LEVEL = "lab-level variables"
# Sections are delimited by these markers so that --check can name what is stale.
MARKER = "<!-- section: {} -->"
HEADER = """\
# Variables reference

<!-- Generated from roles/*/meta/argument_specs.yml by tests/harness/variables_reference.py: do not edit.
     Regenerate with `python tests/harness/variables_reference.py` (from the checkout, with the venv's
     Python); tests/unit/test_docs.py fails while this file is stale. -->

Every variable the collection's roles accept, taken from their argument specs (`meta/argument_specs.yml`),
which Ansible also checks when a role starts. A blank *default* means the spec declares none; `{{ ... }}`
defaults are evaluated at run time. Options of dicts and of lists
of dicts are listed under their parent (`parent.child`, `parent[].child`). Secrets (`no_log`) are marked
**secret**: keep them in a vault. `make check` (playbooks/check.yml) reports inventory variables that no role
knows, with the closest valid name.
"""


def load_specs(roles_dir):
    """{role: argument_specs dict} for every role that has meta/argument_specs.yml, sorted by role name."""
    specs = {}
    for path in sorted(Path(roles_dir).glob("*/meta/argument_specs.yml")):
        with path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        specs[path.parent.parent.name] = data.get("argument_specs") or {}
    return specs


def entry_points(spec):
    """Entry point names, main first, the others sorted."""
    return sorted(spec, key=lambda name: (name != "main", name))


def cell(text):
    """Text safe inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def prose(text):
    """Description text for a table cell: <placeholders> shown, not taken for HTML tags."""
    return cell(text).replace("<", "&lt;").replace(">", "&gt;")


def code(text):
    return f"`{cell(text)}`" if text != "" else ""


def description(value):
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return "" if value is None else str(value)


def render_default(option):
    if "default" not in option:
        return ""
    value = option["default"]
    if isinstance(value, str):
        return code(value) if value else '`""`'
    dumped = yaml.safe_dump(value, default_flow_style=True, sort_keys=True, width=10**6).strip()
    if dumped.endswith("..."):
        dumped = dumped[:-3].strip()
    return code(dumped)


def render_type(option):
    kind = option.get("type", "str")
    if kind == "list" and option.get("elements"):
        kind = f"list of {option['elements']}"
    text = f"`{kind}`"
    if option.get("choices"):
        text += "<br>one of " + ", ".join(code(choice) for choice in option["choices"])
    return text


def option_rows(options, prefix="", depth=0):
    rows = []
    for name, spec in (options or {}).items():
        option = spec or {}
        label = f"{'&nbsp;' * 4 * depth}{code(prefix + name)}"
        text = prose(description(option.get("description")))
        if option.get("no_log"):
            text = f"**secret** (no_log). {text}".strip()
        if option.get("aliases"):
            text += " Aliases: " + ", ".join(code(alias) for alias in option["aliases"]) + "."
        rows.append(f"| {label} | {render_type(option)} | {render_default(option)} | "
                    f"{'yes' if option.get('required') else ''} | {text} |")
        if option.get("options"):
            child = f"{prefix}{name}[]." if option.get("type") == "list" else f"{prefix}{name}."
            rows.extend(option_rows(option["options"], child, depth + 1))
    return rows


def table(options):
    if not options:
        return ["No variables."]
    return ["| variable | type | default | required | description |",
            "|---|---|---|---|---|", *option_rows(options)]


def role_section(role, spec, roles_dir, doc_dir, skip=None):
    """The Markdown section of one role (without its marker)."""
    lines = [f"## {role}", ""]
    readme = Path(roles_dir) / role / "README.md"
    if readme.exists():
        link = Path(os.path.relpath(readme.resolve(), Path(doc_dir).resolve())).as_posix()
        lines += [f"Role `ailab.cluster.{role}` ([README]({link})).", ""]
    else:
        lines += [f"Role `ailab.cluster.{role}`.", ""]
    for entry in entry_points(spec):
        entry_spec = spec[entry] or {}
        options = {name: value for name, value in (entry_spec.get("options") or {}).items()
                   if not (skip and skip(name))}
        how = "the role" if entry == "main" else f"`tasks_from: {entry}`"
        lines += [f"### {role}: {entry}", ""]
        if entry_spec.get("short_description"):
            lines += [f"{cell(entry_spec['short_description'])} ({how}).", ""]
        lines += [*table(options), ""]
    return "\n".join(lines)


def lab_level_section(specs):
    options = ((specs.get(LAB_LEVEL_ROLE) or {}).get("main") or {}).get("options") or {}
    lab = {name: value for name, value in options.items() if not name.startswith(LAB_LEVEL_ROLE + "_")}
    lines = ["## Lab-level variables", "",
             "Read by several roles and playbooks rather than one role; documented in "
             f"`roles/{LAB_LEVEL_ROLE}/meta/argument_specs.yml` so that `make check` knows them.", "",
             *table(lab), ""]
    return "\n".join(lines)


def sections(roles_dir, doc_dir):
    """[(section name, text)] in document order."""
    specs = load_specs(roles_dir)
    result = []
    if LAB_LEVEL_ROLE in specs:
        result.append((LAB_LEVEL, lab_level_section(specs)))
    for role, spec in specs.items():
        skip = (lambda name: not name.startswith(LAB_LEVEL_ROLE + "_")) if role == LAB_LEVEL_ROLE else None
        result.append((role, role_section(role, spec, roles_dir, doc_dir, skip)))
    return result


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    kept = "".join(ch for ch in heading.strip().lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def render(roles_dir, doc_dir):
    parts = sections(roles_dir, doc_dir)
    index = ["## Contents", ""]
    for _name, text in parts:
        heading = text.splitlines()[0][3:]
        index.append(f"- [{heading}](#{anchor(heading)})")
    body = [HEADER, "\n".join(index) + "\n"]
    for name, text in parts:
        body.append(MARKER.format(name) + "\n" + text)
    return "\n".join(body).rstrip("\n") + "\n"


def split_sections(text):
    """{section name: text} of a rendered document; the part before the first marker under ''."""
    result = {}
    name, chunk = "", []
    for line in text.splitlines():
        if line.startswith("<!-- section: ") and line.endswith(" -->"):
            result[name] = "\n".join(chunk).strip("\n")
            name, chunk = line[len("<!-- section: "):-len(" -->")], []
        else:
            chunk.append(line)
    result[name] = "\n".join(chunk).strip("\n")
    return result


def stale_sections(expected, actual):
    """Names of the sections that differ ('' stands for the header and contents)."""
    want, have = split_sections(expected), split_sections(actual)
    return sorted(name for name in set(want) | set(have) if want.get(name) != have.get(name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale; write nothing")
    parser.add_argument("--roles-dir", default=str(ROOT / "roles"))
    parser.add_argument("--output", default=str(ROOT / "docs" / "variables.md"))
    args = parser.parse_args(argv)
    output = Path(args.output)
    expected = render(args.roles_dir, output.parent)
    if args.check:
        actual = output.read_text(encoding="utf-8") if output.exists() else ""
        if actual == expected:
            print(f"{output} is up to date")
            return 0
        stale = [name or "(header and contents)" for name in stale_sections(expected, actual)]
        print(f"{output} is stale for: {', '.join(stale)}", file=sys.stderr)
        print("Regenerate it: make docs (or python tests/harness/variables_reference.py)", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(expected, encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
