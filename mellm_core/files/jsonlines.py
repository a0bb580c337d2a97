"""JSON lines files as the project reads them everywhere: blank lines skipped, every other line one JSON object,
and a bad line an error naming the file and the line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mellm_core.errors import InputError
from mellm_core.files.storage import Location


def read_jsonl(path: str | Path, problem: Callable[[Any], str | None] = lambda _: None) -> list[dict[str, Any]]:
    """The objects of a JSONL file (blank lines skipped); a line that is no JSON object, or in which ``problem``
    finds one, raises InputError naming file and line."""
    try:
        lines = Location(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        found = problem(record) or (None if isinstance(record, dict) else "not a JSON object")
        if found:
            raise InputError(f"{path}:{number}: {found}")
        records.append(record)
    return records
