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
import signal
import sys

from . import __version__
from .errors import BackdropError, OptionError, Terminated

COMMANDS = ["video", "image", "models", "sample", "eval", "bench", "camera", "serve", "train", "batch"]


class Parser(argparse.ArgumentParser):
    """argparse with the house error: one ``backdrop: error:`` line, exit 2, and for a mistyped
    flag the nearest real one (``--backgrund`` -> did you mean --background?)."""

    argv: list[str] = []

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


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in subprocess tests
    raise Terminated()


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
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
    except OptionError as exc:  # the library names its argument; the user typed a flag
        from .commands.common import flag_of

        message = exc.for_flag(flag_of(exc.option)) if exc.option else str(exc)
        print(f"backdrop: error: {message}", file=sys.stderr)
        return exc.exit_code
    except BackdropError as exc:
        print(f"backdrop: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("backdrop: interrupted; partial output removed", file=sys.stderr)
        return 130
    except Terminated:
        print("backdrop: terminated; partial output removed", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 1
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
