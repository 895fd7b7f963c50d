"""`make export`: every Kubernetes-facing layer of an inventory written as files and validated.

Usage: export.py INVENTORY EXPORT_DIR [ansible-playbook options]
Runs playbooks/export.yml with ailab_kubernetes_export_dir=EXPORT_DIR (touching no host and no
cluster), then checks the directory with tests/export_check (the validator the tests use) and prints
what was written per namespace.
"""

import collections
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from export_check import check_export  # noqa: E402


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    inventory, export_dir = argv[0], Path(argv[1]).resolve()
    export_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, "playbooks/export.yml",
           "-e", f"ailab_kubernetes_export_dir={export_dir}", *argv[2:]]
    print(f"==> {' '.join(cmd)}", flush=True)
    rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
    if rc:
        print(f"==> export failed (ansible-playbook exited {rc}); nothing is validated", file=sys.stderr)
        return rc
    files = sorted(p.relative_to(export_dir) for p in export_dir.rglob("*.yaml"))
    per_dir = collections.Counter(p.parts[0] if len(p.parts) > 1 else "." for p in files)
    print(f"==> {len(files)} files in {export_dir}:")
    for directory, count in sorted(per_dir.items()):
        print(f"    {directory}/: {count}")
    problems = check_export(export_dir)
    for problem in problems:
        print(f"    PROBLEM {problem}")
    print(f"==> validated against the upstream schemas in {ROOT.parent / 'shared' / 'reference'}: "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
