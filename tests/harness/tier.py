"""Run one test tier of ailab.cluster and record its result, or print the summary of all tiers.

Usage: tier.py lint|sanity|units|security|molecule [SCENARIO]|integration|summary|user-files

Each tier writes ``$AILAB_RESULTS/<tier>.json`` with passed/failed/skipped counts and its wall
time; ``summary`` prints one table and a closing ``N passed, N failed`` line, and exits non-zero
when any tier failed or did not run.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("AILAB_RESULTS", ROOT / ".cache" / "results"))
TIERS = ("lint", "sanity", "units", "security", "molecule", "integration")
BIN = Path(sys.executable).parent


def plain_output_env():
    """When the output is not a terminal (CI logs, `make test > log`), ask every tool for plain text."""
    if sys.stdout.isatty():
        return {}
    return {"NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0", "TERM": "dumb"}


os.environ.update(plain_output_env())

# The tools keep their caches inside the checkout, never in the user's home: ansible-lint and
# molecule would otherwise resolve (and shadow) ailab.cluster from ~/.ansible/collections, and
# ansible-test writes its virtual environments under ~/.ansible/test (it runs with HOME below).
CACHE_HOME = ROOT / ".cache" / "home"
USER_COLLECTIONS = Path.home() / ".ansible" / "collections"


def tool_cache_env():
    """ANSIBLE_HOME and XDG_CACHE_HOME inside the checkout, for every tool a tier runs."""
    return {"ANSIBLE_HOME": str(ROOT / ".cache" / "ansible-home"), "XDG_CACHE_HOME": str(ROOT / ".cache" / "xdg")}


def user_files_fingerprint():
    """Every path under the user's ~/.ansible/collections with its size and mtime."""
    if not USER_COLLECTIONS.exists():
        return []
    return sorted(f"{p.relative_to(USER_COLLECTIONS)} {p.lstat().st_size} {p.lstat().st_mtime_ns}"
                  for p in USER_COLLECTIONS.rglob("*"))


def run(cmd, **kwargs):
    """Run a command from the repository root, streaming its output; return the exit code."""
    print(f"--> {' '.join(str(c) for c in cmd)}", flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=kwargs.pop("cwd", ROOT), **kwargs)


def record(tier, passed, failed, skipped, started, notes=""):
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"tier": tier, "passed": passed, "failed": failed, "skipped": skipped,
              "seconds": round(time.monotonic() - started, 1), "notes": notes}
    (RESULTS / f"{tier}.json").write_text(json.dumps(result))
    print(f"== {tier}: {passed} passed, {failed} failed, {skipped} skipped "
          f"in {result['seconds']:.0f}s {notes}", flush=True)
    return 1 if failed else 0


def tracked_files():
    """Files git tracks plus untracked files it does not ignore (what the collection contains)."""
    out = subprocess.check_output(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT)
    return [p for p in out.decode().split("\0") if p and (ROOT / p).exists() and not (ROOT / p).is_symlink()]


def pytest_counts(junit):
    tree = ET.parse(junit).getroot()
    suites = [tree] if tree.tag == "testsuite" else list(tree)
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return total - failed - skipped, failed, skipped


# ------------------------------------------------------------------------------------------ tiers
def tier_lint():
    started = time.monotonic()
    checks = {
        "yamllint": [BIN / "yamllint", "--strict", "."],
        "ansible-lint": [BIN / "ansible-lint", "--profile", "production"],
        "ruff": [BIN / "ruff", "check", "plugins", "tests"],
    }
    failed = [name for name, cmd in checks.items() if run(cmd) != 0]
    return record("lint", len(checks) - len(failed), len(failed), 0, started,
                  f"(failed: {', '.join(failed)})" if failed else "")


