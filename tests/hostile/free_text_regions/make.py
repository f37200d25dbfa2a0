"""Inputs of this case, written by code (binary or large)."""


def make(data):
    rows = ["opportunity_id,stage,amount,close_date,region,rep_id"]
    for i in range(2100):
        rows.append(f"O{i},won,10,2025-01-31,Region {i},R{i}")
    (data / "opportunities.csv").write_text("\n".join(rows) + "\n")
