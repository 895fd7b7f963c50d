# -*- coding: utf-8 -*-
# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way ailab.cluster modules talk to the Proxmox VE API (private to the collection).

Connection options and their argument spec, PVE version detection, UPID task waiting that checks
the task's exit status, one clear message for API errors, 1/0 booleans, and retries with backoff
for reads (connection errors and HTTP 5xx) only: a write is never sent twice.

Also the one way to compare a PVE config with what a module wants (:func:`diff_config`, with
PVE's defaults for absent keys and :data:`REMOVE` for keys that must not be set) and to predict
the config after a write (:func:`applied`), and :class:`PveArray` for parameters PVE takes as
arrays.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

PROXMOXER_IMPORT_ERROR = None
try:
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import AuthenticationError, ResourceException
    import requests
except ImportError:  # pragma: no cover - reported by ProxmoxClient.from_module
    ProxmoxAPI = None
    AuthenticationError = ResourceException = Exception
    requests = None
    PROXMOXER_IMPORT_ERROR = traceback.format_exc()

# Shared by every Proxmox module; documented once in the ailab.cluster.proxmox doc fragment.
PROXMOX_CONNECTION_SPEC = dict(
    api_host=dict(type="str", required=True, fallback=(env_fallback, ["PROXMOX_HOST"])),
    api_port=dict(type="int", default=8006, fallback=(env_fallback, ["PROXMOX_PORT"])),
    api_user=dict(type="str", default="root@pam", fallback=(env_fallback, ["PROXMOX_USER"])),
    api_password=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_PASSWORD"])),
    api_token_id=dict(type="str", fallback=(env_fallback, ["PROXMOX_TOKEN_ID"])),
    api_token_secret=dict(type="str", no_log=True, fallback=(env_fallback, ["PROXMOX_TOKEN_SECRET"])),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["PROXMOX_VALIDATE_CERTS"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["PROXMOX_CA_PATH"])),
    api_timeout=dict(type="int", default=30),
    api_retries=dict(type="int", default=3),
)
PROXMOX_CONNECTION_REQUIRED_ONE_OF = [("api_password", "api_token_secret")]
PROXMOX_CONNECTION_REQUIRED_TOGETHER = [("api_token_id", "api_token_secret")]
PROXMOX_CONNECTION_MUTUALLY_EXCLUSIVE = [("api_password", "api_token_secret")]


def proxmox_argument_spec(**module_options):
    """Connection options plus the module's own options."""
    spec = dict(PROXMOX_CONNECTION_SPEC)
    spec.update(module_options)
    return spec


def proxmox_module_kwargs():
    """The connection's required/exclusive rules, to pass to AnsibleModule()."""
    return dict(
        required_one_of=list(PROXMOX_CONNECTION_REQUIRED_ONE_OF),
        required_together=list(PROXMOX_CONNECTION_REQUIRED_TOGETHER),
        mutually_exclusive=list(PROXMOX_CONNECTION_MUTUALLY_EXCLUSIVE),
    )


# Desired value meaning "remove this key from the PVE config" (sent in ``delete``).
REMOVE = "__ailab_remove__"


class PveArray(list):
    """A parameter PVE takes as an array (``map`` of a PCI mapping): sent as repeated form keys.

    :func:`to_pve` joins other lists with commas, which is right for comma-list strings such as
    storage ``content`` but breaks array items that contain commas.
    """


def to_pve(value):
    """PVE takes 1/0 for booleans (it rejects 'True'); lists become comma lists (a :class:`PveArray` stays one)."""
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, PveArray):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(to_pve(v)) for v in value)
    return value


def pve_params(params):
    """Drop unset (None) parameters and convert the rest with :func:`to_pve` (a :class:`PveArray` as a plain list)."""
    return dict((k, list(v) if isinstance(v, PveArray) else to_pve(v)) for k, v in params.items() if v is not None)


# ------------------------------------------------------------------------------ config comparison
def split_list(value):
    """A PVE comma list (or a Python list) as a list of stripped, non-empty strings."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def unordered_list(value):
    """Comparison key for comma lists whose order and repeats do not matter (content, nodes, vmid, HA resources)."""
    return ",".join(sorted(set(split_list(value))))


def with_defaults(entry, defaults):
    """A PVE config with PVE's ``defaults`` for the keys it does not set (None counts as not set)."""
    current = dict(defaults)
    current.update(dict((k, v) for k, v in (entry or {}).items() if v is not None))
    return current


