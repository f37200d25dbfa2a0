"""Hierarchical reconciliation: coherence, exact locks, bounds, hand-computed answers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import lsq_linear, minimize

from revmodel import reconcile as rc
from revmodel.errors import DataError, InfeasibleError, ParameterError
from tests.test_reconcile_lowrank import organisation

SEGMENTS = ["SMB", "ENT"]
REGIONS = ["EMEA", "NA"]
REPS = ["r1", "r2", "r3", "r4"]
MANAGERS = ["M1", "M1", "M2", "M2"]
REP_REGION = [0, 0, 1, 1]
MONTHS = pd.date_range("2023-02-01", periods=36, freq="MS")


def tiny_cube(seed: int = 1) -> xr.DataArray:
    """2 segments x 2 regions x 4 reps x 36 months; each rep sells in one region; r2 has no ENT."""
    rng = np.random.default_rng(seed)
    data = np.zeros((2, 2, 4, 36))
    for k in range(4):
        for s in range(2):
            data[s, REP_REGION[k], k] = rng.gamma(2.0, 1000.0, 36)
    data[1, 0, 1] = 0.0
    return xr.DataArray(
        data,
        dims=("segment", "region", "rep", "month"),
        coords={
            "segment": SEGMENTS,
            "region": REGIONS,
            "rep": REPS,
            "month": MONTHS,
            "manager": ("rep", MANAGERS),
            "rep_region": ("rep", [REGIONS[i] for i in REP_REGION]),
        },
        name="bookings",
        attrs={"units": "USD/month", "long_name": "bookings"},
    )


@pytest.fixture(scope="module")
def hierarchy() -> rc.Hierarchy:
    return rc.hierarchy_from_cube(tiny_cube())


def coherent_base(h: rc.Hierarchy, horizon: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rc.aggregate(h, rng.gamma(2.0, 1000.0, (h.n_bottom, horizon)))


def noisy_base(h: rc.Hierarchy, horizon: int = 6, seed: int = 0, sd: float = 800.0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    return coherent_base(h, horizon, seed) + rng.normal(0.0, sd, (h.n_nodes, horizon))


def residuals_for(h: rc.Hierarchy, T: int = 30, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e_bottom = rng.normal(0.0, 300.0, (h.n_bottom, T))
    return rc.aggregate(h, e_bottom) + rng.normal(0.0, 50.0, (h.n_nodes, T))


def assert_coherent(h: rc.Hierarchy, y: np.ndarray, rtol: float = 1e-6) -> None:
    implied = h.S @ y[h.bottom]
    scale = np.maximum(np.abs(y).max(), 1.0)
    np.testing.assert_allclose(implied, y, rtol=0, atol=rtol * scale)


RECONCILERS = {
    "bottom_up": lambda: rc.BottomUp(),
    "top_down": lambda: rc.TopDown(),
    "ols": lambda: rc.MinTrace("ols"),
    "wls_struct": lambda: rc.MinTrace("wls_struct"),
    "wls_var": lambda: rc.MinTrace("wls_var"),
    "mint_shrink": lambda: rc.MinTrace("mint_shrink"),
}


# ------------------------------------------------------------------ hierarchy


def test_hierarchy_skips_empty_cells_and_counts_levels(hierarchy):
    h = hierarchy
    assert h.n_bottom == 7  # 4 reps x 2 segments, minus r2 in ENT
    counts = {level: len(idx) for level, idx in h.tags.items()}
    assert counts == {
        "total": 1,
        "region": 2,
        "segment": 2,
        "region/segment": 4,
        "manager": 2,
        "manager/segment": 4,
        "rep": 4,
        "rep/segment": 7,
    }
    assert h.n_nodes == 26
    assert sp.issparse(h.S) and h.S.format == "csr"
    np.testing.assert_array_equal(h.S[h.bottom].toarray(), np.eye(7))
    assert h.S[h.tags["total"][0]].sum() == 7
    row = h.nodes.iloc[h.index("rep", "r3")]
    assert row.to_dict() == {
        "level": "rep",
        "segment": "*",
        "region": "NA",
        "manager": "M2",
        "rep": "r3",
    }
    assert h.label(h.index("region/segment", ("EMEA", "SMB"))) == "region/segment=EMEA/SMB"
    assert h.label(h.index("total")) == "total"


def test_hierarchy_index_lookup_by_prefix_and_dict(hierarchy):
    h = hierarchy
    i = h.index("rep/segment", ("r1", "ENT"))
    assert i == h.index("rep/segment", {"rep": "r1", "segment": "ENT", "region": "EMEA"})
    assert h.nodes.iloc[i][["segment", "region", "rep"]].tolist() == ["ENT", "EMEA", "r1"]
    with pytest.raises(ParameterError, match=r"no node manager=\{'manager': 'M9'\}"):
        h.index("manager", "M9")
    with pytest.raises(ParameterError, match=r"unknown hierarchy level 'team'"):
        h.index("team", "x")
    with pytest.raises(ParameterError, match=r"names 2 nodes"):
        h.index("rep/segment", ("r1",))


def test_hierarchy_from_dataset_with_mask_and_errors():
    da = tiny_cube()
    ds = xr.Dataset({"bookings": da})
    mask = xr.zeros_like(da.isel(month=0), dtype=bool)
    mask.loc[{"segment": "SMB", "region": "EMEA", "rep": "r1"}] = True
    h = rc.hierarchy_from_cube(ds, bottom_mask=mask)
    assert h.n_bottom == 1 and h.n_nodes == 8
    with pytest.raises(DataError, match=r"no measure 'pipeline'"):
        rc.hierarchy_from_cube(ds, measure="pipeline")
    with pytest.raises(DataError, match=r"no \(segment, region, rep\) cell with data"):
        rc.hierarchy_from_cube(xr.zeros_like(da))


def test_to_nodes_and_back_roundtrip_with_quantile_dim(hierarchy):
    da = tiny_cube().isel(month=slice(0, 3))
    q = xr.concat([da, 2 * da], dim=pd.Index([0.1, 0.9], name="quantile"))
    nodes = rc.to_nodes(hierarchy, q)
    assert nodes.dims == ("node", "quantile", "month")
    total = nodes.isel(node=hierarchy.tags["total"][0])
    np.testing.assert_allclose(total.values, q.sum(["segment", "region", "rep"]).values)
    region = nodes.isel(node=hierarchy.index("region", "NA"))
    np.testing.assert_allclose(region.values, q.sel(region="NA").sum(["segment", "rep"]).values)
    back = rc.from_nodes(hierarchy, nodes)
    xr.testing.assert_allclose(back.transpose(*q.dims), q.drop_vars("rep_region"))


def test_to_nodes_accepts_dask(hierarchy):
    da = tiny_cube()
    eager = rc.to_nodes(hierarchy, da)
    lazy = rc.to_nodes(hierarchy, da.chunk({"rep": 2}))
    np.testing.assert_allclose(lazy.values, eager.values)


# ------------------------------------------------------------------ invariants


@pytest.mark.parametrize("name", list(RECONCILERS))
def test_coherent_forecasts_come_back_unchanged(hierarchy, name):
    y = coherent_base(hierarchy)
    out, info = RECONCILERS[name]().reconcile(y, hierarchy, residuals=residuals_for(hierarchy))
    np.testing.assert_allclose(out, y, rtol=1e-9, atol=1e-9 * np.abs(y).max())
    assert info["method"] == name


@pytest.mark.parametrize("name", list(RECONCILERS))
def test_reconciled_levels_add_up(hierarchy, name):
    y = noisy_base(hierarchy)
    out, _ = RECONCILERS[name]().reconcile(y, hierarchy, residuals=residuals_for(hierarchy))
    assert out.shape == y.shape
    assert_coherent(hierarchy, out)
    total = hierarchy.tags["total"]
    if name == "top_down":
        np.testing.assert_allclose(out[total], y[total], rtol=1e-12)
    elif name != "bottom_up":
        assert np.abs(out[total] - y[total]).max() > 1.0


def test_bottom_up_keeps_bottom_and_adds_up(hierarchy):
    y = noisy_base(hierarchy)
    out, _ = rc.BottomUp().reconcile(y, hierarchy)
    np.testing.assert_array_equal(out[hierarchy.bottom], y[hierarchy.bottom])
    np.testing.assert_allclose(out, hierarchy.S @ y[hierarchy.bottom])


def test_one_dimensional_forecast_keeps_its_shape(hierarchy):
    y = noisy_base(hierarchy)[:, 0]
    out, _ = rc.MinTrace("ols").reconcile(y, hierarchy)
    assert out.shape == y.shape
    assert_coherent(hierarchy, out[:, None])


# ------------------------------------------------------------------ hand-computed

S2 = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # total = A + B
Y2 = np.array([10.0, 3.0, 4.0])


def test_ols_two_bottom_tree_by_hand():
    # b = (S'S)^-1 S'y = 1/3 [[2, -1], [-1, 2]] [13, 14] = [4, 5]
    out, _ = rc.MinTrace("ols").reconcile(Y2, S2)
    np.testing.assert_allclose(out, [9.0, 4.0, 5.0], rtol=1e-12)


def test_wls_struct_two_bottom_tree_by_hand():
    # W = diag(2, 1, 1): S'W^-1S = [[1.5, .5], [.5, 1.5]], S'W^-1y = [8, 9] -> b = [3.75, 4.75]
    out, _ = rc.MinTrace("wls_struct").reconcile(Y2, S2)
    np.testing.assert_allclose(out, [8.5, 3.75, 4.75], rtol=1e-12)


def test_locked_total_two_bottom_tree_by_hand():
    # with b1 + b2 = 12 fixed, OLS splits the 5 missing evenly: b = [5.5, 6.5]
    out, info = rc.MinTrace("ols").reconcile(Y2, S2, locked={0: 12.0})
    np.testing.assert_allclose(out, [12.0, 5.5, 6.5], rtol=1e-12)
    assert out[0] == 12.0
    assert info["locked_nodes"] == 1


def test_top_down_forecast_proportions_by_hand():
    h = rc.hierarchy_from_cells(
        np.array([[0, 0, 0], [0, 0, 1]]),
        np.array(["SMB"]),
        np.array(["EMEA"]),
        np.array(["a", "b"]),
        np.array(["M", "M"]),
    )
    assert h.n_bottom == 2
    y = rc.aggregate(h, np.array([3.0, 7.0]))
    y[h.tags["total"]] = 20.0
    out, _ = rc.TopDown().reconcile(y, h)
    np.testing.assert_allclose(out[h.bottom], [6.0, 14.0], rtol=1e-12)
    assert_coherent(h, out[:, None])


# ------------------------------------------------------------------ locks


def test_locked_nodes_stay_exact_while_others_move(hierarchy):
    h = hierarchy
    y = noisy_base(h)
    free, _ = rc.MinTrace("wls_struct").reconcile(y, h)
    m1, r1, total = h.index("manager", "M1"), h.index("rep", "r1"), h.index("total")
    locked = {("manager", "M1"): 9000.0, ("rep", "r1"): np.arange(1, 7) * 1000.0}
    out, info = rc.MinTrace("wls_struct").reconcile(y, h, locked=locked)
    np.testing.assert_array_equal(out[m1], np.full(6, 9000.0))
    np.testing.assert_array_equal(out[r1], np.arange(1, 7) * 1000.0)
    assert_coherent(h, out, rtol=1e-9)
    assert np.abs(out[total] - free[total]).min() > 1.0
    assert info["locked_nodes"] == 2


def test_partial_month_locks_with_nan(hierarchy):
    h = hierarchy
    y = noisy_base(h)
    values = np.array([5000.0, np.nan, np.nan, 7000.0, np.nan, np.nan])
    out, _ = rc.MinTrace("ols").reconcile(y, h, locked={h.index("region", "NA"): values})
    free, _ = rc.MinTrace("ols").reconcile(y, h)
    na = h.index("region", "NA")
    assert out[na, 0] == 5000.0 and out[na, 3] == 7000.0
    np.testing.assert_allclose(out[:, [1, 2, 4, 5]], free[:, [1, 2, 4, 5]], rtol=1e-10)
    assert_coherent(h, out)


def test_consistent_redundant_locks_are_accepted(hierarchy):
    h = hierarchy
    y = noisy_base(h)
    locked = {("manager", "M1"): 6000.0, ("rep", "r1"): 4000.0, ("rep", "r2"): 2000.0}
    out, _ = rc.MinTrace("wls_struct").reconcile(y, h, locked=locked)
    assert out[h.index("manager", "M1"), 0] == 6000.0
    assert_coherent(h, out)


def test_contradictory_locks_raise_with_nodes_and_amounts(hierarchy):
    locked = {("manager", "M1"): 5000.0, ("rep", "r1"): 4000.0, ("rep", "r2"): 2000.0}
    expected = (
        "locked values contradict each other at horizon step 1: manager=M1 is locked at "
        "5,000.00 but rep=r1 (4,000.00) + rep=r2 (2,000.00) = 6,000.00; change or unlock one "
        "of these nodes"
    )
    with pytest.raises(InfeasibleError, match=re.escape(expected)):
        rc.MinTrace("wls_struct").reconcile(noisy_base(hierarchy), hierarchy, locked=locked)


def test_aggregate_lock_refused_by_bottom_up_and_top_down(hierarchy):
    y = noisy_base(hierarchy)
    with pytest.raises(ParameterError, match=r"bottom_up cannot keep the aggregate node total"):
        rc.BottomUp().reconcile(y, hierarchy, locked={("total", ()): 1.0})
    with pytest.raises(ParameterError, match=r"top_down cannot keep locked nodes"):
        rc.TopDown().reconcile(y, hierarchy, locked={("total", ()): 1.0})
    out, _ = rc.BottomUp().reconcile(y, hierarchy, locked={("rep/segment", ("r1", "SMB")): 7.0})
    assert out[hierarchy.index("rep/segment", ("r1", "SMB")), 0] == 7.0


# ------------------------------------------------------------------ non-negative


@pytest.mark.parametrize("method", ["ols", "wls_struct", "wls_var", "mint_shrink"])
def test_nonnegative_has_no_negatives_and_adds_up(hierarchy, method):
    y = noisy_base(hierarchy, sd=3000.0, seed=5)
    rec = rc.MinTrace(method, nonnegative=True)
    out, info = rec.reconcile(y, hierarchy, residuals=residuals_for(hierarchy))
    assert out.min() >= 0.0
    assert_coherent(hierarchy, out)
    assert info["nonnegative_converged"] is True
    plain, _ = rc.MinTrace(method).reconcile(y, hierarchy, residuals=residuals_for(hierarchy))
    assert plain.min() < 0.0  # the bound did bind


def test_nonnegative_matches_bounded_least_squares(hierarchy):
    h = hierarchy
    y = noisy_base(h, sd=3000.0, seed=5)
    out, _ = rc.MinTrace("wls_struct", nonnegative=True).reconcile(y, h)
    w = np.asarray(h.S.sum(1)).ravel()
    A = h.S.toarray() / np.sqrt(w)[:, None]
    for t in range(y.shape[1]):
        ref = lsq_linear(A, y[:, t] / np.sqrt(w), bounds=(0, np.inf), method="bvls", tol=1e-14)
        np.testing.assert_allclose(out[h.bottom, t], ref.x, atol=1e-6 * np.abs(y).max())


def test_nonnegative_with_locks_matches_constrained_optimum(hierarchy):
    h = hierarchy
    y = noisy_base(h, sd=3000.0, seed=5)[:, :1]
    m1 = h.index("manager", "M1")
    out, _ = rc.MinTrace("ols", nonnegative=True).reconcile(y, h, locked={m1: 1500.0})
    assert out[m1, 0] == 1500.0 and out.min() >= 0.0
    assert_coherent(h, out)
    S = h.S.toarray()
    scale = np.abs(y).max()

    def f(b):
        return float(((S @ b - y[:, 0] / scale) ** 2).sum())

    ref = minimize(
        f,
        np.full(h.n_bottom, 0.1),
        method="SLSQP",
        bounds=[(0, None)] * h.n_bottom,
        constraints=[{"type": "eq", "fun": lambda b: S[m1] @ b - 1500.0 / scale}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert f(out[h.bottom, 0] / scale) <= ref.fun + 1e-9
    np.testing.assert_allclose(out[h.bottom, 0] / scale, ref.x, atol=1e-5)


def test_nonnegative_infeasible_locks_raise(hierarchy):
    locked = {("manager", "M1"): 5000.0, ("rep", "r1"): 6000.0}
    expected = (
        "locked values cannot hold with non-negative forecasts at horizon step 1: manager=M1 "
        "is locked at 5,000.00 but the locked nodes under it, rep=r1 (6,000.00), add up to "
        "6,000.00; change or unlock one of these nodes"
    )
    y = noisy_base(hierarchy)
    with pytest.raises(InfeasibleError, match=re.escape(expected)):
        rc.MinTrace("wls_struct", nonnegative=True).reconcile(y, hierarchy, locked=locked)
    out, _ = rc.MinTrace("wls_struct").reconcile(y, hierarchy, locked=locked)
    assert out[hierarchy.index("rep", "r2"), 0] == pytest.approx(-1000.0, abs=1e-6)
    with pytest.raises(InfeasibleError, match=r"region=NA is locked at -1.00 at horizon step 1"):
        rc.MinTrace("ols", nonnegative=True).reconcile(y, hierarchy, locked={("region", "NA"): -1})


# ------------------------------------------------------------------ mint_shrink


def _lambda_by_hand(E: np.ndarray) -> float:
    n, T = E.shape
    X = E - E.mean(1, keepdims=True)
    Z = X / X.std(1, ddof=1, keepdims=True)
    num = den = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            w = Z[i] * Z[j]
            r = w.sum() / (T - 1)
            num += T / (T - 1) ** 3 * ((w - w.mean()) ** 2).sum()
            den += r**2
    return min(max(num / den, 0.0), 1.0)


def test_shrunk_covariance_matches_schafer_strimmer_by_hand():
    rng = np.random.default_rng(11)
    base = rng.normal(size=(1, 40))
    E = 0.9 * base + 0.4 * rng.normal(size=(5, 40))  # strongly correlated: lambda < 1
    W, lam = rc.shrunk_covariance(E)
    expected = _lambda_by_hand(E)
    assert 0.0 < expected < 1.0
    assert lam == pytest.approx(expected, rel=1e-10)
    cov = np.cov(E)
    np.testing.assert_allclose(np.diag(W), np.diag(cov), rtol=1e-12)
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(W[off], (1 - expected) * cov[off], rtol=1e-10)


def test_mint_shrink_with_uncorrelated_residuals_is_wls_var(hierarchy):
    # orthogonal, centred residual rows: every sample correlation is 0, so the shrinkage
    # target (the diagonal) is reached exactly: lambda = 1 and W = diag(variances)
    n = hierarchy.n_nodes
    T = 32
    H = np.array([[1.0]])
    while H.shape[0] < T:
        H = np.block([[H, H], [H, -H]])
    E = H[1 : n + 1] * np.linspace(100.0, 900.0, n)[:, None]
    _, lam = rc.shrunk_covariance(E)
    assert lam == 1.0
    y = noisy_base(hierarchy)
    a, info = rc.MinTrace("mint_shrink").reconcile(y, hierarchy, residuals=E)
    b, _ = rc.MinTrace("wls_var").reconcile(y, hierarchy, residuals=E)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(y).max())
    assert info["shrinkage"] == 1.0 and info["fallback"] is None


def test_mint_shrink_dense_differs_from_diagonal_when_correlated(hierarchy):
    y = noisy_base(hierarchy)
    E = residuals_for(hierarchy)
    a, info = rc.MinTrace("mint_shrink").reconcile(y, hierarchy, residuals=E)
    b, _ = rc.MinTrace("wls_var").reconcile(y, hierarchy, residuals=E)
    assert info["shrinkage"] < 1.0
    assert np.abs(a - b).max() > 1.0
    assert_coherent(hierarchy, a)


def test_low_rank_shrunk_covariance_is_the_dense_one():
    E = residuals_for(rc.hierarchy_from_cube(tiny_cube()))
    W, lam = rc.shrunk_covariance(E)
    low = rc.shrunk_covariance_lowrank(E)
    assert low.shrinkage == pytest.approx(lam, rel=1e-12)
    np.testing.assert_allclose(low.dense(), W, rtol=1e-12, atol=1e-12 * np.abs(W).max())
    assert low.U.shape == (E.shape[0], E.shape[1])  # O(n T), never n x n


@pytest.mark.parametrize("nonnegative", [False, True])
@pytest.mark.parametrize("with_locks", [False, True])
def test_mint_shrink_low_rank_agrees_with_dense(hierarchy, nonnegative, with_locks):
    # above max_dense_nodes the same shrunk covariance is solved as diagonal + low rank
    y = noisy_base(hierarchy) - (2500.0 if nonnegative else 0.0)
    E = residuals_for(hierarchy)
    locked = None
    if with_locks:
        m1 = hierarchy.index("manager", "M1")
        locked = {("total", ()): y[0] * 1.1, ("manager", "M1"): np.abs(y[m1])}
    dense, info_d = rc.MinTrace("mint_shrink", nonnegative=nonnegative).reconcile(
        y, hierarchy, residuals=E, locked=locked
    )
    low, info = rc.MinTrace("mint_shrink", nonnegative=nonnegative, max_dense_nodes=10).reconcile(
        y, hierarchy, residuals=E, locked=locked
    )
    np.testing.assert_allclose(low, dense, rtol=1e-9, atol=1e-9 * np.abs(y).max())
    assert info_d["covariance"] == "dense"
    assert info["method"] == "mint_shrink" and info["fallback"] is None
    assert info["covariance"] == "diagonal + rank 30 (above 10 nodes)"
    assert info["shrinkage"] == pytest.approx(info_d["shrinkage"], rel=1e-12)
    if nonnegative:
        assert low.min() >= 0.0


def test_residual_methods_need_residuals(hierarchy):
    with pytest.raises(ParameterError, match=r"'mint_shrink' needs in-sample residuals"):
        rc.MinTrace("mint_shrink").reconcile(noisy_base(hierarchy), hierarchy)
    with pytest.raises(ParameterError, match=r"residuals must be \(n_nodes x T\) = \(26 x T\)"):
        rc.MinTrace("wls_var").reconcile(
            noisy_base(hierarchy), hierarchy, residuals=np.ones((3, 4))
        )
    with pytest.raises(ParameterError, match=r"MinTrace method 'mint' is unknown"):
        rc.MinTrace("mint")


def test_wrong_shapes_and_nan_base_forecasts(hierarchy):
    with pytest.raises(ParameterError, match=r"y_hat has 3 rows but the hierarchy has 26 nodes"):
        rc.MinTrace("ols").reconcile(np.ones((3, 2)), hierarchy)
    y = noisy_base(hierarchy)
    y[4, 1] = np.nan
    with pytest.raises(ParameterError, match=r"NaN or infinite base forecasts for node\(s\) \[4\]"):
        rc.MinTrace("ols").reconcile(y, hierarchy)


# ------------------------------------------------------------------ cube entry point


def forecast_cube(seed: int = 2) -> xr.DataArray:
    return tiny_cube(seed).isel(month=slice(-12, None))


def test_reconcile_cube_returns_cube_dims_and_coherent_nodes(hierarchy):
    fc = forecast_cube()
    E = residuals_for(hierarchy)
    out, info = rc.reconcile_cube(fc, residuals=E, hierarchy=hierarchy)
    assert out.dims == fc.dims
    assert out.attrs["units"] == "USD/month" and out.attrs["reconciliation"] == "mint_shrink"
    assert out.sel(segment="ENT", rep="r2").sum() == 0.0
    nodes = info["reconciled_nodes"]
    assert nodes.dims == ("node", "month")
    np.testing.assert_allclose(rc.to_nodes(hierarchy, out).values, nodes.values, rtol=1e-9)
    # base forecasts were coherent (bottom only), so the result is unchanged
    xr.testing.assert_allclose(out, fc)


def test_reconcile_cube_with_node_forecasts_and_locks(hierarchy):
    fc = forecast_cube()
    base = rc.to_nodes(hierarchy, fc)
    noisy = base.copy(data=noisy_base(hierarchy, horizon=12, seed=4))
    noisy[hierarchy.index("region", "EMEA")] = np.nan  # no model for this node: bottom-up
    values = pd.Series([50_000.0] * 3, index=fc.month.values[:3])
    locked = {("manager", "M2"): values, ("region/segment", ("EMEA", "SMB")): 20_000.0}
    out, info = rc.reconcile_cube(
        fc, method="wls_struct", node_forecasts=noisy, locked=locked, hierarchy=hierarchy
    )
    nodes = info["reconciled_nodes"]
    m2 = nodes.sel(node=hierarchy.index("manager", "M2")).values
    np.testing.assert_array_equal(m2[:3], [50_000.0] * 3)
    assert out.sel(rep=["r3", "r4"]).sum(["segment", "region", "rep"]).values[:3] == pytest.approx(
        [50_000.0] * 3, rel=1e-12
    )
    smb = out.sel(region="EMEA", segment="SMB").sum("rep").values
    np.testing.assert_allclose(smb, 20_000.0, rtol=1e-12)
    assert out.min() >= 0.0
    assert info["filled_nodes"] == 1


def test_reconcile_cube_locks_from_a_table(hierarchy):
    fc = forecast_cube()
    table = pd.DataFrame(
        {
            "level": ["manager", "region"],
            "segment": ["*", "*"],
            "region": ["*", "NA"],
            "manager": ["M1", "*"],
            "rep": ["*", "*"],
            "month": [fc.month.values[0], fc.month.values[1]],
            "value": [12_345.0, 40_000.0],
        }
    )
    out, info = rc.reconcile_cube(fc, method="ols", locked=table, hierarchy=hierarchy)
    nodes = info["reconciled_nodes"]
    assert nodes.sel(node=hierarchy.index("manager", "M1")).values[0] == 12_345.0
    assert nodes.sel(node=hierarchy.index("region", "NA")).values[1] == 40_000.0
    bad = table.assign(month=pd.Timestamp("2030-01-01"))
    with pytest.raises(ParameterError, match=r"locks table row 0: month 2030-01-01"):
        rc.reconcile_cube(fc, method="ols", locked=bad, hierarchy=hierarchy)


def test_reconcile_cube_contradiction_names_the_month(hierarchy):
    fc = forecast_cube()
    locked = {("total", ()): 100.0, ("region", "EMEA"): 60.0, ("region", "NA"): 30.0}
    expected = (
        "locked values contradict each other at month 2025-02: total is locked at 100.00 but "
        "region=EMEA (60.00) + region=NA (30.00) = 90.00"
    )
    with pytest.raises(InfeasibleError, match=re.escape(expected)):
        rc.reconcile_cube(fc, method="ols", nonnegative=False, locked=locked, hierarchy=hierarchy)


def test_reconcile_cube_builds_hierarchy_accepts_dask_and_checks_method():
    fc = forecast_cube().chunk({"rep": 2})
    out, info = rc.reconcile_cube(fc, method="bottom_up")
    assert info["hierarchy"].n_bottom == 7
    xr.testing.assert_allclose(out.compute(), fc.compute())
    none, info = rc.reconcile_cube(fc, method="none")
    assert info["method"] == "none"
    with pytest.raises(ParameterError, match=r"unknown reconciliation method 'mint'"):
        rc.reconcile_cube(fc, method="mint")


# ------------------------------------------------------------------ scale and properties


def big_hierarchy() -> rc.Hierarchy:
    """2,000 reps in 8 regions, 5 segments, 200 managers: 10,000 bottom series."""
    return organisation(reps=2000, segments=5, regions=8, managers=200, gaps=0)


@pytest.mark.slow
def test_large_sparse_hierarchy_reconciles_with_wls_struct():
    h = big_hierarchy()
    assert h.n_bottom == 10_000
    rng = np.random.default_rng(1)
    y = rc.aggregate(h, rng.gamma(1.5, 1000.0, (h.n_bottom, 12)))
    y = y + rng.normal(0.0, 300.0, y.shape) * np.sqrt(np.asarray(h.S.sum(1)))
    out, info = rc.MinTrace("wls_struct", nonnegative=True).reconcile(y, h)
    assert out.min() >= 0.0
    assert_coherent(h, out, rtol=1e-9)
    E = rng.normal(size=(h.n_nodes, 24))
    out2, info2 = rc.MinTrace("mint_shrink").reconcile(y, h, residuals=E)
    assert info2["method"] == "mint_shrink" and info2["fallback"] is None
    assert info2["covariance"].startswith("diagonal + rank 24")
    assert_coherent(h, out2, rtol=1e-9)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["ols", "wls_struct", "wls_var", "mint_shrink", "top_down"]),
    nonnegative=st.booleans(),
    noise=st.floats(0.0, 5000.0),
)
def test_property_reconciled_output_is_coherent(seed, method, nonnegative, noise):
    h = rc.hierarchy_from_cube(tiny_cube(seed % 1000))
    rng = np.random.default_rng(seed)
    y = rc.aggregate(h, rng.gamma(2.0, 1000.0, (h.n_bottom, 3)))
    agg = np.setdiff1d(np.arange(h.n_nodes), h.bottom)
    y[agg] += rng.normal(0.0, noise + 1e-9, (agg.size, 3))
    rec = rc.reconciler(method, nonnegative=nonnegative)
    out, _ = rec.reconcile(y, h, residuals=residuals_for(h, seed=seed % 97))
    assert_coherent(h, out, rtol=1e-9)
    if nonnegative:
        assert out.min() >= 0.0


def test_shrunk_covariance_of_gappy_residuals_is_positive_definite():
    # Pairwise deletion on residuals with gaps can give an indefinite covariance; MinT needs W > 0.
    rng = np.random.default_rng(11)
    base = rng.normal(size=(1, 40))
    E = np.vstack([base + 0.01 * rng.normal(size=(1, 40)) for _ in range(6)])
    E[0, :20] = np.nan
    E[1, 20:] = np.nan
    E[2, ::2] = np.nan
    E[3] = np.where(np.arange(40) % 3 == 0, np.nan, -E[3])
    W, lam = rc.shrunk_covariance(E)
    assert np.all(np.linalg.eigvalsh(W) > 0)
    assert 0.0 <= lam <= 1.0
    np.testing.assert_allclose(np.diag(W), np.nanvar(E, axis=1, ddof=1), rtol=1e-9)


# --------------------------------------------------------------------------- probabilistic


def coverage_by_level(h: rc.Hierarchy, lo: np.ndarray, hi: np.ndarray, actual: np.ndarray) -> dict:
    """Share of ``actual`` (nodes x draws) inside the band ``lo``-``hi`` (nodes x months), by
    level: every month and draw of every node of the level."""
    inside = (actual[:, None, :] >= lo[..., None]) & (actual[:, None, :] <= hi[..., None])
    coverage = inside.mean(axis=(1, 2))
    levels_of = h.nodes["level"].to_numpy()
    return {lv: float(coverage[levels_of == lv].mean()) for lv in dict.fromkeys(levels_of)}


def _gaussian_base(h: rc.Hierarchy, horizon: int, seed: int = 5):
    """Bottoms ~ N(mu, Sigma) with a common factor; every node's exact base quantiles."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    m = h.n_bottom
    mu = rng.uniform(500.0, 3000.0, m)
    sig = rng.uniform(100.0, 600.0, m)
    load = rng.uniform(0.0, 0.5, m)

    def draw(k: int) -> np.ndarray:
        f = rng.standard_normal(k)
        e = rng.standard_normal((m, k))
        return mu[:, None] + sig[:, None] * (
            load[:, None] * f[None, :] + np.sqrt(1 - load[:, None] ** 2) * e
        )

    S = h.S.toarray()
    cov = np.diag(sig) @ (np.outer(load, load) + np.diag(1 - load**2)) @ np.diag(sig)
    node_sd = np.sqrt(np.diag(S @ cov @ S.T))
    levels = np.array([0.1, 0.5, 0.9])
    q = (S @ mu)[:, None] + stats.norm.ppf(levels)[None, :] * node_sd[:, None]
    return np.repeat(q[:, None, :], horizon, axis=1), levels, draw, S


