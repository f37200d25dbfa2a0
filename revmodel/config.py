"""Paths and defaults: the only module that spells a path.

Everything else asks this module where things live, so a deployment can
move the data, the reports or the overrides store in one place (or with the
``REVMODEL_HOME`` environment variable).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Root of a checkout (the folder holding ``pyproject.toml``).
ROOT = Path(__file__).resolve().parent.parent

#: Where working data lives; ``REVMODEL_HOME`` overrides it.
HOME = Path(os.environ.get("REVMODEL_HOME", ROOT))

NOTEBOOKS_DIR = ROOT / "notebooks"
APPS_DIR = NOTEBOOKS_DIR / "apps"
PARAMETERS_DIR = ROOT / "parameters"
REPORTS_DIR = HOME / "reports"
DATA_DIR = HOME / "data"
#: The embedded sample company is generated here by ``make plan``.
SAMPLE_DIR = DATA_DIR / "sample"
BUILD_DIR = HOME / "build"
CACHE_DIR = HOME / ".cache" / "revmodel"
#: Users of the apps and the team each may write forecast calls for.
TEAM_MAP = PARAMETERS_DIR / "team.yaml"
#: What-if scenarios saved from the app.
SCENARIOS_DIR = DATA_DIR / "scenarios"
OVERRIDES_URL = os.environ.get(
    "REVMODEL_OVERRIDES_URL", f"sqlite:///{HOME / 'data' / 'overrides.db'}"
)

#: M3 monthly competition data for the forecast benchmark (kept outside the repository).
M3_PATH = Path(
    os.environ.get(
        "REVMODEL_M3_PATH", ROOT.parent / "shared" / "data" / "m3-monthly" / "m3_monthly.csv"
    )
)

#: Currency used in units attributes.
CURRENCY = "USD"

#: Default first month of the fiscal year (1 = January); the sample company's year starts in November.
FISCAL_YEAR_START = 11
#: Fiscal years are named by the calendar year in which they end ("end") or start ("start").
FISCAL_YEAR_NAMING = "end"

#: Member used when a dimension is missing from the data (no reps table, no region column...).
PLACEHOLDER = "(unassigned)"

#: Employee-headcount bands that define segments: (name, lower bound inclusive, upper bound exclusive).
SEGMENT_BANDS: tuple[tuple[str, float, float], ...] = (
    ("SMB", 0, 200),
    ("Mid-Market", 200, 2000),
    ("Enterprise", 2000, float("inf")),
)

#: Default sample company size.
SAMPLE_REPS = 60
SAMPLE_MONTHS = 48
SAMPLE_SEED = 7
