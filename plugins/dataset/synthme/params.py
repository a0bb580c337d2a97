"""SynthME's settings (the dataset plugin's parameters) and the names of the files it writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mellm_core.motion.facs import PROTOTYPES  # the emotions SynthME draws (motion.PROTOTYPES: their AU codes)

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
    long_seconds: float = 16.0  # --long: each video's length, seconds (its 7 events need 15.9 or more)
    long_fps: float = 30.0  # --long: frame rate of the videos

    def __post_init__(self) -> None:
        unknown = [e for e in self.emotions if e not in PROTOTYPES]
        if unknown or not self.emotions:
            raise ValueError(f"emotions must be drawn from: {', '.join(PROTOTYPES)}, got {self.emotions}")
        if self.image_format not in FORMATS:
            raise ValueError(f"image_format must be one of: {', '.join(FORMATS)}, got '{self.image_format}'")
        for name in ("face_fraction", "amplitude", "au_weight", "rise_frames", "fall_frames"):
            if value_range(getattr(self, name), name)[0] <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.size < 64 or self.subjects < 1:
            raise ValueError(
                f"size must be at least 64 and subjects at least 1, got {self.size} and {self.subjects}"
            )


def value_range(values: Sequence[float], name: str) -> tuple[float, float]:
    if len(values) != 2 or values[0] > values[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {list(values)}")
    return values[0], values[1]
