"""Asynchronous PVE tasks: UPIDs, status, logs and a scheduler that finishes them.

An API call such as ``POST /nodes/{node}/qemu`` answers at once with a UPID
(``UPID:pve-1:0000ABCD:0012F00D:67A1B2C3:qmcreate:100:root@pam:``). The task is ``running`` for
a configurable time (default 0.05 s), then its work function runs under the state lock and the
task becomes ``stopped`` with ``exitstatus`` ``OK`` or the error text. One scheduler thread
finishes all tasks, so thousands of tasks do not need thousands of threads.
"""

import heapq
import itertools
import os
import threading
import time

from .errors import TaskFailure


class Task:
    """One worker task as PVE reports it under ``/nodes/{node}/tasks/{upid}``."""

    __slots__ = ("upid", "node", "pid", "pstart", "starttime", "type", "id", "user", "status",
                 "exitstatus", "endtime", "lines", "work", "undo", "tokenid", "started")

    def __init__(self, node, pid, pstart, task_type, task_id, user, work, undo=None):
        self.node = node
        self.pid = pid
        self.pstart = pstart
        self.starttime = int(time.time())
        self.started = time.monotonic()
        self.type = task_type
        self.id = str(task_id)
        self.user = user
        self.tokenid = user.split("!", 1)[1] if "!" in user else None
        self.status = "running"
        self.exitstatus = None
        self.endtime = None
        self.lines = []
        self.work = work
        self.undo = undo
        self.upid = (
            f"UPID:{node}:{pid:08X}:{pstart:08X}:{self.starttime:08X}:{task_type}:{self.id}:{user}:"
        )

    def log(self, line):
        """Append one line to the task log."""
        self.lines.append(line)

    def elapsed(self):
        """Seconds (float) since the task started."""
        return time.monotonic() - self.started

    def status_dict(self):
        """The ``/status`` answer."""
        result = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id,
            "user": self.user.split("!", 1)[0], "status": self.status,
        }
        if self.tokenid:
            result["tokenid"] = self.tokenid
        if self.status == "stopped":
            result["exitstatus"] = self.exitstatus
        return result

    def list_dict(self):
        """An entry of ``GET /nodes/{node}/tasks``."""
        result = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id,
            "user": self.user.split("!", 1)[0],
        }
        if self.status == "stopped":
            result["endtime"] = self.endtime
            result["status"] = self.exitstatus
        return result


class TaskRunner:
    """Creates tasks and finishes them after their duration on one scheduler thread.

    ``lock`` is the simulator's state lock: work functions run while holding it.
    ``faults`` (a ``faults.FaultInjector``) may make a task fail or take longer.
    ``on_finish`` (optional) is called after each task has finished (outside the lock).
    """

    def __init__(self, lock, faults, duration=0.05, history=20_000):
        self.lock = lock
        self.history = history
        self.faults = faults
        self.duration = duration
        self.on_finish = None
        self.tasks = {}
        self._order = []
        self._heap = []
        self._seq = itertools.count()
        self._pid = itertools.count(0x1000 + os.getpid() % 0x4000)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="pvesim-tasks", daemon=True)
        self._thread.start()

    def start(self, node, task_type, task_id, user, work=None, duration=None, undo=None):
        """Create a running task and return it.

        ``work(task)`` runs when the task finishes; it may raise TaskFailure. When a fault makes
        the task fail instead, ``undo(task)`` runs (to drop what the API call already reserved,
        e.g. the config of a VM being created).
        """
        pid = next(self._pid)
        task = Task(node, pid, int(time.monotonic() * 100) & 0xFFFFFFFF, task_type, task_id, user, work, undo)
        delay = self.duration if duration is None else duration
        delay += self.faults.task_delay(task_type)
        failure = self.faults.task_failure_fault(task_type)
        if failure is not None:
            task.work = _failing(failure.message, undo, failure.log_lines)
        with self._cond:
            self.tasks[task.upid] = task
            self._order.append(task.upid)
            if len(self._order) > self.history:
                self._forget_oldest()
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._seq), task.upid))
            self._cond.notify()
        return task

    def get(self, upid):
        """Return the Task for a UPID, or None."""
        return self.tasks.get(upid)

    def recent(self, node=None):
        """Tasks newest first, optionally only those of ``node``."""
        with self._cond:
            tasks = [self.tasks[upid] for upid in reversed(self._order)]
        return [task for task in tasks if node is None or task.node == node]

    def _forget_oldest(self):
        """Drop the oldest finished tasks beyond ``history`` (called with ``_cond`` held)."""
        keep = []
        excess = len(self._order) - self.history
        for upid in self._order:
            if excess > 0 and self.tasks[upid].status == "stopped":
                del self.tasks[upid]
                excess -= 1
            else:
                keep.append(upid)
        self._order[:] = keep

    def running(self):
        """Number of tasks that have not finished yet."""
        with self._cond:
            return len(self._heap)

    def wait_idle(self, timeout=10.0):
        """Block until no task is running (or ``timeout`` passes); True when idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return True
            time.sleep(0.005)
        return False

    def clear(self):
        """Forget all finished tasks and drop pending ones (used by reset)."""
        with self._cond:
            self._heap.clear()
            self.tasks.clear()
            self._order.clear()

    def stop(self):
        """Stop the scheduler thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stop:
                    return
                _ignored, _ignored, upid = heapq.heappop(self._heap)
                task = self.tasks.get(upid)
            if task is not None:
                self._finish(task)

    def _finish(self, task):
        with self.lock:
            if self.tasks.get(task.upid) is not task:
                return  # dropped by a reset while it was due
            try:
                if task.work is not None:
                    task.work(task)
                task.exitstatus = "OK"
                task.log("TASK OK")
            except TaskFailure as exc:
                message = str(exc).rstrip("\n")
                task.exitstatus = message
                task.log(f"TASK ERROR: {message}")
            except Exception as exc:  # a simulator bug must not kill the scheduler thread
                task.exitstatus = f"internal simulator error: {exc!r}"
                task.log(f"TASK ERROR: {task.exitstatus}")
            task.endtime = int(time.time())
            task.status = "stopped"
        if self.on_finish is not None:
            self.on_finish()


def _failing(message, undo, log_lines=0):
    def work(task):
        for number in range(1, log_lines + 1):  # a long log before the error (a migration of many disks)
            task.log(f"progress line {number}")
        if undo is not None:
            undo(task)
        raise TaskFailure(message)

    return work
