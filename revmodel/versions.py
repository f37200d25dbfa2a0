"""Plan versions: write-once storage with a manifest, and a cell-level diff between versions.

A version is a folder ``<store>/<kind>/<name>/`` holding the plan (``data.nc``,
NetCDF, or ``data.zarr``, Zarr format 2) and ``manifest.json``: the
parameters, the hash of the input data, the code version (package version and
git commit when there is one), the UTC creation time, the variables and dims,
and a checksum of the data files.

Write-once and atomic: a version is written into a hidden temporary folder
next to its final place (``<store>/<kind>/.tmp-<name>-<random>``), every file
and folder is flushed to disk (fsync), and the folder is then renamed into
place, which POSIX makes atomic. A version name that exists is never
overwritten (the caller must pick a new name); a write that fails leaves no
version (its temporary folder is removed, and :func:`list_versions` ignores
hidden folders a crash may leave). The data files of a saved version are made
read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import revmodel
from revmodel import config, encoding
from revmodel.errors import DataError, ParameterError

__all__ = [
    "FORMATS",
    "KINDS",
    "VersionInfo",
    "code_version",
    "data_hash",
    "diff_summary",
    "diff_versions",
    "list_versions",
    "load_version",
    "read_manifest",
    "save_version",
]

KINDS: tuple[str, ...] = ("budget", "forecast", "reforecast")
FORMATS: dict[str, str] = {"netcdf": "data.nc", "zarr": "data.zarr"}
MANIFEST = "manifest.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class VersionInfo:
    """What the manifest of a version says, and where it lives."""

    kind: str
    name: str
    path: Path
    created: str
    data_hash: str
    code_version: dict[str, str | None]
    parameters: dict[str, Any] = field(default_factory=dict)
    format: str = "netcdf"
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    checksum: str = ""


# --------------------------------------------------------------------------- hashes


def _sha256_file(path: Path, h: Any | None = None) -> Any:
    h = h or hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def _hash_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, in sorted order)."""
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            rel = p.relative_to(path).as_posix()
            if any(
                part.startswith(".") and part not in (".zattrs", ".zgroup", ".zarray", ".zmetadata")
                for part in p.relative_to(path).parts
            ):
                continue
            h.update(rel.encode() + b"\0")
            _sha256_file(p, h)
            h.update(b"\0")
    else:
        _sha256_file(path, h)
    return h.hexdigest()


def data_hash(source: Mapping[str, pd.DataFrame] | pd.DataFrame | str | Path) -> str:
    """A stable hash of the input data [sha256 hex].

    Parameters
    ----------
    source : mapping of str to pd.DataFrame, pd.DataFrame, or path
        Tables (hashed by table name and their CSV text, so the hash does not
        depend on the pandas version or the memory layout), or a file or folder
        (hashed by relative file names and bytes; hidden files skipped).
    """
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder to hash.")
        return _hash_path(path)
    tables = {"table": source} if isinstance(source, pd.DataFrame) else dict(source)
    h = hashlib.sha256()
    for name in sorted(tables):
        frame = tables[name]
        if frame is None:
            continue
        h.update(name.encode() + b"\0")
        text = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S", lineterminator="\n")
        h.update(text.encode("utf-8") + b"\0")
    return h.hexdigest()


