"""Recipe schemas (dataclasses) and loading: schema -> YAML recipe -> CLI overrides -> validated objects.

Every problem in a recipe (unknown keys, wrong types, unknown plugins, bad plugin params) is collected and
reported together in one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mellm_core.errors import ConfigError, MellmError
from mellm_core.plugins import Registry, build_params, get_registry

HEAD_MOTION_MODES = ("nose", "similarity", "robust", "none")
FLOW_REGIONS = ("frame", "face")
SPLIT_KINDS = ("holdout", "loso", "zero-shot", "fixed")
TASKS = ("meu", "mer")
INSTRUCTION_FORMATS = ("jsonl", "hf")  # hf: a Hugging Face datasets folder too (mellm_core.text.hfdataset)
KEEP = ("last", "best_val")  # which adapter train.keep publishes
STRATEGIES = ("ddp", "fsdp")  # how train.num_workers > 1 workers share the model (mellm_core.model.trainloop)
REPORTERS = ("tensorboard", "mlflow", "wandb")  # where train.report_to may send metrics (mellm_core.model.watch)


def _choice(key: str, value: str, choices: tuple[str, ...], what: str) -> list[str]:
    """A problem when ``value`` is not one of ``choices``."""
    return [] if value in choices else [f"{key}: unknown {what} '{value}' (choose one of: {', '.join(choices)})"]


def strings(value: Any) -> list[str]:
    """A recipe value given as one string or a list of them, as a list."""
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _protocol(key: str, value: str) -> list[str]:
    from mellm_core.text.labels import PROTOCOLS

    return _choice(key, value, tuple(PROTOCOLS), "protocol")


@dataclass
class DataConfig:
    dataset: str = "manifest"  # dataset plugin that reads `root` (see `mellm plugins`)
    root: str | None = None  # dataset root folder, or the CSV file for `manifest`
    params: dict[str, Any] = field(default_factory=dict)  # dataset plugin parameters


@dataclass
class MapsConfig:
    flow: str = "tvl1"  # optical-flow plugin
    flow_params: dict[str, Any] = field(default_factory=dict)  # e.g. {tau: 0.25, nscales: 5}
    landmarker: str = "dlib68"  # landmark plugin (`none` for pre-aligned crops)
    landmarker_params: dict[str, Any] = field(default_factory=dict)
    colorizer: str = "mmc"  # colour mapping plugin
    colorizer_params: dict[str, Any] = field(default_factory=dict)  # e.g. {step: 45, mask_percentile: 0}
    head_motion: str = "nose"  # nose (reference) | similarity (landmark fit) | robust (face consensus) | none
    nose_window: int = 5  # half-size in pixels of the nose-tip window for head_motion=nose
    crop: bool = False  # crop to the landmark box plus margin and resize to a square
    crop_margin: float = 0.2  # margin around the landmark box (crop and flow_region face), fraction of its size
    crop_size: int = 256  # side of the square crop in pixels
    max_side: int = 0  # downscale so that the longer side is at most this many pixels (0 = no cap)
    flow_region: str = "frame"  # frame | face (the landmark box plus crop_margin; no motion drawn outside it)
    min_motion: float = 0.1  # mean motion (px) below which a facial region is never reported as salient
    cpus_per_actor: float = 1.0  # CPUs reserved by each map actor
    actors: int = 0  # size of the actor pool (0 = one per CPU in the cluster)
    batch_size: int = 4  # pairs per Ray Data batch
    overwrite: bool = False  # recompute maps even when inputs and settings are unchanged

    def problems(self) -> list[str]:
        found = _choice("maps.head_motion", self.head_motion, HEAD_MOTION_MODES, "mode")
        found += _choice("maps.flow_region", self.flow_region, FLOW_REGIONS, "region")
        found += [f"maps.{key} must be at least 1, got {getattr(self, key)}"
                  for key in ("nose_window", "crop_size", "batch_size") if getattr(self, key) < 1]
        if self.max_side < 0 or self.actors < 0 or self.crop_margin < 0:
            found.append("maps.max_side, maps.actors and maps.crop_margin must not be negative")
        return found


@dataclass
class SplitConfig:
    kind: str = "holdout"  # holdout (held-out subjects) | loso (one fold) | zero-shot (by dataset) | fixed (id lists)
    test_subjects: list[str] = field(default_factory=list)  # holdout: these subjects are the test set ...
    test_fraction: float = 0.25  # ... or, when empty, this fraction of subjects (every k-th in natural order)
    fold: str | None = None  # loso: the held-out subject ("dataset/subject"; null = the first)
    train_datasets: list[str] = field(default_factory=list)  # zero-shot: datasets to train on
    test_datasets: list[str] = field(default_factory=list)  # zero-shot: datasets to test on
    lists: dict[str, Any] = field(default_factory=dict)  # fixed: {"train": ids.txt, "test": [a.txt, "dfme/TestB/*"]}


@dataclass
class InstructionsConfig:
    prompt: str = "fgmu-en"  # prompt plugin (fgmu-en, fgmu-zh, ...)
    prompt_params: dict[str, Any] = field(default_factory=dict)  # e.g. {style: compact} for short FGMU texts
    protocol: str = "all"  # label protocol; samples outside it are excluded and counted
    mer_ratio: float = 1.0  # share of training samples that also get a label-only (MER) example; 0 = MEU only
    train_tasks: list[str] = field(default_factory=lambda: ["meu", "mer"])  # tasks written for the training set
    test_tasks: list[str] = field(default_factory=lambda: ["meu"])  # tasks written for the test set
    split: SplitConfig = field(default_factory=SplitConfig)
    format: str = "jsonl"  # jsonl (the JSON lines training reads, and LLaMA-Factory's) | hf (also a datasets folder)

    def problems(self) -> list[str]:
        found = _protocol("instructions.protocol", self.protocol)
        found += _choice("instructions.format", self.format, INSTRUCTION_FORMATS, "format")
        found += _choice("instructions.split.kind", self.split.kind, SPLIT_KINDS, "split")
        if not 0 <= self.mer_ratio <= 1:
            found.append(f"instructions.mer_ratio must be between 0 and 1, got {self.mer_ratio}")
        if not 0 < self.split.test_fraction < 1:
            found.append(f"instructions.split.test_fraction must be between 0 and 1, got {self.split.test_fraction}")
        for key in ("train_tasks", "test_tasks"):
            tasks = getattr(self, key)
            if not tasks or any(t not in TASKS for t in tasks):
                found.append(f"instructions.{key} must be a non-empty list of: {', '.join(TASKS)} (got {tasks})")
        return found


@dataclass
class BackboneConfig:
    name: str = "qwen2_5_vl"  # backbone plugin
    model: str = "tiny-random"  # local directory or hub id; `tiny-random` builds a tiny model locally
    params: dict[str, Any] = field(default_factory=dict)  # backbone plugin parameters


@dataclass
class TrainConfig:
    lora_rank: int = 64  # LoRA rank
    lora_alpha: int = 64  # LoRA alpha
    lora_dropout: float = 0.05  # dropout on the LoRA input
    lr: float = 1e-4  # AdamW learning rate (peak of the cosine schedule)
    weight_decay: float = 0.0  # AdamW weight decay, on weight matrices only (not on norm gains and biases)
    lr_scales: dict[str, float] = field(default_factory=dict)  # learning-rate factor of the parameters whose name
    # matches a regular expression, e.g. {visual: 0.3} (the vision tower learns at 0.3x lr); the first match wins
    warmup_steps: int = 0  # linear warm-up steps before the cosine decay
    max_steps: int = 1200  # optimizer steps
    batch_size: int = 8  # global batch: samples per optimizer step over all workers
    grad_accum: int = 1  # micro-batches per optimizer step on each worker (batch_size / num_workers / grad_accum each)
    max_grad_norm: float = 1.0  # gradient clipping (0 = off)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass, vision tower and LM alike:
    # far less activation memory for about a third more compute (the 7B recipes turn it on)
    num_workers: int = 2  # Ray Train workers (data-parallel)
    strategy: str = "ddp"  # ddp: each worker holds the model | fsdp: weights sharded over workers (larger models)
    use_gpu: bool = False  # one GPU per worker
    cpus_per_worker: float = 1.0  # CPUs reserved by each worker
    resources_per_worker: dict[str, float] = field(default_factory=dict)  # extra Ray resources, e.g. {"A100": 1}
    checkpoint_every: int = 100  # steps between checkpoints (and always at the end)
    keep_checkpoints: int = 2  # checkpoints kept in storage
    max_failures: int = 2  # worker-group restarts from the last checkpoint before the run fails
    log_every: int = 10  # steps between lines of train/metrics.jsonl
    curriculum_tasks: list[str] = field(default_factory=list)  # first train only on these tasks' rows (e.g. [mer]) ...
    curriculum_steps: int = 0  # ... for this many steps, then on every row (0 = no curriculum)
    balance: bool = False  # draw every label of a task equally often (rarer labels' rows repeat)
    val_fraction: float = 0.0  # training subjects held out for validation (0 = none; test subjects never)
    eval_every: int = 100  # steps between validations (and always at the end), with val_fraction > 0
    keep: str = "last"  # adapter published: last | best_val (best validation accuracy, then loss)
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])  # metrics also to: tensorboard ([] = none)
    storage_path: str | None = None  # checkpoints: local, shared or cloud URI (null = output_dir/train/checkpoints)
    resume: bool = False  # continue from the latest checkpoint instead of starting over

    def problems(self) -> list[str]:
        found = [f"train.{key} must be at least 1, got {getattr(self, key)}"
                 for key in ("lora_rank", "max_steps", "batch_size", "grad_accum", "num_workers", "checkpoint_every",
                             "keep_checkpoints", "log_every", "eval_every") if getattr(self, key) < 1]
        per_step = self.num_workers * self.grad_accum
        if per_step >= 1 and self.batch_size % per_step:
            found.append(f"train.batch_size={self.batch_size} must be a multiple of train.num_workers x "
                         f"train.grad_accum = {per_step}, so every worker gets equal micro-batches")
        found += [f"train.report_to: unknown reporter '{r}' (choose from: {', '.join(REPORTERS)})"
                  for r in self.report_to if r not in REPORTERS]
        found += _choice("train.strategy", self.strategy, STRATEGIES, "strategy")
        found += _choice("train.keep", self.keep, KEEP, "choice")
        if not 0 <= self.val_fraction < 1:
            found.append(f"train.val_fraction must be in [0, 1), got {self.val_fraction}")
        elif self.keep == "best_val" and not self.val_fraction:
            found.append("train.keep=best_val needs validation: set train.val_fraction (e.g. 0.2)")
        unknown = [t for t in self.curriculum_tasks if t not in TASKS]
        if unknown:
            found += _choice("train.curriculum_tasks", unknown[0], TASKS, "task")
        if self.curriculum_steps < 0 or (self.curriculum_steps > 0 and not self.curriculum_tasks):
            found.append("train.curriculum_steps must not be negative, and needs train.curriculum_tasks when set")
        for pattern, factor in self.lr_scales.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                found.append(f"train.lr_scales: '{pattern}' is not a regular expression ({exc})")
            if not isinstance(factor, int | float) or factor <= 0:
                found.append(f"train.lr_scales.{pattern} must be a positive number, got {factor!r}")
        if self.lr <= 0 or self.warmup_steps < 0 or self.max_failures < -1 or self.max_grad_norm < 0:
            found.append("train.lr must be positive; warmup_steps and max_grad_norm not negative; max_failures >= -1")
        return found


SET_KEYS = ("name", "protocol", "datasets", "ids")


@dataclass
class EvalSet:
    """A test set scored on its own, under its own protocol: the test samples of ``datasets`` (all when empty)
    whose ids ``ids`` lists (id-list files or id patterns; all when empty)."""

    name: str
    protocol: str
    datasets: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


@dataclass
class EvalConfig:
    protocol: str = "all"  # label protocol of the test set (e.g. casme2-5, dfme-7)
    # test sets also scored apart, each under its protocol (the paper's Table II): [{name, protocol, datasets?, ids?}]
    sets: list[dict[str, Any]] = field(default_factory=list)
    adapter: str | None = None  # adapter folder (null = the one `mellm train` published, else the base model)
    base_model: bool = False  # evaluate the base model even when a trained adapter exists (zero-shot baselines)
    batch_size: int = 8  # test samples per generation batch
    actors: int = 1  # model replicas (Ray Data actor pool); each loads the model once
    cpus_per_actor: float = 1.0  # CPUs reserved by each replica
    gpus_per_actor: float = 0.0  # GPUs per replica (0 = CPU)
    max_new_tokens: int | None = None  # generation cap (null = the backbone's)
    gallery: int = 12  # sample MMC-maps shown in report.html (right and wrong cases)

    def eval_sets(self) -> list[EvalSet]:
        """``sets`` as objects (ids and datasets given as one string become lists of one)."""
        return [EvalSet(str(s["name"]), str(s["protocol"]), strings(s.get("datasets")), strings(s.get("ids")))
                for s in self.sets]

    def problems(self) -> list[str]:
        found = _protocol("eval.protocol", self.protocol)
        names: set[str] = set()
        for i, entry in enumerate(self.sets):
            unknown = sorted(set(entry) - set(SET_KEYS))
            if unknown or not entry.get("name") or not entry.get("protocol"):
                found.append(f"eval.sets[{i}] needs a name and a protocol (keys: {', '.join(SET_KEYS)}); "
                             f"got {', '.join(sorted(map(str, entry))) or 'nothing'}")
                continue
            found += _protocol(f"eval.sets[{i}].protocol", str(entry["protocol"]))
            if entry["name"] in names:
                found.append(f"eval.sets: the name '{entry['name']}' is given twice")
            names.add(entry["name"])
        if self.batch_size < 1 or self.actors < 1 or self.gallery < 0:
            found.append("eval.batch_size and eval.actors must be at least 1 and eval.gallery not negative")
        if self.cpus_per_actor <= 0 or self.gpus_per_actor < 0 or (self.max_new_tokens or 1) < 1:
            found.append("eval.cpus_per_actor must be positive, gpus_per_actor not negative, max_new_tokens >= 1")
        return found


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # address the HTTP server binds
    port: int = 8000  # HTTP port
    adapter: str | None = None  # trained adapter folder (null = the one `mellm train` published, else the base)
    model_replicas: int = 1  # model deployment replicas (ignored when autoscaling is on)
    map_replicas: int = 1  # map deployment replicas (CPU: landmarks + flow + colorizer)
    autoscaling: bool = False  # let Serve scale both deployments between 1 and *_replicas by load
    model_gpus: float = 0.0  # GPUs per model replica (0 = CPU)
    map_cpus: float = 1.0  # CPUs per map replica
    max_batch_size: int = 8  # requests the model answers together (@serve.batch)
    batch_wait_s: float = 0.05  # longest wait for a batch to fill, seconds
    max_new_tokens: int = 512  # generation cap of every answer (a request's max_tokens only lowers it)
    max_body_bytes: int = 20_000_000  # largest request body; larger ones get 413
    max_pixels: int = 4_194_304  # largest image (width x height, 2048x2048), read from the header before decoding
    max_prompt_chars: int = 4000  # longest chat question; longer ones get 413
    max_video_s: float = 20.0  # longest video /v1/analyze spots (read from its header); longer ones get 413
    max_video_fps: float = 240.0  # highest frame rate of such a video (the spotter holds 2 window_s x fps frames)
    max_video_frames: int = 1200  # most frames in such a video (its header's count; decoding stops there)
    max_video_pixels: int = 100_000_000  # frames x width x height: bounds the spotting cost (about 100 s on one core)
    body_timeout_s: float = 30.0  # a request body must arrive within this (slow uploads get 408)
    request_timeout_s: float = 300.0  # longest a request may take end to end (Serve's HTTP proxy)
    max_queued_requests: int = 64  # requests waiting for maps or the model per gateway; more get 503 + Retry-After
    flow_region: str = "face"  # the service's maps.flow_region: face bounds the flow's cost by the face's size
    allowed_hosts: list[str] = field(default_factory=list)  # Host headers answered (empty: any); e.g. [localhost]

    def problems(self) -> list[str]:
        found = _choice("serve.flow_region", self.flow_region, FLOW_REGIONS, "region")
        if min(self.max_new_tokens, self.max_body_bytes, self.max_pixels, self.max_prompt_chars,
               self.max_queued_requests, self.max_video_frames, self.max_video_pixels) < 1 or min(
                   self.body_timeout_s, self.request_timeout_s, self.max_video_s, self.max_video_fps) <= 0:
            found.append("serve.max_new_tokens, max_body_bytes, max_pixels, max_prompt_chars, max_queued_requests, "
                         "max_video_frames and max_video_pixels must be at least 1, and body_timeout_s, "
                         "request_timeout_s, max_video_s and max_video_fps positive")
        if min(self.max_batch_size, self.model_replicas, self.map_replicas) < 1:
            found.append("serve.max_batch_size, model_replicas and map_replicas must be at least 1")
        if self.batch_wait_s < 0 or self.model_gpus < 0 or self.map_cpus <= 0:
            found.append("serve.batch_wait_s and model_gpus must not be negative, and map_cpus must be positive")
        if not 0 <= self.port <= 65535 or not self.host.strip():
            found.append(f"serve.port must be 0-65535 and serve.host not empty, got {self.host!r}:{self.port}")
        return found


@dataclass
class SpotConfig:
    spotter: str = "flow"  # spotter plugin: flow (accurate) | diff (fast, for long videos)
    params: dict[str, Any] = field(default_factory=dict)  # e.g. {window_s: 0.1, max_me_s: 0.5, landmarker: none}
    fps: float | None = None  # frame rate of frames folders (a video file states its own; --fps overrides both)
    dataset: str = "synthme"  # long-video dataset plugin `mellm eval` spots in (synthme, casme3-lv, samm-lv)
    root: str | None = None  # its root folder (null = no spotting in `mellm eval`)
    dataset_params: dict[str, Any] = field(default_factory=dict)  # the long-video dataset plugin's parameters
    actors: int = 0  # videos (or one video's windows) spotted at once (0 = one per CPU in the cluster)
    window_frames: int = 3000  # `mellm spot` cuts a longer video into windows of this many frames (0 = never)

    def problems(self) -> list[str]:
        out = [] if self.fps is None or self.fps > 0 else [f"spot.fps must be positive, got {self.fps}"]
        out += [] if self.actors >= 0 else [f"spot.actors must not be negative, got {self.actors}"]
        return out + ([] if self.window_frames >= 0 else [f"spot.window_frames must not be negative, got "
                                                          f"{self.window_frames}"])


@dataclass
class RayConfig:
    address: str | None = None  # existing cluster to attach to (else RAY_ADDRESS, else a local one)
    dashboard: bool = False  # a local instance runs Ray's dashboard, to watch a run (its URL is printed)

    def problems(self) -> list[str]:
        if self.address is not None and not self.address.strip():
            return ["ray.address must be a cluster address (e.g. auto, ray://head:10001) or null, got ''"]
        return []


@dataclass
class Recipe:
    output_dir: str = "runs/default"  # every stage writes under this folder (a local/shared path or a cloud URI)
    seed: int = 0  # seed for every random choice
    data: DataConfig = field(default_factory=DataConfig)
    maps: MapsConfig = field(default_factory=MapsConfig)
    instructions: InstructionsConfig = field(default_factory=InstructionsConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    spot: SpotConfig = field(default_factory=SpotConfig)
    ray: RayConfig = field(default_factory=RayConfig)


SECTIONS = ("maps", "instructions", "train", "eval", "serve", "spot", "ray")  # the sections that check their own fields
# (section, key holding a plugin name, key holding its params, plugin kind)
PLUGIN_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("data", "dataset", "params", "dataset"),
    ("maps", "flow", "flow_params", "flow"),
    ("maps", "landmarker", "landmarker_params", "landmarker"),
    ("maps", "colorizer", "colorizer_params", "colorizer"),
    ("instructions", "prompt", "prompt_params", "prompt"),
    ("backbone", "name", "params", "backbone"),
    ("spot", "spotter", "params", "spotter"),
    ("spot", "dataset", "dataset_params", "dataset"),
)


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, or the name of a shipped recipe (``quickstart``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = resources.files("mellm_recipes")
    stem = path.name.removesuffix(".yaml")
    candidate = shipped / f"{stem}.yaml"
    if candidate.is_file():
        return Path(str(candidate))
    names = sorted(p.name.removesuffix(".yaml") for p in shipped.iterdir() if p.name.endswith(".yaml"))
    raise ConfigError([f"recipe '{name_or_path}' is neither a file nor a shipped recipe (shipped: {', '.join(names)})"])


def _flatten(node: Any, schema: DictConfig, prefix: str, out: list[tuple[str, Any]], problems: list[str]) -> None:
    """Dotted (key, value) leaves of ``node``, checking each key against ``schema``; free dicts stay leaves."""
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            choices = [str(k) for k in schema.keys()]
            close = difflib.get_close_matches(str(key), choices, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f" (valid keys: {', '.join(choices)})"
            problems.append(f"unknown key '{dotted}'{hint}")
            continue
        child = schema._get_node(key)
        structured = isinstance(child, DictConfig) and OmegaConf.get_type(child) not in (dict, None)
        if structured and isinstance(child, DictConfig) and isinstance(value, dict):
            _flatten(value, child, f"{dotted}.", out, problems)
        else:
            out.append((dotted, value))


def _field_type(dotted: str) -> str:
    cls: Any = Recipe
    parts = dotted.split(".")
    for part in parts[:-1]:
        cls = {f.name: f.type for f in dataclasses.fields(cls)}[part]
        cls = globals()[cls] if isinstance(cls, str) else cls
    typ = {f.name: f.type for f in dataclasses.fields(cls)}[parts[-1]]
    return str(getattr(typ, "__name__", typ))


def _parse_overrides(overrides: list[str], problems: list[str]) -> dict[str, Any]:
    good = []
    for item in overrides:
        if "=" not in item or item.startswith("="):
            problems.append(f"override '{item}' is not of the form key=value (e.g. train.lr=5e-5)")
        else:
            good.append(item)
    parsed = OmegaConf.to_container(OmegaConf.from_dotlist(good)) if good else {}
    return {str(k): v for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def load_recipe(
    source: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    registry: Registry | None = None,
) -> Recipe:
    """Load a recipe file (or the defaults when None), apply dotlist overrides, validate everything."""
    problems: list[str] = []
    layers: list[dict[str, Any]] = []
    if source is not None:
        path = recipe_path(source)
        try:
            loaded = OmegaConf.to_container(OmegaConf.load(path))
        except Exception as exc:
            raise ConfigError([f"recipe {path} is not valid YAML: {exc}"]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"recipe {path} must be a mapping of sections, got {type(loaded).__name__}"])
        layers.append({str(k): v for k, v in loaded.items()})
    layers.append(_parse_overrides(list(overrides), problems))

    cfg = OmegaConf.structured(Recipe)
    for layer in layers:
        leaves: list[tuple[str, Any]] = []
        _flatten(layer, cfg, "", leaves, problems)
        for dotted, value in leaves:
            try:
                OmegaConf.update(cfg, dotted, value, merge=False)
            except OmegaConfBaseException:
                problems.append(f"key '{dotted}' expects {_field_type(dotted)}, got {value!r}")
    recipe = OmegaConf.to_object(cfg)  # failed updates were not applied, so this is well-typed
    assert isinstance(recipe, Recipe)
    problems.extend(check_recipe(recipe, registry or get_registry()))
    if problems:
        raise ConfigError(problems)
    return recipe


def check_recipe(recipe: Recipe, registry: Registry) -> list[str]:
    """Problems with plugin names and params (kinds with no plugins installed are not checked), then each
    section's own checks (``problems()`` beside its fields)."""
    problems: list[str] = []
    for section, key, params_key, kind in PLUGIN_FIELDS:
        part = getattr(recipe, section)
        name = getattr(part, key)
        if not registry.names(kind):
            continue
        try:
            registry.get(kind, name)
        except MellmError as exc:
            problems.append(f"{section}.{key}: {exc}")
            continue
        try:
            registry.params(kind, name, getattr(part, params_key))
        except MellmError as exc:
            problems.append(f"{section}.{params_key}: {exc}")
    for section in SECTIONS:
        problems.extend(getattr(recipe, section).problems())
    return problems