def _plain(value):
    return None if value is None else str(to_pve(value)).strip()


def diff_config(desired, current, normalizers=None, defaults=None):
    """What to send so that ``current`` (a PVE config) matches ``desired``.

    ``desired`` maps PVE keys to values (converted with :func:`to_pve`); None means "not managed"
    and :data:`REMOVE` means "must not be set" (sent in ``delete`` when it is set). Values compare
    as PVE stores them (booleans as 1/0, numbers as text, surrounding spaces ignored). ``defaults``
    gives the value PVE assumes when a key is absent (``enabled`` = 1, ``disable`` = 0), so that
    setting a key to its default on an object that does not have it is not a change.
    ``normalizers`` maps keys to a function that makes two equivalent values equal
    (:func:`unordered_list`, prune strings, node priorities).

    Returns ``(params, delete, before, after)``: the parameters to write, the sorted keys to delete,
    and the managed keys' values before (as ``current`` has them) and after, for ``diff``.
    """
    normalizers = normalizers or {}
    current = current or {}
    compared = with_defaults(current, defaults or {})
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
        if norm(new) != norm(compared.get(key)):
            params[key] = new
    return params, sorted(delete), before, after


def config_changes(desired, current, unordered=()):
    """:func:`diff_config` without defaults or removals: ``(changes, before, after)``.

    The keys in ``unordered`` compare as comma lists whose order does not matter (for example
    storage ``content`` or ``nodes``).
    """
    changes, delete, before, after = diff_config(desired, current, dict((k, unordered_list) for k in unordered))
    return changes, before, after


def applied(current, params):
    """``current`` after a write of ``params`` as PVE takes them: ``delete`` (a comma list) removes keys,
    ``digest`` is no config key, a :class:`PveArray` is stored as a list."""
    after = dict(current or {})
    after.update((k, list(v) if isinstance(v, PveArray) else v) for k, v in params.items()
                 if k not in ("delete", "digest"))
    for key in split_list(params.get("delete")):
        after.pop(key, None)
    return after


class ProxmoxError(Exception):
    """An API or task failure, already phrased for the user."""

    def __init__(self, msg, status=None, errors=None):
        super(ProxmoxError, self).__init__(msg)
        self.msg = msg
        self.status = status
        self.errors = errors or {}


def describe_api_error(exc, what):
    """One sentence for a failed call on ``what`` (e.g. "VM 100 on pve-1")."""
    status = getattr(exc, "status_code", None)
    reason = getattr(exc, "status_message", None) or ""
    content = getattr(exc, "content", None) or ""
    errors = getattr(exc, "errors", None) or {}
    if status == 401:
        hint = "authentication failed: check api_user and api_password or api_token_id/api_token_secret"
    elif status == 403:
        hint = "permission denied: give the API user or token the privileges this action needs"
    elif status == 400 and errors:
        hint = "invalid parameters: " + "; ".join("%s: %s" % (k, str(v).strip()) for k, v in sorted(errors.items()))
    elif status == 501:
        hint = "this Proxmox VE version does not have that API call (%s)" % (content or reason).strip()
    else:
        hint = (content or reason or str(exc)).strip()
    return ProxmoxError("Proxmox VE API error on %s (HTTP %s): %s" % (what, status, hint), status=status, errors=errors)


def describe_connection_error(exc, endpoint, what):
    """One sentence for a request that never got an HTTP answer."""
    if isinstance(exc, requests.exceptions.SSLError):
        hint = ("the API certificate is not trusted: set ca_path to the CA that signed it "
                "(a copy of /etc/pve/pve-root-ca.pem from a node)")
    elif isinstance(exc, requests.exceptions.Timeout):
        hint = "no answer in time: check the address or raise api_timeout"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        hint = "connection failed: check api_host, api_port and that pveproxy runs and is reachable"
    else:
        hint = "request failed"
    reason = str(exc)
    if len(reason) > 300:
        reason = reason[:300] + "..."
    return ProxmoxError("Cannot connect to the Proxmox VE API at %s for %s: %s (%s)" % (endpoint, what, hint, reason))


