"""Read the emotion and the action units a model states in its generated text, in English or Chinese.

Rules (``parse_output``):

* The text is NFKC-normalized first, so full-width letters, digits and punctuation ("ＡＵ１２", "：") count as ASCII.
* The conclusion decides. It starts at the last conclusion marker: a heading line "Final conclusion" /
  "Conclusion" / "Final answer" / "Answer" / "最终结论" / "结论" / "最终答案" / "答案" (markdown ``#``, ``**``,
  bullets and "3." / "Step 3:" / "第三步：" prefixes allowed; a colon or the end of the line must follow), or
  anywhere in a line "final conclusion", "final answer", "in conclusion", "to conclude", "in summary", "最终结论",
  "最终答案", "综上所述", "综上", "总之". It runs to the end of the text.
* Within the conclusion, the last statement of the type wins: a key ("micro-expression", "expression", "emotion",
  "category", "class", "label", "answer", "prediction", "微表情", "表情", "情绪", "情感", "类别", "类型", "答案",
  "判断为", "识别为", "属于") followed in the same sentence by an emotion, e.g. "Micro-expression: happiness.",
  "The micro-expression is fear", "微表情类型为恐惧". Without such a statement, the last emotion in the conclusion;
  without a conclusion (or an emotion in it), the last emotion in the whole text. No emotion at all gives None.
* Negated and alternative emotions never count: after "not", "n't", "no", "never", "without", "rather than",
  "instead of", "other than", "unlike", "ruling out", "excluding", "unlikely", "no sign of", "lack of", ... or
  "不", "不是", "并非", "而非", "而不是", "不像", "没有", "未见", "排除", "不太可能", ... within a few words in the
  same clause; or followed by "is unlikely", "ruled out", "excluded", "is not", "可以排除", "可能性较低", ...
  Clauses end at punctuation (but not at the Chinese list comma "、") and at words such as "but", "so",
  "therefore", "which", "但", "而是", "所以", "因此".
* English words count only as whole words: "unhappy", "fearless", "surprisingly" name no emotion (a prefixed
  word is not read as its opposite either; the conclusion normally states the class plainly).
* Valence words (positive/negative, 积极/消极, 正面/负面) are MEGC classes: they count fully when ``labels``
  contains them, otherwise only when nothing else in the same scope names an emotion ("happy, a positive
  emotion" is happiness). "正面" counts only before 情/表/微 or punctuation ("正面人脸" is a frontal face).
* ``labels`` (the protocol's class names) extend the vocabulary: a class name found verbatim is that class
  ("repression", "others"; also 压抑/repressed, 其他/其它, 中性 for repression, others, neutral).
* AUs: "AU6", "AU06", "au 6", "AU-6", "AU12A", "R12", "L1+L2", "AU1+2+4", followed by anything that is not an
  ASCII letter or digit ("AU12（嘴角提升）"). Taken from the conclusion when it has any or says it has none
  ("AUs: none", "动作单元（AUs）：无"), else from the whole text; only 1 to 99, returned sorted and unique.
  Negated AUs ("no AU4") are not told apart.

Any ``str`` is accepted and nothing raises; every pattern runs in time linear in the text.
"""

from __future__ import annotations

import bisect
import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from mellm_core.motion.facs import named_aus
from mellm_core.text.labels import BASIC_EMOTIONS, EMOTION_SYNONYMS

# Normalized emotion -> the spellings that name it (English ones as whole words, any case): labels' vocabulary.
EMOTION_WORDS: dict[str, tuple[str, ...]] = {e: EMOTION_SYNONYMS[e] for e in BASIC_EMOTIONS}
# MEGC's composite classes; a fallback unless the protocol's labels include them.
VALENCE_WORDS: dict[str, tuple[str, ...]] = {e: EMOTION_SYNONYMS[e] for e in ("negative", "positive")}
# Words that name a class in a spreadsheet cell but are everyday words in an answer ("no other region moves").
_SENTENCE_WORDS = frozenset({"other"})
# Extra spellings of classes some datasets use, active only when ``labels`` names the class.
LABEL_WORDS: dict[str, tuple[str, ...]] = {
    e: tuple(w for w in EMOTION_SYNONYMS[e][1:] if w not in _SENTENCE_WORDS)
    for e in ("repression", "others", "neutral")
}
_SPECIAL = {"正面": r"正面(?=的?[情表微]|\W|$)"}

_MAX_GAP_CHARS = 80  # how far (in characters) a negation cue or a statement key reaches
_STATEMENT_CHARS = 100  # how far after its key a statement's emotion may stand

