"""Finding a clip's frames: list the folder, number each image by the last integer in its name; never guess.

``img46.jpg``, ``reg_img46.jpg``, ``046.jpg``, ``46.jpg`` and ``006_00046.jpg`` are all frame 46. When an
annotation leaves the apex out, ``peak_motion_frame`` picks the frame that moved most from the onset.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from mellm_core.errors import InputError
from mellm_core.files.frames import read_gray

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")


def frame_number(name: str) -> int | None:
    """The last integer in a file name's stem ("reg_img046.jpg" -> 46), or None when it has none."""
    match = _LAST_INT.search(Path(name).stem)
    return int(match.group(1)) if match else None


def resolve_dir(base: Path, *parts: str) -> Path:
    """``base/part/...``; a part absent by its exact name is matched ignoring case ("spNO.1" -> "spNo.1")."""
    path = Path(base)
    for part in parts:
        exact = path / part
        if exact.is_dir() or not path.is_dir():
            path = exact
            continue
        matches = sorted(p for p in path.iterdir() if p.is_dir() and p.name.lower() == part.lower())
        path = matches[0] if matches else exact
    return path


class ClipFrames:
    """The image files of one clip folder, keyed by frame number."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"clip folder {self.folder} does not exist")
        self.paths: dict[int, Path] = {}
        for path in sorted(self.folder.iterdir()):
            number = frame_number(path.name)
            if path.suffix.lower() not in IMAGE_SUFFIXES or number is None:
                continue
            if number in self.paths:
                raise InputError(
                    f"clip folder {self.folder} holds two images numbered {number}: "
                    f"{self.paths[number].name} and {path.name}"
                )
            self.paths[number] = path
        if not self.paths:
            raise InputError(f"clip folder {self.folder} holds no numbered .jpg/.png/.bmp images")

    @property
    def numbers(self) -> list[int]:
        """Frame numbers present, ascending."""
        return sorted(self.paths)

    def path(self, number: int, role: str = "frame") -> Path:
        """The file of frame ``number``, or an error naming the folder and the frames it holds."""
        if number not in self.paths:
            numbers = self.numbers
            raise InputError(
                f"{role} frame {number} is not in {self.folder} (it holds frames {numbers[0]}-{numbers[-1]},"
                f" {len(numbers)} files)"
            )
        return self.paths[number]


def _small(path: Path, max_side: int) -> np.ndarray:
    gray = read_gray(path)
    scale = max_side / max(gray.shape)
    if scale >= 1:
        return gray
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def motion_energy(onset: np.ndarray, frame: np.ndarray) -> float:
    """Mean Farneback flow magnitude from ``onset`` to ``frame`` after removing the median (global) motion."""
    flow = cv2.calcOpticalFlowFarneback(onset, frame, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    flow -= np.median(flow.reshape(-1, 2), axis=0)
    return float(np.linalg.norm(flow, axis=2).mean())


def peak_motion_frame(frames: ClipFrames, onset: int, offset: int | None = None, max_side: int = 160) -> int:
    """The frame in (onset, offset] that moved most from the onset frame (frames shrunk to ``max_side``).

    Global motion (the median flow) is removed first, so a head drift does not win over a facial movement.
    Used to fill an apex an annotation leaves out; returns ``onset`` when the clip holds no later frame.
    """
    last = offset if offset is not None else frames.numbers[-1]
    candidates = [n for n in frames.numbers if onset < n <= last]
    if not candidates:
        return onset
    start = _small(frames.path(onset, "onset"), max_side)
    energies = [motion_energy(start, _small(frames.paths[n], max_side)) for n in candidates]
    return candidates[int(np.argmax(energies))]


def middle_frame(frames: ClipFrames, onset: int, offset: int | None = None) -> int:
    """The median frame present in onset..offset (up to the last frame when offset is unknown)."""
    last = offset if offset is not None else frames.numbers[-1]
    inside = [n for n in frames.numbers if onset <= n <= last] or [onset]
    return inside[len(inside) // 2]


def spotted_apex(frames: ClipFrames, onset: int, offset: int | None, fps: float) -> int:
    """The apex of the strongest expression the ``flow`` spotter finds in onset..offset at ``fps`` (on the whole
    frame when it finds no face: a crop); the peak motion from the onset when it finds none (a clip shorter than
    its window)."""
    from mellm_core.plugins import create

    last = offset if offset is not None else frames.numbers[-1]
    inside = [n for n in frames.numbers if onset <= n <= last]
    try:
        found = create("spotter", "flow")((_gray(frames.paths[n]) for n in inside), fps)
    except InputError:  # no face on the first frame
        found = create("spotter", "flow", landmarker="none")((_gray(frames.paths[n]) for n in inside), fps)
    return inside[found[0].apex - 1] if found else peak_motion_frame(frames, onset, offset)


def _gray(path: Path) -> np.ndarray:
    from mellm_core.files.frames import read_gray

    return read_gray(path)


APEX_FILLS = {"flow": "peak motion from onset", "middle": "middle frame", "spot": "strongest spotted expression"}


def check_apex_fill(method: str, fps: float | None = None) -> None:
    """A dataset plugin's ``apex_fill`` parameter must name one of ``APEX_FILLS``; ``spot`` needs its ``fps``."""
    if method not in APEX_FILLS:
        raise ValueError(f"apex_fill must be one of: {', '.join(APEX_FILLS)}, got '{method}'")
    if method == "spot" and not (fps or 0) > 0:
        raise ValueError(f"apex_fill=spot needs the clips' frame rate: fps must be positive, got {fps}")


def fill_apex(frames: ClipFrames, onset: int, offset: int | None, method: str, fps: float | None = None) -> int:
    """An apex for a clip whose annotation has none: ``flow`` (peak motion from the onset), ``middle`` or
    ``spot`` (the flow spotter's strongest expression, at the clips' ``fps``)."""
    if method not in APEX_FILLS:
        raise InputError(f"unknown apex fill '{method}' (choose one of: {', '.join(APEX_FILLS)})")
    if method == "spot":
        check_apex_fill(method, fps)
        return spotted_apex(frames, onset, offset, fps or 0.0)
    return (peak_motion_frame if method == "flow" else middle_frame)(frames, onset, offset)
