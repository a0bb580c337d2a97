"""Writing SynthME clips in the CASME II layout: frames, ground truth, the coding spreadsheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mellm_core.errors import InputError
from mellm_plugins.dataset.synthme.motion import Plan, aus_text
from mellm_plugins.dataset.synthme.params import FRAMES_DIR, GT_DIR, MANIFEST


def write_clip(
    out: Path, plan: Plan, frames: dict[int, bytes], flow: np.ndarray, truth: dict, ext: str
) -> None:
    folder = out / FRAMES_DIR / plan.subject.name / plan.clip
    folder.mkdir(parents=True)
    for number, data in frames.items():
        (folder / f"img{number}.{ext}").write_bytes(data)
    gt = out / GT_DIR / plan.subject.name / plan.clip
    gt.mkdir(parents=True)
    np.save(gt / "flow.npy", flow.astype(np.float32))
    (gt / "motion.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")


def sheet_row(plan: Plan) -> list:
    return [
        plan.subject.number,
        plan.clip,
        None,
        plan.onset,
        plan.apex,
        plan.offset,
        None,
        aus_text(plan.aus),
        plan.emotion,
    ]


def check_target(out: Path, overwrite: bool) -> None:
    """``out`` must be new or empty, or (with ``overwrite``) a previous SynthME output."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; SynthME needs a folder to write into")
    if out.exists() and any(out.iterdir()):
        if not (overwrite and (out / MANIFEST).is_file()):
            raise InputError(
                f"{out} already exists and is not empty; choose a new folder"
                + (" (overwrite replaces only a previous SynthME output)" if overwrite else "")
            )
