"""The ``revmodel`` command line.

Each command declares its options beside its handler, and the handler calls
the domain functions with typed arguments; results go to stdout as plain
text, progress goes through :mod:`logging` to stderr (``-v`` for more,
``-q`` for less). Bad input never reaches the user as a traceback: a
:class:`revmodel.errors.RevmodelError` is printed as ``error: <message>``
and its exit code returned.

Adding a command is a few lines::

    @cli.command("snapshot")
    @click.argument("data_dir", metavar="DIR")
    @click.option("--out", required=True, help="...")
    def snapshot_cmd(data_dir: str, out: str) -> int:
        from revmodel import pipeline

        click.echo(pipeline.snapshot(data_dir, out=out))
        return 0

Import domain modules inside the handler so ``revmodel --help`` stays quick.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from revmodel import config
from revmodel.errors import DataError, ParameterError, RevmodelError

logger = logging.getLogger("revmodel")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests swap it), above
    the progress bars drawn there (``tqdm.write`` clears and redraws them around the line)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own rule: a bad record never stops the run
            self.handleError(record)


def configure_logging(verbosity: int = 0) -> None:
    """Progress of the ``revmodel`` loggers on stderr: -1 warnings, 0 info, 1+ debug."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Open revenue-planning workbench.",
)
@click.option("-v", "--verbose", count=True, help="more progress detail (repeatable)")
@click.option("-q", "--quiet", is_flag=True, help="only warnings and errors on stderr")
def cli(verbose: int, quiet: bool) -> None:
    from revmodel import progress

    configure_logging(-1 if quiet else verbose)
    # bars on a terminal only (never in a log or CI output), and none at all with --quiet
    progress.configure(False if quiet else None)


# --------------------------------------------------------------------------- data


@cli.command("sample", help="write the deterministic sample company as CSV files")
@click.option("--out", required=True, help="folder to write the five CSV files into")
@click.option(
    "--reps", type=int, default=config.SAMPLE_REPS, show_default=True, help="number of reps"
)
@click.option(
    "--months", type=int, default=config.SAMPLE_MONTHS, show_default=True, help="months of history"
)
@click.option("--seed", type=int, default=config.SAMPLE_SEED, show_default=True, help="seed")
@click.option("--end", default=None, help="last month of history, YYYY-MM (default: fixed end)")
def sample_cmd(out: str, reps: int, months: int, seed: int, end: str | None) -> int:
    from revmodel import sample

    for path, rows in sample.write_sample(out, reps=reps, months=months, seed=seed, end=end):
        click.echo(f"{path}: {rows} rows")
    return 0


@cli.command("validate", help="check a data folder and quarantine bad rows")
@click.argument("data_dir", metavar="DIR")
@click.option("--mapping", default=None, help="mapping YAML from your export to the schema")
@click.option("--quarantine", default=None, help="quarantine folder (default DIR/quarantine)")
@click.option("--segment-bands", default=None, hidden=True)
@click.option(
    "--scheduler",
    default=None,
    help="dask.distributed scheduler address: a table given as a folder of Parquet parts "
    "is read and validated part by part on its workers",
)
def validate_cmd(
    data_dir: str,
    mapping: str | None,
    quarantine: str | None,
    segment_bands: str | None,
    scheduler: str | None,
) -> int:
    from revmodel import partitions, sources

    bands = sources.parse_segment_bands(segment_bands, "--segment-bands") if segment_bands else None
    result = partitions.load(
        data_dir,
        mapping=mapping,
        quarantine_dir=Path(quarantine) if quarantine else Path(data_dir) / "quarantine",
        segment_bands=bands,
        scheduler=scheduler,
    )
    click.echo(result.summary())
    return result.status


@cli.command("map", help="draft a mapping file from your exports' headers and values")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--out", default=None, help="write the draft here (default: print it)")
@click.option("--force", is_flag=True, help="replace the --out file if it exists")
def map_cmd(files: tuple[str, ...], out: str | None, force: bool) -> int:
    from revmodel import mapdraft

    if out is not None:
        mapdraft.check_out(out, force=force)
    draft = mapdraft.draft(files)
    text = mapdraft.to_yaml(draft)
    for line in mapdraft.report_lines(draft):
        click.echo(line, err=True)
    if out is None:
        click.echo(text, nl=False)
    else:
        mapdraft.write(text, out, force=force)
        click.echo(mapdraft.next_step(draft, out), err=True)
    return mapdraft.exit_code(draft)


