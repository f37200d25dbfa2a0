"""Shared fixtures: a small sample company, the apps' context built from it once, and a
headless Chromium for the browser tests (with the helpers they share)."""

from __future__ import annotations

import ast
import contextlib
import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
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


def _defines_a_module_fixture(path: Path) -> bool:
    """Whether the test module at ``path`` defines a ``@pytest.fixture(scope="module")``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "fixture":
            for kw in node.keywords:
                if kw.arg == "scope" and getattr(kw.value, "value", None) == "module":
                    return True
    return False


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``pytest -n 2`` (``make test``): a module that defines a module-scoped fixture (a published
    plan, served apps, a hub, a cluster, a PostgreSQL server) runs whole on one worker, so that
    fixture is built once; every other test is handed out on its own to whichever worker is
    free. Whole modules are handed out first (most tests first), then the single tests in
    collection order. Any other ``--dist`` than the default ``load`` is left to pytest-xdist."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath

    @functools.cache
    def whole(path: str) -> bool:
        return _defines_a_module_fixture(root / path)

    class ModuleFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if whole(path) else nodeid

    return ModuleFixtureScheduling(config, log)


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


#: The parameters of a plan whose test is about something else than its 10-90% bands (an
#: export read into a pack, a killed run, a wheel, a cluster): the models' own bands, no past
#: origin refitted to calibrate them (``band_calibration_folds``, 0 as a user may set it). The
#: default calibration stays in the plans that check the bands and the pack as shipped:
#: test_notebooks.py's sound pack, test_project.py's plan without parameters,
#: test_apps_no_rep.py, test_pack_band.py, test_band_calibration.py and CI's own plan.
NO_BAND_CALIBRATION = {"band_calibration_folds": 0}


def without_band_calibration(params: Path) -> Path:
    """``params`` (a parameters YAML) edited as a user would to keep the models' own bands:
    its ``band_calibration_folds`` line set to 0 (its comment kept), or added."""
    text = params.read_text(encoding="utf-8")
    key = re.compile(r"^band_calibration_folds:[ \t]*\d+", re.MULTILINE)
    if key.search(text):
        text = key.sub("band_calibration_folds: 0", text, count=1)
    else:
        text = text.rstrip("\n") + "\nband_calibration_folds: 0\n"
    params.write_text(text, encoding="utf-8")
    return params


def require_file(path: Path, how: str) -> None:
    """Skip the test when ``path`` is missing (fail in CI, which must provide it): ``how`` to get it."""
    if path.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{path} is missing: CI must {how}")
    pytest.skip(f"{path} is missing: {how}")


def require_chromium() -> None:
    require_file(CHROMIUM, "install Debian's chromium (apt-get install -y chromium)")


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of these code cells on the ``python3`` kernel, as the apps' notebooks are."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(cell) for cell in cells]
    nbformat.write(nb, path)
    return path


def free_port() -> int:
    """A free loopback port for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The token of the apps a browser test serves (``REVMODEL_TOKEN``).
APPS_TOKEN = "revmodel-test-token"
#: A first start computes the forecasts [s].
SERVE_TIMEOUT = 240


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` run by this Python in a process of its own, ``env`` added to the environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def http_get(url: str) -> tuple[int, str]:
    """(status, body) of a GET on a loopback server."""
    try:
        with urllib.request.urlopen(url, timeout=120) as r:  # noqa: S310 - loopback only
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def warm_home(env: dict, open_for_calls_as: str | None = None, timeout: float = 900) -> str:
    """Build the apps' context of ``env``'s ``REVMODEL_HOME`` once, in a process of its own (the
    forecasts are cached there for the servers), and open the cycle's quarter for calls as the
    admin ``open_for_calls_as`` (as a RevOps lead would). Returns the cycle."""
    code = "from revmodel.apps.context import load_context, open_store\nctx = load_context()\n"
    if open_for_calls_as:
        code += (
            "from revmodel.overrides import Identity\n"
            f"open_store(ctx).open_period(ctx.cycle, Identity({open_for_calls_as!r}))\n"
        )
    code += "print(ctx.cycle)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


#: base URL of a running `revmodel serve` -> its log (shown when a page does not come).
_SERVE_LOGS: dict[str, Path] = {}


@contextlib.contextmanager
def served_apps(home: Path, env: dict, log_name: str) -> Iterator[str]:
    """``revmodel serve`` for ``env``'s user on a free loopback port, its log in ``home``:
    yields its base URL once it answers, stops it after."""
    port = free_port()
    revmodel = shutil.which("revmodel", path=str(Path(sys.executable).parent)) or "revmodel"
    log_path = home / log_name
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [revmodel, "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + SERVE_TIMEOUT
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"revmodel serve exited: {log_path.read_text()}")
                try:
                    if http_get(f"{base}/?token={APPS_TOKEN}")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"revmodel serve did not answer: {log_path.read_text()}")
                time.sleep(0.5)
            _SERVE_LOGS[base] = log_path
            yield base
        finally:
            _SERVE_LOGS.pop(base, None)
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def open_app(browser, base: str, app: str, ready: str, timeout: float):
    """A new page of ``app`` served at ``base``, once ``ready`` shows (``timeout`` in ms)."""
    page = browser.new_page(viewport={"width": 1300, "height": 2000})
    try:
        page.goto(f"{base}/voila/render/{app}.ipynb?token={APPS_TOKEN}", timeout=timeout)
        page.wait_for_selector(ready, timeout=timeout)
    except Exception as exc:  # the server's log says why (a kernel that died, a cell's error)
        log = _SERVE_LOGS.get(base)
        tail = "\n".join(log.read_text().splitlines()[-80:]) if log and log.exists() else ""
        shown = page.inner_text("body")[:2000] if not page.is_closed() else ""
        raise AssertionError(
            f"{app}: {ready} did not show: {exc}\n--- page ---\n{shown}\n--- server log ---\n{tail}"
        ) from None
    return page


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


@pytest.fixture(scope="session", autouse=True)
def _cache_of_this_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The revmodel cache of this session (under ``pytest -n 2``, of this worker): forecasts,
    apps contexts and this machine's record of where a version's exports are
    (:func:`revmodel.versions.remember_exports`) never land in, nor are read from, the checkout's
    ``.cache``, which another worker or another run writes too. A test that sets its own
    ``config.CACHE_DIR`` still does."""
    from revmodel import config

    cache = tmp_path_factory.mktemp("revmodel-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "CACHE_DIR", cache)
        yield cache


@pytest.fixture(autouse=True)
def _progress_bars_as_at_start() -> Iterator[None]:
    """Every test starts with revmodel's progress bars as a new process has them: an app's
    session or ``revmodel -q`` run in-process turns them off for the rest of that process."""
    from revmodel import progress

    progress.configure(None)
    yield
    progress.configure(None)


#: Where each test module's shared ``RNG`` stood when its first test began.
_RNG_STARTS: dict[str, dict] = {}


@pytest.fixture(autouse=True)
def _module_rng_from_its_start(request: pytest.FixtureRequest) -> None:
    """A test module's shared ``RNG`` (a numpy Generator) restarts where it stood at the module's
    first test: a test's data do not depend on which tests ran before it in the same process,
    which ``pytest -n 2`` decides anew at every run."""
    import copy

    import numpy as np

    rng = getattr(request.module, "RNG", None)
    if isinstance(rng, np.random.Generator):
        start = _RNG_STARTS.setdefault(
            request.module.__name__, copy.deepcopy(rng.bit_generator.state)
        )
        rng.bit_generator.state = copy.deepcopy(start)


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
