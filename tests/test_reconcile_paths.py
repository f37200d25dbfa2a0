"""Sampled reconciled paths centred on the reconciled point forecast.

Every path adds up, holds its locks and is >= 0; every node's paths average to the
point forecast :func:`revmodel.reconcile.reconcile_cube` gives from the same base
means; a node's stated quantiles are kept (only a tail is stretched to reach its mean).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from revmodel import reconcile as rc
from tests.test_reconcile import (
    _gaussian_base,
    assert_coherent,
    coverage_by_level,
    residuals_for,
    tiny_cube,
)

LEVELS = np.array([0.1, 0.5, 0.9])


@pytest.fixture(scope="module")
def hierarchy() -> rc.Hierarchy:
    return rc.hierarchy_from_cube(tiny_cube())


def _sparse_base(h: rc.Hierarchy, horizon: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Skewed, mostly-zero base quantiles and means far from their medians (sparse reps).

    Each bottom books nothing with probability p0 and otherwise an exponential deal: its
    exact 10/50/90% quantiles and mean; the aggregates get Gaussian-approximated ones.
    """
    rng = np.random.default_rng(11)
    m = h.n_bottom
    p0 = np.array([0.95, 0.7, 0.3, 0.5, 0.92, 0.0, 0.6])[:m]
    size = rng.uniform(2000.0, 9000.0, m)
    q = np.zeros((m, 3))
    for j, lv in enumerate(LEVELS):  # P(X <= x) = p0 + (1 - p0)(1 - exp(-x / size))
        pos = np.clip((lv - p0) / np.maximum(1 - p0, 1e-12), 0.0, None)
        q[:, j] = np.where(lv > p0, -size * np.log1p(-np.minimum(pos, 1 - 1e-12)), 0.0)
    mean_b = (1 - p0) * size
    sd_b = np.sqrt((1 - p0) * 2 * size**2 - mean_b**2)
    S = h.S.toarray()
    mean = S @ mean_b
    sd = np.sqrt(S**2 @ sd_b**2)
    node_q = np.maximum(mean[:, None] + stats.norm.ppf(LEVELS)[None, :] * sd[:, None], 0.0)
    node_q[h.bottom] = q
    return (
        np.repeat(node_q[:, None, :], horizon, axis=1),
        np.repeat(mean[:, None], horizon, axis=1),
    )


def _point_forecast(h, means, locked=None, residuals=None, method="mint_shrink"):
    """The reconciled point forecast of the base means, as reconcile_cube makes it."""
    locks = rc._resolve_locks(h, locked, h.n_nodes, means.shape[1])
    out, _ = rc.reconciler(method, nonnegative=True).reconcile(means, h, residuals, locks)
    return out


@pytest.mark.parametrize("by_month", [False, True])
def test_paths_average_to_the_reconciled_forecast_add_up_hold_locks_and_stay_nonnegative(
    hierarchy, by_month
):
    h = hierarchy
    q, means = _sparse_base(h)
    E = residuals_for(h)
    m1 = h.index("manager", "M1")
    locked = {("total", ()): [30000.0, np.nan, 26000.0], ("manager", "M1"): 9000.0}
    res = rc.sample_reconciled(
        q, LEVELS, h, "mint_shrink", E, nonnegative=True, locked=locked,
        settings=rc.SampleSettings(n_samples=400, seed=2), means=means,
        max_dense_nodes=3 if by_month else None,
    )  # fmt: skip
    assert res.info.get("by_month", False) is by_month
    s = res.samples
    for t in range(3):
        assert_coherent(h, s[:, t, :], rtol=1e-9)  # every path adds up
    assert s.min() >= 0.0 and res.quantiles.min() >= 0.0
    np.testing.assert_array_equal(s[0, 0], np.full(400, 30000.0))
    np.testing.assert_array_equal(s[0, 2], np.full(400, 26000.0))
    np.testing.assert_array_equal(s[m1], np.full((3, 400), 9000.0))
    # the point forecast is the reconciled base means (computed here independently)
    expected = _point_forecast(h, means, locked, E) if not by_month else None
    if expected is not None:
        np.testing.assert_allclose(res.mean, expected, rtol=1e-7, atol=1e-6)
    # in month 2 (only M1 locked) the nodes with no bottom under M1 average exactly to
    # it; under a lock, the paths average to within what the reconciler gave the
    # locked subtree (a few percent of the top)
    S = h.S.tocsr()
    under_m1 = set(S[m1].indices)
    free = [i for i in range(h.n_nodes) if not under_m1 & set(S[i].indices)]
    assert len(free) >= 5
    np.testing.assert_allclose(s[free, 1].mean(-1), res.mean[free, 1], rtol=1e-9, atol=1e-6)
    gap = np.abs(s.mean(-1) - res.mean).max() / np.abs(res.mean).max()
    assert res.info["mean_gap"] == pytest.approx(gap, rel=1e-9, abs=1e-12)
    assert gap < 0.08


