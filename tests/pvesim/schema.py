"""Load the Proxmox VE API schema (``apidata.js``) and validate requests against it.

``apidata.js`` is the schema of the official API viewer: a JavaScript file whose body between
the first ``[`` and the last ``]`` is JSON - a tree of ``{path, text, leaf, children, info}``
nodes where ``info`` maps HTTP methods to ``{parameters, returns, permissions, ...}``.

The file is read once at startup and indexed as a trie of path segments, so resolving a request
path costs one dict lookup per segment. Parameter validation follows ``PVE::JSONSchema``
(``check_prop``/``check_object``/``parse_property_string``) closely, including its error texts,
so a client sees the same 400 ``errors`` object it would get from a real PVE node.
"""

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

from .errors import NotImplementedPath, ParamError
from .formats import FormatError, check_named_format, is_known_format

SCHEMA_ENV = "AILAB_PVE_SCHEMA"

# Highest index + 1 that PVE accepts for indexed options such as net[n] (qemu-server and
# pve-container constants); other indexed options accept up to 256 entries.
_INDEX_LIMITS = {
    "net": 32, "ipconfig": 32, "scsi": 31, "virtio": 16, "sata": 6, "ide": 4, "hostpci": 16,
    "usb": 14, "serial": 4, "parallel": 3, "numa": 8, "unused": 256, "mp": 256, "dev": 256,
    "virtiofs": 10, "link": 8, "ring": 8,
}
_PERL_FLAG_GROUP = re.compile(r"\(\?\^([a-z]*):")
_TRAILING_INDEX = re.compile(r"^(.*?)(\d+)$")
_IS_INTEGER = re.compile(r"[+-]?\d+")
_IS_NUMBER = re.compile(r"[+-]?(?:\d+\.\d+|\d+\.|\.\d+|\d+)(?:[eE][+-]?\d+)?")
UNKNOWN_PROPERTY = "property is not defined in schema and the schema does not allow additional properties"
_TYPETEXT_FORMATS = {"GatewayIPv4": "ipv4", "GatewayIPv6": "ipv6", "IPv4Format/CIDR": "pve-ipv4-config",
                     "IPv6Format/CIDR": "pve-ipv6-config"}
_TYPETEXT_KEY = re.compile(r"(?:^|[\s\[,])\[?([A-Za-z][\w-]*)=(\]?)<([^>]*)>")


def default_schema_path():
    """Return the schema path: ``$AILAB_PVE_SCHEMA`` or ``<repo>/../shared/reference/apidata.js``."""
    if os.environ.get(SCHEMA_ENV):
        return Path(os.environ[SCHEMA_ENV])
    repo = Path(__file__).resolve().parents[2]
    return (repo / ".." / "shared" / "reference" / "apidata.js").resolve()


def load_tree(path):
    """Read apidata.js and return the list of top-level schema nodes."""
    text = Path(path).read_text(encoding="utf-8")
    start, end = text.index("["), text.rindex("]")
    return json.loads(text[start : end + 1])


def perl_regex_to_python(pattern):
    """Translate Perl's stringified regex groups ``(?^:...)``/``(?^i:...)`` to Python syntax."""
    return _PERL_FLAG_GROUP.sub(lambda m: f"(?{m.group(1)}:" if m.group(1) else "(?:", pattern)


def _is_number(value):
    return bool(_IS_NUMBER.fullmatch(value))


def _perl_number(value):
    """Render a schema bound the way Perl prints it (``100`` not ``100.0``)."""
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