def code_version() -> dict[str, str | None]:
    """``{"revmodel": version, "git_commit": sha or None}``; None when git or a checkout is absent."""
    commit: str | None = None
    try:
        done = subprocess.run(
            ["git", "-C", str(config.ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", done.stdout.strip()):
            commit = done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"revmodel": revmodel.__version__, "git_commit": commit}


# --------------------------------------------------------------------------- write


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ParameterError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}.")
    return kind


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ParameterError(
            f"version name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(at most 128 characters, not starting with '.' or '-'), e.g. FY2027-v1."
        )
    return name


def _fsync_tree(path: Path) -> None:
    """Flush every file and folder under ``path`` (and ``path`` itself) to disk."""
    items = [path] if path.is_file() else [*path.rglob("*"), path]
    for p in items:
        flags = os.O_RDONLY | (os.O_DIRECTORY if p.is_dir() else 0)
        fd = os.open(p, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encodable(plan: xr.Dataset) -> tuple[xr.Dataset, list[str]]:
    """The plan as NetCDF/Zarr write it (:func:`revmodel.encoding.encode`; its attrs travel in
    the manifest, which keeps any JSON value), and the names of its object variables."""
    objects = [str(n) for n, v in plan.variables.items() if v.dtype == object]
    return encoding.encode(plan, attrs=False), objects


def _write_data(plan: xr.Dataset, path: Path, fmt: str) -> None:
    if fmt == "netcdf":
        plan.to_netcdf(path, engine="netcdf4")
    else:
        plan.to_zarr(path, mode="w-", consolidated=True, zarr_format=2)


def save_version(
    plan: xr.Dataset,
    kind: str,
    name: str,
    store_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    data_hash: str = "",
    fmt: str = "netcdf",
) -> VersionInfo:
    """Save a plan as a new, write-once version.

    Parameters
    ----------
    plan : xr.Dataset
        The plan (numpy- or dask-backed).
    kind : {"budget", "forecast", "reforecast"}
        Kind of version; versions of a kind live in ``<store_dir>/<kind>/``.
    name : str
        Version name (letters, digits, ``.``, ``_``, ``-``), new within ``kind``.
    store_dir : str or Path
        The version store.
    parameters : mapping, optional
        What produced the plan (assumptions, options); saved as JSON.
    data_hash : str
        Hash of the input data, e.g. from :func:`data_hash`.
    fmt : {"netcdf", "zarr"}
        Storage format.

    Returns
    -------
    VersionInfo

    Raises
    ------
    ParameterError
        If the version exists (versions are never overwritten) or an argument is invalid.
    """
    _check_kind(kind)
    _check_name(name)
    if fmt not in FORMATS:
        raise ParameterError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    if not isinstance(plan, xr.Dataset):
        raise ParameterError(f"plan must be an xarray Dataset, got {type(plan).__name__}.")
    parent = Path(store_dir) / kind
    final = parent / name
    if final.exists():
        raise ParameterError(
            f"version {kind}/{name} already exists in {store_dir}: versions are write-once; "
            "pick a new name (e.g. add -v2)."
        )
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{name}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        encoded, objects = _encodable(plan)
        data_path = tmp / FORMATS[fmt]
        _write_data(encoded, data_path, fmt)
        info = VersionInfo(
            kind=kind,
            name=name,
            path=final,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            data_hash=str(data_hash),
            code_version=code_version(),
            parameters=encoding.jsonable(dict(parameters or {})),
            format=fmt,
            variables={
                str(k): {
                    "dims": list(v.dims),
                    "dtype": str(v.dtype),
                    "units": encoding.jsonable(v.attrs.get("units")),
                }
                for k, v in plan.data_vars.items()
            },
            dims={str(k): int(v) for k, v in plan.sizes.items()},
            checksum=_hash_path(data_path),
        )
        manifest = {
            **{k: v for k, v in asdict(info).items() if k != "path"},
            "attrs": encoding.jsonable(dict(plan.attrs)),
            "object_variables": objects,
        }
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8"
        )
        for p in [data_path, *data_path.rglob("*")] if data_path.is_dir() else [data_path]:
            if p.is_file():
                p.chmod(0o444)
        _fsync_tree(tmp)
        if final.exists():
            raise ParameterError(
                f"version {kind}/{name} was created in {store_dir} while this one was being "
                "written: pick a new name."
            )
        os.rename(tmp, final)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


# --------------------------------------------------------------------------- read


def _version_dir(store_dir: str | Path, kind: str, name: str) -> Path:
    _check_kind(kind)
    _check_name(name)
    path = Path(store_dir) / kind / name
    if not (path / MANIFEST).is_file():
        known = list_versions(store_dir)
        names = ", ".join(f"{k}/{n}" for k, n in zip(known["kind"], known["name"], strict=True))
        raise DataError(
            f"no version {kind}/{name} in {store_dir}; versions there: {names or 'none'}."
        )
    return path


def read_manifest(store_dir: str | Path, kind: str, name: str) -> VersionInfo:
    """The manifest of a saved version."""
    path = _version_dir(store_dir, kind, name)
    try:
        m = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path / MANIFEST}: unreadable manifest ({exc}).") from exc
    fields = {k: m[k] for k in VersionInfo.__dataclass_fields__ if k in m and k != "path"}
    return VersionInfo(path=path, **fields)


