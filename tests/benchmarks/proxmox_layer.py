"""Benchmark of the Proxmox layer: guests and HA through our roles and through community.proxmox.

Prints figures, asserts nothing about time. For each PVE personality (``--pve 9``, or ``--pve 8,9``)
and each size (the main size ``--guests``/``--resources`` and the small size ``--small``), it starts
a FRESH Proxmox VE API simulator per series and runs the same job several times:

* ours, full:        a generated playbook with two plays, ``ailab.cluster.proxmox_guests`` (one
                     list-mode call of ``proxmox_guest``) and ``ailab.cluster.proxmox_ha`` (list-mode
                     HA modules), connection through ``module_defaults: group/ailab.cluster.proxmox``,
                     with ``proxmox_guests_config_check: full`` (the default): first run, no-op
                     re-run; then, on the same simulator, the switch to ``fingerprint`` (the run that
                     writes the tags) and the fingerprint no-op after it;
* ours, fingerprint: the same playbook with ``proxmox_guests_config_check: fingerprint`` from the
                     start: first run, a second run only if it still writes (it should not: new
                     guests get their tag when they are created), then the no-op re-run;
* community:         the same job written as a user of community.proxmox (bundled with the
                     ``ansible`` package) would write it: one task per object in a loop,
                     ``proxmox_kvm`` for the VMs, ``proxmox_cluster_ha_groups`` (PVE 8),
                     ``proxmox_cluster_ha_resources``, ``proxmox_cluster_ha_rules`` (PVE 9), connection
                     through ``module_defaults: group/community.proxmox.proxmox``: first run, no-op.

The job: ``--guests`` VMs (512 MiB, 1 core, 2 GiB disk on local-lvm, one NIC on vmbr0) spread
over pve-1/pve-2 and created by the job; ``--resources`` HA resources (state started, limits and a
comment). HA resources must name existing guests: when there are more resources than job guests,
the missing guests are part of the simulator's seed (stopped VMs with a 2 GiB disk), the same seed
for both collections, and are not part of the timed job. PVE 8: two HA groups (prefer pve-1,
prefer pve-2), each resource in the group of its node. PVE 9: two node-affinity rules (the same
preferences) and one negative resource-affinity rule for the first two resources (which the
node-affinity rules leave out).

For every run it prints the wall time of ansible-playbook, the 1-minute load average of the machine
when the run started, and the API requests from the simulator's request log (reads = not ``write``,
writes = POST/PUT/DELETE except login), split by play (guests, HA), the changed items and any
failed items with their error. Failures of community.proxmox tasks are recorded (the play
continues: ``ignore_errors`` in the generated playbook) and printed; a failure of ours stops the
benchmark.

At the end it prints the table of all runs, the reads per play at both sizes, the community/ours
ratios, and the targets table: our no-op re-runs make zero writes; our reads grow with the number
of resource types, not with the number of items (per play, main size against small size, with the
request paths that grew; the target is for fingerprint mode, full mode is shown for comparison);
our wall time is below community.proxmox's. "changed results" counts task results: one per
list-mode task for ours, one per loop item for community.proxmox. The exit status is 1 only when
one of our no-op re-runs wrote.

Usage: .venv/bin/python tests/benchmarks/proxmox_layer.py [--guests 50] [--resources 200] [--pve 9]
       [--small 10,20] [--series ours-full,ours-fingerprint,community] [--keep-output DIR] [--verbose]
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from pvesim.seed import empty_seed  # noqa: E402 - tests/ is put on sys.path just above
from pvesim.testing import SimulatorProcess  # noqa: E402

VMID_BASE = 1000
NODES = ("pve-1", "pve-2")
GUEST_MEMORY = 512
GUEST_DISK_GIB = 2

ANSIBLE_CFG = f"""[defaults]
collections_path = {ROOT / ".collections"}
roles_path = {ROOT / "roles"}
host_key_checking = false
retry_files_enabled = false
gathering = explicit
fact_caching = memory
forks = 5
"""

OURS_PLAYBOOK = """---
- name: Guests (ailab.cluster.proxmox_guests)
  hosts: proxmox_api
  gather_facts: false
  any_errors_fatal: true
  module_defaults:
    group/ailab.cluster.proxmox: "{{ bench_connection }}"
  roles:
    - role: ailab.cluster.proxmox_guests

