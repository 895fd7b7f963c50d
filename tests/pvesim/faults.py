"""Fault injection: failing tasks, slow tasks and HTTP errors on demand.

Faults are armed through the control API (``POST /_sim/faults``) and are consumed as they fire:

* ``task_fail`` - the next ``count`` tasks of ``task_type`` (e.g. ``qmstart``; ``*`` = any)
  finish with ``exitstatus`` = ``message`` and change nothing; with ``log_lines`` their log has
  that many progress lines before the ``TASK ERROR`` line (a long log).
* ``slow_tasks`` - tasks of ``task_type`` take ``delay`` extra seconds (``count`` times, or
  until cleared when ``count`` is 0).
* ``http_error`` - the next ``count`` API requests whose path matches the regular expression
  ``path`` (searched in the path after ``/api2/json``) and whose method is ``method`` (any when
  omitted) answer ``status`` (default 500) with ``message`` as the reason phrase.

Node failures (``node_down``/``node_up``) change the cluster state instead; see ``state.py``.

A cluster join arms a :class:`NodeRestart` itself (``POST /cluster/config/join``, see
``api/clusterconfig.py``): the joining node's API restarts, and the simulator, which has one API
endpoint for every node, answers every API request as that node would (stricter than PVE for
the other nodes, whose API keeps running).
"""

import math
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote

# pve-common PVE/IPCC: a request that needs pmxcfs while it restarts.
PMXCFS_DOWN = "ipcc_send_rec[1] failed: Connection refused"
# pve-http-server PVE/APIServer/AnyEvent.pm proxy_request: pveproxy cannot reach the restarting pvedaemon.
PROXY_DOWN = "Errors during connection establishment, proxy handler: Connection refused"
# pve-access-control PVE/AccessControl.pm verify_ticket: a ticket signed with the node's old auth key.
OLD_TICKET = "permission denied - invalid PVE ticket"


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
    log_lines: int = 0

    def as_dict(self):
        """JSON form for ``GET /_sim/faults``."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class NodeRestart:
    """The API of a node that just joined a cluster, restarting.

    pve-cluster PVE/Cluster/Setup.pm finish_join: the joining node stops pve-cluster (pmxcfs),
    takes the cluster's files (among them the auth key that signs tickets, /etc/pve/authkey.key),
    starts pmxcfs again, generates a node certificate signed by the cluster CA and restarts
    pveproxy and pvedaemon. So, from ``started``: requests fail with 500 (pmxcfs down) until
    ``pmxcfs_until``, then with 595 (pvedaemon down) until ``ends``; afterwards tickets issued up to
    the join (second ``old_stamp``) are refused with 401, API tokens and new tickets work.
    """

    node: str
    started: float
    pmxcfs_until: float
    ends: float
    old_stamp: int

    @classmethod
    def after_join(cls, node, duration):
        now, wall = time.monotonic(), time.time()
        # A ticket names the second it was issued: the window lasts at least into the next second,
        # so that a ticket issued after it never equals one issued before the join.
        duration = max(float(duration), math.floor(wall) + 1.05 - wall)
        return cls(node=node, started=now, pmxcfs_until=now + duration / 2, ends=now + duration,
                   old_stamp=int(wall))

    def error(self, ticket):
        """``(status, message)`` for a request now with this ticket cookie, or None."""
        now = time.monotonic()
        if now < self.pmxcfs_until:
            return 500, PMXCFS_DOWN
        if now < self.ends:
            return 595, PROXY_DOWN
        if ticket:
            parts = unquote(ticket).partition("::")[0].split(":")
            try:
                stamp = int(parts[2], 16)
            except (IndexError, ValueError):
                return None
            if stamp <= self.old_stamp:
                return 401, OLD_TICKET
        return None

    def as_dict(self):
        return {"kind": "join_restart", "node": self.node, "restarting": time.monotonic() < self.ends}


class FaultInjector:
    """Holds armed faults; thread-safe, consulted by the task runner and the request handler."""

    KINDS = ("task_fail", "slow_tasks", "http_error")

    def __init__(self):
        self._faults = []
        self._patterns = {}
        self._restarts = []
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
            if key not in ("task_type", "message", "delay", "method", "path", "status", "log_lines"):
                raise ValueError(f"unknown fault option '{key}'")
            setattr(fault, key, value)
        fault.delay = float(fault.delay)
        fault.status = int(fault.status)
        fault.log_lines = int(fault.log_lines)
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
            self._restarts.clear()

    def active(self):
        """Armed faults as dicts (and the node restarts after cluster joins)."""
        with self._lock:
            return [fault.as_dict() for fault in self._faults] + [r.as_dict() for r in self._restarts]

    def node_restart(self, node, duration):
        """A node joined a cluster: its API restarts now for ``duration`` seconds (see NodeRestart)."""
        restart = NodeRestart.after_join(node, duration)
        with self._lock:
            self._restarts.append(restart)
        return restart

    def restart_error(self, ticket):
        """``(status, message)`` when a node restart answers this request (ticket cookie or None), else None."""
        if not self._restarts:
            return None
        with self._lock:
            restarts = list(self._restarts)
        for restart in restarts:
            answer = restart.error(ticket)
            if answer is not None:
                return answer
        return None

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
        fault = self.task_failure_fault(task_type)
        return fault.message if fault else None

    def task_failure_fault(self, task_type):
        """The ``task_fail`` fault (message, log_lines) for a task of ``task_type`` that must fail, or None."""
        return self._take(lambda f: f.kind == "task_fail" and f.task_type in ("*", task_type))

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
