"""Conversion and slippage learned from history, the in-quarter forecast and its backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from revmodel import inquarter as IQ
from revmodel import learned, pipeline

#: Known rates of the synthetic history: segment -> (win rate, share pushed one month).
RATES = {"A": (0.6, 0.4), "B": (0.3, 0.1)}


def synthetic(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deals created over two years in ``proposal``, expected on the 15th two months
    later; a known share is pushed one month five days before; closed on the (last)
    expected date, won with a known rate. Returns (history, labels)."""
    rng = np.random.default_rng(seed)
    seg = np.where(rng.random(n) < 0.5, "A", "B")
    win = np.asarray([RATES[s][0] for s in seg])
    push = np.asarray([RATES[s][1] for s in seg])
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    expected = (created + pd.offsets.MonthBegin(2)) + pd.Timedelta(days=14)
    pushed = rng.random(n) < push
    won = rng.random(n) < win
    amount = np.round(rng.lognormal(10, 0.5, n), -2)
    rows = []
    for i in range(n):
        oid = f"S{i:05d}"
        rows.append((oid, created[i], "proposal", amount[i], expected[i]))
        final = expected[i]
        if pushed[i]:
            final = expected[i] + pd.DateOffset(months=1)
            rows.append((oid, expected[i] - pd.Timedelta(days=5), "proposal", amount[i], final))
        rows.append((oid, final, "won" if won[i] else "lost", amount[i], final))
    hist = pd.DataFrame(
        rows, columns=["opportunity_id", "changed_at", "stage", "amount", "close_date"]
    )
    labels = pd.DataFrame(
        {"segment": seg, "region": "R", "manager": "M", "rep": "r"},
        index=pd.Index([f"S{i:05d}" for i in range(n)], name="opportunity_id"),
    )
    return hist, labels


@pytest.fixture(scope="module")
def synth():
    return synthetic()


def test_conversion_recovers_known_win_rates(synth):
    hist, labels = synth
    conv = learned.stage_conversion(hist, "2026-06-30", labels, weight="count")
    for seg, (win, _) in RATES.items():
        rows = conv[(conv["segment"] == seg) & (conv["closed"] > 200)]
        assert len(rows) >= 2
        assert rows["win_rate"].to_numpy() == pytest.approx(win, abs=0.05)
    p = learned.win_probability(conv, ["A", "B", "C"], ["proposal"] * 3, [0, 1, 5])
    assert p[0] == pytest.approx(0.6, abs=0.05) and p[1] == pytest.approx(0.3, abs=0.05)
    # an unseen segment, 3+ months out (a cell never observed): the pooled stage rate
    assert not ((conv["segment"] == "(all)") & (conv["months_to_close"] == 3)).any()
    pooled = conv[conv["segment"] == "(all)"]
    assert p[2] == pytest.approx(pooled["won"].sum() / pooled["closed"].sum())


def test_slippage_summary_recovers_how_often_and_how_far(synth):
    hist, labels = synth
    summary = learned.slippage_summary(hist, "2026-06-30", labels).set_index("segment")
    for seg, (_, push) in RATES.items():
        row = summary.loc[seg]
        assert row["stage"] == "proposal"
        assert row["pushed_share"] == pytest.approx(push, abs=0.04)
        assert 28 <= row["mean_push_days"] <= 31
        assert row["pulled_in_share"] == 0.0


def test_slippage_distribution_hand_computed():
    hist = pd.DataFrame(
        {
            "opportunity_id": ["X", "X", "X"],
            "changed_at": pd.to_datetime(["2026-01-10", "2026-02-10", "2026-03-15"]),
            "stage": ["proposal", "proposal", "won"],
            "amount": [100.0, 100.0, 100.0],
            "close_date": pd.to_datetime(["2026-02-15", "2026-03-15", "2026-03-15"]),
        }
    )
    slip = learned.slippage(hist, "2026-06-30")
    # open at the ends of January (expected February) and February (expected March);
    # won in March: offsets +1 and 0
    assert slip.loc[1, "(all)"] == 0.5 and slip.loc[0, "(all)"] == 0.5
    assert slip["(all)"].sum() == pytest.approx(1.0)
    # the deal is not won by February's end: nothing learned yet
    assert learned.slippage(hist, "2026-02-28").loc[0, "(all)"] == 1.0


