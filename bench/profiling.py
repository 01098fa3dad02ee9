"""Where the worker's CPU goes: py-spy samples of the thread holding the GIL.

A threads-pool worker is one Python process, so its throughput is bounded by one
core's worth of GIL time; what holds the GIL is what costs. ``py-spy record --gil``
samples only that thread (``--nonblocking``: the worker is never paused). Each
sample is put in the first category, in the order below, whose marker appears in its
stack, so nested work is charged to the step that asked for it (a Redis round trip
made to ack a message is "ack", not "Redis").

py-spy is optional (``pip install py-spy``); without it ``--profile`` is skipped
with a note.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# (category, markers): a sample belongs to the first category with a marker in its stack.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("task events of chunk items (Flower)", ("TaskEvents.",)),
    ("metrics: prometheus_client", ("Metering.", "(prometheus_client/")),
    ("task events (Flower): build + publish", ("EventDispatcher.", "Consumer._flush_events")),
    ("ack: kombu QoS.ack (HDEL/ZREM)", ("Message.ack", "QoS.ack")),
    (
        "result store: Celery backend meta",
        ("Backend.store_result", "Backend.mark_as_done", ";set_result_meta ("),
    ),
    ("Kubernetes call: client, urllib3, TLS, JSON", ("ClusterClient.",)),
    ("task arguments: pydantic + Job schema", (";parse (", "Chunk.model_validate")),
    ("eksops start: lease, attempt, stored result", (";begin (", ";begin_many (")),
    ("eksops release: lease", ("LeaseKeeper.", "Execution.")),
    ("eksops chunk: loop over its requests (rest)", (";run_chunk (", "_ItemRun.")),
    ("receive: BRPOP read, QoS.append, request", ("Channel._brpop_read", "on_task_received")),
    ("Celery tracer and thread pool (rest)", ("trace_task", "apply_target", "_WorkItem.run")),
    ("event loop and other", ("",)),
]
# Frames whose own time tells which library holds the GIL, whatever the step.
LIBRARIES: list[tuple[str, tuple[str, ...]]] = [
    ("redis-py", ("(redis/",)),
    ("kombu", ("(kombu/",)),
    ("celery", ("(celery/", "(billiard/", "(vine/")),
    ("kubernetes client", ("(kubernetes/",)),
    ("urllib3, http.client, ssl, socket", ("(urllib3/", "(http/", "(ssl.py", "(socket.py")),
    ("pydantic", ("(pydantic",)),
    ("json", ("(json/",)),
    ("threading, queue, concurrent.futures", ("(threading.py", "(queue.py", "(concurrent/")),
    ("logging", ("(logging/",)),
    ("eksops (worker/)", ("(worker/",)),
]


@dataclass
class Profile:
    """Shares of GIL samples by step and by library, and how busy the GIL was."""

    samples: int
    seconds: float
    rate: int
    by_step: dict[str, float] = field(default_factory=dict)
    by_library: dict[str, float] = field(default_factory=dict)
    top_functions: list[tuple[str, float]] = field(default_factory=list)

    @property
    def gil_busy(self) -> float:
        """Return the fraction of wall time some worker thread held the GIL."""
        return self.samples / max(self.seconds * self.rate, 1)


def py_spy() -> str | None:
    """Return the py-spy executable, if installed."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Recorder:
    """``py-spy record`` of one process for a fixed duration."""

    def __init__(self, pid: int, output: Path, *, seconds: float, rate: int = 200) -> None:
        executable = py_spy()
        if executable is None:
            raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
        self.output, self.seconds, self.rate = output, seconds, rate
        args = [
            executable, "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking",
            "--format", "raw", "--rate", str(rate), "--duration", str(int(seconds)),
            "--output", str(output),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def result(self) -> Profile:
        """Wait for py-spy to finish and summarise what it sampled."""
        _, errors = self.process.communicate(timeout=self.seconds + 30)
        if not self.output.exists():
            raise RuntimeError(f"py-spy failed: {errors.decode(errors='replace')[-500:]}")
        return summarise(self.output, seconds=self.seconds, rate=self.rate)


def summarise(path: Path, *, seconds: float, rate: int) -> Profile:
    """Aggregate py-spy's raw (collapsed) stacks into steps, libraries and functions."""
    steps: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        steps[next(name for name, marks in CATEGORIES if any(m in stack for m in marks))] += count
        leaf = frames[-1]
        library = next(
            (name for name, marks in LIBRARIES if any(m in leaf for m in marks)), "other"
        )
        libraries[library] += count
        functions[leaf.rsplit(":", 1)[0] + ")" if ":" in leaf else leaf] += count
    share = 100 / max(total, 1)
    return Profile(
        samples=total,
        seconds=seconds,
        rate=rate,
        by_step={name: steps[name] * share for name, _ in CATEGORIES if steps[name]},
        by_library={name: value * share for name, value in libraries.most_common()},
        top_functions=[(name, value * share) for name, value in functions.most_common(12)],
    )
