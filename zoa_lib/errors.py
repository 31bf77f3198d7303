"""Exceptions that the ``zoa`` CLI reports as one line and exit status 2.

Every error a user can cause by bad input (a profile, a catalog, a shard, an output
folder) derives from :class:`ZoaError`; anything else is a bug and shows a traceback.
"""


class ZoaError(Exception):
    """Base of user-facing errors: the message names what is wrong and where."""
