"""Validate what ailab.cluster exports (``ailab_kubernetes_export_dir``) against the upstream schemas.

One validator for the unit tests, the integration tier and ``make lab``/``make export``:

- core Kubernetes objects: kubernetes-validate, strict, for the pinned Kubernetes minor;
- custom resources: the served version's ``openAPIV3Schema`` of the CRD in ``../shared/reference``
  (converted to JSON Schema as the reference README says, with ``additionalProperties: false`` added
  where the schema lists properties and does not preserve unknown fields: stricter than the API
  server, which prunes unknown fields silently);
- Helm releases (``releases.yml``): each values file deep-merged onto the pinned chart's
  ``values.yaml`` and validated against its values schema where the chart has one (what ``helm``
  enforces); every override key must exist in ``values.yaml`` (unless its parent there is an empty
  map, i.e. free-form) and keep the type of the chart's default;
- ConfigMaps that carry a GPU Operator device-plugin (time-slicing) or mig-parted config: those
  formats (gpu-operator/SOURCE.md and mig-parted/SOURCE.md);
- at most one default StorageClass (objects and chart values together);
- layout: one object per file at ``<namespace or _cluster>/<kind>-<name>[.<suffix>].yaml``, Secrets
  and values files mode 0600.

``problems = check_export(directory)`` returns a list of strings, empty when everything is valid;
``python -m export_check DIR`` prints them and exits 1 when there are any.
"""

import copy
import functools
import json
import os
import re
import stat
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(os.environ.get("AILAB_REFERENCE", ROOT.parent / "shared" / "reference"))
# The Kubernetes minor the collection pins (kubernetes_packages_version 1.34.x).
K8S_MINOR = "1.34"

# Every CRD file in the reference data (relative to REFERENCE).
CRD_FILES = (
    "rook/crds.yaml",
    "gpu-operator/crds/nvidia.com_clusterpolicies.yaml",
    "gpu-operator/crds/nvidia.com_nvidiadrivers.yaml",
    "gpu-operator/crds/nvidia.com_gpuclusters.yaml",
    "gpu-operator/crds/resource.nvidia.com_computedomains.yaml",
    "gpu-operator/crds/resource.nvidia.com_computedomaincliques.yaml",
    "gpu-operator/charts/node-feature-discovery/crds/nfd-api-crds.yaml",
    "metallb/crds/metallb.io_ipaddresspools.yaml",
    "metallb/crds/metallb.io_l2advertisements.yaml",
    "metallb/crds/metallb.io_bgpadvertisements.yaml",
    "metallb/crds/metallb.io_bgppeers.yaml",
    "kueue/crds/kueue.x-k8s.io_clusterqueues.yaml",
    "kueue/crds/kueue.x-k8s.io_cohorts.yaml",
    "kueue/crds/kueue.x-k8s.io_localqueues.yaml",
    "kueue/crds/kueue.x-k8s.io_resourceflavors.yaml",
    "kueue/crds/kueue.x-k8s.io_workloadpriorityclasses.yaml",
    "kube-prometheus-stack/charts/crds/crds/crd-servicemonitors.yaml",
    "kube-prometheus-stack/charts/crds/crds/crd-podmonitors.yaml",
    "kube-prometheus-stack/charts/crds/crds/crd-prometheusrules.yaml",
)

