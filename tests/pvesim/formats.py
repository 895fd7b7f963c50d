"""Named value formats of the PVE JSON schema (``format: 'pve-vmid'`` and friends).

Each validator raises ``FormatError`` with the exact message PVE's Perl validator dies with
(PVE::JSONSchema, PVE::HA::Tools, PVE::Storage::Plugin), including the trailing newline that
PVE keeps in the error text. Formats that are not listed here are accepted as they are: the
schema only names them and the simulator does not try to guess their grammar.

``-list`` and ``-opt`` suffixes are handled by ``check_named_format`` the way
``PVE::JSONSchema::check_format`` does.
"""

import ipaddress
import re


class FormatError(Exception):
    """A value does not match its named format; the message is PVE's ``die`` text."""


def split_list(text):
    """Split a PVE list value like ``PVE::Tools::split_list`` (NUL, comma, semicolon, blanks)."""
    text = text or ""
    if "\0" in text:
        return text.split("\0")
    return [item for item in re.split(r"[\s,;]+", text) if item]


def _regex_format(pattern, message, flags=0):
    """Build a validator that fails with ``message`` (``{v}`` is the value) unless it matches."""
    compiled = re.compile(pattern, flags)

    def validate(value):
        if not compiled.fullmatch(value):
            raise FormatError(message.format(v=value))

    return validate


def _is_ipv4(value):
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address) and "/" not in value
    except ValueError:
        return False


def _is_ipv6(value):
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv6Address)
    except ValueError:
        return False


def _cidr_ok(value, version, low, high):
    address, _ignored, bits = value.partition("/")
    if not bits.isdigit():
        return False
    ok = _is_ipv4(address) if version == 4 else _is_ipv6(address)
    return ok and low < int(bits) <= high


def _check_ip(message, accept):
    def validate(value):
        if not accept(value):
            raise FormatError(message)

    return validate


_DNS_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_DNS_NAME = re.compile(rf"(?:{_DNS_LABEL}\.)*{_DNS_LABEL}")
_STORAGE_CONTENT = {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)([KMGT])?")


def parse_size(text):
    """Return a PVE disk size string (``32G``, ``512M``, ``1073741824``) in bytes, or None."""
    match = _SIZE_RE.fullmatch(text or "")
    if not match:
        return None
    unit = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}.get(match.group(2), 1)
    return int(float(match.group(1)) * unit)


def format_size(size):
    """Format bytes the way PVE writes ``size=`` in a disk property string (``32G``)."""
    size = int(size)
    for unit in ("T", "G", "M", "K"):
        factor = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _startup_order(value):
    for part in value.split(","):
        if not part.strip():
            continue
        if not re.fullmatch(r"(?:order=)?\d+|up=\d+|down=\d+", part):
            raise FormatError("unable to parse startup options\n")


def _disk_size(value):
    if parse_size(value) is None:
        raise FormatError(f"value does not look like a valid disk size: {value}\n")


def _address(value):
    if not (_is_ipv4(value) or _is_ipv6(value) or _DNS_NAME.fullmatch(value)):
        raise FormatError(f"value does not look like a valid address: {value}\n")


def _storage_server(value):
    if not (_is_ipv4(value) or _is_ipv6(value) or _DNS_NAME.fullmatch(value)):
        raise FormatError("value does not look like a valid server name or IP address\n")


def _storage_content(value):
    if value not in _STORAGE_CONTENT:
        raise FormatError(f"invalid content type '{value}'\n")


def _storage_pair(value):
    if value == "1":
        return
    storage_id = re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]", re.IGNORECASE)
    parts = value.split(":")
    if len(parts) > 2 or not all(storage_id.fullmatch(part) for part in parts):
        raise FormatError(f"entry '{value}' contains invalid ID - storage ID '{value}' contains illegal characters\n")


