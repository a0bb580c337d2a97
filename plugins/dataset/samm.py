"""Dataset ``samm``: SAMM micro-movements as distributed (Davison et al., 2018; 32 subjects, 200 fps).

Layout::

    ROOT/SAMM_Micro_FACS_Codes_v2.xlsx
    ROOT/006/006_1_2/006_05562.jpg ...          (frames_dir selects a sub-folder, e.g. SAMM or SAMM_CROP)

The sheet opens with a block of notes; the header row (about 13 rows down) is found by its "Filename" cell.
Columns: Subject, Filename, Inducement Code, Onset Frame, Apex Frame, Offset Frame, Duration, Type,
Action Units, Estimated Emotion, Objective Classes, Notes. Subject 6 -> folder "006". AU strings carry
sides, intensities and alternatives ("R14A or 17A", "A1B+A2C"). An Apex Frame of -1 or "/" is filled like
CASME II's (peak motion between onset and offset); an Offset Frame of -1 is kept as unknown.
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
    "onset": "Onset Frame",
    "apex": "Apex Frame",
    "offset": "Offset Frame",
    "aus": "Action Units",
    "emotion": "Estimated Emotion",
    "objective_class": "Objective Classes",
}


@dataclass
class SammParams:
    coding_file: str = "SAMM_Micro_FACS_Codes_v2.xlsx"  # annotation sheet in the root
    frames_dir: str = (
        ""  # folder holding the {Subject}/{Filename}/ clips, relative to the root ("" = the root)
    )
    subject_digits: int = 3  # zero-padding of subject folder names (6 -> "006")
    apex_fill: str = "flow"  # for a missing apex: flow (peak motion from onset), middle or spot
    fps: float = 200.0  # the clips' frame rate (for apex_fill: spot)

    def __post_init__(self) -> None:
        check_apex_fill(self.apex_fill, self.fps)


class Samm:
    """Reads a SAMM root into samples; ``warnings`` lists what was repaired."""

    dataset = "samm"

    def __init__(self, params: SammParams):
        self.params = params
        self.warnings: list[str] = []

    def _sample(self, root: Path, row: ClipRow) -> Sample:
        if row.subject.isdigit():
            row.subject = row.subject.zfill(self.params.subject_digits)
        frames = ClipFrames(resolve_dir(root, self.params.frames_dir, row.subject, row.clip))
        return build_sample(self.dataset, row, frames, self.params.apex_fill, self.warnings,
                            fps=self.params.fps)

    def samples(self, root: str | Path) -> list[Sample]:
        root = Path(root)
        self.warnings = []
        path = root / self.params.coding_file
        if not path.is_file():
            raise InputError(f"SAMM annotation file {path} does not exist (set coding_file to its name)")
        table = read_table(path, header_cell="Filename")
        rows = clip_rows(table, table.columns(COLUMNS, optional=("objective_class",)))
        return check_unique(samples_of_rows(rows, lambda row: self._sample(root, row), self.warnings), table.path)


@hookimpl
def mellm_dataset():
    yield PluginSpec(
        "samm", Samm, SammParams, "SAMM as distributed (SAMM_Micro_FACS_Codes_v2.xlsx + frame folders)"
    )
