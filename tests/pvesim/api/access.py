"""``/access/ticket``: password login (and ticket renewal) returning ticket + CSRF token."""

from ..errors import NotModelled
from . import route


@route("GET", "/access/ticket")
def login_form(call):
    """PVE's dummy GET (exists for login pages); answers null."""
    return None


@route("POST", "/access/ticket")
def create_ticket(call):
    """Log in with ``username`` + ``password`` (or a valid ticket as password)."""
    if call.get("path") or call.get("tfa-challenge"):
        raise NotModelled("POST", "/access/ticket (path/privs or TFA)")
    principal = call.app.auth.login(call.get("username"), call.get("password"), call.get("realm"))
    ticket, csrf = call.app.auth.issue(principal.userid)
    call.principal = principal
    answer = {
        "username": principal.userid,
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "cap": {
            "vms": {"VM.Audit": 1, **({"VM.Allocate": 1, "VM.PowerMgmt": 1} if principal.role == "admin" else {})},
            "storage": {"Datastore.Audit": 1, **({"Datastore.Allocate": 1} if principal.role == "admin" else {})},
            "nodes": {"Sys.Audit": 1, **({"Sys.Modify": 1, "Sys.Console": 1} if principal.role == "admin" else {})},
        },
    }
    if call.state.cluster_name:  # a standalone node has no cluster name to report
        answer["clustername"] = call.state.cluster_name
    return answer
