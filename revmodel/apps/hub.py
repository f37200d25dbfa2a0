"""Team deployment: JupyterHub with a password login and one Voila server per signed-in user.

Each person signs in on JupyterHub's login page with their own name and
password; the hub starts a single-user Jupyter server for them (their
``JUPYTERHUB_USER`` set by the hub, never by the user) that serves only the
apps, through Voila. What they may write comes from the team map
(``parameters/team.yaml``); the call store (SQLite file or PostgreSQL) is
shared, so a period an admin opens is open for everyone at the next click.

Passwords live in a file of ``user:scrypt$n$r$p$salt$hash`` lines
(:func:`hash_password`; ``python -m revmodel.apps.hub add-user NAME`` writes
one, reading the password from the terminal). The file is read at every
login, so adding a user needs no restart. Nobody without a line in the
file, or with a wrong password, gets past the login page.

Servers run as the hub's own system account (``SimpleLocalProcessSpawner``):
nothing is created on the machine per user. The consequence, said plainly:
a user's kernel runs under that shared account, so the login decides who a
page acts for, but it does not sandbox one user's kernel from another's
files. For people who must not trust each other, use system accounts
(``LocalProcessSpawner``) or containers (``DockerSpawner``) with the same
authenticator and a PostgreSQL store.

Run: ``jupyterhub -f deploy/jupyterhub_config.py`` (README, "Apps for a team").
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revmodel import config
from revmodel.apps import serve
from revmodel.errors import DataError, ParameterError

__all__ = [
    "HubSettings",
    "add_user",
    "configure",
    "hash_password",
    "read_passwords",
    "verify_password",
]

#: scrypt cost parameters (RFC 7914): 16 MiB of memory per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: The app a signed-in user lands on.
DEFAULT_APP = "forecast_call.ipynb"
USER_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-@")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex) of a password, with a random salt."""
    if not password:
        raise ParameterError("The password is empty: choose one of at least 8 characters.")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest) // 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def _check_user(user: str, where: str) -> str:
    name = user.strip().lower()
    if not name or not set(name) <= USER_CHARS:
        raise DataError(
            f"{where}: user name {user!r} may hold only lower-case letters, digits and . _ - @"
        )
    return name


