"""Spotting: MEGC's interval matching, the built-in spotters on a SynthME long video with known intervals,
`mellm spot` on a video file and a frames folder, `mellm analyze VIDEO`, `mellm synth --long`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mellm_core import create
from mellm_core.cli import main
from mellm_core.files.video import open_video
from mellm_core.records import Interval
from mellm_core.results.spotting import iou, spotting_scores


def test_intervals_match_as_megc_scores_them():
    assert iou(Interval(10, 12, 19), Interval(15, 17, 24)) == pytest.approx(5 / 15)  # inclusive frame ranges
    gold = [Interval(10, 14, 19), Interval(40, 45, 52), Interval(100, 120, 160, kind="mae")]
    spotted = [Interval(11, 13, 20, score=0.9),  # IoU 9/11: a match, apex 1 frame off
               Interval(12, 14, 21, score=0.5),  # the same gold again: taken already, a false positive
               Interval(41, 47, 51, score=0.8),  # IoU 11/13: a match, apex 2 off
               Interval(100, 121, 150, score=0.7),  # IoU 51/61, but a micro-expression against a macro one
               Interval(200, 201, 204, kind="mae", score=0.1)]
    scores = spotting_scores(spotted, gold)
    assert scores["me"] == {"tp": 2, "spotted": 4, "gold": 2, "precision": 0.5, "recall": 1.0, "f1": 0.6667}
    assert scores["mae"] == {"tp": 0, "spotted": 1, "gold": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert scores["overall"]["tp"] == 2 and scores["overall"]["f1"] == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3),
                                                                                       abs=1e-4)
    assert scores["apex_error"] == 1.5
    assert spotting_scores([], gold)["overall"]["f1"] == 0.0


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """One SynthME long video (two micro-expressions, a macro-expression, two blinks, head drift, noise), made
    with `mellm synth --long`, and its truth."""
    out = tmp_path_factory.mktemp("long") / "videos"
    assert main(["synth", "--long", "--out", str(out), "--n", "1", "--seed", "0", "--json"]) == 0
    return out / "long_000.mp4", json.loads((out / "long_000.json").read_text())


@pytest.fixture(scope="module")
def flow_spotted(long_video):
    """The flow spotter's intervals in the long video, and the length of its motion measure."""
    video = open_video(long_video[0])
    assert video.fps == 30.0
    spotter = create("spotter", "flow")
    return spotter(video.frames(), video.fps), len(spotter.signal)


def overlapping(found: list[Interval], events: list[dict]) -> list[Interval]:
    return [i for i in found for e in events if i.onset <= e["offset"] and e["onset"] <= i.offset]


def test_the_flow_spotter_finds_the_expressions_and_not_the_blinks_or_the_moving_head(long_video, flow_spotted):
    _, truth = long_video
    found, measured = flow_spotted
    assert measured == truth["frames"]
    gold = [Interval(i["onset"], i["apex"], i["offset"], kind=i["kind"]) for i in truth["intervals"]]
    assert sorted(g.kind for g in gold) == ["mae", "me", "me"]
    assert sorted(h["kind"] for h in truth["head"]) == ["glance", "turn"]
    scores = spotting_scores(found, gold)
    assert scores["me"]["recall"] == 1.0 and scores["mae"]["recall"] == 1.0, (found, gold)
    assert scores["overall"]["precision"] == 1.0 and scores["apex_error"] <= 6
    assert not overlapping(found, truth["blinks"])  # the eyes are masked out
    assert not overlapping(found, truth["head"])  # the head's motion is removed, and a turn not scored


def test_a_head_turning_sideways_is_not_scored_and_would_read_as_an_expression(long_video):
    """The glance turns the head sideways, which no similarity removes: without the limit on the head's own
    motion (max_head) it is spotted as an expression, by either spotter."""
    path, truth = long_video
    glance = [h for h in truth["head"] if h["kind"] == "glance"]
    video = open_video(path)
    unlimited = create("spotter", "flow", max_head=1e9)(video.frames(), video.fps)
    assert overlapping(unlimited, glance)
    assert overlapping(create("spotter", "diff", max_head=1e9)(video.frames(), video.fps), glance)
    assert not overlapping(create("spotter", "diff")(video.frames(), video.fps), glance)


def test_the_head_motion_fit_recovers_a_similarity_beside_an_expression():
    from mellm_core.motion.spotting import head_motion
    from mellm_core.motion.warp import similarity_flow

    head = similarity_flow((120, 100), 1.5, -0.8, 2.0, 1.01, (48.0, 61.0))
    flow = head.copy()
    flow[20:50, 30:70] += (0.0, -1.2)  # a brow raised: a quarter of the face moves on its own
    mask = np.zeros((120, 100), bool)
    mask[10:110, 15:85] = True
    assert np.abs(head_motion(flow, mask) - head[mask]).max() < 1e-3


