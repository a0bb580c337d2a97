"""Head-motion error per action unit: can any AU fool a head-motion mode?

Run:  python benchmarks/head_motion.py             (every AU and prototype, 4 clips each: ~10 min on 2 cores)
      python benchmarks/head_motion.py --trials 2  (half the clips)

Each row is one AU that SynthME draws (both sides; and each side alone for the AUs that occur on one side) or
one emotion prototype (contempt on each side). A row's clips are SynthME clips made with SynthME's own code
(its photos, subjects, templates and rendering, noise and JPEG included) at micro-expression amplitudes
(``amplitude``: 0.3-3 px peak) with a random head translation, roll and scale (SynthME's ranges: 1.5 px,
1 deg, 1 %), so the onset -> apex flow is known exactly. Every mode estimates the head motion from the TV-L1
flow of the pair and the landmarks dlib finds on the onset, as ``mellm maps`` does; the error is the endpoint
error (px) of the estimated head field against the true one, averaged over the face (``face_polygon``: the
jaw contour and the forehead above the brows). A row shows the mean and the largest error of its clips per
mode; the worst row is the figure that counts.

Stability (the last table): the share of face-box pixels of the map (the demo's map settings with each mode)
that change by more than 3 levels when every apex pixel gets a random -1 or +1 grey level.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import cv2
import numpy as np
from flow_accuracy import MemoFlow, add_noise, epe, map_change
from table import print_table

from mellm_core.config import HEAD_MOTION_MODES, load_recipe
from mellm_core.motion.headmotion import face_polygon, head_motion_field
from mellm_core.motion.mapper import Mapper, face_box
from mellm_core.motion.warp import similarity_flow
from mellm_plugins.dataset.synthme.faces import builtin_photos, find_faces
from mellm_plugins.dataset.synthme.motion import AU_TEMPLATES, ONE_SIDED, PROTOTYPES, Plan, draw_subject
from mellm_plugins.dataset.synthme.params import SynthMEParams, value_range
from mellm_plugins.dataset.synthme.render import render

MODES = tuple(m for m in HEAD_MOTION_MODES if m != "none")


def rows_to_measure() -> list[tuple[str, dict[int, str]]]:
    """(row name, {au: side}) for every AU alone, each side of the one-sided AUs, and every prototype."""
    rows = [(f"AU{au}", {au: ""}) for au in sorted(AU_TEMPLATES)]
    rows += [(f"AU{au} {side}", {au: side}) for au in ONE_SIDED for side in ("R", "L")]
    for emotion, codes in PROTOTYPES.items():
        sides = ("R", "L") if any(c[0] in "LR" for c in codes) else ("",)
        for side in sides:
            aus = {int(c.lstrip("LR")): (side if c[0] in "LR" else "") for c in codes}
            rows.append((f"{emotion} ({'+'.join(side + str(au) for au in aus)})", aus))
    return rows


def clip(params: SynthMEParams, faces: list, aus: dict[int, str], index: int, seed: int) -> dict:
    """One SynthME clip with these AUs: gray onset and apex, the true head field and the onset's landmarks."""
    rng = np.random.default_rng([seed, index])
    subject = draw_subject(rng, index, faces[index % len(faces)], params)
    head = {"dx": float(rng.uniform(-1, 1) * params.head_shift), "dy": float(rng.uniform(-1, 1) * params.head_shift),
            "angle_deg": float(rng.uniform(-1, 1) * params.head_rotation),
            "scale": 1 + float(rng.uniform(-1, 1) * params.head_scale)}
    plan = Plan(subject, f"c{index}", "", dict(aus), {au: float(rng.uniform(*value_range(params.au_weight, "")))
                                                      for au in aus},
                float(rng.uniform(*value_range(params.amplitude, ""))), head, 1, 2, 3, (0.0, 0.0, 0.0))
    frames, _, truth = render(plan, params, rng)
    onset, apex = (cv2.imdecode(np.frombuffer(frames[n], np.uint8), cv2.IMREAD_GRAYSCALE) for n in (1, 2))
    landmarks = np.asarray(truth["landmarks"])
    size = onset.shape[:2]
    true_head = similarity_flow(size, head["dx"], head["dy"], head["angle_deg"], head["scale"],
                                tuple(truth["head"]["centre"]))
    face = np.zeros(size, np.uint8)
    cv2.fillPoly(face, [np.round(face_polygon(landmarks)).astype(np.int32)], 1)
    return {"onset": onset, "apex": apex, "head": true_head, "face": face.astype(bool), "landmarks": landmarks,
            "peak": plan.peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4, help="clips per row (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    params = SynthMEParams()
    faces = find_faces(builtin_photos(), params.landmarker)
    maps = load_recipe("demo").maps
    mappers = {mode: Mapper(replace(maps, head_motion=mode)) for mode in MODES}
    shared = MemoFlow(mappers[MODES[0]].flow)
    for mapper in mappers.values():
        mapper.flow = shared
    errors: dict[str, dict[str, list[float]]] = {}
    changed: dict[str, list[float]] = {mode: [] for mode in MODES}
    index = 0
    for name, aus in rows_to_measure():
        errors[name] = {mode: [] for mode in MODES}
        for _ in range(args.trials):
            pair = clip(params, faces, aus, index, args.seed)
            noisy = add_noise(pair["apex"], np.random.default_rng([args.seed, index, 2]))
            index += 1
            shared.cache.clear()
            box = face_box(pair["landmarks"], 0.1, pair["onset"].shape)
            for mode, mapper in mappers.items():
                clean = mapper(pair["onset"], pair["apex"])
                head = head_motion_field(clean.raw_flow, clean.landmarks, mode, maps.nose_window)
                errors[name][mode].append(float(epe(head, pair["head"])[pair["face"]].mean()))
                changed[mode].append(map_change(clean.rgb, mapper(pair["onset"], noisy).rgb, box)[1])
        print(f"{name}: " + "  ".join(f"{m} {np.mean(v):.3f}" for m, v in errors[name].items()), flush=True)

    headers = ["AUs (side)"] + [f"{m} {k}" for m in MODES for k in ("mean", "max")]
    rows = [[name] + [f"{f(v):.3f}" for m in MODES for f in (np.mean, np.max) for v in (errors[name][m],)]
            for name in errors]
    print()
    print_table(f"head-motion error per AU (px, mean over the face; {args.trials} clips per row, TV-L1 flow)",
                headers, rows)
    summary = []
    for mode in MODES:
        means = {name: float(np.mean(e[mode])) for name, e in errors.items()}
        worst = max(means, key=means.__getitem__)
        every = [x for e in errors.values() for x in e[mode]]
        summary.append([mode, f"{np.mean(every):.3f}", f"{means[worst]:.3f}", worst, f"{max(every):.3f}",
                        f"{100 * np.mean(changed[mode]):.2f}"])
    print_table("per mode: mean over all clips, the worst row (its mean), the worst clip, map stability",
                ["mode", "mean", "worst row", "which", "worst clip", "% face pixels changed by noise"], summary)
    print(f"{index} clips, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
