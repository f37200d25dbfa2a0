"""The layers of architecture.md hold: no module imports one of a higher layer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "revmodel"


def layers(text: str) -> dict[str, int]:
    """Module -> layer number, from the layer table of architecture.md."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*(\d+)\s+[^|]+\|(.+)\|\s*$", line)
        if m:
            for name in re.findall(r"`([\w.]+)`", m.group(2)):
                out[name] = int(m.group(1))
    return out


def module_of(path: Path, package: Path = PACKAGE) -> str:
    """``revmodel/apps/whatif.py`` -> ``apps``; ``revmodel/cube.py`` -> ``cube``."""
    rel = path.relative_to(package)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported(path: Path, package: Path = PACKAGE) -> set[str]:
    """The revmodel modules a file imports, at top level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "revmodel" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "revmodel":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            # A relative import inside a package: "from . import x" stays in the package.
            if node.level == 1 and path.parent != package:
                continue
            parts = (node.module or "").split(".")
            found.update([parts[0]] if parts[0] else [a.name for a in node.names])
    return found


def violations(table: dict[str, int], package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "__init__.py":
            continue
        mod = module_of(path, package)
        if mod not in table:
            problems.append(
                f"{path.relative_to(package.parent)}: module {mod!r} is in no layer; "
                "add it to the layer table of architecture.md"
            )
            continue
        for dep in sorted(imported(path, package)):
            if dep == mod:
                continue
            if dep not in table:
                problems.append(
                    f"{path.relative_to(package.parent)} imports {dep!r}, which is in no layer"
                )
            elif table[dep] > table[mod]:
                problems.append(
                    f"{path.relative_to(package.parent)} (layer {table[mod]}) imports {dep!r} "
                    f"(layer {table[dep]}): a lower layer never imports a higher one"
                )
    return problems


@pytest.fixture(scope="module")
def table() -> dict[str, int]:
    return layers((ROOT / "architecture.md").read_text(encoding="utf-8"))


def test_the_layer_table_is_read(table):
    assert table["cube"] == 2
    assert table["accessor"] == 4
    assert table["calendar"] < table["cube"] < table["quota"] < table["accessor"] < table["apps"]


def test_no_lower_layer_imports_a_higher_one(table):
    assert violations(table) == []


def test_the_data_layer_imports_nothing_above_it():
    assert not imported(PACKAGE / "cube.py") & {"capacity", "quota", "kpi", "retention", "accessor"}


def test_a_violation_is_reported(tmp_path, table):
    pkg = tmp_path / "revmodel"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cube.py").write_text("def f():\n    from revmodel import quota\n")
    (pkg / "utils.py").write_text("import revmodel.cube\n")
    assert violations(table, pkg) == [
        "revmodel/cube.py (layer 2) imports 'quota' (layer 3): a lower layer never imports "
        "a higher one",
        "revmodel/utils.py: module 'utils' is in no layer; add it to the layer table of "
        "architecture.md",
    ]
