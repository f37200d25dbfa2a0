"""Hostile inputs: every folder of ``tests/hostile/`` through the command line.

The format of a case is in ``tests/hostile/README.md``: exit code, exact
messages, exact files written, and the row accounting (rows read = accepted +
quarantined, and the quarantine holds exactly the quarantined rows).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from revmodel import config
from revmodel.cli import main

CORPUS = Path(__file__).parent / "hostile"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.json").is_file())
SUMMARY = re.compile(
    r"^(?P<file>\S.*): (?P<read>[\d,]+) rows? read, (?P<ok>[\d,]+) accepted"
    r"(?:, (?P<bad>[\d,]+) quarantined \((?P<qfile>[^)]+)\))?"
)


def _fill(lines: list[str]) -> list[str]:
    today = pd.Timestamp.today().normalize()
    last = today + pd.DateOffset(years=10)
    return [
        line.replace("{today}", f"{today:%Y-%m-%d}").replace("{last_date}", f"{last:%Y-%m-%d}")
        for line in lines
    ]


def prepare(case: str, tmp: Path) -> Path:
    """Copy and generate case ``case`` into ``tmp/data``."""
    folder = CORPUS / case
    data = tmp / "data"
    if (folder / "data").is_dir():
        shutil.copytree(folder / "data", data)
    else:
        data.mkdir()
    if (folder / "make.py").is_file():
        spec = importlib.util.spec_from_file_location(f"hostile_{case}", folder / "make.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.make(data)
    return data


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES)
def test_hostile_case(case, tmp_path, capsys, monkeypatch):
    expected = json.loads((CORPUS / case / "expected.json").read_text(encoding="utf-8"))
    prepare(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    # The project root is the folder the command runs in, as for a user (config.HOME is cwd).
    monkeypatch.setattr(config, "HOME", tmp_path)
    code = main(list(expected["args"]))
    captured = capsys.readouterr()
    assert captured.out.splitlines() == _fill(expected.get("stdout", []))
    assert captured.err.splitlines() == _fill(expected.get("stderr", []))
    assert code == expected["exit"]
    for name, lines in expected.get("files", {}).items():
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert text.splitlines() == _fill(lines)
    for line in captured.out.splitlines():
        m = SUMMARY.match(line)
        if not m:
            continue
        read, ok = int(m["read"].replace(",", "")), int(m["ok"].replace(",", ""))
        bad = int((m["bad"] or "0").replace(",", ""))
        assert read == ok + bad, line
        if m["qfile"]:
            quarantined = pd.read_csv(tmp_path / m["qfile"], dtype=str, keep_default_na=False)
            assert quarantined["row"].nunique() == bad, line
