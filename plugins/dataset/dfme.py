"""Dataset ``dfme``: DFME (Zhao et al., 2023; 656 participants) with its fixed train, TestA and TestB lists.

DFME's releases differ in file names and column headers, so both are parameters. The default expected layout::

    ROOT/train.csv  ROOT/TestA.csv  ROOT/TestB.csv            (.csv or .xlsx; one row per clip)
    ROOT/train/{clip}/*.jpg  ROOT/TestA/{clip}/...  ROOT/TestB/{clip}/...

with columns Subject, Filename, Onset, Apex, Offset, AU, Emotion. Filename and Onset are required; set any
other column to "" when a release lacks it (a missing apex is then filled with the frame of peak motion).
A list whose file is absent is skipped with a warning. Samples are identified ``dfme/{list}/{clip}``, so a
fixed split names DFME's own lists by pattern: ``instructions.split: {kind: fixed, lists: {train: "dfme/train/*",
test: "dfme/TestA/*"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from mellm_core.data.frameindex import ClipFrames, check_apex_fill
from mellm_core.errors import InputError
from mellm_core.records import Sample

OPTIONAL = ("subject", "apex", "offset", "aus", "emotion")


DEFAULT_LISTS = {"train": "train.*", "TestA": "TestA.*", "TestB": "TestB.*"}


@dataclass
class DfmeParams:
    lists: dict[str, str] = field(default_factory=dict)  # list name -> annotation file glob in the root
    # ({} means DEFAULT_LISTS; a given dict replaces it whole)
    frames: str = "{list}/{clip}"  # clip folder under the root; placeholders {list}, {subject}, {clip}
    sheet: str = ""  # sheet name for .xlsx lists ("" = the first sheet)
    subject_column: str = "Subject"  # "" when a release has none
    clip_column: str = "Filename"  # names the clip folder
    onset_column: str = "Onset"  # required
    apex_column: str = "Apex"  # "" = none: filled as apex_fill says
    offset_column: str = "Offset"  # "" = none: offset unknown
    au_column: str = "AU"  # "" = none
    emotion_column: str = "Emotion"  # "" = none (unlabelled test lists)
    apex_fill: str = "flow"  # for a missing apex: flow (peak motion from onset), middle or spot
    fps: float = 200.0  # the clips' frame rate (for apex_fill: spot; DFME's parts: 500, 300 and 200 fps)

    def __post_init__(self) -> None:
        check_apex_fill(self.apex_fill, self.fps)

    def columns(self) -> dict[str, str]:
        """Standard row keys -> the column names configured above."""
        return {
            "subject": self.subject_column,
            "clip": self.clip_column,
            "onset": self.onset_column,
            "apex": self.apex_column,
            "offset": self.offset_column,
            "aus": self.au_column,
            "emotion": self.emotion_column,
        }


class Dfme:
    """Reads DFME's lists into samples (ids ``dfme/{list}/{clip}``); ``warnings`` notes fixes."""

    dataset = "dfme"

    def __init__(self, params: DfmeParams):
        self.params = params
        self.warnings: list[str] = []

    def _sample(self, root: Path, name: str, row: ClipRow) -> Sample:
        try:
            relative = self.params.frames.format(list=name, subject=row.subject, clip=row.clip)
        except (KeyError, IndexError) as exc:
            raise InputError(
                f"dfme frames template '{self.params.frames}' has an unknown placeholder {exc}"
            ) from None
        sample_id = f"{self.dataset}/{name}/{row.clip}"
        return build_sample(
            self.dataset, row, ClipFrames(root / relative), self.params.apex_fill, self.warnings, sample_id,
            self.params.fps
        )

    def _read_list(self, root: Path, name: str, pattern: str) -> list[Sample]:
        table = read_table(find_annotation(root, pattern, f"DFME {name}"), sheet=self.params.sheet)
        rows = clip_rows(table, table.columns(self.params.columns(), optional=OPTIONAL))
        return samples_of_rows(rows, lambda row: self._sample(root, name, row), self.warnings)

    def samples(self, root: str | Path) -> list[Sample]:
        root = Path(root)
        self.warnings = []
        if not root.is_dir():
            raise InputError(f"DFME root {root} is not a folder")
        out: list[Sample] = []
        lists = self.params.lists or DEFAULT_LISTS
        found = [name for name, pattern in lists.items() if any(p.is_file() for p in root.glob(pattern))]
        for name, pattern in lists.items():
            if name in found:
                out.extend(self._read_list(root, name, pattern))
            else:
                self.warnings.append(f"DFME list '{name}' skipped: no file matches '{pattern}' in {root}")
        if not found:
            wanted = ", ".join(f"{k}: {v}" for k, v in lists.items())
            raise InputError(f"no DFME list file found in {root} (looked for {wanted})")
        return check_unique(out, root)


@hookimpl
def mellm_dataset():
    yield PluginSpec("dfme", Dfme, DfmeParams, "DFME with its train/TestA/TestB lists (configurable columns)")
