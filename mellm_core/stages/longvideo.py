"""Spotting one long video in overlapping windows on Ray Data (``mellm spot``).

A built-in spotter's measure at frame t needs only the frames t-k..t+k and the face mask, so a video longer than
``spot.window_frames`` is cut into windows of that many frames, each read with k more frames on either side by one
Ray Data task (files are opened at the window's first frame; folders are read by number), and the measures are
laid end to end: the same measure as one stream through the video, found by several workers, with each holding
2k + 1 frames at a time. The face mask is found once, on the first frame, and given to every window. Peaks are
found on the whole measure, so the intervals are those of one stream.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import ray
from tqdm import tqdm

from mellm_core.config import SpotConfig
from mellm_core.files.video import Video, open_video
from mellm_core.motion.spotting import MotionSpotter, face_mask, intervals, measure
from mellm_core.records import Interval
from mellm_core.stages.cluster import cluster_cpus, init_ray, task_pool


def _window(row: dict[str, Any], source: str, fps: float, spot: dict, mask: Any) -> dict[str, Any]:
    """A Ray Data task: the measure of frames ``start``..``stop`` (None: to the end) of one window."""
    import cv2

    from mellm_core.plugins import create

    cv2.setNumThreads(1)
    spotter = create("spotter", spot["spotter"], **spot["params"])
    assert isinstance(spotter, MotionSpotter)  # the driver windows built-in spotters only
    k = spotter.params.k(fps)
    start, stop = int(row["start"]), (None if row["stop"] < 0 else int(row["stop"]))
    first = max(1, start - k)
    frames = open_video(source, fps).frames(first, None if stop is None else stop + k)
    values = measure(frames, fps, k, spotter.distance, spotter.params.landmarker, mask)
    inside = values[start - first:] if stop is None else values[start - first:start - first + stop - start + 1]
    return {"start": start, "values": json.dumps(inside.tolist())}


def spot_video_windows(video: Video, spot: SpotConfig, progress: bool = True, address: str | None = None
                       ) -> tuple[list[Interval], list[float]]:
    """The intervals of ``video`` (read-order frame indices, as a spotter returns them) and the motion measure;
    in windows on Ray Data when the video is longer than ``spot.window_frames`` and the spotter is a built-in
    one, else in one stream."""
    from mellm_core.plugins import create

    spotter = create("spotter", spot.spotter, **spot.params)
    total = video.count()
    if not isinstance(spotter, MotionSpotter) or spot.window_frames <= 0 or total <= spot.window_frames:
        frames = tqdm(video.frames(), total=total or None, desc="spot", unit="frame", file=sys.stderr,
                      disable=not progress)
        found = spotter(frames, video.fps)
        return found, list(spotter.signal)
    mask = face_mask(next(video.frames(1, 1)), spotter.params.landmarker)
    starts = list(range(1, total + 1, spot.window_frames))
    rows = [{"start": a, "stop": -1 if a == starts[-1] else a + spot.window_frames - 1} for a in starts]
    init_ray(address)
    actors = min(spot.actors or max(1, int(cluster_cpus())), len(rows))
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
        _window, fn_kwargs={"source": str(video.source), "fps": video.fps, "spot": {"spotter": spot.spotter,
                                                                                   "params": spot.params},
                            "mask": mask}, num_cpus=1, **task_pool(actors))
    parts: dict[int, list[float]] = {}
    with tqdm(total=total, desc="spot", unit="frame", file=sys.stderr, disable=not progress) as bar:
        for row in ds.iter_rows():
            parts[int(row["start"])] = json.loads(row["values"])
            bar.update(len(parts[int(row["start"])]))
    signal = np.array([v for a in sorted(parts) for v in parts[a]], dtype=np.float64)
    return intervals(signal, video.fps, spotter.params), signal.tolist()
