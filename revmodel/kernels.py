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

Voila's pool of preheated pages (:func:`quiet_pool_refills`): when someone opens
a page, Voila builds its replacement in a new kernel one second later, beside
the person's first clicks; on a 2-core machine each click then waits for a share
of the CPU. Here the replacement waits until the server's kernels have been quiet
(none outside the pool running code, none sending a message) for
:data:`REFILL_QUIET_SECONDS` (at most :data:`REFILL_MAX_DELAY_SECONDS`), and starts at
once when someone asks for that page in the meantime.
"""

from __future__ import annotations

import asyncio
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
    "REFILL_MAX_DELAY_SECONDS",
    "REFILL_QUIET_SECONDS",
    "UNUSED_IMPORTS",
    "clean_kernel_sockets",
    "leave_out_unused_imports",
    "pid_alive",
    "quiet_pool_refills",
    "socket_base",
]

#: Modules left out of the apps' server and of their preheated kernels. jsonschema (which
#: jupyter_server imports, and Voila's package imports jupyter_server) imports
#: ``rfc3987_syntax``, when present, only to check "iri" strings, and that module compiles a
#: grammar at import: 1.1 s of a quiet core, about 3 s while other pages build beside it.
#: Nothing in the server or the apps checks an "iri"; jsonschema does without it.
UNUSED_IMPORTS = ("rfc3987_syntax",)


def leave_out_unused_imports() -> None:
    """Make this process import none of :data:`UNUSED_IMPORTS` (an import of one fails as
    for a package not installed, which its users allow for); one already imported stays."""
    import sys

    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)


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


#: A page taken from the pool is built again once no kernel outside the pool has run code or
#: sent a message for this long [s] (the page that was opened connects within a second or
#: two; a click takes 0.1-0.3 s).
REFILL_QUIET_SECONDS = 3.0
#: ... or this long after the page was taken, however busy the server [s].
REFILL_MAX_DELAY_SECONDS = 20.0
#: How often the kernels' states are looked at while a refill waits [s].
REFILL_POLL_SECONDS = 0.2


def quiet_pool_refills() -> None:
    """Make Voila's pooled kernel manager refill its pool when the server is quiet.

    Called in the Voila server's process before the application starts
    (:data:`revmodel.apps.serve.VOILA_MAIN`): Voila's factory of kernel managers is
    wrapped so that the manager it makes for preheated kernels is
    ``QuietRefillKernelManager`` (:func:`_quiet_refill_manager`). Its settings are
    traitlets, ``--QuietRefillKernelManager.refill_quiet_seconds`` and
    ``--QuietRefillKernelManager.refill_max_delay_seconds``.
    """
    import voila.app

    factory = voila.app.voila_kernel_manager_factory
    if getattr(factory, "quiet_refills", False):
        return

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> type:
        made = factory(*args, **kwargs)
        if not hasattr(made, "fill_if_needed"):  # no preheated kernels
            return made
        return _quiet_refill_manager(made)

    make.quiet_refills = True  # type: ignore[attr-defined]
    voila.app.voila_kernel_manager_factory = make


class _Stopping(RuntimeError):
    """A refill still waiting when the server stops (Voila's shutdown skips the failed ones)."""


def _quiet_refill_manager(base: type) -> type:
    """Voila's ``VoilaKernelManager`` (``base``) with refills that wait for quiet."""
    from jupyter_server._tz import utcnow
    from traitlets import Float

    class QuietRefillKernelManager(base):  # type: ignore[misc, valid-type]
        refill_quiet_seconds = Float(
            REFILL_QUIET_SECONDS,
            config=True,
            help="A page taken from the pool is built again once no kernel outside the "
            "pool has run code or sent a message for this long [s].",
        )
        refill_max_delay_seconds = Float(
            REFILL_MAX_DELAY_SECONDS,
            config=True,
            help="... or this long after the page was taken, whatever the traffic [s].",
        )

        def __init__(self, **kwargs: Any) -> None:
            self._waiting: dict[str, list[asyncio.Event]] = {}
            self._stopping = False
            super().__init__(**kwargs)
            self.log.info(
                "Pool refills wait for %.1f s without kernel work or traffic (at most %.0f s).",
                self.refill_quiet_seconds,
                self.refill_max_delay_seconds,
            )

        def fill_if_needed(
            self, delay=None, notebook_name=None, extra_kernel_env_variables=None, **kwargs
        ):
            if delay is None:  # a page was just taken: its replacement waits for quiet
                delay, kwargs["refill_when_quiet"] = 0, True
            super().fill_if_needed(delay, notebook_name, extra_kernel_env_variables or {}, **kwargs)

        async def get_rendered_notebook(self, notebook_name: str, *args: Any, **kwargs: Any):
            waiting = self._waiting.get(notebook_name, [])
            pool = self._pools.get(notebook_name, [])
            unstarted = sum(not task.done() for task in pool)
            if waiting and pool and not pool[0].done() and len(waiting) >= unstarted:
                # the page next in line still waits for quiet and someone wants it now:
                # build it at once (a page already started in the pool is handed out instead)
                waiting[0].set()
            return await super().get_rendered_notebook(notebook_name, *args, **kwargs)

        async def _initialize(
            self, notebook_path, kernel_id=None, refill_when_quiet=False, **kwargs
        ):
            if refill_when_quiet:
                await self._until_quiet(notebook_path)
            return await super()._initialize(notebook_path, kernel_id, **kwargs)

        async def _until_quiet(self, notebook_path: str) -> None:
            loop = asyncio.get_running_loop()
            wanted = asyncio.Event()
            self._waiting.setdefault(notebook_path, []).append(wanted)
            start, quiet_since = loop.time(), loop.time()
            try:
                while not (wanted.is_set() or self._stopping):
                    now = loop.time()
                    if self._working():
                        quiet_since = now
                    since = (utcnow() - self.last_kernel_activity).total_seconds()
                    idle = min(since, now - quiet_since)  # quiet since the page was taken
                    if (
                        idle >= self.refill_quiet_seconds
                        or now - start >= self.refill_max_delay_seconds
                    ):
                        break
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(wanted.wait(), REFILL_POLL_SECONDS)
            finally:
                with contextlib.suppress(KeyError, ValueError):
                    self._waiting[notebook_path].remove(wanted)
            if self._stopping:
                raise _Stopping(notebook_path)
            self.log.info(
                "Refilling the pool of %s %.1f s after its page was taken%s.",
                notebook_path,
                loop.time() - start,
                " (asked for)" if wanted.is_set() else "",
            )

        def _working(self) -> bool:
            """Whether a kernel not in the pool is running code (a page opened, a click):
            a long computation sends no message until it ends. A pooled kernel's cell
            waits for its request, busy, and does not count."""
            pooled = set()
            for pool in self._pools.values():
                for task in pool:
                    if task.done() and not task.cancelled() and task.exception() is None:
                        pooled.add(task.result().get("kernel_id"))
            return any(
                getattr(kernel, "execution_state", None) == "busy"
                for kid, kernel in list(self._kernels.items())
                if kid not in pooled
            )

        async def shutdown_all(self, *args: Any, **kwargs: Any) -> None:
            self._stopping = True
            for waiting in self._waiting.values():
                for wanted in waiting:
                    wanted.set()
            await super().shutdown_all(*args, **kwargs)

    QuietRefillKernelManager.__module__ = __name__
    return QuietRefillKernelManager


_MAKERS = {"PlanKernelManager": _plan_kernel_manager, "AppKernelManager": _app_kernel_manager}


def __getattr__(name: str) -> Any:
    if name in _MAKERS:
        made = _MAKERS[name]()
        made.__module__, made.__qualname__ = __name__, name
        globals()[name] = made  # made once
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
