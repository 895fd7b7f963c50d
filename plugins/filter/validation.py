# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role ailab.cluster.validation: the lab guides' smoke workloads and their verdicts.

* ``validation_plan``: from the lab model, the smoke-test objects (WordPress and MySQL on a volume of
  the default StorageClass behind a LoadBalancer, one CUDA Job per GPU resource and node, one Kueue
  Job per tenant queue) and the list of checks, each either still to run or "not run" with the reason;
* ``validation_result``: one check's verdict from what the cluster showed (Job, pods, events, logs,
  HTTP answers), as ``{name, status: passed|failed|not run, detail}``;
* ``validation_report``: the verdicts as one line each and whether the run failed.

The parsers behind ``validation_result`` (``nvidia_smi``, ``vectoradd_log``, ``job_state``,
``workload_state``, ``pending_reason``, ``wordpress_http``, ``jupyterhub_api``, ``jupyterhub_server``,
``prometheus_series``) are plain functions that return ``(status, detail)``; the unit tests feed them
recorded outputs. A check passes only on positive evidence: missing or malformed output is a failure
with what was seen, never a pass. Their documentation is in the ``<filter name>.yml`` files next to
this one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.ailab.cluster.plugins.plugin_utils._lab_inputs import plain as _plain

LABEL = "ailab.cluster/validation"
GROUP_LABEL = "ailab.cluster/gpu-group"
HOSTNAME_LABEL = "kubernetes.io/hostname"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
MANAGED = {"app.kubernetes.io/managed-by": "ailab.cluster"}
CHECKS = ("wordpress", "cuda", "queues", "jupyterhub", "prometheus")
PASSED = "passed"
FAILED = "failed"
NOT_RUN = "not run"
PREFIX = {PASSED: "PASS", FAILED: "FAIL", NOT_RUN: "NOT RUN"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SETTINGS = ("namespace", "checks", "images", "mysql_password", "storage_class", "storage_size", "local_queue",
            "node_names", "timeout", "jupyterhub", "prometheus")
IMAGES = ("cuda", "mysql", "wordpress", "busybox")
# The CUDA sample image runs /cuda-samples/vectorAdd (NVIDIA/k8s-samples deployments/container/Dockerfile.ubuntu).
CUDA_COMMAND = "nvidia-smi -L && nvidia-smi && /cuda-samples/vectorAdd"
# A container that meets the Pod Security "restricted" level of the tenant namespaces.
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                  "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

# nvidia-smi -L: "GPU 0: NVIDIA H200 (UUID: GPU-...)" and, under a MIG-enabled GPU,
# "  MIG 1g.18gb     Device  0: (UUID: MIG-...)" (older drivers: "MIG 3g.20gb Device 0: (UUID: MIG-GPU-.../1/0)").
GPU_LINE = re.compile(r"^GPU (\d+): (.+?) \(UUID: (GPU-[0-9a-fA-F-]+)\)\s*$")
MIG_LINE = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)\s*$")
SMI_VERSIONS = re.compile(r"Driver Version: (\S+)\s+CUDA Version: (\S+)")
SMI_ERRORS = ("No devices were found", "NVIDIA-SMI has failed", "Failed to initialize NVML",
              "nvidia-smi: not found", "nvidia-smi: command not found")


def _fail(message):
    raise AnsibleFilterError("validation: %s" % message)


