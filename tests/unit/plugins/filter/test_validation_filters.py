"""The validation filters: the smoke-test plan from the lab model, and every check's pass/fail logic on
recorded outputs. The H200's nvidia-smi output is the real recording in ../shared/reference/gpu/nvidia-h200/
(read through AILAB_REFERENCE, never copied); the other outputs are in tests/unit/fixtures/validation/,
each with a note saying how it was made. Each parser is tested on a pass, a failure and malformed input."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.ailab.cluster.plugins.filter import validation as v
from ansible_collections.ailab.cluster.plugins.filter.lab_gpu import lab_gpu_resources
from ansible_collections.ailab.cluster.plugins.filter.lab_tenants import lab_tenants
from export_check import validate_object
from unit.roles.playbook_runner import reference

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "validation"
CLUSTER = yaml.safe_load((FIXTURES / "cluster.yml").read_text())

H200 = {"group": "gpu_h200", "gpu_model": "NVIDIA H200",
        "sharing": {"mode": "mig", "mig_strategy": "mixed",
                    "mig_layout": [{"profile": "2g.35gb", "count": 2}, {"profile": "1g.18gb", "count": 3}]},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
RTX = {"group": "gpu_rtx", "gpu_model": "NVIDIA GeForce RTX 3090", "sharing": {"mode": "time-slicing", "replicas": 4}}
GROUPS = {"gpu_h200": ["h200-a", "h200-b"], "gpu_rtx": ["rtx-1"]}
TENANTS = [
    {"name": "cs101", "kind": "course", "users": {"group": "cs101-students"},
     "quota": {"cpu": 8, "memory": "32Gi", "gpu": {"mig-1g.18gb": 3}}, "profiles": ["cpu-small", "mig-1g.18gb"]},
    {"name": "vision", "namespace": "vision-lab", "kind": "research", "users": {"group": "vision"},
     "quota": {"cpu": 8, "memory": "32Gi", "gpu": {"mig-2g.35gb": 1}}},
]


def recorded_smi():
    gpu = reference("gpu/nvidia-h200/nvidia-smi-L.txt").read_text()
    table = reference("gpu/nvidia-h200/nvidia-smi.txt").read_text()
    return gpu, table


def mig_smi():
    """A MIG pod's output, built from the recording: the MIG device line after the recorded GPU line."""
    gpu, table = recorded_smi()
    return gpu + (FIXTURES / "mig-device-line.txt").read_text() + table


def settings(**changes):
    base = {"namespace": "ailab-validation", "checks": list(v.CHECKS),
            "images": {"cuda": "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0", "mysql": "docker.io/library/mysql:8.4.6",
                       "wordpress": "docker.io/library/wordpress:6.8.2-apache", "busybox": "docker.io/library/busybox:1.37.0"},
            "mysql_password": "pw-0123456789", "storage_class": "", "storage_size": "1Gi", "local_queue": "default",
            "node_names": {"rtx-1": "rtx-node"}, "timeout": 600,
            "jupyterhub": {"enabled": True, "token": True, "idp_groups": False, "user": "ailab-validation"},
            "prometheus": {"enabled": True, "metric": "DCGM_FI_DEV_GPU_TEMP"}}
    base.update(changes)
    return base


def plan(node_groups=(H200, RTX), tenants=None, **changes):
    tenants = TENANTS if tenants is None else tenants
    resources = lab_gpu_resources(list(node_groups), GROUPS)
    return v.validation_plan(resources, lab_tenants(list(tenants), resources), settings(**changes))


def checks_by_name(found):
    return {c["name"]: c for c in found["checks"]}


# ------------------------------------------------------------------------------------------ plan
def test_plan_objects_are_valid_kubernetes_objects():
    found = plan()
    assert [p for obj in found["objects"] for p in validate_object(obj)] == []
    assert found["objects"][0]["kind"] == "Namespace"


def test_plan_has_a_cuda_job_per_resource_and_node():
    found = checks_by_name(plan())
    cuda = sorted(n for n in found if n.startswith("cuda "))
    assert cuda == ["cuda gpu_h200 mig-1g.18gb on h200-a", "cuda gpu_h200 mig-1g.18gb on h200-b",
                    "cuda gpu_h200 mig-2g.35gb on h200-a", "cuda gpu_h200 mig-2g.35gb on h200-b",
                    "cuda gpu_rtx rtx-3090-shared on rtx-node"]
    assert found["cuda gpu_h200 mig-2g.35gb on h200-b"]["mig_profile"] == "2g.35gb"
    assert found["cuda gpu_rtx rtx-3090-shared on rtx-node"]["mig_profile"] is None


