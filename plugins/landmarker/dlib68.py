"""dlib's frontal face detector and 68-point shape predictor (the model ships in face_recognition_models)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mellm_core import PluginSpec, hookimpl
from mellm_core.errors import InputError, NoFaceError

MODEL_FILE = "shape_predictor_68_face_landmarks.dat"


def default_model_path() -> Path:
    """The 68-point model inside the installed face_recognition_models package (located without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the dlib68 landmarker needs the face_recognition_models package (pip install face_recognition_models)"
            " or an explicit model_path"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILE


@dataclass
class Dlib68Params:
    model_path: str | None = None  # shape predictor .dat file (default: the one in face_recognition_models)
    upsample: int = 1  # times the detector upsamples the image to find small faces
    detect_side: int = 800  # the detector looks at a copy at most this long a side (0 = full size): its cost is
    # bounded on large frames; the 68 points are still fitted at full resolution

    def __post_init__(self) -> None:
        if self.upsample < 0 or self.detect_side < 0:
            raise ValueError(f"upsample and detect_side must not be negative, got {self.upsample} and "
                             f"{self.detect_side}")


class Dlib68:
    """First face of ``dlib.get_frontal_face_detector()``, then the 68-point shape predictor."""

    def __init__(self, params: Dlib68Params):
        import dlib

        path = Path(params.model_path) if params.model_path else default_model_path()
        if not path.is_file():
            raise InputError(f"dlib shape predictor model {path} does not exist")
        self.params = params
        self._detector = dlib.get_frontal_face_detector()
        self._rectangle = dlib.rectangle
        self._predictor = dlib.shape_predictor(str(path))

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        scale = min(1.0, self.params.detect_side / max(gray.shape)) if self.params.detect_side else 1.0
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        faces = self._detector(small, self.params.upsample)
        if len(faces) == 0:
            raise NoFaceError(f"no face found in the {gray.shape[1]}x{gray.shape[0]} onset frame")
        box = faces[0]
        box = self._rectangle(*(round(v / scale) for v in (box.left(), box.top(), box.right(), box.bottom())))
        shape = self._predictor(gray, box)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


@hookimpl
def mellm_landmarker():
    yield PluginSpec("dlib68", Dlib68, Dlib68Params, "dlib frontal face detector + 68-point shape predictor")
