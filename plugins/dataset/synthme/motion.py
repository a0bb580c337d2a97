"""SynthME's motion: action-unit motion on the 68 landmarks, dense motion fields, emotion prototypes, and the
random draws of a subject and of a clip's plan.

Pure numpy/cv2, no file access. Coordinates are image pixels (x right, y down). Landmarks follow iBUG 68;
points on the subject's right appear on the image's left (smaller x). Virtual points carry what the 68 do
not reach: the cheeks (68: right, 69: left) for AU6, and the forehead (70: right, 71: left, 72: centre) for
the frontalis of AU1 and AU2 and the procerus of AU4. Template vectors are in the upright face frame for the
subject's right side; the left side gets the mirror image, and everything is rotated by the face's roll.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from mellm_core.motion.facs import ONE_SIDED_PROTOTYPES
from mellm_core.motion.facs import PROTOTYPES as FACS_PROTOTYPES
from mellm_core.motion.headmotion import interocular
from mellm_core.text.labels import format_aus
from mellm_plugins.dataset.synthme.faces import Face
from mellm_plugins.dataset.synthme.params import ONSET_FRAMES, SynthMEParams, value_range


def _mirror_table() -> tuple[int, ...]:
    pairs = [(i, 16 - i) for i in range(17)] + [(17 + k, 26 - k) for k in range(5)]
    pairs += [(i, i) for i in range(27, 31)] + [(31 + k, 35 - k) for k in range(5)]
    pairs += list(zip((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46), strict=True))
    pairs += [(48 + k, 54 - k) for k in range(7)] + [(55 + k, 59 - k) for k in range(5)]
    pairs += [(60 + k, 64 - k) for k in range(5)] + [(65 + k, 67 - k) for k in range(3)] + [(68, 69), (70, 71)]
    pairs += [(72, 72)]
    table = [0] * 73
    for a, b in pairs:
        table[a], table[b] = b, a
    return tuple(table)


MIRROR: tuple[int, ...] = _mirror_table()
"""Landmark index -> the index of its mirror image (68 points plus the virtual cheek and forehead points)."""

# AU -> ((right-side or midline points, (dx, dy) in the upright face frame), ...): FACS appearance changes.
AU_TEMPLATES: dict[int, tuple[tuple[tuple[int, ...], tuple[float, float]], ...]] = {
    1: (
        ((21,), (0.0, -1.0)),
        ((20,), (0.0, -0.8)),
        ((19,), (0.0, -0.4)),
        ((72,), (0.0, -0.6)),
        ((70,), (0.0, -0.3)),
    ),  # inner brow raiser: the frontalis pulls the centre of the forehead up with the inner brows
    2: (
        ((17,), (0.0, -1.0)),
        ((18,), (0.0, -0.9)),
        ((19,), (0.0, -0.5)),
        ((70,), (0.0, -0.6)),
    ),  # outer brow raiser: and the side of the forehead above them
    4: (
        ((21,), (0.5, 0.8)),
        ((20,), (0.4, 0.8)),
        ((19,), (0.2, 0.6)),
        ((17, 18), (0.0, 0.3)),
        ((27,), (0.0, 0.3)),
        ((72,), (0.0, 0.3)),
    ),  # brow lowerer; its procerus part pulls the skin between the brows and at the root of the nose down
    5: (((37, 38), (0.0, -1.0)),),  # upper lid raiser
    6: (
        ((68,), (0.0, -1.0)),
        ((40, 41), (0.0, -0.6)),
        ((36,), (0.2, -0.3)),
        ((1, 2), (0.0, -0.5)),
        ((0, 3), (0.0, -0.25)),
    ),  # cheek raiser: lifts the cheeks (and the face contour beside them) and the lower lids, crow's feet
    7: (((40, 41), (0.0, -1.0)), ((37, 38), (0.0, 0.4))),  # lid tightener
    9: (
        ((31,), (0.0, -1.0)),
        ((32,), (0.0, -0.7)),
        ((33,), (0.0, -0.5)),
        ((29, 30), (0.0, -0.4)),
        ((28,), (0.0, -0.2)),
        ((27,), (0.0, 0.15)),
        ((21,), (0.2, 0.4)),
        ((40, 41), (0.0, -0.3)),
        ((50, 51), (0.0, -0.3)),
    ),  # nose wrinkler: raises the nose wings and the skin along the nose (wrinkling its root), lowers the
    # inner brows, raises the infraorbital triangle and the upper lip
    10: (
        ((50,), (0.0, -1.0)),
        ((49,), (0.0, -0.8)),
        ((51, 62), (0.0, -0.9)),
        ((61,), (0.0, -0.8)),
        ((31,), (0.0, -0.3)),
        ((32,), (0.0, -0.2)),
        ((68,), (0.0, -0.3)),
    ),  # upper lip raiser: also lifts the nose wings and the infraorbital triangle (deeper nasolabial furrow)
    12: (((48,), (-0.7, -0.7)), ((60,), (-0.6, -0.6)), ((49, 59), (-0.35, -0.35)), ((68,), (0.0, -0.3))),
    14: (((48,), (-0.7, -0.1)), ((60,), (-0.6, -0.1)), ((49, 59), (-0.3, 0.0))),  # dimpler
    15: (
        ((48,), (-0.2, 1.0)),
        ((60,), (-0.1, 0.8)),
        ((59,), (0.0, 0.5)),
        ((49,), (0.0, 0.3)),
    ),  # lip corner depr.
    17: (
        ((8,), (0.0, -1.0)),
        ((7,), (0.0, -0.8)),
        ((6,), (0.0, -0.5)),
        ((57,), (0.0, -0.8)),
        ((58,), (0.0, -0.7)),
        ((66,), (0.0, -0.5)),
        ((67,), (0.0, -0.4)),
    ),  # chin raiser
    20: (
        ((48,), (-1.0, 0.2)),
        ((60,), (-0.8, 0.15)),
        ((59,), (-0.5, 0.1)),
        ((49,), (-0.4, 0.0)),
    ),  # lip stretcher
    23: (
        ((48,), (0.7, 0.0)),
        ((60,), (0.5, 0.0)),
        ((50, 51), (0.0, 0.3)),
        ((58, 57), (0.0, -0.3)),
    ),  # lip tightener
    25: (((57, 66), (0.0, 0.8)), ((58, 67), (0.0, 0.7)), ((51, 62), (0.0, -0.3))),  # lips part
    26: (
        ((8,), (0.0, 1.0)),
        ((7,), (0.0, 0.9)),
        ((6,), (0.0, 0.7)),
        ((5,), (0.0, 0.4)),
        ((4,), (0.0, 0.2)),
        ((57, 66), (0.0, 1.0)),
        ((58, 67), (0.0, 0.85)),
    ),  # jaw drop
}
"""Per-AU landmark displacement templates (unit scale; the clip's amplitude sets the size)."""

# The FACS table's EMFACS prototypes as codes; "R" marks a unilateral AU (contempt's side is drawn per clip).
PROTOTYPES: dict[str, tuple[str, ...]] = {
    emotion: tuple(("R" if emotion in ONE_SIDED_PROTOTYPES else "") + str(au) for au in aus)
    for emotion, aus in FACS_PROTOTYPES.items()
}
# AUs that may randomly occur on one side only.
ONE_SIDED = (1, 2, 4, 5, 6, 7, 10, 12, 14, 15, 20)


def with_virtual_points(landmarks: np.ndarray) -> np.ndarray:
    """The 68 landmarks plus the cheek points below the eyes (68: right, 69: left) and the forehead points:
    above the middle of each brow (70: right, 71: left) and above the root of the nose (72)."""
    p = np.asarray(landmarks, dtype=np.float64)
    right = 0.4 * p[41] + 0.3 * p[48] + 0.3 * p[2]
    left = 0.4 * p[46] + 0.3 * p[54] + 0.3 * p[14]
    up = (p[27] - p[8]) / max(float(np.linalg.norm(p[27] - p[8])), 1e-9)
    eyes = interocular(p)
    forehead = [p[19] + 0.45 * eyes * up, p[24] + 0.45 * eyes * up, p[27] + 0.75 * eyes * up]
    return np.vstack([p[:68], right, left, *forehead])


def mirror_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally flipped image, re-indexed so that each index keeps its meaning."""
    flipped = np.asarray(landmarks, dtype=np.float64).copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    return flipped[list(MIRROR[: len(flipped)])]


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the eye on the image's left (36-41) and on its right (42-47)."""
    p = np.asarray(landmarks, dtype=np.float64)
    return p[36:42].mean(axis=0), p[42:48].mean(axis=0)


def face_roll(landmarks: np.ndarray) -> float:
    """In-plane rotation of the face, degrees: the angle of the line from the image-left to the other eye."""
    a, b = eye_centres(landmarks)
    return math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))