def _short(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _name(*parts):
    """A Job name (and job-name label value): a DNS label of at most 63 characters, a hash when cut."""
    text = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    if len(text) <= 63:
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return "%s-%s" % (text[:54].rstrip("-"), digest)


def _conditions(obj):
    status = (obj or {}).get("status") or {}
    return dict((c.get("type"), c) for c in status.get("conditions") or [] if isinstance(c, Mapping))


def _true(conditions, kind):
    return str((conditions.get(kind) or {}).get("status")) == "True"


# ------------------------------------------------------------------------------------------ plan
def _settings(settings):
    if not isinstance(settings, Mapping):
        _fail("the settings must be a mapping of %s" % ", ".join(SETTINGS))
    settings = _plain(settings)
    missing = [k for k in SETTINGS if k not in settings]
    if missing:
        _fail("settings miss %s" % ", ".join(missing))
    if not isinstance(settings["namespace"], str) or not DNS_LABEL.match(settings["namespace"]):
        _fail("validation_namespace must be a namespace name (a DNS label such as ailab-validation), got %r"
              % (settings["namespace"],))
    checks = settings["checks"]
    if not isinstance(checks, list) or [c for c in checks if c not in CHECKS]:
        _fail("validation_checks must be a list of %s, got %r" % (", ".join(CHECKS), checks))
    images = settings["images"]
    if not isinstance(images, Mapping) or [k for k in IMAGES if not isinstance(images.get(k), str) or not images[k]]:
        _fail("the images must name %s" % ", ".join(IMAGES))
    if int(settings["timeout"]) < 30:
        _fail("validation_timeout must be at least 30 seconds, got %r" % (settings["timeout"],))
    return settings


def _check(name, kind, status=None, detail="", **data):
    entry = {"name": name, "kind": kind, "status": status, "detail": detail}
    entry.update(data)
    return entry


def _namespace(settings):
    labels = dict(MANAGED)
    labels[LABEL] = "smoke-tests"
    # WordPress' and MySQL's official images start as root: baseline, not restricted.
    for mode in ("enforce", "warn", "audit"):
        labels["pod-security.kubernetes.io/%s" % mode] = "baseline"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": settings["namespace"], "labels": labels}}


def _meta(name, namespace, check, extra=None):
    labels = dict(MANAGED)
    labels[LABEL] = check
    labels.update(extra or {})
    return {"name": name, "namespace": namespace, "labels": labels}


def _wordpress(settings):
    ns, images = settings["namespace"], settings["images"]

    def secret_env(name):
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": "mysql-pass", "key": "password"}}}

    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": settings["storage_size"]}}}
    if settings["storage_class"]:
        claim["storageClassName"] = settings["storage_class"]

    def deployment(name, image, env, port, volumes=None, mounts=None):
        container = {"name": name, "image": image, "env": env, "ports": [{"name": name, "containerPort": port}],
                     "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 5},
                     "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}}
        if mounts:
            container["volumeMounts"] = mounts
        pod = {"containers": [container]}
        if volumes:
            pod["volumes"] = volumes
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, ns, "wordpress"),
                "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                         "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name, LABEL: "wordpress"}}, "spec": pod}}}

    def service(name, port, kind):
        return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, ns, "wordpress"),
                "spec": {"type": kind, "selector": {"app": name},
                         "ports": [{"name": "http" if port == 80 else name, "port": port, "targetPort": port}]}}

    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": _meta("mysql-pass", ns, "wordpress"), "type": "Opaque",
         "stringData": {"password": settings["mysql_password"]}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta("mysql-data", ns, "wordpress"),
         "spec": claim},
        deployment("mysql", images["mysql"],
                   [secret_env("MYSQL_ROOT_PASSWORD"), {"name": "MYSQL_DATABASE", "value": "wordpress"},
                    {"name": "MYSQL_USER", "value": "wordpress"}, secret_env("MYSQL_PASSWORD")], 3306,
                   volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "mysql-data"}}],
                   mounts=[{"name": "data", "mountPath": "/var/lib/mysql"}]),
        service("mysql", 3306, "ClusterIP"),
        deployment("wordpress", images["wordpress"],
                   [{"name": "WORDPRESS_DB_HOST", "value": "mysql"}, {"name": "WORDPRESS_DB_USER", "value": "wordpress"},
                    secret_env("WORDPRESS_DB_PASSWORD"), {"name": "WORDPRESS_DB_NAME", "value": "wordpress"}], 80),
        service("wordpress", 80, "LoadBalancer"),
    ]


