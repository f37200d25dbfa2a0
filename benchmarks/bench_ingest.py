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
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Opportunities the sample generator makes per rep and month (measured: 3.0M at 10,000 x 36).
OPPS_PER_REP_MONTH = 8.3
FILES = ("opportunities.csv", "reps.csv")


def _peak_mb() -> float:
    """This process's peak resident memory [MB] (VmHWM: ru_maxrss would include the parent's)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure_pyarrow(data_dir: str, repeat: int) -> dict:
    import pyarrow.csv as pacsv

    best = float("inf")
    rows = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        tables = [pacsv.read_csv(Path(data_dir) / f) for f in FILES]
        best = min(best, time.perf_counter() - t0)
        rows = tables[0].num_rows
        del tables
    return {"rows": rows, "seconds": best, "peak_memory_mb": _peak_mb()}


def _measure_revmodel(data_dir: str, repeat: int) -> dict:
    import tempfile

    from revmodel import sources

    best = float("inf")
    result = None
    for _ in range(repeat):
        qdir = Path(tempfile.mkdtemp(prefix="bench-quarantine-"))
        t0 = time.perf_counter()
        result = sources.load(data_dir, quarantine_dir=qdir, as_of="2026-11-01")
        best = min(best, time.perf_counter() - t0)
        shutil.rmtree(qdir, ignore_errors=True)
    rep = result.reports["opportunities"]
    return {
        "rows": rep.rows_read,
        "accepted": rep.rows_accepted,
        "quarantined": rep.rows_quarantined,
        "seconds": best,
        "peak_memory_mb": _peak_mb(),
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
    out = subprocess.run(
        [sys.executable, __file__, "--_measure", step, "--repeat", str(repeat), str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


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

    t0 = time.perf_counter()
    data_dir = _sample(args.rows, args.seed)
    gen_s = time.perf_counter() - t0
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
    width = max(len(r[0]) for r in rows)
    print(f"bench_ingest: {data_dir.name}, best of {args.repeat}")
    print(f"{'step':<{width}}  {'figure':>12}  target")
    for name, fig, aim in rows:
        print(f"{name:<{width}}  {fig:>12}  {aim}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_ingest.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
