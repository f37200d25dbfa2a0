"""``plan.xlsx`` for Sales Ops: a Summary sheet, then one sheet per table of the pack.

Every text cell goes through :func:`revmodel.formatting.inert_frame`: a rep,
manager, region or account name such as ``=HYPERLINK(...)`` is written as text
(``'=HYPERLINK(...)``), never as a formula.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from revmodel import encoding, formatting

__all__ = ["SHEETS", "write_excel"]

#: Sheet name -> pack table, in workbook order (the Summary sheet comes first).
SHEETS: dict[str, str] = {
    "Quotas by rep": "quotas_by_rep",
    "Capacity": "capacity",
    "Hires needed": "hires_needed",
    "Forecast by level": "forecast_by_level",
    "KPIs": "kpis",
    "ARR bridge": "arr_bridge",
    "ARR plan": "retention_plan",
    "Territories": "territories",
    "Scenarios": "scenarios",
    "Accuracy": "accuracy",
    "Forecast value add": "value_add",
}
#: Excel number format by column kind (:data:`revmodel.formatting.COLUMN_KINDS`).
NUMBER_FORMATS: dict[str, str] = {"money": "#,##0", "pct": "0.0%", "int": "0"}


def write_excel(
    path: str | Path, summ: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]
) -> Path:
    """Write ``plan.xlsx``: a Summary sheet (figure, value), then one sheet per table present."""
    path = Path(path)
    summary = pd.DataFrame(
        {"figure": list(summ), "value": [encoding.jsonable(v) for v in summ.values()]}
    )
    sheets = {"Summary": summary, **{s: tables.get(name) for s, name in SHEETS.items()}}
    with pd.ExcelWriter(path, engine="openpyxl") as xw:
        for name, frame in sheets.items():
            if frame is None:
                continue
            # Names come from the exports: written as text a spreadsheet never runs.
            formatting.inert_frame(frame).to_excel(xw, sheet_name=name, index=False)
            _layout(xw.sheets[name], frame)
    return path


def _layout(ws: Any, frame: pd.DataFrame) -> None:
    """Freeze the header, size the columns, give number columns their format."""
    ws.freeze_panes = "A2"
    for i, col in enumerate(frame.columns, start=1):
        letter = ws.cell(row=1, column=i).column_letter
        ws.column_dimensions[letter].width = min(40, max(10, len(str(col)) + 2))
        fmt = NUMBER_FORMATS.get(formatting.COLUMN_KINDS.get(str(col), ""))
        if fmt:
            for row in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                for c in row:
                    c.number_format = fmt