def _cuda_job(resource, node, settings):
    ns = settings["namespace"]
    name = _name("cuda", resource["key"], node)
    container = {"name": "cuda", "image": settings["images"]["cuda"], "command": ["/bin/sh", "-c", CUDA_COMMAND],
                 # nvidia-smi comes from the driver through the container toolkit: ask for the utility libraries.
                 "env": [{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"}],
                 "resources": {"limits": {resource["resource"]: "1"}}}
    pod = {"restartPolicy": "Never", "containers": [container],
           "nodeSelector": dict(sorted(dict(resource["node_selector"], **{HOSTNAME_LABEL: node}).items()))}
    if resource.get("tolerations"):
        pod["tolerations"] = [dict(t) for t in resource["tolerations"]]
    labels = {LABEL: "cuda", GROUP_LABEL: resource["group"]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(name, ns, "cuda", {GROUP_LABEL: resource["group"]}),
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": int(settings["timeout"]),
                     "template": {"metadata": {"labels": labels}, "spec": pod}}}


def _queue_job(tenant, settings):
    container = {"name": "queue-check", "image": settings["images"]["busybox"],
                 "command": ["/bin/sh", "-c", "echo ailab.cluster validation: admitted by Kueue in %s" % tenant["namespace"]],
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
                 "securityContext": dict(RESTRICTED_CONTAINER)}
    # Kueue admits a suspended Job and unsuspends it; a Job created running would bypass the queue.
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": _meta("ailab-validation-queue", tenant["namespace"], "queue", {QUEUE_LABEL: settings["local_queue"]}),
            "spec": {"suspend": True, "backoffLimit": 0,
                     "template": {"metadata": {"labels": {LABEL: "queue"}},
                                  "spec": {"restartPolicy": "Never", "securityContext": dict(RESTRICTED_POD),
                                           "containers": [container]}}}}


def _smallest_gpu_profile(resources, tenants):
    """(slug, tenant name or None, resource) of the GPU profile with the least memory a user can pick."""
    present = sorted((r for r in resources if int(r.get("capacity") or 0) > 0),
                     key=lambda r: (int(r.get("memory_mib") or 0), r["key"]))
    if not tenants:
        return (present[0]["key"], None, present[0]) if present else (None, None, None)
    for resource in present:
        for tenant in tenants:
            if resource["key"] in (tenant.get("profiles") or []):
                return "%s-%s" % (tenant["name"], resource["key"]), tenant, resource
    return None, None, None


def _jupyterhub_checks(resources, tenants, options):
    api, server = "jupyterhub api", "jupyterhub user server"
    if not options.get("enabled"):
        why = "jupyterhub is not part of this lab (validation_jupyterhub: false)"
        return [_check(api, "jupyterhub_api", NOT_RUN, why), _check(server, "jupyterhub_server", NOT_RUN, why)]
    checks = [_check(api, "jupyterhub_api", url_path="/hub/api")]
    slug, tenant, resource = _smallest_gpu_profile(resources, tenants)
    if not options.get("token"):
        checks.append(_check(server, "jupyterhub_server", NOT_RUN,
                             "no JupyterHub API token: set validation_jupyterhub_api_token (vault) to a token of a hub "
                             "admin (hub → Token page) so the check can create a test user and start its server"))
    elif slug is None:
        checks.append(_check(server, "jupyterhub_server", NOT_RUN,
                             "no GPU profile to start: the lab has no GPU node with capacity"
                             + (", or no tenant lists a GPU profile" if tenants else "")))
    elif tenant is not None and options.get("idp_groups"):
        checks.append(_check(server, "jupyterhub_server", NOT_RUN,
                             "the test user must belong to tenant %s, but with jupyterhub_auth_type oidc the identity "
                             "provider owns group membership and the hub's API cannot add it" % tenant["name"]))
    else:
        checks.append(_check(server, "jupyterhub_server", user=options["user"], profile=slug,
                             group=tenant["name"] if tenant else "",
                             namespace=tenant["namespace"] if tenant else options.get("namespace", ""),
                             resource=resource["resource"], key=resource["key"]))
    return checks


