# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeadm double: ``python3 -m kubesim.kubeadm <command>`` (installed as /usr/bin/kubeadm).

Commands: version [-o short], config validate --config F, init --config F [--upload-certs]
[--certificate-key K], init phase upload-certs --upload-certs [--certificate-key K],
certs certificate-key, join --config F, token list, upgrade plan [V], upgrade apply V [--yes],
upgrade node, reset [--force] [--cri-socket S].

It writes the files real kubeadm writes (pki/, the kubeconfigs, the static pod manifests, the
kubelet configuration and flags) and the cluster objects (kubeadm-config, kubelet-config,
cluster-info, bootstrap tokens, the Node, the etcd member) into the shared state, and refuses
what kubeadm refuses; the error texts follow kubeadm's (sources named at each rule).
"""

import base64
import json
import os
import pathlib
import re
import secrets
import socket
import sys
import time

import yaml

from . import client, pki, state, versions
from .paths import ETC, ETCD_DIR, KUBELET_CONFIG, KUBELET_FLAGS, MANIFESTS, PKI, exists, p, read, remove, systemctl, write

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
ETCD_IMAGE_TAG = "3.6.5-0"
SHARED_CERTS = ["ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key",
                "etcd/ca.crt", "etcd/ca.key"]
UPLOADED_CERTS_TTL = 2 * 3600  # cmd/kubeadm/app/constants: DefaultCertTokenDuration
_DURATION_RE = re.compile(r"(\d+)(h|m|s)")


class Refused(Exception):
    """kubeadm stops with this message and exit code 1."""


# -- helpers -----------------------------------------------------------------------------------

def duration(text):
    text = str(text)
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise Refused(f'time: invalid duration "{text}"')
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)


def load_config(path):
    try:
        with open(path) as f:
            docs = [doc for doc in yaml.safe_load_all(f) if doc]
    except OSError as e:
        raise Refused(f"unable to read config from {path!r}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise Refused(f"error converting YAML to JSON: {e}") from None
    by_kind = {}
    for doc in docs:
        api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        if kind in ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration", "UpgradeConfiguration", "ResetConfiguration"):
            if api_version != "kubeadm.k8s.io/v1beta4":
                raise Refused(f'no kind "{kind}" is registered for version "{api_version}" in scheme '
                              '"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go"')
        elif (api_version, kind) not in (("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
                                         ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")):
            raise Refused(f'no kind "{kind}" is registered for version "{api_version}"')
        by_kind[kind] = doc
    return by_kind


def new_token():
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _index in range(6)) + "." + "".join(
        secrets.choice(alphabet) for _index in range(16))


def token_secret(token, ttl_seconds, usages=("signing", "authentication"), groups=None, description=None, now=None):
    token_id, token_value = token.split(".")
    data = {"token-id": token_id, "token-secret": token_value}
    if ttl_seconds:
        data["expiration"] = state.rfc3339((now or state.now()) + __import__("datetime").timedelta(seconds=ttl_seconds))
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    if description:
        data["description"] = description
    return {"apiVersion": "v1", "kind": "Secret", "type": state.BOOTSTRAP_TOKEN_TYPE,
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "data": {key: pki.b64(value) for key, value in data.items()}}


def preflight(errors, ignored):
    """Print kubeadm's [ERROR ...] lines for the checks not ignored by name; refuse if any remain."""
    ignored = {name.lower() for name in ignored or []}
    remaining = [(name, text) for name, text in errors if name.lower() not in ignored]
    if remaining:
        lines = "\n".join(f"\t[ERROR {name}]: {text}" for name, text in remaining)
        raise Refused("[preflight] Some fatal errors occurred:\n" + lines +
                      "\n[preflight] If you know what you are doing, you can make a check non-fatal with "
                      "`--ignore-preflight-errors=...`")


def file_check(path):
    name = "FileAvailable-" + path.replace("/", "-")
    return (name, f"{path} already exists") if exists(path) else None


def port_in_use(address, port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address if address != "0.0.0.0" else "127.0.0.1", port)) == 0


