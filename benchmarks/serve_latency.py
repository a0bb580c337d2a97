"""Serving latency and throughput: `mellm serve`'s application on Ray Serve at concurrency 1, 8 and 32 with
batching off and on, against the same work called in-process, measured side by side in one run.

Run:  python benchmarks/serve_latency.py                 (tiny backbone, 256x256 frames, DIS flow; ~5 min on 2 cores)
      options: --flow tvl1 (the quickstart's flow; slower) --size PX --max-new-tokens N --batch B
               --waits 0.05,0.5 (serve.batch_wait_s values with batching on) --rounds R --requests N

Requests are real HTTP (``requests``, one session per client thread) carrying PNG onset/apex frames of seeded
synthetic pairs (``synthetic.py``) to ``POST /v1/analyze``: decode, dlib68 landmarks, flow, head motion, MMC colours,
PNG, then the tiny Qwen2.5-VL's greedy answer. "in-process" does exactly that work in this process, one request at a
time (decode + ``Mapper`` + PNG + ``Predictor``), with one OpenCV and one torch thread, as each Serve replica has
(one CPU each). Batching off is ``serve.max_batch_size=1``; batching on is tried with each wait, because a batch only
forms when maps reach the model faster than it answers them one by one.

Side by side: every variant is deployed at once (one Serve application each, on its own route; Ray is given enough
logical CPUs for all replicas, and idle replicas use none), and each concurrency level runs in ``--rounds`` rounds
that visit every variant in turn, the in-process loop included at concurrency 1, so that load from other processes
falls on all of them alike. The clients run on the same machine and take CPU too; "map ms" and "model ms" are the
server's own timings (``timings.map_s``, ``timings.model_s``; the model's is its whole batch's). "other CPU" is what
processes outside this run took meanwhile (``cpumeter.py``).
"""

from __future__ import annotations

import argparse
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np
import requests
import torch
from cpumeter import CpuMeter
from synthetic import crop_pairs
from table import print_table

from mellm_core.config import load_recipe
from mellm_core.files.frames import decode_gray
from mellm_core.model.predictor import Predictor
from mellm_core.motion.mapper import Mapper

LEVELS = (1, 8, 32)  # client concurrency
Pair = tuple[bytes, bytes]


@dataclass
class Load:
    """What one variant did at one concurrency, summed over rounds."""

    label: str
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    items: int = 0  # requests (or maps) answered over wall_s
    batch_sizes: list[int] = field(default_factory=list)
    map_s: list[float] = field(default_factory=list)
    model_s: list[float] = field(default_factory=list)
    other_cpu_s: float = 0.0  # CPU-seconds share of other processes x wall, summed over rounds

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q))

    @property
    def per_s(self) -> float:
        return self.items / self.wall_s

    def row(self) -> list[str]:
        def mean_ms(values: list[float]) -> str:
            return f"{1000 * np.mean(values):.0f}" if values else ""

        return [self.label, str(self.concurrency), str(self.items), f"{1000 * self.p(50):.0f}",
                f"{1000 * self.p(95):.0f}", f"{self.per_s:.2f}", f"{np.mean(self.batch_sizes):.1f}",
                mean_ms(self.map_s), mean_ms(self.model_s), f"{100 * self.other_cpu_s / self.wall_s:.0f}"]


Result = tuple[float, int, dict]  # latency s, requests (or maps) answered, timings


def measure(into: Load, work: Callable[..., list[Result]], *args: object) -> None:
    """Run ``work(*args)`` under a CPU meter and add what it did to ``into``."""
    with CpuMeter() as meter:
        start = time.perf_counter()
        results = work(*args)
        wall = time.perf_counter() - start
    into.wall_s += wall
    into.other_cpu_s += meter.use.other_share * wall
    for latency, items, timings in results:
        into.latencies_s.append(latency)
        into.items += items
        into.batch_sizes.append(timings["batch_size"])
        for key, values in (("map_s", into.map_s), ("model_s", into.model_s)):
            if key in timings:
                values.append(timings[key])