# Helm charts the collection installs: chart name (last part of chart_ref) -> reference files.
#   values: the chart's values.yaml; schema: its values schema (draft given where validator_for
#   cannot tell); version: the published chart version the reference was taken from;
#   subcharts: values key -> chart name whose reference validates that part;
#   free: dotted value paths whose content is free-form although values.yaml shows an example.
CHARTS = {
    "rook-ceph": {"values": "rook/charts/rook-ceph/values.yaml", "version": "v1.20.6"},
    # The collection applies the CephCluster and pools as objects (checked against the CRDs); a
    # release of this chart gets its value keys checked only: cephClusterSpec is not compared.
    "rook-ceph-cluster": {"values": "rook/charts/rook-ceph-cluster/values.yaml", "version": "v1.20.6",
                          "free": ("cephClusterSpec",)},
    "gpu-operator": {"values": "gpu-operator/values.yaml", "version": "v26.7.0",
                     "subcharts": {"node-feature-discovery": "node-feature-discovery"}},
    "node-feature-discovery": {"values": "gpu-operator/charts/node-feature-discovery/values.yaml",
                               "schema": "gpu-operator/charts/node-feature-discovery/values.schema.json",
                               "version": "0.19.0"},
    "dcgm-exporter": {"values": "dcgm-exporter/values.yaml", "version": "4.8.2"},
    "metallb": {"values": "metallb/values.yaml", "schema": "metallb/values.schema.json", "draft": "draft7",
                "version": "0.16.1"},
    "metrics-server": {"values": "metrics-server/values.yaml", "version": "3.13.1"},
    "nfs-subdir-external-provisioner": {"values": "nfs-subdir-external-provisioner/values.yaml", "version": "4.0.18"},
    "local-path-provisioner": {"values": "local-path-provisioner/values.yaml", "version": "0.0.37"},
    "jupyterhub": {"values": "zero-to-jupyterhub/values.yaml", "schema": "zero-to-jupyterhub/values.schema.json",
                   "version": "4.4.0",
                   # hub.config holds c.<Class>.<trait> settings (schema: keys ^[A-Z]); the role tests check
                   # them against the real classes' traits.
                   "free": ("hub.config",)},
    "headlamp": {"values": "headlamp/values.yaml", "schema": "headlamp/values.schema.json", "version": "0.45.0"},
    "kubernetes-dashboard": {"values": "kubernetes-dashboard/values.yaml", "version": "7.13.0"},
    # The kube-state-metrics subchart's values are not in the reference data; the label allowlist the
    # monitoring role sets there is taken as free-form.
    "kube-prometheus-stack": {"values": "kube-prometheus-stack/values.yaml", "version": "88.5.3",
                              "free": ("kube-state-metrics.metricLabelsAllowlist",)},
    "kueue": {"values": "kueue/values.yaml", "version": "0.19.2"},
}

_FILE_NAME = re.compile(r"^(?P<kind>[a-z0-9]+)-(?P<rest>.+)\.yaml$")


def reference(relpath):
    return REFERENCE / relpath


def load_yaml_all(path):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(Path(path).read_text(), Loader=loader) if d is not None]


