"""Benchmark of the node layer: two commits side by side, converge and no-op re-run, per node.

Prints figures; the targets below are printed PASS/FAIL, no test fails on them. For each size N it
starts 2N systemd containers from ailab-test/debian:12 (the molecule node image): N for the BASE
commit and N for the working tree (NEW). Their apt lists are refreshed first (not timed: a real node
has them). Then, interleaved (base, new, base, new), it runs molecule/node_layer/converge.yml of each
tree on its own fresh nodes (converge) and again (no-op, which must report changed=0 on every node).

The base is a copy of the commit (`git archive`) in a temporary directory, resolved as the
collection ailab.cluster through its own ANSIBLE_COLLECTIONS_PATH, so each run uses its own roles,
filters and playbook; the working tree runs through the checkout's .collections. Both use the
checkout's ansible.cfg and the same Ansible settings.

Per node and run it prints:

* tasks: the tasks executed for the node (ok, changed or failed; not skipped), counted by the
  callback tests/benchmarks/callback_plugins/bench_tasks.py, and how many of them ran on the
  controller only (assert, set_fact, debug, includes);
* ctl CPU s: the controller's CPU seconds (ansible-playbook and its workers, from getrusage)
  divided by N: forks run every node's tasks in one process tree, so a per-node share is the
  average;
* node CPU s: the CPU seconds the node's container used (its cgroup's cpuacct.usage or cpu.stat).

and the ratios new/base. Absolute seconds on a shared machine are noise; ratios of runs made in
the same minutes on the same machine are what the targets read:

* a no-op re-run executes at most half of the base's tasks per node;
* a no-op re-run uses at most 60 % of the base's controller CPU per node;
* the no-op reports changed=0 on every node (base and new).

Usage: .venv/bin/python tests/benchmarks/node_layer.py [--base REV] [--sizes 1,3] [--rounds 1]
       [--image ailab-test/debian:12] [--keep]
The containers are removed at the end (only the ones this script created, by name).
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
# The last commit before the no-op re-run was made cheaper (docs/benchmarks.md, node layer).
DEFAULT_BASE = "a75f55e443c5dda4b26a2fb297fb23ccb564f450"
PREFIX = "ailab-bench-node"
RUN_OPTS = [
    "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns", "host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/containerd",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
]
VARIANTS = ("base", "new")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def start(names, image):
    for name in names:
        sh(["docker", "run", "-d", "--name", name, "--hostname", name, *RUN_OPTS, image, "/lib/systemd/systemd"],
           stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
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
        subprocess.run(["docker", "rm", "-f", "-v", *names], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def inventory(names, path):
    lines = ["all:", "  children:", "    k8s_cluster:", "      hosts:"]
    lines += [f"        {n}: {{ansible_connection: community.docker.docker}}" for n in names]
    lines += ["    kube_control_plane:", "      hosts:", f"        {names[0]}: {{}}"]
    path.write_text("\n".join(lines) + "\n")


def node_cpu_seconds(name):
    """CPU time used so far by one container (cgroup v1 cpuacct, or v2 cpu.stat), in seconds; None if unknown."""
    cid = sh(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True).stdout.strip()
    v1 = Path("/sys/fs/cgroup/cpuacct/docker", cid, "cpuacct.usage")
    v2 = Path("/sys/fs/cgroup/system.slice", f"docker-{cid}.scope", "cpu.stat")
    if v1.exists():
        return int(v1.read_text()) / 1e9
    if v2.exists():
        return int(re.search(r"usage_usec (\d+)", v2.read_text()).group(1)) / 1e6
    return None


def controller_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_base(rev, tmp):
    """The base commit as its own collection: <tmp>/base (the tree) and <tmp>/base-collections."""
    tree = tmp / "base"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    link = tmp / "base-collections" / "ansible_collections" / "ailab" / "cluster"
    link.parent.mkdir(parents=True)
    link.symlink_to(tree)
    return tree, tmp / "base-collections"


def environment(collections, roles, tasks_out):
    return dict(os.environ,
                ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                ANSIBLE_COLLECTIONS_PATH=str(collections),
                ANSIBLE_ROLES_PATH=str(roles),
                ANSIBLE_PIPELINING="true",
                ANSIBLE_CACHE_PLUGIN="memory",
                ANSIBLE_GATHERING="implicit",
                ANSIBLE_FORKS="20",
                ANSIBLE_NOCOLOR="1",
                ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
                ANSIBLE_CALLBACKS_ENABLED="bench_tasks",
                AILAB_BENCH_TASKS_OUT=str(tasks_out))


def playbook(play, inv, env, names=()):
    """Run one playbook; returns wall seconds, per-node counts, controller CPU and per-node CPU seconds."""
    nodes_before = {n: node_cpu_seconds(n) for n in names}
    ctl_before = controller_cpu_seconds()
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv), str(play)],
                          cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    seconds = time.monotonic() - started
    ctl = controller_cpu_seconds() - ctl_before
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-6000:] + proc.stderr[-2000:])
        raise SystemExit(f"{play} failed (rc={proc.returncode})")
    counts = json.loads(Path(env["AILAB_BENCH_TASKS_OUT"]).read_text())
    nodes = {}
    for n in names:
        after = node_cpu_seconds(n)
        nodes[n] = None if after is None or nodes_before[n] is None else after - nodes_before[n]
    return seconds, counts, ctl, nodes


def fmt(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"


def ratio(new, base):
    return None if new is None or not base else new / base


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=DEFAULT_BASE, help="commit to compare the working tree with")
    ap.add_argument("--sizes", default="1,3")
    ap.add_argument("--rounds", type=int, default=1, help="converge + no-op pairs per variant and size (fresh nodes each)")
    ap.add_argument("--image", default="ailab-test/debian:12")
    ap.add_argument("--keep", action="store_true", help="keep the containers of the last size and round")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base_rev = sh(["git", "rev-parse", "--short=12", args.base], cwd=ROOT, capture_output=True).stdout.strip()
    new_rev = sh(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True).stdout.strip()
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True).stdout.strip()
    print(f"base {base_rev}; new: working tree at {new_rev}{' with local changes' if dirty else ''}; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the start", flush=True)

    runs = []  # dict(size, round, variant, phase, wall, counts, ctl, nodes, names)
    with tempfile.TemporaryDirectory(prefix="ailab-bench-") as tmpdir:
        tmp = Path(tmpdir)
        base_tree, base_collections = make_base(args.base, tmp)
        trees = {"base": (base_tree, base_collections), "new": (ROOT, ROOT / ".collections")}
        envs = {v: environment(trees[v][1], trees[v][0] / "roles", tmp / f"tasks-{v}.json") for v in VARIANTS}
        for n in sizes:
            for rnd in range(1, args.rounds + 1):
                names = {v: [f"{PREFIX}-{v}-{i}" for i in range(1, n + 1)] for v in VARIANTS}
                everyone = names["base"] + names["new"]
                remove(everyone)
                try:
                    start(everyone, args.image)
                    invs = {}
                    for v in VARIANTS:
                        invs[v] = tmp / f"inventory-{v}-{n}.yml"
                        inventory(names[v], invs[v])
                    # Untimed: apt lists (a real node has them). Both variants' nodes at once.
                    both = tmp / f"inventory-both-{n}.yml"
                    inventory(everyone, both)
                    playbook(ROOT / "molecule" / "node_layer" / "prepare.yml", both, envs["new"])
                    for phase in ("converge", "no-op"):
                        for v in VARIANTS:
                            play = trees[v][0] / "molecule" / "node_layer" / "converge.yml"
                            wall, counts, ctl, nodes = playbook(play, invs[v], envs[v], names[v])
                            runs.append(dict(size=n, round=rnd, variant=v, phase=phase, wall=wall, counts=counts,
                                             ctl=ctl, nodes=nodes, names=names[v]))
                            per_node = [counts.get(h, {}).get("executed", 0) for h in names[v]]
                            changed = [counts.get(h, {}).get("changed", 0) for h in names[v]]
                            print(f"nodes={n} round {rnd} {v:<4} {phase:<8}: {wall:6.1f}s wall, tasks per node "
                                  f"{per_node}, changed {changed}, controller CPU {ctl:.1f}s, node CPU "
                                  f"{[fmt(nodes[h]) for h in names[v]]}s", flush=True)
                finally:
                    if not (args.keep and n == sizes[-1] and rnd == args.rounds):
                        remove(everyone)
    return report(runs, sizes, base_rev)


def report(runs, sizes, base_rev):
    """Per node tables, the new/base ratios and the targets; rc 0 when every no-op reported changed=0."""
    print()
    print(f"Per node (node i of N; ctl CPU s = controller CPU of the run / N). base = {base_rev}, new = working tree.")
    print(f"{'N':>2} {'node':>4} {'run':<8} {'variant':<7} {'tasks':>5} {'ctl-only':>8} {'changed':>7} "
          f"{'ctl CPU s':>9} {'node CPU s':>10} {'wall s':>7}")
    rows = {}
    for r in runs:
        n = r["size"]
        for i, host in enumerate(r["names"], 1):
            c = r["counts"].get(host, {})
            row = dict(tasks=c.get("executed", 0), ctl_only=c.get("controller_only", 0), changed=c.get("changed", 0),
                       ctl=r["ctl"] / n, node=r["nodes"][host], wall=r["wall"])
            rows.setdefault((n, i, r["phase"], r["variant"]), []).append(row)
    averaged = {}
    for key in sorted(rows, key=lambda k: (k[0], k[1], k[2] != "converge", k[3])):
        group = rows[key]
        avg = {f: statistics.mean(x[f] for x in group) if all(x[f] is not None for x in group) else None
               for f in ("tasks", "ctl_only", "ctl", "node", "wall")}
        avg["changed"] = max(x["changed"] for x in group)
        averaged[key] = avg
        n, i, phase, variant = key
        print(f"{n:>2} {i:>4} {phase:<8} {variant:<7} {avg['tasks']:>5.0f} {avg['ctl_only']:>8.0f} {avg['changed']:>7} "
              f"{fmt(avg['ctl'], 2):>9} {fmt(avg['node'], 2):>10} {fmt(avg['wall']):>7}")

    print()
    print("Ratios new/base per node:")
    print(f"{'N':>2} {'node':>4} {'run':<8} {'tasks':>6} {'ctl CPU':>7} {'node CPU':>8}")
    verdicts = []
    for n in sizes:
        for i in range(1, n + 1):
            for phase in ("converge", "no-op"):
                base, new = averaged.get((n, i, phase, "base")), averaged.get((n, i, phase, "new"))
                if not base or not new:
                    continue
                rt, rc, rn = ratio(new["tasks"], base["tasks"]), ratio(new["ctl"], base["ctl"]), ratio(new["node"], base["node"])
                print(f"{n:>2} {i:>4} {phase:<8} {fmt(rt, 2):>6} {fmt(rc, 2):>7} {fmt(rn, 2):>8}")
                if phase == "no-op":
                    verdicts.append((n, i, rt, rc, base["changed"], new["changed"]))

    print()
    print("Targets (no-op re-run, every node):")
    tasks_ok = all(v[2] is not None and v[2] <= 0.5 for v in verdicts)
    ctl_ok = all(v[3] is not None and v[3] <= 0.6 for v in verdicts)
    changed_ok = all(v[5] == 0 for v in verdicts)
    worst_tasks = max((v[2] for v in verdicts if v[2] is not None), default=None)
    worst_ctl = max((v[3] for v in verdicts if v[3] is not None), default=None)
    print(f"  tasks executed <= 0.5 x base: {'PASS' if tasks_ok else 'FAIL'} (worst x{fmt(worst_tasks, 2)})")
    print(f"  controller CPU <= 0.6 x base: {'PASS' if ctl_ok else 'FAIL'} (worst x{fmt(worst_ctl, 2)})")
    print(f"  changed=0 on every node:      {'PASS' if changed_ok else 'FAIL'} "
          f"(base: {'0 everywhere' if all(v[4] == 0 for v in verdicts) else 'not 0'})")
    return 0 if changed_ok else 1


if __name__ == "__main__":
    sys.exit(main())
