"""The eval stage: batch inference over the test instructions on a Ray Data actor pool of model replicas.

Each replica loads the backbone (and adapter) once and answers batches with greedy generation; every answer is
parsed with the project's parser. Answers stream into a journal, so a stopped run resumes where it was;
``eval/predictions.jsonl``, ``metrics.json`` and ``report.html`` are written at the end.
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import ray
from tqdm import tqdm

from mellm_core.config import Recipe, device_warnings
from mellm_core.errors import InputError, MellmError
from mellm_core.files.frames import read_rgb
from mellm_core.files.layout import METRICS, PREDICTIONS, REPORT, RunLayout, up_to_date
from mellm_core.files.stagelock import StageLock
from mellm_core.files.storage import Journal, Location
from mellm_core.model.adapters import require_adapter
from mellm_core.model.predictor import Predictor
from mellm_core.records import Prediction
from mellm_core.results.evaluation import (
    eval_adapter,
    eval_digest,
    metrics_of,
    set_metrics,
    set_rows,
    training_aus,
)
from mellm_core.stages.cluster import init_ray
from mellm_core.summaries import EvalResult
from mellm_core.text.parse import parse_output

PARTIAL = "predictions.partial.jsonl"


class EvalActor:
    """One model replica: loads the predictor once, answers batches of test rows (JSON lines)."""

    def __init__(self, recipe: Recipe, adapter: str | None, device: str):
        import cv2
        import torch

        cv2.setNumThreads(1)
        torch.set_num_threads(max(1, int(recipe.eval.cpus_per_actor)))
        self.predictor = Predictor(recipe, adapter, device)
        self.max_new_tokens = recipe.eval.max_new_tokens

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        return {"line": [json.dumps(p, ensure_ascii=False) for p in self.answer([json.loads(t) for t in batch["row"]])]}

    def answer(self, rows: list[dict]) -> list[dict]:
        out: list[Prediction] = []
        ready: list[tuple[Prediction, str]] = []
        images: list[np.ndarray | None] = []  # None: the prompt carries the flow as text
        for row in rows:
            pred = Prediction.unanswered(row)
            try:
                images.append(read_rgb(pred.map_path) if row.get("images") else None)
                ready.append((pred, row["messages"][0]["content"]))
            except InputError as exc:  # recorded, scored as unparsed; the run goes on
                pred.error = str(exc)
            out.append(pred)
        if ready:
            try:
                texts: list[str | None] = list(self.predictor.texts([p for _, p in ready], images, self.max_new_tokens))
            except InputError:  # one bad sample must not cost the batch: ask again one at a time
                texts = [self._one(pred, prompt, image) for (pred, prompt), image in zip(ready, images, strict=True)]
            for (pred, _), text in zip(ready, texts, strict=True):
                if text is not None:
                    parsed = parse_output(text, self.predictor.labels)
                    pred.text, pred.emotion, pred.aus = text, parsed.emotion, list(parsed.aus)
        return [pred.to_dict() for pred in out]

    def _one(self, pred: Prediction, prompt: str, image: np.ndarray | None) -> str | None:
        """One sample's answer, or None with the reason in ``pred.error`` (scored as unparsed, asked again by the
        next run)."""
        try:
            return self.predictor.texts([prompt], [image], self.max_new_tokens)[0]
        except InputError as exc:
            pred.error = str(exc)
            return None


def _read_partial(journal: Journal, digest: str) -> dict[tuple[str, str], dict]:
    """Answers of an earlier run with the same settings (its first line holds the digest)."""
    lines = journal.lines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:  # a header a killed run wrote in part: nothing after it can be trusted
        return {}
    if not isinstance(header, dict) or header.get("settings_hash") != digest:
        return {}
    done = {}
    for line in lines[1:]:
        try:
            pred = json.loads(line)
        except json.JSONDecodeError:  # a line cut short when the run stopped
            continue
        if not pred.get("error"):  # a sample that failed is asked again
            done[(pred["sample_id"], pred["task"])] = pred
    return done


def run_eval(recipe: Recipe, progress: bool = True) -> EvalResult:
    """Evaluate the recipe's model on its test instructions; skip when predictions are up to date."""
    with StageLock(RunLayout(recipe.output_dir).eval, "eval"):  # one writer per folder
        return _run_eval(recipe, progress)


