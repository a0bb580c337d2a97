"""`mellm demo`: every stage into one folder, headline metrics beside chance, and a second run that redoes nothing."""

from __future__ import annotations

import json

from conftest import write_pairs

from mellm_core.cli import main


def test_demo_runs_every_stage_then_reuses_them(ray_local, motion_pair, tmp_path, capsys):
    out, pairs = tmp_path / "demo", write_pairs(tmp_path, motion_pair)
    args = ["demo", "--out", str(out), "--json", "data.dataset=manifest", f"data.root={pairs}",
            "maps.landmarker=none", "maps.flow=dis", "train.max_steps=2", "train.batch_size=2",
            "train.cpus_per_worker=0.5", "backbone.params={max_new_tokens: 4}", "eval.cpus_per_actor=0.5",
            "instructions.test_tasks=[mer]"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for folder in ("maps/manifest.jsonl", "instructions/train.jsonl", "train/adapter/adapter_config.json",
                   "train/metrics.jsonl", "eval/predictions.jsonl", "eval/metrics.json", "eval/report.html"):
        assert (out / folder).is_file(), folder
    mer = first["tasks"]["mer"]
    assert set(mer) >= {"acc", "uf1", "uar", "chance_acc", "chance_uar", "majority_acc"}
    assert mer["chance_acc"] == 1 / 2 and first["test_samples"] == 2  # held-out subject s3: c3 and c7, two classes
    assert first["report"].endswith("report.html")
    assert main(args) == 0  # the second run finds every stage up to date
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["tasks"] == first["tasks"]
    assert not any(first["reused"].values()) and all(second["reused"].values()), second["reused"]
