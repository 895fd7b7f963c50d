"""`make mutation`: mutation testing (mutmut) of plugins/module_utils, with a score per file.

Usage: mutation.py [FILE ...] [--tests PATH ...] [--fail-under PCT] [--max-children N]
                   [--timeout SECONDS] [--work DIR] [--show]

FILE names module_utils files (``_proxmox.py``, ``_proxmox`` or ``plugins/module_utils/_proxmox.py``);
default: every file in plugins/module_utils. The working tree (tracked files and untracked files git
does not ignore) is copied under WORK/ansible_collections/ailab/cluster, because the unit tests import
the collection as ``ansible_collections.ailab.cluster``; mutmut's config is written to WORK/setup.cfg
and mutmut runs there, one file at a time (each run bounded by --timeout), with the unit tests under
--tests (default tests/unit/plugins/module_utils; tests/unit/plugins adds the module and filter
tests, a much longer run); mutmut runs only the tests that reach the mutated function.

Prints a table file / mutants / killed / survived / timeout / other / score and the overall score;
--show adds the diff of every surviving mutant. Score = (killed + timeout) / (mutants checked):
a mutant that makes the tests hang is caught. Exits 1 when a file's score is below --fail-under
(default: report only), or when a file's run did not finish (timeout, mutmut error).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = Path("plugins/module_utils")
COLLECTION = Path("ansible_collections/ailab/cluster")
SKIP = {".collections"}  # the checkout's self-link: copied, it would lead to the unmutated sources

# mutmut's exit codes (mutmut.stats.status_by_exit_code, mutmut 3.8), grouped for the table.
KILLED = {1, 3, 37, -11, -9}  # test failure, pytest internal error, type check, crash
TIMEOUT = {36, -24, 24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}
NOT_CHECKED = {None, 2}
SKIPPED = {34}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("files", nargs="*", help="module_utils files (default: all)")
    parser.add_argument("--tests", nargs="+", default=["tests/unit/plugins/module_utils"],
                        help="test paths mutmut may run (default: tests/unit/plugins/module_utils)")
    parser.add_argument("--fail-under", type=float, default=None,
                        help="exit 1 when a file's score (%%) is below this (default: report only)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutmut workers (default: 2)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one file's run may take (default: 1800)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "mutation",
                        help="scratch directory, emptied first (default: build/mutation)")
    parser.add_argument("--show", action="store_true", help="print the diff of every surviving mutant")
    parser.add_argument("--report", action="store_true",
                        help="only print the results of the last run in --work (copies and runs nothing)")
    return parser.parse_args(argv)


def select_files(names):
    available = sorted(p.name for p in (ROOT / MODULE_UTILS).glob("*.py") if p.name != "__init__.py")
    if not names:
        return available
    chosen = []
    for name in names:
        base = Path(name).name
        base = base if base.endswith(".py") else base + ".py"
        if base not in available:
            sys.exit(f"mutation.py: {name} is not a file in {MODULE_UTILS} (there: {', '.join(available)})")
        chosen.append(base)
    return chosen


def build_tree(work, files, tests):
    """The working tree under WORK/ansible_collections/ailab/cluster and mutmut's setup.cfg."""
    if work.exists():
        shutil.rmtree(work)
    target = work / COLLECTION
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if Path(rel).parts[0] in SKIP or src.is_symlink() or not src.is_file():
            continue  # deleted in the working tree, or a link
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target / rel)
    # The checkout's self-link, for tests that run ansible-playbook (ansible.cfg's collections path):
    # made in mutmut's copy, where it leads to the mutated files (mutmut does not copy links).
    link = work / "mutants" / COLLECTION / ".collections" / COLLECTION
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("../../.."))
    lines = ["[mutmut]", "source_paths = " + str(COLLECTION), "only_mutate ="]
    lines += ["    " + str(COLLECTION / MODULE_UTILS / f) for f in files]
    lines += ["pytest_add_cli_args_test_selection ="]
    lines += ["    " + str(COLLECTION / t) for t in tests]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -p", "    no:xdist", ""]
    (work / "setup.cfg").write_text("\n".join(lines))


def module_name(file):
    return ".".join(COLLECTION.parts + MODULE_UTILS.parts) + "." + file[:-3]


