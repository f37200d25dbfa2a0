"""Statistical forecasts of a cube measure, for every node of the hierarchy.

Three layers, each usable on its own:

- :func:`forecast_series` forecasts one monthly series. It looks at the
  series' nature (empty, all zero, a rep who left, constant, intermittent,
  short, with negative months) and picks a model accordingly, recording the
  model that ran and why in a short human string. It never raises for an
  awkward series: a series on which every model fails gets NaN and the reason.
- :func:`forecast_many` forecasts many series, in-process or on a
  ``dask.distributed`` cluster, with an on-disk cache keyed by the series'
  values, the settings and the model code, so a re-run refits only what changed.
- :func:`forecast_cube` forecasts the months after ``attrs["as_of"]`` for the
  bottom cells (segment, region, rep) and every aggregate node, and returns a
  Dataset aligned with the cube plus the node-level base forecasts and
  residuals that reconciliation consumes.

Rules for awkward series (applied in this order by :func:`forecast_series`):

1. all NaN -> zero forecast; leading NaN months are dropped; interior NaN
   gaps are filled by linear interpolation; trailing NaN months are filled
   with the last observed value (the forecast origin stays the array's end).
2. a rep who left (``ended=True``; for a node of the hierarchy, every cell of
   it a leaver's) -> zero forecast.
3. all zero -> zero forecast. Leading zeros are dropped (inactive before the
   first activity); a node of the cube starts when its reps first sold anywhere
   (:func:`sellers_since`: a rep's cell in a segment it rarely sells in keeps its
   months without a deal). A leading run of months under a third of the level after
   it, a go-live ramp, is dropped too (:func:`start_up_months`).
4. trailing zeros for at least 6 months and 3 mean inter-demand intervals ->
   zero forecast (inactive).
5. constant -> flat forecast at that value.
6. intermittent (mean inter-demand interval ADI >= 1.32, Syntetos-Boylan) and
   non-negative -> Croston with the SBA correction, started from the mean deal
   size and interval; its band is the series' own months' quantiles scaled to it.
7. fewer than ``min_history`` (24) months -> level/trend combination on the
   series divided by the parent level's ``seasonal_profile`` when given;
   fewer than 4 months -> mean of the months observed.
8. negative months present -> additive models only.
9. otherwise the default method: the mean of SES, damped Holt and Theta (theta 2
   and 3), fitted on the log of the seasonally adjusted series (the ordinary scale
   when a month is zero or negative), and Holt-Winters; when many series are
   forecast together (:func:`forecast_many`), cross-series autoregressions
   fitted on all their histories (:func:`fit_pooled`: a linear one in SES's
   place and two random-feature ones beside it), and two random-feature ones
   fitted on the logs with their season, which learn the season across series
   (:func:`revmodel.models.default_model`).

Quantiles of a non-negative measure are clipped at 0 and the clipping is recorded.

The nodes are the rows of one hierarchy (:func:`revmodel.reconcile.hierarchy_from_cells`),
built once by :func:`forecast_cube`; :func:`forecast_hierarchy` gives it back from a
forecast and :func:`reconcile_dataset` makes every node coherent, quantiles included
(reconciled sample paths).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from revmodel import config, models
from revmodel import reconcile as rec
from revmodel.errors import DataError, ParameterError
from revmodel.models import DEFAULT_QUANTILES

#: Syntetos-Boylan cut-off on the average inter-demand interval for intermittent demand [months].
ADI_INTERMITTENT = 1.32
#: Months of history below which a series borrows its parent's seasonal profile [months].
MIN_HISTORY = 24
#: Fewer misses than this run in-process: starting a local cluster costs seconds.
DISTRIBUTED_THRESHOLD = 200
#: Series per dask task, so task overhead stays small.
CHUNK_SIZE = 100
#: A start-up month is under this share of the series' later level (:func:`start_up_months`).
START_UP_SHARE = 1 / 3
#: Start-up months dropped at most, and where the reference months begin [months].
START_UP_MAX = 6
#: Months whose median is the level a start-up month is compared with [months].
START_UP_REFERENCE = 12
#: Methods :func:`forecast_series` accepts for regular series.
METHODS = ("auto", "holdout", "ets", "theta", "sarima", "seasonal_naive")
#: The grouped hierarchy is reconcile's (rep -> manager -> region -> total, crossed with
#: segment): forecasts are made for exactly the nodes the reconciler will combine.
ALL = rec.ALL
AGGREGATION_LEVELS = rec.LEVELS
BOTTOM_LEVEL = rec.BOTTOM_LEVEL


def _code_version() -> str:
    digest = hashlib.sha256()
    for path in (Path(models.__file__), Path(__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


#: Hash of the model code; part of every cache key, so a code change refits everything.
CODE_VERSION = _code_version()


@dataclass(frozen=True)
class SeriesForecast:
    """The forecast of one series and how it was made.

    Attributes
    ----------
    mean : np.ndarray
        Point forecast, shape ``(h,)`` [units of the series].
    quantiles : np.ndarray
        Shape ``(len(quantile_levels), h)`` [units of the series].
    quantile_levels : tuple of float
        Probability levels of ``quantiles``.
    model_name : str
        The model that produced the forecast ("zero", "constant", "none"...).
    reason : str
        Why that model ran, in a short sentence.
    fallbacks : tuple of str
        Models that failed before it (or members dropped from a combination), with the error.
    residuals : np.ndarray
        In-sample one-step errors aligned with the input series (NaN where none) [units].

    Examples
    --------
    >>> fc = forecast_series([5.0, 5.0, 5.0, 5.0], h=2)
    >>> fc.model_name, fc.mean.tolist(), fc.reason
    ('constant', [5.0, 5.0], 'constant series (5): flat forecast')
    """

    mean: np.ndarray
    quantiles: np.ndarray
    quantile_levels: tuple[float, ...]
    model_name: str
    reason: str
    fallbacks: tuple[str, ...] = ()
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _check_settings(h: int, quantiles: Sequence[float], method: str) -> tuple[float, ...]:
    if not isinstance(h, int | np.integer) or h < 1:
        raise ParameterError(f"horizon must be a whole number of months >= 1, got {h!r}")
    q = tuple(float(v) for v in quantiles)
    if not q or any(not 0 < v < 1 for v in q):
        raise ParameterError(f"quantiles must lie strictly between 0 and 1, got {list(quantiles)}")
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return q


def _constant(value: float, h: int, q: tuple[float, ...], name: str, reason: str, n: int):
    return SeriesForecast(
        mean=np.full(h, value),
        quantiles=np.full((len(q), h), value),
        quantile_levels=q,
        model_name=name,
        reason=reason,
        residuals=np.full(n, np.nan),
    )


def _smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    denom = np.abs(actual) + np.abs(forecast)
    ratio = np.where(denom > 0, 2 * np.abs(actual - forecast) / np.where(denom > 0, denom, 1), 0.0)
    return float(100 * np.mean(ratio))


def _candidates(method: str, pooled: models.PooledAR | None = None) -> list[models.Forecaster]:
    # "auto" seasonality is multiplicative only for positive series, so series with
    # negative months get additive models without further ado
    if method == "ets":
        return [models.ETS()]
    if method == "theta":
        return [models.Deseasonalized(models.Theta(deseasonalize=False))]
    if method == "sarima":
        return [models.AutoSARIMAX()]
    if method == "seasonal_naive":
        return [models.SeasonalNaive()]
    return [models.default_model(pooled=pooled)]


def _fallback_chain() -> list[models.Forecaster]:
    return [models.Holt(damped=True), models.SES(), models.SeasonalNaive()]


def _holdout_choice(y, h, m) -> tuple[models.Forecaster, str]:
    """Pick among the default combination, ETS and seasonal naive by holdout sMAPE."""
    hold = min(h, m, max(1, y.size // 4))
    train, test = y[:-hold], y[-hold:]
    makers = {
        "combination": models.default_model,
        "ets": models.ETS,
        "seasonal_naive": models.SeasonalNaive,
    }
    scores = {}
    for label, make in makers.items():
        try:
            mean, _ = make().fit_predict(train, hold, m)
            scores[label] = _smape(test, mean)
        except Exception:  # noqa: BLE001 - a candidate that fails the holdout is not chosen
            scores[label] = np.inf
    best = min(scores, key=scores.get)
    text = ", ".join(f"{k} {v:.1f}" for k, v in sorted(scores.items(), key=lambda kv: kv[1]))
    return makers[best](), f"holdout sMAPE over the last {hold} months: {text}"


def forecast_series(
    y: np.ndarray,
    h: int,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    season_length: int = 12,
    seasonal_profile: Sequence[float] | None = None,
    ended: bool = False,
    nonnegative: bool | None = None,
    method: str = "auto",
    model: models.Forecaster | None = None,
    fallbacks: Sequence[models.Forecaster] | None = None,
    min_history: int = MIN_HISTORY,
    pooled: models.PooledAR | None = None,
    since: int | None = None,
) -> SeriesForecast:
    """Forecast one monthly series, choosing the model by the series' nature.

    Parameters
    ----------
    y : np.ndarray
        Monthly history, oldest first [units of the measure]; NaN allowed.
    h : int
        Horizon [months].
    quantiles : sequence of float
        Probability levels of the returned quantiles.
    season_length : int
        Months per season.
    seasonal_profile : sequence of float, optional
        ``season_length`` multiplicative indices of the parent level, used
        for short series; ``seasonal_profile[i % season_length]`` applies to ``y[i]``.
    ended : bool
        The series belongs to someone who left (a rep past their end date), or is a node
        every cell of which does: zero forecast.
    nonnegative : bool, optional
        Clip forecasts at 0. Default: True when no observed value is negative.
    method : str
        Model for regular series: "auto" (the default combination),
        "holdout" (best of combination / ETS / seasonal naive on a holdout),
        "ets", "theta", "sarima" or "seasonal_naive".
    model : Forecaster, optional
        Use this model for a regular series instead of ``method``.
    fallbacks : sequence of Forecaster, optional
        Tried in order when the model fails; default damped Holt, SES,
        seasonal naive. Pass ``()`` for none.
    min_history : int
        Months below which a series is "short" [months].
    pooled : PooledAR, optional
        A cross-series model fitted on many series' histories (see
        :func:`fit_pooled`), a member of the default method in place of SES;
        :func:`forecast_many` fits one when it has enough series.
    since : int, optional
        Index of the month the series' sellers were first active (a cell's or a
        segment's reps' first sale anywhere): the months before it are dropped, and
        zero months from it on are kept as months without a deal rather than dropped
        as leading zeros. Default: the series begins at its first non-zero month.

    Returns
    -------
    SeriesForecast
        Never raises for awkward data: failures give NaN and the reason.

    Examples
    --------
    >>> import numpy as np
    >>> y = 100 + 10 * np.sin(np.arange(36) * np.pi / 6)  # three years of a monthly series
    >>> fc = forecast_series(y, h=3)
    >>> fc.mean.shape, fc.quantiles.shape  # 3 months; p10, p50, p90 for each
    ((3,), (3, 3))
    >>> bool(np.all(fc.quantiles[0] <= fc.quantiles[2]))
    True
    >>> forecast_series([np.nan, 0.0, 0.0], h=2).reason
    'all-zero history: zero forecast'
    """
    q = _check_settings(h, quantiles, method)
    y = np.asarray(y, dtype=float).ravel()
    finite = np.isfinite(y)
    if not finite.any():
        return _constant(0.0, h, q, "zero", "no observations (all NaN): zero forecast", y.size)
    if nonnegative is None:
        nonnegative = bool(np.all(y[finite] >= 0))
    if ended:
        return _constant(
            0.0,
            h,
            q,
            "zero",
            "left (end date on or before the forecast origin): zero forecast",
            y.size,
        )
    series = _prepare_history(y, nonnegative, since)
    trivial = _trivial_forecast(series, h, q)
    if trivial is not None:
        return trivial
    if series.n < 4 and not series.intermittent:
        return _mean_forecast(series, h, q)
    profile = None
    if seasonal_profile is not None:
        profile = np.roll(np.asarray(seasonal_profile, dtype=float), -series.offset % season_length)
    primary, why = _primary_model(
        series, h, season_length, profile, method, model, min_history, pooled
    )
    notes = list(series.notes)
    if series.additive_only:
        notes.append("negative months present: additive models only")
    chain = [primary, *(_fallback_chain() if fallbacks is None else fallbacks)]
    return _fit_first_working(chain, series, h, season_length, q, why, notes)


@dataclass(frozen=True)
class PreparedSeries:
    """A series made ready to fit: from its first active month, gaps filled.

    Attributes
    ----------
    z : np.ndarray
        The history from its first observed, non-zero month; interior NaN months
        interpolated, trailing NaN months set to the last value [units].
    offset : int
        Index in the input series of ``z[0]``.
    n_in : int
        Length of the input series [months].
    notes : tuple of str
        What was done to the input (interpolated, filled, dropped months).
    nonnegative : bool
        Forecasts are clipped at 0.
    all_zero : bool
        Every observed month is 0 (``z`` is then empty).
    """

    z: np.ndarray
    offset: int
    n_in: int
    notes: tuple[str, ...]
    nonnegative: bool
    all_zero: bool = False

    @property
    def n(self) -> int:
        """Months of usable history [months]."""
        return int(self.z.size)

    @property
    def nonzero(self) -> int:
        """Months with a non-zero value [months]."""
        return int(np.count_nonzero(self.z))

    @property
    def adi(self) -> float:
        """Average inter-demand interval: months per non-zero month [months]."""
        return self.n / self.nonzero

    @property
    def additive_only(self) -> bool:
        """Negative months present: only additive models apply."""
        return bool(np.any(self.z < 0))

    @property
    def intermittent(self) -> bool:
        """Croston territory: non-negative, no negative month, ADI at or above the cut-off."""
        return self.nonnegative and not self.additive_only and self.adi >= ADI_INTERMITTENT


def _fill_gaps(z: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Interior NaN months interpolated, trailing ones set to the last value; ``z[0]`` is finite."""
    gaps = np.isnan(z)
    if not gaps.any():
        return z, []
    notes = []
    last = int(np.max(np.flatnonzero(~gaps)))
    interior = int(gaps[:last].sum())
    trailing = int(gaps.size - 1 - last)
    idx = np.arange(z.size)
    z = np.interp(idx, idx[~gaps], z[~gaps])
    if interior:
        notes.append(f"{interior} NaN months interpolated")
    if trailing:
        notes.append(f"{trailing} trailing NaN months filled with the last value")
    return z, notes


