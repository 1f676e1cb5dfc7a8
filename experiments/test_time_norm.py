"""Does normalising embeddings at test time help a trained encoder on real speech?

Scores each run directory given on the cross-corpus cells of experiments/protocol.md (FSDD digits
speaker-disjoint and the Picovoice wake words, 5-way 1- and 5-shot, the same 1,000 episodes of
seed 0 as ``kws-proto eval``) with the nearest-prototype rule after each of these transforms of
the embeddings (for an ensemble encoder, per member's block, as the members' distances are
summed):

- ``raw``: none (what ``kws-proto eval`` scores for a run without a head - a run's own
  ``head`` is left off here; the others are printed as accuracy and, in
  brackets, the paired difference from ``raw`` over the same episodes, 95% CI);
- ``l2``: each block scaled to unit length (cosine distance);
- ``train+l2``: minus the mean embedding of 3,000 clips of the run's own training words, then
  unit length ("CL2N" of Wang et al. 2019, SimpleShot, arXiv 1911.04623) - inductive;
- ``support+l2``: minus the mean of the episode's support clips, then unit length - inductive
  (uses only the labelled support);
- ``episode+l2``: minus the mean of the episode's support *and query* clips, then unit length -
  transductive: it uses the unlabelled queries of the episode, which the published numbers
  (REFERENCE.md section 2) do not.

A translation alone changes no squared Euclidean distance; centring matters only before the
unit-length scaling.

    python experiments/test_time_norm.py RUN_DIR [RUN_DIR ...]

The test sets are the demo's (``kws_proto.eval.suites.REAL``), read from ``data/fsdd`` and
``data/picovoice``, which are prepared from ``../shared/data`` (or ``$KWS_SHARED_DATA``) when
missing.
``train+l2`` reads the run's own training corpus (its ``data.dataset``), which is synthesised on
first use when missing (the shipped encoder's 870 x 50 words take a while).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from kws_proto.model.scoring import prototype_distances
from kws_proto.util.vectors import l2_normalize

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TRANSFORMS = ("raw", "l2", "train+l2", "support+l2", "episode+l2")
TRAIN_CLIPS = 3000


def unit_blocks(x: np.ndarray, groups: int) -> np.ndarray:
    """``x [shape=(..., groups * d)]`` with each ``d``-wide block scaled to unit length."""
    return np.concatenate([l2_normalize(b) for b in np.split(x, groups, axis=-1)], -1)


def accuracies(table: np.ndarray, episodes, transform: str, groups: int,
               train_mean: np.ndarray) -> np.ndarray:
    """Per-episode accuracy after ``transform`` of ``table [shape=(n_clips, dim)]``."""
    out = []
    for e in episodes:
        t = table
        if transform != "raw":
            s = table[e.support.ravel()]  # [n_way * k_shot, dim]
            q = table[e.query.ravel()]  # [n_way * n_query, dim]
            centre = {"l2": 0.0, "train+l2": train_mean, "support+l2": s.mean(0),
                      "episode+l2": np.concatenate([s, q]).mean(0)}[transform]
            rows = np.concatenate([e.support.ravel(), e.query.ravel()])
            t = table.copy()
            t[rows] = unit_blocks(table[rows] - centre, groups)
        d, y = prototype_distances(t, e)  # [n_way * n_query, n_way]
        out.append(float((d.argmin(1) == y).mean()))
    return np.asarray(out)


def main(run_dirs: list[str]) -> None:
    from kws_proto.eval.suites import REAL
    from kws_proto.eval.evaluate import EvalSetting, embed_rows, embedding_table, eval_episodes, open_eval_data
    from kws_proto.model.loading import load_run_network
    from kws_proto.util.stats import mean_ci, paired_difference

    print("| run | test data | shots | " + " | ".join(TRANSFORMS) + " |")
    print("|---|---|---|" + "---|" * len(TRANSFORMS))
    for run in run_dirs:
        cfg, net = load_run_network(run, head=False)  # the encoder as trained
        groups = cfg.model.groups
        own = open_eval_data(cfg, progress=False)
        rows = own.manifest.indices_by_keyword()
        train_rows = np.concatenate([rows[k] for k in own.splits.train])
        pick = np.random.default_rng(0).choice(train_rows, min(TRAIN_CLIPS, len(train_rows)), replace=False)
        train_mean = embed_rows(net, own.features, pick).astype(np.float64).mean(0)
        for suite in REAL:
            name, classes = suite.name, suite.classes
            data = open_eval_data(cfg, suite.dataset(), speaker_disjoint=suite.speaker_disjoint,
                                  progress=False)
            for shots in (1, 5):
                episodes = eval_episodes(data, classes, EvalSetting(5, shots, 15, 1000), seed=0)
                table = embedding_table(net, data.features, episodes)
                raw = accuracies(table, episodes, "raw", groups, train_mean)
                m = mean_ci(raw)
                cells = [f"{100 * m.mean:.1f} ± {100 * m.ci95:.1f}"]
                for t in TRANSFORMS[1:]:
                    acc = accuracies(table, episodes, t, groups, train_mean)
                    d = paired_difference(acc, raw)
                    cells.append(f"{100 * acc.mean():.1f} ({100 * d.mean:+.1f} ± {100 * d.ci95:.1f})")
                print(f"| {run} | {name} | {shots} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
