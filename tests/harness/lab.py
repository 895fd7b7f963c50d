"""`make lab`: every layer of the lab on the sandbox inventory, each against what can stand for it.

    proxmox     the Proxmox VE API simulator (tests/pvesim, PVE 9; AILAB_PVE=8 for PVE 8): as root@pam
                playbooks/proxmox_api_user.yml (the collection's role, user and privilege-separated
                token, secret kept in .cache/sandbox/pve-token.json), then WITH THAT TOKEN the inventory
                check, playbooks/proxmox.yml (cluster, storage, PCI mapping, guests, HA, backup job) and
                a live migration drill (sandbox.migration_drill_play)
    nodes       one local systemd container per Kubernetes node VM (docker connection): playbooks/nodes.yml
    kubernetes  on the node containers against the kubeadm/kubelet/kubectl test double (tests/kubesim, installed
                by molecule/shared/kubesim/install.yml): playbooks/kubernetes.yml for real (kubeadm init,
                joins, the pod network applied to the double's API server, the admin kubeconfig in
                .cache/sandbox/kubeconfig), then the double's Nodes checked; without Docker, the pod
                network objects in export mode only
    platform    storage, services, GPU, tenants and queues, JupyterHub, monitoring, dashboard in export
                mode (playbooks/export.yml), validated by tests/export_check
    validate    playbooks/validate.yml, when present
    report      playbooks/report.yml, when present: the lab report in build/sandbox/report

Each layer prints one line saying what it ran against; the closing table gives every layer's wall
time. The sandbox is persistent: the simulator keeps its CA and cluster state in .cache/sandbox, the
containers stay, so a second `make lab` changes nothing and writes an identical export.
`make lab-reset` forgets the simulated cluster; `make lab-clean` also removes the containers, the
kubesim state volume (ailab-sandbox-kubesim) and build/sandbox.

Environment: AILAB_PVE (9), ARGS (extra ansible-playbook options for every layer), AILAB_LAB_LAYERS
(comma list of layers to run, default all), AILAB_SANDBOX_STATE (.cache/sandbox), AILAB_SANDBOX_BUILD
(build/sandbox), AILAB_LAB_QUIET=1 (ansible output only in the layer logs).
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sandbox  # noqa: E402
import sandbox_containers  # noqa: E402
from pvesim.testing import SimulatorError, SimulatorProcess  # noqa: E402

INVENTORY = "inventories/sandbox"
BIN = Path(sys.executable).parent
SANDBOX = Path(os.environ.get("AILAB_SANDBOX_STATE") or ROOT / ".cache" / "sandbox").resolve()
BUILD = Path(os.environ.get("AILAB_SANDBOX_BUILD") or ROOT / "build" / "sandbox").resolve()
STATE_FILE = SANDBOX / "state.json"
TOKEN_FILE = SANDBOX / "pve-token.json"  # the least-privilege token (playbooks/proxmox_api_user.yml), mode 0600
KUBESIM = ROOT / "tests" / "kubesim"  # the kubeadm/kubelet/kubectl test double, mounted in the node containers
TTY = sys.stdout.isatty()


def simulator_env(sim):
    """The AILAB_PVE_* variables inventories/sandbox reads its Proxmox connection (and version) from."""
    return {
        "AILAB_PVE": str(sim.pve),
        "AILAB_PVE_HOST": sim.host,
        "AILAB_PVE_PORT": str(sim.port),
        "AILAB_PVE_USER": sim.user,
        "AILAB_PVE_TOKEN_ID": sim.token_id,
        "AILAB_PVE_TOKEN_SECRET": sim.token_secret,
        "AILAB_PVE_CA": sim.ca_file,
    }


def rel(path):
    try:
        return Path(path).relative_to(ROOT)
    except ValueError:
        return path


class Lab:
    def __init__(self, pve, only, extra, quiet):
        self.pve, self.only, self.extra, self.quiet = pve, only, extra, quiet
        self.layers = []
        self.export_dir = BUILD / "export"
        self.logs = BUILD / "logs"
        self.facts = {"pve": pve}

    # ------------------------------------------------------------------ helpers
    def playbook(self, layer, playbooks, env=None, args=()):
        """Run ansible-playbook, streaming (unless quiet) and logging; return (rc, output, seconds)."""
        cmd = [str(BIN / "ansible-playbook"), "-i", INVENTORY, *playbooks, *args, *self.extra]
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{layer}.log"
        print(f"--> {' '.join(shlex.quote(str(c)) for c in cmd)}   (log: {rel(log)})", flush=True)
        started = time.monotonic()
        chunks = []
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env or os.environ, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                chunks.append(line)
                fh.write(line)
                if not self.quiet:
                    sys.stdout.write(line)
            rc = proc.wait()
        output = "".join(chunks)
        if rc and self.quiet:
            sys.stdout.write(output[-4000:])
        return rc, output, time.monotonic() - started

    def add(self, layer):
        self.layers.append(layer)
        print(sandbox.layer_line(layer), flush=True)
        return layer

    def inventory(self):
        out = subprocess.run([str(BIN / "ansible-inventory"), "-i", INVENTORY, "--list"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    # ------------------------------------------------------------------ layers
    def proxmox(self, inventory):
        recorded_file = SANDBOX / "pve-version"
        SANDBOX.mkdir(parents=True, exist_ok=True)
        recorded = recorded_file.read_text().strip() if recorded_file.exists() else None
        switch = sandbox.pve_switch(recorded if STATE_FILE.exists() else None, self.pve)
        if switch:
            print(f"==> sandbox: {switch}", flush=True)
            STATE_FILE.unlink()
        kept = "continuing the sandbox in" if STATE_FILE.exists() else "new sandbox, kept in"
        print(f"==> sandbox: starting the Proxmox VE {self.pve} API simulator ({kept} {rel(STATE_FILE)})", flush=True)
        started = time.monotonic()
        try:
            # /cluster/resources lags by PVE's pvestatd round (10 s), as on a real cluster; HA requests
            # settle in half-second CRM rounds (PVE: about 10 s) so that the sandbox stays quick.
            sim = SimulatorProcess(pve=self.pve, state_dir=str(SANDBOX), persist=STATE_FILE, stats_interval=None,
                                   ha_round=0.5).start()
        except SimulatorError as exc:
            return self.add({**sandbox.not_run("proxmox", f"the simulator did not start ({exc}); to start "
                                               "the sandbox over: make lab-reset"), "result": "failed"})
        recorded_file.write_text(f"{self.pve}\n")
        drill = (inventory["_meta"]["hostvars"].get("localhost") or {}).get("sandbox_migration_drill") or {}
        with sim:
            guest = (sim.state().get("guests") or {}).get(str(drill.get("vmid")))
            args = ["-e", f"sandbox_migration_drill_node={guest['node']}"] if guest else []
            env = dict(os.environ, **sandbox.plain_env(TTY), **simulator_env(sim))
            # Bootstrap as root@pam: the collection's own role, user and privilege-separated token
            # (a re-run changes nothing); every other play of the layer runs with that token.
            rc, output, _seconds = self.playbook("proxmox_api_user", ["playbooks/proxmox_api_user.yml"], env=env,
                                                 args=["-e", f"proxmox_api_user_secret_file={TOKEN_FILE}"])
            if rc == 0:
                env.update(sandbox.token_env(TOKEN_FILE))
                drill_file = sandbox.write_playbook(BUILD / "live_migration.yml", sandbox.migration_drill_play())
                rc, more, _seconds = self.playbook("proxmox", ["playbooks/check.yml", "playbooks/proxmox.yml",
                                                               str(drill_file)], env=env, args=args)
                output += more
            log = sim.requests_log()
        writes = sum(1 for r in log if r.get("write"))
        layer = sandbox.playbook_layer("proxmox", "simulator", rc, output, time.monotonic() - started,
                                       "least-privilege API token (bootstrap as root@pam), inventory check, cluster, "
                                       "storage, PCI mapping, guests, HA, backup job, live migration")
        layer["detail"] += f"; the PVE {self.pve} API saw {len(log)} requests ({writes} writes)"
        token_id = sandbox.token_env(TOKEN_FILE)["AILAB_PVE_TOKEN_ID"] if TOKEN_FILE.exists() else None
        if token_id:
            as_token = sum(1 for r in log if r.get("user") == token_id)
            layer["detail"] += f", {as_token} of them with the least-privilege token {token_id}"
        return self.add(layer)

    def nodes(self, nodes):
        started = time.monotonic()
        try:
            actions = sandbox_containers.ensure(nodes, KUBESIM)
        except sandbox_containers.ContainerError as exc:
            return self.add({**sandbox.not_run("nodes", f"the node containers are not ready: {exc}"),
                             "result": "failed"})
        made = sorted(set(actions.values()))
        print(f"    containers: {', '.join(f'{c} ({a})' for c, a in sorted(actions.items()))}", flush=True)
        rc, output, _seconds = self.playbook("nodes", ["playbooks/nodes.yml"], env=dict(os.environ, **sandbox.plain_env(TTY)))
        layer = sandbox.playbook_layer("nodes", "containers", rc, output, time.monotonic() - started,
                                       f"{len(nodes)} containers ({'/'.join(made)}), node_prep, containerd, "
                                       "kubernetes_packages")
        return self.add(layer)

    def export_run(self, layer, playbook, what):
        started = time.monotonic()
        rc, output, _seconds = self.playbook(layer, [str(playbook)], env=dict(os.environ, **sandbox.plain_env(TTY)),
                                             args=["-e", f"ailab_kubernetes_export_dir={self.export_dir}"])
        return sandbox.playbook_layer(layer, "export", rc, output, time.monotonic() - started, what)

    def kubernetes(self, docker_ok, nodes, inventory):
        # The export directory is kept between runs, as `make export` keeps its own: roles read back
        # what they generated there (JupyterHub's secrets), so a re-run writes the same files.
        # `make lab-clean` empties it.
        self.export_dir.mkdir(parents=True, exist_ok=True)
        nodes_result = next((layer["result"] for layer in self.layers if layer["layer"] == "nodes"), "not run")
        ready = docker_ok and nodes_result == "not run" and sandbox_containers.containers_ready(nodes, KUBESIM)
        target, why = sandbox.kubernetes_target(docker_ok, nodes_result, ready)
        if target == "not run":
            return self.add(sandbox.not_run("kubernetes", why))
        if target == "export":
            play = sandbox.write_playbook(BUILD / "pod_network.yml", sandbox.pod_network_play())
            layer = self.export_run("kubernetes", play, "pod network (CNI) objects")
            layer["detail"] = f"{why}; {layer['detail']}"
            return self.add(layer)
        started = time.monotonic()
        rc, output, _seconds = self.playbook("kubernetes", [sandbox.KUBESIM_INSTALL, "playbooks/kubernetes.yml"],
                                             env=dict(os.environ, **sandbox.plain_env(TTY)),
                                             args=["-e", f"kubeconfig_dest={SANDBOX / 'kubeconfig' / 'ailab.conf'}"])
        control_planes = sandbox.group_hosts(inventory, "kube_control_plane")
        workers = sandbox.group_hosts(inventory, "kube_node")
        containers = {host: container for host, container, _image in nodes}
        try:
            cluster = sandbox.kubesim_cluster(sandbox_containers.kubesim_dump(containers[control_planes[0]]))
        except (sandbox_containers.ContainerError, ValueError, IndexError, KeyError) as exc:
            cluster, problems = None, [f"the test double's state could not be read: {exc}"]
        else:
            hostvars = inventory["_meta"]["hostvars"].get(control_planes[0]) or {}
            problems = sandbox.kubernetes_problems(cluster, control_planes, workers,
                                                   hostvars.get("kubernetes_packages_version"))
        layer = sandbox.playbook_layer("kubernetes", "test double", rc, output, time.monotonic() - started,
                                       "kubesim: " + (sandbox.kubernetes_summary(cluster, control_planes) if cluster
                                                      else "no cluster state") + " (playbooks/kubernetes.yml)")
        for problem in problems:
            print(f"    PROBLEM {problem}")
        self.facts.update(kubernetes_cluster=cluster, kubernetes_problems=problems)
        if problems and layer["result"] == "ok":
            layer["result"] = "failed"
            layer["detail"] += f"; {len(problems)} problem(s) in the double's state"
        return self.add(layer)

    def platform(self):
        from export_check import check_export  # noqa: PLC0415 - needs the reference data only here

        layer = self.export_run("platform", "playbooks/export.yml",
                                "storage, services, GPU, tenants and queues, JupyterHub, monitoring, dashboard "
                                "(playbooks/export.yml)")
        if layer["result"] != "ok":
            return self.add(layer)
        started = time.monotonic()
        files = sorted(p for p in self.export_dir.rglob("*") if p.is_file())
        problems = check_export(self.export_dir)
        for problem in problems:
            print(f"    PROBLEM {problem}")
        self.facts.update(export_files=len(files), export_problems=problems)
        layer["seconds"] = round(layer["seconds"] + time.monotonic() - started, 1)
        layer["detail"] += f"; {len(files)} files in {rel(self.export_dir)}, {len(problems)} validation problem(s)"
        if problems:
            layer["result"] = "failed"
        return self.add(layer)

    def validate(self):
        started = time.monotonic()
        rc, output, _seconds = self.playbook("validate", ["playbooks/validate.yml"], env=dict(os.environ, **sandbox.plain_env(TTY)),
                                             args=["-e", f"ailab_kubernetes_export_dir={self.export_dir}"])
        layer = sandbox.playbook_layer("validate", "export", rc, output, time.monotonic() - started,
                                       "playbooks/validate.yml on the export")
        if layer["result"] == "ok":
            # In export mode the smoke tests write their workloads next to the export: validated too.
            from export_check import check_export  # noqa: PLC0415

            problems = check_export(self.export_dir)
            for problem in problems:
                print(f"    PROBLEM {problem}")
            self.facts["export_problems"] = self.facts.get("export_problems", []) + problems
            layer["detail"] += f"; export with its workloads: {len(problems)} validation problem(s)"
            if problems:
                layer["result"] = "failed"
        return self.add(layer)

    def report(self):
        report_dir = BUILD / "report"
        layers_file = BUILD / "layers.json"
        started = time.monotonic()
        # The report shows every layer before it; its own line is added to layers.json afterwards. In
        # export mode it reads no Service from a cluster (the sandbox has none).
        layers_file.write_text(json.dumps(sandbox.report_layers(self.layers), indent=2) + "\n")
        rc, output, _seconds = self.playbook("report", ["playbooks/report.yml"], env=dict(os.environ, **sandbox.plain_env(TTY)),
                                             args=["-e", f"lab_report_dir={report_dir}", "-e", f"@{layers_file}",
                                                   "-e", f"ailab_kubernetes_export_dir={self.export_dir}"])
        layer = sandbox.playbook_layer("report", "export", rc, output, time.monotonic() - started,
                                       f"lab report in {rel(report_dir)}")
        return self.add(layer)

    def compare_export(self):
        """Digest of the whole export (with the smoke-test workloads) against the previous run's."""
        digest = sandbox.export_digest(self.export_dir)
        digest_file = SANDBOX / "export.sha256"
        previous = digest_file.read_text().strip() if digest_file.exists() else None
        SANDBOX.mkdir(parents=True, exist_ok=True)
        digest_file.write_text(digest + "\n")
        same = ("identical to the previous run's" if previous == digest else
                "first export of this sandbox" if previous is None else
                "differs from the previous run's (the inventory or the roles changed)")
        files = sum(1 for p in self.export_dir.rglob("*") if p.is_file())
        self.facts.update(export_digest=digest, export_identical=previous == digest)
        print(f"==> export: {files} files in {rel(self.export_dir)}, {same}", flush=True)

    # ------------------------------------------------------------------ the run
    def run(self):
        BUILD.mkdir(parents=True, exist_ok=True)
        have = {name for name in ("validate", "report") if (ROOT / "playbooks" / f"{name}.yml").exists()}
        docker_ok = sandbox_containers.docker_available()
        reasons = sandbox.plan(docker_ok, self.only, have)
        inventory = self.inventory()
        nodes = sandbox.node_containers(inventory)
        for name in sandbox.LAYERS:
            if reasons[name] is not None:
                self.add(sandbox.not_run(name, reasons[name]))
            elif name in ("nodes",):
                self.nodes(nodes)
            elif name == "proxmox":
                self.proxmox(inventory)
            elif name == "kubernetes":
                self.kubernetes(docker_ok, nodes, inventory)
            else:
                getattr(self, name)()
        if self.export_dir.exists() and any(self.export_dir.iterdir()):
            self.compare_export()
        (BUILD / "layers.json").write_text(json.dumps(sandbox.report_layers(self.layers), indent=2) + "\n")
        (BUILD / "run.json").write_text(json.dumps({"layers": self.layers, **self.facts}, indent=2) + "\n")
        print("\n" + sandbox.layer_table(self.layers))
        failed = [layer["layer"] for layer in self.layers if layer["result"] == "failed"]
        print(f"\n==> sandbox done: {len(failed)} layer(s) failed{': ' + ', '.join(failed) if failed else ''}; "
              f"layers in {rel(BUILD / 'layers.json')}, logs in {rel(self.logs)}")
        report = BUILD / "report"
        if "report" in have and report.exists():
            pages = sorted(report.rglob("*.html"))
            print(f"    lab report: {rel(pages[0]) if pages else rel(report)}")
        print(f"    The sandbox keeps its state in {rel(SANDBOX)} and the containers ailab-sandbox-*: the next "
              "`make lab` continues from them. To start the simulated cluster over: make lab-reset; to remove "
              "everything: make lab-clean")
        print("    For a real lab: copy inventories/sandbox to inventories/<lab> (drop the SANDBOX ONLY parts) and "
              "run ansible-playbook -i inventories/<lab> site.yml")
        return 1 if failed else 0


def clean():
    """`make lab-clean`: the containers, the kubesim state volume, the simulator state and the build directory."""
    removed = sandbox_containers.remove_all() if sandbox_containers.docker_available() else []
    print(f"==> removed {len(removed)} sandbox container(s) and volume(s){': ' + ', '.join(removed) if removed else ''}")
    for path in (SANDBOX, BUILD):
        shutil.rmtree(path, ignore_errors=True)
        print(f"==> removed {rel(path)}")
    return 0


def main(argv):
    if argv[:1] == ["clean"]:
        return clean()
    try:
        only = sandbox.parse_layers(os.environ.get("AILAB_LAB_LAYERS"))
    except ValueError as exc:
        print(f"==> {exc}", file=sys.stderr)
        return 2
    pve = int(os.environ.get("AILAB_PVE", "9"))
    extra = shlex.split(os.environ.get("ARGS", ""))
    quiet = os.environ.get("AILAB_LAB_QUIET", "") not in ("", "0")
    return Lab(pve, only, extra, quiet).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
