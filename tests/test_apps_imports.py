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


def _imported(code: str, heavy: tuple[str, ...] = HEAVY, env: dict | None = None) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m in {heavy!r})))"
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)}
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


# --------------------------------------------------------------------------- serving

#: What ``revmodel serve`` does without, once the apps' context is in its cache.
DATA_STACK = ("numpy", "pandas", "xarray")

SERVE_WITH_CACHE = """
import os
import subprocess
from revmodel import config
from revmodel.apps import cache, serve
(config.SAMPLE_DIR).mkdir(parents=True)
(config.SAMPLE_DIR / "opportunities.csv").write_text("opportunity_id\\n")
path = cache.context_cache_path(None, cache.forecast_method(), cache.published_plan(None))
path.parent.mkdir(parents=True, exist_ok=True)
path.write_bytes(b"")  # the context a previous start wrote


class Voila:
    def __init__(self, cmd, env):
        template = env["JUPYTER_PATH"].split(os.pathsep)[0]
        print("voila", cmd[cmd.index("--port=4321")], template.endswith("apps/share"))

    def wait(self):
        return 0


subprocess.Popen = Voila
from revmodel.cli import main

assert main(["serve", "--port", "4321"]) == 0
"""


def _serve_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "REVMODEL_HOME": str(home), "REVMODEL_TOKEN": "tok"}
    for name in ("REVMODEL_CUBE", "REVMODEL_PARAMS", "REVMODEL_FORECAST_METHOD"):
        env.pop(name, None)
    return env


def test_serve_with_its_cache_in_place_imports_neither_numpy_pandas_nor_xarray(tmp_path):
    assert _imported(SERVE_WITH_CACHE, DATA_STACK, _serve_env(tmp_path)) == []


def test_the_serve_probe_runs_the_command_to_the_end(tmp_path):
    # The probe above ran `revmodel serve` as far as starting Voila, with the token URL printed.
    env = {**_serve_env(tmp_path), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", SERVE_WITH_CACHE], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "http://127.0.0.1:4321/voila/render/weekly.ipynb?token=tok" in run.stdout
    assert "voila --port=4321 True" in run.stdout


ACCESSOR = """
import json, sys
{first}
import xarray as xr
print(json.dumps([hasattr(xr.Dataset, "rev"), type(xr.__spec__.loader).__name__,
                  type(xr.__loader__).__name__]))
"""


def _accessor(first: str) -> list:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", ACCESSOR.format(first=first)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_importing_revmodel_imports_no_data_stack_yet():
    assert _imported("import revmodel", DATA_STACK) == []


def test_ds_rev_is_registered_when_xarray_comes_after_revmodel():
    # xarray keeps its own loader: only its first execution was followed by the registration.
    assert _accessor("import revmodel") == [True, "SourceFileLoader", "SourceFileLoader"]


def test_ds_rev_is_registered_when_xarray_came_before_revmodel():
    assert _accessor("import xarray\nimport revmodel") == [
        True, "SourceFileLoader", "SourceFileLoader",
    ]  # fmt: skip


def test_ds_rev_is_registered_after_a_lookup_of_xarray_that_did_not_import_it():
    # Libraries test for an optional xarray with find_spec before anything imports it.
    first = "import revmodel, importlib.util\nassert importlib.util.find_spec('xarray')"
    assert _accessor(first) == [True, "SourceFileLoader", "SourceFileLoader"]


def test_without_revmodel_xarray_has_no_ds_rev():
    # The check above can fail: plain xarray has no `rev`.
    assert _accessor("") == [False, "SourceFileLoader", "SourceFileLoader"]
