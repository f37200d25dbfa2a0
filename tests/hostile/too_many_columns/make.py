"""Inputs of this case, written by code (binary or large)."""


def make(data):
    extra = [f"c{i}" for i in range(997)]
    head = ",".join(["opportunity_id", "stage", "amount", "close_date", *extra])
    row = ",".join(["O1", "won", "1", "2025-01-31", *["x"] * 997])
    (data / "opportunities.csv").write_text(head + "\n" + row + "\n")