def manifest(component, image, command, extra=None):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": component, "namespace": "kube-system",
                        "labels": {"component": component, "tier": "control-plane"}},
           "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical",
                    "containers": [{"name": component, "image": image, "command": command,
                                    "imagePullPolicy": "IfNotPresent"}]}}
    pod["spec"].update(extra or {})
    return yaml.safe_dump(pod, sort_keys=False)


def cluster_config(cluster):
    config_map = cluster.get("configmaps", "kubeadm-config", "kube-system")
    return yaml.safe_load(config_map["data"]["ClusterConfiguration"]) if config_map else None


def endpoint_url(cluster_configuration, advertise, port):
    endpoint = cluster_configuration.get("controlPlaneEndpoint") or f"{advertise}:{port}"
    return f"https://{endpoint}"


def write_kubeconfig(path, cluster_name, server, ca_key, ca_cert, common_name, organizations):
    key, cert = pki.sign(ca_key, ca_cert, common_name, organizations)
    user = common_name if common_name.startswith("system:") else common_name
    write(path, yaml.safe_dump(pki.kubeconfig(cluster_name, server, ca_cert, user, cert, key), sort_keys=False))


def write_control_plane(config, advertise, port, node_name):
    """The certificates of this control plane (CA files must be in pki/), its kubeconfigs and static pods."""
    ca_key, ca_cert = read(f"{PKI}/ca.key"), read(f"{PKI}/ca.crt")
    networking = config.get("networking") or {}
    endpoint_host = (config.get("controlPlaneEndpoint") or advertise).rsplit(":", 1)[0]
    sans = list(dict.fromkeys([node_name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                               "kubernetes.default.svc." + networking.get("dnsDomain", "cluster.local")]
                              + [s for s in (config.get("apiServer") or {}).get("certSANs") or []
                                 if not re.fullmatch(r"[0-9.]+", s)]
                              + ([endpoint_host] if not re.fullmatch(r"[0-9.]+", endpoint_host) else [])))
    ips = list(dict.fromkeys(["10.96.0.1", advertise, "127.0.0.1"]
                             + [s for s in (config.get("apiServer") or {}).get("certSANs") or []
                                if re.fullmatch(r"[0-9.]+", s)]
                             + ([endpoint_host] if re.fullmatch(r"[0-9.]+", endpoint_host) else [])))
    key, cert = pki.sign(ca_key, ca_cert, "kube-apiserver", dns=sans, ips=ips, server=True, client=False)
    write(f"{PKI}/apiserver.key", key)
    write(f"{PKI}/apiserver.crt", cert, 0o644)
    key, cert = pki.sign(ca_key, ca_cert, "kube-apiserver-kubelet-client", ["kubeadm:cluster-admins"])
    write(f"{PKI}/apiserver-kubelet-client.key", key)
    write(f"{PKI}/apiserver-kubelet-client.crt", cert, 0o644)
    server = endpoint_url(config, advertise, port)
    name = config.get("clusterName", "kubernetes")
    write_kubeconfig(f"{ETC}/admin.conf", name, server, ca_key, ca_cert, "kubernetes-admin", ["kubeadm:cluster-admins"])
    local = f"https://{advertise}:{port}"
    write_kubeconfig(f"{ETC}/controller-manager.conf", name, local, ca_key, ca_cert, "system:kube-controller-manager", [])
    write_kubeconfig(f"{ETC}/scheduler.conf", name, local, ca_key, ca_cert, "system:kube-scheduler", [])
    write_manifests(config, advertise, port)


def write_manifests(config, advertise, port):
    repository, version = config.get("imageRepository", "registry.k8s.io"), config["kubernetesVersion"]
    networking = config.get("networking") or {}

    def extra(section):
        return [f"--{a['name']}={a['value']}" for a in (config.get(section) or {}).get("extraArgs") or []]

    write(f"{MANIFESTS}/etcd.yaml", manifest("etcd", f"{repository}/etcd:{ETCD_IMAGE_TAG}", [
        "etcd", f"--advertise-client-urls=https://{advertise}:2379", "--data-dir=/var/lib/etcd"]))
    write(f"{MANIFESTS}/kube-apiserver.yaml", manifest("kube-apiserver", f"{repository}/kube-apiserver:{version}", [
        "kube-apiserver", f"--advertise-address={advertise}", f"--secure-port={port}",
        f"--service-cluster-ip-range={networking.get('serviceSubnet', '10.96.0.0/12')}",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt", "--enable-bootstrap-token-auth=true",
        *extra("apiServer")]))
    write(f"{MANIFESTS}/kube-controller-manager.yaml", manifest(
        "kube-controller-manager", f"{repository}/kube-controller-manager:{version}", [
            "kube-controller-manager", f"--cluster-cidr={networking.get('podSubnet', '')}",
            "--kubeconfig=/etc/kubernetes/controller-manager.conf", *extra("controllerManager")]))
    write(f"{MANIFESTS}/kube-scheduler.yaml", manifest(
        "kube-scheduler", f"{repository}/kube-scheduler:{version}", [
            "kube-scheduler", "--kubeconfig=/etc/kubernetes/scheduler.conf", *extra("scheduler")]))


