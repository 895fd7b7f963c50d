"""The backup schedule is checked locally, and the simulator refuses what PVE's parser refuses.

Grammar: Proxmox "Calendar Events" (pbs.proxmox.com/docs/calendarevents.html); the two checks are
separate implementations (the module's in module_utils, the simulator's in tests/pvesim/formats.py)
so that one cannot hide a mistake of the other.
"""

import pytest

from ansible_collections.ailab.cluster.plugins.module_utils._calendar_event import calendar_event_problem
from pvesim.formats import FormatError, check_named_format

# The documentation's own examples, and what the roles' defaults and docs use.
VALID = ["sun 01:00", "daily", "weekly", "semi-annually", "mon..fri 22:30", "*-*-01 03:00", "*/5", "mon..wed 30/10",
         "mon..fri 8..17,22:0/15", "fri 12..13:5/20", "12/2:5", "*-05", "2023-10-22", "sat,sun", "mon,wed,fri",
         "12:05", "sat *-1..7 15:00", "21:00:30", "0/2:00",
         # the bounds of every field
         "0", "23:59:59", "*-12-31", "1970-01-01", "5..5"]
VALUE_FORMS = "(a number, *, a..b, a/step or a comma list of those)"
WEEKDAY_FORMS = "(mon, tue, wed, thu, fri, sat, sun; ranges as mon..fri)"
# text -> the whole reason the check gives
INVALID = {
    "every sunday": "'every' is not a weekday list " + WEEKDAY_FORMS,
    "Sun 01:00": "'Sun' is not a weekday list " + WEEKDAY_FORMS,
    "sunday 01:00": "'sunday' is not a weekday list " + WEEKDAY_FORMS,
    "x-1": "'x-1' is not a weekday list " + WEEKDAY_FORMS,          # a letter first: a weekday
    "1mon": "'1mon' is not a valid minute " + VALUE_FORMS,           # a digit first: not a weekday
    "25:00": "hour 25 is out of range 0..23",
    "01:60": "minute 60 is out of range 0..59",
    "60": "minute 60 is out of range 0..59",                          # a time without ':' is the minutes
    "00:00:61": "second 61 is out of range 0..59",
    "mon fri": "'fri' is not a valid minute " + VALUE_FORMS,
    "*-13-01": "month 13 is out of range 1..12",
    "*-02-32": "day 32 is out of range 1..31",
    "1969-01-01": "year 1969 is out of range 1970..9999",
    "2023-10-22:00": "'2023-10-22' is not a valid hour " + VALUE_FORMS,  # a ':' makes it a time
    "12:": "the minute field is empty",
    "01:00 sun": "'sun' follows the time; the order is weekday, date, time",
    "01:00 sun mon": "'sun mon' follows the time; the order is weekday, date, time",
    "mon..fri 22:30 x y": "it has 4 parts; at most a weekday, a date and a time",
    "12:00:00:00": "the time '12:00:00:00' is not HOURS:MINUTES[:SECONDS]",
    "10..08:00": "the hour range 10..08 runs backwards",
    "*/0": "the minute repetition step must not be 0",
    "1-2-3-4": "the date '1-2-3-4' is not [YEARS-]MONTHS-DAYS",
}
# Where the documentation is silent the module is stricter than the simulator's parser.
STRICTER_THAN_PVE = {"10..08:00", "*/0", "1969-01-01"}


@pytest.mark.parametrize("text", VALID)
def test_valid_events_pass_both_checks(text):
    assert calendar_event_problem(text) is None
    assert check_named_format("pve-calendar-event", text)


@pytest.mark.parametrize("text,reason", sorted(INVALID.items()))
def test_invalid_events_are_refused_with_the_reason(text, reason):
    problem = calendar_event_problem(text)
    assert problem == ("schedule '%s' is not a Proxmox calendar event: %s (examples: 'sun 01:00', "
                       "'mon..fri 22:30', 'daily' or '*-*-01 03:00')" % (text, reason))


@pytest.mark.parametrize("text", sorted(set(INVALID) - STRICTER_THAN_PVE))
def test_the_simulator_refuses_them_too(text):
    with pytest.raises(FormatError, match="invalid calendar event"):
        check_named_format("pve-calendar-event", text)


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_schedule(text):
    assert calendar_event_problem(text) == ("the schedule is empty; give a calendar event such as 'sun 01:00', "
                                            "'mon..fri 22:30', 'daily' or '*-*-01 03:00'")
