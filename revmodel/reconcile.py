"""Hierarchical forecast reconciliation: make every level of the plan add up.

The sales hierarchy is *grouped*: reps sit under managers, managers in regions,
regions make the total, and all of it is crossed with the customer segment.
A hierarchy is a summing matrix ``S`` (nodes x bottom series, sparse) plus
``tags`` naming the nodes of each level, as in Nixtla's hierarchicalforecast.
Base forecasts ``y_hat`` for every node (nodes x horizon) are made coherent by
a reconciler named after its method:

- :class:`BottomUp`: aggregate the bottom forecasts.
- :class:`TopDown`: split the top forecast by forecast proportions
  (Athanasopoulos, Ahmed and Hyndman 2009).
- :class:`MinTrace`: the minimum-trace (MinT) projection
  ``y_tilde = S (S' W^-1 S)^-1 S' W^-1 y_hat`` (Wickramasuriya, Athanasopoulos
  and Hyndman 2019) with ``W`` the identity (``ols``), the number of bottom
  series under each node (``wls_struct``), the residual variances
  (``wls_var``) or the Schaefer-Strimmer shrunk residual covariance
  (``mint_shrink``).

MinT is solved as a generalised least-squares problem in the bottom series,
so it takes *locked* nodes (values a manager committed, kept exactly as
linear equality constraints through the KKT system) and non-negativity
(bottom forecasts >= 0, by a primal-dual active-set method on the same KKT
system). With a diagonal ``W`` the KKT system stays sparse, which is what
lets 10,000 bottom series reconcile in seconds; above
:data:`MINT_SHRINK_MAX_NODES` nodes the shrunk covariance is held as a diagonal
plus a rank-T term and MinT is solved in its zero-constrained form (one sparse
factorisation of ``A D A'``, Woodbury for the rank-T term; :class:`_LowRankProjection`).

Probabilistic reconciliation (:func:`sample_reconciled`) draws joint base
forecast paths (a Gaussian copula: each node's own quantiles as marginals, the
shrunk residual correlation across nodes) and reconciles every draw with the
same constraints, so each sample path adds up, keeps locked nodes and stays
non-negative; quantiles are read off the reconciled draws.

:func:`reconcile_cube` is the entry point on the cube (``segment``, ``region``,
``rep``, ``month``); :func:`hierarchy_from_cube`, :func:`to_nodes` and
:func:`from_nodes` move between the cube and the (node x month) matrix.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import xarray as xr
from scipy.optimize import linprog
from threadpoolctl import threadpool_limits

from revmodel import config
from revmodel.errors import DataError, InfeasibleError, ParameterError

#: Marker for a field a node aggregates over (``nodes`` table).
ALL = "*"

#: Cube dimensions that key a bottom series, in cube order.
CELL_DIMS: tuple[str, ...] = ("segment", "region", "rep")

#: Levels of the grouped hierarchy, top to bottom, with the fields that key each node.
#: The bottom level is the (segment, region, rep) cell: a rep usually sells in one region,
#: but a rep who sells in two keeps one bottom series per region.
LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("total", ()),
    ("region", ("region",)),
    ("segment", ("segment",)),
    ("region/segment", ("region", "segment")),
    ("manager", ("manager",)),
    ("manager/segment", ("manager", "segment")),
    ("rep", ("rep",)),
    ("rep/segment", ("rep", "segment", "region")),
)
BOTTOM_LEVEL = LEVELS[-1][0]
LEVEL_FIELDS: dict[str, tuple[str, ...]] = dict(LEVELS)
NODE_FIELDS: tuple[str, ...] = ("segment", "region", "manager", "rep")

#: Top-down path per segment: total -> segment -> region -> manager -> rep (bottom).
TOP_DOWN_PATH: tuple[str, ...] = (
    "total",
    "segment",
    "region/segment",
    "manager/segment",
    BOTTOM_LEVEL,
)

#: Above this many nodes, ``mint_shrink`` does not build the dense (nodes x nodes)
#: covariance (8 * 2000**2 bytes = 32 MB and a Cholesky of ~3 s on two cores): it holds the
#: same shrunk covariance as diagonal + low rank (:func:`shrunk_covariance_lowrank`) and
#: solves with Woodbury on the sparse KKT system; ``info["covariance"]`` says which.
MINT_SHRINK_MAX_NODES = 2000

#: Right-hand sides (horizon months, or sample paths) solved at a time by the low-rank
#: ``mint_shrink`` solver: its working memory is a few (n_nodes x block) arrays.
PROJECTION_BLOCK = 256

#: Memory for the columns of the projection's covariance at the bottoms held at 0 that the
#: low-rank solver keeps from one column (sample path) to the next [MB].
HELD_COLUMNS_MB = 1024

#: Bottoms below 0 up to which the low-rank solver conditions a column on the held bottoms
#: (an (|H| x |H|) solve per step); above it, each step factors the held rows in.
HELD_CONDITIONED_MAX = 512

#: Ridge of the shared-shock weights' fit (:func:`shared_shocks`), relative to its columns'
#: mean square: enough to make the weights a continuous function of the spreads.
KAPPA_RIDGE = 1e-6
#: A shared-shock weight below this is 0 (:func:`shared_shocks`): the fit's active bounds
#: come back off by its rounding error (1e-10), and a shock enters a score by the weight's
#: square root, so that error would move the draws by 1e-5 of a score.
KAPPA_ZERO = 1e-6

#: Cap on active-set iterations for non-negative reconciliation.
NONNEGATIVE_MAX_ITER = 200
#: Solve the columns of a dense unlocked reconciliation with bounds together
#: (:func:`_active_set_many`); False: one column at a time (:func:`_nonnegative_column`).
NONNEGATIVE_BATCH = True

#: Method names accepted by :func:`reconcile_cube` (and the CLI ``--reconcile``).
METHODS: tuple[str, ...] = (
    "bottom_up",
    "top_down",
    "ols",
    "wls_struct",
    "wls_var",
    "mint_shrink",
    "none",
)

_REL_TOL = 1e-9


# --------------------------------------------------------------------------- hierarchy


@dataclass(frozen=True)
class Hierarchy:
    """A grouped sales hierarchy as a summing matrix.

    Attributes
    ----------
    S : scipy.sparse.csr_matrix
        Summing matrix (n_nodes x n_bottom) of 0/1: node ``i`` is the sum of the
        bottom series ``j`` with ``S[i, j] == 1``.
    nodes : pd.DataFrame
        One row per node, in the row order of ``S``: ``level`` and the fields
        ``segment``, ``region``, ``manager``, ``rep``; ``"*"`` (:data:`ALL`) where
        the node aggregates over the field. A rep node also shows its manager,
        and a rep or manager node its region when all its cells share one.
    tags : dict[str, np.ndarray]
        Level name -> node indices (rows of ``S``), for every level in :data:`LEVELS`.
    cells : np.ndarray
        (n_bottom x 3) integer positions of each bottom series in the cube's
        ``segment``, ``region``, ``rep`` coordinates.
    coords : dict[str, np.ndarray]
        The cube's ``segment``, ``region`` and ``rep`` labels, and ``manager`` per rep.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> # 1 segment x 2 regions x 2 reps x 3 months
    >>> da = toy_cube(np.ones((1, 2, 2, 3)), regions=["EMEA", "NA"], managers=["M1", "M2"])
    >>> h = hierarchy_from_cube(da)
    >>> h.S.shape, h.tags["region"].size  # 4 cells add up to 12 nodes; 2 region nodes
    ((16, 4), 2)
    >>> h.nodes.iloc[0].to_dict()
    {'level': 'total', 'segment': '*', 'region': '*', 'manager': '*', 'rep': '*'}
    """

    S: sp.csr_matrix
    nodes: pd.DataFrame
    tags: dict[str, np.ndarray]
    cells: np.ndarray
    coords: dict[str, np.ndarray] = field(repr=False)

    @property
    def n_nodes(self) -> int:
        return int(self.S.shape[0])

    @property
    def n_bottom(self) -> int:
        return int(self.S.shape[1])

    @property
    def bottom(self) -> np.ndarray:
        """Node indices of the bottom level (row ``bottom[j]`` of ``S`` is series ``j``)."""
        return self.tags[BOTTOM_LEVEL]

    def labels(self) -> np.ndarray:
        """Readable names of every node, in row order (as :meth:`label`), computed by level."""
        out = np.empty(self.n_nodes, dtype=object)
        for level, fields in LEVELS:
            idx = self.tags[level]
            if not fields:
                out[idx] = level
                continue
            sub = self.nodes.iloc[idx]
            keys = sub[fields[0]].astype(str)
            for f in fields[1:]:
                keys = keys + "/" + sub[f].astype(str)
            out[idx] = (level + "=" + keys).to_numpy()
        return out.astype(str)

    def label(self, node: int) -> str:
        """Readable name of a node, e.g. ``manager=M03`` or ``region/segment=EMEA/SMB``."""
        row = self.nodes.iloc[int(node)]
        fields = LEVEL_FIELDS[row["level"]]
        if not fields:
            return row["level"]
        return f"{row['level']}={'/'.join(str(row[f]) for f in fields)}"

    def index(self, level: str, key: Any = ()) -> int:
        """Node index of ``(level, key)``.

        Parameters
        ----------
        level : str
            A level name of :data:`LEVELS`, e.g. ``"manager"``.
        key : str, tuple or dict
            The node's key fields in the order of :data:`LEVELS` (a plain string
            for one-field levels; a shorter tuple leaves the trailing fields
            open), or a dict ``{field: value}``. It must name exactly one node.
        """
        if level not in LEVEL_FIELDS:
            raise ParameterError(
                f"unknown hierarchy level {level!r}; use one of {', '.join(LEVEL_FIELDS)}"
            )
        fields = LEVEL_FIELDS[level]
        if key is None:
            key = ()
        if isinstance(key, Mapping):
            wanted = {str(k): v for k, v in key.items()}
            unknown = sorted(set(wanted) - set(fields))
            if unknown:
                raise ParameterError(
                    f"level {level!r} is keyed by {fields}, not by {unknown}; fix the locked node key"
                )
        else:
            if isinstance(key, str) or not isinstance(key, Sequence):
                key = (key,)
            if len(key) > len(fields):
                raise ParameterError(
                    f"level {level!r} is keyed by {fields} but the key {tuple(key)!r} has "
                    f"{len(key)} values"
                )
            wanted = dict(zip(fields, key, strict=False))
        idx = self.tags[level]
        sub = self.nodes.iloc[idx]
        mask = np.ones(len(idx), dtype=bool)
        for f, v in wanted.items():
            mask &= sub[f].to_numpy() == str(v)
        found = idx[mask]
        if found.size == 0:
            raise ParameterError(
                f"no node {level}={wanted!r} in the hierarchy; check the spelling, or that "
                f"the node has data (empty cells are not part of the hierarchy)"
            )
        if found.size > 1:
            raise ParameterError(
                f"{level}={wanted!r} names {found.size} nodes "
                f"({', '.join(self.label(i) for i in found[:5])}); give all of {fields}"
            )
        return int(found[0])


def _as_dataarray(ds: xr.Dataset | xr.DataArray, measure: str) -> xr.DataArray:
    if isinstance(ds, xr.Dataset):
        if measure not in ds:
            raise DataError(
                f"the cube has no measure {measure!r} to find the series with data "
                f"(measures: {', '.join(map(str, ds.data_vars))}); pass measure= or bottom_mask="
            )
        return ds[measure]
    return ds


def _check_cell_dims(da: xr.DataArray, what: str) -> None:
    missing = [d for d in CELL_DIMS if d not in da.dims]
    if missing:
        raise DataError(
            f"{what} lacks the cube dimension(s) {missing}; it needs dims "
            f"{CELL_DIMS} (plus month), as built by revmodel.cube.build_cube"
        )


def hierarchy_from_cube(
    ds: xr.Dataset | xr.DataArray,
    bottom_mask: xr.DataArray | None = None,
    measure: str = "bookings",
) -> Hierarchy:
    """Build the grouped sales hierarchy of a cube.

    Parameters
    ----------
    ds : xr.Dataset or xr.DataArray
        The cube (dims ``segment``, ``region``, ``rep``, ``month``; coord
        ``manager(rep)``), numpy- or dask-backed, or one of its measures.
    bottom_mask : xr.DataArray of bool, optional
        Which (segment, region, rep) cells are bottom series (any extra dims,
        e.g. month, are reduced with ``any``). Default: the cells where
        ``measure`` (or the DataArray) holds any non-zero, non-NaN value.
    measure : str
        Measure that decides which cells carry data when ``ds`` is a Dataset.

    Returns
    -------
    Hierarchy
        Summing matrix over the cells with data; empty cells are left out.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> h.n_nodes, h.n_bottom
    (10, 2)
    >>> h.labels()[:3].tolist()
    ['total', 'region=EMEA', 'segment=SMB']
    """
    da = _as_dataarray(ds, measure)
    _check_cell_dims(da, "the cube")
    if bottom_mask is None:
        mask_da = (da.fillna(0) != 0).any([d for d in da.dims if d not in CELL_DIMS])
    else:
        _check_cell_dims(bottom_mask, "bottom_mask")
        extra = [d for d in bottom_mask.dims if d not in CELL_DIMS]
        mask_da = bottom_mask.fillna(False).astype(bool).any(extra) if extra else bottom_mask
    mask = np.asarray(mask_da.transpose(*CELL_DIMS).values, dtype=bool)
    segments = np.asarray(da["segment"].values).astype(str)
    regions = np.asarray(da["region"].values).astype(str)
    reps = np.asarray(da["rep"].values).astype(str)
    if "manager" in da.coords:
        managers = np.asarray(da["manager"].values).astype(str)
    else:
        managers = np.full(reps.shape, config.PLACEHOLDER)
    cells = np.argwhere(mask)
    if cells.shape[0] == 0:
        raise DataError(
            "the cube has no (segment, region, rep) cell with data, so there is nothing to "
            "reconcile; check the measure or pass bottom_mask="
        )
    return hierarchy_from_cells(cells, segments, regions, reps, managers)


def hierarchy_from_cells(
    cells: np.ndarray,
    segments: np.ndarray,
    regions: np.ndarray,
    reps: np.ndarray,
    managers: np.ndarray,
) -> Hierarchy:
    """The grouped hierarchy over given bottom cells: summing matrix, node table and tags at once.

    Parameters
    ----------
    cells : np.ndarray
        (n_bottom x 3) integer positions of the bottom series in ``segments``, ``regions``,
        ``reps``, in the order the bottom rows should take.
    segments, regions, reps : np.ndarray
        The cube's coordinate labels.
    managers : np.ndarray
        Manager of each rep (same length as ``reps``).

    Examples
    --------
    >>> import numpy as np
    >>> cells = np.array([[0, 0, 0], [0, 0, 1]])  # (segment, region, rep) positions with data
    >>> h = hierarchy_from_cells(cells, np.array(["SMB"]), np.array(["EMEA"]),
    ...                          np.array(["r1", "r2"]), np.array(["M1", "M1"]))
    >>> h.n_nodes, str(h.labels()[-1])
    (10, 'rep/segment=r2/SMB/EMEA')
    """
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
    segments, regions, reps, managers = (
        np.asarray(a).astype(str) for a in (segments, regions, reps, managers)
    )
    bottom = pd.DataFrame(
        {
            "segment": segments[cells[:, 0]],
            "region": regions[cells[:, 1]],
            "manager": managers[cells[:, 2]],
            "rep": reps[cells[:, 2]],
        }
    )
    m = len(bottom)
    rows, cols, frames, tags = [], [], [], {}
    offset = 0
    for level, fields in LEVELS:
        if fields:
            codes, uniques = pd.MultiIndex.from_frame(bottom[list(fields)]).factorize()
            keys = pd.DataFrame(list(uniques), columns=list(fields))
        else:
            codes = np.zeros(m, dtype=np.int64)
            keys = pd.DataFrame(index=[0])
        k = len(keys)
        table = pd.DataFrame({"level": level}, index=range(k))
        for f in NODE_FIELDS:
            if f in fields:
                table[f] = keys[f].to_numpy()
            elif _shown(level, f):
                grouped = bottom.groupby(codes)[f]
                unique = grouped.nunique().reindex(range(k)).to_numpy() == 1
                table[f] = np.where(unique, grouped.first().reindex(range(k)).to_numpy(), ALL)
            else:
                table[f] = ALL
        rows.append(codes + offset)
        cols.append(np.arange(m))
        tags[level] = np.arange(offset, offset + k)
        frames.append(table)
        offset += k
    S = sp.csr_matrix(
        (np.ones(m * len(LEVELS)), (np.concatenate(rows), np.concatenate(cols))),
        shape=(offset, m),
    )
    nodes = pd.concat(frames, ignore_index=True)[["level", *NODE_FIELDS]]
    coords = {"segment": segments, "region": regions, "rep": reps, "manager": managers}
    return Hierarchy(S=S, nodes=nodes, tags=tags, cells=cells, coords=coords)


def _shown(level: str, field_name: str) -> bool:
    # Fields above a node in the rep -> manager -> region chain are shown when unique.
    fields = LEVEL_FIELDS[level]
    if "rep" in fields:
        return field_name in ("manager", "region")
    if "manager" in fields:
        return field_name == "region"
    return False


def aggregate(
    hierarchy: Hierarchy | sp.spmatrix | np.ndarray, bottom_values: np.ndarray
) -> np.ndarray:
    """All-node values from bottom values: ``S @ b``.

    Parameters
    ----------
    hierarchy : Hierarchy or summing matrix
    bottom_values : np.ndarray
        (n_bottom,) or (n_bottom x h) values [any units].

    Returns
    -------
    np.ndarray
        (n_nodes,) or (n_nodes x h) values [same units].

    Examples
    --------
    >>> import numpy as np
    >>> S = np.array([[1, 1], [1, 0], [0, 1]])  # the total over two bottom series
    >>> aggregate(S, np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[4., 6.],
           [1., 2.],
           [3., 4.]])
    """
    S = _summing_matrix(hierarchy)
    b = np.asarray(bottom_values, dtype=float)
    if b.shape[0] != S.shape[1]:
        raise ParameterError(
            f"bottom_values has {b.shape[0]} rows but the hierarchy has {S.shape[1]} bottom series"
        )
    return np.asarray(S @ b)


def _summing_matrix(hierarchy: Hierarchy | sp.spmatrix | np.ndarray) -> sp.csr_matrix:
    if isinstance(hierarchy, Hierarchy):
        return hierarchy.S
    return sp.csr_matrix(hierarchy, dtype=float)


def _time_dims(da: xr.DataArray) -> list[str]:
    return [d for d in da.dims if d not in CELL_DIMS]


def bottom_values(hierarchy: Hierarchy, da: xr.DataArray) -> xr.DataArray:
    """The bottom series of a cube DataArray, as a (node, month[, ...]) DataArray.

    NaN becomes 0 (a cell without a value contributes nothing to its parents).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> bottom_values(h, da).values
    array([[1., 2.],
           [3., 4.]])
    """
    _check_cell_dims(da, "the forecast")
    idx = {d: xr.DataArray(hierarchy.cells[:, k], dims="node") for k, d in enumerate(CELL_DIMS)}
    picked = da.isel(idx).fillna(0)
    picked = picked.drop_vars([c for c in picked.coords if "node" in picked[c].dims])
    out = picked.transpose("node", ...)
    return _with_node_coords(hierarchy, out, hierarchy.bottom)


def _with_node_coords(
    hierarchy: Hierarchy, da: xr.DataArray, node_index: np.ndarray
) -> xr.DataArray:
    table = hierarchy.nodes.iloc[node_index]
    coords = {"node": np.asarray(node_index)}
    coords.update({c: ("node", table[c].to_numpy()) for c in ("level", *NODE_FIELDS)})
    return da.assign_coords(coords)


def to_nodes(hierarchy: Hierarchy, da: xr.DataArray) -> xr.DataArray:
    """Aggregate a cube DataArray to every node of the hierarchy.

    Parameters
    ----------
    hierarchy : Hierarchy
    da : xr.DataArray
        Dims ``segment``, ``region``, ``rep`` and time (``month``, optionally
        ``quantile`` or others) [any additive units]. Cells outside the
        hierarchy are ignored. Sums of quantiles are not quantiles of sums:
        aggregate means, then derive intervals per node.

    Returns
    -------
    xr.DataArray
        Dims (``node``, time dims...), node coords ``level``, ``segment``,
        ``region``, ``manager``, ``rep`` [same units].

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> nodes = to_nodes(h, da)
    >>> nodes.dims, nodes.isel(node=0).values  # node 0 is the total
    (('node', 'month'), array([4., 6.]))
    """
    b = bottom_values(hierarchy, da)
    values = np.asarray(b.values)
    flat = values.reshape(values.shape[0], -1)
    agg = np.asarray(hierarchy.S @ flat).reshape((hierarchy.n_nodes, *values.shape[1:]))
    coords = {c: b.coords[c] for c in b.coords if "node" not in b[c].dims}
    out = xr.DataArray(agg, dims=b.dims, coords=coords, name=da.name, attrs=dict(da.attrs))
    return _with_node_coords(hierarchy, out, np.arange(hierarchy.n_nodes))


def from_nodes(
    hierarchy: Hierarchy, node_values: xr.DataArray | np.ndarray, like: xr.DataArray | None = None
) -> xr.DataArray:
    """Put the bottom level of node values back into the cube's dims.

    Parameters
    ----------
    hierarchy : Hierarchy
    node_values : xr.DataArray or np.ndarray
        (node, time...) values for all nodes, in hierarchy order, or
        (n_bottom, time...) bottom values only.
    like : xr.DataArray, optional
        A cube DataArray whose coords (and time coords) the result takes.

    Returns
    -------
    xr.DataArray
        Dims (``segment``, ``region``, ``rep``, time...); cells outside the hierarchy are 0.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> back = from_nodes(h, to_nodes(h, da), like=da)
    >>> bool((back == da).all())
    True
    """
    arr = np.asarray(node_values.values if isinstance(node_values, xr.DataArray) else node_values)
    if arr.shape[0] == hierarchy.n_nodes:
        arr = arr[hierarchy.bottom]
    elif arr.shape[0] != hierarchy.n_bottom:
        raise ParameterError(
            f"node_values has {arr.shape[0]} rows; expected {hierarchy.n_nodes} nodes or "
            f"{hierarchy.n_bottom} bottom series"
        )
    ns, nr, nrep = (len(hierarchy.coords[d]) for d in CELL_DIMS)
    out = np.zeros((ns, nr, nrep, *arr.shape[1:]))
    c = hierarchy.cells
    out[c[:, 0], c[:, 1], c[:, 2]] = arr
    if isinstance(node_values, xr.DataArray):
        tdims = [d for d in node_values.dims if d != "node"]
        coords = {k: v for k, v in node_values.coords.items() if "node" not in v.dims}
        name, attrs = node_values.name, dict(node_values.attrs)
    else:
        tdims = list(_time_dims(like)) if like is not None else []
        tdims += [f"dim_{k}" for k in range(len(tdims) + 1, arr.ndim)]
        coords, name, attrs = {}, None, {}
    coords.update({d: hierarchy.coords[d] for d in CELL_DIMS})
    coords["manager"] = ("rep", hierarchy.coords["manager"])
    result = xr.DataArray(out, dims=(*CELL_DIMS, *tdims), coords=coords, name=name, attrs=attrs)
    if like is not None:
        same = {
            k: v
            for k, v in like.coords.items()
            if k not in result.dims and all(result.sizes.get(d) == n for d, n in v.sizes.items())
        }
        result = result.assign_coords(same)
        result.name, result.attrs = like.name, dict(like.attrs)
    return result


# --------------------------------------------------------------------------- covariance


def shrunk_covariance(residuals: np.ndarray) -> tuple[np.ndarray, float]:
    """Schaefer-Strimmer shrinkage of the residual covariance towards its diagonal.

    ``W = lambda * D + (1 - lambda) * Sigma`` with ``Sigma`` the sample
    covariance (centred, ``1/(T-1)``), ``D = diag(Sigma)`` and
    ``lambda = sum_{i != j} Var(r_ij) / sum_{i != j} r_ij**2`` clipped to
    [0, 1], ``r_ij`` the sample correlations (Schaefer and Strimmer 2005, as
    used by MinT, Wickramasuriya et al. 2019). NaN residuals are left out
    pair by pair.

    Parameters
    ----------
    residuals : np.ndarray
        (n_nodes x T) in-sample one-step residuals [units of the forecast].

    Returns
    -------
    (np.ndarray, float)
        The (n_nodes x n_nodes) shrunk covariance [units**2] and ``lambda``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> cov, lam = shrunk_covariance(rng.normal(size=(3, 40)))  # 3 series, 40 residuals each
    >>> cov.shape, bool(0 <= lam <= 1)
    ((3, 3), True)
    """
    E = np.asarray(residuals, dtype=float)
    ok = np.isfinite(E).astype(float)
    counts = ok @ ok.T
    Ez = np.where(ok > 0, E, 0.0)
    mean = Ez.sum(1) / np.maximum(ok.sum(1), 1)
    X = np.where(ok > 0, E - mean[:, None], 0.0)
    sd = np.sqrt((X**2).sum(1) / np.maximum(ok.sum(1) - 1, 1))
    safe_sd = np.where(sd > 0, sd, 1.0)
    Z = X / safe_sd[:, None]
    denom = np.maximum(counts - 1, 1)
    R = (Z @ Z.T) / denom
    # Var(r_ij) = n / (n - 1)**3 * sum_t (w_tij - mean_t w_tij)**2, w_tij = z_ti z_tj
    sum_w2 = (Z**2) @ (Z**2).T
    sum_w = Z @ Z.T
    n_ij = np.maximum(counts, 1)
    var_w = sum_w2 - sum_w**2 / n_ij
    var_r = counts / np.maximum(counts - 1, 1) ** 3 * var_w
    off = ~np.eye(E.shape[0], dtype=bool)
    off &= (sd[:, None] > 0) & (sd[None, :] > 0)
    num, den = var_r[off].sum(), (R[off] ** 2).sum()
    lam = 1.0 if den <= 0 else float(np.clip(num / den, 0.0, 1.0))
    cov = R * np.outer(sd, sd)
    var = sd**2
    positive = var[var > 0]
    var = np.where(var > 0, var, (positive.mean() if positive.size else 1.0) * 1e-8)

    def build(weight: float) -> np.ndarray:
        out = (1.0 - weight) * cov
        np.fill_diagonal(out, var)
        return out

    shrunk = build(lam)
    if not _positive_definite(shrunk):
        # Residuals with gaps give a pairwise covariance that need not be positive definite:
        # shrink further towards the diagonal, just as far as needed (bisection on lambda).
        lo, hi = lam, 1.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if _positive_definite(build(mid)):
                hi = mid
            else:
                lo = mid
        lam = hi
        shrunk = build(lam)
    return shrunk, lam


@dataclass(frozen=True)
class LowRankCovariance:
    """A covariance held as ``diag(d) + U U'``: what MinT needs at any size, in O(n T) memory.

    Attributes
    ----------
    d : np.ndarray
        (n,) positive diagonal part [units**2].
    U : np.ndarray
        (n x r) low-rank factor [units].
    shrinkage : float
        The Schaefer-Strimmer ``lambda`` it was built with [1].
    """

    d: np.ndarray
    U: np.ndarray
    shrinkage: float

    def diagonal(self) -> np.ndarray:
        """The variances, ``diag(W)`` [units**2]."""
        return self.d + np.einsum("ij,ij->i", self.U, self.U)

    def dense(self) -> np.ndarray:
        """The (n x n) matrix; for tests and small hierarchies only."""
        return np.diag(self.d) + self.U @ self.U.T

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws of N(0, W), shape (n, size), in O(n (r + 1) size)."""
        n, r = self.U.shape
        return np.sqrt(self.d)[:, None] * rng.standard_normal(
            (n, size)
        ) + self.U @ rng.standard_normal((r, size))


