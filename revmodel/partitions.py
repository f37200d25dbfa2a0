"""Tables exported as Parquet partitions, read and validated one partition per dask task.

Warehouses and data platforms export a large table as a folder of Parquet parts
(Spark, Snowflake's ``COPY INTO``, BigQuery, dask and pyarrow all write
``opportunities/part-0000.parquet, part-0001.parquet, ...``). In a data folder, a
table may be such a folder, named as the table (``opportunities/`` or
``opportunities.parquet/``). :func:`load` reads and validates each part as its
own task, on a ``dask.distributed`` scheduler given by address (or dask's local
threads without one), with the tables given as single files beside it (on a
cluster, the data folder is read at the same path by every worker: a shared file
system); the
accepted rows of the parts are joined, the reports added up and the rejected
rows kept, each in the quarantine folder of its part.

What is checked across parts: the key of a partitioned table must be unique over
all its parts (a duplicate is a clear error naming the parts), since each part
alone cannot see the others. Without any partitioned table, :func:`load` is
:func:`revmodel.sources.load`.

Example
-------
>>> result = load("exports/", scheduler="tcp://10.0.0.5:8786")  # doctest: +SKIP
>>> result.reports["opportunities"].rows_read  # doctest: +SKIP
7612345
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from revmodel import schema, sources
from revmodel.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadSettings:
    """What every part is loaded with (as :func:`revmodel.sources.load` takes it)."""

    mapping: str | None = None
    as_of: str | None = None
    segment_bands: tuple[tuple[str, float, float], ...] | None = None
    #: Each part's opportunities come back as :func:`revmodel.cube.deal_cells`, not rows.
    deal_cells: bool = False
    #: The tables given as files come back with this part (one part brings them).
    others: bool = True


def write_parts(frame: pd.DataFrame, folder: str | Path, table: str, parts: int) -> Path:
    """``frame`` written as ``parts`` Parquet parts ``folder/<table>/part-0000.parquet, ...``
    (rows in order, split evenly), as a warehouse exports a large table; 0: one file
    ``folder/<table>.parquet``. Returns the folder or file written."""
    folder = Path(folder)
    if parts == 0:
        out = folder / f"{table}.parquet"
        frame.to_parquet(out, index=False)
        return out
    out = folder / table
    out.mkdir()
    n = len(frame)
    for i in range(parts):
        chunk = frame.iloc[i * n // parts : (i + 1) * n // parts]
        chunk.to_parquet(out / f"part-{i:04d}.parquet", index=False)
    return out


def partitioned_tables(data_dir: str | Path) -> dict[str, list[Path]]:
    """Each table given as a folder of Parquet parts in ``data_dir``: its parts, sorted."""
    data_dir = Path(data_dir)
    found: dict[str, list[Path]] = {}
    for name in schema.TABLES:
        for folder in (data_dir / name, data_dir / f"{name}.parquet"):
            if folder.is_dir():
                parts = sorted(folder.glob("*.parquet"))
                if not parts:
                    raise DataError(
                        f"{folder}/ holds no .parquet part; a table given as a folder is read "
                        "as its Parquet parts (part-0000.parquet, ...)"
                    )
                found[name] = parts
    return found


def _load_part(
    data_dir: Path,
    name: str,
    part: Path,
    quarantine: Path,
    settings: LoadSettings,
    references: sources.References | None = None,
) -> sources.LoadResult:
    """Load ``part`` as the table ``name``, beside the tables given as files in ``data_dir``.

    Runs on a worker: the part is staged (linked) in a folder of the worker's own
    with the other tables, and that folder is loaded as any data folder. Given the
    ``references`` (the keys of the reps and accounts, read once for the whole load),
    only the part and the mapping are staged and read: the other files are validated
    once, with the part that brings them (``settings.others``).
    """
    stage = Path(tempfile.mkdtemp(prefix="revmodel-part-"))
    # a part reduced to deal cells needs the accounts and reps to label its deals
    alone = references is not None and not settings.others and not settings.deal_cells
    try:
        for entry in data_dir.iterdir():
            if entry.is_file() and (not alone or entry.name in sources.MAPPING_NAMES):
                os.symlink(entry.resolve(), stage / entry.name)
        os.symlink(part.resolve(), stage / f"{name}.parquet")
        result = sources.load(
            stage,
            mapping=settings.mapping,
            quarantine_dir=quarantine,
            as_of=settings.as_of,
            segment_bands=settings.segment_bands,
            only=(name,) if alone else None,
            references=references if alone else None,
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _name_the_part(result, name, f"{part.parent.name}/{part.name}")
    if settings.deal_cells:
        _reduce_to_cells(result, name)
    if not settings.others:
        result.tables = {
            k: v for k, v in result.tables.items() if k not in schema.TABLES or k == name
        }
    return result


#: Where a part reduced to deal cells keeps the hashes of its accepted rows' keys.
_KEY_HASHES = "key_hashes"
#: Where it keeps its deals' labels (:func:`revmodel.history.deal_labels`), on the worker.
_PART_LABELS = "part_deal_labels"


def _reduce_to_cells(result: sources.LoadResult, name: str) -> None:
    """On the worker: the part's accepted rows replaced by what the cube needs of them.

    The opportunities become :func:`revmodel.cube.deal_cells` with the accounts they
    name; what is kept of the rows to check the key over all parts is a 64-bit hash of
    each key (8 bytes a row), and to label the deals of the pipeline history, each
    deal's region, manager, rep and segment (:func:`_history_labels` takes those
    the history names).
    """
    from revmodel import cube, history

    frame = result.tables[name]
    key = list(schema.TABLES[name].unique_columns)
    hashes = pd.util.hash_pandas_object(frame[key].astype("string"), index=False).to_numpy()
    result.tables[_KEY_HASHES] = pd.DataFrame({"hash": hashes})
    if name == "opportunities":
        if "account_id" in frame:
            accounts = cube.account_amounts(frame)
        else:
            accounts = pd.DataFrame({"account_id": pd.Series(dtype=object)})
        result.tables[cube.OPPORTUNITY_ACCOUNTS] = accounts
        result.tables[cube.OPPORTUNITY_DATES] = cube.deal_dates(frame)
        result.tables[_PART_LABELS] = history.deal_labels(result.tables)
        result.tables[name] = cube.deal_cells(result.tables)


def _name_the_part(result: sources.LoadResult, name: str, label: str) -> None:
    """Rows rejected in a part name the part (``opportunities/part-0002.parquet``), not the
    staged file: in the quarantine file and in each problem's example."""
    report = result.reports[name]
    report.problems = [
        p._replace(example=f"{label} {p.example}" if p.example else label) for p in report.problems
    ]
    for frame, path in (
        (result.quarantine.get(name), report.quarantine_file),
        (result.blanked.get(name), report.blanked_file),
    ):
        if frame is None or frame.empty:
            continue
        frame["file"] = label
        if path is not None and Path(path).is_file():
            on_disk = pd.read_csv(path, dtype=str, keep_default_na=False)
            on_disk["file"] = label
            on_disk.to_csv(path, index=False)


