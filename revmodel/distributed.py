"""A step run as one task on a worker of a ``dask.distributed`` cluster.

Under ``--scheduler``, the forecast's fits are shared out over the workers
(:func:`revmodel.forecast.forecast_many`) and the Parquet parts are read where
they are (:mod:`revmodel.partitions`). The reconciliation is one computation over
every node: :func:`on_a_worker` runs it as a task on a worker, so that what it
builds (the residual covariance and its shrinkage, the coherent sample paths of
every node, the largest arrays of the forecast) is held there, never on this
machine. Its inputs are scattered to the cluster and its result comes back once.

Example
-------
>>> from revmodel import forecast
>>> out, info = on_a_worker("tcp://10.0.0.5:8786", forecast.reconcile_dataset, fc,
...                         method="mint_shrink")  # doctest: +SKIP
>>> info["worker"]["address"]  # doctest: +SKIP
'tcp://10.0.0.7:40321'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from revmodel.errors import RevmodelError

__all__ = ["ATTEMPTS", "WorkerRun", "local_cluster", "on_a_worker"]

log = logging.getLogger(__name__)

#: Times a task is run when the worker running it is lost.
ATTEMPTS = 3


@dataclass(frozen=True)
class WorkerRun:
    """Where a task ran: the worker's address and process id."""

    address: str
    pid: int


def _run_here(fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[Any, WorkerRun]:
    """On the worker: ``fn(*args, **kwargs)`` and where it ran."""
    from dask.distributed import get_worker

    return fn(*args, **kwargs), WorkerRun(str(get_worker().address), os.getpid())


def on_a_worker(
    scheduler: str, fn: Callable[..., tuple[Any, dict]], *data: Any, **settings: Any
) -> tuple[Any, dict]:
    """``fn(*data, **settings)`` run as one task on a worker of the cluster at ``scheduler``.

    Parameters
    ----------
    scheduler : str
        Address of a ``dask.distributed`` scheduler (``tcp://HOST:8786``).
    fn : callable
        A function returning ``(result, info)`` (as :func:`revmodel.forecast.reconcile_dataset`
        does), importable on the workers.
    *data
        Its large inputs (datasets, cubes): scattered to the cluster, then given to the task.
    **settings
        Its small settings, sent with the task.

    Returns
    -------
    (object, dict)
        ``fn``'s result and its info, with ``info["worker"]``: the ``address`` and ``pid`` of
        the worker process it ran in, and ``info["attempts"]``: 1, or more when a worker
        running it was lost (its inputs, scattered to that worker, are lost with it: they
        are scattered again and the task run on a worker left, up to :data:`ATTEMPTS` times).

    Raises
    ------
    RevmodelError
        When the worker running it was lost :data:`ATTEMPTS` times. An error ``fn`` raises
        is raised as it is, at once.
    """
    from dask.distributed import Client, KilledWorker

    name = getattr(fn, "__qualname__", repr(fn))
    log.info("%s: sent to a worker of %s", name, scheduler)
    with Client(scheduler, set_as_default=False) as client:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                (result, info), where = _submit(client, fn, data, settings)
                break
            except (CancelledError, KilledWorker) as exc:  # the task or its inputs lost
                if attempt == ATTEMPTS:
                    raise RevmodelError(
                        f"{name}: the worker of {scheduler} running it was lost on every "
                        f"try ({ATTEMPTS}); see the workers' logs (a worker out of memory is "
                        "killed)"
                    ) from exc
                log.warning("%s: its worker was lost (%s); run again", name, exc)
    log.info("%s ran on worker %s (pid %d)", name, where.address, where.pid)
    return result, {**info, "worker": asdict(where), "attempts": attempt}


@contextmanager
def local_cluster(n_workers: int) -> Iterator[Any]:
    """A client of a local cluster of ``n_workers`` single-threaded worker processes.

    The workers start without dask's ``MALLOC_TRIM_THRESHOLD_`` (``distributed.nanny.
    pre-spawn-environ``): setting it turns off glibc's adaptive mmap threshold, so every
    large temporary array is mapped and unmapped again, page by page. Drawing a
    2,000-rep company's band took 73 s with it against 17 s without (half the CPU time
    in the kernel); the forecast's fits, made of small arrays, take as long either way.
    One BLAS thread per worker (dask's default), so a result is the same to the bit
    as in a single-threaded process.

    Examples
    --------
    >>> with local_cluster(1) as client:  # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    import dask
    from dask.distributed import Client, LocalCluster

    unset = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set(unset):
        cluster = LocalCluster(
            n_workers=int(n_workers), threads_per_worker=1, processes=True, dashboard_address=None
        )
    try:
        with Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        cluster.close()


def _submit(client: Any, fn: Callable[..., Any], data: tuple, settings: dict) -> Any:
    """``data`` scattered and ``fn`` run on it as one task; its result, gathered."""
    scattered = client.scatter(list(data), hash=False) if data else []
    future = client.submit(_run_here, fn, tuple(scattered), settings, pure=False)
    return future.result()
