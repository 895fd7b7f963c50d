# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write Kubernetes objects and other export files on the controller in one task.

The export mode of ``ailab.cluster.kubernetes_apply`` writes every object to
``<export_dir>/<namespace or _cluster>/<kind>-<name><suffix>.yaml``. Doing that with
``ansible.builtin.copy`` in a loop costs two module runs per object; this action does the same
work in one Python call on the controller, never touching the target host's connection:

* the content is ``'---\\n'`` followed by Ansible's own ``to_nice_yaml`` filter (indent 2, keys in
  the given order, width 1000), so the files are byte for byte those the copy loop wrote;
* files are 0644, Secrets 0600; created directories 0755, and the (namespace) directories below
  export_dir that hold files are set back to 0755 when they differ; export_dir keeps its own mode;
* a file is rewritten only when its content differs and chmod-ed only when its mode differs;
  writes go to a temporary file in the same directory renamed over the target, so an interrupted
  run never leaves half a file;
* check mode writes nothing and reports what would change; diff mode returns one diff per file,
  with "(secret content hidden)" instead of the content of Secrets and of files marked secret;
* neither the result nor an error message ever carries the content of a Secret.

``files`` writes already rendered files (Helm values, releases.yml) the same way.
The documentation of the options is in ``plugins/modules/kubernetes_export.py``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence

from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase
# The filter the copy loop used: same dumper (AnsibleDumper), same vault handling, same output.
from ansible.plugins.filter.core import to_nice_yaml

# What diff mode shows instead of the content of a Secret (before: an existing file, after: the new one).
SECRET_HIDDEN_BEFORE = "(secret content hidden: previous version)\n"
SECRET_HIDDEN = "(secret content hidden)\n"
FILE_MODE = 0o644
SECRET_MODE = 0o600
DIR_MODE = 0o755
# A path component the export may create: no separator, no NUL (and not "." or "..").
_COMPONENT = re.compile(r"^[^/\x00]+$")
_MODE = re.compile(r"^0?[0-7]{3}$")


class ExportError(Exception):
    """Bad input; the message names the object or file and what to change (never Secret content)."""


def render_object(obj):
    """The exported text of one Kubernetes object, exactly as the copy loop wrote it."""
    return "---\n" + to_nice_yaml(obj, indent=2, sort_keys=False, width=1000)


def _label(index, obj):
    """How an error names an object: its position and whatever identifies it (never its data)."""
    if not isinstance(obj, Mapping):
        return f"objects[{index}] (a {type(obj).__name__}, not a mapping)"
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    parts = [str(part) for part in (obj.get("kind"), namespace, name) if isinstance(part, str) and part]
    return f"objects[{index}]" + (f" ({'/'.join(parts)})" if parts else "")


def _component(value, what, label):
    """``value`` as one path component; raises ExportError naming ``what`` otherwise."""
    if not isinstance(value, str) or not _COMPONENT.match(value) or value in (".", ".."):
        got = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise ExportError(f"{label}: {what} must be a non-empty string without '/' (a Kubernetes name), got {got}.")
    return value


def object_files(objects, suffix="", cluster_dir="_cluster"):
    """``[(relative path, text, mode, secret)]`` of the objects, in order; raises ExportError."""
    if not isinstance(objects, Sequence) or isinstance(objects, (str, bytes)):
        raise ExportError(f"objects must be a list of Kubernetes objects, got a {type(objects).__name__}.")
    files = []
    for index, obj in enumerate(objects):
        label = _label(index, obj)
        if not isinstance(obj, Mapping):
            raise ExportError(f"{label}: each object must be a mapping with apiVersion, kind and metadata.name.")
        metadata = obj.get("metadata")
        if not isinstance(obj.get("kind"), str) or not obj.get("kind") or not isinstance(metadata, Mapping) \
                or "name" not in metadata:
            raise ExportError(f"{label}: each object needs kind and metadata.name to name its export file.")
        kind = _component(obj["kind"], "kind", label)
        name = _component(metadata["name"], "metadata.name", label)
        namespace = metadata.get("namespace")
        directory = cluster_dir if namespace is None else _component(namespace, "metadata.namespace", label)
        secret = kind == "Secret"
        files.append((f"{directory}/{kind.lower()}-{name}{suffix}.yaml", obj, SECRET_MODE if secret else FILE_MODE,
                      secret))
    return files


def rendered_files(files):
    """``[(relative path, text, mode, secret)]`` of already rendered files; raises ExportError."""
    if not isinstance(files, Sequence) or isinstance(files, (str, bytes)):
        raise ExportError(f"files must be a list of {{path, content, mode, secret}}, got a {type(files).__name__}.")
    result = []
    for index, entry in enumerate(files):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            raise ExportError(f"files[{index}] must be a mapping with path (relative to export_dir) and content.")
        label = f"files[{index}] ({entry['path']})"
        unknown = sorted(set(entry) - {"path", "content", "mode", "secret"})
        if unknown:
            raise ExportError(f"{label}: unknown keys {', '.join(unknown)}; use path, content, mode, secret.")
        path = entry["path"]
        for part in path.split("/"):
            _component(part, "each part of path", label)
        secret = entry.get("secret", False)
        if not isinstance(secret, bool):
            raise ExportError(f"{label}: secret must be true or false.")
        content = entry.get("content")
        if not isinstance(content, str):
            raise ExportError(f"{label}: content must be a string (render it with to_nice_yaml first).")
        mode = entry.get("mode", "0600" if secret else "0644")
        if isinstance(mode, int) and not isinstance(mode, bool):
            mode = f"{mode:o}"
        if not isinstance(mode, str) or not _MODE.match(mode):
            raise ExportError(f"{label}: mode must be an octal string such as '0644'.")
        result.append((path, content, int(mode, 8), secret))
    return result


