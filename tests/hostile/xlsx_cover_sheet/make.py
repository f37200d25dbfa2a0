"""Inputs of this case, written by code (binary or large)."""

import pandas as pd


def make(data):
    with pd.ExcelWriter(data / "opportunities.xlsx") as book:
        pd.DataFrame({"Pipeline report": ["Prepared for the board", "Q1 2025"]}).to_excel(
            book, sheet_name="Cover", index=False
        )
        pd.DataFrame(
            {
                "opportunity_id": ["O1", "O2", "O3"],
                "stage": ["won", "lost", "won"],
                "amount": [1000, 500, 250],
                "close_date": ["2025-01-31", "2025-02-28", "2025-03-31"],
            }
        ).to_excel(book, sheet_name="Data", index=False)
