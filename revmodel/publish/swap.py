"""Publishing a pack: locked, atomic, and clean after a killed run.

``reports/<cycle>`` is a symbolic link to a versioned folder
``reports/.<cycle>/<version>``. A run:

1. takes the lock of the reports folder (:func:`locked`): one run at a time
   publishes there; a second waits up to ``wait`` seconds, then stops with a
   message naming the first (pid, start time, cycle);
2. removes what killed runs left (:func:`clean_leftovers`): their build and
   run folders (``.<cycle>.tmp-<pid>``, ``.<cycle>.work-<pid>``), unpublished
   versions, and the IPC socket files of their kernels;
3. builds the pack in ``.<cycle>.tmp-<pid>`` and publishes it
   (:func:`publish`): the folder is renamed to a new version, then a new link
   replaces the old one with :func:`os.replace`, one atomic step. A reader
   opening ``reports/<cycle>/plan.html`` finds the previous pack or the new
   one, never a gap; a run killed at any point leaves the previous pack
   published.

The previous version is kept until the next run, so a reader that had just
followed the old link still finds its files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import filelock

from revmodel.errors import RevmodelError
from revmodel.kernels import KERNEL_SOCKET_PREFIX, clean_kernel_sockets, pid_alive

__all__ = [
    "KERNEL_SOCKET_PREFIX",
    "PublishError",
    "PublishLocked",
    "clean_leftovers",
    "current_version",
    "locked",
    "publish",
    "staging",
]

log = logging.getLogger(__name__)

#: Lock file of a reports folder, and the JSON beside it naming the run that holds it.
LOCK_FILE = ".publish.lock"
OWNER_FILE = ".publish.owner.json"
_LEFTOVER = re.compile(r"^\..+\.(tmp|work|link)-(\d+)$")
#: errno -> what the user is told.
_OS_ERRORS: dict[int, str] = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
}


class PublishLocked(RevmodelError):
    """Another run is publishing into the same reports folder."""

    exit_code = 1


class PublishError(RevmodelError):
    """The pack could not be written (full disk, no permission); the previous pack stands."""

    exit_code = 1


def version_name(now: dt.datetime | None = None) -> str:
    """A new version's folder name: UTC time to the microsecond and this process id."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{os.getpid()}"


def _owner(out: Path) -> str:
    try:
        info = json.loads((out / OWNER_FILE).read_text(encoding="utf-8"))
        return f"pid {info['pid']}, started {info['started_utc']}, cycle {info['cycle']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"


@contextlib.contextmanager
def locked(out: Path, cycle: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the publish lock of ``out`` (made if missing) for the block.

    Raises
    ------
    PublishLocked
        ``reports: another run is publishing here (pid 123, started ..., cycle
        FY2027-Q1); waited 0 s. Let it finish, or stop it, then run again.``
    """
    out.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(out / LOCK_FILE))
    try:
        lock.acquire(timeout=max(0.0, float(wait)))
    except filelock.Timeout:
        raise PublishLocked(
            f"{out}: another run is publishing here ({_owner(out)}); waited {wait:g} s. "
            "Let it finish, or stop it, then run again."
        ) from None
    try:
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        info = {"pid": os.getpid(), "started_utc": started, "cycle": cycle}
        _write_text(out / OWNER_FILE, json.dumps(info))
        yield
    finally:
        with contextlib.suppress(OSError):
            (out / OWNER_FILE).unlink()
        lock.release()


def current_version(out: Path, cycle: str) -> Path | None:
    """The version folder ``out/<cycle>`` links to, or None."""
    link = out / cycle
    if not link.is_symlink():
        return None
    return (out / os.readlink(link)).resolve()


def clean_leftovers(out: Path, sockets_dir: Path | None = None) -> list[Path]:
    """Remove what killed runs left in ``out``; call it holding the lock. Returns what was removed.

    Removed: ``.<cycle>.tmp-<pid>``, ``.<cycle>.work-<pid>`` and
    ``.<cycle>.link-<pid>`` of processes no longer running, versions no link
    points to (the one published before stays until this run publishes: a
    reader may have just followed the old link), and the kernel IPC sockets of
    dead processes in ``sockets_dir`` (default: the temporary folder).
    """
    removed: list[Path] = []
    if not out.is_dir():
        return removed
    for path in out.iterdir():
        m = _LEFTOVER.match(path.name)
        if m and (int(m.group(2)) == os.getpid() or not pid_alive(int(m.group(2)))):
            _remove(path)
            removed.append(path)
    for versions in out.glob(".*"):
        if not versions.is_dir() or _LEFTOVER.match(versions.name) or versions.name == ".failed":
            continue
        cycle = versions.name[1:]
        current = current_version(out, cycle)
        for path in sorted(v for v in versions.iterdir() if v.resolve() != current):
            _remove(path)
            removed.append(path)
    removed.extend(clean_kernel_sockets(sockets_dir))
    if removed:
        log.info("removed %d leftover(s) of earlier runs in %s", len(removed), out)
    return removed


def staging(out: Path, cycle: str) -> tuple[Path, Path]:
    """This run's build folder and run folder: ``.<cycle>.tmp-<pid>``, ``.<cycle>.work-<pid>``."""
    pid = os.getpid()
    return out / f".{cycle}.tmp-{pid}", out / f".{cycle}.work-{pid}"


def publish(tmp: Path, out: Path, cycle: str) -> Path:
    """Publish the finished pack ``tmp`` as ``out/<cycle>``, in one atomic step.

    ``tmp`` becomes the version ``out/.<cycle>/<version>`` (a rename), then a
    new link replaces ``out/<cycle>`` (:func:`os.replace`). A reports folder
    of an older revmodel, where ``out/<cycle>`` is a folder, is exchanged with
    the link in one step and kept as the previous version.

    Returns
    -------
    Path
        ``out/<cycle>``.
    """
    versions = out / f".{cycle}"
    versions.mkdir(exist_ok=True)
    final = out / cycle
    target = versions / version_name()
    _fsync_tree(tmp)
    os.rename(tmp, target)
    link = out / f".{cycle}.link-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    os.symlink(os.path.relpath(target, out), link)
    if final.exists() and not final.is_symlink():
        _replace_folder_with_link(link, final, versions)
    else:
        os.replace(link, final)
    _fsync_dir(out)
    return final


def _replace_folder_with_link(link: Path, final: Path, versions: Path) -> None:
    """Put ``link`` where the folder ``final`` (a pack of an older revmodel) is.

    On Linux the two are exchanged in one step (``renameat2`` with
    ``RENAME_EXCHANGE``), so a reader never finds ``final`` missing; the old
    folder, now at ``link``'s name, becomes the previous version. Elsewhere
    the folder is moved aside first: the one moment a reader may find no pack.
    """
    moved = versions / f"{version_name()}-moved"
    if _exchange(link, final):
        os.rename(link, moved)
        return
    os.rename(final, moved)
    os.replace(link, final)


#: ``renameat2`` flag: swap two paths atomically (Linux 3.15+, glibc 2.28+).
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` in one atomic step; False where the system cannot."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # file system or kernel without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def explain_os_error(exc: OSError, out: Path) -> PublishError | None:
    """A :class:`PublishError` for a full disk or a permission problem, else None."""
    what = _OS_ERRORS.get(exc.errno or 0)
    if what is None:
        return None
    where = exc.filename or out
    return PublishError(
        f"{where}: {what} while writing the pack; nothing was published and the previous pack "
        f"of {out} is untouched. Free some space or fix the permissions, then run again."
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fsync_tree(path: Path) -> None:
    """Flush the pack's files to disk before it is published (a crash then leaves it whole)."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
