"""The MEGC ME-VQA prompt: training data in the challenge's question style, from any labelled dataset.

``questions(sample)`` asks every question the challenge's training files ask about a clip, in their wording and
order, with the sample's labels as answers: the coarse class, the fine class, the action units (FACS names such
as "brow lowerer, lid tightener"), the side of each AU whose side the data gives, whether one of its AUs is shown
("yes") and one it lacks ("no"), and the combined question; a sample without AUs is asked the two class questions
only. The AUs asked about are drawn with a generator seeded by the sample's id, so the same samples always give
the same lines. Asked one question per task (``user_prompt``), the analysis task (``meu``) asks the combined
question, answered "The action units present are: brow lowerer, lid tightener. Therefore, the fine-grained
expression class is anger, and the coarse expression class is negative.", and the label task (``mer``) the
fine-grained class, answered with the emotion. A model trained on it answers ``mellm vqa``'s questions in kind,
and ``mellm eval`` reads its answers as it reads any (the emotion, and the AUs by their FACS names).
"""

from __future__ import annotations

import random

from mellm_core import PluginSpec, hookimpl
from mellm_core.records import IMAGE_TAG, Sample
from mellm_core.text.fgmu import Analysis
from mellm_core.text.vqa import COMBINED_MANY, FINE, Reading, combined_answer, training_questions


class MegcVqaPrompt:
    """ME-VQA questions and answers (see the module docstring)."""

    def user_prompt(self, task: str, labels: list[str]) -> str:
        return IMAGE_TAG + (COMBINED_MANY if task == "meu" else FINE)

    def meu_target(self, analysis: Analysis) -> str:
        return combined_answer(Reading(analysis.emotion, list(analysis.aus), dict(analysis.au_sides)))

    def mer_target(self, emotion: str) -> str:
        return emotion

    def word(self, emotion: str) -> str:
        return emotion

    def questions(self, sample: Sample) -> list[tuple[str, str]]:
        """(user turn, answer) for every ME-VQA question about ``sample``; seeded by its id, so reproducible."""
        reading = Reading(sample.emotion, list(sample.aus), dict(sample.au_sides), sample.dataset)
        pairs = training_questions(reading, random.Random(f"megc-vqa:{sample.sample_id}"))
        return [(IMAGE_TAG + question, reply) for question, reply in pairs]


@hookimpl
def mellm_prompt():
    yield PluginSpec("megc-vqa", MegcVqaPrompt, None,
                     "MEGC ME-VQA questions and answers (every question type of the challenge's files)")
