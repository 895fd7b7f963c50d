"""export_check, the validator every export test and `make lab` rely on, must catch each kind of
mistake it claims to catch: a validator that passes everything would make every export test pass."""

import os

import pytest
import yaml

import export_check

if not export_check.REFERENCE.is_dir():
    pytest.skip(f"upstream reference data {export_check.REFERENCE} is not available (set AILAB_REFERENCE)",
                allow_module_level=True)


def write(directory, rel, obj, mode=0o644):
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n" + yaml.safe_dump(obj))
    os.chmod(path, mode)


def configmap(name="cfg", namespace="demo", **extra):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"a": "b"}, **extra}


def pool(**spec):
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "lab", "namespace": "metallb-system"}, "spec": {"addresses": ["10.0.0.10-10.0.0.20"], **spec}}


def release(directory, chart, values, version, mode=0o600):
    write(directory, f"ns/helm-{chart}-values.yaml", values, mode)
    write(directory, "releases.yml", {"releases": [{"name": chart, "namespace": "ns", "repo": "https://x", "chart": chart,
                                                    "version": version, "values_file": f"ns/helm-{chart}-values.yaml"}]})


def test_a_valid_export_has_no_problem(tmp_path):
    write(tmp_path, "demo/configmap-cfg.yaml", configmap())
    write(tmp_path, "metallb-system/ipaddresspool-lab.yaml", pool())
    write(tmp_path, "_cluster/node-gpu-1.gpu-operator.yaml",
          {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1", "labels": {"a": "b"}}})
    release(tmp_path, "metallb", {"speaker": {"frr": {"enabled": False}}}, "0.16.1")
    assert export_check.check_export(tmp_path) == []


@pytest.mark.parametrize(("rel", "obj", "mode", "expected"), [
    ("demo/configmap-cfg.yaml", configmap(datta={}), 0o644, "'datta' was unexpected"),
    ("demo/configmap-other.yaml", configmap(), 0o644, "expected at demo/configmap-cfg"),
    ("_cluster/configmap-cfg.yaml", configmap(), 0o644, "expected at demo/configmap-cfg"),
    ("metallb-system/ipaddresspool-lab.yaml", pool(autoAssignn=True), 0o644, "'autoAssignn' was unexpected"),
    ("metallb-system/ipaddresspool-lab.yaml", pool(avoidBuggyIPs="yes"), 0o644, "is not of type 'boolean'"),
    ("demo/secret-s.yaml", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "demo"}},
     0o644, "a Secret readable by others"),
    ("demo/widget-w.yaml", {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "demo"}},
     0o644, "neither a Kubernetes 1.34 kind nor a reference CRD"),
])
def test_object_mistakes_are_found(tmp_path, rel, obj, mode, expected):
    write(tmp_path, rel, obj, mode)
    problems = export_check.check_export(tmp_path)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(("chart", "values", "version", "mode", "expected"), [
    ("metallb", {"speakr": {}}, "0.16.1", 0o600, "speakr: not a value of the chart"),
    ("metallb", {"speaker": {"frr": {"enabled": "no"}}}, "0.16.1", 0o600, "is not of type 'boolean'"),
    ("metrics-server", {"args": "--kubelet-insecure-tls"}, "3.13.1", 0o600, "args: the chart's default is a list"),
    ("metrics-server", {}, "3.12.0", 0o600, "is not the reference version"),
    ("metrics-server", {}, "3.13.1", 0o644, "readable by others"),
    ("gpu-operator", {"node-feature-discovery": {"worker": {"tolerationz": []}}}, "v26.7.0", 0o600,
     "worker.tolerationz: not a value"),
    ("no-such-chart", {}, "1.0.0", 0o600, "no reference values"),
])
def test_helm_value_mistakes_are_found(tmp_path, chart, values, version, mode, expected):
    release(tmp_path, chart, values, version, mode)
    problems = export_check.check_export(tmp_path)
    assert any(expected in p for p in problems), problems


def test_crd_conversion_keeps_int_or_string_and_nullable():
    schema = export_check.openapi_to_jsonschema({
        "type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "name": {"type": "string", "nullable": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}}}})
    import jsonschema  # noqa: PLC0415

    validator = jsonschema.Draft7Validator(schema)
    assert validator.is_valid({"port": 80, "name": None, "free": {"a": "x", "b": 1}})
    assert validator.is_valid({"port": "http"})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"other": 1})


@pytest.mark.parametrize(("data", "expected"), [
    ({"rtx": "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 1}]}}\n"},
     "replicas must be an integer >= 2"),
    ({"config.yaml": "version: v1\nmig-configs: {x: [{devices: all, mig-enabled: true}]}\n"},
     "mig-devices is required when mig-enabled"),
])
def test_gpu_operator_configmaps_are_checked_against_their_formats(tmp_path, data, expected):
    write(tmp_path, "gpu-operator/configmap-c.yaml", dict(configmap("c", "gpu-operator"), data=data))
    problems = export_check.check_export(tmp_path)
    assert any(expected in p for p in problems), problems


def test_two_default_storage_classes_are_found(tmp_path):
    write(tmp_path, "_cluster/storageclass-a.yaml", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "rancher.io/local-path",
        "metadata": {"name": "a", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}})
    release(tmp_path, "nfs-subdir-external-provisioner",
            {"nfs": {"server": "nas", "path": "/export"}, "storageClass": {"defaultClass": True}}, "4.0.18")
    problems = export_check.check_export(tmp_path)
    assert ("more than one default StorageClass: release ns/nfs-subdir-external-provisioner (storageClass.defaultClass), "
            "_cluster/storageclass-a.yaml") in problems
