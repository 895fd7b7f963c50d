"""The simulator application: turns one HTTP request into one PVE-shaped response.

``Simulator.handle`` does what pveproxy + the REST handler do, in the same order:

1. resolve the path in the schema (501 ``Method 'GET /foo' not implemented``),
2. authenticate (401) unless the method is public (``permissions.user == 'world'``),
3. apply an armed HTTP fault, if any,
4. validate parameters against the schema (400 with an ``errors`` object),
5. check privileges (403),
6. under the state lock: refuse calls proxied to an offline node, refuse writes without
   quorum (500 ``cluster not ready - no quorum?``), then run the endpoint handler.

It is independent of the HTTP server so it can be driven directly, and it records every API
request in the request log used by tests to assert "no write on an idempotent re-run".
"""

import json
import sys
import threading
import traceback
import time
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl

from .api import ROUTES, Call, load_endpoints
from .auth import Authenticator, authorize
from .errors import ApiError, AuthError, NotModelled, ParamError
from .faults import FaultInjector
from .schema import ApiSchema, load_tree
from .state import ClusterState
from .tasks import TaskRunner

API_PREFIX = "/api2/json"
SECRET_PARAMS = {"password", "cipassword", "otp", "tfa-challenge", "encryption-key", "keyring", "master-pubkey",
                 "new-password", "secret", "token", "value"}
REDACTED = "**********"


@dataclass
class Response:
    """Status, reason phrase and JSON body of an answer."""

    status: int
    body: object
    reason: str = "OK"
    headers: dict = field(default_factory=dict)


@dataclass
class Settings:
    """Tunables that tests may change at run time (``PUT /_sim/settings``)."""

    task_duration: float = 0.05
    migrate_duration: float | None = None
    agent_delay: float = 0.0
    # Seconds between pvestatd rounds: name, status, template, CPU and memory of a guest in
    # /cluster/resources lag by up to this much (pve-manager PVE/Service/pvestatd.pm runs every 10 s);
    # 0: always fresh.
    stats_interval: float = 10.0
    # Seconds the API of a node that joined a cluster is restarting (pmxcfs, then pveproxy/pvedaemon):
    # see faults.NodeRestart. At least until the next full second, so that new tickets differ from old ones.
    join_restart: float = 2.0
    # Seconds per HA CRM/LRM round (pve-ha-manager Manager.pm/LRM.pm loop about every 10 s): a
    # resource's requested state is acted on one or two rounds after the API call (api/ha.py).
    ha_round: float = 0.05


class RequestLog:
    """Thread-safe log of API requests (method, path, redacted params, status, write flag)."""

    def __init__(self, limit=100_000):
        self._entries = []
        self._lock = threading.Lock()
        self._seq = 0
        self._limit = limit

    def add(self, entry):
        """Append one entry (drops the oldest beyond ``limit``)."""
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)
            if len(self._entries) > self._limit:
                del self._entries[: len(self._entries) - self._limit]

    def entries(self):
        """A copy of all entries."""
        with self._lock:
            return list(self._entries)

    def clear(self):
        """Forget all entries."""
        with self._lock:
            self._entries.clear()


def redact(params):
    """A copy of ``params`` with secret values replaced."""
    return {k: (REDACTED if k in SECRET_PARAMS else v) for k, v in params.items()}


def parse_cookies(header):
    """Parse a Cookie header without choking on PVE ticket characters."""
    cookies = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            cookies[name] = value
    return cookies


def parse_params(query, body, content_type):
    """Merge query-string and body parameters; repeated keys become lists."""
    params = {}

    def add(key, value):
        if key in params:
            current = params[key]
            params[key] = (current if isinstance(current, list) else [current]) + [value]
        else:
            params[key] = value

    for key, value in parse_qsl(query or "", keep_blank_values=True):
        add(key, value)
    if body:
        if (content_type or "").split(";")[0].strip().lower() == "application/json":
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise ApiError(f"unable to parse JSON body - {exc}", status=400) from None
            if not isinstance(data, dict):
                raise ApiError("JSON body must be an object", status=400)
            for key, value in data.items():
                if value is not None:
                    params[key] = value
        else:
            for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                add(key, value)
    return params


