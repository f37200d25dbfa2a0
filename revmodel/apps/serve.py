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

- ``--template=revmodel`` (:func:`template_path`): Voila's lab template with no
  stylesheet fetched from the internet, and the charts drawn by plotly.js's basic
  bundle from this server, loaded beside the widgets; the ``jupyterlab-plotly``
  extension (the full plotly.js, 4.8 MB, loaded before any widget) and the
  syntax-highlighting one (no code is shown) are left out of the page;
- ``--MappingKernelManager.kernel_manager_class`` (:data:`KERNEL_MANAGER`): the
  kernels talk to Voila over IPC sockets, so a kernel cannot lose a TCP port to
  another program starting at the same moment and leave its page waiting;
- ``--preheat_kernel=True --pool_size=N``: Voila keeps :data:`POOL_SIZE`
  kernels per app (:data:`POOL_EXTRA` more for the explorer,
  its ``VoilaKernelManager.kernel_pools_config``, :func:`voila_config`) with the page already built, so opening an app sends a
  page rendered in advance; the page reads the live calls again the moment it
  is opened (:func:`revmodel.apps.layout.when_opened`). The page taken is built
  again once the kernels have been quiet for
  :data:`revmodel.kernels.REFILL_QUIET_SECONDS`
  (``--QuietRefillKernelManager.*``, :func:`revmodel.kernels.quiet_pool_refills`),
  not beside the first clicks of the person who opened it.

Before Voila starts, the shared context is made once (:func:`warm`). The
apps read the latest published plan (:func:`revmodel.apps.published.latest`):
the first start after a plan is published writes its context into the cache
file (:func:`revmodel.apps.cache.context_cache_path`); later starts only check
the file's fingerprint and the server is up in a few seconds. Before any plan
is published, the apps compute their context from the data (the sample
company, generated when missing).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from jupyter_core.paths import jupyter_path

from revmodel import config
from revmodel.kernels import REFILL_MAX_DELAY_SECONDS, REFILL_QUIET_SECONDS, clean_kernel_sockets

logger = logging.getLogger(__name__)

__all__ = [
    "APPS",
    "CULL_IDLE_SECONDS",
    "CULL_INTERVAL_SECONDS",
    "POOL_EXTRA",
    "POOL_SIZE",
    "VOILA_CHUNKS",
    "pool_config",
    "serve",
    "template_path",
    "voila_bundle",
    "voila_command",
    "voila_config",
    "warm",
]

#: The chunks of Voila's front end (``<id>.voila.js``, Voila 0.5 of the lock) that every app
#: page asks for, in the order asked: about 70 files, which the page would fetch one request
#: each (a few ms of the server's one thread per request) after Voila's script has started,
#: then run before the load event on which Voila starts the widgets. They are served as one
#: file instead (:func:`voila_bundle`, put before Voila's script by the template): each
#: chunk only registers its modules with webpack, which then finds them loaded and asks for
#: none. ``tests/test_apps_browser.py`` fails, naming them, if a page asks for another.
VOILA_CHUNKS: tuple[str, ...] = tuple(
    """
    2829 4371 7259 6074 4875 4486 6305 7393 225 614 2121 1996 2772 2296 7245 5992
    5764 8135 3992 9582 8925 7883 7556 6049 1670 6573 3311 4135 1621 3916 3649 8487
    9684 4041 143 7155 3144 1601 4972 9890 5312 6468 3459 630 5688 2930 73 1187 4173
    7483 431 3989 8766 9151 4729 6382 5044 7598 9081 7770 3249 4653 8862 9981 5767
    4222 8773 3307 6008 8017 457 9212
    """.split()
)
#: The one file of :data:`VOILA_CHUNKS`, in the template's static folder of the cache.
VOILA_BUNDLE = "revmodel-voila-chunks.js"
#: App notebook -> what it is for (the index printed at start).
APPS: dict[str, str] = {
    "explorer.ipynb": "plan explorer: bookings, forecast, quota, attainment, pipeline",
    "forecast_call.ipynb": "forecast call: commit / best case per rep, roll-up, audit",
    "whatif.ipynb": "what-if: scenario sliders, plan recomputed live, saved scenarios",
    "quotas.ipynb": "quotas and territories: balance and expected attainment",
    "weekly.ipynb": "weekly forecast: what changed in the pipeline, whose calls to trust",
}
#: An app's kernel is shut down after this long without activity [s].
CULL_IDLE_SECONDS = 1800
#: How often idle kernels are looked for [s].
CULL_INTERVAL_SECONDS = 120
#: The kernels' manager: local IPC sockets, no TCP port to race for (:mod:`revmodel.kernels`).
KERNEL_MANAGER = "revmodel.kernels.AppKernelManager"
#: Kernels kept ready per app, the page built in advance.
POOL_SIZE = 1
#: Kernels kept ready beyond ``pool_size`` for these apps: the explorer is the page opened
#: first and most, and the slowest to build (about 5 s of a quiet core, twice that while
#: other pages refill), so a second visitor within that time still gets a page made in
#: advance. Each kernel holds about 300 MB.
POOL_EXTRA: dict[str, int] = {"explorer.ipynb": 1}
#: The apps' Voila template (``revmodel/apps/share/voila/templates/revmodel``).
TEMPLATE = "revmodel"
#: Lab extensions the apps' pages leave out: charts are drawn by the template's plotly.js,
#: and no code is shown to highlight.
EXTENSIONS_LEFT_OUT = ("jupyterlab-plotly", "jupyterlab_pygments")
#: Voila, started without the modules nothing in it uses
#: (:func:`revmodel.kernels.leave_out_unused_imports`). Its pool of preheated
#: pages is refilled when the kernels are quiet (:func:`revmodel.kernels.quiet_pool_refills`).
#: Its first argument is the JSON of the settings a command line gives only in a form
#: traitlets marks deprecated (a list, a dict: :func:`voila_config`), the base of its config.
VOILA_MAIN = (
    "import json, sys; "
    "from revmodel.kernels import leave_out_unused_imports, quiet_pool_refills; "
    "leave_out_unused_imports(); quiet_pool_refills(); "
    "settings = json.loads(sys.argv.pop(1)); sys.argv[0] = 'voila'; "
    "from traitlets.config import Config; from voila.app import Voila; "
    "sys.exit(Voila.launch_instance(config=Config(settings)))"
)


def pool_config(pool_size: int = POOL_SIZE) -> dict[str, dict[str, int]]:
    """Voila's ``kernel_pools_config``: ``pool_size`` pages per app, more for :data:`POOL_EXTRA`."""
    pools = {"default": {"pool_size": int(pool_size)}}
    for app, extra in POOL_EXTRA.items():
        pools[app] = {"pool_size": int(pool_size) + extra}
    return pools


def voila_config(pool_size: int = POOL_SIZE) -> dict[str, dict]:
    """The settings :data:`VOILA_MAIN` is given as JSON: the extensions left out of the
    pages and, with preheated kernels, the pages kept per app (:func:`pool_config`)."""
    settings: dict[str, dict] = {
        "VoilaConfiguration": {"extension_denylist": list(EXTENSIONS_LEFT_OUT)}
    }
    if pool_size > 0:
        settings["VoilaKernelManager"] = {"kernel_pools_config": pool_config(pool_size)}
    return settings


def voila_command(
    port: int,
    token: str,
    apps_dir: str | Path | None = None,
    cull_idle_seconds: int = CULL_IDLE_SECONDS,
    cull_interval_seconds: int = CULL_INTERVAL_SECONDS,
    ip: str = "127.0.0.1",
    pool_size: int = POOL_SIZE,
) -> list[str]:
    """The Voila command line that serves the apps (``pool_size`` 0: no preheated kernels)."""
    preheat = []
    if pool_size > 0:
        preheat = [
            "--preheat_kernel=True",
            f"--pool_size={int(pool_size)}",
            f"--QuietRefillKernelManager.refill_quiet_seconds={REFILL_QUIET_SECONDS}",
            f"--QuietRefillKernelManager.refill_max_delay_seconds={REFILL_MAX_DELAY_SECONDS}",
        ]
    return [
        sys.executable,
        "-c",
        VOILA_MAIN,
        json.dumps(voila_config(pool_size)),
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
        f"--MappingKernelManager.kernel_manager_class={KERNEL_MANAGER}",
        f"--template={TEMPLATE}",
        *preheat,
    ]


