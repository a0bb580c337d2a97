"""Dataset ``casme3a``: CAS(ME)^3 Part A micro-expressions as distributed (Li et al., 2022; 30 fps).

Layout::

    ROOT/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx
    ROOT/spNO.1/a/color/355.jpg ...             (frames_dir selects a sub-folder, e.g. data/part_A)

Columns: Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion. Frame numbers index the JPEGs
of the whole recording ``{Subject}/{Filename}/color/``, so one recording holds several micro-expressions:
the sample id carries the onset (``casme3a/spNO.1/a_355``). Folder names may differ from the sheet in letter
case ("spNO.1" vs "spNo.1"); they are matched case-insensitively. Emotions are written "happy", "sad", ...
and normalized to happiness, sadness, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mellm_core import PluginSpec, hookimpl
from mellm_core.data.annotations import ClipRow, build_sample, check_unique, clip_rows, read_table, samples_of_rows
from mellm_core.data.frameindex import ClipFrames, check_apex_fill, resolve_dir
from mellm_core.errors import InputError
from mellm_core.records import Sample

COLUMNS = {
    "subject": "Subject",
    "clip": "Filename",
    "onset": "Onset",
    "apex": "Apex",
    "offset": "Offset",
    "aus": "AU",
    "emotion": "emotion",
    "objective_class": "Objective class",
}


@dataclass
class Casme3aParams:
    coding_file: str = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"  # annotation sheet in the root
    sheet: str = ""  # sheet name ("" = the first sheet; the release calls it "label")
    frames_dir: str = ""  # folder holding {Subject}/{Filename}/, relative to the root ("" = the root)
    modality: str = "color"  # sub-folder of each recording holding the frames (color or depth)
    apex_fill: str = "flow"  # for a missing apex: flow (peak motion from onset), middle or spot
    fps: float = 30.0  # the recordings' frame rate (for apex_fill: spot)

    def __post_init__(self) -> None:
        check_apex_fill(self.apex_fill, self.fps)


class Casme3a:
    """Reads a CAS(ME)^3 Part A root into samples; ``warnings`` lists what was repaired."""

    dataset = "casme3a"

    def __init__(self, params: Casme3aParams):
        self.params = params
        self.warnings: list[str] = []
        self._recordings: dict[Path, ClipFrames] = {}

    def _frames(self, folder: Path) -> ClipFrames:
        """One listing per recording folder (a recording holds several micro-expressions)."""
        if folder not in self._recordings:
            self._recordings[folder] = ClipFrames(folder)
        return self._recordings[folder]

    def _sample(self, root: Path, row: ClipRow) -> Sample:
        folder = resolve_dir(root, self.params.frames_dir, row.subject, row.clip, self.params.modality)
        sample_id = f"{self.dataset}/{row.subject}/{row.clip}_{row.onset}"
        return build_sample(
            self.dataset, row, self._frames(folder), self.params.apex_fill, self.warnings, sample_id,
            self.params.fps
        )

    def samples(self, root: str | Path) -> list[Sample]:
        root = Path(root)
        self.warnings, self._recordings = [], {}
        path = root / self.params.coding_file
        if not path.is_file():
            raise InputError(f"CAS(ME)^3 annotation file {path} does not exist (set coding_file to its name)")
        table = read_table(path, sheet=self.params.sheet)
        rows = clip_rows(table, table.columns(COLUMNS, optional=("objective_class",)))
        return check_unique(samples_of_rows(rows, lambda row: self._sample(root, row), self.warnings), table.path)


@hookimpl
def mellm_dataset():
    yield PluginSpec(
        "casme3a", Casme3a, Casme3aParams, "CAS(ME)^3 Part A as distributed (ME label sheet + frames)"
    )
