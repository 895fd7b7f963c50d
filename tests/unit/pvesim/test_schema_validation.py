"""Requests are validated against apidata.js like PVE::JSONSchema does (400 errors, 501 paths)."""

import pytest
import requests
from proxmoxer.core import ResourceException

from pvesim.errors import NotImplementedPath, ParamError
from pvesim.personality import PVE8
from pvesim.schema import ApiSchema, default_schema_path, load_tree

UNKNOWN = "property is not defined in schema and the schema does not allow additional properties"


@pytest.fixture(scope="module")
def schemas():
    tree = load_tree(default_schema_path())
    return {8: ApiSchema(tree, PVE8.drop_paths, PVE8.drop_params), 9: ApiSchema(tree)}


def _errors(schema, method, path, params):
    resolved, path_params = schema.resolve(method, path)
    with pytest.raises(ParamError) as raised:
        resolved.validate({**params, **path_params})
    return raised.value.errors


def test_resolve_prefers_literal_segments(schemas):
    method, params = schemas[9].resolve("GET", "/nodes/pve-1/qemu/100/status/current")
    assert method.template == "/nodes/{node}/qemu/{vmid}/status/current"
    assert params == {"node": "pve-1", "vmid": "100"}
    with pytest.raises(NotImplementedPath):
        schemas[9].resolve("GET", "/nodes/pve-1/qemu/100/nonsense")


def test_types_enums_bounds_and_formats(schemas):
    errors = _errors(schemas[9], "POST", "/nodes/pve-1/qemu", {
        "vmid": "99", "onboot": "True", "ostype": "linux", "cores": "0", "name": "bad name", "memory": "x",
    })
    assert errors == {
        "vmid": "invalid format - value does not look like a valid VM ID\n",
        "onboot": "type check ('boolean') failed - got 'True'",
        "ostype": "value 'linux' does not have a value in the enumeration 'other, wxp, w2k, w2k3, w2k8, wvista, "
                  "win7, win8, win10, win11, l24, l26, solaris'",
        "cores": "value must have a minimum value of 1",
        "name": "invalid format - value does not look like a valid DNS name\n",
        "memory": "invalid format - format error\nmemory.current: type check ('integer') failed - got 'x'\n",
    }


def test_indexed_and_property_string_options(schemas):
    resolved, _ignored = schemas[9].resolve("POST", "/nodes/pve-1/qemu")
    valid = resolved.validate({"node": "pve-1", "vmid": "100", "net0": "virtio,bridge=vmbr0,firewall=1",
                               "scsi0": "local-lvm:32,iothread=1", "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1",
                               "hostpci0": "mapping=gpu,pcie=1", "agent": "1"})
    assert valid["vmid"] == 100 and valid["net0"] == "virtio,bridge=vmbr0,firewall=1"
    errors = _errors(schemas[9], "POST", "/nodes/pve-1/qemu", {
        "vmid": "100", "net32": "virtio", "net1": "virtio,bridg=vmbr0", "scsi1": "local-lvm:8,cache=fast",
        "ipconfig0": "address=dhcp",
    })
    assert errors["net32"] == UNKNOWN
    assert errors["net1"] == "invalid format - invalid key in comma-separated list property: bridg\n"
    assert errors["scsi1"].startswith("invalid format - format error\nscsi1.cache: value 'fast' does not have")
    assert errors["ipconfig0"] == "invalid format - invalid key in comma-separated list property: address\n"


def test_required_pattern_and_list_formats(schemas):
    assert _errors(schemas[9], "POST", "/cluster/ha/groups", {"group": "g1"}) == {
        "nodes": "property is missing and it is not optional"}
    errors = _errors(schemas[9], "POST", "/cluster/mapping/pci", {
        "id": "gpu", "map": ["node=pve-1,path=0000:01:00.0,id=10de:2204", "node=pve-2,path=xyz,id=10de:2204"]})
    assert errors == {"map[1]": "invalid format - format error\nmap[1].path: value does not match the regex pattern\n"}
    errors = _errors(schemas[9], "POST", "/cluster/backup", {"vmid": "100,abc", "schedule": "02:00"})
    assert errors == {"vmid": "invalid format - value does not look like a valid VM ID\n"}


def test_pve8_schema_lacks_rules_and_failback(schemas):
    with pytest.raises(NotImplementedPath):
        schemas[8].resolve("GET", "/cluster/ha/rules")
    assert _errors(schemas[8], "POST", "/cluster/ha/resources", {"sid": "vm:100", "failback": "1"}) == {
        "failback": UNKNOWN}
    resolved, _ignored = schemas[9].resolve("POST", "/cluster/ha/resources")
    assert resolved.validate({"sid": "vm:100", "failback": "0"})["failback"] == 0


def test_http_400_body_is_pve_shaped(pve9_sim):
    headers = {"Authorization": f"PVEAPIToken={pve9_sim.token_id}={pve9_sim.token_secret}"}
    response = requests.post(f"{pve9_sim.api_url}/nodes/pve-1/qemu", headers=headers, verify=pve9_sim.ca_file,
                             data={"vmid": 100, "bogus": 1, "ostype": "linux", "onboot": "True"}, timeout=5)
    assert (response.status_code, response.reason) == (400, "Parameter verification failed.")
    body = response.json()
    assert body["data"] is None
    assert set(body["errors"]) == {"bogus", "ostype", "onboot"}
    assert body["errors"]["bogus"] == UNKNOWN


def test_json_bodies_are_accepted(pve9_sim):
    headers = {"Authorization": f"PVEAPIToken={pve9_sim.token_id}={pve9_sim.token_secret}"}
    response = requests.post(f"{pve9_sim.api_url}/nodes/pve-1/qemu", headers=headers, verify=pve9_sim.ca_file,
                             json={"vmid": 120, "onboot": True, "cores": 2, "scsi0": "local-lvm:4"}, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["data"].startswith("UPID:pve-1:")


def test_proxmoxer_sees_errors_and_501(pve9_sim):
    api = pve9_sim.api()
    with pytest.raises(ResourceException) as raised:
        api.nodes("pve-1").qemu.post(vmid=101, onboot="True")
    assert raised.value.status_code == 400
    assert raised.value.errors == {"onboot": "type check ('boolean') failed - got 'True'"}
    with pytest.raises(ResourceException) as raised:
        api.foo.get()
    assert (raised.value.status_code, raised.value.content) == (501, "Method 'GET /foo' not implemented")
    with pytest.raises(ResourceException) as raised:
        api.cluster.sdn.zones.get()
    assert raised.value.status_code == 501
    assert "not modelled by pvesim" in raised.value.content
