"""Label parsing and label protocols shared by dataset plugins and stages: FACS action units, emotion names,
and the class sets the field evaluates on (``dfme-7``, ``casme2-5``, ``casme3-6``, ``megc-3``, ``all``).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mellm_core.errors import MellmError
from mellm_core.records import Sample

# An AU token: optional side (L/R; B, T and U are accepted and carry no side), an optional "AU" or "A"
# prefix, the AU number and an optional FACS intensity letter: "R12", "AU6", "A1B", "L2A", "14".
_AU_TOKEN = re.compile(
    r"^(?P<side>[LRBTU])?\s*(?:AU|A)?\s*(?P<num>\d{1,3})(?P<intensity>[A-E])?$", re.IGNORECASE
)
_SPLIT = re.compile(r"\s*(?:\+|,|;|/|&|\bor\b|\band\b|\s)\s*", re.IGNORECASE)
_NOISE = re.compile(r"[()\[\]{}?*!]")


def _au_occurrences(text: str) -> list[tuple[int, str]]:
    """(AU number, side) for every AU token in ``text``; side is "L", "R" or "" (both or unspecified)."""
    found = []
    for token in _SPLIT.split(_NOISE.sub(" ", text).strip()):
        match = _AU_TOKEN.match(token.strip())
        if match and 1 <= int(match["num"]) <= 99:
            side = (match["side"] or "").upper()
            found.append((int(match["num"]), side if side in ("L", "R") else ""))
    return found


def parse_aus(text: object) -> tuple[list[int], dict[str, str]]:
    """FACS codes ("4+7", "R12", "1+2+L12", "4+9+ R10", "AU6, AU12", "R14A or 15") -> (sorted AUs, sides).

    Sides are "L" or "R" by AU number (as a string key, so the record stays JSON-friendly), given only when
    every mention of that AU names the same side ("L12+R12" is bilateral: no side). Tokens that are not AU
    codes (e.g. "?", "N/A") are ignored.
    """
    if text is None or (isinstance(text, float) and text != text):
        return [], {}
    if isinstance(text, float) and text.is_integer():  # a spreadsheet cell holding one AU, read as 12.0
        text = int(text)
    seen: dict[int, set[str]] = {}
    for number, side in _au_occurrences(str(text)):
        seen.setdefault(number, set()).add(side)
    sides = {str(n): s.pop() for n, s in seen.items() if len(s) == 1 and s != {""}}
    return sorted(seen), sides


def format_aus(aus: Iterable[int], sides: Mapping[str, str] | None = None) -> str:
    """The inverse of ``parse_aus``: sorted AUs joined by "+", unilateral ones prefixed ("1+2+L12")."""
    sides = sides or {}
    return "+".join(f"{sides.get(str(au), '')}{au}" for au in sorted(set(aus)))


# The one emotion vocabulary: normalized name -> its spellings (English, then Chinese), as the datasets'
# spreadsheets and the models' answers write them (``parse`` reads answers with it).
BASIC_EMOTIONS = ("happiness", "sadness", "fear", "surprise", "disgust", "contempt", "anger")
EMOTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "happiness": ("happiness", "happy", "joy", "joyful", "happily", "高兴", "快乐", "开心", "喜悦", "愉快"),
    "sadness": ("sadness", "sad", "悲伤", "伤心", "难过"),
    "surprise": ("surprise", "surprised", "惊讶", "吃惊", "惊奇"),
    "fear": ("fear", "fearful", "afraid", "scared", "恐惧", "害怕"),
    "anger": ("anger", "angry", "愤怒", "生气"),
    "disgust": ("disgust", "disgusted", "disgusting", "厌恶", "反感", "恶心"),
    "contempt": ("contempt", "contemptuous", "轻蔑", "蔑视"),
    "repression": ("repression", "repressed", "压抑"),
    "others": ("others", "other", "其他", "其它"),
    "positive": ("positive", "积极", "正性", "正面"),
    "negative": ("negative", "消极", "负性", "负面"),
    "neutral": ("neutral", "中性"),
}
_EMOTION_LOOKUP = {spelling: name for name, spellings in EMOTION_SYNONYMS.items() for spelling in spellings}


def normalize_emotion(text: object) -> str | None:
    """Normalized emotion ("Happiness", "happy", "高兴" -> "happiness"); unknown names just lower-cased."""
    if text is None or (isinstance(text, float) and text != text):
        return None
    value = " ".join(str(text).replace("_", " ").split()).strip(" .").lower()
    if not value:
        return None
    return _EMOTION_LOOKUP.get(value, value)


@dataclass(frozen=True)
class LabelProtocol:
    """A label protocol: which emotions count, under which class name, optionally per source dataset.

    ``classes`` is the class order metrics use (empty for ``all``, which keeps every sample as labelled);
    ``groups`` maps each class to the normalized emotions it takes; ``by_dataset`` overrides ``groups`` for
    samples of one dataset (MEGC 2019 folds different emotions into "negative" for CASME II and SAMM).
    """

    name: str
    description: str
    classes: tuple[str, ...] = ()
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    by_dataset: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)

    def label(self, emotion: str | None, dataset: str = "") -> str | None:
        """The class of a sample with this (normalized) emotion, or None when the protocol leaves it out."""
        if not self.classes:
            return emotion
        for cls, emotions in self.by_dataset.get(dataset, self.groups).items():
            if emotion in emotions:
                return cls
        return None


def _identity(*classes: str) -> dict[str, frozenset[str]]:
    return {cls: frozenset({cls}) for cls in classes}


_MEGC_POSITIVE = frozenset({"happiness", "positive"})
_MEGC_SURPRISE = frozenset({"surprise"})


def _megc(negative: Iterable[str]) -> dict[str, frozenset[str]]:
    return {
        "negative": frozenset(negative) | {"negative"},
        "positive": _MEGC_POSITIVE,
        "surprise": _MEGC_SURPRISE,
    }


DFME_7 = ("happiness", "disgust", "contempt", "surprise", "fear", "anger", "sadness")
CASME2_5 = ("happiness", "sadness", "fear", "surprise", "disgust")
CASME3_6 = CASME2_5 + ("anger",)
MEGC_3 = ("negative", "positive", "surprise")

PROTOCOLS: dict[str, LabelProtocol] = {
    "dfme-7": LabelProtocol(
        "dfme-7", "DFME's seven basic emotions (MELLM's training classes)", DFME_7, _identity(*DFME_7)
    ),
    "casme2-5": LabelProtocol("casme2-5", "MELLM's zero-shot CASME II classes", CASME2_5, _identity(*CASME2_5)),
    "casme3-6": LabelProtocol("casme3-6", "MELLM's zero-shot CAS(ME)^3 classes", CASME3_6, _identity(*CASME3_6)),
    "megc-3": LabelProtocol(
        "megc-3",
        "MEGC 2019 composite: negative, positive, surprise (CASME II negative = disgust + repression;"
        " SAMM negative = anger, contempt, disgust, fear, sadness; SMIC as labelled)",
        MEGC_3,
        _megc(("anger", "contempt", "disgust", "fear", "sadness", "repression")),
        {
            "casme2": _megc(("disgust", "repression")),
            "samm": _megc(("anger", "contempt", "disgust", "fear", "sadness")),
            "smic": _megc(()),
        },
    ),
    "all": LabelProtocol("all", "every sample, labelled as its dataset labels it"),
}


def get_protocol(name: str | LabelProtocol) -> LabelProtocol:
    """The protocol called ``name`` (a LabelProtocol passes through), or an error listing the choices."""
    if isinstance(name, LabelProtocol):
        return name
    if name not in PROTOCOLS:
        raise MellmError(f"unknown label protocol '{name}' (choose one of: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]


def apply_protocol(
    samples: Iterable[Sample], protocol: str | LabelProtocol
) -> tuple[list[Sample], dict[str, int]]:
    """Samples inside the protocol, their ``emotion`` set to the protocol's class, and the excluded counts.

    Excluded counts are keyed by normalized emotion ("(none)" for unlabelled samples), most frequent first.
    """
    chosen = get_protocol(protocol)
    kept: list[Sample] = []
    excluded: Counter[str] = Counter()
    for sample in samples:
        cls = chosen.label(sample.emotion, sample.dataset)
        if chosen.classes and cls is None:
            excluded[sample.emotion or "(none)"] += 1
        else:
            kept.append(sample if cls == sample.emotion else dataclasses.replace(sample, emotion=cls))
    return kept, dict(excluded.most_common())
