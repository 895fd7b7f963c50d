"""Start or stop the Proxmox VE API simulator (tests/pvesim) of a molecule scenario.

    python simulator.py start STATE_DIR [SEED]   # SEED: lab (the default), or a pvesim seed name or file
    python simulator.py stop STATE_DIR

``start`` runs ``python -m pvesim`` in its own session (it outlives the create playbook), waits
until it serves, and leaves ``STATE_DIR/pvesim.json`` (address, CA file, credentials, control
token: what the scenario's inventory reads) and ``STATE_DIR/pvesim.pid``. A running simulator is
kept. ``stop`` ends the process of the pid file and removes STATE_DIR.

The seed ``lab`` is pvesim's ``empty`` seed (the two-node cluster ``ailab`` with its storages and
GPUs, no guest, no PCI mapping) plus one running VM, ``lab-vm`` (300) on pve-1, for the roles that
configure existing guests (HA, backup). ``standalone`` is the same nodes before the cluster exists.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[3] / "tests"
LAB_VM = {
    "vmid": 300, "type": "qemu", "node": "pve-1", "status": "running",
    "config": {"name": "lab-vm", "memory": "2048", "cores": 2, "ostype": "l26", "scsihw": "virtio-scsi-single",
               "scsi0": "local-lvm:vm-300-disk-0,size=8G", "net0": "virtio=BC:24:11:00:03:00,bridge=vmbr0"},
}


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def lab_seed(state_dir):
    """pvesim's empty seed plus LAB_VM, as a JSON seed file in state_dir."""
    sys.path.insert(0, str(TESTS))
    from pvesim.seed import empty_seed  # noqa: PLC0415 - found through TESTS only

    seed = empty_seed()
    seed["guests"] = [LAB_VM]
    path = state_dir / "seed.json"
    path.write_text(json.dumps(seed), encoding="utf-8")
    return str(path)


def start(state_dir, seed="lab"):
    pid_file, info_file = state_dir / "pvesim.pid", state_dir / "pvesim.json"
    if pid_file.exists() and alive(int(pid_file.read_text())) and info_file.exists():
        return 0
    state_dir.mkdir(parents=True, exist_ok=True)
    info_file.unlink(missing_ok=True)
    if seed == "lab":
        seed = lab_seed(state_dir)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    with open(state_dir / "pvesim.log", "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "pvesim", "--pve", os.environ.get("AILAB_PVE", "9"), "--port", "0",
             "--state-dir", str(state_dir), "--seed", seed, "--stats-interval", "0", "--ha-round", "0.05"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"pvesim exited with {process.returncode}: "
                     f"{(state_dir / 'pvesim.log').read_text(errors='replace')[-2000:]}")
        if info_file.exists() and json.loads(info_file.read_text() or "{}").get("pid") == process.pid:
            print(f"pvesim (PVE {os.environ.get('AILAB_PVE', '9')}, seed {seed}) at "
                  f"{json.loads(info_file.read_text())['url']}, pid {process.pid}")
            return 0
        time.sleep(0.2)
    process.kill()
    sys.exit("pvesim did not start within 60 s")


def stop(state_dir):
    pid_file = state_dir / "pvesim.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _attempt in range(50):
                if not alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    directory = Path(sys.argv[2])
    sys.exit(start(directory, *sys.argv[3:4]) if sys.argv[1] == "start" else stop(directory))