def rotation(angle_deg: float, scale: float = 1.0) -> np.ndarray:
    """2x2 matrix rotating by ``angle_deg`` in image coordinates (as ``warp.similarity_flow`` does)."""
    a = math.radians(angle_deg)
    return scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def au_displacements(au: int, side: str, roll_deg: float = 0.0) -> np.ndarray:
    """Displacements of one AU, one row per point of ``with_virtual_points`` (unit template scale); side ""
    both, "R" subject's right, "L" left."""
    out = np.zeros((len(MIRROR), 2))
    for indices, (dx, dy) in AU_TEMPLATES[au]:
        for i in indices:
            if MIRROR[i] == i:
                if not side:
                    out[i] += (dx, dy)
                continue
            if side in ("", "R"):
                out[i] += (dx, dy)
            if side in ("", "L"):
                out[MIRROR[i]] += (-dx, dy)
    return out @ rotation(roll_deg).T


def dense_field(shape: tuple[int, int], points: np.ndarray, moves: np.ndarray, sigma: float) -> np.ndarray:
    """HxWx2 field spreading point displacements by Gaussian kernels, normalized where kernels overlap.

    ``field(x) = sum_i d_i k_i(x) / max(1, sum_i k_i(x))`` over the moving points: equal to d_i at an isolated
    point, a weighted mean between close points, fading to zero away from them (kernels are cut at 4 sigma).
    """
    h, w = shape
    field = np.zeros((h, w, 2), dtype=np.float64)
    weight = np.zeros((h, w), dtype=np.float64)
    reach = int(math.ceil(4 * sigma))
    for (px, py), move in zip(points, moves, strict=True):
        x0, x1 = max(int(px) - reach, 0), min(int(px) + reach + 1, w)
        y0, y1 = max(int(py) - reach, 0), min(int(py) + reach + 1, h)
        if not np.any(move) or x0 >= x1 or y0 >= y1:
            continue
        dy2 = (np.arange(y0, y1, dtype=np.float64) - py) ** 2
        dx2 = (np.arange(x0, x1, dtype=np.float64) - px) ** 2
        k = np.exp(-(dy2[:, None] + dx2[None, :]) / (2 * sigma**2))
        field[y0:y1, x0:x1] += k[..., None] * move
        weight[y0:y1, x0:x1] += k
    return (field / np.maximum(weight, 1.0)[..., None]).astype(np.float32)