def test_sampled_quantiles_cover_a_known_distribution_at_every_level(hierarchy):
    q, levels, draw, S = _gaussian_base(hierarchy, horizon=2)
    mu = draw(20_000).mean(1)
    resid = S @ (draw(240) - mu[:, None])
    res = rc.sample_reconciled(
        q, levels, hierarchy, "mint_shrink", resid, nonnegative=False,
        settings=rc.SampleSettings(n_samples=1000, seed=1),
    )  # fmt: skip
    lo, hi = res.quantiles[:, :, 0], res.quantiles[:, :, 2]
    for level, got in coverage_by_level(hierarchy, lo, hi, S @ draw(4000)).items():
        assert 0.74 <= got <= 0.86, (level, got)
    # the median stays where the (symmetric) base put it
    np.testing.assert_allclose(res.quantiles[:, :, 1], q[:, :, 1], rtol=0.05)


def _many_reps(regions: int = 6, reps: int = 40, per_manager: int = 20) -> rc.Hierarchy:
    """One segment, ``regions`` regions of ``reps`` reps each, managers of ``per_manager``."""
    m = regions * reps
    cells = np.array([[0, r, r * reps + i] for r in range(regions) for i in range(reps)])
    managers = np.array([f"M{k // per_manager}" for k in range(m)])
    return rc.hierarchy_from_cells(
        cells, np.array(["SMB"]), np.array([f"R{r}" for r in range(regions)]),
        np.array([f"r{k}" for k in range(m)]), managers,
    )  # fmt: skip


