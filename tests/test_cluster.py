"""The same job on a dask.distributed cluster of separate processes, and with a worker lost.

A scheduler and two single-threaded workers are started as their own processes on
127.0.0.1 (free ports, no dashboard), as an operator would start them on a cluster.
The cube built from Parquet parts on the cluster, and the forecast fitted there,
are identical to the ones made on this machine alone; a worker killed while it
holds forecast tasks does not stop the job (the scheduler gives its tasks to the
other worker), and the result is still identical.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import cli, cube, distributed, forecast, parameters, partitions, sample, sources
from revmodel.errors import ParameterError, RevmodelError
from tests.conftest import (
    assert_plan_ran_cleanly,
    free_port,
    run_revmodel,
    without_band_calibration,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _dask_default_scheduler_left_alone():
    """A client made here or in revmodel never becomes the process's default scheduler."""
    import dask

    before = dask.config.get("scheduler", None)
    yield
    assert dask.config.get("scheduler", None) == before


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with log.open("w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args], env=env, stdout=fh, stderr=subprocess.STDOUT
        )


@contextlib.contextmanager
def _cluster(folder: Path) -> Iterator[tuple[str, dict[str, subprocess.Popen]]]:
    """``(address, {name: worker process})`` of a scheduler and two workers on localhost."""
    from dask.distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        _start(
            ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            folder / "scheduler.log",
        )
    ]
    workers = {}
    for name in ("w1", "w2"):
        workers[name] = _start(
            [
                "worker", address, "--name", name, "--nthreads", "1", "--no-nanny",
                "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(folder),
            ],
            folder / f"{name}.log",
        )  # fmt: skip
        procs.append(workers[name])
    try:
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def cluster(tmp_path):
    """A cluster of the test's own (a test that kills a worker)."""
    with _cluster(tmp_path) as started:
        yield started


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """One cluster for the module's tests that only read and compute on it."""
    with _cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """:func:`_folders` written once for the module (the tests only read them)."""
    return _folders(tmp_path_factory.mktemp("company"))


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    """The same company twice: opportunities in one Parquet file, and in four parts."""
    tables = sample.generate(reps=40, months=30, seed=11)
    small = {k: tables[k] for k in ("accounts", "reps", "subscriptions")}
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    sample.write(small, whole)
    sample.write(small, parts)
    opps = tables["opportunities"]
    opps.to_parquet(whole / "opportunities.parquet", index=False)
    (parts / "opportunities").mkdir()
    n = len(opps)
    for i in range(4):
        chunk = opps.iloc[i * n // 4 : (i + 1) * n // 4]
        chunk.to_parquet(parts / "opportunities" / f"part-{i:04d}.parquet", index=False)
    return whole, parts


@pytest.mark.slow
def test_cube_from_parquet_parts_on_the_cluster_is_the_local_cube(
    shared_cluster, folders, tmp_path, capsys
):
    address, _ = shared_cluster
    whole, parts = folders
    assert cli.main(["cube", str(whole), "--out", str(tmp_path / "local.nc")]) == 0
    args = ["cube", str(parts), "--scheduler", address, "--out", str(tmp_path / "cluster.nc")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    opps = len(pd.read_parquet(whole / "opportunities.parquet"))
    assert f"opportunities/ (4 parts): {opps:,} rows read, {opps:,} accepted" in out
    local = cube.load_cube(tmp_path / "local.nc")
    xr.testing.assert_identical(cube.load_cube(tmp_path / "cluster.nc"), local)
    # and by populated cell
    args = [*args[:-1], str(tmp_path / "cells.nc"), "--layout", "cells"]
    assert cli.main(args) == 0
    xr.testing.assert_identical(cube.unstack_cells(cube.load_cube(tmp_path / "cells.nc")), local)


@contextlib.contextmanager
def _killing_w1_when_busy(address: str, workers: dict[str, subprocess.Popen]) -> Iterator[dict]:
    """While the block runs, worker w1 is killed (SIGKILL) as soon as it holds a task."""
    from dask.distributed import Client

    killed: dict[str, object] = {}

    def kill_w1_when_busy() -> None:
        with Client(address, set_as_default=False) as client:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                busy = {
                    info["name"]: len(client.processing().get(addr, ()))
                    for addr, info in client.scheduler_info()["workers"].items()
                }
                if busy.get("w1"):
                    workers["w1"].send_signal(signal.SIGKILL)
                    killed["tasks"] = busy["w1"]
                    return
                time.sleep(0.05)

    watcher = threading.Thread(target=kill_w1_when_busy)
    watcher.start()
    try:
        yield killed
    finally:
        watcher.join()


def _assert_w1_killed_and_w2_left(address: str, workers: dict, killed: dict) -> None:
    from dask.distributed import Client

    assert killed.get("tasks", 0) >= 1, "w1 was never seen holding a task"
    assert workers["w1"].wait(timeout=20) == -signal.SIGKILL
    with Client(address, set_as_default=False) as client:
        names = [w["name"] for w in client.scheduler_info()["workers"].values()]
    assert names == ["w2"]


@pytest.mark.slow
def test_forecast_completes_when_a_worker_is_killed_mid_run(cluster, tmp_path):
    address, workers = cluster
    ds = cube.build_cube(sample.generate(reps=120, months=36, seed=5))
    kwargs = {"horizon": 6, "progress": False, "method": "seasonal_naive"}
    local = forecast.forecast_cube(
        ds, cache_dir=tmp_path / "local", distributed_threshold=10**9, **kwargs
    )
    assert local.attrs["n_series"] > 2 * forecast.CHUNK_SIZE  # several tasks to share out

    with _killing_w1_when_busy(address, workers) as killed:
        remote = forecast.forecast_cube(
            ds, scheduler=address, cache_dir=tmp_path / "remote", **kwargs
        )
    _assert_w1_killed_and_w2_left(address, workers, killed)
    xr.testing.assert_identical(remote, local)


@pytest.mark.slow
def test_the_plans_load_completes_when_a_worker_is_killed_mid_run(cluster, folders, tmp_path):
    """The plan's load (parts validated and added up on the workers) loses w1 while w1 holds
    a part: the scheduler gives the part to w2, and the cube is the one made here."""
    address, workers = cluster
    whole, parts = folders
    local = sources.load(whole, quarantine_dir=tmp_path / "q1")
    with _killing_w1_when_busy(address, workers) as killed:
        there = partitions.load(
            parts, quarantine_dir=tmp_path / "q2", scheduler=address, deal_cells=True
        )
    _assert_w1_killed_and_w2_left(address, workers, killed)
    n = len(local.tables["opportunities"])
    assert there.reports["opportunities"].rows_accepted == n
    assert int(there.tables["opportunities"]["deals"].sum()) == n
    xr.testing.assert_identical(
        cube.build_cube(there.tables, layout="cells"),
        cube.build_cube(local.tables, layout="cells"),
    )


@pytest.mark.slow
def test_parts_loaded_on_the_cluster_are_the_parts_loaded_here(shared_cluster, folders, tmp_path):
    address, _ = shared_cluster
    _, parts = folders
    here = partitions.load(parts, quarantine_dir=tmp_path / "q1")
    there = partitions.load(parts, quarantine_dir=tmp_path / "q2", scheduler=address)
    for name, frame in here.tables.items():
        assert there.tables[name].equals(frame), name
    assert there.reports == here.reports


@pytest.mark.slow
def test_parts_reduced_on_the_workers_bring_back_deal_cells_not_rows(
    shared_cluster, folders, tmp_path
):
    address, _ = shared_cluster
    whole, parts = folders
    there = partitions.load(
        parts, quarantine_dir=tmp_path / "q1", scheduler=address, deal_cells=True
    )
    n = len(pd.read_parquet(whole / "opportunities.parquet"))
    cells = there.tables["opportunities"]
    assert "opportunity_id" not in cells and len(cells) < n
    assert int(cells["deals"].sum()) == there.reports["opportunities"].rows_accepted == n
    local = sources.load(whole, quarantine_dir=tmp_path / "q2")
    for layout in cube.LAYOUTS:
        xr.testing.assert_identical(
            cube.build_cube(there.tables, layout=layout),
            cube.build_cube(local.tables, layout=layout),
        )


#: A HubSpot-style deals export: its own column names, stage and type ids, no segment or
#: region on the deal (they come from the company and the owner), no product.
HUBSPOT_DEALS = {
    "opportunity_id": "Record ID",
    "amount": "Amount",
    "close_date": "Close Date",
    "created_date": "Create Date",
    "stage": "Deal Stage",
    "type": "Deal Type",
    "account_id": "Associated Company ID",
    "rep_id": "Deal owner ID",
}
HUBSPOT_STAGES = {
    "won": "closedwon",
    "lost": "closedlost",
    "prospecting": "appointmentscheduled",
    "qualification": "qualifiedtobuy",
    "proposal": "presentationscheduled",
    "negotiation": "contractsent",
}
HUBSPOT_TYPES = {"new": "newbusiness", "expansion": "existingbusiness", "renewal": "renewal"}
COMPANIES = {
    "account_id": "Company ID",
    "account_name": "Company name",
    "employees": "Number of Employees",
    "segment": "Tier",
    "region": "Sales Region",
    "annual_revenue": "Annual Revenue",
}
OWNERS = {
    "rep_id": "Owner ID",
    "rep_name": "Name",
    "manager": "Manager",
    "region": "Team Region",
    "segment": "Team Segment",
    "hire_date": "Start Date",
}


def _mapping() -> str:
    def block(columns: dict[str, str]) -> str:
        return "{" + ", ".join(f"{k}: {v}" for k, v in columns.items()) + "}"

    values = {
        "stage": {v: k for k, v in HUBSPOT_STAGES.items()},
        "type": {v: k for k, v in HUBSPOT_TYPES.items()},
    }
    return (
        "tables:\n"
        f"  opportunities:\n    columns: {block(HUBSPOT_DEALS)}\n"
        f"    values: {{stage: {block(values['stage'])}, type: {block(values['type'])}}}\n"
        f"  accounts:\n    file: companies.csv\n    columns: {block(COMPANIES)}\n"
        f"  reps:\n    file: owners.csv\n    columns: {block(OWNERS)}\n"
    )


def _hubspot_company(folder: Path, parts: int) -> pd.DataFrame:
    """A small company as a HubSpot portal and a billing system export it: deals (in
    ``parts`` Parquet parts, or one file), companies, owners, subscriptions, the deals'
    change history and the managers' forecast calls; no invoices.
    Amounts carry quarters of a pound (exact in binary, so sums in any order agree)."""
    from revmodel import sample_calls

    tables = sample.generate(reps=8, months=30, seed=21)
    rng = np.random.default_rng(21)
    deals = (
        tables["opportunities"]
        .assign(
            amount=lambda t: t["amount"] + rng.choice([0.0, 0.25, 0.5, 0.75], len(t)),
            stage=lambda t: t["stage"].map(HUBSPOT_STAGES),
            type=lambda t: t["type"].map(HUBSPOT_TYPES),
        )[list(HUBSPOT_DEALS)]
        .rename(columns=HUBSPOT_DEALS)
    )
    folder.mkdir(parents=True)
    tables["accounts"][list(COMPANIES)].rename(columns=COMPANIES).to_csv(
        folder / "companies.csv", index=False
    )
    tables["reps"][list(OWNERS)].rename(columns=OWNERS).to_csv(folder / "owners.csv", index=False)
    tables["subscriptions"].to_csv(folder / "subscriptions.csv", index=False)
    sample.write({"opportunity_history": tables["opportunity_history"]}, folder)
    end = pd.Timestamp(tables["opportunity_history"]["changed_at"].max()).normalize()
    calls = sample_calls.for_sample(tables, end - pd.DateOffset(months=12), end, 21, 2)
    calls.to_csv(folder / sample_calls.FILE, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    (folder / "mapping.yaml").write_text(_mapping(), encoding="utf-8")
    partitions.write_parts(deals, folder, "opportunities", parts)
    return deals


def _plan_project(folder: Path, parts: int) -> Path:
    _hubspot_company(folder / "data", parts)
    (folder / "plan.yaml").write_text(
        "data_dir: data\nfiscal_year_start: 2\ncurrency: GBP\nhorizon: 6\n"
        "reconcile_method: wls_struct\n",
        encoding="utf-8",
    )
    # the bands are calibrated in the plan's own process, from the cube compared here
    without_band_calibration(folder / "plan.yaml")
    return folder


@pytest.mark.slow
def test_plan_on_the_cluster_is_the_plan_made_here(shared_cluster, tmp_path):
    """``revmodel plan --scheduler``: the deals, in Parquet parts, are read, validated and
    added up on the workers, and the forecast fitted there; every result of the pack is
    the one the plan makes of the same export in one file on this machine alone."""
    address, _ = shared_cluster
    here = _plan_project(tmp_path / "here", parts=0)
    there = _plan_project(tmp_path / "there", parts=3)
    runs = {
        "here": run_revmodel(["plan", "--params", "plan.yaml"], cwd=here),
        "there": run_revmodel(["plan", "--params", "plan.yaml", "--scheduler", address], cwd=there),
    }
    for run in runs.values():
        assert_plan_ran_cleanly(run)
    packs = {
        name: project / runs[name].stdout.strip().splitlines()[-1]
        for name, project in (("here", here), ("there", there))
    }
    assert packs["here"].parent.name == packs["there"].parent.name  # the same cycle
    # the same sections, what changed and the value add (which follow each deal) included
    nav = {
        name: re.findall(
            r'<a href="#([a-z-]+)">', html.read_text(encoding="utf-8").split("</nav>")[0]
        )
        for name, html in packs.items()
    }
    assert nav["there"] == nav["here"]
    assert {"summary", "forecast", "changes", "value-add", "kpis"} <= set(nav["here"])
    manifests = {
        name: json.loads((html.parent / "manifest.json").read_text(encoding="utf-8"))
        for name, html in packs.items()
    }
    assert manifests["there"]["sections"] == manifests["here"]["sections"]
    import netCDF4

    groups = {}
    for name, html in packs.items():
        with netCDF4.Dataset(html.parent / "plan.nc") as nc:
            groups[name] = set(nc.groups)
    assert groups["there"] == groups["here"]
    assert {"cube", "forecast", "reconciled", "capacity", "quota", "kpis"} <= groups["here"]
    for group in sorted(groups["here"]):
        with (
            xr.open_dataset(packs["here"].parent / "plan.nc", group=group) as a,
            xr.open_dataset(packs["there"].parent / "plan.nc", group=group) as b,
        ):
            here_ds, there_ds = a.load(), b.load()
            # how many fits came from this machine's cache is the run's, not the plan's
            fits = [
                sum(int(ds.attrs.pop(k, 0)) for k in ("refits", "cache_hits"))
                for ds in (here_ds, there_ds)
            ]
            assert fits[0] == fits[1], group
            xr.testing.assert_identical(there_ds, here_ds)
    with xr.open_dataset(packs["there"].parent / "plan.nc", group="cube") as ds:
        assert ds.attrs["fiscal_year_start"] == 2 and ds.attrs["currency"] == "GBP"
        deals = pd.read_parquet(here / "data" / "opportunities.parquet")
        won = deals["Deal Stage"] == "closedwon"
        assert float(ds["bookings"].sum()) == deals.loc[won, "Amount"].sum()
    with xr.open_dataset(packs["there"].parent / "plan.nc", group="kpis") as k:
        assert "sales_cycle" in k and int(np.isfinite(k["sales_cycle"]).sum()) > 0


def _company_with_history(folder: Path) -> tuple[Path, Path]:
    """A company with its pipeline history and forecast calls, as CSV files (``whole``) and with
    the opportunities as five Parquet parts beside the same other files (``parts``)."""
    import shutil

    from revmodel import sample_calls

    tables = sample.generate(reps=10, months=24, seed=7)
    hist = tables["opportunity_history"]  # an export that tracks two deals in three
    tables["opportunity_history"] = hist[hist["opportunity_id"].str[-1].isin(list("0123456"))]
    whole, parts = folder / "whole", folder / "parts"
    sample.write(tables, whole)
    end = tables["opportunities"]["created_date"].max()
    begin = end - pd.DateOffset(months=23)
    calls = sample_calls.for_sample(tables, pd.Timestamp(begin), pd.Timestamp(end), 7, 11)
    calls.to_csv(whole / sample_calls.FILE, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    shutil.copytree(whole, parts)
    (parts / "opportunities.csv").unlink()
    (parts / "opportunities").mkdir()
    opps = sources.load(whole).tables["opportunities"]  # typed as the validation types them
    n = len(opps)
    for i in range(5):
        part = opps.iloc[i * n // 5 : (i + 1) * n // 5]
        part.to_parquet(parts / "opportunities" / f"part-{i:04d}.parquet", index=False)
    return whole, parts


def test_a_pack_from_parquet_parts_shows_what_changed_and_the_value_add_as_a_local_pack(
    tmp_path, monkeypatch
):
    """The pipeline's changes and the calls' value add follow each deal: with the deals in
    Parquet parts, the deals the history names are labelled where their parts are read
    (no deal row comes back), and the pack shows the same tables as from one file."""
    from revmodel import history, publish

    monkeypatch.setenv("REVMODEL_OVERRIDES_URL", f"sqlite:///{tmp_path / 'none.db'}")
    whole, parts = _company_with_history(tmp_path)
    local = sources.load(whole)
    there = partitions.load(parts, quarantine_dir=tmp_path / "q", deal_cells=True)
    assert "opportunity_id" not in there.tables["opportunities"]  # cells, not rows
    labels = there.tables[history.LABELS_TABLE]
    named = set(local.tables["opportunity_history"]["opportunity_id"].astype(str))
    known = set(local.tables["opportunities"]["opportunity_id"].astype(str))
    assert sorted(labels["opportunity_id"]) == sorted(named & known)  # only the history's deals
    assert len(labels) < len(known) and len(labels) > 0
    assert list(labels.columns) == ["opportunity_id", "region", "manager", "rep", "segment"]
    ds = cube.build_cube(local.tables)
    cycle = parameters.next_cycle(str(ds.attrs["as_of"])[:7], 1, "end")
    shown = {}
    for name, folder, loaded in (("here", whole, local), ("there", parts, there)):
        work = tmp_path / f"work-{name}"
        publish.save_result(work, "cube", ds)
        publish.save_tables(work, loaded.tables)
        params = {"cycle": cycle, "data_dir": str(folder)}
        shown[name] = publish.pack_tables(work, params)
    keys = ("changes_week", "changes_quarter", "value_add", "value_add_by_week")
    assert set(keys) <= set(shown["here"])
    for key in keys:
        pd.testing.assert_frame_equal(shown["there"][key], shown["here"][key], check_like=False)
    # the week's waterfall ends on the open pipeline of the history's last day, per deal
    week = shown["there"]["changes_week"].iloc[0]
    assert week["closing"] == pytest.approx(shown["here"]["changes_quarter"].iloc[0]["closing"])


@pytest.fixture(scope="module")
def small_forecast(tmp_path_factory) -> tuple[xr.Dataset, xr.Dataset]:
    """A small cube (12 reps, 30 months) and its base forecast, fitted here."""
    ds = cube.build_cube(sample.generate(reps=12, months=30, seed=3))
    fc = forecast.forecast_cube(
        ds, horizon=4, progress=False, cache_dir=tmp_path_factory.mktemp("fits")
    )
    return ds, fc


@pytest.mark.slow
def test_the_reconciliation_runs_on_a_worker_and_is_the_one_made_here(
    shared_cluster, small_forecast
):
    """Under a scheduler the reconciliation is one task on a worker process (its covariance
    and sample paths held there); the coherent forecast is the one made on this machine."""
    address, workers = shared_cluster
    ds, fc = small_forecast
    here, info_here = forecast.reconcile_forecast(fc, ds, method="mint_shrink")
    there, info_there = forecast.reconcile_forecast(fc, ds, method="mint_shrink", scheduler=address)
    xr.testing.assert_identical(there, here)
    assert info_there["method"] == info_here["method"] == "mint_shrink"
    ran = info_there["worker"]
    assert ran["pid"] != os.getpid()
    assert ran["pid"] in {p.pid for p in workers.values()}
    assert "worker" not in info_here
    # the whole dataset, sample paths and all: every node's band drawn on the worker
    settings = forecast.rec.SampleSettings(n_samples=300, seed=4)
    out_here, _ = forecast.reconcile_dataset(fc, method="wls_struct", settings=settings)
    out_there, info = distributed.on_a_worker(
        address, forecast.reconcile_dataset, fc, method="wls_struct", settings=settings
    )
    xr.testing.assert_identical(out_there, out_here)
    assert info["worker"]["pid"] in {p.pid for p in workers.values()}
    total = out_there["node_mean"].sel(node="total")
    reps = out_there["node_mean"].where(out_there["level"] == forecast.rec.BOTTOM_LEVEL).sum("node")
    np.testing.assert_allclose(total, reps)  # coherent: the reps add up to the company
    # an error on the worker is the one made here, said once (not run again)
    with pytest.raises(ParameterError, match="unknown reconciliation method 'magic'; use one of"):
        distributed.on_a_worker(address, forecast.reconcile_dataset, fc, method="magic")


@pytest.mark.slow
def test_revmodel_forecast_with_a_scheduler_writes_the_local_forecast(
    shared_cluster, small_forecast, tmp_path, capsys
):
    address, _ = shared_cluster
    ds, _ = small_forecast
    cube.save_cube(ds, tmp_path / "cube.nc")
    outs = {}
    for name, extra in (("here", []), ("there", ["--scheduler", address])):
        outs[name] = tmp_path / f"{name}.nc"
        args = ["forecast", str(tmp_path / "cube.nc"), "--horizon", "4", "--out", str(outs[name])]
        assert cli.main([*args, "--calibrate-bands", "0", *extra]) == 0
    printed = capsys.readouterr().out
    assert printed.count("reconciled with mint_shrink, quantiles from") == 2
    with xr.open_dataset(outs["here"]) as a, xr.open_dataset(outs["there"]) as b:
        here, there = a.load(), b.load()
    for ds_ in (here, there):  # how many fits came from this machine's cache is the run's
        ds_.attrs.pop("refits", None), ds_.attrs.pop("cache_hits", None)
    xr.testing.assert_identical(there, here)


@contextlib.contextmanager
def _killing_the_busy_worker(address: str, workers: dict[str, subprocess.Popen]) -> Iterator[dict]:
    """While the block runs, the first worker seen holding a task is killed (SIGKILL)."""
    from dask.distributed import Client

    killed: dict[str, object] = {}

    def kill_when_busy() -> None:
        with Client(address, set_as_default=False) as client:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not killed.get("stop"):
                for addr, info in client.scheduler_info()["workers"].items():
                    if client.processing().get(addr):
                        workers[info["name"]].send_signal(signal.SIGKILL)
                        killed["name"] = info["name"]
                        return
                time.sleep(0.02)

    watcher = threading.Thread(target=kill_when_busy)
    watcher.start()
    try:
        yield killed
    finally:
        killed["stop"] = True
        watcher.join()


@pytest.mark.slow
def test_the_reconciliation_completes_when_its_worker_is_killed(
    cluster, small_forecast, monkeypatch
):
    """The worker reconciling is killed: the base forecast it held is sent again and the
    reconciliation run on the other worker, with the result made here. Lost as many times
    as it is tried, the task ends with a message saying so."""
    address, workers = cluster
    _, fc = small_forecast
    settings = forecast.rec.SampleSettings(n_samples=2_000, seed=9)  # some seconds of work
    here, _ = forecast.reconcile_dataset(fc, method="mint_shrink", settings=settings)
    with _killing_the_busy_worker(address, workers) as killed:
        there, info = distributed.on_a_worker(
            address, forecast.reconcile_dataset, fc, method="mint_shrink", settings=settings
        )
    assert killed.get("name") in workers, "no worker was seen reconciling"
    dead = workers[killed["name"]]
    assert dead.wait(timeout=20) == -signal.SIGKILL
    alive = {p.pid for p in workers.values()} - {dead.pid}
    assert info["worker"]["pid"] in alive
    assert info["attempts"] == 2
    xr.testing.assert_identical(there, here)
    monkeypatch.setattr(distributed, "ATTEMPTS", 1)
    left = {k: v for k, v in workers.items() if v is not dead}
    with _killing_the_busy_worker(address, left), pytest.raises(RevmodelError) as err:
        distributed.on_a_worker(
            address, forecast.reconcile_dataset, fc, method="mint_shrink", settings=settings
        )
    assert str(err.value) == (
        f"reconcile_dataset: the worker of {address} running it was lost on every try (1); "
        "see the workers' logs (a worker out of memory is killed)"
    )


@pytest.mark.slow
def test_local_cluster_workers_keep_the_allocators_own_trim_and_one_blas_thread(monkeypatch):
    """dask's MALLOC_TRIM_THRESHOLD_ turns off glibc's adaptive mmap threshold: a band's large
    temporaries were mapped and unmapped page by page (73 s against 17 s for a 2,000-rep
    band). The local cluster's workers start without it, and with one BLAS thread."""
    import os

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    names = ("MALLOC_TRIM_THRESHOLD_", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    with distributed.local_cluster(2) as client:
        env = client.run(lambda: {k: os.environ.get(k) for k in names})
        assert client.submit(sum, [1, 2], pure=False).result() == 3
    assert len(env) == 2
    for got in env.values():
        assert got == {
            "MALLOC_TRIM_THRESHOLD_": None,
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
