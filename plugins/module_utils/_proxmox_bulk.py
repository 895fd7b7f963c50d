# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Single-object and list ("bulk") mode for modules that own entries of one Proxmox VE
collection (``/storage``, ``/cluster/backup``, ``/cluster/mapping/pci``), private to the collection.

A module describes its collection with a :class:`CollectionManager` subclass and calls
:func:`run_collection_module`. Either the item options are given at the top level (one object) or
a list of dicts with the same keys is given in the list option (``storages:``, ``jobs:``,
``mappings:``). Both modes run the same steps:

1. check every item's input on its own (no API call, or only ``/version``);
2. read the collection ONCE (one GET, whatever the number of items);
3. plan every item against the current entries; ``purge`` plans deletions of the others;
4. let the manager verify the plan with its own (bounded) reads;
5. only then write the differences, unless in check mode.

Any input problem therefore fails before the first write; an API error in step 5 names what was
already applied.

Also here, because two of the three modules need it: PVE ``prune-backups`` retention strings and
config comparison with defaults for absent keys (see :func:`diff_config`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    ProxmoxClient,
    ProxmoxError,
    ResourceException,
    describe_api_error,
    describe_connection_error,
    proxmox_argument_spec,
    proxmox_module_kwargs,
    pve_params,
    requests,
    to_pve,
)

STATES = ["present", "absent"]

# Desired value meaning "remove this key from the PVE config" (sent in ``delete``).
REMOVE = "__ailab_remove__"


# ------------------------------------------------------------------------------ argument spec
def bulk_argument_spec(item_options, id_key, list_key, **module_options):
    """The item options at the top level (single mode) and as elements of ``list_key`` (list mode).

    ``state`` is added to both: at the top level it defaults to ``present`` and is also the default
    of list entries that do not set their own. ``purge`` (list mode only) deletes the collection's
    other entries.
    """
    spec = dict((key, dict(value)) for key, value in item_options.items())
    spec["state"] = dict(type="str", choices=list(STATES), default="present")
    elements = dict((key, dict(value)) for key, value in item_options.items())
    elements[id_key] = dict(elements[id_key], required=True)
    elements["state"] = dict(type="str", choices=list(STATES))
    spec[list_key] = dict(type="list", elements="dict", options=elements)
    spec["purge"] = dict(type="bool", default=False)
    spec.update(module_options)
    return proxmox_argument_spec(**spec)


def bulk_module_kwargs(item_options, id_key, list_key):
    """AnsibleModule() rules: one object or a list, never both; purge only with a list."""
    kwargs = proxmox_module_kwargs()
    kwargs["mutually_exclusive"] = kwargs["mutually_exclusive"] + [(list_key, key) for key in sorted(item_options)]
    kwargs["required_one_of"] = kwargs["required_one_of"] + [(id_key, list_key)]
    kwargs["required_if"] = [("purge", True, (list_key,))]
    return kwargs


