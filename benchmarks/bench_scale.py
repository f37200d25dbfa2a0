"""Enterprise scale end to end: 20,000 reps x 48 months through load, cube, forecast and plan.

    nice -n 5 .venv/bin/python benchmarks/bench_scale.py [--reps 20000] [--months 48]
        [--workers 2] [--scheduler ADDRESS] [--format csv|parquet] [--data FOLDER]
        [--cache FOLDER] [--quantiles [--paths 100]]

The sample company (:func:`revmodel.sample.generate`: about 8 opportunities per rep
and month and 58 accounts per rep, so 20,000 x 48 gives about 7.6M opportunities and
1.2M accounts) is generated in a child process, in blocks of 2,000 reps with ids
prefixed by block (same regions, segments and months), so its memory is neither
counted nor more than one block's, and written into a temporary folder (removed at
the end; never into the checkout; ``--data FOLDER`` keeps it there to be read again, its
``generated.json`` written last saying it is whole): ``accounts``, ``reps``, ``opportunities``,
``invoices``, ``subscriptions``. Then,
in this process, each stage is timed and its peak resident memory sampled (this
process plus its children, i.e. the local dask workers, every 0.2 s):

- ``pyarrow``: :func:`pyarrow.csv.read_csv` of the same files (the peer: parsing
  alone, types inferred);
- ``load_validate``: :func:`revmodel.sources.load` (detection, parsing, pandera
  validation, quarantine written);
- ``cube_build``: :func:`revmodel.cube.build_cube` with ``layout="cells"`` (measures
  over the populated cells only), its memory (``Dataset.nbytes``), what the dense cube
  (``segment x region x rep x month``) would take, and the populated share of its series;
- ``forecast_reconcile``: :func:`revmodel.forecast.forecast_cube` of the cube by cell at
  every node of the hierarchy (default method, empty cache: every series fitted) on a
  local dask cluster of ``--workers`` processes or the ``--scheduler`` given, then
  :func:`revmodel.forecast.reconcile_nodes` with non-negative ``mint_shrink`` at every
  node (above :data:`revmodel.reconcile.MINT_SHRINK_MAX_NODES` nodes its covariance is
  diagonal plus low rank, solved in the zero-constrained form, ``reconcile_covariance``
  says which); ``--quantiles`` reconciles the sampled quantiles as well, as the stage
  ``reconcile_quantiles`` (:func:`revmodel.forecast.reconcile_dataset`: ``--paths`` paths
  a month, drawn and reconciled a month at a time above 2,000 nodes, each path-month a
  non-negative QP over every node with the total locked for three months; every path is
  checked for coherence, sign and locks);
- ``plan``: :func:`revmodel.capacity.capacity_plan` and :func:`revmodel.quota.top_down`
  for the fiscal year after ``as_of``, on the cube by cell (:func:`revmodel.capacity.plan_inputs`
  puts its bookings alone back over segment x region x rep x month).

``benchmarks/results/bench_scale.json`` is rewritten after every stage, so a run
stopped part way leaves what it measured and the stage it was in (``status``).
The load average is recorded at the start and end: on a shared machine the
figures are only as quiet as it was.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

from benchkit import PeakMemory, stopwatch, write_result  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "bench_scale.json"
TABLES = ("accounts", "reps", "opportunities", "invoices", "subscriptions")
#: Written into the data folder once every block is in: what was generated, rows per table.
COMPLETE = "generated.json"
HORIZON = 12


@dataclass(frozen=True)
class Settings:
    """What one run measures."""

    reps: int
    months: int
    seed: int
    workers: int
    scheduler: str | None
    fmt: str
    out: Path
    #: A folder holding a generated company to read again (or to generate into and keep).
    data: Path | None = None
    #: Stop the run after this many seconds, the JSON saying where it was [s].
    time_limit: float | None = None
    #: Reconcile the sampled quantiles too (a non-negative QP per sample path and month).
    quantiles: bool = False
    #: Sample paths a month for the sampled quantiles.
    paths: int = 100
    #: A folder keeping the fitted series (None: an empty temporary one, every series fitted).
    cache: Path | None = None


def _load_average() -> float:
    return round(os.getloadavg()[0], 2)


class Run:
    """The figures of one run, written after every stage."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.figures: dict[str, object] = {
            "reps_requested": settings.reps,
            "months": settings.months,
            "workers": settings.workers if settings.scheduler is None else "scheduler",
            "input_format": settings.fmt,
            "cpu_count": os.cpu_count(),
            "load_average_1min_start": _load_average(),
            "status": "started",
        }
        self.peaks: list[float] = []

    def write(self) -> None:
        self.figures["peak_memory_mb"] = round(max(self.peaks, default=0.0), 1)
        self.figures["load_average_1min_now"] = _load_average()
        write_result("bench_scale", self.figures, self.settings.out)

    def stage(self, name: str, fn: Callable[[], object]) -> object:
        """Run ``fn`` as stage ``name``: seconds and peak memory recorded, JSON rewritten."""
        self.figures["status"] = f"running {name}"
        self.write()
        with PeakMemory() as peak, stopwatch() as sw:
            value = fn()
        self.figures[f"{name}_seconds"] = round(sw.seconds, 3)
        self.figures[f"{name}_peak_memory_mb"] = round(peak.peak_mb, 1)
        self.peaks.append(peak.peak_mb)
        self.write()
        return value