- name: HA (ailab.cluster.proxmox_ha)
  hosts: proxmox_api
  gather_facts: false
  any_errors_fatal: true
  module_defaults:
    group/ailab.cluster.proxmox: "{{ bench_connection }}"
  roles:
    - role: ailab.cluster.proxmox_ha
"""

# One task per object in a loop, as the modules' EXAMPLES show. ignore_errors: the benchmark
# records a failing community.proxmox module and goes on with the rest of the job.
COMMUNITY_PLAYBOOK = """---
- name: Guests (community.proxmox.proxmox_kvm)
  hosts: proxmox_api
  gather_facts: false
  module_defaults:
    group/community.proxmox.proxmox: "{{ bench_connection }}"
  tasks:
    - name: Create the VMs
      community.proxmox.proxmox_kvm:
        vmid: "{{ item.vmid }}"
        name: "{{ item.name }}"
        node: "{{ item.node }}"
        memory: "{{ bench_memory }}"
        cores: 1
        scsi:
          scsi0: "local-lvm:{{ bench_disk_gib }}"
        net:
          net0: virtio,bridge=vmbr0
        state: present
      loop: "{{ bench_guests }}"
      loop_control:
        label: "{{ item.name }}"
      ignore_errors: true

- name: HA (community.proxmox.proxmox_cluster_ha_*)
  hosts: proxmox_api
  gather_facts: false
  module_defaults:
    group/community.proxmox.proxmox: "{{ bench_connection }}"
  tasks:
    - name: HA groups (PVE 8)
      community.proxmox.proxmox_cluster_ha_groups:
        name: "{{ item.name }}"
        nodes: "{{ item.nodes }}"
        restricted: "{{ item.restricted }}"
        nofailback: "{{ item.nofailback }}"
        comment: "{{ item.comment }}"
        state: present
      loop: "{{ bench_ha_groups }}"
      loop_control:
        label: "{{ item.name }}"
      ignore_errors: true

    - name: HA resources
      community.proxmox.proxmox_cluster_ha_resources:
        name: "{{ item.sid }}"
        hastate: "{{ item.state }}"
        max_restart: "{{ item.max_restart }}"
        max_relocate: "{{ item.max_relocate }}"
        comment: "{{ item.comment }}"
        group: "{{ item.group | default(omit) }}"
        state: present
      loop: "{{ bench_ha_resources }}"
      loop_control:
        label: "{{ item.sid }}"
      ignore_errors: true

    - name: HA rules (PVE 9)
      community.proxmox.proxmox_cluster_ha_rules:
        name: "{{ item.name }}"
        type: "{{ item.type }}"
        resources: "{{ item.resources }}"
        nodes: "{{ item.nodes | default(omit) }}"
        affinity: "{{ item.affinity | default(omit) }}"
        comment: "{{ item.comment }}"
        disable: "{{ item.disable }}"
        state: present
      loop: "{{ bench_ha_rules }}"
      loop_control:
        label: "{{ item.name }}"
      ignore_errors: true