# ------------------------------------------------------------------------------------------- CRDs
def openapi_to_jsonschema(node, strict=True):
    """A CRD's structural OpenAPI v3 schema as JSON Schema (draft 7).

    ``nullable: true`` admits null, ``x-kubernetes-int-or-string`` becomes integer-or-string, other
    ``x-kubernetes-*`` keys and CEL rules are dropped. With ``strict``, an object that lists
    properties and neither preserves unknown fields nor declares additionalProperties gets
    ``additionalProperties: false``.
    """
    if isinstance(node, list):
        return [openapi_to_jsonschema(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: openapi_to_jsonschema(v, strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = openapi_to_jsonschema(value, strict) if isinstance(value, (dict, list)) else value
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **{k: v for k, v in out.items() if k != "anyOf"}}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    if (strict and node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        target = out if "anyOf" not in out or "properties" in out else out["anyOf"][0]
        target["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_schemas(strict=True):
    """{(apiVersion, kind): (json schema, namespaced)} for every served version of every reference CRD."""
    index = {}
    for rel in CRD_FILES:
        path = reference(rel)
        if not path.exists():
            continue
        for doc in load_yaml_all(path):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", False):
                    continue
                schema = openapi_to_jsonschema(version["schema"]["openAPIV3Schema"], strict)
                # metadata is the API server's ObjectMeta, not part of the CRD schema.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                index[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = (
                    schema, spec["scope"] == "Namespaced")
    return index


def crd_groups():
    return {api.split("/")[0] for api, _kind in crd_schemas()}


def validate_custom_resource(obj, strict=True):
    """Problems of one custom resource against its reference CRD (empty list: valid)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    found = crd_schemas(strict).get(key)
    if not found:
        return [f"{key[1]} {key[0]}: no served version of this kind in the reference CRDs"]
    schema, namespaced = found
    problems = [f"{obj['kind']}/{obj['metadata'].get('name')}: {_where(e)}: {e.message}"
                for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]
    if namespaced != ("namespace" in obj.get("metadata", {})):
        problems.append(f"{obj['kind']}/{obj['metadata'].get('name')}: "
                        f"{'namespaced kind without' if namespaced else 'cluster-scoped kind with'} metadata.namespace")
    return problems


def _where(error):
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


# ------------------------------------------------------------------------------------ core objects
def validate_object(obj, strict=True):
    """Problems of one exported object: core kinds by kubernetes-validate, custom resources by CRD."""
    if not isinstance(obj, dict) or not {"apiVersion", "kind", "metadata"} <= set(obj):
        return [f"not a Kubernetes object: {json.dumps(obj)[:200]}"]
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    if group in crd_groups():
        return validate_custom_resource(obj, strict)
    try:
        kubernetes_validate.validate(obj, K8S_MINOR, strict=strict)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{obj['kind']} {obj['apiVersion']}: neither a Kubernetes {K8S_MINOR} kind nor a reference CRD"]
    except kubernetes_validate.ValidationError as exc:
        return [f"{obj['kind']}/{obj['metadata'].get('name')}: {_where(exc)}: {exc.message}"]
    return []


# ------------------------------------------------------------------------------------ Helm values
def deep_merge(base, override):
    """Helm's coalescing of user values onto chart values (maps merge, everything else replaces;
    a null override deletes the key)."""
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in (override or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _type_name(value):
    for name, kind in (("bool", bool), ("number", (int, float)), ("string", str), ("map", dict), ("list", list)):
        if isinstance(value, kind):
            return name
    return "null"


def unknown_value_keys(overrides, defaults, free=(), path=""):
    """Override keys absent from the chart's values.yaml, and overrides of another type than the default."""
    problems = []
    for key, value in overrides.items():
        here = f"{path}.{key}" if path else str(key)
        if here in free:
            continue
        if key not in defaults:
            problems.append(f"{here}: not a value of the chart (not in its values.yaml)")
            continue
        default = defaults[key]
        if default is None or value is None:
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                problems.append(f"{here}: the chart expects a map, got {_type_name(value)}")
            elif default:  # an empty map in values.yaml is free-form (nodeSelector: {}, annotations: {})
                problems.extend(unknown_value_keys(value, default, free, here))
        elif _type_name(default) != _type_name(value) and not (
                _type_name(default) == "string" and default == "" and _type_name(value) != "map"):
            problems.append(f"{here}: the chart's default is a {_type_name(default)}, got {_type_name(value)}")
    return problems


def _validator(schema, draft=None):
    if draft == "draft7":  # MetalLB's $schema is the https URI that validator_for does not know
        return jsonschema.Draft7Validator(schema)
    return jsonschema.validators.validator_for(schema)(schema)


def check_chart_values(chart, overrides):
    """Problems of a release's values for ``chart`` (a key of CHARTS)."""
    if chart not in CHARTS:
        return [f"chart {chart}: no reference values to check against (add it to export_check.CHARTS)"]
    ref = CHARTS[chart]
    defaults = yaml.safe_load(reference(ref["values"]).read_text()) or {}
    subcharts = ref.get("subcharts", {})
    own = {k: v for k, v in (overrides or {}).items() if k not in subcharts}
    problems = [f"{chart}: {p}" for p in unknown_value_keys(own, defaults, ref.get("free", ()))]
    if "schema" in ref:
        schema = json.loads(reference(ref["schema"]).read_text())
        merged = deep_merge(defaults, own)
        problems += [f"{chart}: values schema: {_where(e)}: {e.message}"
                     for e in _validator(schema, ref.get("draft")).iter_errors(merged)]
    for key, sub in subcharts.items():
        if key in (overrides or {}):
            problems += check_chart_values(sub, overrides[key])
    return problems


def chart_name(chart_ref):
    return chart_ref.rstrip("/").split("/")[-1]


# ------------------------------------------------------------------------- GPU Operator ConfigMaps
# The device plugin config format (gpu-operator/SOURCE.md, "Device-plugin time-slicing config format").
RESOURCE_NAME = re.compile(r"^(nvidia\.com/)?[A-Za-z0-9][-A-Za-z0-9_.]*$")


def device_plugin_problems(text):
    config = yaml.safe_load(text)
    problems = []
    if config.get("version", "v1") != "v1":
        problems.append("version must be v1")
    problems += ["unknown key %s" % k for k in config if k not in ("version", "flags", "sharing")]
    if (config.get("flags") or {}).get("migStrategy", "none") not in ("none", "single", "mixed"):
        problems.append("flags.migStrategy")
    sharing = config.get("sharing") or {}
    if "timeSlicing" in sharing and "mps" in sharing:
        problems.append("timeSlicing and mps exclude each other")
    slicing = sharing.get("timeSlicing")
    if slicing is not None:
        problems += ["unknown timeSlicing key %s" % k for k in slicing
                     if k not in ("renameByDefault", "failRequestsGreaterThanOne", "resources")]
        if not isinstance(slicing.get("renameByDefault", False), bool):
            problems.append("renameByDefault must be a bool")
        resources = slicing.get("resources")
        if not isinstance(resources, list) or not resources:
            problems.append("resources must be a non-empty list")
        for resource in resources or []:
            name = str(resource.get("name", ""))
            if not RESOURCE_NAME.match(name) or len(name.rsplit("/", maxsplit=1)[-1]) > 63:
                problems.append("bad resource name %r" % name)
            replicas = resource.get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2:
                problems.append("replicas must be an integer >= 2, got %r" % (replicas,))
    return problems


# The mig-parted config format (mig-parted/SOURCE.md, "Config file format").
PROFILE = re.compile(r"^\d+g\.\d+gb(\+me|\+gfx|\+me\.all|-me)?$")


def mig_parted_problems(text):
    config = yaml.safe_load(text)
    problems = []
    if config.get("version") != "v1":
        problems.append("version must be v1")
    problems += ["unexpected field %s" % k for k in config if k not in ("version", "mig-configs")]
    configs = config.get("mig-configs")
    if not isinstance(configs, dict) or not configs:
        return problems + ["mig-configs must hold at least one layout"]
    for name, entries in configs.items():
        if not isinstance(entries, list) or not entries:
            problems.append("%s: a non-empty list" % name)
            continue
        for entry in entries:
            problems += ["%s: unknown key %s" % (name, k) for k in entry
                         if k not in ("device-filter", "devices", "mig-enabled", "mig-devices")]
            devices = entry.get("devices")
            if devices != "all" and not (isinstance(devices, list) and all(isinstance(d, int) for d in devices)):
                problems.append("%s: devices must be all or a list of indexes" % name)
            if not isinstance(entry.get("mig-enabled"), bool):
                problems.append("%s: mig-enabled must be a bool" % name)
            mig_devices = entry.get("mig-devices")
            if entry.get("mig-enabled") is True and mig_devices is None:
                problems.append("%s: mig-devices is required when mig-enabled" % name)
            if entry.get("mig-enabled") is False and mig_devices:
                problems.append("%s: mig-devices must be empty when MIG is off" % name)
            if mig_devices:
                if not any(count > 0 for count in mig_devices.values()):
                    problems.append("%s: at least one count > 0" % name)
                for profile, count in mig_devices.items():
                    if not PROFILE.match(profile) or not isinstance(count, int) or count < 0:
                        problems.append("%s: bad device %s: %r" % (name, profile, count))
            device_filter = entry.get("device-filter")
            if device_filter is not None:
                for pci in [device_filter] if isinstance(device_filter, str) else device_filter:
                    if not re.match(r"^0x[0-9A-Fa-f]{8}(:0x[0-9A-Fa-f]{8})?$", pci):
                        problems.append("%s: bad device-filter %s" % (name, pci))
    return problems


def configmap_problems(obj):
    """The device-plugin (time-slicing) and mig-parted configs that ConfigMaps carry, checked against
    their upstream formats; other ConfigMaps have none."""
    problems = []
    for key, text in (obj.get("data") or {}).items():
        try:
            content = yaml.safe_load(text) if isinstance(text, str) else None
        except yaml.YAMLError:
            continue
        if not isinstance(content, dict):
            continue
        if "mig-configs" in content:
            problems += [f"data.{key}: mig-parted config: {p}" for p in mig_parted_problems(text)]
        elif "sharing" in content or ("flags" in content and "version" in content):
            problems += [f"data.{key}: device plugin config: {p}" for p in device_plugin_problems(text)]
    return problems


# ---------------------------------------------------------------------------------- export folder
def check_export(directory, strict=True, check_versions=True):
    """Every problem found in an export directory; an empty list means it is valid."""
    directory = Path(directory)
    problems = []
    if not directory.is_dir():
        return [f"{directory}: no such export directory"]
    releases_file = directory / "releases.yml"
    values_files = set()
    defaults = []  # default StorageClasses: at most one per lab
    if releases_file.exists():
        releases = (yaml.safe_load(releases_file.read_text()) or {}).get("releases") or []
        for rel in releases:
            name = f"release {rel.get('namespace')}/{rel.get('name')}"
            values_path = directory / rel.get("values_file", "")
            values_files.add(values_path)
            if not values_path.is_file():
                problems.append(f"{name}: values file {rel.get('values_file')} is missing")
                continue
            if stat.S_IMODE(values_path.stat().st_mode) & 0o077:
                problems.append(f"{name}: {rel['values_file']} is readable by others (values can hold secrets)")
            chart = chart_name(rel.get("chart", ""))
            ref = CHARTS.get(chart)
            if check_versions and ref and str(rel.get("version")).lstrip("v") != ref["version"].lstrip("v"):
                problems.append(f"{name}: chart {chart} {rel.get('version')} is not the reference version "
                                f"{ref['version']} the values are checked against")
            values = yaml.safe_load(values_path.read_text()) or {}
            problems += [f"{name}: {p}" for p in check_chart_values(chart, values)]
            storage_class = values.get("storageClass") if isinstance(values.get("storageClass"), dict) else {}
            if storage_class.get("defaultClass") is True and storage_class.get("create", True) is not False:
                defaults.append(f"{name} (storageClass.defaultClass)")
    for path in sorted(directory.rglob("*.yaml")):
        if path in values_files or path.name.startswith("helm-"):
            continue
        rel = path.relative_to(directory).as_posix()
        try:
            docs = load_yaml_all(path)
        except yaml.YAMLError as exc:
            problems.append(f"{rel}: not YAML: {exc}")
            continue
        if len(docs) != 1:
            problems.append(f"{rel}: {len(docs)} documents, one object per file expected")
            continue
        obj = docs[0]
        problems += [f"{rel}: {p}" for p in validate_object(obj, strict)]
        if not isinstance(obj, dict) or "metadata" not in obj:
            continue
        if obj.get("kind") == "ConfigMap":
            problems += [f"{rel}: {p}" for p in configmap_problems(obj)]
        annotations = obj["metadata"].get("annotations") or {}
        if obj.get("kind") == "StorageClass" and annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
            defaults.append(rel)
        namespace = obj["metadata"].get("namespace", "_cluster")
        match = _FILE_NAME.match(path.name)
        stem = f"{str(obj.get('kind', '')).lower()}-{obj['metadata'].get('name')}"
        if path.parent.name != namespace or not match or not (
                path.name == f"{stem}.yaml" or path.name.startswith(f"{stem}.")):
            problems.append(f"{rel}: expected at {namespace}/{stem}[.<suffix>].yaml")
        if obj.get("kind") == "Secret" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            problems.append(f"{rel}: a Secret readable by others")
    if len(defaults) > 1:
        problems.append(f"more than one default StorageClass: {', '.join(defaults)}")
    return problems


def main(argv):
    if len(argv) != 1:
        print("usage: python -m export_check EXPORT_DIR")
        return 2
    problems = check_export(argv[0])
    for problem in problems:
        print(problem)
    count = len(list(Path(argv[0]).rglob("*.yaml")))
    print(f"{argv[0]}: {count} files, {len(problems)} problem(s)")
    return 1 if problems else 0
