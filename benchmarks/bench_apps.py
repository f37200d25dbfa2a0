"""First render and interaction times of the Voila apps, with and without preheated kernels.

Peer: the same apps served by the same ``revmodel serve`` without preheated
kernels (``--pool-size 0``: plain Voila, a kernel started per page).

For each mode the script starts ``revmodel serve`` on a free loopback port
(``REVMODEL_HOME`` in a temporary folder; the shared context cache is made
once before the first server, so ``server_ready`` is the start with the
cache in place), then measures per app:

- ``<mode>_<app>_http_render_{median,p90}_seconds``: a GET of the page, to its last byte;
- ``<mode>_<app>_chromium_render_{median,p90}_seconds``: navigation in headless Chromium
  (Debian's ``/usr/bin/chromium``) until the app's chart or form shows, each page in a
  new browser profile (nothing cached: a first visit);
- ``<mode>_<app>_chromium_return_render_{median,p90}_seconds``: the same in one browser
  profile that opened the app twice before (its HTTP cache and compiled scripts kept: a
  person opening the app again; Chromium keeps a script's compiled code from its second
  run on, so the first two rounds are not measured);
- ``<mode>_<app>_chromium_{,return_}visible_{median,p90}_seconds``: until the page's content
  is on screen: the page's snapshot (static HTML of the widgets, shown by the apps'
  template while the live widgets are made, :func:`revmodel.apps.layout.snapshot_html`),
  read from the page's own clock (navigation start to the ``revmodel-snapshot-shown``
  mark, the frame after the snapshot was put in; the live page's time when there is no
  snapshot). Nothing in a snapshot responds: the ``render`` times above are those of the
  live page, whose widgets work, and ``<mode>_<app>_chromium_{,return_}interactive_...``
  repeat them under that name;
- ``<mode>_<app>_chromium_{,return_}{html,load_event}_median_seconds``: navigation until the
  page's HTML had arrived (a page made in advance: a few ms; one built for the visitor:
  seconds) and until its load event, on which Voila starts the widgets;
- ``<mode>_<app>_chromium_kernel_{messages,kbytes}``, ``..._chromium_http_kbytes`` and
  ``..._chromium_widget_views``: what the last of those pages received from its kernel and
  over HTTP (by ``Content-Length``) until it showed, and the widgets it drew;

with preheated kernels, per app: ``preheated_<app>_rebuild_{cpu_,}seconds``: a page taken
from the pool is built again in a new kernel (once the server is quiet); the CPU that
kernel used and the time from its start until it was done (its CPU time unchanged for
:data:`SETTLED_SECONDS`), one page at a time on a server at rest: the work the pool puts
beside visitors after each page taken;

and once per mode: ``<mode>_server_ready_seconds`` (start until Voila answers, the
median of :data:`STARTS` starts),
``<mode>_explorer_filter_seconds`` (region change until the KPI card changes, the
server at rest), ``preheated_explorer_filter_during_rebuild_seconds`` (the same from the
moment a page taken from the pool starts to be built again beside it, and
``..._loop_seconds`` the time those changes took, to compare with the rebuild's),
``<mode>_forecast_call_submit_seconds`` (submit until the call is in the audit
table), ``<mode>_whatif_slider_seconds`` (slider step until the target KPI
changes) and ``<mode>_weekly_level_seconds`` (the weekly app's level changed until
its waterfall table changes), medians of a few repeats.

Once, in a kernel of its own (no server): ``weekly_value_add_full_seconds`` (the
weekly page built on the sample company with its call log: every call scored),
``weekly_value_add_after_call_seconds`` (a manager's call of a past quarter changed,
the page opened again scores the calls: :class:`revmodel.valueadd.Scorer` scores
that node again only) and ``weekly_value_add_next_kernel_seconds`` (the page built
again from the shared context, as the next kernel does: the history, waterfalls and
scores read from the files the first build kept).

Renders go round the four apps, :data:`REPEATS` times, with :data:`PAUSE_SECONDS`
between rounds so the pool can refill (a preheated kernel takes a few seconds
to get ready, as it would between two people opening the same app). Every
kernel a measurement started is shut down after it.

The machine's 1-minute load average is recorded before and after each mode
(``<mode>_load_average_{start,end}``): timings on a shared 2-core machine are
noisy, and the load says how busy it was.

Run: ``.venv/bin/python benchmarks/bench_apps.py [--quick]`` (prints a table and writes
``benchmarks/results/bench_apps.json``; ``BENCH_APPS_OUT`` writes elsewhere; ``--help``
lists the settings and starts nothing).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from benchkit import p90

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "bench-token"
OUT = Path(
    os.environ.get(
        "BENCH_APPS_OUT", Path(__file__).resolve().parent / "results" / "bench_apps.json"
    )
)
APPS = {
    "explorer": ".revmodel-chart .main-svg .trace",
    "forecast_call": "button.revmodel-call-submit:not([disabled])",
    "whatif": ".revmodel-whatif-chart .main-svg .trace",
    "quotas": ".revmodel-quota-chart .main-svg .trace",
    "weekly": ".revmodel-weekly-waterfall .main-svg .trace",
}
#: Mode -> pool size; ``BENCH_APPS_MODES=preheated`` measures one mode only.
MODES = {
    m: {"preheated": 1, "plain": 0}[m]
    for m in os.environ.get("BENCH_APPS_MODES", "preheated,plain").split(",")
}
REPEATS = int(os.environ.get("BENCH_APPS_REPEATS", "5"))
#: Server starts per mode (their median is reported).
STARTS = int(os.environ.get("BENCH_APPS_STARTS", "3"))
#: Rounds of the opened-again visits not measured: the first fills the HTTP cache, the
#: second makes Chromium keep the scripts' compiled code (it does so on a script's second run).
WARM_ROUNDS = 2
PAUSE_SECONDS = float(os.environ.get("BENCH_APPS_PAUSE", "12"))
#: A rebuilt page's kernel is done once its CPU time has not changed for this long [s].
SETTLED_SECONDS = 1.0
KERNEL_ID = re.compile(r'"kernelId":\s*"([0-9a-f-]{36})"')


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_change(page, selector: str, before: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while page.inner_text(selector) == before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{selector} did not change")
        page.wait_for_timeout(10)


def _count_frames(page) -> dict[str, int]:
    """What the page receives until the app shows (kept updated): frames and bytes from its
    kernel, and the bytes of its HTTP responses (the page, scripts, styles, fonts)."""
    received = {"frames": 0, "bytes": 0, "http_bytes": 0}

    def on_frame(payload) -> None:
        received["frames"] += 1
        received["bytes"] += len(payload)

    def on_response(response) -> None:
        received["http_bytes"] += int(response.headers.get("content-length") or 0)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    page.on("response", on_response)
    return received


def _visible(page, interactive: float) -> float:
    """Seconds from navigation until the page's snapshot was on screen (``interactive``, the
    live page's time, when it showed no snapshot or showed it later)."""
    shown = page.evaluate(
        "() => performance.getEntriesByName('revmodel-snapshot-shown').map(e => e.startTime)"
    )
    return min(shown[0] / 1000, interactive) if shown else interactive


