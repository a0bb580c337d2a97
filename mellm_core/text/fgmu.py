"""Flow-guided micro-expression understanding (FGMU, paper III-D/E): what an instruction target states.

From a sample's region motions, its annotated AUs and its emotion, ``analyze`` decides which regions the
visual inspection reports and which annotated AU each one's motion supports; prompt plugins put it in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mellm_core.motion.facs import ACTION_UNITS, PROTOTYPES, region_stem, supported_aus
from mellm_core.motion.regions import REGIONS, RegionMotion
from mellm_core.records import IMAGE_TAG


@dataclass
class Observation:
    """One region the visual inspection reports."""

    region: str
    colour: str
    direction: str
    intensity: str
    aus: list[int] = field(default_factory=list)  # annotated AUs this motion supports; empty = no AU


@dataclass
class Analysis:
    """Everything an MEU target says, in order: observations, AUs, reasoning facts, conclusion."""

    observations: list[Observation]
    aus: list[int]  # the annotated AUs (the conclusion lists them)
    au_sides: dict[str, str]
    emotion: str
    prototype: tuple[int, ...]  # the emotion's prototype AUs (empty if none is known)

    @property
    def shared_with_prototype(self) -> list[int]:
        return [au for au in self.aus if au in self.prototype]

    @property
    def unseen_aus(self) -> list[int]:
        """Annotated AUs that no reported region's motion supports (too faint to see in the map)."""
        seen = {au for obs in self.observations for au in obs.aus}
        return [au for au in self.aus if au not in seen]


def _side_allows(au: int, region: str, au_sides: dict[str, str]) -> bool:
    side = au_sides.get(str(au))
    _, region_side = region_stem(region)
    return side is None or region_side is None or region_side[0].upper() == side


def analyze(regions: dict[str, RegionMotion], aus: list[int], au_sides: dict[str, str], emotion: str,
            min_motion: float = 0.1) -> Analysis:
    """Reported regions in face order: the salient ones, and those at least medium whose motion supports an AU."""
    observations = []
    for name in REGIONS:
        motion = regions.get(name)
        if motion is None:
            continue
        support = [au for au in supported_aus(name, motion.direction, aus) if _side_allows(au, name, au_sides)]
        if motion.salient or (support and motion.intensity != "weak" and motion.mean_magnitude >= min_motion):
            observations.append(Observation(name, motion.colour, motion.direction, motion.intensity, support))
    return Analysis(observations, sorted(aus), dict(au_sides), emotion, PROTOTYPES.get(emotion, ()))


def au_name(au: int) -> str:
    """FACS name of an AU ("lip corner puller"), or "action unit N" when it is not in the table."""
    unit = ACTION_UNITS.get(au)
    return unit.name if unit else f"action unit {au}"


@dataclass(frozen=True)
class Phrases:
    """Everything language-specific in an FGMU prompt and target; a prompt plugin supplies one."""

    prior: str  # the colour/direction and brightness prior (first part of every prompt)
    meu_steps: str  # the three analysis steps; "{labels}" and "{n}" are filled in
    mer_question: str  # the label-only question; "{labels}" and "{n}" are filled in
    compact_meu: str  # style "compact": the one-line MEU question; "{labels}" and "{n}" are filled in
    compact_mer: str  # style "compact": the one-line MER question; "{labels}" and "{n}" are filled in
    compact_observation: str  # style "compact": "{region}", "{colour}", "{direction}"
    compact_aus: str  # style "compact": appended to a region whose motion supports AUs; "{aus}"
    headings: tuple[str, str, str]  # visual inspection, expression reasoning, final conclusion
    observation: str  # "{region}", "{colour}", "{direction}", "{intensity}"
    supports: str  # "{aus}" (appended to an observation that supports AUs)
    no_au: str  # appended to an observation that supports none
    nothing_salient: str
    active: str  # "{aus}": the annotated AUs are active
    unseen: str  # "{aus}": annotated AUs too faint to see
    prototype_full: str  # "{emotion}", "{prototype}"
    prototype_part: str  # "{emotion}", "{prototype}", "{shared}"
    prototype_none: str  # "{emotion}", "{prototype}"
    no_prototype: str  # "{emotion}"
    conclusion: str  # "{aus}", "{emotion}"
    no_aus: str  # what "{aus}" says when none is annotated
    and_: str  # joins AU descriptions
    au_detail: str  # "{au}", "{name}", "{muscle}"
    side: dict[str, str]  # "R"/"L" -> word for a unilateral AU in the conclusion
    regions: dict[str, str]
    directions: dict[str, str]
    colours: dict[str, str]
    intensities: dict[str, str]
    emotions: dict[str, str]
    au_names: dict[int, str] = field(default_factory=dict)  # empty = the English FACS names
    muscles: dict[int, str] = field(default_factory=dict)
    numbers: dict[int, str] = field(default_factory=dict)  # spelled-out counts, where the language needs them
    list_sep: str = ", "
    list_last: str = " or "
    sentence_sep: str = " "
    compact_sep: str = "; "  # joins the compact visual inspection's regions