def validation_plan(gpu_resources, tenants, settings):
    """The smoke-test objects (apply order) and the checks (see validation_plan.yml)."""
    settings = _settings(settings)
    resources = _plain(gpu_resources or [])
    tenants = _plain(tenants or [])
    selected = settings["checks"]
    objects, checks = [], []

    def skipped(check):
        return "not selected (validation_checks: %s)" % ", ".join(selected) if check not in selected else ""

    if skipped("wordpress"):
        checks.append(_check("wordpress", "wordpress", NOT_RUN, skipped("wordpress")))
    else:
        objects += _wordpress(settings)
        checks.append(_check("wordpress", "wordpress", service="wordpress",
                             storage_class=settings["storage_class"] or "the cluster's default StorageClass"))

    node_names = settings["node_names"] or {}
    if skipped("cuda") or not resources:
        reason = skipped("cuda") or "the lab has no GPU node groups (ailab_gpu_node_groups is empty)"
        checks.append(_check("cuda", "cuda", NOT_RUN, reason))
    else:
        for resource in resources:
            nodes = [str(node_names.get(h) or h) for h in resource["nodes"]]
            if not nodes:
                checks.append(_check("cuda %s %s" % (resource["group"], resource["key"]), "cuda", NOT_RUN,
                                     "group %s has no hosts in the inventory" % resource["group"]))
            for node in sorted(nodes):
                job = _cuda_job(resource, node, settings)
                objects.append(job)
                checks.append(_check("cuda %s %s on %s" % (resource["group"], resource["key"], node), "cuda",
                                     namespace=settings["namespace"], job=job["metadata"]["name"],
                                     resource=resource["resource"], mig_profile=resource.get("mig_profile"),
                                     node=node))

    if skipped("queues") or not tenants:
        reason = skipped("queues") or "the lab has no tenants (ailab_tenants is empty)"
        checks.append(_check("queues", "queue", NOT_RUN, reason))
    else:
        for tenant in tenants:
            job = _queue_job(tenant, settings)
            objects.append(job)
            checks.append(_check("queue %s" % tenant["name"], "queue", namespace=tenant["namespace"],
                                 job=job["metadata"]["name"], local_queue=settings["local_queue"]))

    if skipped("jupyterhub"):
        checks += [_check(n, k, NOT_RUN, skipped("jupyterhub"))
                   for n, k in (("jupyterhub api", "jupyterhub_api"), ("jupyterhub user server", "jupyterhub_server"))]
    else:
        checks += _jupyterhub_checks(resources, tenants, settings["jupyterhub"])

    prometheus = settings["prometheus"]
    gpu_nodes = sorted(set(str(node_names.get(h) or h) for r in resources for h in r["nodes"]))
    if skipped("prometheus"):
        checks.append(_check("prometheus dcgm", "prometheus", NOT_RUN, skipped("prometheus")))
    elif not prometheus.get("enabled"):
        checks.append(_check("prometheus dcgm", "prometheus", NOT_RUN,
                             "monitoring is not part of this lab (validation_prometheus: false)"))
    elif not gpu_nodes:
        checks.append(_check("prometheus dcgm", "prometheus", NOT_RUN, "the lab has no GPU nodes for DCGM to report"))
    else:
        checks.append(_check("prometheus dcgm", "prometheus", nodes=gpu_nodes,
                             query="group by (node) (%s)" % prometheus.get("metric", "DCGM_FI_DEV_GPU_TEMP")))

    namespaced = [o for o in objects if o["metadata"].get("namespace") == settings["namespace"]]
    if namespaced:
        objects.insert(0, _namespace(settings))
    return {"objects": objects, "checks": checks}


# --------------------------------------------------------------------------------------- parsers
def nvidia_smi(text, mig_profile=None):
    """``nvidia-smi -L && nvidia-smi`` output: the GPUs and MIG devices the container sees."""
    if not isinstance(text, str) or not text.strip():
        return FAILED, "nvidia-smi printed nothing"
    for error in SMI_ERRORS:
        if error in text:
            line = [ln for ln in text.splitlines() if error in ln][0]
            return FAILED, "nvidia-smi: %s" % _short(line.strip())
    gpus, migs = [], []
    for line in text.splitlines():
        gpu = GPU_LINE.match(line)
        if gpu:
            gpus.append((gpu.group(2), gpu.group(3)))
        mig = MIG_LINE.match(line)
        if mig:
            migs.append(mig.group(1))
    if not gpus:
        return FAILED, "nvidia-smi -L listed no GPU"
    versions = SMI_VERSIONS.search(text)
    seen = ", ".join("%s (%s)" % (name, uuid[:12]) for name, uuid in gpus)
    if mig_profile:
        if mig_profile not in migs:
            return FAILED, "expected a MIG %s device, nvidia-smi -L shows %s" % (
                mig_profile, ", ".join("MIG " + m for m in migs) if migs else "no MIG device on " + seen)
        seen += ", MIG %s" % mig_profile
    elif migs:
        seen += ", MIG %s" % ", ".join(migs)
    if not versions:
        return FAILED, "nvidia-smi -L saw %s but nvidia-smi printed no driver table" % seen
    return PASSED, "%s, driver %s, CUDA %s" % (seen, versions.group(1), versions.group(2))


