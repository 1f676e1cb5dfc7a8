"""Sound-alikes in each keyword's cohort: the default enrolment's cut against the shipped
background, beside cuts that also know the keyword's synthesised confusables, ranked with one
threshold for every keyword (experiments/spotting.md, "Sound-alikes in the cohort").

The same keywords, draws, supports and negatives as ``clf_proxy.py``.  Every keyword's
confusables (``kws_proto/spot/confusables.py``: ``--confusables`` words one phoneme away from its
text, each said by 3 built-in eSpeak NG voices, seed 0) are embedded once.  A keyword's score of
a clip is its s-normed distance ``z`` minus its cut, so one threshold on the score is one cohort
level for every keyword, as the spotter's sweep moves them all together:

- ``shipped``: the cut is the level shipped with s-norm when this was measured (-3.25), the
  cohort the shipped background;
- ``cohort + confusables``: ``z`` against the background and the confusables together (their
  500 nearest), the shipped level;
- ``cap qQ``: ``z`` as shipped, the cut the lower of the level and the ``Q`` quantile of the
  confusables' ``z`` (a keyword whose sound-alikes lie near is cut tighter).

Pooled over keywords and draws: the true-positive rate at 1 % and 0.1 % false positives, and at
the cut itself (score < 0) the rates of both.

    python experiments/confusable_cohort_proxy.py ../shared/data/fsdd --others data/so762-split/test
"""

from __future__ import annotations

import numpy as np

from clf_proxy import DRAWS, keyword_draws, proxy_parser
from kws_proto.errors import ConfigError
from kws_proto.spot.confusables import confusable_clips
from kws_proto.spot.cohort import TOP
from kws_proto.spot.spotter import KeywordSpotter
from kws_proto.spot.synthetic import keyword_text

VOICES = 3
QUANTILES = (0.05, 0.25)
SNORM_LEVEL = -3.25  # the s-norm level `default` shipped with when this was measured


def z_against(proto: np.ndarray, cohort: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``e``'s squared distances to ``proto``, s-normed on its :data:`TOP` nearest cohort rows."""
    near = np.sort(((cohort - proto) ** 2).sum(axis=1))[:TOP]
    return (((e - proto) ** 2).sum(axis=1) - near.mean()) / near.std()


def pooled(pos: np.ndarray, neg: np.ndarray) -> list[float]:
    """TPR at 1 % and 0.1 % FPR of one threshold on every score (smaller: keyword), then the
    TPR and FPR of the cut itself (score < 0), in %."""
    at = [float((pos < np.quantile(neg, f)).mean()) for f in (0.01, 0.001)]
    return [100 * x for x in (*at, (pos < 0).mean(), (neg < 0).mean())]


def confusables_embedded(spotter, word: str, n: int) -> np.ndarray | None:
    """``word``'s ``n`` confusables, each said by :data:`VOICES` voices, embedded ``[m, d]``
    float64; None, and a line saying so, when it has none."""
    try:
        clips, _ = confusable_clips(keyword_text(word), n, VOICES, sr=spotter.features.sample_rate)
    except ConfigError as e:
        print(f"{word}: no confusables ({e}); scored without them")
        return None
    return np.asarray(spotter.embed(spotter.load_clips([y for _, y in clips])), np.float64)


def main() -> None:
    p = proxy_parser(__doc__)
    p.add_argument("--confusables", type=int, default=20, help="sound-alikes a keyword")
    a = p.parse_args()
    spotter = KeywordSpotter.from_model("default")
    bg = spotter.shipped_background.embeddings.astype(np.float64)
    level = SNORM_LEVEL
    rules = ["shipped", "cohort + confusables", *(f"cap q{q:g}" for q in QUANTILES)]
    scores = {r: ([], []) for r in rules}
    conf = {}  # word -> its confusables' embeddings, or None
    for w, proto, _, held, neg in keyword_draws(spotter, a.corpus, a.others):
        if w not in conf:
            conf[w] = confusables_embedded(spotter, w, a.confusables)
        c = conf[w]
        union = bg if c is None else np.vstack([bg, c])
        zc = None if c is None else z_against(proto, bg, c)
        cuts = {"shipped": level, "cohort + confusables": level,
                **{f"cap q{q:g}": level if zc is None else min(level, float(np.quantile(zc, q)))
                   for q in QUANTILES}}
        for r in rules:
            cohort = union if r == "cohort + confusables" else bg
            for side, e in zip(scores[r], (held, neg)):
                side.append(z_against(proto, cohort, e) - cuts[r])
    print(f"{a.corpus.name}: {len(conf)} keywords x {DRAWS} draws, "
          f"{sum(c is not None for c in conf.values())} with confusables")
    for r in rules:
        tpr1, tpr01, tpr_cut, fpr_cut = pooled(*(np.concatenate(s) for s in scores[r]))
        print(f"{a.corpus.name} {r}: TPR at 1 % / 0.1 % FPR {tpr1:.1f} / {tpr01:.1f}; at the "
              f"cut TPR {tpr_cut:.1f} %, FPR {fpr_cut:.2f} %")


if __name__ == "__main__":
    main()
