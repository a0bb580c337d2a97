"""Every stage on a local multi-node Ray cluster (``ray.cluster_utils.Cluster``: three raylets on this machine)."""

from __future__ import annotations

import json

import pytest
from helpers import write_pairs

from mellm_core.cli import main

pytestmark = pytest.mark.multinode  # deselect with: python -m pytest -m "not multinode"


@pytest.fixture(scope="module")
def multinode_cluster():
    """Three nodes of one CPU each; the session's local Ray instance is restored afterwards."""
    import ray
    from ray.cluster_utils import Cluster

    from mellm_core.stages.cluster import init_ray

    was_up = ray.is_initialized()
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    if was_up:
        init_ray(num_cpus=2)


def test_multinode_pipeline_writes_every_stage_into_a_bucket(multinode_cluster, s3, motion_pair, tmp_path, capsys,
                                                             monkeypatch):
    """``output_dir`` as an S3 URI on three nodes: maps made by actors on several nodes, two DDP workers on two
    nodes; maps, instructions, checkpoints (Ray Train's storage), the adapter and the evaluation all land in the
    bucket, and nothing is written locally."""
    import ray

    from mellm_core.files.storage import Location
    from mellm_core.summaries import TrainSummary

    monkeypatch.chdir(tmp_path)
    run = Location(s3) / "run"
    pairs = write_pairs(tmp_path / "input", motion_pair, n=12)
    recipe = ["quickstart", f"output_dir={run}", "data.dataset=manifest", f"data.root={pairs}",
              "maps.landmarker=none", "maps.flow=dis", "maps.batch_size=1", "--address", multinode_cluster.address]
    train = ["train.num_workers=2", "train.cpus_per_worker=1", "train.max_steps=2", "train.batch_size=2",
             "train.lora_rank=4", "train.lora_alpha=8"]
    evaluate = ["eval.batch_size=4", "eval.cpus_per_actor=1", "backbone.params={max_new_tokens: 4}"]
    assert main(["train", *recipe, *train, "--json"]) == 0
    assert len(ray.nodes()) == 3
    manifest = [json.loads(x) for x in (run / "maps" / "manifest.jsonl").read_text().splitlines()]
    assert all(r["status"] == "ok" and r["map_path"].startswith(f"{run}/maps/") for r in manifest)
    assert len({r["node_id"] for r in manifest}) >= 2, "the maps were all made on one node"
    trained = TrainSummary.read(run / "train" / "summary.json")
    # one CPU a node and one a worker: the two workers ran on two of the cluster's nodes, and the summary names those
    assert trained.end_step == 2 and len(set(trained.nodes)) == len(trained.nodes) == 2
    assert set(trained.nodes) <= {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    # published as a version beside the old ones, then switched to by one pointer object (a bucket has no rename)
    assert trained.adapter.startswith(f"{run}/train/adapters/")
    assert json.loads((run / "train" / "adapter.json").read_text()) == {"adapter": trained.adapter}
    assert (Location(trained.adapter) / "adapter_config.json").is_file()
    assert any(name.startswith("run/") for name in (run / "train" / "checkpoints").files())  # Ray Train's storage

    capsys.readouterr()
    assert main(["eval", *recipe, *train, *evaluate, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["adapter"] == trained.adapter and result["report"] == f"{run}/eval/report.html"
    files = (run / "eval").files()
    assert {"predictions.jsonl", "metrics.json", "report.html"} <= set(files) and not any("partial" in f for f in files)
    preds = [json.loads(x) for x in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    instructions = (run / "instructions" / "test.jsonl").read_text().splitlines()
    assert len(preds) == len(instructions) and not any(p["error"] for p in preds)
    assert "data:image/png;base64," in (run / "eval" / "report.html").read_text()  # maps read back from the bucket

    assert main(["eval", *recipe, *train, *evaluate, "--json"]) == 0  # a second run finds everything up to date
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input"]  # no stage wrote to the local disk
