# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small, real HTTP double of the Kubernetes core/v1 Secrets API.

It serves what the kubernetes Python client (and kubernetes.core's discovery) need to
manage Secrets: ``/version``, ``/api``, ``/apis``, ``/api/v1`` and
``/api/v1/namespaces/<ns>/secrets[/<name>]`` with GET (get and list, with a ``type=``
field selector), POST, PUT and DELETE. It keeps a request log so a test can assert that a
run made no write, and it can answer chosen requests with an error ``Status``.

Usage::

    with KubernetesApiDouble() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        ...
        assert api.writes() == []
"""

import base64
import binascii
import copy
import datetime
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BEARER_TOKEN = "k8s-api-double-token"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

_SECRETS_RE = re.compile(r"^/api/v1/namespaces/(?P<namespace>[a-z0-9-]+)/secrets(?:/(?P<name>[^/]+))?$")

_SECRET_RESOURCE = {
    "name": "secrets",
    "singularName": "secret",
    "namespaced": True,
    "kind": "Secret",
    "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
}
_NAMESPACE_RESOURCE = {
    "name": "namespaces",
    "singularName": "namespace",
    "namespaced": False,
    "kind": "Namespace",
    "shortNames": ["ns"],
    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
}


class ApiError(Exception):
    """An answer with a Kubernetes ``Status`` body."""

    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def status_body(code, reason, message):
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }


class KubernetesApiDouble:
    """A threaded HTTP server that stores Secrets in memory, per namespace."""

    def __init__(self):
        self.lock = threading.Lock()
        self.secrets = {}  # (namespace, name) -> Secret dict, as the API server stores it
        self.requests = []  # every request: {"method", "path", "query", "body", "authorization"}
        self.failures = []  # [(method, path regex, code, reason, message)]
        self._resource_version = 1000
        self._server = None
        self._thread = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self):
        double = self

        class Handler(_Handler):
            api = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval keeps stop() quick: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="k8s-api-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def write_kubeconfig(self, path):
        """Write a kubeconfig (JSON is valid YAML) that points at this double; return its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "admin", "user": {"token": BEARER_TOKEN}}],
            "contexts": [{"name": "admin@double", "context": {"cluster": "double", "user": "admin"}}],
            "current-context": "admin@double",
        }
        with open(path, "w") as f:
            json.dump(config, f)
        return str(path)

    # -- test controls -------------------------------------------------------------------------

    def fail(self, method, path_regex, code, reason, message=None):
        """Answer every ``method`` request whose path matches ``path_regex`` with an error Status."""
        with self.lock:
            self.failures.append((method, re.compile(path_regex), code, reason, message or f"injected {reason}"))

    def add_secret(self, secret, namespace="kube-system"):
        """Store a Secret directly, as if another client had created it; return the stored copy."""
        with self.lock:
            return self._store(namespace, copy.deepcopy(secret))

    def get_secret(self, name, namespace="kube-system"):
        with self.lock:
            secret = self.secrets.get((namespace, name))
            return copy.deepcopy(secret)

    def decoded_data(self, name, namespace="kube-system"):
        """Return the ``data`` of a stored Secret, base64-decoded."""
        secret = self.get_secret(name, namespace)
        return {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}

    def writes(self):
        """The logged requests that could have changed something."""
        with self.lock:
            return [dict(r) for r in self.requests if r["method"] in WRITE_METHODS]

    def clear_log(self):
        with self.lock:
            del self.requests[:]

    # -- the API -------------------------------------------------------------------------------

    def _next_version(self):
        self._resource_version += 1
        return str(self._resource_version)

    def _store(self, namespace, secret):
        metadata = secret.setdefault("metadata", {})
        metadata["namespace"] = namespace
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        metadata["resourceVersion"] = self._next_version()
        secret["apiVersion"] = "v1"
        secret["kind"] = "Secret"
        secret.setdefault("type", "Opaque")
        self.secrets[(namespace, metadata["name"])] = secret
        return copy.deepcopy(secret)

    def _check_injected(self, method, path):
        for fail_method, regex, code, reason, message in self.failures:
            if fail_method == method and regex.search(path):
                raise ApiError(code, reason, message)

    def handle(self, method, path, query, body):
        """Return ``(code, json body)`` for one request; the caller holds the lock."""
        self._check_injected(method, path)
        if method == "GET" and path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.4", "platform": "linux/amd64"}
        if method == "GET" and path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if method == "GET" and path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        if method == "GET" and path == "/api/v1":
            return 200, {
                "kind": "APIResourceList",
                "groupVersion": "v1",
                "resources": [_NAMESPACE_RESOURCE, _SECRET_RESOURCE],
            }
        match = _SECRETS_RE.match(path)
        if not match:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({method} {path})")
        namespace, name = match.group("namespace"), match.group("name")
        if name is None:
            if method == "GET":
                return 200, self._list(namespace, query)
            if method == "POST":
                return 201, self._create(namespace, body)
        else:
            if method == "GET":
                return 200, self._get(namespace, name)
            if method == "PUT":
                return 200, self._replace(namespace, name, body)
            if method == "DELETE":
                return 200, self._delete(namespace, name)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")

    def _get(self, namespace, name):
        secret = self.secrets.get((namespace, name))
        if secret is None:
            raise ApiError(404, "NotFound", f'secrets "{name}" not found')
        return copy.deepcopy(secret)

    def _list(self, namespace, query):
        wanted_type = None
        for selector in query.get("fieldSelector", []):
            for term in selector.split(","):
                key, dummy, value = term.partition("=")
                if key != "type":
                    raise ApiError(400, "BadRequest", f'field label not supported: "{key}"')
                wanted_type = value
        items = [
            copy.deepcopy(secret)
            for (ns, dummy), secret in sorted(self.secrets.items())
            if ns == namespace and (wanted_type is None or secret.get("type") == wanted_type)
        ]
        return {
            "kind": "SecretList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self._resource_version)},
            "items": items,
        }

    @staticmethod
    def _validate(namespace, body, name=None):
        if not isinstance(body, dict) or body.get("kind") != "Secret":
            raise ApiError(400, "BadRequest", "the body is not a Secret")
        metadata = body.get("metadata") or {}
        if not metadata.get("name"):
            raise ApiError(422, "Invalid", "Secret is invalid: metadata.name: Required value")
        if name is not None and metadata["name"] != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name in the URL")
        if metadata.get("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the namespace in the URL")
        for key, value in (body.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError):
                raise ApiError(400, "BadRequest", f"data[{key}] is not valid base64") from None

    def _create(self, namespace, body):
        self._validate(namespace, body)
        name = body["metadata"]["name"]
        if (namespace, name) in self.secrets:
            raise ApiError(409, "AlreadyExists", f'secrets "{name}" already exists')
        body = copy.deepcopy(body)
        body["metadata"].pop("resourceVersion", None)
        return self._store(namespace, body)

    def _replace(self, namespace, name, body):
        self._validate(namespace, body, name)
        current = self.secrets.get((namespace, name))
        if current is None:
            raise ApiError(404, "NotFound", f'secrets "{name}" not found')
        version = body["metadata"].get("resourceVersion")
        if version and version != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on secrets "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )
        body = copy.deepcopy(body)
        body["metadata"]["uid"] = current["metadata"]["uid"]
        body["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"]
        return self._store(namespace, body)

    def _delete(self, namespace, name):
        secret = self.secrets.pop((namespace, name), None)
        if secret is None:
            raise ApiError(404, "NotFound", f'secrets "{name}" not found')
        status = status_body(200, "", "")
        status["details"] = {"name": name, "kind": "secrets", "uid": secret["metadata"]["uid"]}
        return status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None  # set on the subclass made by KubernetesApiDouble.start()

    def log_message(self, format, *args):
        pass  # keep pytest output clean; the double has its own request log

    def _serve(self, method):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        query = parse_qs(url.query)
        with self.api.lock:
            self.api.requests.append(
                {
                    "method": method,
                    "path": url.path,
                    "query": query,
                    "body": copy.deepcopy(body),
                    "authorization": self.headers.get("Authorization"),
                }
            )
            try:
                code, answer = self.api.handle(method, url.path, query, body)
            except ApiError as e:
                code, answer = e.code, status_body(e.code, e.reason, e.message)
        payload = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")
