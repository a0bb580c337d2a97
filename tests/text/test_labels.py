"""FACS strings, emotion spellings and label protocols (mellm_core.text.labels)."""

from __future__ import annotations

import math

import pytest

from mellm_core.errors import MellmError
from mellm_core.records import Sample
from mellm_core.text.labels import (
    PROTOCOLS,
    apply_protocol,
    format_aus,
    get_protocol,
    normalize_emotion,
    parse_aus,
)


@pytest.mark.parametrize(
    ("text", "aus", "sides"),
    [
        ("4+7", [4, 7], {}),
        ("R12", [12], {"12": "R"}),
        ("1+2+L12", [1, 2, 12], {"12": "L"}),
        ("4+9+ R10", [4, 9, 10], {"10": "R"}),
        ("12+ 17", [12, 17], {}),
        ("R14A or 15", [14, 15], {"14": "R"}),
        ("R14A or 17A", [14, 17], {"14": "R"}),
        ("A1B+A2C", [1, 2], {}),
        ("R20B+R14A", [14, 20], {"14": "R", "20": "R"}),
        ("L2A", [2], {"2": "L"}),
        ("AU6, AU12", [6, 12], {}),
        ("4,7", [4, 7], {}),
        ("L4+R4", [4], {}),  # both sides named: bilateral
        ("12+R12", [12], {}),  # an unsided mention makes it bilateral too
        ("4+4+7", [4, 7], {}),
        ("12(?)", [12], {}),
        ("4+7+43", [4, 7, 43], {}),
        ("?", [], {}),
        ("N/A", [], {}),
        ("", [], {}),
        (None, [], {}),
        (math.nan, [], {}),
        (12, [12], {}),
        (12.0, [12], {}),
    ],
)
def test_parse_aus_reads_the_datasets_spellings(text, aus, sides):
    assert parse_aus(text) == (aus, sides)


def test_format_aus_is_the_inverse_of_parse_aus():
    assert format_aus([12, 1, 2], {"12": "L"}) == "1+2+L12"
    for text in ("1+2+L12", "4+9+R10", "6+12", "R12+R14"):
        assert format_aus(*parse_aus(text)) == text


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Happiness", "happiness"),
        ("happy", "happiness"),
        ("  HAPPY ", "happiness"),
        ("高兴", "happiness"),
        ("sad", "sadness"),
        ("Sadness", "sadness"),
        ("surprised", "surprise"),
        ("Anger", "anger"),
        ("angry", "anger"),
        ("Disgust.", "disgust"),
        ("厌恶", "disgust"),
        ("Contempt", "contempt"),
        ("Fear", "fear"),
        ("repression", "repression"),
        ("Others", "others"),
        ("other", "others"),
        ("Positive", "positive"),
        ("Tense", "tense"),  # unknown names stay, lower-cased
        ("", None),
        ("   ", None),
        (None, None),
        (math.nan, None),
    ],
)
def test_normalize_emotion(raw, normalized):
    assert normalize_emotion(raw) == normalized


def _sample(i: int, emotion: str | None, dataset: str = "casme2") -> Sample:
    return Sample(
        f"{dataset}/s/{i}",
        "o.jpg",
        "a.jpg",
        dataset=dataset,
        subject="s",
        emotion=emotion,
        emotion_raw=emotion or "",
    )


def test_protocol_classes_are_the_papers():
    assert PROTOCOLS["dfme-7"].classes == (
        "happiness",
        "disgust",
        "contempt",
        "surprise",
        "fear",
        "anger",
        "sadness",
    )
    assert PROTOCOLS["casme2-5"].classes == ("happiness", "sadness", "fear", "surprise", "disgust")
    assert PROTOCOLS["casme3-6"].classes == ("happiness", "sadness", "fear", "surprise", "disgust", "anger")
    assert PROTOCOLS["megc-3"].classes == ("negative", "positive", "surprise")
    assert set(PROTOCOLS) == {"dfme-7", "casme2-5", "casme3-6", "megc-3", "all"}


def test_casme2_5_excludes_and_counts_the_rest():
    emotions = ["happiness", "others", "repression", "others", "disgust", None, "fear", "anger", "sadness"]
    kept, excluded = apply_protocol([_sample(i, e) for i, e in enumerate(emotions)], "casme2-5")
    assert [s.emotion for s in kept] == ["happiness", "disgust", "fear", "sadness"]
    assert excluded == {"others": 2, "repression": 1, "(none)": 1, "anger": 1}
    assert list(excluded) == ["others", "repression", "(none)", "anger"]  # most frequent first


def test_casme3_6_adds_anger_and_dfme_7_adds_contempt():
    samples = [_sample(i, e) for i, e in enumerate(["anger", "contempt", "others"])]
    assert [s.emotion for s in apply_protocol(samples, "casme3-6")[0]] == ["anger"]
    assert [s.emotion for s in apply_protocol(samples, "dfme-7")[0]] == ["anger", "contempt"]


def test_megc_3_folds_emotions_per_source_dataset():
    samples = [
        _sample(0, "disgust", "casme2"),
        _sample(1, "repression", "casme2"),
        _sample(2, "fear", "casme2"),
        _sample(3, "sadness", "casme2"),
        _sample(4, "happiness", "casme2"),
        _sample(5, "surprise", "casme2"),
        _sample(6, "fear", "samm"),
        _sample(7, "contempt", "samm"),
        _sample(8, "others", "samm"),
        _sample(9, "negative", "smic"),
        _sample(10, "positive", "smic"),
        _sample(11, "fear", "dfme"),
    ]
    kept, excluded = apply_protocol(samples, "megc-3")
    assert [(s.sample_id, s.emotion) for s in kept] == [
        ("casme2/s/0", "negative"),
        ("casme2/s/1", "negative"),
        ("casme2/s/4", "positive"),
        ("casme2/s/5", "surprise"),
        ("samm/s/6", "negative"),
        ("samm/s/7", "negative"),
        ("smic/s/9", "negative"),
        ("smic/s/10", "positive"),
        ("dfme/s/11", "negative"),
    ]
    assert excluded == {"fear": 1, "sadness": 1, "others": 1}
    assert kept[0].emotion_raw == "disgust"  # the original label stays readable
    assert samples[0].emotion == "disgust"  # inputs are not modified
    assert apply_protocol(kept, "megc-3") == (kept, {})  # idempotent


def test_all_keeps_every_sample_as_labelled():
    samples = [_sample(0, "others"), _sample(1, None), _sample(2, "tense")]
    assert apply_protocol(samples, "all") == (samples, {})


def test_unknown_protocol_lists_the_choices():
    with pytest.raises(MellmError, match="unknown label protocol 'casme2-7'.*casme2-5.*megc-3.*all"):
        get_protocol("casme2-7")
    with pytest.raises(MellmError, match="choose one of"):
        apply_protocol([], "nope")