def _mode_text(mode):
    return f"{mode:04o}"


def _write_atomic(path, data, mode):
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class ActionModule(ActionBase):
    """Write export files on the controller; see the module documentation."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _VALID_ARGS = frozenset(("export_dir", "objects", "suffix", "cluster_dir", "files"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        try:
            export_dir, files = self._plan(args)
        except ExportError as exc:
            result.update(failed=True, changed=False, msg=str(exc))
            return result
        check = bool(self._task.check_mode)
        want_diff = bool(self._task.diff)
        diffs = []
        changed_files = []
        try:
            created = self._directories(export_dir, files, check, diffs)
            for path, data, mode, secret in files:
                if self._file(path, data, mode, secret, check, diffs):
                    changed_files.append(path)
        except OSError as exc:
            # The error names the file and the system's reason (strerror), never the content.
            result.update(failed=True, changed=bool(changed_files),
                          msg=f"Cannot write the export under {export_dir}: {exc.strerror} ({exc.filename}).",
                          changed_files=changed_files)
            return result
        result.update(changed=bool(changed_files or created), files=[f[0] for f in files],
                      changed_files=changed_files, changed_directories=created)
        if want_diff and diffs:
            result["diff"] = diffs
        return result

    def _plan(self, args):
        """Check every input first (nothing is written on bad input); render every file."""
        export_dir = args.get("export_dir")
        if not isinstance(export_dir, str) or not export_dir.startswith("/"):
            raise ExportError(
                "export_dir (ailab_kubernetes_export_dir) must be an absolute path on the controller, "
                f"got {export_dir!r}.")
        export_dir = os.path.normpath(export_dir)
        suffix = args.get("suffix") or ""
        if not isinstance(suffix, str) or not re.match(r"^(\.[a-z0-9][-a-z0-9]*)?$", suffix):
            raise ExportError(f"suffix must be empty or a dot and a lowercase word ('.gpu-operator'), got {suffix!r}.")
        cluster_dir = args.get("cluster_dir", "_cluster")
        _component(cluster_dir, "cluster_dir", "cluster_dir")
        planned = []
        for rel, obj, mode, secret in object_files(args.get("objects") or [], suffix, cluster_dir):
            try:
                text = render_object(obj)
            except Exception as exc:  # a value the YAML dumper cannot represent
                raise ExportError(f"{rel}: cannot be written as YAML ({type(exc).__name__}).") from None
            planned.append((rel, text, mode, secret))
        planned += rendered_files(args.get("files") or [])
        # One file per path: a later entry for the same path replaces an earlier one, as the loop did.
        by_path = {}
        for rel, text, mode, secret in planned:
            data = to_bytes(text, errors="surrogate_or_strict")
            by_path[os.path.join(export_dir, rel)] = (data, mode, secret)
        return export_dir, [(path, data, mode, secret) for path, (data, mode, secret) in by_path.items()]

    @staticmethod
    def _directories(export_dir, files, check, diffs):
        """Create the missing directories (0755, parents too); set the directories below export_dir
        that hold files (the namespace directories) to 0755. export_dir itself keeps its mode."""
        changed = []
        for directory in dict.fromkeys(os.path.dirname(path) for path, _d, _m, _s in files):
            missing = []
            current = directory
            while not os.path.isdir(current):
                missing.append(current)
                current = os.path.dirname(current)
            for path in reversed(missing):
                changed.append(path)
                diffs.append({"before": {"path": path, "state": "absent"},
                              "after": {"path": path, "state": "directory", "mode": _mode_text(DIR_MODE)}})
                if not check:
                    os.mkdir(path)
                    os.chmod(path, DIR_MODE)
            if not missing and directory != export_dir:
                current_mode = stat.S_IMODE(os.stat(directory).st_mode)
                if current_mode != DIR_MODE:
                    changed.append(directory)
                    diffs.append({"before": {"path": directory, "mode": _mode_text(current_mode)},
                                  "after": {"path": directory, "mode": _mode_text(DIR_MODE)}})
                    if not check:
                        os.chmod(directory, DIR_MODE)
        return changed

    @staticmethod
    def _file(path, data, mode, secret, check, diffs):
        """Write one file when its content or mode differs; returns whether it changed."""
        try:
            with open(path, "rb") as handle:
                before = handle.read()
            before_mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            before, before_mode = None, None
        content_changed = before != data
        mode_changed = before_mode is not None and before_mode != mode
        if not content_changed and not mode_changed:
            return False
        if content_changed:
            if secret:
                diffs.append({"before_header": path, "after_header": path,
                              "before": "" if before is None else SECRET_HIDDEN_BEFORE,
                              "after": SECRET_HIDDEN})
            else:
                diffs.append({"before_header": path, "after_header": path,
                              "before": "" if before is None else to_text(before, errors="surrogate_or_replace"),
                              "after": to_text(data, errors="surrogate_or_strict")})
        if mode_changed:
            diffs.append({"before": {"path": path, "mode": _mode_text(before_mode)},
                          "after": {"path": path, "mode": _mode_text(mode)}})
        if not check:
            if content_changed:
                _write_atomic(path, data, mode)
            else:
                os.chmod(path, mode)
        return True
