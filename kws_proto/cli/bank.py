"""List a keyword bank: its encoder, front end and keywords (clips and thresholds).

Loading verifies the bank's checksum, so this also tells whether a bank file is intact.
"""

from __future__ import annotations

import json
from pathlib import Path

HELP = "list the keywords of a keyword bank"


def add_arguments(p) -> None:
    p.add_argument("bank", type=Path, help="a keyword bank file written by `kws-proto enroll`")
    p.add_argument("--json", action="store_true", help="print the bank's header as JSON")


def run(args) -> int:
    from kws_proto.spot.bank import load_bank  # lazy: --help builds every parser

    bank = load_bank(args.bank)
    if args.json:
        print(json.dumps(bank.header(), indent=2))
        return 0
    e = bank.encoder
    print(f"{args.bank}: {len(bank)} keyword(s)")
    print(f"  encoder   {e.spec or e.model} ({e.encoder}, {e.distance}, {e.embedding_dim}-dim), "
          f"weights fingerprint {e.fingerprint[:16]}")
    print(f"  features  {bank.features.digest}: {bank.features.sample_rate} Hz, "
          f"{bank.features.clip_seconds:g} s clips, crop {bank.features.crop}")
    for kw in bank.keywords:
        cal = kw.calibration
        neg = f", {cal['negatives']} negatives" if "negatives" in cal else ""
        syn = cal.get("synthesised")
        made = f" ({syn['clips']} synthesised from {syn['text']!r})" if syn and syn["clips"] else ""
        print(f"  {kw.name!r}: {len(kw.clips)} clips{made}, threshold {kw.threshold:.4g}{neg}")
        print(f"      {', '.join(kw.clips)}")
    return 0
