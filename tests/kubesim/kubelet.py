# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubelet double: ``python3 -m kubesim.kubelet`` (ExecStart of kubelet.service).

As the real kubelet under the packages' unit: it exits when /var/lib/kubelet/config.yaml or its
kubeconfig is missing (systemd restarts it until kubeadm has written them); then it registers and
heartbeats its Node (Ready, nodeInfo.kubeletVersion = the installed kubelet double's version) and
"runs" the static pods: for kube-apiserver.yaml it serves the API server double on the manifest's
--advertise-address/--secure-port, with the manifest's image tag as its version, and restarts it
(a gap of RESTART_GAP seconds, or restart_gap in /etc/kubesim/kubelet.json, as the real static pod restart)
whenever the manifest changes.
"""

import argparse
import json
import os
import signal
import sys
import time

from . import versions
from .paths import ETC, KUBELET_CONFIG, MANIFESTS, PKI, exists, p, read

# The kubelet exits (and systemd restarts it) until kubeadm has configured it: the heavy modules are loaded
# only after the checks in main().
apiserver = client = pki = state = yaml = kubevip = None


def _load_modules():
    global apiserver, client, pki, state, yaml, kubevip  # noqa: PLW0603
    import yaml as _yaml  # noqa: PLC0415

    from . import apiserver as _apiserver  # noqa: PLC0415
    from . import client as _client  # noqa: PLC0415
    from . import pki as _pki  # noqa: PLC0415
    from . import state as _state  # noqa: PLC0415

    apiserver, client, pki, state, yaml = _apiserver, _client, _pki, _state, _yaml
    from . import kubevip as _kubevip  # noqa: PLC0415

    kubevip = _kubevip


RESTART_GAP = 2
HEARTBEAT = 10
# Per-node settings of the kubelet double: {"restart_gap": seconds} between stopping the old kube-apiserver and
# serving the new one when its manifest changes (default RESTART_GAP).
SETTINGS_FILE = "/etc/kubesim/kubelet.json"


def restart_gap():
    """The static pod restart gap of this node: a real kube-apiserver takes well over kube-vip's 3 s renew deadline
    (the kubelet stops the old container, then the new one loads its state from etcd before it serves), so an HA
    scenario sets the slow end here (docs/kubesim.md)."""
    if exists(SETTINGS_FILE):
        with open(p(SETTINGS_FILE)) as f:
            return float(json.load(f).get("restart_gap", RESTART_GAP))
    return RESTART_GAP


def node_name(kubeconfig_path):
    kubeconfig = client.load_kubeconfig(kubeconfig_path)
    cert = client._data(kubeconfig["users"][0]["user"], "client-certificate")
    return pki.subject(cert.decode())[0].replace("system:node:", "")


def node_ip():
    flags = read("/var/lib/kubelet/kubeadm-flags.env") if exists("/var/lib/kubelet/kubeadm-flags.env") else ""
    for word in flags.replace('"', " ").split():
        if word.startswith("--node-ip="):
            return word.split("=", 1)[1]
    return ""


def heartbeat(name, last, version=None):
    """Post the node status; return the time of this post (or ``last`` when nothing was due).

    ``version``: the version of the running kubelet, read when it started (a package upgrade takes effect when the
    kubelet restarts, as with the real binary); a change is recorded in the state's history with the node's
    spec.unschedulable at that moment (the upgrade test checks that the node was drained)."""
    moment = time.monotonic()
    with state.locked() as cluster:
        if not cluster.initialized:
            return last
        node = cluster.get("nodes", name)
        version = version or versions.installed("kubelet")
        if node is None:
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                          "kubernetes.io/arch": "amd64"}},
                    "spec": {}, "status": {"addresses": [{"type": "InternalIP", "address": node_ip()}]}}
        status = node.setdefault("status", {})
        previous = status.get("nodeInfo", {}).get("kubeletVersion")
        if previous and previous != version:
            cluster.record("kubelet version", node=name, version=version, previous=previous,
                           unschedulable=bool(node.get("spec", {}).get("unschedulable")))
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        if ready and ready[0]["status"] == "True" and status.get("nodeInfo", {}).get("kubeletVersion") == version \
                and moment - last < HEARTBEAT:
            return last
        stamp = state.rfc3339(state.now(cluster.data))
        status["conditions"] = [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                 "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
                                 "lastTransitionTime": stamp}]
        # Every field of NodeSystemInfo the kubelet posts: the kubernetes Python client (k8s_drain) refuses a Node
        # without them (boot_id must not be None).
        status["nodeInfo"] = {"kubeletVersion": version, "containerRuntimeVersion": "containerd://2.1.4",
                              "operatingSystem": "linux", "architecture": "amd64", "bootID": name,
                              "machineID": name, "systemUUID": name, "kernelVersion": os.uname().release,
                              "osImage": "Debian GNU/Linux 12 (bookworm)", "kubeProxyVersion": ""}
        cluster.put("nodes", node)
    return moment


def apiserver_spec():
    path = p(f"{MANIFESTS}/kube-apiserver.yaml")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        pod = yaml.safe_load(f)
    container = pod["spec"]["containers"][0]
    flags = dict(a[2:].split("=", 1) for a in container["command"] if a.startswith("--") and "=" in a)
    return (flags.get("advertise-address", "0.0.0.0"), int(flags.get("secure-port", 6443)),
            container["image"].rsplit(":", 1)[1], os.stat(path).st_mtime, flags.get("bind-address", "0.0.0.0"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kubelet")
    parser.add_argument("--config", default=KUBELET_CONFIG)
    parser.add_argument("--kubeconfig", default=f"{ETC}/kubelet.conf")
    parser.add_argument("--version", action="store_true")
    args, unknown = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(f"Kubernetes {versions.installed('kubelet')}")
        return 0
    if not exists(args.config):
        print(f'"command failed" err="failed to load kubelet config file, path: {args.config}, error: open '
              f'{args.config}: no such file or directory"', file=sys.stderr)
        return 1
    if not exists(args.kubeconfig):
        print(f'"command failed" err="failed to run Kubelet: unable to load bootstrap kubeconfig: stat '
              f'{args.kubeconfig}: no such file or directory"', file=sys.stderr)
        return 1
    _load_modules()
    name = node_name(p(args.kubeconfig))
    version = versions.installed("kubelet")
    print(f"kubesim kubelet {version} for node {name}", flush=True)
    server, spec, last = None, None, 0.0

    def local_api():
        """The address this node's API server double serves on, '' while it is not running (for kube-vip)."""
        return spec[0] if server is not None else ""

    def log(message):
        print(message, flush=True)

    def served():
        """When this node's API server double last answered each path ({} while it is not running)."""
        return server.served if server is not None else {}

    def stored(key):
        """The resourceVersion of the stored object "resource/namespace/name", or None."""
        resource, namespace, obj_name = key.split("/", 2)
        with state.locked(write=False) as cluster:
            obj = cluster.get(resource, obj_name, namespace)
        return None if obj is None else obj.get("metadata", {}).get("resourceVersion", "")

    # the kube-vip static pod (tests/kubesim/kubevip.py)
    vip = kubevip.KubeVipPod(name, local_api, log, served=served, stored=stored)

    def terminate(signum, frame):
        # systemctl stop/restart kubelet: the double's pods end with it, and the VIP address must not stay behind.
        vip.stop(release=False)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    while exists(args.config) and exists(args.kubeconfig):
        wanted = apiserver_spec()
        if wanted != spec:
            if server is not None:
                print("stopping kube-apiserver (manifest changed)", flush=True)
                server.stop()
                server = None
                time.sleep(restart_gap())
            spec = wanted
            if wanted is not None:
                try:
                    server = apiserver.Server(wanted[0], wanted[1], wanted[2], p(PKI), bind=wanted[4]).start()
                    print(f"kube-apiserver {wanted[2]} serving on {wanted[0]}:{wanted[1]}", flush=True)
                except OSError as e:
                    print(f"kube-apiserver failed to start: {e}", flush=True)
                    spec = None
                    time.sleep(1)
        try:
            last = heartbeat(name, last, version)
        except (OSError, ValueError) as e:
            print(f"heartbeat failed: {e}", flush=True)
        vip.sync()
        time.sleep(0.5)
    vip.stop()
    if server is not None:
        server.stop()
    print("kubelet configuration removed; exiting", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