def shrunk_covariance_lowrank(residuals: np.ndarray) -> LowRankCovariance:
    """:func:`shrunk_covariance` as diagonal plus low rank, never forming an (n x n) matrix.

    With centred residuals ``X`` (n x T), the sample covariance is ``X X' / (T - 1)``,
    so ``W = lambda D + (1 - lambda) X X' / (T - 1)`` is a diagonal plus a rank-T term.
    ``lambda`` uses the same Schaefer-Strimmer estimate, its sums over node pairs
    written with (T x T) Gram matrices: O(n T^2) time. Missing residuals count as 0
    after centring (the dense version leaves them out pair by pair); with complete
    residuals both give the same matrix.

    Parameters
    ----------
    residuals : np.ndarray
        (n_nodes x T) in-sample one-step residuals [units of the forecast].

    Returns
    -------
    LowRankCovariance

    Examples
    --------
    >>> import numpy as np
    >>> r = np.random.default_rng(0).normal(size=(3, 40))
    >>> low = shrunk_covariance_lowrank(r)
    >>> bool(np.allclose(low.dense(), shrunk_covariance(r)[0]))
    True
    """
    E = np.asarray(residuals, dtype=float)
    ok = np.isfinite(E)
    n_obs = ok.sum(1)
    T = E.shape[1]
    mean = np.where(ok, E, 0.0).sum(1) / np.maximum(n_obs, 1)
    X = np.where(ok, E - mean[:, None], 0.0)
    sd = np.sqrt((X**2).sum(1) / np.maximum(n_obs - 1, 1))
    Z = X / np.where(sd > 0, sd, 1.0)[:, None]
    row_sq = (Z**2).sum(1)  # z_i . z_i
    G = Z.T @ Z  # (T x T)
    # sum over i != j of (sum_t z_ti z_tj)^2 and of sum_t z_ti^2 z_tj^2
    cross = float((G**2).sum() - (row_sq**2).sum())
    col_sq = (Z**2).sum(0)
    fourth = float((col_sq**2).sum() - (Z**4).sum())
    t1 = max(T - 1, 1)
    num = T / t1**3 * (fourth - cross / max(T, 1))
    den = cross / t1**2
    lam = 1.0 if den <= 0 else float(np.clip(num / den, 0.0, 1.0))
    lam = max(lam, 1e-8)  # W stays positive definite when there are more nodes than months
    var = sd**2
    positive = var[var > 0]
    floor = (positive.mean() if positive.size else 1.0) * 1e-8
    target = np.where(var > floor, var, floor)
    U = np.sqrt((1.0 - lam) / t1) * X
    d = target - (1.0 - lam) * var
    return LowRankCovariance(d=d, U=U, shrinkage=lam)


