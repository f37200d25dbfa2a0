"""Publishing a pack: the finished folder takes the place of the previous one in one step."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["publish"]


def publish(tmp: Path, final: Path) -> Path:
    """Rename a finished pack over ``final``; the previous pack stays until the swap succeeded."""
    prev = final.with_name(f"{final.name}.prev")
    if prev.exists():
        shutil.rmtree(prev)
    had = final.exists()
    if had:
        os.rename(final, prev)
    try:
        os.rename(tmp, final)
    except OSError:
        if had:
            os.rename(prev, final)
        raise
    if had:
        shutil.rmtree(prev, ignore_errors=True)
    return final
