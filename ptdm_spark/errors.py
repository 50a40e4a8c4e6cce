"""Errors that stop a command before anything is written.

A :class:`UsageError` is the user's to fix (a missing path, a bad config key, an unknown
dataset). The CLI prints its message on one line and exits with status 2, with no traceback.
"""


class UsageError(Exception):
    """Misuse: one line that says what to fix; exit status 2; nothing written."""


class ConfigError(UsageError):
    """A config key is unknown, missing, or has a bad value."""
