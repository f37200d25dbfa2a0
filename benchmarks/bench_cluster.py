"""Throughput on a dask.distributed cluster of separate processes: 1, 2 and 4 workers.

    nice -n 5 .venv/bin/python benchmarks/bench_cluster.py [--reps 300] [--months 48]
        [--workers 1 2 4] [--parts 8]

For each worker count, a ``dask scheduler`` and that many single-threaded
``dask worker`` processes are started on 127.0.0.1 (free ports), as on a cluster,
and two jobs are timed through the scheduler's address:

- ``load``: :func:`revmodel.partitions.load` of a sample company whose
  opportunities are ``--parts`` Parquet parts, as ``revmodel cube`` and ``revmodel
  plan`` load them (each part read, validated and reduced to deal cells on a worker,
  the parts' cells added up there); rows read per second;
- ``forecast``: :func:`revmodel.forecast.forecast_cube` of its cube at every node
  (horizon 12, empty cache: every series fitted); series per second;
- ``reconcile``: :func:`revmodel.forecast.reconcile_dataset` (mint_shrink, the default
  sample paths) as one task on a worker (:func:`revmodel.distributed.on_a_worker`, as
  ``revmodel forecast --scheduler`` runs it), its seconds; the peer, in the same run, is
  the same reconciliation on this machine, with the growth of this process's peak
  resident memory it causes (what the worker holds instead).

Writes ``benchmarks/results/bench_cluster.json`` (flat: ``<job>_<n>_workers_...``)
with the machine's cores and load average: on a 2-core machine, more than 2
workers only shows the overhead of sharing the cores; the scaling of a real
cluster is what each added worker's cores add.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULT = HERE / "results" / "bench_cluster.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_cluster(n_workers: int, folder: Path):
    """The address of a scheduler and ``n_workers`` worker processes on 127.0.0.1."""
    from dask.distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    dask = [sys.executable, "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    procs = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            **quiet,
        )
    ]
    for i in range(n_workers):
        args = ["worker", address, "--name", f"w{i}", "--nthreads", "1", "--no-nanny"]
        args += ["--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(folder)]
        procs.append(subprocess.Popen([*dask, *args], **quiet))
    try:
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(n_workers, timeout=180)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _company(folder: Path, reps: int, months: int, parts: int) -> int:
    from revmodel import sample

    tables = sample.generate(reps=reps, months=months)
    sample.write({k: tables[k] for k in ("accounts", "reps", "subscriptions")}, folder)
    from revmodel import partitions

    partitions.write_parts(tables["opportunities"], folder, "opportunities", parts)
    return len(tables["opportunities"])


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _measure(n: int, data: Path, work: Path, figures: dict):
    """The three jobs on ``n`` workers; returns the forecast (for the local peer)."""
    from revmodel import cube, distributed, forecast, partitions

    with local_cluster(n, work) as address:
        t0 = time.perf_counter()
        loaded = partitions.load(
            data, quarantine_dir=work / f"q{n}", scheduler=address, deal_cells=True
        )
        load_s = time.perf_counter() - t0
        ds = cube.build_cube(loaded.tables)
        t0 = time.perf_counter()
        fc = forecast.forecast_cube(
            ds, horizon=12, scheduler=address, cache_dir=work / f"cache{n}", progress=False
        )
        fc_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        distributed.on_a_worker(address, forecast.reconcile_dataset, fc, method="mint_shrink")
        figures[f"reconcile_{n}_workers_seconds"] = round(time.perf_counter() - t0, 2)
    rows = loaded.reports["opportunities"].rows_read
    figures[f"load_{n}_workers_seconds"] = round(load_s, 2)
    figures[f"load_{n}_workers_rows_per_second"] = round(rows / load_s)
    figures[f"forecast_{n}_workers_seconds"] = round(fc_s, 2)
    figures[f"forecast_{n}_workers_series_per_second"] = round(fc.attrs["n_series"] / fc_s, 2)
    figures["forecast_series"] = int(fc.attrs["n_series"])
    figures["opportunities"] = rows
    figures[f"load_average_1min_after_{n}_workers"] = round(os.getloadavg()[0], 2)
    return fc


def _local_reconcile(fc, figures: dict) -> None:
    """The peer: the same reconciliation in this process, its seconds and peak memory."""
    from revmodel import forecast

    figures["client_peak_rss_mb_before_local_reconcile"] = round(_peak_rss_mb(), 1)
    t0 = time.perf_counter()
    forecast.reconcile_dataset(fc, method="mint_shrink")
    figures["reconcile_on_the_client_seconds"] = round(time.perf_counter() - t0, 2)
    figures["client_peak_rss_mb_after_local_reconcile"] = round(_peak_rss_mb(), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--months", type=int, default=48)
    p.add_argument("--parts", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--out", type=Path, default=RESULT)
    args = p.parse_args()
    figures: dict[str, object] = {
        "reps": args.reps,
        "months": args.months,
        "parts": args.parts,
        "cpu_count": os.cpu_count(),
        "load_average_1min_start": round(os.getloadavg()[0], 2),
    }
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        _company(work / "data", args.reps, args.months, args.parts)
        for n in args.workers:
            fc = _measure(n, work / "data", work, figures)
        _local_reconcile(fc, figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"bench_cluster: {args.reps} reps x {args.months} months, {figures['opportunities']:,}")
    print(f"opportunities in {args.parts} parts, {figures['forecast_series']:,} series")
    print(f"{'workers':>8} {'load rows/s':>12} {'forecast series/s':>18} {'reconcile s':>12}")
    for n in args.workers:
        load = figures[f"load_{n}_workers_rows_per_second"]
        fc = figures[f"forecast_{n}_workers_series_per_second"]
        rec = figures[f"reconcile_{n}_workers_seconds"]
        print(f"{n:>8} {load:>12,} {fc:>18} {rec:>12}")
    print(
        f"reconcile on this machine: {figures['reconcile_on_the_client_seconds']} s, its peak "
        f"memory {figures['client_peak_rss_mb_before_local_reconcile']:,} -> "
        f"{figures['client_peak_rss_mb_after_local_reconcile']:,} MB"
    )


if __name__ == "__main__":
    main()
