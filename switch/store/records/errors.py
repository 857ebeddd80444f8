"""The records' errors."""

from __future__ import annotations


class RecordsError(Exception):
    """Records cannot be kept as configured; the message says why and what to do."""


class Unavailable(Exception):
    """The database cannot be written now (down, locked, read-only, full): retry later."""
