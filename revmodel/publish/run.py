"""``revmodel plan``: run the planning notebooks, build the pack, publish it.

``revmodel plan --params parameters/FY2027-Q1.yaml`` does, in order:

1. reads and checks the parameters file (:mod:`revmodel.parameters`); a bad
   key or a missing data folder stops here, before anything runs;
2. reads and validates the exports, once: they settle what the parameters
   leave open and are kept in the run folder for the data notebook
   (:func:`revmodel.publish.runfolder.save_input`);
3. executes the planning notebooks with papermill
   (:func:`revmodel.publish.notebooks.run_notebooks`), each leaving its
   results in a run folder for the next. Their progress (series forecast,
   months reconciled, ...) is shown as bars on the terminal
   (:func:`revmodel.progress.follow`), never in the notebooks;
4. builds the pack from those results (:func:`revmodel.publish.pack.build_pack`):
   ``plan.html`` (self-contained, no code, Plotly charts that work offline),
   ``plan.xlsx`` (one sheet per table), ``plan.nc`` (the plan cube: one NetCDF
   group per result), the executed notebooks and ``manifest.json``;
5. publishes it (:mod:`revmodel.publish.swap`). A failed or interrupted run
   leaves the previous pack untouched; a failed notebook is kept in
   ``reports/.failed/<cycle>/`` and the error names it and its cell.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from revmodel import calendar as fcal
from revmodel import config, progress, project, sections, versions
from revmodel.publish import swap
from revmodel.publish.notebooks import NOTEBOOKS, run_notebooks
from revmodel.publish.pack import build_pack, manifest, save_plan_version
from revmodel.publish.runfolder import load_tables, save_input

__all__ = ["plan"]

log = logging.getLogger(__name__)


def plan(
    params_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
    wait: float = 0.0,
    *,
    mapping: str | Path | None = None,
    cycle: str | None = None,
    as_of: str | None = None,
    scheduler: str | None = None,
) -> Path:
    """Run the plan and publish the pack into ``<out_dir>/<cycle>/``.

    Parameters
    ----------
    params_file : str or Path, optional
        Parameters YAML; default the project's ``parameters/plan.yaml`` if any, else
        every setting assumed from the data (:func:`revmodel.project.plan_settings`).
    data_dir : str or Path, optional
        Data folder, replacing the file's ``data_dir``.
    out_dir : str or Path, optional
        Reports folder; default :data:`revmodel.config.REPORTS_DIR`.
    mapping, cycle, as_of : optional
        Replace the file's ``mapping``, ``cycle`` and ``as_of``.
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler: the data's Parquet parts are
        loaded and the forecast fitted on its workers; default this machine.
    notebooks_dir : str or Path, optional
        Default :data:`revmodel.config.NOTEBOOKS_DIR`.
    wait : float
        Seconds to wait for another run publishing into ``out_dir`` [s].

    Returns
    -------
    Path
        ``<out_dir>/<cycle>/plan.html``.

    Raises
    ------
    ParameterError
        A bad parameters file (before anything runs).
    PublishLocked
        Another run is publishing into ``out_dir`` (its pid and start time named).
    PlanFailed
        A notebook failed; the previous pack is untouched.
    PublishError
        A full disk or a permission problem; nothing was published.
    """
    started = time.time()
    settings = project.plan_settings(
        data_dir,
        mapping=mapping,
        params_file=params_file,
        cycle=cycle,
        as_of=as_of,
        scheduler=scheduler,
    )
    params = settings.params
    out = Path(out_dir) if out_dir is not None else config.REPORTS_DIR
    cycle = params["cycle"]
    with swap.locked(out, cycle, wait=wait):
        swap.clean_leftovers(out)
        tmp, work = swap.staging(out, cycle)
        try:
            _keep_input(settings, work, scheduler)
            # the exports are in the run folder now: this process lets go of them
            settings = dataclasses.replace(settings, loaded=None)
            _build(settings, out, tmp, work, notebooks_dir, started, scheduler)
            final = swap.publish(tmp, out, cycle)
        except OSError as exc:
            err = swap.explain_os_error(exc, out)
            if err is None:
                raise
            raise err from None
        finally:
            for folder in (tmp, work):
                if folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)
        failed = out / ".failed" / cycle
        if failed.exists():
            shutil.rmtree(failed, ignore_errors=True)
    log.info("published %s", final)
    return final / "plan.html"


def _keep_input(settings: project.PlanSettings, work: Path, scheduler: str | None) -> None:
    """The exports, read and validated once (if settling the period has not read them yet),
    kept in the run folder where the data notebook takes them."""
    loaded = settings.loaded
    if loaded is None:
        log.info("reading the exports")
        quarantine = work / "quarantine"
        loaded = project.read_exports(
            settings.params, scheduler=scheduler, quarantine_dir=quarantine
        )
    save_input(work, loaded)


def _build(
    settings: project.PlanSettings,
    out: Path,
    tmp: Path,
    work: Path,
    notebooks_dir: str | Path | None,
    started: float,
    scheduler: str | None = None,
) -> None:
    """Run the notebooks into ``work`` and write the pack into ``tmp``."""
    params = settings.params
    cycle = params["cycle"]
    previous = out / fcal.next_quarter(cycle, -1)
    previous = previous if (previous / "plan.nc").exists() else None
    if previous is not None:
        log.info("last cycle's pack: %s", previous)
    records = work / "progress.jsonl"
    for name in progress.bar(NOTEBOOKS, desc="plan", unit="notebook", leave=True):
        log.info("running %s", name)
        with progress.follow(records, name):
            run_notebooks(
                params,
                work,
                tmp / "notebooks",
                notebooks=(name,),
                notebooks_dir=notebooks_dir,
                failed_dir=out / ".failed" / cycle,
                previous_pack=previous,
                scheduler=scheduler,
                progress_file=records,
                input_kept=True,
            )
    log.info("building the pack")
    build_pack(work, params, tmp)
    digest = versions.data_hash(params["data_dir"])  # the exports' bytes read once for both
    version = save_plan_version(work, params, out / "versions", data_hash=digest)
    log.info("saved plan version %s/%s", version.kind, version.name)
    record = manifest(params, started, time.time(), settings.params_file, data_hash=digest)
    record["plan_version"] = f"{version.kind}/{version.name}"
    versions.remember_exports(record["plan_version"], params["data_dir"], params.get("mapping"))
    record["as_of"] = params["as_of"]
    record["assumed"] = list(settings.assumed)
    record["sections"] = sections.status(load_tables(work), params)
    (tmp / "manifest.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
