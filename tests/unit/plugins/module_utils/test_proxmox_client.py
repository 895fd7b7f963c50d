"""The Proxmox VE client's error handling (module_utils/_proxmox.py), checked exactly.

A scripted stand-in for ``proxmoxer.ProxmoxAPI`` answers each call in turn (a value, or an exception
to raise) and records what was asked, a list records the sleeps, and a fake clock drives
``wait_task``: the tests assert call counts, backoff durations, the exact messages a lab admin
reads, and the keyword arguments the client gives proxmoxer. The simulator tests in
test_proxmox.py show the same client against the real proxmoxer over HTTP.
"""

import pytest
import requests
from proxmoxer.core import ResourceException

from ansible_collections.ailab.cluster.plugins.module_utils import _proxmox
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxClient, ProxmoxError

ENDPOINT = "pve.lab.example:8006"
UPID = "UPID:pve-1:0000A1B2:00C3D4E5:6750A1B2:qmstart:100:root@pam:"


class ScriptedApi:
    """``api(path).<method>(**params)`` like proxmoxer; answers are given in call order."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, path):
        return _Resource(self, path)

    def answer(self, method, path, params):
        self.calls.append((method, path, params))
        assert self.answers, f"unexpected call {method} {path}"
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


class _Resource:
    def __init__(self, api, path):
        self.api, self.path = api, path

    def __getattr__(self, method):
        return lambda **params: self.api.answer(method, self.path, params)


def http(status, message="", content=""):
    return ResourceException(status, message, content)


def client_with(*answers, **kwargs):
    sleeps = []
    api = ScriptedApi(*answers)
    return ProxmoxClient(api, endpoint=ENDPOINT, sleep=sleeps.append, **kwargs), api, sleeps


def error_of(call, *args, **kwargs):
    with pytest.raises(ProxmoxError) as exc:
        call(*args, **kwargs)
    return exc.value


# ------------------------------------------------------------------------------ reads: retries and backoff
def test_a_read_is_retried_three_times_by_default_with_doubling_backoff():
    client, api, sleeps = client_with(http(503, "Service Unavailable"), http(502), http(500), {"ok": 1})
    assert client.get("nodes", what="the node list") == {"ok": 1}
    assert sleeps == [0.5, 1.0, 2.0]
    assert api.calls == [("get", "nodes", {})] * 4
    assert client.reads == 4 and client.writes == 0


def test_a_read_gives_up_after_the_retries_with_the_last_error():
    client, api, sleeps = client_with(*[http(503, "Service Unavailable", "pveproxy is busy")] * 4)
    err = error_of(client.get, "nodes", what="the node list")
    assert err.msg == "Proxmox VE API error on the node list (HTTP 503): pveproxy is busy"
    assert err.status == 503 and err.errors == {}
    assert len(api.calls) == 4 and sleeps == [0.5, 1.0, 2.0]
    assert isinstance(err.__cause__, ResourceException)


def test_retries_and_backoff_are_the_clients_settings():
    client, api, sleeps = client_with(*[http(500, "Internal Server Error")] * 3, retries=2, backoff=3)
    err = error_of(client.get, "cluster/resources")
    assert err.msg == "Proxmox VE API error on cluster/resources (HTTP 500): Internal Server Error"
    assert sleeps == [3, 6] and len(api.calls) == 3 and client.reads == 3


def test_api_retries_0_reads_once_and_never_sleeps():
    client, api, sleeps = client_with(http(503, "Service Unavailable"), retries=0)
    err = error_of(client.get, "nodes")
    assert err.status == 503
    assert len(api.calls) == 1 and sleeps == [] and client.reads == 1


def test_a_5xx_the_caller_names_as_an_answer_is_not_retried():
    migrated = "ha groups have been migrated to rules"
    client, api, sleeps = client_with(http(500, "Internal Server Error", migrated), {"unused": 1})
    err = error_of(client.get, "cluster/ha/groups", what="the HA groups", answer_if="migrated")
    assert err.msg == "Proxmox VE API error on the HA groups (HTTP 500): " + migrated
    assert len(api.calls) == 1 and sleeps == [] and client.reads == 1
    assert api.calls == [("get", "cluster/ha/groups", {})]  # answer_if is not sent to the API


def test_a_5xx_with_another_message_is_still_retried_when_the_caller_names_an_answer():
    client, api, sleeps = client_with(http(500, "Internal Server Error", "cfs lock timeout"), [])
    assert client.get("cluster/ha/groups", answer_if="migrated") == []
    assert sleeps == [0.5] and len(api.calls) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 499, 501])
def test_client_errors_and_501_are_not_retried(status):
    client, api, sleeps = client_with(http(status, "Error"), {"unused": 1})
    err = error_of(client.get, "cluster/ha/rules", what="the HA rules")
    assert err.status == status
    assert len(api.calls) == 1 and sleeps == []


def test_500_is_a_server_error_and_retried():
    client, api, sleeps = client_with(http(500, "Internal Server Error"), [])
    assert client.get("cluster/ha/groups") == []
    assert len(api.calls) == 2 and sleeps == [0.5]


def test_a_501_says_the_pve_version_lacks_the_call():
    client, api, sleeps = client_with(http(501, "Not Implemented", " Method 'GET /cluster/ha/rules' not implemented "))
    err = error_of(client.get, "cluster/ha/rules", what="the HA rules")
    assert err.msg == ("Proxmox VE API error on the HA rules (HTTP 501): this Proxmox VE version does not have that "
                       "API call (Method 'GET /cluster/ha/rules' not implemented)")
    client, api, sleeps = client_with(http(501, "Not Implemented"))
    assert error_of(client.get, "cluster/ha/rules").msg.endswith("does not have that API call (Not Implemented)")


@pytest.mark.parametrize("exc", [requests.exceptions.ConnectionError("refused"),
                                 requests.exceptions.ReadTimeout("read timed out")])
def test_connection_errors_and_timeouts_on_reads_are_retried(exc):
    client, api, sleeps = client_with(exc, exc, {"version": "9.0.3"}, retries=2, backoff=1)
    assert client.get("version") == {"version": "9.0.3"}
    assert len(api.calls) == 3 and sleeps == [1, 2] and client.reads == 3


def test_connection_errors_give_up_after_the_retries():
    exc = requests.exceptions.ConnectionError("Max retries exceeded")
    client, api, sleeps = client_with(exc, exc, retries=1)
    err = error_of(client.get, "nodes", what="the node list")
    assert err.msg == ("Cannot connect to the Proxmox VE API at pve.lab.example:8006 for the node list: connection "
                       "failed: check api_host, api_port and that pveproxy runs and is reachable (Max retries exceeded)")
    assert err.status is None
    assert len(api.calls) == 2 and sleeps == [0.5]
    assert err.__cause__ is exc


def test_an_untrusted_certificate_is_not_retried():
    exc = requests.exceptions.SSLError("certificate verify failed")
    client, api, sleeps = client_with(exc, {"unused": 1})
    err = error_of(client.get, "version", what="the API version")
    assert err.msg == ("Cannot connect to the Proxmox VE API at pve.lab.example:8006 for the API version: the API "
                       "certificate is not trusted: set ca_path to the CA that signed it (a copy of "
                       "/etc/pve/pve-root-ca.pem from a node) (certificate verify failed)")
    assert len(api.calls) == 1 and sleeps == []


def test_read_parameters_are_sent_as_pve_takes_them_and_the_path_is_trimmed():
    client, api, sleeps = client_with([{"t": "line"}])
    client.get("/nodes/pve-1/tasks/x/log/", limit=500, start=None, download=False)
    assert api.calls == [("get", "nodes/pve-1/tasks/x/log", {"limit": 500, "download": 0})]


def test_only_slashes_are_trimmed_from_a_path():
    client, api, sleeps = client_with({})
    client.get("/storage/BACKUPX/")  # storage ids may be upper case (pve-storage-id matches case-insensitively)
    assert api.calls == [("get", "storage/BACKUPX", {})]


def test_a_client_built_without_an_endpoint_names_none():
    client = ProxmoxClient(ScriptedApi(requests.exceptions.ConnectionError("refused")), retries=0)
    assert client.endpoint == ""
    assert error_of(client.get, "nodes").msg.startswith("Cannot connect to the Proxmox VE API at  for nodes: ")


# ------------------------------------------------------------------------------ writes: never twice
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_write_is_sent_once_even_when_the_server_is_busy(method):
    client, api, sleeps = client_with(http(503, "Service Unavailable", "busy"), "UPID:never")
    err = error_of(getattr(client, method), "/cluster/ha/groups/gpu/", what="HA group gpu", nodes="pve-1", restricted=True)
    assert err.msg == "Proxmox VE API error on HA group gpu (HTTP 503): busy"
    assert api.calls == [(method, "cluster/ha/groups/gpu", {"nodes": "pve-1", "restricted": 1})]
    assert sleeps == [] and client.writes == 1 and client.reads == 0


def test_a_write_that_cannot_connect_is_not_retried():
    exc = requests.exceptions.ConnectTimeout("connect timeout=30")
    client, api, sleeps = client_with(exc, "UPID:never")
    err = error_of(client.post, "nodes/pve-1/qemu", vmid=100, description=None)
    assert err.msg == ("Cannot connect to the Proxmox VE API at pve.lab.example:8006 for nodes/pve-1/qemu: no answer "
                       "in time: check the address or raise api_timeout (connect timeout=30)")
    assert api.calls == [("post", "nodes/pve-1/qemu", {"vmid": 100})]
    assert sleeps == [] and client.writes == 1
    assert err.__cause__ is exc


def test_a_write_returns_what_pve_answers():
    client, api, sleeps = client_with("UPID:pve-1:1", None)
    assert client.post("nodes/pve-1/qemu/100/status/start") == "UPID:pve-1:1"
    assert client.put("nodes/pve-1/qemu/100/config", memory=4096) is None
    assert client.writes == 2


# ------------------------------------------------------------------------------ messages
@pytest.mark.parametrize("status, hint", [
    (401, "authentication failed: check api_user and api_password or api_token_id/api_token_secret"),
    (403, "permission denied: give the API user or token the privileges this action needs"),
    (400, "parameter verification failed."),
    (404, "no such resource"),
])
def test_api_errors_say_what_to_do(status, hint):
    err = _proxmox.describe_api_error(http(status, "Reason", " %s\n" % hint if status in (400, 404) else "x"),
                                      "VM 100 on pve-1")
    assert err.msg == "Proxmox VE API error on VM 100 on pve-1 (HTTP %s): %s" % (status, hint)
    assert err.status == status


def test_invalid_parameters_are_listed_by_name():
    exc = ResourceException(400, "Parameter verification failed.", "",
                            errors={"memory": "type check ('integer') failed - got 'lots'\n", "cores": " too big "})
    err = _proxmox.describe_api_error(exc, "VM 152")
    assert err.msg == ("Proxmox VE API error on VM 152 (HTTP 400): invalid parameters: cores: too big; memory: type "
                       "check ('integer') failed - got 'lots'")
    assert err.errors == exc.errors


def test_an_error_without_http_details_is_told_as_it_is():
    err = _proxmox.describe_api_error(ValueError(" odd answer "), "storage local")
    assert err.msg == "Proxmox VE API error on storage local (HTTP None): odd answer"
    assert err.status is None and err.errors == {}
    assert _proxmox.describe_api_error(http(502, "Bad Gateway"), "x").msg.endswith("(HTTP 502): Bad Gateway")


def test_connection_messages_cut_long_reasons_at_300_characters():
    exc = requests.exceptions.RequestException("r" * 301)
    err = _proxmox.describe_connection_error(exc, ENDPOINT, "login")
    assert err.msg == "Cannot connect to the Proxmox VE API at %s for login: request failed (%s...)" % (ENDPOINT, "r" * 300)
    exact = _proxmox.describe_connection_error(requests.exceptions.RequestException("r" * 300), ENDPOINT, "login")
    assert exact.msg.endswith("(%s)" % ("r" * 300))


def test_proxmox_error_keeps_status_and_errors():
    err = ProxmoxError("m", status=400, errors={"a": "b"})
    assert (str(err), err.msg, err.status, err.errors) == ("m", "m", 400, {"a": "b"})
    assert ProxmoxError("m").errors == {} and ProxmoxError("m").status is None


# ------------------------------------------------------------------------------ version
@pytest.mark.parametrize("answer, major", [
    ({"version": "8.4.1", "release": "8.4", "repoid": "x"}, 8),
    ({"version": "9.0.3", "release": ""}, 9),
    ({"version": "10.1"}, 10),
    ({"version": "9", "release": "9"}, 9),
])
def test_major_release_comes_from_release_or_version(answer, major):
    client, api, sleeps = client_with(answer)
    assert client.major == major
    assert client.major == major and client.version is answer
    assert api.calls == [("get", "version", {})]


def test_version_errors_name_the_api_version():
    client, api, sleeps = client_with(http(401, "Unauthorized"), retries=0)
    assert error_of(lambda: client.version).msg.startswith("Proxmox VE API error on the API version (HTTP 401)")


# ------------------------------------------------------------------------------ tasks
class Clock:
    """``time.time`` for wait_task: advances only when the client sleeps (and ``tick`` per status read)."""

    def __init__(self, tick=0.0):
        self.now = 1000.0
        self.tick = tick
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(_proxmox, "time", clock)
    return clock


def task_client(clock, *answers):
    api = ScriptedApi(*answers)
    return ProxmoxClient(api, endpoint=ENDPOINT, sleep=clock.sleep), api


RUNNING = {"status": "running", "upid": UPID}


def stopped(exitstatus):
    return {"status": "stopped", "exitstatus": exitstatus, "upid": UPID}


def test_wait_task_polls_with_growing_delays_until_the_task_stops(clock):
    client, api = task_client(clock, *[RUNNING] * 7, stopped("OK"))
    assert client.wait_task("pve-1", UPID, "starting VM 100") == stopped("OK")
    assert clock.sleeps == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]  # poll 0.2: from 0.05 up to 5 x poll
    assert api.calls == [("get", "nodes/pve-1/tasks/%s/status" % UPID, {})] * 8
    assert client.reads == 8


def test_wait_task_poll_sets_the_first_delay_and_the_cap(clock):
    client, api = task_client(clock, *[RUNNING] * 4, stopped("OK"))
    client.wait_task("pve-1", UPID, "starting VM 100", poll=0.01)
    assert clock.sleeps == [0.01, 0.02, 0.04, 0.05]
    client, api = task_client(clock, *[RUNNING] * 5, stopped("OK"))
    clock.sleeps.clear()
    client.wait_task("pve-1", UPID, "starting VM 100", poll=1)
    assert clock.sleeps == [0.05, 0.1, 0.2, 0.4, 0.8]


def test_a_task_ending_with_warnings_counts_as_done(clock):
    client, api = task_client(clock, stopped("WARNINGS: 2"))
    assert client.wait_task("pve-1", UPID, "migrating VM 100") == stopped("WARNINGS: 2")
    assert len(api.calls) == 1  # the log is not read


def test_a_failed_task_reports_the_last_ten_log_lines(clock):
    log = [{"n": i, "t": "line %d" % i} for i in range(1, 13)] + [{"n": 13}]
    client, api = task_client(clock, RUNNING, stopped("command 'qm start 100' failed: exit code 1"), log)
    err = error_of(client.wait_task, "pve-1", UPID, "starting VM 100")
    assert err.msg == ("starting VM 100 failed: command 'qm start 100' failed: exit code 1. Task log tail: "
                       "line 4 | line 5 | line 6 | line 7 | line 8 | line 9 | line 10 | line 11 | line 12 | ")
    assert api.calls[-1] == ("get", "nodes/pve-1/tasks/%s/log" % UPID, {"limit": 0})
    assert client.reads == 3


def test_a_failed_task_without_exit_status_or_log_still_says_so(clock):
    client, api = task_client(clock, {"status": "stopped"}, {"unexpected": "answer"})
    err = error_of(client.wait_task, "pve-1", UPID, "creating VM 151")
    assert err.msg == "creating VM 151 failed: unknown error. Task log tail: "
    client, api = task_client(clock, stopped("unable to create VM 151 - storage full"), [])
    err = error_of(client.wait_task, "pve-1", UPID, "creating VM 151")
    assert err.msg == "creating VM 151 failed: unable to create VM 151 - storage full. Task log tail: "


def test_a_log_that_cannot_be_read_is_an_error_on_the_task_log(clock):
    client, api = task_client(clock, stopped("interrupted by signal"), http(403, "Forbidden"))
    err = error_of(client.wait_task, "pve-1", UPID, "creating VM 151")
    assert err.msg.startswith("Proxmox VE API error on task %s log (HTTP 403): permission denied" % UPID)


def test_a_status_read_error_names_the_task(clock):
    client, api = task_client(clock, http(500, "Internal Server Error"), http(400, "Bad Request", "bad upid"))
    err = error_of(client.wait_task, "pve-1", UPID, "creating VM 151")
    assert err.msg == "Proxmox VE API error on task %s (HTTP 400): bad upid" % UPID
    assert clock.sleeps == [0.5]  # the status read's own retry


def test_wait_task_times_out_with_the_task_named(clock):
    client, api = task_client(clock, *[RUNNING] * 100)
    err = error_of(client.wait_task, "pve-1", UPID, "creating VM 150", timeout=3)
    assert err.msg == "Timed out after 3s waiting for creating VM 150 (task %s still running)" % UPID
    # 0.05+0.1+0.2+0.4+0.8 = 1.55 s, then 1.0 s steps: 2.55, 3.55 > 3 at the 8th read
    assert clock.sleeps == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert len(api.calls) == 8


def test_wait_task_waits_600_seconds_by_default(clock):
    client, api = task_client(clock, *[RUNNING] * 700)
    err = error_of(client.wait_task, "pve-1", UPID, "cloning VM 9000")
    assert err.msg == "Timed out after 600s waiting for cloning VM 9000 (task %s still running)" % UPID
    assert 599 < sum(clock.sleeps) < 601


def test_wait_task_polls_again_at_the_deadline_and_a_stop_then_wins(clock):
    # poll 1/32 s: sleeps 1/32, 1/16, 1/8 (exact in binary) reach the deadline exactly, not past it
    client, api = task_client(clock, *[RUNNING] * 4, stopped("OK"))
    assert client.wait_task("pve-1", UPID, "starting VM 100", timeout=0.21875, poll=0.03125)["exitstatus"] == "OK"
    assert clock.sleeps == [0.03125, 0.0625, 0.125, 0.15625]
    client, api = task_client(clock, stopped("OK"))
    assert client.wait_task("pve-1", UPID, "starting VM 100", timeout=0)["exitstatus"] == "OK"
