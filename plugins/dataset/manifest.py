"""Dataset ``manifest``: a CSV of explicit onset/apex paths, for any data that has no loader of its own.

Columns: sample_id, onset_path, apex_path (required); subject, emotion, aus (optional). Relative paths are
relative to the CSV file's folder; a URI (``s3://bucket/clip/onset.jpg``) is read through pyarrow.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from mellm_core import PluginSpec, hookimpl
from mellm_core.errors import InputError
from mellm_core.files.storage import is_uri
from mellm_core.records import Sample
from mellm_core.text.labels import normalize_emotion, parse_aus

REQUIRED = ("sample_id", "onset_path", "apex_path")


@dataclass
class ManifestParams:
    file_name: str = "manifest.csv"  # CSV looked for when the root is a folder


class Manifest:
    """Reads the CSV at ``root`` (or ``root/<file_name>``) into samples."""

    def __init__(self, params: ManifestParams):
        self.params = params
        self.warnings: list[str] = []

    def samples(self, root: str | Path) -> list[Sample]:
        path = Path(root)
        if path.is_dir():
            path = path / self.params.file_name
        if not path.is_file():
            raise InputError(f"manifest {path} does not exist")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"manifest {path} is not UTF-8 text (save the CSV as UTF-8)") from None
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            found = ", ".join(columns) or "no header"
            raise InputError(f"manifest {path} lacks column '{missing[0]}' (found: {found})")
        self.warnings = []
        samples: list[Sample] = []
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            cells = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            samples.append(self._sample(path, line, cells, seen))
        return samples

    def _sample(self, path: Path, line: int, row: dict[str, str], seen: set[str]) -> Sample:
        where = f"manifest {path} line {line}"
        sample_id = row["sample_id"]
        if not sample_id:
            raise InputError(f"{where}: empty sample_id")
        if sample_id in seen:
            raise InputError(f"{where}: duplicate sample_id '{sample_id}'")
        seen.add(sample_id)
        for key in ("onset_path", "apex_path"):
            if not row[key]:
                raise InputError(f"{where}: empty {key} for sample '{sample_id}'")
        aus, sides = parse_aus(row.get("aus"))
        if row.get("aus") and not aus:
            self.warnings.append(f"{where}: aus '{row['aus']}' holds no action-unit code; read as none")
        base = path.resolve().parent  # relative paths are relative to the CSV; URIs (s3://...) stay as they are
        onset, apex = (row[k] if is_uri(row[k]) else str(base / row[k]) for k in ("onset_path", "apex_path"))
        return Sample(
            sample_id=sample_id,
            onset_path=onset,
            apex_path=apex,
            dataset="manifest",
            subject=row.get("subject", ""),
            aus=aus,
            au_sides=sides,
            aus_raw=row.get("aus", ""),
            emotion=normalize_emotion(row.get("emotion")),
            emotion_raw=row.get("emotion", ""),
        )


@hookimpl
def mellm_dataset():
    yield PluginSpec("manifest", Manifest, ManifestParams, "a CSV of explicit onset/apex paths with optional labels")
