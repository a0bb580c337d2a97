"""Spot-then-recognise: the long-video datasets in their release layouts (CAS(ME)^3 Part A, SAMM Long Videos),
built from SynthME long videos with known intervals, and `mellm eval` on a spotting recipe (MEGC's spotting
metrics, the analysis of the true positives, STRS)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score
from standins import write_sheet

from mellm_core import create
from mellm_core.cli import main
from mellm_core.errors import InputError
from mellm_core.files.video import open_video
from mellm_core.records import Interval
from mellm_core.results.spotting import analysis_scores, matches, spotting_scores

CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type", "Objective class"]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
               "Action Units", "Notes"]
TYPES = {"me": "Micro-expression", "mae": "Macro-expression"}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """Two SynthME long videos written as CAS(ME)^3 Part A and SAMM Long Videos releases, with the quirks the real
    sheets have: an apex of -1, an offset of 0, a row before its onset, one past the recording's last frame, a
    recording whose frames are missing."""
    base = tmp_path_factory.mktemp("long")
    videos = base / "videos"
    assert main(["synth", "--long", "--out", str(videos), "--n", "2", "--seed", "3", "--json"]) == 0
    truths = [json.loads((videos / f"long_00{i}.json").read_text()) for i in range(2)]
    casme3, samm = base / "casme3", base / "samm"
    for i in range(2):
        video = open_video(videos / f"long_00{i}.mp4")
        for n, frame in enumerate(video.frames(), 1):
            for folder, name in ((casme3 / f"spNO.{i + 1}" / "a" / "color", f"{n}.jpg"),
                                 (samm / "SAMM_longvideos" / f"00{i + 6}_1", f"00{i + 6}_1_{n:04d}.jpg")):
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / name), frame)
    rows, me_rows, samm_rows, codes = [], [], [], []
    for i, truth in enumerate(truths):
        for k, t in enumerate(truth["intervals"]):
            aus = "+".join(str(a) for a in t["aus"])
            apex = -1 if (i, k) == (0, 0) else t["apex"]  # not annotated: the middle frame stands in
            rows.append([f"spNO.{i + 1}", "a", t["onset"], apex, t["offset"], aus, TYPES[t["kind"]], "I"])
            if t["kind"] == "me":
                me_rows.append([f"spNO.{i + 1}", "a", t["onset"], apex, t["offset"], aus, "I",
                                {"happiness": "happy"}.get(t["emotion"], t["emotion"])])
            name = f"00{i + 6}_1_{k + 1}"
            samm_rows.append([i + 6, name, "I", t["onset"], t["apex"], 0 if (i, k) == (1, 0) else t["offset"],
                              None, "Micro - 1/2" if t["kind"] == "me" else "Macro", aus, None])
            codes.append([i + 6, name, t["onset"], t["apex"], t["offset"], aus, t["emotion"]])
    rows += [["spNO.1", "a", 0, 5, 9, "4", "Micro-expression", "I"],  # onset 0: skipped
             ["spNO.9", "c", 10, 12, 14, "4", "Micro-expression", "I"],  # no frames: skipped
             ["spNO.1", "a", 470, 475, 900, "4", "Micro-expression", "I"]]  # past the last frame: skipped
    write_sheet(casme3 / "part_A_v2.xlsx", [CASME3_HEADER, *rows], title="AU+Emotion")
    write_sheet(casme3 / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
                [["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"], *me_rows],
                title="label")
    notes = [["SAMM Long Videos"], ["Apex of -1: not annotated"], []]
    write_sheet(samm / "SAMM_LongVideos_V3_Release.xlsx", [SAMM_HEADER, *samm_rows], before=notes)
    write_sheet(samm / "SAMM_Micro_FACS_Codes_v2.xlsx",
                [["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units",
                  "Estimated Emotion"], *codes], before=notes)
    return {"videos": videos, "truths": truths, "casme3": casme3, "samm": samm}


def test_long_video_datasets_read_their_release_layouts(releases):
    truths = releases["truths"]
    casme3 = create("dataset", "casme3-lv", coding_file="part_A_v2.xlsx")
    videos = casme3.videos(releases["casme3"])
    assert [v.video_id for v in videos] == ["casme3-lv/spNO.1/a", "casme3-lv/spNO.2/a"]
    assert all(v.fps == 30.0 and Path(v.path).name == "color" for v in videos)
    for video, truth in zip(videos, truths, strict=True):
        assert [(i.onset, i.offset, i.kind, i.aus) for i in video.intervals] == [
            (t["onset"], t["offset"], t["kind"], t["aus"]) for t in truth["intervals"]]
        assert [i.emotion for i in video.intervals] == [t["emotion"] if t["kind"] == "me" else None
                                                       for t in truth["intervals"]]  # happy -> happiness
    first = truths[0]["intervals"][0]
    assert videos[0].intervals[0].apex == (first["onset"] + first["offset"]) // 2
    warnings = "\n".join(casme3.warnings)
    assert "apex -1 is not within" in warnings and "onset 0 is not a frame; row skipped" in warnings
    assert "spNO.9" in warnings and "does not exist; its recording is skipped" in warnings
    assert f"offset 900 lies beyond the last frame ({truths[0]['frames']})" in warnings
    clips = casme3.samples(releases["casme3"])
    assert len(clips) == sum(t["kind"] == "me" for truth in truths for t in truth["intervals"])
    assert all(Path(c.onset_path).is_file() and Path(c.apex_path).is_file() and c.emotion for c in clips)

    samm = create("dataset", "samm-lv")
    videos = samm.videos(releases["samm"])
    assert [v.video_id for v in videos] == ["samm-lv/6/006_1", "samm-lv/7/007_1"] and videos[0].fps == 200.0
    late = videos[1].intervals[0]  # offset 0: the apex ends it
    assert late.offset == late.apex == truths[1]["intervals"][0]["apex"]
    assert "offset 0 is not a frame" in "\n".join(samm.warnings)
    assert [i.emotion for i in videos[0].intervals] == [t["emotion"] if t["kind"] == "me" else None
                                                       for t in truths[0]["intervals"]]
    with pytest.raises(InputError, match=r"SAMM Long Videos sheet .*nothing.xlsx does not exist"):
        create("dataset", "samm-lv", coding_file="nothing.xlsx").videos(releases["samm"])
    with pytest.raises(InputError, match=r"lacks column 'Expression type'"):
        create("dataset", "casme3-lv", coding_file="cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
               sheet="").videos(releases["casme3"])
    with pytest.raises(InputError, match="frames folder|does not exist"):
        create("dataset", "samm-lv", frames_dir="elsewhere").videos(releases["samm"])


def test_eval_spots_then_recognises_and_scores_as_megc(releases, tmp_path, capsys):
    """`mellm eval` on a spotting recipe spots every video on Ray Data, scores the intervals as `mellm spot` and
    `spotting_scores` do video by video, asks the model about each true positive's MMC-map, and multiplies the
    spotting F1 by the analysis F1. A video that cannot be read is recorded, and the others are scored."""
    root = releases["casme3"]
    broken = root / "spNO.3" / "a" / "color"
    broken.mkdir(parents=True)
    (broken / "1.jpg").write_bytes(b"not a jpeg")
    (broken / "2.jpg").write_bytes(b"not a jpeg")
    from openpyxl import load_workbook

    book = load_workbook(root / "part_A_v2.xlsx")
    book.active.append(["spNO.3", "a", 1, 1, 2, "4", "Micro-expression", "I"])
    book.save(root / "with_broken.xlsx")
    out = tmp_path / "run"
    args = ["eval", "quickstart", f"output_dir={out}", "spot.dataset=casme3-lv", f"spot.root={root}",
            "spot.dataset_params.coding_file=with_broken.xlsx", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["spotting"]
    assert result["videos"] == 3 and list(result["failed"]) == ["casme3-lv/spNO.3/a"]
    spotted, gold, pairs = [], [Interval(1, 1, 2)], []  # the broken video's interval: a miss
    for video in create("dataset", "casme3-lv", coding_file="part_A_v2.xlsx").videos(root):
        assert main(["spot", video.path, "--fps", "30", "--json"]) == 0
        found = [Interval.from_dict(i) for i in json.loads(capsys.readouterr().out)["intervals"]]
        spotted += found
        gold += video.intervals
        pairs += matches(found, video.intervals)
    assert result["spotting"] == spotting_scores(spotted, gold, pairs) and result["spotting"]["overall"]["tp"] > 0
    analysis = result["analysis"]
    assert analysis["n"] == len(pairs) and result["strs"] == round(result["spotting"]["overall"]["f1"] *
                                                                   analysis["f1"], 4)
    lines = [json.loads(x) for x in (out / "eval" / "spotted.jsonl").read_text().splitlines()]
    assert [line["video_id"] for line in lines] == ["casme3-lv/spNO.1/a", "casme3-lv/spNO.2/a", "casme3-lv/spNO.3/a"]
    maps = [m["map_path"] for line in lines for m in line.get("matches") or []]
    assert len(maps) == len(pairs) and all(Path(m).is_file() for m in maps)
    assert json.loads((out / "eval" / "spotting.json").read_text()) == result and not result["skipped"]
    assert main(args) == 0  # the same videos and settings: the scores are read back, nothing is spotted again
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["spotting"]
    assert again["skipped"] and {**again, "skipped": False} == result
    assert main(["eval", "quickstart", f"output_dir={out}", "spot.dataset=casme2", f"spot.root={root}"]) == 1
    assert "reads clips, not long videos" in capsys.readouterr().err


def test_the_analysis_of_matches_scores_as_the_strs_metric():
    """STRS's analysis F1 is the harmonic mean of the mean precision and the mean recall over the annotated
    emotions (scikit-learn's macro precision and recall over the gold labels); UF1 and UAR beside it."""
    gold = ["happiness", "happiness", "anger", "anger", "surprise", "happiness"]
    said = ["happiness", "anger", "anger", None, "happiness", "happiness"]
    preds = [{"sample_id": f"v@{i}", "task": "meu", "label": g, "emotion": p, "aus": [12] if p == "happiness" else [4],
              "aus_gold": [6, 12] if g == "happiness" else [4]}
             for i, (g, p) in enumerate(zip(gold, said, strict=True))]
    out = analysis_scores(preds, "all")
    labels = sorted(set(gold))
    y_pred = [p or "none" for p in said]
    precision = precision_score(gold, y_pred, labels=labels, average="macro", zero_division=0)
    recall = recall_score(gold, y_pred, labels=labels, average="macro", zero_division=0)
    assert out["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert out["uf1"] == pytest.approx(f1_score(gold, y_pred, labels=labels, average="macro", zero_division=0))
    assert out["uar"] == pytest.approx(recall) and out["n"] == 6 and out["unparsed"] == 1
    unlabelled = [{**p, "label": None} for p in preds]  # SAMM Long Videos: AUs only
    aus_only = analysis_scores(unlabelled, "all")
    assert aus_only["uf1"] is None and aus_only["f1"] == aus_only["au_f1"] > 0
    assert analysis_scores([], "all") is None
