# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counts, per host, the tasks a playbook run executed, for tests/benchmarks/node_layer.py.

A task counts as executed when it ran for the host (ok, changed, failed or unreachable), skipped
when its condition skipped it. Includes count: each is a worker process on the controller. The
counts go as JSON to the file named by AILAB_BENCH_TASKS_OUT when the run ends:
{host: {"executed": n, "changed": n, "skipped": n, "controller_only": n, "actions": {action: n}}}.
controller_only counts executed tasks that never touch the node (assert, set_fact, debug, includes...).
"""

import json
import os
from collections import defaultdict

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_tasks
type: aggregate
short_description: per-host counts of executed and skipped tasks, for the node-layer benchmark
description:
  - Writes the counts as JSON to the file named by the environment variable AILAB_BENCH_TASKS_OUT.
requirements:
  - enable in configuration
"""

# Actions that run on the controller only (no connection to the node).
CONTROLLER_ONLY = {
    "assert", "set_fact", "debug", "fail", "include_vars", "include_tasks", "include_role", "import_tasks",
    "meta", "add_host", "group_by", "set_stats", "validate_argument_spec",
}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.counts = defaultdict(lambda: {"executed": 0, "changed": 0, "skipped": 0, "controller_only": 0,
                                           "actions": defaultdict(int)})

    def _executed(self, result):
        host = self.counts[result._host.get_name()]
        host["executed"] += 1
        action = result._task.action.rsplit(".", 1)[-1]
        host["actions"][action] += 1
        if action in CONTROLLER_ONLY:
            host["controller_only"] += 1
        if result._result.get("changed", False):
            host["changed"] += 1

    def v2_runner_on_ok(self, result):
        self._executed(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._executed(result)

    def v2_runner_on_unreachable(self, result):
        self._executed(result)

    def v2_runner_on_skipped(self, result):
        self.counts[result._host.get_name()]["skipped"] += 1

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("AILAB_BENCH_TASKS_OUT")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self.counts, handle, indent=1, sort_keys=True)
