"""Spotter ``flow``: expressions from optical flow on the face, head motion removed, eyes masked out.

At each frame, the flow to the frames ``window_s`` before and after it (any flow plugin; DIS by default, for
speed), less the head's motion (a similarity fitted to the face's flow), averaged over the face without the eyes,
in pixels; where the head itself moved more than ``max_head`` of the face's size (a turn), the frame is not
scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mellm_core import PluginSpec, create, hookimpl
from mellm_core.motion.spotting import MotionSpotter, SpotParams, flow_distance


@dataclass
class FlowSpotParams(SpotParams):
    flow: str = "dis"  # the flow plugin
    flow_params: dict[str, Any] = field(default_factory=dict)  # its settings, e.g. {preset: fast}
    min_score: float = 0.05  # pixels: less mean motion than this at a peak is noise
    max_head: float = 0.02  # a head moving more than this share of the face's size within window_s is not scored

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_head <= 0:
            raise ValueError(f"max_head must be positive, got {self.max_head}")


def flow_spotter(params: FlowSpotParams) -> MotionSpotter:
    return MotionSpotter(params, flow_distance(create("flow", params.flow, **params.flow_params),
                                                 params.max_head))


@hookimpl
def mellm_spotter():
    yield PluginSpec(name="flow", factory=flow_spotter, params=FlowSpotParams,
                     description="optical flow on the face, head motion removed, head turns and blinks ignored "
                     "(accurate)")
