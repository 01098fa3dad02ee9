"""CPU time and memory of the stack's processes, read from ``/proc`` (Linux).

"Where the CPU goes" is first a question of which process spends it: the harness
(callers), the worker, kubesim or Valkey. :class:`CpuMeter` snapshots each
process tree's user+system time around a phase, so a phase reports CPU
milliseconds per task for each of them, how many cores they kept busy, and how
many the whole machine did (other people's work included: the machine is shared).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Return ``pid`` and all its descendants."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                found.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """Return the user+system CPU seconds of ``pid`` and its descendants so far.

    For the harness's own process only itself counts: its children are the stack,
    measured each on its own.
    """
    total = 0.0
    for member in [pid] if pid == os.getpid() else children(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def rss_bytes(pid: int) -> int:
    """Return the resident memory (VmRSS) of ``pid`` and its descendants."""
    total = 0
    for member in children(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def machine_busy_seconds() -> float:
    """Return CPU seconds all processes of the machine have spent (``/proc/stat``)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICKS


@dataclass
class CpuUse:
    """CPU seconds each process spent during one phase, and the phase's wall time.

    ``machine_seconds`` counts every process on the machine, other people's included:
    when it exceeds what our processes spent, the phase shared the cores.
    """

    wall_seconds: float
    seconds: dict[str, float]
    machine_seconds: float = 0.0

    def per_task_ms(self, tasks: int) -> dict[str, float]:
        """Return CPU milliseconds per task, by process."""
        return {name: value * 1000 / max(tasks, 1) for name, value in self.seconds.items()}

    def busy_cores(self) -> float:
        """Return how many cores the measured processes kept busy, on average."""
        return sum(self.seconds.values()) / max(self.wall_seconds, 1e-9)

    def machine_busy_cores(self) -> float:
        """Return how many cores all processes of the machine kept busy, on average."""
        return self.machine_seconds / max(self.wall_seconds, 1e-9)


class CpuMeter:
    """Measures CPU time of named process trees between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._before: dict[str, float] = {}
        self._machine = 0.0
        self._started = 0.0

    def start(self) -> CpuMeter:
        """Take the starting snapshot."""
        self._before = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        self._machine = machine_busy_seconds()
        self._started = time.monotonic()
        return self

    def stop(self) -> CpuUse:
        """Return what each process spent since :meth:`start`."""
        wall = time.monotonic() - self._started
        after = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        return CpuUse(
            wall,
            {name: after[name] - self._before[name] for name in self._pids},
            machine_busy_seconds() - self._machine,
        )