def _words(*alternatives: str) -> str:
    """Whole-word English alternatives (regex snippets starting with a lowercase letter), as one alternation.

    The left boundary is checked after the first letter, so each branch starts with a literal and the regex
    engine can skip ahead fast (a leading look-behind would make it try every position).
    """
    return "|".join(f"{a[0]}(?<![a-z]{a[0]}){a[1:]}(?![a-z])" for a in alternatives)


# Cues that negate an emotion following within ``window`` words (a CJK character counts as a word).
_PREFIX_CUES: tuple[tuple[int, re.Pattern[str]], ...] = tuple(
    (window, re.compile(pattern)) for window, pattern in (
        (0, r"不(?:太|很|够|怎么)?|毫无|无(?:明显的?)?"),
        (1, _words("no", "neither", "nor")),
        (2, _words("never", "without") + r"|而非|而不是|并无"),
        (4, _words("not", "cannot", "unlikely", "less likely", "hardly") + r"|n['’]t(?![a-z])"
            r"|不是|并非|并不是|不像|不属于|没有|未(?:见|发现|表现|出现|显示|体现|观察到)|不太可能|不可能"),
        (5, _words("rather than", "instead of", "other than", "as opposed to", "unlike", r"rul(?:e|es|ed|ing) out",
                   r"exclud(?:e|es|ed|ing)", "absence of", r"lack(?:s|ing)?(?: of)?",
                   r"no (?:clear |obvious )?(?:signs?|evidence|indications?|traces?|hints?) of") + r"|排除"),
    )
)
_MAX_WINDOW = max(window for window, _ in _PREFIX_CUES)
# Words that may stand between an emotion and a trailing negation ("fear can be ruled out").
_AUX = r"(?:is|was|are|were|can|could|may|might|should|would|must|be|been|also|seems?|appears?|looks?|probably|clearly)"
# A negation right after an emotion: "fear is unlikely", "anger is ruled out", "恐惧可以排除", "惊讶的可能性较低".
_POSTFIX_CUE = re.compile(
    r"[ \t*_\"'”’]*(?:"
    rf"(?:{_AUX}\s+)*(?:unlikely|less likely|improbable|ruled out|excluded|absent)(?![a-z])"
    rf"|(?:{_AUX}\s+)+not(?![a-z])|(?:is|was|are|were|does|do|did)n['’]t(?![a-z])"
    r"|(?:可以|可被|被|已|已经|基本上?|也|应该?)?(?:排除|不太可能|不成立|并不明显|不明显)"
    r"|的?可能性?(?:较|很|极|比较)?(?:低|小|不大))",
)
_CLAUSE_BREAK = re.compile(
    r"[,.;:!?()\[\]{}—–，。；：！？（）【】\n]|"
    + _words("but", "however", "yet", r"instead(?!\s+of)", r"rather(?!\s+than)", r"so(?<!not\sso)", "thus",
             "therefore", "hence", "which", "because", "since", "while", "whereas", "although", "though",
             "indicating", "suggesting", "meaning")
    + r"|但|而是|所以|因此|因而|表明|说明|提示|可见|然而|不过|反而",
)
_SENTENCE_BREAK = re.compile(r"[.!?;。！？；\n]")
_TOKEN = re.compile(r"[A-Za-z0-9'’]+|[^\x00-\x7f\W]")