STYLES = ("full", "compact")
COMPACT_REGIONS = 3  # regions a compact target names at most (the conclusion still lists every AU)


@dataclass
class FgmuParams:
    """Settings of the FGMU prompt plugins."""

    style: str = "full"  # full (the paper's prompt and three-part analysis) | compact (one-line prompts, short MEU)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of: {', '.join(STYLES)}, got '{self.style}'")


class TemplatePrompt:
    """A prompt plugin made from a ``Phrases`` table: user prompts and MEU / MER targets.

    Style ``full`` is the paper's: the colour prior and three analysis steps in the prompt, and a target with
    visual inspection, expression reasoning and final conclusion. Style ``compact`` keeps the same chain in a
    fraction of the tokens (a one-line question; the target names the key regions' colour, direction and the AU
    each supports, then the conclusion), so that a small model learns it on a CPU budget.
    """

    def __init__(self, phrases: Phrases, params: FgmuParams | None = None):
        self.p = phrases
        self.style = (params or FgmuParams()).style

    def word(self, emotion: str) -> str:
        """The language's word for a protocol label (the label itself when there is none)."""
        return self.p.emotions.get(emotion, emotion)

    def _labels(self, labels: list[str]) -> dict[str, str]:
        words = [self.word(label) for label in labels]
        joined = words[0] if len(words) == 1 else self.p.list_sep.join(words[:-1]) + self.p.list_last + words[-1]
        return {"labels": joined, "n": self.p.numbers.get(len(words), str(len(words)))}

    def user_prompt(self, task: str, labels: list[str]) -> str:
        """The user turn for ``task`` ("meu" or "mer"), beginning with the ``<image>`` placeholder."""
        labels_text = self._labels(labels)
        if self.style == "compact":
            return IMAGE_TAG + (self.p.compact_meu if task == "meu" else self.p.compact_mer).format(**labels_text)
        body = self.p.meu_steps if task == "meu" else self.p.mer_question
        return IMAGE_TAG + self.p.prior + "\n\n" + body.format(**labels_text)

    def mer_target(self, emotion: str) -> str:
        return self.word(emotion)

    def _au(self, au: int) -> str:
        unit = ACTION_UNITS.get(au)
        name = self.p.au_names.get(au) or au_name(au)
        muscle = self.p.muscles.get(au) or (unit.muscle if unit else "")
        return self.p.au_detail.format(au=au, name=name, muscle=muscle)

    def _au_list(self, aus: list[int], sides: dict[str, str] | None = None) -> str:
        sides = sides or {}
        return " + ".join(f"AU{au}" + self.p.side.get(sides.get(str(au), ""), "") for au in aus)

    def meu_target(self, analysis: Analysis) -> str:
        """Visual inspection, expression reasoning and final conclusion for one sample (``compact``: no reasoning)."""
        p = self.p
        if self.style == "compact":
            return self._compact_target(analysis)
        lines = [p.headings[0]]
        for obs in analysis.observations:
            text = p.observation.format(region=p.regions.get(obs.region, obs.region), colour=p.colours[obs.colour],
                                        direction=p.directions[obs.direction], intensity=p.intensities[obs.intensity])
            text += p.supports.format(aus=p.and_.join(self._au(au) for au in obs.aus)) if obs.aus else p.no_au
            lines.append("- " + text)
        if not analysis.observations:
            lines.append("- " + p.nothing_salient)
        lines.append(p.headings[1])
        reasoning = []
        if analysis.aus:
            reasoning.append(p.active.format(aus=p.and_.join(self._au(au) for au in analysis.aus)))
        if analysis.unseen_aus:
            reasoning.append(p.unseen.format(aus=p.and_.join(f"AU{au}" for au in analysis.unseen_aus)))
        emotion, proto = self.word(analysis.emotion), self._au_list(list(analysis.prototype))
        shared = analysis.shared_with_prototype
        if not analysis.prototype:
            reasoning.append(p.no_prototype.format(emotion=emotion))
        elif set(analysis.prototype) <= set(analysis.aus):
            reasoning.append(p.prototype_full.format(emotion=emotion, prototype=proto))
        elif shared:
            reasoning.append(p.prototype_part.format(emotion=emotion, prototype=proto, shared=self._au_list(shared)))
        else:
            reasoning.append(p.prototype_none.format(emotion=emotion, prototype=proto))
        lines.append(p.sentence_sep.join(reasoning))
        lines.append(p.headings[2])
        lines.append(self._conclusion(analysis))
        return "\n".join(lines)

    def _conclusion(self, analysis: Analysis) -> str:
        aus = self._au_list(analysis.aus, analysis.au_sides) if analysis.aus else self.p.no_aus
        return self.p.conclusion.format(aus=aus, emotion=self.word(analysis.emotion))

    def _compact_target(self, analysis: Analysis) -> str:
        """The key regions (the first ``COMPACT_REGIONS`` whose motion supports an annotated AU, with that AU; else
        the first reported ones), then the conclusion."""
        p = self.p
        key = ([o for o in analysis.observations if o.aus] or analysis.observations)[:COMPACT_REGIONS]
        seen = p.compact_sep.join(
            p.compact_observation.format(region=p.regions.get(o.region, o.region), colour=p.colours[o.colour],
                                         direction=p.directions[o.direction])
            + (p.compact_aus.format(aus=" + ".join(f"AU{au}" for au in o.aus)) if o.aus else "")
            for o in key) or p.nothing_salient
        return "\n".join((p.headings[0], seen, p.headings[2], self._conclusion(analysis)))


