"""The lab admin's docs stay true to the checkout.

- docs/variables.md is what tests/harness/variables_reference.py generates from the roles' argument
  specs (a spec changed without regenerating the file fails here, naming the role);
- every relative link in docs/*.md and README.md points at an existing file, and at an existing heading
  when it names an anchor;
- every `make <target>` the docs show exists in the Makefile, every playbooks/<name>.yml they name exists.
"""

import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

import variables_reference  # noqa: E402

DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

# Named in the docs but still being written when the docs were: the lead removes each entry once the
# file or Makefile target is committed, so that a later rename or removal fails here again.
PENDING_PLAYBOOKS: set[str] = set()
PENDING_MAKE_TARGETS: set[str] = set()

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
MAKE = re.compile(r"(?:^|[\s;&|(])make[ \t]+((?:[^\s`;&|)]+[ \t]*)+)", re.M)
PLAYBOOK = re.compile(r"(?<![\w/.-])playbooks/[\w-]+\.ya?ml\b")


def rel(path):
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def code_parts(text):
    """Fenced blocks and inline code spans: where commands are shown."""
    fences = [match.group(0) for match in FENCE.finditer(text)]
    prose = FENCE.sub("", text)
    return fences + [match.group(2) for match in INLINE_CODE.finditer(prose)]


def prose_only(text):
    """The text without fenced blocks and inline code (links and headings there are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(path):
    """GitHub's anchors of a Markdown file: one per heading (duplicates get -1, -2 ...) and HTML anchors."""
    text = path.read_text(encoding="utf-8")
    seen, result = {}, set(HTML_ANCHOR.findall(text))
    for match in HEADING.finditer(FENCE.sub("", text)):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # a link in a heading keeps its text
        slug = variables_reference.anchor(title.replace("`", ""))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def make_targets():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set()
    for match in re.finditer(r"^([A-Za-z0-9_.\- ]+):(?!=)", text, re.M):
        targets.update(name for name in match.group(1).split() if name != ".PHONY")
    return targets


def make_uses(text):
    """Targets of the `make ...` command lines in the code of a document (options and VAR=value skipped)."""
    uses = set()
    for part in code_parts(text):
        for match in MAKE.finditer(part):
            words = match.group(1).split()
            in_quotes = False
            for word in words:
                if in_quotes or word.startswith("-") or "=" in word:
                    in_quotes = in_quotes ^ (word.count('"') % 2 == 1)
                    continue
                if word.startswith(("<", "…", "...")):
                    break  # a placeholder, e.g. make BASE_PYTHON=... <target>
                uses.add(word.rstrip(".,:"))
                break
    return uses


# ---------------------------------------------------------------- the variables reference

def test_variables_reference_is_current(capsys):
    rc = variables_reference.main(["--check"])
    assert rc == 0, ("docs/variables.md is stale; regenerate it with python tests/harness/variables_reference.py\n"
                     + capsys.readouterr().err)


def test_every_role_option_is_in_the_reference():
    text = (ROOT / "docs" / "variables.md").read_text(encoding="utf-8")
    specs = variables_reference.load_specs(ROOT / "roles")
    assert len(specs) >= 28
    for role, spec in specs.items():
        assert f"\n## {role}\n" in text
        for entry, entry_spec in spec.items():
            assert f"\n### {role}: {entry}\n" in text
            for name in (entry_spec or {}).get("options") or {}:
                assert f"`{name}`" in text, f"{role}:{entry} option {name} missing from docs/variables.md"


@pytest.fixture()
def spec_copy(tmp_path):
    """Three roles' argument specs and READMEs in a scratch roles dir, with their reference generated."""
    roles = tmp_path / "roles"
    for role in ("cni", "kubernetes_apply", "lab_check"):
        (roles / role / "meta").mkdir(parents=True)
        shutil.copy(ROOT / "roles" / role / "meta" / "argument_specs.yml", roles / role / "meta")
        shutil.copy(ROOT / "roles" / role / "README.md", roles / role)
    output = tmp_path / "docs" / "variables.md"
    assert variables_reference.main(["--roles-dir", str(roles), "--output", str(output)]) == 0
    return roles, output


def test_check_names_the_role_whose_spec_changed(spec_copy, capsys):
    roles, output = spec_copy
    args = ["--roles-dir", str(roles), "--output", str(output), "--check"]
    assert variables_reference.main(args) == 0
    path = roles / "cni" / "meta" / "argument_specs.yml"
    spec = yaml.safe_load(path.read_text())
    spec["argument_specs"]["main"]["options"]["cni_wait_delay"]["default"] = 5
    path.write_text(yaml.safe_dump(spec))
    before = output.read_bytes()
    capsys.readouterr()
    assert variables_reference.main(args) == 1
    err = capsys.readouterr().err
    assert "stale for: cni\n" in err and "kubernetes_apply" not in err
    assert "python tests/harness/variables_reference.py" in err
    assert output.read_bytes() == before, "--check writes nothing"


