"""The sections of a plan and the tables each needs: partial data is a smaller plan.

With only ``opportunities`` the plan still publishes; a section whose inputs are
missing is not drawn from zeros but says, in words, that they are not provided
and what to add. This module is the one definition of that rule: the notebooks,
the pack (HTML, Excel, ``tables.json``) and the manifest ask it.

Example
-------
>>> import pandas as pd
>>> note({"opportunities": pd.DataFrame({"x": [1]})}, "arr")
'Churn and the ARR bridge: not provided — add the subscriptions table.'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "NO_REP",
    "SECTIONS",
    "Section",
    "Shown",
    "cube_rep_known",
    "no_rep_note",
    "note",
    "rep_known",
    "skip_if_not_provided",
    "status",
]


@dataclass(frozen=True)
class Section:
    """A section of the plan pack.

    Attributes
    ----------
    id : str
        Anchor in ``plan.html`` and key in the manifest.
    title : str
        As the pack shows it.
    needs : tuple of str
        Tables that must be present and non-empty.
    switch : str or None
        Parameters key that turns the section off when false.
    needs_rep : bool
        The section plans sellers: it needs at least one known rep (a ``reps``
        table, or opportunities whose owner column is mapped and filled).
    """

    id: str
    title: str
    needs: tuple[str, ...]
    switch: str | None = None
    needs_rep: bool = False


#: Every section of the pack, in order.
SECTIONS: tuple[Section, ...] = (
    Section("forecast", "Forecast vs target", ("opportunities",)),
    Section("arr", "Churn and the ARR bridge", ("subscriptions",)),
    Section("capacity", "Capacity and hiring", ("opportunities",), needs_rep=True),
    Section("quotas", "Quotas, attainment and balance", ("opportunities",), needs_rep=True),
    Section("territories", "Territories", ("accounts", "reps"), switch="territories"),
    Section("scenarios", "Scenario comparison", ("opportunities",), needs_rep=True),
    Section("kpis", "KPIs", ("opportunities",)),
    Section("accuracy", "Last cycle's forecast accuracy", ("opportunities",)),
)
_BY_ID = {s.id: s for s in SECTIONS}


def _present(tables: Mapping[str, Any], name: str) -> bool:
    table = tables.get(name)
    return table is not None and len(table) > 0


#: What to add when no rep is known (the sections that plan sellers say it).
NO_REP = (
    "no rep is known — add the reps table, or map the owner column (rep_id) of the opportunities"
)


def rep_known(tables: Mapping[str, Any]) -> bool:
    """Whether the data names at least one rep: a ``reps`` table, or an owner on an opportunity."""
    if _present(tables, "reps"):
        return True
    opps = tables.get("opportunities")
    if opps is None or "rep_id" not in getattr(opps, "columns", ()):
        return False
    return bool(opps["rep_id"].notna().any())


def cube_rep_known(cube: Any) -> bool:
    """:func:`rep_known` read from a cube: it names a rep besides the placeholder of
    deals without an owner (:data:`revmodel.config.PLACEHOLDER`)."""
    from revmodel import config

    if "rep" not in getattr(cube, "dims", ()):
        return False
    return any(str(r) != config.PLACEHOLDER for r in cube["rep"].values)


def no_rep_note(section: str) -> str:
    """What a section that plans sellers says when no rep is known (the pack's words)."""
    return f"{_BY_ID[section].title}: not provided — {NO_REP}."


def note(tables: Mapping[str, Any], section: str, params: Mapping[str, Any] | None = None) -> str:
    """Why ``section`` is not shown, in words; ``""`` when it is shown.

    Parameters
    ----------
    tables : mapping
        The loaded tables by name (a missing or empty table is not provided).
    section : str
        An id of :data:`SECTIONS`.
    params : mapping, optional
        The plan's parameters (for switches such as ``territories: false``).
    """
    s = _BY_ID[section]
    if s.switch is not None and params is not None and params.get(s.switch) is False:
        return f"{s.title}: skipped ({s.switch}: false in the parameters)."
    missing = [n for n in s.needs if not _present(tables, n)]
    if not missing and s.needs_rep and not rep_known(tables):
        return no_rep_note(section)
    if not missing:
        return ""
    what = " and ".join(missing)
    return f"{s.title}: not provided — add the {what} table{'s' if len(missing) > 1 else ''}."


def status(tables: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Sections shown and skipped (with the reason), as the manifest records them."""
    shown, skipped = [], []
    for s in SECTIONS:
        why = note(tables, s.id, params)
        if why:
            skipped.append({"id": s.id, "title": s.title, "reason": why})
        else:
            shown.append(s.id)
    return {"shown": shown, "skipped": skipped}


class Shown(NamedTuple):
    """A section's result, or why it is not shown (:func:`skip_if_not_provided`)."""

    result: Any
    note: str


def skip_if_not_provided(
    tables: Mapping[str, Any],
    section: str,
    make: Callable[[], Any],
    params: Mapping[str, Any] | None = None,
) -> Shown:
    """``make()`` when the section's inputs are provided; else no result and the reason.

    The one check every planning notebook makes before a section's work: the
    tables it needs, a known rep for the sections that plan sellers, and its
    switch in the parameters (:func:`note`).

    Parameters
    ----------
    tables : mapping
        The loaded tables by name.
    section : str
        An id of :data:`SECTIONS`.
    make : callable
        Computes the section's result; not called when the section is skipped.
    params : mapping, optional
        The plan's parameters (switches such as ``territories: false``).

    Returns
    -------
    Shown
        ``(result, "")``, or ``(None, reason)`` as the pack says it.

    Examples
    --------
    >>> import pandas as pd
    >>> opps = pd.DataFrame({"opportunity_id": ["O1"], "rep_id": [None]})
    >>> skip_if_not_provided({"opportunities": opps}, "quotas", lambda: 1)
    Shown(result=None, note='Quotas, attainment and balance: not provided — no rep is known — add the reps table, or map the owner column (rep_id) of the opportunities.')
    >>> skip_if_not_provided({"opportunities": opps.assign(rep_id="R1")}, "quotas", lambda: 1)
    Shown(result=1, note='')
    """
    why = note(tables, section, params)
    if why:
        return Shown(None, why)
    return Shown(make(), "")
