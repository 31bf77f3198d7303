"""Exceptions that the ``zoa`` CLI reports as one line and exit status 2.

Every error a user can cause by bad input (a profile, a catalog, a shard, an output
folder) derives from :class:`ZoaError`; anything else is a bug and shows a traceback.
Messages name what is wrong and where (file, and line, column, key or dataset), on one
line: text taken from the input goes through :func:`printable` first.
"""


class ZoaError(Exception):
    """Base of user-facing errors: the message names what is wrong and where."""


def printable(text, limit: int = 60, quote: bool = False) -> str:
    """``text`` fit for a one-line message: as is when printable (its ``repr`` with
    ``quote``), else its ``repr`` (line breaks, form feeds, NUL and other control characters
    escaped); longer than ``limit`` characters, cut with its full length said."""
    raw = text if isinstance(text, str) else str(text)
    s = repr(text) if quote else raw
    if not s.isprintable():
        s = repr(s)
    if len(s) > limit:
        s = f"{s[:max(10, limit - 20)]}… ({len(raw)} characters)"
    return s
