"""Maps-stage throughput: serial loops in one process vs ``run_maps`` on a Ray Data actor pool, in one run.

Run:  python benchmarks/maps_throughput.py            (64 pairs of 256x256 face crops; minutes on 2 cores)
      python benchmarks/maps_throughput.py --small    (16 pairs of 192x192)
      options: --pairs N --size PX --batch-size B --actors A (MapsConfig knobs for run_maps) --ray-niceness N

Synthetic pairs (seeded crops of scikit-image's astronaut and matplotlib's grace_hopper.jpg, warped by head
motion plus micro-expression bumps; see ``synthetic.py``) are written as PNG files with a manifest CSV and
read back through the ``manifest`` dataset plugin. The same per-pair work (``mellm_core.stages.maps.map_one``:
read both frames, dlib68 landmarks, tvl1 flow, nose compensation, mmc colours, PNG write) is timed four ways:

  (a) serial, one process, ``cv2.setNumThreads(1)``        pairs / loop seconds
  (b) serial, one process, OpenCV's default threads        pairs / loop seconds
  (d) a plain ``ProcessPoolExecutor``, one worker per CPU  pairs / (first pair started -> last result back)
  (c) ``run_maps`` (Ray Data, one actor per CPU)           ``MapsSummary.pairs_per_s`` (first pair started ->
      last record back; Ray start-up excluded), and end to end with Ray start-up.

(d) is the control: the same parallelism without Ray, so (c)/(d) is Ray's own cost and (d)/(a) is what the
machine allows right now. Mapper construction (loading the dlib model) is outside every timing, as actor
construction is outside (c)'s. Ray gives its workers niceness 15 by default, which on a shared machine hands
their CPU to any other process; the script starts Ray with ``RAY_worker_niceness`` = ``--ray-niceness``
(default 0, the serial baselines' niceness) and says which it used. The CPU columns (``cpumeter.py``) say how
much CPU each run used and how much other processes took meanwhile. Machines are shared and noisy: read the
ratios.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cpumeter import CpuMeter, CpuUse
from synthetic import crop_pairs
from table import print_table

from mellm_core.config import MapsConfig
from mellm_core.files.storage import Location
from mellm_core.motion.mapper import Mapper
from mellm_core.plugins import create
from mellm_core.records import Sample
from mellm_core.stages.maps import map_one, read_records

_WORKER: dict[str, Any] = {}  # per-process state of the process-pool workers of (d)


def write_dataset(folder: Path, count: int, size: int, seed: int) -> Path:
    """PNG onset/apex frames of ``count`` synthetic pairs and their manifest CSV; returns the CSV path."""
    frames = folder / "frames"
    frames.mkdir(parents=True)
    rows = []
    for pair in crop_pairs(count, size, seed=seed):
        onset, apex = frames / f"{pair.name}_onset.png", frames / f"{pair.name}_apex.png"
        cv2.imwrite(str(onset), pair.onset)
        cv2.imwrite(str(apex), pair.apex)
        rows.append(
            {
                "sample_id": pair.name,
                "onset_path": str(onset.relative_to(folder)),
                "apex_path": str(apex.relative_to(folder)),
            }
        )
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["sample_id", "onset_path", "apex_path"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@dataclass
class Run:
    label: str
    pairs: int
    ok: int
    seconds: float  # the interval pairs/s is measured over
    per_pair_s: list[float]  # each pair's own seconds (MapRecord.seconds)
    cpu: CpuUse  # over the whole call, start-up of pool workers or Ray actors included
    workers: int = 1  # processes mapping in parallel
    extra: str = ""

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else 0.0

    @property
    def pairs_per_cpu_s(self) -> float:
        return self.pairs / self.cpu.run_cpu_s if self.cpu.run_cpu_s > 0 else 0.0


def new_mapper() -> tuple[Mapper, str]:
    mapper = Mapper(MapsConfig())
    return mapper, mapper.settings_hash


def serial_run(label: str, samples: list[Sample], out: Path, threads: int) -> Run:
    """Map every sample in this process, one after the other, with ``threads`` OpenCV threads."""
    cv2.setNumThreads(threads)
    mapper, pixel_hash = new_mapper()
    out.mkdir(parents=True)
    with CpuMeter() as meter:
        start = time.perf_counter()
        records = [map_one(mapper, sample, Location(out), pixel_hash) for sample in samples]
        seconds = time.perf_counter() - start
    ok = sum(r.ok for r in records)
    per_pair = [r.seconds for r in records]
    return Run(
        label, len(samples), ok, seconds, per_pair, meter.use, extra=f"cv2 threads {cv2.getNumThreads()}"
    )


def _pool_init() -> None:
    cv2.setNumThreads(1)
    _WORKER["mapper"], _WORKER["hash"] = new_mapper()


def _pool_map(sample_json: str, out_dir: str) -> tuple[float, float, bool]:
    start = time.time()
    record = map_one(_WORKER["mapper"], Sample.from_json(sample_json), Location(out_dir), _WORKER["hash"])
    return start, record.seconds, record.ok


def pool_run(samples: list[Sample], out: Path, workers: int) -> Run:
    """The same work on a process pool (spawned workers, one OpenCV thread each), timed like ``run_maps``."""
    out.mkdir(parents=True)
    results, received = [], 0.0
    with CpuMeter() as meter:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_pool_init) as pool:
            futures = [pool.submit(_pool_map, s.to_json(), str(out)) for s in samples]
            for future in as_completed(futures):
                results.append(future.result())
                received = time.time()
    seconds = received - min(r[0] for r in results)
    label = f"(d) ProcessPoolExecutor({workers}), no Ray"
    ok, per_pair = sum(r[2] for r in results), [r[1] for r in results]
    return Run(label, len(samples), ok, seconds, per_pair, meter.use, workers, "1 cv2 thread per worker")


def ray_run(
    samples: list[Sample], out: Path, cfg: MapsConfig, niceness: int | None
) -> tuple[Run, float, float]:
    """``run_maps`` over the samples; also returns Ray start-up seconds and end-to-end seconds."""
    if niceness is not None:
        os.environ["RAY_worker_niceness"] = str(niceness)  # read by the raylet that init_ray starts
    from mellm_core.files.layout import MANIFEST
    from mellm_core.stages.cluster import cluster_cpus, init_ray
    from mellm_core.stages.maps import run_maps

    start = time.perf_counter()
    init_ray()
    started = time.perf_counter()
    with CpuMeter() as meter:
        summary = run_maps(samples, cfg, out, overwrite=True, progress=False)
    end = time.perf_counter()
    per_pair = [r.seconds for r in read_records((out / MANIFEST).read_text().splitlines()).values()]
    actors = min(cfg.actors or max(1, int(cluster_cpus() // cfg.cpus_per_actor)), len(samples))
    nice = "Ray default 15" if niceness is None else str(niceness)
    extra = f"{actors} actors, batch {cfg.batch_size}, niceness {nice}, run_maps call {end - started:.1f} s"
    label = "(c) run_maps (Ray Data)"
    run = Run(label, summary.samples, summary.ok, summary.wall_s, per_pair, meter.use, actors, extra)
    return run, started - start, end - start


def throughput_rows(runs: dict[str, Run], ray_start_s: float, end_to_end_s: float) -> list[list[str]]:
    rows = [
        [
            r.label,
            f"{r.ok}/{r.pairs}",
            f"{r.seconds:.1f}",
            f"{r.pairs_per_s:.3f}",
            f"{r.pairs_per_cpu_s:.3f}",
            f"{100 * r.cpu.run_share:.0f}",
            f"{100 * r.cpu.other_share:.0f}",
            r.extra,
        ]
        for r in runs.values()
    ]
    c = runs["c"]
    rows.append(
        [
            "(c) end to end, with Ray start-up",
            "",
            f"{end_to_end_s:.1f}",
            f"{c.pairs / end_to_end_s:.3f}",
            "",
            "",
            "",
            f"Ray start-up {ray_start_s:.1f} s",
        ]
    )
    return rows


def ratio_rows(runs: dict[str, Run], end_to_end_s: float) -> list[list[str]]:
    a, b, c, d = (runs[k].pairs_per_s for k in "abcd")
    e2e = runs["c"].pairs / end_to_end_s
    per_cpu = runs["c"].pairs_per_cpu_s / runs["a"].pairs_per_cpu_s
    return [
        ["(c)/(a)  Ray vs serial, 1 thread", f"{c / a:.2f}x"],
        ["(c)/(b)  Ray vs serial, default threads", f"{c / b:.2f}x"],
        ["(d)/(a)  process pool vs serial (what the machine allowed)", f"{d / a:.2f}x"],
        ["(c)/(d)  Ray vs process pool (Ray's own cost)", f"{c / d:.2f}x"],
        ["(b)/(a)  OpenCV threads vs 1 thread", f"{b / a:.2f}x"],
        ["(c end to end)/(a)", f"{e2e / a:.2f}x"],
        ["(c)/(a)  pairs per CPU-second (1.00 = no CPU overhead)", f"{per_cpu:.2f}x"],
    ]


def breakdown_rows(runs: dict[str, Run]) -> list[list[str]]:
    """Where (c)'s time went: per-pair cost inside workers vs serial, and how busy the workers were."""
    serial = float(np.mean(runs["a"].per_pair_s))
    rows = [
        [f"mean s/pair {r.label}", f"{np.mean(r.per_pair_s):.3f}", f"{np.mean(r.per_pair_s) / serial:.2f}x"]
        for r in runs.values()
    ]
    for key in "dc":
        r = runs[key]
        busy = sum(r.per_pair_s) / (r.workers * r.seconds) if r.seconds > 0 else 0.0
        rows.append([f"worker busy share of the interval, ({key})", f"{100 * busy:.1f} %", ""])
    c = runs["c"]
    ideal = c.workers * runs["a"].pairs_per_s
    rows.append([f"(c) vs ideal {c.workers} x (a) = {ideal:.3f} pairs/s", f"{c.pairs_per_s / ideal:.2f}", ""])
    return rows


