"""Guest helpers (module_utils/_proxmox_guest.py): lookups in /cluster/resources (lagging pvestatd data
included), task results, property strings, sizes, NICs, tags as PVE stores them and fingerprint tags.

Pure functions, or a recording fake client: exact values and full messages, so that a changed
constant or condition fails a test (``make mutation``)."""

import hashlib

import pytest

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxError
from ansible_collections.ailab.cluster.plugins.module_utils import _proxmox_guest as g

UPID = "UPID:pve-2:0000ABCD:00001234:65A1B2C3:qmstart:100:root@pam!ansible:"


class FakeClient(object):
    """Answers GETs from a dict ``path -> answer``; records reads and task waits."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.gets = []
        self.waits = []

    def get(self, path, what=None, **params):
        self.gets.append((path, what, params))
        return self.answers.get(path)

    def wait_task(self, node, upid, what, timeout=600):
        self.waits.append((node, upid, what, timeout))


# ------------------------------------------------------------------ words and ids
def test_guest_word_forms():
    assert g.guest_word("qemu", 101, "k8s-cp-1") == "VM 101 (k8s-cp-1)"
    assert g.guest_word("lxc", 120) == "CT 120"
    assert g.guest_word("qemu", None, "k8s-cp-1") == "VM k8s-cp-1"
    assert g.guest_word("lxc", 120, "") == "CT 120"
    assert g.guest_word("other", 5) == "guest 5"
    assert g.guest_word("qemu", 0, "zero") == "VM 0 (zero)"


def test_ha_sid():
    assert g.ha_sid("qemu", 100) == "vm:100"
    assert g.ha_sid("lxc", 101) == "ct:101"


# ------------------------------------------------------------------ /cluster/resources
RESOURCES = [
    {"type": "node", "node": "pve-1", "status": "online"},
    {"type": "node", "node": "pve-2", "status": "offline"},
    {"type": "qemu", "vmid": 100, "name": "a", "node": "pve-1", "status": "running"},
    {"type": "lxc", "vmid": "101", "name": "b", "node": "pve-2", "status": "stopped"},
    {"type": "storage", "node": "pve-1", "storage": "local"},
    {"type": "qemu", "vmid": 102, "name": "dup", "node": "pve-1"},
    {"type": "lxc", "vmid": 103, "name": "dup", "node": "pve-1"},
    {"type": "qemu", "vmid": 104, "node": "pve-1", "status": "unknown"},
]


def test_split_resources():
    nodes, guests = g.split_resources(RESOURCES)
    assert nodes == {"pve-1": RESOURCES[0], "pve-2": RESOURCES[1]}
    assert [e["vmid"] for e in guests] == [100, "101", 102, 103, 104]


def test_find_guest_by_vmid():
    guests = g.split_resources(RESOURCES)[1]
    assert g.find_guest(guests, vmid=101)["name"] == "b"
    assert g.find_guest(guests, vmid="100", kind="qemu")["name"] == "a"
    assert g.find_guest(guests, vmid=999) is None
    assert g.find_guest(guests, vmid=100, name="b")["name"] == "a"  # the vmid wins
    with pytest.raises(ProxmoxError) as raised:
        g.find_guest(guests, vmid=101, kind="qemu")
    assert raised.value.msg == "VMID 101 is a CT, not a VM: use another vmid or set type: lxc"


def test_find_guest_by_name():
    guests = g.split_resources(RESOURCES)[1]
    assert g.find_guest(guests, name="a")["vmid"] == 100
    assert g.find_guest(guests, name="a", kind="lxc") is None
    assert g.find_guest(guests, name="dup", kind="lxc")["vmid"] == 103
    assert g.find_guest(guests, name="nothing") is None
    with pytest.raises(ProxmoxError) as raised:
        g.find_guest(guests, name="dup")
    assert raised.value.msg == "Several guests are named dup (VMIDs 102, 103): set vmid to pick one"
    assert g.find_guest([dict(RESOURCES[6]), dict(RESOURCES[5])], name="dup", kind="qemu")["vmid"] == 102
    with pytest.raises(ProxmoxError) as raised:
        g.find_guest([dict(RESOURCES[6]), dict(RESOURCES[5])], name="dup")
    assert raised.value.msg.endswith("(VMIDs 102, 103): set vmid to pick one")  # sorted by vmid


def test_name_unnamed_reads_the_config_of_entries_pvestatd_has_not_reported():
    guests = [{"type": "qemu", "vmid": 104, "node": "pve-1", "status": "unknown"},
              {"type": "lxc", "vmid": 105, "node": "pve-2", "status": "unknown"},
              {"type": "qemu", "vmid": 106, "node": "pve-1", "status": "unknown"},
              {"type": "qemu", "vmid": 100, "name": "a", "node": "pve-1", "status": "running"},
              {"type": "qemu", "vmid": 107, "node": "pve-2", "status": "unknown", "template": 0}]
    client = FakeClient({"nodes/pve-1/qemu/104/config": {"name": "fresh", "template": 1},
                         "nodes/pve-2/lxc/105/config": {"hostname": "ct-fresh"},
                         "nodes/pve-1/qemu/106/config": None,
                         "nodes/pve-2/qemu/107/config": {"name": "seven", "template": 1}})
    assert g.name_unnamed(client, guests) == 4
    assert list(client.gets) == [
        ("nodes/pve-1/qemu/104/config", "VM 104", {}), ("nodes/pve-2/lxc/105/config", "CT 105", {}),
        ("nodes/pve-1/qemu/106/config", "VM 106", {}), ("nodes/pve-2/qemu/107/config", "VM 107", {})]
    assert (guests[0]["name"], guests[0]["template"]) == ("fresh", 1)
    assert (guests[1]["name"], guests[1]["template"]) == ("ct-fresh", 0)
    assert "name" not in guests[2] and guests[2]["template"] == 0
    assert (guests[4]["name"], guests[4]["template"]) == ("seven", 0)  # the entry's own template flag stays
    assert g.find_guest(guests, name="fresh")["vmid"] == 104


def test_name_unnamed_by_kind_and_when_all_are_named():
    guests = [{"type": "lxc", "vmid": 105, "node": "pve-2"}, {"type": "qemu", "vmid": 104, "node": "pve-1"}]
    client = FakeClient({"nodes/pve-1/qemu/104/config": {"name": "vm", "hostname": "wrong"}})
    assert g.name_unnamed(client, guests, kind="qemu") == 1
    assert [p for p, w, a in client.gets] == ["nodes/pve-1/qemu/104/config"]
    assert guests[1]["name"] == "vm" and "name" not in guests[0]
    assert g.name_unnamed(FakeClient(), [{"type": "qemu", "vmid": 1, "node": "n", "name": "x"}]) == 0


def test_live_status():
    client = FakeClient({"nodes/pve-1/qemu/100/status/current": {"status": "running", "lock": "backup"}})
    assert g.live_status(client, "pve-1", "qemu", 100) == {"status": "running", "lock": "backup"}
    assert client.gets == [("nodes/pve-1/qemu/100/status/current", "VM 100", {})]
    assert g.live_status(client, "pve-1", "lxc", 101) == {}
    assert client.gets[-1] == ("nodes/pve-1/lxc/101/status/current", "CT 101", {})


def test_node_problem():
    nodes = g.split_resources(RESOURCES)[0]
    assert g.node_problem(nodes, "pve-1") is None
    assert g.node_problem(nodes, "pve-2") == "node pve-2 is offline"
    assert g.node_problem(nodes, "pve-9") == "node pve-9 is not in the cluster (nodes: pve-1, pve-2)"
    assert g.node_problem({}, "pve-9") == "node pve-9 is not in the cluster (nodes: none)"
    # planned nodes (check mode: they join earlier in the run) count as members; members are not listed as planned
    assert g.node_problem(nodes, "pve-3", ["pve-1", "pve-3"]) is None
    assert g.node_problem(nodes, "pve-9", ["pve-1", "pve-3"]) == (
        "node pve-9 is not in the cluster (nodes: pve-1, pve-2) and does not join it in this run (planned: pve-3)")
    assert g.node_problem(nodes, "pve-9", ["pve-1"]) == "node pve-9 is not in the cluster (nodes: pve-1, pve-2)"


# ------------------------------------------------------------------ tasks
def test_upids():
    assert g.is_upid(UPID) is True
    assert g.is_upid("upid:x") is False
    assert g.is_upid(None) is False
    assert g.upid_node(UPID, "pve-1") == "pve-2"
    assert g.upid_node("UPID::x:y", "pve-1") == "pve-1"
    assert g.upid_node("UPID:pve-3", "pve-1") == "pve-1"
    assert g.upid_node("UPID:pve-3:x", "pve-1") == "pve-3"


def test_wait_result_waits_only_on_a_upid():
    client = FakeClient()
    assert g.wait_result(client, "pve-1", UPID, "starting VM 100", 30) == UPID
    assert client.waits == [("pve-2", UPID, "starting VM 100", 30)]
    assert g.wait_result(client, "pve-1", None, "configuring", 30) is None
    assert len(client.waits) == 1


# ------------------------------------------------------------------ property strings
def test_parse_props():
    assert g.parse_props("virtio,bridge=vmbr0, firewall = 1 ,,", "model") == {"model": "virtio", "bridge": "vmbr0",
                                                                              "firewall": "1"}
    assert g.parse_props("virtio,bridge=vmbr0") == {"bridge": "vmbr0"}
    assert g.parse_props("a=b=c") == {"a": "b=c"}
    assert g.parse_props(5, "current") == {"current": "5"}


def test_format_props():
    assert g.format_props({"bridge": "vmbr0", "model": "virtio", "firewall": True, "tag": None}, "model") == \
        "virtio,bridge=vmbr0,firewall=1"
    assert g.format_props({"enabled": False}, "enabled") == "0"
    assert g.format_props({"a": 1, "b": False}) == "a=1,b=0"
    assert g.format_props({"model": None, "a": 1}, "model") == "a=1"


def test_scalars_and_norm_value():
    assert g.pve_scalar(True) == 1 and g.pve_scalar(False) == 0 and g.pve_scalar("x") == "x"
    for text in ("1", "on", "YES", "true", " True ", True):
        assert g.norm_value(text) == "1"
    for text in ("0", "off", "no", "FALSE", False):
        assert g.norm_value(text) == "0"
    assert g.norm_value(" writeback ") == "writeback"
    assert g.norm_value(2) == "2"


def test_props_key_and_as_props():
    assert g.props_key({"b": True, "a": "x", "c": None}) == "a=x,b=1"
    assert g.props_key({"b": "on", "a": "x"}) == g.props_key({"a": "x", "b": 1})
    assert g.as_props({"pcie": True, "mapping": "gpu", "x": None}) == {"pcie": 1, "mapping": "gpu"}
    assert g.as_props({1: "a"}) == {"1": "a"}
    assert g.as_props("mapping=gpu,pcie=1", "host") == {"mapping": "gpu", "pcie": "1"}
    assert g.as_props("0000:01:00,pcie=1", "host") == {"host": "0000:01:00", "pcie": "1"}


# ------------------------------------------------------------------ sizes
@pytest.mark.parametrize(("text", "unit", "size"), [
    ("32G", "", 32 * 1024 ** 3), ("32768M", "", 32 * 1024 ** 3), ("1T", "", 1024 ** 4), ("4K", "", 4096),
    ("512", "", 512), ("8", "G", 8 * 1024 ** 3), (" 1.5 gib ", "", int(1.5 * 1024 ** 3)), ("10GB", "", 10 * 1024 ** 3),
    (16, "G", 16 * 1024 ** 3), (2.5, "G", int(2.5 * 1024 ** 3)), ("0.5M", "", 524288), ("7m", "", 7 * 1024 ** 2),
])
def test_parse_size(text, unit, size):
    assert g.parse_size(text, unit) == size


@pytest.mark.parametrize("text", ["big", "", "1X", "-1G", True, "1 G B"])
def test_parse_size_rejects(text):
    assert g.parse_size(text) is None


def test_parse_size_rounds():
    assert g.parse_size("1.0000001K") == 1024
    assert g.parse_size("0.6") == 1


def test_format_size_and_gib_text():
    assert g.format_size(32 * 1024 ** 3) == "32G"
    assert g.format_size(2 * 1024 ** 4) == "2T"
    assert g.format_size(1536 * 1024 ** 2) == "1536M"
    assert g.format_size(3 * 1024) == "3K"
    assert g.format_size(1000) == "1000"
    assert g.format_size(0) == "0"
    assert g.gib_text(32 * 1024 ** 3) == "32"
    assert g.gib_text(512 * 1024 ** 2) == "0.5"
    assert g.gib_text(1024 ** 3 + 1024 ** 2) == "1.001"
    assert g.gib_text(1024 ** 3 // 3) == "0.333"


# ------------------------------------------------------------------ NICs
def test_split_nic_qemu():
    assert g.split_nic("qemu", "virtio=bc:24:11:aa:bb:cc,bridge=vmbr0") == (
        {"bridge": "vmbr0", "model": "virtio"}, "BC:24:11:AA:BB:CC")
    assert g.split_nic("qemu", {"model": "e1000", "bridge": "vmbr1", "macaddr": "aa:bb:cc:dd:ee:ff"}) == (
        {"model": "e1000", "bridge": "vmbr1"}, "AA:BB:CC:DD:EE:FF")
    assert g.split_nic("qemu", "virtio,bridge=vmbr0") == ({"model": "virtio", "bridge": "vmbr0"}, None)
    assert g.split_nic("qemu", "vmxnet3=02:00:00:00:00:01,macaddr=02:00:00:00:00:02") == (
        {"model": "vmxnet3"}, "02:00:00:00:00:01")
    assert g.split_nic("qemu", "e1000-82545em=02:00:00:00:00:03") == ({"model": "e1000-82545em"}, "02:00:00:00:00:03")
    assert "pcnet" in g.NET_MODELS and "e1000e" in g.NET_MODELS and len(g.NET_MODELS) == 14


def test_split_nic_lxc():
    assert g.split_nic("lxc", "name=eth0,bridge=vmbr0,hwaddr=bc:24:11:00:00:01,ip=dhcp") == (
        {"name": "eth0", "bridge": "vmbr0", "ip": "dhcp"}, "BC:24:11:00:00:01")
    assert g.split_nic("lxc", {"name": "eth0", "bridge": "vmbr0"}) == ({"name": "eth0", "bridge": "vmbr0"}, None)


def test_nic_string():
    assert g.nic_string("qemu", {"model": "e1000", "bridge": "vmbr0"}, "AA:BB:CC:DD:EE:FF") == \
        "e1000=AA:BB:CC:DD:EE:FF,bridge=vmbr0"
    assert g.nic_string("qemu", {"bridge": "vmbr0", "firewall": True}, None) == "virtio,bridge=vmbr0,firewall=1"
    assert g.nic_string("qemu", {}, None) == "virtio"
    props = {"name": "eth0", "bridge": "vmbr0"}
    assert g.nic_string("lxc", props, "BC:24:11:00:00:01") == "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01"
    assert props == {"name": "eth0", "bridge": "vmbr0"}  # not changed in place
    assert g.nic_string("lxc", {"name": "eth0"}, None) == "name=eth0"


# ------------------------------------------------------------------ tags
def test_split_tags():
    assert g.split_tags(None) == []
    assert g.split_tags("a;b, c  d,,;") == ["a", "b", "c", "d"]
    assert g.split_tags(["a", " b ", "", " "]) == ["a", "b"]
    assert g.split_tags(("x",)) == ["x"]
    assert g.split_tags("") == []


def test_pve_tags_are_unique_and_sorted_without_case():
    # pve-guest-common PVE::GuestHelpers::get_unique_tags with the default datacenter tag-style
    assert g.pve_tags(["k8s", "gpu", "control-plane", "k8s"]) == "control-plane;gpu;k8s"
    assert g.pve_tags("Zeta;alpha;ZETA;Beta") == "alpha;Beta;Zeta"
    assert g.pve_tags("b;B") == "b"
    assert g.pve_tags("B;b") == "B"
    assert g.pve_tags(None) == ""
    assert g.pve_tags(["ailab-fp-0123456789ab", "k8s"]) == "ailab-fp-0123456789ab;k8s"


def test_tags_key():
    assert g.tags_key("k8s;gpu") == g.tags_key(["gpu", "k8s", "gpu"]) == "gpu;k8s"
    assert g.tags_key("K8s") != g.tags_key("k8s")  # a different spelling is a change to write


# ------------------------------------------------------------------ fingerprint tags
def test_fingerprint_tag_is_a_short_sha256_of_canonical_json():
    data = {"b": [1, 2], "a": "é"}
    text = '{"a":"\\u00e9","b":[1,2]}'
    expected = "ailab-fp-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    assert g.fingerprint_tag(data) == expected
    assert g.fingerprint_tag({"a": "é", "b": [1, 2]}) == expected
    assert len(g.fingerprint_tag({})) == len("ailab-fp-") + 12
    assert (g.FINGERPRINT_PREFIX, g.FINGERPRINT_DIGITS) == ("ailab-fp-", 12)


def test_fingerprint_tags_and_user_tags():
    assert g.is_fingerprint_tag("ailab-fp-0123456789ab") is True
    assert g.is_fingerprint_tag(" AILAB-FP-x") is True
    assert g.is_fingerprint_tag("k8s") is False
    assert g.is_fingerprint_tag("x-ailab-fp-1") is False
    tags = "k8s;ailab-fp-0123456789ab;gpu"
    assert g.fingerprint_tags(tags) == ["ailab-fp-0123456789ab"]
    assert g.user_tags(tags) == ["k8s", "gpu"]
    assert g.fingerprint_tags(None) == [] and g.user_tags(None) == []


# ------------------------------------------------------------------ task log tail (_proxmox.py)
class PagedLogApi(object):
    """``api(path).get(start=, limit=)`` over a task log of ``count`` lines, as PVE pages it.

    pve-manager PVE/API2/Tasks.pm read_task_log: ``limit`` defaults to 50; pve-common PVE::Tools
    dump_logfile_by_filehandle reads to the end when it is 0 (``read_until_end``). With ``old`` the
    node's pve-common predates that and 0 means the default, 50.
    """

    def __init__(self, count, old=False):
        self.lines = [{"n": i, "t": "line %d" % i} for i in range(1, count + 1)]
        self.old = old
        self.calls = []

    def __call__(self, path):
        api = self

        class Resource(object):
            def get(self, **params):
                api.calls.append((path, params))
                start, limit = params.get("start", 0), params.get("limit", 50)
                if limit == 0 and api.old:
                    limit = 50
                return api.lines[start:start + limit] if limit else api.lines[start:]

        return Resource()


@pytest.mark.parametrize("count", [3, 49, 50, 51, 500, 1234, 5000])
def test_task_log_tail_is_the_end_of_a_long_log_in_one_read(count):
    from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxClient

    api = PagedLogApi(count)
    tail = ProxmoxClient(api).task_log_tail("pve-1", UPID)
    assert tail == ["line %d" % i for i in range(max(1, count - 9), count + 1)]
    path = "nodes/pve-1/tasks/%s/log" % UPID
    # limit=0: the whole log (a log of exactly 50 lines costs one more read, which answers [])
    expected = [(path, {"limit": 0})] + ([(path, {"start": 50, "limit": 500})] if count == 50 else [])
    assert api.calls == expected


@pytest.mark.parametrize(("count", "reads"), [(3, 1), (50, 2), (549, 2), (550, 3), (1234, 4)])
def test_task_log_tail_pages_on_a_node_where_limit_0_means_50(count, reads):
    from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxClient

    api = PagedLogApi(count, old=True)
    tail = ProxmoxClient(api).task_log_tail("pve-1", UPID)
    assert tail == ["line %d" % i for i in range(max(1, count - 9), count + 1)]
    path = "nodes/pve-1/tasks/%s/log" % UPID
    assert api.calls == [(path, {"limit": 0})] + [(path, {"start": 50 + 500 * i, "limit": 500})
                                                  for i in range(reads - 1)]


def test_task_log_tail_reads_at_most_max_pages():
    from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import ProxmoxClient

    api = PagedLogApi(5000, old=True)
    tail = ProxmoxClient(api).task_log_tail("pve-1", UPID, lines=3, page=100, max_pages=4)
    assert tail == ["line 348", "line 349", "line 350"] and len(api.calls) == 4