def device_warnings(recipe: Recipe) -> dict[str, str]:
    """By section (eval, serve): a model trained on GPUs but evaluated or served on CPU runs in fp32 at CPU speed
    (a 7B model: ~33 GB of RAM per replica), almost always a recipe that forgot to say GPUs where inference runs."""
    if not recipe.train.use_gpu:
        return {}
    found = {}
    for section, key, gpus, what in (("eval", "gpus_per_actor", recipe.eval.gpus_per_actor, "evaluation"),
                                     ("serve", "model_gpus", recipe.serve.model_gpus, "the served model")):
        if gpus <= 0:
            found[section] = (f"train.use_gpu is true but {section}.{key} is 0: {what} runs on CPU, in fp32 at CPU "
                              f"speed; set {section}.{key}: 1")
    return found


def unchecked_kinds(recipe: Recipe, registry: Registry | None = None) -> list[str]:
    """Plugin-name keys that could not be checked because no plugin of their kind is installed."""
    registry = registry or get_registry()
    return [
        f"{section}.{key}"
        for section, key, _, kind in PLUGIN_FIELDS
        if not registry.names(kind)
    ]


def to_yaml(recipe: Recipe | Any) -> str:
    """The resolved recipe (or one section of it) as YAML."""
    return OmegaConf.to_yaml(OmegaConf.structured(recipe))


def settings_hash(*parts: Any) -> str:
    """A short stable hash of settings (dataclasses, dicts, strings) for skipping unchanged work."""
    def plain(obj: Any) -> Any:
        return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else obj

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


__all__ = ["Recipe", "load_recipe", "recipe_path", "settings_hash", "to_yaml", "unchecked_kinds", "build_params"]