def _joined_report(name: str, folder: str, reports: list[sources.TableReport], qdir: Path):
    first = reports[0]
    return sources.TableReport(
        table=name,
        file=f"{folder}/ ({len(reports)} parts)",
        encoding=first.encoding,
        rows_read=sum(r.rows_read for r in reports),
        rows_accepted=sum(r.rows_accepted for r in reports),
        rows_quarantined=sum(r.rows_quarantined for r in reports),
        problems=[p for r in reports for p in r.problems],
        notes=list(dict.fromkeys(n for r in reports for n in r.notes)),
        quarantine_file=qdir if any(r.quarantine_file for r in reports) else None,
        advice=list(dict.fromkeys(a for r in reports for a in r.advice)),
        values_blanked=sum(r.values_blanked for r in reports),
        currency_seen=next((r.currency_seen for r in reports if r.currency_seen), None),
    )


def _check_keys(name: str, frame: pd.DataFrame, part_of_row: pd.Series) -> None:
    """A partitioned table's key is unique over all its parts."""
    key = list(schema.TABLES[name].unique_columns)
    dup = frame.duplicated(key, keep=False).to_numpy()
    if not dup.any():
        return
    values = frame[key].astype("string").agg("/".join, axis=1).to_numpy()
    example = values[dup][0]
    parts = sorted(set(part_of_row.to_numpy()[values == example]))
    raise DataError(
        f"{name}: {'/'.join(key)} {example!r} is in more than one part ({', '.join(parts)}); "
        f"{int(dup.sum()):,} rows share a key across parts. Export the table again so that "
        "each row is in one part only."
    )