def test_uncentred_paths_sit_above_the_reconciled_forecast_on_sparse_data(hierarchy):
    """What the centring fixes: floored draws from the quantiles alone average too high."""
    h = hierarchy
    q, means = _sparse_base(h)
    settings = rc.SampleSettings(n_samples=2000, seed=4)
    E = residuals_for(h)
    raw = rc.sample_reconciled(q, LEVELS, h, "mint_shrink", E, settings=settings)
    centred = rc.sample_reconciled(q, LEVELS, h, "mint_shrink", E, settings=settings, means=means)
    point = _point_forecast(h, means, residuals=E)
    assert raw.mean is None
    off = np.abs(raw.samples.mean(-1) - point) / np.maximum(point, 1.0)
    assert off.max() > 0.05  # the quantiles alone lose the sparse reps' means
    np.testing.assert_allclose(centred.samples.mean(-1), point, rtol=1e-9, atol=1e-6)


def test_a_sparse_node_keeps_its_quantiles_and_reaches_its_mean_through_its_upper_tail():
    """A rep that sells in 5% of months: p10 = p50 = p90 = 0, yet a mean of 400."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, 1, 20000))
    q = np.zeros((1, 1, 3))
    d = rc.quantile_paths(z, q, LEVELS)
    out = rc._stretch_tails(d, z, LEVELS, np.array([[400.0]]))
    assert out.mean() == pytest.approx(400.0, rel=1e-12)
    np.testing.assert_allclose(np.quantile(out[0, 0], LEVELS), [0.0, 0.0, 0.0], atol=1e-9)
    assert (out > 0).mean() == pytest.approx(0.1, abs=0.01)  # only the draws above p90 move
    # a mean below what the quantiles imply stretches the lower tail instead
    q2 = np.array([[[80.0, 100.0, 120.0]]])
    d2 = rc.quantile_paths(z, q2, LEVELS)
    out2 = rc._stretch_tails(d2, z, LEVELS, np.array([[95.0]]))
    assert out2.mean() == pytest.approx(95.0, rel=1e-12)
    np.testing.assert_allclose(np.quantile(out2[0, 0], LEVELS), [80.0, 100.0, 120.0], rtol=0.01)


def test_clipped_shift_solves_the_floored_mean_exactly():
    rng = np.random.default_rng(1)
    y = rng.normal(100.0, 300.0, (50, 200))
    target = rng.uniform(0.0, 400.0, 50)
    target[:3] = 0.0
    c = rc._clipped_shift(y, target)
    np.testing.assert_allclose(np.maximum(y + c[:, None], 0.0).mean(1), target, atol=1e-9)


def test_band_holds_the_reconciled_forecast_and_80_percent_of_a_known_distribution(hierarchy):
    """Gaussian hierarchy with known means: the band is where it should be and centred."""
    h = hierarchy
    q, levels, draw, S = _gaussian_base(h, horizon=2)
    mu = draw(20_000).mean(1)
    resid = S @ (draw(240) - mu[:, None])
    means = np.repeat((S @ mu)[:, None], 2, axis=1)
    res = rc.sample_reconciled(
        q, levels, h, "mint_shrink", resid, nonnegative=True,
        settings=rc.SampleSettings(n_samples=1000, seed=1), means=means,
    )  # fmt: skip
    lo, hi = res.quantiles[..., 0], res.quantiles[..., 2]
    assert np.all((lo <= res.mean) & (res.mean <= hi))
    np.testing.assert_allclose(res.samples.mean(-1), res.mean, rtol=1e-9)
    for level, got in coverage_by_level(h, lo, hi, S @ draw(4000)).items():
        assert 0.74 <= got <= 0.86, (level, got)


def test_the_band_misses_the_mean_only_where_most_paths_are_zero(hierarchy):
    """A sparse rep's mean may lie above its 90% quantile (0): the only way it is outside."""
    h = hierarchy
    q, means = _sparse_base(h)
    res = rc.sample_reconciled(
        q, LEVELS, h, "bottom_up", settings=rc.SampleSettings(n_samples=1000, seed=5),
        means=means,
    )  # fmt: skip
    lo, hi = res.quantiles[..., 0], res.quantiles[..., 2]
    outside = (res.mean < lo - 1e-6) | (res.mean > hi + 1e-6)
    assert outside.any()  # the 95%-zero rep
    assert np.all(res.mean[outside] > hi[outside])  # never below the band
    assert np.all((res.samples[outside] > 1e-6).mean(-1) < 0.15)  # mostly-zero nodes only
    assert not outside[h.index("total", ())].any()