# Searched in "\n" + text, so that every heading starts with a literal newline.
_CONCLUSION_HEADING = re.compile(
    r"\n[ \t>#*_\-•·]*"
    r"(?:(?:step[ \t]*)?\(?[0-9]{1,2}[.):]?[ \t]*[*_]*|第[一二三四五六七八九十0-9]{1,2}步:?[ \t]*[*_]*)?"
    r"(?:final[ \t]+conclusions?|conclusions?|final[ \t]+answer|answer|最终结论|结论|最终答案|答案)"
    r"[*_ \t]*(?::|$|(?=\n))",
)
_CONCLUSION_INLINE = re.compile(
    _words(r"final[ \t]+conclusions?", r"final[ \t]+answer", r"in[ \t]+conclusion", r"to[ \t]+conclude",
           r"in[ \t]+summary")
    + r"|最终结论|最终答案|综上所述|综上|总之",
)
_STATEMENT_KEY = re.compile(
    _words(r"micro[ \-]?expressions?", r"expressions?", r"emotions?", "category", "class", "label", "answer",
           "prediction")
    + r"|微表情|表情|情绪|情感|类别|类型|答案|判断为|识别为|属于",
)
# A conclusion that says it found no AUs ("AUs: none", "动作单元（AUs）：无"): its AU list is empty, not missing.
_NO_AUS = re.compile(
    r"(?:" + _words("aus", "au", "action units", "action unit") + r"|动作单元)"
    r"(?:[ \t]*\(aus?\))?[ \t]*:[ \t*_]*(?:none|no aus?|n/a|无|没有)(?![a-z])"
)
_AU_CODE = r"(?:[Aa](?<![A-Za-z0-9][Aa])[Uu][ \t\-]?|[LR](?<![A-Za-z0-9][LR]))[0-9]+[A-E]?(?![A-Za-z0-9])"
_AU_CHAIN = re.compile(
    rf"{_AU_CODE}(?:[ \t]*\+[ \t]*(?:[Aa][Uu][ \t\-]?|[LR])?[0-9]+[A-E]?(?![A-Za-z0-9]))*"
)
_DIGITS = re.compile(r"[0-9]+")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass
class Parsed:
    """What a generated text states: the emotion (None when it names none) and the AUs (sorted, unique, 1..99)."""

    emotion: str | None = None
    aus: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Vocabulary:
    """The compiled emotion pattern for one set of labels and what each matched (lower-cased) spelling means."""

    pattern: re.Pattern[str]
    meanings: dict[str, tuple[str, int]]


def _word_pattern(word: str) -> str:
    """A regex for the literal ``word``: an end that is an ASCII letter must not touch another one."""
    if word in _SPECIAL:
        return _SPECIAL[word]
    body = re.escape(word)
    if word[0] in string.ascii_lowercase:  # the look-behind goes after the first letter, as in ``_words``
        body = f"{word[0]}(?<![a-z]{word[0]}){re.escape(word[1:])}"
    return body + ("(?![a-z])" if word[-1] in string.ascii_lowercase else "")


@lru_cache(maxsize=64)
def _vocabulary(labels: tuple[str, ...]) -> _Vocabulary:
    """Spellings -> (emotion, tier) for these labels, compiled longest first."""
    normalized = {_lower(unicodedata.normalize("NFKC", label).strip()): label for label in labels}
    lowered = {low: label for low, label in normalized.items() if low}
    words: dict[str, tuple[str, int]] = {}
    for emotion, spellings in EMOTION_WORDS.items():
        words.update({w: (emotion, 0) for w in spellings})
    for emotion, spellings in VALENCE_WORDS.items():
        words.update({w: (emotion, 0 if emotion in lowered else 1) for w in spellings})
    for low, label in lowered.items():
        words.update({w: (label, 0) for w in (low, *LABEL_WORDS.get(low, ()))})
    pattern = "|".join(_word_pattern(w) for w in sorted(words, key=len, reverse=True))
    return _Vocabulary(re.compile(pattern), words)


def _label_key(labels: Sequence[str] | None) -> tuple[str, ...]:
    """The non-blank labels, sorted and unique (the vocabulary cache key)."""
    return tuple(sorted({label for label in labels or () if isinstance(label, str) and label.strip()}))


