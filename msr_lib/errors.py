"""Errors the library raises on bad input. The CLI prints them as one line; anything else is a bug."""


class MSRError(Exception):
    """Bad input or a request the library cannot serve; the message is one line meant for the user."""


class AudioError(MSRError):
    """A missing, empty, corrupt or unusable audio file or array."""
