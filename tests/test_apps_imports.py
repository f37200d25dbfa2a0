"""An app's kernel imports only what its page needs: no scipy.stats, no pandera."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("scipy.stats", "pandera")
APPS = ("explorer", "forecast_call", "whatif", "quotas", "weekly")


def _imported(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m in {HEAVY!r})))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_importing_the_apps_imports_neither_scipy_stats_nor_pandera():
    # One process for all: what is imported is the union of what each app imports.
    assert _imported(f"from revmodel.apps import {', '.join(APPS)}") == []


def test_the_check_sees_a_heavy_import():
    # The probe itself works: a module that does import them is reported.
    assert _imported("import scipy.stats, pandera") == ["pandera", "scipy.stats"]