def _prepare_history(y: np.ndarray, nonnegative: bool, since: int | None = None) -> PreparedSeries:
    """Drop leading NaN and zero months and fill the gaps of a series with an observed month.

    With ``since`` (the month its sellers were first active), the months before it are
    dropped and the zero months after it kept.
    """
    finite = np.isfinite(y)
    if since is not None and finite[int(since) :].any():
        finite[: int(since)] = False
    start = int(np.argmax(finite))
    z, notes = _fill_gaps(y[start:])
    if np.all(z == 0):
        return PreparedSeries(z[:0], start, y.size, tuple(notes), nonnegative, all_zero=True)
    first = int(np.argmax(z != 0)) if since is None else 0
    if first:
        notes.append(f"{first} leading zero months dropped")
    ramp = start_up_months(z[first:]) if nonnegative else 0
    if ramp:
        notes.append(
            f"{ramp} start-up months dropped (each under {START_UP_SHARE:.0%} of the median "
            f"of months {START_UP_MAX + 1}-{START_UP_MAX + START_UP_REFERENCE})"
        )
    first += ramp
    return PreparedSeries(z[first:], start + first, y.size, tuple(notes), nonnegative)


def start_up_months(z: np.ndarray) -> int:
    """Months at the start of a non-negative series that belong to its start-up, not its level.

    An export begins where the tool's records begin: a CRM's first months hold only the
    deals that closed within one sales cycle of its go-live (or of the export's "created
    after" filter), a new rep's first months their first deals. Such a start-up is a
    level shift the models would read as noise (on the log scale, a month at a tenth of
    the level is an error larger than any after it), widening every band and pulling the
    level down. The start-up is the leading run of months each under
    :data:`START_UP_SHARE` of the median of the :data:`START_UP_REFERENCE` months after
    the first :data:`START_UP_MAX`; at most :data:`START_UP_MAX` months, and only when the
    series is long enough to have that reference (0 otherwise, and 0 when the reference's
    median is 0: an intermittent series).

    Examples
    --------
    >>> level = np.full(24, 300.0)
    >>> start_up_months(np.concatenate([[55.0, 42.0, 89.0], level]))  # a CRM's go-live
    3
    >>> start_up_months(np.concatenate([[150.0, 120.0], level]))  # half the level: kept
    0
    >>> start_up_months(np.concatenate([[55.0, 42.0], level[:12]]))  # too short to tell
    0
    """
    z = np.asarray(z, dtype=float)
    if z.size < START_UP_MAX + START_UP_REFERENCE:
        return 0
    reference = float(np.median(z[START_UP_MAX : START_UP_MAX + START_UP_REFERENCE]))
    low = z[:START_UP_MAX] < START_UP_SHARE * reference
    return int(START_UP_MAX if low.all() else np.argmin(low))


def _trivial_forecast(
    series: PreparedSeries, h: int, q: tuple[float, ...]
) -> SeriesForecast | None:
    """The flat forecast of an all-zero, inactive or constant series; None for any other."""
    if series.all_zero:
        return _constant(0.0, h, q, "zero", "all-zero history: zero forecast", series.n_in)
    z = series.z
    trailing_zeros = int(np.argmax(z[::-1] != 0))
    if trailing_zeros >= max(6, 3 * series.adi):
        return _constant(
            0.0,
            h,
            q,
            "zero",
            f"inactive: last {trailing_zeros} months zero: zero forecast",
            series.n_in,
        )
    if np.ptp(z) == 0:
        return _constant(
            float(z[0]), h, q, "constant", f"constant series ({z[0]:g}): flat forecast", series.n_in
        )
    return None


