"""Progress of the long steps: one facility for the command line, JupyterLab and the plan.

Library code counts its work with :func:`bar` (series forecast, months reconciled,
tables read, notebooks run). What the user sees follows where the code runs:

- on a terminal, a ``tqdm`` bar on stderr; in JupyterLab, the ``tqdm.auto`` widget;
  in a log, a CI job or under ``--quiet`` (:func:`configure`), nothing: tqdm's
  ``disable=None`` rule (a bar only when stderr is a terminal);
- in a kernel of ``revmodel plan`` (the environment variable :data:`RECORDS_ENV`
  names a file), no output at all (the published notebooks stay clean): the bar
  appends JSON records to that file, and the command line shows them as bars of its
  own with :func:`follow` (the notebook's name, the step, ``n/N`` and the unit), and
  logs one line per finished step (``02-forecast.ipynb: forecast 45/45 series``).

Example
-------
>>> from revmodel import progress
>>> with progress.bar(total=3, desc="forecast", unit="series") as b:
...     b.update(3)
>>> b.n
3
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RECORDS_ENV", "Step", "bar", "configure", "follow", "read_records", "recording"]

log = logging.getLogger(__name__)

#: Environment variable naming the file a plan's kernels append progress records to.
RECORDS_ENV = "REVMODEL_PROGRESS_FILE"
#: Least seconds between two records of one bar (its first and last are always written) [s].
RECORD_INTERVAL = 0.5
#: Seconds between two reads of the records file by :func:`follow` [s].
POLL_INTERVAL = 0.2

# None: a bar only on a terminal (tqdm's rule); False: never (``revmodel -q``).
_shown: bool | None = None
_ids = itertools.count()


def configure(shown: bool | None) -> None:
    """``None``: bars only when stderr is a terminal; ``False``: no bar at all (``--quiet``)."""
    global _shown
    _shown = shown


def _disable(enabled: bool) -> bool | None:
    return True if (not enabled or _shown is False) else None


def bar(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    enabled: bool = True,
    leave: bool = False,
) -> Any:
    """A progress bar over ``iterable`` or up to ``total`` (``update(n)``), ``tqdm``'s API.

    Parameters
    ----------
    iterable : iterable, optional
        Items counted as they are consumed.
    total : int, optional
        The count at the end (default ``len(iterable)`` when it has one).
    desc : str
        The step, e.g. ``"forecast"``.
    unit : str
        What is counted, e.g. ``"series"``.
    enabled : bool
        False: no bar whatever the place (a caller's own ``progress=False``).
    leave : bool
        Keep the finished bar on the terminal.

    Returns
    -------
    tqdm.tqdm or a recorder with the same ``update``, ``close``, iteration and ``with``.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    records = os.environ.get(RECORDS_ENV)
    if records and enabled:
        return _Recorder(Path(records), iterable, total, desc, unit)
    return _terminal_bar(iterable, total, desc, unit, enabled, leave)


def _terminal_bar(
    iterable: Iterable | None, total: int | None, desc: str, unit: str, enabled: bool, leave: bool
) -> Any:
    """A ``tqdm.auto`` bar: on stderr when it is a terminal, a widget in JupyterLab."""
    from tqdm.auto import tqdm

    disable = _disable(enabled)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave)


class _Recorder:
    """A bar that appends ``{"bar", "desc", "unit", "n", "total", "done"}`` lines to a file."""

    def __init__(
        self, path: Path, iterable: Iterable | None, total: int | None, desc: str, unit: str
    ):
        self.path, self.iterable, self.total = path, iterable, total
        self.desc, self.unit, self.n = desc, unit, 0
        self.id = f"{os.getpid()}-{next(_ids)}"
        self._last = 0.0
        self._closed = False
        self._write(done=False)

    def _write(self, done: bool) -> None:
        record = {"bar": self.id, "desc": self.desc, "unit": self.unit, "n": self.n}
        record.update(total=self.total, done=done)
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError:
            pass  # progress is never worth failing the step it reports on
        self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if time.monotonic() - self._last >= RECORD_INTERVAL:
            self._write(done=False)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        del s, refresh  # the command line shows the step and the count

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(done=True)

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def recording(path: str | Path | None) -> Iterator[None]:
    """Bars started within (and in processes started within) append records to ``path``.

    ``None`` or ``os.devnull``: the records are dropped, and still no bar is drawn.
    """
    old = os.environ.get(RECORDS_ENV)
    # absolute: a kernel runs in its notebook's folder, not in this process's
    os.environ[RECORDS_ENV] = str(Path(path).resolve()) if path is not None else os.devnull
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RECORDS_ENV, None)
        else:
            os.environ[RECORDS_ENV] = old


@dataclass(frozen=True)
class Step:
    """A step as the records file last told it: ``n`` of ``total`` ``unit``."""

    desc: str
    unit: str
    n: int
    total: int | None
    done: bool


def read_records(path: str | Path) -> dict[str, Step]:
    """The last state of every bar recorded in ``path``, in the order they started."""
    steps: dict[str, Step] = {}
    text = Path(path).read_text(encoding="utf-8") if Path(path).exists() else ""
    for line in text.splitlines():
        if line.strip():
            r = json.loads(line)
            steps[r["bar"]] = Step(r["desc"], r["unit"], r["n"], r["total"], r["done"])
    return steps


class _Follower:
    """Reads new records from the file and mirrors them as bars on this terminal."""

    def __init__(self, path: Path, label: str):
        self.path, self.label = path, label
        self.offset = path.stat().st_size if path.exists() else 0  # earlier steps' records shown
        self.bars: dict[str, Any] = {}
        self.started: dict[str, float] = {}

    def poll(self) -> None:
        try:
            with self.path.open("r", encoding="utf-8") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind("\n") + 1]  # a line half written waits for the next read
        self.offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            if line.strip():
                self._show(json.loads(line))

    def _show(self, r: dict[str, Any]) -> None:
        key = r["bar"]
        if key not in self.bars:
            desc = f"{self.label}: {r['desc']}" if self.label else r["desc"]
            self.bars[key] = _terminal_bar(None, r["total"], desc, r["unit"], True, False)
            self.started[key] = time.monotonic()
        shown = self.bars[key]
        shown.update(r["n"] - shown.n)
        if r["done"]:
            shown.close()
            seconds = time.monotonic() - self.started[key]
            of = f"/{r['total']}" if r["total"] is not None else ""
            log.info(
                "%s: %s %d%s %s in %.0f s", self.label, r["desc"], r["n"], of, r["unit"], seconds
            )

    def close(self) -> None:
        self.poll()
        for shown in self.bars.values():
            shown.close()


@contextlib.contextmanager
def follow(path: str | Path, label: str = "") -> Iterator[None]:
    """Show the records appended to ``path`` (by :func:`recording`'s processes) as bars.

    A thread reads the file every :data:`POLL_INTERVAL` seconds while the block runs
    (records written before the block are not shown again); each bar is named
    ``<label>: <step>`` and a finished step is logged once.
    """
    follower = _Follower(Path(path), label)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(POLL_INTERVAL):
            follower.poll()

    thread = threading.Thread(target=loop, name="revmodel-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        follower.close()
