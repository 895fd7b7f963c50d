"""Command line: ``PYTHONPATH=tests python -m pvesim --pve 9 --port 0 --state-dir DIR``.

Once the HTTPS listener is up, prints ONE JSON line on stdout with everything a client needs
(url, CA file, credentials, control API) and serves until SIGTERM or SIGINT. The same document is
written to ``<state-dir>/pvesim.json``.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .app import Settings, Simulator
from .auth import Account, new_password, new_secret
from .control import ControlApi
from .persist import StateFile, StateFileError
from .personality import personality
from .schema import default_schema_path
from .seed import default_seed, load_seed
from .server import PveHttpsServer
from .tls import ensure_certificates, fingerprint


def build_parser():
    """The argument parser of ``python -m pvesim``."""
    parser = argparse.ArgumentParser(prog="pvesim", description="Proxmox VE API simulator (HTTPS, schema-validated)")
    parser.add_argument("--pve", type=int, choices=(8, 9), default=9, help="PVE personality (default 9)")
    parser.add_argument("--bind", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 picks a free one (default 0)")
    parser.add_argument("--state-dir", help="directory for the CA, certificate and pvesim.json (default: temp dir)")
    parser.add_argument("--seed", help="YAML/JSON seed file, or a built-in seed: default (the two-node ailab lab), "
                                       "empty, standalone, fresh (hosts without IOMMU)")
    parser.add_argument("--persist", metavar="FILE",
                        help="load the cluster state from FILE when it exists and write it back after every change")
    parser.add_argument("--schema", help=f"apidata.js path (default $AILAB_PVE_SCHEMA or {default_schema_path()})")
    parser.add_argument("--user", default="root@pam", help="admin user (default root@pam)")
    parser.add_argument("--password", help="admin password (default: random)")
    parser.add_argument("--token-name", default="ansible", help="admin API token name (default ansible)")
    parser.add_argument("--token-secret", help="admin API token secret (default: random UUID)")
    parser.add_argument("--readonly-user", default="auditor@pve", help="read-only user (default auditor@pve)")
    parser.add_argument("--readonly-password", help="read-only password (default: random)")
    parser.add_argument("--readonly-token-name", default="readonly", help="read-only token name (default readonly)")
    parser.add_argument("--readonly-token-secret", help="read-only token secret (default: random UUID)")
    parser.add_argument("--control-token", help="token for the /_sim control API (default: random)")
    parser.add_argument("--task-duration", type=float, default=0.05, help="seconds a task runs (default 0.05)")
    parser.add_argument("--stats-interval", type=float, default=10.0,
                        help="seconds between pvestatd rounds: how long /cluster/resources lags (default 10, 0: fresh)")
    parser.add_argument("--ha-round", type=float, default=10.0,
                        help="seconds per HA CRM/LRM round: how long an HA request takes per state step (default 10)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="stop when stdin closes (the parent process went away); used by testing.py")
    return parser


def main(argv=None):
    """Start the simulator and serve until terminated."""
    args = build_parser().parse_args(argv)
    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="pvesim-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    schema = Path(args.schema) if args.schema else default_schema_path()
    if not schema.is_file():
        sys.exit(f"pvesim: API schema not found: {schema} (use --schema or $AILAB_PVE_SCHEMA)")
    seed = load_seed(args.seed) if args.seed else default_seed()

    password = args.password or new_password()
    token_secret = args.token_secret or new_secret()
    ro_password = args.readonly_password or new_password()
    ro_token_secret = args.readonly_token_secret or new_secret()
    control_token = args.control_token or secrets.token_urlsafe(24)
    accounts = [
        Account(args.user, password, "admin", {args.token_name: token_secret}),
        Account(args.readonly_user, ro_password, "audit", {args.readonly_token_name: ro_token_secret}),
    ]

    certs = ensure_certificates(state_dir, args.bind)
    app = Simulator(personality(args.pve), seed, accounts, schema, Settings(task_duration=args.task_duration,
                                                                            stats_interval=args.stats_interval,
                                                                            ha_round=args.ha_round))
    app.fingerprint = fingerprint(certs["cert_file"])
    if args.persist:
        app.persistence = StateFile(args.persist, app)
        try:
            app.persistence.load()
        except StateFileError as exc:
            sys.exit(f"pvesim: {exc}")
    ControlApi(app, control_token)
    server = PveHttpsServer(app, args.bind, args.port, certs["cert_file"], certs["key_file"], args.verbose)

    host = args.bind
    url_host = f"[{host}]" if ":" in host else host
    url = f"https://{url_host}:{server.port}"
    info = {
        "url": url, "api_url": f"{url}/api2/json", "host": host, "port": server.port,
        "ca_file": certs["ca_file"], "cert_file": certs["cert_file"], "fingerprint": app.fingerprint,
        "pve": args.pve, "version": app.personality.version,
        "user": args.user, "password": password,
        "token_id": f"{args.user}!{args.token_name}", "token_user": args.user, "token_name": args.token_name,
        "token_secret": token_secret,
        "readonly_user": args.readonly_user, "readonly_password": ro_password,
        "readonly_token_id": f"{args.readonly_user}!{args.readonly_token_name}",
        "readonly_token_name": args.readonly_token_name, "readonly_token_secret": ro_token_secret,
        "control_url": f"{url}/_sim", "control_token": control_token,
        "state_dir": str(state_dir), "persist": str(app.persistence.path) if app.persistence else None,
        "pid": os.getpid(),
    }
    info_file = state_dir / "pvesim.json"
    info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    info_file.chmod(0o600)

    def terminate(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    if args.exit_on_stdin_eof:
        threading.Thread(target=_stop_on_eof, args=(server,), daemon=True).start()
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if app.persistence is not None:
            app.tasks.wait_idle(2.0)  # let running tasks land before the last save
            app.state_changed()
        app.tasks.stop()
    return 0


def _stop_on_eof(server):
    """Shut the server down once stdin reaches EOF, so a crashed test run leaves no orphan."""
    # os.read on the descriptor: sys.stdin's buffer lock would block interpreter shutdown
    while os.read(0, 4096):
        pass
    server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
