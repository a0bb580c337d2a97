"""One writer per stage per ``output_dir``: a lock object beside the stage's files, for local folders and buckets.

A second run of the same stage on the same ``output_dir`` stops at once with an error naming the holder (host,
pid, start time). Locally the lock is created exclusively (``O_EXCL``); an object store has no create-if-absent,
so there two runs that start within the same half second can both go ahead, and the one whose lock was
overwritten warns at its next heartbeat. The holder refreshes the lock's heartbeat while it works, so a lock
left by a killed run is recognised and taken over: at once when the holder was a process of this host that no
longer exists, otherwise once its heartbeat is older than ``STALE_S``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from types import TracebackType

from mellm_core.errors import InputError
from mellm_core.files.storage import Location

BEAT_S = 15.0  # heartbeat period of a held lock
STALE_S = 90.0  # a lock whose heartbeat is this old belongs to a run that is gone


class StageLock:
    """``with StageLock(output_dir / "eval", "eval"):`` around a stage's writing into its folder; the lock lies
    beside the folder (``.eval.lock``), out of reach of whatever clears the folder."""

    def __init__(self, folder: str | Location, stage: str):
        folder = Location(folder)
        self.path = folder.parent / f".{folder.name}.lock"
        self.stage, self.folder = stage, folder
        self.token = uuid.uuid4().hex
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _record(self) -> dict:
        return {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(), "started": self.started,
                "beat": time.time()}

    def _holder(self) -> dict | None:
        """The lock's record when a live run holds it, else None."""
        return self._live(self._raw())

    def _raw(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None

    @staticmethod
    def _live(raw: str | None) -> dict | None:
        try:
            held = json.loads(raw) if raw else None
        except ValueError:
            return None
        if not isinstance(held, dict):
            return None
        if held.get("host") == socket.gethostname() and not _alive(int(held.get("pid", -1))):
            return None
        return held if time.time() - float(held.get("beat", 0)) < STALE_S else None

    def __enter__(self) -> StageLock:
        raw = self._raw()
        held = self._live(raw)
        if held and held.get("token") != self.token:
            raise InputError(f"another `mellm {self.stage}` is writing to {self.folder}: host {held['host']}, "
                             f"pid {held['pid']}, started {held['started']}; wait for it to finish or stop it")
        record = json.dumps(self._record())
        if self.path.remote:  # no create-if-absent in object stores: write, then check that this write won
            self.path.write_text(record)
            time.sleep(0.5)
        else:
            self.path.parent.mkdir()
            if raw is not None and held is None and self._raw() == raw:  # a dead run's lock, still the same
                self.path.unlink()
            try:
                fd = os.open(self.path.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise InputError(f"another `mellm {self.stage}` started writing to {self.folder} at the same "
                                 "time") from None
            with os.fdopen(fd, "w") as sink:
                sink.write(record)
        won = self._holder()
        if not won or won.get("token") != self.token:
            raise InputError(f"another `mellm {self.stage}` started writing to {self.folder} at the same time")
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        """Refresh the lock while it is ours; a failed write is tried again at the next beat."""
        while not self._stop.wait(BEAT_S):
            try:
                held = json.loads(self.path.read_text())
                if held.get("token") != self.token:
                    print(f"warning: the lock {self.path} was taken over by host {held.get('host')}, pid "
                          f"{held.get('pid')}: another run now writes to {self.folder} too", file=sys.stderr)
                    return
                self.path.write_text(json.dumps(self._record()))
            except Exception as exc:  # a storage hiccup: the lock stays valid for STALE_S
                print(f"warning: could not refresh the lock {self.path} ({exc})", file=sys.stderr)

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._beat:
            self._beat.join()
        held = self._holder()
        if held and held.get("token") == self.token:
            self.path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return pid > 0
