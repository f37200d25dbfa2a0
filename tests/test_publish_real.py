"""The real ``revmodel plan``, killed at points of its run and stopped by a truly full disk.

``tests/test_report.py`` checks the publish machinery with a stand-in publisher
(hundreds of kills and concurrent publishes in seconds). Here the whole main job
runs as a user starts it, on a small file system of its own (a tmpfs mounted for
the test), so the disk that fills is a real one and the error comes from the
kernel, not from a patched function.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from revmodel import sample
from revmodel.publish import swap
from tests.conftest import NO_BAND_CALIBRATION

pytestmark = pytest.mark.slow

CYCLE = "FY2027-Q1"


@pytest.fixture
def disk(tmp_path):
    """A 64 MB file system of the test's own, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def sockets():
    """The kernels' TMPDIR: a short path of its own in the system's temporary folder (a kernel's
    IPC socket path must stay under 107 characters; ``tmp_path`` is longer under ``pytest -n``)."""
    folder = Path(tempfile.mkdtemp(prefix="revmodel-sockets-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _start(params: Path, out: Path, sockets: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(sockets)}
    cmd = [sys.executable, "-m", "revmodel", "plan", "--params", str(params), "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path: Path, child: subprocess.Popen, timeout: float = 600.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert child.poll() is None, f"the run ended before {path.name} appeared"
        assert time.monotonic() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.02)


def _kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


def _published(out: Path) -> str:
    """The text of the published plan.html (the stand-in pack's, or a real one's first line)."""
    return (out / CYCLE / "plan.html").read_text(encoding="utf-8")


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if re.match(r"^\..+\.(tmp|work|link)-\d+$", p.name))


def test_real_plan_killed_or_out_of_space_leaves_the_last_pack_and_cleans_up(
    tmp_path, disk, sockets
):
    data, out = tmp_path / "data", disk / "reports"
    sample.write(sample.generate(reps=4, months=24), data)
    params = tmp_path / f"{CYCLE}.yaml"
    params.write_text(
        yaml.safe_dump({"cycle": CYCLE, "data_dir": str(data), **NO_BAND_CALIBRATION})
    )
    # The pack standing before: a stand-in whose every file says "previous".
    before = out / f".{CYCLE}.tmp-1"
    before.mkdir(parents=True)
    for name in ("plan.html", "plan.xlsx", "plan.nc", "manifest.json"):
        (before / name).write_text("previous")
    swap.publish(before, out, CYCLE)
    rng = random.Random(7)

    # 1. A disk that fills while the pack is written: 2 MB free, the HTML alone needs more.
    filler = disk / "filler"
    with filler.open("wb") as f:
        while (free := os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize) > 2_000_000:
            f.write(b"\0" * min(free - 2_000_000, 4_000_000))
    child = _start(params, out, sockets)
    _, stderr = child.communicate(timeout=900)
    assert child.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert re.fullmatch(
        rf"error: {re.escape(str(out))}(/\S+)?: no space left on the device while writing the pack; "
        rf"nothing was published and the previous pack of {re.escape(str(out))} is untouched\. "
        r"Free some space or fix the permissions, then run again\.",
        stderr.strip().splitlines()[-1],
    ), stderr
    assert _published(out) == "previous"
    assert _leftovers(out) == []  # its half-written pack and run folder removed
    filler.unlink()

    # 2. Killed while the notebooks run, at a random moment.
    child = _start(params, out, sockets)
    _wait_for(out / f".{CYCLE}.work-{child.pid}", child)
    time.sleep(rng.uniform(1.0, 8.0))
    _kill(child)
    assert _published(out) == "previous"
    assert f".{CYCLE}.work-{child.pid}" in _leftovers(out)

    # 3. Killed while the pack is being written, after the notebooks.
    child = _start(params, out, sockets)
    _wait_for(out / f".{CYCLE}.tmp-{child.pid}" / "plan.html", child)
    _kill(child)
    assert _published(out) == "previous"
    assert f".{CYCLE}.tmp-{child.pid}" in _leftovers(out)

    # 4. The next run removes what the killed runs left, then publishes.
    child = _start(params, out, sockets)
    _, stderr = child.communicate(timeout=900)
    assert child.returncode == 0, stderr
    assert re.search(r"removed \d+ leftover\(s\) of earlier runs", stderr)
    assert _published(out).lstrip().lower().startswith("<!doctype html>")
    assert _leftovers(out) == []
    versions = sorted(p.name for p in (out / f".{CYCLE}").iterdir())
    assert (
        len(versions) == 2 and swap.current_version(out, CYCLE).name in versions
    )  # new + previous
    assert [p.name for p in sockets.iterdir() if p.name.startswith(swap.KERNEL_SOCKET_PREFIX)] == []
    check = subprocess.run(
        [sys.executable, "-m", "revmodel.publish", "check", str(out / CYCLE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
