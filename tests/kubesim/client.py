# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal HTTPS client for the doubles (kubectl, kubeadm join): kubeconfig credentials or a
bootstrap token, the cluster CA or (discovery only) no verification."""

import base64
import http.client
import json
import os
import ssl
import tempfile

import yaml


class ApiError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def load_kubeconfig(path):
    with open(path) as f:
        return yaml.safe_load(f)


def _current(config):
    name = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    return cluster, user


def server_of(config):
    return _current(config)[0]["server"]


def _data(entry, key):
    if f"{key}-data" in entry:
        return base64.b64decode(entry[f"{key}-data"])
    if key in entry:
        with open(entry[key], "rb") as f:
            return f.read()
    return None


def request(method, url, body=None, kubeconfig=None, token=None, ca=None, insecure=False, timeout=10,
            content_type="application/json"):
    """One request; return the decoded JSON (or text) answer; raise ApiError on an HTTP error or
    OSError when nothing answers."""
    context = ssl.create_default_context()
    cleanup = []
    try:
        if kubeconfig is not None:
            cluster, user = _current(kubeconfig)
            url = cluster["server"].rstrip("/") + url
            ca = _data(cluster, "certificate-authority")
            token = user.get("token")
            cert, key = _data(user, "client-certificate"), _data(user, "client-key")
            if cert and key:
                handle, path = tempfile.mkstemp(prefix="kubesim-", suffix=".pem")
                cleanup.append(path)
                with os.fdopen(handle, "wb") as f:
                    f.write(cert + b"\n" + key)
                context.load_cert_chain(path)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif ca:
            context.load_verify_locations(cadata=ca.decode() if isinstance(ca, bytes) else ca)
        scheme_less = url.split("://", 1)[1]
        hostport, dummy, path = scheme_less.partition("/")
        host, dummy, port = hostport.rpartition(":")
        connection = http.client.HTTPSConnection(host, int(port or 443), context=context, timeout=timeout)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        connection.request(method, "/" + path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read().decode()
        connection.close()
    finally:
        for path in cleanup:
            os.unlink(path)
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = raw
    if response.status >= 400:
        message = answer.get("message", raw) if isinstance(answer, dict) else raw
        raise ApiError(response.status, message)
    return answer
