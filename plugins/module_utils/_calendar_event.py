# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Local check of Proxmox calendar events (backup job ``schedule``), before any API call.

Grammar from the Proxmox documentation "Calendar Events" (pbs.proxmox.com/docs/calendarevents.html,
the format PVE's ``pve-calendar-event`` parses with proxmox-time):
``[WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]``, at least one part; weekdays as
``mon``..``sun`` (lists, ``..`` ranges); every other field ``*``, a number, ``a..b``, ``a/step``
(``*/step``), or a comma list of those; a time without ``:`` is the minutes; and the keywords
minutely, hourly, daily, weekly, monthly, yearly, annually, quarterly, semiannually, semi-annually.
Where the documentation is silent (upper-case names, full weekday names, out-of-range numbers),
this check is stricter than PVE and refuses.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

KEYWORDS = frozenset(("minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
                      "semiannually", "semi-annually"))
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_ITEM = re.compile(r"^(%s)(?:\.\.(%s))?$" % ("|".join(WEEKDAYS), "|".join(WEEKDAYS)))
_VALUE_ITEM = re.compile(r"^(?:\*|(\d{1,4})(?:\.\.(\d{1,4}))?)(?:/(\d{1,4}))?$")
EXAMPLE = "'sun 01:00', 'mon..fri 22:30', 'daily' or '*-*-01 03:00'"


def _check_values(text, field, low, high):
    if not text:
        raise ValueError("the %s field is empty" % field)
    for item in text.split(","):
        match = _VALUE_ITEM.match(item)
        if not match:
            raise ValueError("'%s' is not a valid %s (a number, *, a..b, a/step or a comma list of those)"
                             % (item, field))
        start, end, step = match.groups()
        for value in (start, end):
            if value is not None and not low <= int(value) <= high:
                raise ValueError("%s %s is out of range %d..%d" % (field, value, low, high))
        if start is not None and end is not None and int(end) < int(start):
            raise ValueError("the %s range %s..%s runs backwards" % (field, start, end))
        if step is not None and int(step) == 0:
            raise ValueError("the %s repetition step must not be 0" % field)


def _check_weekdays(text):
    for item in text.split(","):
        if not _WEEKDAY_ITEM.match(item):
            raise ValueError("'%s' is not a weekday list (mon, tue, wed, thu, fri, sat, sun; ranges as mon..fri)"
                             % item)


def _check_date(text):
    parts = text.split("-")
    if len(parts) not in (2, 3):
        raise ValueError("the date '%s' is not [YEARS-]MONTHS-DAYS" % text)
    fields = (("year", 1970, 9999), ("month", 1, 12), ("day", 1, 31))[3 - len(parts):]
    for part, (field, low, high) in zip(parts, fields):
        _check_values(part, field, low, high)


def _check_time(text):
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError("the time '%s' is not HOURS:MINUTES[:SECONDS]" % text)
    fields = (("minute", 0, 59),) if len(parts) == 1 else (("hour", 0, 23), ("minute", 0, 59), ("second", 0, 59))
    for part, (field, low, high) in zip(parts, fields):
        _check_values(part, field, low, high)


def calendar_event_problem(text):
    """None when ``text`` is a calendar event, else one sentence saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        return "the schedule is empty; give a calendar event such as %s" % EXAMPLE
    tokens = text.split()
    if len(tokens) == 1 and tokens[0] in KEYWORDS:
        return None
    try:
        if len(tokens) > 3:
            raise ValueError("it has %d parts; at most a weekday, a date and a time" % len(tokens))
        if tokens[0][0].isalpha():
            _check_weekdays(tokens.pop(0))
        if tokens and "-" in tokens[0] and ":" not in tokens[0]:
            _check_date(tokens.pop(0))
        if tokens:
            _check_time(tokens.pop(0))
        if tokens:
            raise ValueError("'%s' follows the time; the order is weekday, date, time" % " ".join(tokens))
    except ValueError as exc:
        return "schedule '%s' is not a Proxmox calendar event: %s (examples: %s)" % (text, exc, EXAMPLE)
    return None
