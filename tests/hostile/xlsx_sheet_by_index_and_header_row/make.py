"""Inputs of this case, written by code (binary or large)."""

import openpyxl


def make(data):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Notes"
    ws.append(["see next sheet"])
    ws2 = wb.create_sheet("Deals")
    ws2.append(["Export", "of", "deals"])
    ws2.append(["x", "y", "z"])
    ws2.append(["Id", "Stage", "Value", "Closing"])
    ws2.append(["D1", "won", 10, "2025-01-31"])
    ws2.append(["D2", "lost", 20, "2025-02-28"])
    wb.save(data / "export.xlsx")
    (data / "mapping.yaml").write_text(
        "tables:\n  opportunities:\n    file: export.xlsx\n    sheet: 1\n    header_row: 3\n    columns: {opportunity_id: Id, stage: Stage, amount: Value, close_date: Closing}\n"
    )
