"""Papermill orchestration: the planning notebooks, run in order on a pinned kernel.

:func:`run_notebooks` executes the numbered notebooks of ``notebooks/``
(:data:`NOTEBOOKS`) on the kernel :data:`KERNEL_NAME` (this interpreter,
registered by :func:`ensure_kernel`), each with the parameters it declares
plus ``work_dir``, the run folder. A failed notebook is kept and the error
names it and its cell.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from revmodel import config, encoding, formatting, progress
from revmodel.errors import RevmodelError

__all__ = [
    "KERNEL_NAME",
    "NOTEBOOKS",
    "RUN_PARAMETERS",
    "PlanFailed",
    "declared_parameters",
    "ensure_kernel",
    "run_notebooks",
]

#: The planning notebooks, in the order they run.
NOTEBOOKS: tuple[str, ...] = (
    "01-data.ipynb",
    "02-forecast.ipynb",
    "03-territories.ipynb",
    "04-capacity-quota.ipynb",
    "05-scenarios.ipynb",
    "quarterly-plan.ipynb",
)
#: The kernel papermill runs the notebooks on: this Python, registered by :func:`ensure_kernel`.
KERNEL_NAME = "revmodel"
#: Notebook parameters set by the run itself rather than the parameters file.
RUN_PARAMETERS: tuple[str, ...] = ("work_dir", "previous_pack", "scheduler", "input_kept")


class PlanFailed(RevmodelError):
    """A planning notebook failed; the message names the notebook and the cell."""

    exit_code = 1


def ensure_kernel(root: Path | None = None) -> Path:
    """Register the kernel :data:`KERNEL_NAME` on this Python interpreter.

    The kernelspec is written under ``root`` (default ``config.BUILD_DIR /
    "jupyter"``), which :func:`run_notebooks` puts first on ``JUPYTER_PATH``,
    so the notebooks always run on the interpreter that runs the plan,
    whatever kernels a user has installed.

    Returns
    -------
    Path
        The folder to put on ``JUPYTER_PATH``.
    """
    root = Path(root) if root is not None else config.BUILD_DIR / "jupyter"
    spec_dir = root / "kernels" / KERNEL_NAME
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (revmodel)",
        "language": "python",
        "env": {"PYTHONHASHSEED": "0"},
    }
    text = json.dumps(spec, indent=1)
    path = spec_dir / "kernel.json"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        spec_dir.mkdir(parents=True, exist_ok=True)
        tmp = spec_dir / f".kernel.json.{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return root


@contextlib.contextmanager
def _jupyter_path(root: Path) -> Iterator[None]:
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *([old] if old else [])])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


def declared_parameters(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """The parameters a notebook declares in its ``parameters`` cell (papermill's reading)."""
    import papermill as pm

    return {p: dict(v) for p, v in pm.inspect_notebook(str(notebook)).items()}


def _failed_cell(nb_path: Path, exc: Exception) -> tuple[int | None, int | None, str, str]:
    """(cell number among code cells, execution count, ename, evalue) of a failed run."""
    import nbformat

    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001 - the notebook may be half written
        return None, getattr(exc, "exec_count", None), ename, evalue
    number = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue
        number += 1
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return number, cell.get("execution_count"), ename, evalue
    return None, getattr(exc, "exec_count", None), ename, evalue


def run_notebooks(
    params: Mapping[str, Any],
    work_dir: str | Path,
    out_dir: str | Path,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    notebooks_dir: str | Path | None = None,
    failed_dir: str | Path | None = None,
    previous_pack: str | Path | None = None,
    scheduler: str | None = None,
    progress_file: str | Path | None = None,
    input_kept: bool = False,
) -> list[Path]:
    """Execute the planning notebooks in order with papermill on the pinned kernel.

    Parameters
    ----------
    params : mapping
        Checked parameters (:func:`revmodel.parameters.load`).
    work_dir : str or Path
        Run folder passed to every notebook as ``work_dir``.
    previous_pack : str or Path, optional
        Last cycle's published pack, passed as ``previous_pack`` so the accuracy
        section measures what was actually published.
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler, passed as ``scheduler`` to the
        notebooks that declare it (loading in Parquet parts, forecasting); default
        this machine.
    out_dir : str or Path
        Where the executed notebooks are written.
    notebooks : tuple of str
        Notebook file names, run in this order.
    notebooks_dir : str or Path, optional
        Default :data:`revmodel.config.NOTEBOOKS_DIR`.
    failed_dir : str or Path, optional
        Where a failed notebook is kept; default ``out_dir``'s parent ``.failed``.
    progress_file : str or Path, optional
        File the kernels append their progress records to
        (:func:`revmodel.progress.recording`), for the caller to show
        (:func:`revmodel.progress.follow`); default none kept. Either way no progress
        bar is drawn into the executed notebooks.
    input_kept : bool
        The exports are already read and validated into ``work_dir``
        (:func:`revmodel.publish.runfolder.save_input`): passed as ``input_kept`` so
        the data notebook does not read them again.

    Returns
    -------
    list of Path
        The executed notebooks.

    Raises
    ------
    PlanFailed
        ``Plan failed in notebook 02-forecast.ipynb, cell 7: DataError: ...``
        (cell = the notebook's 7th code cell, the injected parameters not
        counted); the executed notebook is kept in ``failed_dir``.
    """
    import papermill as pm

    src_dir = Path(notebooks_dir) if notebooks_dir is not None else config.NOTEBOOKS_DIR
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = ensure_kernel()
    written: list[Path] = []
    # Executed notebooks are published: the machine's absolute paths are taken out of them.
    known = [work_dir, out, *(p for p in (previous_pack, failed_dir) if p)]
    known += [params[k] for k in ("data_dir", "mapping") if params.get(k)]
    with _jupyter_path(root), progress.recording(progress_file):
        for name in notebooks:
            src = src_dir / name
            if not src.exists():
                raise PlanFailed(f"Plan failed: notebook {name} not found in {src_dir}.")
            declared = declared_parameters(src)
            values = {k: encoding.jsonable(params[k]) for k in declared if k in params}
            values["work_dir"] = str(Path(work_dir).resolve())
            values["previous_pack"] = str(Path(previous_pack).resolve()) if previous_pack else ""
            values["scheduler"] = scheduler or ""
            values["input_kept"] = bool(input_kept)
            dst = out / name
            try:
                _execute(src, dst, {k: v for k, v in values.items() if k in declared})
            except pm.PapermillExecutionError as exc:
                number, count, ename, evalue = _failed_cell(dst, exc)
                _scrub(dst, known)
                kept = _keep_failed(dst, params, failed_dir, out)
                where = f"cell {number}" if number is not None else "a cell"
                raise PlanFailed(
                    f"Plan failed in notebook {name}, {where}: {ename}: {evalue}\n"
                    f"The executed notebook is kept in {kept}; open it to see the cell."
                ) from None
            _scrub(dst, known)
            written.append(dst)
    return written


def _execute(src: Path, dst: Path, parameters: dict[str, Any]) -> None:
    import papermill as pm

    from revmodel.kernels import PlanKernelManager

    pm.execute_notebook(
        str(src),
        str(dst),
        parameters=parameters,
        kernel_name=KERNEL_NAME,
        kernel_manager_class=PlanKernelManager,
        progress_bar=False,
        cwd=str(src.parent),
        log_output=False,
    )


def _scrub(nb: Path, paths: list[Any]) -> None:
    """Replace this machine's absolute paths in an executed notebook (inputs, outputs, metadata)."""
    if nb.exists():
        text = nb.read_text(encoding="utf-8")
        nb.write_text(formatting.scrub_paths(text, paths), encoding="utf-8")


def _keep_failed(
    nb: Path, params: Mapping[str, Any], failed_dir: str | Path | None, out: Path
) -> Path:
    target = (
        Path(failed_dir)
        if failed_dir is not None
        else out.parent.parent / ".failed" / str(params["cycle"])
    )
    target.mkdir(parents=True, exist_ok=True)
    dst = target / nb.name
    if nb.exists():
        shutil.copy2(nb, dst)
    return dst
