"""``/storage``: the cluster storage configuration (storage.cfg) with per-type option rules.

Like PVE, options that are fixed for a storage type (``path``, ``server``, ``export``,
``vgname``...) cannot be changed after creation: those that no type may change are not in the
PUT schema (HTTP 400 from the schema check), the others fail in the type's check (HTTP 500
"update storage failed: can't change value of fixed parameter"). Options foreign to the type are
refused and required options must be present on create.
"""

from ..errors import ApiError
from ..formats import split_list
from ..state import GIB, SHARED_STORAGES, STORAGE_TYPES
from . import route

BLOCK_CONTENT = {"images", "rootdir", "none"}
CONTENT_BY_TYPE = {"lvm": BLOCK_CONTENT, "lvmthin": BLOCK_CONTENT, "zfspool": BLOCK_CONTENT, "rbd": BLOCK_CONTENT,
                   "iscsi": {"images", "none"}, "pbs": {"backup"}}
SECRET_OPTIONS = ("password", "encryption-key", "keyring", "master-pubkey")
CONTROL_PARAMS = ("storage", "digest", "delete", "type")
# Fixed in PVE 9 besides STORAGE_TYPES' list: pve-storage src/PVE/Storage/{DirPlugin,NFSPlugin,CIFSPlugin}.pm
# options() declare 'snapshot-as-volume-chain' => { optional => 1, fixed => 1 } (LVMPlugin does not fix it).
FIXED_ALSO = {"dir": ("snapshot-as-volume-chain",), "nfs": ("snapshot-as-volume-chain",),
              "cifs": ("snapshot-as-volume-chain",)}


def _public(storage_id, config, digest):
    entry = {k: v for k, v in config.items() if k not in SECRET_OPTIONS}
    entry["storage"] = storage_id
    entry["digest"] = digest
    return entry


def _check_content(storage_type, content):
    supported = CONTENT_BY_TYPE.get(storage_type)
    if supported is None:
        return
    for item in split_list(content):
        if item not in supported:
            raise ApiError(f"storage type '{storage_type}' does not support content type '{item}'")


@route("GET", "/storage")
def list_storages(call):
    """All storage definitions (``type`` filter)."""
    state = call.state
    digest = state.storage_digest()
    return [_public(sid, cfg, digest) for sid, cfg in state.storages.items()
            if not call.get("type") or cfg.get("type") == call.get("type")]


@route("GET", "/storage/{storage}")
def read_storage(call):
    """One storage definition."""
    state = call.state
    return _public(call.get("storage"), state.storage(call.get("storage")), state.storage_digest())


@route("POST", "/storage")
def create_storage(call):
    """Create a storage definition; options are checked against the storage type."""
    state = call.state
    storage_id, storage_type = call.get("storage"), call.get("type")
    options = {k: v for k, v in call.params.items() if k not in CONTROL_PARAMS}
    rules = STORAGE_TYPES.get(storage_type)
    if rules is not None:
        for key in options:
            if key not in rules["options"] and key not in ("content", "nodes", "disable"):
                raise ApiError(f"unexpected property '{key}'")
        for key in rules["required"]:
            if key not in options:
                raise ApiError(f"missing value for required option '{key}'")
    _check_content(storage_type, options.get("content", ""))
    if storage_id in state.storages:
        raise ApiError(f"create storage failed: storage ID '{storage_id}' already defined")
    config = {"type": storage_type, **options}
    if storage_type in SHARED_STORAGES:
        config.setdefault("shared", 1)
    if "content" not in config:
        config["content"] = "images,rootdir" if storage_type in ("lvm", "lvmthin", "zfspool", "rbd") else "images"
    state.storages[storage_id] = config
    state.storage_capacity[storage_id] = (4096 if config.get("shared") else 500) * GIB
    return {"storage": storage_id, "type": storage_type}


@route("PUT", "/storage/{storage}")
def update_storage(call):
    """Update a storage definition; fixed options are refused with 500 like PVE."""
    state = call.state
    storage_id = call.get("storage")
    config = state.storage(storage_id)
    if call.get("digest") and call.get("digest") != state.storage_digest():
        raise ApiError("update storage failed: detected modified configuration - file changed by other user? "
                       "Try again.")
    storage_type = config.get("type")
    rules = STORAGE_TYPES.get(storage_type)
    options = {k: v for k, v in call.params.items() if k not in CONTROL_PARAMS}
    if rules is not None:
        # pve-common src/PVE/SectionConfig.pm check_config: on update, any option the type marks fixed
        # dies "can't change value of fixed parameter '<key>'" (whatever its value, even the same one);
        # pve-storage src/PVE/API2/Storage/Config.pm update runs it inside lock_storage_config(...,
        # "update storage failed"), so the answer is a 500 with that prefix, not a 400.
        fixed_keys = tuple(rules["fixed"]) + FIXED_ALSO.get(storage_type, ())
        for key in sorted(options):
            if key in fixed_keys:
                raise ApiError(f"update storage failed: can't change value of fixed parameter '{key}'")
        for key in options:
            if key not in rules["options"] and key not in ("content", "nodes", "disable"):
                raise ApiError(f"update storage failed: unexpected property '{key}'")
    if "content" in options:
        _check_content(storage_type, options["content"])
    deletions = split_list(call.get("delete", ""))
    for key in deletions:
        if rules is not None and key in rules["required"]:
            raise ApiError(f"update storage failed: unable to delete required option '{key}'")
        if rules is not None and key in tuple(rules["fixed"]) + FIXED_ALSO.get(storage_type, ()):
            raise ApiError(f"update storage failed: unable to delete fixed option '{key}'")
    config.update(options)
    for key in deletions:
        config.pop(key, None)
    return {"storage": storage_id, "type": storage_type}


@route("DELETE", "/storage/{storage}")
def delete_storage(call):
    """Remove a storage definition (volumes and backup jobs that use it are left alone, as in PVE)."""
    state = call.state
    storage_id = call.get("storage")
    state.storage(storage_id)
    del state.storages[storage_id]
    state.storage_capacity.pop(storage_id, None)
