"""Inputs of this case, written by code (binary or large)."""

import pyarrow as pa
import pyarrow.parquet as pq


def make(data):
    t = pa.table(
        {
            "opportunity_id": ["O1"],
            "stage": ["won"],
            "amount": [1.0],
            "close_date": ["2025-01-31"],
            "tags": pa.array([["a", "b"]]),
        }
    )
    pq.write_table(t, data / "opportunities.parquet")