# pve-calendar-event: PVE::CalendarEvent::pve_verify_calendar_event (pve-common) hands the text to
# proxmox-time; the grammar is the one documented in "Calendar Events"
# (pbs.proxmox.com/docs/calendarevents.html): [WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]],
# fields as *, N, N..N, N/step, comma lists; a lone time value is the minutes; plus the keywords below.
# Stricter than proxmox-time where the documentation is silent (full weekday names, upper case).
_CAL_KEYWORDS = {"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
                 "semiannually", "semi-annually"}
_CAL_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)"
_CAL_WEEKDAYS = re.compile(rf"{_CAL_DAY}(?:\.\.{_CAL_DAY})?(?:,{_CAL_DAY}(?:\.\.{_CAL_DAY})?)*")
_CAL_FIELD = r"(?:\*|\d+(?:\.\.\d+)?)(?:/\d+)?(?:,(?:\*|\d+(?:\.\.\d+)?)(?:/\d+)?)*"
_CAL_DATE = re.compile(rf"(?:{_CAL_FIELD}-)?{_CAL_FIELD}-{_CAL_FIELD}")
_CAL_TIME = re.compile(rf"{_CAL_FIELD}(?::{_CAL_FIELD}){{0,2}}")
_CAL_LIMITS = {"date": (12, 31), "time": (23, 59, 59)}


def _calendar_numbers_ok(text, limits):
    """Each number of the last len(limits) fields is within its limit (years are not limited)."""
    fields = text.split(":") if limits == _CAL_LIMITS["time"] else text.split("-")[-2:]
    if limits == _CAL_LIMITS["time"] and len(fields) == 1:
        limits = (59,)
    for field, limit in zip(fields, limits):
        for number in re.findall(r"(?<![/\d])\d+", field):
            if int(number) > limit:
                return False
    return True


def _calendar_event(value):
    words = value.split()
    if len(words) == 1 and words[0] in _CAL_KEYWORDS:
        return
    ok = 0 < len(words) <= 3
    if ok and _CAL_WEEKDAYS.fullmatch(words[0]):
        words = words[1:]
    if ok and words and _CAL_DATE.fullmatch(words[0]) and _calendar_numbers_ok(words[0], _CAL_LIMITS["date"]):
        words = words[1:]
    if ok and words and _CAL_TIME.fullmatch(words[0]) and _calendar_numbers_ok(words[0], _CAL_LIMITS["time"]):
        words = words[1:]
    if not ok or words:
        raise FormatError(f"invalid calendar event '{value}' - unable to parse calendar event\n")


