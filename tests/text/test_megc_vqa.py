"""MEGC ME-VQA text: questions matched whatever their case, spacing, final "?" and AU naming; the megc-vqa prompt's
every question type with its answer, read back by `mellm vqa`'s answers, the scorer and the megc-vqa dataset; and
the scorer's handling of gold lines without a prediction, cross-checked against scikit-learn, NLTK and
rouge_score."""

from __future__ import annotations

import json
import random

import pytest
from nltk.translate.bleu_score import SmoothingFunction
from nltk.translate.bleu_score import sentence_bleu as nltk_bleu
from rouge_score import rouge_scorer
from sklearn.metrics import f1_score, recall_score

from mellm_core import create
from mellm_core.cli import main
from mellm_core.errors import InputError
from mellm_core.records import IMAGE_TAG, Sample
from mellm_core.results.vqa import score_vqa
from mellm_core.text.vqa import (
    AUS_MANY,
    AUS_ONE,
    COARSE,
    COMBINED_MANY,
    COMBINED_ONE,
    FINE,
    Reading,
    answer,
    question_type,
)


def test_questions_match_whatever_their_case_spacing_and_final_punctuation():
    for written in ("What is the coarse expression class", "what is the COARSE expression class ?",
                    "  What  is the coarse\texpression class?. "):
        assert question_type(written) == ("coarse", None)
    assert question_type("What are the action units") == ("aus", None)
    assert question_type(COMBINED_MANY.rstrip("?"))[0] == "combined"
    assert question_type("What is the coarse expression class of this clip?") == ("other", None)


@pytest.mark.parametrize("named", ["lip corner puller", "AU12", "au 12", "12", "AU012", "Lip Corner Puller"])
def test_presence_and_side_questions_name_an_au_by_code_number_or_facs_name(named):
    assert question_type(f"Is the action unit {named} shown on the face?") == ("presence", 12)
    assert question_type(f"is the action unit {named} located on the left or right face") == ("side", 12)
    reading = Reading("happiness", [6, 12], {"12": "L"})
    assert answer(f"Is the action unit {named} shown on the face", reading) == "yes"
    assert answer(f"Is the action unit {named} located on the left or right face?", reading) == "left"
    assert answer(f"Is the action unit {named} shown on the face?", Reading("happiness", [6])) == "no"


def sample(sample_id: str, aus: list[int], sides: dict[str, str] | None = None, emotion: str = "disgust",
           dataset: str = "casme2") -> Sample:
    return Sample(sample_id, "onset.jpg", "apex.jpg", dataset, "sub01", sample_id, aus=aus, au_sides=sides or {},
                  emotion=emotion)


def asked(item: Sample) -> list[tuple[str, str]]:
    """The megc-vqa prompt's questions about ``item`` (without the image tag) and their answers."""
    pairs = create("prompt", "megc-vqa").questions(item)
    assert all(question.startswith(IMAGE_TAG) for question, _ in pairs)
    return [(question.removeprefix(IMAGE_TAG), reply) for question, reply in pairs]


def test_the_prompt_asks_every_question_type_with_its_answer_in_the_files_order():
    item = sample("casme2_sub01_EP19_05f", [4, 7, 10], {"10": "L"})
    pairs = asked(item)
    kinds = [question_type(question) for question, _ in pairs]
    assert [kind for kind, _ in kinds] == ["coarse", "fine", "aus", "side", "presence", "presence", "combined"]
    replies = dict(pairs)
    assert replies[COARSE] == "negative" and replies[FINE] == "disgust"
    assert replies[AUS_MANY] == "brow lowerer, lid tightener, upper lip raiser"
    assert replies["Is the action unit upper lip raiser located on the left or right face?"] == "left"
    (shown, yes), (lacking, no) = [(au, reply) for (kind, au), (_, reply) in zip(kinds, pairs, strict=True)
                                  if kind == "presence"]
    assert shown in (4, 7, 10) and yes == "yes" and lacking not in (4, 7, 10) and no == "no"
    assert replies[COMBINED_MANY] == ("The action units present are: brow lowerer, lid tightener, upper lip raiser. "
                                      "Therefore, the fine-grained expression class is disgust, and the coarse "
                                      "expression class is negative.")
    # one AU: the singular questions; no side where the data gives none
    one = dict(asked(sample("samm_006_1_3", [4], emotion="anger", dataset="samm")))
    assert one[AUS_ONE] == "brow lowerer" and one["Is the action unit brow lowerer shown on the face?"] == "yes"
    assert one[COMBINED_ONE].startswith("The action unit present is: brow lowerer. Therefore")
    assert AUS_MANY not in one and COMBINED_MANY not in one
    assert not any(question_type(q)[0] == "side" for q in one)
    # a dataset without AUs: the class questions alone
    assert asked(sample("smic_s1_x", [], emotion="positive", dataset="smic")) == [(COARSE, "positive"),
                                                                                    (FINE, "positive")]


