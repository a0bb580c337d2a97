"""The flow-as-text prompt: MELLM's later design, in which a text-only LLM reads the expression's flow as
per-region text instead of an MMC-map.

Each facial region's motion from onset to apex (the maps stage's compensated flow: the head's own motion removed,
by whichever ``maps.head_motion`` mode the recipe sets, so the prompt names none) is one line: its mean and peak
(95th percentile) displacement in pixels, to two decimals, its main direction and its intensity, with regions
named as the FGMU prompts name them. The questions and the targets are the FGMU prompt's (English or Chinese,
full or compact), their colour words left out: the MEU analysis names each key region's direction, intensity and
the AUs it supports, then the emotion; MER answers with the emotion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mellm_core import PluginSpec, hookimpl
from mellm_core.motion.regions import REGIONS, RegionMotion
from mellm_core.records import FLOW_TAG
from mellm_core.text.fgmu import FgmuParams, TemplatePrompt
from mellm_plugins.prompt import fgmu_en, fgmu_zh

EN = replace(
    fgmu_en.PHRASES,
    prior=("Below is the motion of each facial region in a micro-expression, from its onset frame to its apex frame, "
           "measured by optical flow with the head's own motion removed: the mean and the peak displacement in "
           "pixels, the main direction and the intensity. Left and right in region names are the person's own."
           f"\n{FLOW_TAG}"),
    meu_steps=(
        "Analyse the motion in the following steps:\n"
        "Motion inspection: read how each facial region moves. Disregard weak motion; focus only on regions that "
        "move clearly. For each key region, state the direction and the intensity of its motion, and infer the "
        "facial action units (AUs) involved from that direction and magnitude.\n"
        "Expression reasoning: from the identified action units (AUs) and their combination, infer the "
        "micro-expression the face shows.\n"
        "Final conclusion: summarize the analysis, listing the inferred action units (AUs) and the final "
        "micro-expression.\n"
        "(The micro-expression is one of these {n} emotions: {labels}.)"),
    mer_question="Which micro-expression does this motion show? Answer with one word, one of these {n} emotions: "
                 "{labels}.",
    compact_meu=f"{FLOW_TAG}\nWhich regions move, which AUs, which micro-expression ({{labels}})?",
    compact_mer=f"{FLOW_TAG}\nWhich micro-expression ({{labels}})? One word.",
    compact_observation="{region} {direction}",
    headings=("Motion inspection:", "Expression reasoning:", "Final conclusion:"),
    observation="{region}: moving {direction}, {intensity} intensity",
    nothing_salient="No region moves clearly; all motion is weak.",
)
ZH = replace(
    fgmu_zh.PHRASES,
    prior=("以下是一个微表情从起始帧到顶点帧各面部区域的运动，由光流测得，并去除了头部自身的运动：平均位移和峰值位移"
           f"（像素）、主要方向和运动强度。区域名称中的左、右以被拍摄者自身为准。\n{FLOW_TAG}"),
    meu_steps=(
        "你需要按以下步骤进行分析：\n"
        "运动检查：阅读各面部区域的运动。排除较弱的运动，仅关注明显运动的区域。说明每个关键区域的运动方向和运动强度，"
        "并据此推断涉及的面部动作单元（AUs）。\n"
        "表情推理：根据识别出的面部动作单元（AUs）及其组合，推理出人脸所表达的微表情。\n"
        "最终结论：请总结分析结果，明确列出推断出的面部动作单元（AUs）以及最终推断的微表情。\n"
        "（微表情归类为以下{n}种情绪之一：{labels}。）"),
    mer_question="这些运动表现的是哪种微表情？请只回答一个词，从以下{n}种情绪中选择：{labels}。",
    compact_meu=f"{FLOW_TAG}\n哪些区域在运动？推断动作单元（AUs）和微表情（{{labels}}）。",
    compact_mer=f"{FLOW_TAG}\n哪种微表情（{{labels}}）？只回答一个词。",
    compact_observation="{region}{direction}",
    headings=("运动检查：", "表情推理：", "最终结论："),
    observation="{region}：运动方向：{direction}；运动强度：{intensity}",
    nothing_salient="未见明显运动的区域，所有运动都较弱。",
)
LINES = {"en": "{region}: mean {mean:.2f} px, peak {peak:.2f} px, {direction}, {intensity}",
         "zh": "{region}：平均 {mean:.2f} 像素，峰值 {peak:.2f} 像素，{direction}，{intensity}"}


@dataclass
class FlowTextParams(FgmuParams):
    """The FGMU settings, and the language."""

    language: str = "en"  # en | zh

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.language not in LINES:
            raise ValueError(f"language must be one of: {', '.join(LINES)}, got '{self.language}'")


class FlowTextPrompt(TemplatePrompt):
    """The FGMU questions and targets over a text description of the flow (see the module docstring)."""

    input = "text"  # instructions carry the description, not the map

    def __init__(self, params: FlowTextParams):
        super().__init__(EN if params.language == "en" else ZH, params)
        self.line = LINES[params.language]

    def user_prompt(self, task: str, labels: list[str]) -> str:
        """The question for ``task``, with ``<flow>`` where the description goes."""
        labels_text = self._labels(labels)
        if self.style == "compact":
            return (self.p.compact_meu if task == "meu" else self.p.compact_mer).format(**labels_text)
        body = self.p.meu_steps if task == "meu" else self.p.mer_question
        return self.p.prior + "\n\n" + body.format(**labels_text)

    def describe(self, regions: dict[str, RegionMotion]) -> str:
        """One line per region, in the regions' fixed order, of the motion measured in it."""
        p = self.p
        return "\n".join(self.line.format(region=p.regions.get(name, name), mean=r.mean_magnitude,
                                          peak=r.peak_magnitude, direction=p.directions[r.direction],
                                          intensity=p.intensities[r.intensity])
                         for name in REGIONS if (r := regions.get(name)) is not None)


@hookimpl
def mellm_prompt():
    yield PluginSpec("flow-text", FlowTextPrompt, FlowTextParams,
                     "the flow as per-region text for a text-only LLM (FGMU questions and targets; en or zh)")