def _join(
    name: str, folder: str, parts: list[Path], results: list[sources.LoadResult], qroot: Path
) -> tuple[pd.DataFrame, sources.TableReport, pd.DataFrame]:
    frames = [r.tables[name] for r in results]
    joined = pd.concat(frames, ignore_index=True)
    owner = pd.Series([p.name for p, f in zip(parts, frames, strict=True) for _ in range(len(f))])
    _check_keys(name, joined, owner)
    report = _joined_report(name, folder, [r.reports[name] for r in results], qroot)
    quarantined = [r.quarantine[name] for r in results if name in r.quarantine]
    bad = pd.concat(quarantined, ignore_index=True) if quarantined else pd.DataFrame()
    return joined, report, bad


def _keys_of(
    data_dir: Path,
    name: str,
    part: Path,
    quarantine: Path,
    settings: LoadSettings,
    references: sources.References | None,
    hashes,
) -> pd.DataFrame:
    """On a worker: the accepted rows of ``part`` whose key hashes to one of ``hashes``."""
    settings = dataclasses.replace(settings, deal_cells=False)
    rows = _load_part(data_dir, name, part, quarantine, settings, references).tables[name]
    key = list(schema.TABLES[name].unique_columns)
    hashed = pd.util.hash_pandas_object(rows[key].astype("string"), index=False).to_numpy()
    return rows.loc[pd.Index(hashes).get_indexer(hashed) >= 0, key].reset_index(drop=True)


#: Parts' deal cells (and account sums) are added up this many at a time, on the workers.
_SPLIT_EVERY = 8


def _tree(combine, items: list):
    """``combine`` of every item, as a tree of dask tasks ``_SPLIT_EVERY`` wide (on the workers)."""
    import dask

    while len(items) > 1:
        items = [
            dask.delayed(combine, pure=True)(items[i : i + _SPLIT_EVERY])
            for i in range(0, len(items), _SPLIT_EVERY)
        ]
    return items[0]


def _table_of(result: sources.LoadResult, name: str) -> pd.DataFrame:
    return result.tables[name]


def _reported(result: sources.LoadResult, name: str) -> sources.LoadResult:
    """A part's result without what is added up on the workers: its reports, quarantine and
    (for the first part) the tables given as files are what comes back."""
    from revmodel import cube

    drop = {name, _KEY_HASHES, _PART_LABELS, cube.OPPORTUNITY_ACCOUNTS, cube.OPPORTUNITY_DATES}
    kept = {k: v for k, v in result.tables.items() if k not in drop}
    return dataclasses.replace(result, tables=kept)


def _repeated_keys(hashes: list):
    """The key hashes found more than once over every part, counted on the workers
    (a dask dataframe ``value_counts``): only the repeated ones come back."""
    import dask.dataframe as dd

    meta = pd.DataFrame({"hash": pd.Series(dtype="uint64")})
    counts = dd.from_delayed(hashes, meta=meta, verify_meta=False)["hash"].value_counts(
        split_every=_SPLIT_EVERY, split_out=1
    )
    (repeated,) = counts[counts > 1].to_delayed()
    return repeated


def _history_ids(first: sources.LoadResult, root: Path) -> pd.Index:
    """On a worker: the deals the pipeline history names (its ``opportunity_history``
    table, loaded with the first part, else the folder's snapshots)."""
    from revmodel import snapshots

    hist = first.tables.get("opportunity_history")
    if hist is None or not len(hist):
        store = snapshots.store_dir(root)
        if not snapshots.list_snapshots(store):
            return pd.Index([], dtype="string")
        hist = snapshots.history_from_snapshots(store)
    return pd.Index(hist["opportunity_id"].astype("string").unique())


