"""Rolling-origin backtests of the forecast, per level of the hierarchy and per model.

At each origin the cube is cut at that month (``as_of`` moved there, nothing
after it is seen), every model forecasts the next ``horizon`` months, and the
forecasts are compared with what was booked. Origins step back from the last
month that leaves a full horizon of actuals: with ``as_of`` 2026-10,
``horizon=3``, ``folds=4`` and ``step=3`` they are 2025-10, 2026-01, 2026-04
and 2026-07, so the last four quarters are forecast one quarter ahead.

Models (names accepted in ``models``):

- ``reconciled``: the default automatic forecast of every node
  (:func:`revmodel.forecast.forecast_cube`), made coherent with the
  ``reconcile`` method; ``reconciled:<method>`` picks another method;
- ``calibrated``: ``reconciled`` with a calibrated band (``calibrated:<method>``
  for another method): before sampling, each level's base spread around its
  median is scaled by the factor that made the same model's reconciled bands hold
  80% of the actuals at earlier origins whose horizon ended by this one
  (``calibration_folds`` origins before the first fold, then every scored fold
  before it; :func:`band_calibration`); same mean as ``reconciled``;
- ``base``: every node's own forecast, not reconciled (levels need not add up);
- ``bottom_up``: the bottom forecasts summed up;
- ``seasonal_naive``: the same month a year earlier, the floor any model must beat;
- ``pipeline``, ``pipeline_new`` and ``blend``: the open pipeline as it stood at
  the origin, weighted by conversion and slippage (:mod:`revmodel.pipeline`);
  the same plus the bookings expected from deals not yet created
  (:func:`revmodel.pipeline.not_yet_created`); and the blend of ``pipeline_new``
  with ``reconciled``; only when the opportunities are given;
- any callable ``f(history, horizon) -> forecast``: ``history`` is the
  measure up to the origin (segment, region, rep, month), ``forecast`` the
  bottom-cell mean for the next ``horizon`` months, summed up to every node.

Each name becomes a typed model (:class:`Reconciled`, :class:`BaseForecast`,
:class:`BottomUpSum`, :class:`SeasonalNaive`, :class:`WeightedPipeline`,
:class:`PipelineWithNew`, :class:`Blend`, :class:`Custom`) and each fold is scored by what its type does.
The 10-90% band of a reconciled model comes from reconciled sample paths
(:func:`revmodel.reconcile.sample_reconciled`), so it is coherent like the mean.

Metrics, per fold, model and level (``total``, ``region``, ``segment``,
``region/segment``, ``manager``, ``manager/segment``, ``rep``, ``bottom``):

- WAPE = sum|f - a| / sum|a| [1];
- sMAPE = mean of 200 |f - a| / (|f| + |a|), 0 where both are 0 [%];
- MASE = mean of |f - a| / s, with s the node's in-sample mean absolute
  seasonal difference (lag 12) up to the origin; nodes with s = 0 are left out [1];
- bias = sum(f - a) / sum(a) [1]: positive forecasts too high;
- coverage = share of actual node-months inside the 10-90% band [1]; an actual of 0
  on a sampled band that starts at 0 counts as the chance that such a 0 lies inside
  the band (its randomized PIT, :func:`interval_coverage`), so that a calibrated band
  of a measure that is often 0 covers 80%, not 90%.

Every node with bookings up to the end of the evaluated horizon is scored,
including cells that first sold after the origin (every model forecasts 0
for them), so a level's actuals are its full bookings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from revmodel import calendar as fcal
from revmodel import cube as rcube
from revmodel import formatting
from revmodel import reconcile as rec
from revmodel.errors import DataError, ParameterError
from revmodel.forecast import NodeForecast, node_forecasts, reconcile_nodes  # noqa: F401

#: Models run when ``models`` is not given (``pipeline`` and ``blend`` join them with opportunities).
DEFAULT_MODELS: tuple[str, ...] = ("reconciled", "base", "bottom_up", "seasonal_naive")
#: Name of the floor model.
FLOOR = "seasonal_naive"
#: Season length [months].
SEASON = 12
#: Months of history the first origin needs at least [months].
MIN_TRAIN_MONTHS = 12
#: Most rounds of band calibration: the factor from the past bands, then corrected on the
#: past bands drawn again with it (reconciliation mixes the levels' spreads) until they hold
#: their share within :data:`CALIBRATION_TOLERANCE` at every level (:meth:`_Scored.learn_scale`).
CALIBRATION_ROUNDS = 4
#: Past bands drawn with the factors so far that hold their share to within this [1], or
#: within the binomial standard error of the level's past actuals if larger, at every level
#: end the calibration: a level is not corrected for less than its own noise.
CALIBRATION_TOLERANCE = 0.025
#: Weight of each older calibration fold relative to the next (:func:`band_calibration`);
#: chosen on validation origins before every benchmark's scored ones (README).
CALIBRATION_DECAY = 0.5
#: Nodes above which each calibration round draws the past origins' bands at once, one
#: task per origin on a local cluster of ``ForecastOptions.n_workers`` single-threaded
#: processes (:meth:`_Scored.learn_scale`): there a band is reconciled a month at a time
#: and takes tens of seconds (a 2,000-rep company, 12 months: about 17 s), smaller ones
#: take less than starting the cluster. The bands are the same either way, to the bit.
BAND_PARALLEL_MIN_NODES = rec.MINT_SHRINK_MAX_NODES
#: Hierarchy levels in report order; the bottom (rep x segment x region cell) is called "bottom".
LEVEL_ORDER: tuple[str, ...] = (
    "total",
    "region",
    "segment",
    "region/segment",
    "manager",
    "manager/segment",
    "rep",
    "bottom",
)
METRICS: tuple[str, ...] = ("wape", "smape", "mase", "bias", "coverage")

Model = str | Callable[[xr.DataArray, int], xr.DataArray]


# --------------------------------------------------------------------------- metrics


def _arrays(actual: Any, forecast: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    if a.shape != f.shape:
        raise ParameterError(f"actual has shape {a.shape} but forecast has shape {f.shape}")
    return a, f


def wape(actual: Any, forecast: Any) -> float:
    """Weighted absolute percentage error: sum|f - a| / sum|a| [1]; NaN when sum|a| is 0.

    Parameters
    ----------
    actual, forecast : array-like
        Actuals and forecasts of the same shape [units].

    Returns
    -------
    float
        The error [1].

    Examples
    --------
    >>> wape([100.0, 200.0], [110.0, 180.0])  # (10 + 20) / 300
    0.1
    """
    a, f = _arrays(actual, forecast)
    denom = np.nansum(np.abs(a))
    return float(np.nansum(np.abs(f - a)) / denom) if denom > 0 else float("nan")


def smape(actual: Any, forecast: Any) -> float:
    """Symmetric MAPE: mean of 200 |f - a| / (|f| + |a|) [%], 0 where both are 0.

    Parameters
    ----------
    actual, forecast : array-like
        Actuals and forecasts of the same shape [units].

    Returns
    -------
    float
        The error [%].

    Examples
    --------
    >>> round(smape([100.0, 0.0], [50.0, 0.0]), 2)  # (2 * 50 / 150 + 0) / 2, in percent
    33.33
    """
    a, f = _arrays(actual, forecast)
    denom = np.abs(a) + np.abs(f)
    ratio = np.where(denom > 0, 2 * np.abs(f - a) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(100 * np.mean(ratio)) if ratio.size else float("nan")


def seasonal_scale(history: Any, season_length: int = SEASON) -> np.ndarray:
    """In-sample mean absolute seasonal difference of each series, the MASE scale [units].

    Parameters
    ----------
    history : array-like
        Series along the last axis, oldest first [units].
    season_length : int
        Lag of the differences [months]; 1 when the series is shorter than a season and a month.

    Returns
    -------
    np.ndarray
        One scale per series (shape of ``history`` without its last axis); NaN when there is
        no difference to average.

    Examples
    --------
    >>> import numpy as np
    >>> seasonal_scale(np.array([np.arange(14.0)]))  # every lag-12 difference is 12
    array([12.])
    """
    y = np.asarray(history, dtype=float)
    m = season_length if y.shape[-1] > season_length else 1
    diff = np.abs(y[..., m:] - y[..., :-m])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.nanmean(diff, axis=-1) if diff.shape[-1] else np.full(y.shape[:-1], np.nan)
    return np.asarray(out, dtype=float)


def mase(actual: Any, forecast: Any, scale: Any) -> float:
    """Mean absolute scaled error: mean of |f - a| / scale over series with scale > 0 [1].

    ``actual`` and ``forecast`` are (series x horizon) or (horizon,) arrays and ``scale``
    one value per series (see :func:`seasonal_scale`).

    Parameters
    ----------
    actual, forecast : array-like
        Actuals and forecasts of the same shape [units].
    scale : array-like
        In-sample seasonal naive error per series [units].

    Returns
    -------
    float
        The scaled error [1]; NaN when no series has a scale.

    Examples
    --------
    >>> mase([[20.0, 30.0]], [[26.0, 30.0]], [12.0])  # mean(|6|, |0|) / 12
    0.25
    """
    a, f = _arrays(actual, forecast)
    a2 = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
    f2 = f.reshape(a2.shape)
    s = np.broadcast_to(np.asarray(scale, dtype=float).reshape(-1), (a2.shape[0],))
    ok = np.isfinite(s) & (s > 0)
    if not ok.any():
        return float("nan")
    return float(np.mean(np.abs(f2[ok] - a2[ok]) / s[ok, None]))


def bias(actual: Any, forecast: Any) -> float:
    """Relative bias: sum(f - a) / sum(a) [1]; positive means the forecast ran high.

    Parameters
    ----------
    actual, forecast : array-like
        Actuals and forecasts of the same shape [units].

    Returns
    -------
    float
        The bias [1]; NaN when the actuals add up to 0.

    Examples
    --------
    >>> bias([100.0, 200.0], [110.0, 180.0])  # (10 - 20) / 300
    -0.03333333333333333
    """
    a, f = _arrays(actual, forecast)
    denom = np.nansum(a)
    return float(np.nansum(f - a) / denom) if denom != 0 else float("nan")


def interval_coverage(actual: Any, lower: Any, upper: Any, zero_inside: Any = None) -> float:
    """Share of actuals inside ``[lower, upper]`` [1]; NaN when there is no band.

    A forecast of a measure that is never negative often says "0" with some
    probability ``p0`` (a rep's month without a deal): its band's lower end is then 0
    and an actual of 0 lies on the band's edge whatever the forecast's ``p0``; counted
    as inside, a calibrated 10-90% band would hold 90% of such actuals. With
    ``zero_inside`` (the chance an actual of 0 lies inside the band, :func:`zero_inside`),
    such an actual counts as that share of one: the expected coverage of the randomized
    PIT (Czado, Gneiting and Held 2009, "Predictive model assessment for count data"),
    80% for a calibrated band. NaN there: counted as inside.

    Parameters
    ----------
    actual, lower, upper : array-like
        Actuals and the band's bounds, of the same shape [units].
    zero_inside : array-like, optional
        Per actual, the share an actual of 0 counts for when the band starts at 0 [1].

    Returns
    -------
    float
        The share [1].

    Examples
    --------
    >>> interval_coverage([100.0, 200.0], [90.0, 210.0], [120.0, 250.0])  # 200 is below its band
    0.5
    >>> # a month without a deal, forecast as 0 with probability 0.5: inside for (0.5 - 0.1) / 0.5
    >>> interval_coverage([0.0, 50.0], [0.0, 0.0], [80.0, 80.0], zero_inside=[0.8, 0.8])
    0.9
    """
    inside = cell_inside(actual, lower, upper, zero_inside)
    known = np.isfinite(inside)
    return float(np.mean(inside[known])) if known.any() else float("nan")


def cell_inside(actual: Any, lower: Any, upper: Any, zero_inside: Any = None) -> np.ndarray:
    """Per actual, how much it counts as inside its band (:func:`interval_coverage`) [1].

    1 or 0, an actual of 0 on a band starting at 0 its ``zero_inside`` share; NaN where
    there is no band.

    Parameters
    ----------
    actual, lower, upper : array-like
        Actuals and the band's bounds, of the same shape [units].
    zero_inside : array-like, optional
        Per actual, the share an actual of 0 counts for when the band starts at 0
        (:func:`zero_inside`; NaN: counted as inside) [1].

    Returns
    -------
    np.ndarray
        Per actual, 0 to 1, NaN without a band [1].

    Examples
    --------
    >>> cell_inside([0.0, 0.0, 9.0], [0.0, 0.0, 1.0], [5.0, np.nan, 5.0], [0.75, 0.75, np.nan])
    array([0.75,  nan, 0.  ])
    """
    a, lo = _arrays(actual, lower)
    _, hi = _arrays(actual, upper)
    inside = ((a >= lo) & (a <= hi)).astype(float)
    if zero_inside is not None:
        _, w = _arrays(actual, zero_inside)
        inside = np.where(_zero_on_edge(a, lo, w), w, inside)
    return np.where(np.isfinite(lo) & np.isfinite(hi), inside, np.nan)


def _zero_on_edge(actual: np.ndarray, lower: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """Actuals of 0 on a band that starts at 0, with a known chance of lying inside: those
    :func:`cell_inside` and :func:`atom_scores` count by their randomized PIT."""
    return (actual == 0) & (lower == 0) & np.isfinite(zero)


def zero_inside(p_zero: Any, levels: Sequence[float]) -> np.ndarray:
    """The chance an actual of 0 lies inside the band between the outer ``levels`` [1].

    With ``p0`` the forecast's probability of 0, the randomized PIT of an actual of 0
    is uniform on ``[0, p0]``, inside the band when between the lowest and the highest
    level: ``(min(p0, hi) - lo) / p0``, 0 when ``p0`` is below ``lo``; NaN where ``p0``
    is 0 (the forecast never says 0) or unknown.

    Parameters
    ----------
    p_zero : array-like
        The forecast's probability of 0, e.g. its share of sample paths at 0 [1].
    levels : sequence of float
        The band's probability levels; the lowest and highest bound it.

    Returns
    -------
    np.ndarray
        The chance, the shape of ``p_zero`` [1].

    Examples
    --------
    >>> zero_inside([0.05, 0.5, 0.95, 0.0], [0.1, 0.5, 0.9]).round(3).tolist()
    [0.0, 0.8, 0.842, nan]
    """
    p0 = np.asarray(p_zero, dtype=float)
    lo, hi = float(np.min(levels)), float(np.max(levels))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(np.minimum(p0, hi) - lo, 0.0, None) / p0
    return np.where(p0 > 0, share, np.nan)


# --------------------------------------------------------------------------- backtest


@dataclass(frozen=True)
class BacktestResult:
    """What :func:`rolling_origin` found.

    Attributes
    ----------
    scores : pd.DataFrame
        One row per fold, model, node and forecast month: ``fold``, ``origin``, ``model``,
        ``level``, ``node``, ``month``, ``step`` [months ahead], ``actual``, ``forecast``,
        ``lower``, ``upper`` [units of the measure], ``scale`` (MASE scale) [units].
    metrics : pd.DataFrame
        One row per fold, model and level: ``nodes`` and :data:`METRICS`.
    blend_inputs : pd.DataFrame
        One row per fold, segment and month: ``actual``, ``stat`` (reconciled) and
        ``pipeline`` (weighted pipeline at the origin plus the deals not yet created,
        what the blend uses) [units]; empty without opportunities.
    origins : list of pd.Timestamp
    horizon : int
    measure : str
    info : dict
        ``reconcile`` (method and fallback per fold), ``new_cells`` per fold (cells that first
        sold after the origin), ``blend_weights`` (learned on all folds) when available;
        with the calibrated model, ``band_scale`` and ``band_rounds`` per scored fold and,
        when past bands were drawn on a local cluster, ``bands_on_workers`` (how many).

    Examples
    --------
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), np.ones((1, 1, 1, 24)))
    >>> cube = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> result = rolling_origin(cube, horizon=2, folds=1, models=["seasonal_naive"])
    >>> result.scores[["model", "level", "step", "actual", "forecast"]].head(2)
                model  level  step  actual  forecast
    0  seasonal_naive  total     1     1.0       1.0
    1  seasonal_naive  total     2     1.0       1.0
    """

    scores: pd.DataFrame
    metrics: pd.DataFrame
    blend_inputs: pd.DataFrame
    origins: list[pd.Timestamp]
    horizon: int
    measure: str
    info: dict = field(default_factory=dict)


def origins_for(
    cube: xr.Dataset, horizon: int, folds: int = 4, step: int = 3, min_train: int = MIN_TRAIN_MONTHS
) -> list[pd.Timestamp]:
    """The forecast origins of a rolling-origin backtest, oldest first.

    The last origin leaves ``horizon`` months of actuals up to ``as_of``; each earlier one
    is ``step`` months before the next.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with ``attrs["as_of"]``.
    horizon : int
        Months forecast from each origin [months].
    folds : int
        Number of origins.
    step : int
        Months between origins [months].
    min_train : int
        Months of history the first origin must leave [months].

    Returns
    -------
    list of pd.Timestamp
        The origins (last month each forecast sees).

    Raises
    ------
    ParameterError
        For a horizon, fold count or step that is not a whole number >= 1, or when the
        first origin would leave fewer than ``min_train`` months of history.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS"),
    ...           "manager": ("rep", ["M1", "M1"])}
    >>> season = np.tile([1.0, 2.0, 3.0], 8)  # a seasonal pattern, repeated exactly
    >>> bookings = (("segment", "region", "rep", "month"), np.stack([100 * season, 50 * season])[None, None])
    >>> cube = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> [f"{o:%Y-%m}" for o in origins_for(cube, horizon=3, folds=2, step=3)]
    ['2025-06', '2025-09']
    """
    for name, v in (("horizon", horizon), ("folds", folds), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ParameterError(f"backtest: {name} must be a whole number >= 1, got {v!r}")
    if "as_of" not in cube.attrs:
        raise DataError("the cube has no attrs['as_of'] (last month with actuals); rebuild it")
    as_of = pd.Timestamp(cube.attrs["as_of"]).to_period("M").to_timestamp()
    months = pd.DatetimeIndex(cube["month"].values)
    n_hist = int((months <= as_of).sum())
    need = int(horizon) + int(step) * (int(folds) - 1)
    if n_hist - need < min_train:
        raise ParameterError(
            f"backtest: {folds} folds {step} months apart with a {horizon}-month horizon reach "
            f"back {need} months, leaving {n_hist - need} months of history before the first "
            f"origin (at least {min_train} needed; the cube has {n_hist} months up to as_of "
            f"{as_of:%Y-%m}); use fewer --folds or a shorter --horizon"
        )
    last = as_of - pd.DateOffset(months=int(horizon))
    return [last - pd.DateOffset(months=int(step) * k) for k in range(int(folds) - 1, -1, -1)]


def _seasonal_naive(hist: np.ndarray, h: int) -> np.ndarray:
    """Bottom seasonal-naive means: the same month a season earlier (cells x h)."""
    m = SEASON if hist.shape[-1] >= SEASON else 1
    idx = np.arange(h) % m
    return hist[..., -m:][..., idx]


def _seasonal_naive_band(node_hist: np.ndarray, mean: np.ndarray, q_lo: float, q_hi: float):
    """Seasonal random-walk band of each node's own history (nodes x h)."""
    n_months = node_hist.shape[-1]
    m = SEASON if n_months > SEASON else 1
    diff = node_hist[:, m:] - node_hist[:, :-m]
    with np.errstate(invalid="ignore"):
        sigma = np.sqrt(np.nanmean(diff**2, axis=1)) if diff.shape[1] else np.zeros(len(mean))
    sigma = np.nan_to_num(sigma)
    k = np.arange(mean.shape[1]) // m + 1
    sd = sigma[:, None] * np.sqrt(k)[None, :]
    return mean + stats.norm.ppf(q_lo) * sd, mean + stats.norm.ppf(q_hi) * sd