class PropertyString:
    """A comma-separated property-string format (``net0: virtio,bridge=vmbr0``).

    Built either from a dict ``format`` in the schema (full sub-schemas) or, for named formats
    that apidata.js only describes by ``typetext`` (``pve-qm-ipconfig``), from the keys listed
    in that typetext.
    """

    def __init__(self, keys, default_key=None):
        self.keys = keys
        self.default_key = default_key

    @classmethod
    def from_schema(cls, fmt):
        default_key = next((k for k, v in fmt.items() if isinstance(v, dict) and v.get("default_key")), None)
        return cls(fmt, default_key)

    @classmethod
    def from_typetext(cls, typetext):
        keys, default_key = {}, None
        for key, default_marker, value_text in _TYPETEXT_KEY.findall(typetext):
            if value_text == "1|0":
                sub = {"type": "boolean", "optional": 1}
            elif value_text in ("integer", "N"):
                sub = {"type": "integer", "optional": 1}
            else:
                sub = {"type": "string", "optional": 1}
                # qemu-server PVE/QemuServer.pm $ipconfig_fmt: ip/ip6 are pve-ipv4-config/pve-ipv6-config,
                # gw/gw6 ipv4/ipv6 (the typetext only names them).
                fmt = _TYPETEXT_FORMATS.get(value_text)
                if fmt:
                    sub["format"] = fmt
            keys[key] = sub
            if default_marker:
                default_key = key
        if default_key is None and re.match(r"^\[?([A-Za-z][\w-]*)=\]", typetext):
            default_key = re.match(r"^\[?([A-Za-z][\w-]*)=\]", typetext).group(1)
        return cls(keys, default_key) if keys else None

    def parse(self, text):
        """Split ``text`` into a dict (``parse_property_string``); raise FormatError on bad keys."""
        result = {}
        default_used = False
        for part in text.split(","):
            if not part.strip():
                continue
            key, eq, value = part.partition("=")
            if eq and key and value:
                if key in result:
                    raise FormatError(f"duplicate key in comma-separated list property: {key}\n")
                sub = self.keys.get(key)
                if isinstance(sub, dict) and sub.get("alias"):
                    if sub.get("keyAlias"):
                        if sub["keyAlias"] in result:
                            raise FormatError(f"key alias '{sub['keyAlias']}' is already defined\n")
                        result[sub["keyAlias"]] = key
                    key = sub["alias"]
                    sub = self.keys.get(key)
                if sub is None:
                    raise FormatError(f"invalid key in comma-separated list property: {key}\n")
                if sub.get("type") == "boolean":
                    lowered = value.lower()
                    if lowered in ("1", "on", "yes", "true"):
                        value = "1"
                    elif lowered in ("0", "off", "no", "false"):
                        value = "0"
                result[key] = value
            elif not eq:
                if self.default_key is None:
                    raise FormatError("value without key, but schema does not define a default key\n")
                if default_used or self.default_key in result:
                    raise FormatError(f"duplicate key in comma-separated list property: {self.default_key}\n")
                default_used = True
                result[self.default_key] = part
            else:
                raise FormatError("missing key in comma-separated list property\n")
        return result

    def check(self, text, path):
        """Validate a property string; raise FormatError with PVE's ``format error`` text."""
        parsed = self.parse(text)
        errors = {}
        for key, sub in self.keys.items():
            if not isinstance(sub, dict) or sub.get("alias"):
                continue
            check_value(parsed.get(key), sub, f"{path}.{key}", errors)
        if errors:
            detail = "".join(f"{k}: {v}\n" for k, v in errors.items())
            raise FormatError(f"format error\n{detail}")
        return parsed


_PROPERTY_STRINGS = {}
_PATTERNS = {}


def _property_string_for(prop):
    """Return the PropertyString for a schema property with a dict or typetext-described format."""
    fmt = prop.get("format")
    key = id(prop)
    if key in _PROPERTY_STRINGS:
        return _PROPERTY_STRINGS[key]
    if isinstance(fmt, dict):
        result = PropertyString.from_schema(fmt)
    elif isinstance(fmt, str) and "=<" in prop.get("typetext", "") and not is_known_format(fmt):
        result = PropertyString.from_typetext(prop["typetext"])
    else:
        result = None
    _PROPERTY_STRINGS[key] = result
    return result


def _pattern(pattern):
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile("^" + perl_regex_to_python(pattern) + "$")
    return compiled


def _type_error(schema_type, value):
    if isinstance(value, list):
        return f"type check ('{schema_type}') failed - got ARRAY"
    if isinstance(value, dict):
        return f"type check ('{schema_type}') failed - got HASH"
    return f"type check ('{schema_type}') failed - got '{value}'"


