"""revmodel: an open, notebook-native revenue-planning workbench.

Importing :mod:`revmodel` registers the ``ds.rev`` accessor
(:mod:`revmodel.accessor`) on every xarray Dataset: at once when xarray is
already imported, else the moment it is. ``import revmodel`` itself imports
neither xarray nor pandas, so a command that needs neither (``revmodel
serve``, ``revmodel --help``) starts without them.
"""

from __future__ import annotations

import sys
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

__version__ = "0.1.0"


def _register_accessor() -> None:
    from revmodel import accessor  # noqa: F401  (registers ``ds.rev``)


class _AccessorLoader(Loader):
    """xarray's own loader, then the accessor registered once xarray is complete."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps xarray's own loader (resources, reloads); only this first run is ours.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _WhenXarrayImported)]
        _register_accessor()


class _WhenXarrayImported(MetaPathFinder):
    """Finds nothing itself: asked for ``xarray``, it wraps the loader the other finders
    give. It leaves :data:`sys.meta_path` only once xarray has been imported, so a mere
    lookup (``importlib.util.find_spec("xarray")``, as libraries do to test for an optional
    dependency) does not disarm it."""

    def find_spec(self, name: str, path=None, target=None) -> ModuleSpec | None:
        if name != "xarray":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _AccessorLoader(spec.loader)
                return spec
        return None


if "xarray" in sys.modules:
    _register_accessor()
else:
    sys.meta_path.insert(0, _WhenXarrayImported())
