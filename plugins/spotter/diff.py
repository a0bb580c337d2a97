"""Spotter ``diff``: expressions from grey-level differences on the face, eyes masked out: a fraction of the
flow spotter's cost, for long videos, but head motion is not removed (a moving head reads as motion)."""

from __future__ import annotations

from dataclasses import dataclass

from mellm_core import PluginSpec, hookimpl
from mellm_core.motion.spotting import MotionSpotter, SpotParams, difference_distance


@dataclass
class DiffSpotParams(SpotParams):
    min_score: float = 0.5  # grey levels: a smaller mean difference at a peak is noise


def diff_spotter(params: DiffSpotParams) -> MotionSpotter:
    return MotionSpotter(params, difference_distance)


@hookimpl
def mellm_spotter():
    yield PluginSpec(name="diff", factory=diff_spotter, params=DiffSpotParams,
                     description="grey-level differences on the face, eyes masked (fast, for long videos)")