def _coherent(hierarchy: rec.Hierarchy, bottom: np.ndarray) -> np.ndarray:
    """Every node of ``hierarchy`` summed from cube-shaped bottom values (seg, reg, rep, h)."""
    c = hierarchy.cells
    return np.asarray(hierarchy.S @ bottom[c[:, 0], c[:, 1], c[:, 2]])


def _map_nodes(src: rec.Hierarchy, dst: rec.Hierarchy) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``src`` holding each node of ``dst`` (-1 where ``src`` has no such node)."""
    pos = pd.Index(src.labels()).get_indexer(dst.labels())
    return pos, pos >= 0


def _cube_values(da: xr.DataArray) -> np.ndarray:
    return np.nan_to_num(np.asarray(da.transpose(*rec.CELL_DIMS, "month").values, dtype=float))


def _level_names(hierarchy: rec.Hierarchy) -> np.ndarray:
    lv = hierarchy.nodes["level"].to_numpy(dtype=object).copy()
    lv[lv == rec.BOTTOM_LEVEL] = "bottom"
    return lv


def _node_labels(hierarchy: rec.Hierarchy) -> np.ndarray:
    nodes = hierarchy.nodes
    out = []
    for row in nodes.itertuples(index=False):
        fields = rec.LEVEL_FIELDS[row.level]
        out.append("total" if not fields else "/".join(str(getattr(row, f)) for f in fields))
    return np.asarray(out, dtype=object)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Reconciled:
    """Every node's own forecast made coherent with ``method``; band from reconciled sample paths.

    ``calibrated``: each level's base spread scaled, before sampling, by the factor that
    made the same model's past bands hold 80% of their actuals (:func:`band_calibration`).
    """

    method: str
    calibrated: bool = False


@dataclass(frozen=True)
class BaseForecast:
    """Every node's own forecast, not reconciled (levels need not add up)."""


@dataclass(frozen=True)
class BottomUpSum:
    """The bottom base forecasts summed up."""


@dataclass(frozen=True)
class SeasonalNaive:
    """The same month a year earlier: the floor."""


@dataclass(frozen=True)
class WeightedPipeline:
    """The open pipeline at the origin, weighted by conversion and slippage."""


@dataclass(frozen=True)
class PipelineWithNew:
    """The weighted open pipeline plus the bookings expected from deals not yet created."""


@dataclass(frozen=True)
class Blend:
    """Per-segment blend of the reconciled forecast and :class:`PipelineWithNew`."""


@dataclass(frozen=True)
class Custom:
    """A callable ``f(history, horizon) -> bottom forecast``, summed up to every node."""

    fn: Callable[[xr.DataArray, int], Any]


BacktestModel = (
    Reconciled
    | BaseForecast
    | BottomUpSum
    | SeasonalNaive
    | WeightedPipeline
    | PipelineWithNew
    | Blend
    | Custom
)
_NAMED: dict[str, BacktestModel] = {
    "base": BaseForecast(),
    "bottom_up": BottomUpSum(),
    FLOOR: SeasonalNaive(),
    "pipeline": WeightedPipeline(),
    "pipeline_new": PipelineWithNew(),
    "blend": Blend(),
}


