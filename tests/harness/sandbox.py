"""Pure logic of the sandbox lab runner (tests/harness/lab.py): what each layer ran against, how a
layer's outcome reads, the PLAY RECAP, the export's digest, the container decisions.

Nothing here starts a process or touches Docker: tests/unit/harness/test_sandbox.py calls every
function alone.
"""

import hashlib
import json
import re
from pathlib import Path

# What a layer ran against (the lab report's vocabulary, playbooks/report.yml).
TARGETS = ("simulator", "containers", "test double", "export", "cluster", "not run")

# Layers in the order `make lab` runs them.
LAYERS = ("proxmox", "nodes", "kubernetes", "platform", "validate", "report")

LABEL = "ailab.sandbox"
IMAGE_LABEL = "ailab.sandbox.image"

NO_DOCKER = "Docker is not available (install docker.io and start dockerd: make system)"
NO_KUBEADM_DOUBLE = ("the kubeadm test double (tests/kubesim) runs on the node containers, and Docker is not "
                     "available")

# The kubeadm/kubelet/kubectl test double (tests/kubesim, docs/kubesim.md) in the node containers: its
# package mounted read-only, the cluster state on one docker volume that every node mounts (labelled so
# that `make lab-clean` removes it), installed by the playbook molecule's kubernetes_cluster uses too.
KUBESIM_PACKAGE_MOUNT = "/usr/lib/kubesim/kubesim"
KUBESIM_STATE_MOUNT = "/var/lib/kubesim"
KUBESIM_VOLUME = "ailab-sandbox-kubesim"
KUBESIM_INSTALL = "molecule/shared/kubesim/install.yml"

RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")
RECAP_COUNT = re.compile(r"(\w+)=(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_recap(output):
    """Per host, the counters of the last PLAY RECAP in an ansible-playbook output.

    >>> parse_recap("PLAY RECAP ***\\nlocalhost : ok=3 changed=1 unreachable=0 failed=0")["localhost"]["changed"]
    1
    """
    lines = ANSI.sub("", output).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")]
    if not starts:
        return {}
    recap = {}
    for line in lines[starts[-1] + 1:]:
        match = RECAP_LINE.match(line.strip())
        if not match:
            if recap and line.strip():
                break
            continue
        recap[match.group("host")] = {k: int(v) for k, v in RECAP_COUNT.findall(match.group("counts"))}
    return recap


def recap_totals(recap):
    """The counters of every host added up (ok, changed, failed, unreachable, skipped ...)."""
    totals = {}
    for counts in recap.values():
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def count_warnings(output):
    """How many [WARNING] lines an ansible-playbook output has."""
    return sum(1 for line in output.splitlines() if line.lstrip().startswith("[WARNING]"))


def playbook_layer(layer, target, rc, output, seconds, what):
    """A layer record from one ansible-playbook run: result ok/failed, the changed count in detail."""
    recap = parse_recap(output)
    totals = recap_totals(recap)
    changed = totals.get("changed", 0)
    failed = totals.get("failed", 0) + totals.get("unreachable", 0)
    if rc == 0 and recap:
        result = "ok"
        detail = f"{what}: changed={changed}"
    else:
        result = "failed"
        detail = f"{what}: ansible-playbook exited {rc}" + (f", {failed} failed/unreachable" if failed else "")
    warnings = count_warnings(output)
    if warnings:
        detail += f", {warnings} warning(s)"
    return {"layer": layer, "target": target, "result": result, "seconds": round(seconds, 1),
            "detail": detail, "changed": changed if recap else None}


def not_run(layer, why):
    """A layer that did not run, and why (never skipped silently)."""
    return {"layer": layer, "target": "not run", "result": "not run", "seconds": 0.0, "detail": why,
            "changed": None}


def layer_line(layer):
    """The one line `make lab` prints per layer."""
    if layer["target"] == "not run":
        return f"==> {layer['layer']}: not run — {layer['detail']}"
    return (f"==> {layer['layer']}: {layer['result']} against the {layer['target']} "
            f"in {layer['seconds']:.1f}s — {layer['detail']}")


def layer_table(layers):
    """The closing table: one row per layer with its target, result and wall time."""
    rows = [("layer", "target", "result", "time", "detail")]
    for layer in layers:
        seconds = "-" if layer["target"] == "not run" else f"{layer['seconds']:.1f}s"
        rows.append((layer["layer"], layer["target"], layer["result"], seconds, layer["detail"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
                     for row in rows)


def report_layers(layers):
    """The layers as playbooks/report.yml takes them ({layer, target, result, seconds, detail})."""
    keys = ("layer", "target", "result", "seconds", "detail")
    return {"lab_report_layers": [{k: layer[k] for k in keys} for layer in layers]}


def plan(docker_ok, only=None, have=()):
    """Per layer, None when it runs, or why it does not.

    ``docker_ok``: ``docker info`` answered; ``only``: the layers asked for (AILAB_LAB_LAYERS), None for
    all; ``have``: the optional playbooks present (``validate``, ``report``).
    """
    reasons = {}
    for layer in LAYERS:
        if only is not None and layer not in only:
            reasons[layer] = "not asked for (AILAB_LAB_LAYERS=" + ",".join(only) + ")"
        elif layer == "nodes" and not docker_ok:
            reasons[layer] = NO_DOCKER
        elif layer in ("validate", "report") and layer not in have:
            reasons[layer] = f"playbooks/{layer}.yml not present"
        else:
            reasons[layer] = None
    return reasons


def parse_layers(value):
    """AILAB_LAB_LAYERS ("proxmox,nodes") as a tuple; None for all; unknown names are an error."""
    if not value or not value.strip():
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise ValueError(f"AILAB_LAB_LAYERS: unknown layer(s) {', '.join(unknown)}; known: {', '.join(LAYERS)}")
    return names


def export_digest(directory):
    """sha256 over every file's relative path and content: equal digests, byte-identical exports."""
    digest = hashlib.sha256()
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def kubesim_mounts(package):
    """{destination: source} of the kubesim mounts of a node container: ``package`` (tests/kubesim of
    this checkout) read-only, and the shared state volume."""
    return {KUBESIM_PACKAGE_MOUNT: str(package), KUBESIM_STATE_MOUNT: KUBESIM_VOLUME}


def container_mounts(inspected):
    """{destination: source} of a ``docker inspect`` dict's mounts (the volume's name for a named volume)."""
    return {m.get("Destination"): m.get("Name") if m.get("Type") == "volume" else m.get("Source")
            for m in (inspected or {}).get("Mounts") or []}


def container_action(inspected, image, mounts=None):
    """What to do with a node's container, from its ``docker inspect`` dict (None: there is none).

    ``create`` (none), ``recreate`` (another image, not made by the sandbox, or without one of
    ``mounts``, {destination: source}), ``start`` (stopped), ``reuse`` (running the right image: the
    second `make lab` creates nothing).
    """
    if not inspected:
        return "create"
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL) != "1" or labels.get(IMAGE_LABEL) != image:
        return "recreate"
    have = container_mounts(inspected)
    if any(have.get(destination) != source for destination, source in (mounts or {}).items()):
        return "recreate"
    if not (inspected.get("State") or {}).get("Running"):
        return "start"
    return "reuse"


def docker_run_args(container, hostname, image, mounts=None):
    """``docker run`` arguments of a node container: the flags of molecule/node_layer/molecule.yml
    (systemd as PID 1, host cgroup namespace, /var/lib/containerd as a volume off the overlay root)
    and ``mounts`` ({destination: source}, kubesim_mounts: the package read-only, the state volume)."""
    extra = []
    for destination, source in sorted((mounts or {}).items()):
        extra += ["--volume", f"{source}:{destination}" + (":ro" if destination == KUBESIM_PACKAGE_MOUNT else "")]
    return [
        "run", "--detach", "--name", container, "--hostname", hostname,
        "--label", f"{LABEL}=1", "--label", f"{IMAGE_LABEL}={image}",
        "--cgroupns", "host", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--volume", "/var/lib/containerd", *extra,
        image, "/lib/systemd/systemd",
    ]


def cluster_actions(actions):
    """The container actions made consistent with the Kubernetes cluster they hold, and whether the kubesim
    state volume starts empty: (actions, fresh).

    Each node's kubeadm files live in its container, the cluster's state in the shared volume: a new
    container next to kept ones would meet a cluster that already knows its node (or has lost its
    control plane), and a stopped one may come back with another address than the one kubeadm wrote
    into its certificates and configuration. So when one container is created, recreated or started
    again, every container is (re)created and the volume starts empty; otherwise nothing changes.
    """
    if all(action == "reuse" for action in actions.values()):
        return dict(actions), False
    return {c: "create" if action == "create" else "recreate" for c, action in actions.items()}, True


def kubernetes_target(docker_ok, nodes_result, containers_ready):
    """(target, why) of the Kubernetes layer: ``test double`` (kubeadm, kubelet and kubectl doubles on the
    node containers), ``export`` (no Docker: the pod network objects as files) or ``not run``.

    ``nodes_result``: the nodes layer's result in this run (ok, failed, not run); ``containers_ready``:
    every node container runs with the kubesim mounts (what matters when the nodes layer was not asked for).
    """
    if not docker_ok:
        return "export", f"kubeadm not run: {NO_KUBEADM_DOUBLE}"
    if nodes_result == "failed":
        return "not run", "the nodes layer failed: kubeadm needs the prepared node containers"
    if nodes_result != "ok" and not containers_ready:
        return "not run", ("the node containers are not ready: run the nodes layer first "
                           "(AILAB_LAB_LAYERS=nodes,kubernetes, or all layers)")
    return "test double", None


def kubesim_cluster(dump):
    """What the kubesim state dump (``python3 -m kubesim.ctl dump``) holds: {version, nodes: {name:
    {ready, kubelet, control_plane}}, daemonsets: [namespace/name]}; version is kubeadm-config's
    kubernetesVersion (None before kubeadm init)."""
    objects = (dump or {}).get("objects") or {}
    nodes = {}
    for node in (objects.get("nodes") or {}).values():
        status = node.get("status") or {}
        labels = (node.get("metadata") or {}).get("labels") or {}
        nodes[node["metadata"]["name"]] = {
            "ready": any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []),
            "kubelet": (status.get("nodeInfo") or {}).get("kubeletVersion"),
            "control_plane": "node-role.kubernetes.io/control-plane" in labels,
        }
    config = ((objects.get("configmaps") or {}).get("kube-system/kubeadm-config") or {}).get("data") or {}
    version = re.search(r"(?m)^kubernetesVersion:\s*['\"]?([^'\"\s]+)", config.get("ClusterConfiguration", ""))
    return {"version": version.group(1) if version else None, "nodes": dict(sorted(nodes.items())),
            "daemonsets": sorted((objects.get("daemonsets") or {}).keys())}


def kubernetes_problems(cluster, control_planes, workers, version):
    """What the kubesim cluster (kubesim_cluster) lacks after the Kubernetes layer: a Node Ready for every
    host of kube_control_plane and kube_node, the control-plane label on those of kube_control_plane only,
    kubeadm-config's kubernetesVersion v``version`` (the inventory's kubernetes_packages_version)."""
    problems = []
    if cluster["version"] is None:
        problems.append("no cluster: kubeadm-config does not exist (kubeadm init did not run)")
    elif cluster["version"].lstrip("v") != str(version).lstrip("v"):
        problems.append(f"kubeadm-config says kubernetesVersion {cluster['version']}, the inventory v{str(version).lstrip('v')}")
    for host in sorted(set(control_planes) | set(workers)):
        node = cluster["nodes"].get(host)
        if node is None:
            problems.append(f"{host}: no Node object")
            continue
        if not node["ready"]:
            problems.append(f"{host}: the Node is not Ready")
        if node["control_plane"] != (host in control_planes):
            problems.append(f"{host}: the control-plane label is {'set' if node['control_plane'] else 'missing'}")
    return problems


def kubernetes_summary(cluster, control_planes):
    """The Kubernetes layer's line: who initialised, who joined, how many Nodes are Ready, the version."""
    joined = [n for n in cluster["nodes"] if n not in control_planes]
    ready = sum(1 for n in cluster["nodes"].values() if n["ready"])
    return (f"kubeadm init on {', '.join(sorted(control_planes)) or 'no host'}, {len(joined)} node(s) joined"
            f"{' (' + ', '.join(joined) + ')' if joined else ''}, {ready}/{len(cluster['nodes'])} Nodes Ready, "
            f"Kubernetes {cluster['version'] or 'not initialised'}, pod network applied "
            f"({len(cluster['daemonsets'])} DaemonSet(s), no pods: kubesim runs none)")


def group_hosts(inventory, group, seen=()):
    """The hosts of ``group`` and of its children, sorted, from ``ansible-inventory --list`` output."""
    entry = inventory.get(group) or {}
    hosts = set(entry.get("hosts") or [])
    for child in entry.get("children") or []:
        if child not in seen:
            hosts |= set(group_hosts(inventory, child, (*seen, group)))
    return sorted(hosts)


def node_containers(inventory):
    """(host, container, image) of every k8s_cluster host, from ``ansible-inventory --list`` output."""
    hostvars = (inventory.get("_meta") or {}).get("hostvars") or {}
    nodes = []
    for host in group_hosts(inventory, "k8s_cluster"):
        hv = hostvars.get(host) or {}
        if hv.get("ansible_connection") != "community.docker.docker":
            raise ValueError(f"{host}: the sandbox's Kubernetes nodes are containers (ansible_connection "
                             f"community.docker.docker in inventories/sandbox/hosts.yml), got "
                             f"{hv.get('ansible_connection', 'ssh')}")
        if not hv.get("sandbox_container_image"):
            raise ValueError(f"{host}: sandbox_container_image is not set (the image its container runs, e.g. "
                             "ailab-test/debian:12)")
        nodes.append((host, hv.get("ansible_host") or host, hv["sandbox_container_image"]))
    return nodes


def pve_switch(recorded, wanted):
    """The line to print when the sandbox state was made by another PVE version (None: same or new)."""
    if recorded in (None, "", str(wanted)):
        return None
    return (f"the sandbox state was made with the Proxmox VE {recorded} simulator and AILAB_PVE={wanted} asks "
            f"for {wanted}: starting the simulated cluster over (as make lab-reset would)")


def plain_env(tty=False):
    """Colours for ansible-playbook, whose output lab.py pipes: kept on a terminal, off in logs and CI."""
    return {"ANSIBLE_FORCE_COLOR": "1"} if tty else {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}


def token_env(token_file):
    """The AILAB_PVE_* variables that point inventories/sandbox at the least-privilege token that
    playbooks/proxmox_api_user.yml wrote to ``token_file`` (JSON: token_id, token_secret)."""
    kept = json.loads(Path(token_file).read_text())
    token_id = kept["token_id"]
    return {"AILAB_PVE_USER": token_id.rpartition("!")[0], "AILAB_PVE_TOKEN_ID": token_id,
            "AILAB_PVE_TOKEN_SECRET": kept["token_secret"]}


def migration_drill_play():
    """The live-migration drill `make lab` runs after playbooks/proxmox.yml, as a playbook (a list of
    one play) that lab.py writes to build/sandbox/live_migration.yml.

    It lives here, not under inventories/sandbox, because Ansible reads every file of an inventory
    directory as inventory. Its settings are the inventory's sandbox_migration_drill
    (group_vars/proxmox_api/migration.yml); lab.py passes sandbox_migration_drill_node, the node the
    drill VM is on now (read from the simulator), so that a re-run finds the VM on its target and
    changes nothing.
    """
    report = ("{{ ('Live migration to ' ~ _drill.target ~ ': ' ~ __sandbox_migration.duration ~ ' s, downtime '"
              " ~ (__sandbox_migration.downtime_ms | default('?', true)) ~ ' ms')"
              " if __sandbox_migration is changed else"
              " 'Live migration: the drill VM is already on ' ~ _drill.target ~ ', nothing to move' }}")
    return [{
        "name": "Live migration drill",
        "hosts": "proxmox_api",
        "gather_facts": False,
        "tags": ["proxmox", "sandbox_migration"],
        "module_defaults": {"group/ailab.cluster.proxmox": "{{ proxmox_api_connection }}"},
        "vars": {"_drill": "{{ sandbox_migration_drill }}"},
        "tasks": [
            {"name": "Create the drill VM on its first node (shared storage, so that it can move live)",
             "ailab.cluster.proxmox_guest": {
                 "name": "{{ _drill.name }}", "vmid": "{{ _drill.vmid }}",
                 "node": "{{ sandbox_migration_drill_node | default(_drill.node, true) }}",
                 "state": "started", "cores": 1, "memory": 1024, "agent": True,
                 "disks": {"scsi0": {"storage": "{{ _drill.storage }}", "size": "4G"}},
                 "networks": {"net0": {"model": "virtio", "bridge": "vmbr0"}},
                 "tags": ["sandbox", "drill"]}},
            {"name": "Move it live to the other node",
             "ailab.cluster.proxmox_migrate": {"vmid": "{{ _drill.vmid }}", "target": "{{ _drill.target }}"},
             "register": "__sandbox_migration"},
            {"name": "Report the migration", "ansible.builtin.debug": {"msg": report}},
        ],
    }]


def sandbox_expectations(group_vars, pve):
    """What a sandbox run must leave in the simulator, from inventories/sandbox/group_vars/proxmox_api
    (``group_vars``: the merged variables of those files, not templated): the guests, the HA resources
    of the guests that opt in (``ha``), the HA groups (PVE 8; on PVE 9 a group becomes the rule
    ha-group-<name> only once a resource names it), the rules, the backup jobs, the PCI mappings and the
    migration drill."""
    def listed(name):
        value = group_vars.get(name)
        return value if isinstance(value, list) else []

    drill = group_vars.get("sandbox_migration_drill") or {}
    guests = listed("proxmox_guests_list")
    resources = {f"vm:{g['vmid']}" for g in guests if g.get("ha")}
    resources |= {r.get("sid") or f"{'ct' if r.get('type') == 'ct' else 'vm'}:{r['vmid']}"
                  for r in listed("proxmox_ha_resources")}
    return {
        "guests": {g["name"]: (int(g["vmid"]), g["node"]) for g in guests},
        "backup_jobs": sorted(j["id"] for j in listed("proxmox_backup_jobs")),
        "pci_mappings": sorted(m["id"] for m in listed("proxmox_pci_mapping_list")),
        # inventories/sandbox gives its groups (_sandbox_ha_groups) to PVE 8 only.
        "ha_groups": sorted(g["name"] for g in listed("proxmox_ha_groups") or listed("_sandbox_ha_groups"))
        if pve < 9 else [],
        "ha_resources": sorted(resources),
        # ... and its rules (_sandbox_ha_rules) to PVE 9 only.
        "ha_rules": sorted(r["name"] for r in listed("proxmox_ha_rules") or listed("_sandbox_ha_rules"))
        if pve >= 9 else [],
        "drill": (int(drill["vmid"]), drill["target"]) if drill else None,
    }


def simulator_problems(state, expect, pve):
    """What the simulator's state dump (/_sim/state) lacks against ``expect`` (sandbox_expectations)."""
    problems = []
    guests = {str(k): v for k, v in (state.get("guests") or {}).items()}
    for name, (vmid, node) in expect["guests"].items():
        guest = guests.get(str(vmid))
        if guest is None:
            problems.append(f"guest {name} ({vmid}) does not exist")
        elif (guest.get("config") or {}).get("name") != name:
            problems.append(f"guest {vmid} is named {(guest.get('config') or {}).get('name')}, not {name}")
        elif guest.get("node") != node:
            problems.append(f"guest {name} is on {guest.get('node')}, not {node}")
    if expect["drill"]:
        vmid, target = expect["drill"]
        guest = guests.get(str(vmid))
        if guest is None or guest.get("node") != target or guest.get("status") != "running":
            problems.append(f"the live-migration drill VM {vmid} is not running on {target}: {guest and guest.get('node')}")
    for key, have in (("backup_jobs", state.get("backup_jobs")), ("pci_mappings", state.get("pci_mappings"))):
        missing = sorted(set(expect[key]) - set(have or {}))
        if missing:
            problems.append(f"{key} missing: {', '.join(missing)}")
    ha = state.get("ha") or {}
    missing = sorted(set(expect["ha_resources"]) - set(ha.get("resources") or {}))
    if missing:
        problems.append(f"HA resources missing: {', '.join(missing)}")
    for kind in ("groups", "rules"):
        missing = sorted(set(expect[f"ha_{kind}"]) - set(ha.get(kind) or {}))
        if missing:
            problems.append(f"HA {kind} missing: {', '.join(missing)}")
    return problems


def run_problems(run, second=False, layers=LAYERS):
    """What a lab run (build/sandbox/run.json) did wrong: a layer asked for that failed or did not run
    (other than for a missing playbook), an invalid export, and on the second run a change in the
    Proxmox or node layer, in the Kubernetes layer when it ran against the test double, or a different
    export."""
    problems = []
    by_name = {layer["layer"]: layer for layer in run.get("layers") or []}
    for name in layers:
        layer = by_name.get(name)
        if layer is None:
            problems.append(f"{name}: no record")
        elif layer["result"] == "failed":
            problems.append(f"{name}: failed ({layer['detail']})")
        elif layer["result"] == "not run" and "not present" not in layer["detail"]:
            problems.append(f"{name}: not run ({layer['detail']})")
        elif second and layer.get("changed") and (
                name in ("proxmox", "nodes") or (name == "kubernetes" and layer["target"] == "test double")):
            problems.append(f"{name}: changed={layer['changed']} on the second run")
    if "platform" in layers:
        if run.get("export_problems"):
            problems.append(f"export: {len(run['export_problems'])} validation problem(s)")
        if second and not run.get("export_identical"):
            problems.append("export: the second run's export differs from the first")
    return problems


def pod_network_play():
    """The Kubernetes layer's part that runs without kubeadm: the pod network (role cni) in export mode,
    as playbooks/kubernetes.yml and playbooks/export.yml play it. lab.py writes it to
    build/sandbox/pod_network.yml and runs it where the kubeadm test double cannot run (no Docker)."""
    return [{
        "name": "Pod network",
        "hosts": "{{ ailab_platform_hosts | default('kube_control_plane[0]') }}",
        "gather_facts": False,
        "tags": ["kubernetes", "cni"],
        "roles": [{"role": "ailab.cluster.cni"}],
    }]


def write_playbook(path, plays):
    """Write generated plays as a YAML playbook; return the path."""
    import yaml  # noqa: PLC0415 - the harness's virtual environment has it

    Path(path).write_text("---\n" + yaml.safe_dump(plays, sort_keys=False, width=120))
    return path