class InProcess:
    """The request's work in this process: decode, map, PNG, model."""

    def __init__(self, overrides: list[str]):
        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        recipe = load_recipe("quickstart", overrides)
        self.mapper, self.predictor = Mapper(recipe.maps), Predictor(recipe, None, "cpu")
        self.tokens = recipe.serve.max_new_tokens

    def request(self, pair: Pair) -> Result:
        t0 = time.perf_counter()
        rgb = self.mapper(decode_gray(pair[0], "onset"), decode_gray(pair[1], "apex")).rgb
        cv2.imencode(".png", rgb)
        t1 = time.perf_counter()
        self.predictor([rgb], self.tokens)
        t2 = time.perf_counter()
        return t2 - t0, 1, {"map_s": t1 - t0, "model_s": t2 - t1, "batch_size": 1}

    def requests(self, pairs: list[Pair], count: int) -> list[Result]:
        return [self.request(pairs[i % len(pairs)]) for i in range(count)]

    def model_batches(self, maps: list[np.ndarray], size: int, count: int) -> list[Result]:
        """The model alone on ``count`` batches of ``size`` maps."""
        results = []
        for i in range(count):
            t0 = time.perf_counter()
            self.predictor([maps[(i * size + j) % len(maps)] for j in range(size)], self.tokens)
            seconds = time.perf_counter() - t0
            results.append((seconds, size, {"model_s": seconds, "batch_size": size}))
        return results


