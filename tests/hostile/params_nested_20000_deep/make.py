"""Writes a parameters file nested 20,000 deep (kept out of the repository: 40 KB of brackets)."""

from pathlib import Path


def make(data: Path) -> None:
    depth = 20_000
    text = (
        "cycle: FY2027-Q1\nas_of: 2026-10\ndata_dir: data\nhires: "
        + "[" * depth
        + "]" * depth
        + "\n"
    )
    (data / "plan.yaml").write_text(text, encoding="utf-8")