def write_kubelet_files(kubelet_config_yaml, registration):
    write(KUBELET_CONFIG, kubelet_config_yaml, 0o644)
    args = [f"--container-runtime-endpoint={registration.get('criSocket', 'unix:///run/containerd/containerd.sock')}"]
    args += [f"--{a['name']}={a['value']}" for a in registration.get("kubeletExtraArgs") or []]
    write(KUBELET_FLAGS, f'KUBELET_KUBEADM_ARGS="{" ".join(args)}"\n', 0o644)


def node_object(name, registration, control_plane, node_ip):
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}
    if control_plane:
        labels[CONTROL_PLANE_LABEL] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    taints = registration.get("taints")
    if taints is None:
        taints = [{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}] if control_plane else []
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"kubeadm.alpha.kubernetes.io/cri-socket": registration.get("criSocket", "")}},
            "spec": {"taints": taints} if taints else {},
            "status": {"addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                                       "message": "kubelet has not posted its status yet"}],
                       "nodeInfo": {"kubeletVersion": versions.installed("kubelet")}}}


def node_ip(registration, fallback):
    for arg in registration.get("kubeletExtraArgs") or []:
        if arg.get("name") == "node-ip":
            return arg["value"]
    return fallback


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, client.ApiError):
            pass
        if time.monotonic() > deadline:
            raise Refused(f"[wait-control-plane] {what} did not become ready within {timeout}s")
        time.sleep(0.5)


def wait_for_api(url, ca_cert, timeout=60):
    wait_for(f"the API server at {url}", lambda: client.request("GET", url + "/readyz", ca=ca_cert, timeout=3) == "ok",
             timeout)


def wait_for_node_ready(name, timeout=60):
    def ready():
        node = state.read()["objects"].get("nodes", {}).get(f"/{name}")
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (node or {}).get("status", {}).get("conditions", []))

    wait_for(f"the kubelet of {name}", ready, timeout)


# -- commands ----------------------------------------------------------------------------------

def cmd_version(args):
    version = versions.installed("kubeadm")
    if args[:2] == ["-o", "short"] or "--output=short" in args:
        print(version)
    elif args[:2] == ["-o", "json"]:
        print(json.dumps({"clientVersion": {"gitVersion": version, "major": "1", "minor": version.split(".")[1]}}))
    else:
        print(f'kubeadm version: &version.Info{{Major:"1", Minor:"{version.split(".")[1]}", GitVersion:"{version}"}}')


def option(args, name, default=None):
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def cmd_config_validate(args):
    docs = load_config(option(args, "--config"))
    cluster_configuration = docs.get("ClusterConfiguration")
    if cluster_configuration:
        versions.check_supported(versions.installed("kubeadm"), cluster_configuration.get("kubernetesVersion", ""))
    print("ok")


