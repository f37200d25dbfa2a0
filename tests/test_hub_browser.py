"""Two people sign in through JupyterHub's login page in Chromium and each calls their own team.

The real deployment of ``deploy/jupyterhub_config.py``: JupyterHub with
configurable-http-proxy (installed by npm into ``build/node`` by ``.ci/run``),
the password-file authenticator, a Voila server per user. Free random ports;
everything in a temporary folder; a small sample company.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from revmodel import config
from tests.conftest import SCREENS, free_port, require_chromium, require_file, warm_home

pytestmark = pytest.mark.slow

PROXY = config.ROOT / "build" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORDS = {"alice": "alice-pass-1", "bob": "bob-pass-22", "ops": "ops-pass-333"}
SPAWN_TIMEOUT = 240_000  # a server per user, on a busy machine [ms]


def _status(url: str) -> int:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory):
    """A small sample company, its team map (alice, bob: managers; ops: admin), a warm cache."""
    from revmodel import sample
    from revmodel.apps import hub

    home = tmp_path_factory.mktemp("hub-home")
    tables = sample.generate(reps=24, months=36)
    sample.write(tables, home / "data" / "sample")
    reps = tables["reps"]
    active = reps[reps["end_date"].isna()]
    managers = sorted(active["manager"].value_counts().index[:2])
    team = home / "team.yaml"
    users = {"alice": {"manager": managers[0]}, "bob": {"manager": managers[1]}, "ops": "admin"}
    team.write_text(yaml.safe_dump({"users": users}), encoding="utf-8")
    for user, password in PASSWORDS.items():
        hub.add_user(home / "passwords", user, password)
    env = {
        **os.environ,
        "REVMODEL_HOME": str(home),
        "REVMODEL_TEAM_MAP": str(team),
        "REVMODEL_FORECAST_METHOD": "seasonal_naive",
        "REVMODEL_OVERRIDES_URL": f"sqlite:///{home / 'calls.db'}",
    }
    for name in ("REVMODEL_USER", "JUPYTERHUB_USER", "REVMODEL_CUBE"):
        env.pop(name, None)
    cycle = warm_home(env)
    return {"home": home, "env": env, "managers": managers, "cycle": cycle}


@pytest.fixture(scope="module")
def hub_url(company):
    require_chromium()
    require_file(PROXY, "npm install configurable-http-proxy into build/node (see .ci/run)")
    home = company["home"]
    port = free_port()
    env = {
        **company["env"],
        "REVMODEL_HUB_PORT": str(port),
        "REVMODEL_HUB_API_PORT": str(free_port()),
        "REVMODEL_HUB_PROXY_API_PORT": str(free_port()),
        "REVMODEL_HUB_STATE": str(home / "hub"),
        "REVMODEL_HUB_PASSWORDS": str(home / "passwords"),
        "REVMODEL_HUB_PROXY": str(PROXY),
        "PYTHONPATH": os.pathsep.join([str(config.ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    hub_exe = shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) or "jupyterhub"
    log = (home / "hub.log").open("w")
    proc = subprocess.Popen(
        [hub_exe, "-f", str(config.ROOT / "deploy" / "jupyterhub_config.py")],
        env=env,
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not _up(base):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            pytest.fail(f"JupyterHub did not start: {(home / 'hub.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _up(base: str) -> bool:
    try:
        return _status(f"{base}/hub/login") == 200
    except OSError:
        return False


def _login(browser, base: str, user: str, password: str, app: str = "forecast_call"):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.goto(f"{base}/hub/login?next=/hub/user-redirect/voila/render/{app}.ipynb")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    return context, page


def test_unknown_user_and_wrong_password_read_nothing(browser, hub_url):
    for user, password in (("mallory", "anything-1"), ("alice", "not-her-pass")):
        context, page = _login(browser, hub_url, user, password)
        page.wait_for_selector(".login_error, .alert-danger", timeout=60_000)
        assert "Invalid username or password" in page.content()
        page.goto(f"{hub_url}/user/alice/voila/render/forecast_call.ipynb")
        assert "revmodel-app" not in page.content()
        assert "/hub/login" in page.url
        context.close()
    assert _status(f"{hub_url}/user/alice/voila/render/explorer.ipynb") in (302, 403)


def test_two_users_sign_in_and_call_their_own_team(browser, hub_url, company):
    from revmodel.overrides import Identity, OverrideStore, TeamMap

    cycle, managers = company["cycle"], company["managers"]
    pages = {}
    for user, manager in zip(("alice", "bob"), managers, strict=True):
        context, page = _login(browser, hub_url, user, PASSWORDS[user])
        try:
            page.wait_for_selector(".revmodel-identity", timeout=SPAWN_TIMEOUT)
        except Exception:  # noqa: BLE001 - fail with what the hub said
            page.screenshot(path=str(SCREENS / f"hub-{user}-failed.png"), full_page=True)
            log = (company["home"] / "hub.log").read_text()[-4000:]
            pytest.fail(f"{user}'s app did not show at {page.url}:\n{log}")
        assert f"Signed in as {user}: writes for team {manager}" in page.inner_text(
            ".revmodel-identity"
        )
        teams = page.eval_on_selector_all(
            ".revmodel-call-manager option",
            "options => options.map(o => o.textContent.replace(/\\u00a0/g, ' '))",
        )
        assert teams == [manager]  # each person sees and calls only their own team
        pages[user] = (context, page)
    # The period is closed: a call is refused on the server's side of the store.
    alice = pages["alice"][1]
    alice.fill(".revmodel-call-amount input", "90000")
    alice.click("button.revmodel-call-submit")
    alice.wait_for_selector(".revmodel-call-message .revmodel-message.error", timeout=30_000)
    assert alice.inner_text(".revmodel-call-message").startswith(
        f"Period {cycle} is closed for forecast calls"
    )
    # An admin opens it (the admin's app writes to the same store): open for everyone at once.
    admin = OverrideStore(
        company["env"]["REVMODEL_OVERRIDES_URL"],
        team_map=TeamMap.from_yaml(company["home"] / "team.yaml"),
    )
    try:
        admin.open_period(cycle, Identity("ops"))
    finally:
        admin.close()
    for user, amount in (("alice", "90000"), ("bob", "80000")):
        page = pages[user][1]
        rep = page.eval_on_selector(
            ".revmodel-call-rep select", "e => e.options[e.selectedIndex].text"
        ).replace("\xa0", " ")
        page.fill(".revmodel-call-amount input", amount)
        page.fill(".revmodel-call-note textarea", f"{user}'s call")
        page.click("button.revmodel-call-submit")
        page.wait_for_selector(".revmodel-call-message .revmodel-message.ok", timeout=60_000)
        assert f"of {int(amount):,} USD for {rep} in {cycle}" in page.inner_text(
            ".revmodel-call-message"
        )
        page.screenshot(path=str(SCREENS / f"hub-{user}.png"), full_page=True)
    # Each call is recorded under the name the person signed in with, in their own team.
    store = OverrideStore(company["env"]["REVMODEL_OVERRIDES_URL"])
    try:
        calls = store.current_calls(cycle)
    finally:
        store.close()
    assert sorted(calls["user"]) == ["alice", "bob"]
    by_user = dict(zip(calls["user"], calls["key"], strict=True))
    reps = company_reps(company)
    assert reps[by_user["alice"]] == managers[0] and reps[by_user["bob"]] == managers[1]
    # Bob cannot open Alice's server.
    bob = pages["bob"][1]
    bob.goto(f"{hub_url}/user/alice/voila/render/forecast_call.ipynb")
    assert "Signed in as alice" not in bob.content()
    for context, _ in pages.values():
        context.close()


def company_reps(company) -> dict[str, str]:
    """Rep id -> manager of the small company."""
    import pandas as pd

    reps = pd.read_csv(company["home"] / "data" / "sample" / "reps.csv")
    return dict(zip(reps["rep_id"].astype(str), reps["manager"].astype(str), strict=True))
