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

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mellm_core import PluginSpec, create, hookimpl
from mellm_core.data.synth import (
    PROTOTYPES,
    apply_affine,
    aus_text,
    compose_motion,
    draw_aus,
    expression_field,
    mirror_landmarks,
    profile,
    rotation,
    subject_matrix,
)
from mellm_core.errors import InputError
from mellm_core.files.atomic import built_then_swapped
from mellm_core.files.frames import to_gray
from mellm_core.motion.warp import similarity_flow, warp_forward
from mellm_core.records import Sample

SHEET = "CASME2-coding-SynthME.xlsx"
FRAMES_DIR = "CASME2_RAW_selected"
GT_DIR = "gt"
MANIFEST = "synthme.json"
SHEET_COLUMNS = [
    "Subject",
    "Filename",
    "",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "",
    "Action Units",
    "Estimated Emotion",
]
FORMATS = ("jpg", "png", "bmp")
ONSET_FRAMES = (10, 120)  # onset frame numbers are drawn from this range, like CASME II's numbering


@dataclass
class SynthMEParams:
    size: int = 192  # side of the square frames, pixels
    subjects: int = 16  # distinct subjects the clips are spread over
    face_fraction: list[float] = field(
        default_factory=lambda: [0.5, 0.62]
    )  # landmark box / frame side, range
    subject_rotation: float = 8.0  # largest in-plane rotation of a subject, degrees
    subject_shift: float = 0.03  # largest offset of a subject's face from the centre, fraction of the frame
    contrast: float = 0.2  # largest relative contrast change of a subject
    brightness: float = 20.0  # largest brightness change of a subject, grey levels
    tint: float = 0.08  # largest per-channel gain change of a subject
    flip: bool = True  # mirror half of the subjects
    pose_shift: float = 2.0  # per-clip pose change: largest shift, pixels
    pose_rotation: float = 1.5  # per-clip pose change: largest rotation, degrees
    amplitude: list[float] = field(
        default_factory=lambda: [0.3, 3.0]
    )  # peak AU displacement at apex, px, range
    au_weight: list[float] = field(default_factory=lambda: [0.6, 1.0])  # relative strength of each AU, range
    kernel: float = 0.15  # spread of each landmark's motion, fraction of the interocular distance
    head_shift: float = 1.5  # largest head translation at apex per axis, pixels
    head_rotation: float = 1.0  # largest head roll at apex, degrees
    head_scale: float = 0.01  # largest relative head scale change at apex
    noise: float = 1.0  # sensor noise per frame, grey levels (standard deviation)
    dropout: float = 0.15  # chance that each prototype AU is left out
    extra: float = 0.3  # chance of one extra random AU
    one_sided: float = 0.1  # chance that a bilateral AU occurs on one side only
    rise_frames: list[int] = field(default_factory=lambda: [2, 5])  # frames from onset to apex, range
    fall_frames: list[int] = field(default_factory=lambda: [2, 5])  # frames from apex to offset, range
    emotions: list[str] = field(default_factory=lambda: list(PROTOTYPES))  # emotions drawn uniformly
    image_format: str = "jpg"  # jpg, png or bmp
    jpeg_quality: int = 95  # JPEG quality when image_format is jpg
    landmarker: str = "dlib68"  # landmark plugin that finds the faces in the photos
    photos: list[str] = field(default_factory=list)  # your own face photos ([] = astronaut and Grace Hopper)

    def __post_init__(self) -> None:
        unknown = [e for e in self.emotions if e not in PROTOTYPES]
        if unknown or not self.emotions:
            raise ValueError(f"emotions must be drawn from: {', '.join(PROTOTYPES)}, got {self.emotions}")
        if self.image_format not in FORMATS:
            raise ValueError(f"image_format must be one of: {', '.join(FORMATS)}, got '{self.image_format}'")
        for name in ("face_fraction", "amplitude", "au_weight", "rise_frames", "fall_frames"):
            if _range(getattr(self, name), name)[0] <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.size < 64 or self.subjects < 1:
            raise ValueError(
                f"size must be at least 64 and subjects at least 1, got {self.size} and {self.subjects}"
            )


