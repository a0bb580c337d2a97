"""Atomic writes (temporary file or folder + rename), so no reader ever sees a half-written output."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from mellm_core.errors import MellmError


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (creating its folder) through a temporary file beside it and a rename. The data
    reaches the disk before the rename, so a crash of the machine leaves the old file or the new one, never an
    empty one under the new name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def built_then_swapped(target: str | Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to build into; when the block ends normally it replaces ``target`` whole
    (the old folder is renamed aside, then deleted: never removed under a reader half-way), and when the block
    fails it is removed and ``target`` is left as it was."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.old")
        os.replace(target, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(staging, target)


def built_once(target: str | Path, complete: Callable[[Path], bool], build: Callable[[Path], None]) -> Path:
    """The folder ``target``, made by ``build(staging)`` and swapped in whole unless ``complete(target)`` already
    holds. One builder per host at a time: the others wait on a lock beside it, then find it complete."""
    target = Path(target)
    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{target.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete(target):
            with built_then_swapped(target) as staging:
                build(staging)
                if not complete(staging):
                    raise MellmError(f"building {target} left it incomplete")
    return target


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise MellmError("could not encode the map as PNG")
    return data.tobytes()


def write_png_atomic(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as a PNG file atomically."""
    write_bytes_atomic(path, encode_png(rgb))
