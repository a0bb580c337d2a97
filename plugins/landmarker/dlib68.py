"""dlib's frontal face detector and 68-point shape predictor (the model ships in face_recognition_models)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

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


class Dlib68:
    """First face of ``dlib.get_frontal_face_detector()``, then the 68-point shape predictor."""

    def __init__(self, params: Dlib68Params):
        import dlib

        path = Path(params.model_path) if params.model_path else default_model_path()
        if not path.is_file():
            raise InputError(f"dlib shape predictor model {path} does not exist")
        self.params = params
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        faces = self._detector(gray, self.params.upsample)
        if len(faces) == 0:
            raise NoFaceError(f"no face found in the {gray.shape[1]}x{gray.shape[0]} onset frame")
        shape = self._predictor(gray, faces[0])
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


@hookimpl
def mellm_landmarker():
    yield PluginSpec("dlib68", Dlib68, Dlib68Params, "dlib frontal face detector + 68-point shape predictor")
