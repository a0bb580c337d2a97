"""Dataset ``casme2``: CASME II as distributed (Yan et al., 2014; 26 subjects, 200 fps).

Layout::

    ROOT/CASME2-coding-20140508.xlsx          (any CASME2-coding-*.xlsx; set coding_file otherwise)
    ROOT/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...   (or Cropped/sub01/EP02_01f/reg_img46.jpg ...)

Sheet columns: Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated Emotion (and
two unnamed ones, ignored). Subject is an integer (1 -> folder sub01). Some clips have ApexFrame "/": the apex
is then filled with the frame of peak motion between onset and offset (``apex_fill: flow``; Farneback flow
from the onset frame with the median motion removed) or the middle frame (``middle``), and a warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mellm_core import PluginSpec, hookimpl
from mellm_core.data.annotations import (
    ClipRow,
    build_sample,
    check_unique,
    clip_rows,
    find_annotation,
    read_table,
    samples_of_rows,
)
from mellm_core.data.frameindex import ClipFrames, check_apex_fill, resolve_dir
from mellm_core.records import Sample

COLUMNS = {
    "subject": "Subject",
    "clip": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "aus": "Action Units",
    "emotion": "Estimated Emotion",
}


@dataclass
class Casme2Params:
    coding_file: str = (
        "CASME2-coding-*.xlsx"  # annotation sheet in the root (a glob matching exactly one file)
    )
    frames_dir: str = (
        "CASME2_RAW_selected"  # folder of sub{NN}/{Filename}/ clips: CASME2_RAW_selected, Cropped, ...
    )
    apex_fill: str = "flow"  # for ApexFrame "/": flow (peak motion from onset), middle or spot
    fps: float = 200.0  # the clips' frame rate (for apex_fill: spot)

    def __post_init__(self) -> None:
        check_apex_fill(self.apex_fill, self.fps)


def subject_folder(subject: str) -> str:
    """The clip folder's subject name: 1 -> "sub01"; a name that already reads "sub01" stays."""
    return f"sub{int(subject):02d}" if subject.isdigit() else subject


class Casme2:
    """Reads a CASME II root into samples; ``warnings`` lists what was repaired (e.g. filled apexes)."""

    dataset = "casme2"

    def __init__(self, params: Casme2Params):
        self.params = params
        self.warnings: list[str] = []

    def _sample(self, root: Path, row: ClipRow) -> Sample:
        row.subject = subject_folder(row.subject)
        frames = ClipFrames(resolve_dir(root, self.params.frames_dir, row.subject, row.clip))
        return build_sample(self.dataset, row, frames, self.params.apex_fill, self.warnings,
                            fps=self.params.fps)

    def samples(self, root: str | Path) -> list[Sample]:
        root = Path(root)
        self.warnings = []
        table = read_table(find_annotation(root, self.params.coding_file, "CASME II"))
        rows = clip_rows(table, table.columns(COLUMNS))
        return check_unique(samples_of_rows(rows, lambda row: self._sample(root, row), self.warnings), table.path)


@hookimpl
def mellm_dataset():
    yield PluginSpec(
        "casme2", Casme2, Casme2Params, "CASME II as distributed (CASME2-coding-*.xlsx + frame folders)"
    )