@pytest.mark.parametrize("shrink", [True, False])
def test_more_reps_than_months_of_residuals_keeps_every_level_calibrated(shrink):
    """240 independent reps and 24 months of residuals (a company's usual shape): the sample
    correlation is singular, the shrunk one nearly independent, and each aggregate's own
    model errs apart from its reps' sum. Drawn either way, the reconciled 10-90% band of a
    known distribution holds 80% at every level: an aggregate's draw moves with its bottoms'
    sum, so reconciling has no disagreement to average away (drawn on its own from the shrunk
    correlation, the total's band held 46% and the reps' 65%)."""
    from scipy import stats

    h = _many_reps()
    rng = np.random.default_rng(3)
    m, S = h.n_bottom, h.S.toarray()
    mu, sig = rng.uniform(500.0, 3000.0, m), rng.uniform(100.0, 600.0, m)
    levels = np.array([0.1, 0.5, 0.9])
    sd = np.sqrt(S @ sig**2)
    q = (S @ mu)[:, None] + stats.norm.ppf(levels)[None, :] * sd[:, None]
    q = np.repeat(q[:, None, :], 2, axis=1)
    resid = S @ (sig[:, None] * rng.standard_normal((m, 24)))
    agg = np.setdiff1d(np.arange(h.n_nodes), h.bottom)
    own = resid[agg].std(axis=1, keepdims=True) * rng.standard_normal((agg.size, 24))
    resid[agg] += 0.5 * own  # an aggregate's model is not its reps' sum
    res = rc.sample_reconciled(
        q, levels, h, "mint_shrink", resid, nonnegative=False,
        settings=rc.SampleSettings(n_samples=1000, seed=1, shrink=shrink),
    )  # fmt: skip
    actual = S @ (mu[:, None] + sig[:, None] * rng.standard_normal((m, 4000)))
    lo, hi = res.quantiles[:, :, 0], res.quantiles[:, :, 2]
    for level, got in coverage_by_level(h, lo, hi, actual).items():
        assert 0.77 <= got <= 0.83, (level, got)


