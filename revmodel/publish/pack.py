"""The plan pack: ``plan.html``, ``plan.xlsx``, ``plan.nc``, ``tables.json`` and ``manifest.json``.

:func:`build_pack` writes the pack from a finished run folder;
:func:`manifest` records how it was made; :func:`check_pack` checks a
published pack against its own cube file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import revmodel
from revmodel import config, encoding, formatting, sections
from revmodel.publish import excel, html
from revmodel.publish.notebooks import KERNEL_NAME, NOTEBOOKS
from revmodel.publish.runfolder import Results, load_result, load_tables, period_months
from revmodel.publish.tables import pack_figures, pack_tables, summary

__all__ = [
    "MANIFEST_PACKAGES",
    "PLAN_GROUPS",
    "build_pack",
    "check_pack",
    "manifest",
    "shown_parameters",
    "plan_version_dataset",
    "published_forecast",
    "save_plan_version",
    "write_plan_cube",
]

#: Packages whose versions go into the manifest.
MANIFEST_PACKAGES: tuple[str, ...] = (
    "numpy", "pandas", "xarray", "scipy", "statsmodels", "pandera", "dask", "netCDF4",
    "plotly", "papermill", "openpyxl", "jinja2",
)  # fmt: skip


#: Pack tables and figures by the section they belong to (:data:`revmodel.sections.SECTIONS`).
_TABLE_SECTION = {
    "arr_bridge": "arr", "retention_plan": "arr", "territories": "territories",
    "capacity": "capacity", "hires_needed": "capacity", "quotas_by_rep": "quotas",
    "scenarios": "scenarios",
}  # fmt: skip
_FIGURE_SECTION = {
    "bridge": "arr", "territory": "territories", "quota_balance": "quotas", "scenarios": "scenarios",
}  # fmt: skip
#: Summary figures by section: a skipped section's are missing (None), never zeros.
_SECTION_FIGURES: dict[str, tuple[str, ...]] = {
    "arr": ("starting_arr", "expected_churn_arr", "churn_rate", "required_new_arr"),
    "capacity": (
        "quarter_capacity", "year_capacity", "headcount_start", "ramped_fte_start", "hires_needed",
    ),
    "quotas": (
        "company_target", "quarter_target", "year_target", "quarter_gap", "year_gap",
        "share_expected_to_attain", "reps_out_of_line",
    ),
}  # fmt: skip


def build_pack(
    work_dir: str | Path, params: Mapping[str, Any], pack_dir: str | Path
) -> dict[str, Path]:
    """Write the plan pack from a run folder.

    Parameters
    ----------
    work_dir : str or Path
        The run folder the notebooks filled.
    params : mapping
        The checked parameters.
    pack_dir : str or Path
        Folder to write into (made if missing).

    Returns
    -------
    dict of str to Path
        ``html``, ``xlsx``, ``cube`` (``plan.nc``), ``tables`` (``tables.json``:
        the pack's numbers, for checks).
    """
    from revmodel import plots, progress

    pack = Path(pack_dir)
    pack.mkdir(parents=True, exist_ok=True)
    steps = progress.bar(total=5, desc="pack", unit="step")
    steps.set_postfix_str("tables")
    skipped = {
        sk["id"]: sk["reason"] for sk in sections.status(load_tables(work_dir), params)["skipped"]
    }
    tables = {
        k: v
        for k, v in pack_tables(work_dir, params).items()
        if _TABLE_SECTION.get(k) not in skipped
    }
    steps.update()
    steps.set_postfix_str("figures")
    figures = {
        k: v
        for k, v in pack_figures(work_dir, params, tables).items()
        if _FIGURE_SECTION.get(k) not in skipped
    }
    files = {
        "html": pack / "plan.html",
        "xlsx": pack / "plan.xlsx",
        "cube": pack / "plan.nc",
        "tables": pack / "tables.json",
    }
    summ = summary(work_dir, params)
    for section, names in _SECTION_FIGURES.items():
        if section in skipped:  # not provided: never shown as zeros
            summ.update(dict.fromkeys(names))
    summ["not_provided"] = "\n".join(skipped.values()) or None
    steps.update()
    steps.set_postfix_str("plan.html")
    files["html"].write_text(
        html.render_html(summ, tables, figures, params, plots.plotly_js()), encoding="utf-8"
    )
    steps.update()
    steps.set_postfix_str("plan.xlsx")
    excel.write_excel(files["xlsx"], summ, tables)
    steps.update()
    steps.set_postfix_str("plan.nc")
    write_plan_cube(files["cube"], work_dir)
    steps.update()
    steps.close()
    files["tables"].write_text(
        json.dumps(
            encoding.jsonable(
                {"summary": summ, **{k: v.to_dict("records") for k, v in tables.items()}}
            ),
            indent=1,
            sort_keys=True,
        ),
        encoding="utf-8",
    )
    return files


#: Result groups of ``plan.nc``: result name -> group.
PLAN_GROUPS: dict[str, str] = {
    "cube": "cube",
    "forecast": "forecast",
    "reconciled": "reconciled",
    "capacity": "capacity",
    "gap": "capacity_gap",
    "quotas": "quota",
    "quota_compare": "quota_compare",
    "balance": "quota_balance",
    "retention_plan": "retention_plan",
    "arr_bridge": "arr_bridge",
    "kpis": "kpis",
    "base_plan": "base_plan",
}


def write_plan_cube(path: str | Path, work_dir: str | Path) -> Path:
    """Write the plan cube: one NetCDF group per result (read one with ``xr.open_dataset(path, group=...)``)."""
    path = Path(path)
    r = Results(work_dir)
    mode = "w"
    for name, group in PLAN_GROUPS.items():
        ds = r.get(name)
        if ds is None:
            continue
        encoding.encode(ds).to_netcdf(path, mode=mode, group=group, engine="netcdf4")
        mode = "a"
    return path


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(config.ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def shown_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as JSON, their paths relative to the project root (never absolute)."""
    out = encoding.jsonable(dict(params))
    for key in ("data_dir", "mapping"):
        if out.get(key):
            out[key] = formatting.display_path(out[key])
    return out


def manifest(
    params: Mapping[str, Any],
    started: float,
    finished: float,
    params_file: Path | None,
    data_hash: str | None = None,
) -> dict[str, Any]:
    """The pack's manifest: parameters, data hash, package versions, run time, git commit.

    ``data_hash`` is the exports' :func:`revmodel.versions.data_hash` when the run has it
    (every byte of the exports read once for it); default computed here.
    """
    from revmodel import versions

    pkgs = {}
    for name in MANIFEST_PACKAGES:
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    return {
        "cycle": params["cycle"],
        "parameters": shown_parameters(params),
        "parameters_file": formatting.display_path(params_file) if params_file else None,
        "data_dir": formatting.display_path(params["data_dir"]),
        "data_sha256": data_hash or versions.data_hash(params["data_dir"]),
        "revmodel": revmodel.__version__,
        "python": platform.python_version(),
        "packages": pkgs,
        "kernel": {"name": KERNEL_NAME, "python": formatting.display_path(sys.executable)},
        "git_commit": _git_commit(),
        "started_utc": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
        "run_seconds": round(finished - started, 1),
        "notebooks": list(NOTEBOOKS),
    }


def published_forecast(pack_dir: str | Path) -> xr.Dataset | None:
    """The forecast a published pack made (the ``forecast`` group of its ``plan.nc``), or None."""
    path = Path(pack_dir) / "plan.nc"
    if not path.exists():
        return None
    try:
        with xr.open_dataset(path, group="forecast", engine="netcdf4") as ds:
            ds = ds.load()
    except OSError:
        return None
    return encoding.decode(ds)


def plan_version_dataset(work_dir: str | Path) -> xr.Dataset:
    """The plan's cells as one Dataset: reconciled forecast, quotas and capacity.

    ``forecast`` (segment, region, rep, month) [currency/month] and ``quota``,
    ``capacity`` (rep, month) [currency/month]; months and reps are the union of
    the three (a planned hire has a quota and capacity but no forecast). Where
    no rep is known, capacity and quotas are not provided and the version holds
    the forecast alone.
    """
    r = Results(work_dir)
    parts = [load_result(work_dir, "reconciled")["forecast"].rename("forecast")]
    for name, var in (("quotas", "quota"), ("capacity", "capacity")):
        result = r.get(name)
        if result is not None:
            parts.append(result[var].rename(var))
    keep = {"segment", "region", "rep", "month"}
    parts = [p.drop_vars([c for c in p.coords if c not in keep]) for p in parts]
    return xr.merge(parts, join="outer", compat="override")


def save_plan_version(
    work_dir: str | Path,
    params: Mapping[str, Any],
    store: str | Path,
    data_hash: str | None = None,
):
    """Save the plan as a new write-once version ``forecast/<cycle>-<UTC time>``.

    ``data_hash`` as in :func:`manifest`. Returns the :class:`revmodel.versions.VersionInfo`.
    """
    from revmodel import versions

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return versions.save_version(
        plan_version_dataset(work_dir),
        kind="forecast",
        name=f"{params['cycle']}-{stamp}",
        store_dir=store,
        parameters=shown_parameters(params),
        data_hash=data_hash or versions.data_hash(params["data_dir"]),
    )


def check_pack(pack_dir: str | Path) -> list[str]:
    """Check a published pack; return the problems found (empty: the pack is sound).

    Checks that every file is there, that no executed notebook holds an error
    cell, that ``plan.html`` loads nothing from the network, and that the
    pack's numbers agree with ``plan.nc``: the forecast, target and ARR of
    ``tables.json`` are recomputed from the cube file's groups.
    """
    import nbformat

    pack = Path(pack_dir)
    problems: list[str] = []
    for name in ("plan.html", "plan.xlsx", "plan.nc", "manifest.json", "tables.json"):
        if not (pack / name).is_file():
            problems.append(f"{name} is missing")
    for name in NOTEBOOKS:
        path = pack / "notebooks" / name
        if not path.is_file():
            problems.append(f"notebooks/{name} is missing")
            continue
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                problems.append(f"notebooks/{name}: cell {i} holds an error")
    if problems:
        return problems
    page = (pack / "plan.html").read_text(encoding="utf-8")
    if "<script src=" in page or 'src="http' in page:
        problems.append("plan.html loads a script from outside the file")
    if page.count("plotly.js v") > 1 or "plotly" not in page:
        problems.append("plan.html must embed plotly.js exactly once")
    tables = json.loads((pack / "tables.json").read_text(encoding="utf-8"))
    summ = tables["summary"]

    def close(a: float, b: float, what: str) -> None:
        if not np.isclose(a, b, rtol=1e-9, atol=0.5):
            problems.append(f"{what}: pack says {a:,.2f}, plan.nc gives {b:,.2f}")

    path = pack / "plan.nc"
    with xr.open_dataset(path, group="cube") as cube:
        cube = cube.load()
    months = period_months(summ["cycle"], cube.attrs).values
    with xr.open_dataset(path, group="reconciled") as rec:
        fc = rec["forecast"].sel(month=rec["month"].isin(months)).sum()
        close(summ["quarter_forecast"], float(fc), "forecast of the cycle")
    with contextlib.suppress(OSError, KeyError), xr.open_dataset(path, group="quota") as q:
        tq = q["quota"].sel(month=q["month"].isin(months)).sum()
        close(summ["quarter_target"], float(tq), "target of the cycle")
        if summ.get("company_target") is not None:
            close(summ["company_target"], float(q["target"]), "company target")
    as_of = np.datetime64(pd.Timestamp(cube.attrs["as_of"]), "ns")
    arr = float(cube["arr"].sel(month=as_of).sum())
    bridge = tables.get("arr_bridge") or []
    if bridge:
        close(bridge[-1]["closing"], arr, "closing ARR of the last quarter")
    level = [r for r in tables.get("forecast_by_level", []) if r["level"] == "region"]
    if level:
        close(
            sum(r["forecast"] for r in level),
            summ["quarter_forecast"],
            "regions adding up to the company forecast",
        )
    return problems
