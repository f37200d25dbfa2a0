"""Inputs of this case, written by code (binary or large)."""

import pandas as pd


def make(data):
    with pd.ExcelWriter(data / "opportunities.xlsx") as book:
        pd.DataFrame({"a": [1]}).to_excel(book, sheet_name="One", index=False)
        pd.DataFrame({"a": [1]}).to_excel(book, sheet_name="Two", index=False)
    (data / "mapping.yaml").write_text("tables:\n  opportunities:\n    sheet: 5\n")