def cmd_init(args):
    if args[:2] == ["phase", "upload-certs"]:
        return cmd_upload_certs(args[2:])
    docs = load_config(option(args, "--config"))
    init, config = docs.get("InitConfiguration", {}), docs.get("ClusterConfiguration", {})
    kubeadm_version = versions.installed("kubeadm")
    config.setdefault("kubernetesVersion", kubeadm_version)
    versions.check_supported(kubeadm_version, config["kubernetesVersion"])
    registration = init.get("nodeRegistration") or {}
    endpoint = init.get("localAPIEndpoint") or {}
    advertise, port = endpoint.get("advertiseAddress", "127.0.0.1"), int(endpoint.get("bindPort", 6443))
    name = registration.get("name") or socket.gethostname()
    # cmd/kubeadm/app/preflight/checks.go RunInitNodeChecks: FileAvailable, Port, DirAvailable.
    errors = [file_check(f"{MANIFESTS}/{c}.yaml") for c in ("kube-apiserver", "kube-controller-manager",
                                                            "kube-scheduler", "etcd")]
    errors.append(file_check(f"{ETC}/kubelet.conf"))
    if port_in_use(advertise, port):
        errors.append((f"Port-{port}", f"Port {port} is in use"))
    if exists(f"{ETCD_DIR}/member"):
        errors.append(("DirAvailable--var-lib-etcd", "/var/lib/etcd is not empty"))
    preflight([e for e in errors if e], registration.get("ignorePreflightErrors"))
    with state.locked() as cluster:
        if cluster.initialized:
            raise Refused("kubesim: the shared state holds a cluster already (one state, one cluster): "
                          "this init would create a second etcd cluster")
        print("[certs] Using certificateDir folder \"/etc/kubernetes/pki\"")
        for ca_name, common_name in (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca")):
            key, cert = pki.make_ca(common_name)
            write(f"{PKI}/{ca_name}.key", key)
            write(f"{PKI}/{ca_name}.crt", cert, 0o644)
        sa = pki.new_key()
        write(f"{PKI}/sa.key", pki.key_pem(sa))
        write(f"{PKI}/sa.pub", pki.public_pem(sa), 0o644)
        write_control_plane(config, advertise, port, name)
        ca_key, ca_cert = read(f"{PKI}/ca.key"), read(f"{PKI}/ca.crt")
        server = endpoint_url(config, advertise, port)
        cluster_name = config.get("clusterName", "kubernetes")
        write_kubeconfig(f"{ETC}/super-admin.conf", cluster_name, server, ca_key, ca_cert, "kubernetes-super-admin",
                         ["system:masters"])
        write_kubeconfig(f"{ETC}/kubelet.conf", cluster_name, f"https://{advertise}:{port}", ca_key, ca_cert,
                         f"system:node:{name}", ["system:nodes"])
        kubelet_yaml = yaml.safe_dump(docs.get("KubeletConfiguration") or
                                      {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"})
        write_kubelet_files(kubelet_yaml, registration)
        write(f"{ETCD_DIR}/member/snap/db", "kubesim\n")
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
            cluster.put("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        stored = dict(config, apiVersion="kubeadm.k8s.io/v1beta4", kind="ClusterConfiguration")
        cluster.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                                   "data": {"ClusterConfiguration": yaml.safe_dump(stored)}})
        cluster.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
                                   "data": {"kubelet": kubelet_yaml}})
        info = yaml.safe_dump({"apiVersion": "v1", "kind": "Config",
                               "clusters": [{"name": "", "cluster": {"certificate-authority-data": pki.b64(ca_cert),
                                                                     "server": server}}]})
        cluster.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "cluster-info", "namespace": "kube-public"},
                                   "data": {"kubeconfig": info}})
        tokens = []
        for spec in init.get("bootstrapTokens") or [{}]:
            token = spec.get("token") or new_token()
            tokens.append(token)
            cluster.put("secrets", token_secret(
                token, duration(spec.get("ttl", "24h0m0s")), spec.get("usages") or ("signing", "authentication"),
                spec.get("groups") or ["system:bootstrappers:kubeadm:default-node-token"], spec.get("description"),
                now=state.now(cluster.data)))
        cluster.put("nodes", node_object(name, registration, True, node_ip(registration, advertise)))
        cluster.etcd_members.append(name)
    print("[kubelet-start] Starting the kubelet")
    systemctl("restart", "kubelet")
    if not _no_wait():
        wait_for_api(f"https://{advertise}:{port}", read(f"{PKI}/ca.crt"))
    key = None
    if "--upload-certs" in args:
        key = upload_certs(option(args, "--certificate-key"))
    ca_hash = pki.ca_cert_hash(read(f"{PKI}/ca.crt"))
    print("Your Kubernetes control-plane has initialized successfully!")
    join = f"kubeadm join {server.replace('https://', '')} --token {tokens[0]} --discovery-token-ca-cert-hash {ca_hash}"
    if key:
        print(f"  {join} --control-plane --certificate-key {key}")
    print(f"  {join}")
    return 0


