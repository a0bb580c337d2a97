"""The eval stage on Ray Data: predictions, metrics (checked with scikit-learn), report, resume; `mellm analyze`."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest
from helpers import CLASSES, write_instructions
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mellm_core.cli import main
from mellm_core.config import load_recipe
from mellm_core.model.training import run_local
from mellm_core.stages.eval import run_eval
from mellm_core.text.scoring import score

SETTINGS = ["eval.protocol=all", "eval.batch_size=4", "eval.cpus_per_actor=0.5", "backbone.params={max_new_tokens: 6}",
            "train.lora_rank=8", "train.lora_alpha=16", "train.lr=3e-3", "train.batch_size=4", "train.num_workers=1",
            "train.max_steps=40", "train.checkpoint_every=40"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A toy three-class run (class-coloured maps, label-only answers) with a briefly trained adapter; the test
    set's sample s03 names a map that is not an image."""
    root = tmp_path_factory.mktemp("eval")
    write_instructions(root / "run", n=12)
    run_local(load_recipe("quickstart", [f"output_dir={root / 'run'}", *SETTINGS]), progress=False)
    (root / "broken.png").write_bytes(b"not a png")
    test = root / "run" / "instructions" / "test.jsonl"
    rows = [json.loads(x) for x in test.read_text().splitlines()]
    rows[3]["images"] = [str(root / "broken.png")]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _run(trained, name, *overrides):
    target = trained / name
    if not target.exists():
        shutil.copytree(trained / "run", target)
    return load_recipe("quickstart", [f"output_dir={target}", *SETTINGS, *overrides]), target


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_metrics_match_scikit_learn_and_pool_over_actors(ray_local, trained):
    recipe, out = _run(trained, "one")
    result = run_eval(recipe, progress=False)
    preds = _lines(out / "eval" / "predictions.jsonl")
    assert len(preds) == 12 and {p["task"] for p in preds} == {"mer"}
    bad = [p for p in preds if p["error"]]  # an unreadable map is recorded and scored as unparsed; the run goes on
    assert [p["sample_id"] for p in bad] == ["s03"] and "not a readable image" in bad[0]["error"]
    assert set(preds[0]) >= {"sample_id", "dataset", "subject", "label", "aus_gold", "text", "emotion", "aus"}
    overall = json.loads((out / "eval" / "metrics.json").read_text())["tasks"]["mer"]["overall"]
    gold = [p["label"] for p in preds]
    guess = [p["emotion"] or "unparsed" for p in preds]
    labels = sorted(set(gold))
    assert overall["acc"] == pytest.approx(accuracy_score(gold, guess))
    assert overall["uf1"] == pytest.approx(f1_score(gold, guess, labels=labels, average="macro", zero_division=0))
    assert overall["uar"] == pytest.approx(recall_score(gold, guess, labels=labels, average="macro", zero_division=0))
    assert overall["n"] == 12 and overall["unparsed"] == sum(p["emotion"] is None for p in preds)
    assert result.tasks["mer"].chance["uniform"]["acc"] == pytest.approx(1 / 3) and not result.skipped
    assert result.tasks["mer"].overall == overall
    rescored = score(preds, "all")  # what `mellm score eval/predictions.jsonl` reports
    assert all(rescored[k] == pytest.approx(overall[k]) for k in ("acc", "uf1", "uar", "n", "unparsed"))
    again = run_eval(recipe, progress=False)
    assert again.skipped and again.tasks == result.tasks  # read back from metrics.json as it was written

    pooled, out2 = _run(trained, "two", "eval.actors=2")
    run_eval(pooled, progress=False)
    assert _lines(out2 / "eval" / "predictions.jsonl") == preds  # two replicas answer exactly as one


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.text = [], []

    def handle_starttag(self, tag, attrs):
        src = dict(attrs).get("src", "")
        if tag == "img" and src.startswith("data:image/png;base64,"):
            self.images.append(base64.b64decode(src.split(",", 1)[1]))

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_self_contained_and_its_images_decode(ray_local, trained):
    recipe, out = _run(trained, "one")
    run_eval(recipe, progress=False)
    page = _Images()
    page.feed((out / "eval" / "report.html").read_text())
    decoded = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in page.images]
    assert len(decoded) >= 2 + 1 and all(img is not None and img.size for img in decoded)  # plots + gallery
    text = " ".join(page.text)
    assert "chance: uniform guess" in text and "gallery" in text and all(c in text for c in CLASSES)
    assert "http" not in (out / "eval" / "report.html").read_text().replace("http-equiv", "")  # nothing fetched