def vectoradd_log(text):
    """The CUDA vectorAdd sample's output: passes on its "Test PASSED" line only."""
    if not isinstance(text, str) or not text.strip():
        return FAILED, "vectorAdd printed nothing"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("Result verification failed") or line.startswith("Failed to") or "error code" in line:
            return FAILED, "vectorAdd: %s" % _short(line)
    if "Test PASSED" in lines:
        header = [ln for ln in lines if ln.startswith("[Vector addition of")]
        return PASSED, "vectorAdd %s" % (header[0].strip("[]") + ": Test PASSED" if header else "Test PASSED")
    return FAILED, "vectorAdd did not print Test PASSED (last line: %s)" % _short(lines[-1], 160)


def job_state(job):
    """(complete|failed|suspended|active, detail) of a batch/v1 Job."""
    if not isinstance(job, Mapping) or job.get("kind", "Job") != "Job" or "metadata" not in job:
        return "failed", "no Job object"
    conditions = _conditions(job)
    if _true(conditions, "Complete"):
        return "complete", "Job completed"
    if _true(conditions, "Failed"):
        cond = conditions["Failed"]
        return "failed", "Job failed: %s%s" % (cond.get("reason") or "Failed",
                                               (" (%s)" % _short(cond["message"], 200)) if cond.get("message") else "")
    if (job.get("spec") or {}).get("suspend"):
        return "suspended", "Job is suspended"
    return "active", "Job is running (active %s)" % ((job.get("status") or {}).get("active") or 0)


def workload_state(workload):
    """(finished|admitted|pending|evicted, detail) of a Kueue Workload (kueue.x-k8s.io/v1beta2)."""
    if not isinstance(workload, Mapping) or not workload.get("metadata"):
        return "pending", "Kueue created no Workload for the Job (is Kueue running and does the LocalQueue exist?)"
    conditions = _conditions(workload)
    name = workload["metadata"].get("name", "?")
    if _true(conditions, "Finished"):
        return "finished", "Workload %s admitted and finished" % name
    for kind in ("Evicted", "Deactivated"):
        if _true(conditions, kind):
            return "evicted", "Workload %s %s: %s" % (name, kind.lower(), _short(conditions[kind].get("message", "")))
    if _true(conditions, "Admitted"):
        return "admitted", "Workload %s admitted" % name
    reserved = conditions.get("QuotaReserved") or {}
    message = reserved.get("message") or "no QuotaReserved condition yet"
    return "pending", "Workload %s not admitted: %s" % (name, _short(message, 240))


def pending_reason(pods, events):
    """Why the Job's pod does not run: the scheduler's FailedScheduling message, an image pull or a
    container error; "" when nothing explains it."""
    for pod in pods or []:
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in ("ContainerCreating", "PodInitializing"):
                return "container %s %s: %s" % (cs.get("name"), waiting["reason"], _short(waiting.get("message", ""), 200))
    found = [e for e in events or [] if e.get("reason") in ("FailedScheduling", "FailedCreate", "FailedMount",
                                                            "FailedAttachVolume", "Failed", "BackOff")]
    found.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    if found:
        event = found[-1]
        return "%s: %s" % (event["reason"], _short(event.get("message", ""), 240))
    for pod in pods or []:
        status = pod.get("status") or {}
        if status.get("phase") == "Pending":
            return "pod %s Pending" % pod.get("metadata", {}).get("name", "?")
    return ""


