"""Classify clips against a keyword bank: nearest keyword, its distance, the runner-up, and
"unknown" when no keyword is within its threshold.

The bank's own encoder is reloaded (from the path recorded in the bank, or --model) and must
have the weight fingerprint the bank records.  --json prints one object per clip: path (as
given), keyword (or "unknown"), distance, runner_up, runner_up_distance, plus nearest and
threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

HELP = "classify clips with a keyword bank"


def add_arguments(p) -> None:
    p.add_argument("bank", type=Path, help="a keyword bank file written by `kws-proto enroll`")
    p.add_argument("files", nargs="+", help="audio clips (WAV/FLAC/OGG)")
    p.add_argument("--model", default=None,
                   help="the bank's encoder at another place (a run directory or `default`)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from kws_proto.spot.bank import load_bank
    from kws_proto.spot.spotter import KeywordSpotter

    bank = load_bank(args.bank)
    spotter = KeywordSpotter.for_bank(bank, args.model)
    results = spotter.classify(bank, args.files)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    for r in results:
        runner = (f", runner-up {r.runner_up} {r.runner_up_distance:.4g}"
                  if r.runner_up is not None else "")
        why = f" (nearest {r.nearest} at {r.distance:.4g} > threshold {r.threshold:.4g})" \
            if r.keyword == "unknown" else f" distance {r.distance:.4g} (threshold {r.threshold:.4g})"
        print(f"{r.path}: {r.keyword}{why}{runner}")
    return 0
