"""Does a hostile request stall the service? ``/healthz`` latency alone and while clients send costly bodies.

Run:  python benchmarks/hostile_requests.py          (`mellm serve quickstart`, tiny backbone; ~2 min on 2 cores)
      options: --clients N (hostile clients at once, default 4) --rounds R --probes P

A real `mellm serve quickstart` process answers real HTTP requests. Each round measures ``/healthz`` ``--probes``
times with nothing else running, then again while ``--clients`` threads keep sending one kind of hostile body to
``POST /v1/analyze``: a PNG of 1.5 million empty chunks (18 MB, cheap to send and costly to walk) and a multipart
body of 400,000 empty parts (16 MB). The service must answer them 4xx and go on answering ``/healthz`` within a
second. The kinds alternate within each round, so load from other processes falls on all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter

import cv2
import numpy as np
import requests
from table import print_table

START_TIMEOUT_S = 300


def _png_with_chunks(count: int) -> bytes:
    """A small valid PNG with ``count`` empty ancillary chunks after its header."""
    png = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    empty = struct.pack(">I", 0) + b"teXt" + struct.pack(">I", zlib.crc32(b"teXt"))
    header_end = 8 + 12 + 13
    return png[:header_end] + empty * count + png[header_end:]


def _form(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n"
                    f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for name, data in parts)
    return body + f"--{boundary}--\r\n".encode()


def _many_parts(count: int, boundary: str = "b0undary") -> bytes:
    return (f"--{boundary}\r\n\r\n\r\n" * count + f"--{boundary}--\r\n").encode()


def _start(folder: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "mellm_core", "serve", "quickstart", f"output_dir={folder}",
                             "maps.flow=dis", f"serve.port={port}", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise SystemExit("mellm serve did not start")
    return proc, json.loads(line)["url"]


def _probe(url: str, count: int) -> list[float]:
    """``count`` GET /healthz latencies in ms, one after another."""
    out = []
    for _ in range(count):
        started = time.perf_counter()
        requests.get(url + "healthz", timeout=60).raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05)
    return out


def _attack(url: str, body: bytes, headers: dict[str, str], stop: threading.Event, codes: Counter) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            codes[session.post(url + "v1/analyze", data=body, headers=headers, timeout=120).status_code] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    png, small = _png_with_chunks(1_500_000), _png_with_chunks(0)
    kinds = {  # each body under the default serve.max_body_bytes (20 MB), so the service has to look inside it
        "1.5 M empty PNG chunks": (_form([("onset", png), ("apex", small)]),
                                   {"Content-Type": "multipart/form-data; boundary=b0undary"}),
        "400,000 empty form parts": (_many_parts(400_000), {"Content-Type": "multipart/form-data; boundary=b0undary"}),
    }
    results: dict[str, list[float]] = {"nothing else": [], **{k: [] for k in kinds}}
    codes: dict[str, Counter] = {k: Counter() for k in kinds}
    with tempfile.TemporaryDirectory() as folder:
        proc, url = _start(folder)
        try:
            _probe(url, 3)  # warm
            for _ in range(args.rounds):
                results["nothing else"] += _probe(url, args.probes)
                for kind, (body, headers) in kinds.items():
                    stop = threading.Event()
                    threads = [threading.Thread(target=_attack, args=(url, body, headers, stop, codes[kind]))
                               for _ in range(args.clients)]
                    for t in threads:
                        t.start()
                    time.sleep(1.0)  # the attack under way
                    results[kind] += _probe(url, args.probes)
                    stop.set()
                    for t in threads:
                        t.join()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    rows = []
    for kind, values in results.items():
        answered = ", ".join(f"{n}x {c}" for c, n in sorted(codes[kind].items())) if kind in codes else "-"
        rows.append([kind, len(values), f"{statistics.median(values):.0f}",
                     f"{sorted(values)[int(0.95 * (len(values) - 1))]:.0f}", f"{max(values):.0f}", answered])
    print_table(f"GET /healthz latency (ms) with {args.clients} hostile clients, {args.rounds} rounds",
                ["while", "probes", "p50", "p95", "max", "hostile requests answered"], rows)


if __name__ == "__main__":
    main()
