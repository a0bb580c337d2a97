"""The train stage on a local Ray cluster: data-parallel workers, a killed worker, `mellm train` from frames."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time

import psutil
import pytest
import torch
from helpers import tensorboard_scalars, write_pairs
from safetensors.torch import load_file

from mellm_core.cli import main
from mellm_core.config import load_recipe
from mellm_core.model.training import run_local

SMALL = ["train.lora_rank=4", "train.lora_alpha=8", "train.lr=2e-3", "train.batch_size=4", "train.log_every=1",
         "train.cpus_per_worker=0.5", "instructions.mer_ratio=1.0", "backbone.params={max_new_tokens: 4}"]


@pytest.fixture(scope="module")
def frames_run(ray_local, motion_pair, tmp_path_factory):
    """A recipe over 8 clips of real frames, with maps and instructions built by `mellm instructions`."""
    root = tmp_path_factory.mktemp("train")
    args = [f"output_dir={root / 'run'}", "data.dataset=manifest", f"data.root={write_pairs(root, motion_pair)}",
            "maps.landmarker=none", "maps.flow=dis", *SMALL]
    assert main(["instructions", "quickstart", *args]) == 0
    return root, args


def _copy(frames_run, name):
    root, args = frames_run
    target = root / name
    shutil.copytree(root / "run", target)
    return [a if not a.startswith("output_dir=") else f"output_dir={target}" for a in args], target


def test_two_ray_workers_reach_the_weights_of_one_process(frames_run, capsys):
    args, ray_dir = _copy(frames_run, "two")
    local_args, local_dir = _copy(frames_run, "one")
    steps = ["train.max_steps=3", "train.lora_dropout=0.0"]
    assert main(["train", "quickstart", *args, *steps, "train.num_workers=2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["start_step"] == 0 and summary["end_step"] == 3
    # every metrics line (log_every=1; steps 1 and 2 report to Ray Train without a checkpoint) reached the driver
    # from Ray Train's reports, and the driver wrote it for TensorBoard
    lines = [json.loads(x) for x in (ray_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    scalars = tensorboard_scalars(ray_dir / "train" / "tensorboard")
    assert [step for step, _ in scalars["train/loss"]] == [1, 2, 3] == [x["step"] for x in lines]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([x["loss"] for x in lines], rel=1e-6)
    run_local(load_recipe("quickstart", [*local_args, *steps, "train.num_workers=1"]), progress=False)
    two = load_file(ray_dir / "train" / "adapter" / "adapter_model.safetensors")
    one = load_file(local_dir / "train" / "adapter" / "adapter_model.safetensors")
    assert two.keys() == one.keys()
    # AdamW moves a weight whose gradient is float noise by about lr whichever its sign, so compare the trained
    # lora_B (zero at the start: its norm is the update) relatively, and every weight within 2 lr per step.
    trained = [k for k in one if "lora_B" in k]
    assert trained and all(float(one[k].norm()) > 0 for k in trained)
    assert all(float((two[k] - one[k]).norm()) <= 0.05 * float(one[k].norm()) for k in trained)
    assert all(torch.allclose(two[k], one[k], atol=3 * 2 * 2e-3) for k in one)


def test_fsdp_workers_train_as_one_process_and_resume_exactly(frames_run, capsys):
    """train.strategy=fsdp: two Ray Train workers (gloo) each hold half of every weight and train the loss curve and
    weights of one process, as DDP's workers do (test above), up to their own dropout masks. The checkpoint holds
    the trainable weights and optimizer state whole and each rank's random state: resumed from it under torchrun,
    the run ends with the very weights it ended with, dropout included."""
    import os
    import subprocess
    import sys

    from helpers import free_port

    args, ray_dir = _copy(frames_run, "fsdp")
    local_args, local_dir = _copy(frames_run, "fsdp-one")
    resumed_args, resumed_dir = _copy(frames_run, "fsdp-resumed")
    steps = ["train.max_steps=4", "train.checkpoint_every=2", "train.lora_dropout=0.1"]
    assert main(["train", "quickstart", *args, *steps, "train.num_workers=2", "train.strategy=fsdp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["end_step"] == 4
    run_local(load_recipe("quickstart", [*local_args, *steps, "train.num_workers=1"]), progress=False)
    curves = [[json.loads(x)["loss"] for x in (d / "train" / "metrics.jsonl").read_text().splitlines()]
              for d in (ray_dir, local_dir)]
    assert curves[0] == pytest.approx(curves[1], rel=1e-3)  # dropout masks differ: each rank draws its own
    sharded = load_file(ray_dir / "train" / "adapter" / "adapter_model.safetensors")
    one = load_file(local_dir / "train" / "adapter" / "adapter_model.safetensors")
    assert sharded.keys() == one.keys() and all(torch.allclose(sharded[k], one[k], atol=3 * 2 * 2e-3) for k in one)

    def resume_sharded(source, args, folder):
        stopped = folder / "train" / "checkpoints" / "run"
        shutil.rmtree(stopped, ignore_errors=True)
        shutil.copytree(source / "train" / "checkpoints" / "run" / "checkpoint_0000002", stopped / "checkpoint_0000002")
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                   f"--master-port={free_port()}", "-m", "mellm_core", "--", "train", "quickstart", "--local", *args,
                   *steps, "train.num_workers=2", "train.strategy=fsdp", "train.resume=true", "--overwrite"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads((folder / "train" / "summary.json").read_text())
        assert summary["start_step"] == 2 and summary["end_step"] == 4 and summary["workers"] == 2
        return load_file(folder / "train" / "adapter" / "adapter_model.safetensors")

    resumed = resume_sharded(ray_dir, resumed_args, resumed_dir)
    assert all(torch.allclose(resumed[k], sharded[k], atol=1e-6) for k in sharded)
    # a checkpoint of one process (its optimizer state keyed by number), in the format of checkpoints written
    # before they held each rank's random state, resumes sharded too
    state_file = local_dir / "train" / "checkpoints" / "run" / "checkpoint_0000002" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)
    assert isinstance(next(iter(state["optimizer"]["state"])), int)
    torch.save({**state, "rng": state["rng"][0]}, state_file)
    from_one = resume_sharded(local_dir, resumed_args, resumed_dir)
    assert all(torch.allclose(from_one[k], one[k], atol=3 * 2 * 2e-3) for k in one)


def _kill_a_worker_after_first_checkpoint(storage, killed: list[int], deadline: float) -> None:
    while time.time() < deadline and not killed:
        if any(storage.glob("run/checkpoint_0000004")):
            time.sleep(3)  # Ray Train's controller registers reported checkpoints when it polls (every 2 s)
            for proc in psutil.process_iter(["pid", "cmdline"]):
                if "RayTrainWorker" in " ".join(proc.info["cmdline"] or []):
                    proc.send_signal(signal.SIGKILL)
                    killed.append(proc.info["pid"])
                    return
        time.sleep(0.02)


def test_a_killed_worker_is_restarted_from_its_checkpoint(frames_run, capsys):
    args, run = _copy(frames_run, "killed")
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_worker_after_first_checkpoint,
                              args=(run / "train" / "checkpoints", killed, time.time() + 240), daemon=True)
    killer.start()
    assert main(["train", "quickstart", *args, "train.max_steps=60", "train.checkpoint_every=2",
                 "train.num_workers=2", "train.max_failures=1", "--json"]) == 0
    killer.join(timeout=1)
    assert killed, "no training worker was found to kill"
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["end_step"] == 60 and summary["start_step"] >= 2  # the last attempt began at a checkpoint
    steps = [json.loads(x)["step"] for x in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 61))
