"""The Voila apps over HTTP and in a real headless Chromium (Playwright for Python).

One server for the module: ``revmodel serve`` on a free loopback port with
``REVMODEL_HOME`` in a temporary folder (sample company, forecast cache and
SQLite call store inside it), ``REVMODEL_USER`` a sample manager and a fixed
token. Chromium is Debian's (``/usr/bin/chromium``); no browser is downloaded.
Screenshots go to ``/tmp/revmodel-screens/``.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from revmodel.apps import serve
from tests.conftest import (
    APPS_TOKEN,
    SCREENS,
    http_get,
    open_app,
    require_chromium,
    served_apps,
    warm_home,
)

pytestmark = pytest.mark.slow

TOKEN = APPS_TOKEN
USER = "emma.kim"  # manager Emma Kim in parameters/team.yaml
MANAGER = "Emma Kim"
VP = "revops"  # company-wide rights in parameters/team.yaml: the VP of Sales here
APPS = ("explorer", "forecast_call", "whatif", "quotas")
RENDER_TIMEOUT = 120_000  # [ms]: a page under a busy CI machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    require_chromium()
    home = tmp_path_factory.mktemp("revmodel-home")
    env = {
        **os.environ,
        "REVMODEL_HOME": str(home),
        "REVMODEL_USER": USER,
        "REVMODEL_TOKEN": TOKEN,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("JUPYTERHUB_USER", None)
    env.pop("REVMODEL_OVERRIDES_URL", None)
    env.pop("REVMODEL_CUBE", None)
    cycle = warm_home(env, open_for_calls_as="revops", timeout=600)
    SCREENS.mkdir(parents=True, exist_ok=True)
    with served_apps(home, env, "serve.log") as base:
        yield {"base": base, "home": home, "cycle": cycle, "env": env}


@pytest.fixture(scope="module")
def vp_server(server):
    """The same apps and call store served to the VP of Sales (company-wide rights)."""
    env = {**server["env"], "REVMODEL_USER": VP}
    with served_apps(server["home"], env, "serve-vp.log") as base:
        yield {**server, "base": base, "env": env}


def _open(browser, server, app: str, ready: str):
    return open_app(browser, server["base"], app, ready, RENDER_TIMEOUT)


def _wait_text_change(page, selector: str, before: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = page.inner_text(selector)
        if now != before:
            return now
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector} still reads {before!r} after {timeout} s")


@pytest.mark.parametrize("app", APPS)
def test_app_renders_over_http_without_source(server, app):
    status, body = http_get(f"{server['base']}/voila/render/{app}.ipynb?token={TOKEN}")
    assert status == 200
    assert "from revmodel.apps import" not in body
    assert f"{app}.build(" not in body
    assert "revmodel-app" in body  # the widgets' CSS classes are in the page


def test_app_needs_the_token(server):
    status, body = http_get(f"{server['base']}/voila/render/explorer.ipynb")
    assert status in (302, 401, 403) or "revmodel-app" not in body


def test_explorer_region_filter_changes_chart_and_kpis(browser, server):
    page = _open(browser, server, "explorer", ".revmodel-chart .main-svg .trace")
    forecast = page.inner_text(".revmodel-kpis .revmodel-kpi-forecast")
    title = page.text_content(".revmodel-chart .gtitle")
    assert "Company" in title
    page.screenshot(path=str(SCREENS / "explorer.png"), full_page=True)
    page.select_option(".revmodel-filter-region select", label="EMEA")
    new_forecast = _wait_text_change(page, ".revmodel-kpis .revmodel-kpi-forecast", forecast)
    assert new_forecast != forecast
    page.wait_for_function(
        "() => (document.querySelector('.revmodel-chart .gtitle') || {}).textContent"
        "?.includes('EMEA')",
        timeout=20_000,
    )
    assert "EMEA" in page.text_content(".revmodel-chart .gtitle")
    page.wait_for_function(  # the breakdown goes one level down, to the region's managers
        "() => document.querySelector('.revmodel-table')?.innerText.startsWith('Manager')",
        timeout=20_000,
    )
    page.screenshot(path=str(SCREENS / "explorer-emea.png"), full_page=True)
    page.close()


def test_forecast_call_submit_shows_in_rollup_and_audit(browser, server):
    page = _open(browser, server, "forecast_call", "button.revmodel-call-submit:not([disabled])")
    assert USER in page.inner_text(".revmodel-identity")
    rep = page.eval_on_selector(
        ".revmodel-call-rep select", "e => e.options[e.selectedIndex].text"
    ).replace("\xa0", " ")
    assert not re.fullmatch(r"R\d+", rep)  # a name, not an id
    page.fill(".revmodel-call-amount input", "abc")
    page.click("button.revmodel-call-submit")
    page.wait_for_selector(".revmodel-call-message .revmodel-message.error", timeout=20_000)
    assert page.inner_text(".revmodel-call-message") == (
        "Amount 'abc' is not a number: enter the call in USD, e.g. 125000."
    )
    page.screenshot(path=str(SCREENS / "forecast-call-bad-amount.png"), full_page=True)

    page.fill(".revmodel-call-amount input", "125,000")
    page.fill(".revmodel-call-note textarea", "two renewals signed early")
    page.click("button.revmodel-call-submit")
    page.wait_for_selector(".revmodel-call-message .revmodel-message.ok", timeout=20_000)
    assert f"for {rep} in {server['cycle']}" in page.inner_text(".revmodel-call-message")
    page.wait_for_function(
        "() => document.querySelector('.revmodel-audit')?.innerText.includes('125,000')",
        timeout=20_000,
    )
    audit = page.inner_text(".revmodel-audit")
    assert USER in audit and rep in audit and "two renewals signed early" in audit
    rollup = page.inner_text(".revmodel-rollup")
    assert "125,000" in rollup
    # The rep's reconciled forecast is the committed call, kept exactly.
    row = next(line for line in rollup.splitlines() if line.startswith(rep))
    assert re.findall(r"125,000", row) == ["125,000", "125,000"]
    page.screenshot(path=str(SCREENS / "forecast-call.png"), full_page=True)
    page.close()
    # The explorer, opened afterwards in its own kernel, shows the call beside the forecast.
    page = _open(browser, server, "explorer", ".revmodel-chart .main-svg .trace")
    options = page.eval_on_selector_all(
        ".revmodel-filter-rep select option",
        "options => options.map(o => [o.textContent.replace(/\\u00a0/g, ' '), o.value])",
    )
    found = [value for text, value in options if text == rep]
    assert found, f"{rep!r} not among the explorer's reps: {options[:8]}"
    value = found[0]
    page.select_option(".revmodel-filter-rep select", value=value)
    page.wait_for_function(
        "name => (document.querySelector('.revmodel-chart .gtitle') || {}).textContent"
        "?.includes(name)",
        arg=rep,
        timeout=20_000,
    )
    page.wait_for_function(
        "() => document.querySelector('.revmodel-kpi-commit')?.innerText === '$125K'",
        timeout=20_000,
    )
    assert page.inner_text(".revmodel-kpis .revmodel-kpi-landing") == "$125K"
    page.screenshot(path=str(SCREENS / "explorer-after-call.png"), full_page=True)
    page.close()


def test_whatif_growth_slider_changes_target(browser, server):
    page = _open(browser, server, "whatif", ".revmodel-whatif-chart .main-svg .trace")
    target = page.inner_text(".revmodel-whatif-kpis .revmodel-kpi-target")
    handle = page.locator(".revmodel-whatif-growth .noUi-handle")
    handle.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    new_target = _wait_text_change(page, ".revmodel-whatif-kpis .revmodel-kpi-target", target)
    assert new_target != target
    assert "vs base" in page.inner_text(".revmodel-whatif-kpis")
    page.fill(".revmodel-whatif-target input", "abc")
    page.keyboard.press("Enter")
    page.wait_for_selector(".revmodel-whatif-message .revmodel-message.error", timeout=20_000)
    assert page.inner_text(".revmodel-whatif-message").startswith("Target 'abc' is not an amount")
    page.screenshot(path=str(SCREENS / "whatif.png"), full_page=True)
    page.close()


def test_a_page_loads_everything_from_the_server_and_the_small_plotly(browser, server):
    """No request leaves the machine (no web font or stylesheet from a CDN), a page of bar and
    line charts loads plotly.js's basic bundle only, not the 4.8 MB full one, and fetches it
    once the page has loaded, so that Voila does not wait for it to start the widgets."""
    page = browser.new_page(viewport={"width": 1300, "height": 2000})
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    status: dict[str, int] = {}
    page.on("response", lambda response: status.setdefault(response.url, response.status))
    page.goto(f"{server['base']}/voila/render/whatif.ipynb?token={TOKEN}", timeout=RENDER_TIMEOUT)
    page.wait_for_selector(".revmodel-whatif-chart .main-svg .trace", timeout=RENDER_TIMEOUT)
    outside = [u for u in urls if not u.startswith((server["base"], "blob:", "data:"))]
    assert outside == []
    scripts = [u.split("?")[0].rsplit("/", 1)[-1] for u in urls]
    assert "plotly-basic.min.js" in scripts
    assert "plotly.min.js" not in scripts and not [u for u in urls if "jupyterlab-plotly" in u]
    # The widget managers' entry scripts are fetched once, while the page loads (preloaded),
    # and so is plotly.js's basic bundle, run before the load event, on which Voila starts
    # the widgets (not after it, on Voila's way).
    entries = [u for u in urls if "remoteEntry" in u]
    assert len(entries) == len(set(entries)) == 2
    load, plotly, last_entry = page.evaluate(
        """() => {
          const nav = performance.getEntriesByType("navigation")[0];
          const res = performance.getEntriesByType("resource");
          const plotly = res.find((e) => e.name.includes("plotly-basic.min.js"));
          const entries = res.filter((e) => e.name.includes("remoteEntry"));
          return [nav.loadEventStart, plotly.responseEnd, Math.max(...entries.map((e) => e.startTime))];
        }"""
    )
    assert last_entry < load and plotly < load
    # Every script Voila asks for after the load event was fetched before, while the page
    # loaded (the template's LATE_EXTENSIONS), and every one preloaded exists.
    late = page.evaluate(
        """(load) => performance.getEntriesByType("resource")
          .filter((e) => e.startTime >= load && e.name.split("?")[0].endsWith(".js"))
          .map((e) => e.name).filter((name) => !name.includes("plotly"))""",
        load,
    )
    assert late == [], f"add these to LATE_EXTENSIONS in the apps' index.html.j2: {late}"
    # Voila's own chunks come in one file (serve.VOILA_CHUNKS), none fetched by itself.
    chunks = [u for u in scripts if u.endswith(".voila.js")]
    assert chunks == [], f"add these to revmodel.apps.serve.VOILA_CHUNKS: {chunks}"
    assert scripts.count(serve.VOILA_BUNDLE) == 1
    assert status[next(u for u in urls if serve.VOILA_BUNDLE in u)] == 200
    preloaded = page.eval_on_selector_all(
        "link[rel=preload][as=script]", "links => links.map((l) => l.href)"
    )
    assert len(preloaded) == 2 + 12
    assert {url: status.get(url) for url in preloaded} == dict.fromkeys(preloaded, 200)
    bars = page.locator(".revmodel-whatif-chart .main-svg .trace.bars .point")
    assert bars.count() == 3 * len(page.locator(".revmodel-whatif-chart .xtick").all())
    page.close()


def test_quotas_table_with_balance_flags(browser, server):
    page = _open(browser, server, "quotas", ".revmodel-quota-chart .main-svg .trace")
    table = page.inner_text(".revmodel-quota-table")
    assert "Quota (year)" in table and "Balance" in table
    assert re.search(r"\b(in line|out of line)\b", table)
    page.screenshot(path=str(SCREENS / "quotas.png"), full_page=True)
    page.click(".revmodel-quota-tabs .lm-TabBar-tab:has-text('Territories')")
    page.wait_for_selector(".revmodel-territory-chart .main-svg .trace", timeout=20_000)
    # the tab's chart and its table arrive as two widget updates: the table may come after
    page.wait_for_function(
        "() => document.querySelector('.revmodel-territory')?.innerText.includes('accounts move')",
        timeout=20_000,
    )
    assert "accounts move" in page.inner_text(".revmodel-territory")
    page.screenshot(path=str(SCREENS / "territories.png"), full_page=True)
    page.close()


def test_a_manager_s_call_reaches_the_vp_s_explorer_on_refresh(browser, server, vp_server):
    """Two people, two apps, one call store: the VP's open page shows the call after Refresh."""
    vp = _open(browser, vp_server, "explorer", ".revmodel-chart .main-svg .trace")
    company_before = vp.inner_text(".revmodel-kpis .revmodel-kpi-commit")
    vp.select_option(".revmodel-filter-manager select", label=MANAGER)
    vp.wait_for_function(
        "name => (document.querySelector('.revmodel-chart .gtitle') || {}).textContent"
        "?.includes(name)",
        arg=MANAGER,
        timeout=20_000,
    )
    team_before = vp.inner_text(".revmodel-kpis .revmodel-kpi-commit")
    assert team_before != "$3.2M"

    manager = _open(browser, server, "forecast_call", "button.revmodel-call-submit:not([disabled])")
    manager.select_option(
        ".revmodel-call-rep select", label=f"Team {MANAGER} (the team's own call)"
    )
    manager.fill(".revmodel-call-amount input", "3210000")
    manager.fill(".revmodel-call-note textarea", "two enterprise renewals pulled in")
    manager.click("button.revmodel-call-submit")
    manager.wait_for_selector(".revmodel-call-message .revmodel-message.ok", timeout=20_000)
    assert manager.inner_text(".revmodel-call-message").startswith(
        f"Saved: commit of 3,210,000 USD for {MANAGER} in {server['cycle']}"
    )
    manager.screenshot(path=str(SCREENS / "manager-team-call.png"), full_page=True)
    manager.close()

    # Nothing changes on the VP's page until Refresh; then the team's commit is the call.
    assert vp.inner_text(".revmodel-kpis .revmodel-kpi-commit") == team_before
    vp.click("button.revmodel-refresh")
    vp.wait_for_function(
        "() => document.querySelector('.revmodel-kpi-commit')?.innerText === '$3.2M'",
        timeout=30_000,
    )
    assert vp.inner_text(".revmodel-kpis .revmodel-kpi-landing") == "$3.2M"
    vp.wait_for_function(  # the team's reps, reconciled to the call, add up to it
        "() => document.querySelector('.revmodel-table')?.innerText.split('\\n')"
        ".some(r => r.startsWith('Total') && r.includes('$3.2M'))",
        timeout=30_000,
    )
    drill = vp.eval_on_selector_all(".revmodel-drill-member", "bs => bs.map(b => b.innerText)")
    assert drill and "Total" not in drill
    vp.screenshot(path=str(SCREENS / "vp-team-after-call.png"), full_page=True)
    # Rolled up: the company's commit counts the team's call.
    vp.click(".revmodel-drill-up")
    vp.wait_for_function(
        "() => (document.querySelector('.revmodel-chart .gtitle') || {}).textContent"
        "?.includes('Company')",
        timeout=20_000,
    )
    company_after = vp.inner_text(".revmodel-kpis .revmodel-kpi-commit")
    assert company_after != company_before and company_after != "–"
    assert "Manager" not in vp.inner_text(".revmodel-table").splitlines()[0]  # regions again
    vp.screenshot(path=str(SCREENS / "vp-company-after-call.png"), full_page=True)
    vp.close()


