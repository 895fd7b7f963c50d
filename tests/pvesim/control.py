"""The test control API under ``/_sim`` (not part of PVE).

Every call needs the header ``X-PVESim-Token: <control_token>`` (printed at startup). Bodies are
JSON; answers are ``{"data": ...}`` or ``{"error": "..."}``.

=======  =========================  ==================================================================
Method   Path                       Effect
=======  =========================  ==================================================================
GET      /_sim/health               ``{"pve": 9, "version": "9.1.2", "tasks_running": 0}``
GET      /_sim/requests             API request log (``?since=<seq>`` for newer entries only)
DELETE   /_sim/requests             clear the request log
POST     /_sim/reset                back to the seed: state, tasks, faults, settings and request log
POST     /_sim/reseed               replace the seed with the JSON body (``{"seed": {...}}``) and reset
GET      /_sim/state                dump of the whole simulated cluster
GET      /_sim/faults               armed faults
POST     /_sim/faults               arm a fault: ``{"kind": "task_fail"|"slow_tasks"|"http_error"|
                                    "node_down"|"node_up", ...}`` (see faults.py)
DELETE   /_sim/faults               disarm all faults
POST     /_sim/nodes/<node>/down    take a node offline (same as fault ``node_down``)
POST     /_sim/nodes/<node>/up      bring a node back online
GET      /_sim/settings             run-time settings
PUT      /_sim/settings             change settings: ``task_duration``, ``migrate_duration``, ``agent_delay``,
                                    ``ha_round`` (seconds per HA CRM round), ``stats_interval`` (the
                                    pvestatd round ``/cluster/resources`` lags by), ``join_restart``
                                    (seconds the joining node's API restarts for after a join), ...
POST     /_sim/personality          switch to another personality of the same major version
                                    (``{"name": "9-upgraded"}`` or ``{"name": "9"}``); reset() keeps it
GET      /_sim/tasks                all tasks (newest first)
POST     /_sim/tasks/wait           wait until no task runs (``{"timeout": 10}``)
=======  =========================  ==================================================================
"""

import hmac
import json
from dataclasses import asdict
from urllib.parse import parse_qsl

from .app import Response
from .errors import ApiError


class ControlApi:
    """Dispatches ``/_sim`` requests for one Simulator."""

    def __init__(self, app, token):
        self.app = app
        self.token = token
        app.control = self

    def handle(self, method, path, query, body, headers):
        """Answer one control request."""
        supplied = headers.get("X-PVESim-Token") or ""
        if not hmac.compare_digest(supplied.encode(), self.token.encode()):
            return Response(401, {"error": "missing or wrong X-PVESim-Token"}, "Unauthorized")
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            data = self._route(method, path.rstrip("/"), dict(parse_qsl(query or "")), payload)
        except (ValueError, TypeError, KeyError, ApiError) as exc:
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            return Response(400, {"error": message}, "Bad Request")
        if data is _NOT_FOUND:
            return Response(404, {"error": f"no control endpoint {method} {path}"}, "Not Found")
        return Response(200, {"data": data})

    def _route(self, method, path, query, payload):
        app = self.app
        parts = path.split("/")[2:]
        if (method, parts) == ("GET", ["health"]):
            return {"pve": app.personality.major, "version": app.personality.version,
                    "tasks_running": app.tasks.running()}
        if parts == ["requests"]:
            if method == "GET":
                since = int(query.get("since", 0))
                return [entry for entry in app.requests.entries() if entry["seq"] > since]
            if method == "DELETE":
                app.requests.clear()
                return None
        if (method, parts) == ("POST", ["reset"]):
            app.reset()
            return None
        if (method, parts) == ("POST", ["reseed"]):
            seed = payload.get("seed", payload)
            if not isinstance(seed, dict) or not seed.get("nodes"):
                raise ValueError("seed must be a mapping with a non-empty 'nodes' list")
            app.reset(seed)
            return None
        if (method, parts) == ("GET", ["state"]):
            with app.state.lock:
                return app.state.snapshot()
        if parts == ["faults"]:
            if method == "GET":
                return app.faults.active()
            if method == "DELETE":
                app.faults.clear()
                return None
            if method == "POST":
                return self._arm(dict(payload))
        if method == "POST" and len(parts) == 3 and parts[0] == "nodes" and parts[2] in ("down", "up"):
            return self._arm({"kind": f"node_{parts[2]}", "node": parts[1]})
        if parts == ["settings"]:
            if method == "PUT":
                app.apply_settings(**payload)
            if method in ("GET", "PUT"):
                return asdict(app.settings)
        if (method, parts) == ("POST", ["personality"]):
            from .personality import personality  # same major only: the served schema stays valid
            chosen = personality(payload.get("name"))
            if chosen.major != app.personality.major:
                raise ValueError(f"personality {payload.get('name')!r} is not PVE {app.personality.major}")
            with app.state.lock:
                app.personality = app.state.personality = chosen
            return {"pve": chosen.major, "name": chosen.name or str(chosen.major)}
        if (method, parts) == ("GET", ["tasks"]):
            return [dict(task.status_dict(), log=list(task.lines)) for task in app.tasks.recent()]
        if (method, parts) == ("POST", ["tasks", "wait"]):
            return {"idle": app.tasks.wait_idle(float(payload.get("timeout", 10)))}
        return _NOT_FOUND

    def _arm(self, payload):
        kind = payload.pop("kind", None)
        if kind in ("node_down", "node_up"):
            node = payload.get("node")
            with self.app.state.lock:
                self.app.state.set_node_online(node, kind == "node_up")
                result = {"kind": kind, "node": node, "quorate": self.app.state.quorate()}
            self.app.state_changed()
            return result
        return self.app.faults.add(kind, **payload).as_dict()


_NOT_FOUND = object()