class ProxmoxClient(object):
    """A proxmoxer session with the collection's rules for reads, writes and tasks."""

    def __init__(self, api, endpoint="", retries=3, backoff=0.5, sleep=time.sleep):
        self.api = api
        self.endpoint = endpoint
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._version = None
        self.reads = 0
        self.writes = 0
        self.userid = None  # user@realm of the connection (a token's user), set by from_module

    @classmethod
    def from_module(cls, module):
        """Connect with the module's connection options, or fail the module with what to fix."""
        if PROXMOXER_IMPORT_ERROR:
            module.fail_json(msg=missing_required_lib("proxmoxer and requests"), exception=PROXMOXER_IMPORT_ERROR)
        p = module.params
        if not p["validate_certs"]:
            # proxmoxer silences urllib3's InsecureRequestWarning on import: say it here, on every run.
            module.warn("validate_certs is false: the certificate of the Proxmox VE API at %s is not checked, so "
                        "anyone on the network path can read the API token. Give the cluster's CA with ca_path "
                        "(/etc/pve/pve-root-ca.pem on a node) and keep validate_certs on." % p["api_host"])
        verify = p["ca_path"] if (p["validate_certs"] and p["ca_path"]) else p["validate_certs"]
        kwargs = dict(port=p["api_port"], user=p["api_user"], verify_ssl=verify, timeout=p["api_timeout"])
        if p["api_token_secret"]:
            user, token = p["api_user"], p["api_token_id"]
            if "!" in token:  # accept the full "user@realm!name" form too; a user name may contain "!", a token name not
                user, token = token.rsplit("!", 1)
            kwargs.update(user=user, token_name=token, token_value=p["api_token_secret"])
        else:
            kwargs.update(password=p["api_password"])
        endpoint = "%s:%s" % (p["api_host"], p["api_port"])
        try:
            # Password logins ask for a ticket here; token sessions send nothing yet.
            api = ProxmoxAPI(p["api_host"], **kwargs)
        except AuthenticationError:
            module.fail_json(msg="Proxmox VE login as %s at %s failed: authentication failed: check api_user and "
                                 "api_password (or use api_token_id/api_token_secret)" % (p["api_user"], endpoint))
        except requests.exceptions.RequestException as exc:
            module.fail_json(msg=describe_connection_error(exc, endpoint, "login").msg)
        client = cls(api, endpoint=endpoint, retries=max(p["api_retries"], 0))
        client.userid = kwargs["user"]
        return client

    # -------------------------------------------------------------------- calls
    def _resource(self, path):
        return self.api(path.strip("/"))

    def get(self, path, /, what=None, answer_if=None, **params):
        """GET with retries and backoff on connection errors and HTTP 5xx.

        ``answer_if`` (optional): a 5xx whose message contains this text is the API's answer, not a fault,
        and is raised at once (PVE 9 answers every HA group call with a 500 once groups are rules).
        """
        attempt = 0
        while True:
            self.reads += 1
            try:
                return self._resource(path).get(**pve_params(params))
            except ResourceException as exc:
                answer = answer_if is not None and answer_if in (getattr(exc, "content", None) or "")
                if exc.status_code < 500 or exc.status_code == 501 or attempt >= self.retries or answer:
                    raise describe_api_error(exc, what or path) from exc
            except requests.exceptions.RequestException as exc:
                if attempt >= self.retries or isinstance(exc, requests.exceptions.SSLError):
                    raise describe_connection_error(exc, self.endpoint, what or path) from exc
            attempt += 1
            self._sleep(self.backoff * (2 ** (attempt - 1)))

    def _write(self, method, path, what, params):
        self.writes += 1
        try:
            return getattr(self._resource(path), method)(**pve_params(params))
        except ResourceException as exc:
            raise describe_api_error(exc, what or path) from exc
        except requests.exceptions.RequestException as exc:
            raise describe_connection_error(exc, self.endpoint, what or path) from exc

    def post(self, path, /, what=None, **params):
        return self._write("post", path, what, params)

    def put(self, path, /, what=None, **params):
        return self._write("put", path, what, params)

    def delete(self, path, /, what=None, **params):
        return self._write("delete", path, what, params)

    # -------------------------------------------------------------------- privileges
    def require_visible(self, path, privileges, what):
        """Fail when the caller may not see ``what`` on ACL ``path``.

        Proxmox VE filters its lists by permission: an object the API user or token may not see is
        simply absent, as if it did not exist. Call this before creating an object that a list did
        not show: without one of ``privileges`` on ``path`` the module would try to recreate what
        it only cannot see, so it fails with "missing privilege X on path Y" instead. One read of
        ``/access/permissions`` (answered for the caller itself), made only when something is to be
        created and not for root@pam, which sees everything (the collection's own token, made by the
        ailab.cluster.proxmox_api_user role, belongs to a user of its own).
        """
        if self.userid == "root@pam":
            return
        # ``path`` is the API's query parameter here; get() takes its own path positionally only.
        held = self.get("access/permissions", "the privileges of the API user", path=path) or {}  # pylint: disable=kwarg-superseded-by-positional-arg
        privileges_here = held.get(path) or {}
        if any(privilege in privileges_here for privilege in privileges):
            return
        raise ProxmoxError(
            "missing privilege %s on path %s: the API user or token cannot see %s, so it cannot tell whether it "
            "already exists; give it %s on %s (docs/proxmox_privileges.md lists what each module needs, the "
            "ailab.cluster.proxmox_api_user role grants it)"
            % (" or ".join(privileges), path, what, privileges[0], path), status=403)

    # -------------------------------------------------------------------- version
    @property
    def version(self):
        """``/version`` of the node answering, read once."""
        if self._version is None:
            self._version = self.get("version", what="the API version")
        return self._version

    @property
    def major(self):
        """Major PVE release (8, 9, ...)."""
        return int(str(self.version.get("release") or self.version["version"]).split(".", 1)[0])

    # -------------------------------------------------------------------- tasks
    def wait_task(self, node, upid, what, timeout=600, poll=0.2):
        """Wait for a UPID task and fail with the tail of its log unless it ended OK."""
        deadline = time.time() + timeout
        delay = min(poll, 0.05)
        while True:
            status = self.get("nodes/%s/tasks/%s/status" % (node, upid), what="task %s" % upid)
            if status.get("status") == "stopped":
                break
            if time.time() > deadline:
                raise ProxmoxError("Timed out after %ss waiting for %s (task %s still running)" % (timeout, what, upid))
            self._sleep(delay)
            delay = min(delay * 2, poll * 5)
        exitstatus = status.get("exitstatus", "")
        if exitstatus == "OK" or str(exitstatus).startswith("WARNINGS"):
            return status
        tail = self.task_log_tail(node, upid)
        raise ProxmoxError("%s failed: %s. Task log tail: %s" % (what, exitstatus or "unknown error", " | ".join(tail)))

    def task_log_tail(self, node, upid, lines=10, page=500, max_pages=40):
        """The last ``lines`` lines of a task log, in one read: ``limit=0`` returns the whole log.

        pve-manager PVE/API2/Tasks.pm read_task_log passes ``limit`` to pve-common PVE::Tools::dump_logfile,
        which reads to the end of the file when it is 0 (``read_until_end``); without ``limit`` PVE returns
        the first 50 lines only, and a page of 500 would miss the end of a long log, where the error is.
        A node whose pve-common predates ``read_until_end`` treats 0 as the default and answers exactly 50
        lines: then the rest of the log is read a page at a time (``page`` lines, at most ``max_pages`` pages) until
        a page comes back short.
        """
        what = "task %s log" % upid
        path = "nodes/%s/tasks/%s/log" % (node, upid)
        log = self.get(path, what=what, limit=0)
        tail = list(log[-lines:]) if isinstance(log, list) else []
        if isinstance(log, list) and len(log) == 50:  # an old node: 0 meant 50
            start, pages, log = 50, 1, [None] * page
            while len(log) >= page and pages < max_pages:
                log = self.get(path, what=what, start=start, limit=page)
                if not isinstance(log, list):
                    break
                tail = (tail + list(log))[-lines:]
                start += page
                pages += 1
        return [line.get("t", "") for line in tail if isinstance(line, dict)]
