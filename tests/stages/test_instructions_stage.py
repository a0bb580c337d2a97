"""`mellm instructions`: protocol filtering, splits without leakage, MEU/MER mixing, determinism, skipping."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict

import pytest

from mellm_core.cli import main
from mellm_core.config import load_recipe
from mellm_core.errors import InputError
from mellm_core.motion.regions import RegionMotion
from mellm_core.records import MapRecord
from mellm_core.stages.instructions import run_instructions

EMOTIONS = ["happiness", "sadness", "fear", "surprise", "disgust", "contempt", "anger", "others"]


def _record(i: int, subject: int, emotion: str, ok: bool = True) -> MapRecord:
    smile = RegionMotion([-0.8, -1.1], 1.36, 1.6, "up-left", "blue", "strong", True)
    still = RegionMotion([0.0, 0.01], 0.01, 0.02, "down", "yellow-green", "weak", False)
    regions = {"right mouth corner": asdict(smile), "chin": asdict(still)}
    return MapRecord(
        sample_id=f"s{subject:02d}_{i:03d}", status="ok" if ok else "failed", dataset="synthme",
        subject=f"sub{subject:02d}", emotion=emotion, aus=[6, 12] if emotion == "happiness" else [4],
        map_path=f"/maps/s{subject:02d}_{i:03d}.png" if ok else None, regions=regions if ok else None,
        error=None if ok else "no face found",
    )


@pytest.fixture()
def recipe_dir(tmp_path):
    records = [_record(i, 1 + i % 8, EMOTIONS[(i // 8) % 8], ok=i % 17 != 5) for i in range(96)]
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "manifest.jsonl").write_text("".join(r.to_json() + "\n" for r in records))
    return tmp_path


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_instructions_follow_protocol_split_and_format(recipe_dir):
    recipe = load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.protocol=casme2-5"])
    summary = run_instructions(recipe)
    train, test = _rows(recipe_dir / "instructions" / "train.jsonl"), _rows(recipe_dir / "instructions" / "test.jsonl")
    assert set(summary.excluded) == {"contempt", "anger", "others"} and summary.failed_maps == 6
    assert summary.labels == ["happiness", "sadness", "fear", "surprise", "disgust"]
    row = train[0]
    assert set(row) == {"messages", "images", "task", "label", "aus", "sample_id", "dataset", "subject"}
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert row["messages"][0]["content"].startswith("<image>") and row["images"][0].endswith(".png")
    assert {r["label"] for r in train + test} <= set(summary.labels)
    train_subjects, test_subjects = {r["subject"] for r in train}, {r["subject"] for r in test}
    assert not train_subjects & test_subjects and test_subjects == {"sub04", "sub08"}  # every 4th of 8 subjects
    assert {r["task"] for r in test} == {"meu"}
    meu = [r for r in train if r["task"] == "meu"]
    mer = [r for r in train if r["task"] == "mer"]
    assert len(meu) == len(mer)  # mer_ratio 1: every training sample in both tasks
    assert all(r["messages"][1]["content"] == r["label"] for r in mer)
    happy = next(r for r in meu if r["label"] == "happiness")["messages"][1]["content"]
    assert "Right mouth corner: blue patch, moving up-left, strong intensity; supports AU12" in happy
    assert happy.endswith("AUs: AU6 + AU12. Micro-expression: happiness.") and "Chin" not in happy


def test_instructions_are_deterministic_and_skip_when_unchanged(recipe_dir, tmp_path):
    recipe = load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.mer_ratio=0.5", "seed=3"])
    first = run_instructions(recipe)
    data = (recipe_dir / "instructions" / "train.jsonl").read_bytes()
    mtime = (recipe_dir / "instructions" / "train.jsonl").stat().st_mtime_ns
    again = run_instructions(recipe)
    assert again.skipped and not first.skipped
    assert again == dataclasses.replace(first, skipped=True)  # the summary read back from its file is the one written
    assert (recipe_dir / "instructions" / "train.jsonl").stat().st_mtime_ns == mtime
    elsewhere = run_instructions(recipe, out_dir=tmp_path / "copy")
    assert (tmp_path / "copy" / "train.jsonl").read_bytes() == data and not elsewhere.skipped
    tasks = first.train.tasks
    assert tasks["mer"] == round(0.5 * tasks["meu"])
    changed = run_instructions(load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.prompt=fgmu-zh"]))
    assert not changed.skipped
    assert "最终结论" in (recipe_dir / "instructions" / "test.jsonl").read_text()


def test_loso_and_fixed_splits(recipe_dir, tmp_path):
    loso = load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.split.kind=loso",
                                      "instructions.split.fold=synthme/sub03"])
    summary = run_instructions(loso)
    assert summary.test_subjects == ["synthme/sub03"] and "synthme/sub03" not in summary.train_subjects
    (tmp_path / "train.txt").write_text("s01_000\ns02_001\n# a comment\n")
    (tmp_path / "test.txt").write_text("s03_002\n")
    lists = f"instructions.split.lists={{train: {tmp_path}/train.txt, test: {tmp_path}/test.txt}}"
    fixed = load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.split.kind=fixed", lists])
    summary = run_instructions(fixed)
    assert summary.train.samples == 2 and summary.test.samples == 1
    (tmp_path / "test.txt").write_text("s03_002\ns06_005\n")  # s06_005's map failed: it drops out
    assert run_instructions(fixed).test.samples == 1
    (tmp_path / "test.txt").write_text("nobody\n")
    with pytest.raises(InputError, match="names sample 'nobody'"):
        run_instructions(fixed)
    pattern = [f"output_dir={recipe_dir}", "instructions.split.kind=fixed", "instructions.split.lists.train=s01_*"]
    run_instructions(load_recipe("quickstart", [*pattern, "instructions.split.lists.test=s03_*"]))  # DFME-style
    rows = {part: [json.loads(x) for x in (recipe_dir / "instructions" / f"{part}.jsonl").read_text().splitlines()]
            for part in ("train", "test")}
    assert rows["train"] and all(r["sample_id"].startswith("s01_") for r in rows["train"])
    assert rows["test"] and all(r["sample_id"].startswith("s03_") for r in rows["test"])
    with pytest.raises(InputError, match=r"pattern 's09_\*' matches no sample id"):
        run_instructions(load_recipe("quickstart", [*pattern, "instructions.split.lists.test=s09_*"]))
    empty = load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.split.test_subjects=[sub01]",
                                       "instructions.protocol=casme2-5", "instructions.split.kind=zero-shot",
                                       "instructions.split.train_datasets=[synthme]"])
    with pytest.raises(InputError, match="test dataset|test set empty"):
        run_instructions(empty)
    bad = load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.split.kind=loso",
                                     "instructions.split.fold=sub99"])
    with pytest.raises(InputError, match="fold 'sub99' is not a subject"):
        run_instructions(bad)


def test_instructions_cli_makes_missing_maps_first(ray_local, motion_pair, tmp_path, capsys):
    """From a manifest of real frames to instruction data in one command; the second run redoes nothing."""
    import cv2

    frames = tmp_path / "frames"
    frames.mkdir()
    small = {k: cv2.resize(motion_pair[k], (160, 160), interpolation=cv2.INTER_AREA) for k in ("onset", "apex")}
    for name, image in small.items():
        cv2.imwrite(str(frames / f"{name}.png"), image)
    rows = [f"c{i},frames/onset.png,frames/apex.png,s{i % 4},{EMOTIONS[i % 3]},6+12" for i in range(8)]
    (tmp_path / "pairs.csv").write_text("sample_id,onset_path,apex_path,subject,emotion,aus\n" + "\n".join(rows))
    args = ["instructions", "quickstart", f"output_dir={tmp_path / 'run'}", "data.dataset=manifest",
            f"data.root={tmp_path / 'pairs.csv'}", "maps.landmarker=none", "maps.flow=dis", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["test"]["samples"] == 2 and summary["train"]["samples"] == 6 and not summary["skipped"]
    assert len(list((tmp_path / "run" / "maps").glob("*.png"))) == 8
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"]
    assert main([*args[:-1], "maps.colorizer_params={step: 45}", "--json"]) == 0  # new maps, new instructions
    assert not json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"]
    assert main([*args[:-1], "instructions.split.kind=random"]) == 2
    assert "unknown split 'random'" in capsys.readouterr().err


def test_train_tasks_choose_what_the_training_set_holds(recipe_dir):
    recipe = load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.train_tasks=[mer]",
                                        "instructions.test_tasks=[mer, meu]"])
    summary = run_instructions(recipe)
    assert summary.train.tasks == {"mer": summary.train.samples}
    assert summary.test.tasks == {"mer": summary.test.samples, "meu": summary.test.samples}
    with pytest.raises(Exception, match="instructions.train_tasks must be a non-empty list of: meu, mer"):
        load_recipe("quickstart", ["instructions.train_tasks=[]"])


def test_a_rewrite_killed_half_way_never_leaves_the_old_summary_vouching_for_new_files(recipe_dir, monkeypatch):
    """summary.json goes first and comes back last: a run killed between the two files is rebuilt next time,
    never taken for finished (and training never starts on a train.jsonl of one run and a test.jsonl of another)."""
    from mellm_core.files.storage import Location

    run_instructions(load_recipe("quickstart", [f"output_dir={recipe_dir}"]))
    summary = recipe_dir / "instructions" / "summary.json"
    assert summary.is_file()
    write = Location.write_text

    def killed_at_test(self, text, encoding="utf-8"):
        if self.name == "test.jsonl":
            raise KeyboardInterrupt  # the run is stopped here
        write(self, text, encoding)

    monkeypatch.setattr(Location, "write_text", killed_at_test)
    changed = load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.prompt=fgmu-zh"])
    with pytest.raises(KeyboardInterrupt):
        run_instructions(changed)
    assert not summary.exists()
    monkeypatch.setattr(Location, "write_text", write)
    assert not run_instructions(changed).skipped and summary.is_file()


def test_llamafactory_reads_the_instructions_from_a_run_folder_that_moved(recipe_dir):
    manifest = recipe_dir / "maps" / "manifest.jsonl"
    records = [MapRecord.from_json(x) for x in manifest.read_text().splitlines()]
    records = [dataclasses.replace(r, map_path=str(recipe_dir / "maps" / f"{r.sample_id}.png") if r.map_path else None)
               for r in records]
    manifest.write_text("".join(r.to_json() + "\n" for r in records))
    for r in records:
        if r.map_path:
            (recipe_dir / "maps" / f"{r.sample_id}.png").write_bytes(b"png")
    run_instructions(load_recipe("quickstart", [f"output_dir={recipe_dir}"]))
    moved = recipe_dir.with_name(recipe_dir.name + "-moved")
    recipe_dir.rename(moved)
    folder = moved / "instructions"
    info = json.loads((folder / "dataset_info.json").read_text())
    assert set(info) == {"mellm_train", "mellm_test"}
    for part in ("train", "test"):
        entry = info[f"mellm_{part}"]
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "images": "images"}
        rows, ours = _rows(folder / entry["file_name"]), _rows(folder / f"{part}.jsonl")
        assert [r["messages"] for r in rows] == [r["messages"] for r in ours] and rows
        for row in rows:  # LLaMA-Factory joins a relative image to media_dir, by default the dataset_dir
            assert row["messages"][0]["content"].count("<image>") == len(row["images"]) == 1
            assert not row["images"][0].startswith("/") and (folder / row["images"][0]).is_file()


def test_the_hf_format_is_a_datasets_folder_trl_reads(recipe_dir):
    """instructions.format=hf: a DatasetDict (train, test) with the maps embedded and typed message parts; after
    the run folder moves it still loads, and the model's chat template renders its messages as the JSON lines'."""
    import cv2
    import numpy as np
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from mellm_core import create

    manifest = recipe_dir / "maps" / "manifest.jsonl"
    records = [MapRecord.from_json(x) for x in manifest.read_text().splitlines()]
    records = [dataclasses.replace(r, map_path=str(recipe_dir / "maps" / f"{r.sample_id}.png") if r.map_path else None)
               for r in records]
    manifest.write_text("".join(r.to_json() + "\n" for r in records))
    for i, r in enumerate(records):
        if r.map_path:
            cv2.imwrite(r.map_path, np.full((8, 8, 3), i % 256, np.uint8))
    run_instructions(load_recipe("quickstart", [f"output_dir={recipe_dir}", "instructions.format=hf"]))
    moved = recipe_dir.with_name(recipe_dir.name + "-moved")
    recipe_dir.rename(moved)
    parts = load_from_disk(str(moved / "instructions" / "hf"))
    tokenizer = AutoTokenizer.from_pretrained(create("backbone", "qwen2_5_vl").resolve("tiny-random"))
    for name in ("train", "test"):
        ours = _rows(moved / "instructions" / f"{name}.jsonl")
        assert len(parts[name]) == len(ours) > 0
        for row, line in zip(parts[name], ours, strict=True):
            assert row["sample_id"] == line["sample_id"] and row["label"] == line["label"]
            image = np.asarray(row["images"][0])
            wanted = cv2.imread(str(moved / "maps" / line["images"][0].rsplit("/", 1)[-1]))
            assert np.array_equal(image, wanted[:, :, ::-1])  # the map itself, embedded
            assert [p["type"] for p in row["messages"][0]["content"]] == ["image", "text"]
            plain = [{**m, "content": m["content"].replace("<image>", "<|vision_start|><|image_pad|><|vision_end|>")}
                     for m in line["messages"]]
            assert tokenizer.apply_chat_template(row["messages"], tokenize=False) == \
                tokenizer.apply_chat_template(plain, tokenize=False)