class Simulator:
    """One simulated PVE cluster: schema, state, tasks, auth, faults and the request log."""

    def __init__(self, personality, seed, accounts, schema_path, settings=None):
        load_endpoints()
        self.personality = personality
        self.schema = ApiSchema(load_tree(schema_path), personality.drop_paths, personality.drop_params)
        self.default_settings = settings or Settings()  # what the command line set; reset() returns to it
        self.settings = replace(self.default_settings)
        self.state = ClusterState(seed, personality)
        self.faults = FaultInjector()
        self.tasks = TaskRunner(self.state.lock, self.faults, self.settings.task_duration)
        self.tasks.on_finish = self.state_changed
        self.auth = Authenticator(accounts)
        self.auth.state = self.state  # users, tokens and ACLs made through /access live in the state
        self.requests = RequestLog()
        self.control = None
        self.fingerprint = ""
        self.persistence = None  # a persist.StateFile when --persist is given

    def state_changed(self):
        """Called after anything may have changed the state (write request, finished task, control call)."""
        if self.persistence is not None:
            try:
                self.persistence.save()
            except OSError as exc:  # keep serving; the next change tries again
                print(f"pvesim: cannot write {self.persistence.path}: {exc}", file=sys.stderr)

    # -------------------------------------------------------------- control
    def reset(self, seed=None):
        """Return to the seed (or a new one): state, tasks, faults, settings and the request log."""
        with self.state.lock:
            if seed is not None:
                self.state.seed = seed
            self.tasks.clear()
            self.faults.clear()
            self.state.load(self.state.seed)
            self.requests.clear()
            self.settings = replace(self.default_settings)
            self.tasks.duration = self.settings.task_duration
            self.state_changed()

    def apply_settings(self, **values):
        """Change run-time settings (task duration, migrate duration, agent delay)."""
        for key, value in values.items():
            if not hasattr(self.settings, key):
                raise ValueError(f"unknown setting '{key}'")
            setattr(self.settings, key, None if value is None else float(value))
        self.tasks.duration = self.settings.task_duration

    # ------------------------------------------------------------------ API
    def handle(self, method, path, query, body, headers, client=None):
        """Answer one HTTP request (any path); returns a Response."""
        if path.startswith("/_sim") and self.control is not None:
            return self.control.handle(method, path, query, body, headers)
        if not path.startswith(API_PREFIX):
            return Response(501, {"data": None}, f"Method '{method} {path}' not implemented")
        api_path = path[len(API_PREFIX):] or "/"
        started = time.monotonic()
        params = {}
        caller = {}
        write = method != "GET" and api_path.rstrip("/") != "/access/ticket"
        try:
            params = parse_params(query, body, headers.get("Content-Type"))
            response = self._dispatch(method, api_path, dict(params), headers, caller)
        except ParamError as exc:
            response = Response(400, {"data": None, "errors": exc.errors}, exc.message)
        except ApiError as exc:
            response = Response(exc.status, {"data": None, "message": exc.message + "\n"}, exc.message)
        except Exception as exc:  # a simulator bug: answer 500 and say so, keep serving
            traceback.print_exc(file=sys.stderr)
            message = f"internal pvesim error: {exc!r}"
            response = Response(500, {"data": None, "message": message + "\n"}, message)
        self.requests.add({
            "time": time.time(), "method": method, "path": api_path, "params": redact(params),
            "status": response.status, "write": write,
            "user": caller["principal"].name if caller.get("principal") else None,
            "duration": round(time.monotonic() - started, 6),
        })
        return response

    def _dispatch(self, method, api_path, params, headers, caller):
        resolved, path_params = self.schema.resolve(method, api_path)
        cookies = parse_cookies(headers.get("Cookie"))
        restarting = self.faults.restart_error(cookies.get("PVEAuthCookie"))  # after a cluster join
        if restarting is not None:
            raise ApiError(restarting[1], status=restarting[0])
        principal = caller["principal"] = self.auth.authenticate(headers, cookies, method)
        if principal is None and resolved.permissions.get("user") != "world":
            raise AuthError("No ticket")
        if principal is not None and principal.tokenid and not resolved.allowtoken:
            raise AuthError("API tokens are not allowed for this method")
        fault = self.faults.http_error(method, api_path)
        if fault is not None:
            status, message = fault
            raise ApiError(message, status=status)
        refusal = self.personality.refusal(method, resolved.template)
        if refusal is not None:
            raise ApiError(refusal)
        params.update(path_params)
        values = resolved.validate(params)
        if principal is not None:
            authorize(principal, resolved, values)
        handler = ROUTES.get((method, resolved.template))
        if handler is None:
            if method == "GET" and self.schema.node(resolved.template).is_directory:
                handler = _directory_index
            else:
                raise NotModelled(method, resolved.template)
        call = Call(self, resolved, values, principal)
        with self.state.lock:
            if resolved.proxyto and resolved.proxyto in values:
                node = values[resolved.proxyto]
                # a host outside the cluster (it is joining) still answers for its own tasks
                if not (resolved.template.startswith("/nodes/{node}/tasks") and node in self.state.outside):
                    self.state.online_node(node)
            write = method != "GET" and resolved.template != "/access/ticket"
            if write:
                self.state.require_quorum()
            data = handler(call)
        if write:
            self.state_changed()
        caller["principal"] = call.principal  # a login names its user only once it succeeded
        return Response(200, {"data": data})


def _directory_index(call):
    """Generic answer for schema directory nodes (``GET /cluster`` -> ``[{"name": "ha"}, ...]``)."""
    node = call.app.schema.node(call.method.template)
    if "vmid" in call.params and "node" in call.params:
        kind = "lxc" if "/lxc/" in call.method.template else "qemu"
        call.state.guest(call.params["vmid"], call.params["node"], kind)
    return [{node.link_key: name} for name in node.children_names]