def test_resume_keeps_answers_of_a_stopped_run(ray_local, trained):
    recipe, out = _run(trained, "resumed")
    full = run_eval(recipe, progress=False)
    preds = _lines(out / "eval" / "predictions.jsonl")
    (out / "eval" / "metrics.json").unlink()
    kept = [dict(p, text=p["text"] + " [kept]") for p in preds[:5]]
    (out / "eval" / "predictions.partial.jsonl").write_text(
        json.dumps({"settings_hash": full.settings_hash}) + "\n" + "".join(json.dumps(p) + "\n" for p in kept))
    run_eval(recipe, progress=False)
    again = _lines(out / "eval" / "predictions.jsonl")
    asked_again = {"s03"}  # a sample that failed (here: its unreadable map) is asked again; the others are kept
    assert [a for a in again[:5] if a["sample_id"] not in asked_again] == [
        k for k in kept if k["sample_id"] not in asked_again]
    assert again[3] == preds[3] and again[5:] == preds[5:]
    assert not (out / "eval" / "predictions.partial.jsonl").exists()


def test_eval_cli_and_clear_errors(ray_local, trained, tmp_path, capsys):
    _, out = _run(trained, "one")
    args = ["eval", "quickstart", f"output_dir={out}", *SETTINGS, "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tasks"]["mer"]["n"] == 12 and summary["report"].endswith("report.html") and summary["skipped"]
    verdict = summary["tasks"]["mer"]
    assert {"p_value", "beats_majority", "collapsed_to", "majority_acc"} <= set(verdict) and verdict["n"] == 12
    # metrics.json written before verdicts existed: scored again from its predictions, nothing asked again
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    predictions = (out / "eval" / "predictions.jsonl").read_text()
    del metrics["tasks"]["mer"]["verdict"]
    (out / "eval" / "metrics.json").write_text(json.dumps(metrics))
    assert main(args[:-1]) == 0
    printed = capsys.readouterr().out
    assert "mer: the emotion beats always" in printed or "mer: the emotion does NOT beat always" in printed
    assert "verdict" in json.loads((out / "eval" / "metrics.json").read_text())["tasks"]["mer"]
    assert (out / "eval" / "predictions.jsonl").read_text() == predictions
    assert main(["eval", "quickstart", f"output_dir={tmp_path}"]) == 1
    assert "test.jsonl does not exist" in capsys.readouterr().err
    assert main([*args[:-1], f"eval.adapter={tmp_path}"]) == 1
    assert "is not a trained adapter folder" in capsys.readouterr().err


def test_analyze_one_pair_end_to_end(motion_pair, trained, tmp_path, capsys):
    for name in ("onset", "apex"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), cv2.resize(motion_pair[name], (192, 192)))
    args = ["analyze", str(tmp_path / "onset.png"), str(tmp_path / "apex.png"), "--map", str(tmp_path / "map.png"),
            "--max-new-tokens", "6", "--json", f"output_dir={trained / 'run'}", "maps.head_motion=nose"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) >= {"emotion", "aus", "analysis", "map"} and out["adapter"].endswith("train/adapter")
    assert cv2.imread(out["map"]).shape == (192, 192, 3)
    assert main([*args[:2], str(tmp_path / "missing.png"), "--json"]) == 1
    assert "missing.png does not exist" in capsys.readouterr().err
    # a fresh checkout: nothing trained, protocol `all`, no instructions; the base model answers and says so
    fresh = ["analyze", str(tmp_path / "onset.png"), str(tmp_path / "apex.png"), "--map", str(tmp_path / "m.png"),
             "--max-new-tokens", "4", f"output_dir={tmp_path / 'fresh'}", "maps.head_motion=nose"]
    assert main(fresh) == 0
    printed = capsys.readouterr()
    assert "model tiny-random, adapter none (base model)" in printed.out
    assert printed.err.startswith(f"note: no trained adapter under {tmp_path / 'fresh' / 'train'}")
    assert "(random weights: its answers mean nothing); train one with `mellm train quickstart output_dir=" \
        in printed.err


def test_analyze_json_on_a_fresh_checkout_carries_the_note_and_a_train_command_without_serve_settings(
        motion_pair, tmp_path, capsys):
    """Nothing trained: `mellm analyze --json` answers with the base model and its note names the command that
    trains one, with the recipe's overrides but the service's (serve.*), which do not matter for training."""
    for name in ("onset", "apex"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), cv2.resize(motion_pair[name], (192, 192)))
    fresh = tmp_path / "fresh"
    assert main(["analyze", str(tmp_path / "onset.png"), str(tmp_path / "apex.png"), "--map", str(tmp_path / "m.png"),
                 "--max-new-tokens", "4", "--json", f"output_dir={fresh}", "serve.port=18765",
                 "maps.head_motion=nose", "serve.max_pixels=100"]) == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out.strip().splitlines()[-1])
    assert out["adapter"] is None and out["note"] == (
        f"note: no trained adapter under {fresh / 'train'}: the base model tiny-random answers (random weights: its "
        f"answers mean nothing); train one with `mellm train quickstart output_dir={fresh} maps.head_motion=nose`")
    assert "note:" not in printed.err  # --json: the note is in the answer, not beside it
