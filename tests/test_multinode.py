"""Every stage on a local multi-node Ray cluster (``ray.cluster_utils.Cluster``: three raylets on this machine)."""

from __future__ import annotations

import json

import pytest
from conftest import write_pairs

from mellm_core.cli import main


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


def test_multinode_maps_and_training_spread_over_nodes(multinode_cluster, motion_pair, tmp_path, capsys):
    import ray

    recipe = ["quickstart", f"output_dir={tmp_path / 'run'}", "data.dataset=manifest",
              f"data.root={write_pairs(tmp_path, motion_pair, n=12)}", "maps.landmarker=none", "maps.flow=dis",
              "maps.batch_size=1",
              "--address", multinode_cluster.address]
    assert main(["instructions", *recipe, "--json"]) == 0
    assert len(ray.nodes()) == 3
    manifest = [json.loads(x) for x in (tmp_path / "run" / "maps" / "manifest.jsonl").read_text().splitlines()]
    assert all(r["status"] == "ok" for r in manifest)
    assert len({r["node_id"] for r in manifest}) >= 2, "the maps were all made on one node"

    capsys.readouterr()
    assert main(["train", *recipe, "train.num_workers=2", "train.cpus_per_worker=1", "train.max_steps=2",
                 "train.batch_size=2", "train.lora_rank=4", "train.lora_alpha=8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["end_step"] == 2
    trained = json.loads((tmp_path / "run" / "train" / "summary.json").read_text())
    assert len(trained["nodes"]) == 2  # one CPU per node: the two DDP workers (gloo) ran on two nodes