def wordpress_http(status, body, url):
    """WordPress' answer through its LoadBalancer: 200 with a WordPress page (the installer on a new site)."""
    try:
        status = int(status)
    except (TypeError, ValueError):
        status = -1
    if status <= 0:
        return FAILED, "%s did not answer (%s)" % (url, _short(body or "no response", 200))
    body = body if isinstance(body, str) else ""
    if "Error establishing a database connection" in body:
        return FAILED, "%s answered %d: Error establishing a database connection (MySQL)" % (url, status)
    if status != 200:
        return FAILED, "%s answered %d" % (url, status)
    if "wp-" not in body and "WordPress" not in body:
        return FAILED, "%s answered 200 but not with a WordPress page" % url
    return PASSED, "%s answered 200 (WordPress)" % url


def jupyterhub_api(status, data, url):
    """GET /hub/api: 200 and JSON with the hub's version."""
    if status != 200:
        return FAILED, "%s answered %s" % (url, status if status else "nothing")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return FAILED, "%s did not answer JSON: %s" % (url, _short(data, 120))
    if not isinstance(data, Mapping) or not isinstance(data.get("version"), str):
        return FAILED, "%s answered without a JupyterHub version: %s" % (url, _short(json.dumps(data), 120))
    return PASSED, "%s answered: JupyterHub %s" % (url, data["version"])


def jupyterhub_server(user, profile):
    """GET /hub/api/users/<name> after starting the server: its default server ready."""
    if not isinstance(user, Mapping) or "name" not in user:
        return FAILED, "the hub returned no user model"
    server = (user.get("servers") or {}).get("")
    if not server:
        return FAILED, "user %s has no running server with profile %s (the spawn failed or was stopped)" % (
            user["name"], profile)
    if server.get("ready"):
        return PASSED, "user %s's server with profile %s is ready" % (user["name"], profile)
    return FAILED, "user %s's server with profile %s is not ready (pending: %s)" % (
        user["name"], profile, server.get("pending") or "none")


