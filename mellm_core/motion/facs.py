"""FACS knowledge: action unit -> name, muscle, the regions it moves and how, and the emotions it signals.

Directions are image directions (y down) as in the MMC colour table. For a region on the subject's right
side (the image's left), "outward" is the image's left; ``expected_directions`` resolves that.
"""

from __future__ import annotations

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
