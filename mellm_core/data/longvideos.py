"""Long videos and their annotated intervals, as the long-video dataset plugins read them from release sheets.

A sheet lists one expression per row (subject, recording, onset, apex, offset, AUs, micro or macro); the rows of
one recording make one ``LongVideo`` over its frames folder. Release sheets carry a few unusable rows (an onset or
offset of 0, an offset before the onset or beyond the folder's last frame, an apex of -1): each is repaired or
skipped with a warning naming its row, never silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mellm_core.data.annotations import Table, cell_int, cell_text
from mellm_core.data.frameindex import ClipFrames
from mellm_core.errors import InputError
from mellm_core.records import Interval, LongVideo, Sample
from mellm_core.text.labels import normalize_emotion, parse_aus


def kind_of(text: str) -> str | None:
    """``me`` or ``mae`` from a sheet's type cell ("Micro - 1/2", "Micro-expression", "Macro"); None otherwise."""
    low = text.lower()
    return "me" if low.startswith("micro") else "mae" if low.startswith("macro") else None


def sheet_interval(cells: Mapping[str, str | int | None], where: str, warnings: list[str]) -> Interval | None:
    """The interval of one row (``onset``, ``apex``, ``offset``, ``type``, ``aus``, ``emotion`` cells), or None with a
    warning when the row cannot be one."""
    kind = kind_of(str(cells.get("type") or ""))
    onset = cell_int(cells.get("onset"), f"{where} onset")
    apex = cell_int(cells.get("apex"), f"{where} apex")
    offset = cell_int(cells.get("offset"), f"{where} offset")
    if kind is None:
        warnings.append(f"{where}: type '{cells.get('type')}' is neither micro nor macro; row skipped")
        return None
    if not onset or onset < 1:
        warnings.append(f"{where}: onset {onset} is not a frame; row skipped")
        return None
    if not offset or offset < 1:
        if not apex or apex < onset:
            warnings.append(f"{where}: neither an offset nor an apex after onset {onset}; row skipped")
            return None
        warnings.append(f"{where}: offset {offset} is not a frame; the apex {apex} ends the interval")
        offset = apex
    if offset < onset:
        warnings.append(f"{where}: offset {offset} precedes onset {onset}; row skipped")
        return None
    if not apex or not onset <= apex <= offset:
        middle = (onset + offset) // 2
        warnings.append(f"{where}: apex {apex} is not within {onset}-{offset}; the middle frame {middle} stands in")
        apex = middle
    aus, _ = parse_aus(str(cells.get("aus") or ""))
    return Interval(onset, apex, offset, 1.0, kind, normalize_emotion(cells.get("emotion") or None), aus)


def read_videos(table: Table, columns: Mapping[str, str | None], dataset: str, fps: float,
                recording: Callable[[str, str], tuple[str, Path]], emotion: Callable[[dict], str | None],
                warnings: list[str]) -> list[LongVideo]:
    """The videos of a sheet: ``recording(subject, filename) -> (video name, frames folder)`` groups the rows,
    ``emotion(cells)`` names a row's emotion (None: not annotated). A recording whose folder is missing is
    skipped with a warning; with none found, the first missing folder is the error."""
    videos: dict[tuple[str, str], LongVideo] = {}
    missing: list[Path] = []
    lasts: dict[Path, int] = {}  # each frames folder's last frame number
    for line, raw in table.records():
        where = f"{table.path} row {line}"
        cells = {key: raw[name] if name else None for key, name in columns.items()}
        subject, filename = cell_text(cells["subject"]), cell_text(cells["clip"])
        if not filename:
            continue
        name, folder = recording(subject, filename)
        if not folder.is_dir():
            if folder not in missing:
                missing.append(folder)
                warnings.append(f"{where}: frames folder {folder} does not exist; its recording is skipped")
            continue
        interval = sheet_interval({**cells, "emotion": emotion(cells)}, where, warnings)
        if interval is None:
            continue
        last = lasts.setdefault(folder, max(ClipFrames(folder).numbers, default=0))
        if interval.offset > last:
            warnings.append(f"{where}: offset {interval.offset} lies beyond the last frame ({last}) of {folder}; "
                            "row skipped")
            continue
        key = (subject, name)
        if key not in videos:
            videos[key] = LongVideo(f"{dataset}/{subject}/{name}", str(folder), fps, dataset, subject)
        videos[key].intervals.append(interval)
    if not videos and missing:
        raise InputError(f"no recording of {table.path} was found: {missing[0]} does not exist (set frames_dir)")
    return list(videos.values())


def emotions_by(table: Table, columns: Mapping[str, str | None], key: Callable[[dict], tuple]) -> dict[tuple, str]:
    """``{key(cells): emotion}`` of a clip sheet (the short clips' sheet names the emotions a long-video sheet
    leaves out)."""
    out = {}
    for _, raw in table.records():
        cells = {k: raw[name] if name else None for k, name in columns.items()}
        if cell_text(cells["emotion"]):
            out[key(cells)] = cell_text(cells["emotion"])
    return out


class LongVideoDataset:
    """The base of the long-video dataset plugins: their parameters, ``warnings``, and ``samples(root)`` as the
    micro-expressions of ``videos(root)``."""

    dataset = ""

    def __init__(self, params: Any):
        self.params = params
        self.warnings: list[str] = []

    def videos(self, root: str | Path) -> list[LongVideo]:
        raise NotImplementedError

    def samples(self, root: str | Path) -> list[Sample]:
        return micro_samples(self.videos(root))


def micro_samples(videos: list[LongVideo]) -> list[Sample]:
    """The micro-expressions of long videos as clip samples (onset and apex frames), for training and tests."""
    samples = []
    for video in videos:
        frames = ClipFrames(Path(video.path))
        for i in video.intervals:
            if i.kind != "me":
                continue
            samples.append(Sample(f"{video.video_id}_{i.onset}", str(frames.path(i.onset, "onset")),
                                  str(frames.path(i.apex, "apex")), video.dataset, video.subject,
                                  Path(video.path).name, i.onset, i.apex, i.offset, list(i.aus),
                                  emotion=i.emotion, emotion_raw=i.emotion or ""))
    return samples
