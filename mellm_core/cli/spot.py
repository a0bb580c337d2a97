"""``mellm spot``: where in a video expressions happen (a video file or a folder of frames)."""

from __future__ import annotations

import argparse
from typing import Any

from mellm_core.cli.common import command, load_recipe_args, print_json


def cmd_spot(args: argparse.Namespace) -> int:
    from mellm_core.files.video import open_video
    from mellm_core.stages.longvideo import spot_video_windows

    recipe = load_recipe_args(args)
    video = open_video(args.video, args.fps, recipe.spot.fps)
    found, signal = spot_video_windows(video, recipe.spot, progress=not args.json, address=recipe.ray.address)
    intervals: list[dict[str, Any]] = [
        {"onset": video.number(i.onset), "apex": video.number(i.apex), "offset": video.number(i.offset),
         "score": i.score, "kind": i.kind} for i in found]
    if args.json:
        print_json({"fps": video.fps, "frames": len(signal), "intervals": intervals})
        return 0
    print(f"{args.video}: {len(signal)} frames at {video.fps:g} fps, {len(intervals)} expressions "
          f"(spotter {recipe.spot.spotter})")
    for i in intervals:
        seconds = (i["offset"] - i["onset"] + 1) / video.fps
        print(f"  {i['kind']:>3}  frames {i['onset']}-{i['offset']} (apex {i['apex']}, {seconds:.2f} s)  "
              f"score {i['score']:.3f}")
    return 0


def register_spot(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "spot", "find the expressions in a video (file or frames folder): onset, apex, offset, kind",
                "mellm spot clip.mp4 --json")
    p.add_argument("video", help="a video file (mp4, avi, mov: what OpenCV reads) or a folder of numbered frames")
    p.add_argument("--recipe", default="quickstart", help="recipe whose spot section is used (default quickstart)")
    p.add_argument("--fps", type=float, help="frame rate (required for a frames folder; overrides a file's own)")
    p.add_argument("--address", help="Ray cluster for a long video's windows (default: the recipe's ray.address, "
                                      "else RAY_ADDRESS, else a local instance)")
    p.add_argument("--json", action="store_true", help='print {"fps", "frames", "intervals": [...]} as JSON')
    p.add_argument("overrides", nargs="*", help="recipe key=value overrides (e.g. spot.spotter=diff)")
    p.set_defaults(func=cmd_spot)