def _positive_definite(m: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        return False
    return True


def residual_variance(residuals: np.ndarray) -> np.ndarray:
    """Diagonal of :func:`shrunk_covariance`: the residual variances [units**2] (NaN left out).

    Examples
    --------
    >>> import numpy as np
    >>> residual_variance(np.array([[1.0, -1.0, 1.0, -1.0], [2.0, -2.0, np.nan, 0.0]])).round(2)
    array([1.33, 4.  ])
    """
    E = np.asarray(residuals, dtype=float)
    ok = np.isfinite(E)
    n = ok.sum(1)
    mean = np.where(ok, E, 0.0).sum(1) / np.maximum(n, 1)
    X = np.where(ok, E - mean[:, None], 0.0)
    return (X**2).sum(1) / np.maximum(n - 1, 1)


def _floor_variance(w: np.ndarray, info: dict) -> np.ndarray:
    positive = w[np.isfinite(w) & (w > 0)]
    floor = (positive.mean() if positive.size else 1.0) * 1e-8
    low = ~np.isfinite(w) | (w < floor)
    info["variance_floored_nodes"] = int(low.sum())
    return np.where(low, floor, w)


# --------------------------------------------------------------------------- GLS core


#: Lock-independent reconciliation structures (weights, factorisations), most recent last.
_STRUCTURES: OrderedDict[tuple, Any] = OrderedDict()
#: Structures kept; each holds a few (n_nodes x n_nodes) matrices at most.
STRUCTURES_KEPT = 4


def _digest(a: Any) -> bytes | None:
    """The content of an array or sparse matrix, as a short digest (None for None)."""
    if a is None:
        return None
    h = hashlib.blake2b(digest_size=16)
    if sp.issparse(a):
        a = sp.csr_matrix(a)
        parts = (a.data, a.indices, a.indptr, np.asarray(a.shape))
    else:
        parts = (np.asarray(a), np.asarray(np.shape(a)))
    for part in parts:
        h.update(str(part.dtype).encode())
        h.update(np.ascontiguousarray(part).tobytes())
    return h.digest()


def _remember(key: tuple, value: Any) -> None:
    _STRUCTURES[key] = value
    _STRUCTURES.move_to_end(key)
    while len(_STRUCTURES) > STRUCTURES_KEPT:
        _STRUCTURES.popitem(last=False)


def _objective(
    S: sp.csr_matrix, W: np.ndarray | LowRankCovariance, bottom_rows: np.ndarray
) -> _Objective | _LowRankProjection:
    """:class:`_Objective` of ``(S, W)``, built once for weights from :meth:`MinTrace.cached_weights`."""
    kind = _LowRankProjection if isinstance(W, LowRankCovariance) else _Objective
    cached = any(v[0] is W for v in _STRUCTURES.values() if isinstance(v, tuple))
    if not cached:
        return kind(S, W, bottom_rows)
    key = ("objective", id(W), _digest(S), _digest(bottom_rows))
    found = _STRUCTURES.get(key)
    if found is None or found.W is not W:
        found = kind(S, W, bottom_rows)
        found.W = W
        _remember(key, found)
    return found


class _Objective:
    """``min_b (y - S b)' W^-1 (y - S b)`` for a diagonal or dense W.

    With a diagonal W the KKT system is reduced by eliminating each bottom
    series with its own (identity) row of ``S``: what is left is the symmetric
    positive definite system

        [[W_a + S_aF W_F S_aF',  S_aF W_F C_F'],     [r_a]
         [C_F W_F S_aF',         C_F W_F C_F' ]]  x  [-lam]

    over the aggregate nodes ``a`` and the locks, with ``F`` the free bottom
    series. It is sparse (a node couples only with the nodes it shares bottom
    series with), so a sparse LU factors it in milliseconds for 10,000 series.
    """

    def __init__(self, S: sp.csr_matrix, W: np.ndarray, bottom_rows: np.ndarray):
        self.S = S
        self.diagonal = W.ndim == 1
        if self.diagonal:
            w = W / W.mean()
            is_bottom = np.zeros(S.shape[0], dtype=bool)
            is_bottom[bottom_rows] = True
            self.bot = np.asarray(bottom_rows)
            self.agg = np.flatnonzero(~is_bottom)
            self.Sa = S[self.agg].tocsc()
            self.wa, self.wb = w[self.agg], w[self.bot]
        else:
            W = W / np.mean(np.diag(W))
            chol = sla.cho_factor(W, lower=True)
            Sd = S.toarray()
            self.WiS = sla.cho_solve(chol, Sd)
            self.A = Sd.T @ self.WiS
            self._A_chol: tuple | None = None
            self._A_inv: np.ndarray | None = None

    def _A_factor(self) -> tuple:
        if self._A_chol is None:
            self._A_chol = sla.cho_factor(self.A, lower=True)
        return self._A_chol

    def inverse(self) -> np.ndarray:
        """``A^-1`` (m x m, dense W), computed once: the covariance the bounds condition."""
        if self._A_inv is None:
            self._A_inv = sla.cho_solve(self._A_factor(), np.eye(self.A.shape[0]))
        return self._A_inv

    def solve(
        self, y: np.ndarray, free: np.ndarray, C: sp.csr_matrix, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Minimise with b[~free] = 0 and C b = v; return (b, bound multipliers nu)."""
        if self.diagonal:
            return self._solve_diagonal(y, free, C, v)[:2]
        m = self.S.shape[1]
        F = np.flatnonzero(free)
        k = C.shape[0]
        g = self.WiS.T @ y
        AFF = self.A[np.ix_(F, F)]
        if k:
            CFd = C[:, F].toarray()
            K = np.block([[AFF, CFd.T], [CFd, np.zeros((k, k))]])
            sol = sla.solve(K, np.vstack([g[F], v]), assume_a="sym")
            xF, lam = sol[: F.size], sol[F.size :]
        else:
            xF = sla.solve(AFF, g[F], assume_a="pos")
            lam = np.zeros((0, y.shape[1]))
        nu = self.A[:, F] @ xF - g + C.T @ lam
        b = np.zeros((m, y.shape[1]))
        b[F] = xF
        return b, np.asarray(nu)

    def _solve_diagonal(
        self, y: np.ndarray, free: np.ndarray, C: sp.csr_matrix, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, m = self.S.shape
        h = y.shape[1]
        F = np.flatnonzero(free)
        k = C.shape[0]
        na = self.agg.size
        ya, yb = y[self.agg], y[self.bot]
        wF = self.wb[F]
        SaF = self.Sa[:, F]
        CF = C[:, F].tocsc()
        blocks_rhs = []
        rows = []
        if na:
            M = sp.diags(self.wa) + SaF @ sp.diags(wF) @ SaF.T
            Bm = SaF @ sp.diags(wF) @ CF.T if k else None
            rows.append([M, Bm] if k else [M])
            blocks_rhs.append(ya - SaF @ yb[F])
        if k:
            D = CF @ sp.diags(wF) @ CF.T
            rows.append([Bm.T, D] if na else [D])
            blocks_rhs.append(v - CF @ yb[F])
        if rows:
            K = sp.bmat(rows, format="csc")
            lu = spla.splu(
                K,
                permc_spec="MMD_AT_PLUS_A",
                diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
            sol = lu.solve(np.vstack(blocks_rhs))
        else:
            sol = np.zeros((0, h))
        ra, lam = sol[:na], -sol[na:]
        rF = -(SaF.T @ ra)
        if k:
            rF = rF + CF.T @ lam
        b = np.zeros((m, h))
        b[F] = yb[F] - wF[:, None] * rF
        r = np.empty((n, h))
        r[self.agg] = ra
        rb = yb / self.wb[:, None]
        rb[F] = rF
        r[self.bot] = rb
        nu = -(self.S.T @ r)
        if k:
            nu = nu + C.T @ lam
        return b, np.asarray(nu), r


class _LowRankProjection:
    """MinT with ``W = diag(d) + U U'`` in the zero-constrained form, in O(n (T + block)) memory.

    Coherent forecasts are those with ``A_s y = 0``, ``A_s = [I | -S_agg]`` (each aggregate
    node minus the bottoms under it, in node order); a lock adds the row ``c' y_bottom = v``
    (``c`` a row of ``S``) and a bottom held at 0 by the non-negativity bound the row
    ``y_j = 0``. With all of them stacked as ``A y = c``, the minimum of
    ``(y - y_hat)' W^-1 (y - y_hat)`` is

        ``y_tilde = y_hat - W A' lam``,  ``(A W A') lam = A y_hat - c``

    (Wickramasuriya et al. 2019, zero-constrained form). ``A diag(d) A'`` is sparse (an
    aggregate node meets only the nodes it shares bottoms with; the top rows are the dense
    ones), so it is factored once by a sparse LU; the rank-T term ``(A U)(A U)'`` is added
    by Woodbury through a (T x T) system. No (n x n) or (m x m) dense matrix is formed, and
    the right-hand sides are solved :data:`PROJECTION_BLOCK` columns at a time. The same
    optimum as the bottom-space KKT system of :class:`_Objective`, so locks and bounds are
    handled by the same callers; the bound multiplier of a bottom held at 0 is ``-lam_j``.
    """

    def __init__(self, S: sp.csr_matrix, W: LowRankCovariance, bottom_rows: np.ndarray):
        n, m = S.shape
        scale = float(W.diagonal().mean())
        self.d, self.U = W.d / scale, W.U / np.sqrt(scale)
        self.S, self.n, self.m = S, n, m
        self.bot = np.asarray(bottom_rows)
        is_bottom = np.zeros(n, dtype=bool)
        is_bottom[self.bot] = True
        agg = np.flatnonzero(~is_bottom)
        Sa = S[agg].tocoo()
        na = agg.size
        self.A_s = sp.csr_matrix(
            (
                np.concatenate([np.ones(na), -Sa.data]),
                (np.concatenate([np.arange(na), Sa.row]), np.concatenate([agg, self.bot[Sa.col]])),
            ),
            shape=(na, n),
        )
        self.factor_nnz = 0
        self._key: bytes | None = None
        self._scratch: _LowRankProjection | None = None
        self.release()

    def scratch(self) -> _LowRankProjection:
        """A solver on the same covariance and structure with a factor of its own.

        An active-set step that factors its held bottoms in (more than
        :data:`HELD_CONDITIONED_MAX` of them) runs on it, so this solver's factor without
        held bottoms, and the held-bottom rows computed on it, stay for the next path's
        conditioning (refactoring them after every such path took most of a 2,000-rep
        company's band calibration).
        """
        if self._scratch is None:
            other = copy.copy(self)
            other._key, other._scratch = None, None
            other.release()
            self._scratch = other
        return self._scratch

    def _constraints(self, free: np.ndarray, C: sp.csr_matrix) -> sp.csr_matrix:
        """``A``: the structural rows, the lock rows, then one row per bottom held at 0."""
        Cc = C.tocoo()
        A_l = sp.csr_matrix((Cc.data, (Cc.row, self.bot[Cc.col])), shape=(C.shape[0], self.n))
        held = self.bot[np.flatnonzero(~free)]
        A_0 = sp.csr_matrix(
            (np.ones(held.size), (np.arange(held.size), held)), shape=(held.size, self.n)
        )
        return sp.vstack([self.A_s, A_l, A_0], format="csr")

    def _factor(self, free: np.ndarray, C: sp.csr_matrix) -> None:
        key = free.tobytes() + C.indptr.tobytes() + C.indices.tobytes() + C.data.tobytes()
        if key == self._key:
            return
        A = self._constraints(free, C)
        # Rows with fewer entries first (a bottom held at 0, a rep, ..., the total last): each
        # elimination then joins nodes that already share a bottom, so the factor barely fills
        # in and needs no ordering search.
        order = np.argsort(np.diff(A.indptr), kind="stable")
        A = A[order]
        K = (A @ sp.diags(self.d) @ A.T).tocsc()
        lu = spla.splu(
            K, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
        )
        self.order, self.position = order, np.argsort(order)
        G = np.asarray(A @ self.U)  # (p x T)
        KG = lu.solve(G) if G.shape[1] else G
        cap = np.eye(G.shape[1]) + G.T @ KG
        self.A, self.lu, self.G, self.KG = A, lu, G, KG
        self.cap = sla.cho_factor(cap) if G.shape[1] else None
        self.factor_nnz = int(lu.L.nnz + lu.U.nnz)
        self.K_nnz = int(K.nnz)
        self._key = key
        self._k = C.shape[0]
        self._held = np.flatnonzero(~free)
        self.release()

    def _multipliers(self, rhs: np.ndarray) -> np.ndarray:
        """``(A W A')^-1 rhs`` by Woodbury on the sparse factor."""
        x = self.lu.solve(rhs)
        if self.cap is None:
            return x
        return x - self.KG @ sla.cho_solve(self.cap, self.G.T @ x)

    def _project(
        self, y: np.ndarray, v: np.ndarray | None, nu: np.ndarray | None = None
    ) -> np.ndarray:
        """Bottom rows of the projection of ``y`` (n x h) with the current factor.

        ``v`` (k x h) are the lock values (None: 0); the bound multipliers of the held
        bottoms are written into ``nu`` when given.
        """
        h = y.shape[1]
        k = self._k
        na = self.A_s.shape[0]
        b = np.zeros((self.m, h))
        for start in range(0, h, PROJECTION_BLOCK):
            cols = slice(start, min(start + PROJECTION_BLOCK, h))
            yb = y[:, cols]
            rhs = np.asarray(self.A @ yb)
            if v is not None:
                rhs[self.position[na : na + k]] -= v[:, cols]
            lam = self._multipliers(rhs)
            At_lam = np.asarray(self.A.T @ lam)
            fitted = yb - self.d[:, None] * At_lam - self.U @ (self.G.T @ lam)
            b[:, cols] = fitted[self.bot]
            if nu is not None:
                nu[self._held, cols] = -lam[self.position[na + k :]]
        return b

    def solve(
        self, y: np.ndarray, free: np.ndarray, C: sp.csr_matrix, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Minimise with b[~free] = 0 and C b = v; return (b, bound multipliers nu)."""
        h = y.shape[1]
        if self.A_s.shape[0] + C.shape[0] + int((~free).sum()) == 0:
            return y[self.bot].copy(), np.zeros((self.m, h))
        self._factor(free, C)
        nu = np.zeros((self.m, h))
        b = self._project(y, v, nu)
        b[self._held] = 0.0
        return b, nu

    def _held_rows(self, H: np.ndarray) -> np.ndarray | None:
        """``Sigma[H, bottoms]`` (|H| x m), Sigma the covariance of the locked projection.

        ``Sigma = W - W A' (A W A')^-1 A W`` with ``A`` the factored constraints (no
        bottom held): row ``j`` is the projection of ``W e_j`` with the locks at 0.
        Rows are kept (up to :data:`HELD_COLUMNS_MB`) for the next columns' bottoms.
        """
        cap = max(1, min(self.m, int(HELD_COLUMNS_MB * 1024**2 // (8 * self.m))))
        missing = H[self._slot[H] < 0]
        if self._n_held + missing.size > cap:
            self._slot[:] = -1
            self._n_held = 0
            missing = H
        if missing.size > cap:  # more held bottoms than the store holds
            return None
        if self._store.shape[0] < self._n_held + missing.size:
            grown = np.empty(
                (min(cap, max(2 * self._store.shape[0], self._n_held + missing.size)), self.m)
            )
            grown[: self._n_held] = self._store[: self._n_held]
            self._store = grown
        for start in range(0, missing.size, PROJECTION_BLOCK):
            part = missing[start : start + PROJECTION_BLOCK]
            slots = self._n_held + np.arange(part.size)
            self._store[slots] = self._sigma(part).T
            self._slot[part] = slots
            self._n_held += part.size
        return self._store[self._slot[H]]

    def _sigma(self, J: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """``Sigma[bottoms, J]`` (m x |J|), or ``Sigma[bottoms, J] @ weights`` (m x 1)."""
        rows = self.bot[J]
        if weights is None:
            We = self.U @ self.U[rows].T  # W e_j in node space, j in J
            We[rows, np.arange(J.size)] += self.d[rows]
        else:
            We = self.U @ (self.U[rows].T @ weights)[:, None]
            We[rows, 0] += self.d[rows] * weights
        return self._project(We, None)

    def _condition(self, b0: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``b0`` conditioned on ``b_H = 0``, and the multipliers, in O(|H|^2 + n block) memory."""
        rows = self._held_rows(H)
        if rows is not None:
            lam = _solve_symmetric(rows[:, H], b0[H])
            return b0 - lam @ rows, lam
        blocks = [H[i : i + PROJECTION_BLOCK] for i in range(0, H.size, PROJECTION_BLOCK)]
        Shh = np.hstack([self._sigma(J)[H] for J in blocks])
        lam = _solve_symmetric(Shh, b0[H])
        return b0 - self._sigma(H, lam)[:, 0], lam

    def release(self) -> None:
        """Let go of the held-bottom columns (the factor is kept)."""
        self._scratch = None
        self._store = np.empty((0, self.m))
        self._slot = np.full(self.m, -1)
        self._n_held = 0

    def nonnegative(
        self, b0: np.ndarray, C: sp.csr_matrix, v: np.ndarray
    ) -> tuple[np.ndarray, int, bool]:
        """:func:`_active_set` on one column without a new factorisation per step.

        Holding bottoms ``H`` at 0 conditions the locked solution ``b0`` (m,) on
        ``b_H = 0``: ``b = b0 - Sigma[:, H] Sigma[H, H]^-1 b0[H]``, the bound multipliers
        ``nu_H = -Sigma[H, H]^-1 b0[H]`` (the block elimination of the zero-constrained
        system with the held rows added), so each step is an (|H| x |H|) solve on
        rows of :meth:`_held_rows`, computed once for all the columns that hold
        the same bottom. ``C`` the independent locked rows, ``v`` (k,) their values.
        """
        self._factor(np.ones(self.m, dtype=bool), C)
        supports = [C[i].indices for i in range(C.shape[0])]

        def step(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            H = np.flatnonzero(active)
            nu = np.zeros(self.m)
            if not H.size:
                return b0.copy(), nu
            b, lam = self._condition(b0, H)
            b[H] = 0.0
            nu[H] = -lam
            return b, nu

        return _active_set(b0, supports, v, step)


def _solve_symmetric(M: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``M^-1 r`` for a symmetric positive semi-definite ``M`` (least squares if singular)."""
    try:
        return sla.cho_solve(sla.cho_factor(M, lower=True), r)
    except np.linalg.LinAlgError:
        return sla.lstsq(M, r, cond=1e-12)[0]


def _independent_locks(
    S: sp.csr_matrix, rows: np.ndarray, values: np.ndarray, labels: list[str], step: str
) -> np.ndarray:
    """Drop locks implied by others; raise InfeasibleError when they contradict.

    ``values`` is (k,) for one horizon step. Returns the positions (into ``rows``)
    of an independent subset.
    """
    C = S[rows].toarray()
    size = C.sum(1)
    if np.any(size == 0):
        raise ParameterError("a locked node has no bottom series")
    # Scale rows so that small nodes come first in the pivoted QR: a parent locked
    # together with all its children is then the dependent one the message names.
    scale = 1.0 / size
    Q, R, piv = sla.qr((C * scale[:, None]).T, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    rank = int((d > d.max() * 1e-10).sum()) if d.size else 0
    ind, dep = piv[:rank], piv[rank:]
    if dep.size:
        coef = sla.solve_triangular(R[:rank, :rank], R[:rank, rank:])
        for j, col in enumerate(dep):
            # c_dep * s_dep = sum_i coef_i * c_i * s_i  ->  c_dep = sum_i coef_i * s_i / s_dep * c_i
            a = coef[:, j] * scale[ind] / scale[col]
            implied = float(a @ values[ind])
            given = float(values[col])
            tol = _REL_TOL * (1.0 + abs(given) + float(np.abs(a * values[ind]).sum()))
            if abs(implied - given) > tol:
                terms = []
                order = np.argsort(ind)
                for ai, vi, i in zip(a[order], values[ind][order], ind[order], strict=True):
                    if abs(ai) < 1e-9:
                        continue
                    ar = round(ai) if abs(ai - round(ai)) < 1e-8 else ai
                    sign = "-" if ar < 0 else "+"
                    mult = "" if abs(ar) == 1 else f"{abs(ar):g} * "
                    terms.append(f"{sign} {mult}{labels[i]} ({vi:,.2f})")
                expr = " ".join(terms).lstrip("+ ").strip()
                if expr.startswith("- "):
                    expr = "-" + expr[2:]
                raise InfeasibleError(
                    f"locked values contradict each other at {step}: {labels[col]} is locked at "
                    f"{given:,.2f} but {expr} = {implied:,.2f}; change or unlock one of these nodes"
                )
    return np.sort(ind)


def _check_nonnegative_feasible(
    S: sp.csr_matrix, rows: np.ndarray, values: np.ndarray, labels: list[str], step: str
) -> None:
    neg = np.flatnonzero(values < 0)
    if neg.size:
        i = neg[0]
        raise InfeasibleError(
            f"{labels[i]} is locked at {values[i]:,.2f} at {step}, but non-negative forecasts "
            f"cannot add up to a negative amount; lock a value >= 0 or pass nonnegative=False"
        )
    C = S[rows]
    res = linprog(np.zeros(S.shape[1]), A_eq=C, b_eq=values, bounds=(0, None), method="highs")
    if res.status == 0:
        return
    sets = [set(C[i].indices) for i in range(C.shape[0])]
    for p in np.argsort([-len(s) for s in sets]):
        inside = [i for i in range(len(sets)) if i != p and sets[i] < sets[p]]
        inside.sort(key=lambda i: -len(sets[i]))
        chosen, covered = [], set()
        for i in inside:
            if not (sets[i] & covered):
                chosen.append(i)
                covered |= sets[i]
        total = float(values[chosen].sum()) if chosen else 0.0
        if chosen and total > values[p] * (1 + _REL_TOL) + _REL_TOL:
            parts = " + ".join(f"{labels[i]} ({values[i]:,.2f})" for i in chosen)
            raise InfeasibleError(
                f"locked values cannot hold with non-negative forecasts at {step}: "
                f"{labels[p]} is locked at {values[p]:,.2f} but the locked nodes under it, "
                f"{parts}, add up to {total:,.2f}; change or unlock one of these nodes"
            )
    raise InfeasibleError(
        f"locked values cannot hold with non-negative forecasts at {step}: "
        f"{', '.join(f'{labels[i]} = {values[i]:,.2f}' for i in range(len(labels)))}; "
        f"change or unlock some of these nodes, or pass nonnegative=False"
    )


def _active_set(
    b0: np.ndarray,
    supports: list[np.ndarray],
    v: np.ndarray,
    step: Any,
) -> tuple[np.ndarray, int, bool]:
    """Bottom forecasts >= 0 for one horizon step, by a primal-dual active-set method.

    Hintermueller, Ito and Kunisch (2002): the active set (bottoms held at 0) is
    the set where ``nu - b > 0``, ``nu`` the bound multipliers; each step solves
    the equality-constrained problem with the active bottoms held at 0
    (``step(active) -> (b, nu)``). It stops when the set repeats itself, which is
    the optimum of the convex QP. A cycle falls back to moving the single most
    violated index. ``b0`` (m,) is the solution without bounds, ``supports`` the
    bottoms under each independent lock and ``v`` (k,) their values.
    """
    m = b0.shape[0]
    tol = 1e-10
    b, nu = b0, np.zeros(m)
    active = np.zeros(m, dtype=bool)
    seen: set[bytes] = {np.packbits(active).tobytes()}
    for it in range(1, NONNEGATIVE_MAX_ITER + 1):
        new_active = (active & (nu >= -tol)) | (~active & (b < -tol))
        if np.array_equal(new_active, active):
            return b, it - 1, True
        key = np.packbits(new_active).tobytes()
        if key in seen:
            new_active = active.copy()
            viol_b = np.where(~active, -b, -np.inf)
            viol_nu = np.where(active, -nu, -np.inf)
            if viol_b.max() >= viol_nu.max():
                new_active[int(np.argmax(viol_b))] = True
            else:
                new_active[int(np.argmax(viol_nu))] = False
        for i, sup in enumerate(supports):
            if v[i] > 0 and new_active[sup].all():
                new_active[sup] = False  # a positive lock needs a free bottom under it
        seen.add(np.packbits(new_active).tobytes())
        active = new_active
        b, nu = step(active)
        nu[~active] = 0.0
    return b, NONNEGATIVE_MAX_ITER, False


def _nonnegative_column(
    obj: _Objective | _LowRankProjection,
    y: np.ndarray,
    C: sp.csr_matrix,
    v: np.ndarray,
    b0: np.ndarray,
) -> tuple[np.ndarray, int, bool]:
    """:func:`_active_set` for one horizon step, each step a new solve of ``obj``.

    ``y`` (n x 1), ``C`` the independent locked rows of ``S``, ``v`` (k x 1) their
    values, ``b0`` the solution without bounds (m x 1). The low-rank solver conditions
    its solution on the held bottoms instead (:meth:`_LowRankProjection.nonnegative`)
    when at most :data:`HELD_CONDITIONED_MAX` bottoms start below 0.
    """
    few = int((b0 < -1e-10).sum()) <= HELD_CONDITIONED_MAX
    if isinstance(obj, _LowRankProjection):
        if few:
            return obj.nonnegative(b0[:, 0], C, v[:, 0])
        obj = obj.scratch()  # the held rows factored in: not on the conditioning's factor
    supports = [C[i].indices for i in range(C.shape[0])]

    def step(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows_used = np.arange(C.shape[0])
        if C.shape[0]:
            masked = sp.csr_matrix(C.multiply((~active)[None, :]))
            keep = np.flatnonzero(np.diff(masked.indptr) > 0)
            try:
                labels = [str(i) for i in range(C.shape[0])]
                rows_used = keep[_independent_locks(masked, keep, v[keep, 0], labels, "")]
            except InfeasibleError:
                for sup in supports:  # this active set contradicts the locks
                    active[sup] = False
        bb, nn = obj.solve(y, ~active, C[rows_used], v[rows_used])
        return bb[:, 0], nn[:, 0]

    return _active_set(b0[:, 0], supports, v[:, 0], step)


def _active_set_many(b0: np.ndarray, step_many: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_active_set` on many columns without locks at once, each on its own path.

    The columns move in lockstep: each iteration applies :func:`_active_set`'s rule to
    every column not yet settled (the same tolerance, cycle rule and iteration limit,
    so each column takes the steps it would alone) and solves them together
    (``step_many(active, cols) -> (b, nu)``, ``active`` (m x len(cols)) and ``cols``
    their positions). ``b0`` (m x k) the solutions without bounds. Returns the (m x k)
    solutions, the iterations of each column and whether each converged.
    """
    m, k = b0.shape
    tol = 1e-10
    b, nu = b0.copy(), np.zeros((m, k))
    active = np.zeros((m, k), dtype=bool)
    seen = [{np.packbits(active[:, j]).tobytes()} for j in range(k)]
    iters = np.full(k, NONNEGATIVE_MAX_ITER)
    converged = np.zeros(k, dtype=bool)
    todo = np.arange(k)
    for it in range(1, NONNEGATIVE_MAX_ITER + 1):
        a = active[:, todo]
        new_active = (a & (nu[:, todo] >= -tol)) | (~a & (b[:, todo] < -tol))
        same = (new_active == a).all(axis=0)
        iters[todo[same]] = it - 1
        converged[todo[same]] = True
        new_active, todo = new_active[:, ~same], todo[~same]
        if not todo.size:
            break
        for i, j in enumerate(todo):
            if np.packbits(new_active[:, i]).tobytes() in seen[j]:  # a cycle: one index moves
                col = active[:, j].copy()
                viol_b = np.where(~active[:, j], -b[:, j], -np.inf)
                viol_nu = np.where(active[:, j], -nu[:, j], -np.inf)
                if viol_b.max() >= viol_nu.max():
                    col[int(np.argmax(viol_b))] = True
                else:
                    col[int(np.argmax(viol_nu))] = False
                new_active[:, i] = col
            seen[j].add(np.packbits(new_active[:, i]).tobytes())
        active[:, todo] = new_active
        bb, nn = step_many(new_active, todo)
        nn[~new_active] = 0.0
        b[:, todo], nu[:, todo] = bb, nn
    return b, iters, converged


def _dense_free_solves(
    obj: _Objective, b0: np.ndarray, active: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The dense objective's solutions, each column's active bottoms held at 0.

    Holding bottoms ``H`` at 0 conditions the free solution ``b0 = A^-1 g`` (``g =
    (W^-1 S)' y``, as :meth:`_Objective.solve` gives it without locks or bounds) on
    ``b_H = 0``: ``b = b0 - A^-1[:, H] lam`` with ``A^-1[H, H] lam = b0[H]``, the bound
    multipliers ``nu_H = -lam`` (the block elimination of the KKT system with the held
    rows added; the same step as :meth:`_LowRankProjection.nonnegative` on the dense
    covariance). ``A^-1`` is computed once (:meth:`_Objective.inverse`) and ``b0`` is
    the caller's (the active set's every iteration conditions the same one), so a
    column costs an ``(|H| x |H|)`` solve and an ``(m x |H|)`` product instead of an
    ``(m x m)`` factorisation. Returns ``b`` and the bound multipliers (0 at the free
    bottoms).
    """
    Ai = obj.inverse()
    b = np.array(b0, dtype=float)
    nu = np.zeros_like(b)
    for j in np.flatnonzero(active.any(axis=0)):
        H = np.flatnonzero(active[:, j])
        lam = _solve_symmetric(Ai[np.ix_(H, H)], b[H, j])
        b[:, j] -= Ai[:, H] @ lam
        b[H, j] = 0.0
        nu[H, j] = -lam
    return b, nu


def _solve_gls(
    S: sp.csr_matrix,
    W: np.ndarray | LowRankCovariance,
    y_hat: np.ndarray,
    locked: dict[int, np.ndarray],
    nonnegative: bool,
    labels: Any,
    steps: list[str],
    info: dict,
    bottom_rows: np.ndarray,
) -> np.ndarray:
    """Reconciled bottom forecasts (n_bottom x h) of the (locked, bounded) GLS."""
    n, m = S.shape
    h = y_hat.shape[1]
    ys = float(np.nanmax(np.abs(y_hat))) if y_hat.size else 1.0
    ys = ys if ys > 0 else 1.0
    y = y_hat / ys
    obj = _objective(S, W, bottom_rows)
    lock_rows = np.array(sorted(locked), dtype=int)
    L = np.vstack([locked[i] for i in lock_rows]) / ys if lock_rows.size else np.zeros((0, h))
    patterns: dict[tuple[int, ...], list[int]] = {}
    for t in range(h):
        patterns.setdefault(tuple(lock_rows[np.isfinite(L[:, t])]), []).append(t)
    b = np.zeros((m, h))
    iters, converged = 0, True
    for pattern, cols in patterns.items():
        rows = np.array(pattern, dtype=int)
        pos = np.searchsorted(lock_rows, rows)
        lab = [labels(i) for i in rows]
        ind = np.zeros(0, dtype=int)
        checked: set[bytes] = set()  # sample paths repeat each month's lock values
        for t in cols if rows.size else ():
            if L[pos, t].tobytes() in checked:
                continue
            checked.add(L[pos, t].tobytes())
            ind = _independent_locks(S, rows, L[pos, t] * ys, lab, steps[t])
            if nonnegative:
                _check_nonnegative_feasible(S, rows, L[pos, t] * ys, lab, steps[t])
        C = S[rows[ind]] if rows.size else sp.csr_matrix((0, m))
        V = L[pos[ind]][:, cols] if rows.size else np.zeros((0, len(cols)))
        bb, _ = obj.solve(y[:, cols], np.ones(m, dtype=bool), C, V)
        b[:, cols] = bb
        neg = np.flatnonzero((bb < -1e-10).any(axis=0)) if nonnegative else np.zeros(0, int)
        dense = isinstance(obj, _Objective) and not obj.diagonal
        if neg.size and NONNEGATIVE_BATCH and dense and not C.shape[0]:
            # no locks, dense weights: every column's active set at once (the same steps)
            t_neg = np.asarray(cols)[neg]
            # One BLAS thread: the stacked solves' last bits would otherwise follow the
            # machine's thread count. (A sampled band, drawn and reconciled wholly on one
            # thread by sample_reconciled, is the same here and on a cluster's workers; a
            # point reconciliation's free solution bb follows the caller's thread count.)
            with threadpool_limits(1, user_api="blas"):
                free = bb[:, neg]
                got, it, ok = _active_set_many(
                    free, lambda act, j, b0=free: _dense_free_solves(obj, b0[:, j], act)
                )
            b[:, t_neg] = got
            iters += int(it.sum())
            converged &= bool(ok.all())
        else:
            for j in neg:
                t = cols[j]
                bt, it, ok = _nonnegative_column(obj, y[:, [t]], C, V[:, [j]], bb[:, [j]])
                iters += it
                converged &= ok
                b[:, t] = bt
    if isinstance(obj, _LowRankProjection):
        info["factor_nnz"] = obj.factor_nnz
        obj.release()
    if nonnegative:
        b = np.maximum(b, 0.0)  # rounding-level negatives only
        info["nonnegative_iterations"] = iters
        info["nonnegative_converged"] = bool(converged)
    return b * ys


# --------------------------------------------------------------------------- reconcilers


def _prepare(
    y_hat: np.ndarray, hierarchy: Hierarchy | sp.spmatrix | np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    S = _summing_matrix(hierarchy)
    y = np.asarray(y_hat, dtype=float)
    one_d = y.ndim == 1
    if one_d:
        y = y[:, None]
    if y.shape[0] != S.shape[0]:
        raise ParameterError(
            f"y_hat has {y.shape[0]} rows but the hierarchy has {S.shape[0]} nodes; pass base "
            f"forecasts for every node (n_nodes x horizon), in the hierarchy's node order"
        )
    if not np.isfinite(y).all():
        bad = np.flatnonzero(~np.isfinite(y).all(1))
        raise ParameterError(
            f"y_hat has NaN or infinite base forecasts for node(s) {bad[:10].tolist()}; fill them "
            f"(e.g. with the sum of the bottom forecasts) before reconciling"
        )
    return S, y, np.array(one_d)


def _bottom_rows(S: sp.csr_matrix, hierarchy: Any) -> np.ndarray:
    if isinstance(hierarchy, Hierarchy):
        return hierarchy.bottom
    n, m = S.shape
    single = np.flatnonzero(np.diff(S.indptr) == 1)
    pos = {int(S.indices[S.indptr[i]]): int(i) for i in single[::-1]}
    if len(pos) != m:
        raise ParameterError("the summing matrix has no identity row for every bottom series")
    return np.array([pos[j] for j in range(m)])


def _labeller(hierarchy: Any) -> Any:
    if isinstance(hierarchy, Hierarchy):
        return hierarchy.label
    return lambda i: f"node {i}"


def _resolve_locks(hierarchy: Any, locked: Mapping | None, n: int, h: int) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for key, values in (locked or {}).items():
        if isinstance(key, (int, np.integer)):
            idx = int(key)
        elif isinstance(hierarchy, Hierarchy):
            if isinstance(key, str):
                key = (key, ())
            idx = hierarchy.index(key[0], key[1] if len(key) > 1 else ())
        else:
            raise ParameterError(
                f"locked node {key!r}: with a plain summing matrix, lock nodes by row index"
            )
        if not 0 <= idx < n:
            raise ParameterError(f"locked node index {idx} is outside 0..{n - 1}")
        arr = np.broadcast_to(np.asarray(values, dtype=float), (h,)).astype(float)
        if np.isinf(arr).any():
            raise ParameterError(f"locked values for node {idx} must be finite (NaN = not locked)")
        if idx in out:
            raise ParameterError(f"node {idx} is locked twice")
        out[idx] = arr
    return out


def _finish(
    S: sp.csr_matrix, b: np.ndarray, locks: dict[int, np.ndarray], one_d: np.ndarray
) -> np.ndarray:
    y = np.asarray(S @ b)
    for i, v in locks.items():
        ok = np.isfinite(v)
        y[i, ok] = v[ok]  # exact as committed (the solve matches them to rounding)
    return y[:, 0] if one_d else y


class BottomUp:
    """Reconcile by adding up the bottom-level base forecasts.

    Parameters
    ----------
    nonnegative : bool
        Clip negative bottom forecasts to 0 before adding up.

    Examples
    --------
    >>> import numpy as np
    >>> S = np.array([[1, 1], [1, 0], [0, 1]])  # a total over two bottom series
    >>> y_hat = np.array([[10.0], [4.0], [5.0]])  # base forecasts: 4 + 5 is not 10
    >>> y, info = BottomUp().reconcile(y_hat, S)
    >>> y.ravel().tolist(), info["method"]
    ([9.0, 4.0, 5.0], 'bottom_up')
    """

    method = "bottom_up"

    def __init__(self, nonnegative: bool = False):
        self.nonnegative = nonnegative

    def reconcile(
        self,
        y_hat: np.ndarray,
        hierarchy: Hierarchy | sp.spmatrix | np.ndarray,
        residuals: np.ndarray | None = None,
        locked: Mapping | None = None,
    ) -> tuple[np.ndarray, dict]:
        """Coherent forecasts for every node (n_nodes x h) and an info dict.

        Locks are allowed on bottom nodes only (they replace the base forecast).
        """
        S, y, one_d = _prepare(y_hat, hierarchy)
        locks = _resolve_locks(hierarchy, locked, S.shape[0], y.shape[1])
        rows = _bottom_rows(S, hierarchy)
        b = y[rows].copy()
        where = {int(r): j for j, r in enumerate(rows)}
        for i, v in locks.items():
            if i not in where:
                raise ParameterError(
                    f"bottom_up cannot keep the aggregate node {_labeller(hierarchy)(i)} "
                    f"locked; use MinTrace (e.g. method='wls_struct') to reconcile around it"
                )
            ok = np.isfinite(v)
            b[where[i], ok] = v[ok]
        if self.nonnegative:
            b = np.maximum(b, 0.0)
        info = {"method": self.method, "requested_method": self.method, "fallback": None}
        return _finish(S, b, locks, one_d), info


class TopDown:
    """Reconcile by splitting the total with forecast proportions.

    Athanasopoulos, Ahmed and Hyndman (2009): each bottom series gets the
    total times the product, down a path of levels, of its node's share of
    the base forecasts of its siblings. The grouped hierarchy is walked along
    :data:`TOP_DOWN_PATH` (total -> segment -> region -> manager -> rep, per
    segment). A manager whose reps sell in several regions is split within
    each region by his whole forecast (an approximation of his share there).
    Negative base forecasts count as 0 in the shares; siblings that all
    forecast 0 share equally.

    Parameters
    ----------
    method : str
        Only ``"forecast_proportions"``.
    nonnegative : bool
        Clip a negative total to 0 (shares are never negative).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0], [3.0]]]])  # 1 segment x 1 region x 2 reps x 1 month
    >>> h = hierarchy_from_cube(da)
    >>> y_hat = to_nodes(h, da).values
    >>> y_hat[0] = 8.0  # the total's own forecast: twice the reps' 1 + 3
    >>> y, _ = TopDown().reconcile(y_hat, h)
    >>> y[h.bottom].ravel().tolist()  # 8 split 1 : 3
    [2.0, 6.0]
    """

    def __init__(self, method: str = "forecast_proportions", nonnegative: bool = False):
        if method != "forecast_proportions":
            raise ParameterError(
                f"TopDown method {method!r} is not available; use 'forecast_proportions'"
            )
        self.method_name = method
        self.nonnegative = nonnegative
        self.method = "top_down"

    def reconcile(
        self,
        y_hat: np.ndarray,
        hierarchy: Hierarchy,
        residuals: np.ndarray | None = None,
        locked: Mapping | None = None,
    ) -> tuple[np.ndarray, dict]:
        """Coherent forecasts for every node (n_nodes x h) and an info dict."""
        if not isinstance(hierarchy, Hierarchy):
            raise ParameterError(
                "TopDown needs a Hierarchy (its levels), not a bare summing matrix"
            )
        if locked:
            raise ParameterError(
                "top_down cannot keep locked nodes; use MinTrace (e.g. method='wls_struct')"
            )
        S, y, one_d = _prepare(y_hat, hierarchy)
        m, h = S.shape[1], y.shape[1]
        St = S.T.tocsr()
        # each bottom series sits in exactly one node per level
        node_of = {
            level: hierarchy.tags[level][St[:, hierarchy.tags[level]].tocsr().indices]
            for level in TOP_DOWN_PATH
        }
        share = np.ones((m, h))
        group = np.zeros(m, dtype=np.int64)
        for level in TOP_DOWN_PATH[1:]:
            node = node_of[level]
            child = pd.MultiIndex.from_arrays([group, node]).factorize()[0]
            # one representative bottom per (parent group, child node)
            first = np.unique(child, return_index=True)[1]
            weight = np.maximum(y[node[first]], 0.0)  # (n_child x h)
            parent_of_child = group[first]
            n_parent = int(group.max()) + 1
            denom = np.zeros((n_parent, h))
            np.add.at(denom, parent_of_child, weight)
            n_children = np.bincount(parent_of_child, minlength=n_parent)
            frac = np.where(
                denom[parent_of_child] > 0,
                weight / np.where(denom[parent_of_child] > 0, denom[parent_of_child], 1.0),
                1.0 / n_children[parent_of_child][:, None],
            )
            share *= frac[child]
            group = child
        total = y[hierarchy.tags["total"][0]]
        if self.nonnegative:
            total = np.maximum(total, 0.0)
        b = share * total[None, :]
        info = {"method": self.method, "requested_method": self.method, "fallback": None}
        return _finish(S, b, {}, one_d), info


class MinTrace:
    """Minimum-trace (MinT) reconciliation, optionally with locks and bounds.

    Solves ``min_b (y_hat - S b)' W^-1 (y_hat - S b)`` subject to
    ``S[locked] b = locked values`` and, if ``nonnegative``, ``b >= 0``; the
    result is ``S b``. Without constraints this is
    ``S (S' W^-1 S)^-1 S' W^-1 y_hat``.

    Parameters
    ----------
    method : {"ols", "wls_struct", "wls_var", "mint_shrink"}
        ``W``: identity; diag(S 1) (number of bottom series per node); the
        residual variances; the Schaefer-Strimmer shrunk residual covariance
        (:func:`shrunk_covariance`). ``mint_shrink`` above
        :data:`MINT_SHRINK_MAX_NODES` nodes holds it as diagonal plus low rank
        (same matrix, O(n T) memory) and says so in ``info["covariance"]``.
    nonnegative : bool
        Keep reconciled bottom forecasts >= 0 (and so every node).
    max_dense_nodes : int
        Node count up to which ``mint_shrink`` uses the dense covariance.

    Examples
    --------
    >>> import numpy as np
    >>> S = np.array([[1, 1], [1, 0], [0, 1]])  # a total over two bottom series
    >>> y_hat = np.array([[10.0], [4.0], [5.0]])  # base forecasts: 4 + 5 is not 10
    >>> y, info = MinTrace("ols").reconcile(y_hat, S)
    >>> y.ravel().round(4).tolist()  # the 1 missing is shared out: 1/3 each
    [9.6667, 4.3333, 5.3333]
    >>> y, _ = MinTrace("ols").reconcile(y_hat, S, locked={0: np.array([10.0])})
    >>> y.ravel().round(4).tolist()  # the total kept at 10
    [10.0, 4.5, 5.5]
    """

    METHODS = ("ols", "wls_struct", "wls_var", "mint_shrink")

    def __init__(
        self,
        method: str = "mint_shrink",
        nonnegative: bool = False,
        max_dense_nodes: int = MINT_SHRINK_MAX_NODES,
    ):
        if method not in self.METHODS:
            raise ParameterError(
                f"MinTrace method {method!r} is unknown; use one of {', '.join(self.METHODS)}"
            )
        self.method = method
        self.nonnegative = nonnegative
        self.max_dense_nodes = max_dense_nodes

    def weights(
        self, S: sp.csr_matrix, residuals: np.ndarray | None, info: dict
    ) -> np.ndarray | LowRankCovariance:
        """``W`` as a vector (diagonal), a dense matrix or diagonal + low rank; choices in ``info``."""
        n = S.shape[0]
        info.update(method=self.method, requested_method=self.method, fallback=None)
        if self.method == "ols":
            return np.ones(n)
        if self.method == "wls_struct":
            return np.asarray(S.sum(1), dtype=float).ravel()
        if residuals is None:
            raise ParameterError(
                f"MinTrace method {self.method!r} needs in-sample residuals for every node "
                f"(n_nodes x T); pass residuals= or use method='wls_struct'"
            )
        E = np.asarray(residuals, dtype=float)
        if E.ndim != 2 or E.shape[0] != n:
            raise ParameterError(
                f"residuals must be (n_nodes x T) = ({n} x T); got shape {E.shape}"
            )
        if self.method == "wls_var":
            return _floor_variance(residual_variance(E), info)
        if n > self.max_dense_nodes:
            low = shrunk_covariance_lowrank(E)
            info["shrinkage"] = low.shrinkage
            info["covariance"] = (
                f"diagonal + rank {low.U.shape[1]} (above {self.max_dense_nodes} nodes)"
            )
            _floor_variance(low.diagonal(), info)
            return low
        info["covariance"] = "dense"
        W, lam = shrunk_covariance(E)
        info["shrinkage"] = lam
        d = _floor_variance(np.diag(W).copy(), info)
        np.fill_diagonal(W, d)
        return W

    def cached_weights(
        self, S: sp.csr_matrix, residuals: np.ndarray | None, info: dict
    ) -> np.ndarray | LowRankCovariance:
        """:meth:`weights`, computed once for the same hierarchy and residuals.

        ``W`` does not depend on the base forecasts nor on locked values, so an app
        reconciling again after every forecast call reuses it (and its factorisation,
        :func:`_objective`).
        """
        key = (self.method, self.max_dense_nodes, _digest(S), _digest(residuals))
        found = _STRUCTURES.get(key)
        if found is None:
            found = (self.weights(S, residuals, added := {}), added)
            _remember(key, found)
        info.update(found[1])
        return found[0]

    def reconcile(
        self,
        y_hat: np.ndarray,
        hierarchy: Hierarchy | sp.spmatrix | np.ndarray,
        residuals: np.ndarray | None = None,
        locked: Mapping | None = None,
        steps: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, dict]:
        """Coherent forecasts for every node and an info dict.

        Parameters
        ----------
        y_hat : np.ndarray
            Base forecasts (n_nodes x h) or (n_nodes,) [units of the measure].
        hierarchy : Hierarchy or summing matrix (n_nodes x n_bottom)
        residuals : np.ndarray, optional
            In-sample residuals (n_nodes x T), for ``wls_var`` and ``mint_shrink``.
        locked : dict, optional
            ``{node: values}``: node index, or ``(level, key)`` with a Hierarchy
            (see :meth:`Hierarchy.index`); values a scalar or one per horizon
            step, NaN where the node is not locked.
        steps : sequence of str, optional
            Names of the horizon steps for error messages (e.g. months).

        Returns
        -------
        (np.ndarray, dict)
            Coherent forecasts with the shape of ``y_hat``; ``info`` with
            ``method`` (used), ``requested_method``, ``fallback`` (None or why),
            ``shrinkage``, and ``nonnegative_iterations`` / ``nonnegative_converged``.

        Raises
        ------
        InfeasibleError
            Locked values that contradict each other (or cannot hold with
            non-negative forecasts); the message names the nodes and amounts.
        """
        S, y, one_d = _prepare(y_hat, hierarchy)
        n, h = y.shape
        info: dict = {}
        W = self.cached_weights(S, residuals, info)
        locks = _resolve_locks(hierarchy, locked, n, h)
        labels = _labeller(hierarchy)
        steps = list(steps) if steps is not None else [f"horizon step {t + 1}" for t in range(h)]
        b = _solve_gls(
            S, W, y, locks, self.nonnegative, labels, steps, info, _bottom_rows(S, hierarchy)
        )
        info["locked_nodes"] = len(locks)
        return _finish(S, b, locks, one_d), info


def reconciler(
    method: str, nonnegative: bool = False, max_dense_nodes: int = MINT_SHRINK_MAX_NODES
) -> BottomUp | TopDown | MinTrace:
    """The reconciler for a method name of :data:`METHODS` (except ``"none"``).

    Parameters
    ----------
    method : str
        One of :data:`METHODS` but ``"none"``.
    nonnegative : bool
        Keep every reconciled forecast >= 0.
    max_dense_nodes : int
        For ``mint_shrink``: the node count up to which the covariance is dense
        (above it, diagonal plus low rank; :class:`MinTrace`).

    Returns
    -------
    BottomUp, TopDown or MinTrace
        The reconciler, with a ``reconcile(y_hat, hierarchy, residuals, locked)`` method.

    Examples
    --------
    >>> reconciler("mint_shrink", nonnegative=True).method
    'mint_shrink'
    >>> reconciler("magic")
    Traceback (most recent call last):
    ...
    revmodel.errors.ParameterError: unknown reconciliation method 'magic'; use one of bottom_up, top_down, ols, wls_struct, wls_var, mint_shrink, none
    """
    if method == "bottom_up":
        return BottomUp(nonnegative=nonnegative)
    if method == "top_down":
        return TopDown(nonnegative=nonnegative)
    if method in MinTrace.METHODS:
        return MinTrace(method, nonnegative=nonnegative, max_dense_nodes=max_dense_nodes)
    raise ParameterError(
        f"unknown reconciliation method {method!r}; use one of {', '.join(METHODS)}"
    )


# --------------------------------------------------------------------------- cube entry point


def _month_labels(months: np.ndarray) -> list[str]:
    try:
        return [f"month {pd.Timestamp(m):%Y-%m}" for m in months]
    except (TypeError, ValueError):
        return [f"month {m}" for m in months]


def locks_from_frame(hierarchy: Hierarchy, frame: pd.DataFrame, months: Sequence) -> dict:
    """Locks from a table with columns ``level``, the level's key fields, ``month``, ``value``.

    Key fields a level does not use may be absent or ``"*"``. Months missing
    for a node stay unlocked.

    Parameters
    ----------
    hierarchy : Hierarchy
        The hierarchy the locks refer to.
    frame : pd.DataFrame
        One row per locked node and month: ``level``, the level's key fields
        (``segment``, ``region``, ``manager``, ``rep``), ``month`` and ``value`` [units].
    months : sequence of date-like
        The forecast months.

    Returns
    -------
    dict
        Node index -> (len(months),) values, NaN where not locked [units].

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> table = pd.DataFrame({"level": ["manager"], "manager": ["M1"],
    ...                       "month": ["2026-02-01"], "value": [12.0]})
    >>> locks = locks_from_frame(h, table, da["month"].values)
    >>> {h.label(i): v.tolist() for i, v in locks.items()}
    {'manager=M1': [nan, 12.0]}
    """
    need = {"level", "month", "value"}
    missing = sorted(need - set(frame.columns))
    if missing:
        raise ParameterError(
            f"the locks table lacks column(s) {missing}; it needs level, the "
            f"level's key fields (segment, region, manager, rep), month and value"
        )
    month_index = pd.Index(pd.to_datetime(np.asarray(months)))
    out: dict[int, np.ndarray] = {}
    for row_no, row in enumerate(frame.itertuples(index=False)):
        r = row._asdict()
        level = r["level"]
        if level not in LEVEL_FIELDS:
            raise ParameterError(
                f"locks table row {row_no}: unknown level {level!r}; use one of {', '.join(LEVEL_FIELDS)}"
            )
        key = {}
        for f in LEVEL_FIELDS[level]:
            if f not in r or pd.isna(r[f]) or r[f] == ALL:
                raise ParameterError(
                    f"locks table row {row_no}: level {level!r} needs column {f!r}"
                )
            key[f] = r[f]
        idx = hierarchy.index(level, key)
        pos = month_index.get_indexer([pd.Timestamp(r["month"])])[0]
        if pos < 0:
            raise ParameterError(
                f"locks table row {row_no}: month {r['month']} is not in the forecast months "
                f"({month_index[0]:%Y-%m} to {month_index[-1]:%Y-%m})"
            )
        arr = out.setdefault(idx, np.full(len(month_index), np.nan))
        arr[pos] = float(r["value"])
    return out


def _locks_for_cube(
    hierarchy: Hierarchy, locked: Mapping | pd.DataFrame | None, months: np.ndarray
) -> dict[int, np.ndarray]:
    if locked is None:
        return {}
    if isinstance(locked, pd.DataFrame):
        return locks_from_frame(hierarchy, locked, months)
    out: dict[int, np.ndarray] = {}
    h = len(months)
    for key, values in locked.items():
        if isinstance(key, (int, np.integer)):
            idx = int(key)
        else:
            if isinstance(key, str):
                key = (key, ())
            idx = hierarchy.index(key[0], key[1] if len(key) > 1 else ())
        if isinstance(values, xr.DataArray):
            values = values.reindex(month=months).values
        elif isinstance(values, pd.Series):
            values = values.reindex(pd.to_datetime(np.asarray(months))).to_numpy()
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 0:
            arr = np.full(h, float(arr))
        if arr.shape != (h,):
            raise ParameterError(
                f"locked values for {hierarchy.label(idx)} have {arr.size} entries; give one per "
                f"forecast month ({h}), NaN where not locked, or a scalar"
            )
        out[idx] = arr
    return out


def reconcile_cube(
    forecast: xr.DataArray,
    method: str = "mint_shrink",
    residuals: xr.DataArray | np.ndarray | None = None,
    nonnegative: bool = True,
    locked: Mapping | pd.DataFrame | None = None,
    node_forecasts: xr.DataArray | np.ndarray | None = None,
    hierarchy: Hierarchy | None = None,
) -> tuple[xr.DataArray, dict]:
    """Reconcile a cube forecast so that every level of the hierarchy adds up.

    Parameters
    ----------
    forecast : xr.DataArray
        Base forecast with dims (``segment``, ``region``, ``rep``, ``month``)
        [units of the measure, e.g. USD/month]; numpy- or dask-backed. Other
        dims (e.g. ``scenario``) are reconciled slice by slice.
    method : str
        One of :data:`METHODS`; ``"none"`` returns the bottom forecast as is.
    residuals : xr.DataArray or np.ndarray, optional
        In-sample residuals per node, dims (``node``, time) in hierarchy order
        (n_nodes x T), for ``wls_var`` / ``mint_shrink``.
    nonnegative : bool
        Keep every reconciled forecast >= 0 (ignored by ``"none"``).
    locked : dict or pd.DataFrame, optional
        Committed values kept exactly. A dict keyed by ``(level, key)``, e.g.
        ``{("manager", "M03"): [...], ("region/segment", ("EMEA", "SMB")): 1e6,
        ("total", ()): series}`` with values a scalar, one per month (NaN =
        not locked), a pd.Series indexed by month or a DataArray over month;
        or a table with columns ``level``, the level's key fields, ``month``,
        ``value`` (see :func:`locks_from_frame`).
    node_forecasts : xr.DataArray or np.ndarray, optional
        Base forecasts for every node (dims ``node``, ``month``; n_nodes x h in
        hierarchy order, as :func:`to_nodes` lays them out). Finite values win
        over ``forecast``; NaN rows fall back to the sum of the bottom forecasts.
    hierarchy : Hierarchy, optional
        Default: :func:`hierarchy_from_cube` of ``forecast`` (cells with a
        non-zero forecast). Pass the hierarchy of the history cube to keep the
        node order of ``node_forecasts`` and ``residuals``.

    Returns
    -------
    (xr.DataArray, dict)
        The coherent bottom forecast in the dims and coords of ``forecast``
        (cells outside the hierarchy are 0), and ``info``: the reconciler's
        info plus ``hierarchy``, ``reconciled_nodes`` (DataArray node x month),
        ``filled_nodes`` and ``dropped_cells`` / ``dropped_amount``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> base = da.copy(data=da.values * 1.1)
    >>> out, info = reconcile_cube(base, method="ols", locked={("total", ()): 5.0})
    >>> out.sum(["segment", "region", "rep"]).values.round(6)  # the total kept at 5
    array([5., 5.])
    >>> info["method"]
    'ols'
    """
    _check_forecast(forecast, method)
    if hierarchy is None:
        hierarchy = hierarchy_from_cube(forecast)
    cube = _CubeForecast.of(forecast, hierarchy)
    info: dict = {"hierarchy": hierarchy, **cube.dropped(hierarchy)}
    b_hat = cube.bottom_base(hierarchy)
    y_hat = np.asarray(hierarchy.S @ b_hat)
    filled = 0
    if node_forecasts is not None:
        nf = _node_base(node_forecasts, hierarchy, cube, y_hat.shape[1])
        missing = ~np.isfinite(nf)
        filled = int(missing.all(1).sum())
        y_hat = np.where(missing, y_hat, nf)
    info["filled_nodes"] = filled
    residuals = _residual_matrix(residuals)
    locks = _locks_for_cube(hierarchy, locked, cube.months)
    if method == "none":
        if locks:
            raise ParameterError(
                "method='none' cannot keep locked nodes; choose a reconciliation method"
            )
        y_tilde = y_hat
        info.update(method="none", requested_method="none", fallback=None)
        bottom = b_hat  # the bottom forecast as given, node forecasts aside
    else:
        y_tilde, rinfo = _reconcile_columns(
            reconciler(method, nonnegative=nonnegative), y_hat, hierarchy, residuals, locks, cube
        )
        info.update(rinfo)
        bottom = y_tilde[hierarchy.bottom]
    result = cube.with_bottom(bottom, hierarchy, forecast)
    result.attrs["reconciliation"] = info["method"]
    info["reconciled_nodes"] = cube.nodes_array(y_tilde, hierarchy, forecast)
    return result, info


def _check_forecast(forecast: xr.DataArray, method: str) -> None:
    """Raise a clear error for an unknown method or a forecast without cell and month dims."""
    if method not in METHODS:
        raise ParameterError(
            f"unknown reconciliation method {method!r}; use one of {', '.join(METHODS)}"
        )
    _check_cell_dims(forecast, "the forecast")
    if "month" not in forecast.dims:
        raise DataError("the forecast has no 'month' dimension; reconcile_cube needs one")


@dataclass(frozen=True)
class _CubeForecast:
    """A cube forecast laid out for reconciliation: cells by columns of (month x other dims).

    Attributes
    ----------
    fc : xr.DataArray
        The forecast transposed to (segment, region, rep, month, *extra).
    months : np.ndarray
        The forecast months.
    extra : tuple of str
        Dims other than the cell dims and month (e.g. ``scenario``), reconciled slice by slice.
    flat : np.ndarray
        (n_segment, n_region, n_rep, h * n_extra) values, NaN as 0, month-major.
    """

    fc: xr.DataArray
    months: np.ndarray
    extra: tuple[str, ...]
    flat: np.ndarray

    @classmethod
    def of(cls, forecast: xr.DataArray, hierarchy: Hierarchy) -> _CubeForecast:
        """Lay ``forecast`` out; an error when the hierarchy's cells fall outside it."""
        extra = tuple(d for d in forecast.dims if d not in (*CELL_DIMS, "month"))
        fc = forecast.transpose(*CELL_DIMS, "month", *extra)
        values = np.nan_to_num(np.asarray(fc.values, dtype=float))
        c = hierarchy.cells
        if c.size and (c.max(0) >= np.array(values.shape[:3])).any():
            raise ParameterError(
                "the hierarchy does not match the forecast's segment/region/rep coords"
            )
        flat = values.reshape(*values.shape[:3], -1)
        return cls(fc, np.asarray(fc["month"].values), extra, flat)

    @property
    def n_extra(self) -> int:
        """Columns per month: the product of the extra dims' sizes."""
        return self.flat.shape[-1] // len(self.months)

    def bottom_base(self, hierarchy: Hierarchy) -> np.ndarray:
        """(n_bottom x columns) base forecasts of the hierarchy's bottom cells."""
        c = hierarchy.cells
        return self.flat[c[:, 0], c[:, 1], c[:, 2]]

    def dropped(self, hierarchy: Hierarchy) -> dict:
        """Cells outside the hierarchy that carry a forecast, and the amount they carry."""
        c = hierarchy.cells
        inside = np.zeros(self.flat.shape[:3], dtype=bool)
        inside[c[:, 0], c[:, 1], c[:, 2]] = True
        outside = self.flat[~inside]
        return {
            "dropped_cells": int((np.abs(outside).sum(-1) > 0).sum()),
            "dropped_amount": float(outside.sum()),
        }

    def with_bottom(
        self, bottom: np.ndarray, hierarchy: Hierarchy, forecast: xr.DataArray
    ) -> xr.DataArray:
        """The reconciled bottom values in the dims, coords and attrs of ``forecast``; 0 elsewhere."""
        c = hierarchy.cells
        out = np.zeros_like(self.flat)
        out[c[:, 0], c[:, 1], c[:, 2]] = bottom
        result = self.fc.copy(data=out.reshape(self.fc.shape)).transpose(*forecast.dims)
        result.attrs = dict(forecast.attrs)
        return result

    def nodes_array(
        self, y_tilde: np.ndarray, hierarchy: Hierarchy, forecast: xr.DataArray
    ) -> xr.DataArray:
        """Every node's reconciled values as a DataArray (node, month, *extra) with node coords."""
        nodes_da = xr.DataArray(
            y_tilde.reshape(hierarchy.n_nodes, *self.fc.shape[3:]),
            dims=("node", "month", *self.extra),
            coords={"month": self.months, **{d: self.fc[d].values for d in self.extra}},
            name=forecast.name,
            attrs=dict(forecast.attrs),
        )
        return _with_node_coords(hierarchy, nodes_da, np.arange(hierarchy.n_nodes))


def _node_base(
    node_forecasts: xr.DataArray | np.ndarray,
    hierarchy: Hierarchy,
    cube: _CubeForecast,
    columns: int,
) -> np.ndarray:
    """(n_nodes x columns) base forecasts given per node, NaN where a node has none."""
    nf = node_forecasts
    if isinstance(nf, xr.DataArray):
        if "node" not in nf.dims:
            raise ParameterError(
                "node_forecasts needs a 'node' dim (n_nodes x month), as to_nodes builds"
            )
        if "month" in nf.dims:
            nf = nf.reindex(month=cube.months)
        nf = nf.transpose("node", *[d for d in ("month", *cube.extra) if d in nf.dims]).values
    nf = np.asarray(nf, dtype=float)
    nf = nf.reshape(nf.shape[0], -1) if nf.ndim > 1 else nf[:, None]
    if nf.shape[0] != hierarchy.n_nodes:
        raise ParameterError(
            f"node_forecasts has {nf.shape[0]} nodes but the hierarchy has {hierarchy.n_nodes}"
        )
    if nf.shape[1] != columns:
        raise ParameterError(
            f"node_forecasts has {nf.shape[1]} values per node but the forecast has "
            f"{columns} (months x other dims); give one per month"
        )
    return nf


def _residual_matrix(residuals: xr.DataArray | np.ndarray | None) -> np.ndarray | None:
    """Residuals as an (n_nodes x T) array; a DataArray must carry a ``node`` dim."""
    if residuals is None:
        return None
    if isinstance(residuals, xr.DataArray):
        if "node" not in residuals.dims:
            raise ParameterError(
                "residuals need a 'node' dim (n_nodes x T, hierarchy order): residuals of each "
                "node's own model, e.g. built with to_nodes for the bottom-up nodes"
            )
        residuals = residuals.transpose("node", ...).values
    return np.asarray(residuals, dtype=float)


def _reconcile_columns(
    rec: BottomUp | TopDown | MinTrace,
    y_hat: np.ndarray,
    hierarchy: Hierarchy,
    residuals: np.ndarray | None,
    locks: Mapping[int, np.ndarray],
    cube: _CubeForecast,
) -> tuple[np.ndarray, dict]:
    """Reconcile every column (month x other dims) of ``y_hat``, locks repeated over the others."""
    n_extra = cube.n_extra
    locks_cols = {i: np.repeat(v, n_extra) for i, v in locks.items()}
    if isinstance(rec, MinTrace):
        steps = [s for s in _month_labels(cube.months) for _ in range(n_extra)]
        return rec.reconcile(y_hat, hierarchy, residuals, locks_cols, steps=steps)
    return rec.reconcile(y_hat, hierarchy, residuals, locks_cols)


# --------------------------------------------------------------------------- probabilistic


#: Scores a level needs for its own factor to weigh as much as the pooled one
#: (:func:`learn_band_scale`): a level with n scores weighs n / (n + BAND_SCALE_POOL).
BAND_SCALE_POOL = 30
#: Independent scores a node's months from one origin count as at most
#: (:func:`effective_scores`): its errors persist over the horizon (a level's months from
#: one origin cover or miss together), so twelve months ahead of one node at one origin
#: are not twelve draws. With 3 months ahead (a quarter) every month counts.
BAND_SCALE_ROW_SCORES = 3
#: Bounds of a learned band factor [1]: a factor outside is clipped (a band never
#: shrinks below a fifth, nor widens beyond five times, of the model's own).
BAND_SCALE_BOUNDS: tuple[float, float] = (0.2, 5.0)


@dataclass(frozen=True)
class BandScale:
    """Factors on each level's base spread around its median, learned from past errors.

    Attributes
    ----------
    levels : tuple of str
        Hierarchy level names (:data:`LEVELS`).
    factors : tuple of float
        One factor per level [1]: 1 keeps the model's own band, above 1 widens it.
    n_scores : tuple of int
        Past actuals each factor was learned from.
    by_step : tuple of tuple of float
        Per level, its factor at each month ahead [1] (the last one for the months
        beyond); empty: the level's factor at every month.

    Examples
    --------
    >>> BandScale(("total",), (1.2,), (12,)).as_dict()
    {'total': 1.2}
    >>> BandScale(("total",), (1.2,), (12,), ((1.0, 1.5),)).step_factors("total", 3)
    array([1. , 1.5, 1.5])
    """

    levels: tuple[str, ...] = ()
    factors: tuple[float, ...] = ()
    n_scores: tuple[int, ...] = ()
    by_step: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.factors):
            raise ParameterError(
                f"BandScale: {len(self.levels)} levels but {len(self.factors)} factors"
            )
        if self.by_step and len(self.by_step) != len(self.levels):
            raise ParameterError(
                f"BandScale: {len(self.levels)} levels but {len(self.by_step)} rows of step factors"
            )
        every = [*self.factors, *(f for row in self.by_step for f in row)]
        bad = [f for f in every if not (np.isfinite(f) and f > 0)]
        if bad:
            raise ParameterError(f"BandScale: factors must be positive numbers, got {bad[0]!r}")

    def as_dict(self) -> dict[str, float]:
        return {lv: float(f) for lv, f in zip(self.levels, self.factors, strict=True)}

    def step_factors(self, level: str, h: int) -> np.ndarray:
        """The level's factor at each of ``h`` months ahead (1 for a level without one)."""
        if level not in self.levels:
            return np.ones(h)
        i = self.levels.index(level)
        row = np.asarray(self.by_step[i] if self.by_step else (self.factors[i],), dtype=float)
        return row[np.minimum(np.arange(h), row.size - 1)]

    def times(self, other: BandScale) -> BandScale:
        """Both scales applied one after the other (factors multiplied, within the bounds).

        Examples
        --------
        >>> BandScale(("total",), (1.5,), (9,)).times(BandScale(("total",), (2.0,), (12,)))
        BandScale(levels=('total',), factors=(3.0,), n_scores=(12,), by_step=())
        """
        mine, theirs = self.as_dict(), other.as_dict()
        levels = tuple(dict.fromkeys((*self.levels, *other.levels)))
        lo, hi = BAND_SCALE_BOUNDS
        factors = tuple(
            float(np.clip(mine.get(lv, 1.0) * theirs.get(lv, 1.0), lo, hi)) for lv in levels
        )
        counts = {
            **dict(zip(self.levels, self.n_scores, strict=False)),
            **dict(zip(other.levels, other.n_scores, strict=False)),
        }
        by_step: tuple[tuple[float, ...], ...] = ()
        if self.by_step or other.by_step:
            h = max((len(r) for r in (*self.by_step, *other.by_step)), default=1)
            by_step = tuple(
                tuple(
                    np.clip(self.step_factors(lv, h) * other.step_factors(lv, h), lo, hi).tolist()
                )
                for lv in levels
            )
        return BandScale(levels, factors, tuple(counts.get(lv, 0) for lv in levels), by_step)

    def factors_of(self, hierarchy: Hierarchy, h: int | None = None) -> np.ndarray:
        """The factor of every node of ``hierarchy`` (1 for a level without one).

        (n_nodes,) without ``h``; (n_nodes x h), each month ahead its own, with it.
        """
        node_levels = hierarchy.nodes["level"].to_numpy()
        if h is None:
            table = self.as_dict()
            return np.array([table.get(lv, 1.0) for lv in node_levels], dtype=float)
        rows = {lv: self.step_factors(lv, h) for lv in dict.fromkeys(node_levels)}
        return np.stack([rows[lv] for lv in node_levels]) if len(node_levels) else np.ones((0, h))


