"""Rendering a SynthME clip: the subject's onset image, the motion at each frame, the warped frames."""

from __future__ import annotations

import cv2
import numpy as np

from mellm_core.errors import InputError
from mellm_core.motion.warp import similarity_flow, warp_forward
from mellm_plugins.dataset.synthme.motion import (
    Plan,
    apply_affine,
    aus_text,
    compose_motion,
    expression_field,
    mirror_landmarks,
    profile,
    rotation,
    subject_matrix,
)
from mellm_plugins.dataset.synthme.params import SynthMEParams


def onset_image(plan: Plan, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The clip's noiseless onset frame (float32 BGR) and its 68 landmarks."""
    s = plan.subject
    image, points = s.face.image, s.face.landmarks
    if s.flipped:
        image, points = np.ascontiguousarray(image[:, ::-1]), mirror_landmarks(points, image.shape[1])
    span = float(max(points.max(axis=0) - points.min(axis=0)))
    shrink = s.fraction * size / span
    if shrink < 1:  # downscale with area averaging first, so the affine warp does not alias
        image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        points = (points + 0.5) * (np.array(image.shape[1::-1]) / np.array(s.face.image.shape[1::-1])) - 0.5
    dx, dy, angle = plan.pose
    matrix = subject_matrix(points, size, s.fraction, s.angle + angle, (s.shift[0] + dx, s.shift[1] + dy))
    warped = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )
    colour = ((warped.astype(np.float32) - 128) * s.contrast + 128 + s.brightness) * np.asarray(s.gains, np.float32)
    return np.clip(colour, 0, 255).astype(np.float32), apply_affine(points, matrix)


def motion_at(plan: Plan, frame: int, expression: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """The forward field from the onset frame to ``frame``."""
    amount, head = profile(frame, plan.onset, plan.apex, plan.offset)
    h = plan.head
    angle, scale = head * h["angle_deg"], 1 + head * (h["scale"] - 1)
    field = similarity_flow(expression.shape[:2], head * h["dx"], head * h["dy"], angle, scale, centre)
    return compose_motion(field, rotation(angle, scale), amount * expression)


def _encode(image: np.ndarray, p: SynthMEParams) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality] if p.image_format == "jpg" else []
    ok, data = cv2.imencode(f".{p.image_format}", image, params)
    if not ok:
        raise InputError(f"could not encode a .{p.image_format} frame")
    return data.tobytes()


def render(
    plan: Plan, p: SynthMEParams, rng: np.random.Generator
) -> tuple[dict[int, bytes], np.ndarray, dict]:
    """Encoded frames by number, the exact onset -> apex flow, and the clip's ground-truth record."""
    onset, landmarks = onset_image(plan, p.size)
    expression = expression_field(onset.shape[:2], landmarks, plan.aus, plan.weights, plan.peak, p.kernel)
    centre = (float(landmarks[30][0]), float(landmarks[30][1]))
    frames = {}
    for number in range(plan.onset, plan.offset + 1):
        moved = (
            onset
            if number == plan.onset
            else warp_forward(onset, motion_at(plan, number, expression, centre))
        )
        noisy = moved + np.float32(p.noise) * rng.standard_normal(moved.shape, dtype=np.float32)
        frames[number] = _encode(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), p)
    flow = motion_at(plan, plan.apex, expression, centre)
    truth = {
        "sample_id": f"synthme/{plan.subject.name}/{plan.clip}",
        "subject": plan.subject.name,
        "clip": plan.clip,
        "emotion": plan.emotion,
        "aus": aus_text(plan.aus),
        "au_weights": {str(au): round(w, 4) for au, w in plan.weights.items()},
        "peak_amplitude": round(plan.peak, 4),
        "onset_frame": plan.onset,
        "apex_frame": plan.apex,
        "offset_frame": plan.offset,
        "head": {**{k: round(v, 6) for k, v in plan.head.items()}, "centre": [round(c, 4) for c in centre]},
        "landmarks": np.round(landmarks, 3).tolist(),
        "photo": plan.subject.face.name,
        "flipped": plan.subject.flipped,
    }
    return frames, flow, truth
