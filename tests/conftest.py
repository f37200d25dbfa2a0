"""Shared fixtures: a small sample company and the apps' context built from it once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_company(tmp_path_factory: pytest.TempPathFactory):
    """The sample company with 24 reps over 36 months: (tables, data folder)."""
    from revmodel import sample

    folder = tmp_path_factory.mktemp("small-company")
    tables = sample.generate(reps=24, months=36)
    sample.write(tables, folder)
    return tables, folder


@pytest.fixture(scope="session")
def app_context(small_company, tmp_path_factory: pytest.TempPathFactory):
    """An :class:`revmodel.apps.context.AppContext` of the small company (seasonal-naive forecast)."""
    from revmodel import config
    from revmodel.apps import context

    _, folder = small_company
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "CACHE_DIR", cache)
        ctx = context.load_context(data_dir=folder, forecast_method="seasonal_naive")
    return ctx
