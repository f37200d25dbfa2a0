"""One safe way to read the YAML files a user writes (mappings, parameters).

:func:`load_yaml` parses with PyYAML's safe loader and adds what a file
from an unknown source needs: anchors and aliases (``&name`` / ``*name``) are
refused, since nested aliases expand exponentially (a 600-byte "billion
laughs" file would need gigabytes); nesting is capped (a file nested 20,000
deep would otherwise exhaust Python's recursion); and the file size is capped.
Every error names the file and line and says what to do.

Example
-------
>>> from pathlib import Path
>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "plan.yaml"
>>> _ = path.write_text("company_target: 12000000\\nsegments: [SMB, Enterprise]\\n")
>>> load_yaml(path)
{'company_target': 12000000, 'segments': ['SMB', 'Enterprise']}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from revmodel.errors import DataError, RevmodelError

#: Deepest nesting of lists and mappings accepted.
MAX_DEPTH = 50
#: Largest YAML file read [bytes].
MAX_BYTES = 1_000_000


class _Refused(Exception):
    """A structural limit was hit while composing (message, line)."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def _guarded(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    class Guarded(base):  # type: ignore[misc, valid-type]
        """A loader that refuses aliases and anchors and caps nesting."""

        _depth = 0

        def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
            event = self.peek_event()
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent):
                raise _Refused(
                    f"an alias (*{event.anchor}) at line {line}; aliases and anchors are not "
                    "accepted: write the values out",
                    line,
                )
            if getattr(event, "anchor", None) is not None:
                raise _Refused(
                    f"an anchor (&{event.anchor}) at line {line}; aliases and anchors are not "
                    "accepted: write the values out",
                    line,
                )
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _Refused(
                        f"nesting deeper than {MAX_DEPTH} levels at line {line}; "
                        "a settings file needs only a few levels",
                        line,
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return Guarded


class _TextLoader(yaml.SafeLoader):
    """Safe YAML that keeps scalars as written: ``yes``, ``007``, ``2026-01-31`` stay text."""


_TextLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_SAFE = _guarded(yaml.SafeLoader)
_TEXT = _guarded(_TextLoader)


def _flow_depth_line(text: str) -> int | None:
    """Line where ``[``/``{`` nesting passes MAX_DEPTH, or None.

    PyYAML's scanner slows quadratically on deeply nested flow collections,
    so they are refused before parsing. Quoted text is skipped.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth, line, quote = 0, 1, ""
    for ch in text:
        if ch == "\n":
            line += 1
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return None


def load_yaml(
    path: str | Path,
    *,
    text_scalars: bool = False,
    error: type[RevmodelError] = DataError,
    label: str | None = None,
) -> Any:
    """Parse a YAML file safely: no aliases or anchors, nesting and size capped.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    text_scalars : bool
        Keep every scalar as the text written (``yes``, ``007`` and
        ``2026-01-31`` stay strings), as a mapping file needs to match an
        export's text. Default: YAML's usual types.
    error : RevmodelError subclass
        Raised on any problem (default :class:`~revmodel.errors.DataError`);
        parameters pass :class:`~revmodel.errors.ParameterError`.
    label : str, optional
        How to name the file in messages (default the path as given).

    Returns
    -------
    Any
        The document (``None`` for an empty file).

    Raises
    ------
    RevmodelError
        Of class ``error``: not found, too large, not UTF-8, invalid YAML, an
        alias or anchor, or nesting deeper than :data:`MAX_DEPTH`.

    Example
    -------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "m.yaml"
    >>> _ = p.write_text("a: &x [1]\\nb: *x\\n")
    >>> load_yaml(p)
    Traceback (most recent call last):
    ...
    revmodel.errors.DataError: ...m.yaml has an anchor (&x) at line 1; aliases and anchors are not accepted: write the values out
    """
    path = Path(path)
    name = label or str(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise error(f"{name} not found; check the path") from None
    if size > MAX_BYTES:
        raise error(
            f"{name} is {size:,} bytes; a settings file is at most {MAX_BYTES:,} bytes: "
            "check that this is the right file"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{name} is not UTF-8 text (byte {exc.start:,}); save it as UTF-8") from None
    deep = _flow_depth_line(text)
    if deep is not None:
        raise error(
            f"{name} has nesting deeper than {MAX_DEPTH} levels at line {deep}; "
            "a settings file needs only a few levels"
        )
    try:
        return yaml.load(text, Loader=_TEXT if text_scalars else _SAFE)  # noqa: S506 - guarded safe loader
    except _Refused as exc:
        raise error(f"{name} has {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None)
        detail = f" ({problem})" if problem else ""
        raise error(f"{name} is not valid YAML{at}{detail}; fix its syntax") from None
    except RecursionError:  # pragma: no cover - the depth cap comes first
        raise error(
            f"{name} is nested too deeply; a settings file needs only a few levels"
        ) from None


__all__ = ["MAX_BYTES", "MAX_DEPTH", "load_yaml"]
