"""The per-worker training loop in plain PyTorch: Ray Train workers run it, and it runs alone without Ray.

Several workers share the model as DDP replicas or, with ``train.strategy: fsdp``, as FSDP2 shards (each of the
model's ``_no_split_modules`` blocks a unit), so a backbone larger than one GPU trains; a sharded run gathers its
trainable weights and optimizer state whole into each checkpoint, so checkpoints are the same files either way.

Every worker sees all training rows and takes its slice of each global batch from one seeded order of the data
(an endless chain of per-epoch permutations), so the data position is the step number: a run resumes at the
exact sample, and N workers train on the same batches as one worker with the same global batch.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import random
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from mellm_core.config import BackboneConfig, TrainConfig
from mellm_core.errors import InputError
from mellm_core.files.atomic import built_then_swapped
from mellm_core.files.layout import ADAPTER, TRAIN_LOG
from mellm_core.files.storage import model_folder
from mellm_core.kinds import trainable
from mellm_core.model.validation import better, held_out, keep_best, restore_best, validate
from mellm_core.plugins import get_registry

STATE = "trainer_state.pt"
PREFETCH = 2  # steps whose batches are collated ahead, in a thread, while the current step computes
PROGRESS = "progress.json"  # {"step", "start_step", "max_steps"}: where the run that wrote a checkpoint began and
# where it was going


@dataclass
class World:
    """This worker's place: rank, number of workers and torch device."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"


class Session(Protocol):
    """Where checkpoints come from and go to (Ray Train's, or a local folder's)."""

    def restore(self) -> Path | None:
        """The latest checkpoint folder to continue from, or None."""

    def report(self, metrics: dict[str, Any], checkpoint: Path | None) -> None:
        """Record a metrics line, every ``log_every`` steps, and with it a checkpoint folder on checkpoint steps
        (rank 0 passes one, the others None); every worker calls this."""

    def progress(self, metrics: dict[str, Any]) -> None:
        """Show a metrics line (rank 0 only)."""


def order(n: int, seed: int, start: int, count: int) -> list[int]:
    """Row indices at stream positions ``[start, start + count)``: epoch ``e`` is a permutation seeded by (seed, e)."""
    if n < 1:
        raise InputError("the training set is empty")
    out, perms = [], {}
    for pos in range(start, start + count):
        epoch = pos // n
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(perms[epoch][pos % n]))
    return out


def phase_rows(rows: list[dict], cfg: TrainConfig, step: int) -> list[dict]:
    """The rows optimizer step ``step`` draws from: during the first ``curriculum_steps`` only the rows of
    ``curriculum_tasks`` (the short label task first makes a small model read the image), then every row."""
    if step >= cfg.curriculum_steps:
        return rows
    chosen = [r for r in rows if r.get("task") in cfg.curriculum_tasks]
    if not chosen:
        tasks = sorted({str(r.get("task")) for r in rows})
        raise InputError(f"train.curriculum_tasks {list(cfg.curriculum_tasks)} match no training rows "
                         f"(their tasks: {', '.join(tasks)})")
    return chosen


