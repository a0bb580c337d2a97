"""What a training run reads and leaves, without Ray: its settings digest, skip check, and the in-process run.

``run_local`` trains in this process (or under ``torchrun``) on instructions already built, for debugging and
for GPU machines that lack Ray; ``mellm_core.stages.train`` runs the same loop on Ray Train.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mellm_core.config import Recipe, settings_hash
from mellm_core.errors import InputError, MellmError
from mellm_core.files.layout import ADAPTER, SUMMARY, TRAIN_LOG, RunLayout, up_to_date
from mellm_core.files.stagelock import StageLock
from mellm_core.files.storage import Location, is_uri, replace_folder
from mellm_core.kinds import trainable
from mellm_core.model.adapters import CONFIG, anchor_adapter, publish_remote_adapter
from mellm_core.model.trainloop import PROGRESS, LocalSession, World, barrier, train_worker
from mellm_core.model.validation import BEST, BEST_LINE, held_out, subject
from mellm_core.model.watch import MetricsSinks
from mellm_core.plugins import get_registry
from mellm_core.summaries import InstructionsSummary, TrainSummary

RUN = "run"  # the run's folder name under the checkpoint storage
# Settings that change where or how fast training runs, not what it computes.
RUNTIME_KEYS = ("resume", "num_workers", "strategy", "use_gpu", "cpus_per_worker", "resources_per_worker",
                "max_failures", "storage_path", "keep_checkpoints", "log_every", "report_to")


@dataclass
class Plan:
    """A training run's inputs: instruction rows file, label order, settings for the workers, digest, folders."""

    rows_path: Location
    labels: list[str]
    settings: dict[str, Any]
    digest: str
    train_dir: Location
    storage: str
    val_subjects: list[str]  # training subjects held out for validation (train.val_fraction)


def canonical(rows: list[dict]) -> list[dict]:
    """Rows in one order however they were read (the seeded batch order is applied to this)."""
    return sorted(rows, key=lambda r: (str(r.get("sample_id")), str(r.get("task"))))


def read_rows(path: Location) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {n} is not JSON: {exc}") from None
    return canonical(rows)


def plan(recipe: Recipe) -> Plan:
    """The run for ``recipe`` from its instructions folder (which must exist); a backbone that only answers is
    refused here, before any worker starts."""
    name = recipe.backbone.name
    trainable(get_registry().create("backbone", name, **recipe.backbone.params), name)
    layout = RunLayout(recipe.output_dir)
    rows_path = layout.train_rows
    if not rows_path.is_file():
        raise InputError(f"{rows_path} does not exist; run `mellm instructions` (or `mellm train`) first")
    labels = InstructionsSummary.labels_of(layout.instructions_summary)
    # a split that leaves nothing to train on is said now, before any worker starts
    validation = held_out(read_rows(rows_path), recipe.train.val_fraction, recipe.seed)[1]
    train = {k: v for k, v in asdict(recipe.train).items() if k not in RUNTIME_KEYS}
    digest = settings_hash(hashlib.sha256(rows_path.read_bytes()).hexdigest(), asdict(recipe.backbone), train,
                           recipe.seed, labels)
    settings = {"backbone": asdict(recipe.backbone), "train": asdict(recipe.train), "seed": recipe.seed,
                "labels": labels}
    storage = recipe.train.storage_path or str(layout.checkpoints.resolve())
    return Plan(rows_path, labels, settings, digest, layout.train, storage, sorted({subject(r) for r in validation}))


def finished(p: Plan) -> TrainSummary | None:
    """The summary of a finished run with the same digest (its adapter present), else None."""
    if not up_to_date(p.train_dir / SUMMARY, p.digest):
        return None
    summary = TrainSummary.read(p.train_dir / SUMMARY)
    return summary if summary.adapter and (Location(summary.adapter) / CONFIG).is_file() else None


def unfinished(storage: str) -> dict[str, Any] | None:
    """The progress of the newest checkpoint in ``storage`` when the run that wrote it stopped before its last step
    (checkpoints written before runs recorded their length count as unfinished). Checkpoints lie at any depth
    (Ray Train nests them under its trial folder); staging copies (dot names) and unreadable files are skipped."""
    folder = Location(storage) / RUN
    found = []
    for name in folder.files():
        parts = name.split("/")
        if parts[-1] != PROGRESS or any(x.startswith(".") for x in parts) or not parts[-2].startswith("checkpoint_"):
            continue
        try:
            found.append(json.loads((folder / name).read_text()))
        except ValueError:
            continue
    if not found:
        return None
    latest = max(found, key=lambda x: x["step"])
    return latest if latest["step"] < latest.get("max_steps", latest["step"] + 1) else None


def start_run(p: Plan, recipe: Recipe, overwrite: bool) -> TrainSummary | None:
    """Before a run: the finished run's summary when there is nothing to do; else, for a fresh start
    (``train.resume=false``), an error rather than deleting an unfinished run's checkpoints unasked."""
    done = finished(p)
    if done:
        return done
    left = None if recipe.train.resume or overwrite else unfinished(p.storage)
    if left:
        raise InputError(f"{Location(p.storage) / RUN} holds the checkpoints of an unfinished run (step {left['step']}"
                         f" of {left.get('max_steps', '?')}): continue it with train.resume=true, or start over and "
                         "delete them with `mellm train ... --overwrite`")
    return None


