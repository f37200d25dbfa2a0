"""What the benchmarks share: timing loops, the peak-memory probe, the table and the JSON file.

Each ``bench_*.py`` script imports it by name (a script's own folder is on ``sys.path``)::

    from benchkit import median_ms, peak_memory_mb, write_result
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where every benchmark writes ``<script name>.json``.
RESULTS = Path(__file__).resolve().parent / "results"


def peak_memory_mb() -> float:
    """This process's peak resident memory so far [MB].

    Read from ``VmHWM`` in ``/proc/self/status``: ``ru_maxrss`` of a process started
    from a large parent would include the parent's peak. Falls back to ``ru_maxrss``
    where there is no ``/proc``.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Peak resident memory [MB] of this process and its children (dask workers) in a block.

    Sampled every ``interval`` seconds by a thread (``psutil``)::

        with PeakMemory() as peak:
            work()
        peak.peak_mb
    """

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak_mb = 0.0

    def _rss_mb(self) -> float:
        total = 0
        procs = [self._proc]
        try:
            procs += self._proc.children(recursive=True)
        except Exception:  # a child that ends while listed
            pass
        for p in procs:
            try:
                total += p.memory_info().rss
            except Exception:
                pass
        return total / 1024**2

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        self.peak_mb = self._rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())


@dataclass
class Stopwatch:
    """Seconds a ``with stopwatch():`` block took; ``seconds`` is set when the block ends."""

    start: float
    seconds: float = float("nan")


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Time a block of code with ``time.perf_counter``.

    >>> with stopwatch() as sw:
    ...     _ = sum(range(10))
    >>> sw.seconds >= 0
    True
    """
    sw = Stopwatch(time.perf_counter())
    try:
        yield sw
    finally:
        sw.seconds = time.perf_counter() - sw.start


def timings(fn: Callable[[], Any], n: int) -> list[float]:
    """Seconds each of ``n`` calls of ``fn`` took, in call order [s]."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def timings_of(fn: Callable[[Any], Any], cases: Iterable[Any]) -> list[float]:
    """Seconds each call ``fn(case)`` took, one per case, in order [s]."""
    out = []
    for case in cases:
        t0 = time.perf_counter()
        fn(case)
        out.append(time.perf_counter() - t0)
    return out


def median_ms(fn: Callable[[], Any], n: int) -> float:
    """Median time of ``n`` calls of ``fn`` [ms]."""
    return 1000 * statistics.median(timings(fn, n))


def best_of(fn: Callable[[], Any], n: int) -> tuple[float, Any]:
    """Fastest of ``n`` calls of ``fn`` [s], and what the last call returned."""
    best, result = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def p90(values: Sequence[float]) -> float:
    """The 90th percentile by nearest rank (one of the values, no interpolation).

    >>> p90([5.0, 1.0, 3.0, 2.0, 4.0])
    5.0
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def measure_in_subprocess(script: str, *args: str) -> dict:
    """Run ``script`` with ``args`` in a fresh Python, so its peak memory is its own.

    The script prints its figures as a JSON object on its last line of output.
    """
    out = subprocess.run(
        [sys.executable, script, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """Print ``title`` and rows of (step, figure, target) in aligned columns."""
    width = max(len(r[0]) for r in rows)
    print(title)
    print(f"{'step':<{width}}  {'figure':>12}  target")
    for name, fig, aim in rows:
        print(f"{name:<{width}}  {fig:>12}  {aim}")


def write_result(name: str, result: dict, path: str | Path | None = None) -> Path:
    """Write ``result`` as indented JSON to ``path``, default ``results/<name>.json``."""
    out = Path(path) if path is not None else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return out
