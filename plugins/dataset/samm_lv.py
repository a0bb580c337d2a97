"""Dataset ``samm-lv``: SAMM Long Videos, whole recordings with every annotated micro- and macro-movement, for
spotting (Yap et al., 2020; 200 fps).

Layout::

    ROOT/SAMM_LongVideos_V3_Release.xlsx      notes, then a header row: Subject, Filename (006_1_2: subject,
                                              recording, expression), Inducement Code, Onset, Apex, Offset,
                                              Duration, Type (Micro - 1/2 / Macro), Action Units, Notes
    ROOT/SAMM_Micro_FACS_Codes_v2.xlsx        (optional) the micro-movements' emotions, by Filename
    ROOT/SAMM_longvideos/006_1/006_1_0001.jpg one folder per recording (frames_dir)

``videos(root)`` gives each recording (``006_1``) with its intervals; an Apex of -1 (not annotated) becomes the
interval's middle frame, with a warning. ``samples(root)`` gives the micro-movements as clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mellm_core import PluginSpec, hookimpl
from mellm_core.data.annotations import cell_text, read_table
from mellm_core.data.frameindex import resolve_dir
from mellm_core.data.longvideos import LongVideoDataset, emotions_by, read_videos
from mellm_core.errors import InputError
from mellm_core.records import LongVideo

COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex", "offset": "Offset",
           "aus": "Action Units", "type": "Type"}
ME_COLUMNS = {"clip": "Filename", "emotion": "Estimated Emotion"}


@dataclass
class SammLvParams:
    coding_file: str = "SAMM_LongVideos_V3_Release.xlsx"  # the intervals' sheet in the root
    emotion_file: str = "SAMM_Micro_FACS_Codes_v2.xlsx"  # micro-movements' emotions ("" = none)
    frames_dir: str = "SAMM_longvideos"  # folder of the recordings' folders, relative to the root
    fps: float = 200.0  # the recordings' frame rate


class SammLv(LongVideoDataset):
    """Reads SAMM Long Videos; ``warnings`` lists the rows repaired or skipped."""

    dataset = "samm-lv"

    def videos(self, root: str | Path) -> list[LongVideo]:
        root, p = Path(root), self.params
        self.warnings = []
        path = root / p.coding_file
        if not path.is_file():
            raise InputError(f"SAMM Long Videos sheet {path} does not exist (set coding_file to its name)")
        table = read_table(path, header_cell="Filename")
        emotions: dict[tuple, str] = {}
        if p.emotion_file and (root / p.emotion_file).is_file():
            labels = read_table(root / p.emotion_file, header_cell="Filename")
            emotions = emotions_by(labels, labels.columns(ME_COLUMNS), lambda c: (cell_text(c["clip"]),))

        def recording(subject: str, filename: str) -> tuple[str, Path]:
            name = filename.rsplit("_", 1)[0] if filename.count("_") >= 2 else filename  # 006_1_2 -> 006_1
            return name, resolve_dir(root, p.frames_dir, name)

        def emotion(cells: dict) -> str | None:
            return emotions.get((cell_text(cells["clip"]),)) if cell_text(cells["type"]).lower().startswith(
                "micro") else None

        return read_videos(table, table.columns(COLUMNS), self.dataset, p.fps, recording, emotion, self.warnings)


@hookimpl
def mellm_dataset():
    yield PluginSpec("samm-lv", SammLv, SammLvParams,
                     "SAMM Long Videos: recordings with micro- and macro-movement intervals (spotting)")