def _history_labels(result: sources.LoadResult, ids: pd.Index) -> pd.DataFrame:
    """On a worker: the labels of the part's deals the history names (only those come back)."""
    labels = result.tables.get(_PART_LABELS)
    if labels is None:
        return pd.DataFrame()
    return labels[labels.index.isin(ids)].reset_index()


def _load_cells(
    name: str, parts: list[Path], calls: list[tuple], qroot: Path, scheduler: str | None
) -> sources.LoadResult:
    """Parts loaded, validated and reduced to deal cells, added up where they are read.

    Each part's task loads its part; the deal cells and the accounts' sums of every part
    are added up by a tree of tasks, and the key hashes counted by a dask dataframe, on
    the workers: what comes back is the parts' reports and quarantined rows, the cells
    of the whole table, one row per account, the repeated keys (none, normally) and the
    labels of the deals the pipeline history names (:data:`revmodel.history.LABELS_TABLE`:
    the plan's "what changed" and value add sections follow each of those deals).
    """
    import dask

    from revmodel import cube, history

    loaded = [dask.delayed(_load_part, pure=False)(*call) for call in calls]
    reported = [dask.delayed(_reported)(r, name) for r in loaded]
    cells = _tree(cube.combine_deal_cells, [dask.delayed(_table_of)(r, name) for r in loaded])
    accounts = _tree(
        cube.combine_account_amounts,
        [dask.delayed(_table_of)(r, cube.OPPORTUNITY_ACCOUNTS) for r in loaded],
    )
    dates = _tree(
        cube.combine_deal_dates,
        [dask.delayed(_table_of)(r, cube.OPPORTUNITY_DATES) for r in loaded],
    )
    hashes = [dask.delayed(_table_of)(r, _KEY_HASHES) for r in loaded]
    ids = dask.delayed(_history_ids)(loaded[0], calls[0][0])
    labels = dask.delayed(pd.concat)(
        [dask.delayed(_history_labels)(r, ids) for r in loaded], ignore_index=True
    )
    *results, joined, named, dated, repeated, labelled = _run(
        [*reported, cells, accounts, dates, _repeated_keys(hashes), labels],
        scheduler,
        f"load {name}",
    )
    log.info("%s: %d parts read, validated and added up on the workers", name, len(parts))
    if len(repeated):
        # the rows behind the repeated hashes, read again: the same message as for rows
        keys = repeated.index.to_numpy()
        frames = _run(
            [dask.delayed(_keys_of, pure=False)(*c, keys) for c in calls], scheduler, "keys"
        )
        owner = pd.Series(
            [p.name for p, f in zip(parts, frames, strict=True) for _ in range(len(f))]
        )
        _check_keys(name, pd.concat(frames, ignore_index=True), owner)
    first = results[0]
    first.tables[name] = joined
    if name == "opportunities":
        first.tables[cube.OPPORTUNITY_ACCOUNTS] = named
        first.tables[cube.OPPORTUNITY_DATES] = dated
        first.tables[history.LABELS_TABLE] = labelled
    first.reports[name] = _joined_report(
        name, parts[0].parent.name, [r.reports[name] for r in results], qroot
    )
    quarantined = [r.quarantine[name] for r in results if name in r.quarantine]
    if quarantined:
        first.quarantine[name] = pd.concat(quarantined, ignore_index=True)
    return first


