"""Benchmark of the node layer: converge node_prep + containerd + kubernetes_packages on 1, 3 and 6 nodes.

Prints figures, asserts nothing about time. For each size N it starts N systemd containers from
ailab-test/debian:12 (the molecule node image), refreshes their apt lists (not timed: a real node
has them), then times

* converge: molecule/node_layer/converge.yml on all N nodes (fresh nodes, packages installed), and
* no-op:    the same playbook again, which must report changed=0 on every node,

and finally prints the 6/1 growth ratio of both. One run per size; the containers are removed at
the end (only the ones this script created, by name).

Usage: .venv/bin/python tests/benchmarks/node_layer.py [--sizes 1,3,6] [--image ailab-test/debian:12] [--keep]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "molecule" / "node_layer"
PREFIX = "ailab-bench-node"
RUN_OPTS = [
    "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns", "host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/containerd",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def start(names, image):
    for name in names:
        sh(["docker", "run", "-d", "--name", name, "--hostname", name, *RUN_OPTS, image, "/lib/systemd/systemd"],
           stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            state = subprocess.run(["docker", "exec", name, "systemctl", "is-system-running"],
                                   check=False, capture_output=True, text=True).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: systemd not up ({state})")
            time.sleep(0.5)


def remove(names):
    if names:
        subprocess.run(["docker", "rm", "-f", "-v", *names], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def inventory(names, path):
    lines = ["all:", "  children:", "    k8s_cluster:", "      hosts:"]
    lines += [f"        {n}: {{ansible_connection: community.docker.docker}}" for n in names]
    lines += ["    kube_control_plane:", "      hosts:", f"        {names[0]}: {{}}"]
    path.write_text("\n".join(lines) + "\n")


def playbook(play, inv, env):
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), str(play)], cwd=ROOT, env=env,
                          check=False, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit(f"{play.name} failed (rc={proc.returncode})")
    changed = [int(c) for c in re.findall(r"changed=(\d+)", proc.stdout)]
    return seconds, changed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,3,6")
    ap.add_argument("--image", default="ailab-test/debian:12")
    ap.add_argument("--keep", action="store_true", help="keep the containers of the last size")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    env = dict(os.environ,
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               ANSIBLE_PIPELINING="true",
               ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_GATHERING="implicit",
               ANSIBLE_FORKS="20",
               ANSIBLE_NOCOLOR="1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ailab-bench-") as tmp:
        for n in sizes:
            names = [f"{PREFIX}-{i}" for i in range(1, n + 1)]
            remove(names)
            try:
                start(names, args.image)
                inv = Path(tmp) / f"inventory-{n}.yml"
                inventory(names, inv)
                playbook(SCENARIO / "prepare.yml", inv, env)
                converge_s, converge_changed = playbook(SCENARIO / "converge.yml", inv, env)
                noop_s, noop_changed = playbook(SCENARIO / "converge.yml", inv, env)
                rows.append((n, converge_s, sum(converge_changed), noop_s, noop_changed))
                print(f"nodes={n}: converge {converge_s:6.1f}s (changed={sum(converge_changed)}), "
                      f"no-op {noop_s:6.1f}s (changed per node={noop_changed})", flush=True)
            finally:
                if not (args.keep and n == sizes[-1]):
                    remove(names)

    print()
    print(f"{'nodes':>5}  {'converge s':>10}  {'no-op s':>8}  no-op changed=0")
    for n, c, _first_changed, o, oc in rows:
        print(f"{n:>5}  {c:>10.1f}  {o:>8.1f}  {'yes' if all(x == 0 for x in oc) else 'NO ' + str(oc)}")
    first = {r[0]: r for r in rows}
    if 1 in first and 6 in first:
        print(f"growth 6/1: converge x{first[6][1] / first[1][1]:.2f}, no-op x{first[6][3] / first[1][3]:.2f}")
    return 0 if all(all(x == 0 for x in r[4]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
