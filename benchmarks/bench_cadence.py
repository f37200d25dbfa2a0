"""Pipeline history at scale: a history of about 1M deal changes.

The history is the sample company's (``revmodel.sample`` with enough reps to
reach ``--changes`` rows; seeded, no external data). Measured in one run:

- the waterfall of the last quarter by manager (:func:`revmodel.history.waterfall`),
  beside the peer a user would write by hand in pandas: the two states (before
  ``--from``, at the end of ``--to``) by ``groupby().last()`` and their merge, which
  gives only the opening and closing, not the bars;
- the in-quarter backtest (:func:`revmodel.inquarter.in_quarter_backtest`) over the
  last ``--quarters`` quarters: WAPE by week of quarter of the in-quarter forecast,
  beside the statistical forecast alone (the default model on monthly bookings), and
  how often the 80% interval held the actual and how wide it was (mean half width over
  the actual): calibrated on the past quarters' errors by week of quarter (the conformal
  quantile of :func:`revmodel.inquarter.calibration`) and, for comparison, from the
  deals' own variance and the open deals' spread alone (``calibrate=False``).

Run: ``.venv/bin/python benchmarks/bench_cadence.py [--changes N] [--quarters Q]``.
Prints a table and writes ``benchmarks/results/bench_cadence.json``. Timings are
wall-clock on a shared 2-core machine and are noisy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from benchkit import peak_memory_mb, write_result

from revmodel import history as H
from revmodel import inquarter as IQ
from revmodel import sample, schema

RESULTS = Path(__file__).parent / "results" / "bench_cadence.json"
#: History rows per sample rep (48 months), measured on the default sample.
ROWS_PER_REP = 1510


def peer_opening_closing(hist: pd.DataFrame, window: H.Window) -> tuple[float, float]:
    """Opening and closing by hand in pandas: last state per deal by groupby().last()."""
    ordered = hist.sort_values(["opportunity_id", "changed_at"])

    def open_in_period(rows: pd.DataFrame) -> float:
        last = rows.groupby("opportunity_id").last()
        keep = last["stage"].isin(schema.OPEN_STAGES) & last["close_date"].between(
            window.period_start, window.period_end
        )
        return float(last.loc[keep, "amount"].sum())

    opening = open_in_period(ordered[ordered["changed_at"] < window.start])
    closing = open_in_period(ordered[ordered["changed_at"] <= window.end])
    return opening, closing


def _half_width(bt: pd.DataFrame) -> float:
    """Mean half width of the interval over the actual, weeks 1-10 (after, little is open)."""
    early = bt[bt["week"] <= 10]
    return float(((early["upper"] - early["lower"]) / 2 / early["actual"]).mean())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=1_000_000, help="history rows (about)")
    ap.add_argument("--quarters", type=int, default=4, help="quarters in the in-quarter backtest")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    reps = max(6, int(round(args.changes / ROWS_PER_REP)))
    tables = sample.generate(reps=reps, months=48, seed=args.seed)
    hist = tables["opportunity_history"]
    labels = H.deal_labels(tables)
    generate_s = time.perf_counter() - t0

    # the last full fiscal quarter of the sample (Aug-Oct 2026), changes over its last month
    window = H.Window("2026-10-01", "2026-10-31", "2026-11-01", "2027-01-31")
    t0 = time.perf_counter()
    wf = H.waterfall(hist, window, labels, by="manager")
    waterfall_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    opening, closing = peer_opening_closing(hist, window)
    peer_s = time.perf_counter() - t0
    total = wf.table.iloc[0]
    assert abs(total["opening"] - opening) < 1.0 and abs(total["closing"] - closing) < 1.0
    assert float(H.balance_errors(wf.table).abs().max()) < 1e-6

    starts = pd.date_range(end="2026-08-01", periods=args.quarters, freq="3MS")
    quarters = [IQ.Quarter.of(s) for s in starts]
    t0 = time.perf_counter()
    bt = IQ.in_quarter_backtest(hist, quarters, labels)
    backtest_s = time.perf_counter() - t0
    err = IQ.error_by_week(bt)
    raw = IQ.in_quarter_backtest(hist, quarters, labels, calibrate=False)
    before = IQ.error_by_week(raw)

    result = {
        "history_rows": int(len(hist)),
        "deals": int(hist["opportunity_id"].nunique()),
        "reps": reps,
        "managers": int((wf.table["level"] == "manager").sum()),
        "generate_s": round(generate_s, 2),
        "waterfall_by_manager_s": round(waterfall_s, 3),
        "peer_pandas_opening_closing_s": round(peer_s, 3),
        "in_quarter_backtest_s": round(backtest_s, 2),
        "in_quarter_backtest_quarters": args.quarters,
        "peak_rss_mb": round(peak_memory_mb(), 1),
    }
    for week in (1, 4, 7, 10, 13):
        result[f"wape_in_quarter_week{week}"] = round(float(err.loc[week, "wape_in_quarter"]), 4)
        result[f"wape_statistical_week{week}"] = round(float(err.loc[week, "wape_statistical"]), 4)
        result[f"interval_coverage_week{week}"] = round(float(err.loc[week, "coverage"]), 3)
        result[f"interval_coverage_uncalibrated_week{week}"] = round(
            float(before.loc[week, "coverage"]), 3
        )
    result["interval_coverage_mean"] = round(float(err["coverage"].mean()), 3)
    result["interval_coverage_uncalibrated_mean"] = round(float(before["coverage"].mean()), 3)
    result["interval_half_width_mean_pct"] = round(100 * _half_width(bt), 2)
    result["interval_half_width_uncalibrated_mean_pct"] = round(100 * _half_width(raw), 2)

    print(f"history: {result['history_rows']:,} changes of {result['deals']:,} deals, {reps} reps")
    print(f"{'step':<44}{'seconds':>10}")
    print(f"{'waterfall by manager (revmodel)':<44}{waterfall_s:>10.3f}")
    print(f"{'opening/closing only (pandas groupby peer)':<44}{peer_s:>10.3f}")
    print(
        f"{'in-quarter backtest, ' + str(args.quarters) + ' quarters x 13 weeks':<44}"
        f"{backtest_s:>10.1f}"
    )
    print()
    print(
        f"{'week':>4}{'WAPE in-quarter':>18}{'WAPE statistical':>18}{'80% coverage':>14}"
        f"{'uncalibrated':>14}"
    )
    for week, row in err.iterrows():
        print(
            f"{week:>4}{row['wape_in_quarter']:>18.3f}{row['wape_statistical']:>18.3f}"
            f"{row['coverage']:>14.2f}{before.loc[week, 'coverage']:>14.2f}"
        )
    print(
        f"mean half width of the interval, weeks 1-10: {result['interval_half_width_mean_pct']}% "
        f"of the actual ({result['interval_half_width_uncalibrated_mean_pct']}% uncalibrated)"
    )
    print(f"\nwrote {write_result('bench_cadence', result, RESULTS)}")
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
