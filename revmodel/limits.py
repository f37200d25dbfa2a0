"""Limits on everything an input can grow, and the one rule on the cube's size.

An export from an unknown source is read within :class:`Limits`: file size,
rows, columns, cell size, the expansion of an ``.xlsx`` archive, the window of
plausible dates and the largest plausible amount. Each limit gives a message
naming the file, row and column and the limit, never a traceback.

:func:`cube_size_problem` is the rule deciding whether the dimensions of a
data folder fit a cube; ``revmodel validate`` and the cube builder both call
it, so a folder ``validate`` calls usable builds a cube.

Example
-------
>>> Limits().max_amount
1000000000000.0
>>> cube_size_problem({"segment": 3, "region": 4, "rep": 50, "month": 36}) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Limits:
    """What the reader accepts; every field has a safe default.

    Attributes
    ----------
    max_file_bytes : int
        Largest export file [bytes].
    max_rows : int
        Most data rows in one file.
    max_columns : int
        Most columns in one file.
    max_cell_chars : int
        Longest cell [characters]; Salesforce's longest text field is 131,072.
    max_xlsx_bytes : int
        Largest uncompressed content of an ``.xlsx`` archive [bytes].
    max_xlsx_ratio : float
        Largest ratio of uncompressed to compressed size of an ``.xlsx``
        (real workbooks compress 5-30x; a zip bomb thousands of times).
    min_date : str
        Earliest plausible date (ISO); earlier dates are rejected.
    max_years_ahead : int
        Latest plausible date: ``as_of`` plus this many years.
    max_amount : float
        Largest plausible absolute amount [currency].
    max_name_chars : int
        Longest file name [characters] (most file systems allow 255).
    """

    max_file_bytes: int = 4 * 1024**3
    max_rows: int = 50_000_000
    max_columns: int = 1_000
    max_cell_chars: int = 131_072
    max_xlsx_bytes: int = 1024**3
    max_xlsx_ratio: float = 100.0
    min_date: str = "1990-01-01"
    max_years_ahead: int = 10
    max_amount: float = 1e12
    max_name_chars: int = 255

    def date_window(self, as_of: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The plausible dates ``(first, last)`` for ``as_of`` (both inclusive)."""
        return pd.Timestamp(self.min_date), as_of.normalize() + pd.DateOffset(
            years=self.max_years_ahead
        )


#: Most cells of the dense segment x region x rep x month cube.
MAX_CUBE_CELLS = 200_000_000
#: Most members of one dimension (free text in a segment or region column shows here).
MAX_MEMBERS: Mapping[str, int] = {"segment": 200, "region": 2_000, "rep": 100_000}


def cube_size_problem(sizes: Mapping[str, int]) -> str | None:
    """Why a cube of these dimension sizes cannot be built, or ``None`` when it can.

    Parameters
    ----------
    sizes : mapping of dimension name to member count
        e.g. ``{"segment": 3, "region": 4, "rep": 120, "month": 48}``.

    Returns
    -------
    str or None
        A message naming the dimension and the limit, e.g. ``"region has
        1,500 members; the limit is 2,000 ..."``.

    Example
    -------
    >>> cube_size_problem({"segment": 3, "region": 1500, "rep": 1500, "month": 48})
    'the cube would have 324,000,000 cells (segment 3 x region 1,500 x rep 1,500 x month 48); the limit is 200,000,000: check that segment and region hold a few labels each, not free text, or map them to fewer values'
    """
    for dim, most in MAX_MEMBERS.items():
        n = int(sizes.get(dim, 1))
        if n > most:
            return (
                f"{dim} has {n:,} distinct values; the limit is {most:,}: check that the "
                f"{dim} column holds labels, not free text, or map it to fewer values"
            )
    cells = 1
    for n in sizes.values():
        cells *= max(int(n), 1)
    if cells > MAX_CUBE_CELLS:
        shape = " x ".join(f"{d} {int(n):,}" for d, n in sizes.items())
        return (
            f"the cube would have {cells:,} cells ({shape}); the limit is {MAX_CUBE_CELLS:,}: "
            "check that segment and region hold a few labels each, not free text, "
            "or map them to fewer values"
        )
    return None


__all__ = ["MAX_CUBE_CELLS", "MAX_MEMBERS", "Limits", "cube_size_problem"]