def test_plan_queue_jobs_wait_for_kueue_in_the_tenant_namespace():
    found = plan()
    jobs = [o for o in found["objects"] if o["kind"] == "Job" and o["metadata"]["namespace"] != "ailab-validation"]
    assert sorted(j["metadata"]["namespace"] for j in jobs) == ["cs101", "vision-lab"]
    for job in jobs:
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "default"
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}


def test_plan_jupyterhub_starts_the_smallest_gpu_profile_of_a_tenant():
    server = checks_by_name(plan())["jupyterhub user server"]
    # 1g.18gb (16 GiB) is smaller than 2g.35gb and the RTX's 24 GB; cs101 lists it.
    assert (server["status"], server["profile"], server["group"], server["namespace"]) == (
        None, "cs101-mig-1g.18gb", "cs101", "cs101")


def test_plan_jupyterhub_without_tenants_uses_the_bare_profile():
    server = checks_by_name(plan(tenants=[]))["jupyterhub user server"]
    assert (server["profile"], server["group"]) == ("mig-1g.18gb", "")


@pytest.mark.parametrize("changes, tenants, reason", [
    ({"jupyterhub": {"enabled": True, "token": False, "idp_groups": False, "user": "u"}}, TENANTS,
     "no JupyterHub API token"),
    ({"jupyterhub": {"enabled": True, "token": True, "idp_groups": True, "user": "u"}}, TENANTS,
     "jupyterhub_auth_type oidc"),
    ({}, [dict(TENANTS[1], profiles=["cpu-small"])], "no tenant lists a GPU profile"),
    ({"jupyterhub": {"enabled": False}}, TENANTS, "jupyterhub is not part of this lab"),
])
def test_plan_says_why_the_user_server_check_cannot_run(changes, tenants, reason):
    server = checks_by_name(plan(tenants=tenants, **changes))["jupyterhub user server"]
    assert server["status"] == v.NOT_RUN and reason in server["detail"]


def test_plan_without_gpus_or_tenants():
    found = checks_by_name(plan(node_groups=(), tenants=[]))
    assert found["cuda"]["detail"] == "the lab has no GPU node groups (ailab_gpu_node_groups is empty)"
    assert found["queues"]["detail"] == "the lab has no tenants (ailab_tenants is empty)"
    assert found["prometheus dcgm"]["detail"] == "the lab has no GPU nodes for DCGM to report"


def test_plan_unselected_checks_create_nothing():
    found = plan(checks=["queues"])
    assert {o["kind"] for o in found["objects"]} == {"Job"}
    assert checks_by_name(found)["wordpress"]["detail"] == "not selected (validation_checks: queues)"


def test_plan_long_job_names_stay_dns_labels():
    name = v._name("cuda", "mig-1g.18gb", "a-very-long-node-name-in-the-datacenter-rack-42.lab.example.org")
    assert len(name) <= 63 and v.DNS_LABEL.match(name)
    assert name != v._name("cuda", "mig-1g.18gb", "a-very-long-node-name-in-the-datacenter-rack-43.lab.example.org")


