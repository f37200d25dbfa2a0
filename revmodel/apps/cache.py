"""Where the apps' shared context is cached, and what it depends on (light: no heavy imports).

``revmodel serve`` checks here, in a fraction of a second, whether the context
of the data is already computed; every app kernel then reads it from the file
(:func:`revmodel.apps.context.load_context`) instead of building it again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from revmodel import config
from revmodel.apps.published import PublishedPlan
from revmodel.apps.published import latest as latest_published

__all__ = [
    "ENV_CUBE",
    "ENV_FORECAST_METHOD",
    "ENV_PARAMS",
    "context_cache_path",
    "fingerprint",
    "forecast_method",
    "latest_params",
    "published_plan",
    "weekly_cache_path",
]

#: Environment variable naming a cube file the apps read instead of the sample company.
ENV_CUBE = "REVMODEL_CUBE"
#: Environment variable naming the parameters file of the cycle.
ENV_PARAMS = "REVMODEL_PARAMS"
#: Environment variable choosing the forecast method (see :data:`revmodel.forecast.METHODS`).
ENV_FORECAST_METHOD = "REVMODEL_FORECAST_METHOD"


def forecast_method(method: str | None = None) -> str:
    """The forecast method of the apps: ``method``, else ``REVMODEL_FORECAST_METHOD``, else auto."""
    return method or os.environ.get(ENV_FORECAST_METHOD) or "auto"


def latest_params() -> Path | None:
    env = os.environ.get(ENV_PARAMS)
    if env:
        return Path(env)
    found = sorted(config.PARAMETERS_DIR.glob("FY*.yaml"))
    return found[-1] if found else None


def sample_dir() -> Path:
    """The sample company's folder, generated on first use as ``revmodel sample`` writes it:
    the exports and the log of its past forecast calls (for the weekly app's value add).
    A folder that already holds opportunities is left as it is."""
    folder = config.SAMPLE_DIR
    if not (folder / "opportunities.csv").exists():
        from revmodel import sample

        sample.write_sample(folder)
    return folder


def _source_path(data_dir: Path | None) -> Path:
    if data_dir is not None:
        return data_dir
    if os.environ.get(ENV_CUBE):
        return Path(os.environ[ENV_CUBE])
    return sample_dir()


def _stat(path: Path, pattern: str = "*") -> list[tuple[str, int, int]]:
    """Each file's path, size and time; a data folder's call log left out (no cube, forecast
    or history depends on it: the weekly page scores the calls against its own digests)."""
    if not path.exists():
        return [(str(path), -1, -1)]
    files = [path] if path.is_file() else sorted(p for p in path.rglob(pattern) if p.is_file())
    files = [f for f in files if f.name != config.CALL_LOG_FILE]
    return [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def published_plan(data_dir: Path | None) -> PublishedPlan | None:
    """The published plan the apps read: the latest one, unless a data folder or cube is named."""
    if data_dir is not None or os.environ.get(ENV_CUBE):
        return None
    return latest_published()


def _code() -> list[str]:
    import revmodel

    return [*map(str, _stat(Path(revmodel.__file__).parent, "*.py"))]


def fingerprint(data_dir: Path | None, method: str, plan: PublishedPlan | None = None) -> str:
    """What the shared context depends on: the published plan, or the data, parameters and method.

    With a published plan (``plan``, else :func:`published_plan`): its version
    and its files. Otherwise the data files, the parameters and the forecast
    method. The code always counts: any change (a new plan, a new export, an
    edited parameters file, an upgraded revmodel) gives a new fingerprint, so
    the cached context is rebuilt.
    """
    plan = plan or published_plan(data_dir)
    if plan is not None:
        parts = [
            "published",
            plan.version,
            *map(str, _stat(plan.plan_file)),
            *map(str, _stat(plan.pack_dir / "manifest.json")),
        ]
    else:
        parts = [
            method,
            str(config.FISCAL_YEAR_START),
            *map(str, _stat(_source_path(data_dir))),
            *map(str, _stat(latest_params() or Path("-"))),
        ]
    return hashlib.sha256("\n".join([*parts, *_code()]).encode()).hexdigest()[:20]


def weekly_cache_path(context_file: Path, data_dir: str | Path | None) -> Path:
    """The file keeping the weekly page's history, waterfalls and scored calls beside the
    context file they were computed with (``data_dir``: the folder of its history)."""
    parts = [context_file.name, str(data_dir)]
    if data_dir is not None:
        parts += map(str, _stat(Path(data_dir)))
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]
    return context_file.parent / f"weekly-{key}.pickle"


def context_cache_path(
    data_dir: Path | None, method: str, plan: PublishedPlan | None = None
) -> Path:
    """The file holding the shared context (:func:`fingerprint` in its name)."""
    return config.CACHE_DIR / "apps" / f"context-{fingerprint(data_dir, method, plan)}.pickle"
