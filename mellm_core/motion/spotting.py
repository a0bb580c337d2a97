"""Spotting expressions in a video: a per-frame motion measure, streamed, and the intervals found in it.

The built-in spotters measure at each frame t how far the face has moved from the frames k before and k after it
(``window_s``: far enough that those frames show the face at rest around a micro-expression) and keep the smaller
of the two, so a movement that comes and goes (an expression) counts and one that comes and stays (a head turned
to a new pose, a light switched on) does not. The head's motion (a similarity fitted to the face's flow) is
removed, frames where the head turns fast are not scored, and the eyes are masked out, so neither a drifting or
turning head nor a blink is an expression. Peaks of the measure well above its noise
floor are expressions, as in MEGC's spotting baselines: above ``mean + p (max - mean)`` of the measure less its
median, and with the measure itself at least ``min_score`` (the interval's score). An interval spans the frames
around its peak where the measure stays above ``extent`` of the peak's height; it is a micro-expression when
that lasts at most ``max_me_s``, else macro.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mellm_core.errors import InputError, NoFaceError
from mellm_core.records import Interval

if TYPE_CHECKING:
    from mellm_core.config import SpotConfig
    from mellm_core.files.video import Video

EYES = (range(36, 42), range(42, 48))  # iBUG 68-point eye contours
FIT_POINTS = 2000  # the head's motion is fitted on about this many of the face's pixels (a regular subset)
FIT_ITERATIONS = 4  # re-weightings of that fit


@dataclass
class SpotParams:
    """The settings every built-in spotter shares."""

    window_s: float = 0.1  # k in seconds: about half a micro-expression's rise
    merge_s: float = 0.5  # peaks closer than this are one expression (a macro-expression's rise and fall)
    threshold: float = 0.3  # p of the peak threshold mean + p (max - mean)
    extent: float = 0.25  # an interval spans the frames around its peak where the measure exceeds this share of it
    min_score: float = 0.0  # a peak's measure must also reach this (its unit is the spotter's)
    max_me_s: float = 0.5  # longest micro-expression, onset to offset, seconds
    landmarker: str = "dlib68"  # finds the face and its eyes on the first frame ("none": the whole frame)

    def __post_init__(self) -> None:
        if min(self.window_s, self.max_me_s) <= 0 or self.min_score < 0 or self.merge_s < 0:
            raise ValueError("window_s and max_me_s must be positive, min_score and merge_s not negative")
        if not 0 <= self.threshold < 1 or not 0 < self.extent < 1:
            raise ValueError("threshold must be in [0, 1) and extent in (0, 1)")

    def k(self, fps: float) -> int:
        return max(1, round(self.window_s * fps))


def face_mask(gray: np.ndarray, landmarker: str) -> np.ndarray:
    """Where motion counts: the face (its landmarks' hull, a little enlarged) without the eyes (their contours,
    widened by a quarter of the eye distance, so a blink moves nothing inside). The whole frame without a
    landmarker."""
    from mellm_core.plugins import create

    if landmarker == "none":
        return np.ones(gray.shape, bool)
    try:
        points = create("landmarker", landmarker)(gray)
    except NoFaceError as exc:
        raise InputError(f"no face in the video's first frame ({exc}); use spot.params.landmarker=none for "
                         "frames that are already face crops") from None
    mask = np.zeros(gray.shape, np.uint8)
    centre = points.mean(axis=0)
    hull = cv2.convexHull(((points - centre) * 1.1 + centre).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    eyes = [points[list(r)] for r in EYES]
    gap = float(np.linalg.norm(eyes[0].mean(axis=0) - eyes[1].mean(axis=0)))
    for eye in eyes:
        cv2.fillConvexPoly(mask, cv2.convexHull(eye.astype(np.int32)), 0)
        cv2.circle(mask, tuple(int(v) for v in eye.mean(axis=0)), int(gap * 0.3), 0, -1)
    return mask.astype(bool)


Distance = Callable[[np.ndarray, np.ndarray, np.ndarray], float]  # (frame, frame, mask) -> how far apart


def measure(frames: Iterable[np.ndarray], fps: float, k: int, distance: Distance, landmarker: str,
            mask: np.ndarray | None = None) -> np.ndarray:
    """The motion measure of every frame: ``min(distance(f[t-k], f[t]), distance(f[t+k], f[t]))`` inside the face
    mask (``mask``, else found on the first frame), streamed through a window of 2k + 1 frames; 0 where the window
    does not fit."""
    if fps <= 0:
        raise InputError(f"the frame rate must be positive, got {fps}")
    window: deque[np.ndarray] = deque(maxlen=2 * k + 1)
    values: list[float] = []
    count = 0
    for frame in frames:
        if mask is None:
            mask = face_mask(frame, landmarker)
        count += 1
        window.append(frame)
        if len(window) == window.maxlen:
            centre = window[k]
            values.append(min(distance(window[0], centre, mask), distance(window[-1], centre, mask)))
    if mask is None:
        raise InputError("the video has no frames")
    signal = np.zeros(count, dtype=np.float64)
    signal[k:k + len(values)] = values
    return signal


class MotionSpotter:
    """A spotter made of a distance between frames (the built-in spotters differ only in it)."""

    def __init__(self, params: SpotParams, distance: Distance):
        self.params, self.distance = params, distance
        self.signal: list[float] = []

    def __call__(self, frames: Iterable[np.ndarray], fps: float) -> list[Interval]:
        p = self.params
        signal = measure(frames, fps, p.k(fps), self.distance, p.landmarker)
        self.signal = signal.tolist()
        return intervals(signal, fps, p)


def strongest(video: Video, spot: SpotConfig) -> tuple[Interval, list[float]]:
    """A video's strongest micro-expression (see ``best_interval``), found by the recipe's spotter in one stream
    through its frames; and the spotter's motion measure."""
    from mellm_core.plugins import create

    spotter = create("spotter", spot.spotter, **spot.params)
    found = spotter(video.frames(), video.fps)
    return best_interval(video, found), list(spotter.signal)


