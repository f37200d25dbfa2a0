"""The low-rank ``mint_shrink`` solver (zero-constrained form) against dense MinT-shrink."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import xarray as xr

from revmodel import reconcile as rc


def organisation(
    reps: int = 60, segments: int = 3, regions: int = 3, managers: int = 6, gaps: int = 5
):
    """Reps in one region each, selling in every segment but for ``gaps`` reps without the
    first (the default: a few hundred nodes). The one synthetic organisation of the tests."""
    rng = np.random.default_rng(0)
    rep_region = rng.integers(0, regions, reps)
    mask = np.zeros((segments, regions, reps), dtype=bool)
    mask[:, rep_region, np.arange(reps)] = True
    mask[0, rep_region[:gaps], np.arange(gaps)] = False  # reps without the first segment
    da = xr.DataArray(
        mask.astype(float),
        dims=("segment", "region", "rep"),
        coords={
            "segment": [f"S{i}" for i in range(segments)],
            "region": [f"G{i}" for i in range(regions)],
            "rep": [f"R{i:03d}" for i in range(reps)],
            "manager": ("rep", [f"M{i}" for i in rng.integers(0, managers, reps)]),
        },
    )
    return rc.hierarchy_from_cube(da)


@pytest.fixture(scope="module")
def org() -> rc.Hierarchy:
    return organisation()


def base_and_residuals(h: rc.Hierarchy, horizon: int = 6, T: int = 24, shift: float = 0.0):
    rng = np.random.default_rng(11)
    common = rng.normal(0.0, 200.0, (1, T))  # a shared shock: correlated residuals
    e_bottom = rng.normal(0.0, 300.0, (h.n_bottom, T)) + common
    E = rc.aggregate(h, e_bottom) + rng.normal(0.0, 80.0, (h.n_nodes, T))
    bottom = rng.gamma(2.0, 1000.0, (h.n_bottom, horizon))
    y = rc.aggregate(h, bottom) + rng.normal(0.0, 900.0, (h.n_nodes, horizon)) - shift
    return y, E


def dense_zero_constrained(h: rc.Hierarchy, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``y - W C' (C W C')^-1 C y`` with dense matrices, C = [I | -S_agg] in node order."""
    agg = np.setdiff1d(np.arange(h.n_nodes), h.bottom)
    C = np.zeros((agg.size, h.n_nodes))
    C[np.arange(agg.size), agg] = 1.0
    C[:, h.bottom] -= h.S[agg].toarray()
    return y - W @ C.T @ np.linalg.solve(C @ W @ C.T, C @ y)


def test_a_few_hundred_nodes_equal_the_dense_formula(org):
    assert 200 <= org.n_nodes <= 400
    y, E = base_and_residuals(org)
    W, _ = rc.shrunk_covariance(E)
    low, info = rc.MinTrace("mint_shrink", max_dense_nodes=10).reconcile(y, org, residuals=E)
    assert info["covariance"] == "diagonal + rank 24 (above 10 nodes)"
    expected = dense_zero_constrained(org, y, W)
    np.testing.assert_allclose(low, expected, rtol=1e-8, atol=1e-8 * np.abs(y).max())
    # the factor of A D A' stays sparse: far below the (aggregates x aggregates) dense count
    n_agg = org.n_nodes - org.n_bottom
    assert 0 < info["factor_nnz"] < 0.5 * n_agg**2