def test_check_names_a_new_role_and_a_lab_level_change(spec_copy, capsys):
    roles, output = spec_copy
    (roles / "extra" / "meta").mkdir(parents=True)
    (roles / "extra" / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n      extra_x: {type: int, default: 1, description: X.}\n")
    path = roles / "lab_check" / "meta" / "argument_specs.yml"
    path.write_text(path.read_text().replace("The confirmation phrase", "The phrase"))
    assert variables_reference.main(["--roles-dir", str(roles), "--output", str(output), "--check"]) == 1
    err = capsys.readouterr().err
    assert "extra" in err and "lab-level variables" in err and "cni" not in err.split("stale for:")[1].split("\n")[0]


def test_check_fails_when_the_file_is_missing(spec_copy, capsys):
    roles, output = spec_copy
    output.unlink()
    assert variables_reference.main(["--roles-dir", str(roles), "--output", str(output), "--check"]) == 1
    assert "stale for:" in capsys.readouterr().err
    assert not output.exists()


def test_rendering_of_types_defaults_nesting_and_secrets(tmp_path):
    roles = tmp_path / "roles"
    (roles / "demo" / "meta").mkdir(parents=True)
    (roles / "demo" / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {
        "other": {"short_description": "Other entry", "options": {"demo_z": {"type": "bool", "default": False}}},
        "main": {"short_description": "Demo role", "options": {
            "demo_mode": {"type": "str", "choices": ["a", "b"], "default": "a", "description": "Mode | pipe <x>."},
            "demo_items": {"type": "list", "elements": "dict", "required": True, "description": ["One.", "Two."],
                           "options": {"name": {"type": "str", "required": True, "description": "Name."},
                                       "sub": {"type": "dict", "options": {"deep": {"type": "int", "default": 3}}}}},
            "demo_map": {"type": "dict", "default": {"b": 1, "a": [1, 2]}},
            "demo_token": {"type": "str", "default": "", "no_log": True, "description": "Token."},
        }}}}))
    output = tmp_path / "docs" / "variables.md"
    text = variables_reference.render(roles, output.parent)
    assert text == variables_reference.render(roles, output.parent)
    assert text.index("### demo: main") < text.index("### demo: other")
    assert "Other entry (`tasks_from: other`)." in text
    assert "| `demo_mode` | `str`<br>one of `a`, `b` | `a` |  | Mode \\| pipe &lt;x&gt;. |" in text
    assert "| `demo_items` | `list of dict` |  | yes | One. Two. |" in text
    assert "| &nbsp;&nbsp;&nbsp;&nbsp;`demo_items[].name` | `str` |  | yes | Name. |" in text
    assert "| " + "&nbsp;" * 8 + "`demo_items[].sub.deep` | `int` | `3` |  |  |" in text
    assert "| `demo_map` | `dict` | `{a: [1, 2], b: 1}` |" in text
    assert "| `demo_token` | `str` | `\"\"` |  | **secret** (no_log). Token. |" in text
    assert "| `demo_z` | `bool` | `false` |" in text
    assert "Lab-level" not in text, "no lab_check role, no lab-level section"


def test_lab_level_variables_come_first_and_once():
    text = (ROOT / "docs" / "variables.md").read_text(encoding="utf-8")
    lab = text.split("<!-- section: lab-level variables -->")[1].split("<!-- section: ")[0]
    role = text.split("<!-- section: lab_check -->")[1].split("<!-- section: ")[0]
    assert "`ailab_tenants`" in lab and "`ailab_tenants`" not in role
    assert "`lab_check_unknown_variables`" in role and "`lab_check_unknown_variables`" not in lab


# ---------------------------------------------------------------- links, make targets, playbooks

@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_relative_links_point_at_existing_files_and_anchors(doc):
    broken = []
    for target in LINK.findall(prose_only(doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # https:, mailto: ...
        path, _sep, fragment = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{fragment} in {rel(dest)}")
    assert not broken, f"{rel(doc)}:\n" + "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_make_targets_shown_exist(doc):
    missing = make_uses(doc.read_text(encoding="utf-8")) - make_targets() - PENDING_MAKE_TARGETS
    assert not missing, f"{rel(doc)} shows make targets the Makefile lacks: {sorted(missing)}"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_playbooks_named_exist(doc):
    named = set(PLAYBOOK.findall(doc.read_text(encoding="utf-8")))
    missing = {name for name in named if not (ROOT / name).exists()} - PENDING_PLAYBOOKS
    assert not missing, f"{rel(doc)} names playbooks that do not exist: {sorted(missing)}"


def test_the_checks_see_what_they_check():
    """The extractors find real uses, so the checks above cannot pass by finding nothing."""
    sample = ("Run `make lab ARGS=\"--check --diff\"` and\n```bash\nmake BASE_PYTHON=/x <target>\n"
              "make export INVENTORY=inventories/x\n```\nto make sure; [a](b.md#c) `[x](y.md)`\n"
              "- item\n  ```bash\n  make check  # [z](z.md)\n  ```\n")
    assert make_uses(sample) == {"lab", "export", "check"}
    assert LINK.findall(prose_only(sample)) == ["b.md#c"]
    assert PLAYBOOK.findall("see playbooks/site.yml, roles/x/playbooks/y.yml") == ["playbooks/site.yml"]
    assert {"lab", "export", "check", "test"} <= make_targets()
    assert "lab-level-variables" in anchors(ROOT / "docs" / "variables.md")
    assert "kubernetes_apply-helm" in anchors(ROOT / "docs" / "variables.md")
    all_links = [t for doc in DOCS for t in LINK.findall(prose_only(doc.read_text(encoding="utf-8")))]
    assert len(all_links) > 20 and any("#" in t for t in all_links)
