"""The cohort's scale: a keyword's distance divided by its cohort's deviation (s-norm, shipped) or
by its cohort's mean, ranked with one threshold for every keyword (experiments/spotting.md, "The
cohort's mean as the unit").

The same keywords, draws, supports and negatives as ``clf_proxy.py``.  For each keyword, ``c``
are the squared distances of the shipped background's windows to its prototype, sorted; ``d`` a
clip's.  Every rule below is monotone in ``d`` for one keyword, so each keyword's own ranking is
the same under all of them; they differ only in how one common threshold cuts different keywords
(the spotter's sweep moves every keyword's cut together):

- ``s-norm, top N``: ``(d - mean c[:N]) / std c[:N]`` (N = 500 is the shipped rule);
- ``mean, top N``: ``d / mean c[:N]``: the cohort's mean as the unit, its deviation unused;
- ``median, top 500`` and ``50th nearest``: the same with ``median c[:500]`` or ``c[49]``;
- ``mean ** B, top 500``: ``d / mean ** B`` (B = 1 is ``mean, top 500``);
- ``each member's mean``: each member's squared distance divided by the mean of its own 500
  nearest (its columns of the fused embedding and of the background), the members' ratios
  averaged.

Pooled over keywords and draws: the true-positive rate at 1 % and 0.1 % false positives; first,
with a threshold per keyword draw (the best any common rule could do, the same for all rules).

    python experiments/cohort_scale_proxy.py ../shared/data/fsdd --others data/so762-split/test

``--background FILE``: another cohort than the shipped background (`kws-proto background default
...`), so that the units are compared against other speech too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clf_proxy import DRAWS, keyword_draws, proxy_parser, tpr_at
from member_norm_proxy import member_slices
from kws_proto.spot.background import load_background
from kws_proto.spot.spotter import KeywordSpotter

TOPS = (100, 500, 2000, None)  # None: every window
POWERS = (0.8, 1.25)


def rules(c: np.ndarray) -> dict:
    """``{name: f}``: each rule's score ``f(d)`` (smaller: keyword) for a keyword whose sorted
    cohort distances are ``c``."""
    out = {}
    for top in TOPS:
        near, name = c[:top], f"top {top or len(c)}"
        mu, sd = near.mean(), near.std()
        out[f"s-norm, {name}"] = lambda d, mu=mu, sd=sd: (d - mu) / sd
        out[f"mean, {name}"] = lambda d, mu=mu: d / mu
    out["median, top 500"] = lambda d, m=np.median(c[:500]): d / m
    out["50th nearest"] = lambda d, q=c[49]: d / q
    for b in POWERS:
        out[f"mean ** {b:g}, top 500"] = lambda d, m=c[:500].mean() ** b: d / m
    return out


def members_ratio(proto, bg, cols, e) -> np.ndarray:
    """The mean over members of each member's squared distance of ``e [n, d]`` to ``proto``
    divided by the mean of its 500 nearest ``bg`` rows (columns ``cols``: member -> slice)."""
    out = []
    for c in cols.values():
        near = np.sort(((bg[:, c] - proto[c]) ** 2).sum(axis=1))[:500]
        out.append(((e[:, c] - proto[c]) ** 2).sum(axis=1) / near.mean())
    return np.mean(out, axis=0)


def pooled(pos: np.ndarray, neg: np.ndarray) -> list[float]:
    """TPR (%) at ``clf_proxy``'s false-positive rates of one threshold on every score (smaller:
    keyword)."""
    return [100 * t for t in tpr_at(-pos, -neg)]


def main() -> None:
    p = proxy_parser(__doc__)
    p.add_argument("--background", type=Path, default=None, metavar="FILE",
                   help="the cohort (default: the shipped background)")
    a = p.parse_args()
    spotter = KeywordSpotter.from_model("default")
    cohort = spotter.shipped_background
    if a.background is not None:
        cohort = load_background(a.background)
        cohort.check(spotter.fingerprint, spotter.features.digest)
    bg = cohort.embeddings.astype(np.float64)
    cols = member_slices("default")
    scores: dict[str, tuple[list, list]] = {}
    own, spread, words = [], [], set()
    for w, proto, _, held, neg in keyword_draws(spotter, a.corpus, a.others):
        words.add(w)
        dp, dn = (((e - proto) ** 2).sum(axis=1) for e in (held, neg))
        own.append(pooled(dp, dn))
        c = np.sort(((bg - proto) ** 2).sum(axis=1))
        spread.append(c[:500].std() / c[:500].mean())
        for name, f in rules(c).items():
            pos, negs = scores.setdefault(name, ([], []))
            pos.append(f(dp))
            negs.append(f(dn))
        pos, negs = scores.setdefault("each member's mean", ([], []))
        pos.append(members_ratio(proto, bg, cols, held))
        negs.append(members_ratio(proto, bg, cols, neg))
    print(f"{a.corpus.name}: {len(words)} keywords x {DRAWS} draws; the 500 nearest windows' "
          f"deviation / mean: median {np.median(spread):.3f} "
          f"(10-90 %: {np.quantile(spread, 0.1):.3f}-{np.quantile(spread, 0.9):.3f})")
    print(f"{a.corpus.name} a threshold per keyword: TPR at 1 % / 0.1 % FPR "
          f"{np.mean(own, axis=0)[0]:.1f} / {np.mean(own, axis=0)[1]:.1f}")
    for name, (pos, negs) in scores.items():
        tpr = pooled(np.concatenate(pos), np.concatenate(negs))
        print(f"{a.corpus.name} {name}: TPR at 1 % / 0.1 % FPR {tpr[0]:.1f} / {tpr[1]:.1f}")


if __name__ == "__main__":
    main()
