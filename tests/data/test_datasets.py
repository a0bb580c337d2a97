"""Dataset loaders on small fake trees that mimic each release's layout and spreadsheet quirks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest
from standins import CASME2_HEADER, CASME2_ROWS, build_casme2, build_casme3, build_dfme, write_frames, write_sheet

from mellm_core.cli import main
from mellm_core.data.datasets import load_samples
from mellm_core.data.frameindex import ClipFrames, fill_apex, frame_number, peak_motion_frame, resolve_dir
from mellm_core.data.splits import fixed_split, loso_folds, zero_shot
from mellm_core.errors import InputError, PluginError
from mellm_core.plugins import create

# ---------------------------------------------------------------- CASME II

def test_casme2_parses_every_quirk_exactly(tmp_path):
    root = build_casme2(tmp_path / "CASME2")
    loader = create("dataset", "casme2")
    samples = loader.samples(root)
    frames = root / "CASME2_RAW_selected"
    got = [s.to_dict() for s in samples]
    assert got[0] == {
        "sample_id": "casme2/sub01/EP02_01f",
        "onset_path": str(frames / "sub01/EP02_01f/img46.jpg"),
        "apex_path": str(frames / "sub01/EP02_01f/img59.jpg"),
        "dataset": "casme2",
        "subject": "sub01",
        "clip": "EP02_01f",
        "onset_frame": 46,
        "apex_frame": 59,
        "offset_frame": 86,
        "aus": [4, 7],
        "au_sides": {},
        "aus_raw": "4+7",
        "emotion": "disgust",
        "emotion_raw": "disgust",
        "objective_class": None,
    }
    assert [(s["subject"], s["apex_frame"], s["aus"], s["au_sides"], s["emotion"]) for s in got[1:]] == [
        ("sub01", 15, [12], {"12": "R"}, "happiness"),  # "/" apex filled with the peak-motion frame
        ("sub02", 8, [1, 2, 12], {"12": "L"}, "repression"),
        ("sub12", 120, [4, 9, 10], {"10": "R"}, "others"),
        ("sub03", 3, [12, 17], {}, "happiness"),
    ]
    assert got[2]["apex_path"].endswith("sub02/EP01_11f/reg_img8.jpg")
    assert got[3]["onset_path"].endswith("sub12/EP09_10/100.jpg")
    assert got[4]["apex_path"].endswith("sub03/EP13_04/003.png")
    assert [s["emotion_raw"] for s in got] == ["disgust", "happiness", "Repression", "others", "Happiness"]
    assert len(loader.warnings) == 1
    assert (
        "EP03_02 has no apex frame; filled with frame 15 (peak motion from onset in 10-20)"
        in loader.warnings[0]
    )
    assert "row 3" in loader.warnings[0]


def test_casme2_middle_apex_fill_and_other_frames_folder(tmp_path):
    root = build_casme2(tmp_path / "CASME2", frames_dir="Cropped")
    samples = create("dataset", "casme2", frames_dir="Cropped", apex_fill="middle").samples(root)
    assert samples[1].apex_frame == 15 and "Cropped" in samples[1].apex_path
    assert samples[1].onset_path.endswith("Cropped/sub01/EP03_02/img10.jpg")
    with pytest.raises(InputError, match=r"clip folder .*CASME2_RAW_selected/sub01/EP02_01f does not exist"):
        create("dataset", "casme2").samples(root)
    loader = create("dataset", "casme2", frames_dir="Cropped", apex_fill="spot", fps=20)
    assert loader.samples(root)[1].apex_frame in range(10, 21)
    assert "(strongest spotted expression in 10-20)" in loader.warnings[0]
    with pytest.raises(PluginError, match="apex_fill=spot needs the clips' frame rate: fps must be positive, got 0"):
        create("dataset", "casme2", apex_fill="spot", fps=0)


def test_apex_fill_spot_finds_a_brief_movement_in_a_drifting_clip(tmp_path):
    """apex_fill=spot: the flow spotter's strongest expression, its head drift removed; here a movement that rises
    and falls within 5 frames around frame 27 of a 60-frame clip whose whole image drifts."""
    import cv2
    import numpy as np
    from standins import _bump, _texture

    from mellm_core.data.frameindex import ClipFrames, fill_apex
    from mellm_core.motion.warp import similarity_flow, warp_forward

    base = _texture(96)
    for n in range(1, 61):
        drift = similarity_flow((96, 96), 4.0 * n / 60, 0.0)
        image = warp_forward(base, drift + 3.0 * np.exp(-(((n - 27) / 1.5) ** 2)) * _bump(96, 12.0))
        cv2.imwrite(str(tmp_path / f"img{n}.png"), np.clip(image, 0, 255).astype(np.uint8))
    frames = ClipFrames(tmp_path)
    assert fill_apex(frames, 1, 60, "spot", fps=30) == 27


def test_casme2_missing_column_names_file_column_and_columns_found(tmp_path):
    rows = [[r[0], r[1], r[3], r[5], r[7], r[8]] for r in CASME2_ROWS]
    header = ["Subject", "Filename", "OnsetFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
    root = tmp_path / "CASME2"
    root.mkdir()
    sheet = write_sheet(root / "CASME2-coding-2019.xlsx", [header, *rows])
    with pytest.raises(InputError) as err:
        create("dataset", "casme2").samples(root)
    assert str(err.value) == (
        f"{sheet} lacks column 'ApexFrame' (columns found: Subject, Filename, OnsetFrame, OffsetFrame,"
        " Action Units, Estimated Emotion)"
    )


def test_casme2_layout_errors_name_the_path(tmp_path):
    root = build_casme2(tmp_path / "CASME2")
    (root / "CASME2_RAW_selected/sub01/EP02_01f/img59.jpg").unlink()
    loader = create("dataset", "casme2")
    kept = loader.samples(root)  # the broken clip is skipped with a warning; the others are read
    assert "EP02_01f" not in {s.clip for s in kept} and kept
    assert any(re.search(r"skipped sub01/EP02_01f: apex frame 59 is not in .*sub01/EP02_01f \(it holds frames 46-86,"
                         r" 2 files\)", w) for w in loader.warnings)
    for clip in (root / "CASME2_RAW_selected").glob("sub*/*"):
        for frame in clip.iterdir():
            frame.unlink()
    with pytest.raises(InputError, match=r"is not in|holds no numbered"):  # nothing readable at all: an error
        create("dataset", "casme2").samples(root)
    bad = [[1, "EP02_01f", None, "abc", 59, 86, None, "4", "disgust"]]
    write_sheet(root / "CASME2-coding-20140508.xlsx", [CASME2_HEADER, *bad])
    with pytest.raises(InputError, match=r"row 2 column 'OnsetFrame': 'abc' is not a frame number"):
        create("dataset", "casme2").samples(root)
    write_sheet(root / "CASME2-coding-v2.xlsx", [CASME2_HEADER])
    with pytest.raises(
        InputError, match=r"2 files match 'CASME2-coding-\*.xlsx'.*CASME2-coding-20140508.xlsx"
    ):
        create("dataset", "casme2").samples(root)
    with pytest.raises(InputError, match=r"no CASME II annotation file matching 'CASME2-coding-\*.xlsx' in"):
        create("dataset", "casme2").samples(tmp_path)


def test_casme2_duplicate_clip_is_an_error(tmp_path):
    root = build_casme2(tmp_path / "CASME2", rows=[CASME2_ROWS[0], CASME2_ROWS[0]])
    with pytest.raises(InputError, match="lists clip 'casme2/sub01/EP02_01f' twice"):
        create("dataset", "casme2").samples(root)


def test_dataset_params_are_checked():
    with pytest.raises(PluginError, match="apex_fill must be one of: flow, middle, spot, got 'peak'"):
        create("dataset", "casme2", apex_fill="peak")
    with pytest.raises(PluginError, match="unknown parameter 'frame_dir'.*did you mean 'frames_dir'"):
        create("dataset", "samm", frame_dir="x")


# ---------------------------------------------------------------- SAMM

SAMM_NOTES = [
    ["SAMM: Spontaneous Micro-Facial Movement Dataset"],
    ["FACS coded by two certified coders"],
    [],
    ["Inducement codes: 1 = ..."],
    *([[]] * 8),
    ["Frames are numbered from the start of each video"],
]
SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Estimated Emotion",
    "Objective Classes",
    "Notes",
]
SAMM_ROWS = [
    [6, "006_1_2", 1, 5562, 5588, 5632, 71, "Micro - 1/2", "4+7", "Anger", 1, None],
    [6, "006_1_3", 1, 3912, 3948, -1, None, "Micro - 1/2", "R14A or 17A", "Contempt", 2, "offset not coded"],
    [7, "007_3_1", 3, 1200, -1, 1220, 21, "Micro - 1/2", "A1B+A2C", "Other", 7, None],
    ["011", "011_2_3", 2, 40, 52, 60, 21, "Micro - 1/2", "12", "Happiness", 3, None],
]


def build_samm(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    assert len(SAMM_NOTES) == 13  # the header sits on row 14, as in the release
    write_sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", [SAMM_HEADER, *SAMM_ROWS], before=SAMM_NOTES)
    write_frames(root / "006" / "006_1_2", [5562, 5588], lambda n: f"006_{n:05d}.jpg")
    write_frames(root / "006" / "006_1_3", [3912, 3948], lambda n: f"006_{n:05d}.jpg")
    write_frames(root / "007" / "007_3_1", range(1200, 1221), lambda n: f"007_{n:05d}.jpg", peak=1207)
    write_frames(root / "011" / "011_2_3", [40, 52], lambda n: f"011_{n:05d}.jpg")
    return root


def test_samm_finds_the_header_and_reads_its_codes(tmp_path):
    root = build_samm(tmp_path / "SAMM")
    loader = create("dataset", "samm")
    got = [s.to_dict() for s in loader.samples(root)]
    assert [(s["sample_id"], s["onset_frame"], s["apex_frame"], s["offset_frame"]) for s in got] == [
        ("samm/006/006_1_2", 5562, 5588, 5632),
        ("samm/006/006_1_3", 3912, 3948, None),
        ("samm/007/007_3_1", 1200, 1207, 1220),
        ("samm/011/011_2_3", 40, 52, 60),
    ]
    assert [(s["aus"], s["au_sides"]) for s in got] == [
        ([4, 7], {}),
        ([14, 17], {"14": "R"}),
        ([1, 2], {}),
        ([12], {}),
    ]
    assert [(s["emotion"], s["emotion_raw"], s["objective_class"]) for s in got] == [
        ("anger", "Anger", "1"),
        ("contempt", "Contempt", "2"),
        ("others", "Other", "7"),
        ("happiness", "Happiness", "3"),
    ]
    assert got[0]["onset_path"] == str(root / "006/006_1_2/006_05562.jpg")
    assert len(loader.warnings) == 2
    assert "row 16: 006/006_1_3 offset -1 precedes onset 3912; offset left unknown" in loader.warnings[0]
    assert "007/007_3_1 has no apex frame; filled with frame 1207" in loader.warnings[1]


def test_samm_header_and_column_errors(tmp_path):
    root = tmp_path / "SAMM"
    root.mkdir()
    sheet = write_sheet(root / "SAMM_Micro_FACS_Codes_v2.xlsx", SAMM_ROWS, before=SAMM_NOTES)
    with pytest.raises(InputError, match=r"has no header row with a 'Filename' cell in its first 100 rows"):
        create("dataset", "samm").samples(root)
    header = [c for c in SAMM_HEADER if c != "Apex Frame"]
    write_sheet(sheet, [header], before=SAMM_NOTES)
    with pytest.raises(
        InputError, match=r"lacks column 'Apex Frame' \(columns found: Subject, Filename, Inducement"
    ):
        create("dataset", "samm").samples(root)
    with pytest.raises(InputError, match=r"SAMM annotation file .*other.xlsx does not exist"):
        create("dataset", "samm", coding_file="other.xlsx").samples(root)


# ---------------------------------------------------------------- CAS(ME)^3 Part A

def test_casme3a_reads_several_mes_per_recording(tmp_path):
    build_casme3(tmp_path)
    got = create("dataset", "casme3a").samples(tmp_path)
    assert [s.sample_id for s in got] == [
        "casme3a/spNO.1/a_355",
        "casme3a/spNO.1/a_500",
        "casme3a/spNO.2/f_10",
    ]
    assert [(s.subject, s.clip, s.apex_frame) for s in got] == [
        ("spNO.1", "a", 360),
        ("spNO.1", "a", 505),
        ("spNO.2", "f", 14),
    ]
    assert got[1].apex_path == str(tmp_path / "spNo.1/a/color/505.jpg")
    assert [(s.aus, s.au_sides, s.emotion, s.objective_class) for s in got] == [
        ([4], {}, "disgust", "3"),
        ([12], {}, "happiness", "1"),
        ([1, 2], {}, "sadness", "2"),
    ]
    depth = create("dataset", "casme3a", modality="depth")
    kept = depth.samples(tmp_path)  # spNO.1 has no depth frames: its clips are skipped, named in warnings
    assert {s.subject for s in kept} == {"spNO.2"}
    assert any(re.search(r"skipped spNO.1/.*clip folder .*spNo.1/a/depth does not exist", w) for w in depth.warnings)


def test_casme3a_sheet_choice(tmp_path):
    path = build_casme3(tmp_path, first_sheet="label")
    book = openpyxl.load_workbook(path)
    book.create_sheet("notes", 0)
    book.save(path)
    assert len(create("dataset", "casme3a", sheet="label").samples(tmp_path)) == 3
    with pytest.raises(InputError, match=r"lacks column 'Subject' \(columns found: \)"):
        create("dataset", "casme3a").samples(tmp_path)  # the first sheet is now the empty "notes"
    with pytest.raises(InputError, match=r"has no sheet 'labels' \(sheets: notes, label\)"):
        create("dataset", "casme3a", sheet="labels").samples(tmp_path)


# ---------------------------------------------------------------- DFME


def test_dfme_reads_its_lists_and_fixed_splits(tmp_path):
    root = build_dfme(tmp_path / "DFME")
    loader = create("dataset", "dfme")
    samples = loader.samples(root)
    assert [s.sample_id for s in samples] == [
        "dfme/train/10001",
        "dfme/train/10002",
        "dfme/train/10003",
        "dfme/TestA/20001",
    ]
    assert [(s.subject, s.emotion, s.aus, s.au_sides) for s in samples] == [
        ("17", "contempt", [12, 14], {"12": "R", "14": "R"}),
        ("17", "happiness", [6, 12], {}),
        ("23", "disgust", [9, 10], {}),
        ("41", "surprise", [1, 2, 5, 26], {}),
    ]
    assert samples[0].apex_path == str(root / "train/10001/0004.jpg")
    assert loader.warnings == [f"DFME list 'TestB' skipped: no file matches 'TestB.*' in {root}"]
    from mellm_core.data.splits import listed_ids

    known = {s.sample_id for s in samples}
    split = fixed_split(samples, {name: listed_ids([f"dfme/{name}/*"], known) for name in ("train", "TestA")})
    assert [s.clip for s in split["TestA"]] == ["20001"] and len(split["train"]) == 3


def test_dfme_columns_are_configurable(tmp_path):
    root = tmp_path / "DFME"
    (root / "clips").mkdir(parents=True)
    (root / "test_b_labels.csv").write_text(
        "video,start,peak,label\nc1,3,7,Fear\nc2,2,,angry\n", encoding="utf-8"
    )
    write_frames(root / "clips" / "c1", [3, 7])
    write_frames(root / "clips" / "c2", range(2, 9), peak=5)
    params = {
        "lists": {"TestB": "test_b_*.csv"},
        "frames": "clips/{clip}",
        "subject_column": "",
        "clip_column": "video",
        "onset_column": "start",
        "apex_column": "peak",
        "offset_column": "",
        "au_column": "",
        "emotion_column": "label",
    }
    loader = create("dataset", "dfme", **params)
    got = loader.samples(root)
    assert [(s.sample_id, s.onset_frame, s.apex_frame, s.offset_frame, s.emotion, s.aus) for s in got] == [
        ("dfme/TestB/c1", 3, 7, None, "fear", []),
        ("dfme/TestB/c2", 2, 5, None, "anger", []),
    ]
    assert "has no apex frame; filled with frame 5" in loader.warnings[0]
    with pytest.raises(
        InputError, match=r"lacks column 'Filename' \(columns found: video, start, peak, label\)"
    ):
        create("dataset", "dfme", **{**params, "clip_column": "Filename"}).samples(root)
    with pytest.raises(InputError, match=r"no DFME list file found in .* \(looked for train: train\.\*"):
        create("dataset", "dfme").samples(root)


# ---------------------------------------------------------------- SMIC and the MEGC 2019 composite


def build_smic(root: Path) -> Path:
    hs = root / "HS"
    write_frames(hs / "s1/micro/negative/s1_ne_01", range(101, 112), lambda n: f"image{n:06d}.bmp", peak=106)
    write_frames(hs / "s1/micro/surprise/s1_sur_01", range(40, 49), lambda n: f"image{n:06d}.bmp", peak=43)
    write_frames(hs / "s2/micro/positive/s2_po_01", range(7, 16), lambda n: f"reg_image{n:06d}.bmp", peak=12)
    write_frames(hs / "s2/non_micro/n1", [1, 2])
    return root


def test_smic_labels_come_from_folders_and_apex_from_motion(tmp_path):
    root = build_smic(tmp_path / "SMIC")
    loader = create("dataset", "smic")
    got = loader.samples(root)
    assert [(s.sample_id, s.emotion, s.onset_frame, s.apex_frame, s.offset_frame) for s in got] == [
        ("smic/s1/s1_ne_01", "negative", 101, 106, 111),
        ("smic/s1/s1_sur_01", "surprise", 40, 43, 48),
        ("smic/s2/s2_po_01", "positive", 7, 12, 15),
    ]
    assert loader.warnings == [
        "SMIC has no apex annotation: apex of 3 clips set to peak motion from the onset"
    ]
    with pytest.raises(InputError, match=r"SMIC camera folder .*NIR does not exist \(found: HS\)"):
        create("dataset", "smic", camera="NIR").samples(root)


def test_megc_composite_three_classes_per_source(tmp_path):
    build_smic(tmp_path / "SMIC")
    build_casme2(tmp_path / "CASME2")
    build_samm(tmp_path / "SAMM")
    loader = create("dataset", "megc")
    got = loader.samples(tmp_path)
    assert [(s.sample_id, s.emotion, s.emotion_raw) for s in got] == [
        ("smic/s1/s1_ne_01", "negative", "negative"),
        ("smic/s1/s1_sur_01", "surprise", "surprise"),
        ("smic/s2/s2_po_01", "positive", "positive"),
        ("casme2/sub01/EP02_01f", "negative", "disgust"),
        ("casme2/sub01/EP03_02", "positive", "happiness"),
        ("casme2/sub02/EP01_11f", "negative", "Repression"),
        ("casme2/sub03/EP13_04", "positive", "Happiness"),
        ("samm/006/006_1_2", "negative", "Anger"),
        ("samm/006/006_1_3", "negative", "Contempt"),
        ("samm/011/011_2_3", "positive", "Happiness"),
    ]
    assert loader.excluded == {"others": 2}
    assert loader.warnings[-1] == "MEGC 2019 composite leaves out 2 samples (others: 2)"
    assert any(w.startswith("casme2: ") and "EP03_02" in w for w in loader.warnings)
    summary = load_samples("megc", tmp_path, protocol="megc-3").summary()
    assert summary["per_subject"] == {
        "casme2/sub01": 2,
        "casme2/sub02": 1,
        "casme2/sub03": 1,
        "samm/006": 2,
        "samm/011": 1,
        "smic/s1": 2,
        "smic/s2": 1,
    }
    assert summary["per_emotion"] == {"negative": 5, "positive": 4, "surprise": 1}
    assert [name for name, _, _ in loso_folds(got)] == [
        "casme2/sub01",
        "casme2/sub02",
        "casme2/sub03",
        "samm/006",
        "samm/011",
        "smic/s1",
        "smic/s2",
    ]


# ---------------------------------------------------------------- frame index


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("img46.jpg", 46),
        ("reg_img46.jpg", 46),
        ("046.jpg", 46),
        ("46.jpg", 46),
        ("006_05562.jpg", 5562),
        ("image046470.bmp", 46470),
        ("cover.jpg", None),
    ],
)
def test_frame_number_is_the_last_integer(name, number):
    assert frame_number(name) == number


def test_clip_frames_lists_numbered_images_only(tmp_path):
    write_frames(tmp_path / "c", [3, 1, 20])
    (tmp_path / "c" / "notes.txt").write_text("x")
    (tmp_path / "c" / "Thumbs.db").write_text("x")
    frames = ClipFrames(tmp_path / "c")
    assert frames.numbers == [1, 3, 20]
    cv2.imwrite(str(tmp_path / "c" / "003.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match=r"holds two images numbered 3: 003.png and img3.jpg"):
        ClipFrames(tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no numbered"):
        ClipFrames(tmp_path / "empty")


def test_resolve_dir_matches_case_only_when_needed(tmp_path):
    (tmp_path / "spNo.1" / "a").mkdir(parents=True)
    assert resolve_dir(tmp_path, "spNO.1", "a") == tmp_path / "spNo.1" / "a"
    assert resolve_dir(tmp_path, "spNO.9", "a") == tmp_path / "spNO.9" / "a"


def test_apex_search_ignores_global_drift(tmp_path):
    write_frames(tmp_path / "c", range(0, 13), peak=4)
    frames = ClipFrames(tmp_path / "c")
    assert peak_motion_frame(frames, 0, 12) == 4
    assert peak_motion_frame(frames, 0, 3) == 3  # the search stays inside onset..offset
    assert fill_apex(frames, 0, 12, "middle") == 6
    assert peak_motion_frame(frames, 12) == 12  # nothing after the onset


# ---------------------------------------------------------------- load_samples and the CLI


def test_load_samples_summary(tmp_path):
    root = build_casme2(tmp_path / "CASME2")
    loaded = load_samples("casme2", root, protocol="casme2-5")
    assert loaded.summary() == {
        "dataset": "casme2",
        "protocol": "casme2-5",
        "samples": 3,
        "subjects": 2,
        "per_emotion": {"happiness": 2, "disgust": 1},
        "per_subject": {"sub01": 2, "sub03": 1},
        "excluded": {"repression": 1, "others": 1},
        "excluded_total": 2,
        "warnings": loaded.warnings,
    }
    assert len(loaded.warnings) == 1
    with pytest.raises(InputError, match="dataset root .*nowhere does not exist"):
        load_samples("casme2", tmp_path / "nowhere")


def test_cli_data_inspect_json(tmp_path, capsys):
    root = build_casme2(tmp_path / "CASME2")
    assert main(["data", "inspect", "casme2", "--root", str(root), "--protocol", "casme2-5", "--json"]) == 0
    out, err = capsys.readouterr()
    records = json.loads(out)
    assert [r["sample_id"] for r in records] == [
        "casme2/sub01/EP02_01f",
        "casme2/sub01/EP03_02",
        "casme2/sub03/EP13_04",
    ]
    assert set(records[0]) >= {
        "dataset",
        "subject",
        "clip",
        "onset_frame",
        "apex_frame",
        "offset_frame",
        "onset_path",
        "apex_path",
        "aus",
        "au_sides",
        "aus_raw",
        "emotion",
        "emotion_raw",
        "objective_class",
    }
    assert "3 samples from 2 subjects (casme2, protocol casme2-5)" in err
    assert "excluded: 2 (repression 1, others 1)" in err


def test_cli_data_inspect_text_and_params(tmp_path, capsys):
    root = build_casme2(tmp_path / "CASME2", frames_dir="Cropped")
    assert main(["data", "inspect", "casme2", "--root", str(root), "--param", "frames_dir=Cropped"]) == 0
    out = capsys.readouterr().out
    assert "casme2/sub12/EP09_10" in out and "4+9+ R10" in out and "others (others)" in out
    assert "per subject: sub01 2, sub02 1, sub03 1, sub12 1" in out
    assert "warnings: 1" in out


def test_cli_data_errors_are_one_line(tmp_path, capsys):
    root = tmp_path / "CASME2"
    root.mkdir()
    write_sheet(root / "CASME2-coding-x.xlsx", [["Subject", "Filename"]])
    assert main(["data", "inspect", "casme2", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "lacks column 'OnsetFrame'" in err
    assert main(["data", "inspect", "casme2", "--root", str(root), "--protocol", "casme9"]) == 1
    assert "unknown label protocol 'casme9'" in capsys.readouterr().err
    assert main(["data", "inspect", "casme2", "--root", str(root), "--param", "frames_dir"]) == 1
    assert "is not of the form key=value" in capsys.readouterr().err


def test_cli_data_protocols_and_help(capsys):
    assert main(["data", "protocols", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["megc-3"] == ["negative", "positive", "surprise"]
    with pytest.raises(SystemExit) as exit_:
        main(["data", "inspect", "--help"])
    assert exit_.value.code == 0
    assert "example:\n  mellm data inspect casme2" in capsys.readouterr().out


def test_combined_reads_parts_for_zero_shot_splits(tmp_path):
    build_dfme(tmp_path / "DFME")
    build_casme2(tmp_path / "CASME2")
    loader = create("dataset", "combined", parts=[{"dataset": "dfme", "root": "DFME"},
                                                  {"dataset": "casme2", "root": "CASME2"}])
    samples = loader.samples(tmp_path)
    datasets = [s.dataset for s in samples]
    assert datasets.count("dfme") == 4 and datasets.count("casme2") == len(create("dataset", "casme2").samples(
        tmp_path / "CASME2"))
    assert any(w.startswith("casme2: ") for w in loader.warnings)  # the parts' warnings are kept, named
    train, test = zero_shot(samples, ["dfme"], ["casme2"])
    assert {s.dataset for s in train} == {"dfme"} and {s.dataset for s in test} == {"casme2"}
    with pytest.raises(PluginError, match=r"parts\[0\] must have keys dataset and root"):
        create("dataset", "combined", parts=[{"dataset": "dfme"}])
    twice = create("dataset", "combined", parts=[{"dataset": "dfme", "root": "DFME"}] * 2)
    with pytest.raises(InputError, match="appears in both dfme and dfme"):
        twice.samples(tmp_path)
