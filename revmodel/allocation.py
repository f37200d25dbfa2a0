"""Largest-remainder allocation: split whole units over members in proportion to weights.

The one allocator of revmodel: quotas over reps and months (:mod:`revmodel.quota`),
reps over regions of the sample company (:mod:`revmodel.sample`) and move budgets
over territory groups (:mod:`revmodel.territory`) all call it. Each member gets
the floor of its share; the units left over go to the largest remainders, ties
to the earlier member, so the parts add up to the total exactly and the result
does not depend on anything but the inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["largest_remainder", "largest_remainder_groups"]


def largest_remainder_groups(
    totals: np.ndarray, group: np.ndarray, weights: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split whole-unit ``totals`` (one per group) over each group's members by ``weights``.

    Parameters
    ----------
    totals : numpy.ndarray
        Whole-unit total of each group [units], shape ``(n_groups,)``.
    group : numpy.ndarray of int
        Group of each member, shape ``(n,)``.
    weights : numpy.ndarray
        Non-negative weight of each member, shape ``(n,)``.
    n_groups : int
        Number of groups.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The allocation of each member [float, whole units] and a mask of the
        groups whose weights are all zero although their total is not (left
        unallocated, for the caller to report).

    Examples
    --------
    >>> out, stuck = largest_remainder_groups(
    ...     np.array([10.0, 3.0]), np.array([0, 0, 0, 1, 1]), np.array([1.0, 1, 1, 2, 1]), 2
    ... )
    >>> out.tolist(), stuck.tolist()
    ([4.0, 3.0, 3.0, 2.0, 1.0], [False, False])
    """
    n = len(group)
    wsum = np.bincount(group, weights=weights, minlength=n_groups)
    w_of = wsum[group]
    share = np.divide(weights, w_of, out=np.zeros(n), where=w_of > 0)
    raw = totals[group] * share
    base = np.floor(raw)
    short = np.rint(totals - np.bincount(group, weights=base, minlength=n_groups))
    rem = raw - base
    order = np.lexsort((np.arange(n), -rem, group))
    g_sorted = group[order]
    counts = np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    rank = np.arange(n) - starts[g_sorted]
    stuck = (wsum <= 0) & (totals > 0)
    base[order] += (rank < short[g_sorted]) & ~stuck[g_sorted]
    return base, stuck


def largest_remainder(total: float, weights: np.ndarray) -> np.ndarray:
    """Split one whole-unit ``total`` over members by ``weights``.

    Parameters
    ----------
    total : float
        Whole units to split.
    weights : numpy.ndarray
        Non-negative weights; all zero leaves everything unallocated.

    Returns
    -------
    numpy.ndarray of int64

    Examples
    --------
    >>> largest_remainder(10, np.array([1.0, 1.0, 1.0])).tolist()
    [4, 3, 3]
    """
    w = np.asarray(weights, dtype=float)
    out, _ = largest_remainder_groups(
        np.array([float(total)]), np.zeros(len(w), dtype=np.int64), w, 1
    )
    return out.astype(np.int64)