def check_value(value, prop, path, errors):
    """Check one value against one property schema (``PVE::JSONSchema::check_prop``).

    ``value`` is a string (form data), a list (repeated form keys or JSON array), or a JSON
    scalar. Errors are added to ``errors`` keyed by ``path``; returns the coerced value.
    """
    if value is None:
        if not prop.get("optional") and not prop.get("alias"):
            errors[path] = "property is missing and it is not optional"
        return None
    schema_type = prop.get("type")
    if schema_type == "array":
        items = value if isinstance(value, list) else [value]
        item_schema = prop.get("items") or {}
        return [check_value(item, item_schema, f"{path}[{i}]", errors) for i, item in enumerate(items)]
    if isinstance(value, (list, dict)):
        if schema_type in ("string", "integer", "number", "boolean"):
            errors[path] = _type_error(schema_type, value)
            return None
        return value
    if isinstance(value, bool):
        if schema_type == "boolean":
            return int(value)
        value = "1" if value else "0"
    elif isinstance(value, (int, float)):
        value = str(value)

    if schema_type == "boolean":
        if value not in ("0", "1"):
            errors[path] = _type_error(schema_type, value)
            return None
    elif schema_type == "integer":
        if not _IS_INTEGER.fullmatch(value):
            errors[path] = _type_error(schema_type, value)
            return None
    elif schema_type == "number":
        if not _is_number(value):
            errors[path] = _type_error(schema_type, value)
            return None

    fmt = prop.get("format")
    if fmt is not None:
        try:
            property_string = _property_string_for(prop)
            if property_string is not None:
                property_string.check(value, path)
            elif isinstance(fmt, str):
                check_named_format(fmt, value)
        except FormatError as exc:
            errors[path] = f"invalid format - {exc}"
            return None
    pattern = prop.get("pattern")
    if pattern is not None and not _pattern(pattern).match(value):
        errors[path] = "value does not match the regex pattern"
        return None
    if "maxLength" in prop and len(value) > int(prop["maxLength"]):
        errors[path] = f"value may only be {prop['maxLength']} characters long"
        return None
    if "minLength" in prop and len(value) < int(prop["minLength"]):
        errors[path] = f"value must be at least {prop['minLength']} characters long"
        return None
    if _is_number(value):
        if "maximum" in prop and float(value) > float(prop["maximum"]):
            errors[path] = f"value must have a maximum value of {_perl_number(prop['maximum'])}"
            return None
        if "minimum" in prop and float(value) < float(prop["minimum"]):
            errors[path] = f"value must have a minimum value of {_perl_number(prop['minimum'])}"
            return None
    enum = prop.get("enum")
    if enum is not None and value not in enum:
        errors[path] = f"value '{value}' does not have a value in the enumeration '{', '.join(enum)}'"
        return None

    if schema_type in ("integer", "boolean"):
        return int(value)
    if schema_type == "number":
        return float(value)
    return value


class Method:
    """One HTTP method of one API path, with its parameter schema pre-indexed for validation."""

    __slots__ = ("method", "template", "info", "properties", "indexed", "additional", "permissions",
                 "allowtoken", "proxyto", "protected")

    def __init__(self, method, template, info):
        self.method = method
        self.template = template
        self.info = info
        params = info.get("parameters") or {}
        self.properties = {}
        self.indexed = {}
        for name, prop in (params.get("properties") or {}).items():
            if name.endswith("[n]"):
                self.indexed[name[:-3]] = prop
            else:
                self.properties[name] = prop
        additional = params.get("additionalProperties")
        self.additional = True if additional is None else bool(additional)
        self.permissions = info.get("permissions") or {}
        self.allowtoken = bool(info.get("allowtoken", 1))
        self.proxyto = info.get("proxyto")
        self.protected = bool(info.get("protected"))

    def property(self, name):
        """Return the schema of parameter ``name`` (resolving ``net0`` to ``net[n]``), or None."""
        prop = self.properties.get(name)
        if prop is not None:
            return prop
        match = _TRAILING_INDEX.match(name)
        if match and match.group(1) in self.indexed:
            prefix, index = match.group(1), int(match.group(2))
            if index < _INDEX_LIMITS.get(prefix, 256) and not (len(match.group(2)) > 1 and match.group(2)[0] == "0"):
                return self.indexed[prefix]
        return None

    def validate(self, params):
        """Validate request parameters; return them coerced to Python types or raise ParamError."""
        errors = {}
        result = {}
        for name, prop in self.properties.items():
            value = params.get(name)
            checked = check_value(value, prop, name, errors)
            if value is not None and name not in errors:
                result[name] = checked
        for name, value in params.items():
            if name in self.properties:
                continue
            prop = self.property(name)
            if prop is None:
                if not self.additional:
                    errors[name] = UNKNOWN_PROPERTY
                else:
                    result[name] = value
                continue
            checked = check_value(value, prop, name, errors)
            if name not in errors:
                result[name] = checked
        for name in list(result):
            prop = self.property(name)
            requires = prop.get("requires") if prop else None
            if isinstance(requires, str) and requires not in params:
                errors[requires] = f"missing property - '{name}' requires this property"
        if errors:
            raise ParamError(errors)
        return result