def fiscal_calendar_options(command):
    """``--fiscal-year-start`` and ``--fiscal-year-naming``, declared once for every command."""
    command = click.option(
        "--fiscal-year-naming",
        type=click.Choice(["end", "start"]),
        default=config.FISCAL_YEAR_NAMING,
        show_default=True,
        help="name fiscal years by the calendar year they end or start in",
    )(command)
    return click.option(
        "--fiscal-year-start",
        type=int,
        default=config.FISCAL_YEAR_START,
        show_default=True,
        help="first month of the fiscal year, 1-12",
    )(command)


@cli.command("cube", help="build the revenue cube from a data folder")
@click.argument("data_dir", metavar="DIR")
@click.option("--mapping", default=None, help="mapping YAML")
@fiscal_calendar_options
@click.option("--as-of", default=None, help="last month of actuals, YYYY-MM")
@click.option("--out", required=True, help="output file: .nc writes NetCDF, .zarr writes Zarr")
@click.option(
    "--scheduler",
    default=None,
    help="dask.distributed scheduler address: a table given as a folder of Parquet parts "
    "is read and validated part by part on its workers",
)
@click.option(
    "--layout",
    default="dense",
    show_default=True,
    help="dense: every segment x region x rep series; cells: only the series holding data",
)
def cube_cmd(
    data_dir: str,
    mapping: str | None,
    fiscal_year_start: int,
    fiscal_year_naming: str,
    as_of: str | None,
    out: str,
    scheduler: str | None,
    layout: str,
) -> int:
    from revmodel import cube, kpi, partitions, progress

    path = Path(out)
    if path.suffix.lower() not in (".nc", ".zarr"):
        raise ParameterError(f"--out {out}: cube files end in .nc (NetCDF) or .zarr (Zarr).")
    steps = progress.bar(total=4, desc="cube", unit="step")
    steps.set_postfix_str("load + validate")
    # opportunities in Parquet parts are reduced to deal cells where they are read
    result = partitions.load(data_dir, mapping=mapping, scheduler=scheduler, deal_cells=True)
    steps.update()
    click.echo(result.summary())
    if result.status == 2:
        steps.close()
        return 2
    steps.set_postfix_str("build")
    ds = cube.build_cube(
        result.tables,
        fiscal_year_start=fiscal_year_start,
        naming=fiscal_year_naming,
        as_of=as_of,
        currency=result.currency,
        layout=layout,
    )
    steps.update()
    steps.set_postfix_str("validate")
    cube.validate_cube(ds)
    steps.update()
    steps.set_postfix_str("save")
    cube.save_cube(ds, path)
    steps.update()
    steps.close()
    click.echo(kpi.cube_summary(ds))
    click.echo(f"Wrote {path}")
    return 0


# --------------------------------------------------------------------------- pipeline history


@cli.command("snapshot", help="store today's opportunities as a dated snapshot (DIR/snapshots)")
@click.argument("data_dir", metavar="DIR")
@click.option("--mapping", default=None, help="mapping YAML")
@click.option("--as-of", default=None, help="date of the snapshot, YYYY-MM-DD (default: today)")
def snapshot_cmd(data_dir: str, mapping: str | None, as_of: str | None) -> int:
    from revmodel import snapshots

    snap, summary = snapshots.take_snapshot(data_dir, mapping=mapping, as_of=as_of)
    click.echo(summary)
    click.echo(
        f"snapshot {snap.day:%Y-%m-%d}: {snap.rows:,} opportunities "
        f"({snap.open_rows:,} open) stored in {snap.path}"
    )
    return 0


@cli.command("changes", help="what changed in the pipeline of a period: the waterfall")
@click.argument("data_dir", metavar="DIR")
@click.option("--mapping", default=None, help="mapping YAML")
@click.option("--from", "start", required=True, help="first day of the changes, YYYY-MM-DD")
@click.option("--to", "end", required=True, help="last day of the changes, YYYY-MM-DD")
@click.option(
    "--period",
    default=None,
    help="close dates: FY2027-Q1, FY2027 or START:END (default: the fiscal quarter of --to)",
)
@click.option(
    "--by",
    type=click.Choice(["total", "region", "manager", "rep", "segment"]),
    default="total",
    show_default=True,
    help="rows per member of this level, after the total",
)
@click.option("--out", required=True, help="waterfall CSV")
@click.option("--deals", default=None, help="CSV of the deals behind each bar")
@fiscal_calendar_options
def changes_cmd(
    data_dir: str,
    mapping: str | None,
    start: str,
    end: str,
    period: str | None,
    by: str,
    out: str,
    deals: str | None,
    fiscal_year_start: int,
    fiscal_year_naming: str,
) -> int:
    from revmodel import history

    request = history.ChangesRequest(
        data_dir=data_dir,
        start=start,
        end=end,
        out=out,
        mapping=mapping,
        period=period,
        by=by,
        deals=deals,
        fiscal_year_start=fiscal_year_start,
        naming=fiscal_year_naming,
    )
    _, lines = history.changes(request)
    for line in lines:
        click.echo(line)
    return 0


