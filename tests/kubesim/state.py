# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster state: one JSON file under an exclusive flock, shared by every node of a scenario.

It stands for etcd plus the controllers kubeadm relies on: objects are stored by resource,
namespace and name; the token cleaner of kube-controller-manager (bootstrap tokens deleted
when they expire) and the garbage collector (objects owned by a deleted token, such as the
kubeadm-certs Secret, go with it) run on every access.

The clock can be moved forward (``advance``) so that tests can expire tokens and uploaded
certificates without waiting: every double reads the time through ``now()``.
"""

import contextlib
import copy
import datetime
import fcntl
import json
import os
import uuid

STATE_DIR_ENV = "KUBESIM_STATE_DIR"
DEFAULT_STATE_DIR = "/var/lib/kubesim"
BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"


def state_dir():
    return os.environ.get(STATE_DIR_ENV, DEFAULT_STATE_DIR)


def _empty():
    return {"objects": {}, "resourceVersion": 1000, "clockOffset": 0, "etcdMembers": []}


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return _empty()


def now(data=None):
    """The simulated time (UTC): the real time plus the clock offset of the state."""
    offset = (data if data is not None else read()).get("clockOffset", 0)
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


class Cluster:
    """Access to the stored objects; use ``with locked() as cluster`` to read and write."""

    def __init__(self, data):
        self.data = data

    # -- objects ---------------------------------------------------------------------------

    def _bucket(self, resource):
        return self.data["objects"].setdefault(resource, {})

    def get(self, resource, name, namespace=""):
        obj = self._bucket(resource).get(f"{namespace}/{name}")
        return copy.deepcopy(obj)

    def list(self, resource, namespace=None):
        return [
            copy.deepcopy(obj)
            for key, obj in sorted(self._bucket(resource).items())
            if namespace is None or key.split("/", 1)[0] == namespace
        ]

    def put(self, resource, obj):
        """Create or replace ``obj``; keep uid and creationTimestamp; return the stored copy."""
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        namespace = metadata.get("namespace", "")
        key = f"{namespace}/{metadata['name']}"
        current = self._bucket(resource).get(key)
        if current is not None:
            unchanged = {k: v for k, v in current.items() if k != "metadata"} == {
                k: v for k, v in obj.items() if k != "metadata"
            } and {k: v for k, v in current["metadata"].items() if k not in ("uid", "creationTimestamp", "resourceVersion")} \
                == {k: v for k, v in metadata.items() if k not in ("uid", "creationTimestamp", "resourceVersion")}
            if unchanged:  # as kube-apiserver: a no-op write keeps the resourceVersion
                return copy.deepcopy(current)
            metadata["uid"] = current["metadata"]["uid"]
            metadata["creationTimestamp"] = current["metadata"]["creationTimestamp"]
        else:
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = rfc3339(now(self.data))
        self.data["resourceVersion"] += 1
        metadata["resourceVersion"] = str(self.data["resourceVersion"])
        self._bucket(resource)[key] = obj
        return copy.deepcopy(obj)

    def delete(self, resource, name, namespace=""):
        obj = self._bucket(resource).pop(f"{namespace}/{name}", None)
        if obj is not None:
            self._collect_garbage(obj["metadata"]["uid"])
        return obj

    def _collect_garbage(self, uid):
        for bucket in self.data["objects"].values():
            for key, obj in list(bucket.items()):
                owners = obj.get("metadata", {}).get("ownerReferences") or []
                if any(owner.get("uid") == uid for owner in owners):
                    del bucket[key]
                    self._collect_garbage(obj["metadata"]["uid"])

    @property
    def resource_version(self):
        return str(self.data["resourceVersion"])

    # -- controllers -----------------------------------------------------------------------

    def clean_expired_tokens(self):
        """kube-controller-manager's tokencleaner: delete bootstrap tokens past their expiration."""
        moment = now(self.data)
        for secret in self.list("secrets", "kube-system"):
            if secret.get("type") != BOOTSTRAP_TOKEN_TYPE:
                continue
            expiration = secret_value(secret, "expiration")
            if expiration and parse_rfc3339(expiration) <= moment:
                self.delete("secrets", secret["metadata"]["name"], "kube-system")

    # -- kubeadm's cluster -----------------------------------------------------------------

    @property
    def initialized(self):
        return self.get("configmaps", "kubeadm-config", "kube-system") is not None

    @property
    def etcd_members(self):
        return self.data.setdefault("etcdMembers", [])

    def advance(self, seconds):
        self.data["clockOffset"] = self.data.get("clockOffset", 0) + seconds

    # -- history (for tests) ---------------------------------------------------------------

    def record(self, event, **fields):
        """Append to the history: what kubeadm and the kubelets did, in order (``ctl dump`` shows it), so that a
        test can check the order of an upgrade. Nothing reads it back."""
        self.data.setdefault("history", []).append(dict(fields, event=event, time=rfc3339(now(self.data))))


def secret_value(secret, key):
    import base64  # noqa: PLC0415

    if key in (secret.get("stringData") or {}):
        return secret["stringData"][key]
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value is not None else None


def _paths():
    directory = state_dir()
    return os.path.join(directory, "state.json"), os.path.join(directory, "state.lock")


def read():
    """A snapshot of the state (no lock held afterwards)."""
    with locked(write=False) as cluster:
        return cluster.data


@contextlib.contextmanager
def locked(write=True):
    """Hold the state's lock; yield a Cluster; write the state back when ``write`` and it changed."""
    path, lock_path = _paths()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = _read(path)
            before = json.dumps(data, sort_keys=True)
            cluster = Cluster(data)
            cluster.clean_expired_tokens()
            yield cluster
            after = json.dumps(cluster.data, sort_keys=True)
            if (write or after != before) and after != before:
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "w") as f:
                    f.write(after)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def reset():
    """Forget the whole cluster (a fresh scenario)."""
    path, dummy = _paths()
    with locked() as cluster:
        cluster.data.clear()
        cluster.data.update(_empty())
    return path