def _mean_forecast(series: PreparedSeries, h: int, q: tuple[float, ...]) -> SeriesForecast:
    """Fewer than 4 months: the mean of the months observed, normal quantiles around it."""
    z, n = series.z, series.n
    mean = float(z.mean())
    sd = float(z.std()) if n > 1 else abs(mean) * 0.5
    quant = models.normal_quantiles(np.full(h, mean), np.full(h, sd), q)
    if series.nonnegative:
        quant = np.maximum(quant, 0)
    notes = [f"only {n} months of history: mean of the months observed", *series.notes]
    return SeriesForecast(
        np.full(h, mean), quant, q, "mean", "; ".join(notes), (), np.full(series.n_in, np.nan)
    )


def _short_history_model(
    series: PreparedSeries, profile: np.ndarray | None, min_history: int
) -> tuple[models.Forecaster, str]:
    """Level and trend by SES and damped Holt, deseasonalized by the parent's profile if usable."""
    n = series.n
    level_trend = models.Combination([models.SES(), models.Holt(damped=True)], how="mean")
    usable = profile is not None and np.all(np.isfinite(profile)) and np.all(profile > 0)
    if usable and not series.additive_only:
        primary = models.Deseasonalized(level_trend, profile=profile)
        why = f"short history ({n} months < {min_history}): parent seasonal profile borrowed, level/trend by SES and damped Holt"
        return primary, why
    missing = "negative months" if usable else "no parent seasonal profile"
    why = f"short history ({n} months < {min_history}), {missing}: non-seasonal level/trend by SES and damped Holt"
    return level_trend, why


def _primary_model(
    series: PreparedSeries,
    h: int,
    season_length: int,
    profile: np.ndarray | None,
    method: str,
    model: models.Forecaster | None,
    min_history: int,
    pooled: models.PooledAR | None = None,
) -> tuple[models.Forecaster, str]:
    """The first model to try on a series of 4 months or more, and why (rules 6 to 9)."""
    if series.intermittent:
        zero_share = 100 * (1 - series.nonzero / series.n)
        why = f"intermittent (ADI {series.adi:.2f} >= {ADI_INTERMITTENT}, {zero_share:.0f}% zero months)"
        return models.Croston("sba"), why
    if series.n < min_history:
        return _short_history_model(series, profile, min_history)
    if model is not None:
        return model, "model given by the caller"
    if method == "holdout":
        return _holdout_choice(series.z, h, season_length)
    why = "default method" if method == "auto" else f"method {method!r} requested"
    return _candidates(method, pooled)[0], why


def _fit_first_working(
    chain: Sequence[models.Forecaster],
    series: PreparedSeries,
    h: int,
    season_length: int,
    q: tuple[float, ...],
    why: str,
    notes: list[str],
) -> SeriesForecast:
    """Fit the models of ``chain`` in turn; the first finite forecast wins, else NaN and why."""
    failed: list[str] = []
    for i, candidate in enumerate(chain):
        try:
            mean, quant = candidate.fit_predict(series.z, h, season_length, q)
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(quant))):
                raise FloatingPointError("non-finite forecast")
        except Exception as exc:  # noqa: BLE001 - recorded; the next model in the chain runs
            failed.append(f"{candidate.name}: {type(exc).__name__}: {exc}")
            continue
        failed.extend(models.fit_reports(candidate)[1])
        return _chosen_forecast(candidate, i, mean, quant, series, q, why, notes, tuple(failed))
    return SeriesForecast(
        np.full(h, np.nan),
        np.full((len(q), h), np.nan),
        q,
        "failed",
        f"every model failed ({why}): " + "; ".join(failed),
        tuple(failed),
        np.full(series.n_in, np.nan),
    )


def _chosen_forecast(
    candidate: models.Forecaster,
    attempt: int,
    mean: np.ndarray,
    quant: np.ndarray,
    series: PreparedSeries,
    q: tuple[float, ...],
    why: str,
    notes: list[str],
    failed: tuple[str, ...],
) -> SeriesForecast:
    """The forecast of the model that worked, clipped at 0 if need be, with the reason told."""
    name = candidate.name
    if attempt == 0:
        head = f"{name} chosen: {why}"
    else:
        head = f"{name} chosen as fallback after {attempt} failed model(s) ({why})"
    notes = list(notes)
    notes[:0] = models.fit_reports(candidate)[0]
    if series.nonnegative:
        clipped = int(np.sum(mean < 0) + np.sum(quant < 0))
        if clipped:
            mean = np.maximum(mean, 0)
            quant = np.maximum(quant, 0)
            notes.append(f"{clipped} negative values clipped at 0")
    residuals = np.full(series.n_in, np.nan)
    residuals[series.offset :] = np.asarray(candidate.residuals, dtype=float)
    return SeriesForecast(mean, quant, q, name, "; ".join([head, *notes]), failed, residuals)


# --------------------------------------------------------------------------- many series


