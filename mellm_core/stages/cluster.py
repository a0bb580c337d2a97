"""Attaching to Ray: an explicit address, the recipe's ``ray.address``, ``RAY_ADDRESS``, or a local instance."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import ray

TRAIN_POLL_ENV, TRAIN_POLL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2"


def init_ray(address: str | None = None, num_cpus: int | None = None, dashboard: bool = False) -> None:
    """Start or join Ray once per process, quietly (Ray's own progress bars and logs off). A local instance runs
    its dashboard only when asked (``ray.dashboard``), and then says where it is."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Ray Train's controller collects a worker's report at most every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (2 s by
    # default) and a worker holds one report at a time, so a metrics line every few fast steps made training wait
    # on it (FlowCNN's 21 s took 74 s); every actor of this job, the controller included, polls more often
    poll = os.environ.get(TRAIN_POLL_ENV, TRAIN_POLL_S)
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": False,
                    "runtime_env": {"env_vars": {TRAIN_POLL_ENV: poll}}}
    if address is None:
        # A local instance serves this process alone: run its workers at normal priority (Ray's default
        # niceness 15 hands their CPU to any other job), and skip metrics collection nobody reads.
        os.environ.setdefault("RAY_worker_niceness", "0")
        kwargs.update(num_cpus=num_cpus, include_dashboard=dashboard,
                      _system_config={"enable_metrics_collection": dashboard})
    # "local": a new instance even when another one runs on this machine (`ray start`, another user's job), which
    # ray.init() would otherwise join, and refuse the settings above; attach to that one with ray.address: auto
    context = ray.init(address=address or "local", **kwargs)
    if dashboard and address is None and context.dashboard_url:
        token = Path.home() / ".ray" / "auth_token"  # where Ray keeps the token its dashboard asks for
        sign_in = f" (sign in with the token in {token})" if token.is_file() else ""
        print(f"Ray dashboard: http://{context.dashboard_url}{sign_in}", file=sys.stderr)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def cluster_cpus() -> int:
    """CPUs in the cluster Ray is attached to."""
    return int(ray.cluster_resources().get("CPU", 1))


def task_pool(size: int) -> dict[str, Any]:
    """Ray Data ``map`` arguments for at most ``size`` tasks at once: ``compute=TaskPoolStrategy`` where Ray
    exports it (2.51 on; ``concurrency`` is deprecated there), else ``concurrency``."""
    strategy = getattr(ray.data, "TaskPoolStrategy", None)
    return {"compute": strategy(size=size)} if strategy is not None else {"concurrency": size}
