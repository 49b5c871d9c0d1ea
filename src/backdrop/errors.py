"""Errors a user can cause.

Every error that comes from bad input, a missing file, an unsupported option or an unwritable
output is a :class:`BackdropError` subclass carrying a one-line message. The CLI prints that line
and exits with status 2; anything else is a bug and may show a traceback.
"""


def install_hint(extra: str) -> str:
    """How to install an optional extra, in the README's words (one wording everywhere)."""
    return f'pip install -e ".[{extra}]"'


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
    """An option value is out of range or inconsistent with another option.

    The library speaks the library: ``OptionError("{option} must be ...", option="work_size")``
    reads "work_size must be ..." to a Python caller, and :meth:`for_flag` lets the CLI say
    "--work-size must be ..." instead.
    """

    def __init__(self, message: str, option: str | None = None):
        self.option = option
        self.template = message
        super().__init__(message.replace("{option}", option) if option else message)

    def for_flag(self, flag: str) -> str:
        """The same message naming the command-line flag instead of the library argument."""
        return self.template.replace("{option}", flag) if self.option else str(self)


class Terminated(BaseException):
    """Raised from the SIGTERM handler so cleanup (temp outputs) runs as for Ctrl-C.

    A ``BaseException`` like ``KeyboardInterrupt``, so no ``except Exception`` swallows a stop.
    """
