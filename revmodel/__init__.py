"""revmodel: an open, notebook-native revenue-planning workbench."""

from __future__ import annotations

__version__ = "0.1.0"

# Registers the ``ds.rev`` accessor on every xarray Dataset.
from revmodel import accessor as accessor  # noqa: E402
