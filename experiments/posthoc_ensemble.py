"""Would an ensemble of runs already trained help? Score it without training it.

Each run's embeddings of the cross-corpus episodes (FSDD digits speaker-disjoint and the
Picovoice wake words, 5-way 1- and 5-shot, the same 1,000 episodes of seed 0 as ``kws-proto
eval``) are scaled to unit root-mean-square length, so that every run weighs the same in the
sum of squared distances, and concatenated: the nearest-prototype rule on the concatenation is
an ensemble of the runs, as the ``ensemble`` encoder sums its members' squared distances.
Prints each run alone, then every combination named by ``--combo`` (run indices, from 0).

    python experiments/posthoc_ensemble.py RUN_DIR [RUN_DIR ...] [--combo 0,1 --combo 0,1,2]

The test sets are the demo's (``kws_proto.eval.suites.REAL``), read from ``data/fsdd`` and
``data/picovoice``, which are prepared from ``../shared/data`` (or ``$KWS_SHARED_DATA``) when
missing.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



def main(run_dirs: list[str], combos: list[tuple[int, ...]]) -> None:
    from kws_proto.eval.suites import REAL
    from kws_proto.eval.evaluate import EvalSetting, embedding_table, eval_episodes, open_eval_data, score_episodes
    from kws_proto.model.loading import load_run_network

    for c in combos:
        if not c or min(c) < 0 or max(c) >= len(run_dirs):
            raise SystemExit(f"--combo {','.join(map(str, c))}: indices must lie in 0..{len(run_dirs) - 1}")
    episodes, tables = {}, {}  # cell -> episodes; (run, cell) -> [n_clips, dim] table
    for run in run_dirs:
        cfg, net = load_run_network(run)
        for suite in REAL:
            name, classes = suite.name, suite.classes
            data = open_eval_data(cfg, suite.dataset(), speaker_disjoint=suite.speaker_disjoint,
                                  progress=False)
            for shots in (1, 5):
                cell = (name, shots)
                if cell not in episodes:  # the same episodes for every run: same seed, same data
                    episodes[cell] = eval_episodes(data, classes, EvalSetting(5, shots, 15, 1000), seed=0)
                t = embedding_table(net, data.features, episodes[cell])
                used = np.linalg.norm(t, axis=1) > 0
                tables[(run, cell)] = t / np.sqrt((t[used] ** 2).sum(1).mean())

    def row(label: str, members: list[str]) -> str:
        cells = []
        for cell, eps in episodes.items():
            s = score_episodes(np.concatenate([tables[(m, cell)] for m in members], axis=1), eps).summary
            cells.append(f"{100 * s.mean:.1f} ± {100 * s.ci95:.1f}")
        return f"| {label} | " + " | ".join(cells) + " |"

    print("| runs | " + " | ".join(f"{n} 5w{k}s" for n, k in episodes) + " |")
    print("|---|" + "---|" * len(episodes))
    for i, run in enumerate(run_dirs):
        print(row(f"{i}: {run}", [run]), flush=True)
    for c in combos:
        print(row(" + ".join(map(str, c)), [run_dirs[i] for i in c]), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories (or kws_proto/model/pretrained/default)")
    p.add_argument("--combo", action="append", default=[],
                   type=lambda s: tuple(int(i) for i in s.split(",")), help="e.g. 0,1,2")
    a = p.parse_args()
    main(a.runs, a.combo)