@dataclass(frozen=True)
class BandCalibration:
    """Band factors of a forecast and the backtest they were learned on.

    The one statement of a calibrated band: ``revmodel forecast --calibrate-bands`` and
    the plan pack both draw their paths with ``scale`` and say where it came from.

    Attributes
    ----------
    scale : BandScale
        The factors (:func:`learn_band_scale`).
    method : str
        Reconciliation method of the backtest's forecasts.
    horizon : int
        Months each past forecast ran [months].
    origins : tuple of str
        The past origins (``YYYY-MM``, the last month each forecast saw), oldest first.
    coverage : float
        Share of actuals the band is calibrated to hold [1].

    Examples
    --------
    >>> cal = BandCalibration(BandScale(("total",), (1.25,), (30,)), "mint_shrink", 3,
    ...                       ("2025-04", "2025-07"))
    >>> cal.describe()
    'bands calibrated on 2 past origins (factors: total 1.25); learned on the backtest of mint_shrink forecasts from 2025-04 and 2025-07, 3 months ahead each, to hold 80% of actuals at every level'
    >>> BandCalibration.from_attrs(cal.to_attrs()) == cal
    True
    """

    scale: BandScale
    method: str
    horizon: int
    origins: tuple[str, ...]
    coverage: float = 0.8

    def factors_text(self) -> str:
        """The factors as ``level factor, ...`` (two decimals)."""
        return ", ".join(f"{lv} {f:.2f}" for lv, f in self.scale.as_dict().items())

    def describe(self) -> str:
        """One line: the factors and the backtest they came from."""
        n = len(self.origins)
        when = " and ".join(
            [", ".join(self.origins[:-1]), self.origins[-1]] if n > 1 else self.origins
        )
        steps = ""
        if self.scale.by_step:
            ranges = ", ".join(
                f"{lv} {min(row):.2f}-{max(row):.2f}"
                for lv, row in zip(self.scale.levels, self.scale.by_step, strict=True)
            )
            steps = f"; by month ahead {ranges}"
        return (
            f"bands calibrated on {n} past origin{'s' if n != 1 else ''} "
            f"(factors: {self.factors_text()}){steps}; learned on the backtest of {self.method} "
            f"forecasts from {when}, {self.horizon} months ahead each, to hold "
            f"{self.coverage:.0%} of actuals at every level"
        )

    def to_attrs(self) -> dict[str, str]:
        """Attributes a forecast file keeps (NetCDF-safe text): ``band_scale``, ``band_calibration``."""
        stated = {
            "levels": list(self.scale.levels),
            "factors": [float(f) for f in self.scale.factors],
            "n_scores": [int(n) for n in self.scale.n_scores],
            "by_step": [list(map(float, row)) for row in self.scale.by_step],
            "method": self.method,
            "horizon": int(self.horizon),
            "origins": list(self.origins),
            "coverage": float(self.coverage),
        }
        return {"band_scale": self.factors_text(), "band_calibration": json.dumps(stated)}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> BandCalibration | None:
        """The calibration a forecast's attributes state (:meth:`to_attrs`); None without one."""
        text = attrs.get("band_calibration")
        if not text:
            return None
        d = json.loads(str(text))
        by_step = tuple(tuple(row) for row in d.get("by_step", ()))
        scale = BandScale(tuple(d["levels"]), tuple(d["factors"]), tuple(d["n_scores"]), by_step)
        return cls(
            scale, str(d["method"]), int(d["horizon"]), tuple(d["origins"]), float(d["coverage"])
        )


