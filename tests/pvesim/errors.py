"""Exceptions that the simulator turns into Proxmox VE style HTTP error responses.

PVE answers errors in three shapes, and handlers raise the matching exception:

* ``ParamError`` - HTTP 400 ``Parameter verification failed.`` with a per-parameter
  ``errors`` object in the body (schema validation, ``raise_param_exc`` in PVE).
* ``ApiError`` - any other status with the message as the HTTP reason phrase and in the
  body's ``message`` (semantic failures are 500, like a ``die`` in a PVE API handler).
* ``NotModelled`` - HTTP 501 for paths that exist in the schema but that the simulator
  does not implement.
"""


class ApiError(Exception):
    """An API failure with an HTTP status and a one-line message (PVE ``die``)."""

    def __init__(self, message, status=500):
        super().__init__(message)
        self.status = status
        self.message = message.rstrip("\n")


class ParamError(ApiError):
    """HTTP 400 with an ``errors`` object keyed by parameter name (PVE ``raise_param_exc``)."""

    def __init__(self, errors, message="Parameter verification failed."):
        super().__init__(message, status=400)
        self.errors = dict(errors)


class AuthError(ApiError):
    """HTTP 401: missing or invalid ticket, token or CSRF token."""

    def __init__(self, message="No ticket"):
        super().__init__(message, status=401)


class PermissionDenied(ApiError):
    """HTTP 403: authenticated, but the principal lacks a privilege."""

    def __init__(self, message):
        super().__init__(message, status=403)


class NotImplementedPath(ApiError):
    """HTTP 501: the method and path are not part of the API schema."""

    def __init__(self, method, path):
        super().__init__(f"Method '{method} {path}' not implemented", status=501)


class NotModelled(ApiError):
    """HTTP 501: the endpoint exists in the PVE schema but the simulator does not model it."""

    def __init__(self, method, template):
        super().__init__(
            f"Method '{method} {template}' exists in the Proxmox VE API but is not modelled by pvesim",
            status=501,
        )


class TaskFailure(Exception):
    """Raised inside a task worker; the message becomes the task's ``exitstatus``."""
