"""Run the simulator as its own process from tests and integration tooling.

    from pvesim.testing import SimulatorProcess

    with SimulatorProcess(pve=9) as sim:
        api = sim.api()                      # proxmoxer.ProxmoxAPI (token auth, CA-verified)
        api.nodes("pve-1").qemu.post(vmid=100, scsi0="local-lvm:8")
        sim.wait_tasks()
        assert [w["path"] for w in sim.writes()] == ["/nodes/pve-1/qemu"]

The process is ``python -m pvesim`` with the same interpreter; the fields of its startup JSON
line are available as attributes (``sim.url``, ``sim.ca_file``, ``sim.token_secret``...) and as
``sim.info``. Control helpers talk to the ``/_sim`` API with the control token.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import requests

TESTS_DIR = Path(__file__).resolve().parents[1]


class SimulatorError(RuntimeError):
    """The simulator process did not start or a control call failed."""


class SimulatorProcess:
    """A pvesim server in a child process; a context manager.

    ``pve`` is 8 or 9, ``seed`` a seed dict, a path to a YAML/JSON seed file or a built-in seed name
    (``default``, ``empty``, ``standalone``, ``fresh``), ``state_dir`` where the CA and certificate go (a
    temporary directory by default), ``persist`` a state file to load at start and keep up to date
    (``--persist``), ``args`` extra CLI arguments. ``stats_interval`` is the pvestatd round
    (``--stats-interval``): 0 by default here, so that ``/cluster/resources`` is always fresh; None
    keeps the server's realistic default (10 s); a test of the lag sets it or changes the setting.
    ``ha_round`` is the HA CRM/LRM round (``--ha-round``): 0.05 s here so that HA requests settle fast;
    None keeps the server's realistic default (10 s).
    """

    def __init__(self, pve=9, seed=None, state_dir=None, args=(), startup_timeout=30.0, env=None, persist=None,
                 stats_interval=0.0, ha_round=0.05):
        self.pve = int(pve)
        self.stats_interval = stats_interval
        self.ha_round = ha_round
        self.seed = seed
        self.persist = persist
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix=f"pvesim{self.pve}-"))
        self.args = list(args)
        self.startup_timeout = startup_timeout
        self.env = env
        self.info = {}
        self.process = None
        self._session = None

    # ------------------------------------------------------------ lifecycle
    def start(self):
        """Start the process and wait for its JSON line; returns self."""
        if self.process is not None:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pvesim", "--pve", str(self.pve), "--port", "0",
                   "--state-dir", str(self.state_dir), "--exit-on-stdin-eof", *self.args]
        if self.stats_interval is not None and "--stats-interval" not in self.args:
            command += ["--stats-interval", str(self.stats_interval)]
        if self.ha_round is not None and "--ha-round" not in self.args:
            command += ["--ha-round", str(self.ha_round)]
        if self.seed is not None:
            seed_path = self.seed
            if isinstance(self.seed, dict):
                seed_path = self.state_dir / "seed.json"
                seed_path.write_text(json.dumps(self.seed), encoding="utf-8")
            command += ["--seed", str(seed_path)]
        if self.persist is not None:
            command += ["--persist", str(self.persist)]
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
        stderr_path = self.state_dir / "pvesim.stderr"
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        # stdin stays open for the child's lifetime: if this process dies, the child sees EOF and exits
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                        env=env)
        line = self._read_line()
        if not line:
            self.stop()
            raise SimulatorError(f"pvesim did not start: {stderr_path.read_text(errors='replace')[-2000:]}")
        self.info = json.loads(line)
        for key, value in self.info.items():
            if not hasattr(self, key):
                setattr(self, key, value)
        self._session = requests.Session()
        self._session.headers["X-PVESim-Token"] = self.control_token
        return self

    def _read_line(self):
        result = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        return result[0].decode() if result and result[0] else ""

    def stop(self):
        """Terminate the process (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()
        self._stderr.close()
        if self._session is not None:
            self._session.close()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self):
        """True while the child process is alive."""
        return self.process is not None and self.process.poll() is None

    # --------------------------------------------------------- API clients
    def api(self, auth="token", readonly=False, **kwargs):
        """A ``proxmoxer.ProxmoxAPI`` for this simulator (``auth`` = ``token`` or ``password``)."""
        from proxmoxer import ProxmoxAPI

        return ProxmoxAPI(**self.proxmoxer_kwargs(auth, readonly), **kwargs)

    def proxmoxer_kwargs(self, auth="token", readonly=False):
        """Keyword arguments for ``ProxmoxAPI`` (host, port, credentials, ``verify_ssl`` = CA file)."""
        kwargs = {"host": self.host, "port": self.port, "verify_ssl": self.ca_file, "backend": "https"}
        if auth == "token":
            user, name, secret = ((self.readonly_user, self.readonly_token_name, self.readonly_token_secret)
                                  if readonly else (self.user, self.token_name, self.token_secret))
            kwargs.update(user=user, token_name=name, token_value=secret)
        else:
            kwargs.update(user=self.readonly_user if readonly else self.user,
                          password=self.readonly_password if readonly else self.password)
        return kwargs

    def module_params(self, readonly=False):
        """Connection options in the shape an Ansible Proxmox module takes (token auth)."""
        return {
            "api_host": self.host, "api_port": self.port,
            "api_user": self.readonly_user if readonly else self.user,
            "api_token_id": self.readonly_token_name if readonly else self.token_name,
            "api_token_secret": self.readonly_token_secret if readonly else self.token_secret,
            "validate_certs": True, "ca_path": self.ca_file,
        }

    # ---------------------------------------------------------- control API
    def control(self, method, path, payload=None, params=None):
        """Call ``/_sim/<path>`` and return its ``data``."""
        if self._session is None:
            raise SimulatorError("simulator is not running")
        # verify per request: a session-level verify loses against $REQUESTS_CA_BUNDLE
        response = self._session.request(method, f"{self.control_url}/{path.lstrip('/')}", json=payload,
                                         params=params, timeout=30, verify=self.ca_file)
        body = response.json()
        if response.status_code != 200:
            raise SimulatorError(f"{method} /_sim/{path}: {response.status_code} {body.get('error')}")
        return body.get("data")

    def requests_log(self, since=None):
        """API requests since the last clear: dicts with method, path, params, status, write, user."""
        return self.control("GET", "requests", params={"since": since} if since else None)

    def clear_log(self):
        """Forget the request log."""
        self.control("DELETE", "requests")

    def writes(self):
        """Write requests (POST/PUT/DELETE except login) since the last clear."""
        return [entry for entry in self.requests_log() if entry["write"]]

    def reads(self):
        """GET requests since the last clear."""
        return [entry for entry in self.requests_log() if not entry["write"] and entry["method"] == "GET"]

    def reset(self):
        """Back to the seed: state, tasks, faults, settings and request log."""
        self.control("POST", "reset")

    def reseed(self, seed):
        """Replace the seed with ``seed`` (a dict) and reset."""
        self.control("POST", "reseed", {"seed": seed})

    def fault(self, kind, **options):
        """Arm a fault: ``task_fail`` (task_type, message, count), ``slow_tasks`` (task_type, delay,
        count), ``http_error`` (path regex, method, status, message, count), ``node_down``/``node_up``
        (node)."""
        return self.control("POST", "faults", {"kind": kind, **options})

    def clear_faults(self):
        """Disarm all faults."""
        self.control("DELETE", "faults")

    def node_down(self, node):
        """Take a node offline."""
        return self.fault("node_down", node=node)

    def node_up(self, node):
        """Bring a node back online."""
        return self.fault("node_up", node=node)

    def state(self):
        """Dump of the simulated cluster."""
        return self.control("GET", "state")

    def settings(self, **values):
        """Read (no arguments) or change run-time settings (task_duration, migrate_duration, agent_delay).

        ``reset()`` restores the values the process was started with.
        """
        if values:
            return self.control("PUT", "settings", values)
        return self.control("GET", "settings")

    def tasks(self):
        """All tasks, newest first, with their logs."""
        return self.control("GET", "tasks")

    def wait_tasks(self, timeout=10.0):
        """Wait until no task is running; True when idle."""
        return self.control("POST", "tasks/wait", {"timeout": timeout})["idle"]
