"""`make lab`: run site.yml on the sandbox inventory against the Proxmox VE API simulator.

The sandbox has no hardware: the Proxmox layer talks to tests/pvesim (a real HTTPS server with
the PVE API, PVE 9 personality by default; AILAB_PVE=8 for the PVE 8 one) started for this run.
The sandbox is persistent: the simulator keeps its CA in .cache/sandbox (the same CA file on
every run) and the cluster state in .cache/sandbox/state.json, so a second `make lab` sees what
the first created and changes nothing. `make lab-reset` (or `rm -rf .cache/sandbox`) starts over.
Extra arguments go to ansible-playbook, e.g. `make lab ARGS="--check --diff"`.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from pvesim.testing import SimulatorError, SimulatorProcess  # noqa: E402

SANDBOX = ROOT / ".cache" / "sandbox"
STATE_FILE = SANDBOX / "state.json"


def simulator_env(sim):
    """The AILAB_PVE_* variables inventories/sandbox reads its Proxmox connection from."""
    return {
        "AILAB_PVE_HOST": sim.host,
        "AILAB_PVE_PORT": str(sim.port),
        "AILAB_PVE_USER": sim.user,
        "AILAB_PVE_TOKEN_ID": sim.token_id,
        "AILAB_PVE_TOKEN_SECRET": sim.token_secret,
        "AILAB_PVE_CA": sim.ca_file,
    }


def main():
    pve = int(os.environ.get("AILAB_PVE", "9"))
    extra = shlex.split(os.environ.get("ARGS", ""))
    SANDBOX.mkdir(parents=True, exist_ok=True)
    kept = "continuing the sandbox in" if STATE_FILE.exists() else "new sandbox, kept in"
    print(f"==> sandbox: starting the Proxmox VE {pve} API simulator ({kept} {STATE_FILE.relative_to(ROOT)})",
          flush=True)
    try:
        sim = SimulatorProcess(pve=pve, state_dir=str(SANDBOX), persist=STATE_FILE).start()
    except SimulatorError as exc:
        print(f"==> sandbox: the simulator did not start: {exc}", file=sys.stderr)
        print("    To start the sandbox over: make lab-reset (or rm -rf .cache/sandbox)", file=sys.stderr)
        return 1
    with sim:
        print(f"    {sim.url} (CA {sim.ca_file})", flush=True)
        env = dict(os.environ, **simulator_env(sim))
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventories/sandbox", "site.yml", *extra]
        print(f"==> {' '.join(cmd)}", flush=True)
        rc = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
        log = sim.requests_log()
    writes = sum(1 for r in log if r.get("write"))
    print(f"==> sandbox done: ansible-playbook exited {rc}; the Proxmox VE API saw {len(log)} requests "
          f"({len(log) - writes} reads, {writes} writes).")
    print("    Layers run: the inventory check and Proxmox VE (cluster facts, guests, HA; GPU passthrough has no SSH")
    print("    hosts in the sandbox). The node, Kubernetes and platform layers have no reachable hosts here yet; to see")
    print("    every Kubernetes-facing layer of a whole lab as validated files: make export INVENTORY=inventories/example-lab")
    print(f"    The sandbox keeps its state in {STATE_FILE.relative_to(ROOT)}: the next `make lab` continues from "
          f"it. To start over: make lab-reset (or rm -rf .cache/sandbox)")
    print("    For a real lab: copy inventories/sandbox to inventories/<lab> and run "
          "ansible-playbook -i inventories/<lab> site.yml")
    return rc


if __name__ == "__main__":
    sys.exit(main())