def _range(values: Sequence[float], name: str) -> tuple[float, float]:
    if len(values) != 2 or values[0] > values[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {list(values)}")
    return values[0], values[1]


@dataclass
class Face:
    """A base photo (BGR) and its 68 landmarks."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray


@dataclass
class Subject:
    """A face photo made into a distinct person: mirrored or not, placement and colour."""

    number: int
    face: Face
    flipped: bool
    fraction: float
    angle: float
    shift: tuple[float, float]
    contrast: float
    brightness: float
    gains: tuple[float, float, float]

    @property
    def name(self) -> str:
        return f"sub{self.number:02d}"


@dataclass
class Plan:
    """Everything drawn for one clip before rendering."""

    subject: Subject
    clip: str
    emotion: str
    aus: dict[int, str]
    weights: dict[int, float]
    peak: float
    head: dict[str, float]
    onset: int
    apex: int
    offset: int
    pose: tuple[float, float, float]


def builtin_photos() -> list[tuple[str, np.ndarray]]:
    """The real face photos that ship with scikit-image (astronaut) and matplotlib (Grace Hopper), BGR."""
    try:
        import skimage.data
        from matplotlib import cbook
    except ImportError:
        raise InputError(
            "SynthME's built-in faces come from scikit-image and matplotlib (pip install 'mellm[dev]');"
            " install them or pass photos of your own"
        ) from None
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    return [
        ("astronaut", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)),
        ("grace_hopper", hopper),
    ]


def read_photos(paths: Sequence[str | Path]) -> list[tuple[str, np.ndarray]]:
    """User photos as (name, BGR image); an unreadable file is an error naming it."""
    out = []
    for path in map(Path, paths):
        data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise InputError(f"photo {path} does not exist or is not a readable image")
        out.append((path.stem, image))
    return out


_LANDMARKS: dict[tuple[str, str], np.ndarray] = {}


def find_faces(photos: list[tuple[str, np.ndarray]], landmarker: str) -> list[Face]:
    """Landmarks of each photo from the registry's ``landmarker`` (once per photo and process); a photo
    without a face is an error naming it."""
    faces, detect = [], None
    for name, image in photos:
        key = (landmarker, hashlib.sha1(image.tobytes()).hexdigest())
        if key not in _LANDMARKS:
            detect = detect or create("landmarker", landmarker)
            try:
                _LANDMARKS[key] = np.asarray(detect(to_gray(image)), dtype=np.float64)
            except InputError as exc:
                raise InputError(f"SynthME photo '{name}': {exc}; use a frontal face photo") from None
        faces.append(Face(name, image, _LANDMARKS[key]))
    return faces


def _uniform(rng: np.random.Generator, limit: float) -> float:
    return float(rng.uniform(-limit, limit))


def draw_subject(rng: np.random.Generator, number: int, face: Face, p: SynthMEParams) -> Subject:
    """A subject made from ``face`` with the augmentation ranges of ``p``."""
    return Subject(
        number=number,
        face=face,
        flipped=bool(p.flip and rng.random() < 0.5),
        fraction=float(rng.uniform(*_range(p.face_fraction, "face_fraction"))),
        angle=_uniform(rng, p.subject_rotation),
        shift=(_uniform(rng, p.subject_shift * p.size), _uniform(rng, p.subject_shift * p.size)),
        contrast=1 + _uniform(rng, p.contrast),
        brightness=_uniform(rng, p.brightness),
        gains=(1 + _uniform(rng, p.tint), 1 + _uniform(rng, p.tint), 1 + _uniform(rng, p.tint)),
    )


def draw_plan(rng: np.random.Generator, subject: Subject, clip: str, p: SynthMEParams) -> Plan:
    """The labels, amplitudes, head motion and timing of one clip."""
    emotion = p.emotions[int(rng.integers(len(p.emotions)))]
    aus = draw_aus(rng, emotion, p.dropout, p.extra, p.one_sided)
    onset = int(rng.integers(*ONSET_FRAMES))
    apex = onset + int(rng.integers(p.rise_frames[0], p.rise_frames[1] + 1))
    offset = apex + int(rng.integers(p.fall_frames[0], p.fall_frames[1] + 1))
    return Plan(
        subject=subject,
        clip=clip,
        emotion=emotion,
        aus=aus,
        weights={au: float(rng.uniform(*_range(p.au_weight, "au_weight"))) for au in aus},
        peak=float(rng.uniform(*_range(p.amplitude, "amplitude"))),
        head={
            "dx": _uniform(rng, p.head_shift),
            "dy": _uniform(rng, p.head_shift),
            "angle_deg": _uniform(rng, p.head_rotation),
            "scale": 1 + _uniform(rng, p.head_scale),
        },
        onset=onset,
        apex=apex,
        offset=offset,
        pose=(_uniform(rng, p.pose_shift), _uniform(rng, p.pose_shift), _uniform(rng, p.pose_rotation)),
    )


def onset_image(plan: Plan, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The clip's noiseless onset frame (float32 BGR) and its 68 landmarks."""
    s = plan.subject
    image, points = s.face.image, s.face.landmarks
    if s.flipped:
        image, points = np.ascontiguousarray(image[:, ::-1]), mirror_landmarks(points, image.shape[1])
    span = float(max(points.max(axis=0) - points.min(axis=0)))
    shrink = s.fraction * size / span
    if shrink < 1:  # downscale with area averaging first, so the affine warp does not alias
        image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        points = (points + 0.5) * (np.array(image.shape[1::-1]) / np.array(s.face.image.shape[1::-1])) - 0.5
    dx, dy, angle = plan.pose
    matrix = subject_matrix(points, size, s.fraction, s.angle + angle, (s.shift[0] + dx, s.shift[1] + dy))
    warped = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )
    colour = ((warped.astype(np.float32) - 128) * s.contrast + 128 + s.brightness) * np.asarray(s.gains, np.float32)
    return np.clip(colour, 0, 255).astype(np.float32), apply_affine(points, matrix)


