"""A planning project is the user's folder: create one, and settle a plan run's settings.

``revmodel init DIR`` lays out a project for a new company (:func:`init_project`):
``parameters/plan.yaml`` with every setting commented, ``data/``, ``reports/`` and the
planning notebooks. ``revmodel plan`` settles what to plan from the user's parameters
and data (:func:`plan_settings`): nothing is taken from the sample company; what was
not given is assumed in the open (:attr:`PlanSettings.assumed`), logged once and
written into the pack.

Example
-------
>>> from revmodel import project
>>> project.last_complete_month_of(pd.Timestamp("2026-10-31"), [pd.Timestamp("2026-10-31")])
Timestamp('2026-10-01 00:00:00')
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from revmodel import config
from revmodel import parameters as rparams
from revmodel.errors import DataError, ParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "PROJECT_FOLDERS",
    "PlanSettings",
    "init_project",
    "last_complete_month",
    "last_complete_month_of",
    "plan_settings",
    "read_exports",
]

#: Folders of a planning project, created by :func:`init_project`.
PROJECT_FOLDERS: tuple[str, ...] = ("parameters", "data", "reports", "notebooks")
#: The parameters file ``revmodel init`` writes and ``revmodel plan`` reads when it exists.
PLAN_FILE = Path("parameters") / "plan.yaml"

#: Dated columns that show how far an export reaches (only dates up to today count).
_REACH_COLUMNS: dict[str, tuple[str, ...]] = {
    "opportunities": ("created_date",),
    "invoices": ("invoice_date", "paid_date"),
    "subscriptions": ("start_date",),
}


# --------------------------------------------------------------------------- init


def init_project(folder: str | Path) -> list[Path]:
    """Create a planning project in ``folder`` for a new company; return what was written.

    Writes ``parameters/plan.yaml`` (every setting, commented), empty ``data/`` and
    ``reports/`` folders, and copies the planning notebooks into ``notebooks/`` so the
    folder opens in JupyterLab ready to use.

    Raises
    ------
    ParameterError
        ``folder`` already holds a project (``parameters/plan.yaml`` or a notebook), which
        is never overwritten.
    """
    root = Path(folder).expanduser()
    existing = [p for p in (root / PLAN_FILE, *(root / "notebooks").glob("*.ipynb")) if p.exists()]
    if root.exists() and not root.is_dir():
        raise ParameterError(f"{root} is a file; give a folder for the new planning project.")
    if existing:
        raise ParameterError(
            f"{root} already holds a planning project ({existing[0].relative_to(root)} exists); "
            "nothing was changed. Use another folder, or edit this project's "
            f"{PLAN_FILE} and run `revmodel plan` there."
        )
    written: list[Path] = []
    for name in PROJECT_FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)
    plan_file = root / PLAN_FILE
    shutil.copyfile(config.TEMPLATES_DIR / "plan.yaml", plan_file)
    written.append(plan_file)
    for src in sorted(config.SHIPPED_NOTEBOOKS_DIR.glob("*.ipynb")):
        dest = root / "notebooks" / src.name
        shutil.copyfile(src, dest)
        written.append(dest)
    for name in ("data", "reports"):
        keep = root / name / ".gitkeep"
        keep.touch()
    logger.info("planning project created in %s", root)
    return written


# --------------------------------------------------------------------------- actuals


def last_complete_month_of(
    last_closed: pd.Timestamp, reach: Iterable[pd.Timestamp]
) -> pd.Timestamp:
    """The last month the data covers completely, as its first day.

    ``last_closed`` is the latest close date of a won or lost deal; ``reach`` are the
    latest dates of anything else the export recorded. The month of ``last_closed`` is
    complete when the data reaches its last day; otherwise its actuals are partial (the
    export was taken during that month) and the month before is the last complete one.
    """
    month = last_closed.to_period("M")
    furthest = max([last_closed, *reach])
    if furthest >= month.end_time.normalize():
        return month.to_timestamp()
    return (month - 1).to_timestamp()


def last_complete_month(
    tables: Mapping[str, pd.DataFrame], today: pd.Timestamp | None = None
) -> pd.Timestamp:
    """The data's last complete month (first day): where actuals end by default.

    Raises
    ------
    DataError
        No won or lost deal with a close date up to ``today``.
    """
    from revmodel import cube as rcube

    today = pd.Timestamp.today().normalize() if today is None else pd.Timestamp(today)
    opps = tables["opportunities"]
    dates = tables.get(rcube.OPPORTUNITY_DATES)
    if dates is not None and "deals" in opps:
        # opportunities reduced where they were read: their distinct dates came with them
        closed = dates.loc[dates["kind"] == "closed", "date"]
        opps = pd.DataFrame({"created_date": dates.loc[dates["kind"] == "created", "date"]})
        tables = {**tables, "opportunities": opps}
    else:
        closed = pd.to_datetime(opps.loc[opps["stage"].isin(["won", "lost"]), "close_date"])
    closed = closed[closed <= today].dropna()
    if closed.empty:
        raise DataError(
            "opportunities: no won or lost deal closed up to today, so there are no actuals "
            "to plan from: check the stage mapping (won/lost values) or set as_of."
        )
    reach = []
    for name, columns in _REACH_COLUMNS.items():
        frame = tables.get(name)
        for col in columns:
            if frame is not None and col in frame:
                dates = pd.to_datetime(frame[col])
                dates = dates[dates <= today].dropna()
                if not dates.empty:
                    reach.append(dates.max())
    return last_complete_month_of(closed.max(), reach)


# --------------------------------------------------------------------------- plan settings


@dataclass(frozen=True)
class PlanSettings:
    """What a plan run uses, settled before anything runs.

    Attributes
    ----------
    params : dict
        The checked parameters (:func:`revmodel.parameters.check`), complete.
    assumed : tuple of str
        What was not given and was assumed, in words, e.g.
        ``"fiscal year starts in January (fiscal_year_start not set)"``.
    params_file : Path or None
        The parameters file read, if any.
    loaded : revmodel.sources.LoadResult or None
        The exports, when they were read to settle the period (:func:`read_exports`):
        the run uses them rather than reading them again.
    """

    params: dict[str, Any]
    assumed: tuple[str, ...]
    params_file: Path | None
    loaded: Any = field(default=None, repr=False, compare=False)


def _read_params_file(path: Path) -> dict[str, Any]:
    return rparams.read_file(path)


def _default_params_file() -> Path | None:
    candidate = config.HOME / PLAN_FILE
    return candidate if candidate.is_file() else None


def _data_dir(values: Mapping[str, Any]) -> str:
    if values.get("data_dir"):
        return str(values["data_dir"])
    if (config.DATA_DIR / "opportunities.csv").exists() or any(config.DATA_DIR.glob("*.*")):
        return str(config.DATA_DIR)
    raise ParameterError(
        "no data folder: give --data DIR (the folder with your exports) or set data_dir "
        f"in {PLAN_FILE}."
    )


def plan_settings(
    data_dir: str | Path | None = None,
    *,
    mapping: str | Path | None = None,
    params_file: str | Path | None = None,
    cycle: str | None = None,
    as_of: str | None = None,
    today: pd.Timestamp | None = None,
    scheduler: str | None = None,
) -> PlanSettings:
    """Settle a plan run's parameters from the user's parameters file and data.

    Given values win over the parameters file (default: the project's
    ``parameters/plan.yaml`` when it exists). Then, what is still missing is assumed
    and said: the fiscal year starts in January; actuals end at the data's last
    complete month (:func:`last_complete_month`); the cycle is the fiscal quarter after
    it; amounts are in USD; segments use the default employee bands. Opportunities
    given as Parquet parts are read on the ``dask.distributed`` ``scheduler``'s workers
    when one is given (:func:`revmodel.partitions.load`).
    """
    path = Path(params_file) if params_file is not None else _default_params_file()
    # A key set to null is a key not set: it takes its default, or is assumed below.
    # Relative paths of the file start at its folder; those given here at the project's.
    raw = rparams.anchor_paths(_read_params_file(path), path.parent) if path is not None else {}
    values = {k: v for k, v in raw.items() if v is not None}
    given = {"data_dir": data_dir, "mapping": mapping, "cycle": cycle, "as_of": as_of}
    values.update({k: str(v) for k, v in given.items() if v is not None})
    where = str(path) if path is not None else "plan settings"
    base = path.parent if path is not None else None
    # Bad keys and values first, before any folder is looked for or any data read.
    early = {k: v for k, v in values.items() if k not in ("data_dir", "mapping")}
    rparams.check(early, where=where, base_dir=base, require=False)
    rparams.check(values, where=where, base_dir=base, require=False)
    values["data_dir"] = _data_dir(values)
    loaded = None
    if values.get("as_of") is None or values.get("cycle") is None:
        loaded = _load(values, where, scheduler)
    assumed: list[str] = []
    if values.get("fiscal_year_start") is None:
        values["fiscal_year_start"] = 1
        assumed.append("the fiscal year starts in January (fiscal_year_start not set)")
    if values.get("currency") is None:
        if loaded is not None and loaded.currency and loaded.currency_from_mapping:
            values["currency"] = loaded.currency  # the user's own setting: nothing assumed
        elif loaded is not None and loaded.currency:
            values["currency"] = loaded.currency
            assumed.append(
                f"amounts are in {loaded.currency}, as the amounts' symbols show "
                "(currency not set in the mapping or the parameters)"
            )
        elif loaded is not None:
            assumed.append(f"amounts are in {config.CURRENCY} (currency not set)")
        else:
            assumed.append(
                f"amounts are in the currency the exports state, else {config.CURRENCY} "
                "(currency not set)"
            )
    if values.get("segment_bands") is None:
        bands = ", ".join(
            f"{n} {lo:g}-{hi:g}" if hi != float("inf") else f"{n} {lo:g}+"
            for n, lo, hi in config.SEGMENT_BANDS
        )
        assumed.append(f"accounts without a segment are banded by employees: {bands}")
    if loaded is not None:
        _settle_period(values, loaded.tables, assumed, today)
    params = rparams.check(values, where=where, base_dir=base)
    for line in assumed:
        logger.info("assumed: %s", line)
    return PlanSettings(params, tuple(assumed), path, loaded)


def _load(values: Mapping[str, Any], where: str, scheduler: str | None = None) -> Any:
    """The user's exports, read once to settle what the parameters leave open."""
    keys = ("data_dir", "mapping", "segment_bands")
    checked = rparams.check(
        {k: values[k] for k in keys if values.get(k)}, where=where, require=False
    )
    return read_exports(checked, scheduler=scheduler)


