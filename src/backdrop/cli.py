"""The ``backdrop`` command. Thin: parses flags, builds a Pipeline, runs a source->sink loop.

Each sub-command lives in ``backdrop.commands.<name>`` and registers itself. A user error
(:class:`BackdropError`) prints one line and exits 2; Ctrl-C / SIGTERM exit 130 / 143 after the
partial output has been removed.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import re
import signal
import sys

from . import __version__
from .errors import (STOP_SIGNALS, BackdropError, OptionError, Terminated, defer_stop, escape_controls,
                     note_stop)
from .heap import keep_frame_buffers
from .stdio import guarded_streams

COMMANDS = ["video", "image", "upscale", "models", "sample", "eval", "bench", "camera", "serve", "train", "batch"]


class Parser(argparse.ArgumentParser):
    """argparse with the house error: one ``backdrop: error:`` line, exit 2, and for a mistyped
    flag the nearest real one (``--backgrund`` -> did you mean --background?).

    A value that starts with a minus and a digit (``--presenter -1,-1,0``, ``--slide-times
    -1,2``) is a value: argparse takes only plain negative numbers so, and said "expected one
    argument" for a list. No flag of ours is a dash and a digit."""

    argv: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def parse_args(self, args=None, namespace=None):
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_args(self.argv, namespace)

    def _command(self) -> str | None:
        """The sub-command named on the command line, if any."""
        sub = next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None:
            return None
        return next((str(a) for a in self.argv if str(a) in sub.choices), None)

    def _parsers(self) -> list[argparse.ArgumentParser]:
        """This parser and the sub-command's, whose flags a suggestion may name."""
        sub = next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = self._command()
        return [self] + ([sub.choices[name]] if sub is not None and name else [])

    def error(self, message: str):  # noqa: D401 - argparse's signature
        if message.startswith("unrecognized arguments:"):
            wrong = [a for a in message.split(":", 1)[1].split() if a.startswith("-")]
            known = [o for p in self._parsers() for a in p._actions for o in a.option_strings if o.startswith("--")]
            for arg in wrong:
                near = difflib.get_close_matches(arg.split("=")[0], known, n=1, cutoff=0.6)
                if near:
                    message += f" (did you mean {near[0]}?)"
                    break
        prog = self.prog.removeprefix("backdrop").strip()
        if message.startswith("unrecognized arguments:") and not prog and self._command():
            prog = self._command()
        self.exit(2, f"backdrop: error: {prog + ': ' if prog else ''}{message}\n")


_stopping: list[int] = []
STOP_CODES = tuple(128 + int(s) for s in STOP_SIGNALS)


def _on_stop(signum, frame):  # pragma: no cover - exercised in subprocess tests
    """First SIGTERM/SIGHUP/SIGINT/SIGQUIT: stop (cleanup runs). Any later one while cleaning up
    is ignored, so a second signal cannot cut the cleanup short and leave a partial output."""
    if _stopping:
        return
    _stopping.append(signum)
    for sig in STOP_SIGNALS:
        # ignored by the kernel from now on (a pending repeat is discarded too): a handler that
        # merely returns is not enough, Python resets it to the default when it exits
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (OSError, ValueError):  # pragma: no cover
            pass
    exc: BaseException = KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
    note_stop(exc)
    if defer_stop(exc):  # the main thread holds a queue's lock: raised when it lets go
        return
    raise exc


def _install_handlers() -> dict:
    old = {}
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if sig == signal.SIGINT and current is not signal.default_int_handler:
            continue  # inherited as ignored (background job): leave it so
        if sig in (signal.SIGHUP, signal.SIGQUIT) and current == signal.SIG_IGN:
            continue  # nohup, or a shell that ignores it for background jobs
        old[sig] = signal.signal(sig, _on_stop)
    return old


def _raise_stop() -> None:
    """After a stop signal, whatever error followed is the stop: raise it as one."""
    if _stopping:
        raise (KeyboardInterrupt() if _stopping[0] == signal.SIGINT else Terminated(_stopping[0])) from None


def _usable_streams() -> None:
    """Closed standard streams (``backdrop ... >&- 2>&-``) become /dev/null, not a crash."""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            try:
                setattr(sys, name, open(os.devnull, mode))
            except OSError:  # pragma: no cover
                pass


def _say(line: str) -> None:
    try:
        print(escape_controls(line), file=sys.stderr)
    except (OSError, ValueError):  # stderr is gone: the exit status still tells
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="backdrop",
        description="Real-time virtual backgrounds: replace, blur or remove the background of "
                    "videos, images, webcams and browser streams.",
    )
    parser.add_argument("--version", action="version", version=f"backdrop {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"backdrop.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("backdrop.commands"):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _usable_streams()
    keep_frame_buffers()  # frame-sized arrays stay in the process (heap.py: a sixth of the CPU)
    _stopping.clear()
    old = _install_handlers()  # before the (slow) imports of the commands: a stop then is clean too
    try:
        try:
            with guarded_streams():
                return _main(argv)
        except Exception:
            _raise_stop()  # an error made of the stop (an ImportError of an interrupted native import)
            raise
    except KeyboardInterrupt:
        _say("backdrop: interrupted; partial output removed")
        return 130
    except Terminated as exc:
        _say("backdrop: terminated; partial output removed")
        return 128 + int(getattr(exc, "signum", 15) or 15)
    finally:
        if not _stopping:  # after a stop, a second signal must not kill the exit half-way
            for sig, handler in old.items():
                signal.signal(sig, handler)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already one line on stderr)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="backdrop: %(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a result still buffered for a full device: the error below, not exit 120
        return code
    except OptionError as exc:  # the library names its argument; the user typed a flag
        from .commands.common import flag_of

        message = exc.for_flag(flag_of(exc.option)) if exc.option else str(exc)
        _say(f"backdrop: error: {message}")
        return exc.exit_code
    except BackdropError as exc:
        _raise_stop()
        _say(f"backdrop: error: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        return 1


def entry() -> int:
    """The ``backdrop`` program: :func:`main`, and after a stop a prompt exit without interpreter
    finalisation. Decoder and encoder threads of PyAV may still be inside native code when a
    signal ends the job (the outputs are already removed by then); tearing the interpreter down
    under them crashed with SIGSEGV in about 1 of 100 stops in the first second. ``os._exit``
    after flushing the streams ends the process with the stop's status instead."""
    code = main()
    if code in STOP_CODES:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
