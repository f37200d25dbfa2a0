"""Ingestion speed: revmodel's load + validate against pyarrow.csv.read_csv on the same files.

    .venv/bin/python benchmarks/bench_ingest.py [--rows 1000000] [--repeat 3]

Generates a sample company with :mod:`revmodel.sample` sized for about
``--rows`` opportunities (cached under benchmarks/data/) and keeps its
``opportunities.csv`` and ``reps.csv``. Then, each in a fresh process so peak
memory is the step's own, it times ``pyarrow.csv.read_csv`` reading both files
(the peer: parsing alone, types inferred) and :func:`revmodel.sources.load`
(encoding, delimiter, header and footer detection, parsing every column,
pandera validation, quarantine written). Best of ``--repeat`` runs. Prints a
table and writes benchmarks/results/bench_ingest.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from benchkit import (
    best_of,
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


def _measure_pyarrow(data_dir: str, repeat: int) -> dict:
    import pyarrow.csv as pacsv

    def read() -> int:
        # only the row count outlives a run: one copy of the tables in memory at a time
        return [pacsv.read_csv(Path(data_dir) / f) for f in FILES][0].num_rows

    best, rows = best_of(read, repeat)
    return {"rows": rows, "seconds": best, "peak_memory_mb": peak_memory_mb()}


def _measure_revmodel(data_dir: str, repeat: int) -> dict:
    import tempfile

    from revmodel import sources

    qdir = Path(tempfile.mkdtemp(prefix="bench-quarantine-"))
    try:
        best, result = best_of(
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
        "peak_memory_mb": peak_memory_mb(),
    }


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
    peer = _run("pyarrow", data_dir, args.repeat)
    ours = _run("revmodel", data_dir, args.repeat)
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
        "repeat": args.repeat,
        "sample_generate_seconds": round(gen_s, 1),
    }
    rows = [
        ("opportunities (rows read)", f"{result['rows']:,}", ""),
        ("CSV size (opportunities + reps)", f"{size_mb:,.0f} MB", ""),
        ("pyarrow.csv.read_csv (peer)", f"{result['pyarrow_read_seconds']:.2f} s", ""),
        ("revmodel load + validate", f"{result['load_validate_seconds']:.2f} s", ""),
        ("ratio to pyarrow", f"{result['ingest_ratio_to_pyarrow']:.1f}x", "goal <= 4x"),
        ("per row", f"{result['load_validate_us_per_row']:.1f} us", ""),
        ("peak memory, pyarrow", f"{result['pyarrow_peak_memory_mb']:,.0f} MB", ""),
        ("peak memory, revmodel", f"{result['peak_memory_mb']:,.0f} MB", ""),
    ]
    print_table(f"bench_ingest: {data_dir.name}, best of {args.repeat}", rows)
    write_result("bench_ingest", result)


if __name__ == "__main__":
    main()