def balanced(rows: list[dict]) -> list[dict]:
    """The rows with every label of a task as frequent as that task's most frequent one: a rarer label's rows
    repeat in turn. Trained on these, a small model finds no easy answer in the majority class and learns to tell
    the classes apart, which UAR (the field's headline) measures."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((str(row.get("task")), str(row.get("label"))), []).append(row)
    largest: dict[str, int] = {}
    for (task, _), members in groups.items():
        largest[task] = max(largest.get(task, 0), len(members))
    return [members[i % len(members)] for (task, _), members in groups.items() for i in range(largest[task])]


def micro_batches(rows: list[dict], cfg: TrainConfig, seed: int, step: int, world: World) -> Iterator[list[dict]]:
    """This worker's micro-batches for optimizer step ``step`` (0-based), from its phase's rows."""
    rows = phase_rows(rows, cfg, step)
    if cfg.balance:
        rows = balanced(rows)
    per_worker = cfg.batch_size // world.size
    micro = per_worker // cfg.grad_accum
    mine = order(len(rows), seed, step * cfg.batch_size, cfg.batch_size)[world.rank * per_worker:][:per_worker]
    for a in range(cfg.grad_accum):
        yield [rows[i] for i in mine[a * micro:(a + 1) * micro]]


def param_groups(named: list[tuple[str, torch.nn.Parameter]], cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW's parameter groups: weight decay on matrices (projections, embeddings, LoRA factors), none on vectors
    (norm gains, biases), and each parameter's learning rate scaled by the first ``train.lr_scales`` pattern its
    name matches. Decay pulls a norm's gain towards zero, shrinking every signal through it; a from-scratch vision
    tower at the LM's rate kept the demo's model on its answer prior in some seeds (docs/demo.md)."""
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, param in named:
        scale = next((f for pattern, f in cfg.lr_scales.items() if re.search(pattern, name)), 1.0)
        groups.setdefault((float(scale), param.ndim >= 2), []).append(param)
    return [{"params": params, "lr": cfg.lr * scale, "weight_decay": cfg.weight_decay if decays else 0.0}
            for (scale, decays), params in groups.items()]