#: The marks :func:`_timeline` reads of a page.
TIMELINE = ("html", "load_event")


def _timeline(page, kept: dict[str, list[float]]) -> None:
    """Add to ``kept`` (lists by :data:`TIMELINE` mark) the seconds from navigation until the
    page's HTML had arrived and until its load event (on which Voila starts the widgets):
    where the time of a slow page went."""
    html, load = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return [n.responseEnd, n.loadEventStart]; }"
    )
    for what, value in zip(TIMELINE, (html / 1000, load / 1000), strict=True):
        kept[what].append(value)


def _shutdown(base: str, body: str) -> None:
    found = KERNEL_ID.search(body)
    if found:
        req = urllib.request.Request(
            f"{base}/voila/api/shutdown/{found.group(1)}?token={TOKEN}", method="POST", data=b""
        )
        with urllib.request.urlopen(req, timeout=30):  # noqa: S310 - loopback only
            pass


def _start(env: dict, pool_size: int) -> tuple[subprocess.Popen, str, float]:
    port = _port()
    revmodel = shutil.which("revmodel", path=str(Path(sys.executable).parent)) or "revmodel"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [revmodel, "serve", "--port", str(port), "--pool-size", str(pool_size)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(f"{base}/?token={TOKEN}", timeout=5) as r:  # noqa: S310
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    return proc, base, time.perf_counter() - t0


def _renders(base: str, browser, results: dict, mode: str) -> None:
    http: dict[str, list[float]] = {a: [] for a in APPS}
    chromium: dict[str, list[float]] = {a: [] for a in APPS}
    visible: dict[str, list[float]] = {a: [] for a in APPS}
    times: dict[str, dict[str, list[float]]] = {a: {m: [] for m in TIMELINE} for a in APPS}
    time.sleep(PAUSE_SECONDS * 2)  # the first pool fills
    for _ in range(REPEATS):
        for app in APPS:
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"{base}/voila/render/{app}.ipynb?token={TOKEN}") as r:  # noqa: S310
                body = r.read().decode("utf-8", "replace")
            http[app].append(time.perf_counter() - t0)
            _shutdown(base, body)
        time.sleep(PAUSE_SECONDS)
        for app, ready in APPS.items():
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            received = _count_frames(page)
            t0 = time.perf_counter()
            page.goto(f"{base}/voila/render/{app}.ipynb?token={TOKEN}", timeout=180_000)
            page.wait_for_selector(ready, timeout=180_000)
            chromium[app].append(time.perf_counter() - t0)
            visible[app].append(_visible(page, chromium[app][-1]))
            _timeline(page, times[app])
            results[f"{mode}_{app}_chromium_kernel_messages"] = received["frames"]
            results[f"{mode}_{app}_chromium_kernel_kbytes"] = received["bytes"] / 1000
            results[f"{mode}_{app}_chromium_http_kbytes"] = received["http_bytes"] / 1000
            results[f"{mode}_{app}_chromium_widget_views"] = page.evaluate(
                "document.querySelectorAll('.jupyter-widgets').length"
            )
            page.close(run_before_unload=True)
        time.sleep(PAUSE_SECONDS)
    returning, returning_visible, returning_times = _returns(base, browser)
    for app in APPS:
        for kind, marks in (
            ("chromium", times[app]),
            ("chromium_return", returning_times[app]),
        ):
            for what, values in marks.items():
                results[f"{mode}_{app}_{kind}_{what}_median_seconds"] = statistics.median(values)
        kinds = (("http", http[app]), ("chromium", chromium[app]))
        for kind, values in (*kinds, ("chromium_return", returning[app])):
            results[f"{mode}_{app}_{kind}_render_median_seconds"] = statistics.median(values)
            results[f"{mode}_{app}_{kind}_render_p90_seconds"] = p90(values)
        for kind, shown, live in (
            ("chromium", visible[app], chromium[app]),
            ("chromium_return", returning_visible[app], returning[app]),
        ):
            for what, values in (("visible", shown), ("interactive", live)):
                results[f"{mode}_{app}_{kind}_{what}_median_seconds"] = statistics.median(values)
                results[f"{mode}_{app}_{kind}_{what}_p90_seconds"] = p90(values)