def _lower(text: str) -> str:
    """``text`` with ASCII letters lower-cased and nothing else changed (so positions stay the same)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _tokens(text: str) -> int:
    """How many words ``text`` holds (an ASCII word or number, or one CJK character, each count one)."""
    return len(_TOKEN.findall(text))


class _Document:
    """A normalized text with its emotion mentions, negation cues and clause breaks indexed by position."""

    def __init__(self, text: str, vocabulary: _Vocabulary):
        self.text = text = _lower(text)
        self.meanings = vocabulary.meanings
        self.mentions = list(vocabulary.pattern.finditer(text))
        self.starts = [m.start() for m in self.mentions]
        self.breaks = [m.start() for m in _CLAUSE_BREAK.finditer(text)]
        self.sentence_breaks = [m.start() for m in _SENTENCE_BREAK.finditer(text)]
        cues = sorted((m.end(), window) for window, cue in _PREFIX_CUES for m in cue.finditer(text))
        self.cue_ends = [end for end, _ in cues]
        self.cue_windows = [window for _, window in cues]

    def _broken(self, start: int, end: int) -> bool:
        """Whether a clause break starts in [start, end)."""
        i = bisect.bisect_left(self.breaks, start)
        return i < len(self.breaks) and self.breaks[i] < end

    def negated(self, mention: re.Match[str]) -> bool:
        """Whether a negation cue governs the emotion word ``mention`` (before it or just after it, same clause)."""
        start = mention.start()
        lo = bisect.bisect_left(self.cue_ends, start - _MAX_GAP_CHARS)
        hi = bisect.bisect_right(self.cue_ends, start)
        for i in range(hi - 1, lo - 1, -1):  # nearest cue first; farther ones only see more words and breaks
            end = self.cue_ends[i]
            if end == start:
                return True
            if self._broken(end, start):
                break
            words = _tokens(self.text[end:start])
            if words <= self.cue_windows[i]:
                return True
            if words > _MAX_WINDOW:
                break
        return _POSTFIX_CUE.match(self.text, mention.end(), mention.end() + _MAX_GAP_CHARS) is not None

    def _pick(self, mentions: list[re.Match[str]]) -> str | None:
        """The emotion of the first mention not negated, preferring full words over fallback valence words."""
        fallback = None
        for mention in mentions:
            if self.negated(mention):
                continue
            emotion, tier = self.meanings[mention.group()]
            if tier == 0:
                return emotion
            fallback = fallback or emotion
        return fallback

    def _between(self, start: int, end: int) -> list[re.Match[str]]:
        """Mentions starting in [start, end)."""
        return self.mentions[bisect.bisect_left(self.starts, start):bisect.bisect_left(self.starts, end)]

    def last(self, start: int) -> str | None:
        """The last emotion stated (not negated) from ``start`` on, preferring full words over valence words."""
        return self._pick(self._between(start, len(self.text))[::-1])

    def stated(self, start: int) -> str | None:
        """The emotion of the last type statement ("micro-expression: X", "微表情为X") from ``start`` on."""
        keys = list(_STATEMENT_KEY.finditer(self.text, start))
        for key in reversed(keys):
            i = bisect.bisect_left(self.sentence_breaks, key.end())
            stop = self.sentence_breaks[i] if i < len(self.sentence_breaks) else len(self.text)
            emotion = self._pick(self._between(key.end(), min(stop, key.end() + _STATEMENT_CHARS)))
            if emotion is not None:
                return emotion
        return None


def _conclusion_start(text: str) -> int | None:
    """Where the conclusion starts (just after its last marker), or None when the text has none."""
    ends = [m.end() - 1 for m in _CONCLUSION_HEADING.finditer("\n" + text)]
    ends += [m.end() for m in _CONCLUSION_INLINE.finditer(text)]
    return max(ends, default=None)


def find_aus(text: str) -> list[int]:
    """Sorted unique AU numbers (1..99) written as AU codes in ``text``: "AU6", "AU 06", "R12", "L1+L2", "AU1+2"."""
    found = set()
    for chain in _AU_CHAIN.finditer(text):
        for digits in _DIGITS.findall(chain.group()):
            digits = digits.lstrip("0")
            if 1 <= len(digits) <= 2:
                found.add(int(digits))
    return sorted(found)


def _normalize(text: object) -> str:
    """NFKC form with unified line ends; None becomes "" and other non-strings their ``str``."""
    text = "" if text is None else text if isinstance(text, str) else str(text)
    return unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")


_NAMED_LIST = re.compile(r"action units?\b[^:\n]*:([^.\n]*)", re.IGNORECASE)


def _listed_by_name(text: str) -> list[int]:
    """AUs listed by their FACS names after "action unit(s) ...:", as ME-VQA's answers list them ("The action
    units present are: brow lowerer, lid tightener."); names in other prose are not read as AUs."""
    return sorted({au for match in _NAMED_LIST.finditer(text) for au in named_aus(match.group(1))})


def parse_output(text: str, labels: Sequence[str] | None = None) -> Parsed:
    """The emotion and AUs a generated text concludes with (see the module docstring for the rules).

    Args:
        text: the model's output, any language mix, any length.
        labels: the protocol's class names; they extend the vocabulary (a class name found verbatim is that class)
            and make MEGC's positive/negative full words when listed. The emotion returned may still be outside
            them (scoring counts that as wrong).

    Example: ``parse_output("最终结论：\\nAU：AU6 + AU12。微表情：高兴。") == Parsed("happiness", [6, 12])``
    """
    text = _normalize(text)
    doc = _Document(text, _vocabulary(_label_key(labels)))
    start = _conclusion_start(doc.text)
    emotion = None if start is None else doc.stated(start) or doc.last(start)
    aus = [] if start is None else find_aus(text[start:])
    if not aus and (start is None or not _NO_AUS.search(doc.text, start)):
        aus = find_aus(text) or _listed_by_name(text)
    return Parsed(emotion or doc.last(0), aus)
