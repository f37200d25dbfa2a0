"""The pieces reconcile_cube is made of, each checked on its own, with hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from revmodel import reconcile as rc
from revmodel.errors import ParameterError

MONTHS = pd.date_range("2026-01-01", periods=2, freq="MS")


def cube(values=None, scenario: bool = False) -> xr.DataArray:
    """1 segment x 2 regions x 2 reps x 2 months; r1 sells in EMEA, r2 in NA."""
    v = np.zeros((1, 2, 2, 2))
    v[0, 0, 0] = [10.0, 20.0]
    v[0, 1, 1] = [1.0, 2.0]
    if values is not None:
        v = values
    da = xr.DataArray(
        v,
        dims=("segment", "region", "rep", "month"),
        coords={
            "segment": ["SMB"],
            "region": ["EMEA", "NA"],
            "rep": ["r1", "r2"],
            "month": MONTHS,
            "manager": ("rep", ["M1", "M2"]),
        },
        name="bookings",
        attrs={"units": "USD/month"},
    )
    if scenario:
        da = xr.concat([da, 2 * da], dim=pd.Index(["base", "up"], name="scenario"))
    return da


def test_cube_forecast_lays_months_and_other_dims_out_as_columns():
    da = cube(scenario=True)
    h = rc.hierarchy_from_cube(da.sel(scenario="base"))
    laid = rc._CubeForecast.of(da, h)
    assert laid.extra == ("scenario",)
    assert laid.n_extra == 2
    # month-major columns: (month 1: base, up), (month 2: base, up)
    r1 = int(np.flatnonzero(h.labels() == "rep/segment=r1/SMB/EMEA")[0])
    bottom = laid.bottom_base(h)
    assert bottom[list(h.bottom).index(r1)].tolist() == [10.0, 20.0, 20.0, 40.0]


def test_cube_forecast_counts_what_falls_outside_the_hierarchy():
    h = rc.hierarchy_from_cube(cube())
    v = cube().values.copy()
    v[0, 0, 1] = [5.0, 0.0]  # r2 in EMEA: no history there, so no node
    laid = rc._CubeForecast.of(cube(v), h)
    assert laid.dropped(h) == {"dropped_cells": 1, "dropped_amount": 5.0}
    out, info = rc.reconcile_cube(cube(v), method="bottom_up", hierarchy=h)
    assert (info["dropped_cells"], info["dropped_amount"]) == (1, 5.0)
    assert float(out.sel(region="EMEA", rep="r2").sum()) == 0.0


def test_cube_forecast_rejects_a_hierarchy_of_another_cube():
    big = xr.DataArray(np.ones((1, 2, 3, 2)), dims=("segment", "region", "rep", "month"))
    h = rc.hierarchy_from_cube(
        big.assign_coords(
            segment=["SMB"],
            region=["EMEA", "NA"],
            rep=["r1", "r2", "r3"],
            month=MONTHS,
            manager=("rep", ["M1", "M1", "M2"]),
        )
    )
    with pytest.raises(ParameterError, match="the hierarchy does not match the forecast's"):
        rc._CubeForecast.of(cube(), h)


def test_node_base_checks_the_shape_against_the_hierarchy():
    da = cube()
    h = rc.hierarchy_from_cube(da)
    laid = rc._CubeForecast.of(da, h)
    good = np.arange(h.n_nodes * 2, dtype=float).reshape(h.n_nodes, 2)
    np.testing.assert_array_equal(rc._node_base(good, h, laid, 2), good)
    with pytest.raises(ParameterError, match=f"has 3 nodes but the hierarchy has {h.n_nodes}"):
        rc._node_base(np.zeros((3, 2)), h, laid, 2)
    with pytest.raises(ParameterError, match="has 1 values per node but the forecast has 2"):
        rc._node_base(np.zeros(h.n_nodes), h, laid, 2)
    labelled = xr.DataArray(good[:, ::-1], dims=("node", "month"), coords={"month": MONTHS[::-1]})
    # reindexed to the forecast's months before use
    np.testing.assert_array_equal(rc._node_base(labelled, h, laid, 2), good)


def test_residual_matrix():
    assert rc._residual_matrix(None) is None
    r = xr.DataArray(np.arange(6.0).reshape(3, 2), dims=("t", "node"))
    np.testing.assert_array_equal(rc._residual_matrix(r), [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]])
    with pytest.raises(ParameterError, match="residuals need a 'node' dim"):
        rc._residual_matrix(xr.DataArray(np.zeros((2, 2)), dims=("a", "b")))


def test_method_none_keeps_the_bottom_forecast_and_the_given_node_forecasts():
    da = cube()
    h = rc.hierarchy_from_cube(da)
    nodes = np.full((h.n_nodes, 2), np.nan)
    total = int(np.flatnonzero(h.labels() == "total")[0])
    nodes[total] = [100.0, 200.0]
    out, info = rc.reconcile_cube(da, method="none", node_forecasts=nodes, hierarchy=h)
    xr.testing.assert_equal(out, da)  # the cells as given: "none" reconciles nothing
    got = info["reconciled_nodes"].isel(node=total).values.tolist()
    assert got == [100.0, 200.0]  # the node's own forecast, not the cells' sum (11, 22)
    assert info["filled_nodes"] == h.n_nodes - 1


def test_reconcile_columns_repeats_locks_over_the_other_dims():
    da = cube(scenario=True)
    h = rc.hierarchy_from_cube(da.sel(scenario="base"))
    laid = rc._CubeForecast.of(da, h)
    y_hat = np.asarray(h.S @ laid.bottom_base(h))
    total = int(np.flatnonzero(h.labels() == "total")[0])
    locks = {total: np.array([50.0, np.nan])}
    y, _ = rc._reconcile_columns(
        rc.reconciler("ols", nonnegative=True), y_hat, h, None, locks, laid
    )
    # month 1 locked at 50 in both scenarios; month 2 free: the base sums (22, 44)
    np.testing.assert_allclose(y[total], [50.0, 50.0, 22.0, 44.0])
    np.testing.assert_allclose(y[h.bottom].sum(axis=0), y[total])


def test_scores_stay_finite_when_the_shock_weights_round_above_one():
    # weights scaled to sum to 1 that sum to 1 + 2e-16 in floating point: the
    # independent part's weight is 0, not the square root of a negative number
    h = rc.hierarchy_from_cube(cube())
    levels = ("total", "region", "segment")
    column = np.array([0.46335848984461653, 0.3373961461805628, 0.1992453639748208])
    assert column.sum() > 1
    shocks = rc.SharedShocks(
        levels=levels,
        kappa=np.stack([column, column], axis=1),
        groups=np.stack([rc._groups(h, lv) for lv in levels]),
    )
    n, m = h.S.shape
    cov = rc.LowRankCovariance(d=np.ones(m), U=np.zeros((m, 1)), shrinkage=0.0)  # the bottoms'
    quantiles = np.broadcast_to(np.array([9.0, 10.0, 11.0]), (n, 2, 3)).copy()
    scores = rc._scores(cov, shocks, quantiles, (0.1, 0.5, 0.9), h, np.random.default_rng(1), 4000)
    assert scores.shape == (n, 2, 4000) and np.all(np.isfinite(scores))
    # a bottom score is the sum of its shared shocks alone: standard normal
    bottom = scores[h.bottom]
    np.testing.assert_allclose(bottom.std(axis=-1), 1.0, atol=0.05)


def _many_cells(regions: int = 3, reps: int = 4) -> rc.Hierarchy:
    """One segment, ``regions`` regions of ``reps`` reps each, a manager per region."""
    m = regions * reps
    cells = np.array([[0, r, r * reps + i] for r in range(regions) for i in range(reps)])
    return rc.hierarchy_from_cells(
        cells, np.array(["SMB"]), np.array([f"R{r}" for r in range(regions)]),
        np.array([f"r{k}" for k in range(m)]), np.array([f"M{k // reps}" for k in range(m)]),
    )  # fmt: skip


def test_an_aggregates_score_is_its_bottoms_scores_summed_by_spread_and_standardised():
    h = _many_cells()
    rng = np.random.default_rng(5)
    m, n = h.n_bottom, h.n_nodes
    spread = rng.uniform(1.0, 9.0, (m, 2))
    q = np.zeros((n, 2, 3))
    q[h.bottom] = np.stack([-spread / 2, 0 * spread, spread / 2], axis=-1)
    S = h.S.toarray()
    q[:, :, 2], q[:, :, 0] = S @ q[h.bottom, :, 2], S @ q[h.bottom, :, 0]
    cov = rc.shrunk_covariance_lowrank(rng.normal(size=(m, 30)))
    shocks = rc.shared_shocks(cov, q, (0.1, 0.5, 0.9), h)
    z = rc._scores(cov, shocks, q, (0.1, 0.5, 0.9), h, np.random.default_rng(1), 3000)
    summed = np.einsum("nb,bt,btk->ntk", S, spread, z[h.bottom])
    expected = summed / summed.std(axis=-1, keepdims=True)
    agg = np.setdiff1d(np.arange(n), h.bottom)
    np.testing.assert_allclose(z[agg], expected[agg], rtol=0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=-1), 1.0, atol=0.05)  # the bottoms' too


def test_bottoms_without_a_spread_weigh_alike_in_their_aggregates_score():
    """A sparse rep's p10 = p90: spreads of 0 and one of 1e-13 (a rounding error) in a region.
    Each weighs as a billionth of the widest spread, so the region's score is the four
    scores summed alike, not the one with the rounding error."""
    h = _many_cells()
    m, n = h.n_bottom, h.n_nodes
    q = np.full((n, 1, 3), 5.0)
    q[h.bottom[4:], 0] = [[4.0, 5.0, 6.0]] * (m - 4)  # the other regions have a spread
    q[h.bottom[0], 0, 2] += 1e-13  # region R0: r0's p90 above its p10 by a rounding error
    cov = rc.LowRankCovariance(d=np.ones(m), U=np.zeros((m, 1)), shrinkage=0.0)
    shocks = rc.SharedShocks((), np.zeros((0, 1)), np.zeros((0, m), dtype=int))
    z = rc._scores(cov, shocks, q, (0.1, 0.5, 0.9), h, np.random.default_rng(2), 4000)
    region = z[h.index("region", "R0"), 0]
    own = z[h.bottom[:4], 0]
    alike = own.sum(axis=0) / own.sum(axis=0).std()
    np.testing.assert_allclose(region, alike, rtol=0, atol=1e-6)
    assert np.corrcoef(region, own[0])[0, 1] < 0.6  # r0 is one of four, not the region


def test_offsetting_parts_project_out_each_nodes_spread_weighted_sum():
    # node 7 has two bottoms (3 and 4: Q = 25), node 9 one (nothing to offset it against)
    projected, sd, Q = rc._offsetting_parts(np.array([3.0, 4.0, 5.0]), np.array([7, 7, 9]))
    assert projected.tolist() == [True, True, False]
    np.testing.assert_allclose(sd, [np.sqrt(1 - 9 / 25), np.sqrt(1 - 16 / 25), 1.0])
    # a bottom carrying all of its node's spread, beside one without: none
    projected, sd, _ = rc._offsetting_parts(np.array([2.0, 0.0]), np.array([1, 1]))
    assert projected.tolist() == [False, False] and sd.tolist() == [1.0, 1.0]


def test_offsetting_shocks_cancel_over_each_node_and_keep_every_bottom_standard():
    """Region R0's bottoms alike in spread: their offsetting shock sums to 0 over R0 exactly.
    The others' spreads differ: each bottom's part is scaled to unit variance, so their sum
    keeps the variance the weights' fit counts on, sum (a/sd)^2 - (sum a^2/sd)^2 / Q."""
    h = _many_cells(regions=3, reps=5)
    m, n = h.n_bottom, h.n_nodes
    rng = np.random.default_rng(7)
    spread = rng.uniform(1.0, 9.0, (m, 2))
    spread[:5] = 4.0  # R0's five bottoms
    q = np.zeros((n, 2, 3))
    q[h.bottom] = np.stack([-spread / 2, 0 * spread, spread / 2], axis=-1)
    shocks = rc.SharedShocks(
        levels=("region",), kappa=np.zeros((1, 2)), groups=np.stack([rc._groups(h, "region")]),
        narrow=np.ones((1, 2)),
    )  # fmt: skip
    cov = rc.LowRankCovariance(d=np.ones(m), U=np.zeros((m, 1)), shrinkage=0.0)
    z = rc._scores(cov, shocks, q, (0.1, 0.5, 0.9), h, np.random.default_rng(3), 20000)
    bottom = z[h.bottom]
    np.testing.assert_allclose(bottom.std(axis=-1), 1.0, atol=0.03)
    S = h.S.toarray()
    for r in range(3):
        row = S[h.index("region", f"R{r}")]
        weighted = np.einsum("b,bt,btk->tk", row, spread, bottom)
        inside = row > 0
        for t in range(2):
            a = spread[inside, t]
            Q = (a**2).sum()
            sd = np.sqrt(1 - a**2 / Q)
            expected = ((a / sd) ** 2).sum() - ((a**2 / sd).sum()) ** 2 / Q
            if r == 0:
                assert expected == pytest.approx(0.0, abs=1e-9)
                np.testing.assert_allclose(weighted[t], 0.0, atol=1e-9)
            else:
                assert expected < 0.2 * Q  # far narrower than independent bottoms' Q
                assert weighted[t].var() == pytest.approx(expected, rel=0.05)


