"""Where training's metrics lines go besides ``train/metrics.jsonl`` (``train.report_to``): TensorBoard event
files, an MLflow run, a Weights & Biases run.

The driver writes them (the Ray Train driver's progress thread, or ``mellm train --local``'s process), so they
land in the run's own ``train/`` folder whichever nodes the workers ran on:

    tensorboard --logdir runs/quickstart/train/tensorboard
    mlflow ui --backend-store-uri sqlite:///runs/quickstart/train/mlflow.db   # unless MLFLOW_TRACKING_URI is set
    wandb sync runs/quickstart/train/wandb/offline-run-*                      # after a run with WANDB_MODE=offline
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from typing import Any, Protocol

from mellm_core.errors import require_package
from mellm_core.files.storage import Location

# metrics-line key -> the name every reporter gives it
SCALARS = {"loss": "train/loss", "lr": "train/lr", "samples_per_s": "train/samples_per_s",
           "tokens_per_s": "train/tokens_per_s", "val_loss": "val/loss", "val_acc": "val/acc"}
PACKAGES = {"tensorboard": ("tensorboardX", "tensorboardX"), "mlflow": ("mlflow", "mellm[mlflow]"),
            "wandb": ("wandb", "mellm[wandb]")}  # reporter: (module it needs, what to install)
PROJECT = "mellm"  # MLflow experiment and W&B project, unless the environment names another


class Reporter(Protocol):
    def write(self, step: int, scalars: dict[str, float]) -> None: ...

    def close(self, failed: bool) -> None: ...


class TensorBoard:
    """Event files in ``train/tensorboard``; a fresh run (not ``resume``) starts the folder over."""

    def __init__(self, train_dir: Location, name: str, params: dict[str, Any], resume: bool):
        from tensorboardX import SummaryWriter

        folder = train_dir.path / "tensorboard"
        if not resume:
            shutil.rmtree(folder, ignore_errors=True)
        self.writer = SummaryWriter(logdir=str(folder), flush_secs=10)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def close(self, failed: bool) -> None:
        self.writer.close()


class MLflow:
    """One MLflow run per ``mellm train`` (params: the run's settings; a resumed run is a new one, tagged
    ``resumed``; one that stops with an error is marked FAILED), in ``$MLFLOW_TRACKING_URI`` or else a SQLite
    store beside the run (``train/mlflow.db``); experiment ``$MLFLOW_EXPERIMENT_NAME`` or ``mellm``."""

    def __init__(self, train_dir: Location, name: str, params: dict[str, Any], resume: bool):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its table set-up chatter
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{train_dir.path.resolve() / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(experiment_id, run_name=name, tags={"resumed": str(resume)}).info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def write(self, step: int, scalars: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in scalars.items()])

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


class WandB:
    """A Weights & Biases run (config: the run's settings) with its files in ``train/wandb``; project
    ``$WANDB_PROJECT`` or ``mellm``. It needs ``wandb login``, or ``WANDB_MODE=offline`` (``wandb sync`` later)."""

    def __init__(self, train_dir: Location, name: str, params: dict[str, Any], resume: bool):
        import wandb

        train_dir.path.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or PROJECT, name=name, config=params,
                              dir=str(train_dir.path), reinit="create_new")

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


REPORTERS: dict[str, type] = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}


class MetricsSinks:
    """The recipe's reporters, each given every metrics line ``{"step", "loss", "lr", ...}``."""

    def __init__(self, report_to: list[str], train_dir: Location, resume: bool, name: str = "",
                 params: dict[str, Any] | None = None):
        """``name`` names the run (the output folder's name); ``params`` are its settings, flattened."""
        self.reporters: list[Reporter] = []
        for reporter in report_to:  # before any is opened
            module, install = PACKAGES[reporter]
            require_package(module, f"train.report_to: {reporter}", install)
        if report_to and train_dir.remote:
            print(f"warning: no {', '.join(report_to)} reports: they are written to a local folder, and {train_dir} "
                  "is a URI", file=sys.stderr)
            return
        for reporter in report_to:
            self.reporters.append(REPORTERS[reporter](train_dir, name, flat(params or {}), resume))

    def write(self, line: dict[str, Any]) -> None:
        scalars = {tag: float(line[key]) for key, tag in SCALARS.items() if isinstance(line.get(key), (int, float))}
        for reporter in self.reporters:
            reporter.write(line["step"], scalars)

    def close(self, failed: bool = False) -> None:
        """End every reporter's run: finished, or failed (a training run that stopped with an error)."""
        for reporter in self.reporters:
            reporter.close(failed)


def flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-4}}`` as ``{"train.lr": 1e-4}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out
