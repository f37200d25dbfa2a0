"""The apps' building blocks: page frame, KPI cards, tables, figure panes and messages.

Every element carries a ``revmodel-...`` CSS class so a browser test can wait
for it. Figures go into :class:`FigurePane`, an ``ipywidgets.HTML`` holding
the figure as Plotly JSON, drawn by plotly.js from the apps' Voila template;
the Python-side :attr:`FigurePane.figure` is what a test inspects.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go

from revmodel import (
    formatting,
    plots,  # noqa: F401  (registers the "revmodel" Plotly template)
)

__all__ = [
    "STYLE",
    "Controls",
    "ExcelDownload",
    "FigurePane",
    "KpiCards",
    "Message",
    "SectionHTML",
    "fmt_money",
    "fmt_pct",
    "page",
    "table_html",
    "workbook",
]

#: One stylesheet for every app (classes prefixed ``revmodel-``).
STYLE = """
<style>
.revmodel-app { font-family: "DejaVu Sans", "Segoe UI", Arial, sans-serif; color: #1f2933;
  width: 100%; max-width: none; }
.revmodel-title h2 { margin: 4px 0 0 0; font-size: 22px; color: #1f3a5f; }
.revmodel-subtitle { color: #52606d; font-size: 13px; }
.revmodel-cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr));
  gap: 10px; margin: 8px 0; }
