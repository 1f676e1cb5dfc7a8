"""Does enrolling each support clip at several offsets (``ENROL_SHIFTS_MS``) help?

Picovoice keywords (``../shared/data/picovoice``, or ``$KWS_SHARED_DATA/picovoice``), the shipped
encoder (or the run directory given): 30 draws of 3 keywords x 5 support clips, 20 held-back
clips of each keyword and 40 clips of each of the other 3 words as unknown, from the first 80
readable clips of each word.  Queries are cut at their crop (aligned) and 50 / 100 ms either side
of it (where a sliding window with a 100 ms hop may start).  Prints, per enrolment rule and
margin, the share of held-back clips accepted as their own keyword, of unknown clips rejected,
and their mean.

    KWS_SHARED_DATA=../shared/data python experiments/enrol_views.py [RUN_DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
PICO = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data")) / "picovoice"
WORDS = ("alexa", "computer", "jarvis", "smart mirror", "snowboy", "view glass")
SHIFTS_MS = (-100.0, -50.0, 0.0, 50.0, 100.0)  # views embedded once; rules pick among them
RULES = {"one view (0 ms)": (0.0,), "views -100/0/+100 ms (default)": (-100.0, 0.0, 100.0),
         "views -50/0/+50 ms": (-50.0, 0.0, 50.0), "views -100..+100 ms, 5": SHIFTS_MS}
QUERIES = {"aligned": (0.0,), "+-50 ms": (-50.0, 50.0), "+-100 ms": (-100.0, 100.0)}
PER_WORD, DRAWS, K, HELD, UNKNOWN = 80, 30, 5, 20, 40


def embed_words(spotter) -> dict[str, np.ndarray]:
    """``{word: [PER_WORD, len(SHIFTS_MS), d]}`` embeddings of each word's first readable clips."""
    from kws_proto.errors import AudioError

    out, skipped = {}, []
    for w in WORDS:
        paths = []
        for p in sorted((PICO / w).glob("*.flac")):
            try:
                spotter.load_views([p], (0.0,))
            except AudioError:  # the corpus holds a few corrupt files
                skipped.append(f"{w}/{p.name}")
                continue
            paths.append(p)
            if len(paths) == PER_WORD:
                break
        out[w] = spotter.embed_views(paths, SHIFTS_MS)
    if skipped:
        print(f"skipped {len(skipped)} unreadable clip(s): {', '.join(skipped)}")
    return out


def main(argv: list[str]) -> int:
    from kws_proto.bank import metric_space
    from kws_proto.spotter import (KeywordSpotter, calibrate_threshold, clip_embeddings,
                                   decide, keyword_distances)

    if not PICO.is_dir():
        print(f"{PICO} is absent: set KWS_SHARED_DATA to ../shared/data", file=sys.stderr)
        return 2
    spotter = KeywordSpotter.from_model(argv[0] if argv else "default")
    emb = embed_words(spotter)
    col = {s: i for i, s in enumerate(SHIFTS_MS)}
    rng = np.random.default_rng(0)
    scores: dict[tuple, list] = {}
    for _ in range(DRAWS):
        keywords = list(rng.choice(WORDS, 3, replace=False))
        order = {w: rng.permutation(PER_WORD) for w in WORDS}
        unknown = np.concatenate([emb[w][order[w][:UNKNOWN]] for w in WORDS if w not in keywords])
        for margin in (1.25, 1.5):
            for rule, views in RULES.items():
                bank = spotter.new_bank()
                for w in keywords:
                    v = emb[w][order[w][:K]][:, [col[s] for s in views]]  # [K, S, d]
                    t, info = calibrate_threshold(v, distance=spotter.distance, margin=margin)
                    bank.add(bank.make_keyword(w, clip_embeddings(v, spotter.distance),
                                               [str(i) for i in range(K)], t, info))
                for query, shifts in QUERIES.items():
                    cols = [col[s] for s in shifts]
                    accepted = np.mean([np.mean(decide(keyword_distances(
                        bank, emb[w][order[w][K:K + HELD]][:, cols].reshape(-1, emb[w].shape[-1])),
                        bank.thresholds) == j) for j, w in enumerate(keywords)])
                    u = unknown[:, cols].reshape(-1, unknown.shape[-1])
                    rejected = np.mean(decide(keyword_distances(bank, u), bank.thresholds) == -1)
                    scores.setdefault((margin, rule, query), []).append((accepted, rejected))
    print(f"{spotter.model_dir}: {DRAWS} draws, 3 keywords x {K} clips, {HELD} held back each, "
          f"{UNKNOWN} of each other word unknown")
    print(f"{'margin':>6}  {'enrolment':<32}{'queries':<10}{'accepted':>9}{'rejected':>9}"
          f"{'mean':>7}")
    for (margin, rule, query), v in scores.items():
        a, r = 100 * np.mean(v, axis=0)
        print(f"{margin:>6g}  {rule:<32}{query:<10}{a:>9.1f}{r:>9.1f}{(a + r) / 2:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