"""


# ----------------------------------------------------------------------------- the job
def job(n_guests, n_resources, pve):
    """The guests the job creates, the seeded extra guests, and the HA objects."""
    total = max(n_guests, n_resources)
    vms = [{"vmid": VMID_BASE + i, "name": f"bench-vm-{i + 1:03d}", "node": NODES[i % 2]} for i in range(total)]
    guests, extra = vms[:n_guests], vms[n_guests:]
    resources = [{"sid": f"vm:{vm['vmid']}", "state": "started", "max_restart": 2, "max_relocate": 1,
                  "comment": f"benchmark {vm['name']}", "node": vm["node"]} for vm in vms[:n_resources]]
    preference = {node: [f"{node}:2", f"{other}:1"] for node, other in (NODES, NODES[::-1])}
    groups, rules = [], []
    if pve < 9:
        groups = [{"name": f"prefer-{node}", "nodes": preference[node], "restricted": False, "nofailback": False,
                   "comment": f"benchmark: prefer {node}"} for node in NODES]
        for resource in resources:
            resource["group"] = f"prefer-{resource['node']}"
    else:
        apart = resources[:2]
        rules = [{"name": f"prefer-{node}", "type": "node-affinity", "nodes": preference[node],
                  "resources": [r["sid"] for r in resources[2:] if r["node"] == node],
                  "comment": f"benchmark: prefer {node}", "disable": False} for node in NODES]
        rules = [rule for rule in rules if rule["resources"]]
        if len(apart) == 2:
            rules.append({"name": "keep-apart", "type": "resource-affinity", "affinity": "negative",
                          "resources": [r["sid"] for r in apart], "comment": "benchmark: keep apart",
                          "disable": False})
    for resource in resources:
        del resource["node"]
    return {"guests": guests, "extra": extra, "resources": resources, "groups": groups, "rules": rules}


def seed_for(spec):
    """The simulator seed: the empty lab plus the extra guests the HA resources need."""
    seed = empty_seed()
    seed["guests"] = [
        {"vmid": vm["vmid"], "type": "qemu", "node": vm["node"], "status": "stopped",
         "config": {"name": vm["name"], "memory": str(GUEST_MEMORY), "cores": 1,
                    "scsi0": f"local-lvm:vm-{vm['vmid']}-disk-0,size={GUEST_DISK_GIB}G",
                    "net0": f"virtio=BC:24:11:00:{vm['vmid'] // 256 % 256:02X}:{vm['vmid'] % 256:02X},bridge=vmbr0"}}
        for vm in spec["extra"]
    ]
    return seed


def ours_vars(spec, sim, config_check="full"):
    return {
        "bench_connection": {"api_host": sim.host, "api_port": sim.port, "api_user": sim.user,
                             "api_token_id": sim.token_id, "api_token_secret": sim.token_secret,
                             "ca_path": sim.ca_file},
        "proxmox_guests_state": "present",      # HA starts the guests (state: started)
        "proxmox_guests_wait_for_ip": 0,
        "proxmox_guests_add_hosts": False,
        "proxmox_guests_config_check": config_check,
        "proxmox_guests_defaults": {"storage": "local-lvm", "memory": GUEST_MEMORY, "cores": 1,
                                    "networks": {"net0": {"model": "virtio", "bridge": "vmbr0"}},
                                    "disks": {"scsi0": {"size": f"{GUEST_DISK_GIB}G"}}},
        "proxmox_guests_list": spec["guests"],
        "proxmox_ha_groups": spec["groups"],
        "proxmox_ha_rules": spec["rules"],
        "proxmox_ha_resources": spec["resources"],
    }


def community_vars(spec, sim):
    return {
        "bench_connection": {"api_host": sim.host, "api_port": sim.port, "api_user": sim.user,
                             "api_token_id": sim.token_name, "api_token_secret": sim.token_secret,
                             "ca_path": sim.ca_file, "validate_certs": True},
        "bench_memory": GUEST_MEMORY,
        "bench_disk_gib": GUEST_DISK_GIB,
        "bench_guests": spec["guests"],
        "bench_ha_groups": spec["groups"],
        "bench_ha_resources": spec["resources"],
        "bench_ha_rules": spec["rules"],
    }


# ------------------------------------------------------------------------- measuring
def epoch(stamp):
    """The json callback's naive UTC ISO time as epoch seconds."""
    return datetime.datetime.fromisoformat(stamp.rstrip("Z")).replace(tzinfo=datetime.timezone.utc).timestamp()


def path_template(path):
    path = re.sub(r"^/nodes/[^/]+", "/nodes/{node}", path)
    return re.sub(r"/(?:vm|ct):\d+|/\d+(?=/|$)|/UPID:[^/]+", "/{id}", path)


def task_results(task):
    """Per-item results of one task of the json callback (a task without loop is one item)."""
    results = []
    for host_result in task["hosts"].values():
        results.extend(host_result.get("results") or [host_result])
    return results


