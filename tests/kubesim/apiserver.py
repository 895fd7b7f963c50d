# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API server double: HTTPS on the control plane's advertise address, state in kubesim.state.

Served: /version (the image tag of this node's kube-apiserver manifest: during an upgrade two
control planes answer different versions, as real ones do), /readyz /livez /healthz, discovery
(/api, /apis, resource lists), and get/list/create/replace/patch/delete of the resources in
RESOURCES, pods/eviction, and certificatesigningrequests signed at once (the csrsigning and
csrapproving controllers of kube-controller-manager, for kubelet client certificates).
PATCH: JSON patch (a list), server-side apply (application/apply-patch+yaml: a deep merge, no
field ownership) and merge/strategic-merge patch (RFC 7386 deep merge).

Authentication as kube-apiserver: client certificates signed by the cluster CA (user = CN,
groups = O), bootstrap tokens (Bearer <id>.<secret>, checked against the token Secrets and
their expiration, group system:bootstrappers), else anonymous. Authorization is coarse:
certificates may do everything, bootstrap tokens only what kubeadm join needs (the RBAC rules
kubeadm init creates), anonymous only the public endpoints and cluster-info.
"""

import base64
import copy
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import pki, state

# (group, version) -> [(resource, kind, namespaced, verbs)]
_ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
RESOURCES = {
    ("", "v1"): [
        ("namespaces", "Namespace", False),
        ("nodes", "Node", False),
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("pods", "Pod", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("events", "Event", True),
    ],
    ("apps", "v1"): [("daemonsets", "DaemonSet", True), ("deployments", "Deployment", True)],
    ("certificates.k8s.io", "v1"): [("certificatesigningrequests", "CertificateSigningRequest", False)],
    ("coordination.k8s.io", "v1"): [("leases", "Lease", True)],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    ("authorization.k8s.io", "v1"): [("selfsubjectaccessreviews", "SelfSubjectAccessReview", False)],
    ("rbac.authorization.k8s.io", "v1"): [
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False),
        ("roles", "Role", True),
        ("rolebindings", "RoleBinding", True),
    ],
}
_BY_RESOURCE = {
    resource: (group, version, kind, namespaced)
    for (group, version), entries in RESOURCES.items()
    for resource, kind, namespaced in entries
}
_PATH_RE = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+)(?=/))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
_PUBLIC_PATHS = ("/version", "/readyz", "/livez", "/healthz")
_ADMIN_GROUPS = {"system:masters", "kubeadm:cluster-admins", "system:nodes"}
BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"


class ApiError(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure" if code >= 400 else "Success",
            "message": message, "reason": reason, "code": code}


def merge(target, patch):
    """RFC 7386 merge patch (null deletes); server-side apply and strategic merge are approximated by it."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def json_patch(target, operations):
    result = copy.deepcopy(target)
    for op in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = result
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                else:
                    parent.insert(int(last), op["value"]) if op["op"] == "add" else parent.__setitem__(int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif op["op"] == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op["value"]:
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        else:
            raise ApiError(400, "BadRequest", f"unsupported JSON patch operation {op['op']}")
    return result


def jws(token_secret, kubeconfig_text):
    """The bootstrap signer's signature of cluster-info for one token (HMAC-SHA256; real: detached JWS HS256)."""
    return hmac.new(token_secret.encode(), kubeconfig_text.encode(), hashlib.sha256).hexdigest()


def _field(obj, dotted):
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _matches(obj, label_selector, field_selector):
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (label_selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    for term in filter(None, (field_selector or "").split(",")):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        actual = _field(obj, key)
        actual = "" if actual is None else str(actual)
        if (actual == value) == negate:
            return False
    return True


class Identity:
    def __init__(self, user, groups):
        self.user, self.groups = user, set(groups)

    @property
    def admin(self):
        return bool(self.groups & _ADMIN_GROUPS) or self.user.startswith("system:kube-")


def authenticate_token(cluster, token):
    match = re.fullmatch(r"([a-z0-9]{6})\.([a-z0-9]{16})", token or "")
    if not match:
        return None
    secret = cluster.get("secrets", f"bootstrap-token-{match.group(1)}", "kube-system")
    if secret is None or secret.get("type") != state.BOOTSTRAP_TOKEN_TYPE:
        return None
    if state.secret_value(secret, "token-secret") != match.group(2):
        return None
    if state.secret_value(secret, "usage-bootstrap-authentication") != "true":
        return None
    groups = (state.secret_value(secret, "auth-extra-groups") or "").split(",")
    return Identity(f"system:bootstrap:{match.group(1)}", ["system:bootstrappers", *filter(None, groups)])


def _bootstrap_allowed(method, resource, namespace, name):
    """The RBAC rules kubeadm init creates for bootstrap tokens (cmd/kubeadm/app/phases/bootstraptoken/
    clusterinfo and node: kubeadm:get-nodes, kubeadm:kubelet-bootstrap, kubeadm:nodes-kubeadm-config,
    kubeadm:kubelet-config, kubeadm:kubeadm-certs)."""
    if method == "GET" and resource == "configmaps" and namespace == "kube-system":
        return name in ("kubeadm-config", "kubelet-config", "kube-proxy")
    if method == "GET" and resource == "secrets" and namespace == "kube-system":
        return name == "kubeadm-certs"
    if method == "GET" and resource == "nodes":
        return True
    return resource == "certificatesigningrequests" and method in ("POST", "GET")


class Server:
    """One API server: ``start()`` serves in a thread until ``stop()``."""

    def __init__(self, address, port, version, pki_dir, bind=None):
        self.address, self.port, self.version, self.pki_dir = address, port, version, pki_dir
        # kube-apiserver listens on --bind-address (0.0.0.0 by default), so a VIP on the node reaches it too.
        self.bind = bind or address
        # path -> time.monotonic() when its last answer was sent: the kube-vip double's ``pickup_after`` (a test's
        # adversarial placement of kube-vip's restart right after a given request, tests/kubesim/kubevip.py).
        self.served = {}
        self._httpd = None
        self._thread = None

    def start(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(f"{self.pki_dir}/apiserver.crt", f"{self.pki_dir}/apiserver.key")
        context.load_verify_locations(f"{self.pki_dir}/ca.crt")
        context.verify_mode = ssl.CERT_OPTIONAL
        server = self

        class Handler(_Handler):
            api = server

        class HTTPServer(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                sock, address = self.socket.accept()
                return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

        self._httpd = HTTPServer((self.bind, self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -- requests ------------------------------------------------------------------------------

    def handle(self, method, url, body, content_type, identity):
        path, query = url.path.rstrip("/") or "/", parse_qs(url.query)
        if path in _PUBLIC_PATHS:
            if path == "/version":
                major, minor = self.version.lstrip("v").split(".")[:2]
                return 200, {"major": major, "minor": minor, "gitVersion": self.version, "platform": "linux/amd64",
                             "goVersion": "go1.24.9", "compiler": "gc"}
            return 200, "ok"
        with state.locked() as cluster:
            if identity is None:
                identity = authenticate_token(cluster, self._bearer)
                if identity is None and self._bearer:
                    raise ApiError(401, "Unauthorized", "Unauthorized")
            identity = identity or Identity("system:anonymous", ["system:unauthenticated"])
            if path == "/api":
                return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.address}:{self.port}"}]}
            if path == "/apis":
                return 200, self._group_list()
            if path == "/api/v1" or re.fullmatch(r"/apis/[^/]+/[^/]+", path):
                return 200, self._resource_list(path)
            match = _PATH_RE.match(path)
            if not match or match.group("resource") not in _BY_RESOURCE:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            resource, namespace, name, sub = (match.group("resource"), match.group("namespace") or "",
                                              match.group("name"), match.group("sub"))
            if resource == "selfsubjectaccessreviews" and method == "POST":
                return 201, self._review(identity, body)
            self._authorize(identity, method, resource, namespace, name)
            return self._serve(cluster, method, resource, namespace, name, sub, query, body, content_type)

    _bearer = None

    def _authorize(self, identity, method, resource, namespace, name):
        if identity.admin:
            return
        if identity.user == "system:anonymous":
            if method == "GET" and resource == "configmaps" and namespace == "kube-public" and name == "cluster-info":
                return
        elif "system:bootstrappers" in identity.groups and _bootstrap_allowed(method, resource, namespace, name):
            return
        raise ApiError(403, "Forbidden", f'{resource} "{name or ""}" is forbidden: User "{identity.user}" cannot '
                       f"{method.lower()} resource \"{resource}\" in the namespace \"{namespace}\"")

    def _review(self, identity, body):
        """kubectl auth can-i: allowed as _authorize would decide (verbs map to the HTTP methods)."""
        attributes = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        method = {"get": "GET", "list": "GET", "watch": "GET", "create": "POST", "update": "PUT", "patch": "PATCH",
                  "delete": "DELETE"}.get(attributes.get("verb"), "*")
        try:
            if method == "*" and not identity.admin:
                raise ApiError(403, "Forbidden", "only cluster admins may do every verb")
            self._authorize(identity, method, attributes.get("resource", "*"), attributes.get("namespace", ""),
                            attributes.get("name"))
            allowed = True
        except ApiError:
            allowed = False
        return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                "spec": body.get("spec", {}), "status": {"allowed": allowed}}

    @staticmethod
    def _group_list():
        groups = []
        for group, version in RESOURCES:
            if group:
                gv = {"groupVersion": f"{group}/{version}", "version": version}
                groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    @staticmethod
    def _resource_list(path):
        group, version = ("", "v1") if path == "/api/v1" else tuple(path.split("/")[2:4])
        if (group, version) not in RESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resources = []
        for resource, kind, namespaced in RESOURCES[(group, version)]:
            resources.append({"name": resource, "singularName": kind.lower(), "namespaced": namespaced,
                              "kind": kind, "verbs": _ALL_VERBS})
            if resource == "pods":
                resources.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                                  "version": "v1", "kind": "Eviction", "verbs": ["create"]})
            if resource in ("nodes", "pods", "certificatesigningrequests"):
                resources.append({"name": f"{resource}/status", "singularName": "", "namespaced": namespaced,
                                  "kind": kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else "v1", "resources": resources}

    def _serve(self, cluster, method, resource, namespace, name, sub, query, body, content_type):
        group, version, kind, namespaced = _BY_RESOURCE[resource]
        api_version = f"{group}/{version}" if group else version
        if namespaced and namespace and resource != "namespaces" and cluster.get("namespaces", namespace) is None \
                and method in ("POST", "PUT", "PATCH"):
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')

        def first(key):
            return (query.get(key) or [None])[0]

        if name is None:
            if method == "GET":
                items = [obj for obj in cluster.list(resource, namespace if namespaced and namespace else None)
                         if _matches(obj, first("labelSelector"), first("fieldSelector"))]
                return 200, {"kind": f"{kind}List", "apiVersion": api_version,
                             "metadata": {"resourceVersion": cluster.resource_version}, "items": items}
            if method == "POST":
                return 201, self._create(cluster, resource, kind, api_version, namespace if namespaced else "", body)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a list")
        current = cluster.get(resource, name, namespace if namespaced else "")
        if sub == "eviction" and method == "POST":
            if current is None:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            cluster.delete(resource, name, namespace)
            return 201, status(201, "", "")
        if method == "GET":
            if current is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            if resource == "configmaps" and namespace == "kube-public" and name == "cluster-info":
                current = self._signed_cluster_info(cluster, current)
            return 200, current
        if method == "DELETE":
            if current is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            cluster.delete(resource, name, namespace if namespaced else "")
            return 200, current if kind != "Secret" else status(200, "", "")
        if method == "PUT":
            if current is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            expected = (body.get("metadata") or {}).get("resourceVersion")
            if expected and expected != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": the object '
                               "has been modified; please apply your changes to the latest version and try again")
            return 200, cluster.put(resource, self._complete(body, kind, api_version, namespace, name, namespaced))
        if method == "PATCH":
            if isinstance(body, list):
                if current is None:
                    raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
                patched = json_patch(current, body)
            elif "apply-patch" in content_type:
                patched = merge(current or {}, body)
            else:
                if current is None:
                    raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
                patched = merge(current, body)
            code = 200 if current is not None else 201
            return code, cluster.put(resource, self._complete(patched, kind, api_version, namespace, name, namespaced))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    @staticmethod
    def _complete(obj, kind, api_version, namespace, name, namespaced):
        obj = copy.deepcopy(obj)
        obj["kind"], obj["apiVersion"] = kind, api_version
        metadata = obj.setdefault("metadata", {})
        if metadata.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name in the URL")
        metadata["name"] = name
        if namespaced:
            metadata["namespace"] = namespace
        return obj

    def _create(self, cluster, resource, kind, api_version, namespace, body):
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body is not an object")
        metadata = body.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + hashlib.sha256(json.dumps(body).encode()).hexdigest()[:5]
        if not metadata.get("name"):
            raise ApiError(422, "Invalid", f"{kind} is invalid: metadata.name: Required value: name or generateName "
                           "is required")
        if cluster.get(resource, metadata["name"], namespace) is not None:
            raise ApiError(409, "AlreadyExists", f'{resource} "{metadata["name"]}" already exists')
        metadata.pop("resourceVersion", None)
        obj = self._complete(body, kind, api_version, namespace, metadata["name"], bool(namespace))
        if resource == "certificatesigningrequests":
            obj = self._sign(obj)
        return cluster.put(resource, obj)

    def _sign(self, csr):
        with open(f"{self.pki_dir}/ca.key") as f:
            ca_key = f.read()
        with open(f"{self.pki_dir}/ca.crt") as f:
            ca_cert = f.read()
        request = base64.b64decode(csr["spec"]["request"]).decode()
        csr["status"] = {
            "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved",
                            "message": "Auto approving kubelet client certificate after SubjectAccessReview."}],
            "certificate": pki.b64(pki.sign_csr(ca_key, ca_cert, request)),
        }
        return csr

    @staticmethod
    def _signed_cluster_info(cluster, config_map):
        """The bootstrapsigner controller adds one signature per valid token that may sign."""
        kubeconfig = config_map["data"]["kubeconfig"]
        for secret in cluster.list("secrets", "kube-system"):
            if secret.get("type") == state.BOOTSTRAP_TOKEN_TYPE and \
                    state.secret_value(secret, "usage-bootstrap-signing") == "true":
                token_id = state.secret_value(secret, "token-id")
                config_map["data"][f"jws-kubeconfig-{token_id}"] = jws(state.secret_value(secret, "token-secret"),
                                                                       kubeconfig)
        return config_map


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None

    def setup(self):
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
        super().setup()

    def log_message(self, format, *args):
        pass

    def _identity(self):
        try:
            cert = self.request.getpeercert()
        except (ValueError, AttributeError):
            cert = None
        if not cert:
            return None
        names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
        groups = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "organizationName"]
        return Identity(names[0] if names else "", groups)

    def _serve(self, method):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type") or ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            import yaml  # noqa: PLC0415  (server-side apply bodies may be YAML)

            body = yaml.safe_load(raw)
        authorization = self.headers.get("Authorization") or ""
        api = copy.copy(self.api)
        api._bearer = authorization[7:].strip() if authorization.startswith("Bearer ") else None
        try:
            code, answer = api.handle(method, url, body, content_type, self._identity())
        except ApiError as e:
            code, answer = e.code, status(e.code, e.reason, e.message)
        except Exception as e:  # noqa: BLE001  (a double that crashes must still answer)
            code, answer = 500, status(500, "InternalError", f"kubesim: {type(e).__name__}: {e}")
        if isinstance(answer, str):
            payload, kind = answer.encode(), "text/plain"
        else:
            payload, kind = json.dumps(answer).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.api.served[url.path.rstrip("/") or "/"] = time.monotonic()

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
