"""The ``revmodel`` command line.

Each subcommand parses its arguments here and hands them to one function of
the module named after the concept (``sources.validate_command`` ...), which
returns the exit code. Bad data never reaches the user as a traceback: a
:class:`revmodel.errors.RevmodelError` is printed as its message.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from revmodel.errors import RevmodelError

#: subcommand -> (module, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "sample": ("revmodel.sample", "sample_command"),
    "validate": ("revmodel.sources", "validate_command"),
    "cube": ("revmodel.cube", "cube_command"),
    "forecast": ("revmodel.forecast", "forecast_command"),
    "backtest": ("revmodel.backtest", "backtest_command"),
    "territories": ("revmodel.territory", "territories_command"),
    "plan": ("revmodel.report", "plan_command"),
    "serve": ("revmodel.apps.serve", "serve_command"),
}


def build_parser() -> argparse.ArgumentParser:
    from revmodel import config

    p = argparse.ArgumentParser(prog="revmodel", description="Open revenue-planning workbench.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("sample", help="write the deterministic sample company as CSV files")
    s.add_argument("--out", required=True, help="folder to write the five CSV files into")
    s.add_argument(
        "--reps", type=int, default=config.SAMPLE_REPS, help="number of reps (default %(default)s)"
    )
    s.add_argument(
        "--months",
        type=int,
        default=config.SAMPLE_MONTHS,
        help="months of history (default %(default)s)",
    )
    s.add_argument(
        "--seed", type=int, default=config.SAMPLE_SEED, help="random seed (default %(default)s)"
    )
    s.add_argument(
        "--end", default=None, help="last month of history, YYYY-MM (default: fixed sample end)"
    )

    v = sub.add_parser("validate", help="check a data folder and quarantine bad rows")
    v.add_argument("data_dir", metavar="DIR", help="folder with the exports")
    v.add_argument(
        "--mapping",
        default=None,
        help="mapping YAML from your export columns to the canonical schema",
    )
    v.add_argument("--quarantine", default=None, help="quarantine folder (default DIR/quarantine)")
    v.add_argument("--segment-bands", default=None, help=argparse.SUPPRESS)

    c = sub.add_parser("cube", help="build the revenue cube from a data folder")
    c.add_argument("data_dir", metavar="DIR", help="folder with the exports")
    c.add_argument("--mapping", default=None, help="mapping YAML")
    c.add_argument(
        "--fiscal-year-start",
        type=int,
        default=config.FISCAL_YEAR_START,
        help="first month of the fiscal year, 1-12 (default %(default)s)",
    )
    c.add_argument(
        "--fiscal-year-naming",
        choices=["end", "start"],
        default=config.FISCAL_YEAR_NAMING,
        help="name fiscal years by the calendar year they end or start in (default %(default)s)",
    )
    c.add_argument(
        "--as-of",
        default=None,
        help="last month of actuals, YYYY-MM (default: month of the latest closed deal)",
    )
    c.add_argument("--out", required=True, help="output file: .nc writes NetCDF, .zarr writes Zarr")

    f = sub.add_parser("forecast", help="forecast a cube measure at every level of the hierarchy")
    f.add_argument("cube", metavar="CUBE", help="cube file (.nc or .zarr)")
    f.add_argument("--horizon", type=int, required=True, help="months to forecast")
    f.add_argument(
        "--measure", default="bookings", help="measure to forecast (default %(default)s)"
    )
    f.add_argument(
        "--reconcile",
        default="mint_shrink",
        help="bottom_up | top_down | ols | wls_struct | mint_shrink | none",
    )
    f.add_argument(
        "--scheduler",
        default=None,
        help="dask.distributed scheduler address (default: local cluster)",
    )
    f.add_argument("--out", required=True, help="output file (.nc or .zarr)")

    b = sub.add_parser("backtest", help="rolling-origin backtest of the forecast")
    b.add_argument("cube", metavar="CUBE", help="cube file (.nc or .zarr)")
    b.add_argument("--horizon", type=int, required=True, help="months ahead")
    b.add_argument("--folds", type=int, default=4, help="number of origins (default %(default)s)")
    b.add_argument("--measure", default="bookings", help="measure (default %(default)s)")
    b.add_argument("--out", default=None, help="write the table as CSV or JSON")

    t = sub.add_parser("territories", help="assign accounts to reps, balanced and low-disruption")
    t.add_argument("data_dir", metavar="DATA_DIR", help="folder with the exports")
    t.add_argument("--mapping", default=None, help="mapping YAML")
    t.add_argument("--max-moves", type=int, default=None, help="most accounts that may change rep")
    t.add_argument(
        "--locked",
        default=None,
        help="file listing account ids that must stay with their rep (one per line, or a CSV with an account_id column)",
    )
    t.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="balance tolerance around the mean potential (default %(default)s)",
    )
    t.add_argument(
        "--as-of",
        default=None,
        help="plan start date YYYY-MM-DD: reps who left before it hand over their accounts (default: today)",
    )
    t.add_argument(
        "--out", required=True, help="assignment CSV (the balance report is written beside it)"
    )

    pl = sub.add_parser("plan", help="run the planning notebooks and publish the plan pack")
    pl.add_argument(
        "--params", required=True, help="parameters YAML, e.g. parameters/FY2027-Q1.yaml"
    )
    pl.add_argument("--data", default=None, help="data folder (overrides the parameters file)")
    pl.add_argument("--out", default=None, help="reports folder (default reports/)")

    sv = sub.add_parser("serve", help="serve the Voila apps on 127.0.0.1")
    sv.add_argument("--port", type=int, default=8866, help="port (default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = COMMANDS[args.command]
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)
    except RevmodelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
