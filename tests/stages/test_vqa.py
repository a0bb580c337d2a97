"""MEGC ME-VQA: the question types and their answers, the megc-vqa dataset and prompt plugins on a stand-in in the
challenge's layout (its training file over a CASME II-layout SynthME, its test file over clip folders),
`mellm vqa` answering a test file, and `mellm score --vqa` cross-checked against scikit-learn, NLTK and
rouge_score."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from nltk.translate.bleu_score import SmoothingFunction
from nltk.translate.bleu_score import sentence_bleu as nltk_bleu
from rouge_score import rouge_scorer
from sklearn.metrics import f1_score, recall_score

from mellm_core import create
from mellm_core.cli import main
from mellm_core.errors import InputError
from mellm_core.motion.facs import au_names, named_aus
from mellm_core.results.vqa import rouge1, sentence_bleu
from mellm_core.text.vqa import COARSE, COMBINED_MANY, COMBINED_ONE, FINE, Reading, answer, coarse_class, question_type


def test_questions_are_typed_and_answered_as_the_challenge_files_answer_them():
    assert named_aus("brow lowerer, lid tightener") == [4, 7]
    assert named_aus("head tilt right, tilt left and eyes left; AU12") == [56, 55, 61, 12]
    assert au_names([4, 7]) == "brow lowerer, lid tightener"
    assert question_type(COARSE) == ("coarse", None)
    assert question_type(" what is the FINE-grained expression class?")[0] == "fine"
    assert question_type("What is the action unit?") == ("aus", None) == question_type("What are the action units?")
    assert question_type("Is the action unit lip corner puller shown on the face?") == ("presence", 12)
    assert question_type("Is the action unit brow lowerer located on the left or right face?") == ("side", 4)
    assert question_type(COMBINED_ONE)[0] == question_type(COMBINED_MANY)[0] == "combined"
    assert question_type("Please analyse the micro-expression in detail.") == ("other", None)
    reading = Reading("disgust", [4, 7], {"4": "L"}, "samm")
    assert answer(COARSE, reading) == "negative" and answer(FINE, reading) == "disgust"
    assert answer("What are the action units?", reading) == "brow lowerer, lid tightener"
    assert answer("Is the action unit lid tightener shown on the face?", reading) == "yes"
    assert answer("Is the action unit lip corner puller shown on the face?", reading) == "no"
    assert answer("Is the action unit brow lowerer located on the left or right face?", reading) == "left"
    assert answer(COMBINED_MANY, reading) == ("The action units present are: brow lowerer, lid tightener. Therefore, "
                                              "the fine-grained expression class is disgust, and the coarse expression "
                                              "class is negative.")
    assert answer("Please analyse the micro-expression in detail.", reading) is None
    assert coarse_class("happiness") == "positive" and coarse_class("surprise") == "surprise"
    assert coarse_class("repression", "casme2") == "negative"


def test_bleu_and_rouge_match_the_packages_the_challenge_scorers_use():
    """Our BLEU-4 (smoothing method 1) and ROUGE-1 F1 against NLTK and rouge_score on random answers of the kinds
    the files hold: one word, a list of AU names, a templated sentence."""
    rng = random.Random(0)
    words = ("the action units present are brow lowerer lid tightener therefore fine-grained expression class is "
             "anger negative positive surprise happiness yes no left right").split()
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False)
    smooth = SmoothingFunction().method1
    for _ in range(400):
        gold = " ".join(rng.choices(words, k=rng.choice([1, 2, 3, 5, 12, 20])))
        pred = " ".join(rng.choices(words, k=rng.choice([0, 1, 2, 4, 6, 15, 25])))
        if rng.random() < 0.2:
            pred = gold
        assert sentence_bleu(gold.split(), pred.split()) == pytest.approx(
            nltk_bleu([gold.split()], pred.split(), smoothing_function=smooth) if pred else 0.0, abs=1e-12)
        assert rouge1(gold, pred) == pytest.approx(scorer.score(gold, pred)["rouge1"].fmeasure, abs=1e-12)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """An ME-VQA stand-in: the training file over a CASME II-layout SynthME (as the challenge's file lies over
    CASME II), with every question type; a test file over three of its clips copied as bare clip folders."""
    root = tmp_path_factory.mktemp("mevqa")
    assert main(["synth", "--out", str(root / "CASME2"), "--n", "8", "--seed", "2", "--json"]) == 0
    samples = create("dataset", "synthme").samples(root / "CASME2")
    lines, gold = [], []
    for k, sample in enumerate(samples):
        reading = Reading(sample.emotion, sample.aus, sample.au_sides, "casme2")
        if k < 2:  # the file's labels, not the source sheet's, are the sample's
            reading = Reading("sadness" if sample.emotion == "happiness" else "happiness", [12], {"12": "L"})
        subject = sample.subject
        one_sided = [au for au in reading.aus if str(au) in reading.sides]
        asked = [COARSE, FINE, "What are the action units?", COMBINED_MANY,
                 f"Is the action unit {au_names([reading.aus[0]])} shown on the face?",
                 *(f"Is the action unit {au_names([au])} located on the left or right face?" for au in one_sided)]
        if k == 1:  # only the combined question: its answer states the labels
            asked = [COMBINED_ONE if len(reading.aus) == 1 else COMBINED_MANY]
        for k, question in enumerate(asked):
            lines.append({"id": f"casme2_{subject}_{sample.clip}_{k}", "dataset": "casme2", "image_id": sample.clip,
                          "subject": subject, "filename": sample.clip, "question": question,
                          "answer": answer(question, reading)})
    lines.append({"id": "x", "dataset": "samm", "image_id": "006_1_2", "subject": "6", "filename": "006_1_2",
                  "question": FINE, "answer": "anger"})  # no SAMM here: counted in a warning
    (root / "me_vqa_samm_casme2_smic.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    test = root / "test"
    for i, sample in enumerate(samples[:3], 1):
        shutil.copytree(Path(sample.onset_path).parent, test / f"CAS-{i}")
        reading = Reading(sample.emotion, sample.aus, sample.au_sides, "casme3")
        for question in (COARSE, FINE, "What are the action units?", COMBINED_MANY,
                         "Is the action unit lip corner puller shown on the face?", "Describe the clip."):
            gold.append({"video_id": f"casme3_test_CAS-{i}_{len(gold)}", "video": f"CAS-{i}", "question": question,
                         "answer": answer(question, reading) or "a face"})
    gold.append({"video_id": "casme3_test_CAS-9_0", "video": "CAS-9", "question": COARSE, "answer": "positive"})
    (test / "gold.jsonl").write_text("".join(json.dumps(x) + "\n" for x in gold))
    (test / "to_answer.jsonl").write_text("".join(json.dumps({**x, "answer": ""}) + "\n" for x in gold))
    return {"root": root, "samples": samples, "test": test, "gold": gold}


def test_the_megc_vqa_dataset_reads_its_training_file_over_the_source_clips(release):
    loader = create("dataset", "megc-vqa", casme2={"coding_file": "CASME2-coding-SynthME.xlsx",
                                                   "frames_dir": "CASME2_RAW_selected"})
    samples = loader.samples(release["root"])
    by_clip = {(s.subject, s.clip): s for s in release["samples"]}
    assert len(samples) == len(by_clip)
    first, second = [(s.subject, s.clip) for s in release["samples"][:2]]
    for sample in samples:
        source = by_clip[(sample.subject, sample.clip)]
        assert sample.dataset == "casme2" and sample.apex_path == source.apex_path
        if (sample.subject, sample.clip) in (first, second):  # the file's answers, not the source sheet's
            assert sample.emotion != source.emotion and sample.aus == [12]  # the second's from its combined answer
            assert sample.au_sides == ({"12": "L"} if (sample.subject, sample.clip) == first else source.au_sides)
        else:
            assert sample.emotion == source.emotion and sample.aus == source.aus
            assert sample.au_sides == source.au_sides
    assert "1 of" in loader.warnings[-1] and "no source folder for samm" in loader.warnings[-1]
    # training data in the challenge's question style, from the file's own labels
    run = release["root"].parent / "vqa-run"
    assert main(["instructions", "quickstart", f"output_dir={run}", "data.dataset=megc-vqa",
                 f"data.root={release['root']}", "data.params.casme2.coding_file=CASME2-coding-SynthME.xlsx",
                 "data.params.casme2.frames_dir=CASME2_RAW_selected", "instructions.prompt=megc-vqa",
                 "maps.flow=dis", "--json"]) == 0
    rows = [json.loads(x) for x in (run / "instructions" / "train.jsonl").read_text().splitlines()]
    prompt, asked = create("prompt", "megc-vqa"), set()
    for source in {s.sample_id: s for s in samples if s.sample_id in {r["sample_id"] for r in rows}}.values():
        written = [tuple(m["content"] for m in r["messages"]) for r in rows
                   if r["sample_id"] == source.sample_id and r["task"] == "meu"]
        assert sorted(written) == sorted(prompt.questions(source))  # every question about it, once
        reading = Reading(source.emotion, source.aus, source.au_sides, source.dataset)
        for question, reply in written:
            assert reply == answer(question.removeprefix("<image>"), reading)
            asked.add(question_type(question.removeprefix("<image>"))[0])
    assert asked == {"coarse", "fine", "aus", "side", "presence", "combined"}
    mer = next(r for r in rows if r["task"] == "mer")
    assert mer["messages"][0]["content"] == "<image>" + FINE and mer["messages"][1]["content"] == mer["label"]
    with pytest.raises(InputError, match=r"ME-VQA file .*nothing.jsonl does not exist"):
        create("dataset", "megc-vqa", train_file="nothing.jsonl").samples(release["root"])
    (release["root"] / "bad.jsonl").write_text('{"dataset": "casme2", "question": "?"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: no filename, answer"):
        create("dataset", "megc-vqa", train_file="bad.jsonl").samples(release["root"])


def test_vqa_answers_a_test_file_and_the_scorer_scores_it_as_the_challenge(release, tmp_path, capsys):
    test = release["test"]
    out = tmp_path / "answers.jsonl"
    assert main(["vqa", "quickstart", f"output_dir={tmp_path / 'run'}", "maps.flow=dis",
                 "backbone.params.max_new_tokens=8", "--questions", str(test / "to_answer.jsonl"), "--out", str(out),
                 "--fps", "30", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 4 and summary["failed_clips"] == 1 and summary["asked_as_written"] == 3
    assert summary["note"].startswith("note: no trained adapter")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["video_id"] for x in lines] == [x["video_id"] for x in release["gold"]]
    for line in lines:
        kind, _ = question_type(line["question"])
        if line["video"] == "CAS-9":
            assert line["answer"] == "" and "CAS-9" in line["error"] and "does not exist" in line["error"]
        elif kind == "coarse":
            assert line["answer"] in ("positive", "negative", "surprise", "others")
        elif kind == "presence":
            assert line["answer"] in ("yes", "no")
        elif kind == "combined":
            assert line["answer"].startswith("The action unit") and "coarse expression class is" in line["answer"]
    first = sorted(int(p.stem.removeprefix("img")) for p in (test / "CAS-1").iterdir())
    assert first[0] <= summary["apex"]["CAS-1"] <= first[-1]

    assert main(["score", "--vqa", str(out), "--gold", str(test / "gold.jsonl"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    answers = {(x["video_id"], x["question"]): x["answer"].strip().lower() for x in lines}
    pairs = [(g["answer"].strip().lower(), answers[(g["video_id"], g["question"])]) for g in release["gold"]]
    for kind in ("coarse", "fine"):
        chosen = [(g, p) for (g, p), x in zip(pairs, release["gold"], strict=True)
                  if question_type(x["question"])[0] == kind]
        y_true, y_pred = [g for g, _ in chosen], [p for _, p in chosen]
        labels = sorted(set(y_true) | set(y_pred))
        assert result[kind]["uf1"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="macro",
                                                             zero_division=0), abs=1e-4)
        assert result[kind]["uar"] == pytest.approx(recall_score(y_true, y_pred, labels=labels, average="macro",
                                                                 zero_division=0), abs=1e-4)
        assert result[kind]["n"] == len(chosen) == {"coarse": 4, "fine": 3}[kind]
    smooth = SmoothingFunction().method1
    bleu = [nltk_bleu([g.split()], p.split(), smoothing_function=smooth) if p else 0.0 for g, p in pairs]
    scorer = rouge_scorer.RougeScorer(["rouge1"])
    rouge = [scorer.score(g, p)["rouge1"].fmeasure for g, p in pairs]
    assert result["bleu"] == pytest.approx(sum(bleu) / len(bleu), abs=1e-4)
    assert result["rouge_1"] == pytest.approx(sum(rouge) / len(rouge), abs=1e-4)
    assert result["n"] == len(pairs) and result["missing"] == 0
    perfect = tmp_path / "perfect.jsonl"
    perfect.write_text((test / "gold.jsonl").read_text())
    assert main(["score", "--vqa", str(perfect), "--gold", str(test / "gold.jsonl"), "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    # exact answers: every class right and every word; BLEU-4 stays low on one-word answers (no 2- to 4-grams)
    assert best["coarse"]["uf1"] == best["fine"]["uar"] == best["rouge_1"] == 1.0 and 0.17 < best["bleu"] < 1
    assert main(["score", "--vqa", str(out)]) == 1
    assert "--vqa PRED.jsonl --gold GOLD.jsonl" in capsys.readouterr().err