def _parse_model(m: Model, reconcile: str, with_pipeline: bool) -> BacktestModel:
    """The typed model a name (or callable) of the ``models`` argument stands for."""
    if callable(m):
        return Custom(m)
    known = (*DEFAULT_MODELS, "calibrated", "pipeline", "pipeline_new", "blend")
    for kind, calibrated in (("reconciled", False), ("calibrated", True)):
        if m == kind:
            return Reconciled(reconcile, calibrated)
        if isinstance(m, str) and m.startswith(f"{kind}:"):
            how = m.split(":", 1)[1]
            if how not in rec.METHODS or (calibrated and how == "none"):
                raise ParameterError(
                    f"backtest: unknown reconciliation method in {m!r}; use one of "
                    f"{', '.join(rec.METHODS)}"
                )
            return Reconciled(how, calibrated)
    if m not in _NAMED:
        raise ParameterError(
            f"backtest: unknown model {m!r}; use {', '.join(known)}, 'reconciled:<method>', "
            "'calibrated:<method>' or a callable"
        )
    if m in ("pipeline", "pipeline_new", "blend") and not with_pipeline:
        raise ParameterError(
            f"backtest: model {m!r} needs the opportunities table: pass opportunities="
        )
    return _NAMED[m]


def _check_models(
    models: Sequence[Model] | Mapping[str, Model] | None, reconcile: str, with_pipeline: bool
) -> dict[str, BacktestModel]:
    if models is None:
        names: dict[str, Model] = {m: m for m in DEFAULT_MODELS}
        if with_pipeline:
            names.update(pipeline="pipeline", pipeline_new="pipeline_new", blend="blend")
    elif isinstance(models, Mapping):
        names = dict(models)
    else:
        names = {}
        for m in models:
            if not isinstance(m, str):
                raise ParameterError(
                    "backtest: give callable models as a mapping {name: callable}, e.g. "
                    "models={'my_model': f}"
                )
            names[m] = m
    items = {name: _parse_model(m, reconcile, with_pipeline) for name, m in names.items()}
    if SeasonalNaive() not in items.values():
        items[FLOOR] = SeasonalNaive()
    return items


# --------------------------------------------------------------------------- one fold


class _Prediction(NamedTuple):
    """Forecast of every node of the fold's hierarchy (nodes x h), with its band or None."""

    mean: np.ndarray
    lower: np.ndarray | None
    upper: np.ndarray | None
    center: np.ndarray | None = None
    #: Per node and month, the chance an actual of 0 lies inside the band (:func:`zero_inside`).
    zero: np.ndarray | None = None


@dataclass(frozen=True)
class _Fold:
    """One origin: the history it sees, the actuals after it, on the full hierarchy."""

    k: int
    origin: pd.Timestamp
    hist: xr.DataArray
    window: xr.DataArray
    hist_v: np.ndarray
    act_v: np.ndarray
    full: rec.Hierarchy
    actual_nodes: np.ndarray
    node_hist: np.ndarray
    scale: np.ndarray
    levels: np.ndarray
    labels: np.ndarray

    @property
    def months(self) -> np.ndarray:
        return self.window["month"].values

    def score(self, name: str, p: _Prediction) -> pd.DataFrame:
        return _score_frame(
            self.k, self.origin, name, self.levels, self.labels, self.months,
            self.actual_nodes, p.mean, p.lower, p.upper, self.scale, p.zero,
        )  # fmt: skip


def _make_fold(da: xr.DataArray, months: pd.DatetimeIndex, k: int, origin, horizon: int) -> _Fold:
    o = int(months.get_loc(origin))
    hist = da.isel(month=slice(0, o + 1))
    window = da.isel(month=slice(o + 1, o + 1 + horizon))
    hist_v, act_v = _cube_values(hist), _cube_values(window)
    full = rec.hierarchy_from_cube(da.isel(month=slice(0, o + 1 + horizon)))
    c = full.cells
    node_hist = np.asarray(full.S @ hist_v[c[:, 0], c[:, 1], c[:, 2]])
    return _Fold(
        k=k,
        origin=origin,
        hist=hist,
        window=window,
        hist_v=hist_v,
        act_v=act_v,
        full=full,
        actual_nodes=np.asarray(full.S @ act_v[c[:, 0], c[:, 1], c[:, 2]]),
        node_hist=node_hist,
        scale=seasonal_scale(node_hist),
        levels=_level_names(full),
        labels=_node_labels(full),
    )


@dataclass
class _Statistical:
    """The statistical forecast of one fold, on the hierarchy the origin knows."""

    fc: xr.Dataset
    nf: NodeForecast
    pos: np.ndarray
    found: np.ndarray
    n_full: int
    sampling: rec.SampleSettings
    reconciled: dict[tuple, tuple[np.ndarray, _Prediction]] = field(default_factory=dict)
    #: Band factors of each calibrated method at this origin, learned from earlier folds.
    scales: dict[str, rec.BandScale] = field(default_factory=dict)
    #: Band quantiles drawn ahead (on a worker) by (method, factors), for :meth:`_band`.
    drawn: dict[tuple, np.ndarray] = field(default_factory=dict)

    def from_past(self, values: np.ndarray) -> np.ndarray:
        """Rows of the origin's hierarchy laid on the fold's full one (0 for newer nodes)."""
        out = np.zeros((self.n_full, values.shape[1]))
        out[self.found] = values[self.pos[self.found]]
        return out

    def reconcile(
        self, how: str, fold: _Fold, info: dict, scale: rec.BandScale | None = None
    ) -> tuple[np.ndarray, _Prediction]:
        """Coherent bottom cube values and node prediction for a method, computed once.

        With ``scale``, the band is drawn from the base quantiles scaled by it.
        """
        key = _band_key(how, scale)
        scale = key[1]
        if key in self.reconciled:
            return self.reconciled[key]
        if scale is not None:
            bottom, p = self.reconcile(how, fold, info)
            self.reconciled[key] = (bottom, p._replace(**self._band(how, scale)))
            return self.reconciled[key]
        r, rinfo = reconcile_nodes(self.nf, self.fc["mean"], method=how)
        bottom = _cube_values(r)
        mean = _coherent(fold.full, bottom)
        if how == "none":
            shift = mean - self.from_past(self.nf.mean)
            lo = self.from_past(self.nf.lower) + shift
            hi = self.from_past(self.nf.upper) + shift
            band = {"lower": lo, "upper": hi}
        else:
            band = self._band(how, None)
        info["reconcile"].append(
            {"fold": fold.k, "method": rinfo.get("method"), "fallback": rinfo.get("fallback")}
        )
        self.reconciled[key] = (bottom, _Prediction(mean, **band))
        return self.reconciled[key]

    def band_args(self, how: str, scale: rec.BandScale | None) -> tuple:
        """The arguments of :func:`_band_quantiles` for this origin's band with ``scale``."""
        q = np.asarray(self.fc["quantile"].values, dtype=float)
        return (
            self.fc["node_forecast"].values, q, self.nf.hierarchy, how, self.nf.residuals,
            replace(self.sampling, scale=scale), self.nf.mean,
        )  # fmt: skip

    def _band(self, how: str, scale: rec.BandScale | None) -> dict[str, np.ndarray]:
        """Lower, upper and centre quantiles of the reconciled sample paths (full hierarchy).

        Drawn here, unless drawn ahead on a worker (``drawn``, :func:`_draw_bands`).
        """
        drawn = self.drawn.pop((how, scale), None)
        quantiles, p_zero = (
            drawn if drawn is not None else _band_quantiles(*self.band_args(how, scale))
        )
        q = np.asarray(self.fc["quantile"].values, dtype=float)
        at = {"lower": int(np.argmin(q)), "upper": int(np.argmax(q)), "center": rec._center(q)}
        band = {k: self.from_past(quantiles[..., i]) for k, i in at.items()}
        # a node new after the origin has no band: nothing to say about its zeros either
        band["zero"] = np.full_like(band["lower"], np.nan)
        band["zero"][self.found] = zero_inside(p_zero, q)[self.pos[self.found]]
        return band

    def past_scores(
        self, how: str, fold: _Fold, info: dict, scale: rec.BandScale | None = None
    ) -> dict[str, np.ndarray]:
        """Scores of this origin's band by level (:func:`revmodel.reconcile.band_scores`), nodes x h.

        The band drawn with ``scale`` (None: the model's own). Only nodes the origin knew
        are scored; a node new after it has no band to scale. An actual of 0 on the lower
        end of its band at 0 scores by its randomized PIT (:func:`atom_scores`), as
        :func:`interval_coverage` counts it.
        """
        p = self.reconcile(how, fold, info, scale)[1]
        score = rec.band_scores(fold.actual_nodes, p.center, p.lower, p.upper)
        score = atom_scores(score, fold.actual_nodes, p.lower, p.zero, (self.sampling.seed, fold.k))
        score = score[self.found]
        levels = fold.full.nodes["level"].to_numpy()[self.found]
        return {lv: score[levels == lv] for lv in dict.fromkeys(levels)}


def atom_scores(
    score: np.ndarray,
    actual: np.ndarray,
    lower: np.ndarray,
    zero: np.ndarray | None,
    seed: Any,
) -> np.ndarray:
    """Band scores with each actual of 0 on a band starting at 0 scored by its randomized PIT.

    Such an actual is inside the band whatever its factor (the band's paths floor at
    0), and a calibrated band holds it with the chance ``zero`` (:func:`zero_inside`):
    it scores 0 (always inside) when a uniform draw falls below that chance and
    infinity (never) otherwise, so the factors make the bands hold their share of the
    actuals as :func:`interval_coverage` counts them. The draws come from ``seed``: the
    same actual draws the same in every calibration round.

    Parameters
    ----------
    score : np.ndarray
        Band scores (:func:`revmodel.reconcile.band_scores`) [1].
    actual, lower : np.ndarray
        The actuals and their bands' lower ends, the shape of ``score`` [units].
    zero : np.ndarray or None
        Per actual, the chance an actual of 0 lies inside (:func:`zero_inside`); None:
        ``score`` as it is.
    seed : int or sequence of int
        Seed of the uniform draws.

    Returns
    -------
    np.ndarray
        The scores, those of the actuals of 0 on a band at 0 replaced by 0 or infinity.

    Examples
    --------
    >>> atom_scores(np.array([1.0, 0.4]), np.array([0.0, 5.0]), np.array([0.0, 0.0]),
    ...             np.array([0.0, 0.0]), seed=1)  # a forecast that is 0 with chance 0.1
    array([inf, 0.4])
    """
    if zero is None:
        return score
    atom = _zero_on_edge(actual, lower, zero)
    if not atom.any():
        return score
    u = np.random.default_rng([int(x) % 2**32 for x in np.atleast_1d(seed)])
    inside = u.random(score.shape) < np.where(atom, zero, 0.0)
    return np.where(atom, np.where(inside, 0.0, np.inf), score)


def _band_key(how: str, scale: rec.BandScale | None) -> tuple[str, rec.BandScale | None]:
    """How a band is keyed: factors with no level learned yet are the model's own band (None)."""
    return how, (None if scale is not None and not scale.levels else scale)