def run_playbook(name, sim, workdir, playbook_text, variables, env):
    """Run one playbook against ``sim``; wall time, requests per play, changed/failed items."""
    play_file = workdir / f"{name}.yml"
    vars_file = workdir / f"{name}-vars.json"
    play_file.write_text(playbook_text)
    vars_file.write_text(json.dumps(variables, indent=1))
    sim.clear_log()
    load = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", str(workdir / "inventory.yml"), "-e", f"@{vars_file}",
                           str(play_file)], cwd=workdir, env=env, check=False, capture_output=True, text=True)
    seconds = time.monotonic() - started
    log = sim.requests_log()
    try:
        report = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        sys.stdout.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{name}: ansible-playbook printed no JSON (rc={proc.returncode})") from None
    plays = report["plays"]
    bounds = [epoch(p["play"]["duration"]["start"]) for p in plays[1:]]
    per_play = [{"name": p["play"]["name"], "reads": 0, "writes": 0, "paths": Counter()} for p in plays]
    for entry in log:
        index = sum(1 for b in bounds if entry["time"] >= b)
        bucket = per_play[index]
        bucket["writes" if entry["write"] else "reads"] += 1
        bucket["paths"][f"{entry['method']} {path_template(entry['path'])}"] += 1
    changed, failures = 0, []
    for play in plays:
        for task in play["tasks"]:
            for item in task_results(task):
                changed += bool(item.get("changed"))
                if item.get("failed"):
                    failures.append((task["task"]["name"], str(item.get("msg", ""))[:300]))
    return {"name": name, "seconds": seconds, "load": load, "rc": proc.returncode, "reads": sum(p["reads"] for p in per_play),
            "writes": sum(p["writes"] for p in per_play), "plays": per_play, "changed": changed,
            "failures": failures, "stderr": proc.stderr}


def print_run(label, run, verbose=False):
    print(f"  {label:<30} {run['seconds']:7.1f} s  load {run['load']:4.1f}  reads {run['reads']:5d}  "
          f"writes {run['writes']:5d}  changed results {run['changed']:4d}  rc={run['rc']}", flush=True)
    for play in run["plays"]:
        top = ", ".join(f"{p} x{c}" for p, c in play["paths"].most_common(None if verbose else 4))
        print(f"      {play['name']:<48} reads {play['reads']:5d}  writes {play['writes']:5d}   {top}")
    for (task, msg), count in Counter(run["failures"]).most_common(5):
        print(f"      FAILED x{count} [{task}]: {msg}")


# Series: (label, config_check) per run; None for community.proxmox. A label "second|no-op" is a
# re-run named "no-op" when it writes nothing, else "second" (the tag-writing second run) and then
# followed by the next entry; the series ends after its "no-op".
SERIES = {
    "ours-full": [("first", "full"), ("no-op", "full"), ("switch to fingerprint", "fingerprint"),
                  ("no-op after switch", "fingerprint")],
    "ours-fingerprint": [("first", "fingerprint"), ("second|no-op", "fingerprint"), ("no-op", "fingerprint")],
    "community": [("first", None), ("no-op", None)],
}
NOOP_RUNS = ("no-op", "no-op after switch")