def _center(levels: Sequence[float]) -> int:
    """Index of the level closest to the median."""
    return int(np.argmin(np.abs(np.asarray(levels, dtype=float) - 0.5)))


def scale_band(
    node_quantiles: np.ndarray, levels: Sequence[float], factors: np.ndarray
) -> np.ndarray:
    """Every node's quantiles moved away from (or towards) its median by its factor.

    Parameters
    ----------
    node_quantiles : np.ndarray
        (n_nodes x h x k) quantiles [units].
    levels : sequence of float
        Their probability levels; the one closest to 0.5 is the fixed centre.
    factors : np.ndarray
        (n_nodes,) or (n_nodes x h) factors [1].

    Returns
    -------
    np.ndarray
        (n_nodes x h x k) quantiles, the centre unchanged [units].

    Examples
    --------
    >>> q = np.array([[[80.0, 100.0, 150.0]]])
    >>> scale_band(q, [0.1, 0.5, 0.9], np.array([2.0]))
    array([[[ 60., 100., 200.]]])
    """
    q = np.asarray(node_quantiles, dtype=float)
    f = np.asarray(factors, dtype=float)
    f = f[:, None, None] if f.ndim == 1 else f[..., None]
    center = q[..., _center(levels)][..., None]
    return center + f * (q - center)


