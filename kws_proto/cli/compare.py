"""Train (or reuse) several configs and compare them, and an MFCC + DTW baseline, on identical
fixed test episodes over a way/shot grid; write results.md, results.csv and plots to --out.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from kws_proto.util.cli import nonnegative_int, positive_int

HELP = "compare encoders on identical test episodes"


def add_arguments(p) -> None:
    p.add_argument("configs", type=Path, nargs="+", help="experiment YAMLs, one per run")
    p.add_argument("--out", type=Path, default=Path("runs/compare"), help="report folder")
    p.add_argument("--runs-root", type=Path, default=Path("runs"), help="runs go to RUNS_ROOT/<name>")
    p.add_argument("--grid", default="5x1,5x5,10x5", help="comma-separated WAYxSHOT settings")
    p.add_argument("--query", type=positive_int, default=15, help="queries per class")
    p.add_argument("--episodes", type=positive_int, default=1000, help="test episodes per setting")
    p.add_argument("--eval-data", type=Path, default=None,
                   help="score on this prepared dataset instead of the runs' own test split")
    p.add_argument("--classes", default=None, help="comma-separated keywords of --eval-data")
    p.add_argument("--speaker-disjoint", action="store_true",
                   help="support and query of a class come from different speakers")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the test episodes")
    p.add_argument("--no-dtw", action="store_true", help="skip the MFCC + DTW baseline")
    p.add_argument("--reference", default=None, metavar="NAME",
                   help="the compared model paired differences are taken against "
                        "(default: the Sequential encoder, conv4, when compared)")
    p.add_argument("--no-gse", action="store_true",
                   help="skip the Google speech embedding (scored when `pip install -e '.[gse]'` "
                        "brought it)")
    p.add_argument("--ewn", action="store_true",
                   help="also score EfficientWord-Net's frozen embedding (`make ewn` installs it; "
                        "~0.1 s a clip)")
    p.add_argument("--fused", type=Path, action="append", default=[], metavar="DIR",
                   help="also score this fused model (a `kws-proto fuse` folder); repeatable")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from kws_proto.eval.compare import compare  # lazy: --help builds every parser
    from kws_proto.eval.evaluate import parse_grid  # lazy: --help builds every parser

    compare(
        args.configs, args.out, runs_root=args.runs_root,
        settings=parse_grid(args.grid, args.query, args.episodes), eval_data=args.eval_data,
        classes=[c.strip() for c in args.classes.split(",")] if args.classes else None,
        seed=args.seed, dtw=not args.no_dtw, gse=False if args.no_gse else None, reference=args.reference,
        fused=args.fused, ewn=args.ewn, speaker_disjoint=args.speaker_disjoint, progress=not args.quiet,
        command="kws-proto " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    return 0
