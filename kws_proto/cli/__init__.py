"""``kws-proto``: training, evaluation and keyword commands, one module each in this package
(the frame: :mod:`kws_proto.util.cli`)."""

from __future__ import annotations

import sys

from kws_proto.util.cli import build_parser, run_cli


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser("kws_proto.cli"), argv)


if __name__ == "__main__":
    sys.exit(main())
