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
import resource
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


def node_cpu_seconds(names):
    """CPU time used so far by the containers (cgroup v1 cpuacct, or v2 cpu.stat), in seconds."""
    total = 0.0
    for name in names:
        cid = sh(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True).stdout.strip()
        v1 = Path("/sys/fs/cgroup/cpuacct/docker", cid, "cpuacct.usage")
        v2 = Path("/sys/fs/cgroup/system.slice", f"docker-{cid}.scope", "cpu.stat")
        if v1.exists():
            total += int(v1.read_text()) / 1e9
        elif v2.exists():
            total += int(re.search(r"usage_usec (\d+)", v2.read_text()).group(1)) / 1e6
        else:
            return None
    return total


def controller_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def playbook(play, inv, env, names=()):
    """Run one playbook; returns wall seconds, changed counts and (controller, nodes) CPU seconds."""
    nodes_before, ctl_before = node_cpu_seconds(names), controller_cpu_seconds()
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), str(play)], cwd=ROOT, env=env,
                          check=False, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit(f"{play.name} failed (rc={proc.returncode})")
    changed = [int(c) for c in re.findall(r"changed=(\d+)", proc.stdout)]
    nodes_after = node_cpu_seconds(names)
    nodes_cpu = None if nodes_before is None or nodes_after is None else nodes_after - nodes_before
    return seconds, changed, (controller_cpu_seconds() - ctl_before, nodes_cpu)


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
                for run in ("converge", "no-op"):
                    seconds, changed, (ctl, nodes) = playbook(SCENARIO / "converge.yml", inv, env, names)
                    rows.append(dict(nodes=n, run=run, wall=seconds, changed=changed, ctl=ctl, node_cpu=nodes))
                    print(f"nodes={n} {run}: {seconds:6.1f}s, changed per node={changed}, CPU controller "
                          f"{ctl:.1f}s, nodes {fmt(nodes)}s", flush=True)
            finally:
                if not (args.keep and n == sizes[-1]):
                    remove(names)

    cpus = os.cpu_count()
    print()
    print(f"{'nodes':>5}  {'run':<8}  {'wall s':>7}  {'ctl CPU s':>9}  {'node CPU s':>10}  {'CPU floor s':>11}  {'wall/floor':>10}  changed=0")
    for r in rows:
        floor = None if r["node_cpu"] is None else (r["ctl"] + r["node_cpu"]) / cpus
        r["floor"] = floor
        ok = "yes" if all(x == 0 for x in r["changed"]) else "no"
        print(f"{r['nodes']:>5}  {r['run']:<8}  {r['wall']:>7.1f}  {r['ctl']:>9.1f}  {fmt(r['node_cpu']):>10}  "
              f"{fmt(floor):>11}  {fmt(None if floor is None else r['wall'] / floor, 2):>10}  "
              f"{ok if r['run'] == 'no-op' else '-'}")
    by = dict(((r["nodes"], r["run"]), r) for r in rows)
    big = max(sizes)
    if 1 in sizes and big > 1:
        print()
        print(f"{cpus} CPUs. CPU floor = (controller + node CPU seconds) / CPUs: no run of that work can be faster here.")
        for run in ("converge", "no-op"):
            one, many = by[(1, run)], by[(big, run)]
            growth = many["wall"] / one["wall"]
            line = f"growth {big}/1 {run}: wall x{growth:.2f} (target <= x1.5: {'PASS' if growth <= 1.5 else 'FAIL'})"
            if many["floor"]:
                line += (f"; CPU work x{(many['ctl'] + many['node_cpu']) / (one['ctl'] + one['node_cpu']):.2f}; "
                         f"{big}-node floor / 1-node wall x{many['floor'] / one['wall']:.2f}")
            print(line)
    return 0 if all(all(x == 0 for x in r["changed"]) for r in rows if r["run"] == "no-op") else 1


def fmt(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