def test_slippage_learned_is_wider_where_deals_slip_more(synth):
    hist, labels = synth
    slip = learned.slippage(hist, "2026-06-30", labels)
    assert slip.loc[1, "A"] > 2 * slip.loc[1, "B"]
    assert slip.loc[-6:-1].to_numpy().sum() == 0.0


def test_weighted_pipeline_from_history_uses_recorded_deals(synth):
    hist, labels = synth
    opps = hist.drop_duplicates("opportunity_id", keep="last").assign(
        segment=lambda d: labels["segment"].reindex(d["opportunity_id"]).to_numpy()
    )
    da = pipeline.weighted_pipeline(opps, "2025-03", horizon=4, history=hist, labels=labels)
    assert da.attrs["estimated_from"] == "history"
    state = hist[hist["changed_at"] <= "2025-03-31"].drop_duplicates("opportunity_id", keep="last")
    open_ = state[state["stage"] == "proposal"]
    assert da.attrs["open_deals"] == len(open_)
    assert da.attrs["open_amount"] == pytest.approx(open_["amount"].sum())
    # expected bookings stay below the open amount and above the B win rate times it
    assert 0.3 * open_["amount"].sum() < float(da.sum()) < open_["amount"].sum()


# --------------------------------------------------------------------------- in-quarter


def test_in_quarter_forecast_parts_on_a_small_history():
    rows = [
        # won in the quarter before as_of: closed
        ("W", "2026-01-05", "proposal", 100.0, "2026-02-10"),
        ("W", "2026-02-10", "won", 100.0, "2026-02-10"),
        # lost in the quarter: nothing
        ("L", "2026-01-05", "proposal", 50.0, "2026-02-12"),
        ("L", "2026-02-12", "lost", 50.0, "2026-02-12"),
        # open, expected in March
        ("O", "2026-01-20", "negotiation", 200.0, "2026-03-20"),
        # a past quarter: a deal created on day 40 of it and won in it
        ("P", "2025-12-10", "proposal", 70.0, "2026-01-20"),
        ("P", "2026-01-20", "won", 70.0, "2026-01-20"),
    ]
    hist = pd.DataFrame(
        rows, columns=["opportunity_id", "changed_at", "stage", "amount", "close_date"]
    )
    quarter = IQ.Quarter.of("2026-02-01")
    assert quarter.end == pd.Timestamp("2026-04-30")
    conversion = pd.DataFrame(
        {
            "segment": "(all)",
            "stage": "negotiation",
            "months_to_close": [0, 1, 2, 3],
            "closed": 1.0,
            "won": 1.0,
            "win_rate": 0.5,
        }
    )
    slip = pd.DataFrame({"(all)": [1.0]}, index=pd.Index([0], name="offset_months"))
    rates = IQ.Learned(conversion, slip)
    f = IQ.in_quarter_forecast(hist, quarter, "2026-02-28", rates=rates, lookback=1)
    assert f["closed"] == 100.0
    assert f["open"] == 100.0  # 200 x 0.5 x P(March in the quarter) = 1
    assert f["not_created"] == 0.0  # the past deal was created before day 27 of its quarter
    assert f["forecast"] == 200.0
    # one open deal: sd = 200 x sqrt(0.25) = 100; 80 % interval +-128.16, not below closed
    assert f["upper"] == pytest.approx(200.0 + 128.155, abs=0.01)
    assert f["lower"] == 100.0
    early = IQ.in_quarter_forecast(hist, quarter, "2026-02-01", rates=rates, lookback=1)
    assert early["closed"] == 0.0


