"""Inputs of this case, written by code (binary or large)."""

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq


def make(data):
    t = pa.table(
        {
            "opportunity_id": ["O1", "O2", "O3", "O4"],
            "stage": ["won"] * 4,
            "amount": [1.0, 2.0, float("inf"), 4.0],
            "close_date": pa.array(
                [
                    dt.datetime(2025, 1, 31),
                    dt.datetime(2500, 1, 1),
                    dt.datetime(2025, 2, 1),
                    dt.datetime(1500, 1, 1),
                ],
                pa.timestamp("us"),
            ),
        }
    )
    pq.write_table(t, data / "opportunities.parquet")
