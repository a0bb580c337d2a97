"""`mellm demo`: every stage into one folder, headline metrics beside chance, and a second run that redoes nothing."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import requests
from helpers import free_port, write_pairs

from mellm_core.cli import build_parser, main


def _served_answer(serve: str, onset: str, apex: str) -> dict:
    """Run the printed serve command (plus a free port) until it is ready, POST the pair to /v1/analyze, stop it."""
    from serving import START_TIMEOUT_S, _first_line, stop_serve

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "mellm_core", *shlex.split(serve)[1:], f"serve.port={free_port()}",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        ready = _first_line(proc, START_TIMEOUT_S)
        assert ready, f"`{serve}` printed no ready line (exit {proc.poll()})"
        with open(onset, "rb") as first, open(apex, "rb") as second:
            answer = requests.post(json.loads(ready)["url"] + "v1/analyze", timeout=120,
                                   files={"onset": ("onset.png", first.read()), "apex": ("apex.png", second.read())})
        assert answer.status_code == 200, answer.text
        return answer.json()
    finally:
        stop_serve(proc)


def test_demo_runs_every_stage_prints_working_commands_then_reuses_them(ray_local, motion_pair, tmp_path, capsys):
    """Every stage's files, headline metrics with the verdict; the analyze command the demo prints runs as printed
    on a held-out pair with the demo's adapter, and the serve command, run as printed, serves that adapter over
    HTTP; a second run redoes nothing."""
    from mellm_core.cli.common import load_recipe_args
    from mellm_core.stages.serve import build_app

    out, pairs = tmp_path / "demo", write_pairs(tmp_path, motion_pair)
    args = ["demo", "--out", str(out), "data.dataset=manifest", f"data.root={pairs}",
            "maps.landmarker=none", "maps.flow=dis", "train.max_steps=2", "train.batch_size=2",
            "train.cpus_per_worker=0.5", "backbone.params={max_new_tokens: 4}", "eval.cpus_per_actor=0.5"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    for folder in ("maps/manifest.jsonl", "instructions/train.jsonl", "train/adapter/adapter_config.json",
                   "train/metrics.jsonl", "eval/predictions.jsonl", "eval/metrics.json", "eval/report.html"):
        assert (out / folder).is_file(), folder
    assert any(": the emotion beats always" in line or ": the emotion does NOT beat" in line for line in lines)
    report = (out / "eval" / "report.html").read_text()
    heads = [json.loads(x)["head_motion"] for x in (out / "maps" / "manifest.jsonl").read_text().splitlines()]
    assert any(f"head motion removed: ({x:+.2f}, {y:+.2f}) px" in report for x, y in heads)  # the gallery shows it
    analyze = next(lines[i + 1].strip() for i, line in enumerate(lines) if line.startswith("analyze a held-out"))
    serve = next(lines[i + 1].strip() for i, line in enumerate(lines) if line.startswith("serve it over HTTP"))
    assert main([*shlex.split(analyze)[1:], "--map", str(tmp_path / "map.png"), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["adapter"] == str(out / "train" / "adapter") and answer["note"] is None
    assert (tmp_path / "map.png").is_file()
    recipe = load_recipe_args(build_parser().parse_args(shlex.split(serve)[1:]))
    assert recipe.output_dir == str(out) and build_app(recipe, None) is not None
    onset, apex = shlex.split(analyze)[2:4]
    served = _served_answer(serve, onset, apex)  # the serve command, run as printed (its own free port)
    assert isinstance(served["analysis"], str) and "note" not in served  # no note: the trained adapter answers

    assert main([*args, "--json"]) == 0  # the second run finds every stage up to date
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    mer, meu = second["tasks"]["mer"], second["tasks"]["meu"]
    assert set(mer) >= {"acc", "uf1", "uar", "chance_acc", "chance_uar", "majority_acc", "p_value", "beats_majority",
                        "collapsed_to"}
    assert 0 <= mer["p_value"] <= 1 and meu["au_f1_chance"] is not None  # MEU is scored against the AU baseline
    assert mer["chance_acc"] == 1 / 2 and second["test_samples"] == 2  # held-out subject s3: c3 and c7, two classes
    assert second["report"].endswith("report.html") and second["commands"]["analyze"] == analyze
    assert all(second["reused"].values()), second["reused"]
