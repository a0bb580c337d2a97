"""The maps stage: MMC-maps for many samples on a Ray Data actor pool, with skip-if-unchanged and atomic writes.

Layout under the output folder (a local or shared path, or a cloud URI that every actor writes into):
``<sample_id>.png`` and ``manifest.jsonl`` (one ``MapRecord`` per sample, in input order). While running,
finished records go to the ``manifest.partial.jsonl`` journal so an interrupted run loses nothing: the next run
reuses every map whose inputs and settings are unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import time
from typing import Any

import numpy as np

from mellm_core.config import MapsConfig, settings_hash
from mellm_core.errors import InputError, MellmError
from mellm_core.files.atomic import encode_png
from mellm_core.files.layout import MANIFEST, RunLayout
from mellm_core.files.stagelock import StageLock
from mellm_core.files.storage import Journal, Location
from mellm_core.motion.regions import regions_to_dict
from mellm_core.records import MapRecord, Sample
from mellm_core.summaries import MapsSummary

PARTIAL = "manifest.partial.jsonl"
_UNSAFE = re.compile(r"[^\w.-]+")
MAX_BLOCKS = 2000  # Ray Data blocks of input samples; beyond this, blocks hold more than one batch


def map_file_name(sample_id: str) -> str:
    """A file name for a sample id: path separators and odd characters replaced; when anything was replaced, a
    short hash of the id keeps names distinct ("s01/a" and "s01_a" never share a file)."""
    stem = _UNSAFE.sub("_", sample_id).strip("._") or "_"
    if stem != sample_id:
        stem += "-" + hashlib.sha1(sample_id.encode("utf-8")).hexdigest()[:8]
    return stem + ".png"


def with_labels(record: MapRecord, sample: Sample) -> MapRecord:
    """A reused record with the sample's current labels (an annotation fix must reach the manifest)."""
    return dataclasses.replace(record, dataset=sample.dataset, subject=sample.subject, emotion=sample.emotion,
                               aus=list(sample.aus), au_sides=dict(sample.au_sides), onset_path=sample.onset_path,
                               apex_path=sample.apex_path)


def input_hash(sample: Sample, pixel_hash: str) -> str:
    """Settings hash of one sample: the map settings plus each input file's path, size and mtime."""
    stats = []
    for path in (sample.onset_path, sample.apex_path):
        size, mtime = Location(path).stat() or (None, None)
        stats.append((path, size, mtime))
    return settings_hash(pixel_hash, stats)


def map_one(mapper: Any, sample: Sample, out_dir: Location, pixel_hash: str) -> MapRecord:
    """Map one sample and write its PNG; any problem becomes a ``failed`` record naming it."""
    from mellm_core.files.frames import read_gray

    start = time.perf_counter()
    record = MapRecord(
        sample_id=sample.sample_id, status="failed", dataset=sample.dataset, subject=sample.subject,
        emotion=sample.emotion, aus=list(sample.aus), au_sides=dict(sample.au_sides), onset_path=sample.onset_path,
        apex_path=sample.apex_path,
        settings_hash=input_hash(sample, pixel_hash),
    )
    try:
        onset, apex = read_gray(sample.onset_path), read_gray(sample.apex_path)
        result = mapper(onset, apex)
        path = out_dir / map_file_name(sample.sample_id)
        path.write_bytes(encode_png(result.rgb))
        record.status, record.map_path = "ok", str(path)
        record.head_motion = [round(v, 5) for v in result.head_motion]
        record.nose = result.nose
        record.landmarks = np.round(result.landmarks, 2).tolist()
        record.regions = regions_to_dict(result.regions)
    except MellmError as exc:
        record.error = str(exc)
    except Exception as exc:  # an unexpected failure of one sample must not stop the job
        record.error = f"internal error: {type(exc).__name__}: {exc}"
    record.seconds = round(time.perf_counter() - start, 4)
    return record


class MapActor:
    """A Ray Data actor: builds the plugins once, then maps batches of samples."""

    def __init__(self, cfg: dict, out_dir: str):
        import cv2
        import ray

        from mellm_core.motion.mapper import Mapper

        maps_cfg = MapsConfig(**cfg)
        cv2.setNumThreads(max(1, int(maps_cfg.cpus_per_actor)))  # OpenCV uses exactly the CPUs Ray reserved
        self.mapper = Mapper(maps_cfg)
        self.pixel_hash = self.mapper.settings_hash
        self.out_dir = Location(out_dir)
        self.node_id = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records, starts = [], []
        for line in batch["sample"]:
            starts.append(time.time())
            record = map_one(self.mapper, Sample.from_json(str(line)), self.out_dir, self.pixel_hash)
            record.node_id = self.node_id
            records.append(record.to_json())
        return {"record": np.array(records, dtype=object), "started": np.array(starts)}


def read_records(lines: list[str]) -> dict[str, MapRecord]:
    """Records of manifest lines (later lines win); unreadable lines are ignored."""
    records: dict[str, MapRecord] = {}
    for line in lines:
        try:
            record = MapRecord.from_json(line)
        except (ValueError, TypeError):
            continue
        records[record.sample_id] = record
    return records


