"""The records that flow between stages: small dataclasses with JSON (de)serialization."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

IMAGE_TAG = "<image>"  # where the image stands in a user prompt; every image prompt begins with it
FLOW_TAG = "<flow>"  # where a text prompt's flow description stands (prompt plugins whose input is "text")


class JsonRecord:
    """Mixin: ``to_dict`` / ``from_dict`` / ``to_json`` / ``from_json`` for a flat dataclass."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]  # the mixin is only on dataclasses

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls: type[T], line: str) -> T:
        return cls.from_dict(json.loads(line))  # type: ignore[attr-defined]


@dataclass
class Sample(JsonRecord):
    """One micro-expression clip as a dataset plugin normalizes it."""

    sample_id: str
    onset_path: str
    apex_path: str
    dataset: str = ""
    subject: str = ""
    clip: str = ""
    onset_frame: int | None = None
    apex_frame: int | None = None
    offset_frame: int | None = None
    aus: list[int] = field(default_factory=list)
    au_sides: dict[str, str] = field(default_factory=dict)
    aus_raw: str = ""
    emotion: str | None = None
    emotion_raw: str = ""
    objective_class: str | None = None


@dataclass
class MapRecord(JsonRecord):
    """One line of ``maps/manifest.jsonl``: a sample's MMC-map or the reason it failed."""

    sample_id: str
    status: str  # "ok" or "failed"
    dataset: str = ""
    subject: str = ""
    emotion: str | None = None
    aus: list[int] = field(default_factory=list)
    onset_path: str = ""
    apex_path: str = ""
    map_path: str | None = None
    head_motion: list[float] | None = None
    nose: list[float] | None = None
    landmarks: list[list[float]] | None = None
    regions: dict[str, dict] | None = None  # per-region motion (see mellm_core.motion.regions.RegionMotion)
    au_sides: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    settings_hash: str = ""
    node_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Instruction(JsonRecord):
    """One line of ``instructions/{train,test}.jsonl`` in the ShareGPT / LLaMA-Factory multimodal form."""

    messages: list[dict[str, str]]  # [{"role": "user", "content": "<image>..."}, {"role": "assistant", ...}]
    images: list[str]
    task: str  # "meu" or "mer"
    label: str | None
    aus: list[int]
    sample_id: str
    dataset: str = ""
    subject: str = ""


@dataclass
class Prediction(JsonRecord):
    """One line of ``eval/predictions.jsonl``: a test instruction, the model's answer, and what the answer states."""

    sample_id: str
    task: str  # "meu" or "mer"
    label: str | None  # the gold emotion
    dataset: str = ""
    subject: str = ""
    aus_gold: list[int] = field(default_factory=list)
    text: str = ""  # the model's answer
    emotion: str | None = None  # the emotion the answer names (None: none found)
    aus: list[int] = field(default_factory=list)  # the AUs the answer names
    error: str | None = None  # why the sample could not be answered (scored as unparsed, asked again next run)
    map_path: str = ""

    @classmethod
    def unanswered(cls, row: dict[str, Any]) -> Prediction:
        """The prediction line of an instruction row before the model answers."""
        return cls(row["sample_id"], row["task"], row["label"], row.get("dataset", ""), row.get("subject", ""),
                   list(row.get("aus", [])), map_path=(row.get("images") or [""])[0])


@dataclass
class Interval(JsonRecord):
    """A spotted (or annotated) expression in a video: frame numbers counted from 1, as annotation sheets count."""

    onset: int
    apex: int
    offset: int
    score: float = 1.0  # the spotter's confidence (its motion measure at the apex)
    kind: str = "me"  # "me" (micro: onset to offset within the spotter's limit, 0.5 s by default) or "mae" (macro)
    emotion: str | None = None  # an annotated interval's emotion, when the annotation gives one
    aus: list[int] = field(default_factory=list)  # an annotated interval's action units


@dataclass
class LongVideo(JsonRecord):
    """A long video and its annotated expressions, as a long-video dataset plugin reads it (``videos(root)``)."""

    video_id: str  # unique in the dataset, e.g. "samm-lv/006_1"
    path: str  # a video file, or a folder of numbered frames
    fps: float
    dataset: str = ""
    subject: str = ""
    intervals: list[Interval] = field(default_factory=list)  # frame numbers as the video's own (see files.video)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LongVideo:
        video = super().from_dict(data)
        video.intervals = [Interval.from_dict(i) if isinstance(i, dict) else i for i in video.intervals]
        return video
