# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Single-object and list mode for ailab.cluster Proxmox modules (private to the collection).

A module in list mode takes either the options of one object at the top level, or a list of dicts
with the same keys in its list option (``storages:``, ``jobs:``, ``mappings:``, ``groups:``,
``rules:``, ``resources:``), plus ``purge`` to remove the objects the list does not name
(:func:`list_argument_spec` builds that argument spec for every such module). Two drivers:

* :class:`ItemSpec`, for the HA modules (``_proxmox_ha.run_ha_module``): each object is validated
  by the item's own argument spec with its real ``required``/``default`` values and rules, so the
  top-level options carry none and a list next to top-level options is refused with its own message;
* :class:`CollectionManager` and :func:`run_collection_module`, for the modules that own the entries
  of one Proxmox VE collection (``/storage``, ``/cluster/backup``, ``/cluster/mapping/pci``). Both
  modes run the same steps:

  1. check every item's input on its own (no API call, or only ``/version``);
  2. read the collection ONCE (one GET, whatever the number of items);
  3. plan every item against the current entries; ``purge`` plans deletions of the others;
  4. let the manager verify the plan with its own (bounded) reads;
  5. only then write the differences, unless in check mode.

  Any input problem therefore fails before the first write; an API error in step 5 names what was
  already applied.

Also here, because the storage and backup job modules both take it: PVE ``prune-backups``
retention (option spec, conversion to the PVE string, comparison key).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.ailab.cluster.plugins.module_utils._proxmox import (
    PveArray,
    ProxmoxClient,
    ProxmoxError,
    applied,
    proxmox_argument_spec,
    proxmox_module_kwargs,
    split_list,
    to_pve,
)

STATES = ["present", "absent"]

# Proxmox VE lists an entry of these collections only to callers holding one of the privileges on
# its ACL path (pve-storage Config.pm and pve-manager Cluster/Mapping/PCI.pm index): a missing entry
# is created only after ProxmoxClient.require_visible made sure it is not just hidden.
VISIBLE_WITH = {
    "storage": ("/storage/%s", ("Datastore.Audit", "Datastore.AllocateSpace")),
    "cluster/mapping/pci": ("/mapping/pci/%s", ("Mapping.Audit", "Mapping.Use", "Mapping.Modify")),
}


# ------------------------------------------------------------------------------ argument spec
def list_argument_spec(options, elements, list_key, **module_options):
    """Connection options, the single-object ``options``, the list option ``list_key`` whose entries
    take ``elements``, ``purge`` (list mode: remove the unlisted objects) and the module's own options."""
    spec = dict(options)
    spec[list_key] = dict(type="list", elements="dict", options=elements)
    spec["purge"] = dict(type="bool", default=False)
    spec.update(module_options)
    return proxmox_argument_spec(**spec)


def list_diff(before, after, list_mode):
    """The ``diff`` result from ``{id: config}`` of the changed objects: as is in list mode, the one
    object's config in single mode."""
    if list_mode:
        return dict(before=before, after=after)
    return dict(before=next(iter(before.values()), {}), after=next(iter(after.values()), {}))


# ------------------------------------------------------------------------------ items validated per item
class ItemSpec(object):
    """The options of one object, used for the single-object options and for each list item.

    ``options`` is an Ansible argument spec with the real ``required`` and ``default`` values; it
    validates each object (together with ``rules``: mutually_exclusive, required_if, ... and
    ``check``, a function returning an error text for what an argument spec cannot say). The
    module's own argument spec (:meth:`argument_spec`) drops ``required`` and ``default``, so that
    an unset top-level option can be told apart from a default and list mode can refuse them.
    """

    def __init__(self, kind, list_name, identity, options, rules=None, check=None, key=None):
        self.kind = kind
        self._key = key
        self.list_name = list_name
        self.identity = identity
        self.options = options
        self.rules = rules or {}
        self.check = check

    def _loose(self):
        return dict((key, dict((k, v) for k, v in option.items() if k not in ("required", "default")))
                    for key, option in self.options.items())

    def argument_spec(self, **module_options):
        """Connection options + single-object options + the list option + ``purge`` + own options."""
        return list_argument_spec(self._loose(), self._loose(), self.list_name, **module_options)

    def module(self, **module_options):
        """The AnsibleModule for this spec (check mode supported)."""
        kwargs = proxmox_module_kwargs()
        kwargs["required_one_of"] = kwargs.get("required_one_of", []) + [self._required_one()]
        return AnsibleModule(argument_spec=self.argument_spec(**module_options), supports_check_mode=True, **kwargs)

    def _required_one(self):
        keys = [self.identity, self.list_name]
        for group in self.rules.get("required_one_of", []):
            if self.identity in group:  # e.g. resources: sid or vmid
                keys = list(group) + [self.list_name]
        return tuple(keys)

    def items(self, module):
        """``(items, list_mode)``: every object validated, defaults filled in; fails the module on bad input."""
        params = module.params
        given = sorted(k for k in self.options if params.get(k) is not None)
        if params.get(self.list_name) is not None:
            if given:
                module.fail_json(msg="%s: set %s inside each item of %s, not next to the list (list mode takes "
                                     "only %s and purge)" % (self.kind, ", ".join(given), self.list_name,
                                                             self.list_name))
            raw, list_mode = params[self.list_name], True
        else:
            if params.get("purge"):
                module.fail_json(msg="%s: purge needs list mode: give the complete list in %s"
                                     % (self.kind, self.list_name))
            raw, list_mode = [dict((k, params.get(k)) for k in self.options)], False
        validator = ArgumentSpecValidator(self.options, **self.rules)
        items, seen = [], set()
        for index, raw_entry in enumerate(raw):
            entry = dict((k, v) for k, v in (raw_entry or {}).items() if v is not None and k in self.options)
            label = "%s[%d]" % (self.list_name, index) if list_mode else self.kind
            result = validator.validate(entry)
            errors = list(result.error_messages)
            item = result.validated_parameters
            if not errors and self.check:
                error = self.check(item)
                if error:
                    errors.append(error)
            if errors:
                name = next((entry[k] for k in self._required_one()[:-1] if entry.get(k)), None)
                module.fail_json(msg="%s%s: %s" % (label, " (%s)" % name if name and list_mode else "",
                                                   "; ".join(errors)))
            key = self.key(item)
            if key in seen:
                module.fail_json(msg="%s: %s %s is listed twice; list each object once" % (label, self.kind, key))
            seen.add(key)
            items.append(item)
        return items, list_mode

    def key(self, item):
        """The object's id (its name, or ``vm:100`` for a resource)."""
        return self._key(item) if self._key else item[self.identity]


