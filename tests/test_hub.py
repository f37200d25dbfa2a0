"""The team deployment: password file, authenticator and hub configuration (JupyterHub itself in test_hub_browser)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from traitlets.config import Config

from revmodel import config
from revmodel.apps import hub
from revmodel.errors import DataError, ParameterError


def test_password_hash_round_trip_and_salt():
    stored = hub.hash_password("correct horse")
    assert re.fullmatch(r"scrypt\$16384\$8\$1\$[0-9a-f]{32}\$[0-9a-f]{64}", stored)
    assert hub.verify_password("correct horse", stored)
    assert not hub.verify_password("correct horsE", stored)
    assert hub.hash_password("correct horse") != stored  # a new salt every time
    assert not hub.verify_password("x", "md5$abc")
    assert not hub.verify_password("x", "scrypt$bad")


def test_password_file_add_change_and_read(tmp_path: Path):
    path = tmp_path / "passwords"
    hub.add_user(path, "Emma.Kim", "s3cret-pass")
    hub.add_user(path, "revops", "another-pass")
    hub.add_user(path, "emma.kim", "changed-pass")
    users = hub.read_passwords(path)
    assert sorted(users) == ["emma.kim", "revops"]
    assert hub.verify_password("changed-pass", users["emma.kim"])
    assert not hub.verify_password("s3cret-pass", users["emma.kim"])
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ParameterError, match="^The password is shorter than 8 characters"):
        hub.add_user(path, "x", "short")


def test_password_file_errors_name_the_line(tmp_path: Path):
    path = tmp_path / "passwords"
    path.write_text("# users\n\nemma:plaintext\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}, line 3: expected user:scrypt$...")):
        hub.read_passwords(path)
    path.write_text("bad name:scrypt$1$1$1$00$00\n", encoding="utf-8")
    with pytest.raises(DataError, match="user name 'bad name' may hold only"):
        hub.read_passwords(path)
    with pytest.raises(DataError, match="does not exist: add a user with"):
        hub.read_passwords(tmp_path / "missing")


def test_authenticator_accepts_only_the_right_password(tmp_path: Path):
    path = tmp_path / "passwords"
    hub.add_user(path, "emma.kim", "s3cret-pass")
    auth = hub.PasswordFileAuthenticator(password_file=str(path))

    def login(user: str, password: str):
        return asyncio.run(auth.authenticate(None, {"username": user, "password": password}))

    assert login("emma.kim", "s3cret-pass") == "emma.kim"
    assert login("Emma.Kim ", "s3cret-pass") == "emma.kim"
    assert login("emma.kim", "wrong-pass") is None
    assert login("mallory", "s3cret-pass") is None
    # The file is read at every login: a user added later signs in without a restart.
    hub.add_user(path, "zoe.lopez", "zoe-pass-1")
    assert login("zoe.lopez", "zoe-pass-1") == "zoe.lopez"
    path.unlink()
    assert login("emma.kim", "s3cret-pass") is None


def test_configure_runs_voila_per_user_without_user_settings(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("REVMODEL_USER", "someone")
    monkeypatch.setenv("REVMODEL_TEAM_MAP", str(tmp_path / "team.yaml"))
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    settings = hub.HubSettings(
        port=18000, hub_port=18081, proxy_api_port=18001, state_dir=tmp_path / "hub",
        password_file=tmp_path / "pw", proxy_command="/x/configurable-http-proxy",
        home=tmp_path / "home",
    )  # fmt: skip
    c = Config()
    hub.configure(c, settings)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:18000"
    assert c.JupyterHub.hub_port == 18081
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:18001"
    assert c.JupyterHub.authenticator_class == "revmodel.apps.hub.PasswordFileAuthenticator"
    assert c.JupyterHub.spawner_class == "jupyterhub.spawner.SimpleLocalProcessSpawner"
    assert c.Spawner.default_url == "/voila/render/forecast_call.ipynb"
    env = c.Spawner.environment
    assert env["REVMODEL_HOME"] == str(tmp_path / "home")
    assert env["REVMODEL_TEAM_MAP"] == str(tmp_path / "team.yaml")
    assert "REVMODEL_USER" not in env  # identity comes from the login only
    server = (Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json").read_text()
    assert '"terminals_enabled": false' in server and '"jupyterlab": false' in server
    assert '"template": "revmodel"' in server and '"jupyterlab-plotly"' in server
    assert env["JUPYTER_PATH"].split(os.pathsep)[0].endswith("revmodel/apps/share")