def template_path(env: dict[str, str] | None = None) -> str:
    """``JUPYTER_PATH`` with the apps' Voila template first (``env``'s own entries after it).

    The template ships with the package; plotly.js's full bundle, which a chart
    needs only for trace types the basic bundle lacks (the weekly waterfall), is
    plotly's own file, copied (once per plotly version) into a folder of the cache
    that the template's static files are also looked up in, as is Voila's chunks
    in one file (:func:`voila_bundle`).
    """
    shipped = Path(__file__).resolve().parent / "share"
    extra = config.CACHE_DIR / "apps" / "share"
    static = extra / "voila" / "templates" / TEMPLATE / "static"
    full = static / "plotly.min.js"
    plotly = importlib.util.find_spec("plotly")  # found, not imported: no import time
    source = Path(plotly.origin).parent / "package_data" / "plotly.min.js"
    fresh = full.is_file() and full.stat().st_size == source.stat().st_size
    if full.is_symlink() or not fresh:
        # A copy: Voila serves no file linked from outside its folders.
        static.mkdir(parents=True, exist_ok=True)
        tmp = full.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(full)
    voila_bundle(static)
    current = (env if env is not None else os.environ).get("JUPYTER_PATH", "")
    return os.pathsep.join(p for p in (str(shipped), str(extra), current) if p)


def voila_bundle(static: Path) -> Path:
    """Write :data:`VOILA_CHUNKS` of the installed Voila into ``static`` as one script [its path].

    Each chunk's file as Voila ships it, in :data:`VOILA_CHUNKS`' order, a newline
    after each. A chunk the installed Voila lacks (another version) is left out and
    logged: the page then fetches it itself, as it would without the bundle. The file
    is written only when its content changes, through a file of this process's own
    (servers started at once do not write into each other's).
    """
    found = {}
    for folder in jupyter_path("voila", "templates", "base", "static"):
        for name in VOILA_CHUNKS:
            path = Path(folder) / f"{name}.voila.js"
            if name not in found and path.is_file():
                found[name] = path
    missing = [name for name in VOILA_CHUNKS if name not in found]
    if missing:
        logger.warning("Voila's chunks %s were not found: pages fetch them one by one.", missing)
    content = b"".join(found[name].read_bytes() + b"\n" for name in VOILA_CHUNKS if name in found)
    bundle = static / VOILA_BUNDLE
    if not bundle.is_file() or bundle.read_bytes() != content:
        static.mkdir(parents=True, exist_ok=True)
        tmp = bundle.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(content)
        tmp.replace(bundle)
    return bundle


def warm() -> float:
    """Make sure the apps' shared context is in its cache file [s spent].

    Only the fingerprint is checked when the file exists (a previous start wrote
    it); otherwise the context is built and written, once for every kernel.
    """
    from revmodel.apps import cache

    start = time.perf_counter()
    plan = cache.published_plan(None)
    if plan is None:
        logger.info("No plan published yet (run `revmodel plan`): the apps compute from the data.")
    else:
        logger.info("The apps show the %s.", plan.describe())
    path = cache.context_cache_path(None, cache.forecast_method(), plan)
    if not path.exists():
        from revmodel.apps.context import load_context

        load_context()
    return time.perf_counter() - start


def serve(port: int = 8866, pool_size: int = POOL_SIZE) -> int:
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
    env["JUPYTER_PATH"] = template_path(env)
    clean_kernel_sockets()  # those of servers killed before they could remove them
    proc = subprocess.Popen(voila_command(port, token, pool_size=pool_size), env=env)
    # SIGTERM only raises here: the server is stopped once out of ``proc.wait()``, whose lock a
    # second wait inside the handler could not take (it sat out its whole timeout).
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        raise
    except _Stopped as stopped:
        _stop(proc)
        raise SystemExit(128 + stopped.signum) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Stopped(Exception):
    """A signal asked ``revmodel serve`` to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop Voila: it shuts its kernels down on SIGTERM; wait for it so nothing is left behind."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    parser = argparse.ArgumentParser(prog="revmodel serve")
    parser.add_argument("--port", type=int, default=8866)
    return serve(parser.parse_args(argv).port)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
