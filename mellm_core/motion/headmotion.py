"""Head-motion compensation (paper III-C): estimate the rigid head movement in a flow field and remove it.

Modes:
- ``nose``: the reference; mean flow in a (2w+1)-pixel square window at the nose tip (landmark 30).
- ``similarity``: a similarity transform (rotation, scale, translation) fitted by least median of squares
  to the flow at landmarks thought rigid (nose bridge, eye corners, upper face contour). AU9 moves the nose
  bridge and AU6 the contour and the outer eye corners, so a nose wrinkle or a smile still leaks into it.
- ``robust``: a similarity fitted to the flow over the whole face by consensus. Similarities through pairs of
  face pixels are tried; the one that the most pixels follow to within ``INLIER_PX`` wins and is refined by
  least squares on those pixels (re-weighted by Tukey's biweight). No point is assumed rigid: every region of
  the face moves under some AU (AU6 lifts the cheeks and the face contour beside them, AU9 the nose, AU4 the
  root of the nose, AU26 the jaw), but what an expression leaves still moves with the head as one rigid
  whole, while the regions it moves follow no common similarity. So the fit holds while the still part of
  the face is the largest part that moves as one, which every prototype leaves it (``benchmarks/head_motion.py``).
- ``none``: the flow as estimated.
"""

from __future__ import annotations

import cv2
import numpy as np

from mellm_core.errors import InputError

Region = tuple[slice, slice]  # rows, columns
NOSE_TIP = 30
# ``similarity``'s points: upper contour, nose bridge, eye corners.
RIGID_POINTS = (0, 1, 2, 14, 15, 16, 27, 28, 29, 30, 36, 39, 42, 45)
# ``robust``: the face is the jaw contour and the forehead (``face_polygon``); its border band of EDGE x the
# interocular distance is left out (the flow there mixes face and background). The pixels of a regular grid
# enter the fit, its step the largest that keeps SAMPLES or more; HYPOTHESES similarities (seeded: the same
# flow gives the same map) are tried, each counted on SCORED of the pixels; a pixel follows one when its flow
# is within INLIER_PX of it (about TV-L1's noise on still skin, well below a micro-expression's motion).
FOREHEAD = 0.7
EDGE = 0.1
SAMPLES = 6000
SCORED = 1500
HYPOTHESES = 300
INLIER_PX = 0.05
ITERATIONS = 30


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


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres (the means of landmarks 36-41 and 42-47) in pixels."""
    points = np.asarray(landmarks, dtype=np.float64)
    return float(np.linalg.norm(points[42:48].mean(axis=0) - points[36:42].mean(axis=0)))


def face_polygon(landmarks: np.ndarray) -> np.ndarray:
    """The face as a polygon: the jaw contour (0-16), then the brows (26-17) raised by ``FOREHEAD`` x the
    interocular distance towards the top of the head (the forehead, still in every expression without AU1,
    AU2 or AU4)."""
    points = np.asarray(landmarks, dtype=np.float64)
    up = points[27] - points[8]
    up /= max(float(np.linalg.norm(up)), 1e-9)
    return np.vstack([points[:17], points[26:16:-1] + FOREHEAD * interocular(points) * up])


def face_samples(shape: tuple[int, int], landmarks: np.ndarray, region: Region | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y) on a regular grid inside the face polygon (its border band left out) and inside
    ``region`` (where the flow was computed, when not the whole frame: the zeros outside it are not still skin)."""
    h, w = shape
    points = np.asarray(landmarks, dtype=np.float64)
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.round(face_polygon(points)).astype(np.int32)], 1)
    band = max(int(round(EDGE * interocular(points))), 1)
    inside = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1)))
    if region is not None:
        inside[region] *= 2
        inside = (inside == 2).astype(np.uint8)
    step = max(int(np.sqrt(inside.sum() / SAMPLES)), 1)
    ys, xs = np.nonzero(inside[::step, ::step])
    if len(xs) < 8:
        raise InputError(f"the face polygon of the landmarks covers {int(inside.sum())} pixels of the {w}x{h} "
                         "image: too few to fit the head motion (head_motion: robust)")
    return xs * step, ys * step


