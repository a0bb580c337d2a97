"""The spotters against ground truth, side by side on the same SynthME long videos: F1 per kind and overall
(MEGC's matching: IoU >= 0.5 with an annotated interval of the same kind), the apex error of the matches, and
frames per second, as mean ± sd over the videos, with the CPU model.

    python benchmarks/spotting.py --videos 4
    python benchmarks/spotting.py --videos 2 --spotters flow diff --out /tmp/long
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from demo_seeds import cpu_model
from table import print_table

from mellm_core import create
from mellm_core.files.video import open_video
from mellm_core.records import Interval
from mellm_core.results.spotting import spotting_scores


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} (worst {min(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--spotters", nargs="+", default=["flow", "diff"])
    parser.add_argument("--out", help="folder for the videos (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch) / "videos"
        create("dataset", "synthme").generate_long(out, n=args.videos, seed=0, overwrite=True)
        results: dict[str, list[dict]] = {name: [] for name in args.spotters}
        for video_path in sorted(out.glob("long_*.mp4")):
            truth = json.loads(video_path.with_suffix(".json").read_text())
            gold = [Interval(i["onset"], i["apex"], i["offset"], kind=i["kind"]) for i in truth["intervals"]]
            for name in args.spotters:  # each spotter on the same video, one after the other
                video = open_video(video_path)
                started = time.perf_counter()
                found = create("spotter", name)(video.frames(), video.fps)
                seconds = time.perf_counter() - started
                scores = spotting_scores(found, gold)
                scores["fps"] = truth["frames"] / seconds
                scores["false"] = sum(i.onset <= e["offset"] and e["onset"] <= i.offset for i in found
                                      for e in truth["blinks"] + truth["head"])
                results[name].append(scores)
    rows = []
    for name, runs in results.items():
        rows.append([name, spread([r["overall"]["f1"] for r in runs]), spread([r["me"]["f1"] for r in runs]),
                     spread([r["mae"]["f1"] for r in runs]),
                     f"{statistics.mean([r['apex_error'] for r in runs if r['apex_error'] is not None] or [0]):.1f}",
                     str(sum(r["false"] for r in runs)), f"{statistics.mean([r['fps'] for r in runs]):.0f}"])
    print_table(f"spotting on {args.videos} SynthME long videos (16 s, 30 fps; 2 ME, 1 MaE, 2 blinks, a head turn "
                f"and a glance each), {cpu_model()}", ["spotter", "F1", "ME F1", "MaE F1", "apex error (frames)",
                                                      "spotted on blinks or head moves", "frames/s"], rows)


if __name__ == "__main__":
    main()
