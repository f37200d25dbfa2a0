"""Kernels on IPC sockets (revmodel.kernels): the apps' and the plan's managers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from revmodel import kernels


def test_manager_classes_are_made_on_first_use_without_jupyter_server():
    code = (
        "import sys, revmodel.kernels as k, revmodel.apps.serve;"
        "print('jupyter_server' in sys.modules, 'jupyter_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_socket_names_are_short_and_carry_the_pid():
    base = kernels.socket_base()
    assert Path(base).parent == Path(tempfile.gettempdir())
    assert Path(base).name.startswith(f"{kernels.KERNEL_SOCKET_PREFIX}{os.getpid()}-")
    assert kernels.socket_base() != base
    assert len(base) + len("-12345") <= 104  # a socket path's limit on macOS


@pytest.mark.parametrize("name", ["AppKernelManager", "PlanKernelManager"])
def test_a_kernel_runs_code_over_ipc_sockets(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", "/tmp")  # short, as a user's
    cls = getattr(kernels, name)
    assert cls is getattr(kernels, name)  # made once
    assert cls.__module__ == "revmodel.kernels" and cls.__qualname__ == name

    async def run() -> tuple[str, list[str], dict]:
        km = cls(connection_file=str(tmp_path / "kernel-1.json"))
        await km.start_kernel()
        try:
            client = km.client()
            client.start_channels()
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive("x = 6 * 7", timeout=60)
            client.stop_channels()
            sockets = sorted(
                p.name for p in Path(km.ip).parent.iterdir() if p.name.startswith(Path(km.ip).name)
            )
            return km.transport, sockets, reply["content"]
        finally:
            await km.shutdown_kernel(now=True)

    transport, sockets, content = asyncio.run(run())
    assert transport == "ipc"
    assert content["status"] == "ok"
    assert len(sockets) == 5  # shell, iopub, stdin, control, heartbeat


def test_clean_kernel_sockets_removes_only_dead_processes_sockets(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f"{kernels.KERNEL_SOCKET_PREFIX}{int(dead.stdout)}-abc-1"
    live = tmp_path / f"{kernels.KERNEL_SOCKET_PREFIX}{os.getpid()}-abc-1"
    other = tmp_path / "someone-else-1"
    for p in (stale, live, other):
        p.write_text("")
    assert kernels.clean_kernel_sockets(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
