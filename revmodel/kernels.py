"""Kernels that talk to their server over local IPC sockets, never loopback TCP.

One definition for every place revmodel starts kernels: the plan's notebooks
(papermill, :class:`PlanKernelManager`), ``revmodel serve`` (Voila) and the
team's servers behind JupyterHub (:class:`AppKernelManager`).

Why not TCP: a kernel picks its five ports by binding free ones, closing them and
binding them again in the kernel process. Between the two, another program on the
machine (a second server, a dask worker, a kernel starting at the same moment) can
take a port; the kernel then dies with ``Address already in use`` and a preheated
Voila page waits for it for ever. IPC sockets are files named by this process and
a random part, so they cannot collide; they also keep the kernels off the network
stack (ipykernel stops warning that TCP is unencrypted).

The sockets are made in the temporary folder under a short name
(:data:`KERNEL_SOCKET_PREFIX`, the server's pid, a random part): a socket path
may not pass 107 characters (104 on macOS), and the connection file's folder can
be deeper than that allows. :func:`clean_kernel_sockets` removes those of
processes no longer running.

The manager classes are made on first use (this module's ``__getattr__``):
``jupyter_server`` takes about 1.5 s to import, and neither the plan nor
``revmodel serve``'s own process needs it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "KERNEL_SOCKET_PREFIX",
    "clean_kernel_sockets",
    "pid_alive",
    "socket_base",
]

#: Start of the kernels' IPC socket names; then the server's pid, "-", a random part.
KERNEL_SOCKET_PREFIX = "revmodel-kernel-"
_SOCKET = re.compile(rf"^{KERNEL_SOCKET_PREFIX}(\d+)-")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` is running (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def socket_base() -> str:
    """A new kernel's socket path without the ``-<n>`` jupyter_client adds per channel."""
    name = f"{KERNEL_SOCKET_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return os.path.join(tempfile.gettempdir(), name)


def clean_kernel_sockets(folder: Path | None = None) -> list[Path]:
    """Remove the kernel IPC socket files of processes no longer running."""
    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    removed = []
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            m = _SOCKET.match(path.name)
            if m and not pid_alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


@functools.cache
def _ipc_sockets() -> type:
    """The mixin giving a kernel manager IPC transport and a short socket path."""
    from traitlets import HasTraits, default

    class IpcSockets(HasTraits):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            return socket_base()

    return IpcSockets


def _plan_kernel_manager() -> type:
    from jupyter_client.manager import AsyncKernelManager

    class PlanKernelManager(_ipc_sockets(), AsyncKernelManager):
        """The plan notebooks' kernels (papermill's ``kernel_manager_class``)."""

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client interrupts (SIGINT) a kernel before asking it to shut down. The
            # plan shuts a kernel down once its cells have run; a SIGINT landing while
            # ipykernel still finishes the last reply prints "[IPKernelApp] ERROR |
            # KeyboardInterrupt caught in kernel." into the plan's output. A kernel that does
            # not stop when asked is still terminated after the shutdown wait.
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    return PlanKernelManager


def _app_kernel_manager() -> type:
    from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

    class AppKernelManager(_ipc_sockets(), ServerKernelManager):
        """The apps' kernels: ``MappingKernelManager.kernel_manager_class`` of Voila
        (:func:`revmodel.apps.serve.voila_command`) and of the team's servers
        (:mod:`revmodel.apps.hub`)."""

    return AppKernelManager


_MAKERS = {"PlanKernelManager": _plan_kernel_manager, "AppKernelManager": _app_kernel_manager}


def __getattr__(name: str) -> Any:
    if name in _MAKERS:
        made = _MAKERS[name]()
        made.__module__, made.__qualname__ = __name__, name
        globals()[name] = made  # made once
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