def band_scores(
    actual: np.ndarray, center: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """How far each actual lies from the band's centre, in units of the band on its side.

    A score of at most 1 is inside the band; the band scaled around its centre by a
    factor ``f`` holds exactly the actuals scoring at most ``f`` (a conformal score).
    An actual off the centre of a band of no width on its side scores infinity.

    Parameters
    ----------
    actual, center, lower, upper : np.ndarray
        Actuals, the band's centre (median) and bounds, broadcast together [units].

    Returns
    -------
    np.ndarray
        Scores [1], 0 for an actual at the centre.

    Examples
    --------
    >>> band_scores(np.array([90.0, 130.0, 100.0]), np.full(3, 100.0),
    ...             np.full(3, 80.0), np.full(3, 120.0))
    array([0.5, 1.5, 0. ])
    """
    a, c = np.asarray(actual, dtype=float), np.asarray(center, dtype=float)
    above = a >= c
    width = np.where(above, np.asarray(upper, dtype=float) - c, c - np.asarray(lower, dtype=float))
    dist = np.abs(a - c)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(width > 0, dist / np.where(width > 0, width, 1.0), np.inf)
    return np.where(dist == 0, 0.0, score)


def _conformal_quantile(
    scores: np.ndarray, coverage: float, weights: np.ndarray | None = None
) -> float:
    """The conformal quantile of ``scores`` at ``coverage`` (infinite when n is too small).

    Unweighted: the ceil((n + 1) coverage)-th smallest score. Weighted (Barber et al.
    2023, "Conformal prediction beyond exchangeability"): the smallest score whose
    cumulative weight reaches ``coverage`` of the total plus the new point's weight,
    the largest of ``weights`` (the most recent scores' weight); equal weights give the
    unweighted quantile.
    """
    v = np.asarray(scores, dtype=float)
    if weights is None:
        n = v.size
        k = int(np.ceil((n + 1) * coverage))
        return float(np.sort(v)[k - 1]) if 0 < k <= n else float("inf")
    w = np.asarray(weights, dtype=float)
    order = np.argsort(v, kind="stable")
    reach = np.cumsum(w[order]) / (w.sum() + w.max())
    k = int(np.searchsorted(reach, coverage - 1e-12))
    return float(v[order][k]) if k < v.size else float("inf")


def _shrunk(own: float, prior: float, n: float, pool: int) -> float:
    """``own`` shrunk in logs towards ``prior`` with weight n / (n + pool), within the bounds."""
    lo, hi = BAND_SCALE_BOUNDS
    own, prior = float(np.clip(own, lo, hi)), float(np.clip(prior, lo, hi))
    share = n / (n + pool)
    return float(np.clip(np.exp(share * np.log(own) + (1 - share) * np.log(prior)), lo, hi))


def _n_eff(w: np.ndarray) -> float:
    """Effective number of weighted scores, (sum w)^2 / sum w^2 (n for equal weights)."""
    return float(w.sum() ** 2 / (w**2).sum()) if w.size else 0.0


def effective_scores(
    scores: np.ndarray | Sequence[np.ndarray],
    weights: np.ndarray | Sequence[np.ndarray] | None = None,
    row_scores: int | None = None,
) -> float:
    """Effective number of past scores, a node's months from one origin as one row.

    The effective number of the weighted scores (:func:`_n_eff`), times
    ``row_scores`` over the mean number of scored months per row when a row has
    more: the months of one node from one origin cover or miss together, and count
    as at most ``row_scores`` independent scores.

    Parameters
    ----------
    scores : np.ndarray or sequence of np.ndarray
        Scores, rows x months ahead (2-D) or any other shape (each score a row, as
        :func:`learn_band_scale` reads them); NaN not counted.
    weights : np.ndarray or sequence of np.ndarray, optional
        Their weights (same shapes); None weighs all alike.
    row_scores : int, optional
        Scores a row counts as at most (default :data:`BAND_SCALE_ROW_SCORES`).

    Examples
    --------
    >>> effective_scores(np.zeros((2, 12)))  # one node, two origins, 12 months ahead
    6.0
    >>> effective_scores(np.zeros((60, 3))), effective_scores(np.zeros(40))
    (180.0, 40.0)
    """
    parts = [scores] if isinstance(scores, np.ndarray) else list(scores)
    if weights is None:
        wparts = [np.ones(np.shape(v)) for v in parts]
    else:
        wparts = [weights] if isinstance(weights, np.ndarray) else list(weights)
    w_all, cells, rows = [], 0, 0
    for v, w in zip(parts, wparts, strict=True):
        v = np.asarray(v, dtype=float)
        v2 = v if v.ndim == 2 else v.reshape(-1, 1)  # as learn_band_scale reads them
        keep = ~np.isnan(v2)
        w_all.append(np.broadcast_to(np.asarray(w, dtype=float).reshape(v2.shape), v2.shape)[keep])
        cells += int(keep.sum())
        rows += int(keep.any(axis=1).sum())
    n = _n_eff(np.concatenate(w_all)) if w_all else 0.0
    per_row = cells / rows if rows else 1.0
    cap = BAND_SCALE_ROW_SCORES if row_scores is None else row_scores
    return n * min(1.0, cap / per_row)


def learn_band_scale(
    scores: Mapping[str, np.ndarray],
    coverage: float = 0.8,
    pool: int = BAND_SCALE_POOL,
    weights: Mapping[str, np.ndarray] | None = None,
) -> BandScale:
    """Per-level (and per month ahead) band factors from past scores, conformal style.

    A level's factor is the conformal quantile of its scores (:func:`band_scores`) at
    ``coverage`` (the factor by which its past bands had to be scaled to hold that
    share of the past actuals), shrunk in logs towards the quantile of all levels'
    scores pooled, with weight ``n / (n + pool)`` on a level's own ``n`` scores (with
    ``weights``, n is their effective number, (sum w)^2 / sum w^2, and a node's months
    ahead from one origin count as at most :data:`BAND_SCALE_ROW_SCORES` scores:
    :func:`effective_scores`). Scores given by
    month ahead (n x h arrays) give each month its own factor too, the quantile of
    that month's scores shrunk the same way towards the level's factor: a month with
    few scores (an aggregate level) stays near its level's (at it, when too few for a
    conformal quantile), one with many follows its own errors. Every factor is clipped to :data:`BAND_SCALE_BOUNDS`. Scores must come
    from forecasts whose actuals were known before the origin the factors are used at.

    Parameters
    ----------
    scores : mapping of level name to np.ndarray
        Past scores by hierarchy level, flat or (n x h) by month ahead (NaN dropped).
    coverage : float
        Share of actuals the band should hold, e.g. 0.8 for a 10-90% band.
    pool : int
        Prior weight of the pooled quantile, in scores.
    weights : mapping of level name to np.ndarray, optional
        A weight per score (same shapes as ``scores``), e.g. more for recent origins
        (:func:`revmodel.backtest.band_calibration`); None weighs all alike.

    Returns
    -------
    BandScale
        One factor per level with scores (none without any: every band kept), and
        ``by_step`` when the scores are by month ahead.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = learn_band_scale({"total": np.abs(rng.normal(size=400)) / 1.28})
    >>> round(s.as_dict()["total"], 1)  # past bands held ~80%: a factor near 1
    1.0
    >>> old, new = np.full(50, 3.0), np.full(50, 1.0)  # the recent half held 100%
    >>> both = {"total": np.concatenate([old, new])}
    >>> alike = learn_band_scale(both).factors
    >>> recent = learn_band_scale(both, weights={"total": np.repeat([0.1, 1.0], 50)}).factors
    >>> round(alike[0], 6), round(recent[0], 6)
    (3.0, 1.0)
    >>> by_month = np.abs(rng.normal(size=(900, 2))) / 1.28 * [1.0, 2.0]  # 2nd month: 2x wider
    >>> [round(f, 1) for f in learn_band_scale({"rep": by_month}).by_step[0]]
    [1.0, 2.0]
    """
    if not 0 < coverage < 1:
        raise ParameterError(f"coverage must be between 0 and 1, got {coverage!r}")
    clean: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for lv, v in scores.items():
        v = np.asarray(v, dtype=float)
        w = np.ones(v.shape) if weights is None else np.asarray(weights[lv], dtype=float)
        v, w = (v, w) if v.ndim == 2 else (v.reshape(-1, 1), w.reshape(-1, 1))
        if (~np.isnan(v)).any():
            clean[lv] = (v, np.broadcast_to(w, v.shape))
    if not clean:
        return BandScale()
    weighted = weights is not None

    def quantile(v: np.ndarray, w: np.ndarray) -> float:
        keep = ~np.isnan(v)
        return _conformal_quantile(v[keep], coverage, w[keep] if weighted else None)

    def n_of(v: np.ndarray, w: np.ndarray) -> float:
        return effective_scores(v, w)

    flat = [
        np.concatenate([x.ravel() for x in parts]) for parts in zip(*clean.values(), strict=True)
    ]
    pooled = quantile(*flat)
    factors, by_step = [], []
    steps = {v.shape[1] for v, _ in clean.values()}
    for v, w in clean.values():
        level = _shrunk(quantile(v.ravel(), w.ravel()), pooled, n_of(v, w), pool)
        factors.append(level)
        row = []
        for t in range(v.shape[1]):
            own = quantile(v[:, t], w[:, t])  # infinite: too few scores to say, the level's
            row.append(
                _shrunk(own, level, n_of(v[:, t], w[:, t]), pool) if np.isfinite(own) else level
            )
        by_step.append(tuple(row))
    counts = tuple(int((~np.isnan(v)).sum()) for v, _ in clean.values())
    per_step = len(steps) == 1 and steps != {1}
    return BandScale(tuple(clean), tuple(factors), counts, tuple(by_step) if per_step else ())


@dataclass(frozen=True)
class SampleSettings:
    """How :func:`sample_reconciled` draws base forecast paths.

    Attributes
    ----------
    n_samples : int
        Sample paths drawn [1].
    seed : int
        Seed of the random generator: the same seed gives the same quantiles.
    shrink : bool
        Draw the bottom series with their residual correlation shrunk as ``mint_shrink``
        shrinks its covariance (:func:`shrunk_covariance_lowrank`, over the bottom series
        alone) rather than the sample one. Either keeps a known distribution's reconciled
        band calibrated at every level, with more reps than months of residuals too,
        since every aggregate's draw moves with its bottoms' sum (:func:`_scores`); on the
        hierarchy benchmark the two calibrated bands differed within their noise, and the
        default stays the sample correlation.

    scale : BandScale, optional
        Per-level factors on every node's base spread around its median, learned from
        past forecast errors (:func:`learn_band_scale`), applied before the draws are
        reconciled; None draws from the base quantiles as they are.

    Examples
    --------
    >>> SampleSettings(n_samples=200, seed=7)
    SampleSettings(n_samples=200, seed=7, shrink=False, scale=None)
    """

    n_samples: int = 500
    seed: int = 20261129
    shrink: bool = False
    scale: BandScale | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_samples, bool) or int(self.n_samples) < 10:
            raise ParameterError(f"n_samples must be at least 10, got {self.n_samples!r}")


#: Default sampling of :func:`sample_reconciled`: 500 paths, a fixed seed.
DEFAULT_SAMPLING = SampleSettings()


@dataclass(frozen=True)
class ReconciledSamples:
    """Coherent sample paths of every node and the quantiles read off them.

    Attributes
    ----------
    samples : np.ndarray
        (n_nodes x h x n_samples) reconciled paths [units]; each path adds up, keeps the
        locked values and, when asked, is non-negative.
    quantiles : np.ndarray
        (n_nodes x h x len(levels)) empirical quantiles of ``samples`` [units].
    levels : np.ndarray
        Probability levels of ``quantiles``.
    info : dict
        The reconciler's info for the draws, plus ``n_samples`` and ``seed``.
    mean : np.ndarray or None
        (n_nodes x h) the reconciled point forecast the paths are centred on (the base
        means reconciled with the same method, locks and bounds): every node's paths
        average to it (:func:`sample_reconciled` with ``means``); None when drawn
        without base means.
    """

    samples: np.ndarray
    quantiles: np.ndarray
    levels: np.ndarray
    info: dict
    mean: np.ndarray | None = None


