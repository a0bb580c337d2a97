"""Spotter ``diff``: expressions from grey-level differences on the face, eyes masked out: a fraction of the
flow spotter's cost, for long videos. Frames where the face shifts fast (a head turn) are not scored, but slower
head motion reads as motion: the flow spotter removes it."""

from __future__ import annotations

from dataclasses import dataclass

from mellm_core import PluginSpec, hookimpl
from mellm_core.motion.spotting import MotionSpotter, SpotParams, difference_distance


@dataclass
class DiffSpotParams(SpotParams):
    min_score: float = 0.5  # grey levels: a smaller mean difference at a peak is noise
    max_head: float = 0.02  # a face shifting more than this share of its size within window_s is not scored

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_head <= 0:
            raise ValueError(f"max_head must be positive, got {self.max_head}")


def diff_spotter(params: DiffSpotParams) -> MotionSpotter:
    return MotionSpotter(params, difference_distance(params.max_head))


@hookimpl
def mellm_spotter():
    yield PluginSpec(name="diff", factory=diff_spotter, params=DiffSpotParams,
                     description="grey-level differences on the face, eyes masked (fast, for long videos)")
