"""Where training's metrics lines go besides ``train/metrics.jsonl``: TensorBoard event files (``train.report_to``).

The driver writes them (the Ray Train driver's progress thread, or ``mellm train --local``'s process), so they
land in the run's own ``train/tensorboard`` folder whichever nodes the workers ran on:

    tensorboard --logdir runs/quickstart/train/tensorboard
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from mellm_core.files.storage import Location

SCALARS = {"loss": "train/loss", "lr": "train/lr", "samples_per_s": "train/samples_per_s",
           "tokens_per_s": "train/tokens_per_s", "val_loss": "val/loss", "val_acc": "val/acc"}  # key: tag


class MetricsSinks:
    """The recipe's reporters, each given every metrics line ``{"step", "loss", "lr", ...}``."""

    def __init__(self, report_to: list[str], train_dir: Location, resume: bool):
        """A fresh run (not ``resume``) starts the event folder over, so that TensorBoard shows one run."""
        self.writers: list[Any] = []
        if "tensorboard" in report_to:
            if train_dir.remote:
                print(f"warning: no TensorBoard events: they are written to a local folder, and {train_dir} is a "
                      "URI", file=sys.stderr)
            else:
                from tensorboardX import SummaryWriter

                folder = train_dir.path / "tensorboard"
                if not resume:
                    shutil.rmtree(folder, ignore_errors=True)
                self.writers.append(SummaryWriter(logdir=str(folder), flush_secs=10))

    def write(self, line: dict[str, Any]) -> None:
        for writer in self.writers:
            for key, tag in SCALARS.items():
                if isinstance(line.get(key), (int, float)):
                    writer.add_scalar(tag, line[key], line["step"])

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