def test_in_quarter_backtest_week_by_week(synth):
    hist, labels = synth
    quarters = [IQ.Quarter.of(q) for q in ("2025-07-01", "2025-10-01")]
    bt = IQ.in_quarter_backtest(hist, quarters, labels, weeks=13)
    assert list(bt.columns) == list(IQ.BACKTEST_COLUMNS)
    assert len(bt) == 26
    parts = bt["closed"] + bt["open"] + bt["not_created"]
    np.testing.assert_allclose(bt["forecast"], parts)
    assert ((bt["lower"] <= bt["forecast"]) & (bt["forecast"] <= bt["upper"])).all()
    for _, g in bt.groupby("quarter_start"):
        assert g["closed"].is_monotonic_increasing
        assert g["statistical"].nunique() == 1
        actual = g["actual"].iloc[0]
        # what is won by the quarter's last day is what the history records for it
        assert g["closed"].iloc[-1] == pytest.approx(actual, rel=0.02)
    err = IQ.error_by_week(bt)
    assert list(err.columns) == ["quarters", "wape_in_quarter", "wape_statistical", "coverage"]
    assert err.loc[13, "wape_in_quarter"] < err.loc[1, "wape_in_quarter"]
    assert err.loc[1, "wape_in_quarter"] < 0.25


@pytest.mark.slow
def test_backtest_scores_the_pipeline_learned_from_history():
    from revmodel import backtest, cube, sample

    t = sample.generate(reps=8, months=30, seed=2, end="2026-06")
    ds = cube.build_cube(t, fiscal_year_start=11)
    runs = {
        name: backtest.summary_table(
            backtest.rolling_origin(
                ds,
                horizon=3,
                folds=2,
                models=["seasonal_naive", "pipeline"],
                opportunities=t["opportunities"],
                history=hist,
                reconcile="bottom_up",
            )
        ).set_index(["level", "model"])
        for name, hist in (("reconstructed", None), ("history", t["opportunity_history"]))
    }
    a, b = runs["reconstructed"], runs["history"]
    assert a.loc[("total", "seasonal_naive"), "wape"] == b.loc[("total", "seasonal_naive"), "wape"]
    assert a.loc[("total", "pipeline"), "wape"] != b.loc[("total", "pipeline"), "wape"]
    assert 0 < b.loc[("total", "pipeline"), "wape"] < 1


def test_open_spread_widens_the_interval(synth):
    hist, labels = synth
    hist = IQ.prepare(hist)
    quarter = IQ.Quarter.of("2025-10-01")
    rates = IQ.Learned.from_history(hist, "2025-09-30", labels)
    spread = IQ.open_spread(hist, quarter, labels, rates, lookback=4)
    # stationary rates: what the open deals bring in varies by sampling only
    assert 0.0 < spread < 0.3
    assert IQ.open_spread(hist, quarter, labels, rates, lookback=1) == 0.0
    past = IQ.past_creations(hist, quarter, 4)
    as_of = pd.Timestamp("2025-10-21")
    narrow = IQ._forecast(hist, quarter, as_of, labels, rates, past, 0.8, 0.0)
    wide = IQ._forecast(hist, quarter, as_of, labels, rates, past, 0.8, spread)
    assert wide["forecast"] == narrow["forecast"]
    assert wide["upper"] - wide["forecast"] > narrow["upper"] - narrow["forecast"]


def test_calibration_is_the_past_quarters_remaining_error_by_hand(synth):
    hist, labels = synth
    hist = IQ.prepare(hist)
    quarter = IQ.Quarter.of("2025-10-01")
    calib = IQ.calibration(hist, quarter, labels, weeks=4, lookback=3, quarters=3)
    assert calib is not None and calib.quarters == 3 and calib.errors.shape == (3, 4)
    # replay the three quarters before (the backtest without calibration gives their parts)
    past = [IQ.Quarter.of(q) for q in ("2025-07-01", "2025-04-01", "2025-01-01")]
    bt = IQ.in_quarter_backtest(hist, past, labels, weeks=4, lookback=3, calibrate=False)
    cutoff = quarter.start - pd.Timedelta(days=1)
    actual = {
        q.start: float(IQ._won_in(hist, q, cutoff).sum()) for q in past
    }  # the outcome as known the day before the quarter
    ratio = (bt["quarter_start"].map(actual) - bt["closed"]) / (bt["open"] + bt["not_created"])
    by_hand = (ratio - 1).abs().to_numpy().reshape(3, 4)[::-1]  # latest quarter first
    np.testing.assert_allclose(calib.errors, by_hand, rtol=1e-9)
    assert IQ.calibration(hist, quarter, labels, weeks=4, lookback=1, quarters=1) is None
    # the conformal interval: 3 errors, level 0.8 x 4 / 3 > 1, so the largest error
    rates = IQ.Learned.from_history(hist, cutoff, labels)
    creations = IQ.past_creations(hist, quarter, 3)
    as_of = quarter.start + pd.Timedelta(days=13)  # end of week 2
    f = IQ._forecast(hist, quarter, as_of, labels, rates, creations, 0.8, 0.0, calib)
    remaining = f["open"] + f["not_created"]
    assert f["upper"] - f["forecast"] == pytest.approx(by_hand[:, 1].max() * remaining, rel=1e-9)
    assert f["lower"] == pytest.approx(
        max(f["closed"], f["forecast"] - (f["upper"] - f["forecast"]))
    )