@pytest.mark.parametrize("changes, message", [
    ({"namespace": "Validation"}, "validation_namespace must be a namespace name"),
    ({"checks": ["gpu"]}, "validation_checks must be a list of"),
    ({"timeout": 5}, "validation_timeout must be at least 30 seconds"),
    ({"images": {"cuda": ""}}, "the images must name"),
])
def test_plan_refuses_bad_settings(changes, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plan(**changes)


# ------------------------------------------------------------------------------------ nvidia-smi
def test_nvidia_smi_recorded_h200_passes():
    gpu, table = recorded_smi()
    status, detail = v.nvidia_smi(gpu + table)
    assert status == v.PASSED
    assert detail == "NVIDIA H200 (GPU-5b450c73), driver 580.159.04, CUDA 13.0"


def test_nvidia_smi_mig_slice_passes_for_its_profile_only():
    assert v.nvidia_smi(mig_smi(), "1g.18gb") == (v.PASSED, "NVIDIA H200 (GPU-5b450c73), MIG 1g.18gb, driver 580.159.04, "
                                                            "CUDA 13.0")
    status, detail = v.nvidia_smi(mig_smi(), "2g.35gb")
    assert status == v.FAILED and detail == "expected a MIG 2g.35gb device, nvidia-smi -L shows MIG 1g.18gb"


def test_nvidia_smi_whole_gpu_where_a_mig_slice_was_expected_fails():
    gpu, table = recorded_smi()
    status, detail = v.nvidia_smi(gpu + table, "1g.18gb")
    assert status == v.FAILED and "no MIG device on NVIDIA H200" in detail


@pytest.mark.parametrize("text, detail", [
    ((FIXTURES / "nvidia-smi-no-device.txt").read_text(), "nvidia-smi: No devices were found"),
    ("", "nvidia-smi printed nothing"),
    (None, "nvidia-smi printed nothing"),
    ("GPU zero: something\n", "nvidia-smi -L listed no GPU"),
])
def test_nvidia_smi_failures(text, detail):
    assert v.nvidia_smi(text) == (v.FAILED, detail)


def test_nvidia_smi_list_without_the_table_fails():
    gpu, _table = recorded_smi()
    status, detail = v.nvidia_smi(gpu)
    assert status == v.FAILED and "printed no driver table" in detail


# ------------------------------------------------------------------------------------- vectorAdd
def test_vectoradd_passed():
    assert v.vectoradd_log((FIXTURES / "vectoradd-passed.txt").read_text()) == (
        v.PASSED, "vectorAdd Vector addition of 50000 elements: Test PASSED")


def test_vectoradd_driver_too_old():
    status, detail = v.vectoradd_log((FIXTURES / "vectoradd-driver-too-old.txt").read_text())
    assert status == v.FAILED and "CUDA driver version is insufficient" in detail


@pytest.mark.parametrize("text", ["", None, "[Vector addition of 50000 elements]\nCopy input data\n",
                                  "Result verification failed at element 17!\n", "Test PASSED later\n"])
def test_vectoradd_without_test_passed_fails(text):
    assert v.vectoradd_log(text)[0] == v.FAILED


# ------------------------------------------------------------------------------- Jobs and Kueue
@pytest.mark.parametrize("job, state", [
    ("job_complete", "complete"), ("job_failed", "failed"), ("job_deadline", "failed"),
    ("job_suspended", "suspended"), ("job_queue_complete", "complete"),
])
def test_job_state(job, state):
    assert v.job_state(CLUSTER[job])[0] == state


def test_job_state_malformed():
    assert v.job_state(None) == ("failed", "no Job object")
    assert v.job_state({"kind": "Pod", "metadata": {}}) == ("failed", "no Job object")


def test_workload_state():
    assert v.workload_state(CLUSTER["workload_finished"])[0] == "finished"
    state, detail = v.workload_state(CLUSTER["workload_pending"])
    assert state == "pending" and "insufficient unused quota for cpu in flavor lab-cpu" in detail
    assert v.workload_state(None)[0] == "pending"
    assert v.workload_state({"metadata": {"name": "w"}, "status": {"conditions": "garbage"}})[0] == "pending"


def test_pending_reason_names_the_scheduler_message():
    reason = v.pending_reason([CLUSTER["pod_pending"]], [CLUSTER["event_failed_scheduling"]])
    assert reason.startswith("FailedScheduling: 0/5 nodes are available: 1 Insufficient nvidia.com/mig-1g.18gb")


def test_pending_reason_prefers_a_container_error():
    reason = v.pending_reason([CLUSTER["pod_image_pull"]], [CLUSTER["event_failed_scheduling"]])
    assert reason.startswith("container cuda ImagePullBackOff: Back-off pulling image")


def test_pending_reason_nothing_to_say():
    assert v.pending_reason([], []) == ""
    assert v.pending_reason(None, None) == ""


def cuda_check(mig_profile="1g.18gb"):
    return dict(checks_by_name(plan())["cuda gpu_h200 mig-1g.18gb on h200-a"], mig_profile=mig_profile,
                job="cuda-mig-1g-18gb-k8s-gpu-h200")


def test_cuda_check_passes_on_a_complete_job_with_both_outputs():
    log = mig_smi() + (FIXTURES / "vectoradd-passed.txt").read_text()
    result = v.validation_result(cuda_check(), {"job": CLUSTER["job_complete"], "log": log})
    assert result["status"] == v.PASSED
    assert result["detail"] == ("NVIDIA H200 (GPU-5b450c73), MIG 1g.18gb, driver 580.159.04, CUDA 13.0; "
                                "vectorAdd Vector addition of 50000 elements: Test PASSED")


def test_cuda_check_complete_job_without_vectoradd_output_fails():
    result = v.validation_result(cuda_check(), {"job": CLUSTER["job_complete"], "log": mig_smi()})
    assert result["status"] == v.FAILED and "did not print Test PASSED" in result["detail"]


def test_cuda_check_pending_pod_names_the_scheduler_reason():
    seen = {"job": CLUSTER["job_deadline"], "pods": [], "events": [CLUSTER["event_failed_scheduling"],
                                                                   CLUSTER["event_other_pod"]]}
    result = v.validation_result(cuda_check(), seen)
    assert result["status"] == v.FAILED
    assert result["detail"].startswith("Job failed: DeadlineExceeded")
    assert "1 Insufficient nvidia.com/mig-1g.18gb" in result["detail"] and "Insufficient memory" not in result["detail"]


def test_cuda_check_without_a_job_fails():
    assert v.validation_result(cuda_check(), {"job": None})["status"] == v.FAILED


def queue_check():
    return checks_by_name(plan())["queue cs101"]


def test_queue_check_passes_when_admitted_and_finished():
    seen = {"job": CLUSTER["job_queue_complete"], "workloads": [CLUSTER["workload_other_job"], CLUSTER["workload_finished"]]}
    result = v.validation_result(queue_check(), seen)
    assert result == {"name": "queue cs101", "status": v.PASSED,
                      "detail": "Workload job-ailab-validation-queue-3c1f2 admitted and finished; Job completed in "
                                "LocalQueue default"}


def test_queue_check_not_admitted_fails_with_kueue_message():
    seen = {"job": CLUSTER["job_suspended"], "workloads": [CLUSTER["workload_pending"]]}
    result = v.validation_result(queue_check(), seen)
    assert result["status"] == v.FAILED and "couldn't assign flavors to pod set main" in result["detail"]


def test_queue_check_ignores_other_jobs_workloads():
    # Another Job's admitted Workload must not count for the smoke Job.
    seen = {"job": CLUSTER["job_suspended"], "workloads": [CLUSTER["workload_other_job"]]}
    result = v.validation_result(queue_check(), seen)
    assert result["status"] == v.FAILED and "Kueue created no Workload" in result["detail"]


def test_queue_check_completed_without_kueue_fails():
    # A Job that ran without any Workload bypassed the queue: not a pass.
    result = v.validation_result(queue_check(), {"job": CLUSTER["job_queue_complete"], "workloads": []})
    assert result["status"] == v.FAILED


# ------------------------------------------------------------------------------- HTTP answers
def test_wordpress_http():
    url = "http://192.168.10.200/"
    assert v.wordpress_http(200, '<html><link rel="stylesheet" href="/wp-admin/css/install.css">WordPress</html>', url)[0] \
        == v.PASSED
    assert v.wordpress_http(500, "<h1>Error establishing a database connection</h1>", url) == (
        v.FAILED, "http://192.168.10.200/ answered 500: Error establishing a database connection (MySQL)")
    assert v.wordpress_http(200, "<html>nginx default page</html>", url)[0] == v.FAILED
    assert v.wordpress_http(-1, "Request failed: <urlopen error [Errno 113] No route to host>", url) == (
        v.FAILED, "http://192.168.10.200/ did not answer (Request failed: <urlopen error [Errno 113] No route to host>)")
    assert v.wordpress_http(None, None, url)[0] == v.FAILED


def test_wordpress_error_names_the_volume_claim():
    check = checks_by_name(plan())["wordpress"]
    result = v.validation_result(check, {"error": "MySQL and WordPress did not become available in 600s",
                                         "claim": "Pending", "pods": [], "events": []})
    assert result["status"] == v.FAILED
    assert result["detail"] == ("MySQL and WordPress did not become available in 600s; MySQL's volume claim mysql-data: "
                                "Pending (the cluster's default StorageClass)")


def test_jupyterhub_api():
    url = "http://10.96.12.7:80/hub/api"
    assert v.jupyterhub_api(200, CLUSTER["hub_api"], url) == (v.PASSED, url + " answered: JupyterHub 5.5.0")
    assert v.jupyterhub_api(200, '{"version": "5.5.0"}', url)[0] == v.PASSED
    assert v.jupyterhub_api(503, "", url) == (v.FAILED, url + " answered 503")
    assert v.jupyterhub_api(200, "<html>", url)[0] == v.FAILED
    assert v.jupyterhub_api(200, {"name": "x"}, url)[0] == v.FAILED
    assert v.jupyterhub_api(None, None, url) == (v.FAILED, url + " answered nothing")


def test_jupyterhub_server():
    assert v.jupyterhub_server(CLUSTER["hub_user_ready"], "cs101-mig-1g.18gb")[0] == v.PASSED
    assert v.jupyterhub_server(CLUSTER["hub_user_pending"], "p") == (
        v.FAILED, "user ailab-validation's server with profile p is not ready (pending: spawn)")
    assert "no running server" in v.jupyterhub_server(CLUSTER["hub_user_no_server"], "p")[1]
    assert v.jupyterhub_server(None, "p") == (v.FAILED, "the hub returned no user model")


def test_jupyterhub_server_check_adds_the_pod_reason():
    check = checks_by_name(plan())["jupyterhub user server"]
    result = v.validation_result(check, {"user": CLUSTER["hub_user_pending"], "pods": [],
                                         "events": [CLUSTER["event_failed_scheduling"]]})
    assert result["status"] == v.FAILED and "not ready (pending: spawn): FailedScheduling" in result["detail"]


def test_prometheus_series():
    nodes = ["k8s-gpu-h200", "rtx-node"]
    assert v.prometheus_series(CLUSTER["prometheus_two_nodes"], nodes) == (
        v.PASSED, "DCGM series from every GPU node: k8s-gpu-h200, rtx-node")
    assert v.prometheus_series(CLUSTER["prometheus_one_node"], nodes) == (
        v.FAILED, "no DCGM series from k8s-gpu-h200 (series from: rtx-node)")
    status, detail = v.prometheus_series(CLUSTER["prometheus_error"], nodes)
    assert status == v.FAILED and "parse error" in detail
    assert v.prometheus_series("<html>502 Bad Gateway</html>", nodes)[0] == v.FAILED
    assert v.prometheus_series({"status": "success", "data": {}}, nodes)[0] == v.FAILED


# ------------------------------------------------------------------------------------- results
def test_not_run_stays_not_run():
    check = checks_by_name(plan(node_groups=(), tenants=[]))["cuda"]
    assert v.validation_result(check, {"job": CLUSTER["job_complete"]})["status"] == v.NOT_RUN
    api = checks_by_name(plan())["jupyterhub api"]
    assert v.validation_result(api, {"not_run": "JupyterHub is not installed"}) == {
        "name": "jupyterhub api", "status": v.NOT_RUN, "detail": "JupyterHub is not installed"}


def test_result_refuses_what_is_not_a_check():
    with pytest.raises(AnsibleFilterError):
        v.validation_result({"name": "x"})


# -------------------------------------------------------------------------------------- report
def test_report_lines_and_verdict():
    results = [{"name": "wordpress", "status": v.PASSED, "detail": "ok"},
               {"name": "queue cs101", "status": v.FAILED, "detail": "not admitted"},
               {"name": "cuda", "status": v.NOT_RUN, "detail": "no GPUs"}]
    report = v.validation_report(results)
    assert report["lines"] == ["PASS     wordpress: ok", "FAIL     queue cs101: not admitted", "NOT RUN  cuda: no GPUs"]
    assert report["failed"] and report["summary"] == "1 passed, 1 failed, 1 not run"


def test_report_not_run_fails_only_when_all_are_required():
    results = [{"name": "wordpress", "status": v.PASSED, "detail": "ok"}, {"name": "cuda", "status": v.NOT_RUN, "detail": "x"}]
    assert not v.validation_report(results)["failed"]
    assert v.validation_report(results, "", True)["failed"]


def test_report_of_a_plan_in_export_mode_has_no_pass():
    report = v.validation_report(plan()["checks"], "export mode, no cluster")
    assert report["counts"][v.PASSED] == 0 and report["counts"][v.FAILED] == 0
    assert all(line.startswith("NOT RUN ") for line in report["lines"])


def test_report_never_passes_a_check_without_verdict():
    with pytest.raises(AnsibleFilterError, match="has no verdict"):
        v.validation_report([{"name": "wordpress", "status": None, "detail": ""}])
