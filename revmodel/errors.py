"""Errors a user sees. Their message says what was wrong, where, and what to do."""

from __future__ import annotations


class RevmodelError(Exception):
    """An error caused by input or settings, shown to the user without a traceback."""

    exit_code = 2


class DataError(RevmodelError):
    """Input data is unusable (missing file or column, unreadable file)."""

    exit_code = 2


class ParameterError(RevmodelError):
    """A parameter or setting is invalid."""

    exit_code = 2


class InfeasibleError(RevmodelError):
    """A planning problem has no solution under the given constraints."""

    exit_code = 2