def test_every_sample_path_adds_up_keeps_locks_and_is_nonnegative(hierarchy):
    horizon = 3
    q, levels, _, _ = _gaussian_base(hierarchy, horizon=horizon)
    q = q - 1500.0  # wide enough that many draws go negative before reconciliation
    m1 = hierarchy.index("manager", "M1")
    locked = {("total", ()): [9000.0, np.nan, 8000.0], ("manager", "M1"): 2500.0}
    res = rc.sample_reconciled(
        q, levels, hierarchy, "mint_shrink", residuals_for(hierarchy), nonnegative=True,
        locked=locked, settings=rc.SampleSettings(n_samples=60, seed=3),
    )  # fmt: skip
    s = res.samples
    assert s.shape == (hierarchy.n_nodes, horizon, 60)
    for t in range(horizon):
        assert_coherent(hierarchy, s[:, t, :], rtol=1e-9)  # each path sums up the hierarchy
    assert s.min() >= 0.0
    np.testing.assert_array_equal(s[0, 0], np.full(60, 9000.0))
    np.testing.assert_array_equal(s[0, 2], np.full(60, 8000.0))
    assert np.ptp(s[0, 1]) > 0  # the total is free in month 2
    np.testing.assert_array_equal(s[m1], np.full((horizon, 60), 2500.0))
    assert res.quantiles.min() >= 0.0
    assert res.info["n_samples"] == 60 and res.info["locked_nodes"] == 2