#: The weekly page's first build scores every past call of the sample (minutes when busy) [ms].
WEEKLY_TIMEOUT = 600_000


def test_weekly_app_scores_the_sample_company_s_past_calls(browser, server):
    """The apps' own sample company comes with its call log, so the weekly app has calls to
    score: the company's row counts every weekly commit call of the log."""
    import pandas as pd

    calls = pd.read_csv(server["home"] / "data" / "sample" / "forecast_calls.csv")
    company = calls[(calls["level"] == "total") & (calls["call_type"] == "commit")]
    page = open_app(
        browser, server["base"], "weekly", ".revmodel-weekly-rows table", WEEKLY_TIMEOUT
    )
    # the waterfall is bars (plots.waterfall): plotly.js's basic bundle draws it, and the
    # full one (4.8 MB, whose run held Voila's start back) is not fetched
    page.wait_for_selector(".revmodel-weekly-waterfall .main-svg .trace.bars", timeout=20_000)
    scripts = page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name.split('?')[0].split('/').pop())"
    )
    assert "plotly-basic.min.js" in scripts and "plotly.min.js" not in scripts
    page.click(".revmodel-weekly-tabs .lm-TabBar-tab:has-text('Whose calls to trust')")
    page.wait_for_selector(".revmodel-weekly-scores table", timeout=20_000)
    rows = page.eval_on_selector_all(
        ".revmodel-weekly-scores tbody tr",
        "rs => rs.map(r => [...r.cells].map(c => c.textContent))",
    )
    head = page.eval_on_selector_all(
        ".revmodel-weekly-scores thead th", "hs => hs.map(h => h.textContent)"
    )
    total = [r for r in rows if r[:2] == ["total", "total"]]
    assert len(total) == 1, rows
    assert head[:4] == ["Level", "Name", "Quarters", "Calls"]
    assert total[0][head.index("Quarters")] == str(company["period"].nunique())
    assert total[0][head.index("Calls")] == str(len(company))
    managers = {r[1] for r in rows if r[0] == "manager"}
    assert managers == set(calls.loc[calls["level"] == "manager", "key"])
    page.screenshot(path=str(SCREENS / "weekly-value-add-sample.png"), full_page=True)
    page.close()


def test_served_kernels_use_ipc_sockets_not_tcp_ports(server):
    """Every kernel the server started (one per app in the pool, one per page opened) talks
    over IPC: none binds a TCP port another program could take first (a kernel that lost its
    port died, and the weekly page waited for it for ever)."""
    log = (server["home"] / "serve.log").read_text()
    assert log.count("Kernel started:") >= len(APPS) + 1
    assert "running over TCP" not in log
    assert "Address already in use" not in log
