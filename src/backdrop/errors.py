"""Errors a user can cause.

Every error that comes from bad input, a missing file, an unsupported option or an unwritable
output is a :class:`BackdropError` subclass carrying a one-line message. The CLI prints that line
and exits with status 2; anything else is a bug and may show a traceback.
"""


class BackdropError(Exception):
    """Base class of user-facing errors: ``str(err)`` is a one-line message."""

    exit_code = 2


class InputError(BackdropError):
    """The input file is missing, unreadable, corrupt or of an unsupported kind."""


class OutputError(BackdropError):
    """The output cannot be written (same as input, unwritable folder, disk full...)."""


class ModelError(BackdropError):
    """The model cannot be found, fetched, verified or loaded."""


class BackgroundError(BackdropError):
    """The ``--background`` value is not an image, video, colour, blur or known mode."""


class OptionError(BackdropError):
    """An option value is out of range or inconsistent with another option."""