@dataclass(frozen=True)
class FitSettings:
    """The settings of :func:`forecast_series` shared by every series of a run.

    Part of every cache key: a change of any of them refits.

    Attributes
    ----------
    h : int
        Horizon [months].
    quantiles : tuple of float
        Probability levels.
    season_length : int
        Months per season.
    method : str
        One of :data:`METHODS`.
    min_history : int
        Months below which a series is "short" [months].
    pooled : PooledAR, optional
        The cross-series member of the default method (:func:`fit_pooled`).
    """

    h: int
    quantiles: tuple[float, ...]
    season_length: int = 12
    method: str = "auto"
    min_history: int = MIN_HISTORY
    pooled: models.PooledAR | None = field(default=None, compare=False)

    def cache_text(self) -> str:
        """The settings as sorted JSON, as they enter a cache key."""
        return json.dumps(
            {
                "h": self.h,
                "quantiles": list(self.quantiles),
                "season_length": self.season_length,
                "method": self.method,
                "min_history": self.min_history,
                "pooled": None if self.pooled is None else self.pooled.digest(),
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class SeriesTask:
    """One series to forecast, with the per-series inputs of :func:`forecast_series`.

    Attributes
    ----------
    y : np.ndarray
        Monthly history, oldest first [units of the measure].
    seasonal_profile : np.ndarray, optional
        The parent level's seasonal indices, for a short series.
    ended : bool
        The series belongs to a rep who left, or is a node every cell of which does:
        zero forecast.
    since : int, optional
        The month its sellers were first active (:func:`forecast_series`).

    Examples
    --------
    >>> out, counts = forecast_many({"left": SeriesTask(np.ones(12), ended=True)}, h=2,
    ...                             use_cache=False, progress=False)
    >>> out["left"].mean.tolist(), counts["refits"]
    ([0.0, 0.0], 1)
    """

    y: np.ndarray
    seasonal_profile: np.ndarray | None = None
    ended: bool = False
    since: int | None = None


def _cache_key(task: SeriesTask, settings: FitSettings) -> str:
    digest = hashlib.sha256()
    digest.update(CODE_VERSION.encode())
    digest.update(settings.cache_text().encode())
    digest.update(np.ascontiguousarray(task.y, dtype=float).tobytes())
    digest.update(b"profile" if task.seasonal_profile is not None else b"none")
    if task.seasonal_profile is not None:
        digest.update(np.ascontiguousarray(task.seasonal_profile, dtype=float).round(10).tobytes())
    digest.update(b"ended" if task.ended else b"active")
    digest.update(b"since %d" % task.since if task.since is not None else b"first value")
    return digest.hexdigest()


def _run_chunk(items: list, settings: FitSettings) -> list:
    """Forecast a chunk of ``(key, task)`` pairs; runs in a worker process."""
    return [
        (
            key,
            forecast_series(
                task.y,
                settings.h,
                settings.quantiles,
                season_length=settings.season_length,
                seasonal_profile=task.seasonal_profile,
                ended=task.ended,
                since=task.since,
                method=settings.method,
                min_history=settings.min_history,
                pooled=settings.pooled,
            ),
        )
        for key, task in items
    ]


def _cache_read(path: Path) -> SeriesForecast | None:
    try:
        with path.open("rb") as fh:
            value = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
        return None
    return value if isinstance(value, SeriesForecast) else None


def _cache_write(path: Path, value: SeriesForecast) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def _compute(items, settings, scheduler, bar, n_workers, threshold):
    """The fits of ``items``, counted on ``bar`` (a :func:`revmodel.progress.bar`) as they end."""
    if not items:
        return []
    chunks = [items[i : i + CHUNK_SIZE] for i in range(0, len(items), CHUNK_SIZE)]
    if scheduler is None and len(items) < threshold:
        out = []
        for chunk in chunks:
            out.extend(_run_chunk(chunk, settings))
            bar.update(len(chunk))
        return out
    from dask.distributed import Client, as_completed

    from revmodel import distributed

    connect = (
        distributed.local_cluster(n_workers)
        if scheduler is None
        else Client(scheduler, set_as_default=False)
    )
    with connect as client:
        futures = client.map(_run_chunk, chunks, settings=settings, pure=False)
        out = []
        for future in as_completed(futures, loop=client.loop):
            result = future.result()
            out.extend(result)
            bar.update(len(result))
        return out


def fit_pooled(
    histories: Sequence[np.ndarray],
    h: int,
    season_length: int = 12,
    min_history: int = MIN_HISTORY,
) -> models.PooledAR | None:
    """The cross-series member of the default method, fitted on many histories.

    Each history is prepared as :func:`forecast_series` prepares it (leading
    NaN and zero months dropped, gaps filled); the regular ones (positive, at
    least ``min_history`` months, not intermittent) give their windows to a
    :class:`revmodel.models.PooledAR` through :func:`revmodel.models.pooled_input`,
    and to its random-feature nets: two on those inputs (12 lags and 200
    features, 24 and 400) and two on the logs as they are, season included
    (:func:`revmodel.models.seasonal_input`; a season and a month of lags and
    two seasons, 400 features each). Every window lies inside a history, so
    with histories that end at the forecast origin no later value is used.
    None when the windows are too few: :func:`forecast_series` then runs the
    default method without it.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ys = [100 * np.exp(np.cumsum(rng.normal(0.01, 0.05, 60))) for _ in range(20)]
    >>> fit_pooled(ys, h=6).weights.shape  # 12 lags, 6 steps
    (12, 6)
    >>> fit_pooled(ys[:1], h=6) is None  # one series: too few windows
    True
    """
    inputs, seasonal = [], []
    for y in histories:
        y = np.asarray(y, dtype=float).ravel()
        if not np.isfinite(y).any():
            continue
        series = _prepare_history(y, nonnegative=True)
        if series.all_zero or series.n < min_history or series.intermittent:
            continue
        if np.ptp(series.z) == 0 or not np.all(series.z > 0):
            continue
        try:
            inputs.append(models.pooled_input(series.z, season_length))
        except Exception:  # noqa: BLE001 - a series whose season cannot be estimated is left out
            continue
        seasonal.append(models.seasonal_input(series.z))
    linear = models.PooledAR.fit(inputs, int(h))
    if linear is None:
        return None
    nets = [
        models.PooledNet.fit(inputs, int(h), lags=lags, hidden=hidden, season_length=season_length)
        for lags, hidden in ((12, 200), (24, 400))
    ]
    seasonal_nets = [
        models.PooledNet.fit(seasonal, int(h), lags=lags, hidden=400, season_length=season_length)
        for lags in (season_length + 1, 2 * season_length)
    ]
    return replace(
        linear,
        nets=tuple(net for net in nets if net is not None),
        seasonal_nets=tuple(net for net in seasonal_nets if net is not None),
    )


def forecast_many(
    tasks: Mapping[Hashable, SeriesTask],
    h: int,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    season_length: int = 12,
    method: str = "auto",
    min_history: int = MIN_HISTORY,
    scheduler: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool | str = True,
    n_workers: int = 2,
    distributed_threshold: int = DISTRIBUTED_THRESHOLD,
    use_cache: bool = True,
    pooled: bool = True,
) -> tuple[dict[Hashable, SeriesForecast], dict[str, int]]:
    """Forecast many series, in parallel and cached.

    Parameters
    ----------
    tasks : mapping of key -> SeriesTask
        The series.
    h, quantiles, season_length, method, min_history
        As in :func:`forecast_series`.
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler. Default: in-process for
        fewer than ``distributed_threshold`` series to fit, else a
        ``LocalCluster`` of ``n_workers`` single-threaded processes.
    cache_dir : path, optional
        Cache folder; default ``revmodel.config.CACHE_DIR / "forecast"``.
    progress : bool or str
        Count the series, read from the cache or fitted, on a progress bar
        (:func:`revmodel.progress.bar`: a terminal, JupyterLab or a plan run) named
        "forecast", or named so when a str is given; False: no bar.
    use_cache : bool
        Read and write the cache.
    pooled : bool
        With ``method="auto"``, fit the default method's cross-series member
        on every task's history first (:func:`fit_pooled`; nothing when the
        windows are too few). Its weights are part of every cache key, so a
        changed history then refits every series (as a new month does anyway);
        False: per-series fits only, and only changed series refit.

    Returns
    -------
    (dict, dict)
        Forecast per key, and counts ``{"series", "refits", "cache_hits"}``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> tasks = {"a": SeriesTask(np.arange(1.0, 13.0)), "b": SeriesTask(np.zeros(12))}
    >>> cache = tempfile.mkdtemp()
    >>> out, counts = forecast_many(tasks, h=2, cache_dir=cache, progress=False)
    >>> counts, out["b"].model_name
    ({'series': 2, 'refits': 2, 'cache_hits': 0}, 'zero')
    >>> forecast_many(tasks, h=2, cache_dir=cache, progress=False)[1]  # again: from the cache
    {'series': 2, 'refits': 0, 'cache_hits': 2}
    """
    q = _check_settings(h, quantiles, method)
    pooled_model = None
    if pooled and method == "auto":
        pooled_model = fit_pooled([t.y for t in tasks.values() if not t.ended], h, season_length)
    settings = FitSettings(int(h), q, int(season_length), method, int(min_history), pooled_model)
    if cache_dir is None:
        from revmodel import config

        cache_dir = config.CACHE_DIR / "forecast"
    cache_dir = Path(cache_dir)
    results: dict[Hashable, SeriesForecast] = {}
    misses, paths = [], {}
    from revmodel import progress as rprogress

    desc = progress if isinstance(progress, str) else "forecast"
    bar = rprogress.bar(total=len(tasks), desc=desc, unit="series", enabled=bool(progress))
    for key, task in tasks.items():
        digest = _cache_key(task, settings)
        path = cache_dir / digest[:2] / f"{digest}.pkl"
        hit = _cache_read(path) if use_cache else None
        if hit is not None:
            results[key] = hit
            bar.update(1)
        else:
            misses.append((key, task))
            paths[key] = path
    computed = _compute(misses, settings, scheduler, bar, n_workers, distributed_threshold)
    bar.close()
    for key, value in computed:
        results[key] = value
        if use_cache:
            try:
                _cache_write(paths[key], value)
            except OSError:
                pass  # an unwritable cache only costs a refit next time
    counts = {"series": len(tasks), "refits": len(misses), "cache_hits": len(tasks) - len(misses)}
    return {key: results[key] for key in tasks}, counts


# --------------------------------------------------------------------------- the cube


def seasonal_profile(
    y: np.ndarray, season_length: int = 12, min_months: int = 24
) -> np.ndarray | None:
    """Multiplicative seasonal indices of a series, or None if it cannot give any.

    Classical multiplicative decomposition over the positive stretch at the
    end of the series; ``profile[i % season_length]`` applies to ``y[i]``.

    Parameters
    ----------
    y : np.ndarray
        Monthly series [units].
    season_length : int
        Months per season.
    min_months : int
        Months of positive history needed [months].

    Returns
    -------
    np.ndarray or None
        Indices with mean 1, shape ``(season_length,)``.

    Examples
    --------
    >>> import numpy as np
    >>> seasonal_profile(np.tile([1.0, 2.0, 3.0, 2.0], 12), season_length=4).round(2)
    array([0.5, 1. , 1.5, 1. ])
    >>> print(seasonal_profile(np.ones(10)))  # too short to tell
    None
    """
    from statsmodels.tsa.seasonal import seasonal_decompose

    y = np.asarray(y, dtype=float)
    bad = ~(np.isfinite(y) & (y > 0))
    start = int(np.max(np.flatnonzero(bad))) + 1 if bad.any() else 0
    tail = y[start:]
    if tail.size < max(min_months, 2 * season_length):
        return None
    dec = seasonal_decompose(tail, model="multiplicative", period=season_length, two_sided=True)
    index = np.asarray(dec.seasonal[:season_length], dtype=float)
    index = index / index.mean()
    return np.roll(index, start % season_length)


def _fiscal_labels(
    months: pd.DatetimeIndex, start: int, naming: str
) -> tuple[list[str], list[str]]:
    quarters, years = [], []
    for t in months:
        shift = (t.month - start) % 12
        begin_year = t.year if t.month >= start else t.year - 1
        year = begin_year if naming == "start" or start == 1 else begin_year + 1
        years.append(f"FY{year}")
        quarters.append(f"FY{year}-Q{shift // 3 + 1}")
    return quarters, years


def forecast_cube(
    ds: xr.Dataset,
    measure: str = "bookings",
    horizon: int = 12,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    scheduler: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool | str = True,
    method: str = "auto",
    n_workers: int = 2,
    distributed_threshold: int = DISTRIBUTED_THRESHOLD,
    pooled: bool = True,
) -> xr.Dataset:
    """Forecast a cube measure for the months after ``attrs["as_of"]``, at every node.

    Parameters
    ----------
    ds : xr.Dataset
        The cube (see ``revmodel.cube``), numpy- or dask-backed.
    measure : str
        Data variable to forecast, e.g. "bookings" [USD/month].
    horizon : int
        Months to forecast after ``as_of`` [months].
    quantiles : sequence of float
        Probability levels.
    scheduler, cache_dir, progress, n_workers, distributed_threshold, pooled
        As in :func:`forecast_many`.
    method : str
        As in :func:`forecast_series`.

    Returns
    -------
    xr.Dataset
        Dims ``segment, region, rep, month, quantile`` (``month`` = the
        ``horizon`` months after ``as_of``), ``node`` and ``history_month``:

        - ``forecast (segment, region, rep, month, quantile)``, ``mean
          (segment, region, rep, month)``: bottom-cell base forecasts; cells
          with no data are 0 with model "none";
        - ``model``, ``reason (segment, region, rep)``: what ran and why;
        - ``node_forecast (node, month, quantile)``, ``node_mean (node,
          month)``, ``node_model``, ``node_reason (node)``: base forecasts of
          every node (aggregates and bottom cells with data). Quantiles of an
          aggregate come from its own model, never sums of quantiles;
        - ``node_history``, ``node_residual (node, history_month)``: the
          node's actuals and in-sample one-step residuals, for reconciliation;
        - node labels and coords as in ``revmodel.reconcile``: ``node`` (e.g.
          "total", "region/segment=EMEA/SMB", "rep/segment=r1/SMB/EMEA"),
          ``level`` (:data:`AGGREGATION_LEVELS`), ``node_segment``,
          ``node_region``, ``node_manager``, ``node_rep`` (``"*"`` when the
          node sums over that field).

        attrs: ``measure``, ``as_of``, ``horizon``, ``units``, ``method``,
        ``n_series``, ``refits``, ``cache_hits``, ``n_fallbacks``,
        ``n_failed``, ``code_version``, and the cube's fiscal attrs.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), 100 + np.arange(48.0).reshape(1, 1, 2, 24))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> fc = forecast_cube(ds, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> fc["node"].values[:4].tolist()
    ['total', 'region=EMEA', 'segment=SMB', 'region/segment=EMEA/SMB']
    """
    if "cell" in ds.dims and measure in ds.data_vars:
        from revmodel import cube as rcube

        # A cube by populated cell: the one measure forecast, unstacked.
        ds = rcube.unstack_cells(ds.drop_vars([v for v in ds.data_vars if v != measure]))
    _check_cube(ds, measure)
    q = _check_settings(horizon, quantiles, method)
    as_of = pd.Timestamp(ds.attrs["as_of"]).to_period("M").to_timestamp()
    da = _history_to(ds, measure, as_of)
    values = np.asarray(da.values, dtype=float)
    cells = np.argwhere(np.any(np.nan_to_num(values) != 0, axis=-1))
    hierarchy = rec.hierarchy_from_cells(
        cells, da["segment"].values, da["region"].values, da["rep"].values, _rep_managers(ds)
    )
    names = hierarchy.labels()
    node_y = _node_history(hierarchy, values)
    tasks = _node_tasks(hierarchy, names, node_y, _reps_ended(ds, as_of))
    results, counts = forecast_many(
        tasks,
        horizon,
        q,
        method=method,
        scheduler=scheduler,
        cache_dir=cache_dir,
        progress=progress,
        n_workers=n_workers,
        distributed_threshold=distributed_threshold,
        pooled=pooled,
    )
    ordered = [results[name] for name in names]
    months = pd.date_range(as_of + pd.offsets.MonthBegin(1), periods=horizon, freq="MS")
    out = _forecast_dataset(ds, da, measure, hierarchy, names, ordered, node_y, months, q)
    out.attrs = {
        **{k: v for k, v in ds.attrs.items() if k.startswith("fiscal") or k == "currency"},
        **dict(measure=measure, as_of=f"{as_of:%Y-%m-%d}", horizon=int(horizon)),
        **dict(units=out.attrs["units"], method=method),
        **_run_counts(counts, ordered),
        "code_version": CODE_VERSION,
    }
    return out


def _check_cube(ds: xr.Dataset, measure: str) -> None:
    """Raise a clear error unless ``ds`` holds ``measure`` by cell and month, and an ``as_of``."""
    if measure not in ds.data_vars:
        raise ParameterError(
            f"measure {measure!r} is not in the cube; available: {', '.join(map(str, ds.data_vars))}"
        )
    if "as_of" not in ds.attrs:
        raise DataError(
            "the cube has no attrs['as_of'] (last month with actuals); rebuild it with revmodel cube"
        )
    for dim in ("segment", "region", "rep", "month"):
        if dim not in ds[measure].dims:
            raise DataError(
                f"measure {measure!r} lacks the {dim!r} dimension; expected (segment, region, rep, month)"
            )


def _history_to(ds: xr.Dataset, measure: str, as_of: pd.Timestamp) -> xr.DataArray:
    """The measure (segment, region, rep, month) up to and including the ``as_of`` month."""
    da = ds[measure].transpose("segment", "region", "rep", "month")
    da = da.sel(month=da["month"] <= np.datetime64(as_of))
    if da.sizes["month"] == 0:
        raise DataError(f"the cube holds no months up to as_of {as_of:%Y-%m}; check attrs['as_of']")
    return da


def _rep_managers(ds: xr.Dataset) -> np.ndarray:
    """Each rep's manager, or the placeholder when the cube names none."""
    if "manager" in ds.coords:
        return np.asarray(ds["manager"].values).astype(str)
    return np.full(ds.sizes["rep"], config.PLACEHOLDER)


def _reps_ended(ds: xr.Dataset, as_of: pd.Timestamp) -> np.ndarray:
    """(n_reps,) True for a rep whose end date falls on or before the end of the ``as_of`` month."""
    if "end_date" not in ds.coords:
        return np.zeros(ds.sizes["rep"], dtype=bool)
    end = pd.DatetimeIndex(ds["end_date"].values)
    return np.array([bool(pd.notna(e) and e <= as_of + pd.offsets.MonthEnd(0)) for e in end])


def _run_counts(counts: Mapping[str, int], results: Sequence[SeriesForecast]) -> dict[str, int]:
    """The attrs that count the series, refits, cache hits, fallbacks and failures of a run."""
    return {
        "n_series": counts["series"],
        "refits": counts["refits"],
        "cache_hits": counts["cache_hits"],
        "n_fallbacks": sum(1 for r in results if r.fallbacks),
        "n_failed": sum(1 for r in results if r.model_name == "failed"),
    }


def _node_history(hierarchy: rec.Hierarchy, values: np.ndarray) -> np.ndarray:
    """(n_nodes x T) actuals of every node: NaN in a month where none of its cells has a value."""
    c = hierarchy.cells
    bottom = values[c[:, 0], c[:, 1], c[:, 2]]
    finite = np.isfinite(bottom)
    y = np.asarray(hierarchy.S @ np.where(finite, bottom, 0.0))
    y[np.asarray(hierarchy.S @ finite.astype(float)) == 0] = np.nan
    return y


def _node_tasks(
    hierarchy: rec.Hierarchy, names: np.ndarray, node_y: np.ndarray, ended: np.ndarray
) -> dict[str, SeriesTask]:
    """One task per node; short series borrow their segment's profile, else the total's.

    A node every cell of which belongs to a rep who left (``ended``: the cells, the rep's own
    node, a team whose reps all left) is ended too: zero forecast.
    """
    table = hierarchy.nodes
    total = hierarchy.tags["total"]
    total_profile = seasonal_profile(node_y[total[0]]) if total.size else None
    profiles = {
        table["segment"].iat[i]: seasonal_profile(node_y[i]) for i in hierarchy.tags["segment"]
    }
    # (forecast from its history, such a node would pull its reconciled cells back up)
    ended_cell = ended[hierarchy.cells[:, 2]].astype(float)
    ended_node = np.asarray(hierarchy.S @ ended_cell) == np.asarray(hierarchy.S.sum(axis=1)).ravel()
    since = sellers_since(hierarchy, node_y)
    tasks = {}
    for level, fields in AGGREGATION_LEVELS:
        for i in hierarchy.tags[level]:
            profile = None
            if level != "total":
                own = profiles.get(table["segment"].iat[i]) if "segment" in fields else None
                own = own if level != "segment" else None
                profile = own if own is not None else total_profile
            # the profile only reaches short series: leaving it out of the others' tasks keeps
            # their cache entries valid when a parent's profile moves
            y = node_y[i]
            start = None if since[i] < 0 else int(since[i])
            length = y.size - start if start is not None else 0
            tasks[names[i]] = SeriesTask(
                y, profile if length < MIN_HISTORY else None, bool(ended_node[i]), start
            )
    return tasks


def sellers_since(hierarchy: rec.Hierarchy, node_y: np.ndarray) -> np.ndarray:
    """Each node's first month with a sale by any of its reps, anywhere (-1: none ever sold).

    A cell (segment x region x rep) is as old as its rep, not its first deal: a rep who
    sells in many segments and regions has months without a deal in most of its cells,
    and a cell's history that started at its first deal would open on that deal and read
    as a rate of one deal a month. A node's sellers are the reps of its cells.

    Examples
    --------
    >>> cells = np.array([[0, 0, 0], [1, 0, 0]])  # ann sells in two segments
    >>> h = rec.hierarchy_from_cells(cells, ["SMB", "Ent"], ["EU"], ["ann"], ["M1"])
    >>> y = np.zeros((h.n_nodes, 6))
    >>> y[h.bottom[0], 1] = y[h.bottom[1], 4] = 5.0  # ann's first deal in SMB, then one in Ent
    >>> y[:] = h.S @ y[h.bottom]
    >>> sellers_since(h, y)[h.bottom].tolist()  # the Ent cell is as old as ann
    [1, 1]
    """
    cells = hierarchy.bottom
    active = np.nan_to_num(node_y[cells]) != 0
    first_cell = np.where(active.any(axis=1), np.argmax(active, axis=1), np.iinfo(np.int64).max)
    reps = hierarchy.cells[:, 2]
    first_rep = np.full(int(reps.max()) + 1 if reps.size else 0, np.iinfo(np.int64).max)
    np.minimum.at(first_rep, reps, first_cell)
    of_cell = first_rep[reps]
    S = hierarchy.S.tocsr()
    out = np.full(S.shape[0], np.iinfo(np.int64).max)
    rows = np.flatnonzero(np.diff(S.indptr) > 0)
    if rows.size:
        out[rows] = np.minimum.reduceat(of_cell[S.indices], S.indptr[rows])
    return np.where(out == np.iinfo(np.int64).max, -1, out)


def _forecast_dataset(
    ds: xr.Dataset,
    da: xr.DataArray,
    measure: str,
    hierarchy: rec.Hierarchy,
    names: np.ndarray,
    results: list[SeriesForecast],
    node_y: np.ndarray,
    months: pd.DatetimeIndex,
    q: tuple[float, ...],
) -> xr.Dataset:
    """Lay the node forecasts out as the Dataset of :func:`forecast_cube`, node = hierarchy row."""
    h, shape = len(months), tuple(da.sizes[d] for d in rec.CELL_DIMS)
    node_q = np.stack([r.quantiles.T for r in results])
    node_mean = np.stack([r.mean for r in results])
    node_resid = np.stack([r.residuals for r in results])
    c, bottom = hierarchy.cells, hierarchy.bottom
    bottom_q = np.zeros((*shape, h, len(q)))
    bottom_mean = np.zeros((*shape, h))
    model = np.full(shape, "none", dtype=object)
    reason = np.full(shape, "no data in this cell: zero forecast", dtype=object)
    bottom_q[c[:, 0], c[:, 1], c[:, 2]] = node_q[bottom]
    bottom_mean[c[:, 0], c[:, 1], c[:, 2]] = node_mean[bottom]
    model[c[:, 0], c[:, 1], c[:, 2]] = [results[i].model_name for i in bottom]
    reason[c[:, 0], c[:, 1], c[:, 2]] = [results[i].reason for i in bottom]
    levels = hierarchy.nodes["level"].to_numpy()
    label = {}
    for dim in rec.NODE_FIELDS:
        keyed = np.array([dim in rec.LEVEL_FIELDS[lv] for lv in levels])
        label[dim] = np.where(keyed, hierarchy.nodes[dim].to_numpy(dtype=str), ALL)
    fyq, fy = _fiscal_labels(
        months,
        int(ds.attrs.get("fiscal_year_start", 1)),
        str(ds.attrs.get("fiscal_year_naming", "end")),
    )
    units = ds[measure].attrs.get("units", "")
    cell = ("segment", "region", "rep")
    out = xr.Dataset(
        {
            "forecast": (
                (*cell, "month", "quantile"),
                bottom_q,
                {"units": units, "long_name": f"{measure} forecast quantiles"},
            ),
            "mean": (
                (*cell, "month"),
                bottom_mean,
                {"units": units, "long_name": f"{measure} forecast mean"},
            ),
            "model": (
                cell,
                model.astype(str),
                {"long_name": "model that produced the base forecast"},
            ),
            "reason": (cell, reason.astype(str), {"long_name": "why that model ran"}),
            "node_forecast": (
                ("node", "month", "quantile"),
                node_q,
                {"units": units, "long_name": f"{measure} base forecast quantiles by node"},
            ),
            "node_mean": (
                ("node", "month"),
                node_mean,
                {"units": units, "long_name": f"{measure} base forecast mean by node"},
            ),
            "node_model": (("node",), np.array([r.model_name for r in results], dtype=str)),
            "node_reason": (("node",), np.array([r.reason for r in results], dtype=str)),
            "node_history": (
                ("node", "history_month"),
                node_y,
                {"units": units, "long_name": f"{measure} actuals by node"},
            ),
            "node_residual": (
                ("node", "history_month"),
                node_resid,
                {"units": units, "long_name": "in-sample one-step residuals by node"},
            ),
        },
        coords={
            "segment": da["segment"].values,
            "region": da["region"].values,
            "rep": da["rep"].values,
            "month": months.values,
            "quantile": np.asarray(q),
            "node": np.asarray(names, dtype=str),
            "history_month": da["month"].values,
            "level": ("node", levels.astype(str)),
            **{f"node_{dim}": ("node", v) for dim, v in label.items()},
            "fiscal_quarter": ("month", np.array(fyq, dtype=str)),
            "fiscal_year": ("month", np.array(fy, dtype=str)),
        },
        attrs={"units": units},
    )
    for coord in ("manager", "rep_region", "rep_segment", "hire_date", "end_date", "ramp_months"):
        if coord in ds.coords and ds[coord].dims == ("rep",):
            out = out.assign_coords({coord: ("rep", np.asarray(ds[coord].values))})
    return out


#: What a reconciliation some of whose non-negative solves stopped at their iteration cap
#: gives (:func:`summarize`'s warning, the plan pack's band statement).
CAPPED_SOLVES = (
    "the non-negative reconciliation stopped at its iteration cap for some months "
    "or sample paths; those are coherent and >= 0 but not the exact reconciled solution"
)
#: What :func:`summarize` says when some reconciliation stopped at its iteration cap.
NOT_CONVERGED = f"warning: {CAPPED_SOLVES} (attribute reconcile_converged = 0)"


def summarize(fc: xr.Dataset) -> str:
    """A readable summary of a :func:`forecast_cube` result.

    Parameters
    ----------
    fc : xr.Dataset
        A :func:`forecast_cube` result.

    Returns
    -------
    str
        What was forecast, how many series were fitted or read from the cache, the
        fallbacks and failures, and how often each model was chosen, one per line; and
        a warning when a reconciliation stopped at its iteration cap
        (``attrs["reconcile_converged"] == 0``, :func:`reconcile_dataset`).

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), 100 + np.arange(48.0).reshape(1, 1, 2, 24))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> fc = forecast_cube(ds, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> print(summarize(fc).splitlines()[0])
    forecast of bookings for 3 months after 2025-12-01
    """
    counts = pd.Series(fc["node_model"].values).value_counts()
    lines = [
        f"forecast of {fc.attrs['measure']} for {fc.attrs['horizon']} months after {fc.attrs['as_of']}",
        f"series: {fc.attrs['n_series']} ({fc.attrs['refits']} fitted, {fc.attrs['cache_hits']} from cache)",
        f"fallbacks: {fc.attrs['n_fallbacks']}, failed: {fc.attrs['n_failed']}",
        "models chosen:",
        *(f"  {count:6d}  {name}" for name, count in counts.items()),
    ]
    if fc.attrs.get("reconcile_converged", 1) == 0:
        lines.append(NOT_CONVERGED)
    return "\n".join(lines)


@dataclass(frozen=True)
class NodeForecast:
    """Base forecasts of :func:`revmodel.forecast.forecast_cube` on its hierarchy, row = node.

    Attributes
    ----------
    hierarchy : revmodel.reconcile.Hierarchy
        The hierarchy the forecast was made on (:func:`forecast_hierarchy`).
    mean : np.ndarray
        (n_nodes x h) base forecast means [units].
    lower, upper : np.ndarray
        (n_nodes x h) lowest and highest quantile [units].
    residuals : np.ndarray or None
        (n_nodes x T) in-sample residuals for the MinT weights.
    own : np.ndarray
        (n_nodes,) True where the node's model gave a finite forecast.
    """

    hierarchy: rec.Hierarchy
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    residuals: np.ndarray | None
    own: np.ndarray


def forecast_hierarchy(fc: xr.Dataset) -> rec.Hierarchy:
    """The hierarchy whose rows are the ``node`` axis of a :func:`forecast_cube` result.

    ``forecast_cube`` builds the hierarchy once and lays every node out in its row
    order; this gives the same summing matrix back from the forecast's bottom nodes
    (their cube positions and the reps' managers), with no matching of keys.

    Raises
    ------
    DataError
        When ``fc`` was not made by :func:`forecast_cube` (its nodes are not in
        hierarchy order).

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), 100 + np.arange(48.0).reshape(1, 1, 2, 24))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> fc = forecast_cube(ds, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> h = forecast_hierarchy(fc)
    >>> h.n_nodes == fc.sizes["node"], h.n_bottom
    (True, 2)
    """
    levels = fc["level"].values.astype(str)
    bottom = np.flatnonzero(levels == BOTTOM_LEVEL)
    pos = [
        pd.Index(np.asarray(fc[dim].values).astype(str)).get_indexer(
            np.asarray(fc[f"node_{dim}"].values)[bottom].astype(str)
        )
        for dim in rec.CELL_DIMS
    ]
    cells = np.stack(pos, axis=1) if bottom.size else np.zeros((0, 3), dtype=np.int64)
    managers = (
        np.asarray(fc["manager"].values).astype(str)
        if "manager" in fc.coords
        else np.full(fc.sizes["rep"], config.PLACEHOLDER)
    )
    hierarchy = rec.hierarchy_from_cells(
        cells, fc["segment"].values, fc["region"].values, fc["rep"].values, managers
    )
    if (cells < 0).any() or not np.array_equal(hierarchy.labels(), fc["node"].values.astype(str)):
        raise DataError(
            "the forecast's nodes are not those of its hierarchy; make it with "
            "revmodel.forecast.forecast_cube"
        )
    return hierarchy


def node_forecasts(history: xr.DataArray | None, fc: xr.Dataset) -> NodeForecast:
    """The node forecasts of ``fc`` on its hierarchy, keyed by node index.

    Parameters
    ----------
    history : xr.DataArray or None
        The measure up to the forecast origin (segment, region, rep, month) [units];
        when given, its cells with data must be the forecast's bottom nodes.
    fc : xr.Dataset
        :func:`revmodel.forecast.forecast_cube` made from that history.

    Returns
    -------
    NodeForecast

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), 100 + np.arange(48.0).reshape(1, 1, 2, 24))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> fc = forecast_cube(ds, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> nf = node_forecasts(ds["bookings"], fc)
    >>> nf.mean.shape, bool(nf.own.all())  # 10 nodes x 3 months, every node its own model
    ((10, 3), True)
    """
    hierarchy = forecast_hierarchy(fc)
    if history is not None:
        carries = (history.fillna(0) != 0).any("month").transpose(*rec.CELL_DIMS).values
        if carries.sum() != hierarchy.n_bottom or not carries[tuple(hierarchy.cells.T)].all():
            raise DataError(
                "the forecast lacks some bottom cells of the history; make it with "
                "revmodel.forecast.forecast_cube from the same cube"
            )
    q = np.asarray(fc["quantile"].values, dtype=float)
    node_q = fc["node_forecast"].values
    mean = np.array(fc["node_mean"].values, dtype=float)
    lower = np.array(node_q[:, :, int(np.argmin(q))], dtype=float)
    upper = np.array(node_q[:, :, int(np.argmax(q))], dtype=float)
    resid = np.array(fc["node_residual"].values, dtype=float)
    # A complete residual matrix keeps the shrunk covariance positive definite: nodes without
    # residuals (zero forecasts) take their cells' sum, then the months every node has are kept,
    # or, when fewer than a season remain, missing residuals count as 0.
    bottom = hierarchy.bottom
    empty = np.flatnonzero(np.isnan(resid).all(axis=1))
    if empty.size:
        resid[empty] = np.asarray(hierarchy.S[empty] @ np.nan_to_num(resid[bottom]))
    complete = np.isfinite(resid).all(axis=0)
    residuals = resid[:, complete] if complete.sum() >= 12 else np.nan_to_num(resid)
    own = np.isfinite(mean).all(axis=1)
    return NodeForecast(hierarchy, mean, lower, upper, residuals, own)


def reconcile_nodes(
    nf: NodeForecast,
    like: xr.DataArray,
    method: str = "mint_shrink",
    locked: Mapping | None = None,
) -> tuple[xr.DataArray, dict]:
    """Reconcile node base forecasts into a coherent bottom forecast.

    Parameters
    ----------
    nf : NodeForecast
        From :func:`node_forecasts`.
    like : xr.DataArray
        Bottom forecast means (segment, region, rep, month), e.g. ``fc["mean"]`` [units].
    method : str
        A method of :data:`revmodel.reconcile.METHODS`.
    locked : mapping, optional
        Values kept exactly (forecast calls), as ``locked`` of
        :func:`revmodel.reconcile.reconcile_cube`.

    Returns
    -------
    (xr.DataArray, dict)
        As :func:`revmodel.reconcile.reconcile_cube`.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), 100 + np.arange(48.0).reshape(1, 1, 2, 24))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> fc = forecast_cube(ds, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> nf = node_forecasts(None, fc)
    >>> coherent, info = reconcile_nodes(nf, fc["mean"], method="ols")
    >>> total = coherent.sum(["segment", "region", "rep"]).values
    >>> bool(np.allclose(total, info["reconciled_nodes"].isel(node=0)))  # node 0: the total
    True
    """
    return rec.reconcile_cube(
        like.transpose(*rec.CELL_DIMS, "month"),
        method=method,
        residuals=nf.residuals,
        nonnegative=True,
        node_forecasts=nf.mean,
        hierarchy=nf.hierarchy,
        locked=locked,
    )


def reconcile_forecast(
    fc: xr.Dataset, ds: xr.Dataset, method: str = "mint_shrink", scheduler: str | None = None
) -> tuple[xr.DataArray, dict]:
    """The forecast made coherent: every node's own base forecast, reconciled over the cube's hierarchy.

    Parameters
    ----------
    fc : xr.Dataset
        Result of :func:`forecast_cube`.
    ds : xr.Dataset
        The cube it was made from.
    method : str
        A method of :data:`revmodel.reconcile.METHODS`.
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler: the reconciliation runs as a task on
        one of its workers (:func:`revmodel.distributed.on_a_worker`, the info's ``worker``
        says which); the result is the one made here.

    Returns
    -------
    (xr.DataArray, dict)
        Coherent mean forecast (segment, region, rep, month) [units of the measure],
        and the reconciler's info (method used, fallbacks).

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), 100 + np.arange(48.0).reshape(1, 1, 2, 24))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> fc = forecast_cube(ds, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> coherent, info = reconcile_forecast(fc, ds, method="wls_struct")
    >>> info["method"], coherent.dims
    ('wls_struct', ('segment', 'region', 'rep', 'month'))
    """
    if scheduler is not None:
        from revmodel import distributed

        return distributed.on_a_worker(scheduler, reconcile_forecast, fc, ds, method=method)
    measure = fc.attrs["measure"]
    hist = ds[measure].sel(
        month=ds["month"] <= np.datetime64(pd.Timestamp(fc.attrs["as_of"]), "ns")
    )
    return reconcile_nodes(node_forecasts(hist, fc), fc["mean"], method=method)


def reconcile_dataset(
    fc: xr.Dataset,
    method: str = "mint_shrink",
    locked: Mapping | None = None,
    settings: rec.SampleSettings = rec.DEFAULT_SAMPLING,
) -> tuple[xr.Dataset, dict]:
    """The forecast made coherent at every node, quantiles included.

    The point forecast is the reconciled base mean (:func:`reconcile_nodes`); the
    quantiles are read off reconciled sample paths
    (:func:`revmodel.reconcile.sample_reconciled`): every path adds up the
    hierarchy, keeps the locked values and, for a measure that is never negative,
    stays >= 0.

    Parameters
    ----------
    fc : xr.Dataset
        :func:`forecast_cube` result.
    method : str
        A method of :data:`revmodel.reconcile.METHODS` other than ``"none"``.
    locked : mapping, optional
        Committed values, as in :func:`revmodel.reconcile.reconcile_cube`.
    settings : revmodel.reconcile.SampleSettings
        Number of sample paths and seed.

    Returns
    -------
    (xr.Dataset, dict)
        ``fc`` with ``node_forecast (node, month, quantile)`` and ``node_mean (node, month)``
        reconciled at every node, ``forecast (segment, region, rep, month, quantile)`` the
        reconciled cell quantiles and ``reconciled_mean`` the coherent cell means; the base
        ones kept as ``base_node_forecast``, ``base_node_mean`` and ``base_forecast``;
        ``attrs["reconcile_converged"]`` 1 when every non-negative solve (the point forecast's
        months and every sample path) ended by its rule, 0 when one stopped at
        :data:`revmodel.reconcile.NONNEGATIVE_MAX_ITER`. And the reconciler's info.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), 100 + np.arange(48.0).reshape(1, 1, 2, 24))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> fc = forecast_cube(ds, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> out, info = reconcile_dataset(fc, method="ols", settings=rec.SampleSettings(n_samples=200))
    >>> out.attrs["reconcile_method"], out.attrs["reconcile_samples"]
    ('ols', 200)
    >>> reps = out["node_mean"].where(out["level"] == "rep").sum("node")
    >>> bool(np.allclose(out["node_mean"].sel(node="total"), reps))  # the reps add up to the total
    True
    """
    nf = node_forecasts(None, fc)
    h = nf.hierarchy
    nonnegative = bool(np.nanmin(fc["node_history"].values, initial=0.0) >= 0)
    reconciled, info = rec.reconcile_cube(
        fc["mean"].transpose(*rec.CELL_DIMS, "month"),
        method=method,
        residuals=nf.residuals,
        nonnegative=nonnegative,
        locked=locked,
        node_forecasts=nf.mean,
        hierarchy=h,
    )
    draws = coherent_paths(fc, method, locked, settings)
    info["sample_checks"] = draws.info.get("checks")  # drawn a month at a time: what held
    converged = all(bool(i.get("nonnegative_converged", True)) for i in (info, draws.info))
    out = _with_reconciled(fc, reconciled, info["reconciled_nodes"], draws, h)
    out.attrs.update(
        reconcile_method=str(info.get("method", method)),
        reconcile_samples=int(settings.n_samples),
        reconcile_seed=int(settings.seed),
        reconcile_converged=int(converged),
    )
    return out, info


def coherent_paths(
    fc: xr.Dataset,
    method: str = "mint_shrink",
    locked: Mapping | None = None,
    settings: rec.SampleSettings = rec.DEFAULT_SAMPLING,
) -> rec.ReconciledSamples:
    """Coherent sample paths of every node of a forecast: the one definition of its band.

    Drawn from every node's base quantiles (:func:`revmodel.reconcile.sample_reconciled`,
    locks kept, >= 0 for a measure that never is negative) and centred on the
    reconciled point forecast (every node's paths average to its ``node_mean`` of
    :func:`reconcile_dataset`; the 0.5 quantile is their median), each level's spread scaled
    first by the band calibration the forecast states
    (:meth:`revmodel.reconcile.BandCalibration.from_attrs`, set by
    :func:`forecast_reconciled` and the plan) unless ``settings`` brings its own scale.
    ``revmodel forecast`` and the plan pack both read their 10-90% bands off these paths.
    Above :data:`revmodel.reconcile.MINT_SHRINK_MAX_NODES` nodes the sampler draws and
    reconciles the paths a month at a time (its memory that of one month's paths, every
    path checked).

    Parameters
    ----------
    fc : xr.Dataset
        :func:`forecast_cube` result (the base forecast; a reconciled one is drawn from
        its ``base_node_forecast``).
    method : str
        A method of :data:`revmodel.reconcile.METHODS` other than ``"none"``.
    locked : mapping, optional
        Committed values, as in :func:`revmodel.reconcile.reconcile_cube`.
    settings : revmodel.reconcile.SampleSettings
        Number of paths, seed and, optionally, the band factors.

    Returns
    -------
    revmodel.reconcile.ReconciledSamples

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), 100 + np.arange(48.0).reshape(1, 1, 2, 24))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> fc = forecast_cube(ds, horizon=3, cache_dir=tempfile.mkdtemp(), progress=False)
    >>> own = coherent_paths(fc, "ols", settings=rec.SampleSettings(n_samples=200))
    >>> levels = tuple(dict.fromkeys(fc["level"].values.tolist()))
    >>> scale = rec.BandScale(levels, (2.0,) * len(levels), (40,) * len(levels))
    >>> cal = rec.BandCalibration(scale, "ols", 3, ("2024-09",))
    >>> wide = coherent_paths(fc.assign_attrs(cal.to_attrs()), "ols", settings=rec.SampleSettings(n_samples=200))
    >>> spread = lambda p: float(np.ptp(p.samples[0], axis=-1).mean())
    >>> round(spread(wide) / spread(own), 1)  # the total's band drawn twice as wide
    2.0
    """
    calibration = rec.BandCalibration.from_attrs(fc.attrs)
    if settings.scale is None and calibration is not None:
        settings = replace(settings, scale=calibration.scale)
    base = fc["base_node_forecast"] if "base_node_forecast" in fc else fc["node_forecast"]
    base_mean = fc["base_node_mean"] if "base_node_mean" in fc else fc["node_mean"]
    nf = node_forecasts(None, fc)
    months = fc["month"].values
    return rec.sample_reconciled(
        base.transpose("node", "month", "quantile").values,
        fc["quantile"].values,
        nf.hierarchy,
        method=method,
        residuals=nf.residuals,
        nonnegative=bool(np.nanmin(fc["node_history"].values, initial=0.0) >= 0),
        locked=rec._locks_for_cube(nf.hierarchy, locked, months),
        settings=settings,
        steps=rec._month_labels(months),
        means=base_mean.transpose("node", "month").values,
    )


def _with_reconciled(
    fc: xr.Dataset,
    reconciled: xr.DataArray,
    reconciled_nodes: xr.DataArray,
    draws: rec.ReconciledSamples,
    h: rec.Hierarchy,
) -> xr.Dataset:
    """``fc`` with the reconciled quantiles and means, the base ones kept as ``base_*``."""
    out = fc.copy()
    for name in ("node_forecast", "node_mean", "forecast"):
        out[f"base_{name}"] = fc[name]
    units = fc["mean"].attrs.get("units", "")
    measure = fc.attrs["measure"]
    out["node_forecast"] = (
        fc["node_forecast"]
        .copy(data=draws.quantiles)
        .assign_attrs(units=units, long_name=f"{measure} reconciled forecast quantiles by node")
    )
    out["node_mean"] = (
        fc["node_mean"]
        .copy(data=reconciled_nodes.values)
        .assign_attrs(units=units, long_name=f"{measure} reconciled forecast mean by node")
    )
    cell = np.zeros(fc["forecast"].shape)
    c = h.cells
    cell[c[:, 0], c[:, 1], c[:, 2]] = draws.quantiles[h.bottom]
    out["forecast"] = (
        fc["forecast"]
        .copy(data=cell)
        .assign_attrs(units=units, long_name=f"{measure} reconciled forecast quantiles")
    )
    out["reconciled_mean"] = reconciled.transpose(*fc["mean"].dims).assign_attrs(units=units)
    return out


def forecast_reconciled(
    ds: xr.Dataset,
    *,
    measure: str = "bookings",
    horizon: int,
    reconcile: str = "mint_shrink",
    scheduler: str | None = None,
    settings: rec.SampleSettings = rec.DEFAULT_SAMPLING,
    calibration: rec.BandCalibration | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[xr.Dataset, str]:
    """Forecast ``measure`` at every node and, unless ``reconcile="none"``, reconcile it.

    With ``calibration`` (:func:`revmodel.backtest.calibrate_bands`), the bands are drawn
    with its factors (:func:`coherent_paths`) and the forecast's attributes state them
    (``band_scale``, ``band_calibration``).

    With a reconciliation method, ``node_forecast`` and ``forecast`` hold the
    reconciled quantiles at every node and cell (:func:`reconcile_dataset`); the base
    ones are kept as ``base_node_forecast`` and ``base_forecast``. Without one, the
    base forecast is written under both names. With ``scheduler``, the fits are shared
    out over its workers and the reconciliation (its covariance and sample paths) runs
    as one task on a worker (:func:`revmodel.distributed.on_a_worker`). Fits already
    made are read back from ``cache_dir`` (default ``config.CACHE_DIR / "forecast"``,
    :func:`forecast_cube`).

    Returns
    -------
    (xr.Dataset, str)
        The forecast and a one-line note of what was done
        (``"reconciled with mint_shrink"``, ``"base forecasts (not reconciled)"``).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> coords = {"segment": ["SMB"], "region": ["EMEA"], "rep": ["r1", "r2"],
    ...           "month": pd.date_range("2024-01-01", periods=24, freq="MS")}
    >>> bookings = (("segment", "region", "rep", "month"), np.ones((1, 1, 2, 24)))
    >>> ds = xr.Dataset({"bookings": bookings}, coords=coords, attrs={"as_of": "2025-12-01"})
    >>> forecast_reconciled(ds, horizon=3, reconcile="magic")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: --reconcile 'magic': use one of bottom_up, top_down, ols, wls_struct, wls_var, mint_shrink, none
    """
    if measure not in ds.data_vars:
        raise ParameterError(
            f"--measure {measure!r} is not in the cube; it has {', '.join(map(str, ds.data_vars))}"
        )
    if reconcile not in rec.METHODS:
        raise ParameterError(f"--reconcile {reconcile!r}: use one of {', '.join(rec.METHODS)}")
    fc = forecast_cube(
        ds, measure=measure, horizon=horizon, scheduler=scheduler, cache_dir=cache_dir
    )
    if calibration is not None:
        fc.attrs.update(calibration.to_attrs())
    if reconcile == "none":
        for name in ("node_forecast", "node_mean", "forecast"):
            fc[f"base_{name}"] = fc[name]
        return fc, "base forecasts (not reconciled)"
    if scheduler is None:
        fc, info = reconcile_dataset(fc, method=reconcile, settings=settings)
    else:
        from revmodel import distributed

        fc, info = distributed.on_a_worker(
            scheduler, reconcile_dataset, fc, method=reconcile, settings=settings
        )
    used = info.get("method", reconcile)
    fallback = info.get("fallback")
    note = f"reconciled with {used}, quantiles from {settings.n_samples} coherent sample paths"
    note += f" ({fallback})" if fallback else ""
    return fc, note + (f"; {calibration.describe()}" if calibration is not None else "")


__all__ = [
    "SeriesForecast",
    "SeriesTask",
    "forecast_series",
    "forecast_many",
    "seasonal_profile",
    "forecast_cube",
    "summarize",
    "reconcile_forecast",
    "reconcile_dataset",
    "coherent_paths",
]
