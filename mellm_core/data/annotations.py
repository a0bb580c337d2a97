"""Reading datasets' annotation spreadsheets as distributed, and turning an annotated row into a ``Sample``.

Used by the dataset plugins: find the annotation file, locate its header row, resolve its columns (case,
spaces and underscores ignored), read each row's clip, frames and labels, and look the frames up on disk.
Every problem names the file (and row or column) and what was expected.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mellm_core.data.frameindex import APEX_FILLS, ClipFrames, fill_apex
from mellm_core.errors import InputError
from mellm_core.records import Sample
from mellm_core.text.labels import normalize_emotion, parse_aus

HEADER_SEARCH_ROWS = 100
_EMPTY = {"", "/", "-", "--", "n/a", "na", "nan", "none", "?"}


def find_annotation(root: str | Path, pattern: str, what: str) -> Path:
    """The one file in ``root`` matching the glob ``pattern``, or an error naming what was found."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{what} root {root} is not a folder")
    matches = sorted(p for p in root.glob(pattern) if p.is_file() and not p.name.startswith("~$"))
    if not matches:
        listing = ", ".join(sorted(p.name for p in root.iterdir())[:12]) or "nothing"
        raise InputError(f"no {what} annotation file matching '{pattern}' in {root} (found: {listing})")
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise InputError(
            f"{len(matches)} files match '{pattern}' in {root} ({names}); name one in the parameters"
        )
    return matches[0]


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "", name).lower()


def cell_text(value: Any) -> str:
    """A cell as trimmed text: empty for blank cells, "12" for a float 12.0."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass
class Table:
    """An annotation sheet: its rows under the header, and where the header sits in the file (1-based)."""

    path: Path
    rows: pd.DataFrame
    header_row: int

    def columns(self, wanted: Mapping[str, str], optional: tuple[str, ...] = ()) -> dict[str, str | None]:
        """Actual column names for ``{key: expected name}``; a missing required column is an error.

        Keys in ``optional`` whose expected name is empty or absent from the sheet resolve to None.
        """
        found = {_key(str(c)): str(c) for c in self.rows.columns}
        resolved: dict[str, str | None] = {}
        for key, name in wanted.items():
            actual = found.get(_key(name)) if name else None
            if actual is None and key not in optional:
                raise InputError(
                    f"{self.path} lacks column '{name}'"
                    f" (columns found: {', '.join(map(str, self.rows.columns))})"
                )
            resolved[key] = actual
        return resolved

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(spreadsheet row number, {column: value}) for each non-empty row."""
        for index, values in enumerate(self.rows.itertuples(index=False, name=None)):
            cells = dict(zip(self.rows.columns, values, strict=True))
            if any(cell_text(v) for v in values):
                yield self.header_row + 1 + index, cells


def _raw_frame(path: Path, sheet: str | int) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return pd.read_csv(path, header=None, dtype=str, sep=None, engine="python", encoding="utf-8-sig")
    if suffix not in (".xlsx", ".xlsm", ".xls"):
        raise InputError(f"annotation file {path} is not a spreadsheet (.xlsx, .xls) or a .csv file")
    with pd.ExcelFile(path) as book:
        if isinstance(sheet, str) and sheet and sheet not in book.sheet_names:
            raise InputError(f"{path} has no sheet '{sheet}' (sheets: {', '.join(book.sheet_names)})")
        return pd.read_excel(book, sheet_name=sheet if sheet != "" else 0, header=None)


def _header_index(raw: pd.DataFrame, path: Path, header_cell: str | None) -> int:
    if not header_cell:
        return 0
    for index in range(min(len(raw), HEADER_SEARCH_ROWS)):
        if any(_key(cell_text(v)) == _key(header_cell) for v in raw.iloc[index]):
            return index
    raise InputError(
        f"{path} has no header row with a '{header_cell}' cell in its first {HEADER_SEARCH_ROWS} rows"
    )