def test_offsetting_shocks_narrow_the_bottoms_sum_to_each_aggregates_own_spread():
    """Bottoms independent in their residuals, every aggregate's own band half as wide as
    their independent sum (reconciled errors that offset one another): the shared shocks
    cannot narrow a sum, the offsetting ones do, and the bottoms' own bands stay."""
    from tests.test_reconcile import normal_quantiles

    h = _many_cells(regions=4, reps=8)
    rng = np.random.default_rng(4)
    S = h.S.toarray()
    sd_b = rng.uniform(50.0, 150.0, h.n_bottom)
    sd = 0.5 * np.sqrt(S @ sd_b**2)
    sd[h.bottom] = sd_b
    sd[h.tags["rep"]] = sd_b  # one cell per rep: the rep is its bottom
    q, levels = normal_quantiles(h, sd)
    E = rng.normal(size=(h.n_nodes, 60))
    cov = rc.shrunk_covariance_lowrank(E[h.bottom])
    shocks = rc.shared_shocks(cov, q, levels, h)
    assert shocks.kappa.max() < 0.01 and shocks.narrow.sum(0) == pytest.approx(
        [0.75, 0.75], abs=0.05
    )
    res = rc.sample_reconciled(
        q, levels, h, "bottom_up", E, nonnegative=False,
        settings=rc.SampleSettings(n_samples=4000, seed=2),
    )  # fmt: skip
    width = res.quantiles[:, :, 2] - res.quantiles[:, :, 0]
    own = q[:, :, 2] - q[:, :, 0]
    np.testing.assert_allclose(width, own, rtol=0.06)
    assert res.info["offsetting_shocks"]["region"][0] > 0