def expression_field(
    shape: tuple[int, int],
    landmarks: np.ndarray,
    aus: Mapping[int, str],
    weights: Mapping[int, float],
    peak: float,
    kernel: float,
) -> np.ndarray:
    """The AU motion field of a face: weighted templates spread with sigma = ``kernel`` x interocular,
    and scaled so that its largest displacement is ``peak`` pixels."""
    points = with_virtual_points(landmarks)
    roll = face_roll(landmarks)
    moves = sum(weights[au] * au_displacements(au, side, roll) for au, side in aus.items())
    field = dense_field(shape, points, np.asarray(moves), kernel * interocular(landmarks))
    largest = float(np.linalg.norm(field, axis=2).max())
    return field * np.float32(peak / largest) if largest > 0 else field


def draw_aus(
    rng: np.random.Generator, emotion: str, dropout: float, extra: float, one_sided: float
) -> dict[int, str]:
    """AUs of one clip as {au: side}: the emotion's prototype, dropouts, maybe an extra AU, one-sided AUs."""
    proto = {int(code.lstrip("LR")): ("R" if code[0] in "LR" else "") for code in PROTOTYPES[emotion]}
    if any(proto.values()):  # a unilateral prototype (contempt) takes one side, drawn per clip
        side = "R" if rng.random() < 0.5 else "L"
        proto = {au: side if s else "" for au, s in proto.items()}
    kept = {au: s for au, s in proto.items() if rng.random() >= dropout}
    if not kept:
        au = sorted(proto)[int(rng.integers(len(proto)))]
        kept = {au: proto[au]}
    spare = sorted(set(AU_TEMPLATES) - set(kept))
    if rng.random() < extra and spare:
        kept[spare[int(rng.integers(len(spare)))]] = ""
    for au in sorted(kept):
        if not kept[au] and au in ONE_SIDED and rng.random() < one_sided:
            kept[au] = "R" if rng.random() < 0.5 else "L"
    return dict(sorted(kept.items()))