def read_passwords(path: str | Path) -> dict[str, str]:
    """User -> password hash from a ``user:hash`` file (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(
            f"password file {path} does not exist: add a user with "
            f"python -m revmodel.apps.hub add-user NAME --file {path}"
        ) from None
    users: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        user, sep, stored = text.partition(":")
        where = f"{path}, line {number}"
        if not sep or not stored.startswith("scrypt$"):
            raise DataError(f"{where}: expected user:scrypt$..., as written by add-user")
        users[_check_user(user, where)] = stored
    return users


def add_user(path: str | Path, user: str, password: str) -> None:
    """Add a user to the password file, or change their password (file replaced atomically)."""
    path = Path(path)
    name = _check_user(user, str(path))
    if len(password) < 8:
        raise ParameterError("The password is shorter than 8 characters: choose a longer one.")
    users = read_passwords(path) if path.exists() else {}
    users[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{u}:{h}\n" for u, h in sorted(users.items())), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def _authenticator_class() -> type:
    from jupyterhub.auth import Authenticator
    from traitlets import Unicode

    class PasswordFileAuthenticator(Authenticator):
        """Signs in the users of a password file (:func:`read_passwords`), read at every login."""

        password_file = Unicode(
            help="File of user:scrypt$... lines (python -m revmodel.apps.hub add-user)."
        ).tag(config=True)

        async def authenticate(self, handler: Any, data: dict) -> str | None:
            user = str(data.get("username", "")).strip().lower()
            try:
                stored = read_passwords(self.password_file).get(user)
            except DataError as exc:
                self.log.error("%s", exc)
                return None
            if stored is None or not verify_password(str(data.get("password", "")), stored):
                self.log.warning("failed login for %r", user)
                return None
            return user

    return PasswordFileAuthenticator


def __getattr__(name: str) -> Any:
    # The authenticator class needs jupyterhub, imported only when the hub asks for it.
    if name == "PasswordFileAuthenticator":
        cls = _authenticator_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


@dataclass(frozen=True)
class HubSettings:
    """Where the hub listens and keeps its state.

    Attributes
    ----------
    port : int
        Public port of the proxy (the login page) on 127.0.0.1 unless ``ip`` says otherwise.
    hub_port, proxy_api_port : int
        Internal ports of the hub and of the proxy's API.
    state_dir : Path
        The hub's database, cookie secret and the users' working folders.
    password_file : Path
    proxy_command : str
        The ``configurable-http-proxy`` executable (installed by npm).
    home : Path
        ``REVMODEL_HOME`` of the apps (data, call store, caches).
    ip : str
    """

    port: int
    hub_port: int
    proxy_api_port: int
    state_dir: Path
    password_file: Path
    proxy_command: str
    home: Path = config.HOME
    ip: str = "127.0.0.1"

    @classmethod
    def from_environment(cls) -> HubSettings:
        """Settings from ``REVMODEL_HUB_*`` variables, with defaults beside the checkout."""
        env = os.environ
        state = Path(env.get("REVMODEL_HUB_STATE", config.HOME / "build" / "hub"))
        chp = config.ROOT / "build" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
        return cls(
            port=int(env.get("REVMODEL_HUB_PORT", "8000")),
            hub_port=int(env.get("REVMODEL_HUB_API_PORT", "8081")),
            proxy_api_port=int(env.get("REVMODEL_HUB_PROXY_API_PORT", "8001")),
            state_dir=state,
            password_file=Path(env.get("REVMODEL_HUB_PASSWORDS", state / "passwords")),
            proxy_command=env.get("REVMODEL_HUB_PROXY", str(chp)),
            home=Path(env.get("REVMODEL_HOME", config.HOME)),
            ip=env.get("REVMODEL_HUB_IP", "127.0.0.1"),
        )


def _server_config(state: Path) -> Path:
    """A Jupyter config folder for the users' servers: Voila only, no terminals, no editors."""
    folder = state / "server-config"
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "ServerApp": {
            "terminals_enabled": False,
            # In a container CI runs as root; the server refuses to start as root without this.
            "allow_root": os.geteuid() == 0,
            "jpserver_extensions": {
                "voila": True,
                "jupyterlab": False,
                "notebook": False,
                "jupyter_lsp": False,
                "jupyter_server_terminals": False,
            },
        },
        # Kernels on IPC sockets, as under `revmodel serve` (revmodel.kernels).
        "MappingKernelManager": {"kernel_manager_class": serve.KERNEL_MANAGER},
        # The pages `revmodel serve` sends: the apps' template, charts by its plotly.js.
        "VoilaConfiguration": {
            "strip_sources": True,
            "show_tracebacks": False,
            "template": serve.TEMPLATE,
            "extension_denylist": list(serve.EXTENSIONS_LEFT_OUT),
        },
    }
    (folder / "jupyter_server_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder


def configure(c: Any, settings: HubSettings | None = None) -> None:
    """Fill a ``jupyterhub_config.py``'s ``c`` for the apps."""
    s = settings or HubSettings.from_environment()
    s.state_dir.mkdir(parents=True, exist_ok=True)
    c.JupyterHub.bind_url = f"http://{s.ip}:{s.port}"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = s.hub_port
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = [s.proxy_command]
    c.JupyterHub.db_url = f"sqlite:///{s.state_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(s.state_dir / "cookie_secret")
    c.JupyterHub.pid_file = str(s.state_dir / "jupyterhub.pid")
    c.JupyterHub.authenticator_class = "revmodel.apps.hub.PasswordFileAuthenticator"
    c.PasswordFileAuthenticator.password_file = str(s.password_file)
    c.Authenticator.allow_all = True  # everyone in the password file; rights from team.yaml
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(s.state_dir / "users" / "{username}")
    c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
    c.Spawner.notebook_dir = str(config.APPS_DIR)
    c.Spawner.default_url = f"/voila/render/{DEFAULT_APP}"
    c.Spawner.start_timeout = 180
    c.Spawner.http_timeout = 180
    c.Spawner.environment = {
        "REVMODEL_HOME": str(s.home),
        "JUPYTER_CONFIG_DIR": str(_server_config(s.state_dir)),
        "JUPYTER_PATH": serve.template_path(),
        **{k: v for k, v in os.environ.items() if k.startswith("REVMODEL_") and _passed(k)},
    }


def _passed(name: str) -> bool:
    # Settings of the deployment reach the servers; nothing that names a user does.
    return name not in {"REVMODEL_USER", "REVMODEL_TOKEN"} and not name.startswith("REVMODEL_HUB")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m revmodel.apps.hub add-user NAME [--file PATH]``: set a user's password."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m revmodel.apps.hub")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-user", help="add a user or change their password")
    add.add_argument("name")
    add.add_argument("--file", type=Path, default=None)
    args = parser.parse_args(argv)
    path = args.file or HubSettings.from_environment().password_file
    password = getpass.getpass(f"Password for {args.name}: ")
    if password != getpass.getpass("Again: "):
        print("The passwords differ: nothing changed.", file=sys.stderr)
        return 2
    try:
        add_user(path, args.name, password)
    except (DataError, ParameterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name} can sign in ({path}).")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
