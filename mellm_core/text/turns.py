"""A sample's user turn: the prompt plugin's question, and for a prompt that takes the flow as text (its
``input`` is ``"text"``) the description of the sample's regions' motion in place of ``<flow>``. Instructions,
evaluation, ``mellm analyze`` and the service all build the turn here, so a model sees the same text everywhere."""

from __future__ import annotations

from typing import Any

from mellm_core.errors import InputError
from mellm_core.motion.regions import RegionMotion
from mellm_core.records import FLOW_TAG


def takes_text(plugin: Any) -> bool:
    """Whether a prompt plugin gives the model the flow as text, or a backbone reads text only (no image): both
    say so with ``input = "text"``."""
    return getattr(plugin, "input", "image") == "text"


def user_turn(prompt: Any, task: str, labels: list[str], regions: dict[str, RegionMotion] | None = None) -> str:
    """The user turn for ``task``: the prompt's question, with the regions described where it takes text."""
    question = prompt.user_prompt(task, labels)
    if not takes_text(prompt):
        return question
    if regions is None:
        raise InputError("this prompt gives the model the flow as text, and no region motion was measured")
    return question.replace(FLOW_TAG, prompt.describe(regions))
