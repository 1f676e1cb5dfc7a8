"""Classify clips against a keyword bank: nearest keyword, its distance, the runner-up, and
"unknown" when no keyword is within its threshold.

The bank's own encoder is reloaded (from the path recorded in the bank, or --model) and must
have the weight fingerprint the bank records.  --json prints one object per clip: path (as
given), keyword (or "unknown"), distance, runner_up, runner_up_distance, plus nearest and
threshold.  An unreadable file does not stop the others: it gets the line `FILE: error: WHY`
(in --json an object with path and error), and the command exits with status 1 once every
other file is classified.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HELP = "classify clips with a keyword bank"


def add_arguments(p) -> None:
    p.add_argument("bank", type=Path, help="a keyword bank file written by `kws-proto enroll`")
    p.add_argument("files", nargs="+", help="audio clips (WAV/FLAC/OGG)")
    p.add_argument("--model", default=None,
                   help="the bank's encoder at another place (a run directory or `default`)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:

    from kws_proto.spot.bank import load_bank  # lazy: --help builds every parser

    # lazy: --help builds every parser
    from kws_proto.spot.spotter import KeywordSpotter, Unreadable

    bank = load_bank(args.bank)
    spotter = KeywordSpotter.for_bank(bank, args.model)
    results = spotter.classify(bank, args.files, skip_unreadable=True)
    bad = [r for r in results if isinstance(r, Unreadable)]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            print(_line(r))
    if bad:
        print(f"kws-proto classify: error: {len(bad)} of {len(results)} file(s) could not be "
              "read (see their lines)", file=sys.stderr)
        return 1
    return 0


def _line(r) -> str:
    """One result as a line: the keyword (or why unknown) and the runner-up, or the error."""
    if not hasattr(r, "keyword"):  # Unreadable
        return f"{r.path}: error: {r.error}"
    runner = f", runner-up {r.runner_up} {r.runner_up_distance:.4g}" if r.runner_up is not None else ""
    why = (f" (nearest {r.nearest} at {r.distance:.4g} > threshold {r.threshold:.4g})"
           if r.keyword == "unknown" else f" distance {r.distance:.4g} (threshold {r.threshold:.4g})")
    return f"{r.path}: {r.keyword}{why}{runner}"
