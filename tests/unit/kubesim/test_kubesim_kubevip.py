# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kube-vip double: it reads the manifest the role renders, elects a leader on a Lease through the
API server double as client-go does, and the VIP moves (with a gap) when the leader's API server goes
down or its pod restarts.

One cluster (kubeadm init in a temp root, the API server double on a free loopback port); holding the
VIP is a file under the temp root (FileAnnouncer), so these tests need no NET_ADMIN.
"""

import json
import os
import pathlib
import time

import jinja2
import pytest

pytest.importorskip("cryptography", reason="kubesim needs python3-cryptography, as on the molecule nodes")

from kubesim import apiserver, kubevip, state  # noqa: E402
from kubesim.testing import free_port, running_cluster  # noqa: E402

ROLE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "kubeadm_control_plane"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/plndr-cp-lock"


def render_manifest(path, bootstrap, port=6443, lease_duration=None):
    """roles/kubeadm_control_plane/templates/kube-vip.yaml.j2 rendered as the role renders it."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = bool
    text = env.get_template("kube-vip.yaml.j2").render(
        kubeadm_control_plane_vip="10.0.0.250", kubeadm_control_plane_vip_interface="eth0",
        kubeadm_control_plane_vip_subnet=32, kubeadm_control_plane_api_port=port,
        kubeadm_control_plane_kube_vip_image="ghcr.io/kube-vip/kube-vip:v1.1.2",
        _kubeadm_control_plane_kube_vip_bootstrap=bootstrap,
        _kubeadm_control_plane_super_admin_conf="/etc/kubernetes/super-admin.conf",
        _kubeadm_control_plane_admin_conf="/etc/kubernetes/admin.conf")
    if lease_duration is not None:
        text = text.replace('name: vip_leaseduration\n          value: "5"',
                            f'name: vip_leaseduration\n          value: "{lease_duration}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def write_timing(cluster, timing):
    """cp1's /etc/kubesim/kube-vip.json (the double's timings); returns its path."""
    path = cluster["root"] / "etc/kubesim/kube-vip.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timing))
    return path


def switch_to_admin_conf(manifest, port):
    """The role's switch of kube-vip from super-admin.conf to admin.conf after init, as a newer file."""
    render_manifest(manifest, False, port)
    os.utime(manifest, (time.time() + 5, time.time() + 5))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("kubevip"), endpoint_host="10.0.0.250") as c:
        yield {"base": c.base, "port": c.port, "root": c.root}


@pytest.fixture
def fresh_lease(cluster):
    with state.locked() as data:
        data.delete("leases", "plndr-cp-lock", "kube-system")
    vip = cluster["root"] / "run/kubesim/vip/10.0.0.250"
    if vip.exists():
        vip.unlink()
    yield
    with state.locked() as data:
        data.delete("leases", "plndr-cp-lock", "kube-system")


def settings(cluster, bootstrap=False, **changes):
    path = render_manifest(cluster["root"] / "etc/kubernetes/manifests/kube-vip.yaml", bootstrap, cluster["port"])
    return dict(kubevip.read_manifest(path), **changes)


def held_by(cluster):
    vip = cluster["root"] / "run/kubesim/vip/10.0.0.250"
    return vip.read_text().strip() if vip.exists() else None


def read_lease():
    with state.locked(write=False) as data:
        return data.get("leases", "plndr-cp-lock", "kube-system")


