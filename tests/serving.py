"""A real `mellm serve` process for the serving tests: start it on a free port, wait for its URL, stop it; the one
server the HTTP tests share (``conftest.server``) runs with ``KEY`` and ``OVERRIDES``."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from helpers import free_port

START_TIMEOUT_S = 300
KEY = "s3cret-key-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY_LIMIT = 2_000_000
PIXEL_LIMIT = 1_000_000
BODY_TIMEOUT_S = 4
VIDEO_PIXEL_LIMIT = 20_000_000
# small limits the tests can reach; batches that form (0.5 s wait) and a queue the overload test can fill
OVERRIDES = ["eval.protocol=casme2-5", "maps.flow=dis", "serve.max_new_tokens=16", "serve.batch_wait_s=0.5",
             f"serve.max_body_bytes={BODY_LIMIT}", f"serve.max_pixels={PIXEL_LIMIT}",
             f"serve.body_timeout_s={BODY_TIMEOUT_S}", "serve.max_queued_requests=40",
             f"serve.max_video_pixels={VIDEO_PIXEL_LIMIT}"]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path


def _first_line(proc: subprocess.Popen, timeout: float) -> str | None:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout) or None
    except queue.Empty:
        return None


def start_serve(root: Path, overrides: list[str], key: str, recipe: str = "quickstart") -> Server:
    """`mellm serve` on ``recipe`` (by default quickstart: tiny backbone, no adapter) under ``root`` (unless the
    overrides name another ``output_dir``), with API key ``key``."""
    log = root / "serve.log"
    env = {**os.environ, "MELLM_API_KEY": key}
    env.pop("RAY_ADDRESS", None)
    args = [sys.executable, "-m", "mellm_core", "serve", recipe, f"output_dir={root / 'run'}", *overrides,
            f"serve.port={free_port()}", "--json"]
    with log.open("w") as stderr:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    line = _first_line(proc, START_TIMEOUT_S)
    if line is None:
        stop_serve(proc)
        pytest.fail(f"mellm serve did not become ready:\n{log.read_text()[-3000:]}")
    return Server(proc, json.loads(line)["url"], log)


def stop_serve(proc: subprocess.Popen) -> None:
    """SIGTERM, then kill what is left of the process tree (the server and the Ray processes it started)."""
    if proc.poll() is not None:
        return
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
    for child in psutil.wait_procs(tree, timeout=5)[1]:
        child.kill()