def _no_wait():
    return os.environ.get("KUBESIM_NO_WAIT") == "1"


def upload_certs(key=None):
    """cmd/kubeadm/app/phases/copycerts UploadCerts: the shared certificates, encrypted with the key, in the
    Secret kubeadm-certs owned by a token that expires after two hours."""
    key = key or pki.new_certificate_key()
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise Refused("error decoding certificate key: encoding/hex: invalid byte or the key is not 32 bytes")
    with state.locked() as cluster:
        if not cluster.initialized:
            raise Refused("error uploading certs: the cluster is not initialised (no kubeadm-config)")
        owner = cluster.put("secrets", token_secret(new_token(), UPLOADED_CERTS_TTL, usages=(),
                                                    description="Proxy for managing TTL for the kubeadm-certs secret",
                                                    now=state.now(cluster.data)))
        data = {name.replace("/", "-"): pki.b64(pki.encrypt(key, read(f"{PKI}/{name}"))) for name in SHARED_CERTS}
        cluster.delete("secrets", "kubeadm-certs", "kube-system")
        cluster.put("secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                "metadata": {"name": "kubeadm-certs", "namespace": "kube-system",
                                             "ownerReferences": [{"apiVersion": "v1", "kind": "Secret",
                                                                  "name": owner["metadata"]["name"],
                                                                  "uid": owner["metadata"]["uid"]}]},
                                "data": data})
    print("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace")
    print(f"[upload-certs] Using certificate key:\n{key}")
    return key


def cmd_upload_certs(args):
    if "--upload-certs" not in args:
        print("[upload-certs] Skipping phase. Please see --upload-certs")
        return 0
    if not exists(f"{ETC}/admin.conf"):
        raise Refused(f"couldn't create a Kubernetes client from file \"{ETC}/admin.conf\": file not found")
    upload_certs(option(args, "--certificate-key"))
    return 0


def cmd_certs(args):
    if args[:1] == ["certificate-key"]:
        print(pki.new_certificate_key())
        return 0
    raise Refused(f"unknown command {args[:1]} for \"kubeadm certs\"")


def cmd_token(args):
    if args[:1] == ["list"]:
        with state.locked(write=False) as cluster:
            print("TOKEN                     TTL   EXPIRES   USAGES   DESCRIPTION   EXTRA GROUPS")
            for secret in cluster.list("secrets", "kube-system"):
                if secret.get("type") == state.BOOTSTRAP_TOKEN_TYPE:
                    print(f"{state.secret_value(secret, 'token-id')}.<secret> {state.secret_value(secret, 'expiration')}")
        return 0
    raise Refused("kubesim: only `kubeadm token list` is simulated")