def load(
    data_dir: str | Path,
    mapping: str | Path | None = None,
    quarantine_dir: str | Path | None = None,
    as_of: str | None = None,
    scheduler: str | None = None,
    segment_bands: Sequence[tuple[str, float, float]] | None = None,
    deal_cells: bool = False,
) -> sources.LoadResult:
    """Load a data folder whose large tables may be folders of Parquet parts.

    Parameters
    ----------
    data_dir, mapping, quarantine_dir, as_of, segment_bands
        As in :func:`revmodel.sources.load`.
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler: every part is read and
        validated on its workers. Default: dask's local threads.
    deal_cells : bool
        Opportunities given as parts come back as :func:`revmodel.cube.deal_cells`
        (each part reduced where it is read, the parts' cells added up) with the
        accounts they name (:data:`revmodel.cube.OPPORTUNITY_ACCOUNTS`), not as
        rows: what :func:`revmodel.cube.build_cube` needs, without the whole table
        on this machine. The key is still checked over every part (by hashes, the
        rows behind a repeated one read again to name them).

    Returns
    -------
    revmodel.sources.LoadResult
        As :func:`revmodel.sources.load` gives it, a partitioned table joined from
        its parts (its report's ``file`` names the folder and the number of parts).
    """
    data_dir = Path(data_dir)
    partitioned = partitioned_tables(data_dir) if data_dir.is_dir() else {}
    if not partitioned:
        return sources.load(
            data_dir,
            mapping=mapping,
            quarantine_dir=quarantine_dir,
            as_of=as_of,
            segment_bands=segment_bands,
        )
    if len(partitioned) > 1:
        raise DataError(
            f"{data_dir}: {' and '.join(sorted(partitioned))} are both given as Parquet parts; "
            "give one table (the largest, usually opportunities) in parts and the others as files"
        )
    ((name, parts),) = partitioned.items()
    qroot = Path(quarantine_dir) if quarantine_dir is not None else data_dir / "quarantine"
    bands = None if segment_bands is None else tuple(tuple(b) for b in segment_bands)
    settings = LoadSettings(None if mapping is None else str(mapping), as_of, bands)
    settings = dataclasses.replace(settings, deal_cells=deal_cells and name == "opportunities")
    root = data_dir.resolve()
    # the keys other tables refer to, read once (on a worker) and given to every part
    refs = _delayed_references(root, settings.mapping) if len(parts) > 1 else None
    calls = [
        (
            root,
            name,
            p,
            qroot / f"{name}-{p.stem}",
            dataclasses.replace(settings, others=i == 0),
            refs if i else None,
        )
        for i, p in enumerate(parts)
    ]
    if settings.deal_cells:
        return _load_cells(name, parts, calls, qroot, scheduler)
    results = _compute(_load_part, calls, scheduler, f"load {name}")
    log.info("%s: %d parts read and validated", name, len(parts))
    first = results[0]
    joined, report, bad = _join(name, parts[0].parent.name, parts, results, qroot)
    first.tables[name] = joined
    first.reports[name] = report
    if len(bad):
        first.quarantine[name] = bad
    return first


def _delayed_references(root: Path, mapping: str | None):
    """:func:`revmodel.sources.references` as one dask task every part's task depends on."""
    import dask

    return dask.delayed(sources.references, pure=True)(root, mapping)


def _compute(fn, calls: list[tuple], scheduler: str | None, desc: str) -> list:
    """``fn(*call)`` for every call as a dask task (threads, or the scheduler's workers)."""
    import dask

    return _run([dask.delayed(fn, pure=False)(*call) for call in calls], scheduler, desc)


def _run(tasks: list, scheduler: str | None, desc: str) -> list:
    """Every dask collection of ``tasks`` computed (threads, or the scheduler's workers);
    a progress bar counts the graph's tasks (threads) or the results as they come back."""
    import dask

    from revmodel import progress

    if scheduler is None:
        with _task_bar(desc):
            return list(dask.compute(*tasks, scheduler="threads"))
    from dask.distributed import Client, as_completed

    with Client(scheduler, set_as_default=False) as client:
        futures = client.compute(tasks)
        order = {f.key: i for i, f in enumerate(futures)}
        out: list = [None] * len(futures)
        bar = progress.bar(total=len(futures), desc=desc, unit="task")
        for future in as_completed(futures, loop=client.loop):
            out[order[future.key]] = future.result()
            bar.update(1)
        bar.close()
    return out


def _task_bar(desc: str):
    """A dask callback counting the tasks the local scheduler runs on a
    :func:`revmodel.progress.bar` (as ``tqdm.dask.TqdmCallback`` counts them), so that a
    plan's kernel reports them too."""
    from dask.callbacks import Callback

    from revmodel import progress

    class TaskBar(Callback):
        def _start_state(self, dsk, state) -> None:
            total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
            self.bar = progress.bar(total=total, desc=desc, unit="task")

        def _posttask(self, *args, **kwargs) -> None:
            self.bar.update(1)

        def _finish(self, *args, **kwargs) -> None:
            self.bar.close()

    return TaskBar()
