"""Spot-then-recognise on long videos (MEGC's STR task), the spotting part of ``mellm eval``.

Each video of the recipe's long-video dataset (``spot.dataset`` at ``spot.root``) is spotted by one Ray Data
task, which streams its frames (a long video is never held whole), matches what it found to the annotated
intervals, and writes the MMC-maps of the matches (true positives). The model then analyses those maps, as
``mellm eval`` analyses a test set, and the scores are MEGC's: spotting precision, recall and F1 per kind, the
apex error, the analysis of the true positives, and STRS = spotting F1 x analysis F1.
Writes ``eval/spotting.json`` (the scores) and ``eval/spotted.jsonl`` (per video: what was spotted and matched).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
from tqdm import tqdm

from mellm_core.config import MapsConfig, Recipe, SpotConfig, settings_hash
from mellm_core.errors import InputError, MellmError
from mellm_core.files.layout import RunLayout, up_to_date
from mellm_core.files.storage import Journal
from mellm_core.model.adapters import require_adapter
from mellm_core.model.predictor import recipe_labels
from mellm_core.records import Interval, LongVideo
from mellm_core.results.evaluation import eval_adapter, folder_digest
from mellm_core.results.spotting import analysis_scores, matches, spotting_scores
from mellm_core.stages.cluster import cluster_cpus, init_ray, task_pool

SPOTTING, SPOTTED = "spotting.json", "spotted.jsonl"


def recipe_videos(recipe: Recipe) -> list[LongVideo]:
    """The long videos of ``spot.dataset`` at ``spot.root``, through the plugin's ``videos(root)``."""
    from mellm_core.plugins import create

    spot = recipe.spot
    if not spot.root:
        raise InputError("spot.root is not set: name the long-video dataset's folder (e.g. spot.root=data/long "
                         "after `mellm synth --out data/long --long --n 4`)")
    loader = create("dataset", spot.dataset, **spot.dataset_params)
    if not hasattr(loader, "videos"):
        raise InputError(f"dataset plugin '{spot.dataset}' reads clips, not long videos (it has no videos(root)); "
                         "spot.dataset takes synthme, casme3-lv or samm-lv")
    videos: list[LongVideo] = loader.videos(Path(spot.root).expanduser())
    if not videos:
        raise InputError(f"{spot.root} holds no long videos for dataset plugin '{spot.dataset}'")
    for warning in getattr(loader, "warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return videos


def spot_video(video: LongVideo, spot: SpotConfig, maps: MapsConfig, out_dir: Path) -> dict[str, Any]:
    """One video: the intervals spotted (in the video's frame numbers), the matches with its annotated intervals,
    and the MMC-map of each match (from one more streamed pass for their frames)."""
    from mellm_core.files.atomic import write_png_atomic
    from mellm_core.files.video import open_video
    from mellm_core.motion.mapper import Mapper
    from mellm_core.plugins import create

    opened = open_video(video.path, video.fps)
    spotter = create("spotter", spot.spotter, **spot.params)
    spotted = [Interval(opened.number(i.onset), opened.number(i.apex), opened.number(i.offset), i.score, i.kind)
               for i in spotter(opened.frames(), opened.fps)]
    pairs = matches(spotted, video.intervals)
    wanted = {n for s, _ in pairs for n in (s.onset, s.apex)}
    last = max((i for i in range(1, len(spotter.signal) + 1) if opened.number(i) in wanted), default=0)
    frames = {opened.number(i): f for i, f in enumerate(opened.frames(1, last), 1) if opened.number(i) in wanted}
    mapper = Mapper(maps)
    found = []
    for s, g in pairs:
        entry: dict[str, Any] = {"spotted": s.to_dict(), "gold": g.to_dict(), "map_path": None, "error": None}
        try:
            path = out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', video.video_id)}_{s.onset:06d}.png"
            write_png_atomic(path, mapper(frames[s.onset], frames[s.apex]).rgb)
            entry["map_path"] = str(path)
        except MellmError as exc:  # this match goes unanalysed (scored as unparsed); the video's others do not
            entry["error"] = str(exc)
        found.append(entry)
    return {"video_id": video.video_id, "dataset": video.dataset, "subject": video.subject,
            "frames": len(spotter.signal), "spotted": [i.to_dict() for i in spotted],
            "gold": [i.to_dict() for i in video.intervals], "matches": found, "error": None}


def _spot_row(row: dict[str, Any], spot: dict, maps: dict, out_dir: str) -> dict[str, Any]:
    """A Ray Data task: one video's ``spot_video``, or its error (the run goes on with the others; the video's
    annotated intervals still count, as misses)."""
    import cv2

    cv2.setNumThreads(1)
    video = LongVideo.from_json(row["video"])
    try:
        result = spot_video(video, SpotConfig(**spot), MapsConfig(**maps), Path(out_dir))
    except Exception as exc:  # any failure of one video (unreadable frames, a codec, OpenCV) is that video's
        error = str(exc) if isinstance(exc, MellmError) else f"{type(exc).__name__}: {exc}"
        result = {"video_id": video.video_id, "dataset": video.dataset, "subject": video.subject, "frames": 0,
                  "spotted": [], "gold": [i.to_dict() for i in video.intervals], "matches": [], "error": error}
    return {"result": json.dumps(result)}


def spotting_digest(recipe: Recipe, videos: list[LongVideo], adapter: str | None) -> str:
    """What the scores depend on: the videos (their intervals, and each file's or folder's size and time), the
    spotter, maps, model, adapter, prompt and protocol."""
    def stamp(path: str) -> list[Any]:
        where = Path(path)
        files = sorted(where.iterdir()) if where.is_dir() else [where]
        return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]

    return settings_hash([(v.to_dict(), stamp(v.path)) for v in videos], asdict(recipe.spot), asdict(recipe.maps),
                         asdict(recipe.backbone), adapter, folder_digest(adapter), recipe.instructions.prompt,
                         recipe.instructions.prompt_params, recipe.eval.protocol, recipe.eval.max_new_tokens)


