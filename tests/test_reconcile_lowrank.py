"""The low-rank ``mint_shrink`` solver (zero-constrained form) against dense MinT-shrink."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import xarray as xr

from revmodel import reconcile as rc


def organisation(reps: int = 60, segments: int = 3, regions: int = 3, managers: int = 6):
    """A few hundred nodes: reps in one region each, selling in every segment."""
    rng = np.random.default_rng(0)
    rep_region = rng.integers(0, regions, reps)
    mask = np.zeros((segments, regions, reps), dtype=bool)
    mask[:, rep_region, np.arange(reps)] = True
    mask[0, rep_region[:5], np.arange(5)] = False  # a few reps without the first segment
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