def best_interval(video: Video, found: list[Interval]) -> Interval:
    """The strongest micro-expression among a spotter's intervals (the strongest expression when none is micro),
    in the video's own frame numbers."""
    if not found:
        raise InputError(f"no expression was spotted in {video.source.name}; give its onset and apex frames "
                         "instead, or lower spot.params.min_score")
    best = next((i for i in found if i.kind == "me"), found[0])
    return Interval(video.number(best.onset), video.number(best.apex), video.number(best.offset), best.score,
                    best.kind)


def intervals(signal: np.ndarray, fps: float, p: SpotParams) -> list[Interval]:
    """The expressions in a motion measure (one value a frame), strongest first; frame numbers count from 1.

    A macro-expression's slow apex barely moves in 2k frames, so its rise and its fall are two peaks: peaks less
    than ``merge_s`` apart are one expression."""
    k = p.k(fps)
    s = signal - float(np.median(signal)) if len(signal) else signal
    if len(s) == 0 or float(s.max()) <= 0:
        return []
    threshold = float(s.mean()) + p.threshold * (float(s.max()) - float(s.mean()))
    peaks = [t for t in range(len(s)) if s[t] >= threshold and signal[t] >= p.min_score
             and s[t] == s[max(0, t - k):t + k + 1].max()]
    spans: list[list[int]] = []  # [left, peak, right], by position
    taken = np.zeros(len(s), bool)
    for t in sorted(peaks, key=lambda i: -s[i]):
        if taken[t]:
            continue
        left, right = t, t
        while left > 0 and s[left - 1] > p.extent * s[t]:
            left -= 1
        while right < len(s) - 1 and s[right + 1] > p.extent * s[t]:
            right += 1
        taken[left:right + 1] = True
        spans.append([max(0, min(left, t - k)), t, min(len(s) - 1, max(right, t + k))])
    merged: list[list[int]] = []
    for span in sorted(spans):
        if merged and span[0] - merged[-1][2] <= p.merge_s * fps:
            last = merged[-1]
            last[1] = last[1] if s[last[1]] >= s[span[1]] else span[1]
            last[2] = max(last[2], span[2])
        else:
            merged.append(span)
    found = [Interval(left + 1, t + 1, right + 1, round(float(signal[t]), 6),
                      "me" if (right - left) / fps <= p.max_me_s else "mae") for left, t, right in merged]
    return sorted(found, key=lambda i: -i.score)


