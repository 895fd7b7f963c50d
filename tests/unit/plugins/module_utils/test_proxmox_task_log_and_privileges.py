# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The task log tail of a failed task (ProxmoxClient.task_log_tail), on a current node and on an old one, and
the privilege check before a create (ProxmoxClient.require_visible).

A current node answers ``limit=0`` with the whole log. A node whose pve-common predates ``read_until_end``
answers exactly 50 lines to ``limit=0``; the client then pages through the rest, 500 lines a page from line
50, until a page comes back short, at most 40 pages in all. A scripted stand-in for ``proxmoxer.ProxmoxAPI``
answers each read in turn and fails on a read nobody scripted, so the tests see every page asked for.

PVE filters its lists by permission: before creating what a list did not show, a client that is not root@pam
reads its own privileges on the object's ACL path (``/access/permissions?path=...``, answered as
``{path: {privilege: 1}}``) and refuses, naming the privilege and the path, when it holds none of those given.
"""

import pytest
from proxmoxer.core import ResourceException

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxError
from unit.plugins.module_utils.test_proxmox_client import client_with  # the scripted proxmoxer stand-in

UPID = "UPID:pve-1:0000A1B2:00C3D4E5:6750A1B2:qmcreate:211:root@pam:"
LOG = "nodes/pve-1/tasks/%s/log" % UPID
STATUS = "nodes/pve-1/tasks/%s/status" % UPID


def lines(first, last):
    """Log lines numbered ``first``..``last`` as PVE returns them ({"n": number, "t": text})."""
    return [{"n": n, "t": "line %d" % n} for n in range(first, last + 1)]


def texts(first, last):
    return ["line %d" % n for n in range(first, last + 1)]


def page(start, size=500):
    return ("get", LOG, {"start": start, "limit": size})


FIRST = ("get", LOG, {"limit": 0})


# ------------------------------------------------------------------------------ a current node
@pytest.mark.parametrize("count", [0, 1, 9, 10, 11, 49, 51, 499, 500, 501, 2000])
def test_a_current_node_answers_the_whole_log_in_one_read(count):
    client, api, _sleeps = client_with(lines(1, count))
    assert client.task_log_tail("pve-1", UPID) == texts(max(1, count - 9), count)
    assert api.calls == [FIRST]
    assert client.reads == 1


def test_lines_sets_how_many_last_lines_are_kept():
    client, api, _sleeps = client_with(lines(1, 30))
    assert client.task_log_tail("pve-1", UPID, lines=3) == texts(28, 30)
    assert api.calls == [FIRST]


def test_lines_without_text_are_empty_and_other_entries_are_left_out():
    client, _api, _sleeps = client_with([{"n": 1, "t": "start"}, {"n": 2}, "not a line", None, {"n": 3, "t": "end"}])
    assert client.task_log_tail("pve-1", UPID) == ["start", "", "end"]


@pytest.mark.parametrize("answer", [None, {}, {"data": []}, "TASK ERROR"])
def test_an_answer_that_is_not_a_list_gives_no_tail(answer):
    client, api, _sleeps = client_with(answer)
    assert client.task_log_tail("pve-1", UPID) == []
    assert api.calls == [FIRST]


# ------------------------------------------------------------------------------ an old node: 0 meant 50
def test_an_old_node_is_read_on_in_pages_of_500_until_a_short_page():
    client, api, _sleeps = client_with(lines(1, 50), lines(51, 550), lines(551, 1050), lines(1051, 1123))
    assert client.task_log_tail("pve-1", UPID) == texts(1114, 1123)
    assert api.calls == [FIRST, page(50), page(550), page(1050)]
    assert client.reads == 4


def test_an_old_node_whose_log_has_exactly_50_lines_is_asked_once_more():
    client, api, _sleeps = client_with(lines(1, 50), [])
    assert client.task_log_tail("pve-1", UPID) == texts(41, 50)
    assert api.calls == [FIRST, page(50)]


def test_the_tail_joins_the_first_answer_and_a_short_page():
    client, api, _sleeps = client_with(lines(1, 50), lines(51, 54))
    assert client.task_log_tail("pve-1", UPID) == texts(45, 54)
    assert api.calls == [FIRST, page(50)]


def test_a_page_of_exactly_500_lines_is_followed_by_another_read():
    client, api, _sleeps = client_with(lines(1, 50), lines(51, 550), [])
    assert client.task_log_tail("pve-1", UPID) == texts(541, 550)
    assert api.calls == [FIRST, page(50), page(550)]


def test_the_tail_keeps_the_last_lines_across_a_short_last_page():
    client, api, _sleeps = client_with(lines(1, 50), lines(51, 550), lines(551, 553))
    assert client.task_log_tail("pve-1", UPID) == texts(544, 553)
    assert api.calls == [FIRST, page(50), page(550)]


def test_paging_stops_after_40_pages_in_all():
    full = [lines(51 + 500 * i, 550 + 500 * i) for i in range(39)]
    client, api, _sleeps = client_with(lines(1, 50), *full)
    assert client.task_log_tail("pve-1", UPID) == texts(19541, 19550)
    assert api.calls == [FIRST] + [page(50 + 500 * i) for i in range(39)]
    assert client.reads == 40


def test_page_and_max_pages_are_the_callers_settings():
    client, api, _sleeps = client_with(lines(1, 50), lines(51, 70), lines(71, 90), lines(91, 110))
    assert client.task_log_tail("pve-1", UPID, lines=4, page=20, max_pages=3) == texts(87, 90)
    assert api.calls == [FIRST, page(50, 20), page(70, 20)]
    assert api.answers == [lines(91, 110)], "a third page was read"


def test_max_pages_1_reads_only_the_first_answer():
    client, api, _sleeps = client_with(lines(1, 50))
    assert client.task_log_tail("pve-1", UPID, max_pages=1) == texts(41, 50)
    assert api.calls == [FIRST]


@pytest.mark.parametrize("answer", [None, {}, "TASK ERROR"])
def test_a_page_that_is_not_a_list_ends_the_paging_with_the_tail_so_far(answer):
    client, api, _sleeps = client_with(lines(1, 50), lines(51, 550), answer)
    assert client.task_log_tail("pve-1", UPID) == texts(541, 550)
    assert api.calls == [FIRST, page(50), page(550)]


def test_a_page_read_is_retried_on_a_5xx_like_any_read():
    client, api, sleeps = client_with(lines(1, 50), ResourceException(503, "Service Unavailable", ""), lines(51, 60))
    assert client.task_log_tail("pve-1", UPID) == texts(51, 60)
    assert api.calls == [FIRST, page(50), page(50)]
    assert sleeps == [0.5]


def test_a_page_that_cannot_be_read_is_an_error_on_the_task_log():
    client, _api, _sleeps = client_with(lines(1, 50), ResourceException(403, "Forbidden", "permission denied"))
    with pytest.raises(ProxmoxError) as exc:
        client.task_log_tail("pve-1", UPID)
    assert exc.value.msg.startswith("Proxmox VE API error on task %s log (HTTP 403): permission denied" % UPID)


def test_a_failed_task_on_an_old_node_reports_the_end_of_its_long_log():
    stopped = {"status": "stopped", "exitstatus": "unable to create VM 211", "upid": UPID}
    client, api, _sleeps = client_with(stopped, lines(1, 50), lines(51, 550), lines(551, 612))
    with pytest.raises(ProxmoxError) as exc:
        client.wait_task("pve-1", UPID, "creating VM 211")
    assert exc.value.msg == "creating VM 211 failed: unable to create VM 211. Task log tail: " + " | ".join(
        texts(603, 612))
    assert api.calls == [("get", STATUS, {}), FIRST, page(50), page(550)]


# ------------------------------------------------------------------------------ require_visible
PERMISSIONS = "access/permissions"
MISSING = ("missing privilege VM.Audit or VM.Allocate on path /vms/211: the API user or token cannot see VM 211, "
           "so it cannot tell whether it already exists; give it VM.Audit on /vms/211 (docs/proxmox_privileges.md "
           "lists what each module needs, the ailab.cluster.proxmox_api_user role grants it)")


def user_client(*answers, userid="ailab@pve"):
    client, api, sleeps = client_with(*answers)
    client.userid = userid
    return client, api, sleeps


def test_root_at_pam_sees_everything_and_reads_no_privileges():
    client, api, _sleeps = user_client(userid="root@pam")
    assert client.require_visible("/vms/211", ["VM.Audit"], "VM 211") is None
    assert api.calls == [] and client.reads == 0


@pytest.mark.parametrize("userid", ["ailab@pve", "root@pve", "root@pam!ansible", None])
def test_any_other_caller_reads_its_privileges_on_the_path_once(userid):
    client, api, _sleeps = user_client({"/vms/211": {"VM.Audit": 1}}, userid=userid)
    assert client.require_visible("/vms/211", ["VM.Audit"], "VM 211") is None
    assert api.calls == [("get", PERMISSIONS, {"path": "/vms/211"})]
    assert client.reads == 1


@pytest.mark.parametrize("held", [{"VM.Audit": 1}, {"VM.Allocate": 1}, {"VM.Audit": 1, "VM.Allocate": 1},
                                  {"Sys.Audit": 1, "VM.Allocate": 0}])
def test_one_of_the_privileges_on_the_path_is_enough(held):
    client, _api, _sleeps = user_client({"/vms/211": held})
    assert client.require_visible("/vms/211", ["VM.Audit", "VM.Allocate"], "VM 211") is None


@pytest.mark.parametrize("answer", [
    {"/vms/211": {"Sys.Audit": 1, "Datastore.Audit": 1}},  # other privileges only
    {"/vms": {"VM.Audit": 1}, "/": {"VM.Allocate": 1}},  # held on other paths: the answer's own path counts
    {"/vms/211": {}},
    {"/vms/211": None},
    {},
    None,
])
def test_without_the_privileges_on_the_path_the_create_is_refused(answer):
    client, api, _sleeps = user_client(answer)
    with pytest.raises(ProxmoxError) as exc:
        client.require_visible("/vms/211", ["VM.Audit", "VM.Allocate"], "VM 211")
    assert exc.value.msg == MISSING
    assert exc.value.status == 403
    assert api.calls == [("get", PERMISSIONS, {"path": "/vms/211"})]


def test_the_message_names_the_one_privilege_and_the_object():
    client, _api, _sleeps = user_client({"/storage": {"Datastore.Audit": 1}})
    with pytest.raises(ProxmoxError) as exc:
        client.require_visible("/storage/nas", ["Datastore.Allocate"], "storage nas")
    assert exc.value.msg.startswith("missing privilege Datastore.Allocate on path /storage/nas: the API user or token "
                                    "cannot see storage nas, so it cannot tell whether it already exists; give it "
                                    "Datastore.Allocate on /storage/nas (")


def test_a_privileges_read_that_fails_names_what_was_read():
    client, api, _sleeps = user_client(ResourceException(403, "Forbidden", "permission denied"))
    with pytest.raises(ProxmoxError) as exc:
        client.require_visible("/vms/211", ["VM.Audit"], "VM 211")
    assert exc.value.msg.startswith("Proxmox VE API error on the privileges of the API user (HTTP 403): permission denied")
    assert api.calls == [("get", PERMISSIONS, {"path": "/vms/211"})]
