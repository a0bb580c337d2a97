"""The training loop without Ray: data order, schedule, learning, exact resume, and `mellm train --local`."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import tensorboard_scalars, write_instructions
from safetensors.torch import load_file

from mellm_core.cli import main
from mellm_core.config import TrainConfig, load_recipe
from mellm_core.errors import ConfigError, InputError
from mellm_core.files.storage import Location
from mellm_core.model.training import read_rows, run_local
from mellm_core.model.trainloop import World, cosine, micro_batches, order
from mellm_core.summaries import InstructionsSummary, TrainSummary

FAST = ["train.lora_rank=4", "train.lora_alpha=8", "train.lora_dropout=0.1", "train.lr=2e-3", "train.batch_size=4",
        "train.num_workers=1", "train.log_every=1", "backbone.params={max_new_tokens: 4}"]


def recipe(tmp_path, *overrides):
    return load_recipe("quickstart", [f"output_dir={tmp_path}", *FAST, *overrides])


def test_order_is_a_seeded_permutation_per_epoch():
    first = order(10, 3, 0, 10)
    assert sorted(first) == list(range(10)) and sorted(order(10, 3, 10, 10)) == list(range(10))
    assert order(10, 3, 0, 25) == first + order(10, 3, 10, 15)  # positions, not calls, decide
    assert order(10, 4, 0, 10) != first


def test_workers_split_each_global_batch_of_one_worker():
    rows = [{"i": i} for i in range(13)]
    cfg = TrainConfig(batch_size=8, grad_accum=2, num_workers=2)
    for step in range(4):
        one = [r for chunk in micro_batches(rows, TrainConfig(batch_size=8), 5, step, World(0, 1)) for r in chunk]
        two = [r for rank in (0, 1) for chunk in micro_batches(rows, cfg, 5, step, World(rank, 2)) for r in chunk]
        assert one == two and len(one) == 8
        assert [len(c) for c in micro_batches(rows, cfg, 5, step, World(1, 2))] == [2, 2]


def test_a_curriculum_draws_its_tasks_rows_first_then_every_row():
    rows = [{"i": i, "task": "mer" if i % 3 == 0 else "meu"} for i in range(30)]
    cfg = TrainConfig(batch_size=4, num_workers=2, curriculum_tasks=["mer"], curriculum_steps=5)
    batches = [[r for rank in (0, 1) for c in micro_batches(rows, cfg, 1, step, World(rank, 2)) for r in c]
               for step in range(40)]
    assert all(r["task"] == "mer" for batch in batches[:5] for r in batch)
    assert {r["task"] for batch in batches[5:] for r in batch} == {"mer", "meu"}
    # after the curriculum, the stream is the plain one: the same batches as a run without it
    plain = TrainConfig(batch_size=4, num_workers=2)
    assert batches[5:] == [[r for rank in (0, 1) for c in micro_batches(rows, plain, 1, step, World(rank, 2))
                            for r in c] for step in range(5, 40)]
    with pytest.raises(InputError, match=r"curriculum_tasks \['mer'\] match no training rows \(their tasks: meu\)"):
        next(micro_batches([r for r in rows if r["task"] == "meu"], cfg, 1, 0, World()))
    with pytest.raises(ConfigError, match="train.curriculum_tasks: unknown task 'label'"):
        load_recipe("quickstart", ["train.curriculum_tasks=[label]", "train.curriculum_steps=3"])
    with pytest.raises(ConfigError, match="needs train.curriculum_tasks"):
        load_recipe("quickstart", ["train.curriculum_steps=3"])


def test_balance_draws_every_label_of_a_task_equally_often():
    labels = ["fear"] * 6 + ["anger"] * 2 + ["happiness"] * 3
    rows = [{"i": i, "task": "mer", "label": e} for i, e in enumerate(labels)]
    rows += [{"i": 20 + i, "task": "meu", "label": e} for i, e in enumerate(["fear"] * 4 + ["anger"])]
    cfg = TrainConfig(batch_size=6, num_workers=1, balance=True)
    drawn = [r for step in range(30) for c in micro_batches(rows, cfg, 2, step, World()) for r in c]
    # an epoch holds each task's labels as often as its most frequent one: mer 3 x 6, meu 2 x 4 = 26 rows
    epochs = [drawn[i:i + 26] for i in range(0, 156, 26)]
    for epoch in epochs:
        counts = {(t, e): sum(r["task"] == t and r["label"] == e for r in epoch)
                  for t, e in {(r["task"], r["label"]) for r in rows}}
        assert counts == {("mer", "fear"): 6, ("mer", "anger"): 6, ("mer", "happiness"): 6,
                          ("meu", "fear"): 4, ("meu", "anger"): 4}
        assert {r["i"] for r in epoch} == {r["i"] for r in rows}  # every row is still drawn
    plain = [r for step in range(30) for c in micro_batches(rows, TrainConfig(batch_size=6, num_workers=1), 2, step,
                                                               World()) for r in c]
    assert sum(r["label"] == "fear" for r in plain) > sum(r["label"] == "fear" for r in drawn)


def test_an_unknown_reporter_is_a_config_error():
    with pytest.raises(ConfigError, match=r"train.report_to: unknown reporter 'neptune' \(choose from: "
                                          r"tensorboard, mlflow, wandb\)"):
        load_recipe("quickstart", ["train.report_to=[neptune]"])
    assert load_recipe("quickstart", ["train.report_to=[]"]).train.report_to == []
    with pytest.raises(ConfigError, match=r"train.strategy: unknown strategy 'zero3' \(choose one of: ddp, fsdp\)"):
        load_recipe("quickstart", ["train.strategy=zero3"])


def test_cosine_schedule_warms_up_and_decays_to_zero():
    f = cosine(TrainConfig(warmup_steps=4, max_steps=14))
    assert [round(f(s), 3) for s in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert f(4) == 1.0 and f(9) == pytest.approx(0.5) and f(14) == pytest.approx(0.0)
    # a curriculum: each phase warms up and decays on its own
    staged = cosine(TrainConfig(warmup_steps=4, max_steps=34, curriculum_tasks=["mer"], curriculum_steps=14))
    assert [staged(s) for s in range(14)] == [f(s) for s in range(14)]
    assert [round(staged(s), 3) for s in range(14, 18)] == [0.2, 0.4, 0.6, 0.8]
    assert staged(18) == 1.0 and staged(26) == pytest.approx(0.5) and staged(34) == pytest.approx(0.0)


def test_decay_spares_norm_gains_and_biases_and_lr_scales_pick_parameters_by_name():
    """AdamW steps with zero gradients on the tiny model: only decay moves the weights. Matrices (projections,
    embeddings) shrink by lr x decay, the vision tower's at its scaled rate; norm gains and biases keep their
    values."""
    from mellm_core.model.trainloop import param_groups
    from mellm_core.plugins import get_registry

    cfg = TrainConfig(lora_rank=4, lora_alpha=8, lora_dropout=0.0, lr=0.1, weight_decay=1.0,
                      lr_scales={r"\.visual\.": 0.5})
    module = get_registry().create("backbone", "qwen2_5_vl", train_base=True).load("tiny-random", train=cfg)
    named = dict((n, p) for n, p in module.named_parameters() if p.requires_grad)
    before = {n: p.detach().clone() for n, p in named.items()}
    optimizer = torch.optim.AdamW(param_groups(list(named.items()), cfg), lr=cfg.lr)
    for p in named.values():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    gains = [n for n in named if named[n].ndim < 2]
    matrices = [n for n in named if named[n].ndim == 2 and before[n].abs().sum() > 0]
    assert any("norm" in n for n in gains) and any(n.endswith(".bias") for n in gains)
    assert any("lora_A" in n for n in matrices) and any("embed_tokens" in n for n in matrices)
    assert all(torch.equal(named[n], before[n]) for n in gains)
    vision = [n for n in matrices if ".visual." in n]
    assert vision and all(torch.allclose(named[n], 0.95 * before[n]) for n in vision)
    assert all(torch.allclose(named[n], 0.9 * before[n]) for n in matrices if n not in vision)
    with pytest.raises(ConfigError, match=r"'\(' is not a regular expression.*lr_scales.visual must be a positive"):
        load_recipe("quickstart", ["train.lr_scales={'(': 1.0, visual: 0}"])


def test_batch_size_must_split_evenly():
    with pytest.raises(ConfigError, match="batch_size=6 must be a multiple of .* = 4"):
        load_recipe("quickstart", ["train.batch_size=6", "train.num_workers=2", "train.grad_accum=2"])


def test_loss_falls_and_the_run_is_written(tmp_path):
    write_instructions(tmp_path, n=12)
    cfg = recipe(tmp_path, "train.max_steps=30", "train.checkpoint_every=10", "train.lr_scales={visual: 0.5}")
    summary = run_local(cfg, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 31))
    assert set(lines[0]) == {"step", "loss", "lr", "samples_per_s", "tokens_per_s"}
    # train.lr on its schedule at each step, not the vision tower's scaled rate
    assert [x["lr"] for x in lines] == [pytest.approx(cfg.train.lr * cosine(cfg.train)(s)) for s in range(30)]
    first, last = sum(x["loss"] for x in lines[:5]) / 5, sum(x["loss"] for x in lines[-5:]) / 5
    assert last < 0.85 * first, (first, last)
    assert summary is not None and not summary.skipped
    assert summary.start_step == 0 and summary.end_step == 30 and summary.final_loss == lines[-1]["loss"]
    written = TrainSummary.read(Location(tmp_path / "train" / "summary.json"), skipped=False)
    assert written == summary  # the file holds what the call returned
    assert (tmp_path / "train" / "adapter" / "adapter_config.json").is_file()
    kept = sorted(p.name for p in (tmp_path / "train" / "checkpoints" / "run").iterdir())
    assert kept == ["checkpoint_0000020", "checkpoint_0000030"]  # keep_checkpoints=2
    scalars = tensorboard_scalars(tmp_path / "train" / "tensorboard")  # train.report_to: [tensorboard], the default
    assert set(scalars) == {"train/loss", "train/lr", "train/samples_per_s", "train/tokens_per_s"}
    assert scalars["train/loss"] == [(x["step"], pytest.approx(x["loss"], rel=1e-6)) for x in lines]


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    """A run stopped at step 4 of 8 and resumed ends with the very weights of the uninterrupted run (dropout on)."""
    import shutil

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder in (a, b, c):
        write_instructions(folder, n=12)
    run_local(recipe(a, "train.max_steps=8", "train.checkpoint_every=4"), progress=False)
    for folder in (b, c):
        stopped = folder / "train" / "checkpoints" / "run"
        stopped.mkdir(parents=True)
        shutil.copytree(a / "train" / "checkpoints" / "run" / "checkpoint_0000004", stopped / "checkpoint_0000004")
    # resumed with parameters grouped otherwise: an error naming the setting, not torch's group mismatch
    with pytest.raises(InputError, match=r"checkpoint_0000004 was written with other optimizer groups.*lr_scales"):
        run_local(recipe(c, "train.max_steps=8", "train.checkpoint_every=4", "train.resume=true",
                         "train.lr_scales={visual: 0.5}"), progress=False)
    summary = run_local(recipe(b, "train.max_steps=8", "train.checkpoint_every=4", "train.resume=true"),
                        progress=False)
    assert summary is not None and summary.start_step == 4 and summary.end_step == 8
    steps = [json.loads(x)["step"] for x in (b / "train" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    wa = load_file(a / "train" / "adapter" / "adapter_model.safetensors")
    wb = load_file(b / "train" / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_cli_local_train_reports_and_skips_when_unchanged(tmp_path, capsys):
    write_instructions(tmp_path, n=6)
    args = ["train", "quickstart", f"output_dir={tmp_path}", *FAST, "train.max_steps=2", "--local", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) == {"start_step", "end_step", "adapter", "final_loss", "samples_per_s"}
    assert summary["end_step"] == 2 and summary["samples_per_s"] > 0
    assert main(args[:-1]) == 0
    assert "train unchanged" in capsys.readouterr().out
    assert main(["train", "quickstart", f"output_dir={tmp_path / 'none'}", "--local"]) == 1
    assert "instructions/train.jsonl does not exist" in capsys.readouterr().err


def test_a_gpu_worker_restores_a_checkpoint_through_the_cpu(tmp_path):
    """Resuming (train.resume, or Ray Train's restart after a worker failure) on a GPU worker: the state loads to
    the CPU, so the CPU generator's state stays a CPU ByteTensor and the optimizer moves its own tensors. Loading
    it to the worker's device instead fails here (no CUDA) as set_rng_state fails on a GPU."""
    from mellm_core import create
    from mellm_core.model.trainloop import STATE, restore_state

    write_instructions(tmp_path, n=8)
    run_local(recipe(tmp_path, "train.max_steps=2", "train.checkpoint_every=2"), progress=False)
    folder = tmp_path / "train" / "checkpoints" / "run" / "checkpoint_0000002"
    cfg = TrainConfig(lora_rank=4, lora_alpha=8, lora_dropout=0.1, lr=2e-3, max_steps=2)
    module = create("backbone", "qwen2_5_vl").load("tiny-random", train=cfg)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine(cfg))
    torch.manual_seed(123)
    step, history = restore_state(folder, module, optimizer, scheduler, World(device="cuda:0"))
    saved = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    assert step == 2 and [h["step"] for h in history] == [1, 2] and scheduler.last_epoch == 2
    assert torch.equal(torch.get_rng_state(), saved["rng"][0])
    assert all(t.device.type == "cpu" for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
    assert len(optimizer.state) == len(saved["optimizer"]["state"]) > 0


def test_torchrun_ranks_train_as_one_process_and_never_restore_a_stale_checkpoint(tmp_path):
    """Two ranks under torchrun (gloo) train the very weights of one process on the same global batch. A
    checkpoint left by an earlier run is cleared by rank 0 before any rank looks for one to restore: without that
    barrier the other rank could restore it and the ranks' collectives would hang."""
    import os
    import shutil
    import subprocess
    import sys

    from helpers import free_port

    one, two = tmp_path / "one", tmp_path / "two"
    settings = ["train.max_steps=4", "train.checkpoint_every=2", "train.lora_dropout=0.0", "train.num_workers=2"]
    for folder in (one, two):
        write_instructions(folder, n=12)
    run_local(recipe(one, *settings), progress=False)
    stale = two / "train" / "checkpoints" / "run" / "checkpoint_0000004"
    shutil.copytree(one / "train" / "checkpoints" / "run" / "checkpoint_0000004", stale)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={free_port()}",
               "-m", "mellm_core", "--", "train", "quickstart", "--local", f"output_dir={two}", *FAST, *settings]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((two / "train" / "summary.json").read_text())
    assert summary["start_step"] == 0 and summary["end_step"] == 4 and summary["workers"] == 2
    steps = [json.loads(x)["step"] for x in (two / "train" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    wa = load_file(one / "train" / "adapter" / "adapter_model.safetensors")
    wb = load_file(two / "train" / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


SHARDED_LOAD = """
import sys, torch, torch.distributed as dist
from torch.distributed.tensor import DTensor
from mellm_core.config import TrainConfig
from mellm_core.model.trainloop import World, distribute, sharded_load
from mellm_core.plugins import get_registry

dist.init_process_group("gloo")
world = World(rank=dist.get_rank(), size=2)
backbone, cfg = get_registry().create("backbone", "qwen2_5_vl"), TrainConfig(strategy="fsdp")
assert sharded_load(backbone, "fsdp", world)
torch.manual_seed(7)  # rank 0's LoRA initialisation; the other rank's draws must not matter
module = backbone.load(sys.argv[1], train=cfg, place="host" if world.rank == 0 else "meta")
on_meta = sum(p.is_meta for p in module.parameters())
model = distribute(module, "fsdp", world, from_rank0=True)
weights = {k: v.to_local() if isinstance(v, DTensor) else v for k, v in model.state_dict().items()}  # my shard
inner = model.base_model.model
tied = inner.lm_head.weight is inner.model.language_model.embed_tokens.weight
torch.save({"on_meta": on_meta, "weights": weights, "tied": tied,
            "buffers": {n: b.clone() for n, b in model.named_buffers()}}, f"{sys.argv[2]}/rank{world.rank}.pt")
dist.destroy_process_group()
"""


def test_fsdp_workers_load_sharded_from_rank_0(tmp_path):
    """Under FSDP only rank 0 reads the weights (into host memory); the other rank builds the bare structure on
    the meta device, which needs no weight file at all, and every rank ends with exactly one process's model:
    weights, LoRA initialisation, the rotary frequencies a state dict leaves out, and tied embeddings."""
    import os
    import shutil
    import subprocess
    import sys

    from helpers import free_port

    from mellm_core.plugins import get_registry

    backbone = get_registry().create("backbone", "qwen2_5_vl")
    folder = backbone.resolve("tiny-random")
    bare = tmp_path / "no-weights"
    shutil.copytree(folder, bare, ignore=shutil.ignore_patterns("*.safetensors"))
    structure = backbone.load(str(bare), train=TrainConfig(), place="meta")
    assert all(p.is_meta for p in structure.parameters())
    script = tmp_path / "load.py"
    script.write_text(SHARDED_LOAD)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                           f"--master-port={free_port()}", str(script), folder, str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["on_meta"] == 0 and ranks[1]["on_meta"] == sum(1 for _ in structure.parameters())
    torch.manual_seed(7)
    one = backbone.load(folder, train=TrainConfig(strategy="fsdp"))
    expected, buffers = one.state_dict(), dict(one.named_buffers())
    for rank in ranks:
        assert rank["tied"] and rank["weights"].keys() == expected.keys() and rank["buffers"].keys() == buffers.keys()
        assert all(torch.equal(rank["buffers"][k], buffers[k]) for k in buffers)
    halves = [ranks[0]["weights"], ranks[1]["weights"]]  # FSDP2 shards each weight's first dimension in two
    assert all(halves[0][k].shape[0] < expected[k].shape[0] for k in expected if expected[k].shape[0] > 1)
    assert all(torch.equal(torch.cat([halves[0][k], halves[1][k]]), expected[k]) for k in expected)


def test_starting_over_never_deletes_an_unfinished_runs_checkpoints_unasked(tmp_path, capsys):
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        write_instructions(folder, n=8)
    run_local(recipe(a, "train.max_steps=4", "train.checkpoint_every=2"), progress=False)
    stopped = b / "train" / "checkpoints" / "run"
    shutil.copytree(a / "train" / "checkpoints" / "run" / "checkpoint_0000002", stopped / "checkpoint_0000002")
    with pytest.raises(InputError, match=r"unfinished run \(step 2 of 4\): continue it with train.resume=true, or "
                                         r"start over and delete them with `mellm train \.\.\. --overwrite`"):
        run_local(recipe(b, "train.max_steps=4", "train.checkpoint_every=2"), progress=False)
    assert (stopped / "checkpoint_0000002").is_dir()  # nothing deleted
    assert main(["train", "quickstart", "--local", f"output_dir={b}", *FAST, "train.max_steps=4",
                 "train.checkpoint_every=2", "--overwrite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["end_step"] == 4
    assert sorted(p.name for p in stopped.iterdir()) == ["checkpoint_0000002", "checkpoint_0000004"]  # new ones
    # a finished run's checkpoints are no obstacle to the next fresh start
    run_local(recipe(b, "train.max_steps=4", "train.checkpoint_every=2", "train.lr=1e-3"), progress=False)


def test_validation_holds_out_whole_training_subjects():
    from mellm_core.model.validation import held_out, subject

    rows = [{"sample_id": f"s{i}", "dataset": "toy", "subject": f"sub{i % 5}", "task": "mer"} for i in range(20)]
    train, val = held_out(rows, 0.4, seed=3)
    assert len({subject(r) for r in val}) == 2 and not {subject(r) for r in val} & {subject(r) for r in train}
    assert len(train) + len(val) == 20 and held_out(rows, 0.4, seed=3) == (train, val)  # seeded
    assert held_out(rows, 0.0, seed=3) == (rows, [])
    with pytest.raises(InputError, match="holds out 5 of the 5 training subjects, leaving none to train on"):
        held_out(rows, 0.95, seed=3)
    with pytest.raises(ConfigError, match="train.keep=best_val needs validation: set train.val_fraction"):
        load_recipe("quickstart", ["train.keep=best_val"])
    with pytest.raises(ConfigError, match=r"train.val_fraction must be in \[0, 1\), got 1.0"):
        load_recipe("quickstart", ["train.val_fraction=1.0"])


def test_validation_is_logged_and_the_best_adapter_is_kept_across_a_resume(tmp_path):
    """Every eval_every steps the held-out subject's loss and accuracy join the metrics line (and TensorBoard);
    train.keep=best_val publishes the adapter of the best validation, even one between checkpoints, and a run
    resumed from a checkpoint keeps the very same one. The kept adapter, validated again, gives its figures."""
    import shutil

    from mellm_core import create
    from mellm_core.model.validation import held_out, validate

    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        write_instructions(folder, n=12)
    # a rate this high makes the answers swing (here the best validation came at step 2, between checkpoints)
    settings = ["train.max_steps=6", "train.checkpoint_every=3", "train.val_fraction=0.25", "train.eval_every=2",
                "train.keep=best_val", "train.log_every=3", "train.lr=2.0", "seed=1"]
    summary = run_local(recipe(a, *settings), progress=False)
    lines = [json.loads(x) for x in (a / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 3, 4, 6]
    validated = [x for x in lines if "val_loss" in x]
    assert [x["step"] for x in validated] == [2, 4, 6] and all(0 <= x["val_acc"] <= 1 for x in validated)
    assert summary is not None and len(summary.val_subjects) == 1
    best = max(validated, key=lambda x: (x["val_acc"], -x["val_loss"]))
    assert summary.kept == {k: best[k] for k in ("step", "val_loss", "val_acc")}
    last = load_file(a / "train" / "checkpoints" / "run" / "checkpoint_0000006" / "adapter"
                     / "adapter_model.safetensors")
    published = load_file(a / "train" / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(published[k], last[k]) for k in last) == (best["step"] == 6)
    scalars = tensorboard_scalars(a / "train" / "tensorboard")
    assert [step for step, _ in scalars["val/loss"]] == [2, 4, 6]

    _, val_rows = held_out(read_rows(Location(a / "instructions" / "train.jsonl")), 0.25, seed=1)
    assert [f"toy/{r['subject']}" for r in val_rows] == summary.val_subjects * 3
    r = recipe(a, *settings)
    backbone = create("backbone", r.backbone.name, **r.backbone.params)
    module = backbone.load(r.backbone.model, adapter=str(a / "train" / "adapter"))
    labels = InstructionsSummary.labels_of(Location(a / "instructions" / "summary.json"))
    again = validate(backbone, module, val_rows, labels, 4, "cpu")
    assert again == pytest.approx({k: best[k] for k in ("val_loss", "val_acc")}, rel=1e-4)

    stopped = b / "train" / "checkpoints" / "run"
    stopped.mkdir(parents=True)
    shutil.copytree(a / "train" / "checkpoints" / "run" / "checkpoint_0000003", stopped / "checkpoint_0000003")
    resumed = run_local(recipe(b, *settings, "train.resume=true"), progress=False)
    assert resumed is not None and resumed.start_step == 3 and resumed.kept == summary.kept
    wa = load_file(a / "train" / "adapter" / "adapter_model.safetensors")
    wb = load_file(b / "train" / "adapter" / "adapter_model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_metrics_reach_mlflow_and_wandb(tmp_path, monkeypatch):
    """train.report_to: [mlflow, wandb]: an MLflow run (a SQLite store beside the run) and an offline W&B run get
    every metrics line, under the same names as TensorBoard's, with the run's settings as parameters."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_instructions(tmp_path, n=8)
    run_local(recipe(tmp_path, "train.max_steps=3", "train.report_to=[mlflow, wandb]"), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'train' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("mellm").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["train.lr"] == "0.002"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(x["step"], pytest.approx(x["loss"])) for x in lines]
    assert not (tmp_path / "train" / "tensorboard").exists()  # not asked for
    assert wandb_history(tmp_path / "train" / "wandb", "train/loss") == [pytest.approx(x["loss"]) for x in lines]


def wandb_history(folder, key):
    """The values of ``key`` an offline W&B run logged, read back from its run file: a 7-byte header, then
    LevelDB-log records (checksum, length, type; 32 KiB blocks) each holding a protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2

    (path,) = folder.glob("offline-run-*/run-*.wandb")
    data, pos, block, part, values = path.read_bytes(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            part = b""
            if record.WhichOneof("record_type") == "history":
                values += [json.loads(item.value_json) for item in record.history.item
                           if (item.key or "/".join(item.nested_key)) == key]
    return values


def test_a_reporter_without_its_package_is_named_with_its_install_command(monkeypatch, tmp_path):
    """Said when training starts; the recipe itself stays valid for the commands that report nothing."""
    from mellm_core.model import watch

    monkeypatch.setitem(watch.PACKAGES, "wandb", ("mellm_no_such_module", "mellm[wandb]"))
    assert load_recipe("quickstart", ["train.report_to=[wandb]"]).train.report_to == ["wandb"]
    with pytest.raises(InputError, match=r"train.report_to: wandb needs its package: pip install 'mellm\[wandb\]'"):
        watch.MetricsSinks(["tensorboard", "wandb"], Location(tmp_path), resume=False)
    assert not (tmp_path / "tensorboard").exists()  # nothing opened