def test_sampling_is_reproducible_by_seed(hierarchy):
    q, levels, _, _ = _gaussian_base(hierarchy, horizon=2)
    E = residuals_for(hierarchy)

    def run(seed):
        return rc.sample_reconciled(
            q, levels, hierarchy, residuals=E, settings=rc.SampleSettings(n_samples=50, seed=seed)
        ).quantiles

    np.testing.assert_array_equal(run(7), run(7))
    assert np.abs(run(7) - run(8)).max() > 0


def test_quantile_paths_follow_each_node_own_skewed_quantiles():
    from scipy import stats

    levels = [0.1, 0.5, 0.9]
    z = stats.norm.ppf(np.array(levels))[None, None, :]
    q = np.array([[[10.0, 20.0, 50.0]]])  # skewed to the right
    np.testing.assert_allclose(rc.quantile_paths(z, q, levels), q)
    # beyond the outer quantiles the line of the outer segment carries on
    far = rc.quantile_paths(np.array([[[2 * z[0, 0, 2]]]]), q, levels)
    np.testing.assert_allclose(far, 50.0 + 30.0)
    with pytest.raises(ParameterError, match="n_samples must be at least 10, got 3"):
        rc.SampleSettings(n_samples=3)


def normal_quantiles(h: rc.Hierarchy, sd: np.ndarray, months: int = 2):
    """10/50/90% quantiles (n_nodes x months x 3) of every node of bottoms at 5000 each,
    normal with standard deviation ``sd`` (n_nodes,), and their levels."""
    from scipy import stats

    levels = np.array([0.1, 0.5, 0.9])
    center = h.S.toarray() @ np.full(h.n_bottom, 5000.0)
    q = center[:, None] + stats.norm.ppf(levels)[None, :] * sd[:, None]
    return np.repeat(q[:, None, :], months, axis=1), levels


