"""Inputs of this case, written by code (binary or large)."""


def make(data):
    rows = ["opportunity_id,stage,amount,close_date,notes"]
    for i in range(1, 7):
        note = "x" * 3_145_728 if i == 6 else "ok"
        rows.append(f"O{i},won,{i}00,2025-01-{i:02d},{note}")
    (data / "opportunities.csv").write_text("\n".join(rows) + "\n")
