"""Whether a result beats chance: the binomial test, the collapse warning and the AU baseline (pure, no Ray)."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

from mellm_core.results.evaluation import binomial_tail, metrics_of, most_frequent_aus


@pytest.mark.parametrize(("k", "n", "p"), [(0, 10, 0.3), (7, 10, 0.3), (16, 50, 0.32), (27, 50, 0.32),
                                           (50, 50, 0.32), (300, 1000, 0.25), (4000, 10000, 0.39), (3, 7, 0.0)])
def test_binomial_tail_equals_scipy(k, n, p):
    assert binomial_tail(k, n, p) == pytest.approx(binomtest(k, n, p, alternative="greater").pvalue, rel=1e-9,
                                                   abs=1e-300)


def _rows(pairs: list[tuple[str, str | None]], aus: list[list[int]] | None = None, task: str = "mer") -> list[dict]:
    aus = aus or [[] for _ in pairs]
    return [{"sample_id": f"s{i}", "task": task, "label": gold, "emotion": pred, "aus_gold": gold_aus, "aus": [],
             "dataset": "d", "text": pred or ""}
            for i, ((gold, pred), gold_aus) in enumerate(zip(pairs, aus, strict=True))]


def test_a_model_that_collapsed_to_one_answer_is_told_so():
    """The issue's case: 43 of 50 answers "happiness", ACC below always-the-majority-class."""
    gold = ["anger"] * 16 + ["happiness"] * 7 + ["fear"] * 9 + ["sadness"] * 9 + ["surprise"] * 9
    pred = ["happiness"] * 43 + ["fear"] * 7
    block = metrics_of(_rows(list(zip(gold, pred, strict=True))), "all")["mer"]
    v = block.verdict
    assert v.correct == 7 and v.n == 50 and v.majority_acc == pytest.approx(16 / 50)
    assert v.p_value == pytest.approx(binomtest(7, 50, 16 / 50, alternative="greater").pvalue)
    assert not v.beats_majority and v.collapsed and v.top_answer == "happiness"
    assert v.top_share == pytest.approx(0.86)
    lines = block.verdict_lines("mer")
    assert lines[0].startswith("mer: the emotion does NOT beat always 'anger' (ACC 0.320")
    assert lines[1] == "warning: mer: the model collapsed to happiness (43 of 50 answers)"


def test_a_model_that_learned_beats_the_majority_class_without_a_warning():
    gold = ["anger"] * 16 + ["happiness"] * 17 + ["fear"] * 17
    pred = gold[:30] + ["fear"] * 10 + ["happiness"] * 10
    correct = sum(g == p for g, p in zip(gold, pred, strict=True))
    block = metrics_of(_rows(list(zip(gold, pred, strict=True))), "all")["mer"]
    assert block.verdict.beats_majority and not block.verdict.collapsed
    assert block.verdict.p_value == pytest.approx(binomtest(correct, 50, 17 / 50, alternative="greater").pvalue)
    assert block.verdict_lines("mer") == [
        f"mer: the emotion beats always 'fear' (ACC 0.340; one-sided binomial p = {block.verdict.p_value:.2g})"]


def test_unparsed_answers_count_as_wrong_and_can_be_the_collapse():
    gold = ["anger", "fear"] * 10
    block = metrics_of(_rows([(g, None) for g in gold]), "all")["mer"]
    assert block.verdict.correct == 0 and block.verdict.top_answer == "unparsed/other"
    assert block.verdict.collapsed and block.verdict.p_value == 1.0


def test_the_au_baseline_is_the_training_sets_most_frequent_au_set_scored_like_the_model():
    assert most_frequent_aus([[12, 6], [1, 2], [6, 12], [4]]) == [6, 12]
    assert most_frequent_aus([]) == []
    gold_aus = [[6, 12], [1, 2], [4], [6, 12], [9, 10]]
    rows = _rows([("happiness", "happiness")] * 5, gold_aus, task="meu")
    block = metrics_of(rows, "all", baseline_aus=[1, 2])["meu"]
    labels = sorted({au for aus in gold_aus for au in aus})
    binarize = MultiLabelBinarizer(classes=labels)
    expected = f1_score(binarize.fit_transform(gold_aus), binarize.transform([[1, 2]] * 5), average="macro",
                        zero_division=0)
    assert block.chance["majority_aus"] == {"aus": [1, 2], "au_f1": pytest.approx(expected)}
    # without a training set, the test set's own most frequent AU set stands in
    assert metrics_of(rows, "all")["meu"].chance["majority_aus"]["aus"] == [6, 12]
    assert block.verdict_lines("meu")[-1].startswith("meu: AU F1 0.000 is NOT above always answering")


def test_the_gallery_and_the_metrics_share_one_rule_of_right_and_wrong():
    """Under a protocol that maps labels (megc-3: happiness -> positive, disgust -> negative), a raw gold label and
    a parsed answer are compared as classes, by the metrics and by the report's gallery alike."""
    from mellm_core.results.report import _correct
    from mellm_core.text.labels import get_protocol
    from mellm_core.text.scoring import graded

    megc = get_protocol("megc-3")
    rows = [{"sample_id": "a", "task": "mer", "label": "happiness", "emotion": "happiness", "dataset": "samm"},
            {"sample_id": "b", "task": "mer", "label": "disgust", "emotion": "fear", "dataset": "samm"},
            {"sample_id": "c", "task": "mer", "label": "surprise", "emotion": "happiness", "dataset": "samm"},
            {"sample_id": "d", "task": "mer", "label": "anger", "emotion": None, "dataset": "samm"}]
    assert graded(megc, "happiness", "happiness", "samm") == ("positive", "positive")
    gallery = [_correct(r, megc) for r in rows]
    assert gallery == [True, True, False, False]
    assert metrics_of(rows, "megc-3")["mer"].overall["acc"] == sum(gallery) / len(rows)