def test_shared_shocks_make_the_bottoms_add_up_to_each_aggregate_spread(hierarchy):
    # residuals say the nodes move independently, but every aggregate's own forecast is as
    # wide as its bottoms moving together: the shared shocks carry that dependence
    rng = np.random.default_rng(4)
    S = hierarchy.S.toarray()
    sd_b = rng.uniform(50.0, 150.0, hierarchy.n_bottom)
    q, levels = normal_quantiles(hierarchy, S @ sd_b)  # fully dependent bottoms
    E = rng.normal(size=(hierarchy.n_nodes, 60))
    cov = rc.shrunk_covariance_lowrank(E[hierarchy.bottom])
    shocks = rc.shared_shocks(cov, q, levels, hierarchy)
    assert shocks.kappa.sum(0) == pytest.approx([1.0, 1.0], abs=0.05)
    res = rc.sample_reconciled(
        q, levels, hierarchy, "bottom_up", E, nonnegative=False,
        settings=rc.SampleSettings(n_samples=2000, seed=2),
    )  # fmt: skip
    width = res.quantiles[:, :, 2] - res.quantiles[:, :, 0]
    own = q[:, :, 2] - q[:, :, 0]
    np.testing.assert_allclose(width, own, rtol=0.12)
    # independent bottoms in the base: no shared shock needed
    q_ind, _ = normal_quantiles(hierarchy, np.sqrt(S @ sd_b**2))
    assert rc.shared_shocks(cov, q_ind, levels, hierarchy).kappa.sum() < 0.05


def test_period_quantiles_of_a_level_with_no_node_is_empty_not_an_index_error():
    # A level with no member (e.g. every deal lost, so no region node has a forecast).
    totals, order = rc.period_quantiles(np.zeros((0, 3, 3)), [0.1, 0.5, 0.9], groups=[])
    assert order == [] and totals.shape == (0, 3)
