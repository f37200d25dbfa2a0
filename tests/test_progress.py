"""Progress bars: on a terminal only, never under --quiet, and from a plan's kernels to the CLI."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading

import nbformat
import pytest
import xarray as xr

from revmodel import cube, forecast, progress
from revmodel import reconcile as rec
from revmodel.cli import main
from tests.conftest import NO_BAND_CALIBRATION


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, as a user's shell gives it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _bars_as_a_terminal_shows_them():
    progress.configure(None)
    yield
    progress.configure(None)


@pytest.fixture(scope="module")
def small_cube(small_company, tmp_path_factory):
    """The small company's cube, in memory and as a file."""
    tables, _ = small_company
    ds = cube.build_cube(tables, fiscal_year_start=11)
    path = tmp_path_factory.mktemp("progress-cube") / "cube.nc"
    cube.save_cube(ds, path)
    return ds, path


def expected_series(ds, measure: str = "bookings") -> int:
    """Nodes of the hierarchy counted from the cube: every distinct key of every level over
    the (segment, region, rep) cells with history up to ``as_of``, a rep under its manager."""
    hist = ds[measure].sel(month=slice(None, ds.attrs["as_of"])).fillna(0)
    populated = (hist != 0).any("month").to_series()
    cells = populated[populated].reset_index()[["segment", "region", "rep"]]
    managers = dict(zip(ds["rep"].values, ds["manager"].values, strict=True))
    cells["manager"] = cells["rep"].map(managers)
    return sum(len(cells[list(f)].drop_duplicates()) if f else 1 for _, f in rec.LEVELS)


def bar_total(text: str, desc: str, unit: str) -> int:
    """The ``N`` of the ``n/N`` a tqdm bar named ``desc`` counting ``unit`` drew (a finished
    bar is cleared from the terminal before its last count is drawn, so only N is sure)."""
    found = re.findall(rf"(?:^|\r){re.escape(desc)}: [^\r\n]*?\d+/(\d+) \[[^\]]*{unit}/s", text)
    assert found, f"no {desc!r} bar in {text[-2000:]!r}"
    assert len(set(found)) == 1, found
    return int(found[-1])


def test_a_bar_draws_on_a_terminal_only_and_never_under_quiet(monkeypatch):
    for stream, quiet, drawn in [
        (Terminal(), False, True),
        (io.StringIO(), False, False),  # a log file or a CI job
        (Terminal(), True, False),  # revmodel -q
    ]:
        monkeypatch.setattr(sys, "stderr", stream)
        progress.configure(False if quiet else None)
        with progress.bar(total=7, desc="forecast", unit="series") as b:
            b.update(7)
        assert (bar_total(stream.getvalue(), "forecast", "series") == 7) if drawn else True
        assert bool(stream.getvalue()) is drawn, stream.getvalue()


def test_in_a_plan_kernel_a_bar_writes_records_and_nothing_else(tmp_path, capsys, monkeypatch):
    records = tmp_path / "progress.jsonl"
    monkeypatch.chdir(tmp_path)
    # given relative (revmodel plan --out reports): kernels run in their notebooks' folder
    with progress.recording("progress.jsonl"):
        assert os.environ[progress.RECORDS_ENV] == str(records)
        for _ in progress.bar(range(5), desc="reconcile paths", unit="month"):
            pass
        b = progress.bar(total=3, desc="past origins", unit="origin", enabled=False)
        b.update(3)
        b.close()
    (step,) = progress.read_records(records).values()
    assert step == progress.Step("reconcile paths", "month", 5, 5, True)
    assert capsys.readouterr() == ("", "")