class _Node:
    __slots__ = ("literal", "placeholder", "placeholder_name", "template", "methods", "children_names", "link_key")

    def __init__(self):
        self.literal = {}
        self.placeholder = None
        self.placeholder_name = None
        self.template = None
        self.methods = {}
        self.children_names = []
        self.link_key = None

    @property
    def is_directory(self):
        """True for pure index nodes (``/cluster``): GET lists fixed sub-paths, not objects."""
        return bool(self.link_key and self.children_names and self.placeholder is None)


class ApiSchema:
    """The indexed API schema: resolves concrete paths to ``Method`` objects in O(depth)."""

    def __init__(self, tree, drop_paths=(), drop_params=None):
        self.root = _Node()
        self.root.template = "/"
        self.templates = {}
        drop_paths = tuple(drop_paths)
        drop_params = drop_params or {}
        for top in tree:
            self._add(top, drop_paths, drop_params)

    def _add(self, node, drop_paths, drop_params):
        template = node["path"]
        if any(template == p or template.startswith(p + "/") for p in drop_paths):
            return
        current = self.root
        for segment in template.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                if current.placeholder is None:
                    current.placeholder = _Node()
                    current.placeholder_name = segment[1:-1]
                current = current.placeholder
            else:
                current = current.literal.setdefault(segment, _Node())
        current.template = template
        for method, original in (node.get("info") or {}).items():
            info = dict(original)
            dropped = drop_params.get((method, template))
            if dropped:
                params = dict(info.get("parameters") or {})
                params["properties"] = {k: v for k, v in (params.get("properties") or {}).items() if k not in dropped}
                info["parameters"] = params
            current.methods[method] = Method(method, template, info)
            if method == "GET":
                links = (info.get("returns") or {}).get("links") or []
                href = links[0].get("href", "") if links else ""
                if href.startswith("{") and href.endswith("}"):
                    current.link_key = href[1:-1]
        self.templates[template] = current
        for child in node.get("children") or []:
            if not any(child["path"] == p or child["path"].startswith(p + "/") for p in drop_paths):
                current.children_names.append(child["path"].rsplit("/", 1)[-1])
            self._add(child, drop_paths, drop_params)

    def resolve(self, method, path):
        """Return ``(Method, path_params)`` for a concrete API path, or raise 501 like PVE."""
        current = self.root
        path_params = {}
        stripped = path.strip("/")
        if stripped:
            for raw in stripped.split("/"):
                segment = unquote(raw) if "%" in raw else raw
                child = current.literal.get(segment)
                if child is None:
                    child = current.placeholder
                    if child is None:
                        raise NotImplementedPath(method, path)
                    path_params[current.placeholder_name] = segment
                current = child
        found = current.methods.get(method)
        if found is None:
            raise NotImplementedPath(method, path)
        return found, path_params

    def node(self, template):
        """Return the internal trie node of a template path (for generic directory indexes)."""
        return self.templates.get(template)

    def has(self, method, template):
        """True when ``method template`` exists in this (personality-filtered) schema."""
        node = self.templates.get(template)
        return node is not None and method in node.methods

    def methods(self):
        """Iterate over all ``Method`` objects."""
        for node in self.templates.values():
            yield from node.methods.values()