def cmd_join(args):
    docs = load_config(option(args, "--config"))
    join = docs.get("JoinConfiguration")
    if not join:
        raise Refused("no JoinConfiguration in the config file")
    registration = join.get("nodeRegistration") or {}
    bootstrap = (join.get("discovery") or {}).get("bootstrapToken") or {}
    control_plane = join.get("controlPlane")
    name = registration.get("name") or socket.gethostname()
    # cmd/kubeadm/app/preflight/checks.go RunJoinNodeChecks.
    errors = [file_check(f"{ETC}/kubelet.conf"), file_check(f"{ETC}/pki/ca.crt")]
    if control_plane:
        errors += [file_check(f"{MANIFESTS}/{c}.yaml") for c in ("kube-apiserver", "kube-controller-manager",
                                                                 "kube-scheduler", "etcd")]
    preflight([e for e in errors if e], registration.get("ignorePreflightErrors"))
    token, endpoint = bootstrap.get("token", ""), bootstrap.get("apiServerEndpoint", "")
    if not re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token):
        raise Refused(f'the bootstrap token "{token}" was not of the form "[a-z0-9]{{6}}.[a-z0-9]{{16}}"')
    token_id, token_value = token.split(".")
    url = f"https://{endpoint}"
    # cmd/kubeadm/app/discovery/token: fetch cluster-info without trust, check the JWS of this token, pin the CA.
    info = None
    deadline = time.monotonic() + 30
    while info is None:
        try:
            info = client.request("GET", url + "/api/v1/namespaces/kube-public/configmaps/cluster-info",
                                  insecure=True, timeout=5)
        except (OSError, client.ApiError) as e:
            if time.monotonic() > deadline:
                raise Refused(f"couldn't validate the identity of the API Server: failed to request the cluster-info "
                              f"ConfigMap from {endpoint}: {e}") from None
            time.sleep(1)
    signature = info["data"].get(f"jws-kubeconfig-{token_id}")
    if signature is None:
        raise Refused(f'couldn\'t validate the identity of the API Server: token id "{token_id}" is invalid for this '
                      'cluster or it has expired. Use "kubeadm token create" on the control-plane node to create a '
                      "new valid token")
    from .apiserver import jws  # noqa: PLC0415

    if signature != jws(token_value, info["data"]["kubeconfig"]):
        raise Refused("couldn't validate the identity of the API Server: failed to verify JWS signature of received "
                      "cluster info object, can't trust this API Server")
    ca_cert = base64.b64decode(yaml.safe_load(info["data"]["kubeconfig"])["clusters"][0]["cluster"]
                               ["certificate-authority-data"]).decode()
    pinned = bootstrap.get("caCertHashes") or []
    actual = pki.ca_cert_hash(ca_cert)
    if not bootstrap.get("unsafeSkipCAVerification") and actual not in pinned:
        raise Refused(f"couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap "
                      f'is invalid: none of the public keys "{actual}" are pinned')

    def request(method, path, body=None):
        return client.request(method, url + path, body=body, token=token, ca=ca_cert, timeout=10)

    try:
        cluster_configuration = yaml.safe_load(
            request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")["data"]["ClusterConfiguration"])
        kubelet_yaml = request("GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config")["data"]["kubelet"]
    except client.ApiError as e:
        raise Refused(f"unable to fetch the kubeadm-config ConfigMap: {e}") from None
    cluster_version = cluster_configuration["kubernetesVersion"]
    versions.check_supported(versions.installed("kubeadm"), cluster_version)
    kubelet_version = versions.installed("kubelet")
    if versions.parse(kubelet_version)[:2] > versions.parse(cluster_version)[:2]:
        # cmd/kubeadm/app/preflight/checks.go KubeletVersionCheck
        preflight([("KubeletVersion", f'the kubelet version is higher than the control plane version. This is not a '
                    f'supported version skew and may lead to a malfunctional cluster. Kubelet version: "{kubelet_version}"'
                    f' Control plane version: "{cluster_version}"')], registration.get("ignorePreflightErrors"))
    advertise = None
    if control_plane:
        key = control_plane.get("certificateKey", "")
        try:
            uploaded = request("GET", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
        except client.ApiError as e:
            if e.code == 404:
                raise Refused('error downloading certs: error downloading the secret: Secret "kubeadm-certs" was not '
                              'found in the "kube-system" Namespace. This Secret might have expired. Please, run '
                              '`kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new '
                              "one") from None
            raise Refused(f"error downloading certs: {e}") from None
        for cert_name in SHARED_CERTS:
            try:
                content = pki.decrypt(key, base64.b64decode(uploaded["data"][cert_name.replace("/", "-")]))
            except ValueError as e:
                raise Refused(f"error downloading certs: error decoding certificate key: {e}") from None
            write(f"{PKI}/{cert_name}", content, 0o600 if cert_name.endswith(".key") else 0o644)
        local = control_plane.get("localAPIEndpoint") or {}
        advertise, port = local.get("advertiseAddress", "127.0.0.1"), int(local.get("bindPort", 6443))
        write_control_plane(cluster_configuration, advertise, port, name)
        write(f"{ETCD_DIR}/member/snap/db", "kubesim\n")
    key_pem, csr = pki.make_csr(f"system:node:{name}", ["system:nodes"])
    try:
        signed = request("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", {
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"request": pki.b64(csr), "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "usages": ["digital signature", "client auth"]}})
    except client.ApiError as e:
        raise Refused(f"error execution phase kubelet-start: TLS bootstrap failed: {e}") from None
    cert = base64.b64decode(signed["status"]["certificate"]).decode()
    kubelet_server = f"https://{advertise}:{port}" if control_plane else url
    write(f"{ETC}/kubelet.conf", yaml.safe_dump(pki.kubeconfig(cluster_configuration.get("clusterName", "kubernetes"),
                                                               kubelet_server, ca_cert, f"system:node:{name}",
                                                               cert, key_pem), sort_keys=False))
    write_kubelet_files(kubelet_yaml, registration)
    with state.locked() as cluster:
        current = cluster.get("nodes", name)
        node = node_object(name, registration, bool(control_plane), node_ip(registration, advertise or ""))
        if current:
            node["status"] = current.get("status", node["status"])
        cluster.put("nodes", node)
        if control_plane and name not in cluster.etcd_members:
            cluster.etcd_members.append(name)
    print("[kubelet-start] Starting the kubelet")
    systemctl("restart", "kubelet")
    if not _no_wait():
        if control_plane:
            wait_for_api(f"https://{advertise}:{port}", ca_cert)
        wait_for_node_ready(name)
    print("This node has joined the cluster" + (" and a new control plane instance was created" if control_plane else ""))
    return 0


def local_cluster_config():
    with state.locked(write=False) as cluster:
        config = cluster_config(cluster)
    if config is None:
        raise Refused("unable to fetch the kubeadm-config ConfigMap: configmaps \"kubeadm-config\" not found")
    return config


def this_node_name():
    kubeconfig = yaml.safe_load(read(f"{ETC}/kubelet.conf"))
    cert = client._data(kubeconfig["users"][0]["user"], "client-certificate")
    return pki.subject(cert.decode())[0].replace("system:node:", "")


def manifest_version(component="kube-apiserver"):
    pod = yaml.safe_load(read(f"{MANIFESTS}/{component}.yaml"))
    return pod["spec"]["containers"][0]["image"].rsplit(":", 1)[1]


def cmd_upgrade(args):
    sub = args[:1]
    if not exists(f"{ETC}/kubelet.conf"):
        raise Refused("couldn't create a Kubernetes client from file \"/etc/kubernetes/kubelet.conf\": this node has "
                      "not joined a cluster")
    config = local_cluster_config()
    cluster_version, kubeadm_version = config["kubernetesVersion"], versions.installed("kubeadm")
    if sub in (["plan"], ["apply"]):
        if not exists(f"{ETC}/admin.conf") or not exists(f"{MANIFESTS}/kube-apiserver.yaml"):
            raise Refused("kubeadm upgrade apply/plan runs on a control-plane node (admin.conf and the static pods)")
        target = args[1] if len(args) > 1 and not args[1].startswith("-") else kubeadm_version
        versions.check_upgrade(kubeadm_version, cluster_version, target)
        if sub == ["plan"]:
            print(f"Upgrade to the latest version in the v{target.split('.')[1]} series:\n"
                  f"COMPONENT   NODE   CURRENT   TARGET\nkube-apiserver   {this_node_name()}   "
                  f"{manifest_version()}   {target}\nkubeadm upgrade apply {target}")
            return 0
        if "--yes" not in args and "-y" not in args and "-f" not in args:
            raise Refused("won't proceed; the user didn't answer (Y|n) in order to continue (use --yes)")
        config["kubernetesVersion"] = target
        with state.locked() as cluster:
            config_map = cluster.get("configmaps", "kubeadm-config", "kube-system")
            config_map["data"]["ClusterConfiguration"] = yaml.safe_dump(config)
            cluster.put("configmaps", config_map)
            cluster.record("kubeadm upgrade apply", node=this_node_name(), version=target, previous=cluster_version)
        upgrade_local(config)
        print(f'[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{target}".')
        return 0
    if sub == ["node"]:
        # cmd/kubeadm/app/cmd/upgrade/node.go: the node follows kubeadm-config's kubernetesVersion; kubeadm itself
        # must be able to handle it.
        if versions.parse(kubeadm_version)[:2] > versions.parse(cluster_version)[:2]:
            raise Refused(f"the control plane is at {cluster_version} and this kubeadm is {kubeadm_version}: run "
                          f"`kubeadm upgrade apply {kubeadm_version}` on a control-plane node first")
        versions.check_supported(kubeadm_version, cluster_version)
        with state.locked() as cluster:
            cluster.record("kubeadm upgrade node", node=this_node_name(), version=cluster_version)
        if exists(f"{MANIFESTS}/kube-apiserver.yaml"):
            upgrade_local(config)
            print("[upgrade] The control plane instance for this node was successfully upgraded!")
        else:
            with state.locked(write=False) as cluster:
                kubelet_yaml = cluster.get("configmaps", "kubelet-config", "kube-system")["data"]["kubelet"]
            write(KUBELET_CONFIG, kubelet_yaml, 0o644)
            print("[upgrade] The configuration for this node was successfully upgraded!")
        return 0
    raise Refused(f"unknown command {sub} for \"kubeadm upgrade\"")


def upgrade_local(config):
    pod = yaml.safe_load(read(f"{MANIFESTS}/kube-apiserver.yaml"))
    command = pod["spec"]["containers"][0]["command"]
    advertise = next(a.split("=", 1)[1] for a in command if a.startswith("--advertise-address="))
    port = int(next(a.split("=", 1)[1] for a in command if a.startswith("--secure-port=")))
    write_manifests(config, advertise, port)
    with state.locked(write=False) as cluster:
        kubelet_yaml = cluster.get("configmaps", "kubelet-config", "kube-system")["data"]["kubelet"]
    write(KUBELET_CONFIG, kubelet_yaml, 0o644)
    if not _no_wait():
        # cmd/kubeadm/app/phases/upgrade/staticpods.go upgradeComponent: kubeadm waits until the kubelet has
        # restarted the static pod from the new manifest and the component is healthy again.
        url, ca_cert = f"https://{advertise}:{port}", read(f"{PKI}/ca.crt")

        def serving_new_version():
            answer = client.request("GET", url + "/version", ca=ca_cert, timeout=3)
            return isinstance(answer, dict) and answer.get("gitVersion") == config["kubernetesVersion"]

        wait_for(f"the API server at {url} to run {config['kubernetesVersion']}", serving_new_version, 120)


def cmd_reset(args):
    if "--force" not in args and "-f" not in args:
        raise Refused("won't proceed; the user didn't answer (Y|n) in order to continue (use --force)")
    name = None
    if exists(f"{ETC}/kubelet.conf"):
        try:
            name = this_node_name()
        except (OSError, KeyError, ValueError, TypeError):
            name = None
    control_plane = exists(f"{MANIFESTS}/kube-apiserver.yaml") or exists(f"{ETCD_DIR}/member")
    systemctl("stop", "kubelet")
    if control_plane and name:
        # cmd/kubeadm/app/cmd/phases/reset/removeetcdmember.go: the member leaves etcd; with no member left the
        # cluster's data is gone.
        with state.locked() as cluster:
            if name in cluster.etcd_members:
                cluster.etcd_members.remove(name)
            if not cluster.etcd_members:
                cluster.data.clear()
                cluster.data.update(state._empty())
    for path in (MANIFESTS, f"{ETC}/pki", ETCD_DIR):
        remove(path)
    for conf in ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf", "controller-manager.conf",
                 "scheduler.conf"):
        remove(f"{ETC}/{conf}")
    kubelet_dir = p("/var/lib/kubelet")
    if os.path.isdir(kubelet_dir):
        for entry in os.listdir(kubelet_dir):
            remove(f"/var/lib/kubelet/{entry}")
    pathlib.Path(p(MANIFESTS)).mkdir(parents=True, exist_ok=True)
    print("The reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d")
    return 0


COMMANDS = {"version": cmd_version, "init": cmd_init, "certs": cmd_certs, "token": cmd_token, "join": cmd_join,
            "upgrade": cmd_upgrade, "reset": cmd_reset}


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:2] == ["config", "validate"]:
            cmd_config_validate(args[2:])
            return 0
        if not args or args[0] not in COMMANDS:
            raise Refused(f"unknown command {args[:1]} for \"kubeadm\"")
        return COMMANDS[args[0]](args[1:]) or 0
    except (Refused, versions.VersionError) as e:
        print(f"error execution phase: {e}" if "\n" not in str(e) else str(e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
