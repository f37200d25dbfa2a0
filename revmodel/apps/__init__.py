"""Voila apps for stakeholders, one module per app, each a ``build(...) -> ipywidgets.Widget``.

- :mod:`revmodel.apps.explorer`: plan explorer (bookings, forecast, quota, attainment, pipeline)
- :mod:`revmodel.apps.forecast_call`: managers submit commit / best-case calls per rep and period
- :mod:`revmodel.apps.whatif`: scenario sliders, the plan recomputed live, saved scenarios compared
- :mod:`revmodel.apps.quotas`: quotas by rep, balance, expected attainment, territory balance

The notebooks in ``notebooks/apps/`` hold one cell each, e.g.
``from revmodel.apps import explorer; explorer.build()``; ``revmodel serve``
(:mod:`revmodel.apps.serve`) serves them with Voila.
"""