def test_follow_shows_another_process_records_as_bars_and_logs_each_step(
    tmp_path, monkeypatch, caplog
):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    records = tmp_path / "progress.jsonl"
    records.write_text('{"bar": "old", "desc": "earlier step", "unit": "it", "n": 1, '
                       '"total": 1, "done": true}\n')  # fmt: skip
    written = threading.Event()

    def kernel() -> None:
        with progress.recording(records):
            with progress.bar(total=45, desc="forecast", unit="series") as b:
                for _ in range(9):
                    b.update(5)
        written.set()

    with caplog.at_level(logging.INFO, logger="revmodel.progress"):
        with progress.follow(records, "02-forecast.ipynb"):
            threading.Thread(target=kernel).start()
            assert written.wait(10)
    assert bar_total(terminal.getvalue(), "02-forecast.ipynb: forecast", "series") == 45
    assert "earlier step" not in terminal.getvalue()
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and re.fullmatch(
        r"02-forecast\.ipynb: forecast 45/45 series in \d+ s", logged[0]
    ), logged


def test_the_forecast_counts_every_series_of_the_hierarchy(small_cube, tmp_path):
    ds, _ = small_cube
    records = tmp_path / "progress.jsonl"
    n = expected_series(ds)
    with progress.recording(records):
        fc = forecast.forecast_cube(ds, horizon=3, method="seasonal_naive", cache_dir=tmp_path)
        # again: every series from the cache, still counted, on a bar named by the caller
        forecast.forecast_cube(
            ds, horizon=3, method="seasonal_naive", cache_dir=tmp_path, progress="again"
        )
        forecast.forecast_cube(
            ds, horizon=3, method="seasonal_naive", cache_dir=tmp_path, progress=False
        )
    first, again = progress.read_records(records).values()
    assert first == progress.Step("forecast", "series", n, n, True)
    assert again == progress.Step("again", "series", n, n, True)
    assert fc.attrs["n_series"] == n and fc.attrs["cache_hits"] == 0


@pytest.mark.parametrize("quiet", [False, True], ids=["terminal", "quiet"])
def test_forecast_command_shows_series_on_a_terminal_and_nothing_when_quiet(
    small_cube, tmp_path, monkeypatch, quiet
):
    ds, path = small_cube
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = tmp_path / "fc.nc"
    args = ["forecast", str(path), "--horizon", "3", "--reconcile", "bottom_up", "--out", out]
    args += ["--calibrate-bands", "0"]  # the forecast's own bars (calibration runs more)
    assert main([*(["-q"] if quiet else []), *map(str, args)]) == 0
    text = terminal.getvalue()
    if quiet:
        assert text == ""
    else:
        n = expected_series(ds)
        assert bar_total(text, "forecast", "series") == n
        assert bar_total(text, "forecast steps", "step") == 3


def test_cube_command_draws_no_bar_into_a_log(small_company, tmp_path, monkeypatch):
    _, folder = small_company
    log = io.StringIO()  # stderr redirected to a file: no terminal
    monkeypatch.setattr(sys, "stderr", log)
    assert main(["cube", str(folder), "--out", str(tmp_path / "c.nc")]) in (0, 1)
    assert "\r" not in log.getvalue() and "%|" not in log.getvalue(), log.getvalue()


def test_follow_under_quiet_draws_and_logs_nothing(tmp_path, monkeypatch, caplog):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress.configure(False)  # revmodel -q
    records = tmp_path / "progress.jsonl"
    with caplog.at_level(logging.WARNING, logger="revmodel"):
        with progress.follow(records, "02-forecast.ipynb"):
            with progress.recording(records):
                with progress.bar(total=4, desc="forecast", unit="series") as b:
                    b.update(4)
    assert progress.read_records(records)  # the kernel's records were written
    assert terminal.getvalue() == "" and caplog.records == []


# --------------------------------------------------------------------------- read once


