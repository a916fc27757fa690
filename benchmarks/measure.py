"""Timing and memory measurement: medians of side-by-side runs, peak RSS of fresh subprocesses."""

from __future__ import annotations

import gc
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Paired:
    """Medians of a baseline and a subject timed alternately in the same process (seconds).

    Wall time is what a user waits; CPU time (of the whole process, every thread) is what the work costs, and is
    far less disturbed by other processes competing for the cores.
    """

    baseline: float
    subject: float
    baseline_cpu: float
    subject_cpu: float
    baseline_runs: tuple[float, ...]
    subject_runs: tuple[float, ...]

    @property
    def ratio(self) -> float:
        return self.subject / self.baseline

    @property
    def cpu_ratio(self) -> float:
        return self.subject_cpu / self.baseline_cpu


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    gc.collect()
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


def paired(baseline: Callable[[], Any], subject: Callable[[], Any], repeats: int, warmup: int = 1) -> Paired:
    """Time `baseline` and `subject` alternately, `repeats` times each after `warmup` untimed pairs.

    Alternating (and switching which one goes first on every round) spreads drift in the machine's speed (other
    processes, thermal state, allocator state) over both, so their ratio is fair.
    """
    for _ in range(warmup):
        baseline()
        subject()
    base_runs: list[tuple[float, float]] = []
    subject_runs: list[tuple[float, float]] = []
    for i in range(repeats):
        if i % 2:
            subject_runs.append(_timed(subject))
            base_runs.append(_timed(baseline))
        else:
            base_runs.append(_timed(baseline))
            subject_runs.append(_timed(subject))
    return Paired(
        baseline=statistics.median(wall for wall, _ in base_runs),
        subject=statistics.median(wall for wall, _ in subject_runs),
        baseline_cpu=statistics.median(cpu for _, cpu in base_runs),
        subject_cpu=statistics.median(cpu for _, cpu in subject_runs),
        baseline_runs=tuple(wall for wall, _ in base_runs),
        subject_runs=tuple(wall for wall, _ in subject_runs),
    )


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages (other processes competing for the cores), where available."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def quiet_logs() -> None:
    """QuantScope's own log lines (a warning per advisory kind, an overwritten config file) are noise here."""
    for name in ("analyzer", "graph"):
        logging.getLogger(name).setLevel(logging.ERROR)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far.

    `VmHWM` from /proc: the high-water mark of this process's own address space. `getrusage().ru_maxrss` is no
    good in a child: on Linux an exec'd process starts with the RSS its parent had when it forked (a child of the
    benchmark runner reported the runner's 1.3 GB whatever it did), so it is only the fallback where /proc is
    missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    """Current resident set size of this process, from /proc (0 where it is unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def run_child(task: str, args: Sequence[str], timeout: float = 900.0) -> dict[str, Any]:
    """Run `python -m benchmarks.child <task> <args>` in a fresh process; return the JSON it prints last."""
    return run_python_child("benchmarks.child", [task, *args], timeout)


def run_python_child(module: str, args: Sequence[str], timeout: float = 900.0) -> dict[str, Any]:
    """Run `python -m <module> <args>` in a fresh process; return the JSON it prints last."""
    command = [sys.executable, "-m", module, *args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {module} {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def child_output(result: dict[str, Any]) -> None:
    """Print a child's result as the last line of its stdout (what `run_child` reads)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
