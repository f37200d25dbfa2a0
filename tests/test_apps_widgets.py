"""How many widget models each app's page sends: the browser creates each before it draws."""

from __future__ import annotations

import warnings
from collections import Counter

import ipywidgets as w
import pytest

from revmodel.apps import context as app_context_module
from revmodel.apps import explorer, forecast_call, layout, quotas, weekly, whatif

#: Models of each page, built in-process on the small company: at most this many. Before the
#: layouts and styles were shared and the sections lost their boxes: explorer 64, forecast
#: call 99, what-if 103, quotas 48, weekly 46 (22 then; it has had an Excel download since).
#: The forecast call's four sections of one table each show their own title: 45 -> 41.
MOST = {"explorer": 30, "forecast_call": 41, "whatif": 48, "quotas": 24, "weekly": 26}
APPS = {"explorer": explorer, "forecast_call": forecast_call, "whatif": whatif, "quotas": quotas,
        "weekly": weekly}  # fmt: skip


def _open_models() -> dict[str, w.Widget]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return dict(w.Widget.widgets)


def _built(module, ctx) -> tuple[w.Widget, list[w.Widget]]:
    """The page and the models its build left open."""
    before = set(_open_models())
    page = module.build(ctx)
    now = _open_models()
    return page, [now[k] for k in set(now) - before]


@pytest.fixture(scope="module")
def ctx(app_context):
    return app_context_module.app_context(context=app_context, store_url="sqlite://", user="nobody")


@pytest.mark.parametrize("name", list(APPS))
def test_each_page_sends_few_models_its_layouts_and_styles_shared(ctx, name):
    page, models = _built(APPS[name], ctx)
    kinds = Counter(type(m).__name__ for m in models)
    assert len(models) <= MOST[name], kinds
    layouts = [m for m in models if isinstance(m, w.Layout)]
    # one layout model per distinct setting: no two open layouts of the page are alike
    states = [tuple(sorted(m.get_state().items())) for m in layouts]
    assert len(states) == len(set(states))
    # every widget of the page points at an open model
    for widget in layout._tree(page):
        assert widget.layout.comm is not None
        style = getattr(widget, "style", None)
        assert style is None or style.comm is not None


def test_shared_models_keep_each_widget_s_own_setting():
    plain, wide, narrow = w.HTML("a"), w.HTML("b"), w.Dropdown(options=["x"])
    wide.layout = w.Layout(width="100%")
    narrow.style.description_width = "170px"
    other = w.Dropdown(options=["y"])
    box = w.VBox([plain, w.HBox([wide, w.HTML("c"), narrow, other]), w.HTML("d")])
    children = list(layout._tree(box))
    assert len(children) == 8
    closed = layout.share_models(box)
    # the seven default layouts become one (the boxes, "a", "c", "d", both dropdowns), the
    # four HTML styles one; the two dropdown styles differ and stay two
    assert closed == 6 + 3
    assert wide.layout.width == "100%" and plain.layout.width is None
    assert plain.layout is box.layout is other.layout
    assert narrow.style.description_width == "170px"
    assert other.style.description_width == ""
    assert narrow.style is not other.style


def test_a_section_of_one_table_shows_its_title_once_in_its_own_widget(ctx):
    page = forecast_call.build(ctx)
    titles = {"team": "Team", "rollup": "Roll-up", "moves": "Moved by the calls",
              "audit": "History of calls"}  # fmt: skip
    shown = [x.value for x in layout._tree(page) if isinstance(x, w.HTML)]
    for name, title in titles.items():
        box = getattr(page.app, name)
        heading = f"<div class='revmodel-section'><h3>{title}</h3></div>"
        assert box.value.startswith(heading) and box.value.count("<h3>") == 1
        assert box.value != heading  # drawn: the title, then the block's content
        assert sum(v.count(f"<h3>{title}</h3>") for v in shown) == 1  # no title widget left
    # The sections in the page's order, as the separate titles showed them.
    text = " ".join(shown)
    order = [text.index(f"<h3>{t}</h3>") for t in ("Team", "Submit a call", "Roll-up",
                                                    "Moved by the calls", "History of calls")]  # fmt: skip
    assert order == sorted(order)


@pytest.mark.parametrize("name", ["explorer", "forecast_call", "whatif", "quotas"])
def test_each_page_s_output_carries_its_snapshot(ctx, name):
    page = APPS[name].build(ctx)
    bundle = page._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    snap = bundle[layout.SNAPSHOT_MIME]
    assert snap == layout.snapshot_html(page)
    views = sum(1 for x in layout._tree(page) if isinstance(x, w.DOMWidget))
    toggles = sum(1 for x in layout._tree(page) if isinstance(x, w.ToggleButtons))
    assert f"data-widgets='{views - toggles}'" in snap  # as many as the live page has
    # what the live page shows, inert: its text, no control that works, no chart drawn
    assert "revmodel-title" in snap and ("revmodel-card" in snap or "revmodel-grid" in snap)
    assert "revmodel-plotly" not in snap and "data-figure" not in snap
    # no widget's own class: what waits for the live page never finds the snapshot
    for widget in layout._tree(page):
        for css in widget._dom_classes:
            assert f"class='{css}'" not in snap and f'class="{css}"' not in snap


def test_a_snapshot_escapes_what_the_controls_show():
    hostile = "<img src=x onerror=alert(1)>"
    box = layout.AppPage(
        [
            w.Dropdown(options=[hostile], description=hostile),
            w.Text(value=hostile, description="note"),
            w.Textarea(value=f"</textarea>{hostile}"),
            w.Button(description=hostile),
            w.HBox([w.Checkbox(value=True, description=hostile), w.FloatSlider(value=0.25)]),
            w.HTML("<b>shown as the live page shows it</b>", layout=w.Layout(display="none")),
        ]
    )
    snap = layout.snapshot_html(box)
    assert "<img" not in snap and "</textarea><img" not in snap
    assert snap.count("&lt;img src=x onerror=alert(1)&gt;") == 6
    assert "<b>" not in snap  # a hidden widget is not shown
    assert "0.25" in snap and "disabled checked" in snap
    assert snap.count(" disabled") == 5