def http_requests(url: str, pairs: list[Pair], concurrency: int, count: int) -> list[Result]:
    """``count`` requests from ``concurrency`` client threads; each answer must be 200."""
    local = threading.local()

    def send(i: int) -> Result:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        onset, apex = pairs[i % len(pairs)]
        t0 = time.perf_counter()
        answer = session.post(url + "v1/analyze", files={"onset": ("onset.png", onset), "apex": ("apex.png", apex)},
                              timeout=600)
        seconds = time.perf_counter() - t0
        if answer.status_code != 200:
            raise RuntimeError(f"request {i} answered {answer.status_code}: {answer.text[:200]}")
        return seconds, 1, answer.json()["timings"]

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(send, range(count)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deploy(overrides: list[str], variants: dict[str, list[str]]) -> dict[str, str]:
    """Every variant as its own Serve application on route ``/<n>/``; returns variant -> base URL."""
    from ray import serve

    from mellm_core.stages.cluster import init_ray
    from mellm_core.stages.serve import build_app, url_of

    init_ray(num_cpus=2 * len(variants))  # logical CPUs: one map and one model replica per variant
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    urls = {}
    for n, (variant, settings) in enumerate(variants.items()):
        app = build_app(load_recipe("quickstart", [*overrides, *settings]))
        serve.run(app, name=f"bench{n}", route_prefix=f"/{n}")
        urls[variant] = f"{url_of('127.0.0.1', port)}{n}/"
    return urls


def compare(local: InProcess, maps: list[np.ndarray], pairs: list[Pair], urls: dict[str, str],
            runs: dict[str, dict[int, Load]], args: argparse.Namespace) -> tuple[Load, dict[int, Load]]:
    """The measurements, round by round (filling ``runs``); returns the in-process loads."""
    for url in urls.values():  # warm-up
        http_requests(url, pairs, 4, 8)

    serial = Load("in-process, one request at a time", 1)
    alone = {b: Load(f"in-process model alone, batches of {b} (ms per batch)", 1) for b in (1, args.batch)}
    for c in LEVELS:
        count = max(1, (args.requests or max(32, 4 * c)) // args.rounds)
        for _ in range(args.rounds):
            if c == 1:
                measure(serial, local.requests, pairs, count)
                for b, into in alone.items():
                    measure(into, local.model_batches, maps, b, max(1, count // b))
            for variant, url in urls.items():
                measure(runs[variant][c], http_requests, url, pairs, c, count)
    return serial, alone


def report(serial: Load, alone: dict[int, Load], runs: dict[str, dict[int, Load]], args: argparse.Namespace) -> None:
    """The table of every load and the ratios between them."""
    headers = ["run", "concurrency", "requests", "p50 ms", "p95 ms", "req/s", "mean batch", "map ms", "model ms",
               "other CPU %"]
    loads = [serial, *alone.values(), *(r for by_level in runs.values() for r in by_level.values())]
    print_table(f"POST /v1/analyze, {args.size}x{args.size} PNG frames, maps.flow={args.flow}, tiny backbone, "
                f"max_new_tokens={args.max_new_tokens}, {args.rounds} rounds", headers, [r.row() for r in loads])
    off = runs["Serve, batching off"]
    ratios = [
        ["Serve p50 / in-process p50, concurrency 1, batching off", f"{off[1].p(50) / serial.p(50):.2f}x"],
        ["Serve's added latency, concurrency 1, batching off (p50)", f"{1000 * (off[1].p(50) - serial.p(50)):.0f} ms"],
        ["Serve req/s / in-process req/s, concurrency 1, batching off", f"{off[1].per_s / serial.per_s:.2f}x"],
    ]
    for variant, by_level in list(runs.items())[1:]:
        name = variant.removeprefix("Serve, ")
        ratios += [[f"req/s {name} / batching off, concurrency {c}", f"{by_level[c].per_s / off[c].per_s:.2f}x"]
                   for c in LEVELS]
        ratios.append([f"p50 {name} / batching off, concurrency 1", f"{by_level[1].p(50) / off[1].p(50):.2f}x"])
    best = max((r for by_level in runs.values() for r in by_level.values()), key=lambda r: r.per_s)
    ratios += [
        [f"best Serve req/s ({best.label.removeprefix('Serve, ')}, concurrency {best.concurrency}) / in-process",
         f"{best.per_s / serial.per_s:.2f}x"],
        [f"in-process model alone: maps/s in batches of {args.batch} / batches of 1",
         f"{alone[args.batch].per_s / alone[1].per_s:.2f}x"],
    ]
    print_table("Ratios (one run)", ["ratio", "value"], ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", default="dis", help="maps.flow (default dis; tvl1 is the quickstart's)")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="serve.max_new_tokens")
    parser.add_argument("--batch", type=int, default=8, help="serve.max_batch_size with batching on")
    parser.add_argument("--waits", default="0.05,0.5",
                        help="serve.batch_wait_s values to run with batching on (0.05 is the recipe default)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per concurrency level")
    parser.add_argument("--requests", type=int, default=0,
                        help="requests per variant and concurrency level (default: 32, or 4 x the concurrency)")
    args = parser.parse_args()
    overrides = [f"output_dir={tempfile.mkdtemp(prefix='mellm-serve-bench-')}", "eval.protocol=casme2-5",
                 f"maps.flow={args.flow}", f"serve.max_new_tokens={args.max_new_tokens}"]
    variants = {"Serve, batching off": ["serve.max_batch_size=1"]}
    for wait in (float(w) for w in args.waits.split(",")):
        variants[f"Serve, batching on (max {args.batch}, wait {wait:g} s)"] = [
            f"serve.max_batch_size={args.batch}", f"serve.batch_wait_s={wait}"]
    pairs = [(cv2.imencode(".png", p.onset)[1].tobytes(), cv2.imencode(".png", p.apex)[1].tobytes())
             for p in crop_pairs(8, args.size, seed=0)]
    local = InProcess(overrides)
    maps = [local.mapper(decode_gray(a, "onset"), decode_gray(b, "apex")).rgb for a, b in pairs]  # warm-up
    urls = deploy(overrides, variants)
    try:
        runs = {v: {c: Load(v, c) for c in LEVELS} for v in variants}
        serial, alone = compare(local, maps, pairs, urls, runs, args)
    finally:
        import ray
        from ray import serve

        for n in range(len(urls)):
            serve.delete(f"bench{n}")
        ray.shutdown()
    report(serial, alone, runs, args)


if __name__ == "__main__":
    main()