def run_spotting(recipe: Recipe, progress: bool = True) -> dict[str, Any]:
    """Spot, match and analyse every long video of the recipe; write and return ``eval/spotting.json`` (with
    ``skipped`` when an earlier run with the same videos and settings already wrote it)."""
    from mellm_core.stages.eval import _answer

    videos = recipe_videos(recipe)
    adapter = eval_adapter(recipe)
    if adapter:
        require_adapter(adapter, "eval.adapter")
    out = RunLayout(recipe.output_dir).eval
    if out.remote:
        raise InputError(f"spotting evaluation writes maps locally; output_dir {recipe.output_dir} is a URI")
    digest = spotting_digest(recipe, videos, adapter)
    if (earlier := up_to_date(out / SPOTTING, digest, out / SPOTTED)) is not None:
        return {**earlier, "skipped": True}
    maps_dir = out.path / "spotting_maps"
    maps_dir.mkdir(parents=True, exist_ok=True)
    init_ray(recipe.ray.address, dashboard=recipe.ray.dashboard)
    actors = recipe.spot.actors or max(1, int(cluster_cpus()))
    ds = ray.data.from_items([{"video": v.to_json()} for v in videos], override_num_blocks=len(videos))
    ds = ds.map(_spot_row, fn_kwargs={"spot": asdict(recipe.spot), "maps": asdict(recipe.maps),
                                      "out_dir": str(maps_dir)}, num_cpus=1, **task_pool(min(actors, len(videos))))
    results: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(videos), desc="spot", unit="video", disable=not progress, file=sys.stderr)
    try:
        for row in ds.iter_rows():
            result = json.loads(row["result"])
            results[result["video_id"]] = result
            bar.update(1)
            if result["error"]:
                bar.set_postfix(failed=sum(1 for r in results.values() if r["error"]))
    except ray.exceptions.RayError as exc:
        raise MellmError(f"spotting failed: {exc}") from exc
    finally:
        bar.close()
    ordered = [results[v.video_id] for v in videos]
    rows = _match_rows(recipe, ordered)
    done: dict[tuple[str, str], dict] = {}
    if rows:
        journal = Journal(out / "spotting.partial.jsonl")
        journal.remove()
        _answer(recipe, adapter, rows, journal, done, progress)
        journal.remove()
    preds = [done[(r["sample_id"], r["task"])] for r in rows]
    summary = {**spotting_summary(recipe, ordered, preds, adapter), "settings_hash": digest, "skipped": False}
    (out / SPOTTED).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered))
    (out / SPOTTING).write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return summary


def _match_rows(recipe: Recipe, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The matches as test instructions (the recipe's MEU question on their maps), for the model to answer."""
    from mellm_core.plugins import create

    prompt = create("prompt", recipe.instructions.prompt, **recipe.instructions.prompt_params)
    question = prompt.user_prompt("meu", recipe_labels(recipe))
    rows = []
    for result in results:
        for match in result.get("matches") or []:
            spotted, gold = match["spotted"], match["gold"]
            rows.append({"sample_id": f"{result['video_id']}@{spotted['onset']}-{spotted['offset']}", "task": "meu",
                         "label": gold.get("emotion"), "aus": gold.get("aus") or [], "dataset": result["dataset"],
                         "subject": result["subject"], "images": [match["map_path"] or ""],
                         "messages": [{"role": "user", "content": question}]})
    return rows


def spotting_summary(recipe: Recipe, results: list[dict[str, Any]], preds: list[dict[str, Any]],
                     adapter: str | None) -> dict[str, Any]:
    """``eval/spotting.json``: spotting over every video (each matched within itself; a video that failed
    spotted nothing, so its annotated intervals are misses), the analysis of the matches, STRS, and the videos
    that failed."""
    spotted, gold, pairs = [], [], []
    for r in results:
        spotted += [Interval.from_dict(i) for i in r["spotted"]]
        gold += [Interval.from_dict(i) for i in r["gold"]]
        pairs += [(Interval.from_dict(m["spotted"]), Interval.from_dict(m["gold"])) for m in r["matches"]]
    spotting = spotting_scores(spotted, gold, pairs)
    analysis = analysis_scores(preds, recipe.eval.protocol)
    return {"dataset": recipe.spot.dataset, "root": recipe.spot.root, "spotter": recipe.spot.spotter,
            "videos": len(results), "failed": {r["video_id"]: r["error"] for r in results if r["error"]},
            "spotting": spotting, "analysis": analysis,
            "strs": round(spotting["overall"]["f1"] * analysis["f1"], 4) if analysis else 0.0,
            "adapter": adapter, "model": recipe.backbone.model, "protocol": recipe.eval.protocol}