def _band_quantiles(
    node_quantiles: np.ndarray,
    levels: np.ndarray,
    hierarchy: rec.Hierarchy,
    method: str,
    residuals: np.ndarray | None,
    settings: rec.SampleSettings,
    means: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """One band's reconciled sample paths, here or on a worker: their quantiles (nodes x h x
    levels) and each node's share of paths at 0 (nodes x h)."""
    drawn = rec.sample_reconciled(
        node_quantiles, levels, hierarchy, method=method, residuals=residuals,
        nonnegative=True, settings=settings, means=means,
    )  # fmt: skip
    return drawn.quantiles, (drawn.samples <= 0).mean(axis=-1)


def _draw_bands(
    client: Any, how: str, scale: rec.BandScale | None, stats: Sequence[_Statistical]
) -> int:
    """Draw ahead the bands of ``stats`` not drawn yet with ``scale``, one task each on ``client``.

    Returns how many were drawn on the workers; each lands in its origin's ``drawn``,
    where :meth:`_Statistical._band` takes it.
    """
    key = _band_key(how, scale)
    scale = key[1]
    todo = [s for s in stats if key not in s.reconciled and key not in s.drawn]
    if len(todo) < 2:
        return 0
    futures = [client.submit(_band_quantiles, *s.band_args(how, scale), pure=False) for s in todo]
    for s, future in zip(todo, futures, strict=True):
        s.drawn[key] = future.result()
    return len(todo)


def _band_cluster(stats: Sequence[_Statistical], n_workers: int) -> Any:
    """A local cluster drawing the calibration rounds' past bands at once, when they are big.

    Yields None (every band drawn here) for fewer than two origins, one worker, or a
    hierarchy of at most :data:`BAND_PARALLEL_MIN_NODES` nodes; otherwise the client of
    :func:`revmodel.distributed.local_cluster` (one worker per origin, at most
    ``n_workers``).
    """
    from revmodel import distributed

    nodes = max((s.nf.hierarchy.n_nodes for s in stats), default=0)
    if len(stats) < 2 or n_workers < 2 or nodes <= BAND_PARALLEL_MIN_NODES:
        return nullcontext(None)
    return distributed.local_cluster(min(int(n_workers), len(stats)))


def _predict(
    model: BacktestModel, fold: _Fold, stat: _Statistical | None,
    pipes: tuple[np.ndarray, np.ndarray] | None, info: dict, horizon: int,
) -> _Prediction | None:  # fmt: skip
    """What a model forecasts for every node of the fold; None for the blend (scored later)."""
    match model:
        case Custom(fn):
            bottom = fn(fold.hist, horizon)
            if isinstance(bottom, xr.DataArray):
                bottom = _cube_values(bottom.reindex_like(fold.window, fill_value=0.0))
            return _Prediction(_coherent(fold.full, np.asarray(bottom)), None, None)
        case SeasonalNaive():
            mean = _coherent(fold.full, _seasonal_naive(fold.hist_v, horizon))
            return _Prediction(mean, *_seasonal_naive_band(fold.node_hist, mean, 0.1, 0.9))
        case BaseForecast():
            nf = stat.nf
            return _Prediction(*(stat.from_past(v) for v in (nf.mean, nf.lower, nf.upper)))
        case BottomUpSum():
            return _Prediction(_coherent(fold.full, _cube_values(stat.fc["mean"])), None, None)
        case Reconciled(how, calibrated):
            scale = stat.scales.get(how, rec.BandScale()) if calibrated else None
            return stat.reconcile(how, fold, info, scale)[1]
        case WeightedPipeline():
            return _Prediction(_coherent(fold.full, pipes[0]), None, None)
        case PipelineWithNew():
            return _Prediction(_coherent(fold.full, pipes[0] + pipes[1]), None, None)
    return None


def _weighted_pipeline(
    opportunities: pd.DataFrame, fold: _Fold, horizon: int, history: pd.DataFrame | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The weighted open pipeline at the fold's origin and the deals not yet created."""
    from revmodel import pipeline as pl

    pipe = pl.weighted_pipeline(
        opportunities,
        fold.origin,
        horizon=horizon,
        like=fold.window,
        reconstruct=True,
        history=history,
    )
    new = pl.not_yet_created(opportunities, fold.origin, horizon, like=fold.window)
    return tuple(_cube_values(da.reindex_like(fold.window, fill_value=0.0)) for da in (pipe, new))


def _blend_rows(fold: _Fold, segments: np.ndarray, stat_v: np.ndarray, pipe_v: np.ndarray):
    return [
        {
            "fold": fold.k,
            "origin": fold.origin,
            "segment": seg,
            "month": pd.Timestamp(mo),
            "actual": float(fold.act_v[s, ..., t].sum()),
            "stat": float(stat_v[s, ..., t].sum()),
            "pipeline": float(pipe_v[s, ..., t].sum()),
        }
        for s, seg in enumerate(segments)
        for t, mo in enumerate(fold.months)
    ]


@dataclass(frozen=True)
class _BlendFold:
    """What the blend of one fold needs once the weights of the other folds are known."""

    fold: _Fold
    stat_v: np.ndarray
    pipe_v: np.ndarray


def _score_blends(
    name: str, parts: list[_BlendFold], blend_inputs: pd.DataFrame, segments: np.ndarray
) -> list[pd.DataFrame]:
    """Score the blend of each fold with weights learned on the other folds (cross-validated)."""
    from revmodel import pipeline as pl

    frames = []
    for part in parts:
        others = blend_inputs[blend_inputs["fold"] != part.fold.k]
        w = pl.learn_blend_weights(others if len(others) else blend_inputs)
        wv = np.array([float(w.get(s, w.get(pl.POOLED, 1.0))) for s in segments])
        wv = wv[:, None, None, None]
        bottom = wv * part.stat_v + (1 - wv) * part.pipe_v
        frames.append(
            part.fold.score(name, _Prediction(_coherent(part.fold.full, bottom), None, None))
        )
    return frames


# --------------------------------------------------------------------------- backtest


def _origin_list(cube: xr.Dataset, horizon: int, folds: int, step: int, origins) -> list:
    as_of = pd.Timestamp(cube.attrs.get("as_of", "NaT"))
    if origins is None:
        return origins_for(cube, horizon, folds, step)
    origins_for(cube, horizon, 1, 1)  # validates horizon and as_of
    origin_list = sorted(pd.Timestamp(o).to_period("M").to_timestamp() for o in origins)
    late = [o for o in origin_list if o + pd.DateOffset(months=int(horizon)) > as_of]
    if late:
        raise ParameterError(
            f"backtest: origin {late[0]:%Y-%m} plus the {horizon}-month horizon runs past "
            f"as_of {as_of:%Y-%m}; use origins up to "
            f"{as_of - pd.DateOffset(months=int(horizon)):%Y-%m}"
        )
    return origin_list


@dataclass(frozen=True)
class ForecastOptions:
    """How :func:`revmodel.forecast.forecast_cube` runs at each origin (its parallel path).

    Attributes
    ----------
    cache_dir : str or Path, optional
        Forecast cache folder; default the configured one.
    progress : bool
        Show progress bars.
    n_workers : int
        Worker processes of a local cluster.
    distributed_threshold : int, optional
        Series to fit from which a local cluster starts; default
        :data:`revmodel.forecast.DISTRIBUTED_THRESHOLD`.
    """

    cache_dir: str | Path | None = None
    progress: bool = False
    n_workers: int = 2
    distributed_threshold: int | None = None


@dataclass(frozen=True)
class BacktestSettings:
    """How :func:`rolling_origin` runs the statistical forecast at each origin.

    Attributes
    ----------
    measure : str
        Measure to forecast.
    method : str
        Model choice of :func:`revmodel.forecast.forecast_cube`.
    forecast_options : ForecastOptions
        Cache folder and parallel path of :func:`revmodel.forecast.forecast_cube`.
    sampling : revmodel.reconcile.SampleSettings
        Sample paths behind the reconciled 10-90% band.
    """

    measure: str
    method: str
    forecast_options: ForecastOptions = ForecastOptions()
    sampling: rec.SampleSettings = rec.DEFAULT_SAMPLING


def _statistical(
    base_ds: xr.Dataset, fold: _Fold, horizon: int, settings: BacktestSettings
) -> _Statistical:
    from revmodel import forecast

    past = base_ds.isel(month=slice(0, fold.hist.sizes["month"])).assign_attrs(
        as_of=f"{fold.origin:%Y-%m-%d}"
    )
    options = settings.forecast_options
    threshold = options.distributed_threshold
    fc = forecast.forecast_cube(
        past,
        measure=settings.measure,
        horizon=horizon,
        method=settings.method,
        cache_dir=options.cache_dir,
        progress=options.progress,
        n_workers=options.n_workers,
        distributed_threshold=forecast.DISTRIBUTED_THRESHOLD if threshold is None else threshold,
    )
    nf = node_forecasts(fold.hist, fc)
    pos, found = _map_nodes(nf.hierarchy, fold.full)
    return _Statistical(fc, nf, pos, found, fold.full.n_nodes, settings.sampling)


def _run_fold(
    fold: _Fold,
    items: dict[str, BacktestModel],
    stat: _Statistical | None,
    opportunities: pd.DataFrame | None,
    reconcile: str,
    info: dict,
    horizon: int,
    history: pd.DataFrame | None = None,
) -> tuple[list[pd.DataFrame], list[dict], _BlendFold | None]:
    """Score every model on one fold; return the frames, blend rows and the blend's inputs."""
    uses_pipeline = any(
        isinstance(m, WeightedPipeline | PipelineWithNew | Blend) for m in items.values()
    )
    pipes = pipe_v = stat_v = None
    rows: list[dict] = []
    if opportunities is not None and uses_pipeline:
        pipes = _weighted_pipeline(opportunities, fold, horizon, history)
        pipe_v = pipes[0] + pipes[1]  # what the blend uses
        stat_v = stat.reconcile(reconcile, fold, info)[0]
        segments = np.asarray(fold.hist["segment"].values).astype(str)
        rows = _blend_rows(fold, segments, stat_v, pipe_v)
    frames = []
    for name, model in items.items():
        p = _predict(model, fold, stat, pipes, info, horizon)
        if p is not None:
            frames.append(fold.score(name, p))
    blend = (
        _BlendFold(fold, stat_v, pipe_v)
        if Blend() in items.values() and pipe_v is not None
        else None
    )
    return frames, rows, blend


def rolling_origin(
    cube: xr.Dataset,
    horizon: int,
    folds: int = 4,
    step: int = 3,
    measure: str = "bookings",
    models: Sequence[Model] | Mapping[str, Model] | None = None,
    reconcile: str = "mint_shrink",
    opportunities: pd.DataFrame | None = None,
    method: str = "auto",
    origins: Sequence[Any] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    n_workers: int = 2,
    distributed_threshold: int | None = None,
    sampling: rec.SampleSettings = rec.DEFAULT_SAMPLING,
    history: pd.DataFrame | None = None,
    calibration_folds: int = 0,
) -> BacktestResult:
    """Rolling-origin backtest of the forecast at every level of the hierarchy.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube (see :mod:`revmodel.cube`), numpy- or dask-backed.
    horizon : int
        Months forecast from each origin [months].
    folds : int
        Number of origins.
    step : int
        Months between origins [months].
    measure : str
        Measure to forecast, e.g. "bookings" [USD/month].
    models : sequence of str or mapping of name to str or callable, optional
        Models to score (see the module docstring); default :data:`DEFAULT_MODELS`, plus
        ``pipeline``, ``pipeline_new`` and ``blend`` when ``opportunities`` is given. ``seasonal_naive``
        always runs: it is the floor.
    reconcile : str
        Reconciliation method of ``reconciled`` (:data:`revmodel.reconcile.METHODS`).
    opportunities : pd.DataFrame, optional
        Canonical opportunities table, for the ``pipeline`` and ``blend`` models.
    method : str
        Model choice of :func:`revmodel.forecast.forecast_cube` ("auto" is the default).
    origins : sequence of date-like, optional
        Explicit origins (last month each forecast sees) instead of ``folds`` and ``step``.
    history : pd.DataFrame, optional
        Canonical ``opportunity_history``: the ``pipeline`` model then uses the pipeline
        recorded at each origin, with conversion and slippage learned from the history up
        to it (:func:`revmodel.pipeline.weighted_pipeline`), not reconstructed.
    cache_dir, progress, n_workers, distributed_threshold
        Passed to :func:`revmodel.forecast.forecast_cube` (its parallel path for big cubes).
    sampling : revmodel.reconcile.SampleSettings
        Sample paths behind the reconciled models' 10-90% band.
    calibration_folds : int
        Origins before the first fold, ``step`` months apart, forecast only so that the
        ``calibrated`` models of the first folds have past bands to learn from (each fold
        learns from every earlier origin, calibration or scored, whose horizon ended by
        its own origin). Not scored.

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS"),
    ...           "manager": ("rep", ["M1", "M1"])}
    >>> season = np.tile([1.0, 2.0, 3.0], 8)  # a seasonal pattern, repeated exactly
    >>> bookings = (("segment", "region", "rep", "month"), np.stack([100 * season, 50 * season])[None, None])
    >>> cube = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> result = rolling_origin(cube, horizon=3, folds=2, models=["seasonal_naive"])
    >>> result.metrics.query("level == 'total'")["wape"].round(6).tolist()  # exactly seasonal
    [0.0, 0.0]
    """
    _check_backtest(cube, measure, reconcile)
    origin_list = _origin_list(cube, horizon, folds, step, origins)
    items = _check_models(models, reconcile, opportunities is not None)
    options = ForecastOptions(cache_dir, progress, n_workers, distributed_threshold)
    settings = BacktestSettings(measure, method, options, sampling)
    da, base_ds = _measure_only(cube, measure)
    run = _FoldRun(items, reconcile, int(horizon), opportunities, history)
    before = _calibration_origins(cube, origin_list, calibration_folds, step)
    scored = _score_folds(da, base_ds, origin_list, run, settings, before)
    blend_inputs = pd.DataFrame(
        scored.blend_rows,
        columns=["fold", "origin", "segment", "month", "actual", "stat", "pipeline"],
    )
    frames = scored.frames
    if scored.blend_parts:
        from revmodel import pipeline as pl

        name = next(n for n, m in items.items() if m == Blend())
        segments = np.asarray(da["segment"].values).astype(str)
        frames += _score_blends(name, scored.blend_parts, blend_inputs, segments)
        scored.info["blend_weights"] = pl.learn_blend_weights(blend_inputs)
    scores = pd.concat(frames, ignore_index=True)
    return BacktestResult(
        scores=scores,
        metrics=_metrics(scores, ["fold", "origin", "model", "level"]),
        blend_inputs=blend_inputs,
        origins=list(origin_list),
        horizon=int(horizon),
        measure=measure,
        info=scored.info,
    )


def _calibration_origins(
    cube: xr.Dataset, origin_list: Sequence[pd.Timestamp], n: int, step: int
) -> list[pd.Timestamp]:
    """``n`` origins ``step`` months apart before the first fold, oldest first."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ParameterError(f"backtest: calibration_folds must be a whole number >= 0, got {n!r}")
    out = [origin_list[0] - pd.DateOffset(months=int(step) * j) for j in range(int(n), 0, -1)]
    months = pd.DatetimeIndex(cube["month"].values)
    if out and int((months <= out[0]).sum()) < MIN_TRAIN_MONTHS:
        raise ParameterError(
            f"backtest: {n} calibration folds {step} months apart put the first origin at "
            f"{out[0]:%Y-%m}, leaving {int((months <= out[0]).sum())} months of history "
            f"(at least {MIN_TRAIN_MONTHS} needed); use fewer calibration folds"
        )
    return out


def _check_backtest(cube: xr.Dataset, measure: str, reconcile: str) -> None:
    """Raise a clear error for a measure the cube lacks or an unknown reconciliation method."""
    if measure not in cube.data_vars:
        raise ParameterError(
            f"backtest: measure {measure!r} is not in the cube; available: "
            f"{', '.join(map(str, cube.data_vars))}"
        )
    if reconcile not in rec.METHODS:
        raise ParameterError(
            f"backtest: unknown reconciliation method {reconcile!r}; use one of "
            f"{', '.join(rec.METHODS)}"
        )


def _measure_only(cube: xr.Dataset, measure: str) -> tuple[xr.DataArray, xr.Dataset]:
    """One in-memory copy of the measure (cells x month), and it as the cube each origin cuts."""
    da = cube[measure].transpose(*rec.CELL_DIMS, "month").load()
    base_ds = xr.Dataset({measure: da}, attrs=dict(cube.attrs))
    if "manager" not in base_ds.coords and "manager" in cube.coords:
        base_ds = base_ds.assign_coords(manager=cube["manager"])
    return da, base_ds


@dataclass(frozen=True)
class _FoldRun:
    """What every fold of :func:`rolling_origin` scores, and with what."""

    items: dict[str, BacktestModel]
    reconcile: str
    horizon: int
    opportunities: pd.DataFrame | None = None
    history: pd.DataFrame | None = None

    @property
    def needs_statistical(self) -> bool:
        """Some model reads the statistical forecast."""
        kinds = Reconciled | BaseForecast | BottomUpSum | WeightedPipeline | Blend
        return any(isinstance(m, kinds) for m in self.items.values())

    @property
    def calibrated(self) -> tuple[str, ...]:
        """Reconciliation methods whose band is calibrated on earlier folds."""
        return tuple(
            sorted(
                {
                    m.method
                    for m in self.items.values()
                    if isinstance(m, Reconciled) and m.calibrated
                }
            )
        )


@dataclass
class _Scored:
    """Scores gathered over the folds, and what the cross-validated blend still needs."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    blend_rows: list[dict] = field(default_factory=list)
    blend_parts: list[_BlendFold] = field(default_factory=list)
    info: dict[str, Any] = field(
        default_factory=lambda: {"reconcile": [], "new_cells": [], "band_scale": []}
    )
    #: (last actual month, forecast, fold) of every fold run, for the folds after it.
    past: list[tuple[pd.Timestamp, _Statistical, _Fold]] = field(default_factory=list)
    #: Worker processes that may draw the past bands at once (:func:`_band_cluster`).
    n_workers: int = 1

    def remember(self, stat: _Statistical, fold: _Fold) -> None:
        """Keep this fold's forecast: its bands are scored for the folds after it."""
        self.past.append((pd.Timestamp(fold.months[-1]), stat, fold))

    def learn_scale(self, how: str, origin: pd.Timestamp) -> rec.BandScale:
        """Band factors of ``how`` at ``origin`` from the folds run whose actuals end by it.

        Each round draws the past bands again with the factors so far and measures the
        correction they still need; from the second round on the factors take a secant
        step on that correction (:func:`_secant_scale`), since the reconciled band does
        not widen one for one with the base spread (levels mix, and the paths keep
        their mean above 0, so a band near 0 widens less). From the second round on,
        past bands that already hold their share at every level (:func:`calibration_held`)
        end it; at most :data:`CALIBRATION_ROUNDS` rounds. ``self.info["band_rounds"]``
        keeps, per round, each level's share held by the past bands drawn in it. Above
        :data:`BAND_PARALLEL_MIN_NODES` nodes each round draws the past origins' bands at
        once on a local cluster (``self.info["bands_on_workers"]`` counts them); the
        factors are the same as drawn one after the other.
        """
        past = [(end, s, f) for end, s, f in self.past if end <= origin]
        if not past:
            return rec.BandScale()
        q = np.asarray(past[0][1].fc["quantile"].values, dtype=float)
        stats = [s for _, s, _ in past]

        with _band_cluster(stats, self.n_workers) as client:

            def scores_with(scale: rec.BandScale) -> list:
                if client is not None:
                    on_workers = _draw_bands(client, how, scale, stats)
                    self.info["bands_on_workers"] = (
                        self.info.get("bands_on_workers", 0) + on_workers
                    )
                return [(end, s.past_scores(how, f, self.info, scale)) for end, s, f in past]

            scale, rounds = calibration_rounds(scores_with, origin, q.max() - q.min())
        self.info.setdefault("band_rounds", []).append(
            {"origin": f"{origin:%Y-%m}", "method": how, "held": rounds}
        )
        return scale

    def learn_scales(self, stat: _Statistical, fold: _Fold, methods: Sequence[str]) -> None:
        """Band factors of every calibrated method at this fold's origin, from earlier folds.

        A first factor per level makes the past reconciled bands hold their share of
        the past actuals; reconciliation mixes the levels' spreads, so the past bands are
        drawn again with it and the factor corrected the same way until they hold it
        (at most :data:`CALIBRATION_ROUNDS` rounds, :meth:`learn_scale`).
        """
        for how in methods:
            scale = self.learn_scale(how, fold.origin)
            stat.scales[how] = scale
            self.info["band_scale"].append(
                {
                    "fold": fold.k,
                    "method": how,
                    "factors": scale.as_dict(),
                    "n": scale.n_scores,
                    "by_step": dict(zip(scale.levels, scale.by_step, strict=False)),
                }
            )


def calibration_rounds(
    scores_with: Callable[[rec.BandScale], list[tuple[pd.Timestamp, Mapping[str, np.ndarray]]]],
    origin: pd.Timestamp,
    coverage: float = 0.8,
    rounds: int | None = None,
) -> tuple[rec.BandScale, list[dict[str, float]]]:
    """Band factors whose past bands hold ``coverage`` at every level, round by round.

    Each round scores the past bands drawn with the factors so far (``scores_with``:
    the factors to the band scores by level of every earlier fold, as
    :func:`band_calibration` takes them) and measures the correction they still need
    (:func:`band_calibration`); the first round's correction is the factor, later ones
    take a secant step on it (:func:`_secant_scale`). From the second round on, bands
    that already hold ``coverage`` at every level (:func:`calibration_held`) end it;
    at most ``rounds`` (default :data:`CALIBRATION_ROUNDS`).

    Returns
    -------
    (revmodel.reconcile.BandScale, list of dict)
        The factors, and per round each level's share held by the past bands drawn in it.
    """
    scale, before, needed = rec.BandScale(), None, None
    held_by_round: list[dict[str, float]] = []
    for k in range(CALIBRATION_ROUNDS if rounds is None else int(rounds)):
        scores = scores_with(scale)
        held = past_coverage(scores, origin)
        held_by_round.append({lv: round(c, 4) for lv, (c, _) in held.items()})
        if k > 0 and calibration_held(held, coverage):
            break
        fix = band_calibration(scores, origin, coverage)
        step = scale.times(fix) if before is None else _secant_scale(before, needed, scale, fix)
        before, needed, scale = scale, fix, step
    return scale, held_by_round


#: Bounds of the band's response to its factor in a secant step (:func:`_secant_scale`):
#: a correction is taken at least one for one, at most twice over (in logs).
SECANT_RESPONSE: tuple[float, float] = (0.5, 1.0)


def _secant_scale(
    before: rec.BandScale, needed: rec.BandScale, scale: rec.BandScale, fix: rec.BandScale
) -> rec.BandScale:
    """The factors a secant step on the correction gives, per level and month ahead.

    With ``x`` the log factor and ``y`` the log correction the past bands drawn with it
    still needed, two rounds ``(x0, y0)`` (``before``, ``needed``) and ``(x1, y1)``
    (``scale``, ``fix``) give the band's response ``r = (y0 - y1) / (x1 - x0)`` (1 when
    the band widens one for one), and the step ``x1 + y1 / r``; ``r`` is kept within
    :data:`SECANT_RESPONSE` (1 where the factors did not move).

    Examples
    --------
    >>> one = rec.BandScale()
    >>> first = rec.BandScale(("total",), (2.0,), (30,))  # the past bands needed 2x
    >>> still = rec.BandScale(("total",), (1.25,), (30,))  # drawn 2x, they widened 1.6x
    >>> round(_secant_scale(one, first, first, still).as_dict()["total"], 2)  # not 2 x 1.25
    2.78
    """
    levels = tuple(dict.fromkeys((*scale.levels, *fix.levels)))
    rows = (*before.by_step, *needed.by_step, *scale.by_step, *fix.by_step)
    h = max((len(r) for r in rows), default=0)
    lo, hi = rec.BAND_SCALE_BOUNDS

    def step(x0, y0, x1, y1):
        dx = x1 - x0
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(np.abs(dx) > 1e-9, (y0 - y1) / np.where(np.abs(dx) > 1e-9, dx, 1.0), 1.0)
        r = np.clip(r, *SECANT_RESPONSE)
        return np.clip(np.exp(x1 + y1 / r), lo, hi)

    def logs(s: rec.BandScale, lv: str) -> tuple[float, np.ndarray]:
        level = float(np.log(s.as_dict().get(lv, 1.0)))
        return level, np.log(s.step_factors(lv, h)) if h else np.zeros(0)

    factors, by_step = [], []
    for lv in levels:
        (a0, s0), (b0, t0), (a1, s1), (b1, t1) = (logs(x, lv) for x in (before, needed, scale, fix))
        factors.append(float(step(a0, b0, a1, b1)))
        by_step.append(tuple(step(s0, t0, s1, t1).tolist()))
    counts = dict(zip(fix.levels, fix.n_scores, strict=False))
    return rec.BandScale(
        levels,
        tuple(factors),
        tuple(counts.get(lv, 0) for lv in levels),
        tuple(by_step) if (scale.by_step or fix.by_step) else (),
    )


def calibrate_bands(
    cube: xr.Dataset,
    horizon: int,
    folds: int = 2,
    step: int | None = None,
    measure: str = "bookings",
    reconcile: str = "mint_shrink",
    cache_dir: str | Path | None = None,
    sampling: rec.SampleSettings = rec.DEFAULT_SAMPLING,
) -> rec.BandCalibration:
    """Band factors for a forecast from the cube's ``as_of``, learned on the origins before it.

    The forecast is run from the last ``folds`` origins that leave ``horizon`` months of
    actuals up to ``as_of`` (``step`` months apart, default ``horizon``), and each level's
    factor makes those origins' reconciled 10-90% bands hold 80% of their actuals
    (as the ``calibrated`` backtest model learns it). ``revmodel forecast --calibrate-bands``
    and the plan pack both apply it (:func:`revmodel.forecast.coherent_paths`).

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with ``attrs["as_of"]``.
    horizon : int
        Months ahead of the forecast to calibrate [months].
    folds, step : int
        Past origins and months between them.
    measure, reconcile : str
        Measure and reconciliation method of the forecast.
    cache_dir : str or Path, optional
        Forecast cache folder.
    sampling : revmodel.reconcile.SampleSettings
        Sample paths behind the past bands.

    Returns
    -------
    revmodel.reconcile.BandCalibration
        The factors and the backtest they came from.

    Examples
    --------
    >>> calibrate_bands(xr.Dataset(), horizon=3, reconcile="none")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: band calibration needs a reconciliation method, not 'none'
    """
    if reconcile == "none":
        raise ParameterError("band calibration needs a reconciliation method, not 'none'")
    _check_backtest(cube, measure, reconcile)
    step = int(horizon) if step is None else step
    origin_list = origins_for(cube, horizon, folds, step)
    settings = BacktestSettings(measure, "auto", ForecastOptions(cache_dir, False), sampling)
    da, base_ds = _measure_only(cube, measure)
    run = _FoldRun({"calibrated": Reconciled(reconcile, True)}, reconcile, int(horizon))
    scored = _score_folds(da, base_ds, [], run, settings, origin_list)
    as_of = pd.Timestamp(cube.attrs["as_of"]).to_period("M").to_timestamp()
    return rec.BandCalibration(
        scored.learn_scale(reconcile, as_of),
        reconcile,
        int(horizon),
        tuple(f"{o:%Y-%m}" for o in origin_list),
    )


def with_calibrated_bands(
    fc: xr.Dataset,
    cube: xr.Dataset,
    folds: int,
    reconcile: str = "mint_shrink",
    cache_dir: str | Path | None = None,
) -> xr.Dataset:
    """``fc`` stating the band calibration its paths are drawn with (the plan's band).

    The calibration of :func:`calibrate_bands` for a forecast of ``fc``'s horizon and
    measure from ``cube``'s ``as_of`` (what ``revmodel forecast --calibrate-bands``
    applies), on as many of ``folds`` past origins as the history allows, kept in the
    attributes :func:`revmodel.forecast.coherent_paths` reads. Without any origin (too
    short a history, or ``folds=0``) the models' own bands are kept and
    ``attrs["band_calibration_note"]`` says why.

    Parameters
    ----------
    fc : xr.Dataset
        :func:`revmodel.forecast.forecast_cube` result (base forecast) from ``cube``.
    cube : xr.Dataset
        The revenue cube it was made from.
    folds : int
        Past origins asked (``band_calibration_folds``).
    reconcile : str
        Reconciliation method of the forecast.
    cache_dir : str or Path, optional
        Forecast cache folder.

    Returns
    -------
    xr.Dataset
        ``fc`` with ``band_scale`` and ``band_calibration`` attributes (and a
        ``band_calibration_note`` when fewer or no origins were usable).

    Examples
    --------
    >>> coords = {"month": pd.date_range("2025-01-01", periods=12, freq="MS")}
    >>> fc = xr.Dataset(coords={"month": pd.date_range("2026-01-01", periods=3, freq="MS")})
    >>> cube = xr.Dataset(coords=coords, attrs={"as_of": "2025-12-01"})
    >>> with_calibrated_bands(fc, cube, folds=2).attrs["band_calibration_note"]
    "bands not calibrated: the 12 months of history up to 2025-12 leave no past origin with 3 months of actuals after it and 12 before it; the 10-90% bands are the models' own"
    """
    out = fc.copy()
    for key in ("band_scale", "band_calibration", "band_calibration_note"):
        out.attrs.pop(key, None)
    measure = str(fc.attrs.get("measure", "bookings"))
    cal, note = calibration_for(
        cube, int(fc.sizes["month"]), folds, "band_calibration_folds", measure, reconcile,
        cache_dir,
    )  # fmt: skip
    if cal is not None:
        out.attrs.update(cal.to_attrs())
    if note:
        out.attrs["band_calibration_note"] = note
    return out


def calibration_for(
    cube: xr.Dataset,
    horizon: int,
    folds: int,
    asked_by: str = "--calibrate-bands",
    measure: str = "bookings",
    reconcile: str = "mint_shrink",
    cache_dir: str | Path | None = None,
) -> tuple[rec.BandCalibration | None, str]:
    """The band calibration of a forecast from ``cube``'s ``as_of``, on what the history allows.

    :func:`calibrate_bands` on as many of ``folds`` past origins as fit
    (:func:`calibration_folds_available`); none (and the reason) when none fits, when
    ``folds`` is 0 or when the forecast is not reconciled (``reconcile="none"``).

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with ``attrs["as_of"]``.
    horizon, folds : int
        Months ahead of the forecast [months], and past origins asked.
    asked_by : str
        The setting that asked for ``folds``, as the note names it.
    measure, reconcile : str
        Measure and reconciliation method of the forecast.
    cache_dir : str or Path, optional
        Forecast cache folder.

    Returns
    -------
    (revmodel.reconcile.BandCalibration or None, str)
        The calibration and a note: why the bands are not calibrated, or that fewer
        origins than asked were used ("" when all were).

    Examples
    --------
    >>> coords = {"month": pd.date_range("2025-01-01", periods=12, freq="MS")}
    >>> cube = xr.Dataset(coords=coords, attrs={"as_of": "2025-12-01"})
    >>> calibration_for(cube, 3, 0)
    (None, "bands not calibrated: --calibrate-bands is 0; the 10-90% bands are the models' own")
    """
    n = calibration_folds_available(cube, horizon, folds) if folds > 0 else 0
    if reconcile == "none" or n == 0:
        as_of = pd.Timestamp(cube.attrs["as_of"])
        n_hist = int((pd.DatetimeIndex(cube["month"].values) <= as_of).sum())
        if reconcile == "none":
            why = "the forecast is not reconciled"
        elif folds <= 0:
            why = f"{asked_by} is 0"
        else:
            why = (
                f"the {n_hist} months of history up to {as_of:%Y-%m} leave no past origin with "
                f"{horizon} months of actuals after it and {MIN_TRAIN_MONTHS} before it"
            )
        return None, f"bands not calibrated: {why}; the 10-90% bands are the models' own"
    cal = calibrate_bands(
        cube, horizon, n, measure=measure, reconcile=reconcile, cache_dir=cache_dir
    )
    return cal, (f"{folds} past origins asked, the history allows {n}" if n < folds else "")


def calibration_folds_available(
    cube: xr.Dataset, horizon: int, folds: int, step: int | None = None
) -> int:
    """How many of ``folds`` past origins :func:`calibrate_bands` can use (0 to ``folds``).

    Each origin needs ``horizon`` months of actuals after it and
    :data:`MIN_TRAIN_MONTHS` before it; a short history allows fewer.

    Parameters
    ----------
    cube : xr.Dataset
        The revenue cube, with ``attrs["as_of"]``.
    horizon, folds : int
        Months ahead of the forecast [months], and past origins asked.
    step : int, optional
        Months between origins (default ``horizon``).

    Returns
    -------
    int
        Past origins that fit [1].

    Examples
    --------
    >>> coords = {"month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> cube = xr.Dataset(coords=coords, attrs={"as_of": "2025-12-01"})
    >>> calibration_folds_available(cube, horizon=3, folds=4)  # 12 months before 2024-12
    4
    >>> calibration_folds_available(cube, horizon=12, folds=2)  # 2024-12 leaves 12 months
    1
    """
    step = int(horizon) if step is None else int(step)
    as_of = pd.Timestamp(cube.attrs["as_of"]).to_period("M").to_timestamp()
    n_hist = int((pd.DatetimeIndex(cube["month"].values) <= as_of).sum())
    room = n_hist - int(horizon) - MIN_TRAIN_MONTHS
    return int(min(max(room // step + 1, 0), folds)) if room >= 0 else 0


def past_coverage(
    past: Sequence[tuple[pd.Timestamp, Mapping[str, np.ndarray]]],
    origin: pd.Timestamp,
    decay: float | None = None,
) -> dict[str, tuple[float, float]]:
    """Each level's share of past actuals inside its band, weighted as :func:`band_calibration`.

    Parameters
    ----------
    past, origin, decay
        As in :func:`band_calibration`: band scores by level of earlier folds, the
        origin (folds whose actuals run past it left out) and the weight of each older
        fold relative to the next.

    Returns
    -------
    dict of level name to (float, float)
        The weighted share of scores at most 1 [1] and the effective number of scores
        behind it, (sum w)^2 / sum w^2, a node's months from one origin counting as at
        most :data:`revmodel.reconcile.BAND_SCALE_ROW_SCORES`
        (:func:`revmodel.reconcile.effective_scores`) [1].

    Examples
    --------
    >>> past = [(pd.Timestamp("2025-03-01"), {"total": np.array([0.5, 2.0])}),
    ...         (pd.Timestamp("2025-06-01"), {"total": np.array([0.5, 0.5])})]
    >>> {lv: tuple(round(x, 3) for x in v) for lv, v in past_coverage(past, pd.Timestamp("2025-06-01")).items()}
    {'total': (0.833, 3.6)}
    """
    decay = CALIBRATION_DECAY if decay is None else float(decay)
    usable = sorted(((end, k) for k, (end, _) in enumerate(past) if end <= origin), reverse=True)
    age = {k: a for a, (_, k) in enumerate(usable)}
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for k, (_, scores) in enumerate(past):
        if k in age:
            for lv, v in scores.items():
                v = np.asarray(v, dtype=float)
                rows.setdefault(lv, []).append((v, np.full(v.shape, decay ** age[k])))
    out = {}
    for lv, parts in rows.items():
        v_rows, w_rows = zip(*parts, strict=True)
        v = np.concatenate([x.ravel() for x in v_rows])
        w = np.concatenate([x.ravel() for x in w_rows])
        keep = ~np.isnan(v)
        if keep.any():
            h, w = v[keep] <= 1, w[keep]
            out[lv] = (float((w * h).sum() / w.sum()), rec.effective_scores(v_rows, w_rows))
    return out


def calibration_held(held: Mapping[str, tuple[float, float]], coverage: float = 0.8) -> bool:
    """Whether past bands hold ``coverage`` at every level, within the calibration's tolerance.

    A level is held when its share (:func:`past_coverage`) is within
    :data:`CALIBRATION_TOLERANCE` of ``coverage``, or within the binomial standard error
    sqrt(c (1 - c) / n) of its ``n`` effective past actuals when that is larger (a level
    with few nodes is not chased through its noise).

    Examples
    --------
    >>> calibration_held({"total": (0.70, 12.0), "rep": (0.79, 900.0)})  # total: SE 11.5%
    True
    >>> calibration_held({"total": (0.70, 12.0), "rep": (0.74, 900.0)})  # rep: SE 1.3%
    False
    """
    for share, n in held.values():
        noise = np.sqrt(coverage * (1 - coverage) / n) if n > 0 else np.inf
        if abs(share - coverage) > max(CALIBRATION_TOLERANCE, noise):
            return False
    return True


def band_calibration(
    past: Sequence[tuple[pd.Timestamp, Mapping[str, np.ndarray]]],
    origin: pd.Timestamp,
    coverage: float = 0.8,
    decay: float | None = None,
) -> rec.BandScale:
    """Band factors at ``origin`` from the folds whose actuals were all known by then.

    Each fold's scores weigh ``decay ** age``, its age the number of usable folds that
    ended after it (the latest weighs 1): forecast errors drift, and the recent origins
    say more about the next one (weighted conformal quantile,
    :func:`revmodel.reconcile.learn_band_scale`).

    Parameters
    ----------
    past : sequence of (pd.Timestamp, mapping of level to np.ndarray)
        For each earlier fold, its last actual month and the scores of its uncalibrated
        bands by level (:func:`revmodel.reconcile.band_scores`), flat or nodes x months
        ahead (then each month ahead gets its own factor too).
    origin : pd.Timestamp
        The last month the forecast being calibrated sees: a fold whose actuals run past
        it is left out, so the evaluated months never inform their own band.
    coverage : float
        Share of actuals the band should hold.
    decay : float, optional
        Weight of each older fold relative to the next, in (0, 1]
        (default :data:`CALIBRATION_DECAY`; 1 weighs every fold alike).

    Returns
    -------
    revmodel.reconcile.BandScale
        Factors by level (:func:`revmodel.reconcile.learn_band_scale`).

    Examples
    --------
    >>> past = [(pd.Timestamp("2025-03-01"), {"total": np.array([2.0] * 40)}),
    ...         (pd.Timestamp("2025-06-01"), {"total": np.array([9.0] * 40)})]
    >>> band_calibration(past, pd.Timestamp("2025-03-01")).as_dict()  # the 2nd is unknown yet
    {'total': 2.0}
    """
    decay = CALIBRATION_DECAY if decay is None else float(decay)
    if not 0 < decay <= 1:
        raise ParameterError(f"band calibration: decay must be in (0, 1], got {decay!r}")
    usable = sorted(((end, k) for k, (end, _) in enumerate(past) if end <= origin), reverse=True)
    age = {k: a for a, (_, k) in enumerate(usable)}
    pooled: dict[str, list[np.ndarray]] = {}
    weights: dict[str, list[np.ndarray]] = {}
    for k, (_, scores) in enumerate(past):
        if k in age:
            for lv, v in scores.items():
                v = np.asarray(v, dtype=float)
                pooled.setdefault(lv, []).append(v)
                weights.setdefault(lv, []).append(np.full(v.shape, decay ** age[k]))
    return rec.learn_band_scale(
        {lv: np.concatenate(v) for lv, v in pooled.items()},
        coverage,
        weights={lv: np.concatenate(v) for lv, v in weights.items()},
    )


def _new_cells(fold: _Fold) -> int:
    """Cells of the fold's hierarchy with no value before the origin (new at the origin)."""
    c = fold.full.cells
    return int((~np.any(fold.hist_v != 0, axis=-1)[c[:, 0], c[:, 1], c[:, 2]]).sum())


def _score_folds(
    da: xr.DataArray,
    base_ds: xr.Dataset,
    origin_list: Sequence[pd.Timestamp],
    run: _FoldRun,
    settings: BacktestSettings,
    calibration_origins: Sequence[pd.Timestamp] = (),
) -> _Scored:
    """Forecast from every origin and score every model but the blend on each fold.

    Calibration origins (numbered -1, -2, ... back from the first fold) are forecast
    only to score their bands for the calibrated models of the folds after them.
    """
    from revmodel import progress

    months = pd.DatetimeIndex(da["month"].values)
    scored = _Scored(n_workers=settings.forecast_options.n_workers)
    methods = run.calibrated
    n = (len(calibration_origins) if methods else 0) + len(origin_list)
    bar = progress.bar(total=n, desc="past origins", unit="origin")
    for j, origin in enumerate(calibration_origins if methods else ()):
        fold = _make_fold(da, months, j - len(calibration_origins), origin, run.horizon)
        scored.remember(_statistical(base_ds, fold, run.horizon, settings), fold)
        bar.update(1)
    for k, origin in enumerate(origin_list):
        fold = _make_fold(da, months, k, origin, run.horizon)
        scored.info["new_cells"].append(_new_cells(fold))
        stat = _statistical(base_ds, fold, run.horizon, settings) if run.needs_statistical else None
        if methods:
            scored.learn_scales(stat, fold, methods)
        frames, rows, blend = _run_fold(
            fold,
            run.items,
            stat,
            run.opportunities,
            run.reconcile,
            scored.info,
            run.horizon,
            run.history,
        )
        scored.frames += frames
        scored.blend_rows += rows
        if blend is not None:
            scored.blend_parts.append(blend)
        if methods:
            scored.remember(stat, fold)
        bar.update(1)
    bar.close()
    return scored


def _score_frame(fold, origin, model, levels, labels, fmonths, actual, mean, lo, hi, scale, zero):
    n, h = actual.shape
    nan = np.full((n, h), np.nan)
    return pd.DataFrame(
        {
            "fold": fold,
            "origin": origin,
            "model": model,
            "level": np.repeat(levels, h),
            "node": np.repeat(labels, h),
            "month": np.tile(pd.DatetimeIndex(fmonths), n),
            "step": np.tile(np.arange(1, h + 1), n),
            "actual": actual.ravel(),
            "forecast": mean.ravel(),
            "lower": (nan if lo is None else lo).ravel(),
            "upper": (nan if hi is None else hi).ravel(),
            "scale": np.repeat(scale, h),
            "zero_inside": (nan if zero is None else zero).ravel(),
        }
    )


def _group_metrics(g: pd.DataFrame) -> pd.Series:
    a, f = g["actual"].to_numpy(), g["forecast"].to_numpy()
    s = g["scale"].to_numpy()
    ok = np.isfinite(s) & (s > 0)
    return pd.Series(
        {
            "nodes": int(g["node"].nunique()),
            "wape": wape(a, f),
            "smape": smape(a, f),
            "mase": float(np.mean(np.abs(f[ok] - a[ok]) / s[ok])) if ok.any() else float("nan"),
            "bias": bias(a, f),
            "coverage": interval_coverage(
                a, g["lower"].to_numpy(), g["upper"].to_numpy(), g["zero_inside"].to_numpy()
            ),
        }
    )


def _metrics(scores: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    out = scores.groupby(by, sort=False).apply(_group_metrics, include_groups=False).reset_index()
    out["nodes"] = out["nodes"].astype(int)
    order = {lv: i for i, lv in enumerate(LEVEL_ORDER)}
    out = out.sort_values(
        [*[b for b in by if b != "level"], "level"],
        key=lambda s: s.map(order) if s.name == "level" else s,
        kind="stable",
    )
    return out.reset_index(drop=True)


def summary_table(result: BacktestResult) -> pd.DataFrame:
    """Metrics per level and model, pooled over the folds.

    Parameters
    ----------
    result : BacktestResult
        From :func:`rolling_origin`.

    Returns
    -------
    pd.DataFrame
        Columns ``level``, ``model``, ``nodes`` (per fold, at most), ``wape``, ``smape`` [%],
        ``mase``, ``bias``, ``coverage`` and ``beats_floor`` (WAPE at most the seasonal
        naive's at that level), levels top to bottom.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS"),
    ...           "manager": ("rep", ["M1", "M1"])}
    >>> season = np.tile([1.0, 2.0, 3.0], 8)  # a seasonal pattern, repeated exactly
    >>> bookings = (("segment", "region", "rep", "month"), np.stack([100 * season, 50 * season])[None, None])
    >>> cube = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> result = rolling_origin(cube, horizon=3, folds=2, models=["seasonal_naive"])
    >>> summary_table(result)[["level", "model", "wape"]].head(2)
        level           model  wape
    0   total  seasonal_naive   0.0
    1  region  seasonal_naive   0.0
    """
    models = list(dict.fromkeys(result.scores["model"]))
    out = _metrics(result.scores, ["level", "model"])
    out["model"] = pd.Categorical(out["model"], categories=models, ordered=True)
    order = {lv: i for i, lv in enumerate(LEVEL_ORDER)}
    out = out.sort_values(
        ["level", "model"], key=lambda s: s.map(order) if s.name == "level" else s
    )
    out["model"] = out["model"].astype(str)
    floor = out[out["model"] == FLOOR].set_index("level")["wape"]
    out["beats_floor"] = [
        bool(w <= floor.get(lv, np.nan) + 1e-12) if np.isfinite(w) else False
        for lv, w in zip(out["level"], out["wape"], strict=True)
    ]
    return out.reset_index(drop=True)


def format_table(table: pd.DataFrame, result: BacktestResult | None = None) -> str:
    """A readable text table of :func:`summary_table`.

    Parameters
    ----------
    table : pd.DataFrame
        From :func:`summary_table`.
    result : BacktestResult, optional
        Adds a title line naming the measure, origins and horizon.

    Returns
    -------
    str
        The table with percentages formatted, and a line defining the metrics.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS"),
    ...           "manager": ("rep", ["M1", "M1"])}
    >>> season = np.tile([1.0, 2.0, 3.0], 8)  # a seasonal pattern, repeated exactly
    >>> bookings = (("segment", "region", "rep", "month"), np.stack([100 * season, 50 * season])[None, None])
    >>> cube = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> result = rolling_origin(cube, horizon=3, folds=2, models=["seasonal_naive"])
    >>> print(format_table(summary_table(result), result).splitlines()[0])
    Backtest of bookings: 2 origins (2025-06, 2025-09), 3 months ahead
    """
    t = table.copy()
    lines = []
    if result is not None:
        lines.append(
            f"Backtest of {result.measure}: {len(result.origins)} origins "
            f"({', '.join(f'{o:%Y-%m}' for o in result.origins)}), {result.horizon} months ahead"
        )
    fmt = {
        "wape": lambda v: f"{v:.1%}" if np.isfinite(v) else "-",
        "smape": lambda v: f"{v:.1f}" if np.isfinite(v) else "-",
        "mase": lambda v: f"{v:.2f}" if np.isfinite(v) else "-",
        "bias": lambda v: f"{v:+.1%}" if np.isfinite(v) else "-",
        "coverage": lambda v: f"{v:.0%}" if np.isfinite(v) else "-",
        "beats_floor": lambda v: "yes" if v else "no",
    }
    for col, f in fmt.items():
        if col in t:
            t[col] = t[col].map(f)
    t = t.rename(columns={"smape": "smape_%", "beats_floor": "beats_naive"})
    lines.append(t.to_string(index=False))
    lines.append(
        "wape = sum|f-a|/sum|a|; bias = sum(f-a)/sum(a); mase scaled by the in-sample seasonal "
        "naive error; coverage = share of actuals inside the 10-90% band (an actual of 0 on "
        "a band that starts at 0 counted as its chance of lying inside)"
    )
    return "\n".join(lines)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the backtest summary table as ``.csv`` or ``.json`` (records), by suffix.

    Parameters
    ----------
    table : pd.DataFrame
        From :func:`summary_table`.
    path : str or Path
        A ``.csv`` or ``.json`` file; its folder is created.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS"),
    ...           "manager": ("rep", ["M1", "M1"])}
    >>> season = np.tile([1.0, 2.0, 3.0], 8)  # a seasonal pattern, repeated exactly
    >>> bookings = (("segment", "region", "rep", "month"), np.stack([100 * season, 50 * season])[None, None])
    >>> cube = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> result = rolling_origin(cube, horizon=3, folds=2, models=["seasonal_naive"])
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = write_table(summary_table(result), Path(tempfile.mkdtemp()) / "backtest.csv")
    >>> path.read_text().splitlines()[0].split(",")[:3]
    ['level', 'model', 'nodes']
    """
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise ParameterError(f"--out {path}: write the table as .csv or .json")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        formatting.write_csv(table, path)  # node keys are names from the exports
    else:
        path.write_text(json.dumps(table.to_dict(orient="records"), indent=2) + "\n")
    return path


# --------------------------------------------------------------------------- last cycle's accuracy


def last_cycle_accuracy(
    cube: xr.Dataset, cycle: str, horizon: int = 3, previous: xr.Dataset | None = None
) -> tuple[pd.DataFrame, dict]:
    """Forecast against actual for the last fiscal quarter with actuals, by level.

    The forecast is the one published for that quarter (``previous``: the
    ``forecast`` group of last cycle's ``plan.nc``) when there is one, else it
    is made again: :func:`revmodel.forecast.forecast_cube` on the cube as of the
    month before that quarter.

    Parameters
    ----------
    cube : xarray.Dataset
        The revenue cube (actuals through ``attrs["as_of"]``).
    cycle : str
        The cycle planned now, e.g. ``"FY2027-Q1"``; the quarter measured is the
        last complete quarter of actuals before it.
    horizon : int
        Months forecast when the forecast is made again [months].
    previous : xarray.Dataset, optional
        Last cycle's published forecast (``forecast_cube`` output).

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per node (reps by name, as every table shows them; a rep with
        nothing forecast or booked in the quarter is left out): ``level``, ``name``,
        ``forecast``, ``p10``, ``p90``,
        ``actual`` [currency], ``error`` (forecast - actual) [currency],
        ``abs_pct_error`` [ratio], ``in_band`` [bool]; and ``info`` with
        ``quarter``, ``origin`` (last month of actuals the forecast saw) and
        ``source`` ("published" or "re-run").

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS"),
    ...           "manager": ("rep", ["M1", "M1"])}
    >>> season = np.tile([1.0, 2.0, 3.0], 8)  # a seasonal pattern, repeated exactly
    >>> bookings = (("segment", "region", "rep", "month"), np.stack([100 * season, 50 * season])[None, None])
    >>> cube = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> import tempfile
    >>> from revmodel.forecast import forecast_cube
    >>> past = cube.sel(month=cube["month"] <= np.datetime64("2025-09-01")).assign_attrs(
    ...     as_of="2025-09-01")
    >>> published = forecast_cube(past, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> table, info = last_cycle_accuracy(cube, "FY2026-Q1", previous=published)
    >>> info
    {'quarter': 'FY2025-Q4', 'origin': '2025-09', 'source': 'published'}
    >>> table.loc[table["level"] == "total", "actual"].tolist()  # Oct-Dec 2025, both reps
    [900.0]
    """
    from revmodel import forecast

    as_of = pd.Timestamp(cube.attrs["as_of"])
    quarter = fcal.next_quarter(cycle, -1)
    months = fcal.period_months(quarter, cube.attrs)
    while months[-1] > as_of:
        quarter = fcal.next_quarter(quarter, -1)
        months = fcal.period_months(quarter, cube.attrs)
    origin = months[0] - pd.DateOffset(months=1)
    fc = previous
    source = "published"
    if fc is None or not set(months).issubset(set(pd.DatetimeIndex(fc["month"].values))):
        past = cube.sel(month=cube["month"] <= np.datetime64(origin, "ns"))
        past = past.assign_attrs(as_of=f"{origin:%Y-%m-%d}")
        fc = forecast.forecast_cube(
            past, horizon=max(3, int(horizon)), progress="forecast of last cycle"
        )
        source = "re-run"
    sel = fc.sel(month=months.values)
    q = [float(v) for v in sel["quantile"].values]
    actual = cube["bookings"].sel(month=months.values)
    rows = []
    levels = {"total": (), "region": ("region",), "segment": ("segment",), "manager": ("manager",)}
    for level, keys in levels.items():
        mask = sel["level"].values == level
        for i in np.flatnonzero(mask):
            name = " / ".join(str(sel[f"node_{k}"].values[i]) for k in keys) or "Company"
            sub = actual
            for k in keys:
                if k == "manager":
                    sub = sub.where(cube["manager"] == str(sel["node_manager"].values[i]))
                else:
                    sub = sub.sel({k: str(sel[f"node_{k}"].values[i])})
            rows.append(_accuracy_row(level, name, sel, i, q, float(sub.sum(skipna=True))))
    rep_mask = sel["level"].values == rec.BOTTOM_LEVEL
    reps = pd.Series(sel["node_rep"].values[rep_mask])
    shown = rcube.labels(cube, "rep")
    for rep in sorted(set(reps)):
        idx = np.flatnonzero(rep_mask)[reps.values == rep]
        act = float(actual.sel(rep=rep).sum(skipna=True))
        fcv = float(sel["node_mean"].values[idx].sum())
        band = _period_band(sel, idx, q)
        if act == 0 and fcv == 0 and not np.any(band):
            continue  # not selling that quarter (left, or not yet hired): nothing to measure
        rows.append(_row("rep", shown.get(str(rep), str(rep)), fcv, band, q, act))
    table = pd.DataFrame(rows)
    info = {"quarter": quarter, "origin": f"{origin:%Y-%m}", "source": source}
    return table, info


def nonnegative(fc: xr.Dataset) -> bool:
    """Whether the forecast measure is never negative (its node history says so).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> nonnegative(xr.Dataset({"node_history": (("node", "history_month"), [[5.0, -1.0]])}))
    False
    """
    if "node_history" not in fc:
        return True
    return bool(np.nanmin(fc["node_history"].values, initial=0.0) >= 0)


def _period_band(sel: xr.Dataset, nodes: Any, q: list) -> np.ndarray:
    """Quantiles of the total of ``nodes`` over the selected months (never added quantiles)."""
    values = sel["node_forecast"].transpose("node", "month", "quantile").values[nodes]
    totals, _ = rec.period_quantiles(
        values, q, groups=[0] * len(values), nonnegative=nonnegative(sel)
    )
    return totals[0]


def _accuracy_row(level, name, sel, i, q, actual):
    fcv = float(sel["node_mean"].values[i].sum())
    return _row(level, name, fcv, _period_band(sel, [i], q), q, actual)


def _row(level: str, name: str, fcv: float, band: np.ndarray, q: list, actual: float) -> dict:
    p10 = float(band[q.index(min(q))])
    p90 = float(band[q.index(max(q))])
    return {
        "level": level,
        "name": name,
        "forecast": fcv,
        "p10": p10,
        "p90": p90,
        "actual": actual,
        "error": fcv - actual,
        "abs_pct_error": abs(fcv - actual) / actual if actual > 0 else np.nan,
        "in_band": bool(p10 <= actual <= p90),
    }


def accuracy_table(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy by level: nodes, weighted absolute percentage error, share inside the band.

    Parameters
    ----------
    table : pd.DataFrame
        From :func:`last_cycle_accuracy`: ``level``, ``forecast``, ``actual``, ``error``
        and ``in_band`` per node.

    Returns
    -------
    pd.DataFrame
        One row per level: ``nodes``, ``forecast`` and ``actual`` [currency], ``wape``
        [ratio] and ``share_in_band`` [ratio].

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"level": ["rep", "rep"], "forecast": [110.0, 90.0],
    ...                      "actual": [100.0, 100.0], "error": [10.0, -10.0],
    ...                      "in_band": [True, False]})
    >>> accuracy_table(rows)
      level  nodes  forecast  actual  wape  share_in_band
    0   rep      2     200.0   200.0   0.1            0.5
    """
    g = table.groupby("level", sort=False)
    out = pd.DataFrame(
        {
            "nodes": g.size(),
            "forecast": g["forecast"].sum(),
            "actual": g["actual"].sum(),
            "wape": g.apply(
                lambda d: d["error"].abs().sum() / d["actual"].sum(), include_groups=False
            ),
            "share_in_band": g["in_band"].mean(),
        }
    )
    return out.reset_index()


__all__ = [
    "DEFAULT_MODELS",
    "BacktestResult",
    "wape",
    "smape",
    "mase",
    "bias",
    "interval_coverage",
    "cell_inside",
    "zero_inside",
    "band_calibration",
    "calibrate_bands",
    "calibration_folds_available",
    "calibration_for",
    "with_calibrated_bands",
    "seasonal_scale",
    "origins_for",
    "rolling_origin",
    "summary_table",
    "format_table",
    "write_table",
    "last_cycle_accuracy",
    "accuracy_table",
]