def run_mutmut(work, file, max_children, timeout):
    """mutmut run for one file's mutants; returns None or why the run did not finish."""
    mutmut = str(Path(sys.executable).parent / "mutmut")
    cmd = [mutmut, "run", "--max-children", str(max_children), module_name(file) + ".*"]
    log = work / f"mutmut-{file[:-3]}.log"
    # The copy is not next to ../shared/reference: point the tests and the simulator at it.
    reference = Path(os.environ.get("AILAB_REFERENCE", ROOT.parent / "shared" / "reference")).resolve()
    env = dict(os.environ, AILAB_REFERENCE=str(reference))
    env.setdefault("AILAB_PVE_SCHEMA", str(reference / "apidata.js"))
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return f"stopped after {timeout}s (see {log})"
    return None if rc == 0 else f"mutmut exited {rc} (see {log})"


def results(work, file):
    """{mutant name: exit code} from mutmut's metadata for one file."""
    meta = work / "mutants" / COLLECTION / MODULE_UTILS / (file + ".meta")
    if not meta.exists():
        return {}
    return json.loads(meta.read_text())["exit_code_by_key"]


def tally(codes):
    counts = dict(mutants=len(codes), killed=0, survived=0, timeout=0, other=0, unchecked=0)
    for code in codes.values():
        if code in KILLED:
            counts["killed"] += 1
        elif code in TIMEOUT:
            counts["timeout"] += 1
        elif code in SURVIVED:
            counts["survived"] += 1
        elif code in NOT_CHECKED or code in SKIPPED:
            counts["unchecked"] += 1
        else:  # no tests reach it, suspicious
            counts["other"] += 1
    checked = counts["mutants"] - counts["unchecked"]
    counts["score"] = 100.0 * (counts["killed"] + counts["timeout"]) / checked if checked else None
    return counts


def show(work, names):
    mutmut = str(Path(sys.executable).parent / "mutmut")
    for name in names:
        diff = subprocess.run([mutmut, "show", name], cwd=work, capture_output=True, text=True, check=False)
        print(diff.stdout.rstrip() or diff.stderr.rstrip())
        print()


def fmt_score(score):
    return "-" if score is None else f"{score:.1f}%"


def main(argv):
    args = parse_args(argv)
    files = select_files(args.files)
    work = args.work.resolve()
    if ROOT in work.parents and work.relative_to(ROOT).parts[0] not in ("build", ".cache"):
        sys.exit("mutation.py: --work inside the checkout must be under build/ or .cache/ (git ignores those)")
    if not args.report:
        print(f"==> copying the working tree to {work / COLLECTION}", flush=True)
        build_tree(work, files, args.tests)
    table, problems, survivors = [], [], {}
    for file in files:
        if not args.report:
            print(f"==> mutmut on {MODULE_UTILS / file} with {' '.join(args.tests)}", flush=True)
            problem = run_mutmut(work, file, args.max_children, args.timeout)
            if problem:
                problems.append(f"{file}: {problem}")
        codes = results(work, file)
        counts = tally(codes)
        table.append((file, counts))
        survivors[file] = sorted(k for k, v in codes.items() if v in SURVIVED)
        print(f"    {fmt_score(counts['score'])} ({counts['killed']} killed, {counts['timeout']} timeout, "
              f"{counts['survived']} survived of {counts['mutants']})", flush=True)

    total = dict(mutants=0, killed=0, survived=0, timeout=0, other=0, unchecked=0)
    header = f"{'file':<24} {'mutants':>7} {'killed':>7} {'survived':>8} {'timeout':>7} {'other':>6} {'score':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for file, counts in table:
        for key in total:
            total[key] += counts[key]
        print(f"{file:<24} {counts['mutants']:>7} {counts['killed']:>7} {counts['survived']:>8} "
              f"{counts['timeout']:>7} {counts['other']:>6} {fmt_score(counts['score']):>7}")
    checked = total["mutants"] - total["unchecked"]
    overall = 100.0 * (total["killed"] + total["timeout"]) / checked if checked else None
    print("-" * len(header))
    print(f"{'overall':<24} {total['mutants']:>7} {total['killed']:>7} {total['survived']:>8} "
          f"{total['timeout']:>7} {total['other']:>6} {fmt_score(overall):>7}")
    print("other: no test reaches the mutant, or mutmut found it suspicious; not counted as caught")
    if total["unchecked"]:
        problems.append(f"{total['unchecked']} mutants were not checked (run stopped or skipped)")

    for file in files:
        if survivors[file]:
            print(f"\nsurviving in {file} (`mutmut show NAME` in {work}):")
            for name in survivors[file]:
                print("    " + name)
            if args.show:
                show(work, survivors[file])

    low = [f"{file}: {fmt_score(c['score'])} < {args.fail_under:g}%" for file, c in table
           if args.fail_under is not None and (c["score"] is None or c["score"] < args.fail_under)]
    for line in problems + low:
        print("PROBLEM " + line, file=sys.stderr)
    return 1 if problems or low else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