@pytest.mark.parametrize("nonnegative", [False, True])
def test_locks_and_bounds_equal_dense_mint_shrink(org, nonnegative):
    y, E = base_and_residuals(org, shift=1500.0 if nonnegative else 0.0)
    m1, g0 = org.index("manager", "M1"), org.index("region", "G0")
    rep = org.bottom[7]
    locked = {
        0: np.abs(y[0]) * 1.05,  # the total
        m1: np.r_[np.abs(y[m1, :3]), [np.nan] * 3],  # a manager, first three months
        g0: np.abs(y[g0]),
        int(rep): np.full(6, 1234.5),  # one bottom series
    }
    dense, info_d = rc.MinTrace("mint_shrink", nonnegative=nonnegative).reconcile(
        y, org, residuals=E, locked=locked
    )
    low, info = rc.MinTrace("mint_shrink", nonnegative=nonnegative, max_dense_nodes=10).reconcile(
        y, org, residuals=E, locked=locked
    )
    assert info_d["covariance"] == "dense" and info["covariance"].startswith("diagonal + rank")
    np.testing.assert_allclose(low, dense, rtol=1e-8, atol=1e-8 * np.abs(y).max())
    for node, values in locked.items():
        ok = np.isfinite(values)
        assert (low[node, ok] == values[ok]).all()
    np.testing.assert_allclose(org.S @ low[org.bottom], low, rtol=0, atol=1e-6 * np.abs(y).max())
    if nonnegative:
        assert low.min() >= 0.0
        assert info["nonnegative_converged"] and info["nonnegative_iterations"] > 0
        assert (dense_zero_constrained(org, y, rc.shrunk_covariance(E)[0]) < -1e-6).any()


def test_many_columns_are_solved_in_blocks_with_one_factorisation(org, monkeypatch):
    y, E = base_and_residuals(org, horizon=3)
    wide = np.repeat(y, 200, axis=1) + np.random.default_rng(2).normal(0, 50, (org.n_nodes, 600))
    calls = []
    splu = rc.spla.splu
    monkeypatch.setattr(rc.spla, "splu", lambda *a, **k: calls.append(1) or splu(*a, **k))
    monkeypatch.setattr(rc, "PROJECTION_BLOCK", 64)
    low, _ = rc.MinTrace("mint_shrink", max_dense_nodes=10).reconcile(wide, org, residuals=E)
    assert len(calls) == 1  # factored once for 600 columns, solved 64 at a time
    expected = dense_zero_constrained(org, wide, rc.shrunk_covariance(E)[0])
    np.testing.assert_allclose(low, expected, rtol=1e-8, atol=1e-8 * np.abs(wide).max())


def test_a_hierarchy_of_bottoms_only_returns_the_base():
    S = sp.identity(3, format="csr")
    y = np.array([[1.0, -2.0], [3.0, 4.0], [5.0, 6.0]])
    E = np.random.default_rng(0).normal(size=(3, 12))
    low, _ = rc.MinTrace("mint_shrink", max_dense_nodes=1).reconcile(y, S, residuals=E)
    np.testing.assert_array_equal(low, y)


def test_bottoms_held_at_zero_condition_the_solution_without_a_new_factorisation(org, monkeypatch):
    """Columns below 0 are solved on the one factor; the same as factoring the held rows in."""
    y, E = base_and_residuals(org, horizon=3, shift=1500.0)
    wide = np.repeat(y, 12, axis=1) + np.random.default_rng(5).normal(0, 400, (org.n_nodes, 36))
    locked = {0: np.abs(wide[0]) * 1.02}
    calls = []
    splu = rc.spla.splu
    monkeypatch.setattr(rc.spla, "splu", lambda *a, **k: calls.append(1) or splu(*a, **k))
    low, info = rc.MinTrace("mint_shrink", nonnegative=True, max_dense_nodes=10).reconcile(
        wide, org, residuals=E, locked=locked
    )
    assert len(calls) == 1 and info["nonnegative_iterations"] >= 36
    monkeypatch.setattr(rc, "HELD_CONDITIONED_MAX", 0)  # every step factors its held rows in
    refactored, info_r = rc.MinTrace("mint_shrink", nonnegative=True, max_dense_nodes=10).reconcile(
        wide, org, residuals=E, locked=locked
    )
    assert len(calls) > 36
    assert info_r["nonnegative_iterations"] == info["nonnegative_iterations"]
    np.testing.assert_allclose(low, refactored, rtol=1e-8, atol=1e-8 * np.abs(wide).max())
    dense, _ = rc.MinTrace("mint_shrink", nonnegative=True).reconcile(
        wide, org, residuals=E, locked=locked
    )
    np.testing.assert_allclose(low, dense, rtol=1e-8, atol=1e-8 * np.abs(wide).max())
    assert low.min() == 0.0 and (low[0] == locked[0]).all()


