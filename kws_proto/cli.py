"""``kws-proto``: training, evaluation and keyword commands.

Each subcommand is a module in :mod:`kws_proto.commands` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``.  Modules import TensorFlow inside ``run`` only,
so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from kws_proto import __version__
from kws_proto.errors import KwsError


def build_parser(package: str = "kws_proto.commands", prog: str = "kws-proto") -> argparse.ArgumentParser:
    """An argparse parser with one subcommand per module of ``package``."""
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{package}.{info.name}")
        name = getattr(mod, "NAME", info.name.replace("_", "-"))
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=(mod.__doc__ or mod.HELP).strip(),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run the chosen subcommand; a :class:`KwsError` prints one clear line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KwsError as e:
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
