"""Ingestion speed: revmodel's load + validate against pyarrow.csv.read_csv on the same files.

    .venv/bin/python benchmarks/bench_ingest.py [--rows 1000000] [--repeat 3] [--before REF]

Generates a sample company with :mod:`revmodel.sample` sized for about
``--rows`` opportunities (cached under benchmarks/data/) and keeps its
``opportunities.csv`` and ``reps.csv``. Then, each in a fresh process so peak
memory is the step's own, it times ``pyarrow.csv.read_csv`` reading both files
(the peer: parsing alone, types inferred) and :func:`revmodel.sources.load`
(encoding, delimiter, header and footer detection, parsing every column,
pandera validation, quarantine written). Best of ``--repeat`` runs, with the
CPU time of that run (all threads: pyarrow parses on several). ``--before REF``
also times the ``revmodel`` package of a git commit (``git archive``) on the
same files in the same run. The load average is read at the start and the end.
Prints a table and writes benchmarks/results/bench_ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchkit import (
    measure_in_subprocess,
    peak_memory_mb,
    print_table,
    stopwatch,
    write_result,
)

HERE = Path(__file__).resolve().parent
#: Opportunities the sample generator makes per rep and month (measured: 3.0M at 10,000 x 36).
OPPS_PER_REP_MONTH = 8.3
FILES = ("opportunities.csv", "reps.csv")


def _best_of(fn: Callable[[], object], n: int) -> tuple[float, float, object]:
    """Wall and CPU seconds of the fastest of ``n`` calls, and what the last call returned."""
    best, cpu, result = float("inf"), float("inf"), None
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    return best, cpu, result


def _measure_pyarrow(data_dir: str, repeat: int) -> dict:
    import pyarrow.csv as pacsv

    def read() -> int:
        # only the row count outlives a run: one copy of the tables in memory at a time
        return [pacsv.read_csv(Path(data_dir) / f) for f in FILES][0].num_rows

    best, cpu, rows = _best_of(read, repeat)
    return {"rows": rows, "seconds": best, "cpu_seconds": cpu, "peak_memory_mb": peak_memory_mb()}


def _measure_revmodel(data_dir: str, repeat: int) -> dict:
    import tempfile

    from revmodel import sources

    qdir = Path(tempfile.mkdtemp(prefix="bench-quarantine-"))
    try:
        best, cpu, result = _best_of(
            lambda: sources.load(data_dir, quarantine_dir=qdir, as_of="2026-11-01"), repeat
        )
    finally:
        shutil.rmtree(qdir, ignore_errors=True)
    rep = result.reports["opportunities"]
    return {
        "rows": rep.rows_read,
        "accepted": rep.rows_accepted,
        "quarantined": rep.rows_quarantined,
        "seconds": best,
        "cpu_seconds": cpu,
        "peak_memory_mb": peak_memory_mb(),
    }


def _measure_before(ref: str, data_dir: Path, repeat: int) -> dict:
    """The ``revmodel`` package of git commit ``ref`` timed the same way, in its own process."""
    root = HERE.parent
    with tempfile.TemporaryDirectory(prefix="bench-ingest-before-") as tree:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", ref, "revmodel"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": tree}
        args = ["--_measure", "revmodel", "--repeat", str(repeat), str(data_dir)]
        out = subprocess.run(
            [sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=env
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sample(rows: int, seed: int) -> Path:
    months = 36
    reps = max(1, round(rows / (OPPS_PER_REP_MONTH * months)))
    data_dir = HERE / "data" / f"ingest-{reps}x{months}-s{seed}"
    if not all((data_dir / f).exists() for f in FILES):
        from revmodel import sample

        tables = sample.generate(reps=reps, months=months, seed=seed)
        keep = {"opportunities": tables["opportunities"], "reps": tables["reps"]}
        sample.write(keep, data_dir)
    return data_dir


def _run(step: str, data_dir: Path, repeat: int) -> dict:
    return measure_in_subprocess(
        __file__, "--_measure", step, "--repeat", str(repeat), str(data_dir)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="opportunities, about")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--before", default=None, help="git commit whose revmodel is timed too")
    p.add_argument("--_measure", default=None, help=argparse.SUPPRESS)
    p.add_argument("data_dir", nargs="?", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._measure:
        fn = _measure_pyarrow if args._measure == "pyarrow" else _measure_revmodel
        print(json.dumps(fn(args.data_dir, args.repeat)))
        return

    with stopwatch() as generating:
        data_dir = _sample(args.rows, args.seed)
    gen_s = generating.seconds
    load_start = os.getloadavg()[0]
    peer = _run("pyarrow", data_dir, args.repeat)
    before = _measure_before(args.before, data_dir, args.repeat) if args.before else None
    ours = _run("revmodel", data_dir, args.repeat)
    load_end = os.getloadavg()[0]
    size_mb = sum((data_dir / f).stat().st_size for f in FILES) / 1024**2
    result = {
        "rows": ours["rows"],
        "rows_accepted": ours["accepted"],
        "rows_quarantined": ours["quarantined"],
        "csv_size_mb": round(size_mb, 1),
        "pyarrow_read_seconds": round(peer["seconds"], 3),
        "load_validate_seconds": round(ours["seconds"], 3),
        "ingest_ratio_to_pyarrow": round(ours["seconds"] / peer["seconds"], 2),
        "load_validate_us_per_row": round(ours["seconds"] / ours["rows"] * 1e6, 2),
        "pyarrow_peak_memory_mb": round(peer["peak_memory_mb"], 1),
        "peak_memory_mb": round(ours["peak_memory_mb"], 1),
        "pyarrow_read_cpu_seconds": round(peer["cpu_seconds"], 3),
        "load_validate_cpu_seconds": round(ours["cpu_seconds"], 3),
        "repeat": args.repeat,
        "sample_generate_seconds": round(gen_s, 1),
        "load_average_start": round(load_start, 1),
        "load_average_end": round(load_end, 1),
    }
    if before is not None:
        result.update(
            before_ref=args.before,
            before_load_validate_seconds=round(before["seconds"], 3),
            before_load_validate_cpu_seconds=round(before["cpu_seconds"], 3),
            before_ingest_ratio_to_pyarrow=round(before["seconds"] / peer["seconds"], 2),
            before_peak_memory_mb=round(before["peak_memory_mb"], 1),
        )
    rows = [
        ("opportunities (rows read)", f"{result['rows']:,}", ""),
        ("CSV size (opportunities + reps)", f"{size_mb:,.0f} MB", ""),
        ("pyarrow.csv.read_csv (peer)", f"{result['pyarrow_read_seconds']:.2f} s", ""),
        ("revmodel load + validate", f"{result['load_validate_seconds']:.2f} s", ""),
        ("ratio to pyarrow", f"{result['ingest_ratio_to_pyarrow']:.1f}x", "goal <= 4x"),
        ("per row", f"{result['load_validate_us_per_row']:.1f} us", ""),
        ("peak memory, pyarrow", f"{result['pyarrow_peak_memory_mb']:,.0f} MB", ""),
        ("peak memory, revmodel", f"{result['peak_memory_mb']:,.0f} MB", ""),
        ("CPU, pyarrow / revmodel", f"{peer['cpu_seconds']:.2f} / {ours['cpu_seconds']:.2f} s", ""),
        ("load average, start / end", f"{load_start:.1f} / {load_end:.1f}", "2 cores"),
    ]
    if before is not None:
        rows[4:4] = [
            (f"revmodel at {args.before}", f"{before['seconds']:.2f} s", "same files, same run"),
            ("its ratio to pyarrow", f"{result['before_ingest_ratio_to_pyarrow']:.1f}x", ""),
            ("its CPU", f"{before['cpu_seconds']:.2f} s", ""),
        ]
    print_table(f"bench_ingest: {data_dir.name}, best of {args.repeat}", rows)
    write_result("bench_ingest", result)


if __name__ == "__main__":
    main()
