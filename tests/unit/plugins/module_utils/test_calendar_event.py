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
         "12:05", "sat *-1..7 15:00", "21:00:30", "0/2:00"]
INVALID = {
    "every sunday": "'every' is not a weekday list",
    "Sun 01:00": "'Sun' is not a weekday list",
    "sunday 01:00": "'sunday' is not a weekday list",
    "25:00": "hour 25 is out of range 0..23",
    "01:60": "minute 60 is out of range 0..59",
    "00:00:61": "second 61 is out of range 0..59",
    "mon fri": "'fri' is not a valid minute",
    "*-13-01": "month 13 is out of range 1..12",
    "*-02-32": "day 32 is out of range 1..31",
    "01:00 sun": "'sun' follows the time",
    "mon..fri 22:30 x y": "it has 4 parts",
    "12:00:00:00": "is not HOURS:MINUTES[:SECONDS]",
    "10..08:00": "the hour range 10..08 runs backwards",
    "*/0": "step must not be 0",
    "1-2-3-4": "is not [YEARS-]MONTHS-DAYS",
}


@pytest.mark.parametrize("text", VALID)
def test_valid_events_pass_both_checks(text):
    assert calendar_event_problem(text) is None
    assert check_named_format("pve-calendar-event", text)


@pytest.mark.parametrize("text,reason", sorted(INVALID.items()))
def test_invalid_events_are_refused_with_the_reason(text, reason):
    problem = calendar_event_problem(text)
    assert problem.startswith("schedule '%s' is not a Proxmox calendar event: " % text)
    assert reason in problem
    assert "examples: 'sun 01:00'" in problem


@pytest.mark.parametrize("text", sorted(set(INVALID) - {"10..08:00", "*/0"}))
def test_the_simulator_refuses_them_too(text):
    with pytest.raises(FormatError, match="invalid calendar event"):
        check_named_format("pve-calendar-event", text)


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_schedule(text):
    assert calendar_event_problem(text).startswith("the schedule is empty")