def quantile_paths(
    z: np.ndarray, node_quantiles: np.ndarray, levels: Sequence[float]
) -> np.ndarray:
    """Map standard-normal scores through each node's own quantile function.

    The quantile function is piecewise linear in the normal score between the
    given quantiles and extended linearly beyond the outer ones, so a node's
    draws have its own (possibly skewed) quantiles at the given levels.

    Parameters
    ----------
    z : np.ndarray
        (n x h x N) standard-normal scores.
    node_quantiles : np.ndarray
        (n x h x k) each node's base quantiles at ``levels`` [units], k >= 2.
    levels : sequence of float
        The k probability levels, in (0, 1).

    Returns
    -------
    np.ndarray
        (n x h x N) draws [units].

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[[80.0, 100.0, 150.0]]])  # one node, one month: p10, p50, p90 (skewed)
    >>> quantile_paths(np.array([[[-1.2815516, 0.0, 1.2815516]]]), q, [0.1, 0.5, 0.9]).round(3)
    array([[[ 80., 100., 150.]]])
    """
    from scipy import stats

    lv = np.asarray(levels, dtype=float)
    order = np.argsort(lv)
    if lv.size < 2:
        raise ParameterError("sampling needs at least two quantile levels (e.g. 0.1 and 0.9)")
    zl = stats.norm.ppf(lv[order])
    qv = np.sort(np.asarray(node_quantiles, dtype=float)[..., order], axis=-1)
    seg = np.clip(np.searchsorted(zl, z) - 1, 0, zl.size - 2)
    lo = np.take_along_axis(qv, seg, axis=-1)
    hi = np.take_along_axis(qv, seg + 1, axis=-1)
    slope = (hi - lo) / (zl[seg + 1] - zl[seg])
    return lo + slope * (z - zl[seg])


def period_quantiles(
    node_quantiles: np.ndarray,
    levels: Sequence[float],
    groups: Sequence[Any] | None = None,
    nonnegative: bool = True,
    n_samples: int = 4000,
    seed: int = DEFAULT_SAMPLING.seed,
) -> tuple[np.ndarray, list[Any]]:
    """Quantiles of a node's total over several months: the aggregate's own interval.

    Each month is drawn through the node's own quantile function
    (:func:`quantile_paths`), months independently as in :func:`sample_reconciled`;
    a non-negative measure's draws are floored at 0 before the months are added,
    never its bounds. Nodes sharing a label in ``groups`` are added draw by draw.
    Adding the months' quantiles instead would give a band as wide as if every month
    missed the same way, with lower bounds floored month by month.

    Parameters
    ----------
    node_quantiles : np.ndarray
        (n x h x k) quantiles of n nodes over h months [units].
    levels : sequence of float
        The k probability levels.
    groups : sequence, optional
        n labels; the result has one row per distinct label (in order of appearance).
        Default: one row per node.
    nonnegative : bool
        Floor each month's draw at 0.
    n_samples, seed : int
        Draws per node and month; the generator's seed (same seed, same quantiles).

    Returns
    -------
    (np.ndarray, list)
        (groups x k) quantiles of the period totals [units], and the group labels.

    Examples
    --------
    >>> q = np.array([[[0.0, 10.0, 30.0]] * 3])  # one node, 3 months, p10/p50/p90
    >>> band, _ = period_quantiles(q, [0.1, 0.5, 0.9])
    >>> bool(band[0, 0] > 0) and bool(band[0, 2] < 90)
    True
    """
    qn = np.asarray(node_quantiles, dtype=float)
    n, h, _ = qn.shape
    labels = list(range(n)) if groups is None else list(groups)
    order = list(dict.fromkeys(labels))
    rng = np.random.default_rng(seed)
    draws = quantile_paths(rng.standard_normal((n, h, int(n_samples))), qn, levels)
    if nonnegative:
        draws = np.maximum(draws, 0.0)
    per_node = draws.sum(axis=1)  # n x N
    index = np.array([order.index(g) for g in labels], dtype=np.intp)
    totals = np.zeros((len(order), per_node.shape[1]))
    np.add.at(totals, index, per_node)
    return np.quantile(totals, np.asarray(levels, dtype=float), axis=-1).T, order


def _correlation_sampler(residuals: np.ndarray | None, n: int, shrink: bool) -> LowRankCovariance:
    if residuals is None:
        return LowRankCovariance(d=np.ones(n), U=np.zeros((n, 0)), shrinkage=1.0)
    cov = shrunk_covariance_lowrank(residuals)
    if shrink:
        return cov
    # the sample covariance itself (lambda = 0): singular when T < n, which sampling allows
    lam = cov.shrinkage
    U = cov.U / np.sqrt(1.0 - lam) if lam < 1 else cov.U
    d = np.maximum(cov.diagonal() - np.einsum("ij,ij->i", U, U), 0.0)
    return LowRankCovariance(d=d, U=U, shrinkage=0.0)


def _groups(hierarchy: Hierarchy, level: str) -> np.ndarray:
    """For each bottom series, the node of ``level`` that contains it."""
    tags = hierarchy.tags[level]
    return tags[hierarchy.S.T.tocsr()[:, tags].tocsr().indices]


@dataclass(frozen=True)
class SharedShocks:
    """Shocks shared by the bottom series of each node of the aggregate levels.

    One-step residuals understate how much forecast errors move together over a
    horizon (a month that surprises a region surprises most of its reps); and
    reconciled errors can offset one another (on the sample company's backtest, the
    squared error of the reconciled bottoms' sum by region was 0.59 times the sum of
    their squared errors). Each aggregate's own forecast says how wide the sum of its
    bottoms should be, so the standard-normal score of bottom ``b`` at step ``t`` is
    drawn as ``sqrt(1 - sum_l (kappa_lt + narrow_lt)) z_b + sum_l sqrt(kappa_lt)
    F_{l, g_l(b)} + sum_l sqrt(narrow_lt) E_{l, b}``, with ``z`` correlated as the
    residuals, ``F`` one shock per node ``g_l(b)`` of each aggregate level ``l``,
    which widens the sum of that node's bottoms, and ``E_l`` an offsetting shock,
    which narrows it (:func:`_offsetting_parts`: independent normals less their
    projection on the node's bottoms' spreads). The weights ``kappa, narrow >= 0``
    make the spread of every aggregate's bottom sum match its own spread, in least
    squares (relative); all 0 when the residual correlation already accounts for it.
    An aggregate's score is its bottoms' scores summed (:func:`_scores`), so its draw
    moves with their sum.

    Attributes
    ----------
    levels : tuple of str
        The aggregate levels with a shock.
    kappa : np.ndarray
        (n_levels x h) weights of the shared shocks [1].
    groups : np.ndarray
        (n_levels x n_bottom) node of each level containing each bottom series.
    narrow : np.ndarray, optional
        (n_levels x h) weights of the offsetting shocks [1]; None: none.
    """

    levels: tuple[str, ...]
    kappa: np.ndarray
    groups: np.ndarray
    narrow: np.ndarray | None = None

    def offsetting_weights(self) -> np.ndarray:
        """(n_levels x h) weights of the offsetting shocks, zeros when there are none."""
        return np.zeros_like(self.kappa) if self.narrow is None else self.narrow


#: A node's bottoms offset one another (:func:`_offsetting_parts`) when none of them
#: carries more than this share of their squared spreads: the others then carry at least
#: 1e-6 of it, and a bottom's part is at most 1,000 times its projection residual.
OFFSETTING_MAX_SHARE = 1.0 - 1e-6


def _offsetting_parts(a: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bottom: whether its node carries an offsetting shock, and the shock's scale.

    The offsetting shock of a node whose bottoms have spreads ``a`` is ``e`` (one
    standard normal per bottom) less its projection on ``a``,
    ``e_b - a_b sum_c a_c e_c / Q`` over the node's bottoms (``Q = sum_c a_c^2``),
    whose ``a``-weighted sum is 0; each bottom's part is then divided by its standard
    deviation ``sqrt(1 - a_b^2 / Q)`` to be standard normal, which leaves the weighted
    sum a variance of ``sum_b (a_b / sd_b)^2 - (sum_b a_b^2 / sd_b)^2 / Q`` (0 when
    the spreads are alike, far below the ``Q`` of independent bottoms otherwise). A
    node with one bottom of positive spread, or one bottom carrying nearly all of
    ``Q`` (:data:`OFFSETTING_MAX_SHARE`), has none: its bottoms keep ``e`` as it is.

    Parameters
    ----------
    a : np.ndarray
        (m,) bottoms' spreads (>= 0).
    g : np.ndarray
        (m,) node of the level containing each bottom.

    Returns
    -------
    (np.ndarray, np.ndarray, np.ndarray)
        ``projected`` (m,) bool, ``sd`` (m,) the projection residual's standard
        deviation (1 where not projected), and ``Q`` (m,) the node's sum of squared
        spreads (at each bottom).

    Examples
    --------
    >>> projected, sd, Q = _offsetting_parts(np.array([3.0, 4.0, 5.0]), np.array([7, 7, 9]))
    >>> projected.tolist(), sd.round(2).tolist(), Q.tolist()
    ([True, True, False], [0.8, 0.6, 1.0], [25.0, 25.0, 25.0])
    """
    a2 = np.asarray(a, dtype=float) ** 2
    g = np.asarray(g, dtype=np.intp)  # node indices: bins of their own
    Q = np.bincount(g, weights=a2)[g]
    largest = np.zeros(g.max() + 1 if g.size else 0)
    np.maximum.at(largest, g, a2)
    projected = (Q > 0) & (largest[g] <= OFFSETTING_MAX_SHARE * Q)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.where(
            projected, np.sqrt(np.clip(1.0 - a2 / np.where(Q > 0, Q, 1.0), 0.0, None)), 1.0
        )
    return projected, sd, Q


def shared_shocks(
    cov: LowRankCovariance,
    node_quantiles: np.ndarray,
    levels: Sequence[float],
    hierarchy: Hierarchy,
) -> SharedShocks:
    """Fit :class:`SharedShocks` to every aggregate's own forecast spread.

    Parameters
    ----------
    cov : LowRankCovariance
        Covariance of the bottom series' residuals, in the order of ``hierarchy.bottom``
        (its correlation is used).
    node_quantiles : np.ndarray
        (n_nodes x h x k) base quantiles [units].
    levels : sequence of float
        Their probability levels.
    hierarchy : Hierarchy

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> q = np.stack([np.array([[8.0, 10.0, 12.0]] * 2)] * h.n_nodes)  # (nodes, months, 3)
    >>> cov = shrunk_covariance_lowrank(np.random.default_rng(0).normal(size=(h.n_bottom, 24)))
    >>> shocks = shared_shocks(cov, q, [0.1, 0.5, 0.9], h)
    >>> shocks.kappa.shape == (len(shocks.levels), 2), bool((shocks.kappa >= 0).all())
    (True, True)
    """
    from scipy import stats
    from scipy.optimize import lsq_linear

    lv = np.asarray(levels, dtype=float)
    lo, hi = int(np.argmin(lv)), int(np.argmax(lv))
    span = stats.norm.ppf(lv[hi]) - stats.norm.ppf(lv[lo])
    sd = np.maximum(node_quantiles[..., hi] - node_quantiles[..., lo], 0.0) / span  # (n, h)
    names = tuple(level for level, _ in LEVELS[:-1])
    groups = np.stack([_groups(hierarchy, level) for level in names])
    b = hierarchy.bottom
    agg = np.setdiff1d(np.arange(hierarchy.n_nodes), b)
    Sa = hierarchy.S[agg]
    m = hierarchy.n_bottom
    scale = np.sqrt(cov.diagonal())
    h = sd.shape[1]
    kappa = np.zeros((len(names), h))
    narrow = np.zeros((len(names), h))
    L = len(names)
    level_of = hierarchy.nodes["level"].to_numpy()[agg]
    counts = pd.Series(level_of).value_counts()
    weight = 1.0 / counts.reindex(level_of).to_numpy(dtype=float)
    for t in range(h):
        sb = sd[b, t]
        a = sb / scale
        v = np.asarray(Sa @ (a**2 * cov.d)) + (np.asarray(Sa @ (a[:, None] * cov.U)) ** 2).sum(1)
        c = np.empty((agg.size, 2 * L))
        for j, g in enumerate(groups):
            member = sp.csr_matrix((sb, (np.arange(m), g)), shape=(m, hierarchy.n_nodes))
            c[:, j] = np.asarray((Sa @ member).power(2).sum(1)).ravel()
            # the offsetting shock: each aggregate's sum of sb_b E_b has variance
            # sum_b (sb_b / sd_b)^2 less, per node G of the level, (sum over its bottoms in
            # the aggregate of sb_b^2 / sd_b)^2 / Q_G (the projection on G's spreads)
            projected, sd_e, Q = _offsetting_parts(sb, g)
            own_part = np.asarray(Sa @ (sb / sd_e) ** 2).ravel()
            rows = np.flatnonzero(projected)
            cross = sp.csr_matrix(
                (sb[rows] ** 2 / sd_e[rows] / np.sqrt(Q[rows]), (rows, g[rows])),
                shape=(m, hierarchy.n_nodes),
            )
            c[:, L + j] = own_part - np.asarray((Sa @ cross).power(2).sum(1)).ravel()
        target = sd[agg, t] ** 2
        ok = target > 0
        if not ok.any():
            continue
        # each level weighs the same in the fit, however many nodes it has
        w = np.sqrt(weight[ok])
        A = (c[ok] - v[ok, None]) / target[ok, None] * w[:, None]
        rhs = (target[ok] - v[ok]) / target[ok] * w
        # A small ridge makes the fit strictly convex, so its solution is unique and moves
        # little when the spreads move little: two levels that group the bottoms alike (one
        # region: the total and the region) give equal columns, whose split the plain least
        # squares leaves to the last bits of the inputs, and each level's shock is a draw of
        # its own. Bounded-variable least squares solves it exactly (no iteration tolerance).
        ridge = np.sqrt(KAPPA_RIDGE * max(float((A**2).sum(0).mean()), 1e-300))
        A = np.vstack([A, ridge * np.eye(2 * L)])
        rhs = np.concatenate([rhs, np.zeros(2 * L)])
        # (its active bounds come back off by a rounding error: clipped, and zeroed below
        # KAPPA_ZERO)
        k = np.clip(lsq_linear(A, rhs, bounds=(0.0, 1.0), method="bvls").x, 0.0, 1.0)
        k[k < KAPPA_ZERO] = 0.0
        k = k / max(1.0, k.sum())
        kappa[:, t], narrow[:, t] = k[:L], k[L:]
    return SharedShocks(levels=names, kappa=kappa, groups=groups, narrow=narrow)


#: Smallest weight of a bottom's score in its aggregates' scores (:func:`_scores`), as a
#: share of the month's widest bottom spread [1].
SCORE_WEIGHT_FLOOR = 1e-9


def _scores(
    cov: LowRankCovariance,
    shocks: SharedShocks,
    node_quantiles: np.ndarray,
    levels: Sequence[float],
    hierarchy: Hierarchy,
    rng: np.random.Generator,
    N: int,
) -> np.ndarray:
    """(n x h x N) standard-normal scores: the bottoms' (residual correlation plus the shared
    and offsetting shocks), and each aggregate's their spread-weighted sum, standardised."""
    n, h, _ = node_quantiles.shape
    b = hierarchy.bottom
    m = b.size
    z = (cov.sample(rng, h * N) / np.sqrt(cov.diagonal())[:, None]).reshape(m, h, N)
    narrow = shocks.offsetting_weights()
    total = shocks.kappa.sum(0) + narrow.sum(0)  # (h,)
    lv = np.asarray(levels, dtype=float)
    spread = node_quantiles[..., int(np.argmax(lv))] - node_quantiles[..., int(np.argmin(lv))]
    if total.any():
        x = np.zeros((m, h, N))  # shared part of each bottom's score
        for j, g in enumerate(shocks.groups):
            _, inverse = np.unique(g, return_inverse=True)
            f = rng.standard_normal((inverse.max() + 1, h, N))
            x += np.sqrt(shocks.kappa[j])[None, :, None] * f[inverse]
        # the offsetting shocks, drawn after the shared ones (with none, nothing changes)
        for j, g in enumerate(shocks.groups):
            for t in np.flatnonzero(narrow[j]):
                a = np.maximum(spread[b, t], 0.0)
                projected, sd_e, Q = _offsetting_parts(a, g)
                e = rng.standard_normal((m, N))
                rows = np.flatnonzero(projected)
                P = sp.csr_matrix((a[rows], (g[rows], rows)), shape=(hierarchy.n_nodes, m))
                node_sum = np.asarray(P @ e)  # (n_nodes x N): each node's a-weighted sum
                part = e.copy()
                part[rows] = (e[rows] - a[rows, None] * node_sum[g[rows]] / Q[rows, None]) / sd_e[
                    rows, None
                ]
                x[:, t] += np.sqrt(narrow[j, t]) * part
        # The shared shocks may take the whole variance (total 1, or 1 + 2e-16 once rounded).
        own = np.sqrt(np.clip(1.0 - total, 0.0, None))
        z = own[None, :, None] * z + x
    # Every aggregate's score is its bottoms' scores summed, each weighted by its spread, and
    # standardised: its draw moves with its bottoms' sum, so the reconciler has little
    # disagreement to average away (drawn on its own from a shrunk correlation, an aggregate
    # disagreed with its bottoms and every reconciled band came out narrow).
    # A spread below a billionth of the month's widest counts as that much, so an aggregate of
    # bottoms without a spread (a sparse series' p10 = p90) sums their scores alike, and a
    # rounding error in a spread cannot turn one bottom into the aggregate's whole score.
    weight = np.maximum(spread[b], 0.0)
    floor = SCORE_WEIGHT_FLOOR * weight.max(axis=0, initial=0.0)
    weight = np.where(floor > 0, np.maximum(weight, floor), 1.0)
    summed = np.asarray(hierarchy.S @ (weight[..., None] * z).reshape(m, -1)).reshape(n, h, N)
    sd = summed.std(axis=-1, keepdims=True)
    out = np.where(sd > 0, summed / np.where(sd > 0, sd, 1.0), 0.0)
    out[b] = z
    return out


def _stretch_tails(
    draws: np.ndarray, z: np.ndarray, levels: Sequence[float], means: np.ndarray
) -> np.ndarray:
    """Draws whose average is ``means``, the given quantiles kept: only a tail is stretched.

    The draws beyond the outer quantiles (scores above the highest level's, or below
    the lowest's) are moved further out in proportion to how far beyond they lie, on
    the side that brings each node's average to its mean: a node whose model says
    p10 = p50 = p90 = 0 but a positive mean (a sparse series: mostly nothing, now
    and then a large deal) gets a long upper tail instead of a band that cannot hold
    its own forecast. With no draw beyond the side's quantile the draws are shifted.

    Parameters
    ----------
    draws, z : np.ndarray
        (n x h x N) draws (:func:`quantile_paths`) and the standard-normal scores they
        were mapped from.
    levels : sequence of float
        The probability levels of the quantiles the draws follow.
    means : np.ndarray
        (n x h) the mean each node's draws should have [units].

    Examples
    --------
    >>> z = np.array([[[-2.0, -1.0, 0.0, 1.0, 2.0]]])
    >>> d = quantile_paths(z, np.zeros((1, 1, 3)), [0.1, 0.5, 0.9])  # all draws 0
    >>> out = _stretch_tails(d, z, [0.1, 0.5, 0.9], np.array([[10.0]]))
    >>> round(float(out.mean()), 9), out[0, 0].round(1).tolist()  # only the draw above p90 moves
    (10.0, [0.0, 0.0, 0.0, 0.0, 50.0])
    """
    from scipy import stats

    lv = np.asarray(levels, dtype=float)
    z_lo, z_hi = stats.norm.ppf(lv.min()), stats.norm.ppf(lv.max())
    gap = means - draws.mean(axis=-1)
    up = np.maximum(z - z_hi, 0.0)
    down = np.maximum(z_lo - z, 0.0)
    tail = np.where((gap > 0)[..., None], up, -down)
    reach = np.abs(tail).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        stretch = np.where(reach > 0, np.abs(gap) / reach, 0.0)
    out = draws + stretch[..., None] * tail
    shift = np.where(reach > 0, 0.0, gap)
    return out + shift[..., None]