def head_motion(flow: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The head's motion at the mask's pixels (N x 2): the similarity (rotation, scale, translation) the face
    follows, fitted to its flow by least squares re-weighted with Tukey's biweight, so the few regions an
    expression moves do not pull it (a cheap cousin of the maps' ``robust`` mode, run on every frame pair)."""
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    points -= points.mean(axis=0)
    step = max(1, len(points) // FIT_POINTS)
    sample, moved = points[::step], flow[ys[::step], xs[::step]].astype(np.float64)
    design = np.zeros((2 * len(sample), 4))  # u = a x - b y + tx, v = b x + a y + ty
    design[0::2] = np.column_stack([sample[:, 0], -sample[:, 1], np.ones(len(sample)), np.zeros(len(sample))])
    design[1::2] = np.column_stack([sample[:, 1], sample[:, 0], np.zeros(len(sample)), np.ones(len(sample))])
    target, weights = moved.reshape(-1), np.ones(len(sample))
    for _ in range(FIT_ITERATIONS):
        weighted = design * np.repeat(weights, 2)[:, None]
        params = np.linalg.lstsq(weighted.T @ design, weighted.T @ target, rcond=None)[0]  # the normal equations
        residual = np.linalg.norm((target - design @ params).reshape(-1, 2), axis=1)
        spread = max(4.685 * 1.4826 * float(np.median(residual)), 1e-3)
        weights = np.clip(1 - (residual / spread) ** 2, 0, None) ** 2
    a, b, tx, ty = params
    return np.column_stack([a * points[:, 0] - b * points[:, 1] + tx, b * points[:, 0] + a * points[:, 1] + ty])


def flow_distance(flow: Callable[[np.ndarray, np.ndarray], np.ndarray], max_head: float) -> Distance:
    """Mean motion (pixels) inside the mask between two frames, after the head's motion (``head_motion``) is
    removed; 0 when the head itself moved more than ``max_head`` of the face's size (the square root of the mask's
    area): a head turning out of the image plane moves the face in ways no similarity takes away, and an
    expression cannot be told apart from it."""
    def distance(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
        field = flow(a, b)
        head = head_motion(field, mask)
        if float(np.sqrt((head ** 2).sum(axis=1).mean())) > max_head * math.sqrt(float(mask.sum())):
            return 0.0
        return float(np.linalg.norm(field[mask] - head, axis=1).mean())
    return distance


def difference_distance(max_head: float) -> Distance:
    """Mean absolute grey-level difference inside the mask, after the mean difference (a change of light) is
    removed; both frames slightly blurred, so sensor noise counts less. 0 when the face shifted more than
    ``max_head`` of its size (phase correlation over the mask's bounding box): a moving head is not scored."""
    def distance(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
        ys, xs = np.nonzero(mask)
        box = slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1)
        first = cv2.GaussianBlur(a, (5, 5), 0).astype(np.float32)
        second = cv2.GaussianBlur(b, (5, 5), 0).astype(np.float32)
        window = cv2.createHanningWindow(first[box].shape[::-1], cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(first[box], second[box], window)
        if math.hypot(dx, dy) > max_head * math.sqrt(len(ys)):
            return 0.0
        inside = (second - first)[mask]
        return float(np.abs(inside - inside.mean()).mean())
    return distance
