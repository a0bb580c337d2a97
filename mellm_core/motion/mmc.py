"""MMC-map colour maths (paper III-C): flow direction as hue, magnitude as brightness, over the gray onset.

The colour table (image coordinates, y down) is the one prompts rely on; ``DIRECTIONS`` lists it.
"""

from __future__ import annotations

import cv2
import numpy as np

# (direction name, angle in degrees measured from +x towards +y (down), colour name in the MMC-map)
DIRECTIONS: tuple[tuple[str, int, str], ...] = (
    ("right", 0, "red"),
    ("down-right", 45, "orange-yellow"),
    ("down", 90, "yellow-green"),
    ("down-left", 135, "green"),
    ("left", 180, "cyan"),
    ("up-left", 225, "blue"),
    ("up", 270, "purple"),
    ("up-right", 315, "magenta"),
)


def quantize_angle(angle_deg: np.ndarray, step: float) -> np.ndarray:
    """Round angles to the nearest multiple of ``step`` degrees, modulo 360 (``step=0``: unchanged)."""
    if step <= 0:
        return angle_deg
    return np.mod(np.round(angle_deg / step) * step, 360.0)


def polar(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and angle in degrees (0..360, y down) of a HxWx2 flow, via ``cv2.cartToPolar``."""
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    return cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)


def brightness(magnitude: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Magnitude as 0..255 brightness, min-max normalized over the whole image (the reference) or a region.

    With a region (a boolean mask, e.g. the face), its own minimum and maximum set the scale and pixels outside
    it get no brightness, so flow artefacts at the image border or on the background cannot dim the face.
    """
    if region is None or not region.any():
        return cv2.normalize(magnitude, None, 0, 255, cv2.NORM_MINMAX)
    low, high = float(magnitude[region].min()), float(magnitude[region].max())
    if high <= low:
        return np.zeros_like(magnitude)
    return np.where(region, (magnitude - low) * (255.0 / (high - low)), 0).astype(np.float32)


def mmc_colorize(flow: np.ndarray, gray: np.ndarray, step: float = 30, mask_percentile: float = 0.0,
                 region: np.ndarray | None = None) -> np.ndarray:
    """The MMC-map as RGB uint8; without ``region``, exactly as the reference pipeline computes it (in BGR)."""
    magnitude, angle = polar(flow)
    hsv = np.zeros((*gray.shape, 3), dtype=np.uint8)
    hsv[..., 0] = quantize_angle(angle, step) / 2  # OpenCV hue is 0..180; assignment truncates like the reference
    hsv[..., 1] = 255
    hsv[..., 2] = brightness(magnitude, region)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    bgr[magnitude <= np.percentile(magnitude, mask_percentile)] = 0
    out = cv2.add(bgr, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def hue_of_direction(angle_deg: float, step: float = 30) -> int:
    """The OpenCV hue (0..179) the MMC colorizer gives to motion at ``angle_deg``."""
    return int(np.uint8(quantize_angle(np.array([angle_deg], dtype=np.float64), step)[0] / 2))


def middlebury_wheel() -> np.ndarray:
    """The Middlebury flow colour wheel (Baker et al. 2011): 55 RGB colours, float in 0..255."""
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6
    segments = [
        (ry, lambda t: (255, 255 * t, 0)),
        (yg, lambda t: (255 - 255 * t, 255, 0)),
        (gc, lambda t: (0, 255, 255 * t)),
        (cb, lambda t: (0, 255 - 255 * t, 255)),
        (bm, lambda t: (255 * t, 0, 255)),
        (mr, lambda t: (255, 0, 255 - 255 * t)),
    ]
    rows = []
    for n, colour in segments:
        t = np.arange(n) / n
        rows.append(np.stack([np.broadcast_to(np.asarray(c, dtype=np.float64), t.shape) for c in colour(t)], axis=1))
    return np.concatenate(rows).astype(np.float64)


def wheel_colorize(flow: np.ndarray, max_flow: float = 0.0) -> np.ndarray:
    """Middlebury colour coding of a flow field as RGB uint8 (white = no motion, saturation = magnitude)."""
    wheel = middlebury_wheel()
    ncols = wheel.shape[0]
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    radius = np.sqrt(u**2 + v**2)
    scale = max_flow if max_flow > 0 else float(radius.max())
    if scale > 0:
        u, v, radius = u / scale, v / scale, radius / scale
    angle = np.arctan2(-v, -u) / np.pi
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(int)
    k1 = (k0 + 1) % ncols
    frac = (fk - k0)[..., None]
    colour = ((1 - frac) * wheel[k0] + frac * wheel[k1]) / 255.0
    r = np.clip(radius, 0, 1)[..., None]
    colour = np.where(radius[..., None] <= 1, 1 - r * (1 - colour), colour * 0.75)
    return np.floor(255 * colour).astype(np.uint8)