def _run_eval(recipe: Recipe, progress: bool) -> EvalResult:
    test = RunLayout(recipe.output_dir).test_rows
    if not test.is_file():
        raise InputError(f"{test} does not exist; run `mellm instructions` (or `mellm train`) first")
    out = RunLayout(recipe.output_dir).eval
    data = test.read_bytes()
    adapter = eval_adapter(recipe)
    if adapter:
        require_adapter(adapter, "eval.adapter")
    digest = eval_digest(recipe, data, adapter)
    metrics_path = out / METRICS
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    set_rows(recipe.eval.eval_sets(), rows)  # a set that holds no test sample: said before the model answers
    if up_to_date(metrics_path, digest, out / PREDICTIONS):
        old = EvalResult.read(metrics_path)
        if all(block.verdict for block in old.tasks.values()) and not recipe.eval.sets:
            return old
        preds = [json.loads(line) for line in (out / PREDICTIONS).read_text().splitlines() if line.strip()]
        result = _score(recipe, out, preds, digest, data, adapter)  # scored before verdicts, or (cheap) eval.sets
        result.skipped = True
        return result
    if not rows:
        raise InputError(f"{test} holds no test instructions")
    out.mkdir()
    journal = Journal(out / PARTIAL)
    done = _read_partial(journal, digest)
    todo = [r for r in rows if (r["sample_id"], r["task"]) not in done]
    if not done:
        journal.remove()
        journal.append([json.dumps({"settings_hash": digest})])
    if todo:
        _answer(recipe, adapter, todo, journal, done, progress)
    preds = sorted(done.values(), key=lambda p: (p["sample_id"], p["task"]))
    (out / PREDICTIONS).write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in preds))
    result = _score(recipe, out, preds, digest, data, adapter)
    journal.remove()
    return result


def _score(recipe: Recipe, out: Location, preds: list[dict], digest: str, data: bytes, adapter: str | None
           ) -> EvalResult:
    """Write ``metrics.json`` and ``report.html`` for the predictions; returns the metrics."""
    from mellm_core.results.report import write_report
    from mellm_core.stages.maps import read_records

    aus = training_aus(recipe.output_dir)
    result = EvalResult(recipe.eval.protocol, metrics_of(preds, recipe.eval.protocol, aus),
                        digest, adapter, recipe.backbone.model, recipe.backbone.name, hashlib.sha256(data).hexdigest(),
                        str(out), sets=set_metrics(recipe.eval.eval_sets(), preds, aus))
    result.write(out / METRICS)
    manifest = RunLayout(recipe.output_dir).manifest
    records = read_records(manifest.read_text().splitlines()) if manifest.is_file() else {}
    heads = {sid: r.head_motion for sid, r in records.items() if r.head_motion is not None}
    write_report(out / REPORT, preds, result, recipe.eval.gallery, title=f"{recipe.output_dir} — evaluation",
                 head_motion=heads)
    return result


def _answer(recipe: Recipe, adapter: str | None, todo: list[dict], journal: Journal, done: dict, progress: bool
            ) -> None:
    """Stream answers from the actor pool into the journal and ``done``."""
    cfg = recipe.eval
    if warning := device_warnings(recipe).get("eval"):
        print(f"warning: {warning}", file=sys.stderr)
    init_ray(recipe.ray.address, dashboard=recipe.ray.dashboard)
    device = "cuda" if cfg.gpus_per_actor > 0 else "cpu"
    ds = ray.data.from_items([{"row": json.dumps(r, ensure_ascii=False)} for r in todo])
    answers = ds.map_batches(EvalActor, fn_constructor_args=(recipe, adapter, device), batch_size=cfg.batch_size,
                             compute=ray.data.ActorPoolStrategy(size=cfg.actors), num_cpus=cfg.cpus_per_actor,
                             num_gpus=cfg.gpus_per_actor)
    bar = tqdm(total=len(todo), desc="eval", unit="sample", disable=not progress)
    try:
        for batch in answers.iter_batches(batch_size=None, batch_format="numpy"):
            for line in batch["line"]:
                pred = json.loads(line)
                done[(pred["sample_id"], pred["task"])] = pred
            journal.append(list(batch["line"]))
            bar.update(len(batch["line"]))
    except ray.exceptions.RayError as exc:
        raise MellmError(f"evaluation failed: {exc}") from exc
    finally:
        journal.flush()
        bar.close()
