# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A kubesim cluster on the controller, for tests: kubeadm init in a temp root and the API server double on a
free loopback port, in this process.

    from kubesim.testing import running_cluster

    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory):
        with running_cluster(tmp_path_factory.mktemp("kubesim")) as cluster:
            yield cluster

    def test_join(cluster, tmp_path):
        os.environ["KUBESIM_ROOT"] = str(tmp_path / "w1")
        assert kubeadm.main(["join", "--config", cluster.join_config(tmp_path, "w1")]) == 0

The doubles read their places from the environment (KUBESIM_STATE_DIR, KUBESIM_ETC, KUBESIM_ROOT; KUBESIM_NO_WAIT
so that init does not wait for an API server): ``running_cluster`` sets them for its lifetime and gives the
environment back as it found it. Tests that run kubeadm as another node set KUBESIM_ROOT themselves. Needs
python3-cryptography, as the doubles do: import this module after ``pytest.importorskip("cryptography")``.
"""

import contextlib
import os
import socket

import yaml

from kubesim import apiserver, kubeadm, pki, state

VERSION = "v1.34.2"


def free_port():
    """A TCP port free on the loopback address now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_yaml(path, *docs):
    """``docs`` as a multi-document YAML file at ``path``; returns the path as a string (a kubeadm argument)."""
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def init_docs(port, version=VERSION, name="cp1", endpoint_host="127.0.0.1"):
    """kubeadm init's configuration as kubeadm_control_plane renders it, for a node at 127.0.0.1:``port``; the
    control plane endpoint is ``endpoint_host``:``port`` (a kube-vip address, say)."""
    return (
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "bootstrapTokens": [{"ttl": "15m0s", "usages": ["signing", "authentication"]}],
         "localAPIEndpoint": {"advertiseAddress": "127.0.0.1", "bindPort": port},
         "nodeRegistration": {"name": name, "kubeletExtraArgs": [{"name": "node-ip", "value": "127.0.0.1"}]}},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion": version,
         "controlPlaneEndpoint": f"{endpoint_host}:{port}", "clusterName": "ailab",
         "imageRepository": "registry.k8s.io"},
        {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd"},
    )


def new_token(ttl=900):
    """A bootstrap token registered in the cluster, as ``kubeadm token create`` makes it (valid ``ttl`` seconds)."""
    token = kubeadm.new_token()
    with state.locked() as data:
        data.put("secrets", kubeadm.token_secret(token, ttl, groups=[apiserver.BOOTSTRAP_GROUP], now=state.now(data.data)))
    return token


class Cluster:
    """The running cluster: ``base`` (temp dir), ``port``, ``config`` (the init file), ``root`` (cp1's root)."""

    def __init__(self, base, port, config):
        self.base = base
        self.port = port
        self.config = config
        self.root = base / "cp1"
        self.etc = base / "etc"
        self.kubeconfig = self.root / "etc/kubernetes/admin.conf"
        self.ca_file = self.root / "etc/kubernetes/pki/ca.crt"

    def ca_hash(self):
        return pki.ca_cert_hash(self.ca_file.read_text())

    def set_version(self, binary, version):
        """The version the kubeadm or kubelet double reports from now on (a package upgrade)."""
        (self.etc / f"{binary}-version").write_text(version + "\n")

    def reset_versions(self):
        """Back to the version the doubles were built with."""
        for binary in ("kubeadm", "kubelet"):
            (self.etc / f"{binary}-version").unlink(missing_ok=True)

    def join_config(self, directory, name, token=None, ca=None, control_plane_key=None):
        """A JoinConfiguration for node ``name`` (a fresh token unless ``token``), written under ``directory``;
        with ``control_plane_key``, a control-plane join on a free port."""
        doc = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
               "discovery": {"bootstrapToken": {"apiServerEndpoint": f"127.0.0.1:{self.port}",
                                                "token": token or new_token(), "caCertHashes": [ca or self.ca_hash()]}},
               "nodeRegistration": {"name": name, "kubeletExtraArgs": [{"name": "node-ip", "value": "127.0.0.2"}]}}
        if control_plane_key:
            doc["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": "127.0.0.1", "bindPort": free_port()},
                                   "certificateKey": control_plane_key}
        return write_yaml(directory / f"join-{name}.yaml", doc)


@contextlib.contextmanager
def running_cluster(base, *init_args, endpoint_host="127.0.0.1"):
    """kubeadm init of cp1 under ``base`` (extra ``init_args``, e.g. --upload-certs; ``endpoint_host`` of the
    control plane endpoint, see init_docs) and the API server double, stopped on exit; yields a Cluster.
    KUBESIM_ROOT is cp1's root when the block starts."""
    saved = dict(os.environ)
    os.environ.update(KUBESIM_STATE_DIR=str(base / "state"), KUBESIM_ETC=str(base / "etc"), KUBESIM_NO_WAIT="1",
                      KUBESIM_ROOT=str(base / "cp1"))
    try:
        (base / "etc").mkdir()
        port = free_port()
        cluster = Cluster(base, port, write_yaml(base / "init.yaml", *init_docs(port, endpoint_host=endpoint_host)))
        rc = kubeadm.main(["init", "--config", cluster.config, *init_args])
        if rc != 0:
            raise AssertionError(f"kubeadm init (kubesim) exited {rc}")
        server = apiserver.Server("127.0.0.1", port, VERSION, str(cluster.root / "etc/kubernetes/pki")).start()
        try:
            yield cluster
        finally:
            server.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)