def _clipped_shift(y: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per row, the ``c`` with mean(max(y + c, 0)) = target (rows of y: draws >= 0 or not).

    Exact, by sorting: the k largest draws stay positive for the one k where the
    shift that gives the target leaves the k-th above 0 and the next at or below it.
    A target <= 0 puts every draw at or below 0.

    Examples
    --------
    >>> c = _clipped_shift(np.array([[0.0, 0.0, 4.0, 8.0]]), np.array([2.0]))
    >>> c, np.maximum(np.array([0.0, 0.0, 4.0, 8.0]) + c, 0).mean()
    (array([-2.]), np.float64(2.0))
    """
    k_rows, n = y.shape
    ys = -np.sort(-y, axis=1)  # largest first
    k = np.arange(1, n + 1)
    c_k = (n * target[:, None] - np.cumsum(ys, axis=1)) / k
    nxt = np.concatenate([ys[:, 1:], np.full((k_rows, 1), -np.inf)], axis=1)
    valid = (ys + c_k > 0) & (nxt + c_k <= 0)
    first = np.argmax(valid, axis=1)
    c = c_k[np.arange(k_rows), first]
    c = np.where(valid.any(axis=1), c, target - y.mean(axis=1))
    return np.where(target > 0, c, -ys[:, 0])


def _centre_paths(
    samples: np.ndarray,
    mean: np.ndarray,
    hierarchy: Hierarchy,
    locks: Mapping[int, np.ndarray],
    nonnegative: bool,
) -> np.ndarray:
    """Reconciled paths moved so that every free node's paths average to ``mean``.

    Each bottom series not under a node locked that month is shifted (and, for a
    non-negative measure, floored at 0 after the shift, the shift solved so the
    floored paths still average to its mean, :func:`_clipped_shift`); the aggregates
    not locked are summed again. Every path stays coherent, non-negative and holds
    its locks; since ``mean`` is coherent every aggregate's paths average to its mean
    too. Series under a lock keep the paths the reconciler gave them.
    """
    out = samples.copy()
    b = hierarchy.bottom
    S = hierarchy.S.tocsr()
    aggregates = np.setdiff1d(np.arange(hierarchy.n_nodes), b)
    for t in range(out.shape[1]):
        held = np.array([i for i, v in locks.items() if np.isfinite(v[t])], dtype=np.intp)
        frozen = np.zeros(b.size, dtype=bool)
        if held.size:
            frozen[S[held].indices] = True
        free = b[~frozen]
        y = out[free, t, :]
        if nonnegative:
            c = _clipped_shift(y, mean[free, t])
            out[free, t, :] = np.maximum(y + c[:, None], 0.0)
        else:
            out[free, t, :] = y + (mean[free, t] - y.mean(axis=-1))[:, None]
        rows = np.setdiff1d(aggregates, held)
        out[rows, t, :] = np.asarray(S[rows] @ out[b, t, :])
    return out


def _filled_means(means: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    """Base means with a node's missing ones the sum of its bottoms' (as :func:`reconcile_cube`)."""
    m = np.asarray(means, dtype=float)
    fill = np.asarray(hierarchy.S @ np.nan_to_num(m[hierarchy.bottom]))
    return np.where(np.isfinite(m), m, fill)


def sample_reconciled(
    node_quantiles: np.ndarray,
    levels: Sequence[float],
    hierarchy: Hierarchy,
    method: str = "mint_shrink",
    residuals: np.ndarray | None = None,
    nonnegative: bool = True,
    locked: Mapping | None = None,
    settings: SampleSettings = DEFAULT_SAMPLING,
    steps: Sequence[str] | None = None,
    max_dense_nodes: int | None = None,
    means: np.ndarray | None = None,
) -> ReconciledSamples:
    """Coherent forecast quantiles by reconciling sampled base forecast paths.

    Base paths are drawn from a Gaussian copula: the bottom series' standard-normal
    scores with their residual correlation (the sample one, or the shrunk one of
    :func:`shrunk_covariance_lowrank`: :attr:`SampleSettings.shrink`; independent
    without residuals) plus the shocks each aggregate's spread asks them to share
    (:func:`shared_shocks`), and every aggregate's score its bottoms' scores summed,
    weighted by their spreads, and standardised (:func:`_scores`), so an aggregate's
    draw moves with its bottoms' sum; each score is mapped through its node's own base
    quantiles (:func:`quantile_paths`); months are drawn independently. Every draw is
    reconciled like a point forecast, with the same locks and bounds, so every path
    adds up the hierarchy, holds the locked values and stays non-negative; the
    quantiles are those of the reconciled draws (Panagiotelis et al. 2023,
    "Probabilistic forecast reconciliation").

    With the base ``means``, the paths are centred on the reconciled point forecast:
    each node's base draws are brought to its base mean by stretching the tail beyond
    its outer quantile (:func:`_stretch_tails`; the stated quantiles kept), the means
    are reconciled with the draws (same method, locks, bounds: the point forecast
    :func:`reconcile_cube` gives) and, as flooring the draws at 0 lifts their average,
    every bottom series not under a lock is shifted back onto its reconciled mean
    (floored again, the shift solved for it) and the aggregates summed
    (:func:`_centre_paths`). Every path still adds up, holds its locks and is >= 0,
    and every node's paths average to its reconciled mean (``mean``; under a lock, to
    within what the reconciler gave, ``info["mean_gap"]``).

    Parameters
    ----------
    node_quantiles : np.ndarray
        (n_nodes x h x k) base quantiles of every node, in hierarchy order [units].
    levels : sequence of float
        The k probability levels of ``node_quantiles`` (at least two).
    hierarchy : Hierarchy
    method : str
        Reconciliation method (:data:`METHODS` except ``"none"``).
    residuals : np.ndarray, optional
        (n_nodes x T) in-sample residuals, in hierarchy order: their bottom rows the
        correlation of the draws, all of them MinT's weights.
    nonnegative : bool
        Keep every reconciled draw >= 0.
    locked : mapping, optional
        As in :meth:`MinTrace.reconcile` (node index or ``(level, key)`` -> values per month).
    settings : SampleSettings
        Number of draws and seed.
    steps : sequence of str, optional
        Names of the h months, for error messages.
    max_dense_nodes : int, optional
        ``mint_shrink``'s dense covariance up to this many nodes (:class:`MinTrace`;
        default :data:`MINT_SHRINK_MAX_NODES`); above it the draws are reconciled by the
        low-rank solver, and drawn a month at
        a time (:func:`sample_reconciled_by_month`, which this function hands over to):
        the sampler then holds one month's (n_nodes x n_samples) draws, never the
        (n_nodes x h x n_samples) of every month. Every caller gets that choice from
        here, so a backtest's band and the plan's are drawn alike.
    means : np.ndarray, optional
        (n_nodes x h) base forecast means [units] (NaN: the sum of the node's bottoms'):
        the paths are centred on their reconciled value (above). None: the draws as
        the quantiles give them.

    Returns
    -------
    ReconciledSamples

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> base = to_nodes(h, da).values  # coherent base means (nodes x months)
    >>> q = np.stack([0.8 * base, base, 1.2 * base], axis=-1)  # p10, p50, p90 of every node
    >>> s = sample_reconciled(q, [0.1, 0.5, 0.9], h, method="ols",
    ...                       settings=SampleSettings(n_samples=200))
    >>> s.samples.shape, s.quantiles.shape
    ((10, 2, 200), (10, 2, 3))
    >>> bool(np.allclose(s.samples[0], s.samples[h.bottom].sum(axis=0)))  # every path adds up
    True
    """
    qn = np.asarray(node_quantiles, dtype=float)
    n, h, _ = qn.shape
    if n != hierarchy.n_nodes:
        raise ParameterError(
            f"node_quantiles has {n} nodes but the hierarchy has {hierarchy.n_nodes}"
        )
    if max_dense_nodes is None:
        max_dense_nodes = MINT_SHRINK_MAX_NODES
    if n > max_dense_nodes and h > 1:  # a month at a time (it calls this with h = 1)
        return sample_reconciled_by_month(
            qn, levels, hierarchy, method=method, residuals=residuals,
            nonnegative=nonnegative, locked=locked, settings=settings, steps=steps,
            max_dense_nodes=max_dense_nodes, means=means,
        )  # fmt: skip
    # One BLAS thread for the draws, their reconciliation and their centring: the last bits
    # of their matrix products and solves would otherwise follow the machine's thread count,
    # and a band must be the same here and on a cluster's workers (which run one thread each).
    with threadpool_limits(1, user_api="blas"):
        if settings.scale is not None:
            qn = scale_band(qn, levels, settings.scale.factors_of(hierarchy, h))
        N = int(settings.n_samples)
        rng = np.random.default_rng(settings.seed)
        bottom_residuals = None if residuals is None else np.asarray(residuals)[hierarchy.bottom]
        cov = _correlation_sampler(bottom_residuals, hierarchy.n_bottom, settings.shrink)
        shocks = shared_shocks(cov, qn, levels, hierarchy)
        z = _scores(cov, shocks, qn, levels, hierarchy, rng, N)
        draws = quantile_paths(z, qn, levels)
        base_mean = None
        if means is not None:
            base_mean = _filled_means(np.asarray(means, dtype=float).reshape(n, h), hierarchy)
            draws = _stretch_tails(draws, z, levels, base_mean)
        del z
        locks = _resolve_locks(hierarchy, locked, n, h)
        names = list(steps) if steps is not None else [f"horizon step {t + 1}" for t in range(h)]
        samples, mean, info = _reconcile_draws(
            draws, base_mean, hierarchy, method, residuals, nonnegative, locks, names,
            max_dense_nodes,
        )  # fmt: skip
        if mean is not None:
            samples = _centre_paths(samples, mean, hierarchy, locks, nonnegative)
            info["mean_gap"] = _mean_gap(samples, mean)
        lv = np.asarray(levels, dtype=float)
        quant = np.moveaxis(np.quantile(samples, lv, axis=-1), 0, -1)
        info = {
            **info,
            "n_samples": N,
            "seed": int(settings.seed),
            "shared_shocks": dict(zip(shocks.levels, shocks.kappa.tolist(), strict=True)),
            "offsetting_shocks": dict(
                zip(shocks.levels, shocks.offsetting_weights().tolist(), strict=True)
            ),
            "band_scale": None if settings.scale is None else settings.scale.as_dict(),
        }
        return ReconciledSamples(samples=samples, quantiles=quant, levels=lv, info=info, mean=mean)


def _mean_gap(samples: np.ndarray, mean: np.ndarray) -> float:
    """Largest distance of a node's path average from its mean, relative to the largest mean."""
    scale = max(float(np.abs(mean).max(initial=0.0)), 1.0)
    return float(np.abs(samples.mean(axis=-1) - mean).max(initial=0.0)) / scale


def _reconcile_draws(
    draws: np.ndarray,
    base_mean: np.ndarray | None,
    hierarchy: Hierarchy,
    method: str,
    residuals: np.ndarray | None,
    nonnegative: bool,
    locks: Mapping[int, np.ndarray],
    names: Sequence[str],
    max_dense_nodes: int,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Every draw (and the base means, as h more columns) reconciled alike.

    Returns the (n x h x N) reconciled paths, the (n x h) reconciled means (None
    without base means) and the reconciler's info.
    """
    n, h, N = draws.shape
    cols = {i: np.repeat(v, N) for i, v in locks.items()}  # columns month-major: t * N + s
    flat = draws.reshape(n, h * N)
    steps_all = [name for name in names for _ in range(N)]
    if base_mean is not None:
        flat = np.concatenate([flat, base_mean], axis=1)
        cols = {i: np.concatenate([c, locks[i]]) for i, c in cols.items()}
        steps_all += list(names)
    rec = reconciler(method, nonnegative=nonnegative, max_dense_nodes=max_dense_nodes)
    if isinstance(rec, MinTrace):
        out, info = rec.reconcile(flat, hierarchy, residuals, cols, steps=steps_all)
    else:
        out, info = rec.reconcile(flat, hierarchy, residuals, cols)
    mean = None if base_mean is None else np.array(out[:, h * N :])
    return out[:, : h * N].reshape(n, h, N), mean, info


def _month_seed(seed: int, t: int) -> int:
    """The seed of month ``t``'s draws: a child of ``seed`` (same seed, same paths)."""
    return int(np.random.SeedSequence([int(seed), int(t)]).generate_state(1)[0])


def _path_checks(
    hierarchy: Hierarchy, samples: np.ndarray, locks: Mapping[int, np.ndarray]
) -> dict[str, float | bool]:
    """What one month's reconciled paths (n x N) hold: coherence gap, minimum, locks kept."""
    scale = max(float(np.abs(samples).max()), 1.0)
    gap = 0.0
    for start in range(0, samples.shape[1], PROJECTION_BLOCK):
        block = samples[:, start : start + PROJECTION_BLOCK]
        gap = max(gap, float(np.abs(hierarchy.S @ block[hierarchy.bottom] - block).max()))
    held = all(bool(np.all(samples[i] == v[0])) for i, v in locks.items() if np.isfinite(v[0]))
    return {"coherence_gap": gap / scale, "min": float(samples.min()), "locks_held": held}


def sample_reconciled_by_month(
    node_quantiles: np.ndarray,
    levels: Sequence[float],
    hierarchy: Hierarchy,
    method: str = "mint_shrink",
    residuals: np.ndarray | None = None,
    nonnegative: bool = True,
    locked: Mapping | None = None,
    settings: SampleSettings = DEFAULT_SAMPLING,
    steps: Sequence[str] | None = None,
    keep_samples: bool = True,
    max_dense_nodes: int = MINT_SHRINK_MAX_NODES,
    means: np.ndarray | None = None,
) -> ReconciledSamples:
    """:func:`sample_reconciled` one month at a time: sampled quantiles at any size.

    :func:`sample_reconciled` draws the months independently, so drawing and
    reconciling each month on its own gives paths of the same distribution while
    holding (n_nodes x n_samples) draws instead of (n_nodes x h x n_samples): at
    45,000 nodes, 500 paths and 12 months, 180 MB a month instead of 2.2 GB for each
    of the sampler's arrays. Month ``t`` is drawn with a seed derived from
    ``settings.seed`` and ``t`` (:class:`numpy.random.SeedSequence`), so the same
    seed gives the same paths whichever solver reconciles them. Above
    ``max_dense_nodes`` nodes ``mint_shrink`` uses the low-rank solver
    (:class:`_LowRankProjection`: nothing (n x n) is formed; its factorisation is
    shared by the months, and a column's bottoms held at 0 condition the solution
    rather than being factored in, :meth:`_LowRankProjection.nonnegative`).

    A progress bar counts the months on a terminal. Every month's paths are checked
    before they are summarised: ``info["checks"]``
    has the largest coherence gap (relative to the largest value), the smallest
    value and whether every lock holds exactly, over all paths and months.

    Parameters
    ----------
    node_quantiles, levels, hierarchy, method, residuals, nonnegative, locked, settings, steps
        As in :func:`sample_reconciled`.
    means : np.ndarray, optional
        (n_nodes x h) base means: the paths centred on their reconciled value, as in
        :func:`sample_reconciled`.
    keep_samples : bool
        Return the paths (n_nodes x h x n_samples); False returns the quantiles alone
        (``samples`` is then an empty (n_nodes x h x 0) array).
    max_dense_nodes : int
        ``mint_shrink``'s dense covariance up to this many nodes (:class:`MinTrace`).

    Returns
    -------
    ReconciledSamples

    Examples
    --------
    >>> from revmodel.sample import toy_cube
    >>> da = toy_cube([[[[1.0, 2.0], [3.0, 4.0]]]])  # 1 segment x 1 region x 2 reps x 2 months
    >>> h = hierarchy_from_cube(da)
    >>> base = to_nodes(h, da).values
    >>> q = np.stack([0.8 * base, base, 1.2 * base], axis=-1)  # p10, p50, p90 of every node
    >>> s = sample_reconciled_by_month(q, [0.1, 0.5, 0.9], h, method="ols",
    ...                                settings=SampleSettings(n_samples=100))
    >>> s.samples.shape, s.info["checks"]["locks_held"], s.info["checks"]["min"] >= 0
    ((10, 2, 100), True, True)
    """
    qn = np.asarray(node_quantiles, dtype=float)
    n, h, _ = qn.shape
    lv = np.asarray(levels, dtype=float)
    band_scale = settings.scale
    if band_scale is not None:  # each month ahead its own factors: scaled here, not per month
        qn = scale_band(qn, levels, band_scale.factors_of(hierarchy, h))
        settings = replace(settings, scale=None)
    names = list(steps) if steps is not None else [f"horizon step {t + 1}" for t in range(h)]
    locks = _resolve_locks(hierarchy, locked, n, h)
    N = int(settings.n_samples)
    quantiles = np.empty((n, h, lv.size))
    samples = np.empty((n, h, N if keep_samples else 0))
    centre = None if means is None else np.asarray(means, dtype=float).reshape(n, h)
    mean = None if centre is None else np.empty((n, h))
    info: dict[str, Any] = {"nonnegative_iterations": 0, "nonnegative_converged": True}
    checks = {"coherence_gap": 0.0, "min": np.inf, "locks_held": True}
    shocks: dict[str, dict[str, list[float]]] = {}
    from revmodel import progress

    months = progress.bar(range(h), desc="reconcile paths", unit="month")
    for t in months:
        month_locks = {i: v[t : t + 1] for i, v in locks.items()}
        drawn = sample_reconciled(
            qn[:, t : t + 1],
            lv,
            hierarchy,
            method=method,
            residuals=residuals,
            nonnegative=nonnegative,
            locked=month_locks,
            settings=replace(settings, seed=_month_seed(settings.seed, t)),
            steps=names[t : t + 1],
            max_dense_nodes=max_dense_nodes,
            means=None if centre is None else centre[:, t : t + 1],
        )
        paths = drawn.samples[:, 0, :]
        if mean is not None:
            mean[:, t] = drawn.mean[:, 0]
        got = _path_checks(hierarchy, paths, month_locks)
        checks["coherence_gap"] = max(checks["coherence_gap"], got["coherence_gap"])
        checks["min"] = min(checks["min"], got["min"])
        checks["locks_held"] = checks["locks_held"] and got["locks_held"]
        quantiles[:, t] = drawn.quantiles[:, 0]
        if keep_samples:
            samples[:, t] = paths
        for key, value in drawn.info.items():
            if key == "nonnegative_iterations":
                info[key] += int(value or 0)
            elif key == "nonnegative_converged":
                info[key] = info[key] and bool(value)
            elif key == "mean_gap":
                info[key] = max(info.get(key, 0.0), float(value))
            elif key in ("shared_shocks", "offsetting_shocks"):
                for level, kappa in value.items():
                    shocks.setdefault(key, {}).setdefault(level, []).extend(kappa)
            else:
                info.setdefault(key, value)
        del drawn, paths
    months.close()
    info.update(seed=int(settings.seed), checks=checks, by_month=True)
    info.update({key: shocks.get(key, {}) for key in ("shared_shocks", "offsetting_shocks")})
    if mean is not None and keep_samples:
        info["mean_gap"] = _mean_gap(samples, mean)  # relative to the largest mean of any month
    info["band_scale"] = None if band_scale is None else band_scale.as_dict()
    return ReconciledSamples(samples=samples, quantiles=quantiles, levels=lv, info=info, mean=mean)


__all__ = [
    "METHODS",
    "Hierarchy",
    "hierarchy_from_cube",
    "aggregate",
    "to_nodes",
    "from_nodes",
    "BottomUp",
    "TopDown",
    "MinTrace",
    "reconciler",
    "locks_from_frame",
    "reconcile_cube",
    "SampleSettings",
    "BandScale",
    "BandCalibration",
    "band_scores",
    "learn_band_scale",
    "scale_band",
    "sample_reconciled",
    "sample_reconciled_by_month",
    "period_quantiles",
]
