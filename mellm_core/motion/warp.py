"""Warping an image by a known forward flow, so synthetic pairs carry exact ground-truth motion."""

from __future__ import annotations

import cv2
import numpy as np


def pullback(flow: np.ndarray, iterations: int = 12) -> np.ndarray:
    """The field w on the target grid with w(y) = u(y - w(y)): where each target pixel came from.

    Solved by fixed-point iteration; it converges for fields whose gradient is well below 1 (any smooth,
    micro-expression-sized motion).
    """
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = flow.astype(np.float32).copy()
    for _ in range(iterations):
        back = cv2.remap(flow.astype(np.float32), xs - back[..., 0], ys - back[..., 1],
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return back


def warp_forward(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The image moved by ``flow`` (HxWx2, onset -> apex): ``out(x + flow(x)) = image(x)`` up to interpolation."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = pullback(flow)
    return cv2.remap(image, xs - back[..., 0], ys - back[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def similarity_flow(shape: tuple[int, int], dx: float, dy: float, angle_deg: float = 0.0,
                    scale: float = 1.0, centre: tuple[float, float] | None = None) -> np.ndarray:
    """The displacement field of a similarity transform (rotation about ``centre``, scale, translation)."""
    h, w = shape
    cx, cy = centre if centre is not None else ((w - 1) / 2, (h - 1) / 2)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64) - cx, np.arange(h, dtype=np.float64) - cy)
    a = np.deg2rad(angle_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    u = c * xs - s * ys - xs + dx
    v = s * xs + c * ys - ys + dy
    return np.stack([u, v], axis=-1).astype(np.float32)