def test_paths_that_factor_their_held_rows_in_leave_the_conditioning_factor_alone(org, monkeypatch):
    """Paths with many bottoms below 0 factor them in on a solver of their own
    (:meth:`_LowRankProjection.scratch`): the factor without held bottoms and the rows of
    the held bottoms stay for the paths that condition on them, each row computed once."""
    y, E = base_and_residuals(org, horizon=3, shift=1500.0)
    wide = np.repeat(y, 12, axis=1) + np.random.default_rng(5).normal(0, 800, (org.n_nodes, 36))
    locked = {0: np.abs(wide[0]) * 1.02}
    rec = rc.MinTrace("mint_shrink", nonnegative=True, max_dense_nodes=10)
    conditioned, info = rec.reconcile(wide, org, residuals=E, locked=locked)
    rows = []
    sigma = rc._LowRankProjection._sigma
    monkeypatch.setattr(
        rc._LowRankProjection,
        "_sigma",
        lambda self, J, weights=None: (
            (rows.append(J.size) if weights is None else None) or sigma(self, J, weights)
        ),
    )
    monkeypatch.setattr(rc, "HELD_CONDITIONED_MAX", 26)  # about half the columns have more
    mixed, info_m = rec.reconcile(wide, org, residuals=E, locked=locked)
    assert 0 < sum(rows) <= org.n_bottom  # every held bottom's row once, on one factor
    assert info_m["nonnegative_iterations"] == info["nonnegative_iterations"]
    np.testing.assert_allclose(mixed, conditioned, rtol=1e-8, atol=1e-8 * np.abs(wide).max())
    assert mixed.min() == 0.0 and (mixed[0] == locked[0]).all()


def base_quantiles(h: rc.Hierarchy, horizon: int = 3, shift: float = 1500.0) -> np.ndarray:
    """p10, p50 and p90 of every node around base forecasts, wide enough to go below 0."""
    y, _ = base_and_residuals(h, horizon=horizon, shift=shift)
    spread = 1.2816 * 500.0 * np.sqrt(np.asarray(h.S.sum(1)))  # (n, 1): sd 500 per bottom
    return np.stack([y - spread, y, y + 1.5 * spread], axis=-1)


def test_the_sampler_draws_a_month_at_a_time_above_the_dense_limit(org):
    """sample_reconciled is the one entry point: above max_dense_nodes it hands over to
    sample_reconciled_by_month (same seed, same paths); at or below it, all months at once."""
    q = base_quantiles(org)
    _, E = base_and_residuals(org)
    settings = rc.SampleSettings(n_samples=30, seed=5)
    common = dict(residuals=E, nonnegative=True, settings=settings)
    args = (q, [0.1, 0.5, 0.9], org)
    got = rc.sample_reconciled(*args, max_dense_nodes=10, **common)
    by_month = rc.sample_reconciled_by_month(*args, max_dense_nodes=10, **common)
    np.testing.assert_array_equal(got.samples, by_month.samples)
    assert got.info["checks"]["locks_held"] and got.info["covariance"].startswith("diagonal + rank")
    at_once = rc.sample_reconciled(*args, max_dense_nodes=org.n_nodes, **common)
    assert "checks" not in at_once.info and at_once.info["covariance"] == "dense"


