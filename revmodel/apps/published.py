"""The latest published plan: which pack the apps read (light: no heavy imports).

``revmodel plan`` publishes a pack into ``reports/<cycle>/`` whose
``manifest.json`` names the plan version it saved
(``forecast/<cycle>-<UTC time>``). The apps read the pack of the latest
version: its cube, forecast, reconciled forecast, quotas, capacity and quota
balance (the groups of ``plan.nc``), so every app shows the plan that was
published, never a recomputation of its own.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revmodel import config

__all__ = ["PublishedPlan", "latest"]

logger = logging.getLogger(__name__)

#: The UTC time at the end of a plan version's name, e.g. ``FY2027-Q1-20261129T144724594752Z``.
_STAMP = re.compile(r"(\d{8}T\d{6}\d*Z)$")


@dataclass(frozen=True)
class PublishedPlan:
    """A published pack and the plan version it holds.

    Attributes
    ----------
    pack_dir : Path
        The pack's folder (the real folder, not the ``reports/<cycle>`` link).
    cycle : str
        The quarter planned, e.g. ``"FY2027-Q1"``.
    version : str
        The plan version, ``forecast/<cycle>-<UTC time>``.
    published : str
        When it was published (UTC, ISO 8601, to the second).
    parameters : dict
        The parameters the plan ran with (paths relative to the project).
    sections : tuple of str
        The pack's sections shown (``territories`` when a territory plan was made).
    """

    pack_dir: Path
    cycle: str
    version: str
    published: str
    parameters: dict[str, Any] = field(default_factory=dict)
    sections: tuple[str, ...] = ()

    @property
    def plan_file(self) -> Path:
        """The pack's ``plan.nc`` (one NetCDF group per result)."""
        return self.pack_dir / "plan.nc"

    @property
    def data_dir(self) -> Path | None:
        """The exports the plan was made from, when they are still there.

        The pack names them relative to the project; exports kept outside it are
        found through this machine's record of the run
        (:func:`revmodel.versions.remember_exports`).
        """
        return self._input("data_dir", Path.is_dir)

    @property
    def mapping(self) -> Path | None:
        """The mapping file the plan's exports were read with (None: the data folder's own)."""
        return self._input("mapping", Path.is_file)

    def _input(self, key: str, exists: Callable[[Path], bool]) -> Path | None:
        given = self.parameters.get(key)
        if not given:
            return None
        path = Path(given) if Path(given).is_absolute() else config.HOME / given
        if exists(path):
            return path
        from revmodel import versions  # numpy, pandas, xarray: only when an input moved

        kept = versions.remembered_exports(self.version).get(key)
        return Path(kept) if kept and exists(Path(kept)) else None

    def describe(self) -> str:
        """How a page names it: ``published plan FY2027-Q1 (version ..., 2026-11-29 14:47 UTC)``."""
        when = self.published.replace("T", " ")[:16]
        return f"published plan {self.cycle} (version {self.version}, {when} UTC)"


def _read(manifest: Path) -> PublishedPlan | None:
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("%s: unreadable, this pack is not offered to the apps", manifest)
        return None
    version = str(record.get("plan_version") or "")
    stamp = _STAMP.search(version)
    pack = manifest.parent.resolve()
    if not stamp or not (pack / "plan.nc").is_file():
        return None
    when = stamp.group(1)
    iso = f"{when[:4]}-{when[4:6]}-{when[6:8]}T{when[9:11]}:{when[11:13]}:{when[13:15]}"
    return PublishedPlan(
        pack_dir=pack,
        cycle=str(record.get("cycle", "")),
        version=version,
        published=iso,
        parameters=dict(record.get("parameters") or {}),
        sections=tuple((record.get("sections") or {}).get("shown") or ()),
    )


def latest(reports_dir: str | Path | None = None) -> PublishedPlan | None:
    """The pack of the latest plan version in ``reports_dir`` (default ``reports/``), or None.

    Each ``reports/<cycle>/manifest.json`` names the version its pack holds;
    the latest version (by the UTC time in its name) wins, whichever cycle it
    plans. Hidden folders (packs being written or replaced) are not looked at.
    """
    folder = Path(reports_dir) if reports_dir is not None else config.REPORTS_DIR
    if not folder.is_dir():
        return None
    found = [
        plan
        for manifest in sorted(folder.glob("*/manifest.json"))
        if not manifest.parent.name.startswith(".") and (plan := _read(manifest)) is not None
    ]
    if not found:
        return None
    return max(found, key=lambda p: (_STAMP.search(p.version).group(1), p.cycle))
