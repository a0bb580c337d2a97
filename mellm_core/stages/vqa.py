"""``mellm vqa``: answer an MEGC ME-VQA test file with the recipe's model.

Test lines name clip folders (``video``, beside the file) with no onset or apex. Each clip is read once: its
first frame is the onset, the recipe's spotter finds the apex (the strongest expression's; the frame moving most
from the onset when nothing is spotted), the MMC-map is made, and the model analyses it once with the recipe's
analysis question. Every question about the clip is answered from that one analysis as the challenge's files
answer it (``text.vqa``); the side of an AU is the side whose regions move more in the map. A question
of no known type is put to the model as written. A clip that cannot be read leaves its lines' answers empty,
with the reason in ``error``, and the others are answered.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mellm_core.config import Recipe
from mellm_core.errors import InputError, MellmError
from mellm_core.files.jsonlines import read_jsonl
from mellm_core.files.video import open_video
from mellm_core.motion.facs import ACTION_UNITS
from mellm_core.motion.regions import RegionMotion
from mellm_core.records import IMAGE_TAG
from mellm_core.text.vqa import Reading, answer


@dataclass
class Clip:
    """One clip's map, its regions' motion and what its analysis read; or why it has none."""

    rgb: np.ndarray | None = None
    regions: dict[str, RegionMotion] = field(default_factory=dict)
    apex: int | None = None
    reading: Reading = field(default_factory=lambda: Reading(None))
    error: str | None = None


def read_questions(path: Path) -> list[dict[str, Any]]:
    """The lines of a test file: each needs ``video`` and ``question``."""
    if not path.is_file():
        raise InputError(f"questions file {path} does not exist")

    def problem(line: Any) -> str | None:
        if isinstance(line, dict) and "video" in line and "question" in line:
            return None
        return 'an ME-VQA test line needs "video" (its clip folder) and "question"'

    lines = read_jsonl(path, problem)
    if not lines:
        raise InputError(f"{path} holds no questions")
    return lines


def sides_in_map(aus: list[int], regions: dict[str, RegionMotion]) -> dict[str, str]:
    """For each AU that moves regions on both sides of the face, the side ("L" or "R", the subject's) whose
    regions move more in the map."""
    sides = {}
    for au in aus:
        unit = ACTION_UNITS.get(au)
        if unit is None:
            continue
        motion = {side: sum(regions[f"{side} {stem}"].mean_magnitude for stem in unit.moves
                            if f"{side} {stem}" in regions) for side in ("left", "right")}
        if motion["left"] or motion["right"]:
            sides[str(au)] = "L" if motion["left"] > motion["right"] else "R"
    return sides


def _clip_map(recipe: Recipe, folder: Path, fps: float | None) -> tuple[np.ndarray, dict[str, RegionMotion], int]:
    """The clip's MMC-map (first frame to spotted apex), its regions, and the apex frame number."""
    from mellm_core.data.frameindex import peak_motion_frame
    from mellm_core.files.frames import read_gray
    from mellm_core.motion.mapper import Mapper
    from mellm_core.motion.spotting import strongest

    video = open_video(folder, fps, recipe.spot.fps)
    assert video.clip is not None  # a folder
    try:
        apex = strongest(video, recipe.spot)[0].apex
    except InputError:  # nothing spotted: the frame moving most from the onset
        apex = peak_motion_frame(video.clip, video.clip.numbers[0])
    onset = video.clip.numbers[0]
    result = Mapper(recipe.maps)(read_gray(video.clip.path(onset)), read_gray(video.clip.path(apex)))
    return result.rgb, result.regions, apex


def answer_file(recipe: Recipe, questions: Path, fps: float | None, adapter: str | None,
                progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The test file's lines with ``answer`` filled (and ``error`` where a clip failed), and a summary."""
    from mellm_core.model.predictor import Answer, Predictor

    lines = read_questions(questions)
    folders = {str(line["video"]): (questions.parent / str(line["video"])).resolve() for line in lines}
    clips: dict[str, Clip] = {}
    for name, folder in tqdm(folders.items(), desc="maps", unit="clip", disable=not progress, file=sys.stderr):
        try:
            if not folder.is_dir():
                raise InputError(f"clip folder {folder} (\"video\": \"{name}\") does not exist")
            clips[name] = Clip(*_clip_map(recipe, folder, fps))
        except MellmError as exc:
            clips[name] = Clip(error=str(exc))
    predictor = Predictor(recipe, adapter)
    ready = [(clip, clip.rgb) for clip in clips.values() if clip.rgb is not None]
    batch = max(1, recipe.eval.batch_size)
    for start in tqdm(range(0, len(ready), batch), desc="vqa", unit="batch", disable=not progress, file=sys.stderr):
        part = ready[start:start + batch]
        answers: list[Answer | None]
        try:
            answers = list(predictor([rgb for _, rgb in part], regions=[c.regions for c, _ in part]))
        except InputError:  # one clip must not cost the batch: ask one at a time
            answers = []
            for clip, rgb in part:
                try:
                    answers += predictor([rgb], regions=[clip.regions])
                except InputError as exc:
                    clip.error, clip.rgb = str(exc), None
                    answers.append(None)
        for (clip, _), said in zip(part, answers, strict=True):
            if said is None:
                continue
            clip.reading = Reading(said.emotion, said.aus, sides_in_map(list(ACTION_UNITS), clip.regions))
    out = []
    asked = 0
    for line in lines:
        clip = clips[str(line["video"])]
        line = {**line, "answer": ""}
        if clip.error:
            line["error"] = clip.error
        else:
            source = str(line.get("dataset") or str(line.get("video_id", "")).split("_")[0]).lower()
            reply = answer(str(line["question"]), replace(clip.reading, dataset=source))
            if reply is None and clip.rgb is not None:
                asked += 1
                reply = predictor.texts([IMAGE_TAG + str(line["question"])], [clip.rgb])[0].strip()
            line["answer"] = reply or ""
        out.append(line)
    failed = sum(1 for c in clips.values() if c.error)
    return out, {"lines": len(out), "clips": len(clips), "failed_clips": failed, "asked_as_written": asked,
                 "apex": {name: c.apex for name, c in clips.items() if c.apex is not None}}
