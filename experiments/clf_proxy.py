"""A per-keyword logistic classifier against the shipped background, beside the s-normed prototype
distance, ranked on held-out clips (experiments/spotting.md, "A per-keyword classifier against the
shipped background: not kept").

Per keyword of CORPUS (folders of clips, or FSDD's flat <digit>_<speaker>_<n>.wav) and each of 5
seeded draws: 5 support clips (their 3 enrolment views each) make the prototype and the
classifier's positives; the classifier's negatives are the `default` model's shipped background
windows.  Scored on the keyword's other clips against 60 clips of every other word and 600 word
clips of --others (speakers outside the cohort): the true-positive rate at 1 % and 0.1 % false
positives, mean over keywords and draws.

    python experiments/clf_proxy.py ../shared/data/picovoice --others data/so762-split/test --C 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from kws_proto.errors import AudioError
from kws_proto.spot.spotter import KeywordSpotter, audio_files

CLIPS = 120  # readable clips a word at most
OTHERS = 600
DRAWS = 5
FPR = (0.01, 0.001)


def word_files(corpus: Path) -> dict[str, list[Path]]:
    """``{word: files}``: the corpus's word folders, or FSDD's files by their digit (shuffled)."""
    folders = sorted(d for d in corpus.iterdir() if d.is_dir())
    if folders:
        return {d.name: audio_files([d]) for d in folders}
    out: dict[str, list[Path]] = {}
    for f in sorted(corpus.glob("*.wav")):
        out.setdefault(f.name.split("_")[0], []).append(f)
    return {w: [f[i] for i in np.random.default_rng(7).permutation(len(f))] for w, f in out.items()}


def readable(spotter, files) -> list[Path]:
    """The first :data:`CLIPS` of ``files`` the front end can read."""
    out = []
    for f in files[:CLIPS + 10]:
        try:
            spotter.load_clip(f)
        except AudioError:
            continue
        out.append(f)
    return out[:CLIPS]


def embedded_words(spotter, corpus: Path, others: Path):
    """``(files, embeddings, others)``: the words of ``corpus`` with 30 readable clips or more
    (``{word: files}``, ``{word: [n, d]}``), and :data:`OTHERS` clips of ``others`` drawn
    (seed 0) and embedded ``[OTHERS, d]``, float64."""
    files = {w: readable(spotter, f) for w, f in word_files(corpus).items()}
    files = {w: f for w, f in files.items() if len(f) >= 30}
    emb = {w: np.asarray(spotter.embed_files(f), np.float64) for w, f in files.items()}
    pool = audio_files([others])
    pool = [pool[i] for i in np.random.default_rng(0).choice(len(pool), OTHERS, replace=False)]
    return files, emb, np.asarray(spotter.embed_files(pool), np.float64)


def keyword_draws(spotter, corpus: Path, others: Path):
    """The proxies' trials, in order: per keyword of ``corpus`` and each of :data:`DRAWS` seeded
    draws, ``(word, prototype [d], support views [5, v, d], held-out clips [n, d], negatives
    [m, d])``, float64: 5 support clips (their enrolment views) make the prototype; the negatives
    are 60 clips of every other word and the :data:`OTHERS` clips of ``others``
    (:func:`embedded_words`)."""
    files, emb, pool = embedded_words(spotter, corpus, others)
    for w in files:
        neg = np.vstack([*(emb[o][:60] for o in files if o != w), pool])
        for t in range(DRAWS):
            order = np.random.default_rng([1, t, len(w)]).permutation(len(files[w]))
            views = np.asarray(spotter.embed_views([files[w][i] for i in order[:5]]), np.float64)
            yield w, views.mean(axis=(0, 1)), views, emb[w][order[5:]], neg


def fit_logistic(pos: np.ndarray, neg: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression ``(w [d], b)`` by L-BFGS."""
    x = np.vstack([pos, neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    weight = np.where(y == 1, 0.5 / len(pos), 0.5 / len(neg))
    d = x.shape[1]

    def loss(theta):
        w, b = theta[:d], theta[d]
        z = x @ w + b
        nll = np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)
        g = (1 / (1 + np.exp(-z)) - y) * weight
        return ((weight * nll).sum() + 0.5 / c * w @ w / len(x),
                np.r_[x.T @ g + w / c / len(x), g.sum()])

    r = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return r.x[:d], float(r.x[d])


def tpr_at(pos: np.ndarray, neg: np.ndarray) -> list[float]:
    """True-positive rates at the :data:`FPR` false-positive rates (larger score: keyword)."""
    return [float((pos > np.quantile(neg, 1 - f)).mean()) for f in FPR]


def proxy_parser(doc: str) -> argparse.ArgumentParser:
    """The proxies' command line: a CORPUS of keywords and ``--others`` (word clips of other
    speakers)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--others", type=Path, required=True, help="word clips of other speakers")
    return p


def main() -> None:
    p = proxy_parser(__doc__)
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 strength")
    a = p.parse_args()
    spotter = KeywordSpotter.from_model("default")
    bg = spotter.shipped_background.embeddings.astype(np.float64)
    scores = {"s-normed prototype distance": [], f"logistic, C = {a.C:g}": []}
    for _, proto, views, held, neg in keyword_draws(spotter, a.corpus, a.others):
        near = np.sort(((bg - proto) ** 2).sum(axis=1))[:500]

        def snorm(e):
            return -(((e - proto) ** 2).sum(axis=1) - near.mean()) / near.std()

        scores["s-normed prototype distance"].append(tpr_at(snorm(held), snorm(neg)))
        wv, _ = fit_logistic(views.reshape(-1, views.shape[-1]), bg, a.C)
        scores[f"logistic, C = {a.C:g}"].append(tpr_at(held @ wv, neg @ wv))
    for name, v in scores.items():
        tpr = np.mean(v, axis=0) * 100
        print(f"{name}: TPR at {FPR[0]:g} / {FPR[1]:g} FPR {tpr[0]:.1f} / {tpr[1]:.1f} % "
              f"({len(v)} keyword draws)")


if __name__ == "__main__":
    main()