def test_sampled_paths_by_month_equal_the_dense_paths_with_the_same_seed(org):
    q = base_quantiles(org)
    _, E = base_and_residuals(org)
    g0 = org.index("region", "G0")
    locked = {0: np.r_[40_000.0, np.nan, 42_000.0], int(g0): np.full(3, 9_000.0)}
    settings = rc.SampleSettings(n_samples=40, seed=3)
    args = (q, [0.1, 0.5, 0.9], org)
    common = dict(residuals=E, nonnegative=True, locked=locked, settings=settings)
    dense = rc.sample_reconciled_by_month(*args, max_dense_nodes=10**6, **common)
    low = rc.sample_reconciled_by_month(*args, max_dense_nodes=10, **common)
    assert dense.info["covariance"] == "dense"
    assert low.info["covariance"] == "diagonal + rank 24 (above 10 nodes)"
    assert low.samples.shape == (org.n_nodes, 3, 40)
    scale = np.abs(dense.samples).max()
    np.testing.assert_allclose(low.samples, dense.samples, rtol=1e-7, atol=1e-7 * scale)
    np.testing.assert_allclose(low.quantiles, dense.quantiles, rtol=1e-7, atol=1e-7 * scale)
    # every path: adds up, non-negative, the locks held exactly (NaN: that month not locked)
    S = org.S.toarray()
    bottoms = low.samples[org.bottom]
    np.testing.assert_allclose(
        np.einsum("nb,bts->nts", S, bottoms), low.samples, rtol=0, atol=1e-9 * scale
    )
    assert low.samples.min() >= 0.0
    assert (low.samples[0, 0] == 40_000.0).all() and (low.samples[0, 2] == 42_000.0).all()
    assert np.ptp(low.samples[0, 1]) > 0  # the total is drawn where it is not locked
    assert (low.samples[g0] == 9_000.0).all()
    assert low.info["checks"]["locks_held"] and low.info["checks"]["min"] == 0.0
    assert low.info["checks"]["coherence_gap"] < 1e-9
    # the bound was binding: without it some paths go below 0
    free = rc.sample_reconciled_by_month(
        *args,
        max_dense_nodes=10,
        nonnegative=False,
        **{k: v for k, v in common.items() if k != "nonnegative"},
    )
    assert free.samples[org.bottom].min() < -100.0
    assert low.info["nonnegative_iterations"] > 0 and low.info["nonnegative_converged"]
    # the same seed gives the same paths; another seed others
    again = rc.sample_reconciled_by_month(*args, max_dense_nodes=10, **common)
    np.testing.assert_array_equal(again.samples, low.samples)
    other = rc.sample_reconciled_by_month(
        *args, max_dense_nodes=10, **{**common, "settings": rc.SampleSettings(40, seed=4)}
    )
    assert not np.allclose(other.samples, low.samples)


