"""MEGC ME-VQA's questions and answers: the question types of the challenge's files, and the answer each type
takes from an analysis (an emotion, AUs and their sides), so that one analysis of a clip answers all its
questions the way the training files answer them.

Question types, as the public files write them: the coarse class ("What is the coarse expression class?":
positive, negative, surprise), the fine class ("What is the fine-grained expression class?"), the action units
("What is the action unit?" / "What are the action units?": FACS names joined by ", "), presence ("Is the action
unit lip corner puller shown on the face?": yes or no), side ("... located on the left or right face?": left or
right), and the combined question, answered "The action units present are: X, Y. Therefore, the fine-grained
expression class is E, and the coarse expression class is C." Questions are matched whatever their case, spacing
and final punctuation; a presence or side question may name its AU by FACS name, "AU12" or "12".
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mellm_core.motion.facs import FACS_NAMES, au_names, named_aus
from mellm_core.text.labels import get_protocol

COARSE = "What is the coarse expression class?"
FINE = "What is the fine-grained expression class?"
AUS_ONE, AUS_MANY = "What is the action unit?", "What are the action units?"
COMBINED_ONE = ("What is the action unit present, and based on it, what is the fine-grained expression and the "
                "coarse expression class?")
COMBINED_MANY = ("What are the action units present, and based on them, what is the fine-grained expression and "
                 "the coarse expression class?")
_PRESENCE = re.compile(r"^is the action unit (?P<au>.+?) shown on the face$")
_SIDE = re.compile(r"^is the action unit (?P<au>.+?) located on the left or right face$")
_AU_CODE = re.compile(r"(?:au\s*)?0*(?P<au>[1-9]\d?)", re.IGNORECASE)  # "AU12", "au 12", "12"
_TRAILING = " ?.!"  # what a question may end with, or lack: "...class", "...class ?" and "...class?" match


@dataclass
class Reading:
    """What an analysis of one clip states: its fine emotion, its AUs and the sides of one-sided AUs."""

    emotion: str | None
    aus: list[int] = field(default_factory=list)
    sides: dict[str, str] = field(default_factory=dict)  # AU number -> "L" or "R" (the subject's side)
    dataset: str = ""  # the source dataset, for its coarse-class grouping (MEGC's negative differs by dataset)


def normalised_question(question: str) -> str:
    """A question as matching compares it: lowercased, spaces collapsed, final punctuation dropped, so that a
    question written without its "?" is still the same question."""
    return " ".join(question.lower().split()).rstrip(_TRAILING)


def asked_au(text: str) -> int | None:
    """The AU a presence or side question names: "AU12", "12" and "lip corner puller" are all AU 12."""
    code = _AU_CODE.fullmatch(text.strip())
    if code:
        return int(code["au"])
    named = named_aus(text)
    return named[0] if named else None


_SIMPLE = {normalised_question(q): kind for q, kind in ((COARSE, "coarse"), (FINE, "fine"), (AUS_ONE, "aus"),
                                                          (AUS_MANY, "aus"), (COMBINED_ONE, "combined"),
                                                          (COMBINED_MANY, "combined"))}


def question_type(question: str) -> tuple[str, int | None]:
    """(type, AU asked about): type is coarse, fine, aus, presence, side, combined or other."""
    q = normalised_question(question)
    if q in _SIMPLE:
        return _SIMPLE[q], None
    for kind, pattern in (("presence", _PRESENCE), ("side", _SIDE)):
        match = pattern.match(q)
        if match:
            return kind, asked_au(match["au"])
    return "other", None


def coarse_class(emotion: str | None, dataset: str = "") -> str | None:
    """MEGC's coarse class (positive, negative, surprise) of a fine emotion, by the source dataset's grouping."""
    return get_protocol("megc-3").label(emotion, dataset) if emotion else None


def combined_answer(reading: Reading) -> str:
    """The combined question's answer, in the training files' wording."""
    names = au_names(reading.aus) or "none"
    head = ("The action unit present is" if len(reading.aus) == 1 else "The action units present are")
    return (f"{head}: {names}. Therefore, the fine-grained expression class is {reading.emotion or 'others'}, "
            f"and the coarse expression class is {coarse_class(reading.emotion, reading.dataset) or 'others'}.")


_ANSWERS: dict[str, Callable[[Reading, int | None], str]] = {
    "coarse": lambda r, au: coarse_class(r.emotion, r.dataset) or "others",
    "fine": lambda r, au: r.emotion or "others",
    "aus": lambda r, au: au_names(r.aus) or "none",
    "presence": lambda r, au: "yes" if au is not None and au in r.aus else "no",
    "side": lambda r, au: {"L": "left", "R": "right"}.get(r.sides.get(str(au), ""), "right"),
    "combined": lambda r, au: combined_answer(r),
}


def answer(question: str, reading: Reading) -> str | None:
    """The answer ``reading`` gives to ``question``; None for a question of another type (ask the model)."""
    kind, au = question_type(question)
    rule = _ANSWERS.get(kind)
    return rule(reading, au) if rule else None


def presence_question(au: int) -> str:
    """The presence question about ``au``, naming it as the files do ("Is the action unit brow lowerer ...")."""
    return f"Is the action unit {au_names([au])} shown on the face?"


def side_question(au: int) -> str:
    """The side question about ``au``, naming it as the files do."""
    return f"Is the action unit {au_names([au])} located on the left or right face?"


def training_questions(reading: Reading, rng: random.Random) -> list[tuple[str, str]]:
    """Every question the challenge's training files ask about a clip, in their order, with ``reading``'s answers:
    the coarse and the fine class; then, for a clip with AUs, the AUs, the side of each AU whose side is known,
    whether one of its AUs is shown ("yes") and one FACS AU it lacks ("no"), both drawn with ``rng``, and the
    combined question. A clip without AUs (its dataset codes none) is asked the two class questions only."""
    asked: list[tuple[str, str, int | None]] = [(COARSE, "coarse", None), (FINE, "fine", None)]
    aus = sorted(reading.aus)
    if aus:
        one = len(aus) == 1
        shown, lacking = rng.choice(aus), rng.choice([au for au in sorted(FACS_NAMES) if au not in aus])
        asked.append((AUS_ONE if one else AUS_MANY, "aus", None))
        asked += [(side_question(au), "side", au) for au in aus if reading.sides.get(str(au)) in ("L", "R")]
        asked += [(presence_question(shown), "presence", shown), (presence_question(lacking), "presence", lacking),
                  (COMBINED_ONE if one else COMBINED_MANY, "combined", None)]
    return [(question, _ANSWERS[kind](reading, au)) for question, kind, au in asked]
