"""The overrides store on a real PostgreSQL server: the same URL-driven code, unchanged.

A throwaway cluster is created with the server's own ``initdb`` and ``pg_ctl`` on a
loopback port (as the ``postgres`` user when the tests run as root, since PostgreSQL
refuses to run as root). Locally the tests skip when no PostgreSQL server is installed;
in CI (``CI`` set) that is a failure, because ``.ci/run`` installs it.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from revmodel.overrides import NotAllowed, OverrideStore, TeamMap
from tests.test_overrides import (
    ALICE,
    BOB,
    MANAGER_REGION,
    PERIOD,
    REP_MANAGER,
    ROOT,
    USERS,
    assert_concurrent_submissions_lose_nothing,
)

pytestmark = pytest.mark.slow


def _server_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    if not (initdb and pg_ctl):
        message = "no PostgreSQL server installed (Debian package postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="revmodel-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = base / "data", base / "server.log"
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "revmodel", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://revmodel@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def clean_url(postgres_url: str) -> str:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS audit, periods CASCADE"))
    engine.dispose()
    return postgres_url


@pytest.fixture
def team() -> TeamMap:
    return TeamMap.from_mapping(USERS, REP_MANAGER, MANAGER_REGION)


def test_calls_audit_and_permissions_on_postgresql(clean_url: str, team: TeamMap) -> None:
    with OverrideStore(clean_url, team) as store:
        assert store.engine.dialect.name == "postgresql"
        store.open_period(PERIOD, ROOT)
        store.submit(ALICE, "R1", PERIOD, "commit", 100_000, note="first call")
        row = store.submit(ALICE, "R1", PERIOD, "commit", "125,000", note="upside")
        assert (row.old_value, row.new_value) == (100_000.0, 125_000.0)
        with pytest.raises(NotAllowed):
            store.submit(BOB, "R1", PERIOD, "commit", 1)
        calls = store.current_calls(PERIOD)
        audit = store.audit(PERIOD)
    assert calls.set_index("key").loc["R1", "amount"] == 125_000.0
    submits = audit[audit["action"] == "submit"]
    assert submits["new_value"].tolist() == [100_000.0, 125_000.0]
    assert submits["note"].tolist() == ["first call", "upside"]
    assert set(submits["user"]) == {"alice"}


def test_concurrent_processes_lose_nothing_on_postgresql(clean_url: str, team: TeamMap) -> None:
    assert_concurrent_submissions_lose_nothing(clean_url, team)


LABELS = [f"FY20{y}-Q{q}" for y in range(30, 35) for q in range(1, 5)]


def open_many(url: str, barrier) -> int:
    """Open every label of LABELS, meeting the other process at the barrier before each."""
    team = TeamMap.from_mapping(USERS, REP_MANAGER, MANAGER_REGION)
    with OverrideStore(url, team) as store:
        for label in LABELS:
            barrier.wait(timeout=60)  # a process that died breaks the barrier instead of hanging
            store.open_period(label, ROOT)
    return len(LABELS)


def test_two_admins_opening_the_same_new_periods_at_once(clean_url: str, team: TeamMap) -> None:
    with OverrideStore(clean_url, team):
        pass  # create the tables before the race
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            assert pool.starmap(open_many, [(clean_url, barrier)] * 2) == [len(LABELS)] * 2
    with OverrideStore(clean_url, team) as store:
        assert all(store.is_open(label) for label in LABELS)
        audit = store.audit()
    opened = audit[audit["action"] == "open"]
    # Each period was opened once: the loser of each race found it open and wrote nothing.
    assert sorted(opened["key"]) == sorted(LABELS)
