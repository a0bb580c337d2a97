"""What an instance of each plugin kind must offer, as ``typing.Protocol`` classes a type checker can check.

``hookspecs`` says in words what each method does; these say it in types. ``create("flow", ...)`` is typed as a
``FlowEstimator``, and so on. A backbone is an ``InferenceBackbone`` (it answers) and, when it can be trained,
also a ``TrainableBackbone``: a model served elsewhere implements the first only and writes no stub methods;
``trainable`` refuses it by name where training or merging is asked for. A ``PlannableBackbone`` also reports
its shape for ``mellm plan``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mellm_core.errors import InputError

if TYPE_CHECKING:
    from mellm_core.model.plan import ModelShape
    from mellm_core.records import Interval, Sample
    from mellm_core.text.fgmu import Analysis


class Spotter(Protocol):
    signal: list[float]

    def __call__(self, frames: Iterable[np.ndarray], fps: float) -> list[Interval]:
        """Gray uint8 frames in order, their rate -> spotted intervals, strongest first."""
        ...


class FlowEstimator(Protocol):
    def __call__(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        """Gray uint8 HxW onset and apex -> float32 HxWx2 flow (x, y) from onset to apex."""
        ...


class Landmarker(Protocol):
    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """Gray uint8 HxW -> float 68x2 points (iBUG scheme; point 30 is the nose tip); NoFaceError if none."""
        ...


class Colorizer(Protocol):
    def __call__(self, flow: np.ndarray, onset_gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Compensated flow, gray onset and landmarks -> RGB uint8 HxWx3 map."""
        ...


class PromptTemplate(Protocol):
    def user_prompt(self, task: str, labels: list[str]) -> str: ...

    def meu_target(self, analysis: Analysis) -> str: ...

    def mer_target(self, emotion: str) -> str: ...

    def word(self, emotion: str) -> str: ...


@runtime_checkable
class InferenceBackbone(Protocol):
    """A model that answers: loaded once, then asked for greedy answers to (prompt, image) batches."""

    def load(self, model: str, device: str = "cpu", adapter: str | None = None, train: Any = None,
             labels: Sequence[str] = ()) -> Any: ...

    def generate(self, module: Any, prompts: list[str], images: list[np.ndarray | None],
                 max_new_tokens: int | None = None) -> list[str]: ...


@runtime_checkable
class TrainableBackbone(InferenceBackbone, Protocol):
    """A model the training loop fine-tunes and ``mellm export --merge`` merges."""

    def collate(self, rows: list[dict]) -> dict[str, Any]: ...

    def loss(self, module: Any, batch: dict[str, Any]) -> tuple[Any, Any]: ...

    def save(self, module: Any, out_dir: str | Path, weights: dict[str, Any] | None = None) -> None:
        """Write what ``load(adapter=out_dir)`` reads; ``weights`` (when given) are the trainable weights gathered
        whole from a model sharded over workers (FSDP), by parameter name, to write instead of the module's own."""

    def merge(self, module: Any, out_dir: str | Path) -> None: ...


@runtime_checkable
class PlannableBackbone(Protocol):
    """A backbone that can say, without weights, what training costs (``mellm plan``)."""

    def shape(self, model: str, train: Any, image_size: tuple[int, int] | None, user: str, target: str
              ) -> ModelShape: ...


class Metric(Protocol):
    target: str  # "emotion" (class names, None for unparsed) or "aus" (lists of AU numbers)

    def __call__(self, y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Hashable]) -> float: ...


class Dataset(Protocol):
    def samples(self, root: str | Path) -> list[Sample]: ...


def trainable(backbone: InferenceBackbone, name: str, what: str = "trained") -> TrainableBackbone:
    """``backbone`` as a trainable one, or an error naming the backbone plugin that only answers."""
    if not isinstance(backbone, TrainableBackbone):
        raise InputError(f"backbone '{name}' only answers (a model served elsewhere): it cannot be {what}; "
                         "choose a trainable backbone (mellm plugins lists them)")
    return backbone
