"""Dataset ``smic``: SMIC (Li et al., 2013) as distributed; the HS camera (100 fps) by default.

Layout (labels are folder names; there is no annotation sheet)::

    ROOT/HS/s1/micro/negative/s1_ne_01/image046470.bmp ...   (reg_image*.bmp in SMIC_all_cropped)
    ROOT/HS/s1/micro/positive/...  ROOT/HS/s1/micro/surprise/...

Each clip runs from onset (its first frame) to offset (its last). SMIC has no apex annotation: the apex is the
frame of peak motion from the onset (``apex: flow``) or the middle frame (``middle``); one warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mellm_core import PluginSpec, hookimpl
from mellm_core.data.annotations import ClipRow, build_sample
from mellm_core.data.frameindex import APEX_FILLS, ClipFrames
from mellm_core.data.splits import natural_key
from mellm_core.errors import InputError
from mellm_core.records import Sample


@dataclass
class SmicParams:
    camera: str = "HS"  # HS (100 fps), VIS or NIR (25 fps)
    frames_dir: str = ""  # folder holding HS/, VIS/, NIR/, relative to the root (e.g. SMIC_all_cropped)
    apex: str = "flow"  # no apex is annotated: flow (peak motion from onset) or middle

    def __post_init__(self) -> None:
        if self.apex not in APEX_FILLS:
            raise ValueError(f"apex must be one of: {', '.join(APEX_FILLS)}, got '{self.apex}'")


def _subdirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


class Smic:
    """Reads a SMIC root into samples (emotion from folder names); ``warnings`` tells how apexes were set."""

    dataset = "smic"

    def __init__(self, params: SmicParams):
        self.params = params
        self.warnings: list[str] = []

    def _clip(self, subject: str, emotion: str, folder: Path) -> Sample:
        frames = ClipFrames(folder)
        row = ClipRow(
            subject,
            folder.name,
            frames.numbers[0],
            None,
            frames.numbers[-1],
            emotion_raw=emotion,
            where=str(folder),
        )
        return build_sample(self.dataset, row, frames, self.params.apex, [])

    def samples(self, root: str | Path) -> list[Sample]:
        base = Path(root) / self.params.frames_dir / self.params.camera
        if not base.is_dir():
            found = (
                ", ".join(p.name for p in _subdirs(base.parent)) if base.parent.is_dir() else "no such folder"
            )
            raise InputError(f"SMIC camera folder {base} does not exist (found: {found or 'nothing'})")
        out = [
            self._clip(subject.name, emotion.name, clip)
            for subject in _subdirs(base)
            if (subject / "micro").is_dir()
            for emotion in _subdirs(subject / "micro")
            for clip in _subdirs(emotion)
        ]
        if not out:
            raise InputError(f"SMIC folder {base} holds no {{subject}}/micro/{{emotion}}/{{clip}}/ folders")
        how = "peak motion from the onset" if self.params.apex == "flow" else "the middle frame"
        self.warnings = [f"SMIC has no apex annotation: apex of {len(out)} clips set to {how}"]
        return out


@hookimpl
def mellm_dataset():
    yield PluginSpec("smic", Smic, SmicParams, "SMIC (HS/VIS/NIR) as distributed (labels from folder names)")
