"""Label parsing shared by dataset plugins: FACS action-unit strings and emotion names."""

from __future__ import annotations

import re

_AU_TOKEN = re.compile(r"^(?P<side>[LRBT])?\s*(?:AU)?\s*(?P<num>\d{1,3})(?P<intensity>[A-E])?$", re.IGNORECASE)
_SPLIT = re.compile(r"\s*(?:\+|,|;|/|\bor\b|\band\b|\s)\s*", re.IGNORECASE)


def parse_aus(text: object) -> tuple[list[int], dict[str, str]]:
    """FACS codes such as "4+7", "R12", "1+2+L12", "4+9+ R10", "AU6, AU12", "R14A or 15" -> (sorted AUs, sides).

    Sides are "L" or "R" by AU number (as a string key, so the record stays JSON-friendly); tokens that are
    not AU codes (e.g. "?", "N/A") are ignored.
    """
    if text is None or (isinstance(text, float) and text != text):
        return [], {}
    aus: set[int] = set()
    sides: dict[str, str] = {}
    for token in _SPLIT.split(str(text).strip()):
        match = _AU_TOKEN.match(token.strip())
        if not match:
            continue
        number = int(match["num"])
        if not 1 <= number <= 99:
            continue
        aus.add(number)
        side = (match["side"] or "").upper()
        if side in ("L", "R"):
            sides[str(number)] = side
    return sorted(aus), sides


def normalize_emotion(text: object) -> str | None:
    """Lower-case, trimmed emotion name (None for empty)."""
    if text is None or (isinstance(text, float) and text != text):
        return None
    value = str(text).strip().lower()
    return value or None