def publish(checkpoint: Path, p: Plan, workers: int, ray: bool, nodes: list[str] | None = None,
            seconds: float | None = None) -> TrainSummary:
    """Copy the final checkpoint's adapter and metrics into ``train/`` and write ``summary.json`` (last: a run
    counts as finished only once its summary is there)."""
    progress = json.loads((checkpoint / PROGRESS).read_text())
    lines = [json.loads(x) for x in (checkpoint / TRAIN_LOG).read_text().splitlines() if x.strip()]
    done = [x for x in lines if x["step"] > progress["start_step"]]
    speed = sum(x["samples_per_s"] for x in done) / len(done) if done else 0.0
    cfg = p.settings["train"]
    kept = json.loads((checkpoint / BEST_LINE).read_text()) if cfg["keep"] == "best_val" else None
    source = checkpoint / (BEST if kept else ADAPTER)
    summary = TrainSummary(progress["start_step"], progress["step"], lines[-1]["loss"] if lines else None,
                           round(speed, 3), p.digest, workers=workers, ray=ray, nodes=nodes or [], seconds=seconds,
                           val_subjects=p.val_subjects, kept=kept)
    (p.train_dir / SUMMARY).unlink()
    adapter = p.train_dir / ADAPTER
    if adapter.remote:  # a new version beside the old, then the pointer; anchored where fetched (``local_adapter``)
        version = f"{p.digest[:12]}-{progress['step']:07d}-{time.time_ns()}"
        adapter = publish_remote_adapter(p.train_dir, Location(source), version)
    else:
        replace_folder(adapter.path, Location(source), prepare=anchor_adapter)
    (p.train_dir / TRAIN_LOG).write_bytes((checkpoint / TRAIN_LOG).read_bytes())
    summary.adapter = str(adapter.resolve())
    summary.write(p.train_dir / SUMMARY)
    return summary


def run_name(recipe: Recipe) -> str:
    """The name reporters give the run: its output folder's."""
    return recipe.output_dir.rstrip("/").rsplit("/", 1)[-1]


def _world(use_gpu: bool) -> World:
    """One process, or one rank of a ``torchrun`` launch (RANK / WORLD_SIZE / LOCAL_RANK set)."""
    import torch
    import torch.distributed as dist

    cuda = use_gpu and torch.cuda.is_available()
    if use_gpu and not cuda:
        raise InputError("train.use_gpu is true but torch sees no GPU; set train.use_gpu=false to train on CPU")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local}" if cuda else "cpu"
    if size > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(int(os.environ.get("RANK", "0")), size, device)


def run_local(recipe: Recipe, progress: bool = True, overwrite: bool = False) -> TrainSummary | None:
    """Train in this process with the same loop Ray Train runs; instructions must already exist. Starting over
    on an unfinished run's checkpoints needs ``overwrite``. Other ranks of a ``torchrun`` launch return None."""
    if os.environ.get("RANK", "0") != "0":  # other ranks of a torchrun launch: rank 0 holds the stage's lock
        return _train_local(recipe, progress, overwrite)
    with StageLock(RunLayout(recipe.output_dir).train, "train"):  # one writer per folder
        return _train_local(recipe, progress, overwrite)


def _train_local(recipe: Recipe, progress: bool, overwrite: bool) -> TrainSummary | None:
    from tqdm import tqdm

    p = plan(recipe)
    if done := start_run(p, recipe, overwrite):
        return done
    if is_uri(p.storage):
        raise InputError(f"checkpoints at {p.storage}: training without Ray keeps them in a local or shared folder; "
                         "set train.storage_path to one")
    world = _world(recipe.train.use_gpu)
    storage = Path(p.storage) / RUN
    if world.rank == 0:
        if not recipe.train.resume:
            shutil.rmtree(storage, ignore_errors=True)
        storage.mkdir(parents=True, exist_ok=True)
    barrier()  # no rank looks for a checkpoint to restore before rank 0 has cleared the old ones
    bar = tqdm(total=recipe.train.max_steps, desc="train", unit="step", disable=not progress or world.rank != 0)

    sinks = MetricsSinks(recipe.train.report_to if world.rank == 0 else [], p.train_dir, recipe.train.resume,
                         run_name(recipe), p.settings)

    def show(line: dict) -> None:
        bar.update(line["step"] - bar.n)
        bar.set_postfix(loss=line["loss"])
        sinks.write(line)

    session = LocalSession(storage, recipe.train.keep_checkpoints, show)
    try:
        train_worker(p.settings, read_rows(p.rows_path), world, session)
    except BaseException:
        sinks.close(failed=True)
        raise
    else:
        sinks.close()
    finally:
        bar.close()
    if world.rank != 0:
        return None
    final = session.latest()
    if final is None:
        raise MellmError(f"training ended without a checkpoint in {storage}")
    return publish(final, p, world.size, ray=False)
