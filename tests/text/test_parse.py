"""Output parsing: conclusions over reasoning, negations, markdown, both languages, AU forms, hostile input."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mellm_core.text.parse import EMOTION_WORDS, VALENCE_WORDS, Parsed, find_aus, parse_output

EN_TEMPLATE = "Final conclusion:\nAUs: AU6 + AU12. Micro-expression: happiness."
ZH_TEMPLATE = "最终结论：\nAU：AU6 + AU12。微表情：高兴。"


@pytest.mark.parametrize(("text", "emotion"), [
    # our own templates and MER-only answers
    (EN_TEMPLATE, "happiness"),
    (ZH_TEMPLATE, "happiness"),
    ("happiness", "happiness"),
    ("  FEAR.  ", "fear"),
    ("高兴", "happiness"),
    ("愤怒", "anger"),
    # the conclusion beats the reasoning
    ("AU4 and AU7 could suggest anger or sadness.\n\nFinal conclusion:\nAUs: AU1 + AU2 + AU5. Micro-expression: "
     "surprise.", "surprise"),
    ("The brow raise looks like surprise at first.\n**Final conclusion**: the micro-expression is fear.", "fear"),
    ("眉毛上扬像是惊讶。\n### 结论\n- AU：AU4、AU7\n- 微表情类型为厌恶（而非愤怒）", "disgust"),
    ("Step 1: AU12 suggests happiness.\nStep 3: Conclusion\nThe subject shows contempt.", "contempt"),
    ("Reasoning mentions happiness.\n3. **Conclusion**: sadness", "sadness"),
    ("In conclusion, the expression is disgust.", "disgust"),
    ("初步看像高兴。综上所述，微表情为轻蔑。", "contempt"),
    # within the conclusion the type statement beats later mentions
    ("Final conclusion: Micro-expression: fear. This differs from surprise, which shares AU1 and AU2.", "fear"),
    ("最终结论：微表情：悲伤。注意它与惊讶不同。", "sadness"),
    ("Conclusion: AU4 and AU7 are typical of anger, but the micro-expression is disgust, unlike happiness.",
     "disgust"),
    # markdown and full-width forms
    ("**Final conclusion**\n- **AUs**: AU6, AU12\n- **Micro-expression**: **Happiness**", "happiness"),
    ("## FINAL CONCLUSION\n* Emotion category: `Anger`", "anger"),
    ("最终结论：ＡＵ６＋ＡＵ１２，微表情：高兴", "happiness"),
    ("The micro-expression is fear", "fear"),
    ("微表情类型为恐惧", "fear"),
    ("Answer: Surprised", "surprise"),
    # negations and alternatives (English)
    ("Conclusion: This is not fear but surprise.", "surprise"),
    ("Conclusion: disgust rather than anger", "disgust"),
    ("Conclusion: anger, ruling out disgust", "anger"),
    ("Conclusion: Instead of happiness, the subject shows contempt.", "contempt"),
    ("Conclusion: fear is unlikely; the expression is surprise", "surprise"),
    ("Conclusion: fear can be ruled out; it is surprise", "surprise"),
    ("Conclusion: no sign of happiness. Sadness.", "sadness"),
    ("Conclusion: the micro-expression is sadness, not fear", "sadness"),
    ("Conclusion: it is unlikely to be anger; disgust", "disgust"),
    ("The micro-expression is happiness as AU4 is not active", "happiness"),
    ("It's not sadness. Happy.", "happiness"),
    # negations and alternatives (Chinese)
    ("结论：不是恐惧，而是惊讶。", "surprise"),
    ("结论：是厌恶而非愤怒", "disgust"),
    ("结论：并非高兴，而是轻蔑", "contempt"),
    ("结论：排除了愤怒和恐惧，判断为悲伤", "sadness"),
    ("结论：微表情是厌恶，而不是生气", "disgust"),
    ("恐惧的可能性较低，更可能是惊讶", "surprise"),
    ("结论：愤怒可以排除，属于厌恶", "disgust"),
    # no conclusion: the last emotion stated
    ("AU12 suggests happiness, but AU4 suggests sadness.", "sadness"),
    ("看起来先是惊讶，后来是害怕", "fear"),
    # MEGC classes and valence words
    ("Final conclusion: the micro-expression is negative.", "negative"),
    ("微表情：消极", "negative"),
    ("正面情绪", "positive"),
    ("The subject looks happy, which is a positive emotion.", "happiness"),
])
def test_emotion_table(text, emotion):
    assert parse_output(text).emotion == emotion


@pytest.mark.parametrize("text", [
    "", "   ", "AU6 only", "The subject seems unhappy", "fearless and joyless", "surprisingly calm",
    "Conclusion: not fear", "结论：不是恐惧", "It isn't anger", "正面人脸，眉毛平直", "\x00\x1b[31m\ud800",
    "There's no surprise here", "Neither fear nor anger.",
])
def test_no_emotion_gives_none(text):
    assert parse_output(text).emotion is None


def test_labels_extend_the_vocabulary_and_promote_valence_words():
    assert parse_output("Micro-expression: repression").emotion is None
    assert parse_output("Micro-expression: repression", labels=["repression", "others"]).emotion == "repression"
    assert parse_output("结论：压抑", labels=["repression"]).emotion == "repression"
    assert parse_output("Conclusion: Others", labels=["Others"]).emotion == "Others"
    # without MEGC labels a valence word yields to a basic emotion; with them it counts in full
    text = "The subject looks happy, which is a positive emotion."
    assert parse_output(text, labels=["negative", "positive", "surprise"]).emotion == "positive"
    # an emotion outside the labels is still returned (scoring counts it wrong)
    assert parse_output("Conclusion: anger", labels=["happiness", "surprise"]).emotion == "anger"


@pytest.mark.parametrize(("text", "aus"), [
    ("AU6", [6]), ("AU06", [6]), ("AU 6", [6]), ("au-6", [6]), ("AU12（嘴角提升）", [12]), ("R12", [12]),
    ("L1+L2", [1, 2]), ("AU1+2+4", [1, 2, 4]), ("AU6 + AU12", [6, 12]), ("AU12A, AU14B", [12, 14]),
    ("AU4、AU7和AU9", [4, 7, 9]), ("AU12 AU6 AU12", [6, 12]), ("AU0 AU100 AU99 AU1", [1, 99]),
    ("AU99999999999999999999", []), ("AU" + "0" * 5000 + "7", [7]), ("AU" + "9" * 5000, []),
    ("AUC 0.93, R2D2, CAU5, FAU6, AU6x, LR5", []),
])
def test_au_forms(text, aus):
    assert find_aus(text) == aus
    assert parse_output(text).aus == aus


def test_aus_come_from_the_conclusion_when_it_lists_them():
    reasoning = "Motion near the brows suggests AU4 and AU7; the mouth shows AU15.\n"
    assert parse_output(reasoning + EN_TEMPLATE).aus == [6, 12]
    assert parse_output(reasoning + "Final conclusion: disgust.").aus == [4, 7, 15]
    assert parse_output(ZH_TEMPLATE) == Parsed("happiness", [6, 12])
    # a conclusion that says "none" has no AUs, whatever the reasoning mentioned
    assert parse_output(reasoning + "Final conclusion:\nAUs: none. Micro-expression: sadness.").aus == []
    assert parse_output("推理：AU4。\n最终结论：\n动作单元（AUs）：无。微表情类型：悲伤。") == Parsed("sadness", [])


def test_huge_inputs_take_bounded_time():
    mb = 1_000_000
    texts = [  # adversarial shapes: dense cues and mentions, a 1 MB run of markdown before a heading
        ("not fear, 不是恐惧 emotion: AU12+ Conclusion: ") * (mb // 40),
        "不是恐惧" * (mb // 4),
        "*" * mb + "\nconclusion",
    ]
    for text in texts:
        started = time.perf_counter()
        parsed = parse_output(text)
        assert time.perf_counter() - started < 8, text[:40]
        assert all(1 <= au <= 99 for au in parsed.aus)


KNOWN = set(EMOTION_WORDS) | set(VALENCE_WORDS)
FRAGMENTS = st.sampled_from([
    "AU", "AU6", "AU 12", "R", "L1+", "+", "AU99999999999999999999", "9" * 50, "0", "AU0", "AU-", "(",
    "Final conclusion:", "结论：", "\n", "**", "###", "not ", "不是", "而非", "rather than ", "Micro-expression:",
    "微表情：", "happiness", "恐惧", "正面", "positive", "，", "。", "\r", "\x00", "\u2028", "\ufdfa", "İ", "ß",
])
NOISY_TEXT = st.lists(st.one_of(st.text(max_size=20), FRAGMENTS), max_size=40).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=NOISY_TEXT, labels=st.one_of(st.none(), st.lists(st.text(max_size=8), max_size=4)))
def test_any_text_parses_without_raising(text, labels):
    parsed = parse_output(text, labels)
    assert parsed.emotion is None or parsed.emotion in KNOWN or parsed.emotion in (labels or [])
    assert parsed.aus == sorted(set(parsed.aus)) and all(1 <= au <= 99 for au in parsed.aus)


@settings(max_examples=100, deadline=None)
@given(noise=NOISY_TEXT, emotion=st.sampled_from(sorted(EMOTION_WORDS)), aus=st.sets(st.integers(1, 99), max_size=4),
       zh=st.booleans())
def test_an_appended_template_conclusion_always_wins(noise, emotion, aus, zh):
    codes = " + ".join(f"AU{au}" for au in sorted(aus))
    word = EMOTION_WORDS[emotion][-2 if zh else 0]
    tail = (f"\n最终结论：\nAU：{codes}。微表情：{word}。" if zh
            else f"\nFinal conclusion:\nAUs: {codes}. Micro-expression: {word}.")
    parsed = parse_output(noise + tail)
    assert parsed.emotion == emotion
    if aus:
        assert parsed.aus == sorted(aus)


def test_aus_listed_by_their_facs_names_are_read_and_names_in_prose_are_not():
    """ME-VQA's answers list AUs by name ("The action units present are: brow lowerer, lid tightener."); a name
    in other prose ("in a blink", "the lips part") is not read as an AU."""
    listed = "The action units present are: brow lowerer, lid tightener. Therefore, the fine-grained class is anger."
    assert parse_output(listed).aus == [4, 7]
    assert parse_output("The action unit present is: dimpler. Therefore it is contempt.").aus == [14]
    assert parse_output("The eyes closed briefly in a blink, then the lips part and the head down.").aus == []
    assert parse_output("The action units are AU6 and AU12: cheek raiser.").aus == [6, 12]  # codes win