def test_the_drawn_aus_are_reproducible_per_sample_and_vary_between_samples():
    items = [sample(f"casme2_sub{i:02d}_EP01", [4, 7, 10, 12]) for i in range(40)]
    first = [asked(item) for item in items]
    assert [asked(item) for item in reversed(items)] == first[::-1]  # the same lines, whatever the order
    drawn = {tuple(q for q, _ in pairs if question_type(q)[0] == "presence") for pairs in first}
    assert len(drawn) > 10  # seeded per sample, not one choice for all


def test_the_answers_are_what_mellm_vqa_answers_the_scorer_and_the_dataset_read_back():
    items = [sample("a", [4, 7, 10], {"10": "L", "4": "R"}, "disgust"), sample("b", [12], {"12": "R"}, "happiness"),
             sample("c", [1, 2], {}, "surprise"), sample("d", [], {}, "fear", "samm")]
    gold = []
    for item in items:
        reading = Reading(item.emotion, item.aus, item.au_sides, item.dataset)
        for k, (question, reply) in enumerate(asked(item)):
            assert answer(question, reading) == reply  # `mellm vqa` answers the same labels the same way
            gold.append({"id": f"{item.sample_id}_{k}", "question": question, "answer": reply})
    perfect = score_vqa(gold, gold)
    assert perfect["coarse"] == {"uf1": 1.0, "uar": 1.0, "n": 4} and perfect["fine"]["n"] == 4
    assert perfect["rouge_1"] == 1.0 and perfect["n"] == len(gold) and perfect["missing"] == 0
    flipped = [{**x, "answer": "positive" if x["answer"] == "negative" else x["answer"]} for x in gold]
    assert score_vqa(flipped, gold)["coarse"]["uf1"] < 1.0 == score_vqa(flipped, gold)["fine"]["uf1"]
    loader = create("dataset", "megc-vqa")
    for item in items[:3]:  # the megc-vqa dataset reads the lines back into the labels (d's states no AUs)
        lines = [x for x in gold if x["id"].startswith(f"{item.sample_id}_")]
        blank = Sample(item.sample_id, "onset.jpg", "apex.jpg", item.dataset, aus=[99], emotion="others")
        read = loader._labelled(blank, lines)
        assert (read.emotion, read.aus, read.au_sides) == (item.emotion, sorted(item.aus), item.au_sides)


# ---------------------------------------------------------------- scoring gold lines without a prediction

COARSE_LABELS, FINE_LABELS = ("negative", "positive", "surprise"), ("anger", "disgust", "happiness", "surprise")


def _lines(rng: random.Random, n: int) -> list[dict]:
    """``n`` clips' gold lines: a coarse, a fine and an AU question each."""
    gold = []
    for i in range(n):
        gold += [{"video_id": f"v{i}_0", "question": COARSE, "answer": rng.choice(COARSE_LABELS)},
                 {"video_id": f"v{i}_1", "question": FINE, "answer": rng.choice(FINE_LABELS)},
                 {"video_id": f"v{i}_2", "question": AUS_MANY, "answer": "brow lowerer, lid tightener"}]
    return gold