def aus_text(aus: Mapping[int, str]) -> str:
    """The spreadsheet's AU string for {au: side}: "1+2+L12"."""
    return format_aus(aus, {str(au): side for au, side in aus.items() if side})


def profile(frame: int, onset: int, apex: int, offset: int) -> tuple[float, float]:
    """(expression, head) progress at ``frame``: the expression rises to 1 at apex, falls to 0 at offset;
    the head moves to its apex pose and stays."""
    if frame <= apex:
        rise = math.sin(math.pi / 2 * (frame - onset) / max(apex - onset, 1)) ** 2
        return rise, rise
    return math.cos(math.pi / 2 * (frame - apex) / max(offset - apex, 1)) ** 2, 1.0


def subject_matrix(
    landmarks: np.ndarray, size: int, face_fraction: float, angle_deg: float, shift: tuple[float, float]
) -> np.ndarray:
    """2x3 affine putting the landmark box at ``face_fraction`` of a ``size`` square, rotated and shifted."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    centre = (lo + hi) / 2
    scale = face_fraction * size / float(max(hi - lo))
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle_deg, scale)
    target = np.array([size / 2 + shift[0], size * 0.54 + shift[1]])
    matrix[:, 2] += target - centre
    return matrix


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points (Nx2) through a 2x3 affine matrix."""
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def compose_motion(head: np.ndarray, head_matrix: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Forward field of an expression followed by a head similarity: ``head(x) + sR . expression(x)``.

    Exact: a point x moves to x + e(x), then the head maps y to c + sR(y - c) + t, so the displacement is
    (sR - I)(x - c) + t + sR e(x), the head field plus the rotated expression field.
    """
    return (head + expression @ head_matrix.T.astype(np.float32)).astype(np.float32)



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


def _uniform(rng: np.random.Generator, limit: float) -> float:
    return float(rng.uniform(-limit, limit))


def draw_subject(rng: np.random.Generator, number: int, face: Face, p: SynthMEParams) -> Subject:
    """A subject made from ``face`` with the augmentation ranges of ``p``."""
    return Subject(
        number=number,
        face=face,
        flipped=bool(p.flip and rng.random() < 0.5),
        fraction=float(rng.uniform(*value_range(p.face_fraction, "face_fraction"))),
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
        weights={au: float(rng.uniform(*value_range(p.au_weight, "au_weight"))) for au in aus},
        peak=float(rng.uniform(*value_range(p.amplitude, "amplitude"))),
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
