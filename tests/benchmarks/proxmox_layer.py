"""Benchmark of the Proxmox layer: guests and HA through our roles and through community.proxmox.

Prints figures, asserts nothing about time. For each PVE personality (``--pve 9``, or ``--pve 8,9``)
and each size (the main size ``--guests``/``--resources`` and the small size ``--small``), it starts
a FRESH Proxmox VE API simulator per collection and runs the same job twice (first run, then no-op
re-run):

* ours:      a generated playbook with two plays, ``ailab.cluster.proxmox_guests`` (one list-mode
             call of ``proxmox_guest``) and ``ailab.cluster.proxmox_ha`` (list-mode HA modules),
             connection through ``module_defaults: group/ailab.cluster.proxmox``;
* community: the same job written as a user of community.proxmox (bundled with the ``ansible``
             package) would write it: one task per object in a loop, ``proxmox_kvm`` for the VMs,
             ``proxmox_cluster_ha_groups`` (PVE 8), ``proxmox_cluster_ha_resources``,
             ``proxmox_cluster_ha_rules`` (PVE 9), connection through
             ``module_defaults: group/community.proxmox.proxmox``.

The job: ``--guests`` VMs (512 MiB, 1 core, 2 GiB disk on local-lvm, one NIC on vmbr0) spread
over pve-1/pve-2 and created by the job; ``--resources`` HA resources (state started, limits and a
comment). HA resources must name existing guests: when there are more resources than job guests,
the missing guests are part of the simulator's seed (stopped VMs with a 2 GiB disk), the same seed
for both collections, and are not part of the timed job. PVE 8: two HA groups (prefer pve-1,
prefer pve-2), each resource in the group of its node. PVE 9: two node-affinity rules (the same
preferences) and one negative resource-affinity rule for the first two resources (which the
node-affinity rules leave out).

For every run it prints the wall time of ansible-playbook and the API requests from the simulator's
request log (reads = not ``write``, writes = POST/PUT/DELETE except login), split by play (guests,
HA), the changed items and any failed items with their error. Failures of community.proxmox tasks
are recorded (the play continues: ``ignore_errors`` in the generated playbook) and printed; a
failure of ours stops the benchmark.

At the end it prints the side-by-side table with the community/ours ratios, and PASS/FAIL for the
targets: our no-op re-run makes zero writes; our reads do not grow with the number of items (main
size against small size, per play, with the request paths that grew); our wall time is below
community.proxmox's. "changed results" counts task results: one per list-mode task for ours, one
per loop item for community.proxmox. The exit status is 1 only when our no-op re-run wrote.

Usage: .venv/bin/python tests/benchmarks/proxmox_layer.py [--guests 50] [--resources 200] [--pve 9]
       [--small 10,20] [--keep-output DIR] [--verbose]
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


def ours_vars(spec, sim):
    return {
        "bench_connection": {"api_host": sim.host, "api_port": sim.port, "api_user": sim.user,
                             "api_token_id": sim.token_id, "api_token_secret": sim.token_secret,
                             "ca_path": sim.ca_file},
        "proxmox_guests_state": "present",      # HA starts the guests (state: started)
        "proxmox_guests_wait_for_ip": 0,
        "proxmox_guests_add_hosts": False,
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
    return {"name": name, "seconds": seconds, "rc": proc.returncode, "reads": sum(p["reads"] for p in per_play),
            "writes": sum(p["writes"] for p in per_play), "plays": per_play, "changed": changed,
            "failures": failures, "stderr": proc.stderr}


def print_run(label, run, verbose=False):
    print(f"  {label:<22} {run['seconds']:7.1f} s  reads {run['reads']:5d}  writes {run['writes']:5d}  "
          f"changed results {run['changed']:4d}  rc={run['rc']}", flush=True)
    for play in run["plays"]:
        top = ", ".join(f"{p} x{c}" for p, c in play["paths"].most_common(None if verbose else 4))
        print(f"      {play['name']:<48} reads {play['reads']:5d}  writes {play['writes']:5d}   {top}")
    for (task, msg), count in Counter(run["failures"]).most_common(5):
        print(f"      FAILED x{count} [{task}]: {msg}")


def measure(collection, pve, spec, workdir, env, verbose=False):
    """Fresh simulator, first run and no-op re-run of one collection's job."""
    with SimulatorProcess(pve=pve, seed=seed_for(spec)) as sim:
        (workdir / "inventory.yml").write_text(
            "all:\n  children:\n    proxmox_api:\n      hosts:\n        pve-api:\n"
            f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n")
        text, make_vars = (OURS_PLAYBOOK, ours_vars) if collection == "ours" else (COMMUNITY_PLAYBOOK, community_vars)
        variables = make_vars(spec, sim)
        runs = {}
        for run_name in ("first", "no-op"):
            runs[run_name] = run_playbook(f"{collection}-pve{pve}-{run_name}", sim, workdir, text, variables, env)
            print_run(f"{collection} {run_name}", runs[run_name], verbose)
            if collection == "ours" and runs[run_name]["rc"] != 0:
                sys.stdout.write(runs[run_name]["stderr"][-3000:])
                raise SystemExit(f"our roles failed on PVE {pve} ({run_name} run): {runs[run_name]['failures'][:3]}")
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guests", type=int, default=50, help="VMs the job creates")
    ap.add_argument("--resources", type=int, default=200, help="HA resources")
    ap.add_argument("--pve", default="9", help="8, 9 or 8,9")
    ap.add_argument("--small", default="10,20", help="guests,resources of the small size ('' to skip)")
    ap.add_argument("--keep-output", help="keep the generated playbooks and vars in this directory")
    ap.add_argument("--verbose", action="store_true", help="print every request path per play, not the top four")
    args = ap.parse_args()
    versions = [int(v) for v in args.pve.split(",")]
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
                for collection in ("ours", "community"):
                    results[(pve, n_guests, n_resources, collection)] = measure(collection, pve, spec, workdir, env, args.verbose)

    print()
    print("| PVE | guests / HA resources | collection | run | wall s | reads | writes | changed results | failed items |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for (pve, n_guests, n_resources, collection), runs in results.items():
        for run_name, run in runs.items():
            print(f"| {pve} | {n_guests} / {n_resources} | {collection} | {run_name} | {run['seconds']:.1f} | "
                  f"{run['reads']} | {run['writes']} | {run['changed']} | {len(run['failures'])} |")
    print()
    print("| PVE | guests / HA resources | run | wall community/ours | reads community/ours | writes community/ours |")
    print("|---|---|---|---:|---:|---:|")
    for pve in versions:
        for n_guests, n_resources in sizes:
            ours, theirs = results[(pve, n_guests, n_resources, "ours")], results[(pve, n_guests, n_resources, "community")]
            for run_name in ("first", "no-op"):
                o, c = ours[run_name], theirs[run_name]
                print(f"| {pve} | {n_guests} / {n_resources} | {run_name} | {ratio(c['seconds'], o['seconds'])} | "
                      f"{ratio(c['reads'], o['reads'])} | {ratio(c['writes'], o['writes'])} |")

    print()
    ok = True
    for pve in versions:
        big = results[(pve, *sizes[0], "ours")]
        noop_writes = [results[(pve, *size, "ours")]["no-op"]["writes"] for size in sizes]
        verdict = all(w == 0 for w in noop_writes)
        ok &= verdict
        print(f"PVE {pve}: our no-op re-run makes zero writes: {'PASS' if verdict else 'FAIL'} (writes {noop_writes})")
        if len(sizes) > 1:
            small_runs = results[(pve, *sizes[1], "ours")]
            for run_name in ("first", "no-op"):
                parts = []
                for play_big, play_small in zip(big[run_name]["plays"], small_runs[run_name]["plays"]):
                    growth = play_big["paths"] - play_small["paths"]
                    grown = ", ".join(f"{path} +{count}" for path, count in growth.most_common()
                                      if path.startswith("GET"))
                    flat = play_big["reads"] - play_small["reads"] <= 2
                    parts.append(f"{play_big['name'].split(' (')[0]} {'PASS' if flat else 'FAIL'} "
                                 f"({play_small['reads']} -> {play_big['reads']}{': ' + grown if not flat else ''})")
                print(f"PVE {pve}: our reads do not grow with the items ({run_name}, {sizes[1][0]}/{sizes[1][1]} -> "
                      f"{sizes[0][0]}/{sizes[0][1]}): {'; '.join(parts)}")
        theirs = results[(pve, *sizes[0], "community")]
        for run_name in ("first", "no-op"):
            verdict = big[run_name]["seconds"] < theirs[run_name]["seconds"]
            print(f"PVE {pve}: our wall time below community.proxmox's ({run_name}): {'PASS' if verdict else 'FAIL'} "
                  f"({big[run_name]['seconds']:.1f} s vs {theirs[run_name]['seconds']:.1f} s)")
    # Like node_layer.py, the exit status only reflects idempotence (our no-op re-run wrote nothing);
    # the other targets are figures to read.
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