# ------------------------------------------------------------------------------ collections
def collection_argument_spec(manager_cls, **module_options):
    """The item options at the top level (single mode) and as elements of the list option (list mode).

    ``state`` is added to both: at the top level it defaults to ``present`` and is also the default
    of list entries that do not set their own. ``purge`` (list mode only) deletes the collection's
    other entries.
    """
    item_options = manager_cls.item_options
    spec = dict((key, dict(value)) for key, value in item_options.items())
    spec["state"] = dict(type="str", choices=list(STATES), default="present")
    elements = dict((key, dict(value)) for key, value in item_options.items())
    elements[manager_cls.id_key] = dict(elements[manager_cls.id_key], required=True)
    elements["state"] = dict(type="str", choices=list(STATES))
    return list_argument_spec(spec, elements, manager_cls.list_key, **module_options)


def collection_module_kwargs(manager_cls):
    """AnsibleModule() rules: one object or a list, never both; purge only with a list."""
    list_key = manager_cls.list_key
    kwargs = proxmox_module_kwargs()
    kwargs["mutually_exclusive"] = kwargs["mutually_exclusive"] + [(list_key, key) for key in sorted(manager_cls.item_options)]
    kwargs["required_one_of"] = kwargs["required_one_of"] + [(manager_cls.id_key, list_key)]
    kwargs["required_if"] = [("purge", True, (list_key,))]
    return kwargs


class Change(object):
    """One planned write: create, update or delete of the entry ``item_id`` (params as PVE takes them)."""

    def __init__(self, item_id, action, params=None, delete=None, before=None, after=None):
        self.item_id = item_id
        self.action = action
        self.params = dict((k, to_pve(v)) for k, v in (params or {}).items())
        self.delete = delete or []
        self.before = before or {}
        self.after = after or {}

    def request(self):
        """The parameters to send: ``params`` and, when keys are removed, ``delete`` as a comma list."""
        params = dict(self.params)
        if self.delete:
            params["delete"] = ",".join(self.delete)
        return params

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
        if change.action == "create":
            params = dict(change.request())
            params[self.id_key] = change.item_id
            self.client.post(self.path, what="creating " + what, **params)
        elif change.action == "update":
            self.client.put(self.item_path(change.item_id), what="updating " + what, **change.request())
        else:
            self.client.delete(self.item_path(change.item_id), what="removing " + what)

    def public(self, entry):
        """An entry as the module returns it."""
        return dict((k, v) for k, v in entry.items() if k != "digest")

    def predicted(self, item_id, entry, change):
        """The entry after ``change`` (no re-read: the same in check mode and after writing)."""
        if change is None:
            return None if entry is None else self.public(entry)
        if change.action == "delete":
            return None
        result = applied(None if entry is None else self.public(entry), change.request())
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


def run_collection_module(manager_cls, **module_options):
    """The whole run of a module built on ``manager_cls``, in single or list mode: validate, connect,
    read, plan, write (unless check mode), exit. ``module_options`` are the module's own options."""
    module = AnsibleModule(argument_spec=collection_argument_spec(manager_cls, **module_options),
                           supports_check_mode=True, **collection_module_kwargs(manager_cls))
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
        visible = VISIBLE_WITH.get(manager.path)
        for change in changes:
            if visible and change.action == "create":
                client.require_visible(visible[0] % change.item_id, visible[1], manager.what(change.item_id))
    except ProxmoxError as exc:
        module.fail_json(msg=exc.msg, status=exc.status)

    done = []
    if changes and not module.check_mode:
        for change in changes:
            try:
                manager.apply(change)
            except ProxmoxError as exc:
                already = ", ".join("%s %s" % (c.action, c.item_id) for c in done) or "nothing"
                module.fail_json(msg="%s (already applied in this run: %s)" % (exc.msg, already), status=exc.status,
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
        result["diff"] = list_diff(dict((c.item_id, c.before) for c in changes),
                                   dict((c.item_id, c.after) for c in changes), list_mode)
    module.exit_json(**result)


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