def contention_note(runs: dict[str, Run]) -> str:
    """A warning when other processes took a noticeable share of the CPUs during the runs."""
    worst = max(runs.values(), key=lambda r: r.cpu.other_share)
    if worst.cpu.other_share < 0.10:
        return "Other processes used under 10% of the CPUs during every run: the ratios are clean."
    return (
        f"Note: other processes used up to {100 * worst.cpu.other_share:.0f}% of the CPUs (during"
        f" {worst.label.split()[0]}); wall-clock ratios are distorted by that contention, the per-CPU-second"
        " figures and the (d) control much less so."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="16 pairs of 192x192 (a quick check)")
    parser.add_argument("--pairs", type=int, help="number of pairs (default 64, 16 with --small)")
    parser.add_argument("--size", type=int, help="frame side in pixels (default 256, 192 with --small)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic crops and motions")
    parser.add_argument(
        "--batch-size", type=int, default=MapsConfig.batch_size, help="maps.batch_size for (c)"
    )
    parser.add_argument(
        "--actors", type=int, default=MapsConfig.actors, help="maps.actors for (c) (0 = per CPU)"
    )
    parser.add_argument(
        "--ray-niceness",
        type=int,
        default=0,
        help="niceness of the workers of a Ray this script starts (default 0 like the baselines; -1 keeps"
        " Ray's default 15)",
    )
    args = parser.parse_args()
    count = args.pairs or (16 if args.small else 64)
    size = args.size or (192 if args.small else 256)
    cpus = os.cpu_count() or 1
    default_threads = cv2.getNumThreads()
    print(
        f"{cpus} CPUs, load average {os.getloadavg()[0]:.2f}; OpenCV default threads {default_threads}",
        flush=True,
    )

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mellm-bench-") as tmp:
        folder = Path(tmp)
        manifest = write_dataset(folder / "data", count, size, args.seed)
        samples = create("dataset", "manifest").samples(manifest)
        print(f"{count} pairs of {size}x{size} written in {time.perf_counter() - start:.1f} s\n", flush=True)
        runs = {
            "a": serial_run("(a) serial, cv2 1 thread", samples, folder / "a", 1),
            "b": serial_run("(b) serial, cv2 default threads", samples, folder / "b", default_threads),
        }
        cv2.setNumThreads(default_threads)
        runs["d"] = pool_run(samples, folder / "d", cpus)
        cfg = MapsConfig(batch_size=args.batch_size, actors=args.actors)
        niceness = None if args.ray_niceness < 0 else args.ray_niceness
        runs["c"], ray_start_s, end_to_end_s = ray_run(samples, folder / "c", cfg, niceness)

    print_table(
        f"Maps throughput, {count} pairs of {size}x{size} (CPU %: share of all {cpus} CPUs used by this run /"
        " by other processes, over each whole call)",
        ["run", "ok", "seconds", "pairs/s", "pairs/CPU-s", "run CPU %", "other CPU %", "notes"],
        throughput_rows(runs, ray_start_s, end_to_end_s),
    )
    print_table(
        f"Ratios (target: (c)/(a) >= 1.8 on {cpus} cores)", ["ratio", "value"], ratio_rows(runs, end_to_end_s)
    )
    print_table("Breakdown", ["figure", "value", "vs (a)"], breakdown_rows(runs))
    print(contention_note(runs))
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