def read_table(path: str | Path, header_cell: str | None = None, sheet: str | int = 0) -> Table:
    """Read a .xlsx/.xls/.csv annotation; the header is the first row holding ``header_cell`` (else row 1)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"annotation file {path} does not exist")
    try:
        raw = _raw_frame(path, sheet)
    except InputError:
        raise
    except Exception as exc:  # openpyxl/xlrd/csv errors: name the file
        raise InputError(f"annotation file {path} could not be read: {exc}") from None
    index = _header_index(raw, path, header_cell)
    names = [cell_text(v) or f"Unnamed: {i}" for i, v in enumerate(raw.iloc[index])] if len(raw) else []
    rows = raw.iloc[index + 1 :].reset_index(drop=True)
    rows.columns = names
    return Table(path, rows, index + 1)


def cell_int(value: Any, where: str) -> int | None:
    """A frame number from a cell (46, 46.0, "46"); None for blanks and "/"; else an error at ``where``."""
    text = cell_text(value)
    if text.lower() in _EMPTY:
        return None
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number != number or not number.is_integer():
        raise InputError(f"{where}: '{text}' is not a frame number")
    return int(number)


@dataclass
class ClipRow:
    """One annotated clip as read from a sheet, before its frames are looked up."""

    subject: str
    clip: str
    onset: int
    apex: int | None
    offset: int | None
    aus_raw: str = ""
    emotion_raw: str = ""
    objective_class: str | None = None
    where: str = ""


# The standard keys a loader maps to its sheet's column names.
ROW_KEYS = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion", "objective_class")


def clip_rows(table: Table, columns: Mapping[str, str | None]) -> list[ClipRow]:
    """Rows of ``table`` as ``ClipRow`` using resolved ``columns`` (keys from ``ROW_KEYS``; None = absent)."""
    out = []
    for line, cells in table.records():
        where = f"{table.path} row {line}"

        def get(key: str, cells: dict = cells) -> Any:
            return cells[columns[key]] if columns.get(key) else None

        clip = cell_text(get("clip"))
        if not clip:
            continue
        onset = cell_int(get("onset"), f"{where} column '{columns['onset']}'")
        if onset is None:
            raise InputError(f"{where} ({clip}): the onset frame is empty")
        objective = cell_text(get("objective_class"))
        out.append(
            ClipRow(
                subject=cell_text(get("subject")),
                clip=clip,
                onset=onset,
                apex=cell_int(get("apex"), f"{where} column '{columns.get('apex')}'"),
                offset=cell_int(get("offset"), f"{where} column '{columns.get('offset')}'"),
                aus_raw=cell_text(get("aus")),
                emotion_raw=cell_text(get("emotion")),
                objective_class=objective or None,
                where=where,
            )
        )
    return out


def _checked_frames(row: ClipRow, frames: ClipFrames, apex_fill: str, warnings: list[str], fps: float | None = None
                    ) -> ClipRow:
    """``row`` with a usable apex and offset; each repair is described in ``warnings``."""
    name = f"{row.subject}/{row.clip}"
    if row.apex is not None and row.apex < 0:  # SAMM writes -1 for "not coded"
        row = dataclasses.replace(row, apex=None)
    if row.offset is not None and row.offset < row.onset:
        warnings.append(
            f"{row.where}: {name} offset {row.offset} precedes onset {row.onset}; offset left unknown"
        )
        row = dataclasses.replace(row, offset=None)
    if row.apex is None:
        apex = fill_apex(frames, row.onset, row.offset, apex_fill, fps)
        span = f"{row.onset}-{row.offset if row.offset is not None else frames.numbers[-1]}"
        how = APEX_FILLS[apex_fill]
        warnings.append(f"{row.where}: {name} has no apex frame; filled with frame {apex} ({how} in {span})")
        return dataclasses.replace(row, apex=apex)
    if row.apex < row.onset or (row.offset is not None and row.apex > row.offset):
        warnings.append(
            f"{row.where}: {name} apex {row.apex} lies outside onset-offset {row.onset}-{row.offset}"
        )
    return row


def build_sample(
    dataset: str,
    row: ClipRow,
    frames: ClipFrames,
    apex_fill: str,
    warnings: list[str],
    sample_id: str | None = None,
    fps: float | None = None,
) -> Sample:
    """A ``Sample`` for ``row`` with frame paths looked up in ``frames`` (apex filled when absent; ``fps``: the
    clips' frame rate, for ``apex_fill: spot``)."""
    row = _checked_frames(row, frames, apex_fill, warnings, fps)
    aus, sides = parse_aus(row.aus_raw)
    return Sample(
        sample_id=sample_id or f"{dataset}/{row.subject}/{row.clip}",
        onset_path=str(frames.path(row.onset, "onset")),
        apex_path=str(frames.path(row.apex, "apex")),  # type: ignore[arg-type]
        dataset=dataset,
        subject=row.subject,
        clip=row.clip,
        onset_frame=row.onset,
        apex_frame=row.apex,
        offset_frame=row.offset,
        aus=aus,
        au_sides=sides,
        aus_raw=row.aus_raw,
        emotion=normalize_emotion(row.emotion_raw),
        emotion_raw=row.emotion_raw,
        objective_class=row.objective_class,
    )


def check_unique(samples: list[Sample], source: str | Path) -> list[Sample]:
    """``samples`` unchanged, or an error naming the first sample id that occurs twice in ``source``."""
    seen: set[str] = set()
    for sample in samples:
        if sample.sample_id in seen:
            raise InputError(f"{source} lists clip '{sample.sample_id}' twice")
        seen.add(sample.sample_id)
    return samples


def samples_of_rows(rows: list[ClipRow], make: Callable[[ClipRow], Sample], warnings: list[str]) -> list[Sample]:
    """``make(row)`` for every row; a row whose frames are missing is skipped with a warning naming it.

    A whole dataset is not lost to one broken clip, but if no row yields a sample the first problem is raised
    (a wrong frames folder, say).
    """
    samples: list[Sample] = []
    first: InputError | None = None
    for row in rows:
        try:
            samples.append(make(row))
        except InputError as exc:
            first = first or exc
            warnings.append(f"skipped {row.subject}/{row.clip}: {exc}")
    if first is not None and not samples:
        raise first
    return samples
