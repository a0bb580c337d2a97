"""Facial regions, the FACS table, FGMU analysis and the prompt plugins' targets in both languages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import local_motion

from mellm_core import create
from mellm_core.errors import MellmError
from mellm_core.motion.facs import ACTION_UNITS, PROTOTYPES, expected_directions, region_stem, supported_aus
from mellm_core.motion.regions import REGIONS, analyze_regions, region_mask
from mellm_core.text.fgmu import Analysis, Observation, analyze
from mellm_core.text.labels import PROTOCOLS
from mellm_plugins.dataset.synthme.motion import AU_TEMPLATES, expression_field


@pytest.fixture(scope="module")
def landmarks(face_photos):
    return create("landmarker", "dlib68")(cv2.cvtColor(face_photos["astronaut"], cv2.COLOR_BGR2GRAY))


def test_regions_sit_where_their_names_say(landmarks):
    centres = {name: np.argwhere(region_mask((512, 512), landmarks, name)).mean(axis=0)[::-1] for name in REGIONS}
    assert centres["right mouth corner"][0] < centres["left mouth corner"][0]  # subject's right = image left
    assert centres["right inner brow"][1] < centres["right upper eyelid"][1] < centres["right lower eyelid"][1]
    assert centres["right lower eyelid"][1] < centres["right cheek"][1] < centres["chin"][1]
    assert centres["upper lip"][1] < centres["lower lip"][1] < centres["chin"][1]
    assert centres["right outer brow"][0] < centres["right inner brow"][0] < centres["left inner brow"][0]


def test_region_analysis_finds_a_smile(landmarks):
    shape = (512, 512)
    flow = local_motion(shape, tuple(landmarks[48]), (-1.0, -1.4), 9) + local_motion(shape, tuple(landmarks[54]),
                                                                                       (1.0, -1.4), 9)
    regions = analyze_regions(flow, landmarks)
    right, left = regions["right mouth corner"], regions["left mouth corner"]
    assert (right.direction, right.colour, right.intensity, right.salient) == ("up-left", "blue", "strong", True)
    assert (left.direction, left.colour, left.intensity, left.salient) == ("up-right", "magenta", "strong", True)
    assert not regions["right inner brow"].salient and regions["chin"].intensity == "weak"
    assert right.mean[1] < 0 and right.peak_magnitude >= right.mean_magnitude


def test_uniform_residue_is_never_salient(landmarks):
    flow = np.zeros((512, 512, 2), np.float32)
    flow[..., 0] = 0.8  # the whole face drifts alike: head motion left over, not a facial action
    assert not any(r.salient for r in analyze_regions(flow, landmarks).values())
    assert not any(r.salient for r in analyze_regions(np.zeros_like(flow), landmarks).values())


def test_facs_directions_mirror_between_sides():
    assert expected_directions(12, "right mouth corner") >= {"up-left", "up"}
    assert expected_directions(12, "left mouth corner") >= {"up-right", "up"}
    assert expected_directions(4, "right inner brow") == {"down", "down-left", "down-right", "right"}
    assert expected_directions(4, "left inner brow") == {"down", "down-left", "down-right", "left"}
    assert expected_directions(17, "chin") == {"up"} and expected_directions(26, "chin") == {"down"}
    assert expected_directions(12, "chin") == set() and expected_directions(999, "chin") == set()
    assert supported_aus("left mouth corner", "down-right", [12, 15, 20]) == [15, 20]


def test_prototypes_use_known_action_units():
    for emotion, aus in PROTOTYPES.items():
        assert emotion in PROTOCOLS["dfme-7"].classes
        for au in aus:
            assert emotion in ACTION_UNITS[au].emotions, (emotion, au)


def _regions_smile(landmarks):
    shape = (512, 512)
    flow = local_motion(shape, tuple(landmarks[48]), (-1.0, -1.4), 9) + local_motion(shape, tuple(landmarks[54]),
                                                                                       (1.0, -1.4), 9)
    flow += local_motion(shape, tuple(landmarks[33]), (0.0, -1.2), 8)  # the nose wings move too: no AU given
    return analyze_regions(flow, landmarks)


def test_analysis_attributes_only_annotated_agreeing_aus(landmarks):
    analysis = analyze(_regions_smile(landmarks), [6, 12], {}, "happiness")
    by_region = {o.region: o for o in analysis.observations}
    assert by_region["right mouth corner"].aus == [12] and by_region["left mouth corner"].aus == [12]
    assert by_region["nose wings"].aus == []
    assert analysis.unseen_aus == [6] and analysis.shared_with_prototype == [6, 12]
    # A unilateral annotation (R12) only credits the subject's right corner.
    one_sided = analyze(_regions_smile(landmarks), [12], {"12": "R"}, "contempt")
    credited = [o.region for o in one_sided.observations if o.aus]
    assert credited == ["right mouth corner"]


@pytest.mark.parametrize("name", ["fgmu-en", "fgmu-zh"])
def test_prompt_plugins_state_the_analysis(name):
    prompt = create("prompt", name)
    labels = list(PROTOCOLS["dfme-7"].classes)
    user = prompt.user_prompt("meu", labels)
    assert user.startswith("<image>") and all(prompt.word(label) in user for label in labels)
    assert prompt.user_prompt("mer", labels[:2]).startswith("<image>")
    analysis = Analysis([Observation("right mouth corner", "blue", "up-left", "strong", [12]),
                         Observation("nose wings", "purple", "up", "medium", [])], [6, 12, 14], {"14": "R"},
                        "happiness", PROTOTYPES["happiness"])
    target = prompt.meu_target(analysis)
    lines = target.splitlines()
    assert len(lines) == 7 and lines[1].startswith("- ") and "AU12" in lines[1] and "AU" not in lines[2]
    assert "AU6 + AU12 + AU14" in lines[-1] and prompt.word("happiness") in lines[-1]
    assert prompt.mer_target("fear") == prompt.word("fear")


def test_zh_prompt_is_the_papers():
    user = create("prompt", "fgmu-zh").user_prompt("meu", list(PROTOCOLS["dfme-7"].classes))
    table = (
        "向上：紫色；右上：品红色/粉红色；向右：红色；右下：橙黄色；"
        "向下：黄绿色；左下：绿色；向左：青色；左上：蓝色。"
    )
    assert table in user
    assert "（微表情归类为以下七种情绪之一：开心、厌恶、轻蔑、惊讶、害怕、生气或悲伤。）" in user


@pytest.mark.parametrize("au", sorted(AU_TEMPLATES))
def test_synthme_motion_agrees_with_the_facs_table(landmarks, au):
    """Each AU SynthME draws moves the regions the FACS table names, in directions the table allows."""

    field = expression_field((512, 512), landmarks, {au: ""}, {au: 1.0}, peak=2.0, kernel=0.15)
    regions = analyze_regions(field, landmarks)
    moved = {name: r for name, r in regions.items() if r.intensity == "strong"}
    stems = set(ACTION_UNITS[au].moves)
    named = {name: r for name, r in moved.items() if region_stem(name)[0] in stems}
    assert named, f"AU{au} moves none of {sorted(stems)} strongly (strong: {sorted(moved)})"
    for name, motion in named.items():
        assert motion.direction in expected_directions(au, name), (au, name, motion.direction)


@pytest.mark.parametrize("name", ["fgmu-en", "fgmu-zh"])
def test_compact_style_keeps_the_chain_in_few_words(name):
    """style=compact: a one-line question naming the classes; regions with colour and direction, then the
    conclusion; the full style's prompt is several times longer."""
    full, compact = create("prompt", name), create("prompt", name, style="compact")
    labels = list(PROTOCOLS["dfme-7"].classes)
    for task in ("meu", "mer"):
        user = compact.user_prompt(task, labels)
        assert user.startswith("<image>") and "\n" not in user and all(compact.word(c) in user for c in labels)
        assert 3 * len(user) < len(full.user_prompt(task, labels))
    analysis = Analysis([Observation("right mouth corner", "blue", "up-left", "strong", [12]),
                         Observation("left cheek", "purple", "up", "medium", [6])], [6, 12], {}, "happiness",
                        PROTOTYPES["happiness"])
    lines = compact.meu_target(analysis).splitlines()
    region = compact.p.regions.get("right mouth corner", "Right mouth corner")
    assert len(lines) == 4 and lines[0] == compact.p.headings[0] and lines[2] == compact.p.headings[2]
    assert lines[1].startswith(region) and compact.p.colours["blue"] in lines[1]
    assert lines[1].count(compact.p.compact_sep.strip()) == 1
    assert lines[3] == full.meu_target(analysis).splitlines()[-1]
    empty = Analysis([], [], {}, "happiness", PROTOTYPES["happiness"])
    assert compact.meu_target(empty).splitlines()[1] == compact.p.nothing_salient
    with pytest.raises(MellmError, match="style must be one of: full, compact"):
        create("prompt", name, style="short")


@pytest.mark.parametrize("style", ["full", "compact"])
@pytest.mark.parametrize("name", ["fgmu-en", "fgmu-zh"])
@pytest.mark.parametrize("emotion", PROTOCOLS["dfme-7"].classes)
def test_targets_parse_back_to_their_labels(landmarks, name, emotion, style):
    """What the model is trained to write, the evaluation parser reads back exactly (both tasks, both languages,
    both styles)."""
    from mellm_core.text.parse import parse_output

    prompt = create("prompt", name, style=style)
    labels = list(PROTOCOLS["dfme-7"].classes)
    aus = sorted(PROTOTYPES[emotion])
    sides = {str(au): "R" for au in aus} if emotion == "contempt" else {}
    target = prompt.meu_target(analyze(_regions_smile(landmarks), aus, sides, emotion))
    assert parse_output(target, labels).emotion == emotion and parse_output(target, labels).aus == aus
    assert parse_output(prompt.mer_target(emotion), labels).emotion == emotion
