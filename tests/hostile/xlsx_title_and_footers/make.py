"""Inputs of this case, written by code (binary or large)."""

import openpyxl


def make(data):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Report"
    ws.append(["Opportunity Report"])
    ws.append(["As of 2025-06-01"])
    ws.append([])
    ws.append(["opportunity_id", "stage", "amount", "close_date"])
    ws.append(["O1", "won", 1000, "2025-01-31"])
    ws.append(["O2", "lost", 500, "2025-02-28"])
    ws.append([])
    ws.append(["Grand Totals (2 records)", None, 1500, None])
    ws.append(["Copyright (c) 2000-2025 Example, Inc. All rights reserved."])
    wb.save(data / "opportunities.xlsx")
