"""revmodel: an open, notebook-native revenue-planning workbench."""

from __future__ import annotations

__version__ = "0.1.0"
