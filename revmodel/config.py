"""Paths and defaults: the only module that spells a path.

A planning project is the user's folder: the current working directory, or
``REVMODEL_HOME``. Data, reports, caches and the overrides store live there,
never beside the installed package. What ships with revmodel (planning and
app notebooks, templates, the sample company's parameters) is read from the
package, so a plain ``pip install`` of the wheel works from any folder.
Everything else asks this module where things live.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The installed package: where the planning notebooks, app notebooks, templates and the
#: sample company's parameters ship (package data).
PACKAGE_DIR = Path(__file__).resolve().parent

#: Root of a source checkout (the folder holding ``pyproject.toml``); in a wheel install this
#: is site-packages and holds nothing of ours. Used only for the git commit of a run and
#: paths beside a checkout; the user's files never go here.
ROOT = PACKAGE_DIR.parent


def _shipped(name: str) -> Path:
    """A folder shipped with the package: ``revmodel/_shipped/<name>`` in a built wheel
    (setup.py copies the repository's top-level folder there), the top-level folder itself
    in a source checkout. One copy of each file either way."""
    built = PACKAGE_DIR / "_shipped" / name
    return built if built.is_dir() else ROOT / name


def project_root() -> Path:
    """The planning project: ``REVMODEL_HOME`` if set, else the current working directory."""
    home = os.environ.get("REVMODEL_HOME")
    return Path(home).expanduser().resolve() if home else Path.cwd().resolve()


#: Planning notebooks, app notebooks and parameters as shipped with revmodel.
SHIPPED_NOTEBOOKS_DIR = _shipped("notebooks")
SHIPPED_PARAMETERS_DIR = _shipped("parameters")
#: Templates (``plan.yaml`` for ``revmodel init``, the pack's jinja2 templates).
TEMPLATES_DIR = PACKAGE_DIR / "templates"

#: The user's project folder (the working directory at start, or ``REVMODEL_HOME``):
#: data, reports, caches and overrides live here, never beside the package.
HOME = project_root()


def _project_or_shipped(name: str, marker: str) -> Path:
    own = HOME / name
    return own if (own / marker).exists() else _shipped(name)


#: Planning notebooks: the project's own ``notebooks/`` when it holds them (``revmodel init``
#: copies them there), else the shipped ones.
NOTEBOOKS_DIR = _project_or_shipped("notebooks", "quarterly-plan.ipynb")
APPS_DIR = (
    NOTEBOOKS_DIR / "apps" if (NOTEBOOKS_DIR / "apps").is_dir() else SHIPPED_NOTEBOOKS_DIR / "apps"
)
#: Parameters: the project's ``parameters/`` when it exists, else the shipped sample's.
PARAMETERS_DIR = _project_or_shipped("parameters", ".")
REPORTS_DIR = HOME / "reports"
DATA_DIR = HOME / "data"
#: The embedded sample company is generated here by ``make plan``.
SAMPLE_DIR = DATA_DIR / "sample"
#: A data folder's log of past forecast calls (``revmodel sample`` writes one; read by
#: :func:`revmodel.valueadd.call_log`).
CALL_LOG_FILE = "forecast_calls.csv"
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

#: Default first month of the fiscal year (1 = January) when the parameters do not say; the
#: sample company's parameters say November explicitly.
FISCAL_YEAR_START = 1
#: Fiscal years are named by the calendar year in which they end ("end") or start ("start").
FISCAL_YEAR_NAMING = "end"

#: Member used when a dimension is missing from the data (no reps table, no region column...).
PLACEHOLDER = "(unassigned)"

#: Past origins the reconciled 10-90% bands are calibrated on by default (``revmodel forecast
#: --calibrate-bands``, the plan's ``band_calibration_folds``; fewer when the history is short,
#: 0 turns the calibration off).
BAND_CALIBRATION_FOLDS = 2

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
