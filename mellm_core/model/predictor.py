"""The model side of inference: a recipe's backbone with its adapter, its prompt, and parsed answers.

Evaluation, ``mellm analyze`` and the HTTP service all answer through ``Predictor``, so they ask the model the
same question and read its answer the same way.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mellm_core.config import Recipe
from mellm_core.errors import InputError
from mellm_core.files.layout import RunLayout
from mellm_core.files.storage import model_folder
from mellm_core.model.adapters import local_adapter, trained_adapter
from mellm_core.motion.facs import PROTOTYPES
from mellm_core.motion.regions import RegionMotion
from mellm_core.plugins import get_registry
from mellm_core.records import Interval
from mellm_core.summaries import InstructionsSummary
from mellm_core.text.labels import get_protocol
from mellm_core.text.parse import parse_output
from mellm_core.text.turns import takes_text, user_turn


@dataclass
class Answer:
    """The model's text and what the parser read from it."""

    text: str
    emotion: str | None
    aus: list[int] = field(default_factory=list)


def recipe_labels(recipe: Recipe) -> list[str]:
    """The emotion classes the model is asked to choose from: the evaluation protocol's, else the training data's,
    else (a protocol such as ``all`` with nothing built yet) the basic emotions of FACS's prototypes."""
    for name in (recipe.eval.protocol, recipe.instructions.protocol):
        classes = get_protocol(name).classes
        if classes:
            return list(classes)
    return InstructionsSummary.labels_of(RunLayout(recipe.output_dir).instructions_summary) or list(PROTOTYPES)


def model_note(recipe: Recipe, adapter: str | None, command: str) -> str | None:
    """A line saying that an untrained model answers, and what trains one; None when an adapter is used."""
    if adapter:
        return None
    untrained = " (random weights: its answers mean nothing)" if recipe.backbone.model == "tiny-random" else ""
    return (f"note: no trained adapter under {RunLayout(recipe.output_dir).train}: the base model "
            f"{recipe.backbone.model} answers{untrained}; train one with `{command}`")


def train_command(recipe: str, overrides: list[str]) -> str:
    """``mellm train`` on ``recipe`` with the ``overrides`` that matter for training: all but ``serve.*``, which
    only the service reads (a port, the service's limits)."""
    kept = [o for o in overrides if o.split("=", 1)[0].strip().split(".", 1)[0] != "serve"]
    return shlex.join(["mellm", "train", recipe, *kept])


def default_adapter(recipe: Recipe) -> str | None:
    """``serve.adapter`` when set, else the recipe's trained adapter when one exists, else None (the base model)."""
    return recipe.serve.adapter or trained_adapter(recipe.output_dir)


class Predictor:
    """Loads the backbone once; answers batches of MMC-maps with the recipe's user prompt.

    An adapter under a URI is fetched into the local cache first (model loaders read local folders).
    """

    def __init__(self, recipe: Recipe, adapter: str | None = None, device: str = "cpu", task: str = "meu",
                 labels: list[str] | None = None):
        registry = get_registry()
        local = local_adapter(adapter) if adapter else None
        self.labels = labels or recipe_labels(recipe)
        self.prompt_plugin = registry.create("prompt", recipe.instructions.prompt, **recipe.instructions.prompt_params)
        self.task = task
        self.backbone = registry.create("backbone", recipe.backbone.name, **recipe.backbone.params)
        self.module = self.backbone.load(model_folder(recipe.backbone.model), device=device,
                                         adapter=str(local) if local else None, labels=self.labels)
        self.adapter = adapter

    @property
    def takes_text(self) -> bool:
        """Whether the recipe's prompt gives the model the flow as text instead of the map."""
        return takes_text(self.prompt_plugin)

    def texts(self, prompts: list[str], images: list[np.ndarray | None], max_new_tokens: int | None = None
              ) -> list[str]:
        """Raw answers to explicit prompts (each beginning with ``<image>``, or image-less (None) text)."""
        return self.backbone.generate(self.module, prompts, images, max_new_tokens)

    def __call__(self, images: list[np.ndarray], max_new_tokens: int | None = None,
                 regions: list[dict[str, RegionMotion]] | None = None) -> list[Answer]:
        """Answers on MMC-maps, or (a prompt that takes the flow as text) on their ``regions``' motion."""
        if self.takes_text:
            if regions is None or len(regions) != len(images):
                raise InputError("the recipe's prompt takes the flow as text: each map needs its regions' motion")
            prompts = [user_turn(self.prompt_plugin, self.task, self.labels, r) for r in regions]
            texts = self.texts(prompts, [None] * len(prompts), max_new_tokens)
        else:
            texts = self.texts([user_turn(self.prompt_plugin, self.task, self.labels)] * len(images), list(images),
                               max_new_tokens)
        answers = []
        for text in texts:
            parsed = parse_output(text, self.labels)
            answers.append(Answer(text, parsed.emotion, list(parsed.aus)))
        return answers


@dataclass
class PairAnalysis:
    """``mellm analyze``'s result: the model's answer on one pair's MMC-map, and which model gave it."""

    answer: Answer
    map_path: str
    adapter: str | None
    note: str | None  # set when an untrained base model answered (with the command that trains one)


def analyze_pair(recipe: Recipe, onset: str, apex: str, map_path: str, train_command: str,
                 adapter: str | None = None, model: str | None = None,
                 max_new_tokens: int | None = None) -> PairAnalysis:
    """One onset/apex pair end to end: the recipe's MMC-map (written to ``map_path``), then the recipe's model
    (or ``model``, without an adapter) answering on it."""
    from dataclasses import replace

    from mellm_core.files.atomic import write_png_atomic
    from mellm_core.files.frames import read_gray
    from mellm_core.motion.mapper import Mapper

    if model:
        recipe = replace(recipe, backbone=replace(recipe.backbone, model=model))
    adapter = adapter or (None if model else default_adapter(recipe))
    result = Mapper(recipe.maps)(read_gray(onset), read_gray(apex))
    write_png_atomic(map_path, result.rgb)
    answer = Predictor(recipe, adapter)([result.rgb], max_new_tokens, [result.regions])[0]
    return PairAnalysis(answer, map_path, adapter, None if model else model_note(recipe, adapter, train_command))


@contextlib.contextmanager
def spotted_pair(recipe: Recipe, inputs: list[str], fps: float | None = None
                 ) -> Iterator[tuple[str, str, Interval | None]]:
    """(onset file, apex file, interval): the two frames given, or those of a video's strongest micro-expression
    (the strongest expression when it holds no micro one), spotted with the recipe's spotter (with a progress bar;
    in windows on Ray Data when the video is longer than ``spot.window_frames``, as ``mellm spot`` does) and
    written to a temporary folder for the block's duration."""
    if len(inputs) == 2:
        yield inputs[0], inputs[1], None
        return
    import cv2

    from mellm_core.files.video import open_video
    from mellm_core.motion.spotting import best_interval
    from mellm_core.stages.longvideo import spot_video_windows

    video = open_video(inputs[0], fps, recipe.spot.fps)
    interval = best_interval(video, spot_video_windows(video, recipe.spot, address=recipe.ray.address)[0])
    with tempfile.TemporaryDirectory(prefix="mellm-spot-") as folder:
        paths = []
        for role, number in (("onset", interval.onset), ("apex", interval.apex)):
            path = f"{folder}/{role}.png"
            cv2.imwrite(path, video.frame(number))
            paths.append(path)
        yield paths[0], paths[1], interval
