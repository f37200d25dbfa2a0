"""Time-to-first-render and interaction latency of the Voila apps on the sample company.

Starts ``revmodel serve`` on a free loopback port (``REVMODEL_HOME`` in a
temporary folder, so the first start also times the forecasts), then drives
each app in headless Chromium (Debian's ``/usr/bin/chromium``) and measures:

- ``*_first_render_seconds``: from navigation to the app's chart (or form) on screen;
- ``explorer_filter_seconds``: region change until the KPI card shows the new value;
- ``whatif_slider_seconds``: slider step until the target KPI changes;
- ``forecast_call_submit_seconds``: submit click until the call is in the audit table;
- ``whatif_recompute_ms``: the plan recompute in the kernel, as the app reports it;
- ``server_ready_seconds``: ``revmodel serve`` start until Voila answers.

Run: ``.venv/bin/python benchmarks/bench_apps.py`` (prints a table and writes
``benchmarks/results/bench_apps.json``). Timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

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
OUT = Path(__file__).resolve().parent / "results" / "bench_apps.json"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_change(page, selector: str, before: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while page.inner_text(selector) == before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{selector} did not change")
        page.wait_for_timeout(20)


def main() -> int:
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
    port = _port()
    revmodel = shutil.which("revmodel", path=str(Path(sys.executable).parent)) or "revmodel"
    t0 = time.perf_counter()
    proc = subprocess.Popen([revmodel, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/?token={TOKEN}", timeout=5) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        results["server_ready_seconds"] = time.perf_counter() - t0
        for app in ("explorer", "forecast_call", "whatif", "quotas"):
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"{base}/voila/render/{app}.ipynb?token={TOKEN}") as r:  # noqa: S310
                r.read()
            results[f"{app}_http_render_seconds"] = time.perf_counter() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1400})

            def first(app: str, ready: str) -> None:
                t0 = time.perf_counter()
                page.goto(f"{base}/voila/render/{app}.ipynb?token={TOKEN}")
                page.wait_for_selector(ready, timeout=120_000)
                results[f"{app}_first_render_seconds"] = time.perf_counter() - t0

            first("explorer", ".revmodel-chart .main-svg .trace")
            kpi = ".revmodel-kpis .revmodel-kpi-forecast"
            lat = []
            for region in ("EMEA", "APAC", "North America East"):
                before = page.inner_text(kpi)
                t0 = time.perf_counter()
                page.select_option(".revmodel-filter-region select", label=region)
                _wait_change(page, kpi, before)
                lat.append(time.perf_counter() - t0)
            results["explorer_filter_seconds"] = sorted(lat)[len(lat) // 2]

            first("forecast_call", "button.revmodel-call-submit:not([disabled])")
            page.fill(".revmodel-call-amount input", "125000")
            t0 = time.perf_counter()
            page.click("button.revmodel-call-submit")
            page.wait_for_function(
                "() => document.querySelector('.revmodel-audit')?.innerText.includes('125,000')",
                timeout=60_000,
            )
            results["forecast_call_submit_seconds"] = time.perf_counter() - t0

            first("whatif", ".revmodel-whatif-chart .main-svg .trace")
            kpi = ".revmodel-whatif-kpis .revmodel-kpi-target"
            page.locator(".revmodel-whatif-growth .noUi-handle").focus()
            lat = []
            for _ in range(3):
                before = page.inner_text(kpi)
                t0 = time.perf_counter()
                page.keyboard.press("ArrowRight")
                _wait_change(page, kpi, before)
                lat.append(time.perf_counter() - t0)
            results["whatif_slider_seconds"] = sorted(lat)[len(lat) // 2]
            results["whatif_recompute_ms"] = float(
                page.get_attribute(".revmodel-whatif-timing span", "data-ms")
            )
            first("quotas", ".revmodel-quota-chart .main-svg .trace")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    results = {k: round(v, 3) for k, v in results.items()}
    width = max(map(len, results))
    print(f"{'measure':<{width}}  value")
    for k, v in results.items():
        print(f"{k:<{width}}  {v:>8.3f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
