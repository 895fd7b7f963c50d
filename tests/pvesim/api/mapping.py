"""``/cluster/mapping/pci``: cluster-wide PCI device mappings (GPUs for passthrough).

``check-node`` on the index compares each entry for that node with the node's PCI devices from
the seed and reports missing or changed devices and a wrong IOMMU group the way PVE's ``checks``
do. A node seeded with ``iommu: false`` reports IOMMU group -1 for its devices (IOMMU not enabled
yet), so a mapping with the real group fails that check until IOMMU is on.
"""

from ..errors import ApiError
from ..formats import split_list
from ..state import digest_of, parse_property_string
from . import route

OPTIONS = ("description", "map", "mdev", "live-migration-capable")


def _mapping(state, mapping_id):
    mapping = state.pci_mappings.get(mapping_id)
    if mapping is None:
        raise ApiError(f"PCI mapping '{mapping_id}' does not exist")
    return mapping


def _checks(state, mapping_name, mapping, node_name):
    node = state.nodes.get(node_name)
    devices = {d["id"]: d for d in (node.pci_devices if node else [])}
    checks = []
    entries = [parse_property_string(e) for e in mapping.get("map", []) if f"node={node_name}" in e.split(",")]
    if not entries:
        checks.append({"severity": "warning", "message": f"No mapping for node '{node_name}'."})
    for entry in entries:
        for path in entry.get("path", "").split(";"):
            full = path if "." in path else f"{path}.0"
            device = devices.get(full)
            if device is None:
                checks.append({"severity": "error", "message": f"PCI device '{path}' does not exist."})
                continue
            found = f"{device['vendor'][2:]}:{device['device'][2:]}"
            if entry.get("id") and entry["id"].lower() != found.lower():
                checks.append({"severity": "warning",
                               "message": f"Vendor/device ID mismatch for '{path}': expected {entry['id']}, "
                                          f"found {found}."})
            # pve-manager PVE/Mapping/PCI.pm assert_valid (what a VM start checks too): the IOMMU group of
            # the first device of the entry must be the configured one; -1 while IOMMU is off on the host
            # (pve-common PVE/SysFSTools.pm lspci). Not reported here: "missing expected property" for an entry
            # without iommugroup or subsystem-id; a VM start checks it (api/guests.py _mapping_entry_problem).
            group = device.get("iommugroup")
            if entry.get("iommugroup") not in (None, "") and group is not None and str(group) != entry["iommugroup"] \
                    and path == entry.get("path", "").split(";")[0]:
                checks.append({"severity": "error",
                               "message": f"Invalid configuration: 'iommugroup' does not match for "
                                          f"'{mapping_name}' ({group} != {entry['iommugroup']})"})
    return checks


def _entry(state, mapping_id, mapping, check_node=None):
    entry = {"id": mapping_id, "type": "pci", **mapping}
    if check_node:
        entry["checks"] = _checks(state, mapping_id, mapping, check_node)
    return entry


@route("GET", "/cluster/mapping/pci")
def list_mappings(call):
    """All PCI mappings (with ``checks`` when ``check-node`` is given)."""
    state = call.state
    return [_entry(state, mid, m, call.get("check-node")) for mid, m in sorted(state.pci_mappings.items())]


@route("GET", "/cluster/mapping/pci/{id}")
def read_mapping(call):
    """One PCI mapping."""
    state = call.state
    mapping = _mapping(state, call.get("id"))
    return {**_entry(state, call.get("id"), mapping), "digest": digest_of(state.pci_mappings)}


def _check_map(entries):
    nodes_paths = set()
    for entry in entries:
        parsed = parse_property_string(entry)
        key = (parsed.get("node"), parsed.get("path"))
        if key in nodes_paths:
            raise ApiError(f"duplicate path '{key[1]}' for node '{key[0]}'")
        nodes_paths.add(key)


@route("POST", "/cluster/mapping/pci")
def create_mapping(call):
    """Create a PCI mapping."""
    state = call.state
    mapping_id = call.get("id")
    if mapping_id in state.pci_mappings:
        raise ApiError(f"pci ID '{mapping_id}' already defined")
    _check_map(call.get("map"))
    state.pci_mappings[mapping_id] = {k: call.get(k) for k in OPTIONS if call.get(k) is not None}


@route("PUT", "/cluster/mapping/pci/{id}")
def update_mapping(call):
    """Update a PCI mapping; ``delete`` removes settings."""
    state = call.state
    mapping_id = call.get("id")
    mapping = _mapping(state, mapping_id)
    if call.get("digest") and call.get("digest") != digest_of(state.pci_mappings):
        raise ApiError("detected modified configuration - file changed by other user? Try again.")
    if call.get("map") is not None:
        _check_map(call.get("map"))
    for key in OPTIONS:
        if call.get(key) is not None:
            mapping[key] = call.get(key)
    for key in split_list(call.get("delete", "")):
        if key == "map":
            raise ApiError("unable to delete required option 'map'")
        mapping.pop(key, None)


@route("DELETE", "/cluster/mapping/pci/{id}")
def delete_mapping(call):
    """Delete a PCI mapping (guests that use it fail to start afterwards, as in PVE)."""
    state = call.state
    _mapping(state, call.get("id"))
    del state.pci_mappings[call.get("id")]