def measure(series, pve, spec, workdir, env, verbose=False):
    """Fresh simulator, then the runs of one series (see SERIES)."""
    with SimulatorProcess(pve=pve, seed=seed_for(spec)) as sim:
        (workdir / "inventory.yml").write_text(
            "all:\n  children:\n    proxmox_api:\n      hosts:\n        pve-api:\n"
            f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n")
        runs = {}
        for step, config_check in SERIES[series]:
            if "|" not in step and step in runs:
                break  # the "second|no-op" run wrote nothing: it was the no-op
            if series == "community":
                text, variables = COMMUNITY_PLAYBOOK, community_vars(spec, sim)
            else:
                text, variables = OURS_PLAYBOOK, ours_vars(spec, sim, config_check)
            run = run_playbook(f"{series}-pve{pve}-{len(runs) + 1}", sim, workdir, text, variables, env)
            label = step
            if "|" in step:
                label = step.split("|")[1] if run["writes"] == 0 else step.split("|")[0]
            runs[label] = run
            print_run(f"{series} {label}", run, verbose)
            if series != "community" and run["rc"] != 0:
                sys.stdout.write(run["stderr"][-3000:])
                raise SystemExit(f"our roles failed on PVE {pve} ({series}, {label}): {run['failures'][:3]}")
        state = sim.state()
        ha = state.get("ha", {})
        print(f"      simulator after the runs: {len(state.get('guests', {}))} guests, "
              f"{len(ha.get('resources', {}))} HA resources, {len(ha.get('groups', {}))} groups, "
              f"{len(ha.get('rules', {}))} rules", flush=True)
    return runs


def ratio(numerator, denominator):
    if denominator == 0:
        return "inf" if numerator else "-"
    return f"x{numerator / denominator:.1f}"


def play_label(play):
    return play["name"].split(" (")[0]


def growth(big, small):
    """Per play: (label, small reads, big reads, flat?, GET paths that grew)."""
    rows = []
    for play_big, play_small in zip(big["plays"], small["plays"]):
        grown = play_big["paths"] - play_small["paths"]
        paths = ", ".join(f"{path} +{count}" for path, count in grown.most_common() if path.startswith("GET"))
        rows.append((play_label(play_big), play_small["reads"], play_big["reads"],
                     play_big["reads"] - play_small["reads"] <= 2, paths))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guests", type=int, default=50, help="VMs the job creates")
    ap.add_argument("--resources", type=int, default=200, help="HA resources")
    ap.add_argument("--pve", default="9", help="8, 9 or 8,9")
    ap.add_argument("--small", default="10,20", help="guests,resources of the small size ('' to skip)")
    ap.add_argument("--series", default=",".join(SERIES), help="series to run (default: all): " + ", ".join(SERIES))
    ap.add_argument("--keep-output", help="keep the generated playbooks and vars in this directory")
    ap.add_argument("--verbose", action="store_true", help="print every request path per play, not the top four")
    args = ap.parse_args()
    versions = [int(v) for v in args.pve.split(",")]
    chosen = [s for s in args.series.split(",") if s]
    unknown = [s for s in chosen if s not in SERIES]
    if unknown:
        ap.error(f"unknown series {', '.join(unknown)}: choose from {', '.join(SERIES)}")
    sizes = [(args.guests, args.resources)]
    if args.small:
        small = tuple(int(v) for v in args.small.split(","))
        if small != sizes[0]:
            sizes.append(small)

    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_FORCE_COLOR="0",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    env.pop("REQUESTS_CA_BUNDLE", None)
    results = {}
    started = time.monotonic()
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="ailab-bench-pve-") as tmp:
        workdir = Path(args.keep_output or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "ansible.cfg").write_text(ANSIBLE_CFG)
        env["ANSIBLE_CONFIG"] = str(workdir / "ansible.cfg")
        for pve in versions:
            for n_guests, n_resources in sizes:
                spec = job(n_guests, n_resources, pve)
                print(f"== PVE {pve}: {n_guests} guests created by the job, {len(spec['extra'])} seeded, "
                      f"{n_resources} HA resources, {len(spec['groups'])} groups, {len(spec['rules'])} rules",
                      flush=True)
                for series in chosen:
                    key = (pve, n_guests, n_resources, series)
                    results[key] = measure(series, pve, spec, workdir, env, args.verbose)
    loads = [run["load"] for runs in results.values() for run in runs.values()]
    print(f"\n{(time.monotonic() - started) / 60:.0f} minutes; load average (1 min) at the start of the runs: "
          f"{min(loads):.1f}-{max(loads):.1f}; at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    print()
    print("| PVE | guests / HA resources | series | run | wall s | load | reads | writes | changed results | failed items |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for (pve, n_guests, n_resources, series), runs in results.items():
        for run_name, run in runs.items():
            print(f"| {pve} | {n_guests} / {n_resources} | {series} | {run_name} | {run['seconds']:.1f} | "
                  f"{run['load']:.1f} | {run['reads']} | {run['writes']} | {run['changed']} | {len(run['failures'])} |")

    ours = [s for s in chosen if s != "community"]
    if len(sizes) > 1:
        print()
        print(f"Reads per play, {sizes[1][0]} / {sizes[1][1]} -> {sizes[0][0]} / {sizes[0][1]}:")
        print()
        print("| PVE | series | run | play | reads | writes | GET paths that grew |")
        print("|---|---|---|---|---:|---:|---|")
        for pve in versions:
            for series in ours:
                big, small = results[(pve, *sizes[0], series)], results[(pve, *sizes[1], series)]
                for run_name in [r for r in big if r in small]:
                    writes = [(pb["writes"], ps["writes"]) for pb, ps in zip(big[run_name]["plays"], small[run_name]["plays"])]
                    rows = growth(big[run_name], small[run_name])
                    for (label, r_small, r_big, flat, paths), (w_big, w_small) in zip(rows, writes):
                        print(f"| {pve} | {series} | {run_name} | {label} | {r_small} -> {r_big} | "
                              f"{w_small} -> {w_big} | {paths if not flat else ''} |")

    if "community" in chosen and ours:
        print()
        print("| PVE | guests / HA resources | ours | run | wall community/ours | reads community/ours | "
              "writes community/ours |")
        print("|---|---|---|---|---:|---:|---:|")
        for pve in versions:
            for n_guests, n_resources in sizes:
                theirs = results[(pve, n_guests, n_resources, "community")]
                for series in ours:
                    mine = results[(pve, n_guests, n_resources, series)]
                    for run_name in ("first", "no-op"):
                        o, c = mine[run_name], theirs[run_name]
                        print(f"| {pve} | {n_guests} / {n_resources} | {series} | {run_name} | "
                              f"{ratio(c['seconds'], o['seconds'])} | {ratio(c['reads'], o['reads'])} | "
                              f"{ratio(c['writes'], o['writes'])} |")

    print()
    print("| PVE | target | result |")
    print("|---|---|---|")
    ok = True
    for pve in versions:
        for series in ours:
            noop = {f"{n}/{r} {run_name}": results[(pve, n, r, series)][run_name]["writes"]
                    for n, r in sizes for run_name in NOOP_RUNS if run_name in results[(pve, n, r, series)]}
            verdict = all(w == 0 for w in noop.values())
            ok &= verdict
            print(f"| {pve} | {series}: no-op re-runs make zero writes | {'PASS' if verdict else 'FAIL'} "
                  f"(writes: {', '.join(f'{k} {v}' for k, v in noop.items())}) |")
        if len(sizes) > 1:
            for series in ours:
                big, small = results[(pve, *sizes[0], series)], results[(pve, *sizes[1], series)]
                for run_name in [r for r in big if r in small and r in NOOP_RUNS + ("first",)]:
                    rows = growth(big[run_name], small[run_name])
                    parts = "; ".join(f"{label} {'PASS' if flat else 'FAIL'} ({r_small} -> {r_big}"
                                      f"{': ' + paths if not flat and paths else ''})"
                                      for label, r_small, r_big, flat, paths in rows)
                    target = "target" if series == "ours-fingerprint" and run_name == "no-op" else "for comparison"
                    print(f"| {pve} | {series} {run_name} ({target}): reads flat per play, {sizes[1][0]}/{sizes[1][1]} "
                          f"-> {sizes[0][0]}/{sizes[0][1]} | {parts} |")
        if "community" in chosen:
            theirs = results[(pve, *sizes[0], "community")]
            for series in ours:
                mine = results[(pve, *sizes[0], series)]
                for run_name in ("first", "no-op"):
                    verdict = mine[run_name]["seconds"] < theirs[run_name]["seconds"]
                    print(f"| {pve} | {series} {run_name}: wall time below community.proxmox's | "
                          f"{'PASS' if verdict else 'FAIL'} ({mine[run_name]['seconds']:.1f} s vs "
                          f"{theirs[run_name]['seconds']:.1f} s) |")
    # Like node_layer.py, the exit status only reflects idempotence (our no-op re-runs wrote nothing);
    # the other targets are figures to read.
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
