"""The planning notebooks: structure, declared parameters, and full papermill runs on a small sample."""

from __future__ import annotations

import json
import shutil
import sys

import nbformat
import numpy as np
import openpyxl
import pandas as pd
import pytest
import xarray as xr
import yaml

from revmodel import capacity, config, formatting, parameters, publish, quota, sample
from revmodel.errors import DataError
from tests.conftest import NO_BAND_CALIBRATION

NOTEBOOKS = [config.NOTEBOOKS_DIR / n for n in publish.NOTEBOOKS]
#: papermill's type names of the schema's types.
TYPES = {
    "str": {"str"},
    "int": {"int"},
    "float": {"float"},
    "bool": {"bool"},
    "dict": {"dict"},
    "list": {"list"},
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_with_a_parameters_cell_first(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for line in code[0].source.splitlines():
        assert ":" in line and "#" in line, f"{path.name}: '{line}' needs a type and a help comment"
    for cell in code:
        assert "def " not in cell.source and "class " not in cell.source, (
            f"{path.name} defines logic"
        )
        assert not cell.outputs, f"{path.name} is saved with outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_declared_parameters_match_the_schema(path):
    declared = publish.declared_parameters(path)
    assert "work_dir" in declared
    for name, info in declared.items():
        if name in publish.RUN_PARAMETERS:
            continue
        assert name in parameters.SCHEMA, f"{path.name} declares {name!r}, not a parameters key"
        declared_type = info["inferred_type_name"]
        optional = declared_type.startswith("Optional[")
        typ = (
            declared_type.removeprefix("Optional[").removesuffix("]") if optional else declared_type
        )
        assert typ in TYPES[parameters.SCHEMA[name].type], f"{path.name}: {name} is {typ}"
        if optional:
            assert parameters.SCHEMA[name].optional, f"{path.name}: {name} cannot be None"


# Planning-cycle files are named after their cycle (FY2027-Q1.yaml); other YAML here (team.yaml) is app configuration.
@pytest.mark.parametrize(
    "path", sorted(config.PARAMETERS_DIR.glob("FY*.yaml")), ids=lambda p: p.name
)
def test_parameters_file_keys_are_declared_by_a_notebook(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    declared = {}
    for nb in NOTEBOOKS:
        declared.update(publish.declared_parameters(nb))
    for key, value in data.items():
        assert key in parameters.SCHEMA, f"{path.name}: {key} is not a parameters key"
        if key != "data_dir":  # only 01-data reads the data; the runner checks the folder
            assert key in declared, f"{path.name}: no notebook declares {key}"
        if value is not None:
            p = parameters.SCHEMA[key]
            ok = (
                isinstance(value, (int, float))
                if p.type == "float"
                else type(value).__name__ == p.type
            )
            assert ok, f"{path.name}: {key}={value!r} is not a {p.type}"


# --------------------------------------------------------------------------- full runs (slow)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The plan of a 12-rep company published once for the module: FY2026-Q4 with actuals to
    July first, then FY2027-Q1 (its accuracy section reads the FY2026-Q4 pack)."""
    root = tmp_path_factory.mktemp("plan")
    data = root / "data"
    sample.write(sample.generate(reps=12, months=36), data)
    out = root / "reports"
    last = root / "FY2026-Q4.yaml"
    last.write_text(yaml.safe_dump({
        "cycle": "FY2026-Q4", "data_dir": str(data), "fiscal_year_start": 11, "as_of": "2026-07",
        "horizon": 6, **NO_BAND_CALIBRATION,  # only its forecast's mean is read back
    }))  # fmt: skip
    publish.plan(last, out_dir=out)
    params = root / "FY2027-Q1.yaml"
    params.write_text(yaml.safe_dump({
        "cycle": "FY2027-Q1", "data_dir": str(data), "fiscal_year_start": 11, "horizon": 15,
        "scenarios": [{"name": "downside", "churn_rate": 0.07}],
    }))  # fmt: skip
    html = publish.plan(params, out_dir=out)
    return {
        "root": root,
        "data": data,
        "params": params,
        "out": out,
        "html": html,
        "pack": html.parent,
    }


@pytest.mark.slow
def test_plan_publishes_a_sound_pack(small):
    pack = small["pack"]
    assert small["html"] == small["out"] / "FY2027-Q1" / "plan.html"
    assert publish.check_pack(pack) == []
    assert sorted(p.name for p in (pack / "notebooks").iterdir()) == sorted(publish.NOTEBOOKS)
    assert not list(small["out"].glob(".FY2027-Q1.*")), "temporary folders left behind"
    m = json.loads((pack / "manifest.json").read_text())
    assert m["parameters"]["cycle"] == "FY2027-Q1" and m["data_sha256"] and m["run_seconds"] > 0
    wb = openpyxl.load_workbook(pack / "plan.xlsx")
    for sheet in (
        "Summary",
        "Quotas by rep",
        "Capacity",
        "Forecast by level",
        "KPIs",
        "Scenarios",
        "Accuracy",
    ):
        assert sheet in wb.sheetnames
    page = small["html"].read_text()
    for title in ("Executive summary", "Forecast vs target", "ARR bridge and churn", "Quotas, attainment and balance",
                  "Territories", "Scenario comparison", "Last cycle&#39;s forecast accuracy", "KPIs"):  # fmt: skip
        assert title in page or title.replace("&#39;", "'") in page, title
    assert "<script src" not in page and page.count("Plotly.newPlot") >= 8


@pytest.mark.slow
def test_published_files_hold_no_absolute_path_of_the_machine(small):
    # The data and reports folders are under tmp; the checkout and the Python install elsewhere.
    machine = [str(small["root"]), str(small["root"].resolve()), str(config.ROOT), sys.prefix]
    files = [p for p in small["out"].rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        for text in machine:
            assert text.encode() not in data, f"{path.relative_to(small['out'])} holds {text}"
    m = json.loads((small["pack"] / "manifest.json").read_text())
    assert m["data_dir"] == "…/data" and m["parameters"]["data_dir"] == "…/data"
    nb = nbformat.read(small["pack"] / "notebooks" / "01-data.ipynb", as_version=4)
    assert nb.metadata["papermill"]["parameters"]["work_dir"].startswith("…/.FY2027-Q1.work-")


@pytest.mark.slow
def test_executed_notebooks_carry_the_injected_parameters(small):
    nb = nbformat.read(small["pack"] / "notebooks" / "02-forecast.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert (
        len(injected) == 1
        and "horizon = 15" in injected[0].source
        and "work_dir = " in injected[0].source
    )


@pytest.mark.slow
def test_published_numbers_match_the_library(small):
    pack = small["pack"]
    tables = json.loads((pack / "tables.json").read_text())
    cube = xr.open_dataset(pack / "plan.nc", group="cube").load()
    for c in (
        "segment",
        "region",
        "rep",
        "manager",
        "rep_region",
        "rep_segment",
        "fiscal_quarter",
        "fiscal_year",
    ):
        cube = cube.assign_coords({c: cube[c].astype(object)})
    p = parameters.load(small["params"])
    a = parameters.assumptions(p)
    target = quota.company_target(cube, a)
    assert tables["summary"]["company_target"] == pytest.approx(round(target), abs=1)
    plan = capacity.capacity_plan(cube, a)
    assert tables["summary"]["year_capacity"] == pytest.approx(
        float(plan["capacity"].sum()), rel=1e-9
    )
    base = tables["scenarios"][0]
    assert base["scenario"] == "base" and base["capacity"] == pytest.approx(
        tables["summary"]["year_capacity"]
    )
    by_rep = {r["rep"]: r for r in tables["quotas_by_rep"]}
    q = xr.open_dataset(pack / "plan.nc", group="quota").load()
    for rep, value in zip(q["rep"].values, q["rep_quota"].values, strict=True):
        assert by_rep[str(rep)]["quota_year"] == pytest.approx(float(value))
    assert sum(r["quota_year"] for r in tables["quotas_by_rep"]) == pytest.approx(
        round(target * a.over_assignment), rel=1e-3
    )


@pytest.mark.slow
def test_same_inputs_same_numbers_and_republish(small):
    from revmodel import versions

    first = json.loads((small["pack"] / "tables.json").read_text())
    first_version = json.loads((small["pack"] / "manifest.json").read_text())["plan_version"]
    html = publish.plan(small["params"], out_dir=small["out"])
    second = json.loads((html.parent / "tables.json").read_text())
    assert first == second
    assert not (small["out"] / "FY2027-Q1.prev").exists()
    # Each run is a new write-once version; a cell-level diff of the two finds nothing moved.
    second_version = json.loads((html.parent / "manifest.json").read_text())["plan_version"]
    assert first_version != second_version
    store = small["out"] / "versions"
    kind, a_name = first_version.split("/")
    _, b_name = second_version.split("/")
    a = versions.load_version(store, kind, a_name)
    b = versions.load_version(store, kind, b_name)
    assert set(a.data_vars) == {"forecast", "quota", "capacity"}
    assert float(a["quota"].sum()) > 0
    assert len(versions.diff_versions(a, b)) == 0


@pytest.mark.slow
def test_broken_input_stops_the_plan_before_the_notebooks_and_keeps_the_pack(small):
    # (a notebook failing names the notebook and the cell: test_report.py)
    before = small["html"].read_bytes()
    broken = small["root"] / "broken"
    shutil.copytree(small["data"], broken)
    (broken / "opportunities.csv").write_text("opportunity_id,amount\nx,1\n")
    with pytest.raises(
        DataError, match=r"^opportunities\.csv has no columns close_date, stage \(required\)"
    ):
        # as_of given: the data is not read to settle the period, but once before the notebooks
        as_of = json.loads((small["pack"] / "manifest.json").read_text())["as_of"]
        publish.plan(small["params"], data_dir=broken, out_dir=small["out"], as_of=as_of)
    assert small["html"].read_bytes() == before
    assert not (small["out"] / ".failed" / "FY2027-Q1" / "01-data.ipynb").exists()
    assert not list(small["out"].glob(".FY2027-Q1.*"))


@pytest.mark.slow
def test_kernel_runs_this_interpreter(small):
    import sys

    nb = nbformat.read(small["pack"] / "notebooks" / "01-data.ipynb", as_version=4)
    assert nb.metadata["papermill"]["parameters"]["work_dir"]
    spec = json.loads(
        (config.BUILD_DIR / "jupyter" / "kernels" / publish.KERNEL_NAME / "kernel.json").read_text()
    )
    assert spec["argv"][0] == sys.executable
    assert np.isfinite(
        json.loads((small["pack"] / "tables.json").read_text())["summary"]["quarter_forecast"]
    )


@pytest.mark.slow
def test_accuracy_reads_last_cycles_published_pack(small):
    # FY2026-Q4 was planned with actuals to July, then FY2027-Q1 with actuals to October: the
    # accuracy of FY2026-Q4 must be measured on the forecast the FY2026-Q4 pack published.
    html = small["html"]
    summary = json.loads((html.parent / "tables.json").read_text())["summary"]
    assert summary["last_quarter"] == "FY2026-Q4"
    assert summary["last_quarter_source"] == "published"
    published = publish.published_forecast(small["out"] / "FY2026-Q4")
    months = pd.date_range("2026-08-01", periods=3, freq="MS").values
    total = published["node_mean"].isel(
        node=int(np.flatnonzero(published["level"].values == "total")[0])
    )
    assert summary["last_quarter_forecast"] == pytest.approx(float(total.sel(month=months).sum()))
    assert "The forecast is the one last cycle's pack published." in html.read_text()


@pytest.mark.slow
def test_hostile_names_are_text_in_every_sheet_and_escaped_in_the_page(tmp_path):
    from tests.test_report import HOSTILE, assert_workbook_inert

    tables = sample.generate(reps=12, months=36)
    reps, accounts = tables["reps"], tables["accounts"]
    rep_ids = {r: f"{HOSTILE[i % 7]} {i}" for i, r in enumerate(reps["rep_id"])}
    managers = {m: HOSTILE[i % 7] for i, m in enumerate(sorted(reps["manager"].unique()))}
    regions = {
        g: f"{HOSTILE[(i + 3) % 7]} {i}" for i, g in enumerate(sorted(reps["region"].unique()))
    }
    for frame in tables.values():
        for col, names in (("rep_id", rep_ids), ("owner_rep_id", rep_ids), ("region", regions),
                           ("manager", managers)):  # fmt: skip
            if col in frame:
                frame[col] = frame[col].map(lambda v, n=names: n.get(v, v))
    accounts["account_name"] = [HOSTILE[i % 7] for i in range(len(accounts))]
    data = tmp_path / "data"
    sample.write(tables, data)
    params = tmp_path / "FY2027-Q1.yaml"
    params.write_text(yaml.safe_dump({"cycle": "FY2027-Q1", "data_dir": str(data),
                                      "fiscal_year_start": 11, "horizon": 6,
                                      **NO_BAND_CALIBRATION}))  # fmt: skip
    html = publish.plan(params, out_dir=tmp_path / "reports")
    assert assert_workbook_inert(html.parent / "plan.xlsx") > 500
    wb = openpyxl.load_workbook(html.parent / "plan.xlsx")
    cells = {c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row}
    shown = cells & {formatting.inert_text(v) for v in rep_ids.values()}
    assert len(shown) >= 6 and any(v.startswith("'=") for v in shown), sorted(map(str, cells))[:40]
    page = html.read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.slow
def test_notebooks_without_a_cycle_plan_the_quarter_after_the_data(tmp_path):
    # A company whose fiscal year starts in April, actuals to December 2025: no cycle given,
    # the notebooks plan FY2026-Q4 (January-March 2026), the quarter after the actuals, and
    # the plan year FY2026 grows FY2025 (April 2024 - March 2025), its complete year before.
    tables = sample.generate(reps=12, months=30, end="2025-12")
    data = tmp_path / "data"
    sample.write(tables, data)
    work, out = tmp_path / "work", tmp_path / "executed"
    params = {"data_dir": str(data), "fiscal_year_start": 4, "fiscal_year_naming": "end"}
    publish.run_notebooks(params, work, out, notebooks=("01-data.ipynb", "04-capacity-quota.ipynb"))
    nb = nbformat.read(out / "01-data.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "cycle planned: FY2026-Q4\n" in printed
    ds = publish.load_result(work, "cube")
    assert ds.attrs["as_of"] == "2025-12-01"
    quotas = publish.load_result(work, "quotas")
    months = pd.DatetimeIndex(quotas["month"].values)
    assert (months[0], months[-1], len(months)) == (
        pd.Timestamp("2025-04-01"),
        pd.Timestamp("2026-03-01"),
        12,
    )
    opps = tables["opportunities"]
    won = opps[(opps["stage"] == "won") & opps["close_date"].between("2024-04-01", "2025-03-31")]
    assert float(quotas["target"]) == pytest.approx(won["amount"].sum() * 1.25, abs=0.5)