# --------------------------------------------------------------------------- models


@cli.command("forecast", help="forecast a cube measure at every level of the hierarchy")
@click.argument("cube_file", metavar="CUBE")
@click.option("--horizon", type=int, required=True, help="months to forecast")
@click.option("--measure", default="bookings", show_default=True, help="measure to forecast")
@click.option(
    "--reconcile",
    default="mint_shrink",
    show_default=True,
    help="bottom_up | top_down | ols | wls_struct | mint_shrink | none",
)
@click.option("--scheduler", default=None, help="dask.distributed scheduler address")
@click.option(
    "--calibrate-bands",
    type=int,
    default=config.BAND_CALIBRATION_FOLDS,
    show_default=True,
    help="past origins the reconciled bands are calibrated on (fewer when the history is "
    "short; 0: the models' own bands)",
)
@click.option("--out", required=True, help="output file (.nc or .zarr)")
def forecast_cmd(
    cube_file: str,
    horizon: int,
    measure: str,
    reconcile: str,
    scheduler: str | None,
    calibrate_bands: int,
    out: str,
) -> int:
    from revmodel import backtest, forecast, progress
    from revmodel.cube import load_cube

    path = Path(out)
    if path.suffix not in (".nc", ".zarr"):
        raise ParameterError(f"--out {path}: use a .nc (NetCDF) or .zarr (Zarr) file name")
    if calibrate_bands < 0:
        raise ParameterError(f"--calibrate-bands {calibrate_bands}: use 0 or more past origins")
    steps = progress.bar(total=4 if calibrate_bands else 3, desc="forecast steps", unit="step")
    steps.set_postfix_str("load the cube")
    ds = load_cube(cube_file)
    steps.update()
    calibration, cal_note = None, ""
    if reconcile != "none":  # with 0 origins: no forecast run, only the note saying so
        steps.set_postfix_str("calibrate the bands")
        calibration, cal_note = backtest.calibration_for(
            ds, horizon, calibrate_bands, measure=measure, reconcile=reconcile
        )
        steps.update(1 if calibrate_bands else 0)
    steps.set_postfix_str("forecast + reconcile")
    fc, note = forecast.forecast_reconciled(
        ds, measure=measure, horizon=horizon, reconcile=reconcile, scheduler=scheduler,
        calibration=calibration,
    )  # fmt: skip
    if cal_note:
        fc.attrs["band_calibration_note"] = cal_note
    steps.update()
    steps.set_postfix_str("write")
    if path.suffix == ".zarr":
        fc.to_zarr(path, mode="w", zarr_format=2, consolidated=True)
    else:
        fc.to_netcdf(path)
    steps.update()
    steps.close()
    click.echo(forecast.summarize(fc))
    click.echo(f"{note}{'; ' + cal_note if cal_note else ''}; written to {path}")
    return 0


@cli.command("backtest", help="rolling-origin backtest of the forecast")
@click.argument("cube_file", metavar="CUBE")
@click.option("--horizon", type=int, required=True, help="months ahead")
@click.option("--folds", type=int, default=4, show_default=True, help="number of origins")
@click.option("--measure", default="bookings", show_default=True, help="measure")
@click.option("--out", default=None, help="write the table as CSV or JSON")
def backtest_cmd(cube_file: str, horizon: int, folds: int, measure: str, out: str | None) -> int:
    from revmodel import backtest
    from revmodel.cube import load_cube

    path = Path(out) if out else None
    if path is not None and path.suffix.lower() not in (".csv", ".json"):
        raise ParameterError(f"--out {path}: write the table as .csv or .json")
    result = backtest.rolling_origin(
        load_cube(cube_file), horizon=horizon, folds=folds, measure=measure
    )
    table = backtest.summary_table(result)
    click.echo(backtest.format_table(table, result))
    if path is not None:
        backtest.write_table(table, path)
        click.echo(f"Wrote {path}")
    return 0


# --------------------------------------------------------------------------- plans


