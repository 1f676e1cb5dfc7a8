"""The command-line frame shared by ``kws-proto`` and ``kws-prep``: one subcommand per module.

Each subcommand is a module of a package, exposing ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``.  Modules import TensorFlow inside ``run`` only, so ``--help`` is
instant.  A subcommand's options may sit between its positionals
(``kws-proto enroll RUN_DIR --bank B --keyword K FILE...``): see :func:`parse_args`.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pkgutil
import sys

from kws_proto import __version__
from kws_proto.errors import KwsError
from kws_proto.util.quiet_tf import quiet_tensorflow


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: X)`` after an option's help once: not when the help already says its default,
    nor for a default that says nothing (None, False, an empty list)."""

    def _get_help_string(self, action):
        text = action.help or ""
        silent = action.default is None or action.default is False or action.default == []
        if silent or action.default is argparse.SUPPRESS or "(default" in text or "default:" in text:
            return text
        return super()._get_help_string(action)


def _number(kind, test, what: str):
    """An argparse ``type=``: ``kind`` of the text, finite, passing ``test``; argparse names the
    option in the error (``argument --min-hits: -3 is not a positive integer``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a positive number")
nonnegative_float = _number(float, lambda v: v >= 0, "a number >= 0")
finite_float = _number(float, lambda v: True, "a finite number")
fraction = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def number_list(item):
    """An argparse ``type=``: comma-separated values, each parsed by ``item`` (one of the above)."""

    def parse(text: str):
        try:
            values = [item(x.strip()) for x in text.split(",") if x.strip()]
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} names no value")
        return values

    parse.__name__ = f"list of {item.__name__}"
    return parse


def build_parser(package: str, prog: str = "kws-proto") -> argparse.ArgumentParser:
    """An argparse parser with one subcommand per module of ``package``."""
    parser = argparse.ArgumentParser(prog=prog, formatter_class=HelpFormatter)
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
            formatter_class=HelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` for a :func:`build_parser` parser, options intermixed with positionals.

    ``parser.parse_intermixed_args`` cannot do it: argparse refuses intermixed parsing of a
    parser with subcommands (``TypeError: ... positional arg with nargs=A...``), and the
    subcommand's parser would parse plainly anyway (checked on Python 3.11).  So parsing takes
    two stages: the top level handles ``--help``/``--version`` and picks the subcommand (which
    also parses its arguments plainly; that result is dropped), then the subcommand's own
    parser parses its arguments again with ``parse_intermixed_args``.  E.g.
    ``enroll RUN_DIR --bank B --keyword K A.wav B.wav`` gives ``items=[RUN_DIR, A.wav, B.wav]``,
    where plain parsing would leave ``A.wav B.wav`` unrecognised.

    Returns
    -------
    args : argparse.Namespace
        The subcommand's arguments, plus ``command`` (its name), ``_run`` and ``_parser``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    top, _ = parser.parse_known_args(argv)  # stage 1: exits on --help, --version, bad command
    at = argv.index(top.command)  # the top level has no option taking a value, so this is it
    if at:
        parser.error(f"unrecognized arguments: {' '.join(argv[:at])}")
    args = top._parser.parse_intermixed_args(argv[at + 1:])  # stage 2
    args.command = top.command
    return args


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run the chosen subcommand; a :class:`KwsError` prints one clear line."""
    quiet_tensorflow()  # keep TensorFlow's start-up chatter out (kws_proto/util/quiet_tf.py)
    args = parse_args(parser, argv)
    try:
        return int(args._run(args) or 0)
    except KwsError as e:
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130