.revmodel-card { border: 1px solid #d9e2ec; border-radius: 6px; padding: 8px 12px;
  background: #f8fafc; line-height: 1.35; }
.revmodel-card .label { font-size: 12px; color: #52606d; text-transform: uppercase;
  letter-spacing: .03em; }
.revmodel-card .value { font-size: 20px; font-weight: 600; color: #1f3a5f; }
.revmodel-card .sub { font-size: 12px; color: #52606d; }
.revmodel-card .delta-up { color: #1e7b45; } .revmodel-card .delta-down { color: #b42318; }
table.revmodel-grid { border-collapse: collapse; font-size: 13px; margin: 6px 0; width: 100%;
  line-height: 1.35; }
.revmodel-full { width: 100%; }
.revmodel-drill button { margin-right: 4px; }
.revmodel-excel-link a { font-size: 13px; line-height: 28px; margin-left: 8px; }
table.revmodel-grid th { background: #1f3a5f; color: white; padding: 4px 8px; text-align: left;
  position: sticky; top: 0; }
table.revmodel-grid td { padding: 3px 8px; border-bottom: 1px solid #e4e7eb; }
table.revmodel-grid td.num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
table.revmodel-grid tr.total td { font-weight: 600; background: #f0f4f8; }
table.revmodel-grid td.flag { color: #b42318; font-weight: 600; white-space: nowrap; }
table.revmodel-grid td.ok { color: #1e7b45; white-space: nowrap; }
.revmodel-scroll { max-height: 420px; overflow-y: auto; }
.revmodel-message { padding: 6px 10px; border-radius: 4px; margin: 4px 0; font-size: 13px; }
.revmodel-message.error { background: #fde8e8; color: #8a1c1c; border: 1px solid #f5b5b5; }
.revmodel-message.ok { background: #e6f4ea; color: #1e5b34; border: 1px solid #a8d5b5; }
.revmodel-message.info { background: #eef4fb; color: #1f3a5f; border: 1px solid #c5d8ee; }
.revmodel-footer { color: #7b8794; font-size: 11px; margin-top: 6px; }
.revmodel-section h3 { font-size: 15px; margin: 10px 0 2px 0; color: #1f3a5f; }
</style>
"""


#: Numbers are shown as the plan pack shows them (:mod:`revmodel.formatting`).
fmt_money = formatting.money
fmt_pct = formatting.pct
fmt_number = formatting.count


def page(
    title: str, subtitle: str, body: Sequence[w.Widget | tuple[w.Widget, ...]], footer: str = ""
) -> w.VBox:
    """The frame of an app: stylesheet, title, body (widgets, and :func:`section` s) and footer."""
    head = w.HTML(
        f"{STYLE}<div class='revmodel-title'><h2>{html.escape(title)}</h2></div>"
        f"<div class='revmodel-subtitle'>{html.escape(subtitle)}</div>"
    )
    parts = [head]
    for item in body:
        parts.extend(item if isinstance(item, tuple) else (item,))
    if footer:
        # No absolute path of the server in a page (a store URL, a data folder).
        shown = formatting.scrub_paths(footer)
        foot = w.HTML(f"<div class='revmodel-footer'>{html.escape(shown)}</div>")
        foot.add_class("revmodel-footer-box")
        parts.append(foot)
    box = AppPage(parts, layout=w.Layout(width="100%"))
    box.add_class("revmodel-app")
    share_models(box)
    return box


#: The media type of a page's snapshot (:func:`snapshot_html`), shown by the apps' Voila
#: template while the page's widgets are made in the browser.
SNAPSHOT_MIME = "application/vnd.revmodel.snapshot+html"


class AppPage(w.VBox):
    """An app's page (:func:`page`): a ``VBox`` whose display also carries its snapshot.

    Besides the widget view, the page's output holds :func:`snapshot_html` under
    :data:`SNAPSHOT_MIME`: the apps' Voila template shows it as plain HTML the moment
    the page arrives, and replaces it by the live widgets once the browser has made
    them (the widgets' front end takes a second or two to start).
    """

    def _repr_mimebundle_(self, **kwargs: object) -> dict | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle[SNAPSHOT_MIME] = snapshot_html(self)
        return bundle


def _hidden(widget: w.Widget) -> bool:
    lay = getattr(widget, "layout", None)
    return lay is not None and (lay.display == "none" or lay.visibility == "hidden")


def _described(widget: w.Widget, control: str) -> str:
    label = getattr(widget, "description", "") or ""
    shown = f"<label class='revmodel-snapshot-label'>{html.escape(label)}</label>" if label else ""
    return f"<div class='revmodel-snapshot-control'>{shown}{control}</div>"


def _snapshot(widget: w.Widget) -> str:
    if _hidden(widget):
        return ""
    if isinstance(widget, FigurePane):
        height = int(((widget.spec or {}).get("layout") or {}).get("height") or 450)
        return f"<div class='revmodel-snapshot-chart' style='min-height:{height}px'></div>"
    if isinstance(widget, w.HTML):
        return f"<div class='revmodel-snapshot-html'>{widget.value}</div>"
    if isinstance(widget, w.Tab):
        titles = "".join(
            f"<span class='revmodel-snapshot-tab{' current' if i == widget.selected_index else ''}'>"
            f"{html.escape(str(t))}</span>"
            for i, t in enumerate(widget.titles)
        )
        shown = widget.children[widget.selected_index or 0] if widget.children else None
        body = _snapshot(shown) if shown is not None else ""
        return f"<div class='revmodel-snapshot-tabs'>{titles}</div>{body}"
    if isinstance(widget, w.Box):
        kind = "row" if isinstance(widget, w.HBox) else "column"
        inner = "".join(_snapshot(c) for c in widget.children)
        return f"<div class='revmodel-snapshot-{kind}'>{inner}</div>"
    if isinstance(widget, w.Dropdown | w.ToggleButtons):
        label = widget.label if widget.label is not None else ""
        return _described(
            widget, f"<select disabled><option>{html.escape(str(label))}</option></select>"
        )
    if isinstance(widget, w.Button):
        return f"<button class='revmodel-snapshot-button' disabled>{html.escape(widget.description)}</button>"
    if isinstance(widget, w.Textarea):
        return _described(widget, f"<textarea disabled>{html.escape(str(widget.value))}</textarea>")
    if isinstance(widget, w.Text):
        return _described(widget, f"<input disabled value='{html.escape(str(widget.value))}'>")
    if isinstance(widget, w.Checkbox):
        mark = " checked" if widget.value else ""
        return _described(widget, f"<input type='checkbox' disabled{mark}>")
    if isinstance(widget, w.FloatSlider | w.IntSlider):
        try:
            value = format(widget.value, widget.readout_format)
        except (TypeError, ValueError):
            value = str(widget.value)
        return _described(
            widget, f"<span class='revmodel-snapshot-value'>{html.escape(value)}</span>"
        )
    return ""


def _unmarked(widget: w.Widget) -> bool:
    """Whether ipywidgets' view of ``widget`` lacks the ``jupyter-widgets`` class (toggle buttons)."""
    return isinstance(widget, w.ToggleButtons)


def snapshot_html(root: w.Widget) -> str:
    """``root``'s widgets as static HTML, as the browser will draw them, but inert.

    HTML widgets give their own HTML (what the live page shows, names already
    escaped); a chart is an empty box of its height (drawn once the page is live);
    controls show their current value, disabled; boxes and tabs (the tab shown)
    lay their children out. No element carries a widget's own CSS classes, so
    nothing that waits for the live page finds the snapshot. ``data-widgets`` is the
    number of widget views of class ``jupyter-widgets`` the live page will have (the
    template shows the live page once it has them all).
    """
    views = sum(1 for x in _tree(root) if isinstance(x, w.DOMWidget) and not _unmarked(x))
    return f"<div class='revmodel-snapshot-page' data-widgets='{views}'>{_snapshot(root)}</div>"


def _tree(root: w.Widget) -> Iterator[w.Widget]:
    """``root`` and every widget inside it (children of boxes and tabs)."""
    yield root
    for child in getattr(root, "children", ()):
        if isinstance(child, w.Widget):
            yield from _tree(child)


def share_models(root: w.Widget) -> int:
    """Give the widgets under ``root`` one layout and one style model per distinct setting.

    Every ipywidget comes with a ``Layout`` model and most with a style model, each
    a model of its own the browser creates before it draws the page (half of a
    page's models, nearly all left at their defaults). Widgets whose layouts (or
    styles) hold the same settings share one, as ipywidgets allows; the others are
    closed. A shared layout or style is never changed afterwards: to change one
    widget's, assign it a new ``Layout`` or style. Returns the number closed.
    """
    kept: dict[tuple[type, str], w.Widget] = {}
    closed = 0
    for widget in _tree(root):
        for name in ("layout", "style"):
            model = getattr(widget, name, None)
            if not isinstance(model, w.Widget) or model.comm is None:
                continue
            key = (type(model), json.dumps(model.get_state(), sort_keys=True, default=str))
            first = kept.setdefault(key, model)
            if first is not model:
                setattr(widget, name, first)
                model.close()
                closed += 1
    return closed


def not_provided(title: str, note: str, source: str) -> w.VBox:
    """The page of an app whose inputs are not provided: it says so in the pack's words.

    ``note`` is :func:`revmodel.sections.note`'s reason (what is missing and what to
    add), shown as the page's message; the page's ``.note`` keeps it.
    """
    message = Message()
    message.show(note, "info")
    box = page(title, "Not provided for this data.", [message], footer=f"Data: {source}.")
    box.add_class("revmodel-not-provided")
    box.note = note
    return box


def _heading(title: str) -> str:
    return f"<div class='revmodel-section'><h3>{html.escape(title)}</h3></div>"


def section(title: str, *children: w.Widget) -> tuple[w.Widget, ...]:
    """A titled block: its title and its widgets, laid out in the page's own column (no box
    of their own: one widget fewer for the browser to make per block). A block of one
    HTML widget is a :class:`SectionHTML`, which shows its own title."""
    return (w.HTML(_heading(title)), *children)


class SectionHTML(w.HTML):
    """A titled block of HTML in one widget: what :func:`section` shows for a title and one
    HTML widget, with one model fewer for the browser to make. :meth:`show` sets the
    block's content, the title kept in front of it."""

    def __init__(self, title: str, css: str = "") -> None:
        self.heading = _heading(title)
        super().__init__(self.heading)
        if css:
            self.add_class(css)

    def show(self, content: str) -> None:
        """Show ``content`` (HTML) under the title."""
        self.value = self.heading + content


class KpiCards(w.HTML):
    """A row of KPI cards; :attr:`values` keeps the displayed text by card name for tests."""

    def __init__(self, css: str = "revmodel-kpis") -> None:
        super().__init__()
        self.add_class(css)
        self.values: dict[str, str] = {}

    def show(self, cards: Iterable[Mapping[str, str]]) -> None:
        """Cards as ``{"name", "label", "value", "sub", "delta", "tone"}`` mappings."""
        cards = list(cards)
        self.values = {c["name"]: c["value"] for c in cards}
        parts = []
        for c in cards:
            sub = f"<div class='sub'>{html.escape(c.get('sub', ''))}</div>" if c.get("sub") else ""
            delta = ""
            if c.get("delta"):
                tone = c.get("tone", "")
                delta = f"<div class='sub {tone}'>{html.escape(c['delta'])}</div>"
            parts.append(
                f"<div class='revmodel-card' data-kpi='{html.escape(c['name'])}'>"
                f"<div class='label'>{html.escape(c['label'])}</div>"
                f"<div class='value revmodel-kpi-{html.escape(c['name'])}'>{html.escape(c['value'])}</div>"
                f"{sub}{delta}</div>"
            )
        self.value = f"<div class='revmodel-cards'>{''.join(parts)}</div>"


class Message(w.HTML):
    """A one-line message: ``ok``, ``error`` or ``info``; :attr:`text` and :attr:`kind` for tests."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class("revmodel-message-box")
        self.text = ""
        self.kind = ""

    def show(self, text: str, kind: str = "info") -> None:
        self.text, self.kind = text, kind
        self.value = (
            f"<div class='revmodel-message {kind}' data-kind='{kind}'>{html.escape(text)}</div>"
            if text
            else ""
        )

    def clear(self) -> None:
        self.show("", "")


#: Trace types plotly.js's basic bundle draws (the template loads the full one for others).
BASIC_TRACES = frozenset({"scatter", "bar", "pie"})


@functools.cache
def _template(name: str) -> dict:
    """A registered Plotly template as the JSON a figure of that template carries."""
    return json.loads(go.Figure(layout={"template": name}).to_json())["layout"]["template"]


class FigurePane(w.HTML):
    """One Plotly figure, replaced on every :meth:`show`.

    The figure goes to the page as Plotly JSON in the ``data-figure`` attribute of
    an element of class ``revmodel-plotly`` (HTML-escaped, so no name in it can
    close the attribute); the apps' Voila template draws it with plotly.js
    (``static/revmodel-plots.js``). :attr:`figure` is what a test inspects,
    :attr:`spec` what the page was sent.

    A figure redrawn on every interaction can be given as its plain
    ``{"data": [...], "layout": {...}}`` (JSON types only, ``layout["template"]``
    the name of a registered template): it is sent as it is, without Plotly's
    property checks (a tenth of a second per figure on a busy machine); the
    checked :class:`plotly.graph_objects.Figure` is made only when
    :attr:`figure` is read.
    """

    def __init__(self, css: str = "revmodel-chart") -> None:
        super().__init__(layout=w.Layout(width="100%"))
        self.add_class(css)
        self._figure: go.Figure | None = None
        self._plain: dict | None = None
        self.spec: dict | None = None
        self.revision = 0
        self._shown = ""

    @property
    def figure(self) -> go.Figure | None:
        """The figure shown, as a Plotly figure (made from the plain one on first read)."""
        if self._figure is None and self._plain is not None:
            self._figure = go.Figure(self._plain)
        return self._figure

    def show(self, fig: go.Figure | dict) -> None:
        """Show ``fig``; the same figure again sends nothing (the browser keeps what it drew)."""
        if isinstance(fig, dict):
            self._figure, self._plain = None, fig
            name = fig.get("layout", {}).get("template")
            sent = {**fig, "layout": {**fig.get("layout", {}), "template": _template(name)}}
            text = json.dumps(sent if name else fig, allow_nan=False)
        else:
            self._figure, self._plain = fig, None
            text = fig.to_json()
        if text == self._shown and self.value:
            return
        self._shown = text
        self.revision += 1
        spec = json.loads(text)
        spec.setdefault("config", {}).update({"displaylogo": False})
        spec["layout"]["meta"] = {"revision": self.revision}
        self.spec = spec
        types = {t.get("type", "scatter") for t in spec["data"]}
        bundle = "basic" if types <= BASIC_TRACES else "full"
        height = int(spec["layout"].get("height") or 450)
        self.value = (
            f"<div class='revmodel-plotly' data-bundle='{bundle}' "
            f"style='width:100%;min-height:{height}px' "
            f'data-figure="{html.escape(json.dumps(spec, separators=(",", ":")), quote=True)}">'
            "</div>"
        )

    def clear(self) -> None:
        """Show no figure."""
        self._figure, self._plain, self.spec, self._shown, self.value = None, None, None, "", ""


def _cell(value: object, kind: str) -> tuple[str, str]:
    if kind in ("money", "pct", "int"):
        return formatting.cell(kind, value), "num"
    if kind == "usd":  # an amount in full, no symbol: 125,000
        return formatting.count(value), "num"
    if formatting.is_missing(value) and not isinstance(value, str):
        return formatting.MISSING, ""
    return str(value), ""


def table_html(
    frame: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
    css: str = "",
    total_rows: Iterable[int] = (),
    flag_column: str | None = None,
    max_rows: int = 200,
    scroll: bool = False,
) -> str:
    """A DataFrame as an HTML table of class ``revmodel-grid`` (``css`` added).

    ``kinds`` maps a column to ``money``, ``usd``, ``pct``, ``int`` or text;
    rows in ``total_rows`` are bold; a truthy ``flag_column`` cell is red. Every
    row is shown at full height and the table takes the page's width; ``scroll``
    True puts it in a box of limited height instead.
    """
    kinds = dict(kinds or {})
    totals = set(total_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, row in enumerate(frame.head(max_rows).itertuples(index=False)):
        cells = []
        for col, value in zip(frame.columns, row, strict=True):
            text, cls = _cell(value, kinds.get(col, "text"))
            if flag_column is not None and col == flag_column:
                cls = "flag" if value else "ok"
                text = "out of line" if value else "in line"
            cells.append(f"<td class='{cls}'>{html.escape(text)}</td>")
        tr = " class='total'" if i in totals else ""
        rows.append(f"<tr{tr}>{''.join(cells)}</tr>")
    more = ""
    if len(frame) > max_rows:
        more = f"<div class='revmodel-footer'>{len(frame) - max_rows} more rows not shown</div>"
    return (
        f"<div class='{'revmodel-scroll' if scroll else 'revmodel-full'}'>"
        f"<table class='revmodel-grid {css}'><thead><tr>{head}</tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>{more}"
    )


class Controls:
    """Handles on an app's widgets (``app.app``), for tests and notebooks."""

    def __init__(self, **items: object) -> None:
        self.__dict__.update(items)


def dropdown(
    description: str, options: Sequence, value: object = None, width: str = "220px"
) -> w.Dropdown:
    """A labelled dropdown with the label above the control."""
    dd = w.Dropdown(
        options=list(options),
        value=value if value is not None else (options[0] if len(options) else None),
        description=description,
        style={"description_width": "initial"},
        layout=w.Layout(width=width),
    )
    return dd


def calls_version(app: object) -> int | None:
    """The call store's version a page's data depends on (None: the page reads no calls)."""
    store = getattr(getattr(app, "context", None), "store", None)
    return None if store is None else store.version()


def preheated() -> bool:
    """Whether this kernel was started by Voila in advance, for a page not yet asked for."""
    return os.environ.get("VOILA_PREHEAT", "False") != "False"


def end_on_interrupt() -> bool:
    """In a preheated Voila kernel, end the process at once when it is interrupted.

    Voila (``jupyter_client``) interrupts a kernel right before it asks it to shut
    down. A preheated kernel is always running its page's cell then (building the
    page, or waiting for a request in :func:`when_opened`): the interrupt ends the
    cell and ipykernel sends the cell's reply on the shell socket that the shutdown
    request is closing at the same moment, and logs ``ZMQError: Socket operation on
    non-socket`` with its traceback into the server's log. No one else interrupts an
    app's kernel (a page has no interrupt button), so ending the process there
    loses nothing; the server removes the kernel's sockets and files.

    ipykernel puts Python's own handler back before each cell, so each long cell of
    an app's notebook calls this first. Returns True if the handler was set (in a
    preheated kernel's main thread); elsewhere (a notebook, a test) does nothing.
    """
    if not preheated() or threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGINT, _end_now)
    return True


def _end_now(_signum: int, _frame: object) -> None:
    os._exit(0)


def when_opened(page: w.Widget) -> None:
    """Redraw a page built in advance (a preheated Voila kernel) once someone opens it.

    In a preheated kernel, waits for Voila to hand the kernel to a request
    (:func:`voila.utils.wait_for_request`), then calls the page's ``refresh()``
    so it shows the calls made since it was built. When no call changed since
    (the call store's version is the same), a page reading calls is sent as
    built: the browser gets its widgets without waiting for a redraw. A page
    reading no calls (``reads_calls`` False) is always refreshed. Elsewhere,
    does nothing.
    """
    if not end_on_interrupt():
        return
    app = getattr(page, "app", None)
    built = calls_version(app)
    wait_for_request()
    refresh_if_changed(app, built)


def wait_for_request() -> None:
    """Voila's :func:`voila.utils.wait_for_request`: in a preheated kernel, returns once a
    request has taken the page (its details in the environment); elsewhere at once.

    Voila's package is imported without the modules nothing here uses
    (:func:`revmodel.kernels.leave_out_unused_imports`): with them, the import took
    1.4 s of a quiet core in every page built in advance, more than the explorer's build.
    """
    from revmodel.kernels import leave_out_unused_imports

    leave_out_unused_imports()
    from voila.utils import wait_for_request as voila_wait

    voila_wait()


def refresh_if_changed(app: object, built: int | None) -> bool:
    """Call ``app.refresh()`` unless it reads calls and none changed since ``built``; True if called."""
    refresh = getattr(app, "refresh", None)
    if not callable(refresh):
        return False
    if getattr(app, "reads_calls", True) and built is not None and calls_version(app) == built:
        return False
    refresh()
    return True


#: The media type of an Excel workbook.
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: A sheet: the table and the kind of each column (``money``, ``pct``, ``int``; else text).
Sheet = tuple[pd.DataFrame, Mapping[str, str]]


def workbook(sheets: Mapping[str, Sheet]) -> bytes:
    """An Excel workbook of ``sheets`` (name -> (table, column kinds)) [xlsx bytes].

    Every text cell and column name goes through :func:`revmodel.formatting.inert_frame`
    (a name like ``=HYPERLINK(...)`` is written as text, never run); numbers stay
    numbers, with the plan pack's number formats.
    """
    from openpyxl.utils import get_column_letter

    from revmodel.publish.excel import NUMBER_FORMATS

    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as xw:
        for name, (frame, kinds) in sheets.items():
            title = re.sub(r"[\[\]:*?/\\]", " ", name)[:31]
            formatting.inert_frame(frame).to_excel(xw, sheet_name=title, index=False)
            ws = xw.sheets[title]
            ws.freeze_panes = "A2"
            for i, col in enumerate(frame.columns, start=1):
                letter = get_column_letter(i)
                ws.column_dimensions[letter].width = min(40, max(12, len(str(col)) + 2))
                fmt = NUMBER_FORMATS.get(kinds.get(str(col), ""))
                for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                    if fmt:
                        cell.number_format = fmt
    return buffer.getvalue()


class ExcelDownload(w.HBox):
    """An ``Excel`` button: writes what the view shows (:func:`workbook`) and offers the file.

    ``sheets()`` is called on each click, so the file is the view of that moment;
    :meth:`clear` takes the link away when the view changes. :attr:`data` keeps
    the last workbook's bytes for tests.
    """

    def __init__(self, filename: Callable[[], str], sheets: Callable[[], Mapping[str, Sheet]]):
        self.button = w.Button(
            description="Excel", icon="download", tooltip="Download this view as an Excel workbook"
        )
        self.button.add_class("revmodel-excel-button")
        self.link = w.HTML()
        self.link.add_class("revmodel-excel-link")
        super().__init__([self.button, self.link])
        self.add_class("revmodel-excel")
        self._filename, self._sheets = filename, sheets
        self.data = b""
        self.button.on_click(lambda _button: self.prepare())

    def prepare(self) -> bytes:
        """Write the workbook and show its download link."""
        self.data = workbook(self._sheets())
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", self._filename()).strip("-") or "view"
        name = f"{name}.xlsx"
        href = f"data:{XLSX_MIME};base64,{base64.b64encode(self.data).decode('ascii')}"
        self.link.value = (
            f"<a class='revmodel-excel-file' download='{html.escape(name)}' "
            f"href='{href}'>Download {html.escape(name)}</a>"
        )
        return self.data

    def clear(self) -> None:
        self.link.value = ""
