# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubesim doubles on the controller: what kubeadm writes, and what it refuses.

One cluster per module (kubeadm init in a temp root, the API server double on a free loopback
port); joins and upgrades run in further temp roots. Every refusal is checked by its message.
"""

import base64
import json
import os
import stat

import pytest
import yaml

pytest.importorskip("cryptography", reason="kubesim needs python3-cryptography, as on the molecule nodes")

from kubesim import client, kubeadm, kubectl, pki, state  # noqa: E402
from kubesim.testing import free_port, init_docs, new_token, running_cluster, write_yaml  # noqa: E402

CERT_KEY = "a" * 64


def run(capsys, root, *args):
    os.environ["KUBESIM_ROOT"] = str(root)
    rc = kubeadm.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("kubesim"), "--upload-certs", "--certificate-key", CERT_KEY) as cluster:
        yield cluster


@pytest.fixture
def versions_reset(cluster):
    yield
    cluster.reset_versions()


def cluster_state():
    return state.read()


# -- kubeadm init ------------------------------------------------------------------------------

def test_init_writes_what_kubeadm_writes(cluster):
    etc = cluster.root / "etc/kubernetes"
    for conf in ("admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf"):
        assert stat.S_IMODE((etc / conf).stat().st_mode) == 0o600, conf
    admin = yaml.safe_load((etc / "admin.conf").read_text())
    cert = base64.b64decode(admin["users"][0]["user"]["client-certificate-data"])
    assert pki.subject(cert) == ("kubernetes-admin", ["kubeadm:cluster-admins"])
    assert admin["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{cluster.port}"
    pod = yaml.safe_load((etc / "manifests/kube-apiserver.yaml").read_text())
    assert pod["spec"]["containers"][0]["image"] == "registry.k8s.io/kube-apiserver:v1.34.2"
    assert yaml.safe_load((cluster.root / "var/lib/kubelet/config.yaml").read_text())["cgroupDriver"] == "systemd"
    assert "--node-ip=127.0.0.1" in (cluster.root / "var/lib/kubelet/kubeadm-flags.env").read_text()
    objects = cluster_state()["objects"]
    config = yaml.safe_load(objects["configmaps"]["kube-system/kubeadm-config"]["data"]["ClusterConfiguration"])
    assert config["kubernetesVersion"] == "v1.34.2"
    node = objects["nodes"]["/cp1"]
    assert node["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    tokens = [s for s in objects["secrets"].values() if s.get("type") == state.BOOTSTRAP_TOKEN_TYPE
              and state.secret_value(s, "usage-bootstrap-authentication") == "true"]
    assert len(tokens) == 1
    left = state.parse_rfc3339(state.secret_value(tokens[0], "expiration")) - state.now()
    assert 14 * 60 < left.total_seconds() <= 15 * 60


def test_second_init_is_refused(cluster, capsys):
    rc, dummy, err = run(capsys, cluster.root, "init", "--config", cluster.config)
    assert rc == 1
    assert "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]" in err


def test_init_on_another_node_of_an_initialised_cluster_is_refused(cluster, capsys, tmp_path):
    config = write_yaml(tmp_path / "init.yaml", *init_docs(free_port(), name="other"))
    rc, dummy, err = run(capsys, tmp_path / "other", "init", "--config", config)
    assert rc == 1
    assert "holds a cluster already" in err


@pytest.mark.parametrize(("version", "message"), [
    ("v1.32.9", "only supports deploying clusters with the control plane version >= v1.33.0"),
    ("v1.35.0", "is newer than kubeadm v1.34.2"),
])
def test_init_outside_the_binary_range_is_refused(cluster, capsys, tmp_path, version, message):
    config = write_yaml(tmp_path / "init.yaml", *init_docs(free_port(), version=version))
    rc, dummy, err = run(capsys, tmp_path / "fresh", "init", "--config", config)
    assert rc == 1
    assert message in err
    assert not (tmp_path / "fresh/etc/kubernetes/admin.conf").exists()


def test_version_comes_from_the_version_file(cluster, capsys, versions_reset):
    assert run(capsys, cluster.root, "version", "-o", "short")[1] == "v1.34.2\n"
    cluster.set_version("kubeadm", "v1.35.1")
    assert run(capsys, cluster.root, "version", "-o", "short")[1] == "v1.35.1\n"


# -- kubeadm join ------------------------------------------------------------------------------

def test_worker_join_writes_the_kubelet_files_and_the_node(cluster, capsys, tmp_path):
    rc, out, err = run(capsys, tmp_path / "w1", "join", "--config", cluster.join_config(tmp_path, "w1"))
    assert rc == 0, err
    kubeconfig = yaml.safe_load((tmp_path / "w1/etc/kubernetes/kubelet.conf").read_text())
    cert = base64.b64decode(kubeconfig["users"][0]["user"]["client-certificate-data"])
    assert pki.subject(cert) == ("system:node:w1", ["system:nodes"])
    node = cluster_state()["objects"]["nodes"]["/w1"]
    assert "node-role.kubernetes.io/control-plane" not in node["metadata"]["labels"]
    assert node["status"]["addresses"][0]["address"] == "127.0.0.2"
    # A second join of the same node is refused by kubeadm's preflight.
    rc, dummy, err = run(capsys, tmp_path / "w1", "join", "--config", cluster.join_config(tmp_path, "w1"))
    assert rc == 1
    assert "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]" in err


def test_join_with_an_unknown_token_is_refused(cluster, capsys, tmp_path):
    config = cluster.join_config(tmp_path, "w9", token="abcdef.0123456789abcdef")
    rc, dummy, err = run(capsys, tmp_path / "w9", "join", "--config", config)
    assert rc == 1
    assert 'token id "abcdef" is invalid for this cluster or it has expired' in err
    assert not (tmp_path / "w9/etc/kubernetes/kubelet.conf").exists()


def test_join_with_a_wrong_token_secret_is_refused(cluster, capsys, tmp_path):
    token_id = new_token().split(".")[0]
    config = cluster.join_config(tmp_path, "w9", token=f"{token_id}.0123456789abcdef")
    rc, dummy, err = run(capsys, tmp_path / "w9", "join", "--config", config)
    assert rc == 1
    assert "failed to verify JWS signature" in err


def test_join_with_a_wrong_ca_hash_is_refused(cluster, capsys, tmp_path):
    config = cluster.join_config(tmp_path, "w9", ca="sha256:" + "0" * 64)
    rc, dummy, err = run(capsys, tmp_path / "w9", "join", "--config", config)
    assert rc == 1
    assert "none of the public keys" in err and "are pinned" in err


def test_join_with_an_expired_token_is_refused(cluster, capsys, tmp_path):
    token = new_token(ttl=60)
    with state.locked() as data:
        data.advance(61)
    config = cluster.join_config(tmp_path, "w9", token=token)
    rc, dummy, err = run(capsys, tmp_path / "w9", "join", "--config", config)
    assert rc == 1
    assert "is invalid for this cluster or it has expired" in err


def test_join_with_a_kubelet_newer_than_the_control_plane_is_refused(cluster, capsys, tmp_path, versions_reset):
    cluster.set_version("kubelet", "v1.35.0")
    rc, dummy, err = run(capsys, tmp_path / "w9", "join", "--config", cluster.join_config(tmp_path, "w9"))
    assert rc == 1
    assert "[ERROR KubeletVersion]: the kubelet version is higher than the control plane version" in err


def test_control_plane_join_with_a_wrong_certificate_key_is_refused(cluster, capsys, tmp_path):
    config = cluster.join_config(tmp_path, "cp9", control_plane_key="b" * 64)
    rc, dummy, err = run(capsys, tmp_path / "cp9", "join", "--config", config)
    assert rc == 1
    assert "error decoding certificate key" in err
    assert not (tmp_path / "cp9/etc/kubernetes/kubelet.conf").exists()


def test_control_plane_join_with_the_key_gets_the_shared_certificates(cluster, capsys, tmp_path):
    config = cluster.join_config(tmp_path, "cp2", control_plane_key=CERT_KEY)
    rc, dummy, err = run(capsys, tmp_path / "cp2", "join", "--config", config)
    assert rc == 0, err
    assert (tmp_path / "cp2/etc/kubernetes/pki/ca.key").read_text() == \
        (cluster.root / "etc/kubernetes/pki/ca.key").read_text()
    assert (tmp_path / "cp2/etc/kubernetes/manifests/kube-apiserver.yaml").exists()
    assert "cp2" in cluster_state()["etcdMembers"]
    assert "node-role.kubernetes.io/control-plane" in cluster_state()["objects"]["nodes"]["/cp2"]["metadata"]["labels"]


def test_uploaded_certificates_expire_after_two_hours(cluster, capsys, tmp_path):
    rc, out, err = run(capsys, cluster.root, "init", "phase", "upload-certs", "--upload-certs",
                       "--certificate-key", CERT_KEY)
    assert rc == 0, err
    with state.locked() as data:
        data.advance(2 * 3600 + 1)
    config = cluster.join_config(tmp_path, "cp9", control_plane_key=CERT_KEY)
    rc, dummy, err = run(capsys, tmp_path / "cp9", "join", "--config", config)
    assert rc == 1
    assert 'Secret "kubeadm-certs" was not found' in err and "might have expired" in err


# -- kubeadm upgrade ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kubeadm_version", "target", "message"), [
    ("v1.36.0", "v1.36.0", "kubeadm can upgrade only 1 minor version at a time"),
    ("v1.34.2", "v1.33.5", "kubeadm can downgrade only patch versions"),
    ("v1.34.2", "v1.35.0", "is higher than the kubeadm version"),
])
def test_upgrade_apply_refusals(cluster, capsys, versions_reset, kubeadm_version, target, message):
    cluster.set_version("kubeadm", kubeadm_version)
    for command in (["plan", target], ["apply", target, "--yes"]):
        rc, dummy, err = run(capsys, cluster.root, "upgrade", *command)
        assert rc == 1
        assert message in err


def test_upgrade_node_before_the_cluster_was_upgraded_is_refused(cluster, capsys, tmp_path, versions_reset):
    assert run(capsys, tmp_path / "w5", "join", "--config", cluster.join_config(tmp_path, "w5"))[0] == 0
    cluster.set_version("kubeadm", "v1.35.0")
    rc, dummy, err = run(capsys, tmp_path / "w5", "upgrade", "node")
    assert rc == 1
    assert "run `kubeadm upgrade apply v1.35.0` on a control-plane node first" in err


def test_upgrade_apply_then_node(cluster, capsys, tmp_path, versions_reset):
    assert run(capsys, tmp_path / "w6", "join", "--config", cluster.join_config(tmp_path, "w6"))[0] == 0
    cluster.set_version("kubeadm", "v1.35.0")
    rc, out, err = run(capsys, cluster.root, "upgrade", "apply", "v1.35.0", "--yes")
    assert rc == 0, err
    objects = cluster_state()["objects"]
    config = yaml.safe_load(objects["configmaps"]["kube-system/kubeadm-config"]["data"]["ClusterConfiguration"])
    assert config["kubernetesVersion"] == "v1.35.0"
    pod = yaml.safe_load((cluster.root / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text())
    assert pod["spec"]["containers"][0]["image"].endswith(":v1.35.0")
    assert run(capsys, tmp_path / "w6", "upgrade", "node")[0] == 0
    # Back to v1.34.2 for the other tests: a downgrade is refused, so the double's state is edited.
    config["kubernetesVersion"] = "v1.34.2"
    with state.locked() as data:
        config_map = data.get("configmaps", "kubeadm-config", "kube-system")
        config_map["data"]["ClusterConfiguration"] = yaml.safe_dump(config)
        data.put("configmaps", config_map)
    kubeadm.write_manifests(config, "127.0.0.1", cluster.port)


# -- kubeadm reset -----------------------------------------------------------------------------

def test_reset_of_a_worker_keeps_the_node_object(cluster, capsys, tmp_path):
    assert run(capsys, tmp_path / "w7", "join", "--config", cluster.join_config(tmp_path, "w7"))[0] == 0
    rc, out, err = run(capsys, tmp_path / "w7", "reset", "--force", "--cri-socket", "unix:///run/containerd/containerd.sock")
    assert rc == 0, err
    assert not (tmp_path / "w7/etc/kubernetes/kubelet.conf").exists()
    assert not (tmp_path / "w7/var/lib/kubelet/config.yaml").exists()
    assert "/w7" in cluster_state()["objects"]["nodes"]
    assert run(capsys, tmp_path / "w7", "reset")[0] == 1  # without --force kubeadm asks


# -- API server and kubectl --------------------------------------------------------------------

def test_api_server_authentication(cluster):
    url = f"https://127.0.0.1:{cluster.port}"
    ca = (cluster.root / "etc/kubernetes/pki/ca.crt").read_text()
    assert client.request("GET", url + "/version", ca=ca)["gitVersion"] == "v1.34.2"
    with pytest.raises(client.ApiError) as error:
        client.request("GET", url + "/api/v1/namespaces/kube-system/secrets", ca=ca, token="abcdef.0123456789abcdef")
    assert error.value.code == 401
    with pytest.raises(client.ApiError) as error:
        client.request("GET", url + "/api/v1/namespaces/kube-system/secrets", ca=ca)
    assert error.value.code == 403
    with pytest.raises(client.ApiError) as error:
        client.request("GET", url + "/api/v1/namespaces/kube-system/secrets", ca=ca, token=new_token())
    assert error.value.code == 403


def test_kubectl_reads_through_the_api_server(cluster, capsys):
    admin = str(cluster.root / "etc/kubernetes/admin.conf")
    assert kubectl.main(["--kubeconfig", admin, "--request-timeout=10s", "get", "--raw=/readyz"]) == 0
    assert capsys.readouterr().out == "ok\n"
    assert kubectl.main(["--kubeconfig", admin, "get", "node", "cp1", "-o", "jsonpath={.status.nodeInfo.kubeletVersion}"]) == 0
    assert capsys.readouterr().out == "v1.34.2"
    assert kubectl.main(["--kubeconfig", admin, "version", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["serverVersion"]["gitVersion"] == "v1.34.2"
    assert kubectl.main(["config", "view", "--kubeconfig", admin, "-o", "jsonpath={.clusters[0].cluster.server}"]) == 0
    assert capsys.readouterr().out == f"https://127.0.0.1:{cluster.port}"


def test_kubectl_auth_can_i(cluster, capsys, tmp_path):
    admin = str(cluster.root / "etc/kubernetes/admin.conf")
    assert kubectl.main(["--kubeconfig", admin, "--request-timeout=15s", "auth", "can-i", "*", "*"]) == 0
    assert capsys.readouterr().out == "yes\n"
    token_config = tmp_path / "token.conf"
    config = yaml.safe_load(open(admin))
    config["users"][0]["user"] = {"token": new_token()}
    token_config.write_text(yaml.safe_dump(config))
    assert kubectl.main(["--kubeconfig", str(token_config), "auth", "can-i", "*", "*"]) == 1
    assert capsys.readouterr().out == "no\n"