def seed_pip_bootstrap():
    """Give ansible-test its pip bootstrap script without the download host it normally uses."""
    from ansible_test._internal.python_requirements import get_venv_packages  # noqa: PLC0415

    version = get_venv_packages(type("Python", (), {"version": "3"})())["pip"]
    cache = CACHE_HOME / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    script = cache / f"get_pip_{version.replace('.', '_')}.py"
    shutil.copy2(ROOT / "tests" / "harness" / "get_pip.py", script)
    if not list(cache.glob(f"pip-{version}-py3-none-any.whl")):
        subprocess.check_call([BIN / "python", "-m", "pip", "download", "-q", "--no-deps", "-d", cache, f"pip=={version}"],
                              stderr=subprocess.DEVNULL)


def tier_sanity():
    """ansible-test sanity from an ansible_collections/ailab/cluster copy of the tracked files."""
    started = time.monotonic()
    seed_pip_bootstrap()
    tree = ROOT / "build" / "sanity" / "ansible_collections" / "ailab" / "cluster"
    shutil.rmtree(tree.parents[2], ignore_errors=True)
    for rel in tracked_files():
        dest = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    # Dependencies (galaxy.yml) next to the copy, from the pinned `ansible` package, so that
    # doc fragments and module_utils of other collections resolve.
    import yaml  # noqa: PLC0415 - from the tier's virtual environment

    bundled = Path(yaml.__file__).parents[1] / "ansible_collections"
    for dep in (yaml.safe_load((ROOT / "galaxy.yml").read_text()).get("dependencies") or {}):
        namespace, name = dep.split(".")
        link = tree.parents[1] / namespace / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(bundled / namespace / name)
    # ansible-test lists files with git: give the copy a repository of its own (the checkout's
    # .gitignore hides build/).
    subprocess.run("git init -q && git add -A", shell=True, cwd=tree, check=True)
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HOME=str(CACHE_HOME))
    # Every CPython the machine has (pyenv or system) lets the compile/import tests cover the
    # module-side Python versions too; ansible-test skips the versions it cannot find.
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    extra = sorted({str(p.parent) for p in (pyenv / "versions").glob("3.*/bin/python3")})
    if extra:
        env["PATH"] = f"{BIN}:" + ":".join(extra) + ":" + os.environ["PATH"]
    log = RESULTS / "sanity.log"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen([BIN / "ansible-test", "sanity", "--venv", "--color", "no"],
                                cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            sys.stdout.write(line)
            fh.write(line)
        rc = proc.wait()
    text = log.read_text()
    # ansible-test repeats its warnings in a closing review: count each skip once. A test whose
    # program is missing ("Required program ... not found") printed "Running" but did not run.
    ran = len(re.findall(r"^Running sanity test [\"']", text, re.M))
    skips = set(re.findall(r"^WARNING: Skipping sanity test [\"'].*$", text, re.M))
    missing = set(re.findall(r"^WARNING: Required program [\"'].*$", text, re.M))
    for line in sorted(skips | missing):
        print(f"not run: {line.removeprefix('WARNING: ')}")
    ran -= len(missing)
    skipped = len(skips) + len(missing)
    m = re.search(r"The (\d+) sanity test\(s\) listed below \(out of (\d+)\) failed", text)
    failed = int(m.group(1)) if m else (1 if rc else 0)
    return record("sanity", max(ran - failed, 0), failed, skipped, started)


def tier_units():
    started = time.monotonic()
    junit = RESULTS / "units.xml"
    RESULTS.mkdir(parents=True, exist_ok=True)
    rc = run([BIN / "python", "-m", "pytest", "tests/unit", "-q", "-n", "2", "-p", "no:cacheprovider",
              "--ignore=tests/unit/security", f"--junitxml={junit}"])
    if not junit.exists():
        return record("units", 0, 1, 0, started, f"(pytest exited {rc} without a report)")
    passed, failed, skipped = pytest_counts(junit)
    if rc not in (0, 5) and not failed:
        failed = 1
    return record("units", passed, failed, skipped, started)


def tier_security():
    """Secrets never in output, bad inputs refused before any write, faults handled (tests/unit/security);
    ends with one line of figures."""
    started = time.monotonic()
    junit = RESULTS / "security.xml"
    RESULTS.mkdir(parents=True, exist_ok=True)
    rc = run([BIN / "python", "-m", "pytest", "tests/unit/security", "-q", "-n", "2", "-p", "no:cacheprovider",
              f"--junitxml={junit}"])
    if not junit.exists():
        return record("security", 0, 1, 0, started, f"(pytest exited {rc} without a report)")
    passed, failed, skipped = pytest_counts(junit)
    if rc not in (0, 5) and not failed:
        failed = 1
    return record("security", passed, failed, skipped, started)


def molecule_scenarios():
    """Every scenario under molecule/ as (name, uses_containers): a scenario that keeps the base
    config's docker driver runs systemd containers; one on the default (delegated) driver runs on
    the controller alone (export mode, or the Proxmox VE API simulator)."""
    import yaml  # noqa: PLC0415 - the harness's virtual environment has it

    scenarios = []
    for path in sorted((ROOT / "molecule").glob("*/molecule.yml")):
        config = yaml.safe_load(path.read_text()) or {}
        driver = (config.get("driver") or {}).get("name", "docker")
        scenarios.append((path.parent.name, driver == "docker"))
    return scenarios


def tier_molecule(only=None, workers=2):
    """Every molecule scenario (or only one), two at a time: the container scenarios one after the
    other in the first lane, the controller-only ones in the second lane and, once the containers
    are done, in both. Each scenario's output goes to $AILAB_RESULTS/molecule/<scenario>.log (its
    tail is printed when it fails); one line per scenario with its wall time."""
    started = time.monotonic()
    scenarios = [s for s in molecule_scenarios() if not only or s[0] == only]
    if only and not scenarios:
        return record("molecule", 0, 1, 0, started, f"(no scenario {only})")
    logs = RESULTS / "molecule"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    containers = [name for name, uses in scenarios if uses]
    controller = [name for name, uses in scenarios if not uses]
    lock, results = threading.Lock(), {}

    def run_one(name):
        begun = time.monotonic()
        log = logs / f"{name}.log"
        with log.open("wb") as out:
            rc = subprocess.call([str(BIN / "molecule"), "test", "-s", name], cwd=ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - begun
        with lock:
            results[name] = (rc, seconds)
            print(f"   molecule {name:<26} {'ok' if rc == 0 else f'FAILED (rc {rc})':<16} {seconds:6.1f}s", flush=True)
            if rc:
                print("\n".join(log.read_text(errors="replace").splitlines()[-40:]), flush=True)

    def lane(first):
        for name in first:
            run_one(name)
        while True:
            with lock:
                if not controller:
                    return
                name = controller.pop(0)
            run_one(name)

    print(f"--> molecule test: {len(scenarios)} scenario(s), {workers} at a time; logs in {logs}", flush=True)
    lanes = [threading.Thread(target=lane, args=(containers if i == 0 else [],)) for i in range(max(1, workers))]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    failed = sorted(name for name, (rc, _s) in results.items() if rc)
    return record("molecule", len(results) - len(failed), len(failed), 0, started,
                  f"(failed: {', '.join(failed)})" if failed else "")


def tier_integration():
    """Every tests/integration/test_*.yml against the PVE 8 and the PVE 9 simulator, the offline
    collection install, and the sandbox lab (tests/harness/lab.py, what `make lab` runs) twice per PVE
    version: on PVE 9 every layer (the node containers are shared with `make lab`), on PVE 8 the
    Proxmox layer only (the other layers do not depend on the PVE version). The Kubernetes layer runs
    against the kubeadm test double (tests/kubesim) in the node containers: every kube_* host must have
    a Ready Node in its state. The second run must change nothing in the Proxmox, node and Kubernetes
    layers and write an identical export."""
    started = time.monotonic()
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "tests" / "harness"))
    from lab import simulator_env  # noqa: PLC0415
    from pvesim.testing import SimulatorProcess  # noqa: PLC0415

    playbooks = sorted((ROOT / "tests" / "integration").glob("test_*.yml"))
    passed, failed = 0, []
    for pve in (8, 9):
        with SimulatorProcess(pve=pve) as sim:
            env = dict(os.environ, AILAB_PVE_MAJOR=str(pve), **simulator_env(sim))
            for playbook in playbooks:
                if run([BIN / "ansible-playbook", playbook], env=env) == 0:
                    passed += 1
                else:
                    failed.append(f"{playbook.name}@pve{pve}")
    for pve, layers in ((8, ("proxmox",)), (9, None)):
        for name, problems in sandbox_lab(pve, layers):
            if problems:
                failed.append(f"{name}@pve{pve}")
                for problem in problems:
                    print(f"   PROBLEM {name}@pve{pve}: {problem}", flush=True)
            else:
                passed += 1
    if collection_installs_offline():
        passed += 1
    else:
        failed.append("collection build/install/ansible-doc")
    return record("integration", passed, len(failed), 0, started, f"(failed: {', '.join(failed)})" if failed else "")