def read_exports(
    params: Mapping[str, Any], scheduler: str | None = None, quarantine_dir: Path | None = None
) -> Any:
    """The exports of a plan run, read and validated as the data notebook reads them.

    ``params`` gives ``data_dir`` and optionally ``mapping`` and ``segment_bands`` (checked
    parameters). Opportunities given as Parquet parts are reduced where they are read (on
    the scheduler's workers, if given): the cells the cube, the KPIs and the territories
    need, with what settles the period (:func:`revmodel.partitions.load`).
    """
    from revmodel import partitions, sources

    raw_bands = params.get("segment_bands")
    bands = sources.parse_segment_bands(raw_bands) if raw_bands else None
    return partitions.load(
        params["data_dir"],
        mapping=params.get("mapping"),
        quarantine_dir=quarantine_dir,
        scheduler=scheduler,
        segment_bands=bands,
        deal_cells=True,
    )


def _settle_period(
    values: dict[str, Any],
    tables: Mapping[str, pd.DataFrame],
    assumed: list[str],
    today: pd.Timestamp | None,
) -> None:
    """Fill ``as_of`` (the data's last complete month) and ``cycle`` (the quarter after)."""
    start = int(values["fiscal_year_start"])
    naming = str(values.get("fiscal_year_naming") or config.FISCAL_YEAR_NAMING)
    if values.get("as_of") is None:
        month = last_complete_month(tables, today=today)
        values["as_of"] = f"{month:%Y-%m}"
        assumed.append(f"actuals end at {month:%Y-%m}, the data's last complete month")
    if values.get("cycle") is None:
        values["cycle"] = rparams.next_cycle(values["as_of"], start, naming)
        assumed.append(
            f"the cycle planned is {values['cycle']}, the fiscal quarter after the actuals"
        )