@pytest.mark.parametrize("locked", [None, {("manager", "M1"): 2500.0}])
def test_columns_solved_together_give_the_paths_of_one_column_at_a_time(
    hierarchy, monkeypatch, locked
):
    """The bounded solve of every path at once (dense MinT, no locks) takes each path's own steps.

    Same iterations, same paths to rounding; with a lock every path is solved alone
    as before. Paths still add up, hold the lock and are >= 0.
    """
    h = hierarchy
    q, means = _sparse_base(h, horizon=2)
    settings = rc.SampleSettings(n_samples=300, seed=5)
    kwargs = dict(
        method="mint_shrink", residuals=residuals_for(h), nonnegative=True, locked=locked,
        settings=settings, means=means,
    )  # fmt: skip
    together = rc.sample_reconciled(q, LEVELS, h, **kwargs)
    monkeypatch.setattr(rc, "NONNEGATIVE_BATCH", False)
    alone = rc.sample_reconciled(q, LEVELS, h, **kwargs)
    assert together.info["nonnegative_iterations"] > 300  # most paths needed the bounds
    assert together.info["nonnegative_iterations"] == alone.info["nonnegative_iterations"]
    assert together.info["nonnegative_converged"] and alone.info["nonnegative_converged"]
    scale = np.abs(alone.samples).max()
    np.testing.assert_allclose(together.samples, alone.samples, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(together.quantiles, alone.quantiles, rtol=0, atol=1e-12 * scale)
    for t in range(2):
        assert_coherent(h, together.samples[:, t, :], rtol=1e-9)
    assert together.samples.min() >= 0.0
    if locked:
        np.testing.assert_array_equal(
            together.samples[h.index("manager", "M1")], np.full((2, 300), 2500.0)
        )


def test_conditioned_columns_solve_what_the_objective_solves():
    """:func:`_dense_free_solves` (the free solution conditioned on each column's held
    bottoms) against :meth:`_Objective.solve` (the free bottoms' system factored anew)."""
    rng = np.random.default_rng(2)
    h = rc.hierarchy_from_cube(tiny_cube())
    resid = residuals_for(h)
    W, _ = rc.shrunk_covariance(resid)
    obj = rc._Objective(h.S.tocsr(), W, h.bottom)
    m = h.n_bottom
    y = rng.normal(1000.0, 400.0, (h.n_nodes, 8))
    active = rng.random((m, 8)) < 0.4
    active[:, 0] = False  # nothing held: the free solution
    active[:, 1] = True  # everything held: 0
    none = sp.csr_matrix((0, m))
    free, _ = obj.solve(y, np.ones(m, dtype=bool), none, np.zeros((0, 8)))  # as _solve_gls
    b, nu = rc._dense_free_solves(obj, free, active)
    for j in range(8):
        bj, nuj = obj.solve(y[:, [j]], ~active[:, j], none, np.zeros((0, 1)))
        np.testing.assert_allclose(b[:, j], bj[:, 0], rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(nu[active[:, j], j], nuj[active[:, j], 0], rtol=1e-9, atol=1e-7)
        assert (b[active[:, j], j] == 0).all() and (nu[~active[:, j], j] == 0).all()
    np.testing.assert_array_equal(b[:, 1], 0.0)
    # the KKT conditions: A b - g is the multiplier at the held bottoms and 0 at the free ones
    g = obj.WiS.T @ y
    scale = np.abs(g).max()
    np.testing.assert_allclose(obj.A @ b - g, nu, rtol=0, atol=1e-9 * scale)


def test_sampled_band_is_the_same_whatever_the_blas_thread_count(tmp_path):
    """A plan's band is the same on this machine and on a cluster's workers (one BLAS thread
    each): the reconciled draws of a sample company's forecast, to the last bit."""
    from threadpoolctl import threadpool_limits

    from revmodel import cube, forecast, sample

    ds = cube.build_cube(sample.generate(reps=12, months=30, seed=3))
    fc = forecast.forecast_cube(ds, horizon=4, progress=False, cache_dir=tmp_path)
    with threadpool_limits(2, user_api="blas"):
        two, _ = forecast.reconcile_dataset(fc, method="mint_shrink")
    with threadpool_limits(1, user_api="blas"):
        one, _ = forecast.reconcile_dataset(fc, method="mint_shrink")
    np.testing.assert_array_equal(two["node_forecast"].values, one["node_forecast"].values)
    np.testing.assert_array_equal(two["forecast"].values, one["forecast"].values)


def test_band_moves_with_its_inputs_by_their_own_size_not_more():
    """One region: the total and the region group the bottoms alike, so their shared shocks
    are interchangeable. Their weights are split evenly, and a change in the last bits of the
    base quantiles (what another solver or CPU gives) moves the weights and the reconciled
    band by about as little, not by a different draw of the shocks."""
    from tests.test_reconcile import REGIONS, REP_REGION, REPS

    da = tiny_cube(3)
    reps = [r for r, k in zip(REPS, REP_REGION, strict=True) if k == 0]
    h = rc.hierarchy_from_cube(da.sel(region=[REGIONS[0]], rep=reps))
    assert h.n_nodes and (np.asarray(h.S[h.index("region", REGIONS[0])].todense()) == 1).all()
    q, means = _sparse_base(h, horizon=3)
    resid = residuals_for(h)
    levels = [0.1, 0.5, 0.9]
    nudged = q * (1.0 + 1e-15 * np.random.default_rng(1).choice([-1.0, 1.0], q.shape))
    cov = rc._correlation_sampler(resid[h.bottom], h.n_bottom, True)
    one, two = (rc.shared_shocks(cov, x, levels, h) for x in (q, nudged))
    total, region = one.levels.index("total"), one.levels.index("region")
    assert one.kappa[total].max() > 0.01  # the aggregates need a shared shock
    np.testing.assert_allclose(one.kappa[total], one.kappa[region], rtol=1e-6)
    np.testing.assert_allclose(one.kappa, two.kappa, rtol=0, atol=1e-7)
    kwargs = dict(
        method="mint_shrink", residuals=resid, nonnegative=True, means=means,
        settings=rc.SampleSettings(n_samples=400, seed=4),
    )  # fmt: skip
    a, b = (rc.sample_reconciled(x, levels, h, **kwargs) for x in (q, nudged))
    scale = np.abs(a.quantiles).max()
    np.testing.assert_allclose(a.quantiles, b.quantiles, rtol=0, atol=1e-6 * scale)


def test_shared_shock_weights_below_kappa_zero_are_zero(monkeypatch):
    """The fit's active bounds come back off by its rounding error (1e-17 to 1e-10 here),
    which a shock's square root would turn into up to 1e-5 of a score: such weights are 0."""
    from tests.test_reconcile import REGIONS, REP_REGION, REPS

    da = tiny_cube(3)
    reps = [r for r, k in zip(REPS, REP_REGION, strict=True) if k == 0]
    h = rc.hierarchy_from_cube(da.sel(region=[REGIONS[0]], rep=reps))
    q, _ = _sparse_base(h, horizon=3)
    cov = rc._correlation_sampler(residuals_for(h)[h.bottom], h.n_bottom, False)
    kappa = rc.shared_shocks(cov, q, [0.1, 0.5, 0.9], h).kappa
    assert kappa.max() > 0.01 and ((kappa == 0) | (kappa >= rc.KAPPA_ZERO)).all(), kappa
    monkeypatch.setattr(rc, "KAPPA_ZERO", 0.0)
    raw = rc.shared_shocks(cov, q, [0.1, 0.5, 0.9], h).kappa
    assert ((raw > 0) & (raw < 1e-9)).any(), raw  # what the rule zeroes
    np.testing.assert_allclose(raw, kappa, rtol=0, atol=1e-9)
