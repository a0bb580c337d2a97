"""The FGMU prompt in English: the paper's colour prior and three-step analysis, with English targets."""

from __future__ import annotations

from mellm_core import PluginSpec, hookimpl
from mellm_core.motion.mmc import DIRECTIONS
from mellm_core.motion.regions import REGIONS
from mellm_core.text.fgmu import FgmuParams, Phrases, TemplatePrompt

PHRASES = Phrases(
    prior=(
        "This is a face image overlaid with a visualization of the optical flow of a micro-expression. In this "
        "image, the colour of each facial region shows the direction of its motion and the brightness shows the "
        "magnitude of the motion. Colours map to directions as follows:\n"
        "up: purple; up-right: magenta/pink; right: red; down-right: orange-yellow; down: yellow-green; "
        "down-left: green; left: cyan; up-left: blue.\n"
        "Left and right in region names are the person's own: the person's right side is on the image's left."
    ),
    meu_steps=(
        "Analyse the image in the following steps:\n"
        "Visual inspection: carefully observe how the colour patches are distributed over the facial regions. "
        "Disregard overall head motion and dim regions (weak motion); focus only on clear local motion. For each "
        "key region, identify its colour, the corresponding direction of motion and its intensity, and infer the "
        "facial action units (AUs) involved from the direction and magnitude of the motion in that region.\n"
        "Expression reasoning: from the identified action units (AUs) and their combination, and the context, "
        "infer the micro-expression the face shows.\n"
        "Final conclusion: summarize the analysis, listing the inferred action units (AUs) and the final "
        "micro-expression.\n"
        "(The micro-expression is one of these {n} emotions: {labels}.)"
    ),
    mer_question=(
        "Which micro-expression does this face show? Answer with one word, one of these {n} emotions: {labels}."
    ),
    compact_meu="Which regions move, which AUs, which micro-expression ({labels})?",
    compact_mer="Which micro-expression ({labels})? One word.",
    compact_observation="{region} {colour} {direction}",
    compact_aus=": {aus}",
    headings=("Visual inspection:", "Expression reasoning:", "Final conclusion:"),
    observation="{region}: {colour} patch, moving {direction}, {intensity} intensity",
    supports="; supports {aus}.",
    no_au="; no action unit (head-motion residue or a movement outside the annotation).",
    nothing_salient="No clear local motion stands out; every patch is dim.",
    active="Active action units: {aus}.",
    unseen="Annotated but too faint to see in the map: {aus}.",
    prototype_full="Together they contain {prototype}, the prototype of {emotion}.",
    prototype_part="{shared} of the {emotion} prototype ({prototype}) appear, which points to {emotion}.",
    prototype_none="None of these belongs to the {emotion} prototype ({prototype}); the overall pattern still "
                   "indicates {emotion}.",
    no_prototype="The overall pattern indicates {emotion}.",
    conclusion="AUs: {aus}. Micro-expression: {emotion}.",
    no_aus="none",
    and_=", ",
    au_detail="AU{au} ({name}, {muscle})",
    side={"R": " (right)", "L": " (left)"},
    regions={name: name.capitalize() for name in REGIONS},
    directions={name: name for name, _, _ in DIRECTIONS},
    colours={colour: colour for _, _, colour in DIRECTIONS},
    intensities={"weak": "weak", "medium": "medium", "strong": "strong"},
    emotions={},
)


def make_prompt(params: FgmuParams) -> TemplatePrompt:
    return TemplatePrompt(PHRASES, params)


@hookimpl
def mellm_prompt():
    yield PluginSpec("fgmu-en", make_prompt, FgmuParams,
                     "FGMU prompt and targets in English (paper Fig. 4, translated)")
