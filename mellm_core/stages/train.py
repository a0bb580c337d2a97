"""The train stage: the per-worker loop on Ray Train (``TorchTrainer``), data from Ray Data, checkpoints in storage.

Checkpoints (adapter, optimizer, scheduler, step, metrics) go to ``train.storage_path`` (a local folder, a shared
path or a cloud URI); a failed worker group restarts from the latest one (``train.max_failures``) and
``train.resume=true`` continues a stopped run. The final adapter and metrics are copied into ``output_dir/train``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.train import Checkpoint, CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig, UserCallback
from ray.train.torch import TorchConfig, TorchTrainer
from ray.util.queue import Queue
from tqdm import tqdm

from mellm_core.config import Recipe
from mellm_core.errors import MellmError
from mellm_core.files.layout import RunLayout
from mellm_core.files.stagelock import StageLock
from mellm_core.files.storage import Location
from mellm_core.model.training import RUN, canonical, plan, publish, run_name, start_run
from mellm_core.model.trainloop import World, checkpoint_name, train_worker
from mellm_core.model.watch import MetricsSinks
from mellm_core.stages.cluster import init_ray
from mellm_core.summaries import TrainSummary


class RaySession:
    """Metrics lines and checkpoints through ``ray.train.report``; the driver sees the lines Ray Train received
    (``Forward``)."""

    def restore(self) -> Path | None:
        checkpoint = ray.train.get_checkpoint()
        return Path(checkpoint.to_directory()) if checkpoint else None

    def report(self, metrics: dict[str, Any], checkpoint: Path | None) -> None:
        if checkpoint is None:
            ray.train.report(metrics)
        else:
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(checkpoint)),
                             checkpoint_dir_name=checkpoint_name(metrics["step"]))

    def progress(self, metrics: dict[str, Any]) -> None:
        """Nothing: the line reaches the driver as Ray Train's report of it."""


class Forward(UserCallback):
    """On Ray Train's controller: rank 0's line of every report goes on to the driver's queue, so the progress bar
    and the reporters show what Ray Train received."""

    def __init__(self, queue: Queue):
        self.queue = queue

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Checkpoint | None) -> None:
        self.queue.put(metrics[0])


def _worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker entry: rows from this worker's Ray Data shard, then the plain loop."""
    import cv2
    import ray.train.torch

    cv2.setNumThreads(1)
    context = ray.train.get_context()
    world = World(context.get_world_rank(), context.get_world_size(), str(ray.train.torch.get_device()))
    config["queue"].put({"rank": world.rank, "node": ray.get_runtime_context().get_node_id()})
    shard = ray.train.get_dataset_shard("train")
    rows = canonical([json.loads(row["text"]) for row in shard.iter_rows()])
    train_worker(config["settings"], rows, world, RaySession())


def _start_over(storage: str) -> None:
    """Remove the previous run's checkpoints so that Ray Train does not restore from them."""
    (Location(storage) / RUN).rmtree()


def _follow(queue: Queue, total: int, stop: threading.Event, show: bool, nodes: dict[int, str],
            sinks: MetricsSinks) -> None:
    """Driver thread: move the progress bar and feed the reporters as Ray Train receives metrics lines (the driver
    closes them after this thread ends); note the node
    of each rank (a worker group that Ray Train restarts after a failure reports again, and its placement
    replaces the earlier one)."""
    bar = tqdm(total=total, desc="train", unit="step", disable=not show)
    while not stop.is_set() or not queue.empty():
        try:
            line = queue.get(timeout=0.5)
        except Exception:  # queue.Empty, or the queue actor gone at shutdown
            continue
        if "node" in line:
            nodes[line["rank"]] = line["node"]
            continue
        bar.update(line["step"] - bar.n)
        bar.set_postfix(loss=line["loss"], samples_s=line["samples_per_s"])
        sinks.write(line)
    bar.close()


def run_train(recipe: Recipe, progress: bool = True, overwrite: bool = False) -> TrainSummary:
    """Fine-tune the recipe's backbone on its instructions (building them first when absent or stale). Starting
    over on an unfinished run's checkpoints needs ``overwrite``."""
    from mellm_core.stages.instructions import run_instructions
    from mellm_core.stages.maps import run_recipe_maps

    run_recipe_maps(recipe, progress=progress)
    run_instructions(recipe)
    with StageLock(RunLayout(recipe.output_dir).train, "train"):  # one writer per folder
        return _train(recipe, progress, overwrite)


def _train(recipe: Recipe, progress: bool, overwrite: bool) -> TrainSummary:
    p = plan(recipe)
    if done := start_run(p, recipe, overwrite):
        return done
    cfg = recipe.train
    init_ray(recipe.ray.address, dashboard=recipe.ray.dashboard)
    if not cfg.resume:
        _start_over(p.storage)
    queue = Queue(maxsize=1000)
    resources = {"CPU": cfg.cpus_per_worker, **cfg.resources_per_worker}
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"settings": p.settings, "queue": queue},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        run_config=RunConfig(name=RUN, storage_path=p.storage, callbacks=[Forward(queue)],
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints)),
        # read before the workers take every CPU; rows are small (text and an image path)
        datasets={"train": ray.data.read_text(str(p.rows_path.resolve())).materialize()},
        dataset_config=DataConfig(datasets_to_split=[]),  # every worker reads all rows, then takes its slice
    )
    stop, nodes = threading.Event(), dict[int, str]()  # worker rank -> its node
    sinks = MetricsSinks(cfg.report_to, p.train_dir, cfg.resume, run_name(recipe), p.settings)
    follower = threading.Thread(target=_follow, args=(queue, cfg.max_steps, stop, progress, nodes, sinks),
                                daemon=True)
    follower.start()
    started = time.perf_counter()
    failed = True
    try:
        result = trainer.fit()
        failed = result.checkpoint is None
    except Exception as exc:  # Ray wraps worker errors; name the cause in one line
        raise MellmError(f"training failed: {getattr(exc, 'cause', None) or exc}") from exc
    finally:
        stop.set()
        follower.join(timeout=5)
        sinks.close(failed)  # after the follower's last line
    if result.checkpoint is None:
        raise MellmError(f"training ended without a checkpoint: {result.error}")
    with result.checkpoint.as_directory() as folder:
        return publish(Path(folder), p, cfg.num_workers, ray=True, nodes=sorted(set(nodes.values())),
                       seconds=round(time.perf_counter() - started, 1))
