"""What each stage returns and writes last: typed summaries instead of dicts, read back from their files the same way.

``skipped`` (the stage found its work already done) belongs to one call, so it is never written to a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mellm_core.records import JsonRecord

if TYPE_CHECKING:
    from mellm_core.files.storage import Location

S = TypeVar("S", bound="StageSummary")


class StageSummary(JsonRecord):
    """Mixin for a stage's summary: written as JSON without ``skipped``, read back with ``skipped`` set."""

    skipped: bool

    def write(self, path: Location) -> None:
        data = {k: v for k, v in self.to_dict().items() if k != "skipped"}
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2))

    @classmethod
    def read(cls: type[S], path: Location, skipped: bool = True) -> S:
        return cls.from_dict({**json.loads(path.read_text()), "skipped": skipped})


@dataclass
class MapsSummary(JsonRecord):
    """What ``mellm maps`` did: counts, speed, and the manifest it wrote (the manifest is its record on disk)."""

    samples: int
    ok: int
    failed: int
    skipped: int  # maps reused from an earlier run with the same settings
    wall_s: float
    pairs_per_s: float
    manifest: str

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "wall_s": round(self.wall_s, 3), "pairs_per_s": round(self.pairs_per_s, 3)}


@dataclass
class PartCounts(JsonRecord):
    """One side of the split: clips, instructions built from them, instructions per task."""

    samples: int
    instructions: int
    tasks: dict[str, int]


@dataclass
class InstructionsSummary(StageSummary):
    """``instructions/summary.json``: the split, the classes, and what was left out and why."""

    prompt: str
    protocol: str
    labels: list[str]
    split: str
    train: PartCounts
    test: PartCounts
    train_subjects: list[str]
    test_subjects: list[str]
    per_emotion: dict[str, int]
    excluded: dict[str, int]
    failed_maps: int
    settings_hash: str = ""
    out_dir: str = ""
    skipped: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstructionsSummary:
        parts = {k: PartCounts.from_dict(data[k]) for k in ("train", "test")}
        return super().from_dict({**data, **parts})  # type: ignore[misc]  # JsonRecord.from_dict's TypeVar

    @staticmethod
    def labels_of(path: Location) -> list[str]:
        """The classes of the instructions whose summary is ``path``; none when nothing is built yet."""
        return InstructionsSummary.read(path).labels if path.is_file() else []


@dataclass
class TrainSummary(StageSummary):
    """``train/summary.json``: the steps run, the last loss, speed, and where the adapter is."""

    start_step: int
    end_step: int
    final_loss: float | None
    samples_per_s: float
    settings_hash: str
    adapter: str = ""
    workers: int = 1
    ray: bool = False
    nodes: list[str] = field(default_factory=list)  # the nodes the workers ran on (Ray runs)
    seconds: float | None = None  # wall time of the Ray run
    val_subjects: list[str] = field(default_factory=list)  # training subjects held out for validation
    kept: dict[str, Any] | None = None  # train.keep=best_val: step, val_loss and val_acc of the adapter kept
    skipped: bool = False


@dataclass
class Verdict(JsonRecord):
    """Whether a task's ACC beats always-the-majority-class, and whether the model collapsed to one answer."""

    test: str
    correct: int
    n: int
    majority_acc: float
    p_value: float
    beats_majority: bool
    top_answer: str
    top_share: float
    collapsed: bool


@dataclass
class TaskMetrics(JsonRecord):
    """One task's block of ``metrics.json``. ``overall`` and ``per_dataset`` hold every metric plugin's scores
    (their keys are the plugins'); ``chance`` holds ``uniform`` and ``majority`` levels, and for tasks that name
    AUs ``majority_aus`` (the AU F1 of always answering the training set's most frequent AU set)."""

    overall: dict[str, Any]
    per_dataset: dict[str, dict[str, Any]]
    chance: dict[str, Any]
    verdict: Verdict | None = None  # None in metrics written before verdicts (``mellm eval`` scores them again)
    errors: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskMetrics:
        verdict = Verdict.from_dict(data["verdict"]) if data.get("verdict") else None
        return super().from_dict({**data, "verdict": verdict})  # type: ignore[misc]

    def headline(self) -> dict[str, Any]:
        """The scores, chance levels and verdict, flat, as the commands print them."""
        v = self.verdict
        return {**{k: self.overall.get(k) for k in ("acc", "uf1", "uar", "au_f1", "n", "unparsed")},
                "chance_acc": self.chance["uniform"]["acc"], "chance_uar": self.chance["uniform"]["uar"],
                "majority_acc": self.chance["majority"].get("acc"),
                "au_f1_chance": (self.chance.get("majority_aus") or {}).get("au_f1"),
                "p_value": v and v.p_value, "beats_majority": v and v.beats_majority,
                "collapsed_to": v.top_answer if v and v.collapsed else None}

    def verdict_lines(self, task: str) -> list[str]:
        """The verdict in words: whether the emotion beats chance (with the p-value), a collapse warning, and
        whether the AU F1 beats its baseline."""
        v, lines = self.verdict, []
        if v is not None:
            compared = (f"always '{self.chance['majority']['class']}' (ACC {v.majority_acc:.3f}; one-sided "
                        f"binomial p = {v.p_value:.2g})")
            lines.append(f"{task}: the emotion {'beats' if v.beats_majority else 'does NOT beat'} {compared}")
        if v is not None and v.collapsed:
            lines.append(f"warning: {task}: the model collapsed to {v.top_answer} "
                         f"({round(v.top_share * v.n)} of {v.n} answers)")
        base, au_f1 = self.chance.get("majority_aus"), self.overall.get("au_f1")
        if base is not None and au_f1 is not None:
            gap = "above" if au_f1 > base["au_f1"] else "NOT above"
            aus = "+".join(map(str, base["aus"])) or "none"
            lines.append(f"{task}: AU F1 {au_f1:.3f} is {gap} always answering the training set's most frequent AU "
                         f"set (AU {aus}: {base['au_f1']:.3f})")
        return lines


@dataclass
class SetMetrics(JsonRecord):
    """One test set of ``eval.sets`` scored apart: what it is (protocol, datasets, id lists), its size, its scores."""

    protocol: str
    datasets: list[str]
    ids: list[str]
    samples: int
    tasks: dict[str, TaskMetrics]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SetMetrics:
        tasks = {task: TaskMetrics.from_dict(block) for task, block in data["tasks"].items()}
        return super().from_dict({**data, "tasks": tasks})  # type: ignore[misc]



@dataclass
class EvalResult(StageSummary):
    """``eval/metrics.json``: the scores of each task, and what was evaluated (model, adapter, test set)."""

    protocol: str
    tasks: dict[str, TaskMetrics]
    settings_hash: str = ""
    adapter: str | None = None
    model: str = ""
    backbone: str = ""
    test_sha256: str = ""
    out_dir: str = ""
    sets: dict[str, SetMetrics] = field(default_factory=dict)  # eval.sets, in the recipe's order
    skipped: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        tasks = {task: TaskMetrics.from_dict(block) for task, block in data["tasks"].items()}
        sets = {name: SetMetrics.from_dict(block) for name, block in (data.get("sets") or {}).items()}
        return super().from_dict({**data, "tasks": tasks, "sets": sets})  # type: ignore[misc]
