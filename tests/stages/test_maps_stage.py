"""`mellm maps` on Ray Data: manifests, failures recorded per sample, skip-if-unchanged, overwrite."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from mellm_core.cli import main
from mellm_core.config import MapsConfig
from mellm_core.motion.mapper import Mapper
from mellm_core.records import MapRecord
from mellm_core.stages.maps import map_file_name


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, motion_pair):
    """Frames at half size (fast), a manifest with good samples and every kind of bad one."""
    root = tmp_path_factory.mktemp("frames")
    small = {k: cv2.resize(motion_pair[k], (256, 256), interpolation=cv2.INTER_AREA) for k in ("onset", "apex")}
    cv2.imwrite(str(root / "onset.png"), small["onset"])
    cv2.imwrite(str(root / "apex.jpg"), small["apex"])
    cv2.imwrite(str(root / "small.png"), small["apex"][:200])
    cv2.imwrite(str(root / "blank.png"), np.full((256, 256, 3), 127, np.uint8))
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    rows = [
        ("s01/clip a", "onset.png", "apex.jpg", "happiness", "6+12"),
        ("still", "onset.png", "onset.png", "others", ""),
        ("missing", "onset.png", "nowhere.png", "fear", "1+2"),
        ("corrupt", "onset.png", "corrupt.png", "anger", "4"),
        ("sizes", "onset.png", "small.png", "sadness", "1+4+15"),
        ("noface", "blank.png", "blank.png", "surprise", "1+2+5"),
    ]
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "onset_path", "apex_path", "emotion", "aus"])
        writer.writerows(rows)
    return root


def read_manifest(path) -> list[MapRecord]:
    return [MapRecord.from_json(line) for line in path.read_text().splitlines()]


def test_maps_records_every_sample_and_goes_on(ray_local, dataset, tmp_path, capsys):
    out = tmp_path / "maps"
    code = main(["maps", "--manifest", str(dataset / "manifest.csv"), "--out", str(out), "--flow", "dis", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: summary[k] for k in ("samples", "ok", "failed")} == {"samples": 6, "ok": 2, "failed": 4}
    assert summary["pairs_per_s"] > 0 and summary["wall_s"] > 0
    records = read_manifest(out / "manifest.jsonl")
    assert [r.sample_id for r in records] == ["s01/clip a", "still", "missing", "corrupt", "sizes", "noface"]
    errors = {r.sample_id: r.error for r in records}
    assert "nowhere.png does not exist" in errors["missing"]
    assert "corrupt.png is not a readable image" in errors["corrupt"]
    assert "differ in size" in errors["sizes"]
    assert "no face found" in errors["noface"]
    good = records[0]
    assert good.ok and good.emotion == "happiness" and good.aus == [6, 12] and good.node_id
    assert good.map_path.endswith(map_file_name("s01/clip a")) and "/" not in map_file_name("s01/clip a")
    expected = Mapper(MapsConfig(flow="dis"))(cv2.cvtColor(cv2.imread(str(dataset / "onset.png")), cv2.COLOR_BGR2GRAY),
                                              cv2.cvtColor(cv2.imread(str(dataset / "apex.jpg")), cv2.COLOR_BGR2GRAY))
    assert np.array_equal(cv2.cvtColor(cv2.imread(good.map_path), cv2.COLOR_BGR2RGB), expected.rgb)
    assert good.head_motion == pytest.approx(expected.head_motion, abs=1e-4)
    still = records[1]
    assert still.ok and still.head_motion == [0.0, 0.0]
    assert not list(out.glob(".*.tmp")) and not (out / "manifest.partial.jsonl").exists()

    # A second run reuses every good map and retries only the failed ones.
    mtime = (out / map_file_name("s01/clip a")).stat().st_mtime_ns
    assert main(["maps", "--manifest", str(dataset / "manifest.csv"), "--out", str(out), "--flow", "dis",
                 "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["skipped"] == 2 and again["ok"] == 2
    assert (out / map_file_name("s01/clip a")).stat().st_mtime_ns == mtime

    # Changed settings recompute; --overwrite recomputes whatever changed.
    assert main(["maps", "--manifest", str(dataset / "manifest.csv"), "--out", str(out), "--flow", "dis",
                 "maps.colorizer_params={step: 45}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 0
    assert main(["maps", "--manifest", str(dataset / "manifest.csv"), "--out", str(out), "--flow", "dis",
                 "maps.colorizer_params={step: 45}", "--overwrite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 0


def test_maps_resumes_from_a_partial_manifest(ray_local, dataset, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["maps", "--manifest", str(dataset / "manifest.csv"), "--out", str(out), "--flow", "dis"]) == 0
    capsys.readouterr()
    # Simulate a run killed after writing its partial log: the final manifest is gone, the partial one remains.
    (out / "manifest.jsonl").rename(out / "manifest.partial.jsonl")
    assert main(["maps", "--manifest", str(dataset / "manifest.csv"), "--out", str(out), "--flow", "dis",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 2


def test_all_failed_exits_non_zero(ray_local, dataset, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"sample_id,onset_path,apex_path\nx,{dataset}/nowhere.png,{dataset}/nowhere.png\n")
    assert main(["maps", "--manifest", str(bad), "--out", str(tmp_path / "m")]) == 1
    assert "all 1 samples failed" in capsys.readouterr().err


def test_maps_input_errors_are_one_line(tmp_path, capsys):
    assert main(["maps", "--out", str(tmp_path)]) == 1
    assert "say what to map" in capsys.readouterr().err
    bad = tmp_path / "cols.csv"
    bad.write_text("id,onset,apex\n")
    assert main(["maps", "--manifest", str(bad), "--out", str(tmp_path)]) == 1
    assert "lacks column 'sample_id' (found: id, onset, apex)" in capsys.readouterr().err


def test_unicode_ids_and_label_fixes_on_reuse(ray_local, dataset, tmp_path, capsys):
    csv_path = tmp_path / "pairs.csv"
    header = "sample_id,onset_path,apex_path,subject,emotion,aus\n"
    rows = [f"快乐_1,{dataset}/onset.png,{dataset}/apex.jpg,s1,happiness,6+12",
            f"悲伤_1,{dataset}/onset.png,{dataset}/apex.jpg,s1,sadness,1+4"]
    csv_path.write_text(header + "\n".join(rows), encoding="utf-8")
    out = tmp_path / "maps"
    assert main(["maps", "--manifest", str(csv_path), "--out", str(out), "--flow", "dis", "--json"]) == 0
    records = read_manifest(out / "manifest.jsonl")
    assert [r.status for r in records] == ["ok", "ok"]
    assert len({r.map_path for r in records}) == 2 and "快乐" in records[0].map_path
    # The annotation is corrected: the maps are reused, the labels are the new ones.
    csv_path.write_text(header + "\n".join([rows[0].replace("s1,happiness,6+12", "s9,surprise,1+2"), rows[1]]),
                        encoding="utf-8")
    capsys.readouterr()
    assert main(["maps", "--manifest", str(csv_path), "--out", str(out), "--flow", "dis", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 2
    fixed = read_manifest(out / "manifest.jsonl")[0]
    assert (fixed.subject, fixed.emotion, fixed.aus) == ("s9", "surprise", [1, 2])