def test_conformal_half_width_by_hand():
    errors = np.array([[0.1, 0.0], [0.3, np.nan], [0.2, 0.0], [0.5, 0.0], [0.4, 0.0]])
    calib = IQ.Calibration(errors)
    assert calib.half_width(1, 0.5) == 0.3  # 5 errors, 0.5 x 6 = 3: the third smallest
    assert calib.half_width(1, 0.8) == 0.5  # 0.8 x 6 = 4.8: the fifth
    assert calib.half_width(1, 0.6) == 0.4  # 0.6 x 6 = 3.6: the fourth
    assert calib.half_width(1, 0.05) == 0.1  # at least the smallest
    assert calib.half_width(2, 0.8) == 0.0  # nothing was expected: no error
    assert IQ.Calibration(np.full((3, 1), np.nan)).half_width(1, 0.8) == 0.0


@pytest.mark.parametrize(("n", "k"), [(4, 4), (8, 7), (19, 16), (6, 6)])
def test_conformal_half_width_covers_as_often_as_the_level(n, k):
    """Errors of a known law: a new quarter's error falls within the half width of ``n``
    past ones with probability k / (n + 1), within 1 / (2 (n + 1)) of 80%."""
    rng = np.random.default_rng(n)
    trials = 4000
    past = np.abs(rng.normal(0.0, 0.15, (trials, n)))
    new = np.abs(rng.normal(0.0, 0.15, trials))
    half = np.array([IQ.Calibration(p[:, None]).half_width(1, 0.8) for p in past])
    np.testing.assert_array_equal(half, np.sort(past, axis=1)[:, k - 1])
    assert (new <= half).mean() == pytest.approx(k / (n + 1), abs=0.025)
    assert abs(k / (n + 1) - 0.8) <= 1 / (2 * (n + 1)) + 1e-12


