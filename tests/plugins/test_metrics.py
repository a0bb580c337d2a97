"""Metric plugins: the paper's eq. 1-3 and per-AU F1, cross-checked against scikit-learn on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.preprocessing import MultiLabelBinarizer

from mellm_core.plugins import Registry
from mellm_core.text.scoring import class_counts, confusion_matrix

CLASSES = ["happiness", "disgust", "contempt", "surprise", "fear", "anger", "sadness"]
UNPARSED = "<unparsed>"  # scikit-learn cannot mix None with strings; any value outside the labels behaves alike


@pytest.fixture(scope="module")
def metrics() -> dict:
    registry = Registry()
    return {name: registry.create("metric", name) for name in ("acc", "uar", "uf1", "au_f1")}


def _random_case(rng: np.random.Generator, n_classes: int) -> tuple[list, list, list]:
    """Gold labels over some classes, predictions that miss classes, invent others and are sometimes None."""
    gold_classes = list(rng.choice(CLASSES, size=n_classes, replace=False))
    y_true = list(rng.choice(gold_classes, size=int(rng.integers(1, 40))))
    pred_classes = list(rng.choice(CLASSES, size=int(rng.integers(1, len(CLASSES) + 1)), replace=False))
    y_pred = [None if rng.random() < 0.15 else str(rng.choice(pred_classes)) for _ in y_true]
    labels = [c for c in CLASSES if c in set(y_true)]
    return [str(t) for t in y_true], y_pred, labels


def test_builtin_metrics_are_registered_by_entry_point():
    registry = Registry()
    assert {"acc", "uar", "uf1", "au_f1"} <= set(registry.names("metric"))
    assert registry.get("metric", "uf1").module == "mellm_plugins.metric.uf1"
    assert registry.load_errors == []


def test_hand_computed_example(metrics):
    y_true = ["a", "a", "b", "b", "c"]
    y_pred = ["a", "b", "b", None, "c"]
    labels = ["a", "b", "c"]
    assert metrics["acc"](y_true, y_pred, labels) == 3 / 5
    assert metrics["uar"](y_true, y_pred, labels) == pytest.approx((1 / 2 + 1 / 2 + 1) / 3, abs=1e-15)
    # F1: a = 2/(2+0+1), b = 2/(2+1+1), c = 1
    assert metrics["uf1"](y_true, y_pred, labels) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3, abs=1e-15)
    assert confusion_matrix(y_true, y_pred, labels) == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]


@pytest.mark.parametrize("seed", range(60))
def test_emotion_metrics_equal_scikit_learn(metrics, seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred, labels = _random_case(rng, n_classes=1 + seed % len(CLASSES))
    sk_pred = [UNPARSED if p is None else p for p in y_pred]
    expected = {
        "acc": accuracy_score(y_true, sk_pred),
        "uar": recall_score(y_true, sk_pred, average="macro", labels=labels, zero_division=0),
        "uf1": f1_score(y_true, sk_pred, average="macro", labels=labels, zero_division=0),
    }
    for name, value in expected.items():
        assert metrics[name](y_true, y_pred, labels) == pytest.approx(value, abs=1e-12), name


@pytest.mark.parametrize("seed", range(10))
def test_labels_other_than_the_gold_classes_match_scikit_learn(metrics, seed):
    rng = np.random.default_rng(100 + seed)
    y_true, y_pred, _ = _random_case(rng, n_classes=4)
    labels = list(rng.choice(CLASSES, size=3, replace=False))  # may include absent classes and omit present ones
    sk_pred = [UNPARSED if p is None else p for p in y_pred]
    assert metrics["uar"](y_true, y_pred, labels) == pytest.approx(
        recall_score(y_true, sk_pred, average="macro", labels=labels, zero_division=0), abs=1e-12)
    assert metrics["uf1"](y_true, y_pred, labels) == pytest.approx(
        f1_score(y_true, sk_pred, average="macro", labels=labels, zero_division=0), abs=1e-12)


def test_edge_cases(metrics):
    # a single class, always right / always unparsed
    assert [metrics[m](["fear"] * 3, ["fear"] * 3, ["fear"]) for m in ("acc", "uar", "uf1")] == [1.0, 1.0, 1.0]
    assert [metrics[m](["fear"] * 3, [None] * 3, ["fear"]) for m in ("acc", "uar", "uf1")] == [0.0, 0.0, 0.0]
    # nothing to score
    assert [metrics[m]([], [], []) for m in ("acc", "uar", "uf1")] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="y_true has 2 items but y_pred has 1"):
        metrics["uf1"](["a", "b"], ["a"], ["a", "b"])


def test_class_counts_follow_scikit_learn_semantics():
    # a gold label outside the labels still makes a listed prediction a false positive
    counts = class_counts(["a", "x", "a"], ["a", "a", None], ["a"])
    assert (counts[0].tp, counts[0].fp, counts[0].fn) == (1, 1, 1)


@pytest.mark.parametrize("seed", range(20))
def test_au_f1_equals_scikit_learn_per_au(metrics, seed):
    rng = np.random.default_rng(200 + seed)
    pool = list(rng.choice(np.arange(1, 30), size=8, replace=False))

    def draw() -> list[int]:
        return sorted({int(au) for au in rng.choice(pool, size=int(rng.integers(0, 5)))})

    gold = [draw() for _ in range(int(rng.integers(1, 30)))]
    pred = [draw() for _ in gold]
    labels = sorted({au for aus in gold for au in aus})
    per_au = metrics["au_f1"].per_label(gold, pred)
    assert list(per_au) == labels  # defaults to the AUs present in the gold labels
    if not labels:
        assert metrics["au_f1"](gold, pred) == 0.0
        return
    binarizer = MultiLabelBinarizer(classes=sorted(set(labels) | {au for aus in pred for au in aus}))
    y_gold, y_pred = binarizer.fit_transform(gold), binarizer.transform(pred)
    columns = [list(binarizer.classes_).index(au) for au in labels]
    expected = f1_score(y_gold[:, columns], y_pred[:, columns], average=None, zero_division=0)
    assert [per_au[au] for au in labels] == pytest.approx(list(expected), abs=1e-12)
    assert metrics["au_f1"](gold, pred) == pytest.approx(float(np.mean(expected)), abs=1e-12)


def test_au_f1_hand_computed(metrics):
    gold = [[6, 12], [1, 2, 4], []]
    pred = [[6, 12], [1, 4], [4]]
    # AU1 1.0, AU2 0 (missed), AU4 2/(2+1+0), AU6 1.0, AU12 1.0
    assert metrics["au_f1"].per_label(gold, pred) == {1: 1.0, 2: 0.0, 4: 2 / 3, 6: 1.0, 12: 1.0}
    assert metrics["au_f1"](gold, pred) == pytest.approx((3 + 2 / 3) / 5, abs=1e-15)
    assert metrics["au_f1"](gold, pred, labels=[2]) == 0.0
