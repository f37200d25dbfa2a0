"""Assumption sets: typed, validated, loadable from YAML with messages naming the key."""

from __future__ import annotations

import pytest

from revmodel.assumptions import Assumptions, Hire, assumptions_from_dict, load_assumptions
from revmodel.errors import ParameterError


def test_defaults_are_a_sensible_saas_plan():
    a = Assumptions()
    assert a.target_growth == 0.25
    assert a.over_assignment == 1.10
    assert a.attainment_tolerance == 0.9
    assert a.ramp_months == {"SMB": 3, "Mid-Market": 5, "Enterprise": 7}
    assert a.churn_rate is None  # measured from history


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "stretch.yaml"
    path.write_text(
        "name: stretch\ntarget_growth: 0.35\nchurn_rate: 0.05\nover_assignment: 1.15\n"
        "ramp_months: {SMB: 2, Enterprise: 9}\n"
        "hires:\n  - {segment: SMB, region: EMEA, start_month: 2027-03, count: 4}\n"
    )
    a = load_assumptions(path)
    assert a.name == "stretch"
    assert a.target_growth == 0.35
    assert a.churn_rate == 0.05
    assert a.ramp_months == {"SMB": 2, "Enterprise": 9}
    assert a.hires == (Hire("SMB", "EMEA", "2027-03", 4),)
    assert assumptions_from_dict(a.to_dict()) == a


def test_with_changes_validates_again():
    a = Assumptions()
    assert a.with_changes(target_growth=0.3).target_growth == 0.3
    assert a.target_growth == 0.25
    with pytest.raises(
        ParameterError, match=r"^over_assignment must be between 0.5 and 2, got 3.0\.$"
    ):
        a.with_changes(over_assignment=3.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"target_grwoth": 0.2}, "plan.yaml: unknown key 'target_grwoth'; known keys are "),
        (
            {"target_growth": "high"},
            "plan.yaml: target_growth must be a number (e.g. 0.25 or '25%'), got 'high'.",
        ),
        ({"backfill": "yes"}, "plan.yaml: backfill must be true or false, got 'yes'."),
        ({"churn_rate": 1.5}, "plan.yaml: churn_rate must be in [0, 1), got 1.5."),
        (
            {"attainment_tolerance": 0},
            "plan.yaml: attainment_tolerance must be in (0, 1], got 0.0.",
        ),
        (
            {"ramp_months": {"SMB": 40}},
            "plan.yaml: ramp_months.SMB must be between 0 and 36, got 40.",
        ),
        (
            {"allocation_basis": "vibes"},
            "plan.yaml: allocation_basis must be one of history, potential, capacity, blend, got 'vibes'.",
        ),
        (
            {"hires": [{"segment": "SMB", "region": "EMEA"}]},
            "plan.yaml: hires[0] is missing 'start_month'.",
        ),
        (
            {"hires": [{"segment": "SMB", "region": "EMEA", "start_month": "soon"}]},
            "plan.yaml: hires[0]: start_month 'soon' is not a month; use YYYY-MM.",
        ),
        (
            {
                "hires": [
                    {"segment": "SMB", "region": "EMEA", "start_month": "2027-01", "count": -1}
                ]
            },
            "plan.yaml: hires[0]: count must be between 0 and 10,000, got -1 for SMB/EMEA.",
        ),
    ],
)
def test_bad_assumptions_name_the_key(data, message):
    with pytest.raises(ParameterError) as err:
        assumptions_from_dict(data, where="plan.yaml")
    assert str(err.value).startswith(message)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParameterError, match=r"nope.yaml: no such assumptions file\."):
        load_assumptions(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- readable errors


@pytest.mark.parametrize(
    ("given", "expected"), [("25%", 0.25), (" 12.5 % ", 0.125), ("0.3", 0.3), (0.4, 0.4)]
)
def test_target_growth_given_as_text_is_read(given, expected):
    assert Assumptions(target_growth=given).target_growth == pytest.approx(expected)


def test_a_number_that_is_not_one_is_refused_by_name():
    with pytest.raises(ParameterError) as err:
        Assumptions(target_growth="a quarter")
    assert str(err.value) == (
        "Assumptions: target_growth must be a number (e.g. 0.25 or '25%'), got 'a quarter'."
    )
    with pytest.raises(ParameterError, match=r"over_assignment must be a number \(e.g. 1.10\)"):
        Assumptions(over_assignment=[1.1])


def test_a_typo_in_a_segment_name_is_refused_naming_the_segments():
    from revmodel.assumptions import check_segments

    segments = ["SMB", "Mid-Market", "Enterprise"]
    with pytest.raises(ParameterError) as err:
        check_segments(Assumptions(ramp_months={"SMB": 3, "Enterprize": 7}), segments)
    assert str(err.value) == (
        "ramp_months: unknown segment 'Enterprize'; the segments are SMB, Mid-Market, Enterprise."
    )
    with pytest.raises(ParameterError, match="rep_attrition: unknown segment 'smb'"):
        check_segments(Assumptions(rep_attrition={"smb": 0.2}), segments)
    # The package defaults are fallbacks for data with other segment names.
    assert check_segments(Assumptions(), ["Small", "Large"]) == Assumptions()


def test_capacity_plan_refuses_a_segment_typo(small_company):
    from revmodel import capacity
    from revmodel.cube import build_cube

    tables, _ = small_company
    ds = build_cube(tables)
    a = Assumptions(plan_year="FY2027", ramp_months={"SMB": 3, "Mid Market": 5, "Enterprise": 7})
    with pytest.raises(ParameterError, match="ramp_months: unknown segment 'Mid Market'"):
        capacity.capacity_plan(ds, a)
