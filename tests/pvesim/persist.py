"""Sandbox persistence (``--persist FILE``): the cluster state survives a restart of the simulator.

At start-up the state is loaded from FILE when it exists (instead of the seed; the seed stays what
``/_sim/reset`` returns to). After every change - a successful write request, a finished task, a
control call that changes the state - the whole state is written back: to a temporary file in
the same directory, flushed to disk, then renamed over FILE, so the file is always complete even
when the process is killed. It is also written once more at shutdown, after running tasks had a
moment to finish.

The document is ``{"format": "pvesim-state", "version": 1, "pve": 9, "state": {...}}`` where
``state`` is ``ClusterState.dump()``. Tasks, the request log, faults and settings are not kept.
"""

import json
import os
import tempfile
import threading
from pathlib import Path

FORMAT = "pvesim-state"
VERSION = 1


class StateFileError(RuntimeError):
    """The state file cannot be used (wrong format or written by the other PVE personality)."""


class StateFile:
    """Loads and saves the state of one Simulator to ``path``."""

    def __init__(self, path, app):
        self.path = Path(path)
        self.app = app
        self._lock = threading.Lock()
        self._taken = 0
        self._written = 0

    def load(self):
        """Restore the state from the file; False when there is no file yet."""
        if not self.path.exists():
            return False
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateFileError(f"cannot read state file {self.path}: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise StateFileError(f"{self.path} is not a pvesim state file")
        if document.get("version") != VERSION:
            raise StateFileError(f"{self.path} has state format version {document.get('version')}, "
                                 f"this pvesim reads version {VERSION}; remove the file to start from the seed")
        major = self.app.personality.major
        if document.get("pve") != major:
            raise StateFileError(f"{self.path} holds the state of a PVE {document.get('pve')} simulator, not PVE "
                                 f"{major}: use --pve {document.get('pve')} or remove the file")
        with self.app.state.lock:
            self.app.state.restore(document["state"])
        return True

    def save(self):
        """Write the current state atomically (temporary file + rename).

        The state is serialised under the state lock, the file written under this object's own
        lock (never held while waiting for the state lock); an older snapshot that lost the race
        to a newer one is not written.
        """
        with self.app.state.lock:
            self._taken += 1
            sequence = self._taken
            document = {"format": FORMAT, "version": VERSION, "pve": self.app.personality.major,
                        "state": self.app.state.dump()}
            text = json.dumps(document, indent=1, sort_keys=True)
        with self._lock:
            if sequence <= self._written:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as stream:
                    stream.write(text + "\n")
                    stream.flush()
                    os.fsync(stream.fileno())
                os.chmod(temporary, 0o600)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            self._written = sequence
