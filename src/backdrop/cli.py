"""The ``backdrop`` command. Thin: parses flags, builds a Pipeline, runs a source->sink loop.

Each sub-command lives in ``backdrop.commands.<name>`` and registers itself. A user error
(:class:`BackdropError`) prints one line and exits 2; Ctrl-C / SIGTERM exit 130 / 143 after the
partial output has been removed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from . import __version__
from .errors import BackdropError

COMMANDS = ["video", "image", "models", "sample", "eval", "bench", "camera", "serve", "train", "batch"]


class Terminated(BaseException):
    """Raised from the SIGTERM handler so cleanup (temp outputs) runs as for Ctrl-C."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in subprocess tests
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="backdrop: %(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
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
