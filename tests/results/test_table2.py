"""recipes/mellm_paper.yaml end to end on stand-ins of the three releases: train on DFME's training list, one
`mellm eval` scoring four test sets under their own protocols, and Table II from `mellm report --compare`."""

from __future__ import annotations

import json

import pytest
from standins import build_table2_releases

from mellm_core.cli import main

# the recipe's own maps (dlib landmarks, TV-L1 flow, head motion at the nose), on frames of real faces; a tiny model
SMALL = ["backbone.model=tiny-random", "backbone.params={max_new_tokens: 6}", "train.use_gpu=false",
         "train.num_workers=1", "train.grad_accum=1",
         "train.batch_size=2", "train.max_steps=2", "train.lora_rank=4", "train.lora_alpha=8",
         "train.cpus_per_worker=0.5", "eval.gpus_per_actor=0", "serve.model_gpus=0"]


def test_the_paper_recipe_trains_on_dfme_and_scores_table_2(ray_local, tmp_path, capsys):
    root = build_table2_releases(tmp_path / "data")
    run = tmp_path / "runs" / "mellm_paper"
    args = ["mellm_paper", f"data.root={root}", f"output_dir={run}", *SMALL]
    assert main(["train", *args]) == 0
    maps = [json.loads(x) for x in (run / "maps" / "manifest.jsonl").read_text().splitlines()]
    assert maps and all(m["status"] == "ok" and m["landmarks"] for m in maps)  # dlib found every face
    train_ids = {json.loads(x)["sample_id"] for x in (run / "instructions" / "train.jsonl").read_text().splitlines()}
    assert train_ids == {"dfme/train/10001", "dfme/train/10002", "dfme/train/10003"}  # DFME's training list only
    capsys.readouterr()

    assert main(["eval", *args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sets = out["sets"]
    assert list(sets) == ["CASME II", "CAS(ME)^3", "DFME TestA", "DFME TestB"]
    assert [(s["protocol"], s["samples"]) for s in sets.values()] == [
        ("casme2-5", 3), ("casme3-6", 3), ("dfme-7", 1), ("dfme-7", 2)]  # CASME II's repression and others drop
    preds = [json.loads(x) for x in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    casme2 = [p for p in preds if p["dataset"] == "casme2"]
    acc = sum(p["emotion"] == p["label"] for p in casme2) / len(casme2)  # answers outside the 5 classes count wrong
    assert sets["CASME II"]["tasks"]["meu"]["acc"] == pytest.approx(acc)
    test_b = [p for p in preds if p["sample_id"].startswith("dfme/TestB/")]
    assert sets["DFME TestB"]["tasks"]["meu"]["n"] == len(test_b) == 2

    assert main(["report", "--compare", str(run)]) == 0
    table = capsys.readouterr().out
    head = table.splitlines()[0]
    assert "MEU CASME II ACC" in head and head.index("CAS(ME)^3") < head.index("DFME TestA") < head.index("TestB")
    assert "| mellm_paper | tiny-random (qwen2_5_vl) |" in table
    paper = next(line for line in table.splitlines() if line.startswith("| paper (Table II): MELLM |"))
    assert "0.643" in paper and "0.371" in paper  # CASME II ACC 0.6434, DFME TestB ACC 0.3712


def test_eval_sets_are_checked_and_an_empty_set_is_named():
    from mellm_core.config import EvalSet, load_recipe
    from mellm_core.errors import ConfigError, InputError
    from mellm_core.results.evaluation import set_metrics

    with pytest.raises(ConfigError, match=r"eval.sets\[1\] needs a name and a protocol .*got nam.*"
                                          r"eval.sets: the name 'A' is given twice"):
        load_recipe("quickstart", ["eval.sets=[{name: A, protocol: all}, {nam: B}, {name: A, protocol: all}]"])
    rows = [{"sample_id": "casme2/sub01/a", "task": "meu", "label": "happiness", "emotion": "happiness",
             "dataset": "casme2"}]
    with pytest.raises(InputError, match=r"eval.sets 'SAMM' holds no test sample .*test instructions' datasets: "
                                         r"casme2"):
        set_metrics([EvalSet("SAMM", "all", ["samm"])], rows, None)