def test_the_data_notebook_takes_the_kept_exports_without_reading_them(small_company, tmp_path):
    from revmodel import publish, sources

    _, folder = small_company
    loaded = sources.load(folder)
    work = tmp_path / "work"
    publish.save_input(work, loaded)
    # the exports gone: a second read would fail; the notebook must take them from the run folder
    empty = tmp_path / "no-exports"
    empty.mkdir()
    params = {"data_dir": str(empty), "fiscal_year_start": 11}
    run = publish.run_notebooks(
        params, work, tmp_path / "executed", notebooks=("01-data.ipynb",), input_kept=True
    )
    nb = nbformat.read(run[0], as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert printed.startswith(loaded.summary())
    # the cube of the kept tables is the cube of the tables as read (through the same file)
    expected = cube.build_cube(loaded.tables, fiscal_year_start=11, currency=loaded.currency)
    publish.save_result(tmp_path / "direct", "cube", expected)
    xr.testing.assert_identical(
        publish.load_result(work, "cube"), publish.load_result(tmp_path / "direct", "cube")
    )


# --------------------------------------------------------------------------- a plan run (slow)


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """``revmodel plan`` of a 12-rep company on a terminal, no cycle given (the period is
    settled from the data), every read of the exports in this process counted."""
    import yaml

    from revmodel import sample, sources, versions

    root = tmp_path_factory.mktemp("progress-plan")
    data = root / "data"
    sample.write(sample.generate(reps=12, months=36), data)
    params = root / "plan.yaml"
    params.write_text(
        yaml.safe_dump(
            {"data_dir": str(data), "fiscal_year_start": 11, "horizon": 6, **NO_BAND_CALIBRATION}
        )
    )
    reads: list[str] = []
    real = sources.load

    def counted(*args, **kwargs):
        reads.append(str(args[0] if args else kwargs["data_dir"]))
        return real(*args, **kwargs)

    hashed: list[str] = []
    real_hash = versions.data_hash

    def counted_hash(source):
        hashed.append(str(source))
        return real_hash(source)

    terminal = Terminal()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sources, "load", counted)
        mp.setattr(versions, "data_hash", counted_hash)
        mp.setattr(sys, "stderr", terminal)
        code = main(["plan", "--params", str(params), "--out", str(root / "reports")])
    progress.configure(None)
    (html,) = sorted((root / "reports").glob("*/plan.html"))
    return {
        "code": code,
        "reads": reads,
        "hashed": hashed,
        "stderr": terminal.getvalue(),
        "pack": html.parent,
    }


@pytest.mark.slow
def test_a_plan_reads_its_exports_once(planned):
    assert planned["code"] == 0, planned["stderr"][-3000:]
    # once here (settling the period, kept for the notebooks and the pack), never again
    assert len(planned["reads"]) == 1
    # and its bytes hashed once, for the manifest and the plan version alike
    assert len(planned["hashed"]) == 1
    nb = nbformat.read(planned["pack"] / "notebooks" / "01-data.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "input_kept = True" in injected.source


@pytest.mark.slow
def test_a_plan_shows_the_forecast_of_every_series_on_the_terminal(planned):
    ds = xr.open_dataset(planned["pack"] / "plan.nc", group="cube").load()
    n = expected_series(ds)
    text = planned["stderr"]
    assert bar_total(text, "02-forecast.ipynb: forecast", "series") == n
    # the finished step logged as a line (after the codes that clear its bar)
    assert re.search(rf"02-forecast\.ipynb: forecast {n}/{n} series in \d+ s\n", text), text
    assert bar_total(text, "plan", "notebook") == 6


@pytest.mark.slow
def test_the_published_notebooks_carry_no_progress_bar(planned):
    notebooks = sorted((planned["pack"] / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 6
    for path in notebooks:
        text = path.read_text(encoding="utf-8")
        for mark in ("%|", "it/s]", "series/s", "widget-view", "tqdm"):
            assert mark not in text, f"{path.name} holds {mark!r}"


def test_parquet_parts_read_here_count_their_tasks(small_company, tmp_path):
    import shutil

    from revmodel import partitions, sources

    _, folder = small_company
    parts = tmp_path / "parts"
    shutil.copytree(folder, parts)
    (parts / "opportunities.csv").unlink()
    (parts / "opportunities").mkdir()
    opps = sources.load(folder).tables["opportunities"]
    for i in range(3):
        opps.iloc[i::3].to_parquet(parts / "opportunities" / f"part-{i}.parquet", index=False)
    records = tmp_path / "progress.jsonl"
    with progress.recording(records):
        partitions.load(parts, quarantine_dir=tmp_path / "q", deal_cells=True)
    (step,) = [s for s in progress.read_records(records).values() if s.unit == "task"]
    # one task a part at least, each counted once it ran
    assert step.desc == "load opportunities" and step.done
    assert step.n == step.total >= 3