def lease_holder():
    lease = read_lease()
    return None if lease is None else lease["spec"]["holderIdentity"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def elector(cluster, identity, clock, kubeconfig="/etc/kubernetes/admin.conf"):
    vip = kubevip.KubeVip(settings(cluster, kubeconfig=kubeconfig), identity, lambda: "127.0.0.1")
    return kubevip.Elector(vip._request, identity, "plndr-cp-lock", "kube-system", 5, clock=clock)


# -- the manifest the role writes ----------------------------------------------------------------

@pytest.mark.parametrize(("bootstrap", "kubeconfig"), [
    (True, "/etc/kubernetes/super-admin.conf"),
    (False, "/etc/kubernetes/admin.conf"),
])
def test_reads_the_manifest_the_role_renders(tmp_path, bootstrap, kubeconfig):
    read = kubevip.read_manifest(render_manifest(tmp_path / "kube-vip.yaml", bootstrap))
    assert read == {"image": "ghcr.io/kube-vip/kube-vip:v1.1.2", "address": "10.0.0.250", "port": 6443,
                    "interface": "eth0", "subnet": "32", "lease_name": "plndr-cp-lock", "namespace": "kube-system",
                    "lease_duration": 5, "renew_deadline": 3, "retry_period": 1, "leader_election": True,
                    "kubeconfig": kubeconfig}


def test_a_missing_manifest_reads_as_none(tmp_path):
    assert kubevip.read_manifest(str(tmp_path / "kube-vip.yaml")) is None


# -- leader election (client-go semantics) ---------------------------------------------------------

def test_the_first_candidate_creates_the_lease_and_a_second_waits(cluster, fresh_lease):
    clock = Clock()
    first, second = elector(cluster, "cp1", clock), elector(cluster, "cp2", clock)
    assert first.try_acquire_or_renew()
    assert lease_holder() == "cp1"
    assert not second.try_acquire_or_renew()
    clock.now += 3
    assert first.try_acquire_or_renew()  # renewed: the record changed, cp2 starts waiting again
    clock.now += 4
    assert not second.try_acquire_or_renew()
    assert lease_holder() == "cp1"


def test_an_unrenewed_lease_is_taken_after_a_whole_lease_duration_unchanged(cluster, fresh_lease):
    clock = Clock()
    first, second = elector(cluster, "cp1", clock), elector(cluster, "cp2", clock)
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()  # cp2 sees the record now
    clock.now += 4.9
    assert not second.try_acquire_or_renew()
    clock.now += 0.2
    assert second.try_acquire_or_renew()
    lease = read_lease()
    assert lease["spec"]["holderIdentity"] == "cp2"
    assert lease["spec"]["leaseTransitions"] == 1
    assert not first.try_acquire_or_renew()  # the old leader sees the new record and waits in turn


def test_a_released_lease_is_taken_at_once(cluster, fresh_lease):
    clock = Clock()
    first, second = elector(cluster, "cp1", clock), elector(cluster, "cp2", clock)
    assert first.try_acquire_or_renew()
    assert not second.try_acquire_or_renew()
    assert first.release()
    assert lease_holder() == ""
    assert second.try_acquire_or_renew()
    assert lease_holder() == "cp2"


def test_no_api_server_no_lease(cluster, fresh_lease):
    vip = kubevip.KubeVip(settings(cluster), "cp1", lambda: "")
    candidate = kubevip.Elector(vip._request, "cp1", "plndr-cp-lock", "kube-system", 5, clock=Clock())
    assert not candidate.try_acquire_or_renew()
    assert lease_holder() is None


# -- the VIP ----------------------------------------------------------------------------------------

def wait_for(check, timeout=8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_the_leader_holds_the_vip_and_loses_it_when_its_api_server_is_down(cluster, fresh_lease):
    api = {"address": "127.0.0.1"}
    vip = kubevip.KubeVip(settings(cluster, renew_deadline=1), "cp1", lambda: api["address"],
                          log=lambda message: None).start()
    try:
        assert wait_for(lambda: held_by(cluster) == "cp1")
        assert lease_holder() == "cp1"
        api["address"] = ""  # kube-apiserver restarts (kubeadm upgrade apply)
        assert wait_for(lambda: vip.exited is not None)
        assert vip.exited == "lost leadership, restarting kube-vip"
        assert held_by(cluster) is None
        assert lease_holder() == "cp1"  # not released: the others wait a lease duration
    finally:
        vip.stop()


def test_stopping_the_leader_releases_the_lease_and_deletes_the_vip(cluster, fresh_lease):
    vip = kubevip.KubeVip(settings(cluster), "cp1", lambda: "127.0.0.1", log=lambda message: None).start()
    assert wait_for(lambda: held_by(cluster) == "cp1")
    vip.stop()
    assert held_by(cluster) is None
    assert lease_holder() == ""


def test_a_missing_kubeconfig_keeps_the_container_from_starting(cluster, fresh_lease):
    vip = kubevip.KubeVip(settings(cluster, kubeconfig="/etc/kubernetes/missing.conf"), "cp1", lambda: "127.0.0.1",
                          log=lambda message: None).start()
    assert wait_for(lambda: vip.exited is not None)
    assert vip.exited == "hostPath /etc/kubernetes/missing.conf is missing"
    assert held_by(cluster) is None


def test_a_changed_manifest_leaves_a_gap_without_vip(cluster, fresh_lease):
    """The switch from super-admin.conf to admin.conf after kubeadm init: the VIP goes away for the gap."""
    timing = write_timing(cluster, {"start": 0, "pickup": 1, "gap": 3})
    manifest = cluster["root"] / "etc/kubernetes/manifests/kube-vip.yaml"
    render_manifest(manifest, True, cluster["port"])
    clock = Clock()
    pod = kubevip.KubeVipPod("cp1", lambda: "127.0.0.1", log=lambda message: None, clock=clock)
    try:
        pod.sync()
        assert wait_for(lambda: held_by(cluster) == "cp1")
        assert pod.running.settings["kubeconfig"] == "/etc/kubernetes/super-admin.conf"
        switch_to_admin_conf(manifest, cluster["port"])
        pod.sync()
        clock.now += 0.9
        pod.sync()
        assert held_by(cluster) == "cp1"  # not picked up yet: the VIP still answers
        clock.now += 0.2
        pod.sync()
        assert held_by(cluster) is None  # stopped: released and deleted
        assert pod.running is None
        clock.now += 2.8
        pod.sync()
        assert pod.running is None and held_by(cluster) is None  # the gap
        clock.now += 0.3
        pod.sync()
        assert wait_for(lambda: held_by(cluster) == "cp1")
        assert pod.running.settings["kubeconfig"] == "/etc/kubernetes/admin.conf"
    finally:
        pod.stop()
        timing.unlink()


def test_pickup_after_places_the_gap_right_after_the_named_request(cluster, fresh_lease):
    """Defect 9's adversarial placement: the changed manifest waits for the answer to the named request (or for
    ``pickup`` s at most), then the gap begins at once; answers to other paths, or before the change, do not count."""
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    timing = write_timing(cluster, {"start": 0, "pickup": 60, "gap": 3, "pickup_after": path})
    manifest = cluster["root"] / "etc/kubernetes/manifests/kube-vip.yaml"
    render_manifest(manifest, True, cluster["port"])
    clock, served = Clock(), {path: 999.0}
    pod = kubevip.KubeVipPod("cp1", lambda: "127.0.0.1", log=lambda message: None, clock=clock,
                             served=lambda: served)
    try:
        pod.sync()
        assert wait_for(lambda: held_by(cluster) == "cp1")
        switch_to_admin_conf(manifest, cluster["port"])
        pod.sync()  # the change is seen at 1000
        clock.now += 30
        served["/readyz"] = clock.now  # the readiness wait through the VIP: not the named request
        pod.sync()
        assert held_by(cluster) == "cp1"  # the old kube-vip still serves the VIP
        served[path] = clock.now
        pod.sync()
        assert held_by(cluster) is None and pod.running is None  # the gap begins right after that answer
        clock.now += 3
        pod.sync()
        assert wait_for(lambda: held_by(cluster) == "cp1")
        assert pod.running.settings["kubeconfig"] == "/etc/kubernetes/admin.conf"
    finally:
        pod.stop()
        timing.unlink()


def test_pickup_after_still_picks_up_after_pickup_seconds(cluster, fresh_lease):
    """Without the named request (a role that no longer makes it), the change is acted on after ``pickup`` s."""
    timing = write_timing(cluster, {"start": 0, "pickup": 20, "gap": 1, "pickup_after": "/never"})
    manifest = cluster["root"] / "etc/kubernetes/manifests/kube-vip.yaml"
    render_manifest(manifest, True, cluster["port"])
    clock = Clock()
    pod = kubevip.KubeVipPod("cp1", lambda: "127.0.0.1", log=lambda message: None, clock=clock)
    try:
        pod.sync()
        assert wait_for(lambda: held_by(cluster) == "cp1")
        switch_to_admin_conf(manifest, cluster["port"])
        pod.sync()
        clock.now += 19.9
        pod.sync()
        assert held_by(cluster) == "cp1"
        clock.now += 0.2
        pod.sync()
        assert held_by(cluster) is None
    finally:
        pod.stop()
        timing.unlink()


def test_the_api_server_double_records_when_it_answered_each_path(cluster):
    from kubesim import client  # noqa: PLC0415

    port = free_port()
    server = apiserver.Server("127.0.0.1", port, "v1.34.2", str(cluster["root"] / "etc/kubernetes/pki")).start()
    try:
        before = time.monotonic()
        assert client.request("GET", f"https://127.0.0.1:{port}/version/", ca=(cluster["root"] / "etc/kubernetes/pki/ca.crt")
                              .read_text(), timeout=3)["gitVersion"] == "v1.34.2"
        assert list(server.served) == ["/version"]
        assert before <= server.served["/version"] <= time.monotonic()
    finally:
        server.stop()


def test_an_api_server_restart_longer_than_the_renew_deadline_moves_the_vip(cluster, fresh_lease):
    """Defect 2's situation: the leader's kube-apiserver restarts (kubeadm upgrade apply) for longer than kube-vip's
    renew deadline; the leader drops the VIP, a follower takes the lease after a lease duration, and keeps it when
    the old leader's API server serves again."""
    api = {"cp1": "127.0.0.1", "cp2": "127.0.0.1"}
    # Each node's own interface: a file per node (every instance deletes the VIP of its own node when it starts).
    nics = {node: kubevip.FileAnnouncer("10.0.0.250", "32", "eth0", node) for node in api}
    for node, nic in nics.items():
        nic.path = str(cluster["root"] / "run/kubesim/nic" / node)

    def holders():
        return sorted(node for node, nic in nics.items() if nic.held())

    timings = {"lease_duration": 2, "renew_deadline": 1, "retry_period": 1}
    first = kubevip.KubeVip(settings(cluster, **timings), "cp1", lambda: api["cp1"], nics["cp1"],
                            log=lambda message: None).start()
    assert wait_for(lambda: holders() == ["cp1"])
    second = kubevip.KubeVip(settings(cluster, **timings), "cp2", lambda: api["cp2"], nics["cp2"],
                             log=lambda message: None).start()
    try:
        time.sleep(1.5)
        assert holders() == ["cp1"] and lease_holder() == "cp1"  # the follower waits while cp1 renews
        api["cp1"] = ""  # cp1's kube-apiserver is down for a restart gap longer than the renew deadline
        assert wait_for(lambda: first.exited is not None)
        assert first.exited == "lost leadership, restarting kube-vip"
        assert wait_for(lambda: holders() == ["cp2"])
        api["cp1"] = "127.0.0.1"  # cp1's API server serves the new version again: the VIP stays on cp2
        time.sleep(1.5)
        assert holders() == ["cp2"] and lease_holder() == "cp2"
        assert read_lease()["spec"]["leaseTransitions"] == 1
    finally:
        second.stop()
        first.stop()


def test_the_kubelet_double_reads_its_restart_gap_per_node(cluster, monkeypatch):
    from kubesim import kubelet  # noqa: PLC0415

    monkeypatch.setenv("KUBESIM_ROOT", str(cluster["root"]))
    settings_file = cluster["root"] / "etc/kubesim/kubelet.json"
    assert kubelet.restart_gap() == kubelet.RESTART_GAP
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps({"restart_gap": 10}))
    try:
        assert kubelet.restart_gap() == 10
    finally:
        settings_file.unlink()


def test_pickup_after_object_places_the_gap_right_after_the_object_is_written(cluster, fresh_lease):
    """The same for a step the double performs on the state directly (kubeadm init phase upload-certs rewrites
    kube-system/kubeadm-certs): the gap begins once the object's resourceVersion differs from the one at the change."""
    timing = write_timing(cluster, {"start": 0, "pickup": 60, "gap": 3, "pickup_after_object": "secrets/kube-system/kubeadm-certs"})
    manifest = cluster["root"] / "etc/kubernetes/manifests/kube-vip.yaml"
    render_manifest(manifest, True, cluster["port"])
    clock, stored = Clock(), {"secrets/kube-system/kubeadm-certs": "1001"}
    pod = kubevip.KubeVipPod("cp1", lambda: "127.0.0.1", log=lambda message: None, clock=clock,
                             stored=stored.get)
    try:
        pod.sync()
        assert wait_for(lambda: held_by(cluster) == "cp1")
        switch_to_admin_conf(manifest, cluster["port"])
        pod.sync()
        clock.now += 30
        pod.sync()
        assert held_by(cluster) == "cp1"  # the object as it was when the manifest changed: no pickup
        stored["secrets/kube-system/kubeadm-certs"] = "1007"
        pod.sync()
        assert held_by(cluster) is None and pod.running is None
    finally:
        pod.stop()
        timing.unlink()
