"""Endpoint implementations, registered per ``(method, schema path template)``.

Each module registers handlers with ``@route("GET", "/cluster/status")``. A handler receives a
``Call`` (validated parameters, the caller, the state) and returns the ``data`` of the answer.
Paths that exist in the schema but have no handler answer 501 ("not modelled"), except GET
directory indexes (``/cluster``, ``/nodes/{node}``...), which are generated from the schema.
"""

from dataclasses import dataclass

ROUTES = {}


def route(method, template):
    """Register the decorated function as the handler of ``method template``."""

    def register(function):
        ROUTES[(method, template)] = function
        return function

    return register


@dataclass
class Call:
    """One validated API call as handlers see it."""

    app: object
    method: object
    params: dict
    principal: object

    @property
    def state(self):
        """The ClusterState."""
        return self.app.state

    @property
    def personality(self):
        """The PVE version personality."""
        return self.app.personality

    def task(self, node, task_type, task_id, work=None, duration=None, undo=None, lines=()):
        """Start a worker task on ``node`` and return its UPID string (see TaskRunner.start)."""
        task = self.app.tasks.start(node, task_type, task_id, self.principal.name, work, duration, undo)
        for line in lines:
            task.log(line)
        return task.upid

    def get(self, name, default=None):
        """A parameter value (validated and coerced) or ``default``."""
        return self.params.get(name, default)


def load_endpoints():
    """Import every endpoint module so that their routes are registered."""
    from . import access, backup, cluster, clusterconfig, guests, ha, mapping, nodes, storage  # noqa: F401

    return ROUTES
