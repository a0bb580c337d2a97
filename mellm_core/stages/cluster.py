"""Attaching to Ray: an explicit address, the recipe's ``ray.address``, ``RAY_ADDRESS``, or a local instance."""

from __future__ import annotations

import logging
import os

import ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start or join Ray once per process, quietly (Ray's own progress bars and logs off)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address is None:
        # A local instance serves this process alone: run its workers at normal priority (Ray's default
        # niceness 15 hands their CPU to any other job), and skip metrics collection nobody reads.
        os.environ.setdefault("RAY_worker_niceness", "0")
        kwargs.update(num_cpus=num_cpus, include_dashboard=False,
                      _system_config={"enable_metrics_collection": False})
    ray.init(address=address, **kwargs)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def cluster_cpus() -> int:
    """CPUs in the cluster Ray is attached to."""
    return int(ray.cluster_resources().get("CPU", 1))
