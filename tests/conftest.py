"""Shared fixtures: a small sample company, the apps' context built from it once, and a
headless Chromium for the browser tests (with the helpers they share)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

#: Debian's Chromium, driven by Playwright; no browser is downloaded.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: Where the browser tests leave their screenshots.
SCREENS = Path("/tmp/revmodel-screens")
#: This checkout: its package is the one ``run_revmodel`` runs.
CHECKOUT = Path(__file__).resolve().parents[1]
#: Kernel logs that never belong in what ``revmodel plan`` prints (ipykernel's
#: "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.").
KERNEL_NOISE = ("[IPKernelApp]", "KeyboardInterrupt")


def run_revmodel(args: list, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``python -m revmodel ARGS`` as a user runs it from the folder ``cwd`` (this checkout's
    package, no ``REVMODEL_HOME``), its output captured."""
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    env.pop("REVMODEL_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "revmodel", *(str(a) for a in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_plan_ran_cleanly(run: subprocess.CompletedProcess) -> None:
    """``revmodel plan`` exited 0 and printed no kernel log among its lines."""
    assert run.returncode == 0, run.stderr[-3000:]
    for noise in KERNEL_NOISE:
        assert noise not in run.stderr and noise not in run.stdout, run.stderr[-3000:]


def require_file(path: Path, how: str) -> None:
    """Skip the test when ``path`` is missing (fail in CI, which must provide it): ``how`` to get it."""
    if path.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{path} is missing: CI must {how}")
    pytest.skip(f"{path} is missing: {how}")


def require_chromium() -> None:
    require_file(CHROMIUM, "install Debian's chromium (apt-get install -y chromium)")


def free_port() -> int:
    """A free loopback port for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's tests (Playwright), closed after them."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    SCREENS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        yield b
        b.close()


@pytest.fixture(scope="session")
def small_company(tmp_path_factory: pytest.TempPathFactory):
    """The sample company with 24 reps over 36 months: (tables, data folder)."""
    from revmodel import sample

    folder = tmp_path_factory.mktemp("small-company")
    tables = sample.generate(reps=24, months=36)
    sample.write(tables, folder)
    return tables, folder


@pytest.fixture(scope="session")
def app_context(small_company, tmp_path_factory: pytest.TempPathFactory):
    """An :class:`revmodel.apps.context.AppContext` of the small company (seasonal-naive forecast)."""
    from revmodel import config
    from revmodel.apps import context

    _, folder = small_company
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "CACHE_DIR", cache)
        ctx = context.load_context(data_dir=folder, forecast_method="seasonal_naive")
    return ctx
