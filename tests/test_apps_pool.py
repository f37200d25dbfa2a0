"""Voila's pool of preheated pages: a page taken is built again once the kernels are quiet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from traitlets.config import Config

from revmodel import config, kernels
from revmodel.apps import serve
from tests.conftest import free_port, http_get, run_python, write_notebook


def test_the_refill_settings_reach_voila_s_config():
    from voila.app import Voila

    cmd = serve.voila_command(8870, "tok", pool_size=1)
    assert "quiet_pool_refills()" in cmd[2]
    app = Voila()
    app.parse_command_line(cmd[4:])
    settings = app.config.QuietRefillKernelManager
    assert float(settings.refill_quiet_seconds) == kernels.REFILL_QUIET_SECONDS
    assert float(settings.refill_max_delay_seconds) == kernels.REFILL_MAX_DELAY_SECONDS
    assert not [f for f in serve.voila_command(8870, "tok", pool_size=0) if "Refill" in f]


def test_the_explorer_keeps_one_page_more_in_the_pool():
    from voila.app import Voila

    assert serve.pool_config(1) == {
        "default": {"pool_size": 1},
        "explorer.ipynb": {"pool_size": 2},
    }
    assert serve.pool_config(3)["explorer.ipynb"] == {"pool_size": 4}
    # the config Voila is started with (VOILA_MAIN), its command line on top
    cmd = serve.voila_command(8870, "tok", pool_size=1)
    app = Voila(config=Config(json.loads(cmd[3])))
    app.parse_command_line(cmd[4:])
    assert app.config.VoilaKernelManager.kernel_pools_config == serve.pool_config(1)
    plain = serve.voila_command(8870, "tok", pool_size=0)
    assert "VoilaKernelManager" not in json.loads(plain[3])


def test_voila_s_pooled_manager_is_the_quiet_refill_one(monkeypatch):
    import voila.app

    monkeypatch.setattr(
        voila.app, "voila_kernel_manager_factory", voila.app.voila_kernel_manager_factory
    )
    kernels.quiet_pool_refills()
    kernels.quiet_pool_refills()  # once is enough: not wrapped twice
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    made = voila.app.voila_kernel_manager_factory(AsyncMappingKernelManager, True, 1)
    assert made.__name__ == "QuietRefillKernelManager"
    assert made.__mro__[1].__name__ == "VoilaKernelManager"
    assert [c.__name__ for c in made.__mro__].count("QuietRefillKernelManager") == 1
    plain = voila.app.voila_kernel_manager_factory(AsyncMappingKernelManager, False, 0)
    assert plain.__name__ == "NormalKernelManager"


def test_waiting_for_a_request_imports_voila_without_modules_nothing_uses():
    """Voila's wait is the one a preheated page runs; its package is imported without
    ``rfc3987_syntax`` (a grammar compiled at import), and jsonschema still validates."""
    code = (
        "import sys\n"
        "from revmodel.apps import layout\n"
        "layout.wait_for_request()\n"  # not preheated: Voila's wait returns at once
        "import jsonschema\n"
        "jsonschema.validate('a b', {'format': 'iri'}, format_checker=jsonschema.FormatChecker())\n"
        "print('voila.utils' in sys.modules, 'jupyter_server' in sys.modules,"
        " sys.modules['rfc3987_syntax'])\n"
    )
    done = run_python(code, VOILA_PREHEAT="False")
    assert (done.returncode, done.stdout, done.stderr) == (0, "True True None\n", "")


def test_a_module_already_imported_is_not_left_out(monkeypatch):
    marker = object()
    monkeypatch.setitem(sys.modules, "rfc3987_syntax", marker)
    kernels.leave_out_unused_imports()
    assert sys.modules["rfc3987_syntax"] is marker


def _app(folder: Path, name: str = "tiny.ipynb") -> None:
    write_notebook(
        folder / name,
        [
            "import os\nprint('page of', os.getpid())",
            # once opened, the page works for 4 s without sending a message
            "import time\nfrom revmodel.apps import layout\n\n"
            "layout.wait_for_request()\ntime.sleep(4)",
        ],
    )


def _wait_log(
    log: Path, text: str, count: int, proc: subprocess.Popen, timeout: float = 120
) -> str:
    deadline = time.monotonic() + timeout
    while (body := log.read_text()).count(text) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{text!r} not {count} times in the log: {body}")
        time.sleep(0.2)
    return body


@pytest.mark.slow
def test_pages_open_from_the_pool_and_are_refilled_when_quiet_or_asked_for(tmp_path, monkeypatch):
    apps, log_path = tmp_path / "apps", tmp_path / "serve.log"
    apps.mkdir()
    _app(apps)
    _app(apps, "explorer.ipynb")  # kept two pages in the pool (serve.POOL_EXTRA)
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    env = {**os.environ, "JUPYTER_PATH": serve.template_path(dict(os.environ))}
    port = free_port()
    cmd = serve.voila_command(port, "tok", apps_dir=apps, pool_size=1)
    url = f"http://127.0.0.1:{port}/voila/render/tiny.ipynb?token=tok"
    pooled, refill = "Using pre-heated kernel", "Refilling the pool of tiny.ipynb"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            _wait_log(log_path, "Kernel pool of tiny.ipynb is filled with 1 kernel(s)", 1, proc)
            body = _wait_log(
                log_path, "Pool refills wait for 3.0 s without kernel work or traffic", 1, proc
            )
            taken = time.monotonic()
            status, page = http_get(url)
            assert status == 200 and "page of" in page
            body = _wait_log(log_path, refill, 1, proc)
            # not the second after: once the page's 4 s of work and 3 s of quiet are over
            assert time.monotonic() - taken >= 6.5
            assert f"{refill} " in body and "(asked for)" not in body
            _wait_log(log_path, "Kernel pool of tiny.ipynb is filled with 1 kernel(s)", 2, proc)
            # the next two visitors at once: the second asks for the page still waiting
            assert http_get(url)[0] == 200
            status, page = http_get(url)
            assert status == 200 and "page of" in page
            body = _wait_log(log_path, "(asked for)", 1, proc)
            assert body.count(pooled) == 3
            # two visitors of the explorer at once: both get a page made in advance, and
            # neither page taken is built again before the kernels are quiet
            assert "Kernel pool of explorer.ipynb is filled with 2 kernel(s)" in body
            explorer = url.replace("tiny.ipynb", "explorer.ipynb")
            for _ in range(2):
                status, page = http_get(explorer)
                assert status == 200 and "page of" in page
            _wait_log(log_path, "Refilling the pool of explorer.ipynb", 2, proc)
            for _ in range(2):  # the pages built again, once quiet, are those handed out next
                status, page = http_get(explorer)
                assert status == 200 and "page of" in page
            body = log_path.read_text()
            assert body.count(pooled) == 7
            refills = [
                line for line in body.splitlines() if "Refilling the pool of explorer" in line
            ]
            assert len(refills) == 2 and not [r for r in refills if "asked for" in r], refills
            # the settings reach Voila without a form traitlets warns of
            assert "deprecated in traitlets" not in body
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    assert "Traceback" not in log_path.read_text()
