"""revmodel from a built wheel, and from a second clone: the pack lands in the user's folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from revmodel import config
from tests.conftest import without_band_calibration

#: What a source copy of the checkout leaves out (environments, outputs, caches).
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "data", "build", "reports", "*.egg-info", "__pycache__", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".cache", "benchmarks", "_shipped",
)  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REVMODEL_HOME")}
    env.update(extra)
    return env


def _run(cmd: list, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _reports_in_checkout() -> set[str]:
    folder = config.ROOT / "reports"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


@pytest.mark.slow
def test_wheel_install_runs_init_sample_and_plan_outside_the_checkout(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(config.ROOT, source, ignore=IGNORED)
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", wheels, source],
        cwd=tmp_path, env=_env(),
    )  # fmt: skip
    (wheel,) = wheels.glob("revmodel-*.whl")
    # A fresh virtualenv holding only the wheel; the locked dependencies come from this
    # environment's site-packages, listed after the venv's own (a .pth line, not a site dir,
    # so this environment's editable install of revmodel is not picked up).
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=_env())
    py = venv / "bin" / "python"
    purelib = Path(
        _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
             cwd=tmp_path, env=_env()).stdout.strip()
    )  # fmt: skip
    (purelib / "locked-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([py, "-m", "pip", "install", "--no-deps", "--no-index", wheel], cwd=tmp_path, env=_env())
    where = tmp_path / "elsewhere"
    where.mkdir()
    found = _run([py, "-c", "import revmodel; print(revmodel.__file__)"], cwd=where, env=_env())
    assert Path(found.stdout.strip()).is_relative_to(purelib), found.stdout
    shipped = purelib / "revmodel" / "_shipped"
    assert (shipped / "notebooks" / "quarterly-plan.ipynb").is_file()
    assert (shipped / "notebooks" / "apps" / "explorer.ipynb").is_file()
    assert (shipped / "parameters" / "FY2027-Q1.yaml").is_file()
    assert (purelib / "revmodel" / "templates" / "plan.yaml").is_file()

    before = _reports_in_checkout()
    revmodel = venv / "bin" / "revmodel"
    _run([revmodel, "init", "acme"], cwd=where, env=_env())
    project = where / "acme"
    _run([revmodel, "sample", "--out", "data", "--reps", "8", "--months", "36"],
         cwd=project, env=_env())  # fmt: skip
    without_band_calibration(project / "parameters" / "plan.yaml")  # the install, not the bands
    plan = _run([revmodel, "plan"], cwd=project, env=_env())
    html = Path(plan.stdout.strip().splitlines()[-1])
    assert html == project / "reports" / "FY2027-Q1" / "plan.html"
    assert html.is_file()
    manifest = json.loads((html.parent / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["as_of"] == "2026-10"
    assert "actuals end at 2026-10, the data's last complete month" in manifest["assumed"]
    assert "assumed: actuals end at 2026-10, the data's last complete month" in plan.stderr
    assert not (purelib / "reports").exists() and not (purelib / "data").exists()
    assert _reports_in_checkout() == before


@pytest.mark.slow
def test_plan_from_a_second_clone_publishes_into_that_clone(tmp_path):
    clone = tmp_path / "clone"
    shutil.copytree(config.ROOT, clone, ignore=IGNORED)
    data = clone / "data" / "small"
    env = _env(PYTHONPATH=str(config.ROOT))  # the package of the first checkout
    _run([sys.executable, "-m", "revmodel", "sample", "--out", data, "--reps", "8",
          "--months", "36"], cwd=clone, env=env)  # fmt: skip
    without_band_calibration(clone / "parameters" / "FY2027-Q1.yaml")  # where, not the bands
    before = _reports_in_checkout()
    plan = _run(
        [sys.executable, "-m", "revmodel", "plan", "--params", "parameters/FY2027-Q1.yaml",
         "--data", "data/small"],
        cwd=clone, env=env,
    )  # fmt: skip
    html = Path(plan.stdout.strip().splitlines()[-1])
    assert html == clone.resolve() / "reports" / "FY2027-Q1" / "plan.html"
    assert html.is_file()
    assert _reports_in_checkout() == before
