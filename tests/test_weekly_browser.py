"""The weekly forecast call in a real headless Chromium: a manager and the VP call their
numbers in the forecast-call app, the VP's roll-up shows both side by side, and the weekly
app's waterfall lists the deal that slipped out of the quarter.

Two ``revmodel serve`` servers (the manager's and the VP's, ``REVMODEL_USER``) on free
loopback ports share one ``REVMODEL_HOME`` in a temporary folder: a small sample company
with one hand-made deal added to its exports, a team map, a SQLite call store.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import APPS_TOKEN, SCREENS, open_app, require_chromium, served_apps, warm_home

pytestmark = pytest.mark.slow

SLIPPED = "O9999901"  # the hand-made deal: expected in the quarter, re-dated into the next
AMOUNT = 432_100.0
MANAGER_CALL = 2_345_000
VP_CALL = 9_876_000
NOTE = "<b>two renewals</b> signed early"
#: A page's first render starts a kernel: up to three minutes on a loaded machine [ms].
RENDER_TIMEOUT = 180_000


def _add_slipped_deal(folder: Path, rep: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A deal of ``rep`` created two months before the history's last day, expected to close
    45 days after it (in the plan's cycle, the quarter after the history's), re-dated out of
    that quarter two days before the last day; written into the opportunities and their
    history. Returns its close date before and after."""
    hist = pd.read_csv(folder / "opportunity_history.csv", dtype=str, keep_default_na=False)
    last = pd.Timestamp(hist["changed_at"].max())
    before, after = last + pd.Timedelta(days=45), last + pd.Timedelta(days=140)
    day = lambda t: f"{t:%Y-%m-%d}"  # noqa: E731
    rows = pd.DataFrame(
        {
            "opportunity_id": SLIPPED,
            "changed_at": [day(last - pd.Timedelta(days=60)), day(last - pd.Timedelta(days=2))],
            "stage": ["proposal", "negotiation"],
            "amount": f"{AMOUNT:.2f}",
            "close_date": [day(before), day(after)],
            "forecast_category": ["best_case", "commit"],
        }
    )
    pd.concat([hist, rows], ignore_index=True).to_csv(
        folder / "opportunity_history.csv", index=False
    )
    opps = pd.read_csv(folder / "opportunities.csv", dtype=str, keep_default_na=False)
    deal = opps[opps["rep_id"] == rep].iloc[[-1]].copy()
    deal = deal.assign(opportunity_id=SLIPPED, close_date=day(after), amount=f"{AMOUNT:.2f}",
                       stage="negotiation", created_date=day(last - pd.Timedelta(days=60)))  # fmt: skip
    pd.concat([opps, deal], ignore_index=True).to_csv(folder / "opportunities.csv", index=False)
    return before, after


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory):
    """The home folder, the team's manager, the deal's dates and the two servers' settings."""
    from revmodel import sample

    require_chromium()
    home = tmp_path_factory.mktemp("weekly-home")
    tables = sample.generate(reps=24, months=36)
    folder = home / "data" / "sample"
    sample.write(tables, folder)
    reps = tables["reps"]
    active = reps[reps["end_date"].isna()]
    manager = sorted(active["manager"].unique())[0]
    rep = str(active.loc[active["manager"] == manager, "rep_id"].iloc[0])
    before, after = _add_slipped_deal(folder, rep)
    team = home / "team.yaml"
    users = {"lead": {"manager": manager}, "vp": {"role": "vp"}, "ops": "admin"}
    team.write_text(yaml.safe_dump({"users": users}), encoding="utf-8")
    env = {
        **os.environ,
        "REVMODEL_HOME": str(home),
        "REVMODEL_TEAM_MAP": str(team),
        "REVMODEL_TOKEN": APPS_TOKEN,
        "REVMODEL_FORECAST_METHOD": "seasonal_naive",
        "REVMODEL_OVERRIDES_URL": f"sqlite:///{home / 'calls.db'}",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("REVMODEL_USER", "JUPYTERHUB_USER", "REVMODEL_CUBE"):
        env.pop(name, None)
    cycle = warm_home(env, open_for_calls_as="ops")  # the forecasts are cached
    SCREENS.mkdir(parents=True, exist_ok=True)
    return {
        "home": home,
        "env": env,
        "manager": manager,
        "cycle": cycle,
        "dates": (before, after),
    }


@pytest.fixture(scope="module")
def servers(company):
    """The manager's server and the VP's, over the same home and call store."""
    with contextlib.ExitStack() as stack:
        for user in ("lead", "vp"):
            env = {**company["env"], "REVMODEL_USER": user}
            base = stack.enter_context(served_apps(company["home"], env, f"serve-{user}.log"))
            company[user] = {"base": base}
        yield company


def _open(browser, server: dict, app: str, ready: str):
    return open_app(browser, server["base"], app, ready, RENDER_TIMEOUT)


def _call(page, option: str, amount: str, note: str) -> str:
    page.select_option(".revmodel-call-rep select", label=option)
    page.fill(".revmodel-call-amount input", amount)
    page.fill(".revmodel-call-note textarea", note)
    page.click("button.revmodel-call-submit")
    page.wait_for_selector(".revmodel-call-message .revmodel-message.ok", timeout=30_000)
    return page.inner_text(".revmodel-call-message")


def _row(page, selector: str, first_cells: list[str]) -> list[str]:
    """The cells of the row of table ``selector`` whose first cells are ``first_cells``."""
    rows = page.eval_on_selector_all(
        f"{selector} tbody tr",
        "rs => rs.map(r => [...r.cells].map(c => c.innerText.replace(/\\u00a0/g, ' ')))",
    )
    found = [r for r in rows if r[: len(first_cells)] == first_cells]
    assert len(found) == 1, f"{first_cells} in {selector}: {rows}"
    return found[0]


def test_manager_and_vp_call_and_the_vp_sees_both(browser, servers):
    mgr, cycle = servers["manager"], servers["cycle"]
    page = _open(
        browser, servers["lead"], "forecast_call", "button.revmodel-call-submit:not([disabled])"
    )
    message = _call(page, f"Team {mgr} (the team's own call)", "2,345,000", NOTE)
    assert message == f"Saved: commit of 2,345,000 USD for {mgr} in {cycle} (was none)."
    page.wait_for_function(
        "() => document.querySelector('.revmodel-audit')?.innerText.includes('2,345,000')",
        timeout=20_000,
    )
    assert NOTE in page.inner_text(".revmodel-audit")  # the note shown as typed, not as markup
    assert page.locator(".revmodel-audit b").count() == 0
    page.screenshot(path=str(SCREENS / "weekly-manager-call.png"), full_page=True)
    page.close()

    vp = _open(
        browser, servers["vp"], "forecast_call", "button.revmodel-call-submit:not([disabled])"
    )
    assert "vp" in vp.inner_text(".revmodel-identity")
    message = _call(vp, "Company (the company's own call)", "9876000", "the board number")
    assert message == f"Saved: commit of 9,876,000 USD for Company in {cycle} (was none)."
    # the VP's roll-up: every team side by side, the manager's own call and the VP's
    vp.wait_for_function(
        "() => document.querySelector('.revmodel-rollup-table')?.innerText.includes('9,876,000')",
        timeout=20_000,
    )
    team = _row(vp, ".revmodel-rollup-table", ["manager", mgr])
    assert team[2] == "2,345,000"  # own commit
    company = _row(vp, ".revmodel-rollup-table", ["total", "total"])
    assert company[2] == "9,876,000"
    managers = vp.eval_on_selector_all(
        ".revmodel-rollup-table tbody tr",
        "rs => rs.filter(r => r.cells[0].innerText === 'manager').map(r => r.cells[1].innerText)",
    )
    assert len(managers) > 1 and mgr in managers  # not only the manager's team
    vp.screenshot(path=str(SCREENS / "weekly-vp-rollup.png"), full_page=True)
    vp.close()


def test_weekly_waterfall_lists_the_deal_that_slipped(browser, servers):
    before, after = servers["dates"]
    page = _open(browser, servers["vp"], "weekly", ".revmodel-weekly-waterfall .main-svg .trace")
    window = page.eval_on_selector(
        ".revmodel-weekly-window select", "e => e.options[e.selectedIndex].text"
    )
    assert window.replace("\xa0", " ") == "Since last week"
    deal = _row(page, ".revmodel-weekly-deals", ["Pushed out", SLIPPED])
    assert deal[2] == "$432K"
    assert f"{before:%Y-%m-%d}" in deal and f"{after:%Y-%m-%d}" in deal
    assert servers["manager"] in deal
    # the company's pushed-out bar holds at least the deal's amount
    pushed = page.eval_on_selector(
        ".revmodel-weekly-rows table",
        "t => { const h = [...t.tHead.rows[0].cells].map(c => c.innerText);"
        " const r = [...t.tBodies[0].rows].find(r => r.cells[0].innerText === 'total');"
        " return r.cells[h.indexOf('pushed out')].innerText; }",
    )
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}
    assert float(pushed[1:-1]) * scale[pushed[-1]] >= AMOUNT  # e.g. "$1.8M"
    page.screenshot(path=str(SCREENS / "weekly-waterfall.png"), full_page=True)
    # the manager's own waterfall lists it too
    page.select_option(".revmodel-weekly-level select", label="manager")
    page.select_option(".revmodel-weekly-node select", label=servers["manager"])
    page.wait_for_function(
        "name => document.querySelector('.revmodel-weekly-deals')?.innerText.includes("
        "'behind the bars of ' + name)",
        arg=servers["manager"],
        timeout=30_000,
    )
    deal = _row(page, ".revmodel-weekly-deals", ["Pushed out", SLIPPED])
    assert deal[2] == "$432K"
    page.screenshot(path=str(SCREENS / "weekly-waterfall-manager.png"), full_page=True)
    page.close()