def prometheus_series(data, nodes):
    """An instant query result (``/api/v1/query``): one series per expected GPU node (label node)."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return FAILED, "Prometheus did not answer JSON: %s" % _short(data, 120)
    if not isinstance(data, Mapping) or data.get("status") != "success":
        error = data.get("error") if isinstance(data, Mapping) else None
        return FAILED, "Prometheus query failed: %s" % _short(error or json.dumps(data), 200)
    result = (data.get("data") or {}).get("result")
    if not isinstance(result, list):
        return FAILED, "Prometheus answered without a result list"
    seen = sorted(set(str((s.get("metric") or {}).get("node")) for s in result
                      if isinstance(s, Mapping) and (s.get("metric") or {}).get("node")))
    missing = sorted(set(nodes) - set(seen))
    if missing:
        return FAILED, "no DCGM series from %s (series from: %s)" % (", ".join(missing), ", ".join(seen) or "no node")
    return PASSED, "DCGM series from every GPU node: %s" % ", ".join(sorted(nodes))


# --------------------------------------------------------------------------------------- results
def _events_of(events, name):
    """The events of an object and of the objects named after it (a Job's pods: <job>-<suffix>)."""
    return [e for e in events or [] if isinstance(e, Mapping) and (
        str((e.get("involvedObject") or {}).get("name", "")) == name
        or str((e.get("involvedObject") or {}).get("name", "")).startswith(name + "-"))]


def _workload_of(workloads, job):
    """The Workload Kueue created for a Job: the one the Job owns (ownerReferences)."""
    for workload in workloads or []:
        owners = (workload.get("metadata") or {}).get("ownerReferences") or []
        if any(o.get("kind") == "Job" and o.get("name") == job for o in owners):
            return workload
    return None


def _job_result(check, seen):
    job = seen.get("job")
    if not job:
        return FAILED, "Job %s/%s was not found" % (check.get("namespace"), check.get("job"))
    state, detail = job_state(job)
    reason = pending_reason(seen.get("pods"), _events_of(seen.get("events"), check.get("job", "")))
    if check["kind"] == "queue":
        workload = seen.get("workload") or _workload_of(seen.get("workloads"), check.get("job"))
        wl_state, wl_detail = workload_state(workload)
        if state == "complete" and wl_state in ("finished", "admitted"):
            return PASSED, "%s; Job completed in LocalQueue %s" % (wl_detail, check.get("local_queue"))
        if state in ("suspended", "active") and wl_state in ("pending", "evicted"):
            return FAILED, wl_detail
        return FAILED, "; ".join(p for p in (detail, wl_detail, reason) if p)
    if state != "complete":
        return FAILED, "; ".join(p for p in (detail, reason) if p)
    log = seen.get("log") or ""
    smi = nvidia_smi(log, check.get("mig_profile"))
    add = vectoradd_log(log)
    if smi[0] != PASSED:
        return smi
    if add[0] != PASSED:
        return add
    return PASSED, "%s; %s" % (smi[1], add[1])


def validation_result(check, seen=None):
    """One check's verdict ``{name, status, detail}`` from what the cluster showed (see validation_result.yml)."""
    if not isinstance(check, Mapping) or "name" not in check or "kind" not in check:
        _fail("validation_result expects a check of validation_plan, got %r" % (check,))
    check = _plain(check)
    seen = _plain(seen or {})
    if check.get("status") == NOT_RUN:
        return {"name": check["name"], "status": NOT_RUN, "detail": check["detail"]}
    if seen.get("not_run"):
        return {"name": check["name"], "status": NOT_RUN, "detail": str(seen["not_run"])}
    kind = check["kind"]
    if seen.get("error"):
        status, detail = FAILED, _short(seen["error"])
        if kind == "wordpress":
            reason = pending_reason(seen.get("pods"), seen.get("events"))
            detail += "; MySQL's volume claim mysql-data: %s (%s)%s" % (
                seen.get("claim") or "missing", check.get("storage_class"), "; " + reason if reason else "")
    elif kind in ("cuda", "queue"):
        status, detail = _job_result(check, seen)
    elif kind == "wordpress":
        status, detail = wordpress_http(seen.get("status"), seen.get("body"), seen.get("url", "WordPress"))
    elif kind == "jupyterhub_api":
        status, detail = jupyterhub_api(seen.get("status"), seen.get("json"), seen.get("url", "/hub/api"))
    elif kind == "jupyterhub_server":
        status, detail = jupyterhub_server(seen.get("user"), check.get("profile"))
        reason = pending_reason(seen.get("pods"), seen.get("events")) if status == FAILED else ""
        detail = "%s: %s" % (detail, reason) if reason else detail
    elif kind == "prometheus":
        status, detail = prometheus_series(seen.get("json"), check.get("nodes") or [])
    else:
        _fail("unknown check kind %r" % kind)
    return {"name": check["name"], "status": status, "detail": detail}


def validation_report(results, not_run_reason="", require_all=False):
    """One line per check and the verdict of the run (see validation_report.yml)."""
    if not isinstance(results, (list, tuple)):
        _fail("validation_report expects the list of check results")
    lines, counts = [], {PASSED: 0, FAILED: 0, NOT_RUN: 0}
    final = []
    for entry in _plain(results):
        status, detail = entry.get("status"), entry.get("detail") or ""
        if status not in PREFIX:
            if not not_run_reason:
                _fail("check %s has no verdict" % entry.get("name"))
            status, detail = NOT_RUN, not_run_reason
        counts[status] += 1
        final.append({"name": entry["name"], "status": status, "detail": detail})
        lines.append("%-8s %s: %s" % (PREFIX[status], entry["name"], detail))
    failed = counts[FAILED] > 0 or (bool(require_all) and counts[NOT_RUN] > 0)
    summary = "%d passed, %d failed, %d not run" % (counts[PASSED], counts[FAILED], counts[NOT_RUN])
    return {"lines": lines, "results": final, "counts": counts, "failed": failed, "summary": summary}


class FilterModule(object):
    def filters(self):
        return {
            "validation_plan": validation_plan,
            "validation_result": validation_result,
            "validation_report": validation_report,
        }