# ------------------------------------------------------------------------------ comparison
def split_list(value, sep=","):
    """A PVE comma list (or a Python list) as a list of stripped, non-empty strings."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(sep) if v.strip()]


def unordered(value):
    """Comparison key for comma lists whose order does not matter (content, nodes, vmid)."""
    return ",".join(sorted(set(split_list(value))))


def diff_config(desired, current, normalizers=None, defaults=None):
    """What to send so that ``current`` (a PVE config) matches ``desired``.

    ``desired`` maps PVE keys to values as PVE takes them; None means "not managed" and
    :data:`REMOVE` means "must not be set" (sent in ``delete``). ``defaults`` gives the value PVE
    assumes when a key is absent (``enabled`` = 1, ``disable`` = 0), so that setting a key to its
    default on an object that does not have it is not a change. ``normalizers`` maps keys to a
    function that makes two equivalent values equal (unordered lists, prune strings).

    Returns ``(params, delete, before, after)``: the parameters to write, the keys to delete, and
    the managed keys' values before and after, for ``diff``.
    """
    normalizers = normalizers or {}
    defaults = defaults or {}
    params, delete, before, after = {}, [], {}, {}
    for key, value in desired.items():
        if value is None:
            continue
        old = current.get(key)
        before[key] = old
        if value == REMOVE:
            after[key] = None
            if old is not None:
                delete.append(key)
            continue
        new = to_pve(value)
        after[key] = new
        norm = normalizers.get(key, _plain)
        if old is None:
            old = defaults.get(key)
        if norm(new) != norm(old):
            params[key] = new
    return params, sorted(delete), before, after


def _plain(value):
    return None if value is None else str(to_pve(value)).strip()


# ------------------------------------------------------------------------------ prune-backups
PRUNE_KEYS = ("keep_all", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")

PRUNE_OPTIONS = dict(
    keep_all=dict(type="bool"),
    keep_last=dict(type="int"),
    keep_hourly=dict(type="int"),
    keep_daily=dict(type="int"),
    keep_weekly=dict(type="int"),
    keep_monthly=dict(type="int"),
    keep_yearly=dict(type="int"),
)


def prune_to_pve(retention, what):
    """``{keep_last: 3, keep_weekly: 4}`` -> ``keep-last=3,keep-weekly=4`` (None -> None)."""
    if retention is None:
        return None
    values = dict((k, v) for k, v in retention.items() if v is not None)
    if not values:
        raise ProxmoxError("%s: prune_backups needs at least one keep_* setting, for example keep_last: 3" % what)
    keeps = [k for k in values if k != "keep_all"]
    if values.get("keep_all") and keeps:
        raise ProxmoxError("%s: prune_backups keep_all: true keeps every backup and cannot be combined with %s; "
                           "remove one of them" % (what, ", ".join(sorted(keeps))))
    for key in keeps:
        if values[key] < 1:
            raise ProxmoxError("%s: prune_backups %s must be 1 or more (got %s); leave it out to not keep by that "
                               "interval" % (what, key, values[key]))
    return ",".join("%s=%s" % (k.replace("_", "-"), to_pve(values[k])) for k in PRUNE_KEYS if k in values)


def parse_prune(value):
    """A prune-backups string as a dict (key order and spaces do not matter)."""
    result = {}
    for part in split_list(value):
        key, sep, val = part.partition("=")
        result[key.strip()] = val.strip() if sep else "1"
    return result


def prune_key(value):
    """Comparison key for prune-backups strings."""
    return None if value is None else sorted(parse_prune(value).items())


# ------------------------------------------------------------------------------ writes
class PveArray(list):
    """A parameter PVE takes as an array (``map`` of a PCI mapping): sent as repeated form keys.

    ``to_pve`` (and so every ProxmoxClient write) joins lists with commas, which is right for
    comma-list strings such as ``content`` but breaks array items that contain commas.
    """


def write(client, method, path, what, params):
    """A ProxmoxClient write that passes :class:`PveArray` values through unchanged.

    Also avoids ``client.post(path, **params)``, whose ``path`` argument collides with the storage
    parameter of the same name. Same accounting and error messages as ProxmoxClient writes.
    """
    arrays = dict((k, list(v)) for k, v in params.items() if isinstance(v, PveArray))
    plain = pve_params(dict((k, v) for k, v in params.items() if k not in arrays))
    plain.update(arrays)
    client.writes += 1
    try:
        return getattr(client.api(path.strip("/")), method)(**plain)
    except ResourceException as exc:
        raise describe_api_error(exc, what or path) from exc
    except requests.exceptions.RequestException as exc:
        raise describe_connection_error(exc, client.endpoint, what or path) from exc


# ------------------------------------------------------------------------------ the machinery
class Change(object):
    """One planned write: create, update or delete of the entry ``item_id`` (params as PVE takes them)."""

    def __init__(self, item_id, action, params=None, delete=None, before=None, after=None):
        self.item_id = item_id
        self.action = action
        self.params = dict((k, v if isinstance(v, PveArray) else to_pve(v)) for k, v in (params or {}).items())
        self.delete = delete or []
        self.before = before or {}
        self.after = after or {}

    def as_result(self, hide=()):
        params = dict((k, "********" if k in hide else (list(v) if isinstance(v, PveArray) else v))
                      for k, v in self.params.items())
        result = dict(id=self.item_id, action=self.action, params=params)
        if self.delete:
            result["delete"] = list(self.delete)
        return result


class CollectionManager(object):
    """What a module knows about its collection; the runner does the rest.

    Subclasses set the class attributes and implement :meth:`plan_present`; the other hooks have
    defaults that fit a plain PVE collection (POST to the index, PUT/DELETE on the entry).
    """

    kind = "entry"            # for messages: "<kind> <id>: ..."
    path = ""                 # collection path, e.g. "storage"
    id_key = "id"             # id in the module options and in PVE's entries
    list_key = "items"        # list-mode option
    result_key = "item"       # single-mode result key (list mode returns list_key)
    item_options = {}         # option spec of one item (without state)
    secret_params = ()        # PVE parameters hidden in results

    def __init__(self, module, client):
        self.module = module
        self.client = client

    def what(self, item_id):
        return "%s %s" % (self.kind, item_id)

    def item_path(self, item_id):
        return "%s/%s" % (self.path, item_id)

    # hooks ----------------------------------------------------------------------------------
    def check_item(self, item):
        """Input checks that need no current state; raise ProxmoxError."""

    def read(self):
        """The collection as ``{id: entry}``: ONE read."""
        entries = self.client.get(self.path, what="the %s configuration" % self.kind) or []
        return dict((str(entry[self.id_key]), entry) for entry in entries)

    def prepare(self, items, current):
        """Bounded extra reads the plan needs (once, not per item)."""

    def plan_present(self, item, entry):
        """The Change that makes ``entry`` (None when missing) match ``item``, or None."""
        raise NotImplementedError

    def plan_absent(self, item_id, entry):
        if entry is None:
            return None
        return Change(item_id, "delete", before=self.public(entry))

    def verify(self, changes):
        """Last checks on the whole plan before any write (may read, once per plan)."""

    def apply(self, change):
        what = self.what(change.item_id)
        params = dict(change.params)
        if change.delete:
            params["delete"] = ",".join(change.delete)
        if change.action == "create":
            params[self.id_key] = change.item_id
            write(self.client, "post", self.path, "creating " + what, params)
        elif change.action == "update":
            write(self.client, "put", self.item_path(change.item_id), "updating " + what, params)
        else:
            write(self.client, "delete", self.item_path(change.item_id), "removing " + what, {})

    def public(self, entry):
        """An entry as the module returns it."""
        return dict((k, v) for k, v in entry.items() if k != "digest")

    def predicted(self, item_id, entry, change):
        """The entry after ``change`` (no re-read: the same in check mode and after writing)."""
        if change is None:
            return None if entry is None else self.public(entry)
        if change.action == "delete":
            return None
        result = {} if entry is None else self.public(entry)
        result.update((k, list(v) if isinstance(v, PveArray) else v) for k, v in change.params.items())
        for key in change.delete:
            result.pop(key, None)
        result[self.id_key] = item_id
        return result

    def extra_results(self, result, entries, changes):
        """Add module-specific result keys (after the writes)."""


def _items(module, manager_cls):
    params = module.params
    keys = list(manager_cls.item_options)
    if params[manager_cls.list_key] is None:
        item = dict((k, params[k]) for k in keys)
        item["state"] = params["state"]
        return False, [item]
    items = []
    for entry in params[manager_cls.list_key]:
        item = dict((k, entry.get(k)) for k in keys)
        item["state"] = entry.get("state") or params["state"]
        items.append(item)
    return True, items


def run_collection_module(module, manager_cls):
    """Run a module built on ``manager_cls`` in single or list mode and exit."""
    list_mode, items = _items(module, manager_cls)
    id_key = manager_cls.id_key
    seen = set()
    for item in items:
        item_id = str(item[id_key])
        if item_id in seen:
            module.fail_json(msg="%s %s is listed twice in %s; merge the entries into one" %
                             (manager_cls.kind, item_id, manager_cls.list_key))
        seen.add(item_id)

    client = ProxmoxClient.from_module(module)
    manager = manager_cls(module, client)
    changes, plan = [], []
    try:
        for item in items:
            manager.check_item(item)
        current = manager.read()
        manager.prepare(items, current)
        for item in items:
            item_id = str(item[id_key])
            entry = current.get(item_id)
            if item["state"] == "absent":
                change = manager.plan_absent(item_id, entry)
            else:
                change = manager.plan_present(item, entry)
            plan.append((item, item_id, entry, change))
            if change is not None:
                changes.append(change)
        if list_mode and module.params["purge"]:
            for item_id in sorted(set(current) - seen):
                change = manager.plan_absent(item_id, current[item_id])
                if change is not None:
                    changes.append(change)
        manager.verify(changes)
    except ProxmoxError as exc:
        module.fail_json(msg=exc.msg, status=exc.status)

    done = []
    if changes and not module.check_mode:
        for change in changes:
            try:
                manager.apply(change)
            except ProxmoxError as exc:
                applied = ", ".join("%s %s" % (c.action, c.item_id) for c in done) or "nothing"
                module.fail_json(msg="%s (already applied in this run: %s)" % (exc.msg, applied), status=exc.status,
                                 changed=bool(done), changes=[c.as_result(manager.secret_params) for c in done])
            done.append(change)

    entries = []
    for item, item_id, entry, change in plan:
        if item["state"] == "present":
            entries.append(manager.predicted(item_id, entry, change))
    result = dict(changed=bool(changes), changes=[c.as_result(manager.secret_params) for c in changes])
    if list_mode:
        result[manager.list_key] = entries
    else:
        result[manager.result_key] = entries[0] if entries else {}
    manager.extra_results(result, entries, changes)
    if module._diff:
        if list_mode:
            result["diff"] = dict(before=dict((c.item_id, c.before) for c in changes),
                                  after=dict((c.item_id, c.after) for c in changes))
        else:
            change = changes[0] if changes else None
            result["diff"] = dict(before=change.before if change else {}, after=change.after if change else {})
    module.exit_json(**result)
