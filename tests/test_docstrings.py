"""The analyst-facing API documents itself: every public name has an Examples section that runs.

The public modules are the ones listed under "Public API" in architecture.md; their public
names are their ``__all__``. Every function and class there, and every method of the ``ds.rev``
accessor, has a numpy-style docstring whose Examples run here as doctests against a small
sample company (``tables`` and its cube ``ds``, built once).
"""

from __future__ import annotations

import doctest
import functools
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from revmodel import cube as rcube
from revmodel import kpi, retention

ROOT = Path(__file__).resolve().parents[1]


def public_modules(text: str | None = None) -> list[str]:
    """The modules of the "Public API" table of architecture.md, in its order."""
    text = text if text is not None else (ROOT / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    found = []
    for line in section.splitlines():
        m = re.match(r"\|\s*`([\w.]+)`\s*\|", line)
        if m:
            found.append(m.group(1))
    return found


MODULES = public_modules()


def public_objects(name: str, methods: bool = True) -> list[tuple[str, Any]]:
    """(qualified name, object) of every function and class a public module exports.

    With ``methods``, the ``ds.rev`` accessor's methods too (one by one).
    """
    module = importlib.import_module(f"revmodel.{name}")
    out = []
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            out.append((f"revmodel.{name}.{attr}", obj))
    if name == "accessor" and methods:
        from revmodel.accessor import RevAccessor

        for attr, member in vars(RevAccessor).items():
            if not attr.startswith("_") and callable(member):
                out.append((f"ds.rev.{attr}", member))
    return out


@functools.cache
def example_globals() -> dict[str, Any]:
    """What every example may use: numpy, pandas, xarray and a small sample company."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    import revmodel
    from revmodel import cube, sample

    tables = sample.generate(reps=16, months=24)
    ds = cube.build_cube(tables, fiscal_year_start=11)
    return {"np": np, "pd": pd, "xr": xr, "revmodel": revmodel, "tables": tables, "ds": ds}


def examples_section(doc: str) -> str:
    m = re.search(r"^Examples\n-{8}\n(.*?)(?=^\S[^\n]*\n-{3,}\n|\Z)", doc, re.S | re.M)
    return m.group(1) if m else ""


def test_public_modules_listed():
    assert {"accessor", "cube", "calendar", "retention", "kpi"} <= set(MODULES)
    assert len(MODULES) == len(set(MODULES)), "a module is listed twice"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_has_examples(name):
    module = importlib.import_module(f"revmodel.{name}")
    assert isinstance(getattr(module, "__all__", None), list), f"revmodel.{name} has no __all__"
    missing = [a for a in module.__all__ if not hasattr(module, a)]
    assert not missing, f"revmodel.{name}.__all__ names what the module lacks: {missing}"
    problems = []
    for qualname, obj in public_objects(name):
        doc = inspect.getdoc(obj) or ""
        section = examples_section(doc)
        if ">>>" not in section:
            problems.append(f"{qualname}: no Examples section with a >>> example")
            continue
        if "+SKIP" in section:
            problems.append(f"{qualname}: an example is skipped (+SKIP); make it run")
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            params = [p for p in sig.parameters if p != "self"]
            if params and "Parameters\n----------" not in doc:
                problems.append(f"{qualname}: no Parameters section")
            if sig.return_annotation not in (None, "None") and not re.search(
                r"^(Returns\n-{7}|Yields\n-{6})", doc, re.M
            ):
                problems.append(f"{qualname}: no Returns section")
        parsed = doctest.DocTestParser().get_examples(section)
        shown = [e.want.strip() for e in parsed if e.want.strip()]
        if not any(w.replace("...", "").strip() for w in shown):
            problems.append(f"{qualname}: no example shows a value (only statements or '...')")
    assert not problems, "\n".join(problems)


def test_examples_section_found():
    doc = "Sum.\n\nExamples\n--------\n>>> 1 + 1\n2\n\nNotes\n-----\nx\n"
    assert examples_section(doc).strip() == ">>> 1 + 1\n2"
    assert examples_section("Sum.\n\nReturns\n-------\nint\n") == ""


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(f"revmodel.{name}")
    finder = doctest.DocTestFinder(recurse=True, exclude_empty=True)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    base = dict(vars(module)) | example_globals()
    tests = []
    for qualname, obj in [(f"revmodel.{name}", module), *public_objects(name, methods=False)]:
        recurse = obj is not module  # a class's own methods, not the whole module
        for test in finder.find(obj, qualname, module=module, globs={}):
            if recurse or test.name == qualname:
                tests.append(test)
    assert tests, f"revmodel.{name}: no examples found"
    seen = set()
    failures = []
    for test in tests:
        if test.name in seen:
            continue
        seen.add(test.name)
        test.globs = dict(base)
        out: list[str] = []
        result = runner.run(test, out=out.append, clear_globs=True)
        if result.failed:
            failures.append("".join(out))
    assert not failures, "\n".join(failures)


# Readable errors an analyst meets first: wrong level names, wrong types, unknown segments.


@pytest.mark.parametrize(
    "call",
    [
        lambda ds, dims: retention.churn_rate(ds, dims),
        lambda ds, dims: retention.arr_bridge(ds, dims, "fiscal_year"),
        lambda ds, dims: retention.grr(ds, dims, "fiscal_year"),
        lambda ds, dims: retention.logo_churn(ds, example_globals()["tables"], dims, "fiscal_year"),
        lambda ds, dims: retention.cohorts(ds, example_globals()["tables"], dims, max_months=3),
        lambda ds, dims: kpi.compute(ds, "win_rate", dims=dims, period="fiscal_year"),
    ],
)
def test_module_functions_take_one_level_as_a_string(call):
    # "region" is one level, never the levels 'r', 'e', 'g', ...
    ds = example_globals()["ds"]
    xr.testing.assert_identical(call(ds, "region"), call(ds, ("region",)))
    assert "region" in call(ds, "region").dims


def test_rollup_takes_one_level_as_a_string():
    ds = example_globals()["ds"]
    one = ds.rev.rollup("region", period="fiscal_quarter")
    xr.testing.assert_identical(one, ds.rev.rollup(("region",), period="fiscal_quarter"))
    assert one["bookings"].dims == ("region", "fiscal_quarter")
    assert ds.rev.churn_rate("segment").dims == ("segment",)


LEVELS = "segment, region, rep, manager, rep_region, rep_segment"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda ds: ds.rev.rollup("regoin"),
            f"rollup: unknown level 'regoin'; use any of {LEVELS}.",
        ),
        (
            lambda ds: ds.rev.rollup(("region", "Manager")),
            f"rollup: unknown level 'Manager'; use any of {LEVELS}.",
        ),
        (
            lambda ds: ds.rev.rollup("region", period="quarter"),
            "rollup: unknown period 'quarter'; use one of month, fiscal_quarter, fiscal_year.",
        ),
        (
            lambda ds: ds.rev.rollup(3),
            "levels must be a level name or a tuple of them, e.g. 'region' or "
            f"('region', 'segment'), got 3; the levels are {LEVELS}.",
        ),
        (
            lambda ds: ds.rev.churn_rate({"region": 1}),
            "levels must be a level name or a tuple of them, e.g. 'region' or "
            f"('region', 'segment'), got {{'region': 1}}; the levels are {LEVELS}.",
        ),
        (
            lambda ds: ds.rev.arr_bridge("segmnet"),
            f"rollup: unknown level 'segmnet'; use any of {LEVELS}.",
        ),
        (
            lambda ds: ds.rev.kpis("arr", dims="teritory"),
            f"rollup: unknown level 'teritory'; use any of {LEVELS}.",
        ),
        (
            lambda ds: ds.rev.capacity({"plan_year": "FY2027"}),
            "assumptions must be an Assumptions, got dict (Assumptions(**mapping) builds one "
            'from a mapping); e.g. Assumptions(plan_year="FY2027").',
        ),
        (
            lambda ds: ds.rev.quotas("FY2027"),
            'assumptions must be an Assumptions, got str; e.g. Assumptions(plan_year="FY2027").',
        ),
    ],
)
def test_wrong_levels_and_types_read_clearly(call, message):
    from revmodel.errors import ParameterError

    with pytest.raises(ParameterError) as err:
        call(example_globals()["ds"])
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"target_growth": "a quarter"},
            "Assumptions: target_growth must be a number (e.g. 0.25 or '25%'), got 'a quarter'.",
        ),
        (
            {"target_growth": 25},
            "target_growth must be between -0.9 and 5, got 25.0 (a ratio: 0.25 for 25%).",
        ),
        (
            {"over_assignment": [1.1]},
            "Assumptions: over_assignment must be a number (e.g. 1.10), got [1.1].",
        ),
        (
            {"plan_year": 2027},
            "Assumptions: plan_year must be a fiscal year like FY2027, got 2027 (write 'FY2027').",
        ),
        (
            {"plan_year": "2027"},
            "Assumptions: plan_year must be a fiscal year like FY2027, got '2027'.",
        ),
        (
            {"ramp_months": 3},
            "Assumptions: ramp_months must be a mapping of segment to number, got 3.",
        ),
        (
            {"rep_attrition": {"SMB": "high"}},
            "Assumptions: rep_attrition must be a mapping of segment to number, got {'SMB': 'high'}.",
        ),
        (
            {"backfill": "no"},
            "Assumptions: backfill must be true or false, got 'no'.",
        ),
        (
            {"backfill_lag_months": 1.5},
            "Assumptions: backfill_lag_months must be a whole number of months, got 1.5.",
        ),
        (
            {"hires": "two in EMEA"},
            "Assumptions: hires must be a list of {segment, region, start_month, count}, "
            "got 'two in EMEA'.",
        ),
        (
            {"targt_growth": 0.3},
            "Assumptions: unknown assumption 'targt_growth'; did you mean 'target_growth'? "
            "the assumptions are name, plan_year, target_growth, target_amount, churn_rate, "
            "win_rate_change, ramp_months, rep_attrition, backfill_lag_months, backfill, hires, "
            "over_assignment, productivity, productivity_change, attainment_tolerance, "
            "allocation_basis.",
        ),
    ],
)
def test_wrong_assumption_types_name_the_field(kwargs, message):
    from revmodel.assumptions import Assumptions
    from revmodel.errors import ParameterError

    with pytest.raises(ParameterError) as err:
        Assumptions(**kwargs)
    assert str(err.value) == message


def test_assumptions_read_percent_text_and_hire_mappings():
    from revmodel.assumptions import Assumptions, Hire

    a = Assumptions(
        target_growth="25%", hires=[{"segment": "SMB", "region": "EMEA", "start_month": "2027-02"}]
    )
    assert a.target_growth == 0.25
    assert a.hires == (Hire("SMB", "EMEA", "2027-02", 1),)
    assert a.with_changes(hires=[Hire("SMB", "EMEA", "2027-03", 2)]).hires[0].count == 2


@pytest.mark.parametrize("setting", ["ramp_months", "rep_attrition", "productivity"])
def test_unknown_segment_lists_the_known_ones(setting):
    from revmodel import capacity, quota
    from revmodel.assumptions import Assumptions
    from revmodel.errors import ParameterError

    ds = example_globals()["ds"]
    value = {"Entreprise": 7} if setting == "ramp_months" else {"Entreprise": 0.1}
    a = Assumptions(plan_year="FY2027", **{setting: value})
    message = (
        f"{setting}: unknown segment 'Entreprise'; the segments are SMB, Mid-Market, Enterprise."
    )
    for plan in (capacity.capacity_plan, quota.top_down, lambda d, x: d.rev.capacity(x)):
        with pytest.raises(ParameterError) as err:
            plan(ds, a)
        assert str(err.value) == message


@pytest.mark.parametrize(
    ("hire", "message"),
    [
        (
            ("Entreprise", "North America East"),
            "hires[0]: segment 'Entreprise' is not in the cube (known: SMB, Mid-Market, "
            "Enterprise); fix the hire's segment.",
        ),
        (
            ("SMB", "EMEA"),
            "hires[0]: region 'EMEA' is not in the cube (known: North America East, "
            "North America West); fix the hire's region.",
        ),
    ],
)
def test_unknown_hire_segment_or_region_lists_the_known_ones(hire, message):
    from revmodel import scenario
    from revmodel.assumptions import Assumptions, Hire
    from revmodel.errors import ParameterError

    ds = example_globals()["ds"]
    a = Assumptions(plan_year="FY2027", hires=(Hire(*hire, "2027-01", 2),))
    for plan in (lambda: ds.rev.capacity(a), lambda: scenario.plan(scenario.prepare(ds), a)):
        with pytest.raises(ParameterError) as err:
            plan()
        assert str(err.value) == message


def test_unknown_kpi_lists_the_catalogue():
    from revmodel import kpi
    from revmodel.errors import ParameterError

    with pytest.raises(ParameterError) as err:
        example_globals()["ds"].rev.kpis(["arr", "winrate"])
    assert str(err.value) == (f"unknown KPI 'winrate'; known KPIs are {', '.join(kpi.KPIS)}.")
    assert "win_rate" in kpi.KPIS


@pytest.mark.parametrize(("value", "ratio"), [("30%", 0.3), (" 12.5 % ", 0.125), ("0.25", 0.25)])
def test_percent_text_is_one_number_in_a_plan_file_and_in_assumptions(value, ratio):
    """One rule (assumptions.read_number): "30%" is 0.3 whether typed to Assumptions or in a file."""
    from revmodel import parameters
    from revmodel.assumptions import Assumptions

    checked = parameters.check({"target_growth": value}, where="plan.yaml", require=False)
    assert checked["target_growth"] == pytest.approx(ratio)
    assert parameters.assumptions({"cycle": "FY2027-Q1", **checked}).target_growth == (
        pytest.approx(ratio)
    )
    assert Assumptions(target_growth=value).target_growth == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a quarter", "must be a number (e.g. 0.25 or '25%'), got 'a quarter'."),
        ("2500%", "must be between -0.9 and 5, got 25.0 (a ratio: 0.25 for 25%)."),
    ],
)
def test_bad_target_growth_text_is_refused_alike_in_a_plan_file_and_in_assumptions(value, why):
    from revmodel import parameters
    from revmodel.assumptions import Assumptions
    from revmodel.errors import ParameterError

    with pytest.raises(ParameterError) as in_code:
        Assumptions(target_growth=value)
    with pytest.raises(ParameterError) as in_file:
        parameters.check(
            {"cycle": "FY2027-Q1", "data_dir": ".", "target_growth": value}, where="plan.yaml"
        )
    prefix = "Assumptions: " if "number" in why else ""
    assert str(in_code.value) == f"{prefix}target_growth {why}"
    assert str(in_file.value) == f"plan.yaml: target_growth {why}"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda t: rcube.rollup(t["opportunities"], "region"),
            "rollup: expected the revenue cube (an xarray Dataset) or one of its measures, "
            "got DataFrame; build it with revmodel.cube.build_cube(tables).",
        ),
        (
            lambda t: retention.arr_bridge(t),
            "retention: expected the revenue cube (an xarray Dataset), got dict; "
            "build it with revmodel.cube.build_cube(tables).",
        ),
        (
            lambda t: kpi.compute("cube.nc"),
            "kpi.compute: expected the revenue cube (an xarray Dataset), got str; "
            "build it with revmodel.cube.build_cube(tables).",
        ),
    ],
)
def test_tables_or_a_path_instead_of_the_cube_read_clearly(call, message):
    from revmodel.errors import ParameterError

    with pytest.raises(ParameterError) as err:
        call(example_globals()["tables"])
    assert str(err.value) == message


def test_assumptions_take_numpy_numbers_from_a_dataframe():
    # Values read from a DataFrame are numpy scalars: they are numbers, not wrong types.
    import numpy as np

    from revmodel.assumptions import Assumptions

    a = Assumptions(
        ramp_months={"SMB": np.int64(3)},
        backfill_lag_months=np.int64(2),
        backfill=np.bool_(False),
        target_growth=np.float64(0.2),
        productivity={"SMB": np.float64(1.2e6)},
    )
    assert (a.ramp_months, a.backfill_lag_months, a.backfill) == ({"SMB": 3}, 2, False)
    assert type(a.backfill_lag_months) is int and type(a.backfill) is bool
    assert (a.target_growth, a.productivity) == (0.2, {"SMB": 1.2e6})