def motion_at(plan: Plan, frame: int, expression: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """The forward field from the onset frame to ``frame``."""
    amount, head = profile(frame, plan.onset, plan.apex, plan.offset)
    h = plan.head
    angle, scale = head * h["angle_deg"], 1 + head * (h["scale"] - 1)
    field = similarity_flow(expression.shape[:2], head * h["dx"], head * h["dy"], angle, scale, centre)
    return compose_motion(field, rotation(angle, scale), amount * expression)


def _encode(image: np.ndarray, p: SynthMEParams) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality] if p.image_format == "jpg" else []
    ok, data = cv2.imencode(f".{p.image_format}", image, params)
    if not ok:
        raise InputError(f"could not encode a .{p.image_format} frame")
    return data.tobytes()


def render(
    plan: Plan, p: SynthMEParams, rng: np.random.Generator
) -> tuple[dict[int, bytes], np.ndarray, dict]:
    """Encoded frames by number, the exact onset -> apex flow, and the clip's ground-truth record."""
    onset, landmarks = onset_image(plan, p.size)
    expression = expression_field(onset.shape[:2], landmarks, plan.aus, plan.weights, plan.peak, p.kernel)
    centre = (float(landmarks[30][0]), float(landmarks[30][1]))
    frames = {}
    for number in range(plan.onset, plan.offset + 1):
        moved = (
            onset
            if number == plan.onset
            else warp_forward(onset, motion_at(plan, number, expression, centre))
        )
        noisy = moved + np.float32(p.noise) * rng.standard_normal(moved.shape, dtype=np.float32)
        frames[number] = _encode(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), p)
    flow = motion_at(plan, plan.apex, expression, centre)
    truth = {
        "sample_id": f"synthme/{plan.subject.name}/{plan.clip}",
        "subject": plan.subject.name,
        "clip": plan.clip,
        "emotion": plan.emotion,
        "aus": aus_text(plan.aus),
        "au_weights": {str(au): round(w, 4) for au, w in plan.weights.items()},
        "peak_amplitude": round(plan.peak, 4),
        "onset_frame": plan.onset,
        "apex_frame": plan.apex,
        "offset_frame": plan.offset,
        "head": {**{k: round(v, 6) for k, v in plan.head.items()}, "centre": [round(c, 4) for c in centre]},
        "landmarks": np.round(landmarks, 3).tolist(),
        "photo": plan.subject.face.name,
        "flipped": plan.subject.flipped,
    }
    return frames, flow, truth


def _write_clip(
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


def _sheet_row(plan: Plan) -> list:
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


def _check_target(out: Path, overwrite: bool) -> None:
    """``out`` must be new or empty, or (with ``overwrite``) a previous SynthME output."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; SynthME needs a folder to write into")
    if out.exists() and any(out.iterdir()):
        if not (overwrite and (out / MANIFEST).is_file()):
            raise InputError(
                f"{out} already exists and is not empty; choose a new folder"
                + (" (overwrite replaces only a previous SynthME output)" if overwrite else "")
            )


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
        _check_target(out, overwrite)
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
            _write_clip(staging, plan, frames, flow, truth, self.params.image_format)
            if progress is not None:
                progress()
        rows = [_sheet_row(p) for p in plans]
        pd.DataFrame(rows, columns=SHEET_COLUMNS).to_excel(staging / SHEET, index=False)
        manifest = self._manifest(plans, faces, len(plans), seed)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        return manifest

    def _manifest(self, plans: list[Plan], faces: list[Face], n: int, seed: int) -> dict:
        subjects = {p.subject.name: p.subject for p in plans}
        return {
            "generator": "synthme",
            "version": 1,
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
