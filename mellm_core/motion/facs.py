"""FACS knowledge: action unit -> name, muscle, the regions it moves and how, and the emotions it signals.

Directions are image directions (y down) as in the MMC colour table. For a region on the subject's right
side (the image's left), "outward" is the image's left; ``expected_directions`` resolves that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Motion words -> image directions, for a region on the subject's right side (image left); mirrored for the left.
_RIGHT_SIDE = {
    "up": {"up", "up-left", "up-right"},
    "down": {"down", "down-left", "down-right"},
    "out": {"left"},
    "in": {"right"},
    "up-out": {"up", "up-left", "left"},
    "up-in": {"up", "up-right", "right"},
    "down-out": {"down", "down-left", "left"},
    "down-in": {"down", "down-right", "right"},
}
_MIRROR = {"left": "right", "right": "left", "up-left": "up-right", "up-right": "up-left",
           "down-left": "down-right", "down-right": "down-left", "up": "up", "down": "down"}

RIGHT, LEFT = "right ", "left "


@dataclass(frozen=True)
class ActionUnit:
    number: int
    name: str  # FACS name, e.g. "lip corner puller"
    muscle: str
    moves: dict[str, tuple[str, ...]]  # region stem (no side) -> motion words
    emotions: tuple[str, ...]  # emotions whose prototypes use it


def _au(number: int, name: str, muscle: str, moves: dict[str, tuple[str, ...]], *emotions: str) -> ActionUnit:
    return ActionUnit(number, name, muscle, moves, tuple(emotions))


ACTION_UNITS: dict[int, ActionUnit] = {au.number: au for au in (
    _au(1, "inner brow raiser", "frontalis, pars medialis", {"inner brow": ("up",)}, "sadness", "surprise", "fear"),
    _au(2, "outer brow raiser", "frontalis, pars lateralis", {"outer brow": ("up",)}, "surprise", "fear"),
    _au(4, "brow lowerer", "corrugator and depressor supercilii", {"inner brow": ("down", "down-in", "in")},
        "sadness", "fear", "anger"),
    _au(5, "upper lid raiser", "levator palpebrae superioris", {"upper eyelid": ("up",)}, "surprise", "fear", "anger"),
    _au(6, "cheek raiser", "orbicularis oculi, pars orbitalis", {"cheek": ("up", "up-out"), "lower eyelid": ("up",)},
        "happiness"),
    _au(7, "lid tightener", "orbicularis oculi, pars palpebralis", {"lower eyelid": ("up", "up-in")}, "anger"),
    _au(9, "nose wrinkler", "levator labii superioris alaeque nasi", {"nose wings": ("up",)}, "disgust"),
    _au(10, "upper lip raiser", "levator labii superioris", {"upper lip": ("up",)}, "disgust"),
    _au(12, "lip corner puller", "zygomaticus major", {"mouth corner": ("up-out", "up")}, "happiness", "contempt"),
    _au(14, "dimpler", "buccinator", {"mouth corner": ("out", "in")}, "contempt"),
    _au(15, "lip corner depressor", "depressor anguli oris", {"mouth corner": ("down", "down-out")}, "sadness"),
    _au(16, "lower lip depressor", "depressor labii inferioris", {"lower lip": ("down",)}, "disgust"),
    _au(17, "chin raiser", "mentalis", {"chin": ("up",), "lower lip": ("up",)}, "disgust", "sadness"),
    _au(20, "lip stretcher", "risorius", {"mouth corner": ("out", "down-out")}, "fear"),
    _au(23, "lip tightener", "orbicularis oris",
        {"upper lip": ("down",), "lower lip": ("up",), "mouth corner": ("in",)}, "anger"),
    _au(24, "lip pressor", "orbicularis oris", {"upper lip": ("down",), "lower lip": ("up",)}, "anger"),
    _au(25, "lips part", "depressor labii inferioris", {"lower lip": ("down",)}, "surprise", "fear"),
    _au(26, "jaw drop", "masseter (relaxed)", {"chin": ("down",), "lower lip": ("down",)}, "surprise", "fear"),
    _au(43, "eyes closed", "levator palpebrae superioris (relaxed)", {"upper eyelid": ("down",)}),
    _au(45, "blink", "orbicularis oculi", {"upper eyelid": ("down",)}),
)}

# EMFACS-style prototypes: the action units that together signal each emotion.
PROTOTYPES: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 10, 17),
    "contempt": (12, 14),
}
ONE_SIDED_PROTOTYPES = frozenset({"contempt"})  # emotions whose prototype acts on one side of the face


def region_stem(region: str) -> tuple[str, str | None]:
    """("mouth corner", "right") for "right mouth corner"; ("chin", None) for a midline region."""
    for side in ("right", "left"):
        if region.startswith(side + " "):
            return region[len(side) + 1 :], side
    return region, None


def expected_directions(au: int, region: str) -> set[str]:
    """Image directions in which ``region`` moves when ``au`` acts (empty when the AU does not move it)."""
    unit = ACTION_UNITS.get(au)
    if unit is None:
        return set()
    stem, side = region_stem(region)
    words = unit.moves.get(stem, ())
    directions = set().union(*(_RIGHT_SIDE[w] for w in words)) if words else set()
    if side == "left":
        directions = {_MIRROR[d] for d in directions}
    if side is None:  # midline regions move only up or down
        directions = {d for d in directions if d in ("up", "down")}
    return directions


def supported_aus(region: str, direction: str, aus: list[int]) -> list[int]:
    """The annotated AUs whose action moves ``region`` in ``direction``."""
    return [au for au in aus if direction in expected_directions(au, region)]


# Every FACS code's name, as MEGC's ME-VQA answers write them (lowercase), the head and eye codes included.
FACS_NAMES: dict[int, str] = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser", 6: "cheek raiser",
    7: "lid tightener", 8: "lips toward each other", 9: "nose wrinkler", 10: "upper lip raiser",
    11: "nasolabial deepener", 12: "lip corner puller", 13: "sharp lip puller", 14: "dimpler",
    15: "lip corner depressor", 16: "lower lip depressor", 17: "chin raiser", 18: "lip pucker", 19: "tongue show",
    20: "lip stretcher", 21: "neck tightener", 22: "lip funneler", 23: "lip tightener", 24: "lip pressor",
    25: "lips part", 26: "jaw drop", 27: "mouth stretch", 28: "lip suck", 29: "jaw thrust", 30: "jaw sideways",
    31: "jaw clencher", 32: "lip bite", 33: "cheek blow", 34: "cheek puff", 35: "cheek suck", 36: "tongue bulge",
    37: "lip wipe", 38: "nostril dilator", 39: "nostril compressor", 41: "lid droop", 42: "slit", 43: "eyes closed",
    44: "squint", 45: "blink", 46: "wink", 51: "head turn left", 52: "head turn right", 53: "head up",
    54: "head down", 55: "head tilt left", 56: "head tilt right", 57: "head forward", 58: "head back",
    61: "eyes turn left", 62: "eyes turn right", 63: "eyes up", 64: "eyes down",
}
# Shorter names in use for the head and eye codes ("tilt right", "eyes left"), read as the FACS codes.
_NAME_ALIASES = {"turn left": 51, "turn right": 52, "tilt left": 55, "tilt right": 56, "eyes left": 61,
                 "eyes right": 62, "cheek puffer": 13, "lips apart": 25}
_NAMED = sorted([*((name, au) for au, name in FACS_NAMES.items()), *_NAME_ALIASES.items()],
                key=lambda pair: -len(pair[0]))  # longest first: "head tilt right" before "tilt right"


def au_names(aus: list[int]) -> str:
    """AU numbers as their FACS names joined by ", " ("brow lowerer, lid tightener"); unknown codes as AU<n>."""
    return ", ".join(FACS_NAMES.get(au, f"AU{au}") for au in aus)


def named_aus(text: str) -> list[int]:
    """The AUs that ``text`` names by their FACS names (or AU<n> codes), in the order written, each once. Longer
    names are read first, and what they cover is not read again ("head tilt right" is 56, not also "tilt right")."""
    text = f" {text.lower()} "
    found: list[tuple[int, int]] = []
    for name, au in _NAMED:
        for match in re.finditer(rf"(?<![a-z]){re.escape(name)}(?![a-z])", text):
            found.append((match.start(), au))
        text = re.sub(rf"(?<![a-z]){re.escape(name)}(?![a-z])", lambda m: " " * len(m.group()), text)
    found += [(m.start(), int(m.group(1))) for m in re.finditer(r"\bau\s*0*([1-9]\d?)\b", text)]
    return list(dict.fromkeys(au for _, au in sorted(found)))
