"""Stopping the apps' server: preheated kernels end without a traceback in its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from revmodel import config
from revmodel.apps import layout, serve
from revmodel.kernels import pid_alive
from tests.conftest import free_port, run_python, write_notebook

#: What ipykernel logs when a cell's reply goes to a shell socket already closed.
KERNEL_ERRORS = ("Exception in message handler", "Traceback", "ZMQError")


def test_end_on_interrupt_outside_a_preheated_kernel_does_nothing(monkeypatch):
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    before = signal.getsignal(signal.SIGINT)
    assert layout.end_on_interrupt() is False
    monkeypatch.setenv("VOILA_PREHEAT", "False")
    assert layout.end_on_interrupt() is False
    assert signal.getsignal(signal.SIGINT) is before


def test_an_interrupted_preheated_kernel_ends_at_once(tmp_path):
    """The process ends on the interrupt, with status 0: nothing after it runs."""
    code = (
        "import os, signal, time\n"
        "from revmodel.apps import layout\n"
        "assert layout.end_on_interrupt()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(10)\n"
        "print('still running')\n"
    )
    done = run_python(code, VOILA_PREHEAT="True")
    # without the handler: a KeyboardInterrupt traceback and status 1; ignored: "still running"
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def _slow_app(folder: Path, marker: Path) -> None:
    """An app whose page takes a minute to build, as the weekly page's first build does."""
    write_notebook(
        folder / "slow.ipynb",
        [
            "import time\nfrom pathlib import Path\nfrom revmodel.apps import layout\n\n"
            f"layout.end_on_interrupt()\nPath({str(marker)!r}).touch()\ntime.sleep(60)",
            "layout.when_opened(None)",
        ],
    )


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the page's kernel did not start: {log.read_text()}")
        time.sleep(0.3)


@pytest.mark.slow
def test_stopping_the_server_while_a_page_builds_logs_no_traceback(tmp_path, monkeypatch):
    """Voila interrupts each kernel, then asks it to shut down; a preheated kernel building
    its page ends at once instead of replying on a closed socket (a traceback per kernel)."""
    apps, marker, log_path = tmp_path / "apps", tmp_path / "building", tmp_path / "serve.log"
    apps.mkdir()
    _slow_app(apps, marker)
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    env = {**os.environ, "JUPYTER_PATH": serve.template_path(dict(os.environ))}
    cmd = serve.voila_command(free_port(), "tok", apps_dir=apps, pool_size=1)
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            _wait_for(marker, proc, log_path)
            time.sleep(1)  # the cell is running
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    text = log_path.read_text()
    assert "Kernel pool of slow.ipynb is filled with 1 kernel(s)" in text
    assert "Kernel shutdown:" in text
    assert not [e for e in KERNEL_ERRORS if e in text], text


def test_the_server_stops_at_once_on_sigterm(tmp_path):
    """``revmodel serve`` stops Voila and exits on SIGTERM (status 143) within seconds: a wait
    inside the signal handler, under the interrupted ``wait`` of the server, sat out its
    whole 20 s before killing Voila."""
    started = tmp_path / "voila-started"
    voila = f"import os, pathlib, time; pathlib.Path({str(started)!r}).write_text(str(os.getpid())); time.sleep(120)"
    code = (
        "import sys\n"
        "from revmodel.apps import serve\n"
        "serve.warm = lambda: 0.0\n"
        "serve.template_path = lambda env=None: ''\n"
        f"serve.voila_command = lambda *a, **k: [sys.executable, '-c', {voila!r}]\n"
        "serve.serve(port=free_port)\n".replace("free_port", str(free_port()))
    )
    env = {**os.environ, "REVMODEL_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() or not started.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        time.sleep(0.5)  # the server waits for Voila
        t0 = time.monotonic()
        proc.terminate()
        status = proc.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == 128 + signal.SIGTERM
    assert took < 10, f"revmodel serve took {took:.1f} s to stop"
    assert not pid_alive(int(started.read_text()))