def example_analyses() -> list[Analysis]:
    """Two analyses per prototype emotion (every AU seen in a region, and one AU on one side): texts in every
    shape a target takes, for training a tokenizer and for sizing instructions before any data exists."""
    from mellm_core.motion.mmc import DIRECTIONS

    regions, analyses = list(REGIONS), []
    for i, (emotion, proto) in enumerate(sorted(PROTOTYPES.items())):
        observations = [
            Observation(regions[(i + k) % len(regions)], DIRECTIONS[(i + k) % 8][2], DIRECTIONS[(i + k) % 8][0],
                        ("weak", "medium", "strong")[k % 3], [au])
            for k, au in enumerate(proto)
        ]
        analyses.append(Analysis(observations, list(proto), {}, emotion, proto))
        analyses.append(Analysis([], list(proto[:1]), {str(proto[0]): "R"}, emotion, proto))
    return analyses


def example_regions() -> dict[str, RegionMotion]:
    """Every region moving, with two-digit figures and the longest direction words: the longest description a
    flow-text prompt writes, for sizing its instructions before any data exists."""
    from mellm_core.motion.mmc import DIRECTIONS

    name, _, colour = max(DIRECTIONS, key=lambda d: len(d[0]) + len(d[2]))
    return {region: RegionMotion([-10.0, 10.0], 14.14, 18.38, name, colour, "medium", True) for region in REGIONS}
