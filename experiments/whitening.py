"""Would a linear map fitted on other real speech help the shipped `default`'s fused embedding?

Two maps of the fused embedding (416-d), fitted on speechocean762 centre-half clips whose words
are not among the held-out test folder's (so no test word and no test speaker is seen):
global whitening (the inverse square root of the covariance) and within-class covariance
normalisation (WCCN, the words as classes, as speaker verification normalises within-speaker
variation), each with shrinkage ``alpha`` (``alpha`` times the mean eigenvalue added to every
eigenvalue). Each is scored against the plain embedding on the encoder table's episodes
(seed 0, ``--episodes`` a cell) of FSDD, Picovoice, the built-in corpus and speechocean762's
held-out speakers, with paired differences. Results: experiments/encoders.md, "A linear map on
the fused embedding".

    python experiments/whitening.py --shared ../shared/data --builtin data/synth-demo \
        --centre data/so762-split/centre --so762 data/so762-split/test
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from encoders_table import test_sets  # experiments/encoders_table.py: the same four test sets

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def inverse_sqrt(m: np.ndarray, alpha: float) -> np.ndarray:
    """``(M + alpha * mean(eig M) * I)^(-1/2)`` of a symmetric ``m [d, d]``."""
    lam, v = np.linalg.eigh(m)
    lam = np.maximum(lam, 0.0) + alpha * lam.mean()
    return (v * lam ** -0.5) @ v.T


def fit_maps(x: np.ndarray, words: np.ndarray, alphas) -> tuple[np.ndarray, dict]:
    """The fitting clips' mean ``[d]`` and ``{name: [d, d] map}`` for each kind and ``alpha``."""
    mu = x.mean(axis=0)
    total = np.cov((x - mu).T)
    within, dof = np.zeros_like(total), 0
    for w in np.unique(words):
        z = x[words == w]
        if len(z) >= 2:
            z = z - z.mean(axis=0)
            within += z.T @ z
            dof += len(z) - 1
    within /= dof
    maps = {}
    for a in alphas:
        maps[f"whitening, alpha {a}"] = inverse_sqrt(total, a)
        maps[f"WCCN, alpha {a}"] = inverse_sqrt(within, a)
    return mu, maps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--builtin", type=Path, required=True)
    p.add_argument("--centre", type=Path, required=True, help="the clips the maps are fitted on")
    p.add_argument("--so762", type=Path, required=True, help="speechocean762 held-out speakers")
    p.add_argument("--fit-clips", type=int, default=6000)
    p.add_argument("--alpha", type=float, nargs="+", default=[0.1, 1.0])
    p.add_argument("--episodes", type=int, default=1000)
    args = p.parse_args()

    from data_prep.adhoc import as_dataset
    from kws_proto.data.episodes import Episode
    from kws_proto.eval.evaluate import grid
    from kws_proto.eval.fusion import fused_tables
    from kws_proto.eval.grid import eval_episodes
    from kws_proto.model.fusion import load_fusion
    from kws_proto.model.pretrained import resolve_model
    from kws_proto.model.scoring import score_episodes
    from kws_proto.util.stats import paired_difference

    fusion = load_fusion(resolve_model("default"))
    test_words = {d.name for d in args.so762.iterdir() if d.is_dir()}
    data, table_for = fused_tables(fusion, as_dataset(args.centre), False, progress=False)
    clips = data.manifest.clips
    keep = np.array([i for i, c in enumerate(clips) if c.keyword not in test_words])
    rows = np.sort(np.random.default_rng(0).choice(keep, min(args.fit_clips, len(keep)), False))
    every = Episode(0, ("all",), [[int(rows[0])]], [[int(r) for r in rows[1:]]])
    x = table_for([every])[rows].astype(np.float64)
    words = np.array([clips[i].keyword for i in rows])
    print(f"fitted on {len(rows)} clips of {len(set(words))} words; {x.shape[1]}-d")
    mu, maps = fit_maps(x, words, args.alpha)

    plain, mapped = {}, {name: {} for name in maps}
    for name, folder, classes, disjoint, cells in test_sets(args):
        data, table_for = fused_tables(fusion, as_dataset(folder), disjoint, progress=False)
        classes = tuple(classes) if classes else data.splits.test
        for way, shot in cells:
            cell = f"{name} {way}w{shot}s"
            episodes = eval_episodes(data, classes, grid([way], [shot], 15, args.episodes)[0], 0)
            t = table_for(episodes).astype(np.float64)
            plain[cell] = score_episodes(t, episodes).accuracies
            for m, w in maps.items():
                mapped[m][cell] = score_episodes((t - mu) @ w, episodes).accuracies

    print("| map | " + " | ".join(plain) + " |")
    print("|---|" + "---|" * len(plain))
    print("| none (the shipped `default`) | "
          + " | ".join(f"{100 * a.mean():.1f}" for a in plain.values()) + " |")
    for m, cells in mapped.items():
        out = []
        for cell, acc in cells.items():
            d = paired_difference(acc, plain[cell])
            out.append(f"{100 * acc.mean():.1f} ({100 * d.mean:+.1f} ± {100 * d.ci95:.1f})")
        print(f"| {m} | " + " | ".join(out) + " |")


if __name__ == "__main__":
    main()
