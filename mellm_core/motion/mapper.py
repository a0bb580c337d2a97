"""One onset/apex pair -> MMC-map: landmarks, optional crop and size cap, flow (of the frame or the face box),
head motion, colorizer.

``Mapper`` holds the plugins built from a recipe's ``maps`` section, so a Ray actor or a server builds it once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mellm_core.config import MapsConfig, settings_hash
from mellm_core.errors import InputError
from mellm_core.files.frames import check_pair
from mellm_core.motion.headmotion import NOSE_TIP, compensate
from mellm_core.motion.regions import RegionMotion, analyze_regions
from mellm_core.plugins import Registry, get_registry


@dataclass
class MapResult:
    """A map with what was measured on the way (landmarks and flow in the map's own coordinates)."""

    rgb: np.ndarray
    raw_flow: np.ndarray  # the estimator's flow before head-motion compensation
    landmarks: np.ndarray
    head_motion: list[float]
    regions: dict[str, RegionMotion] = field(default_factory=dict)  # motion per facial region
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def nose(self) -> list[float]:
        return [float(self.landmarks[NOSE_TIP][0]), float(self.landmarks[NOSE_TIP][1])]


def crop_matrix(landmarks: np.ndarray, margin: float, size: int) -> np.ndarray:
    """2x3 affine matrix mapping the square around the landmark box (plus margin) onto size x size pixels."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    centre = (lo + hi) / 2
    side = float(max(hi - lo)) * (1 + 2 * margin)
    scale = size / max(side, 1.0)
    return np.array(
        [[scale, 0, size / 2 - scale * centre[0]], [0, scale, size / 2 - scale * centre[1]]], dtype=np.float64
    )


def face_box(landmarks: np.ndarray, margin: float, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Rows and columns of the landmark box plus ``margin`` (a fraction of its size), clipped to the image."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    pad = (hi - lo) * margin
    x0, y0 = np.floor(np.maximum(lo - pad, 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(hi + pad + 1, [shape[1], shape[0]])).astype(int)
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


class Mapper:
    """Builds MMC-maps with the plugins and settings of a ``maps`` recipe section."""

    def __init__(self, cfg: MapsConfig, registry: Registry | None = None):
        registry = registry or get_registry()
        self.cfg = cfg
        self.flow = registry.create("flow", cfg.flow, **cfg.flow_params)
        self.landmarker = registry.create("landmarker", cfg.landmarker, **cfg.landmarker_params)
        self.colorizer = registry.create("colorizer", cfg.colorizer, **cfg.colorizer_params)
        self.settings_hash = maps_settings_hash(cfg)

    def _geometry(self, onset: np.ndarray, apex: np.ndarray, landmarks: np.ndarray):
        cfg = self.cfg
        if cfg.crop:
            matrix = crop_matrix(landmarks, cfg.crop_margin, cfg.crop_size)
            size = (cfg.crop_size, cfg.crop_size)
            onset = cv2.warpAffine(onset, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
            apex = cv2.warpAffine(apex, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
            landmarks = apply_affine(landmarks, matrix)
        longest = max(onset.shape)
        if cfg.max_side and longest > cfg.max_side:
            height, width = onset.shape
            size = (max(1, round(width * cfg.max_side / longest)), max(1, round(height * cfg.max_side / longest)))
            onset = cv2.resize(onset, size, interpolation=cv2.INTER_AREA)
            apex = cv2.resize(apex, size, interpolation=cv2.INTER_AREA)
            landmarks = (landmarks * np.array([size[0] / width, size[1] / height])).astype(np.float32)
        return onset, apex, landmarks

    def _flow(self, onset: np.ndarray, apex: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The flow of the whole frame, or with ``flow_region: face`` of the face box only (zero elsewhere): its
        cost then follows the face, not the frame (what the service needs against large uploads)."""
        if self.cfg.flow_region == "frame":
            return self.flow(onset, apex)
        rows, cols = face_box(landmarks, self.cfg.crop_margin, onset.shape)
        flow = np.zeros((*onset.shape, 2), np.float32)
        flow[rows, cols] = self.flow(np.ascontiguousarray(onset[rows, cols]), np.ascontiguousarray(apex[rows, cols]))
        return flow

    def __call__(self, onset: np.ndarray, apex: np.ndarray) -> MapResult:
        """Map one gray onset/apex pair; raises ``InputError`` (e.g. ``NoFaceError``) naming the problem."""
        check_pair(onset, apex)
        t0 = time.perf_counter()
        landmarks = np.asarray(self.landmarker(onset), dtype=np.float32)
        t1 = time.perf_counter()
        onset, apex, landmarks = self._geometry(onset, apex, landmarks)
        flow = self._flow(onset, apex, landmarks)
        t2 = time.perf_counter()
        region = face_box(landmarks, self.cfg.crop_margin, onset.shape) if self.cfg.flow_region == "face" else None
        compensated, head = compensate(flow, landmarks, self.cfg.head_motion, self.cfg.nose_window, region)
        rgb = self.colorizer(compensated, onset, landmarks)
        regions = analyze_regions(compensated, landmarks, self.cfg.min_motion)
        t3 = time.perf_counter()
        timings = {"landmarks_s": t1 - t0, "flow_s": t2 - t1, "colorize_s": t3 - t2, "total_s": t3 - t0}
        return MapResult(rgb=rgb, raw_flow=flow, landmarks=landmarks, head_motion=head, regions=regions,
                         timings=timings)


def map_files(mapper: Mapper, onset: str | Path, apex: str | Path, out: str | Path,
              save_flow: str | Path | None = None) -> MapResult:
    """``mellm map``: the MMC-map of two frame files, written as a PNG (and the raw flow as .npy when asked)."""
    import io

    from mellm_core.files.atomic import write_bytes_atomic, write_png_atomic
    from mellm_core.files.frames import read_gray

    if Path(out).suffix.lower() != ".png":
        raise InputError(f"output {out} must be a .png file (maps are lossless PNG)")
    result = mapper(read_gray(onset), read_gray(apex))
    write_png_atomic(out, result.rgb)
    if save_flow:
        buffer = io.BytesIO()
        np.save(buffer, result.raw_flow.astype(np.float32))
        write_bytes_atomic(save_flow, buffer.getvalue())
    return result


RUNTIME_KEYS = ("cpus_per_actor", "actors", "batch_size", "overwrite")


def maps_settings_hash(cfg: MapsConfig) -> str:
    """Hash of the settings that change a map or its manifest line (scheduling knobs do not)."""
    return settings_hash({k: v for k, v in asdict(cfg).items() if k not in RUNTIME_KEYS})