@cli.command("territories", help="assign accounts to reps, balanced and low-disruption")
@click.argument("data_dir", metavar="DATA_DIR")
@click.option("--mapping", default=None, help="mapping YAML")
@click.option("--max-moves", type=int, default=None, help="most accounts that may change rep")
@click.option(
    "--locked",
    default=None,
    help="file of account ids that must stay with their rep (one per line, or a CSV with an account_id column)",
)
@click.option(
    "--tolerance",
    type=float,
    default=0.05,
    show_default=True,
    help="balance tolerance around the mean potential",
)
@click.option(
    "--as-of",
    default=None,
    help="plan start date YYYY-MM-DD: reps who left before it hand over their accounts (default: today)",
)
@click.option(
    "--out", required=True, help="assignment CSV (the balance report is written beside it)"
)
def territories_cmd(
    data_dir: str,
    mapping: str | None,
    max_moves: int | None,
    locked: str | None,
    tolerance: float,
    as_of: str | None,
    out: str,
) -> int:
    from revmodel import sources, territory

    tables = sources.load(data_dir, mapping=mapping).tables
    for name in ("accounts", "reps"):
        if tables.get(name) is None or len(tables[name]) == 0:
            raise DataError(
                f"{data_dir}: territories need a non-empty {name} table; add {name}.csv "
                "(or map your export onto it with --mapping)."
            )
    accounts = territory.segment_accounts(tables["accounts"])
    plan = territory.assign_territories(
        accounts,
        tables["reps"],
        territory.account_potential(accounts, tables.get("opportunities")),
        max_moves=max_moves,
        locked=territory.read_locked(locked) if locked else (),
        balance_tolerance=tolerance,
        as_of=as_of,
    )
    paths = plan.save(out)
    click.echo(territory.balance_report(plan))
    click.echo()
    for kind, p in paths.items():
        click.echo(f"wrote {kind}: {p}")
    return 0


@cli.command("init", help="create a planning project for a new company in DIR")
@click.argument("folder", metavar="DIR")
def init_cmd(folder: str) -> int:
    from revmodel import project

    written = project.init_project(folder)
    root = Path(folder)
    click.echo(f"planning project in {root}: {len(written)} files")
    click.echo(f"  edit {root / project.PLAN_FILE}, put your exports in {root / 'data'},")
    click.echo(f"  then run `revmodel plan` in {root} (or open {root / 'notebooks'} in JupyterLab)")
    return 0


@cli.command("plan", help="run the planning notebooks and publish the plan pack")
@click.option(
    "--data", default=None, help="folder with your exports (default: the parameters' data_dir)"
)
@click.option("--mapping", default=None, help="mapping YAML from your export's columns")
@click.option(
    "--params", default=None, help="parameters YAML (default: parameters/plan.yaml if present)"
)
@click.option("--cycle", default=None, help="quarter to plan, e.g. FY2027-Q1 (default: the next)")
@click.option(
    "--as-of", default=None, help="last month of actuals, YYYY-MM (default: last complete)"
)
@click.option("--out", default=None, help="reports folder (default: reports/ of this folder)")
@click.option(
    "--scheduler",
    default=None,
    help="dask.distributed scheduler address: Parquet parts loaded and the forecast fitted "
    "on its workers",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="seconds to wait while another run publishes into the same reports folder",
)
def plan_cmd(
    data: str | None,
    mapping: str | None,
    params: str | None,
    cycle: str | None,
    as_of: str | None,
    out: str | None,
    scheduler: str | None,
    wait: float,
) -> int:
    from revmodel.publish import run

    t0 = time.time()
    path = run.plan(
        params,
        data_dir=data,
        out_dir=out,
        wait=wait,
        mapping=mapping,
        cycle=cycle,
        as_of=as_of,
        scheduler=scheduler,
    )
    logger.info("plan published in %.0f s", time.time() - t0)
    logger.info("the apps read it from their next start (`revmodel serve`)")
    click.echo(path)
    return 0


# --------------------------------------------------------------------------- apps


@cli.command("serve", help="serve the Voila apps on 127.0.0.1")
@click.option("--port", type=int, default=8866, show_default=True, help="port")
@click.option(
    "--pool-size",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="kernels kept ready per app with the page built in advance (0: none)",
)
def serve_cmd(port: int, pool_size: int) -> int:
    from revmodel.apps import serve

    return serve.serve(port, pool_size=pool_size)


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 usable with problems, 2 error)."""
    try:
        rv = cli.main(
            args=list(sys.argv[1:] if argv is None else argv),
            prog_name="revmodel",
            standalone_mode=False,
        )
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except RevmodelError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return int(rv or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
