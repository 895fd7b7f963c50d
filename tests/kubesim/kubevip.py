# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kube-vip double: the kubelet double runs it for /etc/kubernetes/manifests/kube-vip.yaml.

What it models of kube-vip (control-plane mode, ARP, leader election; upstream kube-vip/kube-vip
pkg/cluster/clusterLeaderElection.go, NewManager and StartCluster):
- The manifest's env: ``address`` (the VIP), ``port``, ``vip_interface``, ``vip_subnet``,
  ``vip_leasename`` (plndr-cp-lock), ``cp_namespace``, ``vip_leaseduration`` / ``vip_renewdeadline``
  / ``vip_retryperiod`` (seconds) and the hostPath of the kubeconfig volume (super-admin.conf during
  kubeadm init, admin.conf after). The identity is the node name (``vip_nodename`` = spec.nodeName).
- NewManager: the kubeconfig's credentials, but the server replaced by ``kubernetes:<port>``, which
  the manifest's hostAliases resolve to this node: kube-vip only ever talks to its own API server.
  The double uses the address that API server serves on (the kube-apiserver manifest's
  --advertise-address).
- StartCluster: delete the VIP in case it is left over, then client-go leader election on a
  coordination.k8s.io Lease with ReleaseOnCancel (client-go tools/leaderelection/leaderelection.go:
  tryAcquireOrRenew, renew, release). The leader adds the VIP to the interface (``ip addr add
  VIP/subnet dev IFACE``) and sends a gratuitous ARP; a follower takes a held lease only after it has
  seen the same lease record for a whole lease duration. When the leader cannot renew within the
  renew deadline (its API server is down) it deletes the VIP and exits ("lost leadership, restarting
  kube-vip"): the kubelet restarts it after a back-off. On SIGTERM (pod stopped, manifest changed) it
  releases the lease (holder "" and a lease of 1 s, as client-go's release) and deletes the VIP.

The pod lifecycle (``KubeVipPod.sync``, called by the kubelet double's loop): the manifest found when
the kubelet starts runs after ``start`` seconds; a changed manifest is acted on after ``pickup``
seconds (the real kubelet sees it at once through inotify or at its 20 s fileCheckFrequency re-list),
the old instance is stopped (SIGTERM), and the new one starts ``gap`` seconds later (pod sandbox and
container start); a crashed instance restarts after ``backoff`` seconds (CrashLoopBackOff's first
step). During the gap nobody holds the VIP: it answers nothing. The defaults are at the slow end of
what a real control plane shows; /etc/kubesim/kube-vip.json (keys start, pickup, gap, backoff)
overrides them per node.

A test places the gap adversarially with ``pickup_after`` (a request path, in the same file): a changed
manifest is then acted on right after this node's API server has answered a request for that path
(at the latest after ``pickup`` seconds). The real kubelet may see the change at any moment up to its
re-list; the test picks the worst one, deterministically: e.g. right after the last call that retries,
so that the next single-shot call meets the gap (defect 9 of issue 11, molecule/kubernetes_ha).
``pickup_after_object`` ("resource/namespace/name") does the same after the stored object was written
(created or changed) since the manifest changed, for steps the double performs on the state directly.
"""

import datetime
import json
import os
import socket
import struct
import subprocess
import threading
import time

import yaml

from . import client
from .paths import MANIFESTS, exists, p, root

MANIFEST = f"{MANIFESTS}/kube-vip.yaml"
TIMING_FILE = "/etc/kubesim/kube-vip.json"
TIMING = {"pickup": 3.0, "gap": 6.0, "backoff": 10.0, "start": 0.5}


def micro_time(moment=None):
    """A MicroTime as client-go writes it into the Lease (RFC 3339 with microseconds)."""
    stamp = datetime.datetime.fromtimestamp(time.time() if moment is None else moment, tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_manifest(path):
    """The settings of a kube-vip static pod manifest, or None when it is missing."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        pod = yaml.safe_load(f)
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env") or [] if "value" in e}
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts") or []}
    volumes = {v["name"]: (v.get("hostPath") or {}).get("path") for v in pod["spec"].get("volumes") or []}
    kubeconfig = next((volumes.get(name) for name, mount in mounts.items()
                       if mount.endswith(".conf") and volumes.get(name)), None)
    return {
        "image": container.get("image", ""),
        "address": env.get("address") or env.get("vip_address") or "",
        "port": int(env.get("port") or 6443),
        "interface": env.get("vip_interface") or "",
        "subnet": str(env.get("vip_subnet") or "32"),
        "lease_name": env.get("vip_leasename") or "plndr-cp-lock",
        "namespace": env.get("cp_namespace") or "kube-system",
        "lease_duration": int(env.get("vip_leaseduration") or 5),
        "renew_deadline": int(env.get("vip_renewdeadline") or 3),
        "retry_period": int(env.get("vip_retryperiod") or 1),
        "leader_election": (env.get("vip_leaderelection") or "false") == "true",
        "kubeconfig": kubeconfig,
    }


def timing():
    values = dict(TIMING, pickup_after=None, pickup_after_object=None)
    if exists(TIMING_FILE):
        with open(p(TIMING_FILE)) as f:
            loaded = json.load(f)
        values.update({k: float(v) for k, v in loaded.items() if k in TIMING})
        for key in ("pickup_after", "pickup_after_object"):
            if loaded.get(key):
                values[key] = str(loaded[key])
    return values


class Elector:
    """client-go leader election on one Lease (tools/leaderelection/leaderelection.go).

    ``request(method, path, body)`` talks to the API server (raises OSError when nothing answers,
    client.ApiError on an HTTP error); ``clock`` is monotonic seconds. Expiry is judged as client-go
    does: by when this candidate last saw the record change (observedTime), not by the renewTime the
    holder wrote, so clocks of different nodes never matter.
    """

    def __init__(self, request, identity, name, namespace, lease_duration, clock=time.monotonic):
        self.request, self.identity, self.lease_duration, self.clock = request, identity, lease_duration, clock
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.name, self.namespace = name, namespace
        self.observed, self.observed_time = None, 0.0

    def _record(self, spec, now, transitions):
        return {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_duration,
                "acquireTime": spec.get("acquireTime") if spec.get("holderIdentity") == self.identity else micro_time(),
                "renewTime": micro_time(), "leaseTransitions": transitions}

    def try_acquire_or_renew(self):
        """One round of tryAcquireOrRenew: True when this candidate holds the lease afterwards."""
        now = self.clock()
        try:
            lease = self.request("GET", self.path)
        except client.ApiError as e:
            if e.code != 404:
                return False
            record = self._record({}, now, 0)
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": record}
            try:
                self.request("POST", self.path.rsplit("/", 1)[0], body)
            except (OSError, client.ApiError):
                return False
            self.observed, self.observed_time = record, now
            return True
        except OSError:
            return False
        spec = lease.get("spec") or {}
        if spec != self.observed:
            self.observed, self.observed_time = spec, now
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and self.observed_time + duration > now:
            return False  # held by another candidate and not expired
        transitions = (spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        record = self._record(spec, now, transitions)
        body = dict(lease, spec=record)
        try:
            self.request("PUT", self.path, body)  # metadata.resourceVersion: a concurrent update gets 409
        except (OSError, client.ApiError):
            return False
        self.observed, self.observed_time = record, now
        return True

    def release(self):
        """ReleaseOnCancel: clear the holder so that another candidate takes the lease at once."""
        try:
            lease = self.request("GET", self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return False
            now = micro_time()
            self.request("PUT", self.path, dict(lease, spec={
                "holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now,
                "leaseTransitions": spec.get("leaseTransitions") or 0}))
            return True
        except (OSError, client.ApiError):
            return False


class IpAnnouncer:
    """Holds the VIP as kube-vip does with ARP: a secondary address on the interface and a gratuitous ARP
    (kube-vip pkg/vip AddIP/DeleteIP and its ARP advertisement). Needs CAP_NET_ADMIN and CAP_NET_RAW."""

    def __init__(self, address, subnet, interface):
        self.address, self.subnet, self.interface = address, subnet, interface

    def _ip(self, *args):
        return subprocess.run(["ip", *args], check=False, capture_output=True, text=True)

    def held(self):
        out = self._ip("-o", "-4", "addr", "show", "dev", self.interface).stdout
        return f" {self.address}/" in out

    def add(self):
        result = self._ip("addr", "add", f"{self.address}/{self.subnet}", "dev", self.interface)
        if result.returncode != 0 and "File exists" not in result.stderr:
            raise OSError(f"ip addr add {self.address}/{self.subnet} dev {self.interface}: {result.stderr.strip()}")
        self.gratuitous_arp()

    def remove(self):
        if self.held():
            self._ip("addr", "del", f"{self.address}/{self.subnet}", "dev", self.interface)

    def gratuitous_arp(self):
        """An ARP request for the VIP from the VIP, broadcast: neighbours update their caches to this node's MAC."""
        with open(f"/sys/class/net/{self.interface}/address") as f:
            mac = bytes.fromhex(f.read().strip().replace(":", ""))
        ip = socket.inet_aton(self.address)
        frame = (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
                 + mac + ip + b"\x00" * 6 + ip).ljust(60, b"\x00")
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((self.interface, 0))
            for _attempt in range(3):
                sock.send(frame)


class FileAnnouncer:
    """Unit tests (KUBESIM_ROOT set): holding the VIP is a file naming the holder under <root>/run/kubesim/vip."""

    def __init__(self, address, subnet, interface, node):
        self.path = os.path.join(root(), "run/kubesim/vip", address)
        self.node = node

    def held(self):
        return os.path.exists(self.path)

    def add(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "w") as f:
            f.write(self.node + "\n")

    def remove(self):
        if self.held():
            os.unlink(self.path)


class KubeVip:
    """One kube-vip container: leader election in a thread; ``stop()`` is SIGTERM."""

    def __init__(self, settings, node, local_api, announcer=None, log=print):
        self.settings, self.node, self.local_api, self.log = settings, node, local_api, log
        self.announcer = announcer or (IpAnnouncer(settings["address"], settings["subnet"], settings["interface"])
                                       if root() == "/" else
                                       FileAnnouncer(settings["address"], settings["subnet"], settings["interface"],
                                                     node))
        self.leader = False
        self.exited = None  # why the container exited (None while it runs)
        self._stop = threading.Event()
        self._thread = None
        self.elector = Elector(self._request, node, settings["lease_name"], settings["namespace"],
                               settings["lease_duration"])

    def _request(self, method, path, body=None):
        """NewManager: the kubeconfig's credentials, the server replaced by this node's API server."""
        kubeconfig = client.load_kubeconfig(p(self.settings["kubeconfig"]))
        address = self.local_api()
        if not address:
            raise OSError("kube-apiserver is not running on this node")
        for entry in kubeconfig.get("clusters") or []:
            entry["cluster"]["server"] = f"https://{address}:{self.settings['port']}"
        return client.request(method, path, body=body, kubeconfig=kubeconfig, timeout=2)

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        s = self.settings
        if not s["kubeconfig"] or not exists(s["kubeconfig"]):
            # hostPath type File: the kubelet does not start the container without the file.
            self.exited = f"hostPath {s['kubeconfig']} is missing"
            return
        self.announcer.remove()  # StartCluster: delete the VIP in case it already exists
        self.log(f"kube-vip {s['image']}: {s['address']} on {s['interface']}, lease {s['namespace']}/"
                 f"{s['lease_name']} as {self.node} via {s['kubeconfig']}")
        last_renew = 0.0
        while not self._stop.is_set():
            ok = self.elector.try_acquire_or_renew()
            now = time.monotonic()
            if ok:
                last_renew = now
                if not self.leader:
                    try:
                        self.announcer.add()
                    except OSError as e:
                        self.log(f"kube-vip: {e}")
                        self.exited = str(e)
                        return
                    self.leader = True
                    self.log(f"kube-vip: {self.node} is the leader; {s['address']} added to {s['interface']}")
            elif self.leader and now - last_renew > s["renew_deadline"]:
                self.announcer.remove()
                self.leader = False
                self.exited = "lost leadership, restarting kube-vip"
                self.log(f"kube-vip: {self.node} could not renew the lease within {s['renew_deadline']}s; "
                         f"{s['address']} deleted; lost leadership, restarting kube-vip")
                return
            self._stop.wait(s["retry_period"])

    def stop(self, release=True):
        """SIGTERM: cancel the leader election (ReleaseOnCancel), delete the VIP. ``release=False``: the kubelet
        double itself stops (on a real node kube-vip would go on running): the address goes, the lease stays."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.leader and release:
            self.elector.release()
            self.leader = False
        self.announcer.remove()
        if self.exited is None:
            self.exited = "stopped"
        self.log(f"kube-vip: stopped on {self.node}; {self.settings['address']} deleted")


class KubeVipPod:
    """The kubelet's view of the kube-vip static pod: ``sync()`` once per kubelet loop."""

    def __init__(self, node, local_api, log=print, manifest=None, clock=time.monotonic, announcer=None, served=None,
                 stored=None):
        self.node, self.local_api, self.log, self.clock = node, local_api, log, clock
        # () -> {path: clock time of this node's API server's last answer to it}, for ``pickup_after``
        self.served = served or dict
        # "resource/namespace/name" -> the stored object's resourceVersion or None, for ``pickup_after_object``
        self.stored = stored or (lambda key: None)
        self.stored_at_change = None
        self.manifest = manifest or p(MANIFEST)
        self.announcer = announcer
        self.running = None
        self.spec = None  # (settings, mtime) of the running or pending instance
        self.seen, self.seen_at = None, 0.0
        self.start_at = None
        self.started = False  # the kubelet starts the pods it finds at its own start without a pickup delay

    def _wanted(self):
        settings = read_manifest(self.manifest)
        return None if settings is None else (settings, os.stat(self.manifest).st_mtime)

    def sync(self):
        now, times = self.clock(), timing()
        wanted = self._wanted()
        if wanted != self.seen:
            self.seen, self.seen_at = wanted, now
            self.stored_at_change = self.stored(times["pickup_after_object"]) if times["pickup_after_object"] else None
        if not self.started:
            self.started = True
            self.spec = self.seen
            self.start_at = now + times["start"] if self.spec else None
        elif self.seen != self.spec and (now - self.seen_at >= times["pickup"]
                                         or self._answered_since(times["pickup_after"], self.seen_at)
                                         or self._written_since(times["pickup_after_object"])):
            if self.running is not None:
                self.log("stopping kube-vip (manifest changed)" if self.seen else "stopping kube-vip (manifest removed)")
                self.running.stop()
                self.running = None
            self.spec = self.seen
            self.start_at = now + times["gap"] if self.spec else None
        if self.running is not None and self.running.exited is not None and self.start_at is None:
            self.log(f"kube-vip exited ({self.running.exited}); restarting in {times['backoff']:.0f}s")
            self.running = None
            self.start_at = now + times["backoff"]
        if self.running is None and self.spec and self.start_at is not None and now >= self.start_at:
            self.start_at = None
            if self.spec[0]["leader_election"]:
                self.running = KubeVip(self.spec[0], self.node, self.local_api, self.announcer, self.log).start()

    def _answered_since(self, path, moment):
        """Whether this node's API server answered a request for ``path`` at or after ``moment``."""
        answered = self.served().get(path) if path else None
        return answered is not None and answered >= moment

    def _written_since(self, key):
        """Whether the stored object ``key`` was written since the manifest changed (e.g. kubeadm-certs by
        `kubeadm init phase upload-certs`, which the double writes to the state directly, not through the VIP)."""
        if not key:
            return False
        version = self.stored(key)
        return version is not None and version != self.stored_at_change

    def stop(self, release=True):
        if self.running is not None:
            self.running.stop(release)
            self.running = None
