"""Reading frames exactly as the reference pipeline does, and checking onset/apex pairs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mellm_core.errors import InputError
from mellm_core.files.storage import Location


def to_gray(bgr: np.ndarray) -> np.ndarray:
    """BGR (or already gray) uint8 -> gray uint8 via ``cv2.cvtColor``, as the reference does."""
    if bgr.ndim == 2:
        return bgr
    if bgr.ndim == 3 and bgr.shape[2] == 4:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


def read_gray(path: str | Path) -> np.ndarray:
    """Decode an image file (a local path or a URI) in colour and convert it to gray (decoding straight to gray
    rounds differently)."""
    return to_gray(_decode_bgr(_image_bytes(path), str(path)))


def _image_bytes(path: str | Path) -> bytes:
    """An image file's bytes, or raise naming the file."""
    location = Location(path)
    try:
        return location.read_bytes()  # one request for an object; the reason is looked up only on failure
    except OSError as exc:
        if location.is_dir():
            raise InputError(f"image {path} is a folder, not an image file") from None
        if isinstance(exc, FileNotFoundError):
            raise InputError(f"image {path} does not exist") from None
        raise InputError(f"image {path} cannot be read: {exc}") from None


def decode_gray(data: bytes, name: str = "image") -> np.ndarray:
    """Decode image bytes (PNG, JPEG, BMP, ...) to gray uint8, or raise naming what is wrong."""
    return to_gray(_decode_bgr(data, name))


def _decode_bgr(data: bytes, name: str) -> np.ndarray:
    if not data:
        raise InputError(f"{name} is empty")
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{name} is not a readable image (corrupt, truncated or an unsupported format)")
    return bgr


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file (an MMC-map; a local path or a URI) as RGB uint8 HxWx3, or raise naming the file."""
    return cv2.cvtColor(_decode_bgr(_image_bytes(path), str(path)), cv2.COLOR_BGR2RGB)


def check_pair(onset: np.ndarray, apex: np.ndarray) -> None:
    """Onset and apex must be 2-D uint8 arrays of one size."""
    for label, img in (("onset", onset), ("apex", apex)):
        if img.ndim != 2 or img.dtype != np.uint8:
            raise InputError(f"{label} frame must be a gray uint8 HxW array, got {img.dtype} {img.shape}")
    if onset.shape != apex.shape:
        raise InputError(
            f"onset and apex frames differ in size: onset {onset.shape[1]}x{onset.shape[0]},"
            f" apex {apex.shape[1]}x{apex.shape[0]}"
        )
