"""Inputs of this case, written by code (binary or large)."""

import openpyxl


def make(data):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["opportunity_id", "stage", "amount", "close_date", "product"])
    ws.append(["O1", "won", 1000, "2025-01-31", "A"])
    ws.append(["O2", "won", "=B2*2", "2025-02-28", "B"])
    ws.append(["O3", "won", 300, "2025-03-31", "=UPPER(E2)"])
    wb.save(data / "opportunities.xlsx")
