"""``kws-prep``: prepare datasets (one subcommand per module of :mod:`data_prep.commands`)."""

from __future__ import annotations

import sys

from kws_proto.util.cli import build_parser, run_cli


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser("data_prep.commands", prog="kws-prep"), argv)


if __name__ == "__main__":
    sys.exit(main())
