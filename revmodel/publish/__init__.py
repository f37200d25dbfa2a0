"""The quarterly plan pack: run folder, papermill runs, HTML and Excel, atomic publish.

Modules, in the order a run uses them:

- :mod:`~revmodel.publish.runfolder`: results the notebooks pass to each other;
- :mod:`~revmodel.publish.notebooks`: the planning notebooks run with papermill;
- :mod:`~revmodel.publish.tables`: the pack's numbers (summary, tables, charts);
- :mod:`~revmodel.publish.html`, :mod:`~revmodel.publish.excel`: ``plan.html``, ``plan.xlsx``;
- :mod:`~revmodel.publish.pack`: the pack's files, manifest and check;
- :mod:`~revmodel.publish.swap`: the pack published in one step;
- :mod:`~revmodel.publish.run`: ``revmodel plan``, all of the above in order.

The names a notebook uses are importable from here: ``from revmodel import publish``
then ``publish.load_result(work_dir, "cube")``.
"""

from revmodel.publish.excel import write_excel
from revmodel.publish.html import html_table, render_html
from revmodel.publish.notebooks import (
    KERNEL_NAME,
    NOTEBOOKS,
    RUN_PARAMETERS,
    PlanFailed,
    declared_parameters,
    ensure_kernel,
    run_notebooks,
)
from revmodel.publish.pack import (
    build_pack,
    check_pack,
    manifest,
    published_forecast,
    save_plan_version,
    write_plan_cube,
)
from revmodel.publish.run import plan
from revmodel.publish.runfolder import (
    SavedInput,
    load_result,
    load_tables,
    period_months,
    read_input,
    save_input,
    save_result,
    save_tables,
    work_folder,
)
from revmodel.publish.swap import publish
from revmodel.publish.tables import (
    band_statement,
    forecast_table,
    pack_figures,
    pack_tables,
    reconciled_paths,
    shown_names,
    summary,
    with_names,
)

__all__ = [
    "KERNEL_NAME",
    "NOTEBOOKS",
    "RUN_PARAMETERS",
    "PlanFailed",
    "SavedInput",
    "band_statement",
    "build_pack",
    "check_pack",
    "declared_parameters",
    "ensure_kernel",
    "forecast_table",
    "html_table",
    "load_result",
    "load_tables",
    "manifest",
    "pack_figures",
    "pack_tables",
    "shown_names",
    "with_names",
    "period_months",
    "plan",
    "publish",
    "published_forecast",
    "read_input",
    "reconciled_paths",
    "render_html",
    "run_notebooks",
    "save_input",
    "save_plan_version",
    "save_result",
    "save_tables",
    "summary",
    "work_folder",
    "write_excel",
    "write_plan_cube",
]
