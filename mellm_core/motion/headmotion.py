"""Head-motion compensation (paper III-C): estimate the rigid head movement in a flow field and remove it.

Modes:
- ``nose``: the reference; mean flow in a (2w+1)-pixel square window at the nose tip (landmark 30).
- ``similarity``: a similarity transform (rotation, scale, translation) fitted by least median of squares
  to the flow at rigid landmarks (nose bridge, eye corners, upper face contour), so that AU9/AU10 motion of
  the nose or a blink cannot drag the whole map.
- ``none``: the flow as estimated.
"""

from __future__ import annotations

import cv2
import numpy as np

from mellm_core.errors import InputError

NOSE_TIP = 30
# Points that move with the skull rather than with facial muscles: upper contour, nose bridge, eye corners.
RIGID_POINTS = (0, 1, 2, 14, 15, 16, 27, 28, 29, 30, 36, 39, 42, 45)


def _nose_motion(flow: np.ndarray, landmarks: np.ndarray, window: int) -> np.ndarray:
    h, w = flow.shape[:2]
    nx, ny = int(landmarks[NOSE_TIP][0]), int(landmarks[NOSE_TIP][1])
    x0, x1 = max(nx - window, 0), min(nx + window + 1, w)
    y0, y1 = max(ny - window, 0), min(ny + window + 1, h)
    if x0 >= x1 or y0 >= y1:
        raise InputError(f"the nose tip ({nx}, {ny}) lies outside the {w}x{h} image")
    return flow[y0:y1, x0:x1].reshape(-1, 2).mean(axis=0)


def _sample(flow: np.ndarray, points: np.ndarray, radius: int = 2) -> np.ndarray:
    """Median flow in a small window around each point (clipped to the image)."""
    h, w = flow.shape[:2]
    out = np.zeros((len(points), 2), dtype=np.float64)
    for i, (x, y) in enumerate(points):
        xi = int(np.clip(round(x), 0, w - 1))
        yi = int(np.clip(round(y), 0, h - 1))
        patch = flow[max(yi - radius, 0) : yi + radius + 1, max(xi - radius, 0) : xi + radius + 1]
        out[i] = np.median(patch.reshape(-1, 2), axis=0)
    return out


def _similarity_matrix(flow: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    src = landmarks[list(RIGID_POINTS)].astype(np.float64)
    dst = src + _sample(flow, src)
    matrix, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
    if matrix is None:  # degenerate point set: fall back to the robust translation
        matrix = np.hstack([np.eye(2), np.median(dst - src, axis=0)[:, None]])
    return matrix


def head_motion_field(flow: np.ndarray, landmarks: np.ndarray, mode: str, window: int = 5) -> np.ndarray:
    """The estimated head-motion displacement: a 2-vector (nose, none) or an HxWx2 field (similarity)."""
    if mode == "none":
        return np.zeros(2, dtype=np.float32)
    if mode == "nose":
        return _nose_motion(flow, landmarks, window).astype(np.float32)
    if mode == "similarity":
        h, w = flow.shape[:2]
        matrix = _similarity_matrix(flow, landmarks)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        dx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - xs
        dy = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - ys
        return np.stack([dx, dy], axis=-1).astype(np.float32)
    raise InputError(f"unknown head-motion mode '{mode}' (choose one of: nose, similarity, none)")


def compensate(
    flow: np.ndarray, landmarks: np.ndarray, mode: str, window: int = 5
) -> tuple[np.ndarray, list[float]]:
    """Flow with head motion removed, and the head motion [dx, dy] at the nose tip."""
    field = head_motion_field(flow, landmarks, mode, window)
    if field.ndim == 1:
        at_nose = field
    else:
        h, w = field.shape[:2]
        nx = int(np.clip(landmarks[NOSE_TIP][0], 0, w - 1))
        ny = int(np.clip(landmarks[NOSE_TIP][1], 0, h - 1))
        at_nose = field[ny, nx]
    return (flow - field).astype(np.float32), [float(at_nose[0]), float(at_nose[1])]