def _returns(base: str, browser) -> tuple[dict, dict, dict]:
    """Render times of each app opened again in one browser profile that opened it before,
    the times its content was visible (:func:`_visible`), and its HTML's and load
    event's (:func:`_timeline`, ``{app: {mark: [...]}}``)."""
    returning: dict[str, list[float]] = {a: [] for a in APPS}
    visible: dict[str, list[float]] = {a: [] for a in APPS}
    times: dict[str, dict[str, list[float]]] = {a: {m: [] for m in TIMELINE} for a in APPS}
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    for round_ in range(REPEATS + WARM_ROUNDS):
        for app, ready in APPS.items():
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(f"{base}/voila/render/{app}.ipynb?token={TOKEN}", timeout=180_000)
            page.wait_for_selector(ready, timeout=180_000)
            if round_ >= WARM_ROUNDS:  # the first rounds fill the caches
                returning[app].append(time.perf_counter() - t0)
                visible[app].append(_visible(page, returning[app][-1]))
                _timeline(page, times[app])
            page.close(run_before_unload=True)
        time.sleep(PAUSE_SECONDS)
    context.close()
    return returning, visible, times


def _kernels(server: subprocess.Popen) -> dict[int, psutil.Process]:
    found = {}
    for child in psutil.Process(server.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                found[child.pid] = child
    return found


def _take_and_rebuild(server: subprocess.Popen, base: str, app: str) -> psutil.Process:
    """Take ``app``'s page from the pool (and shut its kernel down): the kernel that
    builds its replacement, once it has started."""
    before = _kernels(server)
    with urllib.request.urlopen(f"{base}/voila/render/{app}.ipynb?token={TOKEN}") as r:  # noqa: S310
        _shutdown(base, r.read().decode("utf-8", "replace"))
    deadline = time.monotonic() + 120
    while not (new := [k for pid, k in _kernels(server).items() if pid not in before]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no kernel started to build {app}'s page again")
        time.sleep(0.02)
    return new[0]


def _rebuilds(server: subprocess.Popen, base: str, results: dict, mode: str) -> None:
    """Each app's page taken from the pool, one at a time, and its rebuild measured."""
    for app in APPS:
        kernel = _take_and_rebuild(server, base, app)
        deadline = time.monotonic() + 120
        cpu, changed = -1.0, time.time()
        while time.time() - changed < SETTLED_SECONDS and time.monotonic() < deadline:
            now = sum(kernel.cpu_times()[:2])
            if now != cpu:
                cpu, changed = now, time.time()
            time.sleep(0.05)
        results[f"{mode}_{app}_rebuild_cpu_seconds"] = cpu
        results[f"{mode}_{app}_rebuild_seconds"] = changed - kernel.create_time()


def _filter_changes(page) -> list[float]:
    """Times of five region changes on an explorer page, each until its KPI card changed."""
    kpi, lat = ".revmodel-kpis .revmodel-kpi-forecast", []
    for region in ("EMEA", "APAC", "North America East", "EMEA", "APAC"):
        before = page.inner_text(kpi)
        t0 = time.perf_counter()
        page.select_option(".revmodel-filter-region select", label=region)
        _wait_change(page, kpi, before)
        lat.append(time.perf_counter() - t0)
    return lat


def _interactions(
    base: str, browser, results: dict, mode: str, server: subprocess.Popen | None = None
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{base}/voila/render/explorer.ipynb?token={TOKEN}", timeout=180_000)
    page.wait_for_selector(APPS["explorer"], timeout=180_000)
    results[f"{mode}_explorer_filter_seconds"] = statistics.median(_filter_changes(page))
    if server is not None:  # the same while a page taken from the pool is built again
        _take_and_rebuild(server, base, "quotas")
        t0 = time.perf_counter()
        lat = _filter_changes(page)
        results[f"{mode}_explorer_filter_during_rebuild_seconds"] = statistics.median(lat)
        results[f"{mode}_explorer_filter_during_rebuild_loop_seconds"] = time.perf_counter() - t0
    page.close(run_before_unload=True)

    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{base}/voila/render/forecast_call.ipynb?token={TOKEN}", timeout=180_000)
    page.wait_for_selector(APPS["forecast_call"], timeout=180_000)
    lat = []
    # amounts no earlier run of this store has shown: the audit table must show this call
    first = 125_000 + 10_000 * list(MODES).index(mode)
    for amount in (str(first), str(first + 1000), str(first + 2000)):
        page.fill(".revmodel-call-amount input", amount)
        t0 = time.perf_counter()
        page.click("button.revmodel-call-submit")
        shown = f"{int(amount):,}"
        page.wait_for_function(
            f"() => document.querySelector('.revmodel-audit')?.innerText.includes('{shown}')",
            timeout=60_000,
        )
        lat.append(time.perf_counter() - t0)
    results[f"{mode}_forecast_call_submit_seconds"] = statistics.median(lat)
    page.close(run_before_unload=True)

    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{base}/voila/render/whatif.ipynb?token={TOKEN}", timeout=180_000)
    page.wait_for_selector(APPS["whatif"], timeout=180_000)
    kpi = ".revmodel-whatif-kpis .revmodel-kpi-target"
    page.locator(".revmodel-whatif-growth .noUi-handle").focus()
    lat = []
    for _ in range(5):
        before = page.inner_text(kpi)
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight")
        _wait_change(page, kpi, before)
        lat.append(time.perf_counter() - t0)
    results[f"{mode}_whatif_slider_seconds"] = statistics.median(lat)
    page.close(run_before_unload=True)

    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{base}/voila/render/weekly.ipynb?token={TOKEN}", timeout=600_000)
    rows = ".revmodel-weekly-rows"
    page.wait_for_selector(f"{rows} table", timeout=600_000)
    lat = []
    for level in ("manager", "region", "total", "manager", "region"):
        before = page.inner_text(rows)
        t0 = time.perf_counter()
        page.select_option(".revmodel-weekly-level select", label=level)
        _wait_change(page, rows, before)
        lat.append(time.perf_counter() - t0)
    results[f"{mode}_weekly_level_seconds"] = statistics.median(lat)
    page.close(run_before_unload=True)


#: In the kernel: the weekly page scores the sample's call log, a call changes, the page
#: opened again scores the calls (what a preheated page does when someone opens it).
RESCORE = """
import json, sys, time
from dataclasses import replace
from revmodel import sample, valueadd
from revmodel.apps import weekly
from revmodel.apps.context import app_context, load_context
from revmodel.overrides import Identity

data = sys.argv[1]
sample.write_sample(data)  # the served sample company, with its call log
ctx = load_context()
ctx = app_context(context=replace(ctx, extra={**ctx.extra, "data_dir": data}))
t0 = time.perf_counter()
page = weekly.build(ctx).app
full = time.perf_counter() - t0
scored = weekly.value_add(page.context).scored
period = sorted(scored["period"].unique())[-1]
manager = sorted(scored.loc[scored["level"] == "manager", "key"].unique())[0]
ctx.calls.open_period(period, Identity("revops"))
ctx.calls.submit(Identity("revops"), manager, period, "commit", 555000, level="manager")
t0 = time.perf_counter()
page.refresh()
after = time.perf_counter() - t0
# the next kernel: the shared context again, the weekly page's work read from the disk
fresh = {k: v for k, v in ctx.extra.items() if not str(k).startswith("weekly")}
t0 = time.perf_counter()
again = weekly.build(replace(ctx, extra=fresh)).app
kernel = time.perf_counter() - t0
assert again.context.extra["weekly_scorer"].computed == 0
print(json.dumps({"weekly_value_add_full_seconds": full,
                  "weekly_value_add_after_call_seconds": after,
                  "weekly_value_add_next_kernel_seconds": kernel,
                  "weekly_value_add_calls": float(len(scored))}))
"""


def _rescore(env: dict, home: Path) -> dict[str, float]:
    """The weekly page's value add: the first scoring (every call) and after a call changed."""
    out = subprocess.run(
        [sys.executable, "-c", RESCORE, str(home / "weekly-data")],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _arguments(argv: list[str] | None = None) -> None:
    """``--help`` describes the run and starts nothing; ``--quick`` renders each app twice."""
    import argparse

    global REPEATS
    parser = argparse.ArgumentParser(
        description="First render and interaction times of the Voila apps, preheated kernels "
        "against plain Voila (writes benchmarks/results/bench_apps.json). Environment: "
        "BENCH_APPS_REPEATS (renders per app, 5), BENCH_APPS_STARTS (server starts, 3), "
        "BENCH_APPS_MODES (preheated,plain), BENCH_APPS_PAUSE (seconds between rounds, 12), "
        "BENCH_APPS_OUT (the JSON file)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="two renders per app (BENCH_APPS_REPEATS=2)"
    )
    if parser.parse_args(argv).quick:
        REPEATS = 2


def main() -> int:
    _arguments()
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="revmodel-bench-"))
    env = {
        **os.environ,
        "REVMODEL_HOME": str(home),
        "REVMODEL_USER": "emma.kim",
        "REVMODEL_TOKEN": TOKEN,
    }
    for name in ("JUPYTERHUB_USER", "REVMODEL_OVERRIDES_URL", "REVMODEL_CUBE"):
        env.pop(name, None)
    opener = (
        "from revmodel.apps.context import load_context, open_store\n"
        "from revmodel.overrides import Identity\n"
        "ctx = load_context(); open_store(ctx).open_period(ctx.cycle, Identity('revops'))\n"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", opener], env=env, check=True)
    results: dict[str, float] = {"context_cold_seconds": time.perf_counter() - t0}
    results.update(_rescore(env, home))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for mode, pool_size in MODES.items():
                results[f"{mode}_load_average_start"] = os.getloadavg()[0]
                starts = []
                for _ in range(STARTS - 1):
                    proc, base, ready = _start(env, 0)
                    starts.append(ready)
                    proc.terminate()
                    proc.wait(timeout=60)
                proc, base, ready = _start(env, pool_size)
                results[f"{mode}_server_ready_seconds"] = statistics.median([*starts, ready])
                try:
                    _renders(base, browser, results, mode)
                    if pool_size:
                        _rebuilds(proc, base, results, mode)
                    _interactions(base, browser, results, mode, proc if pool_size else None)
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
                results[f"{mode}_load_average_end"] = os.getloadavg()[0]
            browser.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    results = {k: round(v, 3) for k, v in results.items()}
    _print(results)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


def _print(results: dict[str, float]) -> None:
    rows = sorted({k.split("_", 1)[1] for k in results if k.split("_", 1)[0] in MODES})
    width = max(map(len, rows))
    print(f"{'measure':<{width}}  {'preheated':>9}  {'plain':>9}")
    for row in rows:
        cells = [results.get(f"{m}_{row}", float("nan")) for m in ("preheated", "plain")]
        print(f"{row:<{width}}  {cells[0]:>9.3f}  {cells[1]:>9.3f}")
    for key in ("context_cold_seconds", *(k for k in results if k.startswith("weekly_value"))):
        print(f"{key:<{width}}  {results[key]:>9.3f}")


if __name__ == "__main__":
    sys.exit(main())
