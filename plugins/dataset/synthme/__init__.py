"""Dataset ``synthme``: SynthME, synthetic micro-expressions made from real face photos, exact ground truth.

``generate(out_dir, n, seed)`` writes the CASME II layout, so the ``casme2`` loader reads it unchanged::

    OUT/CASME2-coding-SynthME.xlsx                  Subject (integer), Filename, OnsetFrame, ApexFrame,
                                                    OffsetFrame, Action Units, Estimated Emotion (+2 unnamed)
    OUT/CASME2_RAW_selected/sub01/EP01/img46.jpg    onset .. offset frames, colour
    OUT/gt/sub01/EP01/flow.npy                      float32 HxWx2 forward flow onset -> apex (exact)
    OUT/gt/sub01/EP01/motion.json                   head motion at apex (``warp.similarity_flow`` arguments),
                                                    AUs and weights, peak amplitude, onset landmarks
    OUT/synthme.json                                seed, settings, subjects

How a clip is made: a subject is a face photo (scikit-image's astronaut, matplotlib's Grace Hopper, or the
user's photos) flipped, scaled, rotated, shifted and recoloured; its 68 landmarks come from the registry's
landmarker once per photo and are carried through the same transforms. The clip's AUs (an EMFACS prototype of
its emotion with dropouts, an extra AU, one-sided AUs) displace landmark templates that smooth kernels spread
into a dense field whose peak is 0.3-3 px; a random head similarity (translation, roll, scale) follows it.
Each frame is ``warp.warp_forward(onset, field)`` for the field at that frame's progress, plus sensor
noise, so the onset -> apex flow is known exactly: ``flow = head + sR . expression``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mellm_core import PluginSpec, create, hookimpl
from mellm_core.errors import InputError
from mellm_core.files.atomic import built_then_swapped
from mellm_core.records import Interval, LongVideo, Sample
from mellm_plugins.dataset.synthme.faces import Face, builtin_photos, find_faces, read_photos
from mellm_plugins.dataset.synthme.longvideo import long_video
from mellm_plugins.dataset.synthme.motion import Plan, draw_plan, draw_subject
from mellm_plugins.dataset.synthme.params import FRAMES_DIR, GT_DIR, MANIFEST, SHEET, SHEET_COLUMNS, SynthMEParams
from mellm_plugins.dataset.synthme.render import render
from mellm_plugins.dataset.synthme.writing import check_target, sheet_row, write_clip


class SynthME:
    """Generates SynthME (``generate``) and reads it (``samples``, through the ``casme2`` loader)."""

    dataset = "synthme"

    def __init__(self, params: SynthMEParams):
        self.params = params
        self.warnings: list[str] = []

    def samples(self, root: str | Path) -> list[Sample]:
        root = Path(root)
        if not (root / SHEET).is_file():
            raise InputError(
                f"{root} holds no SynthME data ({SHEET} is missing); make it with: mellm synth --out {root}"
            )
        loader = create("dataset", "casme2", coding_file=SHEET, frames_dir=FRAMES_DIR)
        samples = loader.samples(root)
        self.warnings = list(getattr(loader, "warnings", []))
        return [
            replace(s, dataset=self.dataset, sample_id=f"{self.dataset}/{s.subject}/{s.clip}")
            for s in samples
        ]

    def videos(self, root: str | Path) -> list[LongVideo]:
        """The long videos ``generate_long`` wrote under ``root``, each with its truth's intervals."""
        root = Path(root)
        truths = sorted(root.glob("long_*.json"))
        if not truths:
            raise InputError(f"{root} holds no SynthME long videos (no long_*.json); make them with: "
                             f"mellm synth --out {root} --long --n 4")
        videos = []
        for path in truths:
            try:
                truth = json.loads(path.read_text())
                intervals = [Interval(i["onset"], i["apex"], i["offset"], 1.0, i["kind"], i.get("emotion"),
                                      list(i.get("aus", []))) for i in truth["intervals"]]
                videos.append(LongVideo(f"{self.dataset}/{path.stem}", str(root / truth["video"]),
                                        float(truth["fps"]), self.dataset, truth.get("photo", ""), intervals))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{path}: not a SynthME long video's truth ({type(exc).__name__}: {exc})") from None
        return videos

    def plans(self, faces: list[Face], n: int, seed: int) -> list[Plan]:
        """The clips of a benchmark of ``n`` clips: subject k uses photo k mod len(faces); clip i goes to
        subject i mod the subject count. Each subject and clip draws from its own seeded stream, so the result
        does not depend on the order of work."""
        count = max(1, min(self.params.subjects, n))
        subjects = [
            draw_subject(np.random.default_rng([seed, 0, k]), k + 1, faces[k % len(faces)], self.params)
            for k in range(count)
        ]
        plans = [
            draw_plan(
                np.random.default_rng([seed, 1, i]),
                subjects[i % count],
                f"EP{i // count + 1:02d}",
                self.params,
            )
            for i in range(n)
        ]
        return sorted(plans, key=lambda plan: (plan.subject.number, plan.clip))

    def generate_long(self, out_dir: str | Path, n: int = 1, seed: int = 0,
                      photos: Sequence[str | Path] | None = None, progress: Callable[[], None] | None = None,
                      overwrite: bool = False) -> dict:
        """Write ``n`` long videos (``long_000.mp4`` ...) with their truth (``long_000.json``: the intervals of
        the expressions, the blinks and the head movements) under ``out_dir``, for spotting; returns a summary."""
        if n < 1 or seed < 0:
            raise InputError(f"the number of videos must be at least 1 and the seed not negative, got {n} and {seed}")
        started = time.perf_counter()
        out = Path(out_dir)
        check_target(out, overwrite)
        photos = photos or self.params.photos
        faces = find_faces(read_photos(photos) if photos else builtin_photos(), self.params.landmarker)
        with built_then_swapped(out) as staging:
            for i in range(n):
                long_video(staging / f"long_{i:03d}.mp4", faces[i % len(faces)], seed=seed * 1000 + i,
                           fps=self.params.long_fps, seconds=self.params.long_seconds, size=self.params.size,
                           noise=self.params.noise)
                if progress:
                    progress()
        return {"out": str(out), "videos": n, "seconds": round(time.perf_counter() - started, 1)}

    def generate(
        self,
        out_dir: str | Path,
        n: int = 200,
        seed: int = 0,
        photos: Sequence[str | Path] | None = None,
        progress: Callable[[], None] | None = None,
        overwrite: bool = False,
    ) -> dict:
        """Write ``n`` clips in the CASME II layout with ground truth under ``out_dir``; returns a summary.

        ``photos`` (else the ``photos`` parameter) replaces the built-in faces with the user's photos;
        ``progress`` is called after each clip.
        """
        if n < 1 or seed < 0:
            raise InputError(
                f"the number of clips must be at least 1 and the seed not negative, got {n} and {seed}"
            )
        started = time.perf_counter()
        out = Path(out_dir)
        check_target(out, overwrite)
        photos = photos or self.params.photos
        faces = find_faces(read_photos(photos) if photos else builtin_photos(), self.params.landmarker)
        plans = self.plans(faces, n, seed)
        with built_then_swapped(out) as staging:
            manifest = self._write(staging, plans, faces, seed, progress)
        emotions = Counter(p.emotion for p in plans)
        return {
            "out": str(out),
            "clips": n,
            "subjects": manifest["subject_count"],
            "seed": seed,
            "photos": [f.name for f in faces],
            "emotions": dict(sorted(emotions.items())),
            "spreadsheet": str(out / SHEET),
            "seconds": round(time.perf_counter() - started, 2),
        }

    def _write(
        self,
        staging: Path,
        plans: list[Plan],
        faces: list[Face],
        seed: int,
        progress: Callable[[], None] | None,
    ) -> dict:
        """Write every clip, the spreadsheet and the manifest under ``staging``; the manifest is returned."""
        for index, plan in enumerate(plans):
            frames, flow, truth = render(plan, self.params, np.random.default_rng([seed, 2, index]))
            write_clip(staging, plan, frames, flow, truth, self.params.image_format)
            if progress is not None:
                progress()
        rows = [sheet_row(p) for p in plans]
        pd.DataFrame(rows, columns=SHEET_COLUMNS).to_excel(staging / SHEET, index=False)
        manifest = self._manifest(plans, faces, len(plans), seed)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        return manifest

    def _manifest(self, plans: list[Plan], faces: list[Face], n: int, seed: int) -> dict:
        subjects = {p.subject.name: p.subject for p in plans}
        return {
            "generator": "synthme",
            "version": 2,  # 2: AU templates as FACS describes AU4, AU6, AU9, AU10 and AU26 (benchmarks/head_motion.py)
            "seed": seed,
            "clips": n,
            "subject_count": len(subjects),
            "photos": [f.name for f in faces],
            "params": asdict(self.params),
            "subjects": {
                name: {
                    "photo": s.face.name,
                    "flipped": s.flipped,
                    "face_fraction": round(s.fraction, 4),
                    "angle_deg": round(s.angle, 4),
                    "contrast": round(s.contrast, 4),
                    "brightness": round(s.brightness, 3),
                }
                for name, s in subjects.items()
            },
            "layout": {
                "sheet": SHEET,
                "frames": f"{FRAMES_DIR}/sub{{NN}}/{{clip}}/img{{n}}.{self.params.image_format}",
                "flow": f"{GT_DIR}/sub{{NN}}/{{clip}}/flow.npy",
                "motion": f"{GT_DIR}/sub{{NN}}/{{clip}}/motion.json",
            },
        }


@hookimpl
def mellm_dataset():
    yield PluginSpec(
        "synthme",
        SynthME,
        SynthMEParams,
        "SynthME: synthetic micro-expressions from real face photos, exact ground-truth flow",
    )
