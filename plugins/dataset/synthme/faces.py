"""SynthME's face sources: the built-in photos or the user's, with their 68 landmarks found once per photo."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mellm_core import create
from mellm_core.errors import InputError
from mellm_core.files.frames import to_gray


@dataclass
class Face:
    """A base photo (BGR) and its 68 landmarks."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray


def builtin_photos() -> list[tuple[str, np.ndarray]]:
    """The real face photos that ship with scikit-image (astronaut) and matplotlib (Grace Hopper), BGR."""
    try:
        import skimage.data
        from matplotlib import cbook
    except ImportError:
        raise InputError(
            "SynthME's built-in faces come from scikit-image and matplotlib (pip install 'mellm[dev]');"
            " install them or pass photos of your own"
        ) from None
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    return [
        ("astronaut", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)),
        ("grace_hopper", hopper),
    ]


def read_photos(paths: Sequence[str | Path]) -> list[tuple[str, np.ndarray]]:
    """User photos as (name, BGR image); an unreadable file is an error naming it."""
    out = []
    for path in map(Path, paths):
        data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise InputError(f"photo {path} does not exist or is not a readable image")
        out.append((path.stem, image))
    return out


_LANDMARKS: dict[tuple[str, str], np.ndarray] = {}


def find_faces(photos: list[tuple[str, np.ndarray]], landmarker: str) -> list[Face]:
    """Landmarks of each photo from the registry's ``landmarker`` (once per photo and process); a photo
    without a face is an error naming it."""
    faces, detect = [], None
    for name, image in photos:
        key = (landmarker, hashlib.sha1(image.tobytes()).hexdigest())
        if key not in _LANDMARKS:
            detect = detect or create("landmarker", landmarker)
            try:
                _LANDMARKS[key] = np.asarray(detect(to_gray(image)), dtype=np.float64)
            except InputError as exc:
                raise InputError(f"SynthME photo '{name}': {exc}; use a frontal face photo") from None
        faces.append(Face(name, image, _LANDMARKS[key]))
    return faces