def cosine(cfg: TrainConfig) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then cosine decay to zero at ``max_steps``. A curriculum gives each
    phase its own warm-up and decay: the label task settles at a falling rate (which is when a small model starts
    to read the image) before the longer analyses join at full rate."""
    def factor(step: int) -> float:
        start, end = (0, cfg.curriculum_steps) if step < cfg.curriculum_steps else (cfg.curriculum_steps,
                                                                                      cfg.max_steps)
        step -= start
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        progress = (step - cfg.warmup_steps) / max(1, end - start - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _reduce(values: list[float], world: World) -> list[float]:
    """Sums over workers."""
    if world.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.tolist()


def train_worker(settings: dict[str, Any], rows: list[dict], world: World, session: Session) -> None:
    """Train ``settings`` (backbone, train, seed, labels) on ``rows``; checkpoint through ``session``."""
    cfg = TrainConfig(**settings["train"])
    bcfg = BackboneConfig(**settings["backbone"])
    rows, val_rows = held_out(rows, cfg.val_fraction, settings["seed"])
    seed_everything(settings["seed"])
    backbone = trainable(get_registry().create("backbone", bcfg.name, **bcfg.params), bcfg.name)
    start = session.restore()
    adapter = str(start / ADAPTER) if start else None
    from_rank0 = sharded_load(backbone, cfg.strategy, world)
    module = backbone.load(model_folder(bcfg.model), device=world.device, adapter=adapter, train=cfg,
                           labels=settings["labels"],
                           **({"place": "host" if world.rank == 0 else "meta"} if from_rank0 else {}))
    model = distribute(module, cfg.strategy, world, from_rank0)
    # by the module's own names (DDP's wrapper would prefix "module." on 2 workers, not on 1, and lr_scales'
    # patterns must match alike); FSDP2 shards ``module`` in place, so these are its sharded parameters
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    optimizer = torch.optim.AdamW(param_groups(named, cfg), lr=cfg.lr)
    schedule = cosine(cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step, history = restore_state(start, model, optimizer, scheduler, world) if start else (0, [])
    start_step = step
    best_dir = Path(tempfile.mkdtemp(prefix="mellm-best-"))  # rank 0: the best adapter so far (train.keep)
    best = restore_best(start, best_dir) if start else None
    micro = cfg.batch_size // world.size // cfg.grad_accum
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if world.device.startswith("cuda")
                else contextlib.nullcontext())
    window = _window()
    pool = ThreadPoolExecutor(1, thread_name_prefix="mellm-collate")
    try:
        ahead: dict[int, Future] = {}
        while step < cfg.max_steps:
            for later in range(step, min(step + PREFETCH + 1, cfg.max_steps)):
                if later not in ahead:  # the next steps' batches are made while this one computes
                    ahead[later] = pool.submit(_collated, backbone, rows, cfg, settings["seed"], later, world)
            lr = cfg.lr * schedule(step)  # train.lr's (a group's may be scaled by train.lr_scales)
            for a, batch in enumerate(ahead.pop(step).result()):
                batch = {k: v.to(world.device, non_blocking=True) if torch.is_tensor(v) else v
                         for k, v in batch.items()}
                with _gradient_sync(model, a == cfg.grad_accum - 1), autocast:
                    loss, tokens = backbone.loss(model, batch)
                    (loss / cfg.grad_accum).backward()
                window["loss"] += loss.detach() / cfg.grad_accum  # tensors: read back only when a line is logged
                window["tokens"] += tokens
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window["steps"] += 1
            checkpoint_now = step % cfg.checkpoint_every == 0 or step == cfg.max_steps
            validate_now = bool(val_rows) and (step % cfg.eval_every == 0 or step == cfg.max_steps)
            log_now = step % cfg.log_every == 0 or checkpoint_now or validate_now
            if log_now:
                loss_sum, tokens = _reduce([float(window["loss"]), float(window["tokens"])], world)
                n, secs = window["steps"], time.perf_counter() - window["since"]  # float() waited for the device
                line = {"step": step, "loss": round(loss_sum / world.size / n, 6), "lr": lr,
                        "samples_per_s": round(n * cfg.batch_size / secs, 3), "tokens_per_s": round(tokens / secs, 1)}
                if validate_now:
                    line |= _rank0(validate(backbone, model, val_rows, settings["labels"], micro, world.device), world)
                    if cfg.keep == "best_val" and better(line, best):
                        best = {k: v for k, v in line.items() if k == "step" or k.startswith("val_")}
                        weights, _ = _whole(model)
                        if world.rank == 0:
                            shutil.rmtree(best_dir, ignore_errors=True)
                            _save(backbone, model, best_dir, weights)
                history.append(line)
                if world.rank == 0:
                    session.progress(line)
                if not checkpoint_now:  # a checkpoint reports its line with it
                    session.report(line, None)
            if checkpoint_now:
                kept = (best_dir, best) if best else None
                _checkpoint(backbone, model, optimizer, scheduler, step, start_step, cfg.max_steps, history, kept,
                            world, session)
            if log_now:
                window = _window()  # after the checkpoint, so that its writing is not counted as training
    finally:  # a failed step shows its error at once, without waiting for the batches collated ahead
        pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(best_dir, ignore_errors=True)


def sharded_load(backbone: Any, strategy: str, world: World) -> bool:
    """Whether FSDP workers load sharded: rank 0 reads the weights into host memory, the others build the bare
    structure, and each keeps its shard of rank 0's weights, so that no device ever holds the whole model. A
    backbone whose ``load`` takes no ``place`` loads whole on every worker (the weights must fit one device)."""
    return strategy == "fsdp" and world.size > 1 and "place" in inspect.signature(backbone.load).parameters


def distribute(module: torch.nn.Module, strategy: str, world: World, from_rank0: bool = False) -> torch.nn.Module:
    """The model the workers step together: ``module`` alone, DDP's replica of it, or ``module`` itself sharded in
    place by FSDP2, one unit per block the model names unsplittable (decoder layers, vision blocks), then the rest;
    ``from_rank0``: the weights are rank 0's (in host memory; the other ranks' module is on the meta device)."""
    if world.size == 1:
        return module
    if strategy == "ddp":
        return torch.nn.parallel.DistributedDataParallel(module)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from torch.distributed.fsdp import fully_shard

    # the model's output holds views (logits at the answer columns); the loss never changes them in place
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in module.parameters() if p.requires_grad})
    if len(dtypes) > 1:
        raise InputError(f"train.strategy=fsdp needs every trained weight in one dtype, and these are in "
                         f"{' and '.join(dtypes)} (base weights trained beside LoRA's, as backbone.params."
                         "train_base does on a GPU); use train.strategy=ddp")
    weights, buffers = ({}, {})
    if from_rank0:
        if world.rank == 0:  # the host copies outlive the module's move to the meta device
            weights, buffers = module.state_dict(), {n: b.detach().clone() for n, b in module.named_buffers()}
        swapping = torch.__future__.get_swap_module_params_on_conversion()
        torch.__future__.set_swap_module_params_on_conversion(True)  # a shared weight (tied embeddings) stays one
        try:
            module.to("meta")
        finally:
            torch.__future__.set_swap_module_params_on_conversion(swapping)
    units = set(getattr(module, "_no_split_modules", None) or ())
    for block in [m for m in module.modules() if type(m).__name__ in units]:
        fully_shard(block)
    fully_shard(module)
    if from_rank0:
        module.to_empty(device=world.device)
        set_model_state_dict(module, weights, options=StateDictOptions(full_state_dict=True,
                                                                       broadcast_from_rank0=True))
        for name, buffer in module.named_buffers():  # those a state dict leaves out too (rotary frequencies)
            if world.rank == 0:
                buffer.copy_(buffers[name])
            torch.distributed.broadcast(buffer, 0)
    return module


def _sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _gradient_sync(model: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """Workers average gradients on the last micro-batch of a step only (the others accumulate locally)."""
    if _sharded(model):
        model.set_requires_gradient_sync(last)  # type: ignore[operator]
    elif isinstance(model, torch.nn.parallel.DistributedDataParallel) and not last:
        return model.no_sync()
    return contextlib.nullcontext()


def _window() -> dict[str, Any]:
    """Sums over the steps since the last metrics line, and when they began."""
    return {"loss": 0.0, "tokens": 0.0, "steps": 0, "since": time.perf_counter()}


def _collated(backbone: Any, rows: list[dict], cfg: TrainConfig, seed: int, step: int, world: World
              ) -> list[dict[str, Any]]:
    """This worker's collated micro-batches of one step (in pinned memory for a GPU, so copies overlap)."""
    batches = [backbone.collate(chunk) for chunk in micro_batches(rows, cfg, seed, step, world)]
    if world.device.startswith("cuda"):
        batches = [{k: v.pin_memory() if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]
    return batches


def restore_state(folder: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any, world: World
                  ) -> tuple[int, list[dict]]:
    """Optimizer, schedule and RNG state of a checkpoint; its step and metrics history.

    The state loads to the CPU whatever the device: the optimizer moves its tensors to its parameters' device
    itself, and the CPU generator's state must stay a CPU ByteTensor (loaded onto a GPU, set_rng_state rejects it).
    A sharded model's workers each take their shard of the whole optimizer state the checkpoint holds.
    """
    state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    saved = [len(g["params"]) for g in state["optimizer"]["param_groups"]]
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    if saved != sizes:
        raise InputError(f"{folder} was written with other optimizer groups (parameters per group: "
                         f"{saved}, this run's: {sizes}): "
                         "train.lr_scales, the trained modules or the LoRA targets changed since; resume with the "
                         "settings that wrote it, or start over with `mellm train ... --overwrite`")
    if _sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, _by_name(state["optimizer"], model, optimizer),
                                 options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rngs = _listed(state["rng"])  # one per rank: dropout continues exactly where each rank stopped
    mine = world.rank if len(rngs) == world.size else 0  # another number of workers: rank 0's for all
    torch.set_rng_state(rngs[mine])
    if "cuda_rng" in state and world.device.startswith("cuda"):
        torch.cuda.set_rng_state(_listed(state["cuda_rng"])[mine], world.device)
    history = [json.loads(line) for line in (folder / TRAIN_LOG).read_text().splitlines() if line.strip()]
    return int(state["step"]), history


def _whole(model: torch.nn.Module, optimizer: Any = None) -> tuple[dict | None, dict | None]:
    """A sharded model's trainable weights (and the optimizer's state) gathered whole on rank 0, every worker
    taking part; (None, None) for a model each worker holds whole."""
    if not _sharded(model):
        return None, None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    if optimizer is None:
        return get_model_state_dict(model, options=options), None
    return get_state_dict(model, optimizer, options=options)


def _save(backbone: Any, model: torch.nn.Module, folder: Path, weights: dict | None) -> None:
    """The backbone's save of DDP's module or the model; the gathered weights of a sharded one."""
    module = getattr(model, "module", model)
    if weights is None:  # backbones written before ``save`` took gathered weights still save unsharded models
        backbone.save(module, folder)
    else:
        backbone.save(module, folder, weights)


def _rank0(values: dict[str, Any], world: World) -> dict[str, Any]:
    """Rank 0's ``values`` on every rank (their decisions then agree, whatever rounding each rank met)."""
    if world.size == 1:
        return values
    box = [values]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _listed(value: Any) -> list[Any]:
    """A checkpoint's per-rank values (checkpoints from before they were kept per rank hold one)."""
    return value if isinstance(value, list) else [value]


def _by_name(state: dict[str, Any], model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """An optimizer state keyed by parameter number (a checkpoint of a model each worker held whole) keyed by
    parameter name, as a sharded model loads it: number i is the i-th parameter of the optimizer's groups in
    both (the same recipe groups the same parameters in the same order)."""
    if not state["state"] or isinstance(next(iter(state["state"])), str):
        return state
    name_of = {id(p): name for name, p in model.named_parameters()}
    names = [name_of[id(p)] for g in optimizer.param_groups for p in g["params"]]
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
    return {"state": {names[i]: v for i, v in state["state"].items()}, "param_groups": groups}


def _checkpoint(backbone: Any, model: torch.nn.Module, optimizer: Any, scheduler: Any, step: int,
                start_step: int, max_steps: int, history: list[dict], best: tuple[Path, dict] | None, world: World,
                session: Session) -> None:
    """Rank 0 writes adapter, optimizer, scheduler, step and metrics (and the best adapter so far, with its metrics
    line) to a folder; every worker reports. A sharded model's state is first gathered whole to rank 0."""
    metrics = history[-1]  # a checkpoint step always logs its metrics line first
    device = next(model.parameters()).device
    rngs = _gathered(torch.get_rng_state(), world)
    cuda_rngs = _gathered(torch.cuda.get_rng_state(device), world) if device.type == "cuda" else None
    weights, optimizer_state = _whole(model, optimizer)
    if world.rank != 0:
        session.report(metrics, None)
        return
    folder = Path(tempfile.mkdtemp(prefix="mellm-ckpt-"))
    try:
        _save(backbone, model, folder / ADAPTER, weights)
        state = {"optimizer": optimizer_state or optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "step": step, "rng": rngs}
        if cuda_rngs:
            state["cuda_rng"] = cuda_rngs
        torch.save(state, folder / STATE)
        (folder / PROGRESS).write_text(json.dumps({"step": step, "start_step": start_step, "max_steps": max_steps}))
        (folder / TRAIN_LOG).write_text("".join(json.dumps(h) + "\n" for h in history))
        if best:
            keep_best(folder, *best)
        session.report(metrics, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _gathered(value: torch.Tensor, world: World) -> list[torch.Tensor]:
    """``value`` of every rank, in rank order."""
    if world.size == 1:
        return [value]
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    """Wait for every rank of a torchrun launch (nothing in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def checkpoint_name(step: int) -> str:
    return f"checkpoint_{step:07d}"


class LocalSession:
    """Checkpoints in a local folder (``checkpoint_0000100``, ...), keeping the newest ``keep``."""

    def __init__(self, storage: Path, keep: int, progress: Callable[[dict], None] | None = None):
        self.storage, self.keep, self._progress = storage, keep, progress

    def latest(self) -> Path | None:
        found = sorted(p for p in self.storage.glob("checkpoint_*") if (p / STATE).is_file())
        return found[-1] if found else None

    def restore(self) -> Path | None:
        return self.latest()

    def report(self, metrics: dict[str, Any], checkpoint: Path | None) -> None:
        if checkpoint is not None:
            self._write(metrics["step"], checkpoint)
        barrier()  # under torchrun no rank goes on while rank 0 replaces and prunes checkpoints

    def _write(self, step: int, checkpoint: Path) -> None:
        with built_then_swapped(self.storage / checkpoint_name(step)) as staging:
            shutil.copytree(checkpoint, staging, dirs_exist_ok=True)
        for old in sorted(self.storage.glob("checkpoint_*"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def progress(self, metrics: dict[str, Any]) -> None:
        if self._progress:
            self._progress(metrics)
