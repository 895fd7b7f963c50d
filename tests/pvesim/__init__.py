"""pvesim - a schema-faithful Proxmox VE API simulator for tests and sandboxes.

It serves the PVE REST API over HTTPS (with its own CA) so that ``proxmoxer`` and other clients
talk to it unmodified. Every request is validated against the official API schema
(``apidata.js``); a small in-memory cluster model answers the endpoints the ailab.cluster
modules use, with PVE 8 and PVE 9 personalities, tasks with UPIDs, quorum, HA, fault
injection and a request log.

Run it with ``PYTHONPATH=tests python -m pvesim --pve 9 --port 0 --state-dir DIR`` or from
Python with ``pvesim.testing.SimulatorProcess``. See ``docs/pvesim.md``.
"""

__version__ = "1.0.0"