def test_spot_reads_a_video_file_and_a_frames_folder_alike(long_video, tmp_path, capsys):
    path, truth = long_video
    folder = tmp_path / "frames"
    folder.mkdir()
    for n, frame in enumerate(open_video(path).frames(), 1):
        cv2.imwrite(str(folder / f"img{n + 99}.png"), frame)  # numbered from 100, as a dataset's frames may be
    assert main(["spot", str(path), "--json", "spot.spotter=diff"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["spot", str(folder), "--fps", "30", "--json", "spot.spotter=diff"]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    assert from_file["fps"] == from_folder["fps"] == 30.0 and from_file["frames"] == truth["frames"]
    assert from_file["intervals"] and [i["apex"] + 99 for i in from_file["intervals"]] == \
        [i["apex"] for i in from_folder["intervals"]]  # the folder's own frame numbers
    assert main(["spot", str(folder), "spot.spotter=diff"]) == 1
    assert "is a folder of frames, which carries no frame rate: give --fps" in capsys.readouterr().err
    assert main(["spot", str(tmp_path / "missing.mp4")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_long_video_in_windows_on_ray_data_is_spotted_as_one_stream(long_video, tmp_path, capsys):
    """`mellm spot` cuts a video longer than spot.window_frames into windows, each read from its own first frame
    (a seek in a file) with k frames more on either side by a Ray Data task: the measure and the intervals are
    those of one stream, for an mp4, an MJPG avi and a frames folder."""
    from mellm_core.config import SpotConfig
    from mellm_core.stages.longvideo import spot_video_windows

    path, truth = long_video
    avi, folder = tmp_path / "long.avi", tmp_path / "frames"
    folder.mkdir()
    height, width = next(open_video(path).frames()).shape
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (width, height))
    for n, frame in enumerate(open_video(path).frames(), 1):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        cv2.imwrite(str(folder / f"img{n}.png"), frame)
    writer.release()
    for source in (path, avi, folder):
        video = open_video(source, 30.0)
        whole, signal = spot_video_windows(video, SpotConfig(window_frames=0), progress=False)
        windowed, pieces = spot_video_windows(video, SpotConfig(window_frames=47, actors=2), progress=False)
        assert len(pieces) == len(signal) == truth["frames"]
        assert pieces == pytest.approx(signal, abs=1e-9) and windowed == whole and whole
    assert main(["spot", str(path), "spot.window_frames=100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == truth["frames"]


def test_analyze_a_video_spots_its_strongest_micro_expression(long_video, flow_spotted, tmp_path, capsys):
    path, _ = long_video
    micro = next(i for i in flow_spotted[0] if i.kind == "me")  # the recipe's spotter: flow, by default
    assert main(["analyze", str(path), "--map", str(tmp_path / "map.png"), "--json", "spot.window_frames=200",
                 "backbone.params={max_new_tokens: 4}"]) == 0  # in windows on Ray Data, as one stream finds it
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["onset"], out["apex"], out["offset"]) == (micro.onset, micro.apex, micro.offset)
    assert (tmp_path / "map.png").is_file() and "analysis" in out


def test_score_spotting_compares_spotted_and_annotated_intervals(tmp_path, capsys):
    spotted, gold = tmp_path / "spotted.json", tmp_path / "gold.json"
    spotted.write_text(json.dumps({"fps": 30, "frames": 300, "intervals": [
        {"onset": 11, "apex": 13, "offset": 20, "score": 0.9, "kind": "me"},
        {"onset": 200, "apex": 201, "offset": 204, "score": 0.1, "kind": "me"}]}))
    gold.write_text(json.dumps({"intervals": [{"onset": 10, "apex": 14, "offset": 19, "kind": "me"},
                                              {"onset": 100, "apex": 120, "offset": 160, "kind": "mae"}]}))
    assert main(["score", str(spotted), "--spotting", str(gold), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["me"] == {"tp": 1, "spotted": 2, "gold": 1, "precision": 0.5, "recall": 1.0, "f1": 0.6667}
    assert result["overall"]["recall"] == 0.5 and result["apex_error"] == 1.0
    gold.write_text("{}")
    assert main(["score", str(spotted), "--spotting", str(gold)]) == 1
    assert "is not a JSON object with intervals" in capsys.readouterr().err