# --------------------------------------------------------------------------- data


#: Reps per block of the generated company (one block's tables fit in about 1.5 GB).
BLOCK_REPS = 2_000
#: Columns holding ids (or a manager's name) that are made unique per block.
ID_COLUMNS = (
    "account_id",
    "owner_rep_id",
    "rep_id",
    "opportunity_id",
    "subscription_id",
    "invoice_id",
    "manager",
)


def _append(block: Path, folder: Path, fmt: str, first: bool) -> None:
    """Append a block's files to ``folder`` (CSV without its header after the first block)."""
    for name in TABLES:
        src = block / f"{name}.{fmt}"
        dst = folder / f"{name}.{fmt}"
        if fmt == "parquet":
            src.rename(folder / name / f"part-{len(list((folder / name).iterdir())):03d}.parquet")
            continue
        with src.open("rb") as fin, dst.open("wb" if first else "ab") as fout:
            if not first:
                fin.readline()
            shutil.copyfileobj(fin, fout, 16 * 1024**2)


def _generate_child(reps: int, months: int, seed: int, folder: str, fmt: str) -> None:
    """In a child process: the company written into ``folder`` block by block.

    A company of more than :data:`BLOCK_REPS` reps is generated as blocks of the
    sample company (each with its own seed, ids prefixed ``B<n>-``) in the same
    regions, segments and months, so memory stays that of one block. Parquet
    tables are folders of one part per block.
    """
    from revmodel import sample

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        for name in TABLES:
            (out / name).mkdir()
    counts = dict.fromkeys(TABLES, 0)
    n_blocks = -(-reps // BLOCK_REPS)
    for b in range(n_blocks):
        size = reps // n_blocks + (1 if b < reps % n_blocks else 0)
        tables = sample.generate(reps=size, months=months, seed=seed + b)
        keep = {}
        for name in TABLES:
            frame = tables[name]
            for col in ID_COLUMNS:
                if col in frame.columns and n_blocks > 1:
                    frame[col] = (f"B{b:02d}-" + frame[col].astype("string")).astype(object)
            keep[name] = frame
            counts[name] += len(frame)
        del tables
        block = out / f"block-{b}"
        if fmt == "csv":
            sample.write(keep, block)
        else:
            block.mkdir()
            for name, frame in keep.items():
                frame.to_parquet(block / f"{name}.parquet", index=False)
        _append(block, out, fmt, first=b == 0)
        shutil.rmtree(block)
    marker = {"reps": reps, "months": months, "seed": seed, "format": fmt, "rows": counts}
    (out / COMPLETE).write_text(json.dumps(marker))  # written last: the company is whole
    print(json.dumps(counts))


def generate(settings: Settings, folder: Path) -> dict[str, int]:
    """The sample company in ``folder``, generated in a child process; rows per table."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--_generate",
            str(folder),
            "--reps",
            str(settings.reps),
            "--months",
            str(settings.months),
            "--seed",
            str(settings.seed),
            "--format",
            settings.fmt,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _company(settings: Settings, work: Path) -> tuple[Path, dict[str, int], float | None]:
    """The generated company's folder, its rows per table and the seconds generating took.

    With ``--data`` a folder holding a whole company generated with the same settings
    (its ``generated.json``, written last) is read again, not generated (so no
    generating time); an empty or new one is generated into and kept. A folder left
    part way by a stopped run is refused rather than read as a smaller company.
    """
    folder = settings.data if settings.data is not None else work / "data"
    wanted = {
        "reps": settings.reps,
        "months": settings.months,
        "seed": settings.seed,
        "format": settings.fmt,
    }
    marker = folder / COMPLETE
    if settings.data is not None and marker.exists():
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} != wanted:
            raise SystemExit(f"{folder} holds a company generated with {found}, not {wanted}")
        return folder, found["rows"], None
    if settings.data is not None and folder.exists() and any(folder.iterdir()):
        raise SystemExit(
            f"{folder} holds files but no {COMPLETE}: a generation stopped part way; "
            f"empty the folder to generate again"
        )
    with stopwatch() as sw:
        counts = generate(settings, folder)
    return folder, counts, round(sw.seconds, 1)


def _pyarrow_read(folder: Path, fmt: str) -> int:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = 0
    for name in TABLES:
        path = folder / f"{name}.{fmt}"
        table = pacsv.read_csv(path) if fmt == "csv" else pq.read_table(folder / name)
        rows += table.num_rows
        del table
    return rows


# --------------------------------------------------------------------------- stages


def _cube_figures(ds) -> dict[str, object]:
    """Sizes of the cube by populated cell, and what the dense cube would hold."""
    import numpy as np

    from revmodel import cube

    series = int(np.prod([ds.sizes[d] for d in cube.SERIES_DIMS]))
    return {
        "segments": ds.sizes["segment"],
        "regions": ds.sizes["region"],
        "reps": ds.sizes["rep"],
        "cube_months": ds.sizes["month"],
        "cube_layout": "cells",
        "cube_cells": ds.sizes["cell"],
        "cube_memory_mb": round(ds.nbytes / 1024**2, 1),
        "cube_measures": len(ds.data_vars),
        "cube_dense_cells": series * ds.sizes["month"],
        "cube_dense_memory_mb_would_be": round(
            series * ds.sizes["month"] * 8 * len(ds.data_vars) / 1024**2, 1
        ),
        "cube_populated_share": round(ds.sizes["cell"] / series, 4),
    }


def _rollup_ms(ds) -> float:
    from revmodel import cube

    # the cube with bookings alone (its segment, region and rep members kept)
    bookings = ds.drop_vars([v for v in ds.data_vars if v != "bookings"])
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        cube.rollup(bookings, "region", period="fiscal_quarter").load()
        times.append(time.perf_counter() - t0)
    return round(sorted(times)[1] * 1000, 1)


def _plan_year(ds) -> str:
    import pandas as pd

    from revmodel import calendar as fcal

    next_year = pd.DatetimeIndex([pd.Timestamp(ds.attrs["as_of"]) + pd.DateOffset(months=12)])
    labels = fcal.month_coords(
        next_year, ds.attrs["fiscal_year_start"], ds.attrs["fiscal_year_naming"]
    )
    return str(labels["fiscal_year"][0])


def _quantile_stage(run: Run, fc) -> None:
    """The sampled quantiles reconciled, the total locked 2 % over its base mean for 3 months.

    Above 2,000 nodes :func:`revmodel.forecast.reconcile_dataset` draws and reconciles a
    month at a time (:func:`revmodel.reconcile.sample_reconciled_by_month`), checking
    every path: the largest coherence gap, the smallest value and the locks.
    """
    import numpy as np

    from revmodel import forecast
    from revmodel import reconcile as rec

    s = run.settings
    total = fc["node_mean"].isel(node=0).values * 1.02
    locked = {0: np.where(np.arange(total.size) < 3, total, np.nan)}
    settings = rec.SampleSettings(n_samples=s.paths)
    _, info = run.stage(
        "reconcile_quantiles",
        lambda: forecast.reconcile_dataset(
            fc, method="mint_shrink", locked=locked, settings=settings
        ),
    )
    checks = info.get("sample_checks") or {}
    run.figures.update(
        quantile_paths_per_month=s.paths,
        quantile_locked="total, first 3 months, 1.02 x its base mean",
        quantile_coherence_gap_relative=checks.get("coherence_gap"),
        quantile_min_usd=checks.get("min"),
        quantile_locks_held=checks.get("locks_held"),
    )


def _forecast_stages(run: Run, ds, cache: Path) -> None:
    from revmodel import forecast

    s = run.settings
    fc = run.stage(
        "forecast",
        lambda: forecast.forecast_cube(
            ds,
            measure="bookings",
            horizon=HORIZON,
            scheduler=s.scheduler,
            cache_dir=cache,
            n_workers=s.workers,
            progress=sys.stderr.isatty(),
        ),
    )
    run.figures["forecast_series"] = int(fc.attrs["n_series"])
    run.figures["forecast_failed"] = int(fc.attrs["n_failed"])
    run.figures["forecast_fallbacks"] = int(fc.attrs["n_fallbacks"])
    _, info = run.stage(
        "reconcile",
        lambda: forecast.reconcile_nodes(
            forecast.node_forecasts(None, fc), fc["mean"], method="mint_shrink"
        ),
    )
    run.figures["reconcile_scope"] = "means at every node, non-negative (reconcile_nodes)"
    run.figures["reconcile_nonnegative_iterations"] = info.get("nonnegative_iterations")
    run.figures["reconcile_factor_nnz"] = info.get("factor_nnz")
    run.figures["reconcile_method_used"] = str(info.get("method", ""))
    run.figures["reconcile_covariance"] = str(info.get("covariance", ""))
    run.figures["reconcile_fallback"] = str(info.get("fallback") or "")
    run.figures["forecast_reconcile_seconds"] = round(
        run.figures["forecast_seconds"] + run.figures["reconcile_seconds"], 3
    )
    if s.quantiles:
        _quantile_stage(run, fc)


def _plan(ds) -> None:
    from revmodel import capacity, quota
    from revmodel.assumptions import Assumptions

    a = Assumptions(plan_year=_plan_year(ds))
    inputs = capacity.plan_inputs(ds)  # on the cube by cell (its bookings alone put back dense)
    capacity.capacity_plan(inputs, a)
    quota.top_down(inputs, a)


def measure(run: Run, folder: Path, work: Path) -> None:
    """Every stage in turn, on the tables in ``folder``."""
    from revmodel import cube, sources

    s = run.settings
    run.stage("pyarrow_read", lambda: _pyarrow_read(folder, s.fmt))
    result = run.stage(
        "load_validate", lambda: sources.load(folder, quarantine_dir=work / "quarantine")
    )
    reports = result.reports
    run.figures["rows_read"] = sum(r.rows_read for r in reports.values())
    run.figures["rows_quarantined"] = sum(r.rows_quarantined for r in reports.values())
    run.figures["ingest_ratio_to_pyarrow"] = round(
        run.figures["load_validate_seconds"] / run.figures["pyarrow_read_seconds"], 2
    )
    # the cube by populated cell (memory follows the populated series, not the cross product)
    ds = run.stage(
        "cube_build",
        partial(cube.build_cube, result.tables, currency=result.currency, layout="cells"),
    )
    del result  # the tables are not needed past the cube
    run.figures.update(_cube_figures(ds))
    run.figures["rollup_region_quarter_ms"] = _rollup_ms(ds)
    run.write()
    run.figures["forecast_cache"] = "kept (--cache)" if s.cache is not None else "empty"
    _forecast_stages(run, ds, s.cache if s.cache is not None else work / "cache")
    run.figures["plan_year"] = _plan_year(ds)
    run.stage("plan", lambda: _plan(ds))


def _table(figures: dict[str, object]) -> str:
    keys = [
        ("opportunities", "opportunities", "{:,}"),
        ("accounts", "accounts", "{:,}"),
        ("pyarrow_read_seconds", "pyarrow.csv.read_csv (peer)", "{:.1f} s"),
        ("load_validate_seconds", "load + validate", "{:.1f} s"),
        ("ingest_ratio_to_pyarrow", "ratio to pyarrow (goal <= 4x)", "{:.1f}x"),
        ("cube_build_seconds", "cube build (populated cells)", "{:.1f} s"),
        ("cube_memory_mb", "cube memory (populated cells)", "{:,.1f} MB"),
        ("cube_dense_memory_mb_would_be", "dense cube would be", "{:,.0f} MB"),
        ("cube_populated_share", "populated share of series", "{:.1%}"),
        ("forecast_series", "series forecast", "{:,}"),
        ("forecast_seconds", "forecast", "{:.0f} s"),
        ("reconcile_seconds", "reconcile (mint_shrink)", "{:.0f} s"),
        ("reconcile_quantiles_seconds", "reconcile sampled quantiles", "{:.0f} s"),
        ("reconcile_quantiles_peak_memory_mb", "  its peak memory", "{:,.0f} MB"),
        ("plan_seconds", "plan (capacity + quotas)", "{:.1f} s"),
        ("peak_memory_mb", "peak memory (goal <= 12 GB)", "{:,.0f} MB"),
        ("load_average_1min_start", "load average at start", "{:.1f}"),
        ("load_average_1min_now", "load average at end", "{:.1f}"),
    ]
    lines = [f"bench_scale: {figures.get('reps')} reps x {figures['months']} months"]
    for key, label, fmt in keys:
        value = figures.get(key)
        shown = fmt.format(value) if isinstance(value, (int, float)) else "not measured"
        lines.append(f"{label:<32} {shown:>16}")
    return "\n".join(lines)


def _stop_at_time_limit(run: Run, seconds: float) -> None:
    """After ``seconds``: the figures so far written with where the run stopped, then exit.

    A stage running on a local dask cluster does not take an interrupt, so the run
    ends itself: its worker processes (its own children) are ended first.
    """
    import psutil

    def stop() -> None:
        run.figures["status"] = (
            f"stopped by --time-limit {seconds:.0f} s in the stage '{run.figures['status']}'"
        )
        run.write()
        print(_table(run.figures), flush=True)
        for child in psutil.Process().children(recursive=True):
            child.kill()
        os._exit(3)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20_000)
    p.add_argument("--months", type=int, default=48)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=2, help="local dask worker processes")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.add_argument("--format", dest="fmt", choices=("csv", "parquet"), default="csv")
    p.add_argument("--out", type=Path, default=RESULT, help="JSON file to write")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder of a company generated before with the same settings, read again "
        "(an empty or new folder is generated into and kept)",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds after which the run stops, writing what it measured and where it was",
    )
    p.add_argument(
        "--quantiles",
        action="store_true",
        help="reconcile the sampled quantiles as well as the means (reconcile_dataset)",
    )
    p.add_argument("--paths", type=int, default=100, help="sample paths a month (--quantiles)")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder keeping the fitted series (default: an empty temporary one)",
    )
    p.add_argument("--_generate", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._generate:
        _generate_child(args.reps, args.months, args.seed, args._generate, args.fmt)
        return
    settings = Settings(
        args.reps,
        args.months,
        args.seed,
        args.workers,
        args.scheduler,
        args.fmt,
        args.out,
        args.data,
        args.time_limit,
        args.quantiles,
        args.paths,
        args.cache,
    )
    run = Run(settings)
    if settings.time_limit is not None:
        _stop_at_time_limit(run, settings.time_limit)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        folder, counts, generating = _company(settings, work)
        run.figures["sample_generate_seconds"] = generating
        run.figures["reps"] = counts["reps"]
        run.figures["opportunities"] = counts["opportunities"]
        run.figures["accounts"] = counts["accounts"]
        run.figures["input_size_mb"] = round(
            sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1024**2, 1
        )
        measure(run, folder, work)
        run.figures["status"] = "complete"
    except BaseException as exc:
        run.figures["status"] = f"stopped in {run.figures['status']}: {type(exc).__name__}: {exc}"
        raise
    finally:
        run.write()
        shutil.rmtree(work, ignore_errors=True)
        print(_table(run.figures))


if __name__ == "__main__":
    main()