def _check_ids(samples: list[Sample]) -> None:
    seen: dict[str, str] = {}
    for sample in samples:
        name = map_file_name(sample.sample_id)
        if name in seen:
            raise InputError(
                f"samples '{seen[name]}' and '{sample.sample_id}' would share the map file {name}; make ids unique"
            )
        seen[name] = sample.sample_id


def run_maps(
    samples: list[Sample],
    cfg: MapsConfig,
    out_dir: str | Location,
    overwrite: bool | None = None,
    progress: bool = True,
    address: str | None = None,
) -> MapsSummary:
    """Compute (or reuse) the MMC-map of every sample on the Ray cluster; write the manifest in input order.

    Ray is started (or joined at ``address``) only when some map has to be computed.
    """
    with StageLock(Location(out_dir), "maps"):  # one writer per folder
        return _run_maps(samples, cfg, out_dir, overwrite, progress, address)


def _run_maps(samples: list[Sample], cfg: MapsConfig, out_dir: str | Location, overwrite: bool | None,
              progress: bool, address: str | None) -> MapsSummary:
    import ray
    from tqdm import tqdm

    from mellm_core.motion.mapper import maps_settings_hash
    from mellm_core.stages.cluster import cluster_cpus, init_ray

    if not samples:
        raise InputError("no samples to map")
    _check_ids(samples)
    out = Location(out_dir)
    out.mkdir()
    overwrite = cfg.overwrite if overwrite is None else overwrite
    pixel_hash = maps_settings_hash(cfg)
    journal = Journal(out / PARTIAL)
    manifest = (out / MANIFEST).read_text().splitlines() if (out / MANIFEST).is_file() else []
    previous = {} if overwrite else {**read_records(manifest), **read_records(journal.lines())}
    present = set(out.files()) if previous else set()  # one listing, not one request per map
    root = out.resolve()

    done: dict[str, MapRecord] = {}
    todo: list[Sample] = []
    for sample in samples:
        old = previous.get(sample.sample_id)
        name = map_file_name(sample.sample_id)
        if (old is not None and old.ok and old.map_path == str(root / name) and name in present
                and old.settings_hash == input_hash(sample, pixel_hash)):
            done[sample.sample_id] = with_labels(old, sample)
        else:
            todo.append(sample)
    skipped = len(done)

    wall, first_start, last_end = 0.0, None, None
    if todo:
        init_ray(address)
        actors = cfg.actors or max(1, int(cluster_cpus() // max(cfg.cpus_per_actor, 1e-6)))
        # One block per batch (at least one per actor, at most MAX_BLOCKS), and no more actors than blocks.
        blocks = min(MAX_BLOCKS, max(-(-len(todo) // cfg.batch_size), min(actors, len(todo))))
        actors = min(actors, blocks)
        ds = ray.data.from_items([{"sample": s.to_json()} for s in todo], override_num_blocks=blocks)
        ds = ds.map_batches(
            MapActor,
            fn_constructor_kwargs={"cfg": _plain(cfg), "out_dir": str(root)},
            batch_size=cfg.batch_size,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cfg.cpus_per_actor,
        )
        failed = 0
        bar = tqdm(total=len(todo), desc="maps", unit="pair", disable=not progress, file=sys.stderr)
        try:
            for row in ds.iter_rows():
                record = MapRecord.from_json(row["record"])
                done[record.sample_id] = record
                journal.append([record.to_json()])
                first_start = row["started"] if first_start is None else min(first_start, row["started"])
                last_end = time.time()
                bar.update(1)
                if not record.ok:
                    failed += 1
                    bar.set_postfix(failed=failed)
        finally:  # what was answered is kept even when the run stops here
            journal.flush()
            bar.close()
        wall = (last_end - first_start) if first_start is not None else 0.0

    lines = "".join(done[s.sample_id].to_json() + "\n" for s in samples)
    (out / MANIFEST).write_text(lines)
    journal.remove()
    ok = sum(done[s.sample_id].ok for s in samples)
    computed = len(todo)
    return MapsSummary(
        samples=len(samples), ok=ok, failed=len(samples) - ok, skipped=skipped, wall_s=wall,
        pairs_per_s=(computed / wall) if wall > 0 else 0.0, manifest=str(out / MANIFEST),
    )


def _plain(cfg: MapsConfig) -> dict:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(cfg)))


def run_recipe_maps(recipe: Any, progress: bool = True) -> MapsSummary:
    """The maps of a recipe's dataset under ``output_dir/maps`` (generating SynthME data first when needed)."""
    from mellm_core.stages.data import recipe_samples

    if recipe.ray.dashboard:  # started now, so that the user can watch from the first map
        from mellm_core.stages.cluster import init_ray

        init_ray(recipe.ray.address, dashboard=True)
    loaded = recipe_samples(recipe, progress)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return run_maps(loaded.samples, recipe.maps, RunLayout(recipe.output_dir).maps, progress=progress,
                    address=recipe.ray.address)
