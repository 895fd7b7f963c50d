"""Fault injection: failing tasks, slow tasks and HTTP errors on demand.

Faults are armed through the control API (``POST /_sim/faults``) and are consumed as they fire:

* ``task_fail`` - the next ``count`` tasks of ``task_type`` (e.g. ``qmstart``; ``*`` = any)
  finish with ``exitstatus`` = ``message`` and change nothing.
* ``slow_tasks`` - tasks of ``task_type`` take ``delay`` extra seconds (``count`` times, or
  until cleared when ``count`` is 0).
* ``http_error`` - the next ``count`` API requests whose path matches the regular expression
  ``path`` (searched in the path after ``/api2/json``) and whose method is ``method`` (any when
  omitted) answer ``status`` (default 500) with ``message`` as the reason phrase.

Node failures (``node_down``/``node_up``) change the cluster state instead; see ``state.py``.
"""

import re
import threading
from dataclasses import dataclass


@dataclass
class Fault:
    """One armed fault; ``remaining`` is how often it still fires (0 = until cleared)."""

    kind: str
    remaining: int
    task_type: str = "*"
    message: str = "simulated failure"
    delay: float = 0.0
    method: str | None = None
    path: str | None = None
    status: int = 500

    def as_dict(self):
        """JSON form for ``GET /_sim/faults``."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


class FaultInjector:
    """Holds armed faults; thread-safe, consulted by the task runner and the request handler."""

    KINDS = ("task_fail", "slow_tasks", "http_error")

    def __init__(self):
        self._faults = []
        self._patterns = {}
        self._lock = threading.Lock()

    def add(self, kind, count=1, **options):
        """Arm a fault; raises ValueError on a bad kind or option."""
        if kind not in self.KINDS:
            raise ValueError(f"unknown fault kind '{kind}' (expected one of {', '.join(self.KINDS)})")
        count = int(count)
        if count < 0:
            raise ValueError("count must be >= 0")
        fault = Fault(kind=kind, remaining=count)
        for key, value in options.items():
            if key not in ("task_type", "message", "delay", "method", "path", "status"):
                raise ValueError(f"unknown fault option '{key}'")
            setattr(fault, key, value)
        fault.delay = float(fault.delay)
        fault.status = int(fault.status)
        if fault.method:
            fault.method = fault.method.upper()
        if kind == "http_error":
            if not 400 <= fault.status <= 599:
                raise ValueError("status must be an HTTP error status (400-599)")
            re.compile(fault.path or "")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self):
        """Disarm all faults."""
        with self._lock:
            self._faults.clear()

    def active(self):
        """Armed faults as dicts."""
        with self._lock:
            return [fault.as_dict() for fault in self._faults]

    def _take(self, predicate):
        with self._lock:
            for fault in self._faults:
                if predicate(fault):
                    if fault.remaining:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def task_failure(self, task_type):
        """Message for a task of ``task_type`` that must fail, or None."""
        fault = self._take(lambda f: f.kind == "task_fail" and f.task_type in ("*", task_type))
        return fault.message if fault else None

    def task_delay(self, task_type):
        """Extra seconds for a task of ``task_type``."""
        if not self._faults:
            return 0.0
        fault = self._take(lambda f: f.kind == "slow_tasks" and f.task_type in ("*", task_type))
        return fault.delay if fault else 0.0

    def http_error(self, method, path):
        """``(status, message)`` when this request must fail, else None."""
        if not self._faults:
            return None

        def matches(fault):
            if fault.kind != "http_error" or (fault.method and fault.method != method):
                return False
            pattern = self._patterns.get(fault.path)
            if pattern is None:
                pattern = self._patterns[fault.path] = re.compile(fault.path or "")
            return bool(pattern.search(path))

        fault = self._take(matches)
        return (fault.status, fault.message) if fault else None