@pytest.mark.slow
def test_sampled_paths_by_month_hold_nothing_nodes_by_nodes(monkeypatch):
    """About 4,000 nodes: the peak of numpy's allocations stays far below one n x n matrix."""
    import tracemalloc

    # the solver's working memory scaled down with the hierarchy: 32 columns at a time, at
    # most 4 MB of held bottoms' rows kept (at 45,000 nodes: 256 columns and 1 GB, 8 n^2 16 GB)
    monkeypatch.setattr(rc, "HELD_COLUMNS_MB", 4)
    monkeypatch.setattr(rc, "PROJECTION_BLOCK", 32)

    h = organisation(reps=1000, regions=4, managers=40)
    assert h.n_nodes > 4000
    q = base_quantiles(h, horizon=1, shift=800.0)
    _, E = base_and_residuals(h, horizon=1)
    locked = {0: np.full(1, float(q[0, 0, 1]))}
    settings = rc.SampleSettings(n_samples=10, seed=1)
    tracemalloc.start()
    out = rc.sample_reconciled_by_month(
        q, [0.1, 0.5, 0.9], h, residuals=E, locked=locked, settings=settings, keep_samples=False
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.info["covariance"].startswith("diagonal + rank 24")
    assert peak < 8 * h.n_nodes**2 / 4, f"peak {peak / 1e6:.0f} MB"
    assert out.samples.shape == (h.n_nodes, 1, 0) and out.quantiles.shape == (h.n_nodes, 1, 3)
    assert out.info["nonnegative_iterations"] >= 10 and out.info["nonnegative_converged"]
    checks = out.info["checks"]
    assert checks["locks_held"] and checks["min"] == 0.0 and checks["coherence_gap"] < 1e-9
    assert (out.quantiles[0, 0] == q[0, 0, 1]).all()  # the locked total's every quantile
    assert (np.diff(out.quantiles, axis=-1) >= 0).all()


def test_reconcile_dataset_draws_a_month_at_a_time_above_the_dense_size(tmp_path, monkeypatch):
    import pandas as pd

    from revmodel import forecast

    coords = {
        "segment": ["SMB"],
        "region": ["EMEA", "APAC"],
        "rep": ["r1", "r2"],
        "month": pd.date_range("2024-01-01", periods=24, freq="MS"),
    }
    rng = np.random.default_rng(3)
    bookings = (("segment", "region", "rep", "month"), rng.gamma(2.0, 50.0, (1, 2, 2, 24)))
    ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    fc = forecast.forecast_cube(ds, horizon=3, cache_dir=tmp_path, progress=False)
    settings = rc.SampleSettings(n_samples=60, seed=9)
    monkeypatch.setattr(rc, "MINT_SHRINK_MAX_NODES", 3)
    out, _ = forecast.reconcile_dataset(fc, method="wls_struct", settings=settings)
    nf = forecast.node_forecasts(None, fc)
    expected = rc.sample_reconciled_by_month(
        fc["node_forecast"].values,
        fc["quantile"].values,
        nf.hierarchy,
        method="wls_struct",
        residuals=nf.residuals,
        settings=settings,
        means=fc["node_mean"].values,
    )
    np.testing.assert_array_equal(out["node_forecast"].values, expected.quantiles)
    # centred on the reconciled point forecast, month by month too
    np.testing.assert_allclose(expected.samples.mean(-1), out["node_mean"].values, rtol=1e-9)
    assert expected.info["checks"]["coherence_gap"] < 1e-12 and expected.info["checks"]["min"] >= 0
    assert (np.diff(out["node_forecast"].values, axis=-1) >= 0).all()


def test_sampled_paths_by_month_scale_each_month_ahead_by_its_own_factor(org):
    q = base_quantiles(org)
    _, E = base_and_residuals(org)
    levels = tuple(dict.fromkeys(org.nodes["level"].tolist()))
    ones = (1.0,) * len(levels)
    scale = rc.BandScale(levels, ones, (30,) * len(levels), ((1.0, 3.0),) * len(levels))
    factors = np.ones(q.shape[:2])
    factors[:, 1:] = 3.0  # month 1 as it is, months 2 and 3 (beyond the last step) x 3
    common = dict(residuals=E, max_dense_nodes=10)
    settings = rc.SampleSettings(n_samples=20, seed=5)
    scaled = rc.sample_reconciled_by_month(
        q, [0.1, 0.5, 0.9], org, settings=rc.SampleSettings(20, seed=5, scale=scale), **common
    )
    by_hand = rc.scale_band(q, [0.1, 0.5, 0.9], factors)
    expected = rc.sample_reconciled_by_month(
        by_hand, [0.1, 0.5, 0.9], org, settings=settings, **common
    )
    np.testing.assert_allclose(scaled.samples, expected.samples, rtol=1e-9, atol=1e-6)
    assert scaled.info["band_scale"] == dict.fromkeys(levels, 1.0)
    plain = rc.sample_reconciled_by_month(q, [0.1, 0.5, 0.9], org, settings=settings, **common)
    np.testing.assert_allclose(scaled.samples[:, 0], plain.samples[:, 0], rtol=1e-9, atol=1e-6)
    assert np.ptp(scaled.samples[0, 2]) > 1.5 * np.ptp(plain.samples[0, 2])
