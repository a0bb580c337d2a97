"""CPU accounting for the benchmarks: what this process tree used, and what the rest of the machine used.

On a shared machine a wall-clock ratio means little unless one also knows how much CPU each run actually got.
``CpuMeter`` samples this process and all its descendants (pool workers, Ray's raylet and its workers) in a
background thread, and reads /proc/stat for the whole machine over the same interval.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass
class CpuUse:
    wall_s: float
    run_cpu_s: float  # CPU seconds of this process tree
    machine_cpu_s: float  # CPU seconds of the whole machine (all processes)
    cpus: int

    @property
    def run_share(self) -> float:
        """This process tree's share of all CPUs over the interval."""
        return self.run_cpu_s / (self.wall_s * self.cpus) if self.wall_s > 0 else 0.0

    @property
    def other_share(self) -> float:
        """Everything else's share of all CPUs over the interval (other users' jobs, the OS)."""
        return (
            max(self.machine_cpu_s - self.run_cpu_s, 0.0) / (self.wall_s * self.cpus)
            if self.wall_s > 0
            else 0.0
        )


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Samples CPU seconds of this process and its descendants every ``interval`` s until ``stop``."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.root = psutil.Process()
        self.base: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _tree(self) -> dict[tuple[int, float], float]:
        seen = {}
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            processes = [self.root]
        for process in processes:
            try:
                times = process.cpu_times()
                seen[(process.pid, process.create_time())] = times.user + times.system
            except psutil.Error:  # exited between listing and reading
                continue
        return seen

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self.last.update(self._tree())

    def __enter__(self) -> CpuMeter:
        self.base = self._tree()
        self.last = dict(self.base)
        self.machine0, self.wall0 = machine_cpu_seconds(), time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.last.update(self._tree())
        self.use = CpuUse(
            wall_s=time.perf_counter() - self.wall0,
            run_cpu_s=sum(v - self.base.get(k, 0.0) for k, v in self.last.items()),
            machine_cpu_s=machine_cpu_seconds() - self.machine0,
            cpus=os.cpu_count() or 1,
        )
