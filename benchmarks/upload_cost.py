"""What one large upload costs the service's map replica: a 2048x2048 onset/apex pair (the default
``serve.max_pixels``) mapped with the batch settings (dlib's detector on the whole frame, the flow of the whole
frame) and with the service's (the detector on a copy at most ``detect_side`` px a side, ``serve.flow_region:
face``), side by side in one run.

Run:  python benchmarks/upload_cost.py                 (the astronaut photo scaled x4; ~3 min on 2 cores)
      options: --scale S (frame side = 512 S) --flow tvl1|dis --rounds R

Each round maps the same pair once per setting, in turn, with one OpenCV thread (as a map replica with one CPU
has); the table shows the median time of each stage and the ratio to the batch setting.
"""

from __future__ import annotations

import argparse
import statistics

import cv2
from synthetic import photo_pairs
from table import print_table

from mellm_core.config import MapsConfig
from mellm_core.motion.mapper import Mapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=4.0, help="frame side = 512 x scale (4: 2048 px)")
    parser.add_argument("--flow", default="tvl1", help="flow plugin (default tvl1, the recipes' flow)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pair = photo_pairs(1, seed=0, scale=args.scale)[0]
    settings = {
        "batch (frame, detector on the frame)": MapsConfig(flow=args.flow, landmarker_params={"detect_side": 0}),
        "service (face box, detector <= 800 px)": MapsConfig(flow=args.flow, flow_region="face"),
    }
    mappers = {name: Mapper(cfg) for name, cfg in settings.items()}
    times: dict[str, dict[str, list[float]]] = {name: {} for name in settings}
    for _ in range(args.rounds):
        for name, mapper in mappers.items():
            for stage, seconds in mapper(pair.onset, pair.apex).timings.items():
                times[name].setdefault(stage, []).append(seconds)
    stages = ("landmarks_s", "flow_s", "colorize_s", "total_s")
    base = {s: statistics.median(times[next(iter(settings))][s]) for s in stages}
    rows = []
    for name in settings:
        medians = [statistics.median(times[name][s]) for s in stages]
        rows.append([name, *(f"{m * 1000:.0f}" for m in medians), f"{base['total_s'] / medians[-1]:.1f}x"])
    h, w = pair.onset.shape
    print_table(f"one {w}x{h} pair, flow {args.flow}, median of {args.rounds} rounds (ms)",
                ["setting", "landmarks", "flow", "colorize", "total", "speed-up"], rows)


if __name__ == "__main__":
    main()
