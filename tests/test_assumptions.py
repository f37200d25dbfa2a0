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
        ({"target_growth": "high"}, "plan.yaml: target_growth must be a number, got 'high'."),
        ({"backfill": "yes"}, "plan.yaml: backfill must be true or false, got 'yes'."),
        ({"churn_rate": 1.5}, "churn_rate must be in [0, 1), got 1.5."),
        ({"attainment_tolerance": 0}, "attainment_tolerance must be in (0, 1], got 0.0."),
        ({"ramp_months": {"SMB": 40}}, "ramp_months.SMB must be between 0 and 36, got 40."),
        (
            {"allocation_basis": "vibes"},
            "allocation_basis must be one of history, potential, capacity, blend, got 'vibes'.",
        ),
        (
            {"hires": [{"segment": "SMB", "region": "EMEA"}]},
            "plan.yaml: hires[0] is missing 'start_month'.",
        ),
        (
            {"hires": [{"segment": "SMB", "region": "EMEA", "start_month": "soon"}]},
            "hires: start_month 'soon' is not a month; use YYYY-MM.",
        ),
        (
            {
                "hires": [
                    {"segment": "SMB", "region": "EMEA", "start_month": "2027-01", "count": -1}
                ]
            },
            "hires: count must be >= 0, got -1 for SMB/EMEA.",
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
