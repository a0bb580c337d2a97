"""Where a run's stages write under ``output_dir``: the one place that names each stage's folders and files.

A stage given another folder (``mellm maps --out``, a checkpoint) writes the same file names there.
"""

from __future__ import annotations

import json
from typing import Any

from mellm_core.files.storage import Location

MANIFEST = "manifest.jsonl"  # maps/: one MapRecord per sample, in input order
SUMMARY = "summary.json"  # instructions/ and train/: what the stage did, written last
TRAIN_LOG = "metrics.jsonl"  # train/ and every checkpoint: one line per logged step
ADAPTER = "adapter"  # train/ and every checkpoint: the trained adapter folder
PREDICTIONS = "predictions.jsonl"  # eval/: one line per test instruction
METRICS = "metrics.json"  # eval/: the scores per task
REPORT = "report.html"  # eval/: the self-contained report


def up_to_date(record: Location, digest: str, *outputs: Location) -> dict[str, Any] | None:
    """The JSON record a stage writes last (its summary or metrics) when that run had the settings hash ``digest``
    and every file of ``outputs`` is still there; else None, and the stage's work must be done again."""
    if not record.is_file() or not all(out.is_file() for out in outputs):
        return None
    old = json.loads(record.read_text())
    return old if old.get("settings_hash") == digest else None


class RunLayout:
    """The folders and files of one run under ``output_dir`` (a local or shared path, or a bucket URI)."""

    def __init__(self, output_dir: str | Location):
        self.root = Location(output_dir)

    @property
    def data(self) -> Location:
        """Where a generated dataset (SynthME) is written when ``data.root`` is not set."""
        return self.root / "data"

    @property
    def maps(self) -> Location:
        return self.root / "maps"

    @property
    def manifest(self) -> Location:
        return self.maps / MANIFEST

    @property
    def instructions(self) -> Location:
        return self.root / "instructions"

    @property
    def train_rows(self) -> Location:
        return self.instructions / "train.jsonl"

    @property
    def test_rows(self) -> Location:
        return self.instructions / "test.jsonl"

    @property
    def instructions_summary(self) -> Location:
        return self.instructions / SUMMARY

    @property
    def train(self) -> Location:
        return self.root / "train"

    @property
    def checkpoints(self) -> Location:
        """Checkpoints when ``train.storage_path`` is not set."""
        return self.train / "checkpoints"

    @property
    def adapter(self) -> Location:
        """The published adapter of a local run (a bucket's is the version ``train/adapter.json`` names)."""
        return self.train / ADAPTER

    @property
    def merged(self) -> Location:
        """``mellm export``'s default output: the adapter merged into the base model."""
        return self.train / "merged"

    @property
    def eval(self) -> Location:
        return self.root / "eval"

    @property
    def predictions(self) -> Location:
        return self.eval / PREDICTIONS

    @property
    def metrics(self) -> Location:
        return self.eval / METRICS

    @property
    def report(self) -> Location:
        return self.eval / REPORT
