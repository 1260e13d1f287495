"""Errors a user can cause.

Every such error is a :class:`SeegaanError`; the command-line tools print its message as one line on
stderr and exit with a non-zero code, so the message must say what is wrong *and* what to do.
"""

from __future__ import annotations


class SeegaanError(ValueError):
    """A problem with the user's input (file, option, data); its message is one actionable line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class SeegaanWarning(UserWarning):
    """A result is valid but probably not what the user wants (e.g. B too small to reject)."""
