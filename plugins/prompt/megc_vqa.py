"""The MEGC ME-VQA prompt: training data in the challenge's question style, from any labelled dataset.

The analysis task (``meu``) asks the challenge's combined question and answers it as the challenge's training
files do ("The action units present are: brow lowerer, lid tightener. Therefore, the fine-grained expression
class is anger, and the coarse expression class is negative."); the label task (``mer``) asks the fine-grained
class question and answers with the emotion. A model trained on it answers ``mellm vqa``'s questions in kind,
and ``mellm eval`` reads its answers as it reads any (the emotion, and the AUs by their FACS names).
"""

from __future__ import annotations

from mellm_core import PluginSpec, hookimpl
from mellm_core.records import IMAGE_TAG
from mellm_core.text.fgmu import Analysis
from mellm_core.text.vqa import COMBINED_MANY, FINE, Reading, combined_answer


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


@hookimpl
def mellm_prompt():
    yield PluginSpec("megc-vqa", MegcVqaPrompt, None,
                     "MEGC ME-VQA questions and answers (combined question; fine-grained class)")