def _expected(gold: list[dict], preds: dict[str, str], missing: str) -> dict:
    """The scores by scikit-learn, NLTK and rouge_score, a missing line left out or scored as ""."""
    pairs = [(g, preds.get(g["video_id"], "" if missing == "empty" else None)) for g in gold]
    pairs = [(g, p) for g, p in pairs if p is not None]
    out = {}
    for kind, question in (("coarse", COARSE), ("fine", FINE)):
        y_true = [g["answer"] for g, _ in pairs if g["question"] == question]
        y_pred = [p for g, p in pairs if g["question"] == question]
        labels = sorted(set(y_true) | set(y_pred))
        out[kind] = (f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
                     recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0), len(y_true))
    smooth, scorer = SmoothingFunction().method1, rouge_scorer.RougeScorer(["rouge1"])
    out["bleu"] = sum(nltk_bleu([g["answer"].split()], p.split(), smoothing_function=smooth) if p else 0.0
                      for g, p in pairs) / len(pairs)
    out["rouge_1"] = sum(scorer.score(g["answer"], p)["rouge1"].fmeasure for g, p in pairs) / len(pairs)
    out["n"] = len(pairs)
    return out


@pytest.mark.parametrize("missing", ["skip", "empty"])
def test_gold_lines_without_a_prediction_are_left_out_by_default_or_scored_empty(missing):
    rng = random.Random(3)
    gold = _lines(rng, 30)
    preds = {}
    for line in gold:
        if rng.random() < 0.25:
            continue  # no prediction line at all
        right = rng.random() < 0.6
        preds[line["video_id"]] = line["answer"] if right else rng.choice(COARSE_LABELS + FINE_LABELS)
    lines = [{"video_id": g["video_id"], "question": g["question"].lower().rstrip("?"), "answer": preds[g["video_id"]]}
             for g in gold if g["video_id"] in preds]  # questions written otherwise still match
    result = score_vqa(lines, gold, missing)
    expected = _expected(gold, preds, missing)
    for kind in ("coarse", "fine"):
        uf1, uar, n = expected[kind]
        assert result[kind]["uf1"] == pytest.approx(uf1, abs=1e-4)
        assert result[kind]["uar"] == pytest.approx(uar, abs=1e-4)
        assert result[kind]["n"] == n
    assert result["bleu"] == pytest.approx(expected["bleu"], abs=1e-4)
    assert result["rouge_1"] == pytest.approx(expected["rouge_1"], abs=1e-4)
    assert result["missing"] == len(gold) - len(preds) > 0
    assert result["n"] == expected["n"] == (len(preds) if missing == "skip" else len(gold))


def test_a_missing_line_no_longer_adds_an_empty_class_to_the_macro_averages():
    gold = [{"id": "a", "question": COARSE, "answer": "negative"}, {"id": "b", "question": COARSE,
                                                                    "answer": "positive"}]
    preds = [{"id": "a", "question": COARSE, "answer": "negative"}]
    assert score_vqa(preds, gold)["coarse"] == {"uf1": 1.0, "uar": 1.0, "n": 1}
    # scored as an empty answer: "" is a predicted label, as an answered "" is
    assert score_vqa(preds, gold, "empty")["coarse"] == {"uf1": pytest.approx(1 / 3, abs=1e-4), "uar": 0.3333,
                                                         "n": 2}
    with pytest.raises(InputError, match="none of the 2 gold lines has a prediction"):
        score_vqa([{"id": "x", "question": COARSE, "answer": "negative"}], gold)
    with pytest.raises(InputError, match="missing must be one of: skip, empty"):
        score_vqa(preds, gold, "zero")


def test_mellm_score_vqa_reports_missing_lines_and_takes_the_missing_option(tmp_path, capsys):
    gold = [{"video_id": "a", "question": FINE, "answer": "anger"},
            {"video_id": "b", "question": FINE, "answer": "fear"}]
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(x) + "\n" for x in gold))
    (tmp_path / "pred.jsonl").write_text(json.dumps({**gold[0], "question": "what is the fine-grained "
                                                     "expression class"}) + "\n")
    argv = ["score", "--vqa", str(tmp_path / "pred.jsonl"), "--gold", str(tmp_path / "gold.jsonl")]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fine"] == {"uf1": 1.0, "uar": 1.0, "n": 1} and (result["n"], result["missing"]) == (1, 1)
    assert main([*argv, "--missing", "empty", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fine"]["n"] == 2 and result["fine"]["uar"] == 0.3333 and result["missing"] == 1
    assert main(argv) == 0
    assert "ME-VQA: 1 of 2 gold lines scored (1 without a prediction: left out)" in capsys.readouterr().out
