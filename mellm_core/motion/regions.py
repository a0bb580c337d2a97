"""Facial regions from the 68 landmarks and what the compensated flow does in each of them.

Left and right are the subject's (as in FACS codes such as "R12"): the subject's right side appears on the
image's left. Each region is a union of discs around anchor points, with a radius proportional to the face
width, so it scales with the face.

Intensity is relative to the face's own motion, which is what the map shows when the colorizer scales
brightness over the face (``brightness_region: face``); with whole-image min-max brightness (the reference),
an artefact elsewhere in the image can dim the whole face. With ``ref`` the 95th percentile of magnitudes in the face,
a region whose mean magnitude is at least 0.6 ref is *strong*, at least 0.35 ref *medium*, else *weak*.
A region is *salient* when it is at least medium, moves at least ``min_motion`` pixels on average, and
stands out from the face: its mean magnitude is at least 1.5 times the face's median magnitude (a residue of
head motion moves the whole face alike and so makes no region salient).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from mellm_core.motion.mmc import DIRECTIONS

# region name -> anchor points; an int is a landmark, a tuple is the mean of those landmarks.
REGIONS: dict[str, tuple[int | tuple[int, ...], ...]] = {
    "right inner brow": (20, 21),
    "left inner brow": (22, 23),
    "right outer brow": (17, 18),
    "left outer brow": (25, 26),
    "right upper eyelid": (37, 38),
    "left upper eyelid": (43, 44),
    "right lower eyelid": (40, 41),
    "left lower eyelid": (46, 47),
    "right cheek": ((2, 41), (2, 31), (1, 40)),
    "left cheek": ((14, 46), (14, 35), (15, 47)),
    "nose wings": (31, 35, (31, 32), (34, 35)),
    "right mouth corner": (48,),
    "left mouth corner": (54,),
    "upper lip": (50, 51, 52),
    "lower lip": (56, 57, 58),
    "chin": ((57, 8), (56, 9), (58, 7)),
}
RADIUS = 0.055  # disc radius as a fraction of the face width
STRONG, MEDIUM = 0.6, 0.35
CONTRAST = 1.5  # how far above the face's median magnitude a salient region must be


@dataclass
class RegionMotion:
    """What one region's compensated flow does."""

    mean: list[float]  # mean displacement [dx, dy] in pixels (y down)
    mean_magnitude: float
    peak_magnitude: float  # 95th percentile of magnitudes in the region
    direction: str  # dominant 8-way direction (magnitude-weighted), e.g. "up-left"
    colour: str  # its colour in the MMC-map
    intensity: str  # weak | medium | strong
    salient: bool


def anchors(landmarks: np.ndarray, spec: tuple[int | tuple[int, ...], ...]) -> np.ndarray:
    """Anchor coordinates of a region."""
    return np.array([landmarks[list(a)].mean(axis=0) if isinstance(a, tuple) else landmarks[a] for a in spec])


def region_mask(shape: tuple[int, int], landmarks: np.ndarray, name: str) -> np.ndarray:
    """Boolean mask of a region."""
    face_width = float(np.ptp(landmarks[:, 0]))
    radius = max(2, int(round(RADIUS * face_width)))
    mask = np.zeros(shape, np.uint8)
    for x, y in anchors(landmarks, REGIONS[name]):
        cv2.circle(mask, (int(round(x)), int(round(y))), radius, 1, thickness=-1)
    return mask.astype(bool)


def face_mask(shape: tuple[int, int], landmarks: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Boolean mask of the convex hull of the 68 landmarks, grown about its centre by ``margin`` of its size."""
    points = np.asarray(landmarks, dtype=np.float64)
    centre = points.mean(axis=0)
    points = centre + (points - centre) * (1 + margin)
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return mask.astype(bool)


def dominant_direction(flow: np.ndarray) -> int:
    """Index into ``DIRECTIONS`` of the magnitude-weighted dominant 8-way direction of flow vectors (Nx2)."""
    magnitude = np.hypot(flow[:, 0], flow[:, 1])
    angle = np.degrees(np.arctan2(flow[:, 1], flow[:, 0])) % 360
    bins = np.round(angle / 45).astype(int) % 8
    return int(np.argmax(np.bincount(bins, weights=magnitude, minlength=8)))


def analyze_regions(flow: np.ndarray, landmarks: np.ndarray, min_motion: float = 0.1) -> dict[str, RegionMotion]:
    """Per-region motion of a head-motion-compensated flow field (HxWx2) for a face's 68 landmarks."""
    shape = flow.shape[:2]
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    inside = magnitude[face_mask(shape, landmarks)]
    ref = float(np.percentile(inside, 95)) if inside.size else 0.0
    typical = float(np.median(inside)) if inside.size else 0.0
    out: dict[str, RegionMotion] = {}
    for name in REGIONS:
        mask = region_mask(shape, landmarks, name)
        if not mask.any():
            continue
        vectors, mags = flow[mask], magnitude[mask]
        mean_mag = float(mags.mean())
        ratio = mean_mag / ref if ref > 0 else 0.0
        intensity = "strong" if ratio >= STRONG else "medium" if ratio >= MEDIUM else "weak"
        direction, _, colour = DIRECTIONS[dominant_direction(vectors)]
        out[name] = RegionMotion(
            mean=[round(float(v), 4) for v in vectors.mean(axis=0)],
            mean_magnitude=round(mean_mag, 4),
            peak_magnitude=round(float(np.percentile(mags, 95)), 4),
            direction=direction,
            colour=colour,
            intensity=intensity,
            salient=intensity != "weak" and mean_mag >= max(min_motion, CONTRAST * typical),
        )
    return out


def regions_to_dict(regions: dict[str, RegionMotion]) -> dict[str, dict]:
    return {name: asdict(motion) for name, motion in regions.items()}


def regions_from_dict(data: dict[str, dict]) -> dict[str, RegionMotion]:
    return {name: RegionMotion(**values) for name, values in data.items()}
