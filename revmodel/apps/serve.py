"""``revmodel serve``: the Voila apps on 127.0.0.1, sources stripped, idle kernels culled, token required.

The server is plain Voila over ``notebooks/apps/`` with:

- ``--Voila.ip=127.0.0.1``: nothing outside the machine reaches it; put a
  reverse proxy or JupyterHub in front for a team (README, "Apps");
- ``--strip_sources=True`` and ``--show_tracebacks=False``: the page holds
  widgets, never code or a traceback;
- ``--MappingKernelManager.cull_idle_timeout`` / ``cull_interval``: a kernel
  (one per open page) is shut down after :data:`CULL_IDLE_SECONDS` idle;
- ``--token``: every request needs the token (``REVMODEL_TOKEN``, or a random
  one printed in the URL).

Before Voila starts, the data is read once (:func:`warm`): the sample
company is generated when missing and the forecasts are computed into the
on-disk cache, so every app kernel renders in seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from revmodel import config

logger = logging.getLogger(__name__)

__all__ = [
    "APPS",
    "CULL_IDLE_SECONDS",
    "CULL_INTERVAL_SECONDS",
    "serve",
    "voila_command",
    "warm",
]

#: App notebook -> what it is for (the index printed at start).
APPS: dict[str, str] = {
    "explorer.ipynb": "plan explorer: bookings, forecast, quota, attainment, pipeline",
    "forecast_call.ipynb": "forecast call: commit / best case per rep, roll-up, audit",
    "whatif.ipynb": "what-if: scenario sliders, plan recomputed live, saved scenarios",
    "quotas.ipynb": "quotas and territories: balance and expected attainment",
}
#: An app's kernel is shut down after this long without activity [s].
CULL_IDLE_SECONDS = 1800
#: How often idle kernels are looked for [s].
CULL_INTERVAL_SECONDS = 120


def voila_command(
    port: int,
    token: str,
    apps_dir: str | Path | None = None,
    cull_idle_seconds: int = CULL_IDLE_SECONDS,
    cull_interval_seconds: int = CULL_INTERVAL_SECONDS,
    ip: str = "127.0.0.1",
) -> list[str]:
    """The Voila command line that serves the apps."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(apps_dir or config.APPS_DIR),
        "--no-browser",
        f"--Voila.ip={ip}",
        f"--port={int(port)}",
        "--Voila.port_retries=0",
        "--strip_sources=True",
        "--show_tracebacks=False",
        f"--token={token}",
        f"--MappingKernelManager.cull_idle_timeout={int(cull_idle_seconds)}",
        f"--MappingKernelManager.cull_interval={int(cull_interval_seconds)}",
        "--MappingKernelManager.cull_connected=False",
    ]


def warm() -> float:
    """Build the apps' context once so the forecast cache and the sample data exist [s]."""
    from revmodel.apps.context import load_context

    start = time.perf_counter()
    load_context()
    return time.perf_counter() - start


def serve(port: int = 8866) -> int:
    """Serve the apps on 127.0.0.1 until interrupted; prints each app's URL with its token."""
    token = os.environ.get("REVMODEL_TOKEN") or secrets.token_urlsafe(24)
    logger.info("Preparing the data and forecasts (cached after the first run)...")
    logger.info("Ready in %.1f s.", warm())
    base = f"http://127.0.0.1:{port}"
    print(f"Serving the apps on {base}/?token={token}", flush=True)
    for name, what in APPS.items():
        print(f"  {base}/voila/render/{name}?token={token}   {what}", flush=True)
    env = dict(os.environ)
    env.setdefault("REVMODEL_HOME", str(config.HOME))
    proc = subprocess.Popen(voila_command(port, token), env=env)

    def stop(signum: int, _frame: object) -> None:
        # Voila shuts its kernels down on SIGTERM; wait for it so nothing is left behind.
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop(signal.SIGINT, None)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    parser = argparse.ArgumentParser(prog="revmodel serve")
    parser.add_argument("--port", type=int, default=8866)
    return serve(parser.parse_args(argv).port)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
