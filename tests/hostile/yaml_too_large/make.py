"""Inputs of this case, written by code (binary or large)."""


def make(data):
    (data / "opportunities.csv").write_text(
        "opportunity_id,stage,amount,close_date\nO1,won,1,2025-01-31\n"
    )
    (data / "mapping.yaml").write_text("# " + "x" * 2_000_000 + "\n")