def shocked(n: int, seed: int, sd: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The :func:`synthetic` history over six years, with a known shock per quarter: every
    deal closing in a quarter has its win rate times ``exp(N(0, sd))`` (a good or a bad
    quarter), so the quarter's bookings vary beyond the deals' own chance."""
    rng = np.random.default_rng(seed)
    seg = np.where(rng.random(n) < 0.5, "A", "B")
    created = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 6 * 365, n), unit="D")
    expected = (created + pd.offsets.MonthBegin(2)) + pd.Timedelta(days=14)
    pushed = rng.random(n) < np.asarray([RATES[s][1] for s in seg])
    final = expected.where(~pushed, expected + pd.DateOffset(months=1))
    quarter = final.to_period("Q")
    shock = dict(zip(quarter.unique(), np.exp(rng.normal(0.0, sd, quarter.nunique())), strict=True))
    rate = np.asarray([RATES[s][0] for s in seg]) * quarter.map(shock).to_numpy(dtype=float)
    won = rng.random(n) < np.clip(rate, 0.0, 1.0)
    amount = np.round(rng.lognormal(10, 0.5, n), -2)
    ids = [f"S{i:05d}" for i in range(n)]
    rows = [(ids[i], created[i], "proposal", amount[i], expected[i]) for i in range(n)]
    rows += [(ids[i], expected[i] - pd.Timedelta(days=5), "proposal", amount[i], final[i])
             for i in np.flatnonzero(pushed)]  # fmt: skip
    rows += [(ids[i], final[i], "won" if won[i] else "lost", amount[i], final[i]) for i in range(n)]
    hist = pd.DataFrame(
        rows, columns=["opportunity_id", "changed_at", "stage", "amount", "close_date"]
    )
    labels = pd.DataFrame(
        {"segment": seg, "region": "R", "manager": "M", "rep": "r"},
        index=pd.Index(ids, name="opportunity_id"),
    )
    return hist, labels


@pytest.mark.slow
def test_interval_covers_80_percent_on_a_history_with_known_noise(monkeypatch):
    """Twelve quarters of a history whose quarters vary by a known shock: the 10-90% band
    holds the actual about 80% of the time, neither always (too wide) nor seldom."""
    hist, labels = shocked(4000, seed=3, sd=0.25)
    monkeypatch.setattr(IQ, "statistical_quarter", lambda h, q: np.nan)  # not scored here
    quarters = [IQ.Quarter.of(s) for s in pd.date_range("2023-01-01", periods=12, freq="3MS")]
    bt = IQ.in_quarter_backtest(hist, quarters, labels, weeks=4)
    inside = (bt["actual"] >= bt["lower"]) & (bt["actual"] <= bt["upper"])
    assert inside.mean() == pytest.approx(0.8, abs=0.12)
    # the band is the forecast plus or minus one width, cut at what is closed
    half = bt["upper"] - bt["forecast"]
    np.testing.assert_allclose(bt["lower"], np.maximum(bt["closed"], bt["forecast"] - half))
    assert (half > 0).all()


def test_not_yet_created_by_hand():
    opps = pd.DataFrame(
        {
            "opportunity_id": ["D1", "D2", "D3", "D4", "D5"],
            "created_date": pd.to_datetime(
                ["2026-06-01", "2026-05-02", "2026-03-01", "2026-06-15", "2026-06-03"]
            ),
            "close_date": pd.to_datetime(
                ["2026-06-20", "2026-05-15", "2026-05-20", "2026-07-02", "2026-06-25"]
            ),
            "stage": ["won", "won", "won", "won", "lost"],
            "amount": [100.0, 60.0, 999.0, 40.0, 500.0],
            "segment": ["A", "A", "A", "A", "A"],
            "region": ["R", "R", "R", "R", "R"],
            "rep_id": ["r1", "r2", "r1", "r1", "r1"],
        }
    )
    new = pipeline.not_yet_created(opps, "2026-06-15", horizon=2, lookback=2)
    assert list(pd.DatetimeIndex(new["month"].values)) == list(
        pd.to_datetime(["2026-07-01", "2026-08-01"])
    )
    july = new.sel(month="2026-07-01").sum(["segment", "region"]).to_series()
    # month 1 ahead: origins May and April; June's won from deals created in June (D1, 100)
    # and May's from deals created in May (D2, 60), averaged over the two origins. D3 was
    # created before April ended, D4 is won after as_of, D5 was lost.
    assert july.to_dict() == {"r1": 50.0, "r2": 30.0}
    # month 2 ahead: origins April and March; June from deals created after April (D1) and
    # May from deals created after March (D2)
    aug = new.sel(month="2026-08-01").sum(["segment", "region"]).to_series()
    assert aug.to_dict() == {"r1": 50.0, "r2": 30.0}
    assert float(pipeline.not_yet_created(opps, "2026-04-30", 1, lookback=2).sum()) == 0.0


@pytest.mark.slow
def test_backtest_pipeline_new_adds_the_deals_not_yet_created():
    from revmodel import backtest, cube, sample

    t = sample.generate(reps=8, months=30, seed=2, end="2026-06")
    ds = cube.build_cube(t, fiscal_year_start=11)
    res = backtest.rolling_origin(
        ds, horizon=3, folds=2, models=["seasonal_naive", "pipeline", "pipeline_new"],
        opportunities=t["opportunities"], history=t["opportunity_history"], reconcile="bottom_up",
    )  # fmt: skip
    s = res.scores[res.scores["level"] == "total"].set_index(["model", "fold", "month"])
    for k, origin in enumerate(res.origins):
        new = pipeline.not_yet_created(t["opportunities"], origin, 3, like=ds)
        for month, value in new.sum(["segment", "region", "rep"]).to_series().items():
            got = s.loc[("pipeline_new", k, month), "forecast"]
            want = s.loc[("pipeline", k, month), "forecast"] + value
            assert got == pytest.approx(want, rel=1e-9)
