"""Docker Engine + cri-dockerd units after node_prep + docker (Debian 12)."""

import json


def test_docker_is_enabled_and_running(host):
    svc = host.service("docker")
    assert svc.is_running and svc.is_enabled


def test_docker_uses_the_systemd_cgroup_driver(host):
    assert host.check_output("docker info --format '{{.CgroupDriver}}'") == "systemd"


def test_daemon_json_is_effective(host):
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["exec-opts"] == ["native.cgroupdriver=systemd"]
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file"
    assert "https://harbor.lab.example/" in info["RegistryConfig"]["Mirrors"]


def test_cri_dockerd_units_point_at_the_binary_and_socket(host):
    service = host.file("/etc/systemd/system/cri-docker.service").content_string
    socket = host.file("/etc/systemd/system/cri-docker.socket").content_string
    assert "ExecStart=/usr/local/bin/cri-dockerd --container-runtime-endpoint fd://" in service
    assert "--pod-infra-container-image=registry.k8s.io/pause:3.10.1" in service
    assert "ListenStream=/run/cri-dockerd.sock" in socket
    assert "runtime-endpoint: unix:///run/cri-dockerd.sock" in host.file("/etc/crictl.yaml").content_string


def test_cri_dockerd_units_are_loaded_by_systemd(host):
    for unit in ("cri-docker.service", "cri-docker.socket"):
        load_state = host.check_output(f"systemctl show --property=LoadState --value {unit}")
        assert load_state == "loaded", f"{unit}: {load_state}"


def test_cri_dockerd_units_verify_clean_apart_from_the_missing_binary(host):
    # systemd-analyze verify also checks that ExecStart exists; the binary is not installed in this
    # scenario (docker_cri_dockerd_install: false), so exactly that complaint is tolerated.
    result = host.run("systemd-analyze verify /etc/systemd/system/cri-docker.socket /etc/systemd/system/cri-docker.service")
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "/usr/local/bin/cri-dockerd" not in line
    ]
    assert problems == [], problems
