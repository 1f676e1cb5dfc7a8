"""Score a trained run on fixed few-shot test episodes: accuracy as mean ± 95% CI.

Episodes are drawn once from --seed over the chosen classes, so every run scored with the same
seed, data and classes sees identical episodes.
"""

from __future__ import annotations

import json
from pathlib import Path

from kws_proto.util.cli import nonnegative_int, positive_int

HELP = "evaluate a run on fixed test episodes over a way/shot grid"


def add_arguments(p) -> None:
    p.add_argument("run_dir", type=Path,
                   help="a run directory written by `kws-proto train`, or `default` (the shipped "
                        "model: protores_synth, gse and gse-head fused; give it --data), "
                        "`protores_synth` (its trained member; give it --data), a fused model's "
                        "folder, or `gse` / `gse-full`: the Google speech embedding on the 1 s crop "
                        "/ the whole clip (needs --data and the extra: pip install -e '.[gse]'), "
                        "`gse-head`: the package's head on it, or `ewn` / `ewn-1.5s`: EfficientWord-Net's "
                        "embedding on the 1 s crop / the loudest 1.5 s (needs --data and `make ewn`), "
                        "or a fused model's folder (`kws-proto fuse`; "
                        "needs --data)")
    p.add_argument("--way", type=positive_int, nargs="+", default=[5], help="ways to evaluate")
    p.add_argument("--shot", type=positive_int, nargs="+", default=[1, 5], help="shots to evaluate")
    p.add_argument("--query", type=positive_int, default=15, help="queries per class")
    p.add_argument("--episodes", type=positive_int, default=1000, help="test episodes per setting")
    p.add_argument("--data", type=Path, default=None,
                   help="a prepared dataset folder to score on, or a raw keyword folder "
                        "(SRC/<keyword>/*.wav or FSDD-style names; indexed into "
                        "$KWS_PROTO_CACHE, ~/.cache/kws_proto when unset) (default: the run's own "
                        "dataset)")
    p.add_argument("--classes", default=None,
                   help="comma-separated keywords (default: the dataset's test split)")
    p.add_argument("--unknown", default=None,
                   help="open set: comma-separated words pooled into an extra '_unknown_' class; "
                        "adds AUROC and detection rate at 5%% false acceptance")
    p.add_argument("--speaker-disjoint", action="store_true",
                   help="support and query of a class come from different speakers")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the test episodes")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    from kws_proto.eval.evaluate import evaluate_run, grid  # lazy: --help builds every parser

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    rows = evaluate_run(
        args.run_dir, grid(args.way, args.shot, args.query, args.episodes), data_dir=args.data,
        classes=classes, seed=args.seed, speaker_disjoint=args.speaker_disjoint,
        progress=not args.json,
        unknown=[c.strip() for c in args.unknown.split(",")] if args.unknown else (),
    )
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "accuracies"} for r in rows], indent=2))
        return 0
    print(f"{'setting':>16}  accuracy % (95% CI)")
    for r in rows:
        name = f"{r['n_way']}-way {r['k_shot']}-shot"
        extra = (f"  AUROC {r['auroc']:.3f}, detection at 5% FAR {100 * r['detection_at_5pct_far']:.1f}%"
                 if "auroc" in r else "")
        print(f"{name:>16}  {100 * r['mean']:.2f} ± {100 * r['ci95']:.2f}  ({r['episodes']} episodes){extra}")
    return 0
