"""One pluggy hook per plugin kind. Each hook yields `PluginSpec` records describing the plugins a module offers.

A plugin module implements one hook, for example::

    from mellm_core import PluginSpec, hookimpl

    @hookimpl
    def mellm_flow():
        yield PluginSpec(name="tvl1", factory=TVL1, params=TVL1Params, description="OpenCV Dual TV-L1")

and is registered through the entry-point group ``mellm`` (entry-point name ``"<kind>.<name>"``).
The contract each kind's *instance* must meet is stated in its hook's docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import pluggy

if TYPE_CHECKING:
    from mellm_core.kinds import (
        Colorizer,
        Dataset,
        FlowEstimator,
        InferenceBackbone,
        Landmarker,
        Metric,
        PromptTemplate,
        Spotter,
    )

PROJECT = "mellm"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


T = TypeVar("T")


@dataclass(frozen=True)
class PluginSpec(Generic[T]):
    """What a plugin offers: its name, a factory taking its params dataclass, and a one-line description.

    Args:
        name: the name recipes and the CLI use (unique within its kind).
        factory: called as ``factory(params)`` with an instance of ``params`` (or with no argument when
            ``params`` is None); returns the plugin instance, of the kind's type in ``mellm_core.kinds``.
        params: a dataclass whose fields (with defaults) are the plugin's settings, or None.
        description: one line for ``mellm plugins``.
    """

    name: str
    factory: Callable[..., T]
    params: type | None = None
    description: str = ""


class Hooks:
    """Hook specifications: one per plugin kind. The hook name is ``mellm_<kind>``."""

    @hookspec
    def mellm_flow(self) -> Iterable[PluginSpec[FlowEstimator]]:
        """Optical-flow estimators.

        Instance: ``estimator(onset, apex) -> flow`` with onset/apex grayscale uint8 HxW arrays of one size,
        returning float32 HxWx2 flow (x, y) from onset to apex in image coordinates (y down).

        Example: ``create("flow", "tvl1")(onset, apex).shape == (H, W, 2)``
        """

    @hookspec
    def mellm_landmarker(self) -> Iterable[PluginSpec[Landmarker]]:
        """Facial landmark detectors.

        Instance: ``landmarker(gray) -> points`` with gray a uint8 HxW array, returning float 68x2 (x, y)
        in the iBUG 68-point scheme (point 30 is the nose tip); raises ``NoFaceError`` when no face is found.

        Example: ``create("landmarker", "dlib68")(gray)[30]`` is the nose tip.
        """

    @hookspec
    def mellm_colorizer(self) -> Iterable[PluginSpec[Colorizer]]:
        """Motion colorizers.

        Instance: ``colorizer(flow, onset_gray, landmarks) -> rgb`` with flow float32 HxWx2 (head motion
        already removed), onset_gray uint8 HxW, landmarks 68x2; returns an RGB uint8 HxWx3 map.

        Example: ``create("colorizer", "mmc", step=45)(flow, gray, points)``
        """

    @hookspec
    def mellm_prompt(self) -> Iterable[PluginSpec[PromptTemplate]]:
        """Instruction templates: the user prompt and the target text for the MEU and MER tasks, in one language.

        Instance: ``user_prompt(task, labels) -> str`` (task "meu" or "mer"; starts with ``<image>``; the
        emotion list follows ``labels``), ``meu_target(analysis) -> str`` for an ``mellm_core.text.fgmu.Analysis``
        (visual inspection, expression reasoning, final conclusion), ``mer_target(emotion) -> str`` and
        ``word(label) -> str`` (the language's word for a protocol label). A prompt that gives the model the
        flow as text instead of the map has ``input = "text"`` and ``describe(regions) -> str`` (the regions'
        ``RegionMotion`` as text); its user prompts hold ``<flow>`` where the description goes, and no image.
        A prompt with ``questions(sample) -> [(user turn, answer), ...]`` gives the training set one analysis row
        per question it asks about a sample in place of the MEU row (``megc-vqa``: every ME-VQA question type);
        the test set keeps the MEU and MER rows that ``mellm eval`` scores.

        Example: ``create("prompt", "fgmu-zh").user_prompt("meu", ["happiness", "sadness"])``
        """

    @hookspec
    def mellm_backbone(self) -> Iterable[PluginSpec[InferenceBackbone]]:
        """Model backbones: the trainable or inference model, batch collation, loss, saving and generation.

        Instance (``torch`` modules; the train, eval and serve stages call only these):

        - ``load(model, device="cpu", adapter=None, train=None, labels=()) -> module``: ``model`` is the recipe's
          ``backbone.model`` (a local folder, a hub id, or a name the plugin builds itself); ``adapter`` a folder
          ``save`` wrote; ``train`` the recipe's ``TrainConfig`` for a trainable module (adapters added, only
          trainable weights require grad) or None for inference (eval mode); ``labels`` the protocol's classes.
          ``place`` is passed only for FSDP's sharded loading: ``"host"`` (rank 0) leaves the module in CPU memory
          and ``"meta"`` (the other ranks) builds its structure on the meta device without reading weights, both
          as they would be on ``device``; a backbone without the parameter loads whole on every worker.
        - ``collate(rows) -> batch``: a dict of tensors from instruction rows (``Instruction.to_dict()``: the user
          prompt with ``<image>``, the assistant target, the image path); raises ``InputError`` naming the sample.
        - ``loss(module, batch) -> (loss, tokens)``: the mean over samples of each sample's mean target loss (so
          that data-parallel workers average to the same gradient as one worker), and the tokens in the batch (an
          int, or a tensor on the module's device so that the training loop never waits on the device for it).
        - ``save(module, out_dir, weights=None)``: the trained weights (an adapter, or all weights for a small
          model) in a folder ``load(adapter=...)`` reads, with an ``adapter_config.json`` (PEFT's, or the plugin's
          own description of the folder): the stages recognise a trained folder by that file. ``weights`` is
          passed only for a model sharded over workers (``train.strategy: fsdp``): its trainable weights gathered
          whole, by parameter name, to write instead of the module's own; a backbone without the parameter
          trains with DDP as before.
        - ``generate(module, prompts, images, max_new_tokens=None) -> texts``: batched greedy answers; prompts
          begin with ``<image>`` and images are RGB uint8 arrays, or (a prompt plugin whose ``input`` is
          ``"text"``, the flow as text) the prompt is all text and its image None. A backbone that reads text
          only (no image) has ``input = "text"``; the service then takes chat requests without an image.
        - ``merge(module, out_dir)``: a full model with the adapter merged in (``mellm export --merge``).

        Example: ``bb = create("backbone", "qwen2_5_vl"); m = bb.load("tiny-random"); bb.generate(m, [p], [img])``
        """

    @hookspec
    def mellm_metric(self) -> Iterable[PluginSpec[Metric]]:
        """Metrics, each a score of predictions against gold labels.

        Instance: ``metric(y_true, y_pred, labels) -> float`` and an attribute ``target``: "emotion" (y are
        class names, None for an unparsed prediction; ``labels`` the class order) or "aus" (y are lists of AU
        numbers; such a metric may add ``per_label(y_true, y_pred, labels) -> {au: value}``). ``mellm score``
        and evaluation report every installed metric under its name.

        Example: ``create("metric", "uf1")(["fear", "anger"], ["fear", None], ["fear", "anger"])``
        """

    @hookspec
    def mellm_dataset(self) -> Iterable[PluginSpec[Dataset]]:
        """Dataset loaders.

        Instance: ``dataset.samples(root) -> list[Sample]`` reading a dataset as distributed (its own folder
        layout and annotation file) into normalized ``Sample`` records; layout problems raise ``InputError``
        naming the file, the missing column and the columns found. Optional attributes: ``warnings``
        (list[str], filled while loading, e.g. an estimated apex) and, for synthetic datasets,
        ``generate(out_dir, n=200, seed=0, photos=None, progress=None, overwrite=False) -> summary dict`` (the
        data stage calls it when the root is absent or was generated with other settings, then with
        ``overwrite=True``; ``mellm synth`` passes ``n``, ``photos`` and a ``progress`` callback called after each
        clip). A dataset with fixed train/test lists says so in its sample ids (``dfme/TestA/...``): a ``fixed``
        split selects them by pattern. A long-video dataset also has ``videos(root) -> list[LongVideo]``: its
        recordings (a video file or a frames folder each, with the fps) and their annotated intervals, which
        ``mellm eval`` spots in when the recipe's ``spot.root`` names it.

        Example: ``create("dataset", "casme2").samples("/data/CASME2")``
        """


    @hookspec
    def mellm_spotter(self) -> Iterable[PluginSpec[Spotter]]:
        """Expression spotters: where in a video expressions happen.

        Instance: ``spotter(frames, fps) -> intervals`` with ``frames`` an iterable of grayscale uint8 HxW frames
        (read once, in order: a long video streams through, never held whole) and ``fps`` their rate; returns
        ``Interval`` records (onset, apex, offset as frame numbers from 1, a score, and the kind ``me`` or
        ``mae``), strongest first. Blinks and head motion are not expressions. After a call, ``signal`` holds
        the per-frame motion measure the intervals were found in (for plots and benchmarks).

        Example: ``create("spotter", "flow")(frames, fps=30.0)[0].apex``
        """


KINDS: tuple[str, ...] = tuple(
    name.removeprefix("mellm_") for name in vars(Hooks) if name.startswith("mellm_")
)