def _similarity_design(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Rows of the linear system of a similarity's displacement ``(sR - I) p + t`` in its parameters
    (a, b, tx, ty), with ``sR - I = [[a, -b], [b, a]]``: x rows first, then y rows."""
    one, zero = np.ones_like(xs), np.zeros_like(xs)
    return np.concatenate([np.stack([xs, -ys, one, zero], 1), np.stack([ys, xs, zero, one], 1)])


def _robust_matrix(flow: np.ndarray, landmarks: np.ndarray, region: Region | None) -> np.ndarray:
    """2x3 similarity of the largest part of the face that moves as one rigid whole (see the module docstring)."""
    xs, ys = face_samples(flow.shape[:2], landmarks, region)
    moves = flow[ys, xs].astype(np.float64)
    centre = np.array([xs.mean(), ys.mean()])
    unit = max(float(np.ptp(xs)), float(np.ptp(ys)), 1.0)  # coordinates of order 1: a well-conditioned system
    x, y = (xs - centre[0]) / unit, (ys - centre[1]) / unit
    design = _similarity_design(x, y)
    target = np.concatenate([moves[:, 0], moves[:, 1]])
    n = len(x)
    # hypotheses: similarities through two samples far enough apart (a third of the face) to fix rotation and scale
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, n, (2, HYPOTHESES * 4))
    far = np.hypot(x[first] - x[second], y[first] - y[second]) > 1 / 3
    first, second = first[far][:HYPOTHESES], second[far][:HYPOTHESES]
    picks = np.stack([first, second, n + first, n + second], 1)
    hypotheses = np.linalg.solve(design[picks], target[picks][..., None])[..., 0]  # one similarity per row
    scored = np.arange(0, n, max(n // SCORED, 1))  # an even subset counts the followers of each hypothesis
    miss_x = design[scored] @ hypotheses.T - target[scored, None]
    miss_y = design[n + scored] @ hypotheses.T - target[n + scored, None]
    counts = (miss_x**2 + miss_y**2 < INLIER_PX**2).sum(axis=0)
    params = hypotheses[int(np.argmax(counts))]
    for _ in range(ITERATIONS):  # refine on the consensus: least squares, re-weighted by Tukey's biweight
        residual = np.hypot(*(design @ params - target).reshape(2, -1))
        weight = np.clip(1 - (residual / INLIER_PX) ** 2, 0, None) ** 2
        weighted = design.T * np.concatenate([weight, weight])
        fitted = np.linalg.solve(weighted @ design, weighted @ target)  # the 4x4 normal equations
        settled = np.abs(fitted - params).max() < 1e-6
        params = fitted
        if settled:
            break
    a, b, tx, ty = params
    linear = np.array([[a, -b], [b, a]]) / unit
    return np.hstack([np.eye(2) + linear, (np.array([tx, ty]) - linear @ centre)[:, None]])


def head_motion_field(flow: np.ndarray, landmarks: np.ndarray, mode: str, window: int = 5,
                      region: Region | None = None) -> np.ndarray:
    """The estimated head-motion displacement: a 2-vector (nose, none) or an HxWx2 field (similarity, robust);
    ``region`` (rows, columns) is where the flow was computed when that is not the whole frame."""
    if mode == "none":
        return np.zeros(2, dtype=np.float32)
    if mode == "nose":
        return _nose_motion(flow, landmarks, window).astype(np.float32)
    if mode in ("similarity", "robust"):
        h, w = flow.shape[:2]
        if mode == "similarity":
            matrix = _similarity_matrix(flow, landmarks)
        else:
            matrix = _robust_matrix(flow, landmarks, region)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        dx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - xs
        dy = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - ys
        return np.stack([dx, dy], axis=-1).astype(np.float32)
    raise InputError(f"unknown head-motion mode '{mode}' (choose one of: nose, similarity, robust, none)")


def compensate(
    flow: np.ndarray, landmarks: np.ndarray, mode: str, window: int = 5, region: Region | None = None
) -> tuple[np.ndarray, list[float]]:
    """Flow with head motion removed, and the head motion [dx, dy] at the nose tip."""
    field = head_motion_field(flow, landmarks, mode, window, region)
    if field.ndim == 1:
        at_nose = field
    else:
        h, w = field.shape[:2]
        nx = int(np.clip(landmarks[NOSE_TIP][0], 0, w - 1))
        ny = int(np.clip(landmarks[NOSE_TIP][1], 0, h - 1))
        at_nose = field[ny, nx]
    return (flow - field).astype(np.float32), [float(at_nose[0]), float(at_nose[1])]
