"""Dataset ``casme3-lv``: CAS(ME)^3 Part A's long recordings with every annotated micro- and macro-expression, for
spotting (Li et al., 2022; 30 fps).

Layout::

    ROOT/CAS(ME)3_part_A_v2.xls                       sheet "AU+Emotion": Subject, Filename, Onset, Apex, Offset,
                                                      AU, Expression type (Micro-expression / Macro-expression)
    ROOT/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx    (optional) the micro-expressions' emotions
    ROOT/spNO.1/a/color/1.jpg ...                     one recording per Subject/Filename (frames_dir: a sub-folder)

``videos(root)`` gives each recording with its intervals (frame numbers are the JPEGs' own); a micro-expression
takes its emotion from the ME label sheet when that sheet is there (matched by subject, recording and onset).
``samples(root)`` gives the micro-expressions as clips. Folder names are matched ignoring case ("spNo.1").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mellm_core import PluginSpec, hookimpl
from mellm_core.data.annotations import cell_int, cell_text, read_table
from mellm_core.data.frameindex import resolve_dir
from mellm_core.data.longvideos import LongVideoDataset, emotions_by, read_videos
from mellm_core.errors import InputError
from mellm_core.records import LongVideo

COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex", "offset": "Offset",
           "aus": "AU", "type": "Expression type"}
ME_COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "Onset", "emotion": "emotion"}


@dataclass
class Casme3LvParams:
    coding_file: str = "CAS(ME)3_part_A_v2.xls"  # the intervals' sheet in the root
    sheet: str = "AU+Emotion"  # its sheet of expressions ("" = the first)
    emotion_file: str = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"  # micro-expressions' emotions ("" = none)
    frames_dir: str = ""  # folder holding {Subject}/{Filename}/, relative to the root ("" = the root)
    modality: str = "color"  # sub-folder of each recording holding the frames (color or depth)
    fps: float = 30.0  # the recordings' frame rate


class Casme3Lv(LongVideoDataset):
    """Reads CAS(ME)^3 Part A's long recordings; ``warnings`` lists the rows repaired or skipped."""

    dataset = "casme3-lv"

    def videos(self, root: str | Path) -> list[LongVideo]:
        root, p = Path(root), self.params
        self.warnings = []
        path = root / p.coding_file
        if not path.is_file():
            raise InputError(f"CAS(ME)^3 interval sheet {path} does not exist (set coding_file to its name)")
        table = read_table(path, sheet=p.sheet)
        emotions: dict[tuple, str] = {}
        if p.emotion_file and (root / p.emotion_file).is_file():
            labels = read_table(root / p.emotion_file)

            def key(cells: dict) -> tuple:
                return (cell_text(cells["subject"]).lower(), cell_text(cells["clip"]).lower(),
                        cell_int(cells["onset"], str(labels.path)))

            emotions = emotions_by(labels, labels.columns(ME_COLUMNS), key)

        def recording(subject: str, filename: str) -> tuple[str, Path]:
            return filename, resolve_dir(root, p.frames_dir, subject, filename, p.modality)

        def emotion(cells: dict) -> str | None:
            return emotions.get((cell_text(cells["subject"]).lower(), cell_text(cells["clip"]).lower(),
                                 cell_int(cells["onset"], str(path))))

        return read_videos(table, table.columns(COLUMNS), self.dataset, p.fps, recording, emotion, self.warnings)


@hookimpl
def mellm_dataset():
    yield PluginSpec("casme3-lv", Casme3Lv, Casme3LvParams,
                     "CAS(ME)^3 Part A long recordings with micro- and macro-expression intervals (spotting)")
