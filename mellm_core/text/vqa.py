"""MEGC ME-VQA's questions and answers: the question types of the challenge's files, and the answer each type
takes from an analysis (an emotion, AUs and their sides), so that one analysis of a clip answers all its
questions the way the training files answer them.

Question types, as the public files write them: the coarse class ("What is the coarse expression class?":
positive, negative, surprise), the fine class ("What is the fine-grained expression class?"), the action units
("What is the action unit?" / "What are the action units?": FACS names joined by ", "), presence ("Is the action
unit lip corner puller shown on the face?": yes or no), side ("... located on the left or right face?": left or
right), and the combined question, answered "The action units present are: X, Y. Therefore, the fine-grained
expression class is E, and the coarse expression class is C."
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mellm_core.motion.facs import au_names, named_aus
from mellm_core.text.labels import get_protocol

COARSE = "What is the coarse expression class?"
FINE = "What is the fine-grained expression class?"
AUS_ONE, AUS_MANY = "What is the action unit?", "What are the action units?"
COMBINED_ONE = ("What is the action unit present, and based on it, what is the fine-grained expression and the "
                "coarse expression class?")
COMBINED_MANY = ("What are the action units present, and based on them, what is the fine-grained expression and "
                 "the coarse expression class?")
_PRESENCE = re.compile(r"^is the action unit (?P<au>.+?) shown on the face\?$")
_SIDE = re.compile(r"^is the action unit (?P<au>.+?) located on the left or right face\?$")


@dataclass
class Reading:
    """What an analysis of one clip states: its fine emotion, its AUs and the sides of one-sided AUs."""

    emotion: str | None
    aus: list[int] = field(default_factory=list)
    sides: dict[str, str] = field(default_factory=dict)  # AU number -> "L" or "R" (the subject's side)
    dataset: str = ""  # the source dataset, for its coarse-class grouping (MEGC's negative differs by dataset)


def question_type(question: str) -> tuple[str, int | None]:
    """(type, AU asked about): type is coarse, fine, aus, presence, side, combined or other."""
    q = " ".join(question.strip().lower().split())
    simple = {COARSE.lower(): "coarse", FINE.lower(): "fine", AUS_ONE.lower(): "aus", AUS_MANY.lower(): "aus",
              COMBINED_ONE.lower(): "combined", COMBINED_MANY.lower(): "combined"}
    if q in simple:
        return simple[q], None
    for kind, pattern in (("presence", _PRESENCE), ("side", _SIDE)):
        match = pattern.match(q)
        if match:
            named = named_aus(match["au"])
            return kind, named[0] if named else None
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


def answer(question: str, reading: Reading) -> str | None:
    """The answer ``reading`` gives to ``question``; None for a question of another type (ask the model)."""
    kind, au = question_type(question)
    if kind == "coarse":
        return coarse_class(reading.emotion, reading.dataset) or "others"
    if kind == "fine":
        return reading.emotion or "others"
    if kind == "aus":
        return au_names(reading.aus) or "none"
    if kind == "presence":
        return "yes" if au is not None and au in reading.aus else "no"
    if kind == "side":
        return {"L": "left", "R": "right"}.get(reading.sides.get(str(au), ""), "right")
    if kind == "combined":
        return combined_answer(reading)
    return None