def load_version(store_dir: str | Path, kind: str, name: str, verify: bool = True) -> xr.Dataset:
    """Read a saved version back (numpy-backed), as it was saved.

    Parameters
    ----------
    verify : bool
        Check the data files against the manifest's checksum first.

    Raises
    ------
    DataError
        If there is no such version or its data no longer match the checksum.
    """
    path = _version_dir(store_dir, kind, name)
    m = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    data_path = path / FORMATS[m.get("format", "netcdf")]
    if verify and m.get("checksum") and _hash_path(data_path) != m["checksum"]:
        raise DataError(
            f"{data_path}: the data do not match the checksum in its manifest; the version was "
            "changed after it was saved. Restore it from a backup or save a new version."
        )
    try:
        if m.get("format") == "zarr":
            ds = xr.open_zarr(data_path, consolidated=True, chunks=None).load()
        else:
            with xr.open_dataset(data_path, engine="netcdf4") as f:
                ds = f.load()
    except (OSError, ValueError) as exc:
        raise DataError(f"{data_path}: unreadable version data ({exc}).") from exc
    ds = encoding.decode(ds, objects=tuple(m.get("object_variables", [])))
    ds.attrs = dict(m.get("attrs", {}))
    return ds


def list_versions(store_dir: str | Path) -> pd.DataFrame:
    """Every saved version in the store, oldest first.

    Returns
    -------
    pd.DataFrame
        ``kind``, ``name``, ``created``, ``data_hash``, ``revmodel``, ``git_commit``,
        ``format``, ``path``. Hidden folders (unfinished writes) are not versions.
    """
    rows = []
    root = Path(store_dir)
    for kind in KINDS:
        folder = root / kind
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.name.startswith(".") or not (p / MANIFEST).is_file():
                continue
            try:
                m = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            cv = m.get("code_version", {})
            rows.append(
                {
                    "kind": kind,
                    "name": p.name,
                    "created": m.get("created"),
                    "data_hash": m.get("data_hash"),
                    "revmodel": cv.get("revmodel"),
                    "git_commit": cv.get("git_commit"),
                    "format": m.get("format"),
                    "path": str(p),
                }
            )
    cols = ["kind", "name", "created", "data_hash", "revmodel", "git_commit", "format", "path"]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.sort_values(["created", "kind", "name"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- diff


def _as_plan(obj: xr.Dataset | VersionInfo | tuple) -> xr.Dataset:
    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, VersionInfo):
        return load_version(obj.path.parent.parent, obj.kind, obj.name)
    if isinstance(obj, tuple) and len(obj) == 3:
        return load_version(*obj)
    raise ParameterError(
        "diff_versions compares Datasets, VersionInfo or (store_dir, kind, name) tuples, "
        f"got {type(obj).__name__}."
    )


def diff_versions(
    a: xr.Dataset | VersionInfo | tuple,
    b: xr.Dataset | VersionInfo | tuple,
    rtol: float = 1e-9,
    atol: float = 0.0,
    variables: Iterable[str] | None = None,
) -> pd.DataFrame:
    """What moved between two versions, cell by cell, biggest move first.

    Parameters
    ----------
    a, b : xr.Dataset, VersionInfo or (store_dir, kind, name)
        The old and the new version.
    rtol, atol : float
        Cells within ``atol + rtol * |old|`` are unchanged.
    variables : iterable of str, optional
        Variables to compare; default the numeric variables of both.

    Returns
    -------
    pd.DataFrame
        One row per changed cell: ``variable``, a column per dimension (and per
        coordinate along one, e.g. ``manager``, ``fiscal_quarter``), ``old``,
        ``new``, ``change`` (new - old), ``pct_change`` (change / |old|; NaN when
        old is 0), ``status`` (``changed``, ``added``: NaN or absent before,
        ``removed``). Sorted by ``|change|`` descending, added and removed cells
        last. ``attrs["only_in_old"]`` and ``attrs["only_in_new"]`` list variables
        in one version only.
    """
    old_ds, new_ds = _as_plan(a), _as_plan(b)
    numeric = {k for k, v in old_ds.data_vars.items() if np.issubdtype(v.dtype, np.number)} & {
        k for k, v in new_ds.data_vars.items() if np.issubdtype(v.dtype, np.number)
    }
    names = sorted(numeric) if variables is None else list(variables)
    missing = [n for n in names if n not in old_ds or n not in new_ds]
    if missing:
        raise ParameterError(f"variable {missing[0]!r} is not in both versions.")
    frames = []
    for name in names:
        o, n = xr.align(old_ds[name].load(), new_ds[name].load(), join="outer")
        ov = np.asarray(o.values, dtype=float)
        nv = np.asarray(n.values, dtype=float)
        o_nan, n_nan = np.isnan(ov), np.isnan(nv)
        close = np.isclose(nv, ov, rtol=rtol, atol=atol)
        moved = (~o_nan & ~n_nan & ~close) | (o_nan != n_nan)
        idx = np.nonzero(moved)
        if not idx[0].size and ov.ndim:
            continue
        if ov.ndim == 0:
            if not bool(moved):
                continue
            cols: dict[str, Any] = {}
            old_v, new_v, nanmask = (
                ov.reshape(1),
                nv.reshape(1),
                (o_nan.reshape(1), n_nan.reshape(1)),
            )
        else:
            cols = {}
            for axis, dim in enumerate(o.dims):
                cols[dim] = o[dim].values[idx[axis]]
                for cname, coord in o.coords.items():
                    if coord.dims == (dim,) and cname != dim:
                        cols[cname] = coord.values[idx[axis]]
            old_v, new_v = ov[idx], nv[idx]
            nanmask = (o_nan[idx], n_nan[idx])
        change = new_v - old_v
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(old_v != 0, change / np.abs(old_v), np.nan)
        status = np.where(nanmask[0], "added", np.where(nanmask[1], "removed", "changed"))
        frames.append(
            pd.DataFrame(
                {
                    "variable": name,
                    **cols,
                    "old": old_v,
                    "new": new_v,
                    "change": change,
                    "pct_change": pct,
                    "status": status,
                }
            )
        )
    base = ["variable", "old", "new", "change", "pct_change", "status"]
    if frames:
        out = pd.concat(frames, ignore_index=True)
        lead = ["variable"] + [c for c in out.columns if c not in base]
        out = out[lead + base[1:]]
        order = np.argsort(
            -np.nan_to_num(np.abs(out["change"].to_numpy(dtype=float)), nan=-1.0), kind="stable"
        )
        out = out.iloc[order].reset_index(drop=True)
    else:
        out = pd.DataFrame(columns=base)
    out.attrs["only_in_old"] = sorted(set(old_ds.data_vars) - set(new_ds.data_vars))
    out.attrs["only_in_new"] = sorted(set(new_ds.data_vars) - set(old_ds.data_vars))
    return out


def diff_summary(diff: pd.DataFrame, by: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Sum a cell-level diff by variable (and by a level such as ``region``).

    Returns
    -------
    pd.DataFrame
        Indexed by ``variable`` (and ``by``): ``cells`` changed, ``old``, ``new``,
        ``change`` (sums over the changed cells, NaN counted as 0),
        ``largest_change`` (the biggest ``|change|`` of one cell, with sign).
    """
    keys = ["variable"] + ([] if by is None else [by] if isinstance(by, str) else list(by))
    absent = [k for k in keys if k not in diff.columns]
    if absent:
        raise ParameterError(
            f"diff has no column {absent[0]!r}; summarise by one of "
            f"{', '.join(c for c in diff.columns if c not in ('old', 'new', 'change', 'pct_change', 'status'))}."
        )
    cols = ["cells", "old", "new", "change", "largest_change"]
    if diff.empty:
        return pd.DataFrame(
            columns=cols,
            index=pd.MultiIndex.from_arrays([[]] * len(keys), names=keys)
            if len(keys) > 1
            else pd.Index([], name="variable"),
        )
    frame = diff.assign(
        cells=1,
        _abs=diff["change"].abs().fillna(-1.0),
        old=diff["old"].fillna(0.0),
        new=diff["new"].fillna(0.0),
    )
    frame["change"] = frame["new"] - frame["old"]
    grouped = frame.groupby(keys, sort=True)
    out = grouped[["cells", "old", "new", "change"]].sum()
    pick = frame.loc[grouped["_abs"].idxmax().to_numpy(), keys + ["change"]].set_index(keys)
    out["largest_change"] = pick["change"]
    return out.sort_values("change", key=np.abs, ascending=False)


def _exports_record(version: str) -> Path:
    return config.CACHE_DIR / "exports" / f"{version.replace('/', '--')}.json"


def remember_exports(version: str, data_dir: str | Path, mapping: str | Path | None) -> Path:
    """Keep on this machine where a published version's exports are (absolute paths).

    The pack itself never holds an absolute path (it is shared); the apps read
    this record to find exports kept outside the project folder.
    """
    record = {
        "data_dir": str(Path(data_dir).resolve()),
        "mapping": str(Path(mapping).resolve()) if mapping else None,
    }
    path = _exports_record(version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def remembered_exports(version: str) -> dict[str, str | None]:
    """This machine's record of a version's exports (:func:`remember_exports`); {} if none."""
    try:
        record = json.loads(_exports_record(version).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