def sandbox_lab(pve, layers):
    """Run the sandbox lab twice on a fresh simulated cluster; yield (check, problems) per check."""
    import tempfile  # noqa: PLC0415

    for path in (ROOT / "tests", ROOT / "tests" / "harness"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import sandbox  # noqa: PLC0415
    import sandbox_containers  # noqa: PLC0415
    import yaml  # noqa: PLC0415
    from pvesim.testing import SimulatorProcess  # noqa: PLC0415

    group_vars = {}
    for path in sorted((ROOT / "inventories" / "sandbox" / "group_vars" / "proxmox_api").glob("*.yml")):
        group_vars.update(yaml.safe_load(path.read_text()) or {})
    expect = sandbox.sandbox_expectations(group_vars, pve)
    wanted = sandbox.LAYERS if layers is None else layers
    build = ROOT / "build" / "sandbox-tier" / f"pve{pve}"
    shutil.rmtree(build, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"ailab-sandbox-pve{pve}-") as state:
        env = dict(os.environ, AILAB_PVE=str(pve), AILAB_SANDBOX_STATE=state, AILAB_SANDBOX_BUILD=str(build),
                   AILAB_LAB_QUIET="1", AILAB_LAB_LAYERS=",".join(layers or ()))
        env.pop("ARGS", None)
        for attempt in (1, 2):
            print(f"--> sandbox lab on PVE {pve}, run {attempt} ({'every layer' if layers is None else ', '.join(layers)})",
                  flush=True)
            rc = run([BIN / "python", ROOT / "tests" / "harness" / "lab.py"], env=env)
            run_file = build / "run.json"
            if not run_file.exists():
                yield f"sandbox lab run {attempt}", [f"lab.py exited {rc} without build/sandbox/run.json"]
                return
            outcome = json.loads(run_file.read_text())
            yield f"sandbox lab run {attempt}", sandbox.run_problems(outcome, second=attempt == 2, layers=wanted)
            if attempt == 1:
                with SimulatorProcess(pve=pve, state_dir=state, persist=Path(state) / "state.json") as sim:
                    yield "sandbox simulator state", sandbox.simulator_problems(sim.state(), expect, pve)
                if "nodes" in wanted and sandbox_containers.docker_available():
                    inventory = json.loads(subprocess.check_output(
                        [BIN / "ansible-inventory", "-i", "inventories/sandbox", "--list"], cwd=ROOT, text=True))
                    problems = []
                    for host, container, _image in sandbox.node_containers(inventory):
                        state_of = sandbox_containers.docker("exec", container, "systemctl", "is-active", "containerd",
                                                             check=False).stdout.strip()
                        if state_of != "active":
                            problems.append(f"{host}: containerd is {state_of or 'unknown'} in {container}")
                    yield "sandbox node containers converged", problems
                    if "kubernetes" in wanted:
                        # The Kubernetes layer ran against the kubeadm test double: every kube_* host has a
                        # Ready Node in the double's state (read in the first control plane's container).
                        containers = {h: c for h, c, _i in sandbox.node_containers(inventory)}
                        control_planes = sandbox.group_hosts(inventory, "kube_control_plane")
                        workers = sandbox.group_hosts(inventory, "kube_node")
                        version = inventory["_meta"]["hostvars"][control_planes[0]].get("kubernetes_packages_version")
                        cluster = sandbox.kubesim_cluster(sandbox_containers.kubesim_dump(containers[control_planes[0]]))
                        target = {layer["layer"]: layer["target"] for layer in outcome["layers"]}.get("kubernetes")
                        yield "sandbox Kubernetes nodes Ready in the test double", (
                            ([] if target == "test double" else [f"the kubernetes layer ran against: {target}"])
                            + sandbox.kubernetes_problems(cluster, control_planes, workers, version))
                if "report" in wanted and "report" in {layer["layer"] for layer in outcome["layers"]
                                                       if layer["result"] == "ok"}:
                    pages = list((build / "report").rglob("*.html"))
                    yield "sandbox lab report rendered", [] if pages else ["no HTML page in build/sandbox/report"]


def collection_installs_offline():
    """`ansible-galaxy collection build`, an offline install into an empty path, and ansible-doc
    of every module from there."""
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="ailab-galaxy-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
        if run([BIN / "ansible-galaxy", "collection", "build", "--force", "--output-path", tmp, ROOT], cwd=tmp, env=env):
            return False
        tarball = next(Path(tmp).glob("ailab-cluster-*.tar.gz"))
        target = Path(tmp) / "installed"
        if run([BIN / "ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", target, tarball],
               cwd=tmp, env=env):
            return False
        modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("[a-z]*.py"))
        env["ANSIBLE_COLLECTIONS_PATH"] = str(target)
        return run([BIN / "ansible-doc", *[f"ailab.cluster.{m}" for m in modules]], cwd=tmp, env=env,
                   stdout=subprocess.DEVNULL) == 0


