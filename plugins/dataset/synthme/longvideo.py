"""SynthME long videos: a real face photo over several seconds with micro-expressions, a macro-expression, blinks,
head movements (a quick turn to a new pose, and a glance away and back), a slow head drift and sensor noise, and
the exact intervals of each, so spotting is measured against ground truth (``mellm synth --long``).

Events are placed at random, each in its own slot of the video and at least ``GAP_S`` from the slot's ends, in a
fixed order of kinds shuffled by the seed; each rises to its apex and falls back as SynthME's clips do (a turn
rises and stays). Frame numbers count from 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mellm_core.errors import InputError
from mellm_core.motion.facs import PROTOTYPES
from mellm_core.motion.warp import similarity_flow, warp_forward
from mellm_plugins.dataset.synthme.faces import Face
from mellm_plugins.dataset.synthme.motion import (
    apply_affine,
    compose_motion,
    dense_field,
    expression_field,
    interocular,
    profile,
    rotation,
    subject_matrix,
)

# (kind, emotion (its FACS prototype's AUs move), peak px, seconds): two micro-expressions, one
# macro-expression, two blinks, two head movements (peak: the shift in px; the head also rolls and, in a glance,
# turns sideways: HEAD_MOVES)
EVENTS: tuple[tuple[str, str | None, float, float], ...] = (
    ("me", "happiness", 1.6, 0.3), ("me", "disgust", 1.4, 0.35), ("mae", "surprise", 4.0, 1.5),
    ("blink", None, 0.0, 0.2), ("blink", None, 0.0, 0.2), ("turn", None, 8.0, 0.25), ("glance", None, 10.0, 0.6),
)
HEAD_MOVES = {"turn": (3.0, 0.0), "glance": (4.0, 15.0)}  # roll and sideways turn (yaw) at the peak, degrees
GAP_S = 0.3  # an event keeps this far from its slot's ends, so no two are closer than twice that
UPPER_LIDS, LOWER_LIDS = (37, 38, 43, 44), (40, 41, 46, 47)


def blink_field(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """The eyelids closing: upper lids down to the lower ones, lower lids up a little."""
    gap = float(np.mean(landmarks[list(LOWER_LIDS), 1]) - np.mean(landmarks[list(UPPER_LIDS), 1]))
    points = landmarks[list(UPPER_LIDS + LOWER_LIDS)]
    moves = np.array([(0.0, 0.85 * gap)] * 4 + [(0.0, -0.15 * gap)] * 4)
    return dense_field(shape, points, moves, 0.08 * interocular(landmarks))


def yaw_flow(shape: tuple[int, int], degrees: float, centre: tuple[float, float]) -> np.ndarray:
    """A head turning sideways, as the image sees it: the face narrows about its vertical axis (no similarity
    makes that, so a spotter cannot remove it as head motion)."""
    h, w = shape
    xs = np.arange(w, dtype=np.float32)[None, :] - np.float32(centre[0])
    u = np.broadcast_to((math.cos(math.radians(degrees)) - 1) * xs, (h, w))
    return np.stack([u, np.zeros((h, w), np.float32)], axis=-1).astype(np.float32)


def long_video(out: Path, face: Face, seed: int = 0, fps: float = 30.0, seconds: float = 16.0, size: int = 224,
               noise: float = 1.0, drift_px: float = 6.0) -> dict[str, Any]:
    """Write ``out`` (an .mp4 or .avi video) and ``out`` with suffix .json (its truth); returns the truth."""
    slot = (seconds - 1.2) / len(EVENTS)
    longest = max(length for *_, length in EVENTS)
    if fps <= 0 or slot < longest + 2 * GAP_S:
        raise InputError(f"a long video needs a positive frame rate and at least "
                         f"{1.2 + len(EVENTS) * (longest + 2 * GAP_S):.1f} s for its {len(EVENTS)} events, "
                         f"got {fps} fps and {seconds} s")
    rng = np.random.default_rng(seed)
    matrix = subject_matrix(face.landmarks, size, 0.62, 0.0, (0.0, 0.0))
    base = cv2.warpAffine(face.image, matrix, (size, size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
    points = apply_affine(face.landmarks, matrix)
    total = int(round(seconds * fps))
    order = [EVENTS[i] for i in rng.permutation(len(EVENTS))]
    slots = np.linspace(0.6, seconds - 0.6, len(order) + 1)  # each event inside its own slot
    events = []
    for (kind, emotion, peak, length), lo, hi in zip(order, slots[:-1], slots[1:], strict=True):
        aus = dict.fromkeys(PROTOTYPES[emotion], "") if emotion else {}
        start = float(rng.uniform(lo + GAP_S, hi - length - GAP_S))
        onset = int(round(start * fps)) + 1
        offset = onset + max(2, int(round(length * fps)))
        apex = offset if kind == "turn" else onset + (offset - onset) * 2 // 5
        field = (blink_field(base.shape[:2], points) if kind == "blink" else None if kind in HEAD_MOVES else
                 expression_field(base.shape[:2], points, aus, dict.fromkeys(aus, 1.0), peak, 0.15))
        events.append({"kind": kind, "onset": onset, "apex": apex, "offset": offset, "emotion": emotion,
                       "aus": sorted(aus), "field": field, "peak": peak * float(rng.choice([-1.0, 1.0]))})
    centre = (float(points[30][0]), float(points[30][1]))
    phase = float(rng.uniform(0, 2 * math.pi))
    suffix = out.suffix.lower()
    fourcc = {".mp4": "mp4v", ".avi": "MJPG"}.get(suffix)
    if fourcc is None:
        raise InputError(f"long videos are written as .mp4 or .avi, not {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*fourcc), fps, (size, size))
    if not writer.isOpened():
        raise InputError(f"OpenCV cannot write {out}")
    try:
        for number in range(1, total + 1):
            t = number / total
            dx, dy = drift_px * t, 0.5 * drift_px * math.sin(2 * math.pi * t + phase)
            angle, yaw = 1.5 * math.sin(math.pi * t + phase), 0.0
            expression = np.zeros((size, size, 2), np.float32)
            for e in events:
                if e["kind"] in HEAD_MOVES and number >= e["onset"]:
                    comes_and_goes, stays = profile(number, e["onset"], e["apex"], e["offset"])
                    reach = stays if e["kind"] == "turn" else comes_and_goes if number <= e["offset"] else 0.0
                    roll, turn = HEAD_MOVES[e["kind"]]
                    sign = math.copysign(1.0, e["peak"])
                    dx, angle, yaw = dx + reach * e["peak"], angle + reach * sign * roll, yaw + reach * sign * turn
                elif e["field"] is not None and e["onset"] <= number <= e["offset"]:
                    expression += profile(number, e["onset"], e["apex"], e["offset"])[0] * e["field"]
            head = similarity_flow(base.shape[:2], dx, dy, angle, 1.0, centre)
            if yaw:
                head = compose_motion(head, rotation(angle, 1.0), yaw_flow(base.shape[:2], yaw, centre))
            frame = warp_forward(base, compose_motion(head, rotation(angle, 1.0), expression))
            frame = frame + np.float32(noise) * rng.standard_normal(frame.shape, dtype=np.float32)
            writer.write(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    finally:
        writer.release()
    truth = {"video": out.name, "fps": fps, "frames": total, "photo": face.name,
             "intervals": [{k: e[k] for k in ("onset", "apex", "offset", "kind", "emotion", "aus")} for e in events
                           if e["kind"] in ("me", "mae")],
             "blinks": [{k: e[k] for k in ("onset", "apex", "offset")} for e in events if e["kind"] == "blink"],
             "head": [{k: e[k] for k in ("kind", "onset", "apex", "offset")} for e in events
                      if e["kind"] in HEAD_MOVES]}
    for item in truth["intervals"]:
        item["onset"], item["offset"] = int(item["onset"]), int(item["offset"])
    out.with_suffix(".json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth
