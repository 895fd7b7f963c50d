"""Version personalities: what differs between a PVE 8.4 and a PVE 9.1 cluster.

Both personalities are served from the same apidata.js (pve-docs 9.1.x). PVE 8 is derived by
removing the paths and parameters that 8.4 does not have. Only the differences that matter to the
ailab.cluster modules are listed; the rest of the 9.1 schema is served as-is for both.

* PVE 8.4: HA groups work; ``/cluster/ha/rules*`` does not exist (501); HA resources have
  ``group`` and no ``failback``.
* PVE 9.1: HA groups have been migrated to HA rules: every ``/cluster/ha/groups*`` call fails
  with HTTP 500; node-affinity and resource-affinity rules live under ``/cluster/ha/rules``;
  resources have ``failback`` and setting ``group`` fails.
* PVE 9.1 upgraded from 8, groups not migrated yet (``9-upgraded``): the CRM migrates the groups
  only once every node is online, runs PVE 9 and has an active LRM, and quorum holds
  (pve-ha-manager src/PVE/HA/Manager.pm ``try_persistent_group_migration``). Until then group
  calls and the resources' ``group`` work, ``GET /cluster/ha/rules`` shows the computed
  ``ha-group-<group>`` rules, and rule writes fail with 500 "ha groups have not been migrated
  yet" (src/PVE/API2/HA/Rules.pm). Selected at run time with ``POST /_sim/personality``.
"""

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Personality:
    """Facts about one PVE major version that the simulator reports or enforces."""

    major: int
    version: str
    release: str
    repoid: str
    kernel: str
    drop_paths: tuple = ()
    drop_params: dict = field(default_factory=dict)
    groups_migrated: bool = True
    name: str = ""

    @property
    def ha_rules(self):
        """True when HA rules replace HA groups (PVE 9)."""
        return self.major >= 9

    def refusal(self, method, template):
        """The error message for a call this version refuses outright, else None.

        On PVE 9 every ``/cluster/ha/groups*`` call fails (before parameter checks), because
        the groups have been migrated to HA rules.
        """
        if self.ha_rules and self.groups_migrated and template.startswith("/cluster/ha/groups"):
            if method == "GET":
                verb = "index groups" if template == "/cluster/ha/groups" else "read group"
            else:
                verb = {"POST": "create group", "PUT": "update group", "DELETE": "delete group"}[method]
            return f"cannot {verb}: {HA_GROUPS_MIGRATED}"
        return None

    @property
    def pveversion(self):
        """The ``pveversion`` string of ``/nodes/{node}/status``."""
        return f"pve-manager/{self.version}/{self.repoid}"


HA_GROUPS_MIGRATED = "ha groups have been migrated to rules - use /cluster/ha/rules instead"

PVE8 = Personality(
    major=8,
    version="8.4.14",
    release="8.4",
    repoid="b502d23c55afcba1",
    kernel="6.8.12-15-pve",
    drop_paths=(
        "/cluster/ha/rules",
        "/cluster/ha/status/arm-ha",
        "/cluster/ha/status/disarm-ha",
        "/cluster/sdn/fabrics",
        "/nodes/{node}/sdn/fabrics",
    ),
    drop_params={
        ("POST", "/cluster/ha/resources"): ("failback",),
        ("PUT", "/cluster/ha/resources/{sid}"): ("failback",),
        ("DELETE", "/cluster/ha/resources/{sid}"): ("purge",),
        ("POST", "/nodes/{node}/qemu"): ("intel-tdx",),
        ("POST", "/nodes/{node}/qemu/{vmid}/config"): ("intel-tdx",),
        ("PUT", "/nodes/{node}/qemu/{vmid}/config"): ("intel-tdx",),
    },
)

PVE9 = Personality(
    major=9,
    version="9.1.2",
    release="9.1",
    repoid="9e0a1a1ebbc8ac33",
    kernel="6.17.2-1-pve",
)

# A PVE 9 cluster upgraded from 8 whose HA groups the CRM has not migrated to rules yet.
PVE9_UPGRADED = replace(PVE9, groups_migrated=False, name="9-upgraded")

PERSONALITIES = {8: PVE8, 9: PVE9, "9-upgraded": PVE9_UPGRADED}


def personality(major):
    """Return the Personality for major version 8 or 9, or ``"9-upgraded"``."""
    if major in PERSONALITIES:
        return PERSONALITIES[major]
    try:
        return PERSONALITIES[int(major)]
    except (KeyError, ValueError):
        raise ValueError(f"unsupported PVE personality {major!r}; choose 8, 9 or 9-upgraded") from None
