"""Paired differences of two `kws-proto spot-eval --json` runs on the same trials.

    python experiments/spot_paired.py BEFORE.json AFTER.json [--names before after] [--fa 10 30 50 100]
    python experiments/spot_paired.py RUN.json RUN.json --variants 1 0 --fa 10 30 50 100

Two models that cannot be loaded in one process (two versions of the shipped `default`) are
scored by two runs with the same options and seed, hence the same trials (streams, supports,
views); each run's JSON keeps every trial's counts at every factor (`trial_counts`), and this
script bootstraps them as `spot-eval --compare` does in one run: the same resamples of trials for
both, intervals of each run's points and of the second's difference from the first at the given
false-alarm rates. The trials must agree (their ids and stream lengths), else it stops.
``--variants I J`` takes each file's I-th and J-th variant (default: the first of each), so the
two variants of one `--compare` run get differences at other rates than the run's own.
"""

from __future__ import annotations

import argparse
import json
import sys

from kws_proto.eval.spot_report import det_plot, table
from kws_proto.eval.spot_results import SpotEvalResult, bootstrap, from_dict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--names", nargs=2, default=("before", "after"))
    p.add_argument("--fa", nargs="+", type=float, default=None,
                   help="false-alarm rates of the differences (default: the runs' own)")
    p.add_argument("--variants", nargs=2, type=int, default=(0, 0), metavar=("I", "J"),
                   help="which variant of each file (default: the first of each)")
    p.add_argument("--plot", default=None, metavar="PNG", help="also draw both DET curves")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    runs = [json.load(open(path)) for path in (a.before, a.after)]
    picked = [r["variants"][i] for r, i in zip(runs, a.variants)]
    variants = [from_dict(v, name) for v, name in zip(picked, a.names)]
    same = [(t["trial"], t["seconds_audio"]) for t in picked[0]["per_trial"]]
    if same != [(t["trial"], t["seconds_audio"]) for t in picked[1]["per_trial"]]:
        sys.exit(f"{a.before} and {a.after} were not scored on the same trials")
    for v in variants:
        if a.fa:
            v.fa_points = tuple(a.fa)
    bootstrap(variants, a.seed)
    r = runs[0]
    extra = {k: v for k, v in r.items()  # the sentence benchmark's facts
             if k not in ("dataset", "speaker_disjoint", "options", "trials", "variants")}
    result = SpotEvalResult(r["dataset"], r["speaker_disjoint"], r["options"], r["trials"],
                            variants, extra)
    print(table(result))
    if a.plot:
        print(f"DET curves: {det_plot(result, a.plot)}")


if __name__ == "__main__":
    main()
