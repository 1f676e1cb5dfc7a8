"""Do frequency-warped copies of the support clips help a prototype reach other speakers?

FSDD is lost between speakers (experiments/README.md, "Where FSDD is lost"), and a speaker's
vocal tract length moves every formant by one factor.  Here each support clip is embedded at
several warps of its frequency axis (``kws_proto.augment.freq_warp``, the VTLP of the
``augment.freq_warp`` lever, applied to the cached features) and its support embedding is the
mean over the warps, as enrolment averages time-shifted views; queries stay as they are
(``support``) or are averaged over the same warps too (``both``).  Inductive: nothing of the
test episode beyond its labelled support is used for the prototypes.

Scores each run directory given (with its own head, as ``kws-proto eval`` does) on the
cross-corpus cells (FSDD digits speaker-disjoint, Picovoice wake words; 5-way 1- and 5-shot,
the same 1,000 episodes of seed 0 as ``kws-proto eval``); each cell prints the accuracy and, in
brackets, the paired difference from no warps (95% CI).

    python experiments/support_warps.py RUN_DIR [RUN_DIR ...]

The test sets are the demo's (``kws_proto.demo.REAL``), prepared from ``../shared/data`` (or
``$KWS_SHARED_DATA``) into ``data/`` when missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: name -> (warp factors, also the queries?)
VARIANTS = {
    "none": ((1.0,), False),
    "support 0.95-1.05": ((0.95, 1.0, 1.05), False),
    "support 0.9-1.1": ((0.9, 1.0, 1.1), False),
    "support 0.9-1.1, 5": ((0.9, 0.95, 1.0, 1.05, 1.1), False),
    "support 0.85-1.15, 7": ((0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15), False),
    "both 0.9-1.1, 5": ((0.9, 0.95, 1.0, 1.05, 1.1), True),
}


def accuracies(support_table: np.ndarray, query_table: np.ndarray, episodes) -> np.ndarray:
    """Per-episode nearest-prototype accuracy, prototypes from ``support_table [n_clips, d]``
    rows and queries from ``query_table [n_clips, d]`` rows."""
    out = []
    for e in episodes:
        n_way, n_query = e.query.shape
        protos = support_table[e.support].astype(np.float64).mean(1)  # [n_way, d]
        q = query_table[e.query].reshape(n_way * n_query, -1).astype(np.float64)
        d = ((q[:, None, :] - protos[None]) ** 2).sum(-1)  # [n_way * n_query, n_way]
        out.append(float((d.argmin(1) == np.repeat(np.arange(n_way), n_query)).mean()))
    return np.asarray(out)


def warped_table(net, features: np.ndarray, rows: np.ndarray, alpha: float, fc) -> np.ndarray:
    """``[n_clips, d]`` embeddings of ``rows`` after warping their features by ``alpha``
    (other rows zero)."""
    import tensorflow as tf

    from kws_proto.augment import freq_warp
    from kws_proto.features import dct_matrix

    dct = dct_matrix(fc)
    table = None
    for i in range(0, len(rows), 256):
        r = rows[i:i + 256]
        x = tf.constant(np.asarray(features[r]), tf.float32)  # [b, frames, n_mfcc]
        if alpha != 1.0:
            x = freq_warp(x, dct, fc.fmin, fc.fmax, tf.fill([len(r)], float(alpha)))
        e = net.embed(x, training=False).numpy()
        if table is None:
            table = np.zeros((features.shape[0], e.shape[1]), np.float32)
        table[r] = e
    return table


def main(run_dirs: list[str]) -> None:
    from kws_proto.demo import REAL, SHARED, _prepared
    from kws_proto.evaluate import EvalSetting, eval_episodes, open_eval_data
    from kws_proto.model_io import load_run_network
    from kws_proto.stats import mean_ci, paired_difference

    print("| run | test data | shots | " + " | ".join(VARIANTS) + " |")
    print("|---|---|---|" + "---|" * len(VARIANTS))
    for run in run_dirs:
        cfg, net = load_run_network(run)
        alphas = sorted({a for warps, _ in VARIANTS.values() for a in warps})
        for name, (sub, classes, disjoint, _grid) in REAL.items():
            folder = _prepared(SHARED / sub, Path("data") / name)
            data = open_eval_data(cfg, folder, speaker_disjoint=disjoint, progress=False)
            cells = {1: [], 5: []}
            episodes = {k: eval_episodes(data, classes, EvalSetting(5, k, 15, 1000), seed=0) for k in cells}
            rows = np.unique(np.concatenate([np.concatenate([e.support.ravel(), e.query.ravel()])
                                             for eps in episodes.values() for e in eps]))
            tables = {a: warped_table(net, data.features, rows, a, cfg.features) for a in alphas}
            for shots, eps in episodes.items():
                base = accuracies(tables[1.0], tables[1.0], eps)
                for variant, (warps, queries_too) in VARIANTS.items():
                    sup = np.mean([tables[a] for a in warps], axis=0)
                    acc = accuracies(sup, sup if queries_too else tables[1.0], eps)
                    if variant == "none":
                        m = mean_ci(acc)
                        cells[shots].append(f"{100 * m.mean:.1f} ± {100 * m.ci95:.1f}")
                    else:
                        d = paired_difference(acc, base)
                        cells[shots].append(f"{100 * acc.mean():.1f} ({100 * d.mean:+.1f} ± {100 * d.ci95:.1f})")
                print(f"| {run} | {name} | {shots} | " + " | ".join(cells[shots]) + " |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