# Format name -> validator. Messages are PVE's, so clients can match on them.
VALIDATORS = {
    "string": lambda value: None,
    "urlencoded": _regex_format(r"[-%a-zA-Z0-9_.!~*'()]*", "invalid urlencoded string: {v}\n"),
    "pve-configid": _regex_format(r"[a-z][a-z0-9_-]+", "invalid configuration ID '{v}'\n", re.IGNORECASE),
    "pve-storage-id": _regex_format(
        r"[a-z][a-z0-9\-_.]*[a-z0-9]", "storage ID '{v}' contains illegal characters\n", re.IGNORECASE
    ),
    "pve-bridge-id": _regex_format(r"[-_.\w\d]+", "invalid bridge ID '{v}'\n"),
    "pve-vmid": _regex_format(r"[1-9][0-9]{2,8}", "value does not look like a valid VM ID\n"),
    "pve-node": _regex_format(
        r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?", "value does not look like a valid node name\n"
    ),
    "mac-addr": _regex_format(
        r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}",
        "value does not look like a valid unicast MAC address\n",
        re.IGNORECASE,
    ),
    "ipv4": _check_ip("value does not look like a valid IPv4 address\n", _is_ipv4),
    "ipv6": _check_ip("value does not look like a valid IPv6 address\n", _is_ipv6),
    "ip": _check_ip("value does not look like a valid IP address\n", lambda v: _is_ipv4(v) or _is_ipv6(v)),
    "CIDRv4": _check_ip("value does not look like a valid IPv4 CIDR network\n", lambda v: _cidr_ok(v, 4, 7, 32)),
    "CIDRv6": _check_ip("value does not look like a valid IPv6 CIDR network\n", lambda v: _cidr_ok(v, 6, 7, 128)),
    "CIDR": _check_ip(
        "value does not look like a valid CIDR network\n", lambda v: _cidr_ok(v, 4, 7, 32) or _cidr_ok(v, 6, 7, 128)
    ),
    "pve-ipv4-config": _check_ip(
        "value does not look like a valid ipv4 network configuration\n",
        lambda v: v in ("dhcp", "manual") or _cidr_ok(v, 4, 7, 32),
    ),
    "pve-ipv6-config": _check_ip(
        "value does not look like a valid ipv6 network configuration\n",
        lambda v: v in ("auto", "dhcp", "manual") or _cidr_ok(v, 6, 7, 128),
    ),
    "email": _regex_format(r"[^\s@]+@[^\s@]+\.[^\s@]+", "value does not look like a valid email address\n"),
    "email-or-username": _regex_format(
        r"[^\s@]+@[^\s@]+\.[^\s@]+|[\w+\-~]+(?:\.[\w+\-~]+)*(?:@[\w\-.]+)?",
        "value does not look like a valid email address or user name\n",
    ),
    "dns-name": _regex_format(rf"(?:{_DNS_LABEL}\.)*{_DNS_LABEL}", "value does not look like a valid DNS name\n"),
    "pve-iface": _regex_format(
        r"[a-z][a-z0-9_]{1,20}(?:[:.]\d+)?", "invalid network interface name '{v}'\n", re.IGNORECASE
    ),
    "pve-tag": _regex_format(r"[a-z0-9_][a-z0-9_\-+.]*", "invalid characters in tag\n", re.IGNORECASE),
    "pve-startup-order": _startup_order,
    "address": _address,
    "disk-size": _disk_size,
    "pve-task-status-type": _regex_format(r"ok|error|warning|unknown", "invalid status '{v}'\n", re.IGNORECASE),
    "pve-ha-resource-id": _regex_format(r"[a-z]+:\S+", "value does not look like a valid ha resource id\n"),
    "pve-ha-resource-or-vm-id": _regex_format(
        r"(?:(?:vm|ct):)?\d+|[a-z]+:\S+", "value does not look like a valid ha resource id\n"
    ),
    "pve-ha-node": _regex_format(r"[^\s:]+(?::\d+)?", "value does not look like a valid ha group node\n"),
    "pve-ha-group-node": _regex_format(r"[^\s:]+(?::\d+)?", "value does not look like a valid ha group node\n"),
    "pve-storage-path": _regex_format(r"/[^;()]+", "value does not look like a valid absolute path\n"),
    "pve-storage-server": _storage_server,
    "pve-storage-content": _storage_content,
    "pve-storage-vgname": _regex_format(r"[a-zA-Z0-9+_.\-]+", "value does not look like a valid volume group name\n"),
    "pve-day-of-week": _regex_format(r"mon|tue|wed|thu|fri|sat|sun", "invalid day '{v}'\n"),
    "pve-volume-id": _regex_format(
        r"(?i:[a-z][a-z0-9\-_.]*[a-z0-9]):.+", "unable to parse volume ID '{v}'\n"
    ),
    "storage-pair": _storage_pair,
    "pve-calendar-event": _calendar_event,
}


def check_named_format(name, value):
    """Validate ``value`` against the named format ``name`` (with ``-list``/``-opt`` handling).

    Returns True when the format is known (validated), False when it is not modelled.
    Raises FormatError with PVE's message when the value is invalid.
    """
    validator = VALIDATORS.get(name)
    if validator is not None:
        validator(value)
        return True
    base, _ignored, kind = name.rpartition("-")
    if kind == "list" and base in VALIDATORS:
        for item in split_list(value):
            VALIDATORS[base](item)
        return True
    if kind == "opt" and base in VALIDATORS:
        if value:
            VALIDATORS[base](value)
        return True
    return False


def is_known_format(name):
    """True when ``name`` (optionally with ``-list``/``-opt``) has a validator here."""
    base, _ignored, kind = name.rpartition("-")
    return name in VALIDATORS or (kind in ("list", "opt") and base in VALIDATORS)
