"""Errors a user can cause.

Every error that comes from bad input, a missing file, an unsupported option or an unwritable
output is a :class:`BackdropError` subclass carrying a one-line message. The CLI prints that line
and exits with status 2; anything else is a bug and may show a traceback.
"""

import signal


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


#: the signals that stop a job cleanly (outputs removed, exit 128 + signal): kill, a closed terminal,
#: Ctrl-C and Ctrl-\ (SIGQUIT), whose default core dump left the ``.part`` file for the next
#: run's one-hour sweep
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)


class Terminated(BaseException):
    """Raised from the SIGTERM (and SIGHUP, SIGQUIT) handler so cleanup (temp outputs) runs as for Ctrl-C.

    A ``BaseException`` like ``KeyboardInterrupt``, so no ``except Exception`` swallows a stop.
    ``signum`` is the signal; the CLI exits with 128 + signum.
    """

    def __init__(self, signum: int = 15):
        super().__init__(signum)
        self.signum = signum


#: the stop the signal handlers raised, if any (first one wins): library code that catches a
#: broad exception (an ``ImportError`` a native module made of an interrupted import) re-raises it
_STOP: list[BaseException] = []


def note_stop(exc: BaseException) -> None:
    if not _STOP:
        _STOP.append(exc)


def raise_if_stopped(exc: BaseException | None = None) -> None:
    """Re-raise a pending Ctrl-C / SIGTERM instead of reporting ``exc`` as the error.

    Called where an exception is turned into a user error: if a signal arrived (or ``exc`` was
    caused by one), the stop is what happened, not the error.
    """
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, (KeyboardInterrupt, Terminated)):
            raise exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    if _STOP:
        raise _STOP[0]


class _Deferral:
    depth = 0
    pending: BaseException | None = None


class signals_deferred:
    """Within this block, a stop signal (handled by the CLI's handler) is held back and raised
    when the block ends. For the few lock-holding calls of the main thread (a ``queue`` put or
    get, an ``Event`` wait): an exception raised by a signal handler just after such a call took
    its lock leaves the lock held for ever (CPython bpo-29988), and the worker thread that
    needs it then hangs the whole stop."""

    def __enter__(self):
        _Deferral.depth += 1
        return self

    def __exit__(self, *exc):
        _Deferral.depth -= 1
        if _Deferral.depth == 0 and _Deferral.pending is not None:
            pending, _Deferral.pending = _Deferral.pending, None
            raise pending
        return False


def defer_stop(exc: BaseException) -> bool:
    """For a signal handler: keep ``exc`` for the end of a :class:`signals_deferred` block and
    return True, or return False when none is active (raise it now)."""
    if _Deferral.depth > 0:
        _Deferral.pending = _Deferral.pending or exc
        return True
    return False


_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {0x7F: "\\x7f", 10: "\\n", 13: "\\r", 9: "\\t"}


def escape_controls(text: str) -> str:
    """``text`` with control characters (a newline in a file name) shown as escapes, so a
    message stays one line."""
    return text.translate(_CONTROL)
