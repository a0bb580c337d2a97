"""SynthME: its motion maths, generation, exact ground truth, and reading it back as CASME II."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mellm_core.cli import main
from mellm_core.errors import InputError, PluginError
from mellm_core.files.frames import read_gray
from mellm_core.motion.warp import similarity_flow
from mellm_core.plugins import create
from mellm_core.text.labels import parse_aus
from mellm_plugins.dataset.synthme.motion import (
    AU_TEMPLATES,
    MIRROR,
    PROTOTYPES,
    au_displacements,
    aus_text,
    compose_motion,
    dense_field,
    draw_aus,
    mirror_landmarks,
    profile,
    rotation,
)

CASME2_COLUMNS = [
    "Subject",
    "Filename",
    "Unnamed: 2",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Unnamed: 6",
    "Action Units",
    "Estimated Emotion",
]
RIGHT = {
    i
    for i in range(len(MIRROR))
    if MIRROR[i] != i
    and i in (*range(0, 8), *range(17, 22), 31, 32, *range(36, 42), 48, 49, 50, 58, 59, 60, 61, 67, 68, 70)
}


# ---------------------------------------------------------------- the maths


def test_mirror_table_is_an_involution_that_swaps_sides():
    assert len(MIRROR) == 73 and all(MIRROR[MIRROR[i]] == i for i in range(73))
    assert {MIRROR[i] for i in RIGHT}.isdisjoint(RIGHT)
    assert [i for i in range(73) if MIRROR[i] == i] == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66, 72]


def test_mirror_landmarks_flips_and_reindexes():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (68, 2))
    flipped = mirror_landmarks(points, 100)
    assert flipped[0, 0] == pytest.approx(99 - points[16, 0]) and flipped[0, 1] == points[16, 1]
    np.testing.assert_allclose(mirror_landmarks(flipped, 100), points)


def test_au_displacements_respect_sides_and_roll():
    both, right, left = (au_displacements(12, side) for side in ("", "R", "L"))
    np.testing.assert_allclose(both, right + left)
    assert set(np.flatnonzero(np.abs(right).sum(axis=1))) <= RIGHT
    np.testing.assert_allclose(left[54], right[48] * [-1, 1])  # mirror image: x flips
    assert right[48, 0] < 0 and right[48, 1] < 0  # the right mouth corner moves out (image left) and up
    np.testing.assert_allclose(
        au_displacements(1, "", 90.0)[21], [1.0, 0.0], atol=1e-12
    )  # "up" rotated by 90
    assert set(AU_TEMPLATES) >= {1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26}


def test_dense_field_keeps_isolated_moves_and_fades():
    points = np.array([[20.0, 20.0], [60.0, 40.0], [0.0, 0.0]])
    moves = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 0.0]])
    field = dense_field((64, 80), points, moves, sigma=3.0)
    np.testing.assert_allclose(field[20, 20], [1.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(field[40, 60], [0.5, 0.0], atol=1e-6)
    assert np.abs(field[0:5, 0:5]).max() == 0 and np.abs(field[40, 40]).max() < 1e-6


def test_compose_motion_is_the_exact_point_mapping():
    rng = np.random.default_rng(1)
    shape, centre, angle, scale, t = (40, 50), (24.0, 18.0), 3.0, 1.02, (1.5, -0.7)
    expression = rng.normal(0, 1, (*shape, 2)).astype(np.float32)
    head = similarity_flow(shape, *t, angle, scale, centre)
    total = compose_motion(head, rotation(angle, scale), expression)
    y, x = 11, 37
    moved = np.array([x, y]) + expression[y, x]  # the expression first, then the head similarity
    expected = np.array(centre) + rotation(angle, scale) @ (moved - centre) + t
    np.testing.assert_allclose(np.array([x, y]) + total[y, x], expected, atol=1e-4)


def test_profile_rises_to_the_apex_and_returns():
    assert profile(10, 10, 14, 20) == (0.0, 0.0)
    assert profile(14, 10, 14, 20) == (1.0, 1.0)
    assert profile(12, 10, 14, 20) == pytest.approx((0.5, 0.5))
    assert profile(20, 10, 14, 20) == pytest.approx((0.0, 1.0))


def test_draw_aus_follows_prototypes():
    for seed in range(200):
        emotion = list(PROTOTYPES)[seed % len(PROTOTYPES)]
        aus = draw_aus(np.random.default_rng(seed), emotion, 0.15, 0.3, 0.1)
        proto = {int(c.lstrip("LR")) for c in PROTOTYPES[emotion]}
        assert aus and set(aus) <= set(AU_TEMPLATES) and len(set(aus) - proto) <= 1 and set(aus) & proto
        assert set(aus.values()) <= {"", "L", "R"}
        if emotion == "contempt":
            assert len({aus[a] for a in (12, 14) if a in aus} - {""}) == 1  # one side, drawn per clip
    assert draw_aus(np.random.default_rng(5), "fear", 0.15, 0.3, 0.1) == draw_aus(
        np.random.default_rng(5), "fear", 0.15, 0.3, 0.1
    )
    assert aus_text({1: "", 2: "", 12: "L"}) == "1+2+L12"


def test_params_are_checked():
    with pytest.raises(PluginError, match="emotions must be drawn from"):
        create("dataset", "synthme", emotions=["joy"])
    with pytest.raises(PluginError, match=r"amplitude must be \[low, high\]"):
        create("dataset", "synthme", amplitude=[3.0, 0.3])


# ---------------------------------------------------------------- generated benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> dict:
    """Two generations with one seed, one with another, and the summary of the first."""
    base = tmp_path_factory.mktemp("synthme")
    gen = create("dataset", "synthme", subjects=4)
    summary = gen.generate(base / "a", n=10, seed=7)
    gen.generate(base / "b", n=10, seed=7)
    gen.generate(base / "c", n=10, seed=8)
    return {"a": base / "a", "b": base / "b", "c": base / "c", "summary": summary}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".jpg", ".npy", ".json")
    }


def _truths(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "gt").rglob("motion.json"))]


def test_same_seed_gives_identical_bytes(bench):
    a, b, c = _files(bench["a"]), _files(bench["b"]), _files(bench["c"])
    assert len(a) > 10 * 6 and a == b
    sheet = "CASME2-coding-SynthME.xlsx"
    pd.testing.assert_frame_equal(pd.read_excel(bench["a"] / sheet), pd.read_excel(bench["b"] / sheet))
    assert not pd.read_excel(bench["a"] / sheet).equals(pd.read_excel(bench["c"] / sheet))
    shared = set(a) & set(c)
    assert any(a[k] != c[k] for k in shared)


def test_output_has_the_casme2_layout(bench):
    root = bench["a"]
    sheet = pd.read_excel(root / "CASME2-coding-SynthME.xlsx")
    assert list(sheet.columns) == CASME2_COLUMNS
    assert sheet["Subject"].dtype.kind == "i" and sorted(set(sheet["Subject"])) == [1, 2, 3, 4]
    assert len(sheet) == 10 and bench["summary"]["clips"] == 10 and bench["summary"]["subjects"] == 4
    for row in sheet.itertuples(index=False):
        folder = root / "CASME2_RAW_selected" / f"sub{row.Subject:02d}" / row.Filename
        numbers = sorted(int(p.stem.removeprefix("img")) for p in folder.glob("img*.jpg"))
        assert numbers == list(range(row.OnsetFrame, row.OffsetFrame + 1))
        assert row.OnsetFrame < row.ApexFrame < row.OffsetFrame
        flow = np.load(root / "gt" / f"sub{row.Subject:02d}" / row.Filename / "flow.npy")
        assert flow.dtype == np.float32 and flow.shape == (192, 192, 2)
        assert row._8 in PROTOTYPES  # Estimated Emotion
    manifest = json.loads((root / "synthme.json").read_text())
    assert manifest["seed"] == 7 and manifest["photos"] == ["astronaut", "grace_hopper"]
    assert manifest["subjects"]["sub01"]["photo"] == "astronaut" and manifest["subjects"]["sub02"][
        "photo"
    ] == ("grace_hopper")


def test_casme2_loader_reads_it_unchanged(bench):
    root = bench["a"]
    samples = create("dataset", "casme2").samples(root)
    truths = {t["sample_id"]: t for t in _truths(root)}
    assert len(samples) == 10
    for s in samples:
        t = truths[f"synthme/{s.subject}/{s.clip}"]
        assert (s.onset_frame, s.apex_frame, s.offset_frame) == (
            t["onset_frame"],
            t["apex_frame"],
            t["offset_frame"],
        )
        assert (s.aus_raw, s.emotion, s.dataset) == (t["aus"], t["emotion"], "casme2")
        assert (s.aus, s.au_sides) == parse_aus(t["aus"])
    synth = create("dataset", "synthme").samples(root)
    assert [s.sample_id for s in synth] == [f"synthme/{s.subject}/{s.clip}" for s in samples]
    assert {s.dataset for s in synth} == {"synthme"}
    with pytest.raises(InputError, match=r"holds no SynthME data .*mellm synth --out"):
        create("dataset", "synthme").samples(root / "gt")


def _face_mask(truth: dict, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(truth["landmarks"]).astype(np.int32)), 1)
    return mask.astype(bool)


def _pair(root: Path, t: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    folder = root / "CASME2_RAW_selected" / t["subject"] / t["clip"]
    flow = np.load(root / "gt" / t["subject"] / t["clip"] / "flow.npy")
    return (
        read_gray(folder / f"img{t['onset_frame']}.jpg"),
        read_gray(folder / f"img{t['apex_frame']}.jpg"),
        flow,
    )


def test_tvl1_agrees_with_the_ground_truth_flow(bench):
    tvl1 = create("flow", "tvl1")
    truths = sorted(_truths(bench["a"]), key=lambda t: -t["peak_amplitude"])[:3]
    for t in truths:
        onset, apex, gt = _pair(bench["a"], t)
        face = _face_mask(t, onset.shape)
        epe = np.linalg.norm(tvl1(onset, apex) - gt, axis=2)[face].mean()
        motion = np.linalg.norm(gt, axis=2)[face].mean()
        assert epe < 0.25 and epe < 0.2 * motion, (t["sample_id"], epe, motion)


def _head_field(t: dict, shape: tuple[int, int]) -> np.ndarray:
    h = t["head"]
    return similarity_flow(shape, h["dx"], h["dy"], h["angle_deg"], h["scale"], tuple(h["centre"]))


def _residual(onset: np.ndarray, apex: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """|apex(x + flow(x)) - onset(x)|: what the flow leaves unexplained."""
    h, w = onset.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = cv2.remap(apex.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
    return np.abs(back - onset)


def test_ground_truth_flow_explains_the_apex_frame(bench):
    """apex(x + flow(x)) matches onset(x) down to sensor noise; a flow off by 0.3 px does clearly worse."""
    checked = 0
    for t in _truths(bench["a"]):
        onset, apex, gt = _pair(bench["a"], t)
        face = _face_mask(t, onset.shape)
        explained = _residual(onset, apex, gt)
        assert explained[face].mean() < 0.45 * _residual(onset, apex, 0 * gt)[face].mean(), t["sample_id"]
        for off in ([0.3, 0], [-0.3, 0], [0, 0.3], [0, -0.3]):
            shifted = _residual(onset, apex, gt + np.float32(off))
            assert explained[face].mean() < 0.85 * shifted[face].mean(), (t["sample_id"], off)
        moving = face & (np.linalg.norm(gt - _head_field(t, gt.shape[:2]), axis=2) > 0.5)
        if moving.sum() > 50:  # where the face itself moves, head motion alone explains far less
            checked += 1
            head_only = _residual(onset, apex, _head_field(t, gt.shape[:2]))
            assert explained[moving].mean() < 0.6 * head_only[moving].mean(), t["sample_id"]
    assert checked >= 3


def test_expression_and_head_motion_decompose(bench):
    for t in _truths(bench["a"]):
        _, _, gt = _pair(bench["a"], t)
        head = t["head"]
        expression = np.linalg.norm(gt - _head_field(t, gt.shape[:2]), axis=2)
        assert 0.3 <= t["peak_amplitude"] <= 3.0
        assert expression.max() == pytest.approx(t["peak_amplitude"] * head["scale"], rel=2e-3, abs=1e-3)
        assert expression[:12, :12].max() < 1e-3  # no expression far from the face
        assert abs(head["dx"]) <= 1.5 and abs(head["angle_deg"]) <= 1.0


def test_dlib_finds_the_faces_where_the_truth_says(bench):
    landmarker = create("landmarker", "dlib68")
    for t in _truths(bench["a"])[:4]:
        onset, _, _ = _pair(bench["a"], t)
        error = np.linalg.norm(landmarker(onset) - np.array(t["landmarks"]), axis=1).mean()
        assert error < 4.0, (t["sample_id"], error)


def test_user_photos_and_photo_errors(tmp_path, bench):
    import skimage.data

    photo = tmp_path / "me.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut()[40:330, 100:400], cv2.COLOR_RGB2BGR))
    gen = create("dataset", "synthme", size=160, photos=[str(photo)])  # as a recipe would give them
    summary = gen.generate(tmp_path / "mine", n=2, seed=0)
    assert summary["photos"] == ["me"] and summary["clips"] == 2
    assert read_gray(next((tmp_path / "mine" / "CASME2_RAW_selected").rglob("*.jpg"))).shape == (160, 160)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200), 128, np.uint8))
    with pytest.raises(InputError, match="SynthME photo 'blank': no face found"):
        gen.generate(tmp_path / "x", n=1, photos=[blank])
    with pytest.raises(InputError, match=r"photo .*nope.jpg does not exist or is not a readable image"):
        gen.generate(tmp_path / "x", n=1, photos=[tmp_path / "nope.jpg"])


def test_generate_refuses_to_clobber(tmp_path):
    gen = create("dataset", "synthme", subjects=1)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("x")
    with pytest.raises(InputError, match="already exists and is not empty"):
        gen.generate(tmp_path / "busy", n=1, overwrite=True)
    gen.generate(tmp_path / "out", n=1, seed=0)
    with pytest.raises(InputError, match="thesis.tex is a file"):
        gen.generate(tmp_path / "busy" / "thesis.tex", n=1)
    with pytest.raises(InputError, match="already exists"):
        gen.generate(tmp_path / "out", n=1, seed=1)
    gen.generate(tmp_path / "out", n=2, seed=1, overwrite=True)
    assert json.loads((tmp_path / "out" / "synthme.json").read_text())["clips"] == 2
    assert not list(tmp_path.glob(".out.*"))  # no staging folder left beside it


def test_cli_synth_and_inspect(tmp_path, capsys):
    out = tmp_path / "sy"
    assert (
        main(["synth", "--out", str(out), "--n", "3", "--seed", "1", "--json", "--param", "subjects=2"]) == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["clips"] == 3 and summary["subjects"] == 2 and summary["seed"] == 1
    assert main(["data", "inspect", "synthme", "--root", str(out), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["sample_id"] for r in records] == [
        "synthme/sub01/EP01",
        "synthme/sub01/EP02",
        "synthme/sub02/EP01",
    ]
    assert main(["synth", "--out", str(out), "--n", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err
    assert main(["synth", "--out", str(tmp_path / "z"), "--seed", "-1"]) == 1
    assert "the seed not negative, got 200 and -1" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "z"), "--generator", "casme2"]) == 1
    assert "cannot generate it" in capsys.readouterr().err