def summary():
    """Print one row per tier and the closing line; a tier that did not run or ran nothing fails."""
    rows, totals, not_ok = [], dict(passed=0, failed=0, skipped=0), 0
    for tier in TIERS:
        path = RESULTS / f"{tier}.json"
        if not path.exists():
            rows.append((tier, "-", "-", "-", "-", "DID NOT RUN"))
            not_ok += 1
            continue
        r = json.loads(path.read_text())
        for key in totals:
            totals[key] += r[key]
        status = "FAILED" if r["failed"] else ("EMPTY" if not r["passed"] else "ok")
        # A tier that did not run or ran no test counts as one failure in the closing line.
        not_ok += status == "EMPTY"
        rows.append((tier, r["passed"], r["failed"], r["skipped"], f"{r['seconds']:.0f}s", status))
    # make test fingerprints the user's ~/.ansible/collections first: no tier may change it.
    before = RESULTS / "user-files.json"
    if before.exists():
        changed = sorted(set(json.loads(before.read_text())) ^ set(user_files_fingerprint()))
        totals["passed" if not changed else "failed"] += 1
        rows.append(("user files", int(not changed), int(bool(changed)), 0, "-",
                     "ok" if not changed else f"CHANGED: {', '.join(changed)[:200]}"))
    print("\n" + "=" * 64)
    print(f"{'tier':<13}{'passed':>8}{'failed':>8}{'skipped':>9}{'time':>9}  status")
    print("-" * 64)
    for row in rows:
        print(f"{row[0]:<13}{row[1]:>8}{row[2]:>8}{row[3]:>9}{row[4]:>9}  {row[5]}")
    print("=" * 64)
    failed = totals["failed"] + not_ok
    print(f"{totals['passed']} passed, {failed} failed, {totals['skipped']} skipped")
    return int(failed > 0)


def main(argv):
    if not argv or argv[0] not in TIERS + ("summary", "user-files"):
        sys.exit(__doc__)
    os.environ.update(tool_cache_env())
    if argv[0] == "summary":
        return summary()
    if argv[0] == "user-files":
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "user-files.json").write_text(json.dumps(user_files_fingerprint()))
        return 0
    if argv[0] == "molecule":
        return tier_molecule(argv[1] if len(argv) > 1 else None)
    return globals()[f"tier_{argv[0]}"]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
